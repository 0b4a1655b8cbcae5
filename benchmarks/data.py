"""The input pipeline on data past memory, on shards this script makes in a temporary folder.

1. Images/s of zoo build's input pipeline alone (JPEG decode, random-resized crop to 128, flip,
   normalize; 2 workers) over packed shards, against a hand-written DataLoader + Pillow +
   torchvision transforms over the same JPEG files, and against WebDataset's own loader over the
   same shards (the same transforms, its shuffle buffer).
2. Peak memory iterating a dataset of --rss-gb of shards (1 MiB samples) with the knobs set to a
   512 MB budget (workers x prefetch x batch x sample bytes): the proportional set size (PSS) of the
   main process and its workers, summed, so shared libraries count once.
3. Resume: a 3-epoch build on shards killed (kill -9, every process) at a random step of epoch 2,
   resumed: are its weights the uninterrupted build's, bit for bit? For each --resume process count.

Last line: data: pipeline zoo/hand X.XX, zoo/webdataset X.XX, rss X.XX GB @4GB, resume identical
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import zoo
from zoo.assembly.data import InMemoryDataset
from zoo.testing import kill_tree, process_tree
from zoo.training.loop import Batches
from zoo_datasets.packing import write

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SAMPLE = 1 << 20  # bytes of one sample of the memory run


def images(folder: Path, count: int, classes: int = 10) -> None:
    """``count`` JPEGs of 320 x 240 (smooth noise, so they compress like photographs) in class folders."""
    rng = np.random.default_rng(0)
    for i in range(count):
        target = folder / "train" / f"c{i % classes}"
        target.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
        small.resize((320, 240), Image.BICUBIC).save(target / f"{i:06d}.jpg", quality=90)


def rate(batches) -> float:
    """Images per second over one pass of ``batches``."""
    started, count = time.perf_counter(), 0
    for x, _ in batches:
        count += len(x)
    return count / (time.perf_counter() - started)


def best(pipeline, *args) -> float:
    """The faster of two passes: the first pays the imports and the page cache, once per build."""
    return max(pipeline(*args), pipeline(*args))


def zoo_pipeline(shards: Path, batch: int, workers: int) -> float:
    data = zoo.create("webdataset", split="train", root=str(shards), channels=3, crop=128, mean=MEAN, std=STD,
                      augment=True, training=True)
    batches = Batches(data, batch, torch.device("cpu"), workers=workers)
    return rate(batches(data.order(torch.Generator().manual_seed(0)), 0, (0, 1)))


class Files(torch.utils.data.Dataset):
    """The hand-written baseline: Pillow and torchvision's transforms, per file."""

    def __init__(self, root: Path):
        from torchvision import transforms

        self.files = sorted(root.glob("train/*/*.jpg"))
        classes = sorted({f.parent.name for f in self.files})
        self.labels = [classes.index(f.parent.name) for f in self.files]
        self.transform = transforms.Compose([transforms.RandomResizedCrop(128), transforms.RandomHorizontalFlip(),
                                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        with Image.open(self.files[i]) as image:
            return self.transform(image.convert("RGB")), self.labels[i]


def hand_pipeline(root: Path, batch: int, workers: int) -> float:
    return rate(torch.utils.data.DataLoader(Files(root), batch_size=batch, shuffle=True, num_workers=workers))


def webdataset_pipeline(shards: Path, batch: int, workers: int) -> float:
    import webdataset as wds
    from torchvision import transforms

    transform = transforms.Compose([transforms.RandomResizedCrop(128), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    urls = [str(p) for p in sorted((shards / "train").glob("shard-*.tar"))]
    dataset = (wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.split_by_node, empty_check=False)
               .shuffle(1000).decode("pil").to_tuple("jpg", "cls").map_tuple(transform, int).batched(batch))
    return rate(wds.WebLoader(dataset, batch_size=None, num_workers=workers))


def pss(pids: set[int]) -> int:
    """Bytes of proportional set size of these processes, summed."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith("Pss:"))
    return total


def peak_memory(folder: Path, gigabytes: float, workers: int) -> float:
    """Peak PSS (GB) of one pass over ``gigabytes`` of 1 MiB samples with a 512 MB budget."""
    count = int(gigabytes * 2**30 / SAMPLE)
    values = SAMPLE // 4

    class Noise(torch.utils.data.Dataset):  # made sample by sample: the whole never exists in memory
        info = {"name": "noise", "input": {"kind": "tensor", "shape": [values], "dtype": "float32"}}

        def __len__(self):
            return count

        def __getitem__(self, i):
            return torch.from_numpy(np.random.default_rng(i).random(values, dtype=np.float32)), torch.tensor(i % 10)

    write(Noise(), folder / "train", 256 * 10**6, 100_000, log=lambda line: None)
    shards = zoo.create("webdataset", split="train", root=str(folder))
    batch, prefetch = 32, 2  # 2 workers x 2 batches ahead x 32 x 1 MiB = 128 MB in flight, 512 MB budget
    batches = Batches(shards, batch, torch.device("cpu"), workers=workers, prefetch=prefetch)
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], pss(process_tree(os.getpid())))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    seen = 0
    for x, _ in batches(shards.order(torch.Generator().manual_seed(0))):
        seen += len(x)
    done.set()
    watcher.join()
    assert seen == count
    return peak[0] / 1e9


RECIPE = """\
name: streamed
model: {component: mnist-mlp, hidden: [32]}
data:
  dataset: {component: webdataset, root: ROOT, window: 2}
  batch_size: 50
  workers: 2
train:
  epochs: 3
  seed: 0
  threads: 1
  checkpoint_every: STEP
  optimizer: {component: adam, lr: 1.0e-3}
  loss: cross-entropy
metrics: [accuracy]
"""


def resumed_identically(folder: Path, shards: Path, processes: int, samples: int) -> bool:
    """Kill a build at a random step of epoch 2, resume it; same weights as the uninterrupted build?"""
    steps = samples // 50 // processes
    step = random.Random(processes).randrange(1, steps)
    recipe = folder / f"recipe-{processes}.yaml"
    recipe.write_text(RECIPE.replace("ROOT", str(shards)).replace("STEP", str(step)))
    zoo_bin = [str(Path(sys.executable).parent / "zoo"), "build", str(recipe), "--no-progress",
               "--nproc", str(processes)]
    straight, run = folder / f"straight-{processes}", folder / f"run-{processes}"
    subprocess.run([*zoo_bin, "--out", str(straight)], check=True, capture_output=True, timeout=1200)
    process = subprocess.Popen([*zoo_bin, "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "checkpoint" / "state.json"
    while True:
        try:
            position = dict(dict(json.loads(state.read_text())["skeleton"]["$dict"])["position"]["$dict"])
        except (OSError, ValueError):
            position = {}
        if position.get("epoch") == 1 and position.get("step") == step:
            break
        if process.poll() is not None or position.get("epoch", 0) > 1:
            raise SystemExit(f"the build was not caught at step {step} of epoch 2; run again")
        time.sleep(0.005)
    kill_tree(process.pid)
    process.wait()
    subprocess.run([*zoo_bin, "--out", str(run), "--resume"], check=True, capture_output=True, timeout=1200)
    from safetensors.torch import load_file

    a, b = (load_file(str(f / "weights.safetensors")) for f in (straight, run))
    print(f"resume ({processes} process(es)): killed at step {step} of {steps} of epoch 2, "
          f"{'identical' if all(torch.equal(a[k], b[k]) for k in a) else 'DIFFERENT'} weights")
    return all(torch.equal(a[k], b[k]) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="JPEGs of the pipeline run")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rss-gb", type=float, default=4.0, help="GB of shards of the memory run")
    parser.add_argument("--resume", default="1,2", help="process counts of the resume runs ('none': no run)")
    parser.add_argument("--resume-samples", type=int, default=1000, help="MNIST samples of the resume runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        images(folder / "jpegs", args.images)
        write(zoo.create("image-folder", split="train", root=str(folder / "jpegs"), channels=3),
              folder / "shards" / "train", 256 * 10**6, 1000, log=lambda line: None)
        rates = {"zoo": best(zoo_pipeline, folder / "shards", args.batch, args.workers),
                 "hand": best(hand_pipeline, folder / "jpegs", args.batch, args.workers),
                 "webdataset": best(webdataset_pipeline, folder / "shards", args.batch, args.workers)}
        print("images/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))
        peak = peak_memory(folder / "noise", args.rss_gb, args.workers)
        print(f"peak PSS over {args.rss_gb:g} GB of shards (128 MB in flight, 512 MB budget): {peak:.2f} GB")
        mnist = zoo.create("mnist", split="train")
        inputs, targets = mnist.tensors()
        part = InMemoryDataset(inputs[: args.resume_samples], targets[: args.resume_samples], 255, mnist.info)
        write(part, folder / "mnist" / "train", 10**9, 150, log=lambda line: None)
        write(zoo.create("mnist", split="test"), folder / "mnist" / "test", 10**9, 2000, log=lambda line: None)
        counts = [] if args.resume == "none" else [int(n) for n in args.resume.split(",")]
        same = all([resumed_identically(folder, folder / "mnist", n, args.resume_samples) for n in counts])
    print(f"data: pipeline zoo/hand {rates['zoo'] / rates['hand']:.2f}, zoo/webdataset "
          f"{rates['zoo'] / rates['webdataset']:.2f}, rss {peak:.2f} GB @{args.rss_gb:g}GB, "
          f"resume {'not run' if not counts else 'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
