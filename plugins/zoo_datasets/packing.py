"""``zoo data pack | info | verify``: any zoo dataset written as WebDataset tar shards with a manifest
(plugins/zoo_datasets/shards.py reads them), summarized, and checked file by file."""

from __future__ import annotations

import argparse
import io
import json
import re
import secrets
import shutil
import sys
from pathlib import Path

import yaml

from zoo.api import ZooError, atomic_write_bytes, install_hint

UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def byte_size(text: str) -> int:
    """'256MB', '1.5GiB', '4096' as bytes (argparse type)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS or float(match.group(1)) * UNITS[match.group(2).lower()] < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size such as 256MB, 1GiB or 65536")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def arguments(p: argparse.ArgumentParser) -> None:
    from zoo.api import path, positive

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pack = sub.add_parser("pack", help="write a dataset as tar shards with a manifest",
                          description="Write splits of a zoo dataset (a registered name such as mnist, or a folder "
                                      "of class folders per split) as WebDataset tar shards under DEST/SPLIT/, with a "
                                      "manifest.json: samples and sha256 per shard, classes, input spec.")
    pack.add_argument("source", metavar="SOURCE", help="a dataset name (mnist, fashion-mnist, a plugin's) or an image "
                                                       "folder ROOT with ROOT/SPLIT/CLASS/*.jpg")
    pack.add_argument("dest", metavar="DEST", type=path, help="the folder to write DEST/SPLIT/ into")
    pack.add_argument("--split", action="append", metavar="SPLIT",
                      help="a split to pack (repeatable; default: train and test, or a folder's subfolders)")
    pack.add_argument("--with", dest="params", action="append", default=[], metavar="KEY=VALUE",
                      help="a parameter of the dataset (YAML value; repeatable), e.g. --with channels=3")
    pack.add_argument("--shard-size", type=byte_size, default=256 * 10**6, metavar="SIZE",
                      help="bytes per shard at most (default 256MB)")
    pack.add_argument("--shard-samples", type=positive, default=100_000, metavar="N",
                      help="samples per shard at most (default 100000)")
    for name, text in (("info", "summarize a packed dataset"), ("verify", "check every shard against its manifest")):
        one = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        one.add_argument("dest", metavar="DEST", help="what zoo data pack wrote (a folder or URL), or one split of it")


def run(args: argparse.Namespace) -> int:
    if args.action == "pack":
        splits = pack(args.source, args.dest, args.split, _params(args.params), args.shard_size, args.shard_samples,
                      registry=args.registry, log=lambda line: print(line, file=sys.stderr))
        for split, manifest in splits.items():
            print(f"{args.dest / split}: {_describe(manifest)}")
        return 0
    folders = _splits(args.dest)
    if args.action == "info":
        for folder in folders:
            from zoo_datasets.shards import read_manifest

            print(f"{folder}: {_describe(read_manifest(folder))}")
        return 0
    from zoo_datasets.shards import verify

    bad = 0
    for folder in folders:
        for name, problem in verify(folder):
            bad += problem is not None
            print(f"{folder}/{name}: {problem or 'ok'}")
    if bad:
        print(f"zoo: {bad} shard(s) do not match their manifest; pack the split again", file=sys.stderr)
    return 1 if bad else 0


def _params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.isidentifier():
            raise ZooError(f"--with {pair}: expected KEY=VALUE, e.g. --with channels=3")
        try:
            params[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ZooError(f"--with {pair}: not a YAML value ({str(exc).splitlines()[0]})") from None
    return params


def _splits(dest: str) -> list[str]:
    """The split folders of DEST (DEST itself when it is one)."""
    from zoo_datasets.shards import MANIFEST, join, open_binary

    if not dest.strip():
        raise ZooError("DEST is empty: give what zoo data pack wrote (a folder or URL)")
    if "://" in dest:
        return [dest]
    root = Path(dest).expanduser()
    if (root / MANIFEST).is_file():
        return [str(root)]
    found = sorted(str(p.parent) for p in root.glob(f"*/{MANIFEST}"))
    if not found:
        try:
            open_binary(join(dest, MANIFEST)).close()
        except OSError:
            raise ZooError(f"{dest}: no {MANIFEST} in it or in its subfolders; zoo data pack writes them") from None
    return found


def _describe(manifest: dict) -> str:
    shape = "x".join(map(str, manifest["input"].get("shape") or ["?"]))
    classes = manifest.get("classes")
    return (f"{manifest['samples']:,} samples in {len(manifest['shards'])} shard(s), "
            f"{sum(s['bytes'] for s in manifest['shards']) / 1e6:,.1f} MB, {manifest['input'].get('kind', '?')} "
            f"{shape}" + (f", {len(classes)} classes" if classes else ""))


def pack(source: str, dest: Path, splits: list[str] | None, params: dict, shard_bytes: int, shard_samples: int, *,
         registry, log=print) -> dict[str, dict]:
    """Write each split of ``source`` (a dataset name, or an image folder root) to ``dest/SPLIT/``;
    return each split's manifest. A split folder that exists is never overwritten."""
    if not source.strip():
        raise ZooError("SOURCE is empty: give a dataset name (mnist) or an image folder")
    if "split" in params:
        raise ZooError("--with split=...: the splits are chosen with --split SPLIT")
    folder = Path(source).expanduser()
    if folder.is_dir() or "/" in source:
        if not folder.is_dir():
            raise ZooError(f"{source}: no such folder")
        name, params = "image-folder", {"root": str(folder), **params}
        splits = splits or sorted(p.name for p in folder.iterdir() if p.is_dir())
    else:
        name, splits = source, splits or ["train", "test"]
    from zoo_datasets.shards import NAME

    bad = [s for s in splits if not NAME.fullmatch(s) or ".." in s]
    if not splits or bad:
        raise ZooError(f"split {bad[0]!r} is not a folder name (letters, digits, '.', '_', '-')" if bad else
                       f"{source}: no split folders in it (expected {source}/SPLIT/CLASS/<images>)")
    component = registry.get(name, "dataset")
    written = {}
    for split in splits:
        target = dest / split
        if target.exists():
            raise ZooError(f"{target} exists; pack into another DEST, or delete it first")
        values = {**params, "split": split} if "split" in {p.name for p in component.params} else dict(params)
        try:
            component.check(values)
        except Exception as exc:
            said = str(exc)
            raise ZooError(said if said.startswith(f"dataset '{name}'") else f"dataset '{name}': {said}") from None
        data = component.build(**values)
        written[split] = write(data, target, shard_bytes, shard_samples, log)
    return written


def write(data, target: Path, shard_bytes: int, shard_samples: int, log=print) -> dict:
    """The samples of ``data`` in order as tar shards in the new folder ``target`` (made under a
    temporary name, renamed when whole), with their manifest."""
    try:
        from webdataset import ShardWriter
    except ImportError:
        raise ZooError(f"zoo data pack writes with webdataset: {install_hint('webdataset')}") from None
    from zoo_datasets.shards import FORMAT, MANIFEST, index, sha256

    info = getattr(data, "info", {})
    spec = info.get("input")
    if not spec:  # what the first sample shows, as a weights file records it
        import torch

        x = torch.as_tensor(data[0][0])
        spec = {"kind": "tensor", "shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
    encode = _encoder(data, spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}.partial"
    temporary.mkdir()
    try:
        with ShardWriter(str(temporary / "shard-%06d.tar"), maxcount=shard_samples, maxsize=shard_bytes,
                         verbose=0, encoder=False) as writer:
            for i in range(len(data)):
                writer.write({"__key__": f"{i:09d}", **encode(i)})
                if (i + 1) % 10_000 == 0:
                    log(f"{target.name}: {i + 1:,} of {len(data):,} samples")
        shards = []
        for file in sorted(temporary.glob("shard-*.tar")):
            with open(file, "rb") as f:
                count = len(index(f, str(file)))
            digest, size = sha256(str(file))
            shards.append({"name": file.name, "samples": count, "bytes": size, "sha256": digest})
        manifest = {"format": FORMAT, "split": info.get("split", target.name), "samples": len(data),
                    "classes": info.get("classes"), "input": spec, "source": info.get("name"), "shards": shards}
        atomic_write_bytes(temporary / MANIFEST, json.dumps(manifest, indent=1).encode())
        temporary.rename(target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return manifest


def _encoder(data, spec: dict):
    """How sample ``i`` of ``data`` becomes the files of a shard sample: image files as they are, 8-bit
    images as PNG, any other input as ``input.npy``; a class number as ``cls``, else ``target.npy``."""
    import numpy as np
    import torch

    files = getattr(data, "files", None)
    raw = data.tensors() if hasattr(data, "tensors") else None
    png = (raw is not None and spec.get("kind") == "image" and raw[0].dtype == torch.uint8
           and getattr(data, "divide_by", None) == 255 and raw[0].dim() == 4 and raw[0].shape[1] in (1, 3))

    def npy(array) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        return buffer.getvalue()

    def encode(i: int) -> dict[str, bytes]:
        if files is not None:
            path, label = files[i]
            sample = {path.suffix.lower().lstrip("."): path.read_bytes()}
            target = torch.tensor(label)
        elif png:
            from PIL import Image

            image = raw[0][i].numpy()
            buffer = io.BytesIO()
            Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(buffer, "PNG")
            sample, target = {"png": buffer.getvalue()}, raw[1][i]
        else:
            x, target = data[i]
            sample = {"input.npy": npy(torch.as_tensor(x).numpy())}
        target = torch.as_tensor(target)
        if target.dim() == 0 and not target.is_floating_point():
            sample["cls"] = str(int(target)).encode()
        else:
            sample["target.npy"] = npy(target.numpy())
        return sample

    return encode
