"""Sharing on the Hugging Face Hub protocol (zoo push, hf-hub: names) against a fake Hub on
127.0.0.1 (tests/fakehub.py), and zoo reproduce."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REGRESSION, ROOT, run_zoo

import zoo
from zoo.testing import tiny_build
from zoo.weights.format import content_digest, read, write

hf = pytest.importorskip("huggingface_hub")


def offline(monkeypatch, on: bool = True):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", on)


def fresh_cache(monkeypatch, tmp_path, name: str):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / name))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / f"{name}-zoo-home"))


def test_push_then_load_round_trip_on_a_clean_machine(hub, tmp_path, monkeypatch):
    for name in ("mnist-mlp", "transformer-encoder-reverse"):
        result = run_zoo("push", name, f"hf-hub:zoo-test/{name}")
        assert result.returncode == 0, result.stderr
        assert "committed model.safetensors, config.json, README.md, recipe.yaml" in result.stdout
    fresh_cache(monkeypatch, tmp_path, "clean")
    for name in ("mnist-mlp", "transformer-encoder-reverse"):
        published, shared = zoo.load(name), zoo.load(f"hf-hub:zoo-test/{name}")
        commit = hub.repos[f"zoo-test/{name}"].branches["main"]
        assert shared.zoo_source.source == "hub" and shared.zoo_source.label == f"hf-hub:zoo-test/{name}@{commit}"
        assert shared.zoo_meta.tensors_sha256 == published.zoo_meta.tensors_sha256
        for key, value in published.state_dict().items():
            assert torch.equal(value, shared.state_dict()[key]), key
    x = zoo.create("mnist", split="test").tensors()[0][:5]
    assert zoo.predict("hf-hub:zoo-test/mnist-mlp", x) == zoo.predict("mnist-mlp", x)
    verified = run_zoo("verify", "hf-hub:zoo-test/mnist-mlp")
    assert "mnist-mlp: accuracy on mnist test: measured 0.9607, recorded 0.9607  ok" in verified.stdout.replace(
        "hf-hub:zoo-test/mnist-mlp", "mnist-mlp")
    card = run_zoo("card", "hf-hub:zoo-test/mnist-mlp", "--no-verify")
    assert "| test_accuracy | 0.9607 |" in card.stdout and "Hugging Face Hub" in card.stderr
    readme = hub.repos["zoo-test/mnist-mlp"].commits[hub.repos["zoo-test/mnist-mlp"].branches["main"]]["README.md"]
    front = yaml.safe_load(readme.decode().split("---\n")[1])
    assert front["library_name"] == "zoo" and front["license"] == "mit" and front["datasets"] == ["mnist"]
    [result] = front["model-index"][0]["results"]
    assert result["task"]["type"] == "image-classification"
    assert {"type": "accuracy", "value": 0.9607, "name": "test_accuracy"} in result["metrics"]
    config = json.loads(hub.repos["zoo-test/mnist-mlp"].commits[commit_of(hub, "zoo-test/mnist-mlp")]["config.json"])
    assert config["library_name"] == "zoo" and config["classes"][3] == "3" and config["plugins"]["layers"]["dist"] == "zoo"


def commit_of(hub, repo: str, branch: str = "main") -> str:
    return hub.repos[repo].branches[branch]


def test_repush_is_a_no_op_and_a_different_model_needs_force_and_revisions_pin(hub, tmp_path, monkeypatch):
    assert run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/pinned").returncode == 0
    first = commit_of(hub, "zoo-test/pinned")
    again = run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/pinned")
    assert again.returncode == 0 and "unchanged, nothing pushed" in again.stdout
    assert commit_of(hub, "zoo-test/pinned") == first
    (tmp_path / "b").mkdir()
    tiny_build({**REGRESSION, "name": "other"}, tmp_path / "b", "train.epochs=1")
    refused = run_zoo("push", "other@latest", "hf-hub:zoo-test/pinned")
    assert refused.returncode == 2
    assert "model.safetensors, config.json, README.md, recipe.yaml differ from what is pushed; --force" in refused.stderr
    assert commit_of(hub, "zoo-test/pinned") == first
    assert run_zoo("push", "other@latest", "hf-hub:zoo-test/pinned", "--force").returncode == 0
    second = commit_of(hub, "zoo-test/pinned")
    assert second != first
    assert zoo.load("hf-hub:zoo-test/pinned").zoo_meta.name == "other"
    assert zoo.load(f"hf-hub:zoo-test/pinned@{first}").zoo_meta.name == "mnist-mlp"  # the pin holds
    for short in (first[:7], first[:12]):  # the forms zoo push prints and sharing.md shows
        assert zoo.load(f"hf-hub:zoo-test/pinned@{short}").zoo_source.label == f"hf-hub:zoo-test/pinned@{first}"
    with pytest.raises(zoo.ZooError, match=r"has no branch or tag 'abcdef0', and no commit starts with it"):
        zoo.load("hf-hub:zoo-test/pinned@abcdef0")
    branches = set(hub.repos["zoo-test/pinned"].branches)
    refused = run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/pinned@v2")  # a new branch from main (other), refused
    assert refused.returncode == 2 and "--force replaces them" in refused.stderr
    assert set(hub.repos["zoo-test/pinned"].branches) == branches  # and nothing created
    assert run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/pinned@v1", "--force").returncode == 0  # a new branch, from main
    assert zoo.load("hf-hub:zoo-test/pinned@v1").zoo_meta.name == "mnist-mlp"
    assert zoo.load("hf-hub:zoo-test/pinned").zoo_meta.name == "other"


def test_offline_after_one_download_and_not_before(hub, tmp_path, monkeypatch):
    assert run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/offline").returncode == 0
    fresh_cache(monkeypatch, tmp_path, "offline")
    zoo.load("hf-hub:zoo-test/offline")
    requests = len(hub.requests)
    offline(monkeypatch)
    assert zoo.load("hf-hub:zoo-test/offline").zoo_meta.name == "mnist-mlp"
    assert len(hub.requests) == requests  # not one request
    fresh_cache(monkeypatch, tmp_path, "never")
    result = run_zoo("predict", "hf-hub:zoo-test/offline", "3,5")
    assert result.returncode == 2
    assert result.stderr.strip() == ("zoo: error: hf-hub:zoo-test/offline: not in the local Hugging Face cache, and "
                                     "HF_HUB_OFFLINE is set: download it once online")


def test_a_folder_push_writes_the_repo_layout(tmp_path):
    result = run_zoo("push", "mnist-mlp", str(tmp_path / "repo"))
    assert result.returncode == 0 and sorted(p.name for p in (tmp_path / "repo").iterdir()) == [
        "README.md", "config.json", "model.safetensors", "recipe.yaml"]
    assert (tmp_path / "repo" / "model.safetensors").read_bytes() == zoo.load("mnist-mlp").zoo_source.path.read_bytes()
    assert "unchanged, nothing written" in run_zoo("push", "mnist-mlp", str(tmp_path / "repo")).stdout
    refused = run_zoo("push", "transformer-encoder-reverse", str(tmp_path / "repo"))
    assert refused.returncode == 2 and "already there with other content; --force replaces them" in refused.stderr
    assert zoo.load(str(tmp_path / "repo" / "model.safetensors")).zoo_meta.name == "mnist-mlp"


def test_hub_weights_everywhere_a_name_goes(hub, tmp_path, monkeypatch):
    assert run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/everywhere").returncode == 0
    commit = commit_of(hub, "zoo-test/everywhere")
    # a catalog entry pointing at a Hub repo instead of shipping bytes
    sha = zoo.load("mnist-mlp").zoo_source.sha256
    shutil.copy(ROOT / "zoo" / "recipes" / "mnist-mlp-tuned.yaml", tmp_path / "recipe.yaml")
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump({"models": [{
        "name": "hub-mlp", "summary": "mnist-mlp, from the Hub", "recipe": "recipe.yaml",
        "weights": {"url": f"hf-hub:zoo-test/everywhere@{commit}", "sha256": sha}}]}))
    monkeypatch.setenv("ZOO_CATALOG", str(tmp_path / "catalog.yaml"))
    zoo.default_registry.cache_clear()
    assert zoo.load("hub-mlp").zoo_source.describe().startswith("hub-mlp (published in the catalog, sha256 443a29d9")
    monkeypatch.delenv("ZOO_CATALOG")
    zoo.default_registry.cache_clear()
    # train.init
    recipe = yaml.safe_load((ROOT / "zoo" / "recipes" / "mnist-mlp.yaml").read_text())
    recipe["train"]["init"] = "hf-hub:zoo-test/everywhere"
    (tmp_path / "init.yaml").write_text(yaml.safe_dump(recipe))
    checked = run_zoo("check", str(tmp_path / "init.yaml"))
    assert checked.returncode == 0, checked.stderr
    # zoo serve
    from zoo_serve.models import open_slot

    slot = open_slot("hf-hub:zoo-test/everywhere", zoo.default_registry())
    assert slot.name == "mnist-mlp" and slot.current.version == slot.current.sha256[:12] == sha[:12]


def test_a_repo_that_is_not_a_zoo_model_or_a_failing_hub_is_one_line(hub, tmp_path, monkeypatch):
    from fakehub import Repo
    from safetensors.torch import save_file

    hub.repos["someone/readme-only"] = Repo({"main": "a" * 40}, {"a" * 40: {"README.md": b"# hello"}})
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    hub.repos["someone/plain"] = Repo({"main": "b" * 40}, {"b" * 40: {"model.safetensors": plain.read_bytes()}})
    assert run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/faults").returncode == 0
    monkeypatch.setattr(hf.utils._http.time, "sleep", lambda seconds: None)  # the library's retry backoff
    cases = [
        ("hf-hub:someone/readme-only", [], "the repo has no model.safetensors, so it is not a zoo model"),
        ("hf-hub:someone/plain", [], "no zoo metadata"),
        ("hf-hub:zoo-test/faults@nope", [], "zoo-test/faults has no revision 'nope'"),
        ("hf-hub:zoo-test/nothing-here", [], "no such repo on the Hub, or your token cannot read it"),
        ("hf-hub:zoo-test/faults", [401, 401, 401, 401, 401, 401], "hf-hub:zoo-test/faults: "),
        ("hf-hub:zoo-test/faults", [500] * 12, "the Hub answered 500"),
        ("hf-hub:zoo-test/faults", ["truncate"] * 6, "hf-hub:zoo-test/faults: "),
        ("hf-hub:bad..name/x", [], "is not a Hub name"),
    ]
    for name, failures, message in cases:
        fresh_cache(monkeypatch, tmp_path, f"case-{len(hub.requests)}")
        hub.fail[:] = failures
        result = run_zoo("predict", name, "3,5")
        hub.fail.clear()
        assert result.returncode == 2, (name, result.stderr)
        *said, error = result.stderr.strip().splitlines()  # which weights, when located; then one line
        assert len(said) <= 1 and message in error, (name, said, error)
        kept = [p.name for p in Path(hf.constants.HF_HUB_CACHE).rglob("*") if p.is_file()]
        assert not [k for k in kept if k.endswith(".incomplete") or failures and k.endswith(".safetensors")], kept
    assert zoo.load("hf-hub:zoo-test/faults").zoo_meta.name == "mnist-mlp"  # the repo itself is fine


def test_reproduce_says_identical_and_the_card_shows_it(tmp_path):
    (tmp_path / "one").mkdir()
    run = tiny_build({**REGRESSION, "name": "again"}, tmp_path / "one", "train.epochs=2")
    result = run_zoo("reproduce", "again@latest")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("again@1: identical (the same tensors")
    assert [b.version for b in zoo.weights.store.builds("again")] == [1]  # a reproduction is not a build
    card = run_zoo("card", "again@latest").stdout
    assert "## Reproduced" in card and "identical (the same tensors" in card
    # other tensors whose recorded figures training gives again (another CPU's build): reproduced, exit 0
    tensors, meta = read(run / "weights.safetensors")
    assert meta.versions.machine.capability == torch.backends.cpu.get_cpu_capability()  # what float results hang on
    assert meta.versions.machine.blas and meta.versions.machine.describe()
    bumped = {k: v.clone() + (0.5 if k.endswith("bias") else 0) for k, v in tensors.items()}
    path = tmp_path / "bumped.safetensors"
    write(path, bumped, dataclasses.replace(meta, tensors_sha256=content_digest(bumped)).json())
    close = run_zoo("reproduce", str(path))
    assert close.returncode == 0, close.stderr
    assert re.match(rf"{re.escape(str(path))}: reproduced: every recorded metric within its tolerance; train_loss "
                    r"(\d\.\d{4}) -> \1 \(within ±2%\); the tensors differ, largest difference 0\.5 in .*bias",
                    close.stdout), close.stdout
    # figures training does not give again: differs, exit 1
    claimed = {**meta.metrics, "train_loss": meta.metrics["train_loss"] * 1.05}
    write(path, bumped, dataclasses.replace(meta, metrics=claimed, tensors_sha256=content_digest(bumped)).json())
    differs = run_zoo("reproduce", str(path))
    assert differs.returncode == 1
    assert re.search(r": differs; train_loss \d\.\d{4} -> \d\.\d{4} \(outside ±2%\); the tensors differ",
                     differs.stdout), differs.stdout


def test_a_folder_zoo_push_wrote_loads_like_a_hub_repo(tmp_path):
    pushed = run_zoo("push", "mnist-mlp", str(tmp_path / "repo"))
    assert pushed.returncode == 0, pushed.stderr
    model = zoo.load(tmp_path / "repo")  # as a Hugging Face user loads a local repo folder
    assert model.zoo_source.path == tmp_path / "repo" / "model.safetensors"
    assert model.zoo_meta.tensors_sha256 == zoo.load("mnist-mlp").zoo_meta.tensors_sha256
    (tmp_path / "empty").mkdir()
    with pytest.raises(zoo.ZooError, match=r"empty is a folder with no model.safetensors or weights.safetensors"):
        zoo.load(tmp_path / "empty")


def test_a_hub_file_changed_in_the_cache_after_its_download_is_refused(hub, tmp_path, monkeypatch):
    assert run_zoo("push", "mnist-mlp", "hf-hub:zoo-test/tampered").returncode == 0
    fresh_cache(monkeypatch, tmp_path, "tamper")
    path = zoo.load("hf-hub:zoo-test/tampered").zoo_source.path
    blob = path.resolve()
    data = blob.read_bytes()
    label = rb'\"classes\": [\"0\"'
    assert data.count(label) == 1
    # a label edited in place: the tensors (and zoo's digest of them) are untouched, the metadata parses
    blob.write_bytes(data.replace(label, label.replace(b"0", b"O")))
    with pytest.raises(zoo.ZooError, match=r"hf-hub:zoo-test/tampered: model.safetensors in the Hugging Face cache "
                                           r"is not what the Hub announced \(sha256 [0-9a-f]{12}\.\.\., the file's "):
        zoo.load("hf-hub:zoo-test/tampered")
    blob.write_bytes(data)  # as downloaded: loads again
    assert zoo.load("hf-hub:zoo-test/tampered").zoo_meta.classes[0] == "0"
