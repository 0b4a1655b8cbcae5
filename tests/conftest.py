import os
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def builtin_plugins() -> list[EntryPoint]:
    return list(entry_points(group="zoo.plugins"))


def fixture_plugin(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=module, group="zoo.plugins")


def make_registry(*extra: EntryPoint, **options) -> zoo.Registry:
    """A registry of the built-in plugins plus ``extra`` entry points."""
    return zoo.Registry([*builtin_plugins(), *extra], **options)


def run_zoo(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``zoo`` console script."""
    return subprocess.run(
        [str(BIN / "zoo"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ZOO_HOME and a fresh default registry."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    monkeypatch.delenv("ZOO_PLUGINS_DISABLE", raising=False)
    monkeypatch.delenv("ZOO_PLUGINS_STRICT", raising=False)
    zoo.default_registry.cache_clear()
    yield
    zoo.default_registry.cache_clear()
