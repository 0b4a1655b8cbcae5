"""Registry scale: `zoo list` with a plugin of N components, as a library the size of timm would have.

The plugin is generated here (no installed package needed): one module of N small functions, each
with a docstring and typed parameters, registered as "module:attr" strings, and a dist-info entry
point on PYTHONPATH. `zoo list` runs as a fresh subprocess, best of --repeat.

    python benchmarks/scale.py [--small 500] [--large 5000] [--repeat 3]

Last line: ``list_s@LARGE: X.XX  LARGE/SMALL: Y.YY`` (seconds; a linear registry gives a ratio near
LARGE/SMALL of the plugin's own part, well under 10x for 10x the components).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = str(Path(sys.executable).parent / "zoo")


def write_plugin(folder: Path, count: int, name: str = "scale") -> dict[str, str]:
    """A plugin ``name`` registering ``count`` layers ``NAME-0`` ... in ``folder``; the environment that installs it."""
    module = f"zoo_{name}_plugin"
    lines = ['"""A generated plugin."""', "", "from zoo.api import hookimpl", ""]
    for i in range(count):
        lines += ["", f"def layer_{i}(width: int = {i + 1}, scale: float = 0.5, name: str = 'l{i}'):",
                  f'    """Generated layer number {i}: width times scale."""', "    return None", ""]
    lines += ["", "@hookimpl", "def register_layers(register):", f"    for i in range({count}):",
              f"        register(f'{name}-{{i}}', f'{module}:layer_{{i}}')", ""]
    (folder / f"{module}.py").write_text("\n".join(lines))
    info = folder / f"zoo_{name}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zoo-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo.plugins]\n{name} = {module}\n")
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def list_seconds(count: int, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, **write_plugin(Path(folder), count), "ZOO_HOME": str(Path(folder) / "home")}
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            result = subprocess.run([ZOO, "list", "--kind", "layer"], env=env, capture_output=True, text=True)
            best = min(best, time.perf_counter() - started)
            if result.returncode != 0 or f"scale-{count - 1} " not in result.stdout:
                raise SystemExit(f"zoo list failed at N={count}: {result.stderr}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    small, large = list_seconds(args.small, args.repeat), list_seconds(args.large, args.repeat)
    print(f"zoo list, N={args.small}: {small:.2f} s   N={args.large}: {large:.2f} s")
    print(f"list_s@{args.large}: {large:.2f}  {args.large}/{args.small}: {large / small:.2f}")


if __name__ == "__main__":
    main()
