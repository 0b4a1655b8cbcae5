"""Starting from trained weights (``train.init``), freezing parameters (``train.freeze``) and giving
parameter groups their own optimizer settings (``train.param_groups``); all keyed by glob patterns
over the model's parameter names (``linear_relu_stack.4.*``)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from zoo.files import atomic_write_bytes
from zoo.recipe.schema import Settings
from zoo.text import table

REPORT = "init.json"  # in the run folder


@dataclass(frozen=True)
class Initial:
    """The weights ``train.init`` names, read and verified: where they came from and their tensors."""

    source: str  # as the recipe names it
    path: str
    sha256: str
    tensors: dict[str, torch.Tensor] = field(repr=False)


@dataclass
class InitReport:
    """What ``train.init`` took from a weights file, key by key (as Hugging Face's loading report)."""

    source: str  # as the recipe names it
    path: str
    sha256: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file: keep their initialisation
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)  # key, model's, file's shape
    new_head: list[str] = field(default_factory=list)  # the head's tensors, kept at their initialisation

    def lines(self) -> str:
        """The report as a table of every key that was not loaded, and a summary line."""
        rows = [(k, "new head: keeps its initialisation", "") for k in self.new_head]
        rows += [(k, "missing: keeps its initialisation", "") for k in self.missing]
        rows += [(k, "unexpected: not in the model", "") for k in self.unexpected]
        rows += [(k, "skipped: shape differs", f"model {tuple(a)}, file {tuple(b)}") for k, a, b in self.mismatched]
        total = len(self.loaded) + len(self.missing) + len(self.mismatched) + len(self.new_head)
        head = (f"init: loaded {len(self.loaded)} of the model's {total} tensors from {self.source} "
                f"({self.path}, sha256 {self.sha256[:12]}...)")
        return head if not rows else head + "\n" + table(("KEY", "STATUS", "SHAPES"), rows)

    def meta(self) -> dict:
        """What the weights' metadata records: where the weights came from and what was not taken."""
        facts = asdict(self)
        facts["loaded"] = len(self.loaded)
        return facts

    def save(self, folder: Path) -> None:
        atomic_write_bytes(folder / REPORT, json.dumps(asdict(self), indent=2).encode())


def matching(patterns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The names any of the glob ``patterns`` matches."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def head(model: nn.Module) -> str:
    """The dotted name of the model's head, its classifier: what its ``zoo_head`` attribute names, else
    its last module with parameters of its own (the last ``Linear`` of an MLP or an encoder)."""
    declared = getattr(model, "zoo_head", None)
    if isinstance(declared, str):
        return declared
    owners = [name for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))]
    return owners[-1] if owners else ""


def start(model: nn.Module, settings: Settings, initial: Initial | None) -> InitReport | None:
    """Copy what fits of ``initial`` (the weights ``train.init`` names), but the head with
    ``train.new_head``, then apply ``train.freeze``; problems are RecipeErrors located at the key that
    can fix them."""
    train = settings.train
    names = [name for name, _ in model.named_parameters()]
    _check_patterns(settings, "freeze", train.freeze, names)
    _check_patterns(settings, "init_skip", train.init_skip, list(model.state_dict()))
    report = None if initial is None else _init(model, settings, initial)
    frozen = set(matching(train.freeze, names))
    for name, parameter in model.named_parameters():
        if name in frozen:  # others keep what the model set
            parameter.requires_grad_(False)
    return report


def _check_patterns(settings: Settings, key: str, patterns: Sequence[str], names: Sequence[str]) -> None:
    for i, pattern in enumerate(patterns):
        if not matching([pattern], names):
            raise settings.error(settings.train.path(key) + (i,), f"'{pattern}' matches no parameter of the model "
                                 f"(they are named like {names[0]}; see zoo check)")


def _init(model: nn.Module, settings: Settings, initial: Initial) -> InitReport:
    train = settings.train
    where = train.path("init")
    tensors = initial.tensors
    state = model.state_dict()
    report = InitReport(initial.source, initial.path, initial.sha256)
    prefix = head(model) + "." if train.new_head else None
    for key, value in state.items():
        if prefix and key.startswith(prefix):
            report.new_head.append(key)
        elif key not in tensors:
            report.missing.append(key)
        elif tensors[key].shape != value.shape:
            report.mismatched.append((key, list(value.shape), list(tensors[key].shape)))
        else:
            report.loaded.append(key)
    report.unexpected = sorted(k for k in tensors.keys() - state.keys() if not (prefix and k.startswith(prefix)))
    allowed = set(matching(train.init_skip, [*state, *tensors]))
    refused = [k for k in [*report.missing, *report.unexpected, *(m[0] for m in report.mismatched)] if k not in allowed]
    if refused:
        detail = "; ".join(_why(report, k) for k in refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise settings.error(where, f"{train.init} does not fit the model: {detail}. Allow what the recipe changes "
                                    f"with train.init_skip (glob patterns, e.g. '{_pattern(refused[0])}')")
    with torch.no_grad():
        for key in report.loaded:
            state[key].copy_(tensors[key])
    return report


def _why(report: InitReport, key: str) -> str:
    if key in report.missing:
        return f"{key} is not in the file"
    if key in report.unexpected:
        return f"{key} is in the file but not the model"
    _, mine, theirs = next(m for m in report.mismatched if m[0] == key)
    return f"{key} has shape {tuple(mine)} in the model, {tuple(theirs)} in the file"


def _pattern(key: str) -> str:
    return key.rsplit(".", 1)[0] + ".*" if "." in key else key


def parameter_groups(model: nn.Module, settings: Settings) -> list[dict] | None:
    """The optimizer's parameter groups: each ``train.param_groups`` entry's parameters with its own
    settings (the first entry that matches a parameter takes it), then the rest with the optimizer's.
    Frozen parameters are left out. None when the recipe sets no groups."""
    train = settings.train
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not train.param_groups:
        return None if not train.freeze else [{"params": [p for _, p in trainable]}]
    taken: set[str] = set()
    groups = []
    for i, entry in enumerate(train.param_groups):
        patterns = [entry["params"]] if isinstance(entry["params"], str) else entry["params"]
        chosen = [(n, p) for n, p in trainable if n not in taken and matching(patterns, [n])]
        if not chosen:
            raise settings.error(train.path("param_groups") + (i, "params"),
                                 f"{patterns} matches no trainable parameter not already in an earlier group")
        taken.update(n for n, _ in chosen)
        groups.append({**{k: v for k, v in entry.items() if k != "params"}, "params": [p for _, p in chosen]})
    rest = [p for n, p in trainable if n not in taken]
    return groups + ([{"params": rest}] if rest else [])
