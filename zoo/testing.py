"""Test helpers for plugin authors, and a pytest plugin (installed with zoo) that provides fixtures.

    from zoo.testing import check_component, tiny_build

    def test_my_layer():
        check_component("gated-linear")          # build, forward, backward, save/load, seeding

    def test_my_recipe(zoo_home, tmp_path):
        folder = tiny_build({...recipe...}, tmp_path)

A component declares what to check it on as an ``example`` attribute of its factory:
``{"params": {...}, "input": [2, 5, 312]}`` (the shape of a standard-normal batch) or
``{"input": {"tokens": [2, 12], "vocab_size": 16}}`` (token ids, 0 for padding at the end).
Importing this module does not import torch (pytest loads it in every session).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from zoo.errors import ZooError


def example_input(spec: object, seed: int = 0):
    """A batch for an example's ``input``: a shape (standard normal) or ``{"tokens": shape, "vocab_size": V}``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if isinstance(spec, Mapping) and "tokens" in spec:
        shape = tuple(spec["tokens"])
        tokens = torch.randint(1, spec["vocab_size"], shape, generator=generator)
        tokens[..., shape[-1] * 3 // 4:] = 0  # a padded tail
        return tokens
    return torch.randn(tuple(spec), generator=generator)


def check_component(name: str, kind: str | None = None, *, params: Mapping | None = None, input: object = None,
                    registry: object = None) -> None:
    """Assert that module component ``name`` builds (from ``params``, else its example's, else its
    defaults), runs forward and backward on ``input`` (else its example's), gives every trainable
    parameter a finite gradient, builds the same weights from the same seed, and survives a save
    and ``zoo.load`` with identical outputs (``registry``: another than the installed plugins').
    AssertionError says which step failed."""
    import torch

    from zoo.recipe.schema import VERSION
    from zoo.registry import default_registry
    from zoo.weights.format import save
    from zoo.weights.load import load
    from zoo.weights.metadata import WeightsMeta

    registry = registry or default_registry()
    component = registry.get(name, kind)
    example = dict(getattr(component.target, "example", {}) or {})
    params = dict(example.get("params", {}) if params is None else params)
    spec = example.get("input") if input is None else input
    assert spec is not None, f"{component.kind} '{name}' declares no example input: pass input= (a shape)"

    def build():
        torch.manual_seed(0)
        return component.build(**params)

    module = build()
    assert isinstance(module, torch.nn.Module), f"'{name}' builds a {type(module).__name__}, not a torch.nn.Module"
    x = example_input(spec) if not isinstance(spec, torch.Tensor) else spec
    if x.is_floating_point():
        x.requires_grad_(True)  # so a module without parameters still has something to differentiate
    module.train()
    out = module(x)
    assert isinstance(out, torch.Tensor), f"'{name}' returns a {type(out).__name__}, not a tensor"
    assert torch.isfinite(out).all(), f"'{name}' gives non-finite outputs on its example input"
    out.float().square().mean().backward()
    for pname, parameter in module.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"'{name}': parameter {pname} gets no gradient"
            assert torch.isfinite(parameter.grad).all(), f"'{name}': parameter {pname} gets a non-finite gradient"
    again = build()
    for key, value in module.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), f"'{name}': the same seed built a different {key}"
    module.eval()
    with tempfile.TemporaryDirectory() as folder, _home(Path(folder)):  # nothing lands in the user's $ZOO_HOME
        path = Path(folder) / "weights.safetensors"
        meta = WeightsMeta(name="conformance", model={"component": component.qualified_name, **params}, recipe={},
                           recipe_version=VERSION, metrics={})
        save(module, path, meta)
        loaded = load(path, registry)
        with torch.no_grad():
            x = x.detach()
            torch.testing.assert_close(loaded(x), module(x), rtol=0, atol=0,
                                       msg=lambda m: f"'{name}': outputs differ after save and zoo.load: {m}")


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it, as a crash would end them (torchrun's workers and
    DataLoader workers included: torchrun starts its workers in sessions of their own); Linux."""
    import signal

    for member in process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def process_tree(pid: int) -> set[int]:
    """A process and every process under it, found by their parent ids in /proc (Linux)."""
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text() if proc.name.isdigit() else ""
        except OSError:
            continue
        parents.update({int(proc.name): int(line.split()[1]) for line in status.splitlines()
                        if line.startswith("PPid:")})
    tree, below = {pid}, {pid}
    while below:
        below = {child for child, parent in parents.items() if parent in below} - tree
        tree |= below
    return tree


@contextlib.contextmanager
def _home(folder: Path):
    before = os.environ.get("ZOO_HOME")
    os.environ["ZOO_HOME"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["ZOO_HOME"]
        else:
            os.environ["ZOO_HOME"] = before


def tiny_build(recipe: Mapping | str | Path, folder: Path, *overrides: str, registry: object = None) -> Path:
    """Train a recipe (a mapping, or a file) in-process into ``folder``/run, quietly; the run folder.
    Use small data and an epoch or two; ``overrides`` are ``--set`` values (``"train.epochs=1"``).
    ``registry`` defaults to the installed plugins less the progress bar and the plots. The build is
    filed in ``$ZOO_HOME``'s store: use it with the ``zoo_home`` fixture."""
    import yaml

    from zoo.registry import Registry
    from zoo.training.build import build

    folder = Path(folder)
    if isinstance(recipe, Mapping):
        path = folder / "recipe.yaml"
        path.write_text(yaml.safe_dump(dict(recipe), sort_keys=False))
        recipe = path
    try:
        registry = registry or Registry.from_environment(disabled=["progress", "plot"])
        [run] = build(str(recipe), list(overrides), registry=registry, out=folder / "run", log=lambda s: None)
    except ZooError as exc:
        raise AssertionError(f"the recipe does not build: {exc}") from None
    return run


@pytest.fixture
def zoo_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ``$ZOO_HOME`` for the test: builds and downloads never touch the user's."""
    home = tmp_path / "zoo-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("ZOO_HOME", str(home))
    return home


@pytest.fixture
def zoo_registry():
    """A registry of the installed plugins, loaded afresh for the test (with its warnings)."""
    from zoo.registry.plugins import Registry

    return Registry.from_environment()
