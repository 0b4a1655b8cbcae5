"""Loading and saving a large model: `zoo.load` and `weights.save` against the floor.

The model is a transformer-encoder of 184M parameters (vocab 32,000, dim 1,024, 16 heads, 12
layers), written once with zoo's own `weights.save`. Each measurement runs in a fresh process, so
its peak RSS is its own; all of them read the file from a warm page cache.

- floor: `safetensors.torch.load_file` (mapped) into the same model built on the meta device with
  `load_state_dict(assign=True)`, no verification;
- first: `zoo.load(path)` with an empty verification cache (sha256 and content digest computed);
- repeat: `zoo.load(path)` again (verification cached by path, size and mtime);
- sha256: one streaming sha256 of the file, the least any verification of every byte costs;
- save: `weights.save` of the model.

"added" memory is the process's peak RSS minus its RSS before the timed part (torch imported, and
for save the model already built), as a multiple of the file size.

    python benchmarks/loading.py [--layers 12] [--repeat 3]

Last line: ``first/floor: X  first/sha256: S  repeat/floor: Y  load_added/file: Z  save_added/file: W``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

NODE = {"component": "transformer-encoder", "vocab_size": 32000, "max_len": 80, "dim": 1024, "heads": 16}

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import torch
import torch._dynamo  # the floor's random init on the meta device imports it (~1 s); kept out of every timing

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

what, path, node = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
import zoo, zoo.files, zoo.weights.load  # imported before the timed part, as torch is
from zoo.weights.format import save
from zoo.weights.metadata import WeightsMeta
from safetensors.torch import load_file
params = {k: v for k, v in node.items() if k != "component"}
if what == "save":
    torch.manual_seed(0)
    model = zoo.create(node["component"], **params)
before, started = rss(), time.perf_counter()
if what == "floor":
    with torch.device("meta"):
        model = zoo.create(node["component"], **params)
    model.load_state_dict(load_file(str(path)), assign=True, strict=False)
    model.position.pe = model.position.pe.new_empty(0)  # not in the file; the floor skips it
elif what == "hash":
    zoo.files.stream_sha256(path)
elif what == "load":
    model = zoo.load(path)
else:
    save(model, path, WeightsMeta(name="big", model=node, recipe={}, recipe_version=1, metrics={}))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "added": max(0, peak() - before)}))
"""


def measure(what: str, path: Path, node: dict, env: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, what, str(path), json.dumps(node)], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def best(what: str, path: Path, node: dict, env: dict, repeat: int, fresh_home: bool = False) -> dict:
    runs = []
    for i in range(repeat):
        if fresh_home:
            env = {**env, "ZOO_HOME": str(path.parent / f"home-{what}-{i}")}
        runs.append(measure(what, path, node, env))
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    node = {**NODE, "layers": args.layers}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.safetensors"
        env = {**os.environ, "ZOO_HOME": str(Path(folder) / "home")}
        save = best("save", path, node, env, args.repeat)
        size = path.stat().st_size
        floor = best("floor", path, node, env, args.repeat)
        hashed = best("hash", path, node, env, args.repeat)
        first = best("load", path, node, env, args.repeat, fresh_home=True)
        measure("load", path, node, env)  # fills the verification cache of ZOO_HOME
        repeat = best("load", path, node, env, args.repeat)
    mb = size / 1e6
    print(f"file: {mb:.0f} MB ({args.layers} layers)")
    for name, r in (("floor", floor), ("sha256 of file", hashed), ("zoo.load first", first), ("zoo.load repeat", repeat), ("weights.save", save)):
        print(f"{name:16} {r['seconds']:6.2f} s   added memory {r['added'] / 1e6:6.0f} MB = {r['added'] / size:.2f}x file")
    print(f"first/floor: {first['seconds'] / floor['seconds']:.2f}  first/sha256: {first['seconds'] / hashed['seconds']:.2f}"
          f"  repeat/floor: {repeat['seconds'] / floor['seconds']:.2f}"
          f"  load_added/file: {first['added'] / size:.2f}  save_added/file: {save['added'] / size:.2f}")


if __name__ == "__main__":
    main()
