"""Weights: self-describing files, the catalog, zoo.load, verification and every way a file can be bad."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, StaticServer, build, raw_meta, rewrite_meta, run_zoo
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file

import zoo
from zoo.recipe import catalog
from zoo.training.loop import evaluate
from zoo.weights import store
from zoo.weights.format import content_digest, fingerprint, read_meta, write

SHIPPED = catalog.PACKAGE / "pretrained" / "mnist-mlp.safetensors"


def published(name: str) -> catalog.Entry:
    return catalog.get(name, zoo.default_registry())


def accuracy(model) -> float:
    test = zoo.create("mnist", split="test")
    return evaluate(model, test, torch.nn.CrossEntropyLoss(), {"accuracy": zoo.create("accuracy", num_classes=10)},
                    batch_size=1000)["accuracy"]


def test_the_shipped_mnist_mlp_loads_offline_and_scores_its_catalog_figure():
    entry = published("mnist-mlp")
    model = zoo.load("mnist-mlp")
    assert model.zoo_source.source == "catalog" and model.zoo_source.path == SHIPPED
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == entry.params == 327_618
    [metric] = entry.metrics
    assert (metric.dataset, metric.split, metric.metric) == ("mnist", "test", "accuracy")
    assert metric.value >= 0.95
    assert accuracy(model) == pytest.approx(metric.value, abs=0.001)


def test_python_dash_c_load_in_a_fresh_process():
    code = "import zoo; m = zoo.load('mnist-mlp'); print(m)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "MnistMLP(" in result.stdout and "Linear(in_features=784, out_features=312" in result.stdout


def test_weights_files_are_plain_safetensors_describing_themselves():
    arrays = load_numpy(str(SHIPPED))
    assert arrays["linear_relu_stack.0.weight"].shape == (312, 784)
    meta = read_meta(SHIPPED)
    assert meta.model == {"component": "mnist-mlp"} and meta.version == 4 and meta.recipe_version == 1
    assert raw_meta(SHIPPED)["version"] == 2 and meta.transform == ()  # migrated: its recipe has no transforms
    assert meta.input_stats.mean[0] == pytest.approx(0.1313, abs=1e-4)  # the training images' mean pixel
    assert meta.recipe["train"]["optimizer"]["component"] == "adamw"
    assert meta.metrics["test_accuracy"] == pytest.approx(published("mnist-mlp").metrics[0].value, abs=1e-4)
    assert meta.fingerprint == fingerprint(load_file(str(SHIPPED)))
    assert meta.versions.zoo == "0.1.0" and meta.versions.plugins["models"].dist == "zoo"
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == published("mnist-mlp").sha256


def test_a_file_of_metadata_version_1_reads_through_its_migration():
    old = ROOT / "docs" / "examples" / "zoo-plugin-example" / "zoo_example" / "pretrained" / "two-spirals-glu.safetensors"
    assert "version" not in raw_meta(old) and raw_meta(old)["versions"]["plugins"]["example"] == "zoo-plugin-example 0.2.0"
    meta = read_meta(old)
    assert (meta.version, meta.recipe_version) == (4, 1)
    assert meta.versions.plugins["example"].dist == "zoo-plugin-example" and meta.versions.plugins["example"].version == "0.2.0"


def test_weights_carry_their_evaluation_transforms_so_a_recipe_the_schema_refuses_still_predicts(tmp_path):
    """A version-2 file kept its transforms only in its recipe; migrated, they are a field of their own,
    and predict (serve, export) builds them from there, never from the recipe."""
    from zoo.weights.load import settings

    meta = raw_meta(SHIPPED)
    meta["recipe"]["data"]["transform"] = [{"component": "normalize", "mean": 0.5, "std": 0.25}]
    meta["recipe"]["train"]["wormhole"] = 1  # a key no schema of this zoo accepts
    path = tmp_path / "old.safetensors"
    rewrite_meta(SHIPPED, path, meta)
    model = zoo.load(path)
    assert model.zoo_meta.transform == ({"component": "normalize", "mean": 0.5, "std": 0.25},)
    with pytest.raises(zoo.ZooError, match=r"train.wormhole: unknown key"):
        settings(model)  # the recipe does not validate ...
    x = zoo.create("mnist", split="test").batch(torch.arange(4))[0]
    got = zoo.predict(model, x, top_k=10)  # ... and predict needs none of it
    expected = torch.softmax(model((x - 0.5) / 0.25), -1)
    for one, row in zip(got, expected):
        assert [p["probability"] for p in sorted(one["top"], key=lambda p: p["index"])] == pytest.approx(row.tolist())


def test_the_catalog_is_shipped_inside_the_package_and_linked_at_the_top():
    assert (ROOT / "registry.yaml").resolve() == (catalog.PACKAGE / "registry.yaml").resolve()
    registry = zoo.default_registry()
    for entry in catalog.entries(registry).values():
        assert (entry.folder / entry.recipe).is_file()
        assert entry.weights_path.is_file()
    listed = {recipe.path.name for recipe in catalog.recipe_entries(registry).values()}
    assert listed == {path.name for path in (catalog.PACKAGE / "recipes").glob("*.yaml")}, "every shipped recipe is listed"
    assert all(recipe.path.is_file() for recipe in catalog.recipe_entries(registry).values())


def test_a_weights_file_copied_to_an_empty_folder_loads_by_path(tmp_path):
    copy = tmp_path / "empty" / "model.safetensors"
    copy.parent.mkdir()
    shutil.copy(SHIPPED, copy)
    model = zoo.load(copy)
    reference = zoo.load("mnist-mlp")
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), reference(x))
    assert zoo.load(str(copy)).zoo_source.source == "file"


def test_a_published_name_keeps_meaning_the_published_weights_after_a_local_build(tmp_path):
    before = accuracy(zoo.load("mnist-mlp"))
    build("mnist-mlp", ["train.epochs=1"], out=tmp_path / "run", disable=["progress"], log=lambda s: None)
    published_ = zoo.load("mnist-mlp")
    assert published_.zoo_source.path == SHIPPED and accuracy(published_) == before  # 0.961, not the 1-epoch build
    built = zoo.load("mnist-mlp@latest")
    assert built.zoo_source.source == "local" and built.zoo_source.label == "mnist-mlp@1"
    assert built.zoo_meta.recipe["train"]["epochs"] == 1
    run_tensors = load_file(str(tmp_path / "run" / "weights.safetensors"))
    assert all(torch.equal(built.state_dict()[k], v) for k, v in run_tensors.items())
    assert zoo.load("mnist-mlp", version=1).zoo_source.path == built.zoo_source.path
    info = run_zoo("info", "mnist-mlp").stdout
    assert "zoo.load('mnist-mlp') loads these published weights" in info
    assert "local builds: 1, the latest mnist-mlp@1" in info and str(tmp_path / "run") in info
    said = run_zoo("predict", "mnist-mlp", "3,5,7")
    assert said.stderr.startswith(f"zoo: weights mnist-mlp (published in the catalog, sha256 {published('mnist-mlp').sha256[:12]})")


def test_info_and_list_pretrained_read_the_catalog_without_torch():
    code = (
        "import sys, zoo.cli\n"
        "zoo.cli.main(['list', '--pretrained']); zoo.cli.main(['info', 'fashion-mnist-mlp'])\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert re.search(r"mnist-mlp\s+zoo\s+accuracy 0\.9\d+ \(mnist test\)\s+327,618\s+shipped", result.stdout)
    assert "zoo.load('fashion-mnist-mlp') loads these published weights" in result.stdout


@pytest.mark.parametrize("name, data", [("mnist-mlp", "mnist"), ("transformer-encoder-reverse", "random-tokens")])
def test_verify_rescores_the_catalog_model(name, data):
    result = run_zoo("verify", name)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"accuracy on {data} test: measured 0\.9\d{{3}}, catalog 0\.9\d{{3}}  ok", result.stdout)


@pytest.fixture
def private_catalog(tmp_path, monkeypatch):
    """A copy of the catalog (registry.yaml and weights) in tmp_path, selected with ZOO_CATALOG."""
    folder = tmp_path / "catalog"
    shutil.copytree(catalog.PACKAGE / "pretrained", folder / "pretrained")
    shutil.copytree(catalog.PACKAGE / "recipes", folder / "recipes")
    registry = yaml.safe_load((catalog.PACKAGE / "registry.yaml").read_text())
    path = folder / "registry.yaml"

    def save(data):
        path.write_text(yaml.safe_dump(data))
        catalog._read.cache_clear()
        return path

    save(registry)
    monkeypatch.setenv("ZOO_CATALOG", str(path))
    yield folder, registry, save
    catalog._read.cache_clear()


def test_verify_exits_1_when_the_figure_is_off(private_catalog):
    folder, registry, save = private_catalog
    registry["models"][0]["metrics"][0]["value"] = 0.5
    path = save(registry)
    result = run_zoo("verify", "mnist-mlp", env={"ZOO_CATALOG": str(path)})
    assert result.returncode == 1
    assert "catalog 0.5000  MISMATCH" in result.stdout and "does not score its declared figure" in result.stderr


def test_a_bit_flipped_catalog_file_fails_its_sha256(private_catalog):
    folder, _, _ = private_catalog
    weights = folder / "pretrained" / "mnist-mlp.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1000] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match=r"mnist-mlp.safetensors: sha256 [0-9a-f]{64} does not match the expected"):
        zoo.load("mnist-mlp")


def test_a_bit_flipped_file_loaded_by_path_fails_its_content_digest(tmp_path):
    copy = tmp_path / "m.safetensors"
    data = bytearray(SHIPPED.read_bytes())
    data[-1000] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="tensor data does not match the sha256 in its metadata"):
        zoo.load(copy)


def test_a_file_without_a_content_digest_is_refused_with_what_to_do(tmp_path):
    meta = raw_meta(SHIPPED)
    del meta["tensors_sha256"]
    old = tmp_path / "old.safetensors"
    rewrite_meta(SHIPPED, old, meta)
    with pytest.raises(zoo.ZooError, match=r"old.safetensors: its metadata has no content digest .*; rebuild it"):
        zoo.load(old)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_and_truncated_files_are_clear_errors(tmp_path, damage):
    copy = tmp_path / "m.safetensors"
    data = SHIPPED.read_bytes()
    copy.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00" * 64 + data[64:], "empty": b""}[damage])
    with pytest.raises(zoo.ZooError, match="not a readable safetensors file .* truncated or corrupt"):
        zoo.load(copy)


def _rewrite(tmp_path: Path, change) -> Path:
    tensors, meta = load_file(str(SHIPPED)), raw_meta(SHIPPED)
    tensors, meta = change(tensors, meta)
    meta.update(fingerprint=fingerprint(tensors), tensors_sha256=content_digest(tensors))
    path = tmp_path / "changed.safetensors"
    write(path, tensors, json.dumps(meta))
    return path


def test_wrong_shapes_name_the_key_and_both_shapes(tmp_path):
    path = _rewrite(tmp_path, lambda t, m: (t, {**m, "model": {"component": "mnist-mlp", "hidden": [300, 256]}}))
    with pytest.raises(zoo.ZooError) as info:
        zoo.load(path)
    message = str(info.value)
    assert "linear_relu_stack.0.weight: the model has shape (300, 784), the file (312, 784)" in message
    assert "linear_relu_stack.2.weight: the model has shape (256, 300), the file (256, 312)" in message


def test_missing_and_unexpected_keys_are_named(tmp_path):
    def change(tensors, meta):
        tensors = dict(tensors)
        tensors["extra.weight"] = tensors.pop("linear_relu_stack.4.bias")
        return tensors, meta

    with pytest.raises(zoo.ZooError) as info:
        zoo.load(_rewrite(tmp_path, change))
    assert "missing key linear_relu_stack.4.bias (10,)" in str(info.value)
    assert "unexpected key extra.weight (10,)" in str(info.value)


def test_a_file_whose_tensors_contradict_its_fingerprint_is_refused(tmp_path):
    tensors, meta = load_file(str(SHIPPED)), raw_meta(SHIPPED)
    tensors["linear_relu_stack.4.bias"] = torch.zeros(11)
    write(tmp_path / "x.safetensors", tensors, json.dumps(meta))
    with pytest.raises(zoo.ZooError, match="do not match the fingerprint"):
        zoo.load(tmp_path / "x.safetensors")


def test_plain_safetensors_without_zoo_metadata_is_explained(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(zoo.ZooError, match="not a zoo weights file"):
        zoo.load(tmp_path / "plain.safetensors")


def test_unknown_names_suggest_and_list_the_known_ones():
    with pytest.raises(zoo.ZooError, match=r"no model 'mnist-mpl' in the catalog\. Did you mean 'mnist-mlp'\? "
                                           r"Published: fashion-mnist-mlp, mnist-mlp"):
        zoo.load("mnist-mpl")
    with pytest.raises(zoo.ZooError, match="no local build of 'mnist-mlp': run 'zoo build mnist-mlp' first"):
        zoo.load("mnist-mlp@latest")
    with pytest.raises(zoo.ZooError, match=r"model name 'mnist_mlp' is not a valid name: .* Did you mean 'mnist-mlp'\?"):
        zoo.load("mnist_mlp")


@pytest.mark.parametrize("name", ["..", "Mnist", "a b", "mnist-mlp\n", "x" * 10_000])
def test_names_never_become_paths(name):
    with pytest.raises(zoo.ZooError, match="is not a valid name|characters long"):
        zoo.load(f"{name}@latest")
    with pytest.raises(zoo.ZooError, match="is not a valid name|characters long"):
        store.entry(name)


def test_catalog_weights_may_not_point_outside_the_catalog(private_catalog):
    _, registry, save = private_catalog
    registry["models"][0]["weights"]["file"] = "../../outside.safetensors"
    save(registry)
    with pytest.raises(zoo.ZooError, match="points outside"):
        catalog.entries(zoo.default_registry())


def test_a_catalog_sha256_that_yaml_read_as_a_number_is_refused(private_catalog):
    _, registry, save = private_catalog
    registry["models"][0]["weights"]["sha256"] = 0  # an unquoted 000...0 in YAML
    save(registry)
    with pytest.raises(zoo.ZooError, match=r"models\[0\]: sha256 0 is not 64 hex digits \(quote it in YAML\)"):
        catalog.entries(zoo.default_registry())


def test_url_weights_download_checksummed_from_a_local_server(private_catalog, tmp_path):
    folder, registry, save = private_catalog
    server = StaticServer(folder / "pretrained")
    try:
        entry = registry["models"][0]
        entry["weights"] = {"url": server.url + "mnist-mlp.safetensors", "sha256": entry["weights"]["sha256"]}
        save(registry)
        model = zoo.load("mnist-mlp")
        downloaded = model.zoo_source.path
        assert downloaded.parent == tmp_path / "zoo-home" / "downloads"
        assert downloaded.read_bytes() == SHIPPED.read_bytes()
        entry["weights"]["sha256"] = "0" * 64
        save(registry)
        with pytest.raises(zoo.ZooError, match="does not match the catalog's 0000"):
            zoo.load("mnist-mlp")
        assert not list((tmp_path / "zoo-home" / "downloads").glob("mnist-mlp-0000*"))  # no .partial either
    finally:
        server.close()


def test_concurrent_builds_of_one_recipe_take_their_own_folders_and_versions(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("extends: " + str(catalog.PACKAGE / "recipes" / "mnist-mlp.yaml") + "\nname: race\ntrain: {epochs: 2}\n")
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "zoo"), "build", str(recipe), "--no-progress",
                               "--set", f"train.seed={i}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for i in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["race", "race-2"]
    seeds = sorted(read_meta(tmp_path / "runs" / f / "weights.safetensors").seed for f in folders)
    assert seeds == [0, 1]  # each run wrote its own folder, whole
    builds = store.builds("race")
    assert [b.version for b in builds] == [1, 2] and len({b.sha256 for b in builds}) == 2
    assert {zoo.load(f"race@{b.version}").zoo_meta.seed for b in builds} == {0, 1}
    assert [p.name for p in (tmp_path / "zoo-home" / "models" / "race").rglob(".*")] == [".lock"]


def test_no_pickle_anywhere_in_the_code():
    sources = [*(ROOT / "zoo").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
    for source in sources:
        text = source.read_text()
        assert "torch.load(" not in text and "import pickle" not in text, source
        assert "allow_pickle=True" not in text, source


# Loading at scale: no random init, mapped tensors, verification remembered, dtype and device.

ENCODER = {"component": "transformer-encoder", "vocab_size": 50, "max_len": 12, "dim": 16, "heads": 2, "layers": 2}


def _saved_encoder(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    from zoo.weights.format import save
    from zoo.weights.metadata import WeightsMeta

    torch.manual_seed(3)
    model = zoo.create("transformer-encoder", **{k: v for k, v in ENCODER.items() if k != "component"}).eval()
    path = tmp_path / "encoder.safetensors"
    save(model, path, WeightsMeta(name="encoder", model=ENCODER, recipe={}, recipe_version=1, metrics={}))
    return path, model


def test_loading_runs_no_random_init_and_gives_the_saved_model(tmp_path):
    path, original = _saved_encoder(tmp_path)
    tokens = torch.tensor([[3, 9, 4, 0, 0], [7, 1, 2, 8, 5]])
    for source in (path, SHIPPED):
        rng = torch.get_rng_state()
        model = zoo.load(source)
        assert torch.equal(torch.get_rng_state(), rng)  # no parameter was randomly initialised
        assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    model = zoo.load(path)
    # pe is computed, not stored: the model is built on the CPU for it, uninitialised, then assigned
    assert "position.pe" not in load_file(str(path))
    assert torch.equal(model.position.pe, original.position.pe)
    assert torch.equal(model(tokens), original(tokens))
    assert all(p.requires_grad for p in model.parameters())


def test_load_converts_to_the_requested_dtype_and_device(tmp_path):
    path, original = _saved_encoder(tmp_path)
    tokens = torch.tensor([[3, 9, 4, 0, 0]])
    model = zoo.load(path, dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.position.pe.dtype == torch.bfloat16 and model.position.pe.device.type == "cpu"
    assert torch.allclose(model(tokens).float(), original(tokens), atol=0.1)
    mlp = zoo.load("mnist-mlp", dtype=torch.float64)
    assert {p.dtype for p in mlp.parameters()} == {torch.float64}
    with pytest.raises(zoo.ZooError, match="dtype must be a floating-point torch.dtype .* got torch.int64"):
        zoo.load(path, dtype=torch.int64)
    with pytest.raises(zoo.ZooError, match="device 'gpu0' is not a torch device"):
        zoo.load(path, device="gpu0")


def test_verification_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import zoo.weights.format as weights

    path, _ = _saved_encoder(tmp_path)
    computed = []
    digest = weights.file_content_digest
    monkeypatch.setattr(weights, "file_content_digest", lambda p: computed.append(p) or digest(p))
    zoo.load(path)
    zoo.load(path)
    assert computed == [path]  # the second load trusted the remembered digest
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x10  # same size, new mtime
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="tensor data does not match the sha256 in its metadata"):
        zoo.load(path)
    with pytest.raises(zoo.ZooError, match="tensor data does not match"):
        zoo.load(path)  # a remembered failure is still a failure
    assert computed == [path, path]


def test_a_store_load_checks_the_file_sha256_and_the_content_digest_once(tmp_path, monkeypatch):
    import zoo.weights.format as weights

    path, _ = _saved_encoder(tmp_path)
    recorded = store.record("encoder", path).path
    streamed = []
    sha = weights.stream_sha256
    monkeypatch.setattr(weights, "stream_sha256", lambda p: streamed.append(p) or sha(p))
    for _ in range(2):
        assert zoo.load("encoder@latest").zoo_source.source == "local"
    assert streamed == []  # record() already hashed the file; the cache says so
    data = bytearray(recorded.read_bytes())
    data[-7] ^= 0x10
    recorded.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="does not match the expected"):
        zoo.load("encoder@latest")
    assert streamed == [recorded]


def test_a_plugin_catalogs_url_entry_downloads_checksummed_into_the_cache(tmp_path, monkeypatch):
    from conftest import fixture_plugin, make_registry

    server = StaticServer(SHIPPED.parent)
    sha256 = published("mnist-mlp").sha256
    path = tmp_path / "plugin-catalog.yaml"

    def write(digest):
        path.write_text(f"""models:
  - name: remote-mlp
    recipe: none.yaml
    weights: {{url: "{server.url}mnist-mlp.safetensors", sha256: "{digest}"}}
    metrics: [{{dataset: mnist, split: test, metric: accuracy, value: 0.9607}}]
""")
        catalog._read.cache_clear()

    try:
        write(sha256)
        monkeypatch.setenv("FX_CATALOG", str(path))
        registry = make_registry(fixture_plugin("fx-catalog", "fx_catalog"))
        assert catalog.get("remote-mlp", registry).plugin == "fx-catalog"
        assert catalog.get("mnist-mlp", registry).plugin == "zoo"
        model = zoo.load("remote-mlp", registry=registry)
        downloaded = model.zoo_source.path
        assert downloaded.parent == tmp_path / "zoo-home" / "downloads"
        assert downloaded.read_bytes() == SHIPPED.read_bytes()
        write("0" * 64)
        with pytest.raises(zoo.ZooError, match="does not match the catalog's 0000"):
            zoo.load("remote-mlp", registry=registry)
    finally:
        server.close()
        catalog._read.cache_clear()
