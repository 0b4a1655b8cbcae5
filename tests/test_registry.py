"""The registry: discovery, records, lookups, fault isolation and duplicates."""

import sys
import warnings

import pytest
from conftest import ROOT, fixture_plugin, make_registry

import zoo
from zoo.registry import PluginWarning

BUILTIN = {
    "layer": ["linear", "relu", "flatten", "dropout", "layer-norm", "embedding", "sequential", "feed-forward",
              "positional-encoding", "split-heads", "merge-heads", "multi-head-attention"],
    "model": ["mnist-mlp", "simple-net", "transformer-encoder"],
    "dataset": ["mnist", "fashion-mnist", "synthetic-regression", "random-tokens", "image-folder", "webdataset", "parquet",
                "subset",
                "random-split", "concat", "transformed"],
    "optimizer": ["adam", "adamw", "sgd"],
    "scheduler": ["cosine", "one-cycle"],
    "loss": ["cross-entropy", "mse"],
    "metric": ["accuracy", "top-k-accuracy", "macro-f1", "micro-f1", "confusion-matrix", "mse", "mae"],
    "callback": ["early-stopping", "best-checkpoint", "csv-logger", "tensorboard", "lr-monitor", "mlflow-logger"],
    "transform": ["normalize", "random-shift", "horizontal-flip", "random-erasing", "token-dropout",
                  "random-resized-crop"],
    "exporter": ["onnx", "torch-export", "torchscript"],
    "strategy": ["ddp", "fsdp"],
}


def test_every_builtin_name_is_registered_with_its_kind_and_plugin():
    found = {(c.kind, c.name): c for c in zoo.components()}
    for kind, names in BUILTIN.items():
        for name in names:
            component = found[(kind, name)]
            assert component.plugin.dist == "zoo-models"
            assert component.summary, f"{name} has no summary"


def test_records_carry_parameters_with_types_and_defaults():
    params = {p.name: p for p in zoo.default_registry().get("feed-forward").params}
    assert (params["dim"].type, params["dim"].default) == ("int", "312")
    assert (params["scale"].type, params["scale"].default) == ("int", "4")
    attention = {p.name: p for p in zoo.default_registry().get("multi-head-attention").params}
    assert attention["hidden_dim"].type == "int | None" and attention["hidden_dim"].default == "None"


def test_wildcards_and_kind_filter():
    names = [c.name for c in zoo.components(pattern="*attention*")]
    assert names == ["multi-head-attention"]
    assert {c.kind for c in zoo.components(kind="optimizer")} == {"optimizer"}
    assert [c.name for c in zoo.components("loss", "c*")] == ["cross-entropy"]
    with pytest.raises(zoo.ZooError, match="unknown kind 'widget'"):
        zoo.components(kind="widget")


def test_create_builds_with_checked_params():
    layer = zoo.create("linear", in_features=4, out_features=2)
    assert tuple(layer.weight.shape) == (2, 4)
    assert zoo.create("datasets:synthetic-regression", n=7).tensors()[0].shape == (7, 3)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("feed-forwad", {}, r"unknown component 'feed-forwad'\. Did you mean 'feed-forward'\?"),
        ("linear", {"in_feature": 3}, r"unknown parameter 'in_feature'\. Did you mean 'in_features'\?.*accepts: in_features: int = 10"),
        ("linear", {"in_features": "2"}, r"parameter 'in_features' expects int, got str '2'"),
        ("linear", {"bias": 1}, r"parameter 'bias' expects bool, got int 1"),
        ("dropout", {"p": True}, r"parameter 'p' expects float, got bool"),
        ("mnist", {"split": "val"}, r"parameter 'split' expects Literal\['train', 'test'\], got str 'val'"),
        ("nobody:linear", {}, r"no plugin 'nobody' provides component 'linear'"),
    ],
)
def test_bad_names_and_params_are_clear_errors(name, params, message):
    with pytest.raises(zoo.ZooError, match=message):
        zoo.create(name, **params)


def test_missing_required_parameter_is_named():
    registry = make_registry(fixture_plugin("fx-good", "fx_good"))
    with pytest.raises(zoo.ZooError, match="missing required parameter 'width'"):
        registry.get("fx-lazy").build()


def test_kind_mismatch_says_what_the_name_is():
    with pytest.raises(zoo.ZooError, match="'adam' is an optimizer, not a layer"):
        zoo.create("adam", kind="layer")


def test_int_is_accepted_for_float_but_nothing_is_coerced():
    assert zoo.create("dropout", p=0).p == 0
    with pytest.raises(zoo.ZooError, match="expects float, got str"):
        zoo.create("dropout", p="0.5")


def test_string_factories_are_imported_on_first_use_only():
    sys.modules.pop("fx_lazy_target", None)
    registry = make_registry(fixture_plugin("fx-good", "fx_good"))
    component = registry.get("fx-lazy")
    assert [p.name for p in component.params] == ["width", "name"]  # read from source
    assert component.summary == "Return the parameters it was given."
    assert "fx_lazy_target" not in sys.modules
    assert component.build(width=3) == {"width": 3, "name": "x"}
    assert "fx_lazy_target" in sys.modules


def test_object_factories_are_described_live():
    registry = make_registry(fixture_plugin("fx-good", "fx_good"))
    component = registry.get("fx-double")
    assert component.summary == "Multiply by an integer factor."
    assert str(component.params[0]) == "factor: int = 2"


@pytest.mark.parametrize(
    "module, error",
    [
        ("fx_import_error", "RuntimeError: this plugin cannot be imported"),
        ("fx_hook_raises", "hook register_layers raised ValueError: hook exploded"),
        ("fx_bad_signature", "register_layers"),
        ("fx_bad_name", "'Bad_Name' is not kebab-case"),
    ],
)
def test_a_broken_plugin_warns_by_name_and_the_rest_keep_working(module, error):
    registry = make_registry(fixture_plugin("fx-broken", module), fixture_plugin("fx-good", "fx_good"))
    with pytest.warns(PluginWarning, match=r"zoo plugin 'fx-broken' .* is broken and was skipped") as caught:
        plugins = {p.name: p for p in registry.plugins}
    assert error in str(caught[0].message)
    assert plugins["fx-broken"].status == "broken" and error in plugins["fx-broken"].error
    assert plugins["fx-good"].status == "loaded"
    assert registry.get("fx-double").build(factor=3) is not None
    assert registry.get("feed-forward").plugin.name == "layers"
    # nothing a broken plugin staged before failing is registered
    assert not registry.components(pattern="fx-never")
    assert not registry.components(pattern="fx-bad")


def test_strict_mode_makes_plugin_errors_fatal():
    registry = make_registry(fixture_plugin("fx-broken", "fx_import_error"), strict=True)
    with pytest.raises(zoo.ZooError, match="fx-broken.*ZOO_PLUGINS_STRICT"):
        registry.components()


def test_strict_mode_makes_a_name_clash_fatal():
    registry = make_registry(fixture_plugin("fx-dup", "fx_dup"), strict=True)
    with pytest.raises(zoo.ZooError, match=r"layer .linear. is registered by .*\(name clashes are fatal"):
        registry.components()


def test_disabled_plugins_are_skipped(monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS_DISABLE", "models, training, timm, torchvision")
    registry = zoo.Registry.from_environment()
    status = {p.name: p.status for p in registry.plugins}
    assert {k: status[k] for k in ("layers", "models", "datasets", "training")} == {
        "layers": "loaded", "models": "disabled", "datasets": "loaded", "training": "disabled"}
    assert not registry.components(kind="model")
    with pytest.raises(zoo.ZooError, match="unknown model 'mnist-mlp'"):
        registry.get("mnist-mlp", "model")


def test_a_clash_with_a_builtin_keeps_the_bare_name_for_zoos_own_and_qualified_names_pick_either():
    registry = make_registry(fixture_plugin("fx-dup", "fx_dup"))
    with pytest.warns(PluginWarning) as caught:
        registry.components()
    message = str(caught[0].message)
    assert "layer 'linear' is registered by 'layers' (zoo-models 0.1.0, module zoo_layers)" in message
    assert "and 'fx-dup' (unknown, module fx_dup)" in message
    assert "'linear' means zoo's own 'layers:linear'; name the other 'fx-dup:linear'" in message
    assert registry.get("linear").plugin.name == "layers"  # saved recipes and weights keep their meaning
    assert registry.get("fx-dup:linear").build() == ("other", 1, 1)
    assert tuple(registry.get("layers:linear").build(in_features=2, out_features=3).weight.shape) == (3, 2)
    assert [c.plugin.name for c in registry.conflicts()[0]] == ["layers", "fx-dup"]


def test_plugins_load_once():
    registry = make_registry(fixture_plugin("fx-good", "fx_good"))
    first = registry.get("fx-double")
    assert registry.get("fx-double") is first
    assert len(registry.plugins) == len({p.name for p in registry.plugins})


def test_registering_after_load_is_not_possible_through_the_callback():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry = make_registry()
        assert len(registry.components()) >= sum(map(len, BUILTIN.values()))


def test_a_plugin_of_2000_components_lists_every_name_summary_and_parameter(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from scale import write_plugin
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    write_plugin(tmp_path, 2000, name="big")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = make_registry()  # the generated dist-info on sys.path makes it an installed plugin
    found = registry.components("layer", "big-*")
    assert sorted(c.name for c in found) == sorted(f"big-{i}" for i in range(2000))
    layer = registry.get("big-1234")
    assert layer.summary == "Generated layer number 1234: width times scale."
    assert [str(p) for p in layer.params] == ["width: int = 1235", "scale: float = 0.5", "name: str = 'l1234'"]
    assert [c.name for c in registry.components("layer", "big-199?")] == [f"big-199{i}" for i in range(10)]


def test_a_plugin_with_hooks_this_zoo_does_not_know_loads_its_known_ones_with_a_warning():
    registry = make_registry(fixture_plugin("fx-newer", "fx_unknown_hook"), fixture_plugin("fx-good", "fx_good"))
    plugins = {p.name: p for p in registry.plugins}
    assert plugins["fx-newer"].status == "loaded" and plugins["fx-good"].status == "loaded"
    assert registry.get("fx-known").plugin.name == "fx-newer"
    assert "unknown hook 'register_widgets'" in plugins["fx-newer"].warning
    assert "written for a newer zoo" in plugins["fx-newer"].warning


def test_a_misspelt_hook_is_named_with_a_did_you_mean(tmp_path):
    module = tmp_path / "fx_misspelt.py"
    module.write_text("from zoo import hookimpl\n\n\n@hookimpl\ndef zoo_epoch_ends(run, epoch, metrics):\n    pass\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        registry = make_registry(fixture_plugin("fx-misspelt", "fx_misspelt"))
        [plugin] = [p for p in registry.plugins if p.name == "fx-misspelt"]
    finally:
        sys.path.remove(str(tmp_path))
    assert plugin.status == "loaded"
    assert "unknown hook 'zoo_epoch_ends'. Did you mean 'zoo_epoch_end'?" in plugin.warning
