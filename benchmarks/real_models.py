"""timm and torchvision models in zoo: listing, parity with timm, fine-tune throughput, loading a big one.

Weights are random, made here with timm's own ``save_for_hf`` and served by the tests' fake Hub on
127.0.0.1 (no network). Each measurement:

- list: `zoo list` with both bridges (their caches made beforehand), best of --repeat fresh
  processes, against `zoo list` with them switched off (ZOO_PLUGINS_DISABLE=timm,torchvision);
- parity: for a CNN, a ViT, a ConvNeXt, an EfficientNet and a MobileNet, `zoo.load` of the timm repo
  against `timm.create_model(..., pretrained=True)` reading the same file: outputs equal (max abs diff
  0) and `zoo.predict`'s top-5 on a drawn photo equal to timm's transform + model;
- finetune: images/s of one training epoch of resnet18 at --size px (batch 32, 2 workers, bf16
  autocast, AdamW) on a drawn image folder: `zoo.build` of the shipped recipe's settings against the
  loop a timm user writes (timm.data.create_dataset + create_loader + create_model + AdamW +
  torch.autocast), same data, batch and threads; the second of two epochs counts (the first warms up);
- load: `zoo.load` of a --vit timm ViT (vit_large_patch16_224: 304M parameters) converted once,
  in a fresh process with its verification cached (as every load after the first), against the floor:
  safetensors mapped into the model built on the meta device (`load_state_dict(assign=True)`).

    python benchmarks/real_models.py [--repeat 3] [--size 128] [--images 40] [--vit vit_large_patch16_224]

Last line: ``real_models: list X.XXs, parity N/5, finetune zoo/timm X.XX, load/floor X.XX``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZOO = str(Path(sys.executable).parent / "zoo")
PARITY = ["resnet18.a1_in1k", "vit_tiny_patch16_224.augreg_in21k_ft_in1k", "convnext_atto.d2_in1k",
          "efficientnet_b0.ra_in1k", "mobilenetv3_small_100.lamb_in1k"]

LOAD = r"""
import sys, time, json
import torch
path, node, what = sys.argv[1], sys.argv[2], sys.argv[3]
import zoo, timm, safetensors.torch
if what == "zoo":
    zoo.load(path)  # the first load computes the digests once; every load after reads them from the cache
    started = time.perf_counter(); model = zoo.load(path)
else:
    started = time.perf_counter()
    with torch.device("meta"):
        model = timm.create_model(node)
    model.load_state_dict(safetensors.torch.load_file(path), assign=True)
    model.eval()
print(time.perf_counter() - started)
"""


def best(command: list[str], repeat: int, env: dict | None = None) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - started)
    return min(times)


def publish(hub, folder: Path, tag: str) -> None:
    import hashlib

    import timm
    import torch
    from fakehub import Repo
    from timm.models import _hub

    torch.manual_seed(0)
    model = timm.create_model(tag, pretrained=False)
    target = folder / tag
    _hub.save_for_hf(model, target, safe_serialization=True)
    files = {p.name: p.read_bytes() for p in target.iterdir()}
    commit = hashlib.sha1(tag.encode()).hexdigest()
    hub.repos[f"timm/{tag}"] = Repo({"main": commit}, {commit: files})


def parity(folder: Path) -> int:
    import numpy as np
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    import zoo

    image = folder / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (333, 500, 3), dtype=np.uint8)).save(image)
    passed = 0
    for tag in PARITY:
        model = zoo.load(f"hf-hub:timm/{tag}")
        reference = timm.create_model(tag, pretrained=True, pretrained_cfg_overlay={"file": str(model.zoo_source.path)})
        reference.eval()
        data = resolve_data_config(model=reference)
        x = torch.randn(2, *data["input_size"])
        with torch.no_grad():
            diff = (model(x) - reference(x)).abs().max().item()
            theirs = reference(create_transform(**data)(Image.open(image).convert("RGB"))[None])
        top5 = theirs.softmax(-1).topk(5).indices[0].tolist()
        ours = [t["index"] for t in zoo.predict(model, str(image), top_k=5)[0]["top"]]
        ok = diff == 0 and ours == top5
        passed += ok
        print(f"parity {tag:45s} max abs diff {diff:.3g}, top-5 {'equal' if ours == top5 else 'DIFFERENT'}")
    return passed


def finetune(folder: Path, size: int, images: int) -> float:
    """images/s of zoo build's second epoch over the hand-written timm loop's."""
    import yaml

    shapes = folder / "shapes"
    subprocess.run([sys.executable, "-m", "zoo_datasets.shapes", str(shapes), "--per-class", str(images),
                    "--size", str(size + size // 4)], check=True, stdout=subprocess.DEVNULL)
    recipe = yaml.safe_load((ROOT / "zoo" / "recipes" / "timm-finetune.yaml").read_text())
    recipe["data"]["dataset"].update(root=str(shapes), crop=size, resize=int(size / 0.875))
    recipe["data"]["eval_split"] = None
    recipe["train"].update(epochs=2, init=None, new_head=False, threads=2, log_every=10_000)
    path = folder / "finetune.yaml"
    path.write_text(yaml.safe_dump(recipe))
    child = f"import zoo; print(zoo.build({str(path)!r}, out={str(folder / 'zoo-run')!r}).folder)"
    out = subprocess.run([sys.executable, "-c", child], check=True, capture_output=True, text=True).stdout
    history = [json.loads(line) for line in (Path(out.strip().splitlines()[-1]) / "metrics.jsonl").read_text().splitlines()]
    count = len(list((shapes / "train").rglob("*.png")))
    zoo_rate = count / history[-1]["seconds"]
    hand = subprocess.run([sys.executable, "-c", HAND, str(shapes / "train"), str(size)], check=True,
                          capture_output=True, text=True).stdout
    hand_rate = float(hand.strip().splitlines()[-1])  # timm's training loader drops the last partial batch
    print(f"finetune resnet18 @{size}px, {count} images: zoo {zoo_rate:.1f} images/s, hand-written timm "
          f"{hand_rate:.1f} images/s")
    return zoo_rate / hand_rate


HAND = r"""
import sys, time
import torch, timm
from timm.data import create_dataset, create_loader
torch.set_num_threads(2)
root, size = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
model = timm.create_model("resnet18", num_classes=3)
dataset = create_dataset("", root=root)
loader = create_loader(dataset, input_size=(3, size, size), batch_size=32, is_training=True, num_workers=2,
                       interpolation="bicubic", scale=(0.35, 1.0), color_jitter=None, crop_pct=0.875,
                       use_prefetcher=False, device=torch.device("cpu"))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(2):
    started, images = time.perf_counter(), 0
    model.train()
    for x, y in loader:
        images += len(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
print(images / seconds)
"""


def load_ratio(hub, folder: Path, vit: str, repeat: int) -> float:
    import zoo

    tag = f"{vit}.augreg_in21k_ft_in1k"
    publish(hub, folder, tag)
    path = zoo.load(f"hf-hub:timm/{tag}").zoo_source.path
    times = {}
    for what in ("floor", "zoo"):
        runs = [float(subprocess.run([sys.executable, "-c", LOAD, str(path), vit, what], check=True,
                                     capture_output=True, text=True).stdout) for _ in range(repeat)]
        times[what] = min(runs)
    print(f"load {vit} ({path.stat().st_size / 1e9:.2f} GB): zoo.load {times['zoo']:.2f} s, floor {times['floor']:.2f} s")
    return times["zoo"] / times["floor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=128, help="fine-tune image size, px")
    parser.add_argument("--images", type=int, default=40, help="drawn images per class (3 classes, 70%% train)")
    parser.add_argument("--vit", default="vit_large_patch16_224", help="the ViT the load is measured on")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from fakehub import FakeHub
    from huggingface_hub import constants

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ.setdefault("ZOO_HOME", str(folder / "zoo-home"))
        hub = FakeHub()
        for name, value in (("ENDPOINT", hub.url), ("HF_HUB_CACHE", str(folder / "hf")), ("HF_HUB_DISABLE_XET", True),
                            ("HF_HUB_OFFLINE", False),  # the fake Hub on loopback is the only one reached
                            ("HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")):
            setattr(constants, name, value)
        try:
            subprocess.run([ZOO, "list"], check=True, stdout=subprocess.DEVNULL)  # the bridges' caches, once
            with_bridges = best([ZOO, "list"], args.repeat)
            without = best([ZOO, "list"], args.repeat, env={**os.environ, "ZOO_PLUGINS_DISABLE": "timm,torchvision"})
            print(f"zoo list: {with_bridges:.2f} s with both bridges, {without:.2f} s without "
                  f"({with_bridges / without:.2f}x)")
            for tag in PARITY:
                publish(hub, folder, tag)
            passed = parity(folder)
            speed = finetune(folder, args.size, args.images)
            ratio = load_ratio(hub, folder, args.vit, args.repeat)
        finally:
            hub.close()
    print(f"real_models: list {with_bridges:.2f}s, parity {passed}/{len(PARITY)}, finetune zoo/timm {speed:.2f}, "
          f"load/floor {ratio:.2f}")


if __name__ == "__main__":
    main()
