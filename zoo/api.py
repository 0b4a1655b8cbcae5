"""The plugin API: what a zoo plugin imports, all from this one module.

    from zoo.api import hookimpl, InMemoryDataset, ZooError

Hooks and their arguments are documented in :mod:`zoo.registry.hookspecs`; every name here in
docs/plugins.md. Importing this module does not import torch (so ``zoo list`` stays fast): the names
whose modules need torch are imported on first use. They are imported for real under
``TYPE_CHECKING`` too, so type checkers and go-to-definition see each one as what it is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from zoo import __version__ as zoo_version
from zoo.errors import ZooError
from zoo.files import RunPath, atomic_write_bytes, digest, download, file_sha256, home, may_fetch, stream_sha256
from zoo.names import check as check_name
from zoo.names import install as install_hint
from zoo.plots import INSTALL_HINT as PLOT_HINT
from zoo.plots import curves as plot_curves
from zoo.plots import matrix as plot_matrix
from zoo.registry import Registry
from zoo.registry.hookspecs import hookimpl
from zoo.registry.library import Architecture, LibraryModel, architectures, params_of
from zoo.text import did_you_mean
from zoo.training.folders import RECORD_FACTS, data_wait, write_history
from zoo.typed import Is, Pattern, Range, Words
from zoo.typed import read as read_typed
from zoo.weights.locate import Located, locate
from zoo.weights.store import latest as latest_build
from zoo.weights.store import record as record_build
from zoo.weights.store import split as split_version

if TYPE_CHECKING:
    from zoo.assembly.data import InMemoryDataset
    from zoo.assembly.transforms import Transform
    from zoo.cli import number, path, positive
    from zoo.training.run import Run
    from zoo.use.card import card as model_card
    from zoo.use.share import Pushed
    from zoo.use.predict import (Facts, check_top_k, decode_image, facts, forward, interpret, open_image, pixels,
                                  predict, prepare, read_npy)
    from zoo.weights.format import content_digest, read_meta
    from zoo.weights.imported import record as imported_record
    from zoo.weights.load import load_located
    from zoo.weights.metadata import Imported
    from zoo.weights.spec import InputSpec, InputStats, Preprocess

# The names above imported under TYPE_CHECKING, by module: imported on first use.
_LAZY = {
    "zoo.assembly.data": ("InMemoryDataset",),
    "zoo.assembly.transforms": ("Transform",),
    "zoo.cli": ("number", "path", "positive"),
    "zoo.training.run": ("Run",),
    "zoo.use.card": ("model_card:card",),
    "zoo.use.share": ("Pushed",),
    "zoo.use.predict": ("Facts", "check_top_k", "decode_image", "facts", "forward", "interpret", "open_image", "pixels",
                        "predict", "prepare", "read_npy"),
    "zoo.weights.format": ("content_digest", "read_meta"),
    "zoo.weights.imported": ("imported_record:record",),
    "zoo.weights.load": ("load_located",),
    "zoo.weights.metadata": ("Imported",),
    "zoo.weights.spec": ("InputSpec", "InputStats", "Preprocess"),
}
_WHERE = {entry.partition(":")[0]: (module, entry.partition(":")[2] or entry.partition(":")[0])
          for module, entries in _LAZY.items() for entry in entries}

__all__ = ["Architecture", "LibraryModel", "architectures", "params_of", "PLOT_HINT", "Is", "Located", "Pattern", "Range", "Registry", "RunPath", "Words", "ZooError",
           "atomic_write_bytes", "may_fetch", "check_name", "install_hint", "did_you_mean", "digest", "download", "file_sha256", "home", "stream_sha256", "hookimpl",
           "latest_build", "locate", "plot_curves", "zoo_version", "plot_matrix", "record_build", "split_version", "write_history", "RECORD_FACTS", "data_wait", "read_typed",
           *_WHERE]


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'zoo.api' has no attribute '{name}'")
    module, attribute = _WHERE[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
