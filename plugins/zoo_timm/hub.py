"""timm's Hub format (``model.safetensors`` + ``config.json`` with ``architecture`` and
``pretrained_cfg``, as ``timm.models.push_to_hf_hub`` writes it) as a zoo record: the model node, the
evaluation preprocessing timm's ``resolve_data_config`` + ``create_transform`` give, ImageNet's class
names when the head is ImageNet's, the license and the tag."""

from __future__ import annotations

import re

from zoo.api import Imported, InputSpec, Preprocess, ZooError, imported_record, install_hint


def is_timm(config: object) -> bool:
    return isinstance(config, dict) and isinstance(config.get("architecture"), str) and isinstance(
        config.get("pretrained_cfg"), dict)


def convert(config: dict, source: str):
    """The zoo record of a timm repo whose config.json is ``config``."""
    try:
        import timm
        from timm.data import ImageNetInfo, create_transform, infer_imagenet_subset, resolve_data_config
    except ImportError:
        raise ZooError(f"{source} is a timm model: {install_hint('timm')}") from None
    architecture, cfg = config["architecture"], config["pretrained_cfg"]
    if architecture not in timm.list_models():
        raise ZooError(f"{source}: timm {timm.__version__} has no architecture '{architecture}' (its config.json "
                       "names it): upgrade timm")
    args = config.get("model_args") if isinstance(config.get("model_args"), dict) else {}
    num_classes = config.get("num_classes", cfg.get("num_classes", 1000))
    model = {"component": f"timm:{architecture}", **args, "num_classes": num_classes}
    data = resolve_data_config(pretrained_cfg=cfg)
    preprocess = preprocessing(create_transform(**data, is_training=False), data, source)
    channels = data["input_size"][0]
    spec = InputSpec("image", (channels, *preprocess.crop), "float32", mode="RGB" if channels == 3 else "L",
                     preprocess=preprocess)
    subset = infer_imagenet_subset(cfg) if num_classes else None
    classes = ImageNetInfo(subset).label_descriptions() if subset else None
    tag = f"{architecture}.{cfg['tag']}" if cfg.get("tag") else architecture
    name = re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")[:100]
    return imported_record(name, model, spec, classes if classes and len(classes) == num_classes else None,
                           Imported(f"timm {timm.__version__}", source, tag, str(cfg.get("license") or "")))


def preprocessing(transform, data: dict, source: str) -> Preprocess:
    """What timm's evaluation transform does, read off its steps: Resize, CenterCrop, to tensor, Normalize."""
    steps = list(getattr(transform, "transforms", [transform]))
    kinds = [type(step).__name__ for step in steps]
    if kinds[:2] != ["Resize", "CenterCrop"] or kinds[-1] != "Normalize" or len(kinds) != 4:
        raise ZooError(f"{source}: timm's evaluation transform is {' -> '.join(kinds)}; zoo records resize, centre "
                       "crop and normalize (crop_mode 'center')")
    resize, crop = steps[0], steps[1]
    size = resize.size if isinstance(resize.size, (list, tuple)) else [resize.size]
    return Preprocess(tuple(size), resize.interpolation.value, tuple(crop.size), tuple(data["mean"]),
                      tuple(data["std"]))
