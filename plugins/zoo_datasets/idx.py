"""The IDX file format of MNIST: big-endian header (0, 0, type, ndim, dims...) then raw data."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from zoo.api import ZooError, digest

GZIP_MAGIC = b"\x1f\x8b"
UINT8 = 0x08


def decompress(data: bytes, path: Path) -> bytes:
    """The IDX bytes of a file's content, gzip or raw."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ZooError(f"{path}: corrupt gzip data ({exc}); delete the file and fetch it again") from exc


def verify(data: bytes, path: Path, gz_md5: set[str], raw_md5: set[str]) -> bytes:
    """Check ``data`` against the known checksums of a canonical file; return its IDX bytes.

    A gzip file passes on its own md5 or on the md5 of what it holds (repackagers re-compress);
    a file with no known checksum passes unchecked.
    """
    raw = decompress(data, path)
    compressed = data is not raw
    if compressed and digest(data) in gz_md5:
        return raw
    if not raw_md5 and not (compressed and gz_md5):
        return raw
    if digest(raw) in raw_md5:
        return raw
    raise ZooError(
        f"{path}: checksum mismatch (md5 {digest(data)}); the file is corrupt or not the canonical one. "
        "Delete it and fetch it again (download=True)"
    )


def parse(raw: bytes, path: Path) -> np.ndarray:
    """An IDX byte string as a uint8 array of the shape its header declares."""
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise ZooError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = raw[2], raw[3]
    if dtype != UINT8:
        raise ZooError(f"{path}: IDX data type 0x{dtype:02x} is not supported (only uint8, 0x08)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ZooError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ZooError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw)} bytes; it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
