"""torchvision's classification architectures as zoo models (``torchvision:resnet18``), built by
``torchvision.models.get_model``; listed from a cache made once per torchvision version, so
``zoo list`` imports neither torchvision nor torch. Needs the ``torchvision`` extra; without
torchvision installed this plugin registers nothing."""

from zoo.api import LibraryModel, architectures, hookimpl


@hookimpl
def register_models(register):
    for architecture in architectures("torchvision", "zoo_torchvision.models:describe"):
        register(architecture.name, LibraryModel("torchvision", architecture, "zoo_torchvision.models:create"))


@hookimpl
def import_weights(name, url, folder):
    from zoo_torchvision.weights import fetch

    return fetch(name, url, folder)
