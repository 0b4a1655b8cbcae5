"""Files zoo writes or fetches: atomic replacement, checksummed downloads, the ZOO_HOME folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from zoo.errors import ZooError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


SUFFIX = ".safetensors"  # of weights files and checkpoints
FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp's own files are 0600


def home() -> Path:
    """zoo's own folder: $ZOO_HOME, else ~/.cache/zoo."""
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".cache" / "zoo")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)  # after the writer: some (safetensors) replace the file, and its mode
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def digest(data: bytes, algorithm: str = "md5") -> str:
    return hashlib.new(algorithm, data).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) in $ZOO_HOME so unchanged files hash once."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = home() / "sha256-cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        digest_ = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest_.update(chunk)
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
        cache[key] = digest_.hexdigest()
        with contextlib.suppress(OSError):
            atomic_write_bytes(cache_file, json.dumps(cache).encode())
    return cache[key]


def download(urls: Sequence[str], dest: Path, verify: Callable[[bytes], None], timeout: float = 60) -> None:
    """Fetch the first of ``urls`` that answers, check it with ``verify`` (raises), write it atomically."""
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except OSError as exc:
            failures.append(f"{url}: {exc}")
            continue
        try:
            verify(data)
        except ZooError as exc:
            failures.append(f"{url}: {exc}")
            continue
        atomic_write_bytes(dest, data)
        return
    raise ZooError(f"could not download {dest.name}:\n  " + "\n  ".join(failures))
