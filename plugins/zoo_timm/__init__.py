"""timm's architectures as zoo models (``timm:resnet18``), built by ``timm.create_model``; listed
from a cache made once per timm version, so ``zoo list`` imports neither timm nor torch. Needs the
``timm`` extra; without timm installed this plugin registers nothing."""

from zoo.api import LibraryModel, architectures, hookimpl


@hookimpl
def register_models(register):
    for architecture in architectures("timm", "zoo_timm.models:describe"):
        register(architecture.name, LibraryModel("timm", architecture, "zoo_timm.models:create"))


@hookimpl
def convert_weights(path, config, source):
    from zoo_timm.hub import convert, is_timm

    return convert(config, source) if is_timm(config) else None
