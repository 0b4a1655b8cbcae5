"""Datasets: the bundled MNIST, every file format, checksums, downloads, and the generated sets."""

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import StaticServer

import zoo
from zoo_datasets import mnist as mnist_module

BUNDLED = mnist_module.BUNDLED
FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_bundled_mnist_is_the_real_subset_and_test_split():
    train, test = zoo.create("mnist"), zoo.create("mnist", split="test")
    assert (len(train), len(test)) == (5000, 10000)
    images, labels = train.tensors()
    assert images.dtype == torch.uint8 and images.shape == (5000, 1, 28, 28)
    assert torch.bincount(labels).tolist() == [500] * 10
    x, y = test.batch(torch.arange(64))
    assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0 and x.shape == (64, 1, 28, 28)
    first_image, first_label = test[0]
    assert first_image.shape == (1, 28, 28) and first_label.item() == 7  # the first MNIST test digit is a 7
    assert torch.bincount(test.tensors()[1]).tolist()[:3] == [980, 1135, 1032]


def test_bundled_files_carry_their_attribution():
    readme = (BUNDLED / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme and "LeCun" in readme


def _reference_arrays():
    test = zoo.create("mnist", split="test")
    images, labels = test.tensors()
    return images[:, 0].numpy(), labels.numpy()


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_reads_raw_idx_files(tmp_path):
    images, labels = _reference_arrays()
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, compress=False)
    loaded = zoo.create("mnist", root=str(tmp_path), split="test")
    assert torch.equal(loaded.tensors()[0][:, 0], torch.from_numpy(images))
    assert torch.equal(loaded.tensors()[1], torch.from_numpy(labels).long())


def test_reads_npz(tmp_path):
    images, labels = _reference_arrays()
    np.savez(tmp_path / "mnist.npz", x_train=images[:100], y_train=labels[:100], x_test=images, y_test=labels)
    from_folder = zoo.create("mnist", root=str(tmp_path), split="train")
    from_file = zoo.create("mnist", root=str(tmp_path / "mnist.npz"), split="test")
    assert len(from_folder) == 100 and len(from_file) == 10000
    assert torch.equal(from_file.tensors()[0][:, 0], torch.from_numpy(images))


def test_reads_the_notebooks_npy_layout_with_flat_rows(tmp_path):
    images, labels = _reference_arrays()
    np.save(tmp_path / "x_train.npy", images[:50].reshape(50, 784))
    np.save(tmp_path / "y_train_label.npy", labels[:50])
    loaded = zoo.create("mnist", root=tmp_path)
    assert loaded.tensors()[0].shape == (50, 1, 28, 28)
    assert torch.equal(loaded.tensors()[0][:, 0], torch.from_numpy(images[:50]))


def test_npy_with_pickled_objects_is_refused(tmp_path):
    np.save(tmp_path / "x_train.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y_train_label.npy", np.zeros(1, dtype=np.uint8))
    with pytest.raises(zoo.ZooError, match="cannot read x_train.npy"):
        zoo.create("mnist", root=tmp_path)


def test_corrupted_canonical_file_is_rejected_by_checksum(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(BUNDLED / name, tmp_path / name)
    # re-compress the images with one pixel changed: valid gzip and IDX, wrong content
    raw = bytearray(gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes()))
    raw[5000] ^= 0xFF
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(zoo.ZooError, match=r"t10k-images-idx3-ubyte.gz: checksum mismatch"):
        zoo.create("mnist", root=tmp_path, split="test")


def test_recompressed_canonical_file_passes(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        raw = gzip.decompress((BUNDLED / name).read_bytes())
        (tmp_path / name).write_bytes(gzip.compress(raw, compresslevel=1))
    assert len(zoo.create("mnist", root=tmp_path, split="test")) == 10000


def test_truncated_and_broken_files_are_clear_errors(tmp_path):
    images, labels = _reference_arrays()
    _write_idx(tmp_path / "train-images-idx3-ubyte", images[:10], compress=False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:10], compress=False)
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-100])
    with pytest.raises(zoo.ZooError, match=r"declares shape \(10, 28, 28\).*truncated"):
        zoo.create("mnist", root=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x1f\x8b" + data[:50])
    with pytest.raises(zoo.ZooError, match="corrupt gzip data"):
        zoo.create("mnist", root=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04" + data)
    with pytest.raises(zoo.ZooError, match="not an IDX file"):
        zoo.create("mnist", root=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    with pytest.raises(zoo.ZooError, match="its images file is missing"):
        zoo.create("mnist", root=tmp_path)


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(zoo.ZooError) as info:
        zoo.create("mnist", root=tmp_path, split="test")
    message = str(info.value)
    assert str(tmp_path) in message and "t10k-images-idx3-ubyte[.gz]" in message
    assert "download=True" in message and "x_test.npy" in message


@pytest.fixture
def mirror(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(BUNDLED / name, folder / name)
    server = StaticServer(folder)
    yield folder, server.url
    server.close()


def test_download_from_a_local_mirror_with_checksums_into_zoo_home(tmp_path, mirror):
    _, url = mirror
    root = tmp_path / "zoo-home" / "data" / "mnist"
    test = zoo.create("mnist", split="test", download=True, mirror=url)
    assert len(test) == 10000
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert hashlib.md5((root / name).read_bytes()).hexdigest() == mnist_module.MNIST.gz_md5[name[:-3]]
    assert sorted(p.name for p in root.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_a_download_never_writes_where_a_recipe_says(tmp_path, mirror):
    _, url = mirror
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(zoo.ZooError, match=r"download=True fetches MNIST into .*zoo-home/data/mnist, which zoo "
                                           r"chooses: leave out root"):
        zoo.create("mnist", root=str(elsewhere), split="test", download=True, mirror=url)
    assert not elsewhere.exists()
    assert len(zoo.create("mnist", root=str(BUNDLED), split="test", download=True)) == 10000  # the files are there


def test_download_with_a_bad_checksum_leaves_nothing_behind(tmp_path, mirror):
    folder, url = mirror
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + (3).to_bytes(4, "big") + b"\1\2\3"))
    root = tmp_path / "zoo-home" / "data" / "mnist"
    with pytest.raises(zoo.ZooError, match=r"could not download t10k-labels-idx1-ubyte.gz: .*checksum mismatch"):
        zoo.create("mnist", split="test", download=True, mirror=url)
    assert not (root / "t10k-labels-idx1-ubyte.gz").exists()
    assert [p.name for p in root.iterdir()] == ["t10k-images-idx3-ubyte.gz"]  # only the verified file, no .partial


def test_download_from_an_unreachable_mirror_names_the_url(tmp_path):
    with pytest.raises(zoo.ZooError, match=r"(?s)could not download .*http://127.0.0.1:9/.*Connection refused"):
        zoo.create("mnist", split="test", download=True, mirror="http://127.0.0.1:9/")


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_reads_debians_files_by_default():
    test = zoo.create("fashion-mnist", split="test")
    assert len(test) == 10000 and test.info["classes"][9] == "Ankle boot"
    assert torch.bincount(test.tensors()[1]).tolist() == [1000] * 10


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(zoo.ZooError, match="apt-get install dataset-fashion-mnist"):
        zoo.create("fashion-mnist", root=tmp_path)


def test_synthetic_regression_is_seeded_and_splits_differ():
    a, b = zoo.create("synthetic-regression"), zoo.create("synthetic-regression")
    assert a.tensors()[0].shape == (1000, 3) and a.tensors()[1].shape == (1000, 5)
    assert torch.equal(a.tensors()[0], b.tensors()[0])
    assert not torch.equal(a.tensors()[0], zoo.create("synthetic-regression", seed=1).tensors()[0])
    assert not torch.equal(a.tensors()[0], zoo.create("synthetic-regression", split="test").tensors()[0])


def test_random_tokens_have_trailing_padding_and_task_targets():
    data = zoo.create("random-tokens", n=200, seq_len=12, vocab_size=30, min_len=3, task="reverse")
    tokens, targets = data.tensors()
    assert tokens.shape == (200, 12) and tokens.dtype == torch.int64
    lengths = (tokens != 0).sum(1)
    assert lengths.min() >= 3 and lengths.max() <= 12 and len(lengths.unique()) > 5
    for row, length in zip(tokens, lengths):
        assert (row[:length] >= 1).all() and (row[:length] < 30).all() and (row[length:] == 0).all()
    row, target, length = tokens[0], targets[0], lengths[0]
    assert torch.equal(target[:length], row[:length].flip(0)) and (target[length:] == -100).all()
    copy = zoo.create("random-tokens", n=200, seq_len=12, vocab_size=30, min_len=3)
    assert torch.equal(copy.tensors()[0], tokens)
    assert torch.equal(copy.tensors()[1][0, :length], row[:length])


# Image folders, decoded sample by sample, and DataLoader workers.

@pytest.fixture(scope="module")
def png_folder(tmp_path_factory):
    """300 real MNIST training images as PNG files under ROOT/train/<digit>/, and 100 under ROOT/test/."""
    from PIL import Image

    root = tmp_path_factory.mktemp("pngs")
    images, labels = zoo.create("mnist").tensors()
    picks = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:400].tolist()
    for n, i in enumerate(picks):
        folder = root / ("train" if n < 300 else "test") / str(int(labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i, 0].numpy()).save(folder / f"{i:05d}.png")
    return root, images[picks], labels[picks]


def test_image_folder_decodes_the_same_pixels_and_labels(png_folder):
    root, images, labels = png_folder
    data = zoo.create("image-folder", split="train", root=str(root))
    assert len(data) == 300 and data.info["classes"] == [str(d) for d in range(10)]
    decoded = {(x * 255).round().to(torch.uint8).numpy().tobytes(): int(y) for x, y in (data[i] for i in range(300))}
    expected = {images[i].numpy().tobytes(): int(labels[i]) for i in range(300)}
    assert decoded == expected
    x, _ = data[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    rgb = zoo.create("image-folder", split="test", root=str(root), channels=3, size=14)
    assert rgb[0][0].shape == (3, 14, 14)


def test_image_folder_bad_input_is_a_clear_error(png_folder, tmp_path):
    from PIL import Image

    root, _, _ = png_folder
    with pytest.raises(zoo.ZooError, match=r"image-folder: no folder .*valid .*expected .*/valid/<class>"):
        zoo.create("image-folder", split="valid", root=str(root))
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("no image")
    with pytest.raises(zoo.ZooError, match="no images .* in the class folders of"):
        zoo.create("image-folder", split="train", root=str(tmp_path))
    Image.new("L", (8, 8)).save(tmp_path / "train" / "cat" / "a.png")
    Image.new("L", (9, 8)).save(tmp_path / "train" / "cat" / "b.png")
    (tmp_path / "train" / "cat" / "c.png").write_bytes(b"not a png")
    data = zoo.create("image-folder", split="train", root=str(tmp_path))
    with pytest.raises(zoo.ZooError, match=r"b.png is 9x8, the first image 8x8; give the dataset a size"):
        data[1]
    with pytest.raises(zoo.ZooError, match=r"^image-folder: .*c.png: not an image zoo can read \(PNG, JPEG"):
        data[2]
    with pytest.raises(zoo.ZooError, match="channels must be 1 .* or 3"):
        zoo.create("image-folder", split="train", root=str(tmp_path), channels=2)


def test_image_folder_without_pillow_says_which_extra(png_folder, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pillow(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("blocked")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pillow)
    with pytest.raises(zoo.ZooError, match=r"needs Pillow: pip install -e '\.\[images\]' in a zoo checkout"):
        zoo.create("image-folder", split="train", root=str(png_folder[0]))


def test_workers_give_the_same_batches_in_the_same_order(png_folder):
    from zoo.training.loop import Batches

    data = zoo.create("image-folder", split="train", root=str(png_folder[0]))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(5))
    plain = Batches(data, 32, torch.device("cpu"))
    workers = Batches(data, 32, torch.device("cpu"), workers=2, prefetch=3)
    for skip in (0, 4):  # a whole pass, then one resumed after 4 batches, with the same workers
        expected = [(x.clone(), y.clone()) for x, y in plain(order, skip)]
        got = list(workers(order, skip))
        assert len(got) == len(expected) == 10 - skip
        assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(expected, got))
    assert workers.loader._iterator is not None and workers.loader.persistent_workers


def test_a_recipe_with_workers_trains_to_the_same_weights(png_folder, tmp_path):
    from conftest import run_zoo

    from zoo.weights.format import read_meta

    root = png_folder[0]
    recipe = tmp_path / "pngs.yaml"
    recipe.write_text(f"""\
name: png-mlp
model:
  component: sequential
  layers:  # dropout draws from the global RNG: loading must not (with or without workers)
    - flatten
    - {{component: linear, in_features: 784, out_features: 32}}
    - relu
    - {{component: dropout, p: 0.3}}
    - {{component: linear, in_features: 32, out_features: 10}}
data:
  dataset: {{component: image-folder, root: {root}}}
  batch_size: 50
train:
  epochs: 2
  optimizer: {{component: adam, lr: 1.0e-3}}
  loss: cross-entropy
metrics: [accuracy]
""")
    digests = []
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        result = run_zoo("build", str(recipe), "--out", str(out), "--set", f"data.workers={workers}", "--no-progress")
        assert result.returncode == 0, result.stderr
        digests.append(read_meta(out / "weights.safetensors").tensors_sha256)
    assert digests[0] == digests[1]
    bad = run_zoo("check", str(recipe), "--set", "data.workers=-1")
    assert bad.returncode == 2 and "data.workers: expects a non-negative integer, got -1" in bad.stderr

