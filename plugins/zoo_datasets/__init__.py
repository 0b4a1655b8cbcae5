"""Built-in datasets (MNIST, Fashion-MNIST, the notebook's synthetic data, image folders, tar shards, Parquet),
datasets made from datasets (subset, random split, concatenation, transformed copy), batch transforms,
and ``zoo data`` (pack, info, verify shards)."""

from zoo.api import hookimpl


@hookimpl
def register_datasets(register):
    register("mnist", "zoo_datasets.mnist:mnist")
    register("fashion-mnist", "zoo_datasets.mnist:fashion_mnist")
    register("synthetic-regression", "zoo_datasets.synthetic:synthetic_regression")
    register("random-tokens", "zoo_datasets.synthetic:random_tokens")
    register("image-folder", "zoo_datasets.images:image_folder")
    register("webdataset", "zoo_datasets.shards:webdataset")
    register("parquet", "zoo_datasets.parquet:parquet")
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


@hookimpl
def register_commands(register):
    from zoo_datasets import packing

    register("data", packing.run, help="pack a dataset into tar shards, summarize or verify them",
             arguments=packing.arguments,
             description="Datasets past memory (docs/data.md): zoo data pack writes any zoo dataset as WebDataset "
                         "tar shards with a manifest; zoo data info summarizes them; zoo data verify checks every "
                         "shard's size, sha256 and sample count against the manifest.")
