"""The plugin API: what a zoo plugin imports, all from this one module.

    from zoo.api import hookimpl, InMemoryDataset, ZooError

Hooks and their arguments are documented in :mod:`zoo.registry.hookspecs`. Importing this module does
not import torch (so ``zoo list`` stays fast); the names that need it are imported on first use.
"""

from __future__ import annotations

import importlib

from zoo.errors import ZooError
from zoo.files import RunPath, atomic_write_bytes, digest, download, home
from zoo.plots import INSTALL_HINT as PLOT_HINT
from zoo.plots import curves as plot_curves
from zoo.plots import matrix as plot_matrix
from zoo.registry.hookspecs import hookimpl
from zoo.text import did_you_mean
from zoo.training.folders import final_metrics, write_history
from zoo.weights.store import record as record_build

# name -> "module:attribute", imported on first use because the module imports torch
_LAZY = {
    "InMemoryDataset": "zoo.assembly.data:InMemoryDataset",
    "InputSpec": "zoo.weights.spec:InputSpec",
    "Run": "zoo.training.run:Run",
    "content_digest": "zoo.weights.format:content_digest",
    "Transform": "zoo.assembly.transforms:Transform",
    # commands
    "Registry": "zoo.registry:Registry",
    "positive": "zoo.cli:positive",
    # trained models, for plugins that put them to use (zoo serve): from a name to a checked model,
    # and from raw input to predictions, through the code zoo predict runs
    "Located": "zoo.weights.locate:Located",
    "locate": "zoo.weights.locate:locate",
    "load_located": "zoo.weights.load:load_located",
    "latest_build": "zoo.weights.store:latest",
    "split_version": "zoo.weights.store:split",
    "check_name": "zoo.names:check",
    "file_sha256": "zoo.files:file_sha256",
    "model_card": "zoo.use.card:card",
    "Facts": "zoo.use.predict:Facts",
    "facts": "zoo.use.predict:facts",
    "prepare": "zoo.use.predict:prepare",
    "forward": "zoo.use.predict:forward",
    "interpret": "zoo.use.predict:interpret",
    "check_top_k": "zoo.use.predict:check_top_k",
    "read_npy": "zoo.use.predict:read_npy",
    "decode_image": "zoo.use.predict:decode_image",
}

__all__ = ["PLOT_HINT", "RunPath", "ZooError", "atomic_write_bytes", "did_you_mean", "digest", "download", "final_metrics", "home",
           "hookimpl", "plot_curves", "plot_matrix", "record_build", "write_history", *_LAZY]


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo.api' has no attribute '{name}'")
    module, _, attribute = _LAZY[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
