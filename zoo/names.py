"""The one rule for names: components, plugins, recipes, models and store entries are kebab-case.

A name read from a file (a weights file's metadata, a catalog) passes the same rule as one a user
types, so no name can carry a path, a newline or a length the file system refuses.
"""

from __future__ import annotations

import re

from zoo.errors import ZooError
from zoo.text import did_you_mean

PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_LENGTH = 100  # characters; file names allow 255 bytes, and a name becomes part of several


def is_name(text: object) -> bool:
    """Whether ``text`` is a kebab-case name like ``mnist-mlp`` of at most MAX_LENGTH characters."""
    return isinstance(text, str) and len(text) <= MAX_LENGTH and PATTERN.fullmatch(text) is not None


def check(text: object, what: str = "name", choices: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` if it is a name, else ZooError saying why, with a did-you-mean among ``choices`` (or
    the kebab-case spelling of ``text``)."""
    if is_name(text):
        return text
    if not isinstance(text, str):
        raise ZooError(f"{what} must be a string like mnist-mlp, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ZooError(f"{what} '{text[:40]}...' is {len(text):,} characters long; names have at most {MAX_LENGTH}")
    kebab = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    hint = did_you_mean(text, choices) or (f" Did you mean '{kebab}'?" if is_name(kebab) else "")
    raise ZooError(f"{what} {text!r} is not a valid name: kebab-case like mnist-mlp (lower-case letters, digits "
                   f"and single hyphens; never a path).{hint}")


# The distribution pip installs (PyPI's 'zoo' is another project); the package and the command are zoo.
DISTRIBUTION = "zoo-models"


def install(extra: str, what: str = "") -> str:
    """How to install an optional extra, said once: from a checkout, until zoo is published."""
    return f"pip install -e '.[{extra}]'{f' ({what})' if what else ''} in a zoo checkout"
