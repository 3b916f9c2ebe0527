"""depthlab.data: every dataset's on-disk format (tiny files written here), search order, errors, splits,
and the batched loader checked against a per-image reference."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthlab.data import (
    Augment,
    DataError,
    DatasetNotFoundError,
    InMemoryLoader,
    StreamLoader,
    TensorSplit,
    epoch_permutation,
    load_data,
    make_loader,
    sources,
)
from depthlab.data.loader import _augment_params

FMNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.fixture(autouse=True)
def isolated_search_path(tmp_path_factory, monkeypatch):
    """No test sees the user's ~/.cache/depthlab or $DEPTHLAB_DATA."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DEPTHLAB_DATA", raising=False)


# --------------------------------------------------------------------------------------------- writers
def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_idx_dataset(
    folder: Path, n_train: int, n_test: int, gz: bool, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array)
    return arrays


def write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f)


def make_cifar10(root: Path, per_batch: int = 20, n_test: int = 30) -> np.ndarray:
    """torchvision's cifar-10-batches-py: data_batch_1..5, test_batch, batches.meta (latin-1 pickles)."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    first = None
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        first = data if first is None else first
        write_pickle(
            folder / f"data_batch_{i}",
            {"data": data, "labels": [int(v) for v in rng.integers(0, 10, per_batch)]},
        )
    write_pickle(folder / "test_batch", {"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
                                         "labels": [int(v) for v in rng.integers(0, 10, n_test)]})  # fmt: skip
    write_pickle(folder / "batches.meta", {"label_names": ["airplane", "automobile", "bird", "cat", "deer",
                                                          "dog", "frog", "horse", "ship", "truck"]})  # fmt: skip
    return first


def make_cifar100(root: Path, n_train: int = 200, n_test: int = 50) -> None:
    rng = np.random.default_rng(2)
    folder = root / "cifar-100-python"
    for part, n in (("train", n_train), ("test", n_test)):
        write_pickle(folder / part, {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                     "fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                                     "coarse_labels": [int(v) for v in rng.integers(0, 20, n)]})  # fmt: skip
    write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                                   "coarse_label_names": [f"s{i}" for i in range(20)]})  # fmt: skip


def make_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (20, 12)) -> None:
    rng = np.random.default_rng(3)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


# ------------------------------------------------------------------------------------------ MNIST family
@pytest.mark.skipif(not FMNIST_SYSTEM.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_has_the_published_shape_and_fixed_split():
    a = load_data("fashion-mnist")
    assert (len(a.train), len(a.val), len(a.test)) == (55000, 5000, 10000)
    assert a.train.images.shape[1:] == (1, 28, 28) and a.num_classes == 10 and a.in_channels == 1
    assert a.source == str(FMNIST_SYSTEM.parent)
    assert torch.bincount(a.test.labels).tolist() == [1000] * 10
    b = load_data("fashion-mnist")
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.val.images, b.val.images)
    x = torch.cat([a.train.images, a.val.images]).float() / 255
    assert x.mean().item() == pytest.approx(a.mean[0], abs=1e-3)
    assert x.std().item() == pytest.approx(a.std[0], abs=1e-3)


@pytest.mark.parametrize("layout,gz", [("", True), ("MNIST/raw", False), ("mnist", True)])
def test_mnist_reads_idx_files_in_every_layout(tmp_path, layout, gz):
    arrays = make_idx_dataset(tmp_path / layout if layout else tmp_path, 40, 10, gz)
    bundle = load_data("mnist", data_dir=tmp_path, val_size=5)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (35, 5, 10)
    assert torch.equal(bundle.test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert torch.equal(bundle.test.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    # train + val together are exactly the training file, each image once
    all_images = torch.cat([bundle.train.images, bundle.val.images])[:, 0]
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"])
    assert sorted(map(bytes, all_images.numpy())) == sorted(map(bytes, expected.numpy()))


def test_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "given", 20, 5, gz=True, seed=1)
    make_idx_dataset(tmp_path / "env", 21, 5, gz=True, seed=2)
    make_idx_dataset(Path.home() / ".cache" / "depthlab" / "MNIST" / "raw", 22, 5, gz=False, seed=3)
    monkeypatch.setenv("DEPTHLAB_DATA", str(tmp_path / "env"))
    assert len(load_data("mnist", data_dir=tmp_path / "given", val_size=0).train) == 20
    assert len(load_data("mnist", val_size=0).train) == 21
    monkeypatch.delenv("DEPTHLAB_DATA")
    assert len(load_data("mnist", val_size=0).train) == 22


def test_not_found_lists_every_place_and_both_fixes(tmp_path, monkeypatch):
    spec = sources.IDX_SPECS["fashion-mnist"]
    monkeypatch.setitem(
        sources.IDX_SPECS, "fashion-mnist", dataclasses.replace(spec, system_dir=str(tmp_path / "sys"))
    )
    monkeypatch.setenv("DEPTHLAB_DATA", str(tmp_path / "env"))
    (tmp_path / "given").mkdir()  # a --data-dir must exist (a missing one is its own error, test_faults.py)
    with pytest.raises(DatasetNotFoundError) as info:
        load_data("fashion-mnist", data_dir=tmp_path / "given")
    message = str(info.value)
    for place in ("given", "env", ".cache/depthlab", "sys", "FashionMNIST/raw"):
        assert place in message
    assert (
        "--data-dir" in message
        and "--download" in message
        and "apt-get install dataset-fashion-mnist" in message
    )
    assert "\n" not in message  # the CLI shows one line


def test_corrupt_idx_is_a_clear_error(tmp_path):
    make_idx_dataset(tmp_path, 10, 5, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_data("mnist", data_dir=tmp_path)


# ------------------------------------------------------------------------------------------------ CIFAR
def test_cifar10_reads_torchvision_pickles_without_md5(tmp_path):
    first = make_cifar10(tmp_path)
    bundle = load_data("cifar10", data_dir=tmp_path, val_size=10)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (90, 10, 30)
    assert bundle.classes[0] == "airplane" and bundle.num_classes == 10 and bundle.image_size == 32
    # pickled rows are channel-planar (R plane, G plane, B plane); ours are N×C×H×W
    images = torch.cat([bundle.train.images, bundle.val.images])
    target = torch.from_numpy(first[0].reshape(3, 32, 32))
    assert any(torch.equal(img, target) for img in images)


def test_cifar_default_val_split_is_a_tenth_of_a_small_set_and_5000_of_the_real_one(tmp_path):
    make_cifar10(tmp_path)
    assert len(load_data("cifar10", data_dir=tmp_path).val) == 10
    from depthlab.data.bundle import default_val_size

    assert default_val_size(50000) == 5000 and default_val_size(60000) == 5000


def test_cifar100_uses_fine_labels(tmp_path):
    make_cifar100(tmp_path)
    bundle = load_data("cifar100", data_dir=tmp_path)
    assert bundle.num_classes == 100 and len(bundle.test) == 50
    assert int(bundle.train.labels.max()) < 100


def test_cifar_missing_and_malformed(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_data("cifar10", data_dir=tmp_path)
    make_cifar10(tmp_path)
    write_pickle(
        tmp_path / "cifar-10-batches-py" / "test_batch",
        {"data": np.zeros((3, 100), np.uint8), "labels": [0, 1, 2]},
    )
    with pytest.raises(DataError):
        load_data("cifar10", data_dir=tmp_path)


# ------------------------------------------------------------------------------------------ image folders
def test_image_folder_skips_corrupt_files_by_path_or_fails_when_strict(tmp_path):
    make_image_folder(tmp_path, {"cat": 6, "dog": 5})
    bad = tmp_path / "dog" / "broken.png"
    bad.write_bytes(b"not an image at all")
    bundle = load_data(f"imagefolder:{tmp_path}", image_size=8, val_size=2)
    assert bundle.classes == ("cat", "dog") and bundle.skipped == (str(bad),)
    assert len(bundle.train) + len(bundle.val) == 11 and bundle.test is None and bundle.streamed
    with pytest.raises(DataError, match="broken.png"):
        load_data(f"imagefolder:{tmp_path}", strict=True)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no class folders"):
        load_data(f"imagefolder:{tmp_path}")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no readable images"):
        load_data(f"imagefolder:{tmp_path}")
    with pytest.raises(DatasetNotFoundError):
        load_data(f"imagefolder:{tmp_path / 'missing'}")


def test_image_folder_train_test_layout_streams_resized_batches(tmp_path):
    make_image_folder(tmp_path / "train", {"a": 8, "b": 8}, size=(30, 20))
    make_image_folder(tmp_path / "test", {"a": 2, "b": 3})
    bundle = load_data(f"imagefolder:{tmp_path}", image_size=16, val_size=4)
    assert len(bundle.test) == 5 and len(bundle.val) == 4 and len(bundle.train) == 12
    loader = make_loader(bundle, bundle.train, batch_size=4, train=True, augment=Augment(), workers=0)
    assert isinstance(loader, StreamLoader) and len(loader) == 3
    batches = list(loader.epoch(0))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 16, 16)] * 3
    # a file that disappears after the scan is skipped at decode time and reported
    Path(bundle.test.samples[0][0]).unlink()
    test_loader = make_loader(bundle, bundle.test, batch_size=10, workers=0)
    ((x, y),) = list(test_loader.epoch(0))
    assert x.shape[0] == 4 and test_loader.failed == [bundle.test.samples[0][0]]


# --------------------------------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_and_configurable():
    a = load_data("synthetic:channels=1,size=12,train=100,test=20,classes=4")
    b = load_data("synthetic:channels=1,size=12,train=100,test=20,classes=4")
    assert torch.equal(a.train.images, b.train.images) and a.train.images.shape[1:] == (1, 12, 12)
    assert a.num_classes == 4 and len(a.val) == 10
    with pytest.raises(ValueError, match="bad synthetic option"):
        load_data("synthetic:colour=3")


def test_unknown_dataset_and_bad_arguments():
    with pytest.raises(ValueError, match="choose from: fashion-mnist"):
        load_data("imagenet")
    with pytest.raises(ValueError, match="image_size"):
        load_data("synthetic", image_size=0)
    with pytest.raises(ValueError, match="val_size"):
        load_data("synthetic:train=50", val_size=50)


def test_image_size_resizes_in_memory_data():
    bundle = load_data("synthetic:size=12,train=40,test=10", image_size=20)
    assert bundle.train.images.shape[-2:] == (20, 20) and bundle.image_size == 20


# ------------------------------------------------------------------------------------------------ loader
def _split(n: int = 50, c: int = 3, size: int = 10) -> TensorSplit:
    g = torch.Generator().manual_seed(0)
    return TensorSplit(
        torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8), torch.arange(n) % 7
    )


MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _reference(image: torch.Tensor, oy: int, ox: int, flip: bool, pad: int) -> torch.Tensor:
    """torchvision semantics, one image: zero-pad, crop at (oy, ox), flip, ToTensor, Normalize."""
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    h, w = image.shape[-2:]
    crop = padded[:, oy : oy + h, ox : ox + w]
    if flip:
        crop = crop.flip(-1)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return (crop.float() / 255 - mean) / std


def test_batched_crop_flip_matches_per_image_reference():
    split = _split()
    loader = InMemoryLoader(
        split, batch_size=16, mean=MEAN, std=STD, shuffle=True, augment=Augment(4), seed=3
    )
    perm = epoch_permutation(len(split), 3, 2)
    oy, ox, flip = _augment_params(16, Augment(4), 3, 2, 1)
    x, y = list(loader.epoch(2))[1]
    assert x.is_contiguous(memory_format=torch.channels_last) and x.dtype == torch.float32
    assert flip.any() and not flip.all() and len(set(oy.tolist())) > 1  # parameters differ per image
    for b in range(16):
        index = int(perm[16 + b])
        expected = _reference(split.images[index], int(oy[b]), int(ox[b]), bool(flip[b]), 4)
        torch.testing.assert_close(x[b], expected, rtol=0, atol=1e-5)
        assert y[b] == split.labels[index]


def test_epochs_reshuffle_deterministically_and_drop_the_remainder():
    split = _split(50)
    loader = InMemoryLoader(split, batch_size=16, mean=MEAN, std=STD, shuffle=True, augment=None, seed=0)
    assert len(loader) == 3
    first = torch.cat([y for _, y in loader.epoch(0)])
    again = torch.cat([y for _, y in loader.epoch(0)])
    second = torch.cat([y for _, y in loader.epoch(1)])
    assert torch.equal(first, again) and not torch.equal(first, second) and first.numel() == 48
    resumed = torch.cat([y for _, y in loader.epoch(1, start=2)])
    assert torch.equal(resumed, second[32:])


def test_eval_loader_covers_every_image_once_and_shards_by_rank():
    split = _split(23)
    full = InMemoryLoader(split, batch_size=5, mean=MEAN, std=STD)
    x_full = torch.cat([x for x, _ in full.epoch()])
    assert x_full.shape[0] == 23
    expected = (split.images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(x_full, expected, rtol=0, atol=1e-5)
    shards = [torch.cat([x for x, _ in InMemoryLoader(split, batch_size=5, mean=MEAN, std=STD, rank=r, world_size=2).epoch()])
              for r in range(2)]  # fmt: skip
    torch.testing.assert_close(torch.cat(shards), x_full)


def test_ranks_split_the_global_batch_exactly():
    split = _split(64)
    kw = dict(batch_size=16, mean=MEAN, std=STD, shuffle=True, augment=Augment(), seed=5)
    one = [x for x, _ in InMemoryLoader(split, **kw).epoch(1)]
    two = [[x for x, _ in InMemoryLoader(split, rank=r, world_size=2, **kw).epoch(1)] for r in range(2)]
    for k in range(len(one)):
        assert torch.equal(one[k], torch.cat([two[0][k], two[1][k]]))
    with pytest.raises(ValueError, match="divisible"):
        InMemoryLoader(split, rank=0, world_size=3, **kw)
