"""The trust boundary: weights files, recipes, checkpoints, catalogs and inputs from strangers never
write outside their folder, never reach the network, never corrupt the store, and never crash the
command line -- each class of attack with several variants, through the CLI and the Python API."""

import contextlib
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (BIN, REGRESSION, SMALL_MLP, fixture_site, make_run, raw_meta, rewrite_meta,
                      run_zoo, write_recipe)

import zoo
from zoo.recipe import catalog
from zoo.weights import store

SHIPPED = catalog.PACKAGE / "pretrained" / "mnist-mlp.safetensors"
ENCODER = catalog.PACKAGE / "pretrained" / "transformer-encoder-reverse.safetensors"


def snapshot(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (symlinks not followed) and its modification time."""
    return {str(p): p.lstat().st_mtime_ns for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()}


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error of a refused command: exit 2, no traceback, the last stderr line (the one before it,
    if any, says which weights were loaded)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert all(line.startswith("zoo: weights ") for line in lines[:-1]) and lines[-1].startswith("zoo: error: ")
    return lines[-1]


# --- writes outside the folder they belong to ---

LOGGER = SMALL_MLP.replace("  log_every: 10", "  log_every: 10\n  callbacks: [CALLBACKS]")


@pytest.mark.parametrize("callbacks", [
    "{component: csv-logger, path: /tmp/zoo-escape.csv}",
    "{component: csv-logger, path: ../escape.csv}",
    "{component: csv-logger, path: 'logs/../../escape.csv'}",
    "{component: tensorboard, folder: ../../tb}",
    "{component: csv-logger, path: 'C:/escape.csv'}",
])
def test_a_recipe_path_outside_the_run_folder_is_refused_at_its_line(tmp_path, callbacks):
    recipe = write_recipe(tmp_path, LOGGER, epochs=1, batch=1000, callbacks=callbacks)
    line = next(n for n, text in enumerate(recipe.read_text().splitlines(), 1) if "callbacks:" in text)
    before = snapshot(tmp_path)
    error = one_line_error(run_zoo("build", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"))
    assert re.search(rf"recipe.yaml:{line}:\d+: train.callbacks\[0\]\.(path|folder): .* is not a relative path "
                     r"inside the run folder", error), error
    assert snapshot(tmp_path) == before and not Path("/tmp/zoo-escape.csv").exists()


def test_a_recipe_writes_only_inside_its_run_folder_and_the_store(tmp_path):
    """A sweep whose values hold paths, and loggers with relative paths: every file written is in the
    run folder or zoo's own store."""
    text = LOGGER.replace("CALLBACKS", "{component: csv-logger, path: logs/metrics.csv}").replace(
        "metrics: [accuracy]", "metrics: [accuracy]\nsweep:\n  description: ['../../escape', '/tmp/escape', x/../../y]")
    recipe = write_recipe(tmp_path, text, epochs=1, batch=1000)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    before, before_outside = snapshot(tmp_path), snapshot(outside)
    result = run_zoo("build", str(recipe), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    changed = set(snapshot(tmp_path)) - set(before)
    home = str(tmp_path / "zoo-home")
    runs = str(tmp_path / "runs" / "small-mlp")
    assert changed and all(p.startswith((runs + "/", home + "/")) for p in changed), sorted(changed)
    assert snapshot(outside) == before_outside and not Path("/tmp/escape").exists()
    variants = sorted(p.name for p in (tmp_path / "runs" / "small-mlp").iterdir() if p.is_dir())
    assert variants == ["description-escape", "description-tmp-escape", "description-x-y"]
    assert all((tmp_path / "runs" / "small-mlp" / v / "logs" / "metrics.csv").is_file() for v in variants)


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "mnist-mlp\n", "a" * 10_000, 5, ["mnist-mlp"]])
def test_a_name_read_from_a_weights_file_is_checked_like_a_recipe_name(tmp_path, name):
    meta = raw_meta(SHIPPED)
    meta["name"] = name
    odd = tmp_path / "odd.safetensors"
    rewrite_meta(SHIPPED, odd, meta)
    before = snapshot(tmp_path)
    for command in (["export", str(odd), "--format", "torchscript"], ["card", str(odd)], ["predict", str(odd), "x.npy"]):
        error = one_line_error(run_zoo(*command, cwd=tmp_path))
        assert re.search(rf"{re.escape(str(odd))}: metadata(\.name: expects a string|: name .* is not a model name)", error)
    assert set(snapshot(tmp_path)) - set(before) <= {str(tmp_path / "zoo-home" / "digests.json")}
    with pytest.raises(zoo.ZooError, match=r"odd.safetensors: metadata"):
        zoo.load(odd)


def test_looking_for_earlier_runs_follows_no_symlink_and_stops(tmp_path):
    from zoo.training.folders import holds_run

    out = tmp_path / "out"
    (out / "a" / "b").mkdir(parents=True)
    (out / "a" / "loop").symlink_to(out, target_is_directory=True)
    (out / "a" / "b" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "weights.safetensors").write_bytes(b"")  # only reachable through a symlink
    assert not holds_run(out)
    (out / "a" / "metrics.jsonl").write_text("{}\n")  # a sweep variant's run, one level down
    assert holds_run(out)
    result = run_zoo("build", str(write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=1000)), "--out", str(out),
                     "--no-progress")
    assert "holds an earlier run" in one_line_error(result)
    file = tmp_path / "file"
    file.write_text("x")
    assert "is a file, not a folder" in one_line_error(run_zoo("build", "mnist-mlp", "--out", str(file)))


# --- files that would reach the network or the store ---

def hostile(tmp_path: Path, source: Path = SHIPPED, **changes) -> Path:
    """A copy of ``source`` whose metadata has ``changes`` (None drops a key)."""
    meta = raw_meta(source)
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path = tmp_path / f"hostile-{len(list(tmp_path.glob('hostile-*')))}.safetensors"
    rewrite_meta(source, path, meta)
    return path


def test_using_a_file_whose_recipe_names_urls_opens_no_socket(tmp_path, monkeypatch):
    meta = raw_meta(SHIPPED)
    meta["recipe"]["data"]["dataset"] = {"component": "mnist", "download": True, "mirror": "http://192.0.2.1/"}
    meta["evaluation"]["dataset"] = meta["recipe"]["data"]["dataset"]
    path = tmp_path / "urls.safetensors"
    rewrite_meta(SHIPPED, path, meta)
    opened = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: opened.append(a))
    np.save(tmp_path / "digit.npy", np.zeros((28, 28), dtype=np.uint8))
    assert run_zoo("predict", str(path), str(tmp_path / "digit.npy")).returncode == 0
    assert run_zoo("card", str(path), "--out", str(tmp_path / "card.md")).returncode == 0
    assert run_zoo("export", str(path), "--format", "torchscript", cwd=tmp_path).returncode == 0
    inspected = run_zoo("inspect", str(path), "--module", "linear_relu_stack.1", "--no-plot")
    assert "tried to reach the network, which zoo does not do for a file it did not make" in one_line_error(inspected)
    assert opened == []


def test_a_checkpoint_with_a_flipped_bit_or_that_does_not_fit_is_refused_by_name(tmp_path):
    from zoo.training.checkpoint import FORMAT, save

    (tmp_path / "run").mkdir()
    run = make_run(REGRESSION, tmp_path / "run")
    save(run)  # a checkpoint before the first epoch: a whole one
    path = tmp_path / "run" / "checkpoint"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps(REGRESSION))
    record = json.loads((path / "state.json").read_text())
    assert record["format"] == FORMAT
    [shard] = (path / record["shards"]).iterdir()
    good = shard.read_bytes()

    def resume() -> str:
        return one_line_error(run_zoo("build", str(recipe), "--out", str(tmp_path / "run"), "--resume", "--no-progress"))

    flipped = bytearray(good)
    flipped[-3] ^= 0x04
    shard.write_bytes(bytes(flipped))
    assert f"checkpoint {path}: {record['shards']}/{shard.name} does not match the digest it was written with" in resume()
    shard.write_bytes(good)
    (path / "state.json").write_text(json.dumps({**record, "files": {"../../elsewhere.safetensors": "0" * 64}}))
    assert f"checkpoint {path}: state.json does not say which files hold its tensors" in resume()
    position = dict(record["skeleton"]["$dict"])["position"]
    position["$dict"].append(["wormhole", 1])  # a key this zoo does not know
    (path / "state.json").write_text(json.dumps(record))
    assert f"checkpoint {path} does not fit this run (TypeError" in resume()
    wider = {"model": {"component": "simple-net", "in_features": 4},
             "data": {**REGRESSION["data"], "dataset": {**REGRESSION["data"]["dataset"], "in_features": 4}}}
    other = make_run({**REGRESSION, **wider}, tmp_path / "other")
    save(other)  # another model's checkpoint, given this recipe's fingerprint: a tensor reshaped
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "other" / "checkpoint", path)
    wrong = json.loads((path / "state.json").read_text())
    (path / "state.json").write_text(json.dumps({**wrong, "fingerprint": record["fingerprint"]}))
    assert (f"checkpoint {path}: its tensors do not fit this run (ValueError: Size mismatch between saved "
            "torch.Size([5, 4]) and current: torch.Size([5, 3]) for state.model.linear.weight)") in resume()

def test_a_plugin_catalog_shipping_a_name_of_zoos_cannot_take_the_bare_name(tmp_path):
    plugin_catalog = tmp_path / "catalog.yaml"
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mnist-mlp.yaml").write_text("name: mnist-mlp\nmodel: simple-net\n")
    sha256 = catalog.get("mnist-mlp", zoo.default_registry()).sha256
    plugin_catalog.write_text(f"""models:
  - name: mnist-mlp
    recipe: recipes/mnist-mlp.yaml
    weights: {{url: "http://127.0.0.1:9/evil.safetensors", sha256: "{sha256}"}}
recipes:
  - {{name: mnist-mlp, path: recipes/mnist-mlp.yaml}}
""")
    env = {**fixture_site(tmp_path / "site", "shadow", "fx_catalog"), "FX_CATALOG": str(plugin_catalog)}
    np.save(tmp_path / "digit.npy", np.zeros((28, 28), dtype=np.uint8))
    predicted = run_zoo("predict", "mnist-mlp", str(tmp_path / "digit.npy"), env=env)
    assert predicted.returncode == 0 and "zoo: weights mnist-mlp (published in the catalog" in predicted.stderr
    assert run_zoo("check", "mnist-mlp", env=env).returncode == 0  # zoo's recipe, not the plugin's
    listed = run_zoo("list", "--pretrained", env=env).stdout
    assert re.search(r"^mnist-mlp +zoo ", listed, re.M) and re.search(r"^shadow:mnist-mlp +shadow ", listed, re.M)
    theirs = run_zoo("predict", "shadow:mnist-mlp", str(tmp_path / "digit.npy"), env=env)
    assert "could not download" in one_line_error(theirs)  # reached only when named, from its URL


@pytest.mark.parametrize("top, models", [("[]", None), ("just text", None), (None, "{a: 1}"), (None, "[5]"),
                                         (None, "[{name: x}]"), (None, "[{name: '../x', recipe: r, weights: {}}]")])
def test_a_malformed_catalog_is_one_line_naming_it(tmp_path, top, models):
    plugin_catalog = tmp_path / "catalog.yaml"
    plugin_catalog.write_text(top if top is not None else f"models: {models}\n")
    env = {**fixture_site(tmp_path / "site", "broken", "fx_catalog"), "FX_CATALOG": str(plugin_catalog)}
    assert str(plugin_catalog) in one_line_error(run_zoo("list", "--pretrained", env=env))


def _serve_raw(answer: bytes) -> tuple[str, threading.Thread]:
    """A server on 127.0.0.1 that answers one request with ``answer`` and closes (or gives up after 30 s)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)

    def serve():
        with server, contextlib.suppress(TimeoutError):
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/m.safetensors", thread


@pytest.mark.parametrize("answer, reason", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10, "truncated"),
    (b"garbage, not HTTP\r\n\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP 404"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "more than the limit"),
])
def test_a_catalog_download_that_goes_wrong_leaves_nothing_half_written(tmp_path, monkeypatch, answer, reason):
    from conftest import fixture_plugin, make_registry

    url, thread = _serve_raw(answer)
    plugin_catalog = tmp_path / "catalog.yaml"
    plugin_catalog.write_text(f'models:\n  - {{name: remote, recipe: r.yaml, weights: {{url: "{url}", sha256: "{"0" * 64}"}}}}\n')
    monkeypatch.setenv("FX_CATALOG", str(plugin_catalog))
    monkeypatch.setenv("ZOO_MAX_DOWNLOAD_BYTES", "1000000")
    registry = make_registry(fixture_plugin("remote", "fx_catalog"))
    with pytest.raises(zoo.ZooError, match=f"could not download remote-0000000000000000.safetensors: {url}: .*{reason}"):
        zoo.load("remote", registry=registry)
    thread.join(10)
    downloads = Path(os.environ["ZOO_HOME"]) / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []


def test_a_catalog_url_that_is_not_http_is_refused_when_read(tmp_path, monkeypatch):
    from conftest import fixture_plugin, make_registry

    for url in ("file:///etc/passwd", "notaurl", "ftp://example.org/x"):
        plugin_catalog = tmp_path / "catalog.yaml"
        plugin_catalog.write_text(f'models:\n  - {{name: remote, recipe: r.yaml, weights: {{url: "{url}", sha256: "{"0" * 64}"}}}}\n')
        catalog._read.cache_clear()
        monkeypatch.setenv("FX_CATALOG", str(plugin_catalog))
        with pytest.raises(zoo.ZooError, match=rf"models\[0\]: weights url '{re.escape(url)}' is not an http\(s\) URL"):
            zoo.load("remote", registry=make_registry(fixture_plugin("remote", "fx_catalog")))
    catalog._read.cache_clear()


# --- the store: one lock per name, every build a version ---

def test_pruning_waits_for_a_build_being_recorded(tmp_path, monkeypatch):
    first = tmp_path / "a" / "weights.safetensors"
    second = tmp_path / "b" / "weights.safetensors"
    for path, seed in ((first, 0), (second, 1)):
        path.parent.mkdir()
        torch.manual_seed(seed)
        from zoo.weights.format import save
        from zoo.weights.metadata import WeightsMeta

        save(zoo.create("linear", in_features=2, out_features=2), path,
             WeightsMeta(name="race", model={"component": "linear", "in_features": 2, "out_features": 2}, recipe={},
                         recipe_version=1, metrics={}))
    store.record("race", first)
    inside, release = threading.Event(), threading.Event()
    real = store.remember_digests

    def paused(*args, **kwargs):  # inside the critical section, after the file is copied
        real(*args, **kwargs)
        inside.set()
        assert release.wait(30)

    monkeypatch.setattr(store, "remember_digests", paused)
    recording = threading.Thread(target=store.record, args=("race", second))
    recording.start()
    assert inside.wait(30)
    pruned = []
    pruning = threading.Thread(target=lambda: pruned.extend(store.prune("race", keep=1)))
    pruning.start()
    pruning.join(0.5)
    assert pruning.is_alive()  # it waits for the lock
    release.set()
    recording.join(30)
    pruning.join(30)
    [kept] = store.builds("race")
    assert kept.version == 2 and kept.path.is_file() and [b.version for b in pruned] == [1]
    assert zoo.load("race@latest").zoo_source.path == kept.path


def test_identical_builds_recorded_together_are_two_versions_of_one_file(tmp_path, monkeypatch):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(SHIPPED.read_bytes())
    builds = []
    threads = [threading.Thread(target=lambda: builds.append(store.record("twins", path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(b.version for b in builds) == [1, 2] and len({b.sha256 for b in builds}) == 1
    assert len(list((tmp_path / "zoo-home" / "models" / "twins").glob("*.safetensors"))) == 1  # stored once
    prefix = builds[0].sha256[:8]
    assert store.get("twins", prefix).version == 2  # a prefix means one file: the latest build that has it
    assert zoo.load(f"twins@{prefix}").zoo_source.label == "twins@2"


# --- hostile but valid metadata and inputs ---

def _png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with a tiny (invalid) body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _npy(shape: tuple, dtype: str, data: bytes = b"") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


@pytest.mark.parametrize("name, data, message", [
    ("bomb.png", _png(60_000, 60_000), r"the image is 60000 x 60000 pixels, more than 40,000,000 \(ZOO_MAX_IMAGE_PIXELS"),
    ("huge.npy", _npy((10**12,), "<f4"), r"claims shape \(1000000000000,\) \(1,000,000,000,000 values\); one input has 784"),
    ("text.npy", _npy((28, 28), "<U10"), r"holds <U10 values; a model input is numbers"),
    ("record.npy", _npy((28,), [("a", "<f4"), ("b", "<i4")]), r"a model input is numbers"),
    ("pickled.npy", _npy((28, 28), "|O"), r"holds object values; a model input is numbers"),
    ("short.npy", _npy((28, 28), "|u1", b"\0" * 10), r"its data does not match its shape \(28, 28\)"),
])
def test_a_hostile_input_file_is_bounded_before_it_is_decoded(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    assert re.search(message, one_line_error(run_zoo("predict", "mnist-mlp", name, cwd=tmp_path)))


@pytest.mark.parametrize("args, message", [
    (["build", "mnist-mlp", "--set", "train.seed=18446744073709551616"],
     r"--set train.seed=18446744073709551616: train.seed: expects an integer from 0 to 2\*\*63 - 1"),
    (["predict", "mnist-mlp", "x.npy", "--top-k", "-1"], r"argument --top-k: expected a positive whole number, got '-1'"),
    (["builds", "x" * 10_000], r"model name 'xxxx.*' is 10,000 characters long; names have at most 100"),
    (["predict", "y" * 10_000, "x.npy"], r"is 10,000 characters long"),
    (["export", "mnist-mlp", "--format", "torchscript", "--out", "."], r"--out \. is a folder; give the file to write"),
    (["card", "mnist-mlp", "--no-verify", "--out", "."], r"--out \. is a folder; give the file to write"),
    (["check", "mnist-mlp", "--set", "metrics=[f1]"], r"unknown metric 'f1'\. Did you mean 'macro-f1' or 'micro-f1'\?"),
    (["check", "mnist-mlp", "--set", "sweep={'train..lr': [1]}"], r"sweep.train..lr: 'train..lr' is not a key path"),
])
def test_hostile_arguments_are_one_line_errors(tmp_path, args, message):
    assert re.search(message, one_line_error(run_zoo(*args, cwd=tmp_path)))


def test_a_full_disk_on_stdout_is_one_line_and_exit_1():
    with open("/dev/full", "w") as full:
        result = subprocess.run([str(BIN / "zoo"), "list"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 1 and result.stderr == "zoo list: error: No space left on device\n", result.stderr


def test_an_unexpected_error_is_one_line_naming_the_command_unless_debug(monkeypatch):
    from zoo.cli import components

    monkeypatch.setattr(components, "plugins", lambda args: {}["boom"])
    result = run_zoo("plugins")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert re.match(r"zoo plugins: internal error: KeyError: 'boom' \(at .*test_trust.py:\d+\)\. This is a bug", result.stderr)
    with pytest.raises(KeyError, match="boom"):  # --debug: the exception itself, for its traceback
        run_zoo("plugins", "--debug")


def _mutations(meta: dict, rng: random.Random) -> list[tuple[str, dict]]:
    """Variants of ``meta``: each top-level key dropped, given another type, or a huge value."""
    values = [5, -1, 10**30, "x" * 20_000, [1, 2], {"a": 1}, None, True, 1.5, [[[[]]]]]
    found = []
    for key in sorted(meta):
        dropped = dict(meta)
        del dropped[key]
        found.append((f"no {key}", dropped))
        for value in rng.sample(values, 1):
            found.append((f"{key}={str(value)[:20]}", {**meta, key: value}))
    for path, value in ((("input", "shape"), [10**9, 10**9]), (("input", "dtype"), "complex128"),
                        (("input", "kind"), "audio"), (("classes",), list(range(5))), (("input", "shape"), [5])):
        changed = json.loads(json.dumps(meta))
        node = changed
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        found.append(("/".join(path) + f"={str(value)[:20]}", changed))
    return found


def test_every_command_on_fuzzed_metadata_succeeds_or_says_one_line(tmp_path):
    meta = raw_meta(SHIPPED)
    meta["input"] = {"kind": "image", "shape": [1, 28, 28], "dtype": "float32", "mode": "L", "range": [0.0, 1.0]}
    rng = random.Random(23)
    np.save(tmp_path / "digit.npy", np.zeros((28, 28), dtype=np.uint8))
    work = tmp_path / "work"
    work.mkdir()
    (work / "digit.npy").write_bytes((tmp_path / "digit.npy").read_bytes())
    outcomes = {}
    for label, variant in _mutations(meta, rng):
        path = tmp_path / "fuzzed.safetensors"
        rewrite_meta(SHIPPED, path, variant)
        before = snapshot(tmp_path)
        for command in (["predict", str(path), "digit.npy"], ["card", str(path), "--no-verify"],
                        ["inspect", str(path), "--module", "linear_relu_stack.1", "--input-shape", "2,1,28,28",
                         "--no-plot"], ["export", str(path), "--format", "torchscript", "--out", "m.pt"]):
            result = run_zoo(*command, cwd=work)
            if result.returncode != 0:
                one_line_error(result)
            outcomes[label, command[0]] = result.returncode
        written = set(snapshot(tmp_path)) - set(before)
        allowed = {str(work / "m.pt"), str(work / "m.pt.json"), str(tmp_path / "zoo-home" / "digests.json")}
        assert written <= allowed, (label, written)
    assert 0 in outcomes.values() and 2 in outcomes.values()
    assert outcomes["no tensors_sha256", "predict"] == 2 and outcomes["no seed", "predict"] == 0


def test_a_tensor_whose_dtype_contradicts_the_model_is_named_with_its_file(tmp_path):
    from safetensors.torch import load_file

    from zoo.weights.format import content_digest, fingerprint, write

    tensors, meta = load_file(str(SHIPPED)), raw_meta(SHIPPED)
    tensors["linear_relu_stack.0.bias"] = tensors["linear_relu_stack.0.bias"].to(torch.int32)
    meta.update(fingerprint=fingerprint(tensors), tensors_sha256=content_digest(tensors))
    odd = tmp_path / "odd.safetensors"
    write(odd, tensors, json.dumps(meta))
    error = one_line_error(run_zoo("inspect", str(odd), "--module", "linear_relu_stack.1", "--no-plot"))
    assert f"{odd}: weights do not fit the model: linear_relu_stack.0.bias: the model has dtype torch.float32, " \
           "the file torch.int32" in error
