"""Files zoo writes or fetches: atomic replacement, checksummed downloads, the ZOO_HOME folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from zoo.errors import ZooError


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
