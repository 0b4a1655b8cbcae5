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


def test_download_from_a_local_mirror_with_checksums(tmp_path, mirror):
    _, url = mirror
    root = tmp_path / "data"
    test = zoo.create("mnist", root=str(root), split="test", download=True, mirror=url)
    assert len(test) == 10000
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert hashlib.md5((root / name).read_bytes()).hexdigest() == mnist_module.MNIST.gz_md5[name[:-3]]
    assert sorted(p.name for p in root.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_download_defaults_to_zoo_home(mirror, tmp_path):
    _, url = mirror
    zoo.create("mnist", split="test", download=True, mirror=url)
    assert (tmp_path / "zoo-home" / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_download_with_a_bad_checksum_leaves_nothing_behind(tmp_path, mirror):
    folder, url = mirror
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + (3).to_bytes(4, "big") + b"\1\2\3"))
    root = tmp_path / "data"
    with pytest.raises(zoo.ZooError, match=r"could not download t10k-labels-idx1-ubyte.gz:\n.*checksum mismatch"):
        zoo.create("mnist", root=root, split="test", download=True, mirror=url)
    assert not (root / "t10k-labels-idx1-ubyte.gz").exists()
    assert [p.name for p in root.iterdir()] == ["t10k-images-idx3-ubyte.gz"]  # only the verified file


def test_download_from_an_unreachable_mirror_names_the_url(tmp_path):
    with pytest.raises(zoo.ZooError, match=r"(?s)could not download .*http://127.0.0.1:9/.*Connection refused"):
        zoo.create("mnist", root=tmp_path, split="test", download=True, mirror="http://127.0.0.1:9/")


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
