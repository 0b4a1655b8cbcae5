"""Start-up: `zoo list` and `zoo info mnist-mlp` against `import torch`, and zoo.load after import.

Each command runs as a fresh subprocess, best of --repeat; the load is timed in a fresh process
that has imported zoo and torch (the sha256 of the shipped weights already remembered, as after
any first use).

    python benchmarks/startup.py [--repeat 5]

Last line: ``list/torch: X.XX  load_ms: Y``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ZOO = str(Path(sys.executable).parent / "zoo")
LOAD = (
    "import time, zoo, torch\n"
    "t = time.perf_counter(); zoo.load('mnist-mlp'); t = time.perf_counter() - t\n"
    "print(t * 1000)\n"
)


def best_wall(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return min(times)


def load_ms(repeat: int) -> float:
    run = [sys.executable, "-c", LOAD]
    subprocess.run(run, check=True, stdout=subprocess.DEVNULL)  # first use remembers the sha256
    return min(float(subprocess.run(run, check=True, capture_output=True, text=True).stdout) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command; the best counts")
    args = parser.parse_args()
    torch_s = best_wall([sys.executable, "-c", "import torch"], args.repeat)
    list_s = best_wall([ZOO, "list"], args.repeat)
    info_s = best_wall([ZOO, "info", "mnist-mlp"], args.repeat)
    load = load_ms(args.repeat)
    print(f"python -c 'import torch'  {torch_s * 1000:7.0f} ms")
    print(f"zoo list                  {list_s * 1000:7.0f} ms  ({list_s / torch_s:.2f} x import torch)")
    print(f"zoo info mnist-mlp        {info_s * 1000:7.0f} ms  ({info_s / torch_s:.2f} x import torch)")
    print(f"zoo.load('mnist-mlp')     {load:7.1f} ms  after import zoo, torch")
    print(f"list/torch: {list_s / torch_s:.2f}  load_ms: {load:.0f}")


if __name__ == "__main__":
    main()
