"""The models a server answers with: each loaded through ``zoo.load``'s one path, and, for a name
that follows the store (``NAME@latest``), replaced by a newer build once it has loaded, verified
and answered a probe, in one assignment, so a request in flight is answered by one model or the
other, never by half of each."""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass, replace

import torch
from torch import nn

from zoo.api import (
    Facts,
    Located,
    Registry,
    ZooError,
    check_name,
    facts,
    file_sha256,
    forward,
    latest_build,
    load_located,
    locate,
    split_version,
)


@dataclass(frozen=True)
class Served:
    """One loaded model and the facts predicting with it needs."""

    model: nn.Module
    known: Facts
    source: Located
    output_shape: list[int]  # of one input's output

    @property
    def version(self) -> str:
        """Its version: the build number of a local build, else the first 12 hex digits of its sha256."""
        if self.source.source == "local":
            return self.source.label.rpartition("@")[2]
        return self.sha256[:12]

    @property
    def sha256(self) -> str:
        return self.source.sha256

    def describe(self) -> dict:
        """What ``GET /v1/models`` says of it."""
        meta, spec = self.model.zoo_meta, self.known.spec
        return {"version": self.version, "weights": self.source.label, "source": self.source.source,
                "sha256": self.sha256, "input": {k: v for k, v in vars(spec).items() if v is not None},
                "labels": list(self.known.classes or []), "metrics": meta.metrics, "recipe": meta.name}


@dataclass
class Slot:
    """A served name and the model currently answering for it; ``follows`` names the store entry
    whose newer builds replace it."""

    name: str
    current: Served
    follows: str | None = None


def parse(argument: str) -> tuple[str | None, str]:
    """'ALIAS=SPEC' -> (ALIAS, SPEC); 'SPEC' -> (None, SPEC)."""
    alias, sep, spec = argument.partition("=")
    return (alias, spec) if sep and "/" not in alias else (None, argument)


def open_slot(argument: str, registry: Registry, device: str | None = None) -> Slot:
    """Load the model ``argument`` names (anything ``zoo.load`` takes, or ALIAS=that) onto ``device``."""
    alias, spec = parse(argument)
    located = locate(spec, registry)
    served = _load(located, registry, device)
    name = alias or _served_name(spec, served)
    check_name(name, "served model name")
    name_part, version = split_version(spec)
    follows = name_part if version == "latest" and located.source == "local" else None
    return Slot(name, served, follows)


def _served_name(spec: str, served: Served) -> str:
    if served.source.source in ("file", "hub"):
        return served.model.zoo_meta.name
    return split_version(spec)[0].rpartition(":")[2]


def _load(located: Located, registry: Registry, device: torch.device | str | None = None) -> Served:
    located = replace(located, sha256=located.sha256 or file_sha256(located.path))
    model = load_located(located, registry, device)
    known = facts(model, registry)
    return Served(model, known, located, probe(model, known, located))


def probe(model: nn.Module, known: Facts, located: Located) -> list[int]:
    """The shape of the model's output for one input, from a run on a zero input of its spec: a model
    that cannot answer it is never served."""
    spec = known.spec
    x = torch.full((1, *spec.shape), spec.pad_id if spec.kind == "tokens" else 0, dtype=getattr(torch, spec.dtype))
    out = forward(model, x, known)
    if math.prod(out.shape) == 0 or not torch.isfinite(out).all():
        raise ZooError(f"{located.label}: answers a zero input with no finite output; not served")
    return list(out.shape[1:])


async def follow(slots: list[Slot], registry: Registry, every: float) -> None:
    """Check the store every ``every`` seconds and swap in newer builds; a build that fails to load
    or to answer is reported on stderr, once, and the served one kept."""
    rejected: set[str] = set()
    while True:
        await asyncio.sleep(every)
        for slot in (s for s in slots if s.follows):
            build = None
            try:
                build = latest_build(slot.follows)
                if build is None or build.sha256 in rejected or build.sha256 == slot.current.sha256:
                    continue
                located = Located(build.path, "local", build.label, build.sha256)
                device = next(slot.current.model.parameters()).device
                served = await asyncio.to_thread(_load, located, registry, device)
            except ZooError as exc:
                rejected.add(build.sha256 if build else "")
                print(f"zoo serve: {slot.name}: keeping {slot.current.source.label}: {exc}", file=sys.stderr)
                continue
            old, slot.current = slot.current, served
            print(f"zoo serve: {slot.name}: now {served.source.label} (was {old.source.label})", file=sys.stderr)
