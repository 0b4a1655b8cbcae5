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


CACHE_ENTRIES = 1000  # digests remembered, newest kept


def known_digests(path: Path) -> dict[str, str]:
    """Digests already computed for this version of the file (same path, size and mtime), by name."""
    key = _version(path)
    return dict(_digest_cache().get(key, {}))


def remember_digests(path: Path, **digests: str) -> None:
    """Remember digests of this version of the file in $ZOO_HOME (best effort: a failed write only
    means they are computed again)."""
    key = _version(path)
    prefix = key.rsplit("|", 2)[0] + "|"
    cache = _digest_cache()
    entry = {**cache.get(key, {}), **digests}
    cache = {k: v for k, v in cache.items() if not k.startswith(prefix)}  # older versions of the file
    cache[key] = entry
    cache = dict(list(cache.items())[-CACHE_ENTRIES:])
    with contextlib.suppress(OSError):
        atomic_write_bytes(home() / "digests.json", json.dumps(cache).encode())


def _version(path: Path) -> str:
    path = Path(path).resolve()
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def _digest_cache() -> dict[str, dict[str, str]]:
    try:
        cache = json.loads((home() / "digests.json").read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def stream_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    digest_ = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest_.update(chunk)
    return digest_.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered (:func:`remember_digests`) so an unchanged file is hashed once."""
    known = known_digests(path).get("sha256")
    if known is None:
        known = stream_sha256(path)
        remember_digests(path, sha256=known)
    return known


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
