"""Built-in datasets: MNIST (bundled subset), Fashion-MNIST, the notebook's synthetic data, image folders."""

from zoo.api import hookimpl


@hookimpl
def register_datasets(register):
    register("mnist", "zoo_datasets.mnist:mnist")
    register("fashion-mnist", "zoo_datasets.mnist:fashion_mnist")
    register("synthetic-regression", "zoo_datasets.synthetic:synthetic_regression")
    register("random-tokens", "zoo_datasets.synthetic:random_tokens")
    register("image-folder", "zoo_datasets.images:image_folder")
