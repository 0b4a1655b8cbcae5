"""Built-in datasets (MNIST, Fashion-MNIST, the notebook's synthetic data, image folders), datasets made
from datasets (subset, random split, concatenation, transformed copy), and batch transforms."""

from zoo.api import hookimpl


@hookimpl
def register_datasets(register):
    register("mnist", "zoo_datasets.mnist:mnist")
    register("fashion-mnist", "zoo_datasets.mnist:fashion_mnist")
    register("synthetic-regression", "zoo_datasets.synthetic:synthetic_regression")
    register("random-tokens", "zoo_datasets.synthetic:random_tokens")
    register("image-folder", "zoo_datasets.images:image_folder")
    register("subset", "zoo_datasets.wrappers:subset")
    register("random-split", "zoo_datasets.wrappers:random_split")
    register("concat", "zoo_datasets.wrappers:concat")
    register("transformed", "zoo_datasets.wrappers:transformed")


@hookimpl
def register_transforms(register):
    register("normalize", "zoo_datasets.transforms:normalize")
    register("random-shift", "zoo_datasets.transforms:random_shift")
    register("horizontal-flip", "zoo_datasets.transforms:horizontal_flip")
    register("random-resized-crop", "zoo_datasets.transforms:random_resized_crop")
    register("random-erasing", "zoo_datasets.transforms:random_erasing")
    register("token-dropout", "zoo_datasets.transforms:token_dropout")
