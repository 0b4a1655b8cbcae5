"""Datasets past memory: tar shards written by zoo data pack and read by index (the webdataset
component), rank and worker sharding, seeded orders, mid-epoch resume, broken shards, augmentation."""

import io
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import run_zoo, write_recipe
from PIL import Image

import zoo
from zoo.assembly.data import InMemoryDataset
from zoo.assembly.distributed import Context
from zoo.registry import Registry
from zoo.training.loop import Batches, sample_seed
from zoo_datasets.packing import write
from zoo_datasets.shards import ShardedDataset

STREAMED = """\
name: streamed
model:
  component: mnist-mlp
  hidden: [32]
data:
  dataset: {component: webdataset, root: ROOT, window: 2}
  train_split: train
  eval_split: test
  batch_size: 50
  workers: 2
train:
  epochs: 3
  seed: 0
  threads: 1
  checkpoint_every: 4
  optimizer: {component: adam, lr: 1.0e-3}
  loss: cross-entropy
metrics: [accuracy]
"""


@pytest.fixture(scope="module")
def registry():
    return Registry.from_environment()


@pytest.fixture(scope="module")
def numbered(tmp_path_factory) -> ShardedDataset:
    """103 samples whose input is their own index, in shards of 10, 10, ... 3 (uneven)."""
    root = tmp_path_factory.mktemp("numbered")
    data = InMemoryDataset(torch.arange(103, dtype=torch.float32)[:, None], torch.arange(103) % 7,
                           info={"name": "numbers", "input": {"kind": "tensor", "shape": [1], "dtype": "float32"}})
    write(data, root / "train", 10**9, 10, log=lambda line: None)
    return zoo.create("webdataset", split="train", root=str(root), window=3)


def test_zoo_data_pack_of_mnist_reads_back_equal_to_the_in_memory_dataset_sample_for_sample(tmp_path, registry):
    out = tmp_path / "packed"
    result = run_zoo("data", "pack", "mnist", str(out), "--split", "test", "--shard-samples", "3000")
    assert result.returncode == 0, result.stderr
    assert f"{out / 'test'}: 10,000 samples in 4 shard(s)" in result.stdout and "1x28x28, 10 classes" in result.stdout
    manifest = json.loads((out / "test" / "manifest.json").read_text())
    assert [s["samples"] for s in manifest["shards"]] == [3000, 3000, 3000, 1000]
    assert manifest["classes"] == [str(i) for i in range(10)] and manifest["input"]["shape"] == [1, 28, 28]
    mnist = registry.get("mnist", "dataset").build(split="test")
    shards = zoo.create("webdataset", split="test", root=str(out))
    x, y = mnist.batch(torch.arange(len(mnist)))
    read = [shards[i] for i in range(len(shards))]
    assert torch.equal(torch.stack([s[0] for s in read]), x) and torch.equal(torch.stack([s[1] for s in read]), y)
    assert shards.info["classes"] == mnist.info["classes"] and shards.info["input"] == {**mnist.info["input"],
                                                                                        "preprocess": None}
    info = run_zoo("data", "info", str(out))
    assert info.returncode == 0 and info.stdout.strip() == f"{out / 'test'}: 10,000 samples in 4 shard(s), " \
        f"{sum(s['bytes'] for s in manifest['shards']) / 1e6:,.1f} MB, image 1x28x28, 10 classes"
    again = run_zoo("data", "pack", "mnist", str(out), "--split", "test")
    assert again.returncode == 2
    assert again.stderr.strip() == f"zoo: error: {out / 'test'} exists; pack into another DEST, or delete it first"


def test_verify_names_a_corrupt_and_a_missing_shard_and_reading_them_is_one_line(tmp_path, mnist_shards):
    root = tmp_path / "copy"
    shutil.copytree(mnist_shards, root)
    assert run_zoo("data", "verify", str(root)).returncode == 0
    shards = sorted((root / "train").glob("shard-*.tar"))
    with open(shards[1], "r+b") as f:  # the first sample's PNG bytes, past the tar headers
        f.seek(1024 + 100)
        f.write(b"\xff" * 16)
    shards[2].unlink()
    result = run_zoo("data", "verify", str(root))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{shards[0]}: ok" in lines
    assert any(line.startswith(f"{shards[1]}: does not match the manifest") for line in lines)
    assert f"{shards[2]}: cannot read it (No such file or directory)" in lines
    assert result.stderr.strip() == "zoo: 2 shard(s) do not match their manifest; pack the split again"
    data = zoo.create("webdataset", split="train", root=str(root))
    with pytest.raises(zoo.ZooError, match=rf"^{shards[2]}: cannot open the shard \(No such file or directory\)$"):
        data[300]
    recipe = write_recipe(tmp_path, STREAMED, root=root)
    built = run_zoo("build", str(recipe), "--out", str(tmp_path / "run"), "--no-progress")
    assert built.returncode == 2 and len(built.stderr.strip().splitlines()) == 1, built.stderr
    assert built.stderr.startswith((f"zoo: error: {shards[1]}: ", f"zoo: error: {shards[2]}: ")), built.stderr


def test_ranks_read_disjoint_samples_in_equal_steps_and_workers_change_nothing(numbered):
    """2 ranks x 2 workers over shards of 10, 10 ... 3 samples: each rank its own samples (103 is odd: one
    sample repeats, to give both ranks 52), as many batches, the same batches as with no workers."""
    order = numbered.order(torch.Generator().manual_seed(3))
    seen = {}
    for rank in (0, 1):
        share = Context(rank, 2).shard(order)
        with_workers = [x[:, 0].long().tolist() for x, _ in Batches(numbered, 8, torch.device("cpu"), workers=2)(share)]
        alone = [x[:, 0].long().tolist() for x, _ in Batches(numbered, 8, torch.device("cpu"))(share)]
        assert with_workers == alone and [len(b) for b in alone] == [8] * 6 + [4]
        seen[rank] = [i for batch in alone for i in batch]
    assert len(seen[0]) == len(seen[1]) == 52
    assert sorted(seen[0] + seen[1]) == sorted([*range(103), order[0].item()])  # the padding: the epoch's first
    assert set(seen[0]) & set(seen[1]) == {order[0].item()}


def test_the_order_is_seeded_and_shuffles_shards_then_samples_within_windows(numbered):
    a, b = (numbered.order(torch.Generator().manual_seed(5)) for _ in range(2))
    other = numbered.order(torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, other)
    assert sorted(a.tolist()) == list(range(103))
    shard_of = (torch.arange(103) // 10)[a].tolist()
    size = {shard: 3 if shard == 10 else 10 for shard in range(11)}
    position, windows = 0, []
    while position < 103:  # a window's first samples show its shards: then they are all its samples
        shards = []
        for shard in shard_of[position:]:
            if shard not in shards:
                shards.append(shard)
            if len(shards) == 3:
                break
        end = position + sum(size[s] for s in shards)
        assert set(shard_of[position:end]) == set(shards)
        windows.append(shards)
        position = end
    assert len(windows) == 4 and sorted(s for w in windows for s in w) == list(range(11))


def test_augmentation_depends_on_the_seed_only_and_evaluation_is_what_predict_makes(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    settings = {"root": str(tmp_path / "images"), "channels": 3, "crop": 24, "mean": [0.5] * 3, "std": [0.25] * 3,
                "augment": True}
    folder = zoo.create("image-folder", split="train", training=True, **settings)
    out = tmp_path / "shards"
    assert run_zoo("data", "pack", str(tmp_path / "images"), str(out)).returncode == 0
    shards = zoo.create("webdataset", split="train", root=str(out), training=True, **{
        k: v for k, v in settings.items() if k != "root"})
    seed = sample_seed((0, 2), 4)
    first, again = folder.sample(4, seed), folder.sample(4, seed)
    assert first[0].shape == (3, 24, 24) and torch.equal(first[0], again[0])
    assert torch.equal(shards.sample(4, seed)[0], first[0])  # the same file, in a shard: the same crop
    assert not torch.equal(folder.sample(4, sample_seed((0, 3), 4))[0], first[0])
    state = torch.get_rng_state()
    folder.sample(1, seed)
    assert torch.equal(torch.get_rng_state(), state)  # the training run's own random stream is untouched
    plain = zoo.create("image-folder", split="train", **settings)  # not the training split: no augmentation
    model_input = zoo.api.prepare(str(plain.files[4][0]), plain.decoding.spec)[0]
    assert torch.equal(plain.sample(4, seed)[0], model_input)


def test_parquet_files_as_the_hub_writes_them_read_back_equal_by_row_group(tmp_path, registry):
    """MNIST as the Hub stores datasets: PNG bytes in an image struct, a ClassLabel feature in the
    schema's metadata; two files of row groups of 128 (the last shorter)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    mnist = registry.get("mnist", "dataset").build(split="test")
    inputs, targets = mnist.tensors()
    features = {"image": {"_type": "Image"},
                "label": {"_type": "ClassLabel", "names": [f"digit {i}" for i in range(10)]}}
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    for number, rows in enumerate((range(0, 300), range(300, 500))):
        images = []
        for i in rows:
            buffer = io.BytesIO()
            Image.fromarray(inputs[i, 0].numpy()).save(buffer, "PNG")
            images.append({"bytes": buffer.getvalue(), "path": f"{i}.png"})
        table = pa.table({"image": images, "label": targets[list(rows)].tolist()}).replace_schema_metadata(metadata)
        pq.write_table(table, tmp_path / f"test-{number:05d}.parquet", row_group_size=128)
    data = zoo.create("parquet", split="test", files=str(tmp_path / "{split}-*.parquet"), channels=1)
    assert len(data) == 500 and [s.samples for s in data.shards] == [128, 128, 44, 128, 72]
    assert data.info["classes"][3] == "digit 3" and data.info["input"]["shape"] == [1, 28, 28]
    x, y = mnist.batch(torch.arange(500))
    order = data.order(torch.Generator().manual_seed(0))
    batches = Batches(data, 64, torch.device("cpu"), workers=2)(order)
    read = torch.cat([b[0] for b in batches]), None
    assert torch.equal(read[0], x[order]) and sorted(order.tolist()) == list(range(500))
    assert torch.equal(torch.stack([data[i][1] for i in range(0, 500, 50)]), y[::50])
    (tmp_path / "test-00001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(zoo.ZooError, match=r"test-00001.parquet: not a readable Parquet file"):
        zoo.create("parquet", split="test", files=str(tmp_path / "{split}-*.parquet"), channels=1)
    with pytest.raises(zoo.ZooError, match=r"^parquet: no files match .*/train-\*.parquet$"):
        zoo.create("parquet", split="train", files=str(tmp_path / "{split}-*.parquet"))


@pytest.mark.parametrize("args, said", [
    (["", "out"], "SOURCE is empty: give a dataset name (mnist) or an image folder"),
    (["mnist", "out", "--with", "split=train"], "--with split=...: the splits are chosen with --split SPLIT"),
    (["mnist", "out", "--split", "../../etc"], "split '../../etc' is not a folder name"),
    (["mnist", "out", "--with", "channels"], "--with channels: expected KEY=VALUE"),
    (["mnist", "out", "--shard-size", "nan"], "'nan' is not a size such as 256MB"),
    (["nosuch", "out"], "unknown dataset 'nosuch'"),
])
def test_zoo_data_pack_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, args, said):
    out = run_zoo("data", "pack", *args, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and said in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []
