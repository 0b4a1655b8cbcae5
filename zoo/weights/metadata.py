"""What a weights file records about itself: one typed, versioned record, :class:`WeightsMeta`, in
the spirit of timm's ``PretrainedCfg``. It is written in one place (``Run.metadata``), from typed
values; it is read back here, from any file (a stranger's too): migrated from older versions of the
record, then every field checked against its type and bounds, so a malformed file is one error
naming the file and the field, never a traceback further on."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from zoo import deprecation, typed
from zoo.weights.machine import Machine
from zoo.weights.spec import InputSpec, InputStats
from zoo.errors import ZooError
from zoo.names import is_name

FORMAT = "zoo-weights/1"  # what marks a safetensors file as zoo's
VERSION = 4  # of this record: a file without "version" is version 1
MAX_BYTES = 16 << 20  # of the metadata JSON a file may carry
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class PluginVersion:
    """The distribution that provided a plugin when the file was saved."""

    dist: str
    version: str


@dataclass(frozen=True)
class Versions:
    zoo: str
    torch: str
    plugins: dict[str, PluginVersion] = field(default_factory=dict)  # by plugin name
    cpu: str | None = None  # torch's CPU capability where it was trained (AVX2, AVX512 ...)
    machine: Machine | None = None  # the CPU, its instruction set, BLAS and oneDNN: what float results depend on


@dataclass(frozen=True)
class Evaluation:
    """Where the recorded metrics were measured: the dataset node and its split."""

    dataset: dict | str
    split: str | None


@dataclass(frozen=True)
class Stopped:
    """Training ended before its last epoch (early stopping)."""

    after_epoch: int
    reason: str


@dataclass(frozen=True)
class Chosen:
    """A callback kept the weights of another epoch than the last (the best one)."""

    epoch: int
    reason: str
    facts: dict[str, object] = field(default_factory=dict)  # the monitored number and its value


@dataclass(frozen=True)
class Init:
    """What ``train.init`` took from another weights file."""

    source: str
    path: str
    sha256: str
    loaded: int
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()  # key, model's, file's shape
    new_head: tuple[str, ...] = ()  # the head's tensors, kept at their initialisation (train.new_head)


@dataclass(frozen=True)
class Imported:
    """Weights another library made, converted into a zoo file (a timm repo on the Hub, torchvision's
    weights through ``zoo import``): where they came from, exactly, and their terms."""

    library: str  # "timm 1.0.31"
    source: str  # hf-hub:timm/resnet18.a1_in1k@<commit>, or the URL they were fetched from
    tag: str = ""  # the library's name of these weights: resnet18.a1_in1k, IMAGENET1K_V1
    license: str = ""
    sha256: str = ""  # of the file as the library published it


@dataclass(frozen=True)
class WeightsMeta:
    """The metadata of a zoo weights file."""

    name: str  # the recipe's name
    model: dict | str  # the component node the weights fit
    recipe: dict  # the resolved recipe they were trained with
    recipe_version: int  # the schema version of that recipe (zoo.recipe.migrations)
    metrics: dict[str, float]  # what the build recorded for these weights
    version: int = VERSION
    evaluation: Evaluation | None = None
    seed: int | None = None
    processes: int = 1
    data_sha256: str | None = None  # of the training data, when held in memory
    versions: Versions | None = None
    epoch: int | None = None  # whose metrics these are
    input: InputSpec | None = None
    input_stats: InputStats | None = None  # of the training inputs: what predict compares an input with
    transform: tuple[dict | str, ...] = ()  # the evaluation transforms' component nodes, in order: how an
    # input becomes what the model saw in evaluation (predict, serve and export apply them)
    classes: tuple[str, ...] | None = None
    components: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> name -> plugin:name
    init: Init | None = None
    frozen: tuple[str, ...] = ()
    stopped: Stopped | None = None
    chosen: Chosen | None = None
    imported: Imported | None = None
    fingerprint: str = ""  # sha256 of the tensors' names, shapes and dtypes (zoo.weights.format)
    tensors_sha256: str = ""  # sha256 of the tensors' bytes in name order

    def __post_init__(self):
        if not is_name(self.name):
            raise ValueError(f"name {self.name[:40]!r} is not a model name (kebab-case, at most 100 characters)")
        if not (isinstance(self.model, str) or "component" in self.model):
            raise ValueError("model is not a component node (a name, or a mapping with 'component')")
        if self.classes is not None and len(self.classes) > MAX_CLASSES:
            raise ValueError(f"{len(self.classes):,} classes is more than {MAX_CLASSES:,}")
        if self.processes < 1 or (self.epoch is not None and self.epoch < 0):
            raise ValueError("processes and epoch must be positive")

    def json(self) -> str:
        """The record as the JSON a file stores (sorted keys: identical builds give identical bytes)."""
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)

    def __getitem__(self, key: str) -> object:
        """``meta["metrics"]``: the mapping zoo 0.1 documented, deprecated for the attribute."""
        return self._as_mapping(key)

    def get(self, key: str, default: object = None) -> object:
        """``meta.get("metrics")``: the mapping zoo 0.1 documented, deprecated for the attribute."""
        try:
            return self._as_mapping(key)
        except KeyError:
            return default

    def _as_mapping(self, key: str) -> object:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        deprecation.warn(f"model.zoo_meta[{key!r}]", f"model.zoo_meta.{key}", since="0.1", stacklevel=4)
        value = getattr(self, key)
        return asdict(value) if is_dataclass(value) else value


def parse(text: str, source: Path) -> WeightsMeta:
    """The record in a file's metadata JSON ``text``, migrated and checked; ZooError naming ``source``."""
    if len(text) > MAX_BYTES:
        raise ZooError(f"{source}: its metadata is {len(text):,} bytes, more than {MAX_BYTES:,}; not a zoo weights file")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ZooError(f"{source}: its metadata is not JSON ({type(exc).__name__}); the file is corrupt") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ZooError(f"{source}: not a zoo weights file (no zoo metadata); load it with safetensors directly")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ZooError(f"{source}: metadata version {version!r} is not a positive integer")
    if version > VERSION:
        raise ZooError(f"{source}: written by a newer zoo (metadata version {version}; this zoo reads up to "
                       f"{VERSION}): upgrade zoo")
    for step in MIGRATIONS[version - 1:]:
        data = step(copy.deepcopy(data))
    try:
        return typed.read(WeightsMeta, data, f"{source}: metadata")
    except RecursionError:
        raise ZooError(f"{source}: its metadata nests too deeply; the file is corrupt") from None


def _from_1(data: dict) -> dict:
    """Version 1 (zoo 0.1.0's first files): plugins as "distribution version" strings, the chosen
    epoch's facts beside its epoch and reason, no recipe version (it was 1)."""
    versions = data.get("versions")
    if isinstance(versions, dict) and isinstance(versions.get("plugins"), dict):
        versions["plugins"] = {name: dict(zip(("dist", "version"), (*str(text).split(" ", 1), "")[:2]))
                               for name, text in versions["plugins"].items()}
    chosen = data.get("chosen")
    if isinstance(chosen, dict):
        data["chosen"] = {"epoch": chosen.get("epoch"), "reason": chosen.get("reason"),
                          "facts": {k: v for k, v in chosen.items() if k not in ("epoch", "reason")}}
    return {**data, "recipe_version": 1, "version": 2}


def _from_2(data: dict) -> dict:
    """Version 2 kept the evaluation transforms only inside the recipe (``data.eval_transform``, by
    default ``data.transform``); version 3 records them as a field of their own, so a file whose
    recipe a later schema refuses can still be served."""
    section = data.get("recipe", {}).get("data") if isinstance(data.get("recipe"), dict) else None
    section = section if isinstance(section, dict) else {}
    transform = section.get("eval_transform", section.get("transform")) or []
    return {**data, "transform": transform if isinstance(transform, list) else [transform], "version": 3}


def _from_3(data: dict) -> dict:
    """Version 4 added what imported weights record (``imported``, an input spec's ``preprocess``);
    a version 3 file has neither."""
    return {**data, "version": 4}


# MIGRATIONS[n - 1] brings a record of version n to version n + 1.
MIGRATIONS = [_from_1, _from_2, _from_3]
