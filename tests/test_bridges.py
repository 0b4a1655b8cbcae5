"""timm's and torchvision's architectures as zoo components, timm-format Hub repos and torchvision's
weights as zoo files, their preprocessing applied as the libraries apply it. Repos and weights are
made here from small models with random weights and served on 127.0.0.1."""

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import run_zoo
from fakehub import Repo

import zoo
from zoo.recipe.catalog import PACKAGE
from zoo.registry import Registry
from zoo.use.predict import prepare

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("huggingface_hub")
from PIL import Image  # noqa: E402
from timm.data import create_transform, resolve_data_config  # noqa: E402
from timm.models import _hub  # noqa: E402


def publish(server, tmp_path, repo: str, tag: str, seed: int = 0, **params) -> str:
    """A timm-format repo (timm's own save_for_hf) of ``tag`` with random weights on the fake Hub; its commit."""
    torch.manual_seed(seed)
    model = timm.create_model(tag, pretrained=False, **params)
    folder = tmp_path / f"repo-{repo.replace('/', '-')}"
    _hub.save_for_hf(model, folder, safe_serialization=True)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    commit = hashlib.sha1(repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode()).hexdigest()
    server.repos[repo] = Repo({"main": commit}, {commit: files})
    return commit


def timm_reference(path, tag: str):
    """timm's own model on the same file: create_model(pretrained=True) reading it."""
    return timm.create_model(tag, pretrained=True, pretrained_cfg_overlay={"file": str(path)}).eval()


def photo(path, size=(300, 200), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_listing_counts_both_libraries_without_importing_them():
    out = run_zoo("list")
    assert out.returncode == 0, out.stderr
    assert f"{len(timm.list_models()):,} models of timm {timm.__version__} (plugin timm)" in out.stdout
    count = len(torchvision.models.list_models(module=torchvision.models))
    assert f"{count} models of torchvision {importlib.metadata.version('torchvision')}" in out.stdout
    assert "conflict" not in out.stdout  # timm and torchvision share 35 names: said when a bare one is used
    vits = run_zoo("list", "timm:*vit_small*").stdout
    assert "vit_small_patch16_224 " in vits and "resnet18" not in vits
    probe = ("import sys; from zoo.cli import main; main(['list', 'timm:*resnet*']); "
             "assert not {'torch', 'timm', 'torchvision'} & set(sys.modules), sorted(sys.modules)")
    listed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=dict(os.environ))
    assert listed.returncode == 0, listed.stderr
    assert "resnet18 " in listed.stdout


def test_info_shows_an_architectures_parameters_with_its_own_defaults():
    out = run_zoo("info", "timm:vit_small_patch16_224").stdout
    assert "embed_dim: int = 384" in out and "num_heads: int = 6" in out and "num_classes: int = 1000" in out
    assert "pretrained_cfg" not in out and "norm_layer" not in out  # the builder's, and a module class: not a recipe's
    tv = run_zoo("info", "torchvision:resnet18").stdout
    assert "num_classes: int = 1000" in tv and "IMAGENET1K_V1" in tv


def test_names_parameters_and_building_follow_zoos_rules():
    registry = zoo.default_registry()
    with pytest.raises(zoo.ZooError, match=r"unknown component 'timm:resnet19'. Did you mean 'timm:resnet18'"):
        registry.get("timm:resnet19")
    with pytest.raises(zoo.ZooError, match=r"pick one with 'timm:resnet18' or 'torchvision:resnet18'"):
        registry.get("resnet18")
    component = registry.get("timm:resnet18")
    with pytest.raises(zoo.ZooError, match=r"unknown parameter 'num_clases'. Did you mean 'num_classes'"):
        component.build(num_clases=3)
    with pytest.raises(zoo.ZooError, match=r"parameter 'drop_rate' expects float, got str 'high'"):
        component.build(drop_rate="high")
    torch.manual_seed(0)
    ours = component.build(num_classes=3, in_chans=1)
    torch.manual_seed(0)
    theirs = timm.create_model("resnet18", num_classes=3, in_chans=1)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert registry.get("torchvision:mobilenet_v3_small").build(num_classes=4)(torch.randn(1, 3, 64, 64)).shape == (1, 4)


def test_the_architecture_list_is_cached_per_library_version(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    version = importlib.metadata.version("torchvision")
    registry = Registry.from_environment(disabled=["timm"])
    assert registry.get("torchvision:resnet18").name == "resnet18"
    cached = tmp_path / "cache" / f"torchvision-{version}.json"
    listed = json.loads(cached.read_text())
    assert listed["version"] == version and len(listed["architectures"]) == len(
        torchvision.models.list_models(module=torchvision.models))
    cached.write_text("{not json")  # a damaged cache is made again, not an error
    assert Registry.from_environment(disabled=["timm"]).get("torchvision:vit_b_16").name == "vit_b_16"
    assert json.loads(cached.read_text())["version"] == version


@pytest.mark.parametrize("tag", ["resnet18.a1_in1k", "test_vit.r160_in1k"])
def test_a_timm_hub_repo_loads_as_a_zoo_model_identical_to_timms(hub, tmp_path, tag):
    commit = publish(hub, tmp_path, f"timm/{tag}", tag)
    model = zoo.load(f"hf-hub:timm/{tag}")
    meta = model.zoo_meta
    assert model.zoo_source.label == f"hf-hub:timm/{tag}@{commit}"
    assert meta.imported.source == f"hf-hub:timm/{tag}@{commit}" and meta.imported.tag == tag
    assert meta.imported.library == f"timm {timm.__version__}" and meta.recipe == {}
    cached = hub.repos[f"timm/{tag}"].commits[commit]["model.safetensors"]
    assert meta.imported.sha256 == hashlib.sha256(cached).hexdigest()
    reference = timm_reference(model.zoo_source.path, tag)
    data = resolve_data_config(model=reference)
    assert meta.input.shape == tuple(data["input_size"]) and meta.input.preprocess.interpolation == data["interpolation"]
    assert meta.input.preprocess.mean == tuple(data["mean"]) and len(meta.classes) == 1000
    assert meta.classes[0] == "tench, Tinca tinca"
    x = torch.randn(2, *data["input_size"])
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))  # max abs diff 0
    image = photo(tmp_path / "photo.jpg")
    ours = prepare(str(image), meta.input)[0]
    theirs = create_transform(**data, is_training=False)(Image.open(image).convert("RGB"))
    assert torch.equal(ours, theirs)  # the library's own resize, crop and normalize, bit for bit
    with torch.no_grad():
        top5 = reference(theirs[None]).softmax(-1).topk(5).indices[0].tolist()
    [result] = zoo.predict(model, str(image), top_k=5)
    assert [t["index"] for t in result["top"]] == top5 and result["top"][0]["label"] == meta.classes[top5[0]]
    assert zoo.load(f"hf-hub:timm/{tag}@{commit[:12]}").zoo_source.path == model.zoo_source.path  # converted once


def test_a_hub_repo_no_plugin_knows_is_one_line(hub, tmp_path):
    commit = "c" * 40
    from safetensors.torch import save

    hub.repos["someone/other"] = Repo({"main": commit}, {commit: {
        "model.safetensors": save({"w": torch.zeros(2)}), "config.json": json.dumps({"model_type": "bert"}).encode()}})
    with pytest.raises(zoo.ZooError, match=r"hf-hub:someone/other@c{40}: its model.safetensors has no zoo "
                                           r"metadata, and no installed plugin knows its config.json"):
        zoo.load("hf-hub:someone/other")


@pytest.mark.parametrize("tag", ["resnet18.a1_in1k", "test_vit.r160_in1k"])
def test_predict_export_card_and_push_of_a_timm_model_from_the_hub(hub, tmp_path, tag):
    ort = pytest.importorskip("onnxruntime")
    publish(hub, tmp_path, f"timm/{tag}", tag)
    name = f"hf-hub:timm/{tag}"
    model = zoo.load(name)
    image = photo(tmp_path / "cat.png", size=(64, 480))
    out = run_zoo("predict", name, str(image), "--top-k", "3")
    assert out.returncode == 0, out.stderr
    [expected] = zoo.predict(model, str(image), top_k=3)
    assert all(f"{t['label']} ({100 * t['probability']:.1f}%)" in out.stdout for t in expected["top"])
    exported = run_zoo("export", name, "--format", "onnx", "--out", str(tmp_path / "m.onnx"))
    assert exported.returncode == 0, exported.stderr
    facts = json.loads((tmp_path / "m.onnx.json").read_text())
    assert facts["input"]["preprocess"]["crop"] == list(model.zoo_meta.input.preprocess.crop)
    from zoo.use.predict import decode_image

    with open(image, "rb") as f:  # the client's part: resize and crop as the facts say, pixels in [0, 1]
        pixels = decode_image(f, model.zoo_meta.input, "cat.png").astype(np.float32)[None] / 255
    [onnx_out] = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": pixels})
    with torch.no_grad():
        ours = model(prepare(str(image), model.zoo_meta.input)).numpy()
    assert np.abs(onnx_out - ours).max() < 1e-3  # normalization inside the graph; float32 kernels differ
    card = run_zoo("card", name)
    assert card.returncode == 0, card.stderr
    assert f"timm {timm.__version__}'s pretrained `{tag}`" in card.stdout and "## License\n\napache-2.0" in card.stdout
    assert f"`{name}@" in card.stdout and "centre" in card.stdout and "(900 more)" in card.stdout
    pushed = run_zoo("push", name, str(tmp_path / "repo"))
    assert pushed.returncode == 0, pushed.stderr
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    again = zoo.load(tmp_path / "repo")
    x = torch.randn(1, *model.zoo_meta.input.shape)
    with torch.no_grad():
        assert torch.equal(again(x), model(x)) and again.zoo_meta.imported == model.zoo_meta.imported


def test_torchvision_weights_come_in_through_zoo_import_from_a_loopback_mirror(tmp_path, monkeypatch):
    from conftest import StaticServer

    torch.manual_seed(0)
    state = torchvision.models.get_model("resnet18").state_dict()
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    served = tmp_path / "served"
    served.mkdir()
    (served / f"resnet18-{digest[:8]}.pth").write_bytes(raw.read_bytes())  # torch.hub checks this hash prefix
    mirror = StaticServer(served)
    try:
        out = run_zoo("import", "torchvision:resnet18.IMAGENET1K_V1", "--url", f"{mirror.url}resnet18-{digest[:8]}.pth")
    finally:
        mirror.close()
    assert out.returncode == 0, out.stderr
    assert "torchvision-resnet18-imagenet1k-v1@1" in out.stdout
    model = zoo.load("torchvision-resnet18-imagenet1k-v1@latest")
    meta = model.zoo_meta
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert meta.classes == tuple(weights.meta["categories"]) and meta.imported.tag == "IMAGENET1K_V1"
    assert meta.input.preprocess.resize == (256,) and meta.input.preprocess.crop == (224, 224)
    assert meta.metrics["acc@1"] == pytest.approx(weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100)
    reference = torchvision.models.resnet18()
    reference.load_state_dict(state)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    image = photo(tmp_path / "dog.jpg", size=(500, 333))
    ours = prepare(str(image), meta.input)[0]
    assert torch.equal(ours, weights.transforms()(Image.open(image).convert("RGB")))
    bad = run_zoo("import", "torchvision:resnet18.IMAGENET9K", "--url", "http://127.0.0.1:9/x.pth")
    assert bad.returncode == 2 and "no weights 'IMAGENET9K' for resnet18" in bad.stderr and "IMAGENET1K_V1" in bad.stderr


def test_a_recipe_fine_tunes_a_timm_architecture_from_hub_weights(hub, tmp_path, zoo_home):
    publish(hub, tmp_path, "timm/test_vit.r160_in1k", "test_vit.r160_in1k")
    folder = tmp_path / "images"
    made = subprocess.run([sys.executable, "-m", "zoo_datasets.shapes", str(folder), "--per-class", "8", "--size", "48"],
                          capture_output=True, text=True)
    assert made.returncode == 0 and "24 images" in made.stdout, made.stderr
    recipe = yaml.safe_load((PACKAGE / "recipes" / "timm-finetune.yaml").read_text())
    recipe["model"] = {"component": "timm:test_vit", "num_classes": 3}
    recipe["data"]["dataset"].update(root=str(folder), crop=32, resize=36)
    recipe["data"]["workers"] = 0
    recipe["train"]["init"] = "hf-hub:timm/test_vit.r160_in1k"
    recipe["train"]["epochs"] = 1
    from zoo.testing import tiny_build

    run = tiny_build(recipe, tmp_path)
    model = zoo.load(run / "weights.safetensors")
    assert model.zoo_meta.init.new_head and model.zoo_meta.input.preprocess is not None
    assert recipe["train"]["channels_last"] is True  # the shipped recipe's: the saved weights are contiguous
    assert all(t.is_contiguous() for t in model.state_dict().values())
    [result] = zoo.predict(model, str(next((folder / "val").rglob("*.png"))))
    assert result["top"][0]["label"] in ("circle", "square", "triangle")


def test_check_of_the_shipped_fine_tune_recipe_lists_timms_layers(hub, tmp_path):
    publish(hub, tmp_path, "timm/resnet18.a1_in1k", "resnet18.a1_in1k")
    made = subprocess.run([sys.executable, "-m", "zoo_datasets.shapes", str(tmp_path / "shapes"), "--per-class", "7",
                           "--size", "40"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    out = run_zoo("check", "timm-finetune", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "layer1.0.conv1" in out.stdout or "Conv2d" in out.stdout, out.stdout
    assert "11,178,051" in out.stdout  # resnet18 with a 3-class head
    assert "init: loaded" in out.stdout and "new head" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text((PACKAGE / "recipes" / "timm-finetune.yaml").read_text().replace("timm:resnet18", "timm:resnet19"))
    refused = run_zoo("check", str(bad), cwd=tmp_path)
    assert refused.returncode == 2 and "bad.yaml:12:3: model.component" in refused.stderr
    assert "Did you mean 'timm:resnet18'" in refused.stderr and "zoo list 'timm:*'" in refused.stderr


def test_serve_answers_a_timm_model_on_photos_of_any_size_and_batches(hub, tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from test_serve import _sample, serving

    publish(hub, tmp_path, "timm/test_vit.r160_in1k", "test_vit.r160_in1k")
    model = zoo.load("hf-hub:timm/test_vit.r160_in1k")
    photos = [photo(tmp_path / f"p{i}.jpg", size=(120 + 40 * i, 90 + 30 * i), seed=i) for i in range(4)]
    expected = zoo.predict(model, [str(p) for p in photos], top_k=3)
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((160, 160))) for p in photos[:2]])
    with serving("hf-hub:timm/test_vit.r160_in1k", batch_timeout_ms=200, max_batch_size=16) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        name = http.get("/v1/models").json()[0]["name"]
        assert name == "test-vit-r160-in1k"
        for path, want in zip(photos, expected):
            [got] = http.post(f"/v1/models/{name}/predict?top_k=3", files={"file": (path.name, path.read_bytes())}).json()
            assert [t["index"] for t in got["top"]] == [t["index"] for t in want["top"]]
            assert got["top"][0]["probability"] == pytest.approx(want["top"][0]["probability"], abs=1e-6)
        as_json = http.post(f"/v1/models/{name}/predict", json={"inputs": pixels.transpose(0, 3, 1, 2).tolist(),
                                                                "top_k": 3}).json()
        direct = zoo.predict(model, [torch.from_numpy(p.transpose(2, 0, 1).copy()) for p in pixels], top_k=3)
        assert [[t["index"] for t in r["top"]] for r in as_json] == [[t["index"] for t in r["top"]] for r in direct]

        def one(i):
            return http.post(f"/v1/models/{name}/predict", files={"file": ("p.jpg", photos[i % 4].read_bytes())})

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            assert all(r.status_code == 200 for r in pool.map(one, range(8)))
        metrics = http.get("/metrics").text
    assert _sample(metrics, f'zoo_batch_size_sum{{model="{name}"}}') >= 8 + 4
    assert _sample(metrics, f'zoo_batch_size_count{{model="{name}"}}') < 8 + 4 + 1  # some requests shared a pass


VIT_RECIPE = {
    "name": "shapes-vit",
    "model": {"component": "timm:test_vit", "img_size": 32, "num_classes": 3},
    "data": {"dataset": {"component": "image-folder", "root": "ROOT", "channels": 3, "crop": 32, "resize": 36,
                         "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
             "train_split": "train", "eval_split": "val", "batch_size": 8,
             "transform": [{"component": "random-resized-crop", "scale": [0.5, 1.0]}, "horizontal-flip"],
             "eval_transform": []},
    "train": {"epochs": 2, "optimizer": {"component": "adamw", "lr": 1.0e-3}, "loss": "cross-entropy", "threads": 1},
    "metrics": ["accuracy"],
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    made = subprocess.run([sys.executable, "-m", "zoo_datasets.shapes", str(folder), "--per-class", "12", "--size", "40"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return folder


def test_fsdp_shards_a_timm_vit_over_two_processes_like_ddp(shapes, tmp_path):
    recipe = tmp_path / "vit.yaml"
    recipe.write_text(yaml.safe_dump({**VIT_RECIPE, "data": {**VIT_RECIPE["data"], "dataset": {
        **VIT_RECIPE["data"]["dataset"], "root": str(shapes)}}}))
    runs = {}
    for strategy in ("ddp", "fsdp"):
        out = run_zoo("build", str(recipe), "--out", str(tmp_path / strategy), "--nproc", "2",
                      f"--set=train.strategy={strategy}", "-p", "no:progress")
        assert out.returncode == 0, out.stderr
        runs[strategy] = out
    assert "on each of 2 processes (gloo, fsdp)" in runs["fsdp"].stdout
    assert "weights gathered from 2 shards onto rank 0" in runs["fsdp"].stdout
    losses = [[json.loads(line)["train_loss"] for line in (tmp_path / s / "metrics.jsonl").read_text().splitlines()]
              for s in ("ddp", "fsdp")]
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)  # the same steps, sharded (float sums reorder)
    model = zoo.load(tmp_path / "fsdp" / "weights.safetensors")
    assert model.zoo_meta.model["component"] == "timm:test_vit" and model.zoo_meta.input.preprocess.crop == (32, 32)
    [result] = zoo.predict(model, str(next((shapes / "test").rglob("*.png"))))
    assert result["top"][0]["label"] in ("circle", "square", "triangle")


def test_search_tunes_a_timm_fine_tunes_learning_rate(shapes, tmp_path, zoo_home):
    pytest.importorskip("optuna")
    recipe = {**VIT_RECIPE, "data": {**VIT_RECIPE["data"], "dataset": {**VIT_RECIPE["data"]["dataset"],
                                                                        "root": str(shapes)}},
              "train": {**VIT_RECIPE["train"], "epochs": 1},
              "search": {"trials": 2, "metric": "val_accuracy", "space": {"train.optimizer.lr": {"log": [1.0e-4, 1.0e-2]}}}}
    found = zoo.search(recipe, out=tmp_path / "search", log=lambda line: None)
    assert 1e-4 <= found.best_params["train.optimizer.lr"] <= 1e-2 and found.metric == "val_accuracy"
    import optuna

    study = optuna.load_study(study_name="shapes-vit", storage=f"sqlite:///{found.folder / 'study.db'}")
    assert len([t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]) == 2
    assert len({t.params["train.optimizer.lr"] for t in study.trials}) == 2
    assert zoo.load(found.best.weights).zoo_meta.model["component"] == "timm:test_vit"


def test_a_librarys_pretrained_tags_are_names_that_load(hub, tmp_path):
    tags = zoo.list_models("timm:resnet18.*", pretrained=True)
    assert "timm:resnet18.a1_in1k" in tags and "mnist-mlp" not in tags
    assert "torchvision:resnet18.IMAGENET1K_V1" in zoo.list_models("*resnet18.IMAGENET*", pretrained=True)
    listed = run_zoo("list", "--pretrained", "timm:resnet18.a*").stdout
    assert "hf-hub:timm/resnet18.a1_in1k" in listed and "mnist-mlp" not in listed
    assert "pretrained weights of plugin timm" in run_zoo("list", "--pretrained").stdout
    commit = publish(hub, tmp_path, "timm/resnet18.a1_in1k", "resnet18.a1_in1k")
    model = zoo.load("timm:resnet18.a1_in1k")  # nothing was downloaded until now
    assert model.zoo_source.label == f"hf-hub:timm/resnet18.a1_in1k@{commit}"
    with pytest.raises(zoo.ZooError, match=r"'torchvision:resnet18.IMAGENET1K_V1' is torchvision's: bring it in once "
                                           r"with 'zoo import torchvision:resnet18.IMAGENET1K_V1'"):
        zoo.load("torchvision:resnet18.IMAGENET1K_V1")


def test_create_model_with_a_new_head_and_reproduce_of_imported_weights(hub, tmp_path, zoo_home):
    publish(hub, tmp_path, "timm/test_vit.r160_in1k", "test_vit.r160_in1k")
    published = zoo.load("timm:test_vit.r160_in1k")
    model = zoo.create_model("timm:test_vit.r160_in1k", pretrained=True, num_classes=7)
    x = torch.randn(1, *published.zoo_meta.input.shape)
    with torch.no_grad():
        assert model(x).shape == (1, 7)
        assert torch.equal(model.forward_features(x), published.forward_features(x))  # every tensor but the head
    out = run_zoo("reproduce", "hf-hub:timm/test_vit.r160_in1k")
    assert out.returncode == 2 and "imported: zoo did not train these weights, so they have no recipe" in out.stderr
    assert out.stderr.count("\n") == 1 and not (zoo_home / "reproductions").exists()
