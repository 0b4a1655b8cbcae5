"""The deprecation policy, written once: a documented public name (an attribute, a component name, a
recipe key) changes only with a deprecation period. The old form keeps working for one minor
version after the release that renamed it, with a :class:`ZooDeprecationWarning` naming the new
form, then it is refused with a hint (docs/architecture.md#api-stability)."""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

from zoo.errors import ZooError
from zoo.names import DISTRIBUTION


class ZooDeprecationWarning(DeprecationWarning):
    """An old name of zoo's was used; the message names the new one. The CLI prints it in one line."""


def current() -> tuple[int, int]:
    """This zoo's (major, minor) version."""
    try:
        text = version(DISTRIBUTION)
    except PackageNotFoundError:  # a source checkout without its metadata
        return (0, 0)
    major, minor = (text.split(".") + ["0", "0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def accepted(since: str) -> bool:
    """Whether an old form deprecated in zoo ``since`` ("MAJOR.MINOR") still works: until one minor
    version after it."""
    major, minor = (int(part) for part in since.split(".")[:2])
    return current() <= (major, minor + 1)


def until(since: str) -> str:
    """The release from which an old form deprecated in zoo ``since`` is refused."""
    major, minor = (int(part) for part in since.split(".")[:2])
    return f"{major}.{minor + 2}"


def warn(old: str, new: str, since: str, stacklevel: int = 3) -> None:
    """Say that ``old`` is deprecated in favour of ``new``; past its period, refuse it."""
    if not accepted(since):
        raise ZooError(f"{old} was removed in zoo {until(since)}: use {new}")
    warnings.warn(f"{old} is deprecated since zoo {since} and is refused from zoo {until(since)}: use {new}",
                  ZooDeprecationWarning, stacklevel=stacklevel)
