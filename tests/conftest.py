import contextlib
import http.server
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REAL_HOME = Path(os.environ.get("ZOO_HOME") or Path.home() / ".cache" / "zoo")

# Before any fixture runs (module-scoped ones build before the per-test ZOO_HOME below): the whole
# session uses a throw-away zoo home, never the user's.
os.environ["ZOO_HOME"] = tempfile.mkdtemp(prefix="zoo-tests-home-")
# No test reaches the real Hugging Face Hub (a recipe naming hf-hub:timm/... would try, with retries):
# the tests that talk to a Hub use the fake one (the hub fixture), which turns this off for themselves.
os.environ["HF_HUB_OFFLINE"] = "1"
# The bridges' lists of timm's and torchvision's architectures (made once per library version, ~10 s):
# one folder for every test's zoo home, every worker and every run of the suite.
os.environ.setdefault("ZOO_CACHE", str(Path(tempfile.gettempdir()) / f"zoo-tests-cache-{os.getuid()}"))


def builtin_plugins() -> list[EntryPoint]:
    return list(entry_points(group="zoo.plugins"))


def fixture_plugin(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=module, group="zoo.plugins")


def make_registry(*extra: EntryPoint, **options) -> zoo.Registry:
    """A registry of the built-in plugins plus ``extra`` entry points."""
    return zoo.Registry([*builtin_plugins(), *extra], **options)


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal (as a progress bar wants)."""

    def isatty(self) -> bool:
        return True


def run_zoo(*args: str, env: dict | None = None, cwd: Path | None = None, process: bool = False,
            terminal: bool = False) -> subprocess.CompletedProcess:
    """``zoo ARGS``: what it printed and its exit status. It runs in this process (``zoo.cli.main``,
    no interpreter start-up) unless ``process`` asks for the installed console script, or the
    environment needs a new interpreter (a sitecustomize); PYTHONPATH entries (pip-installed test
    plugins) go on sys.path for the call, and stay in PYTHONPATH for the processes it starts. A build
    with --nproc runs as a process: torchrun's output reaches the file descriptors, not sys.stdout.
    ``terminal``: stderr says it is a terminal."""
    env = dict(env or {})
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if process or "--nproc" in args or any((Path(p) / "sitecustomize.py").exists() for p in paths):
        return subprocess.run([str(BIN / "zoo"), *args], capture_output=True, text=True,
                              env={**os.environ, **env}, cwd=cwd, timeout=600)
    from zoo.cli import main

    if paths:  # on sys.path for this process, in the environment for the processes it starts
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    out, err = io.StringIO(), Terminal() if terminal else io.StringIO()
    saved_env = {k: os.environ.get(k) for k in env}
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    os.environ.update(env)
    sys.path[:0] = paths
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, or a usage error
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess(["zoo", *args], code, out.getvalue(), err.getvalue())


# A small regression recipe for runs made in-process (make_run): simple-net on synthetic data.
REGRESSION = {
    "name": "regression",
    "model": "simple-net",
    "data": {"dataset": {"component": "synthetic-regression", "n": 64}, "batch_size": 16, "eval_split": None},
    "train": {"epochs": 3, "optimizer": {"component": "sgd", "lr": 0.01}, "loss": "mse", "log_every": 1},
}


def make_run(recipe: dict, folder: Path, *, listeners=(), disable=("progress",)):
    """A run of ``recipe`` (plain data) made in this process, not yet trained; ``listeners`` are objects
    whose ``zoo_`` methods hear its events (as callbacks do), instead of the plugins'."""
    from zoo.recipe.parse import Recipe
    from zoo.recipe.schema import validate
    from zoo.registry.events import Callback, Events
    from zoo.training.build import new_run

    settings = validate(Recipe(recipe, {}, folder / "recipe.yaml"))
    registry = zoo.Registry.from_environment(disabled=disable)
    run = new_run(settings, folder, registry=registry, log=lambda line: None)
    if listeners:
        run.events = Events([], [Callback(type(o).__name__, "test", o) for o in listeners])
    return run


CHECKPOINT = Path("checkpoint", "state.json")  # in a run folder: there once a checkpoint is whole


def read_checkpoint(folder: Path) -> dict:
    """The state of a run folder's checkpoint, every file verified."""
    from zoo.training.checkpoint import read

    path = folder / "checkpoint"
    return read(path, json.loads((folder / CHECKPOINT).read_text())["fingerprint"], like={}, active=False)


def raw_meta(path: Path) -> dict:
    """A weights file's metadata as plain data, to alter."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["zoo"])


def rewrite_meta(source: Path, target: Path, meta: dict) -> None:
    """``source``'s tensors with the metadata ``meta`` (plain data), written to ``target``."""
    from safetensors.torch import load_file

    from zoo.weights.format import write

    write(target, load_file(str(source)), json.dumps(meta))


def build(recipe: str, overrides=(), *, disable=("progress",), **options) -> list[Path]:
    """``zoo build`` in this process with the installed plugins less ``disable``, quietly by default."""
    from zoo.training.build import build as train

    options.setdefault("log", lambda line: None)
    return train(str(recipe), list(overrides), registry=zoo.Registry.from_environment(disabled=disable), **options)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")} if folder.is_dir() else {}


@pytest.fixture(autouse=True, scope="session")
def real_home_untouched():
    """Fails the session (an error at its last teardown) if anything under the user's zoo home changed."""
    before = _snapshot(REAL_HOME)
    yield
    after = _snapshot(REAL_HOME)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"the tests changed the user's zoo home {REAL_HOME}: {changed[:5]}"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ZOO_HOME and a fresh default registry."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    monkeypatch.delenv("ZOO_PLUGINS_DISABLE", raising=False)
    monkeypatch.delenv("ZOO_PLUGINS_STRICT", raising=False)
    zoo.default_registry.cache_clear()
    yield
    zoo.default_registry.cache_clear()


class StaticServer:
    """A static file server for ``folder`` on 127.0.0.1 (a free port), for download tests."""

    def __init__(self, folder: Path):
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``path`` exists while ``process`` keeps running."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


# A small MNIST classifier; EPOCHS and BATCH are filled in by write_recipe.
SMALL_MLP = """\
name: small-mlp
model:
  component: mnist-mlp
  hidden: [64]
data:
  dataset: {component: mnist}
  batch_size: BATCH
  eval_batch_size: 2500
train:
  epochs: EPOCHS
  seed: 0
  optimizer: {component: adam, lr: 1.0e-3}
  loss: cross-entropy
  log_every: 10
metrics: [accuracy]
"""


def write_recipe(folder: Path, template: str, **values: object) -> Path:
    """``template`` with each UPPERCASE placeholder replaced, written to folder/recipe.yaml."""
    text = template
    for key, value in values.items():
        text = text.replace(key.upper(), str(value))
    path = folder / "recipe.yaml"
    path.write_text(text)
    return path


def assert_png(path: Path, size: tuple[int, int], min_bytes: int = 10_000) -> None:
    """``path`` is a real PNG of ``size`` (height, width) pixels with some content in it."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes, (path, len(data))
    image = matplotlib.image.imread(str(path))
    assert image.shape[:2] == size
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.fixture
def no_matplotlib(tmp_path) -> dict:
    """Environment in which importing matplotlib fails, as when the 'plot' extra is not installed."""
    folder = tmp_path / "no-matplotlib"
    folder.mkdir()
    # as if not installed: no module for import or importlib.util.find_spec, no distribution metadata
    # (torchmetrics asks importlib.metadata whether matplotlib is there)
    (folder / "sitecustomize.py").write_text("""\
import importlib.metadata
import sys


class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)", name=name)


def hiding(function):
    def hidden(name, *args, **kwargs):
        if str(name).lower() == "matplotlib":
            raise importlib.metadata.PackageNotFoundError(name)
        return function(name, *args, **kwargs)
    return hidden


sys.meta_path.insert(0, NoMatplotlib())
importlib.metadata.version = hiding(importlib.metadata.version)
importlib.metadata.distribution = hiding(importlib.metadata.distribution)
""")
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def fixture_site(folder: Path, name: str, module: str) -> dict:
    """An environment in which the fixture plugin ``module`` (tests/fixtures) is installed as entry
    point ``name`` of a distribution in ``folder`` (a dist-info, as pip writes one)."""
    info = folder / f"fx_{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fx-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo.plugins]\n{name} = {module}\n")
    return {"PYTHONPATH": f"{folder}{os.pathsep}{ROOT / 'tests' / 'fixtures'}"}


def pip_installed(target: Path, *packages: Path) -> dict:
    """``packages`` pip-installed into ``target`` (no dependencies, no network); the environment that
    puts them on PYTHONPATH."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), *map(str, packages)], check=True, capture_output=True)
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def extras(tmp_path_factory) -> dict:
    """The test package zoo-extras (a metric, a callback, a transform) pip-installed into a folder of
    its own; the environment that puts it on PYTHONPATH."""
    return pip_installed(tmp_path_factory.mktemp("site"), ROOT / "tests" / "plugin_pkgs" / "zoo-extras")


@pytest.fixture(scope="module")
def server():
    """A fake Hugging Face Hub on 127.0.0.1 for the test module (tests/fakehub.py)."""
    from fakehub import FakeHub

    hub = FakeHub()
    yield hub
    hub.close()


@pytest.fixture
def hub(server, tmp_path, monkeypatch):
    """The fake Hub as huggingface_hub's endpoint, with an empty Hugging Face cache of this test's own."""
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    for name, value in (("ENDPOINT", server.url), ("HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/"
                        "{revision}/{filename}"), ("HF_HUB_CACHE", str(cache)), ("HF_HUB_OFFLINE", False),
                        ("HF_HUB_DISABLE_XET", True)):
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setenv("HF_TOKEN", "test-token")
    server.fail.clear()
    return server


@pytest.fixture(scope="module")
def mnist_shards(tmp_path_factory) -> str:
    """600 training and 200 test images of MNIST packed in tar shards of 150 samples (zoo data pack's
    format; the last shard shorter)."""
    from zoo.assembly.data import InMemoryDataset
    from zoo_datasets.packing import write

    root = tmp_path_factory.mktemp("shards")
    for split, count in (("train", 600), ("test", 200)):
        mnist = zoo.create("mnist", split=split)
        inputs, targets = mnist.tensors()
        part = InMemoryDataset(inputs[:count], targets[:count], 255, {**mnist.info, "split": split})
        write(part, root / split, 10**9, 150, log=lambda line: None)
    return str(root)

