"""Files zoo writes or fetches: atomic replacement, checksummed downloads, the ZOO_HOME folder."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from zoo.errors import ZooError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


SUFFIX = ".safetensors"  # of weights files and checkpoints
FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp's own files are 0600


class RunPath(str):
    """A parameter type for a file or folder inside the run folder (a logger's ``path``): relative,
    without ``..``. A recipe that gives anything else is refused at the parameter's line."""


def run_path(value: str) -> RunPath:
    """``value`` as a RunPath, or ZooError saying why it cannot be one."""
    path = PurePosixPath(value.replace("\\", "/"))
    if not value or path.is_absolute() or ".." in path.parts or ":" in value or "\0" in value:
        raise ZooError(f"{value!r} is not a relative path inside the run folder (no absolute paths, drive "
                       "letters or '..'): a run writes only into its own folder")
    return RunPath(path.as_posix())


def home() -> Path:
    """zoo's own folder: $ZOO_HOME, else ~/.cache/zoo."""
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".cache" / "zoo")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    if path.is_dir():
        raise ZooError(f"{path} is a folder; give the name of a file to write")
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


MAX_DOWNLOAD = 4 << 30  # bytes one download may have (ZOO_MAX_DOWNLOAD_BYTES raises it)
_REFUSED: list[str] = []  # why downloads are refused here, innermost last (see refuse_downloads)


@contextlib.contextmanager
def refuse_downloads(why: str) -> Iterator[None]:
    """Within: every fetch zoo would make over the network (a URL, a Hub file not in the cache, a
    shard or a Parquet file at a URL) is a ZooError naming what it would fetch, then ``why``."""
    _REFUSED.append(why)
    try:
        yield
    finally:
        _REFUSED.pop()


def downloads_refused() -> bool:
    return bool(_REFUSED)


def may_fetch(what: str) -> None:
    """Raise the ZooError of :func:`refuse_downloads` when fetching ``what`` is refused here."""
    if _REFUSED:
        raise ZooError(f"{what[:200]}: {_REFUSED[-1]}")
CHUNK = 1 << 20


def download(urls: Sequence[str], dest: Path, verify: Callable[[Path], None], timeout: float = 60) -> None:
    """Fetch the first of ``urls`` that answers into ``dest``: streamed to ``dest.partial`` (at most
    ZOO_MAX_DOWNLOAD_BYTES, and as many as the server announced), checked by ``verify(partial_path)``
    (which raises ZooError), then renamed into place. Only http(s) URLs; nothing half-written stays."""
    may_fetch(urls[0] if urls else str(dest))
    failures = []
    limit = int(os.environ.get("ZOO_MAX_DOWNLOAD_BYTES") or MAX_DOWNLOAD)
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for url in urls:
        try:
            _fetch(url, partial, limit, timeout)
            verify(partial)
        except (OSError, ValueError, ZooError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {_reason(exc)}")
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            continue
        os.chmod(partial, FILE_MODE)
        os.replace(partial, dest)
        return
    raise ZooError(f"could not download {dest.name}: " + "; ".join(failures))


def _fetch(url: str, partial: Path, limit: int, timeout: float) -> None:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ZooError("not an http(s) URL")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
        announced = response.headers.get("Content-Length")
        if announced is not None and (not announced.isdigit() or int(announced) > limit):
            raise ZooError(f"the server announces {announced} bytes, more than the limit of {limit:,} "
                           "(ZOO_MAX_DOWNLOAD_BYTES raises it)")
        size = 0
        while chunk := response.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise ZooError(f"more than {limit:,} bytes (ZOO_MAX_DOWNLOAD_BYTES raises the limit)")
            out.write(chunk)
        if announced is not None and size != int(announced):
            raise ZooError(f"the body ended after {size:,} of {int(announced):,} bytes (truncated)")
        out.flush()
        os.fsync(out.fileno())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, http.client.HTTPException):
        return f"not a valid HTTP answer ({type(exc).__name__}: {exc})"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def offline(what: str) -> Iterator[None]:
    """No network inside: code that opens a connection (a dataset that would download, say) raises
    ZooError saying that ``what`` tried to, instead of reaching the network."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise ZooError(f"{what} tried to reach the network, which zoo does not do for a file it did not make: "
                       "fetch the data yourself (a dataset's root=) and try again")

    connect, create = socket.socket.connect, socket.create_connection
    socket.socket.connect, socket.create_connection = refuse, refuse
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection = connect, create
