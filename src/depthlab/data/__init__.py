"""Datasets and the fast in-memory loader.

``load_data(name, ...)`` returns a :class:`DataBundle`; names (also ``--data NAME`` on the command line):

* ``fashion-mnist`` — the built-in default (real data, works offline where Debian's
  ``dataset-fashion-mnist`` is installed); 55k/5k/10k train/val/test, 1×28×28, 10 classes.
* ``mnist`` — the same layout; 1×28×28.
* ``cifar10`` / ``cifar100`` — 45k/5k/10k, 3×32×32, as in the ResNet paper.
* ``imagefolder:PATH`` — your own images, one subfolder per class, resized to ``image_size`` (default 32).
* ``synthetic`` or ``synthetic:key=value,...`` — generated; keys classes, channels, size, train, test, seed.

Where files are looked for, and how, is in :mod:`depthlab.data.sources` and :mod:`depthlab.data.imagefolder`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from depthlab.data.bundle import (
    DataBundle,
    DataError,
    DatasetNotFoundError,
    FolderSplit,
    Split,
    TensorSplit,
    default_val_size,
    split_indices,
)
from depthlab.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD, scan_folder
from depthlab.data.loader import Augment, InMemoryLoader, Loader, StreamLoader, epoch_permutation, make_loader
from depthlab.data.sources import (
    CIFAR_SPECS,
    IDX_SPECS,
    RawDataset,
    check_data_dir,
    load_cifar,
    load_idx_dataset,
    parse_synthetic_options,
    synthetic,
)
from depthlab.errors import UsageError, UsageTypeError

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataError",
    "DatasetNotFoundError",
    "TensorSplit",
    "FolderSplit",
    "Split",
    "Augment",
    "InMemoryLoader",
    "StreamLoader",
    "Loader",
    "make_loader",
    "epoch_permutation",
    "load_data",
    "resize_images",
]

DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder:PATH", "synthetic")
DEFAULT_FOLDER_IMAGE_SIZE = 32


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 N×C×H×W → uint8 N×C×size×size (bilinear, antialiased when shrinking), in chunks."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    antialias = size < min(images.shape[-2:])
    for lo in range(0, images.shape[0], chunk):
        part = images[lo : lo + chunk].float()
        part = torch.nn.functional.interpolate(
            part, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
        )
        out[lo : lo + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _check_image_size(image_size: int | None) -> None:
    if image_size is not None and (
        not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1
    ):
        raise UsageError(f"image_size must be a positive integer, got {image_size!r}")


def _resolve_val_size(val_size: int | None, num_train: int) -> int:
    return default_val_size(num_train) if val_size is None else val_size


def _in_memory(
    name: str, raw: RawDataset, val_size: int | None, seed: int, image_size: int | None
) -> DataBundle:
    train, test = raw.train, raw.test
    if image_size is not None:
        train = TensorSplit(resize_images(train.images, image_size), train.labels)
        test = TensorSplit(resize_images(test.images, image_size), test.labels)
    keep, held = split_indices(len(train), _resolve_val_size(val_size, len(train)), seed)
    val = train.subset(held) if held.numel() else None
    train = train.subset(keep)
    _, c, h, _ = train.images.shape
    return DataBundle(
        name=name, train=train, val=val, test=test, num_classes=len(raw.classes), in_channels=c,
        image_size=h, mean=raw.mean, std=raw.std, classes=raw.classes, source=raw.source,
    )  # fmt: skip


def _image_folder(
    name: str, path: str, val_size: int | None, seed: int, image_size: int | None, strict: bool
) -> DataBundle:
    if not path:
        raise UsageError("imagefolder needs a path: --data imagefolder:PATH")
    root = Path(path).expanduser()
    size = DEFAULT_FOLDER_IMAGE_SIZE if image_size is None else image_size
    has_train = (root / "train").is_dir()
    train_dir = root / "train" if has_train else root
    samples, classes, skipped = scan_folder(train_dir, None, strict)
    train = FolderSplit(samples, size)
    test: FolderSplit | None = None
    val: FolderSplit | None = None
    if has_train and (root / "test").is_dir():
        test_samples, _, bad = scan_folder(root / "test", classes, strict)
        test, skipped = FolderSplit(test_samples, size), skipped + bad
    if has_train and (root / "val").is_dir() and val_size is None:
        val_samples, _, bad = scan_folder(root / "val", classes, strict)
        val, skipped = FolderSplit(val_samples, size), skipped + bad
    else:
        keep, held = split_indices(len(train), _resolve_val_size(val_size, len(train)), seed)
        val = train.subset(held) if held.numel() else None
        train = train.subset(keep)
    return DataBundle(
        name=name, train=train, val=val, test=test, num_classes=len(classes), in_channels=3,
        image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, classes=classes, source=str(root),
        skipped=skipped,
    )  # fmt: skip


def load_data(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    val_size: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    strict: bool = False,
) -> DataBundle:
    """Load dataset ``name`` (see the module docstring) with a validation split held out of its training set.

    ``val_size``: images held out for validation (default 5,000, or a tenth of a training set under
    50,000; 0 for none). ``seed`` fixes which ones. ``image_size`` resizes (in-memory data, once, at
    load) or sets the decode size (image folders). ``strict``: an unreadable image is an error instead of
    being skipped. ``download``: fetch through torchvision when not found locally.
    """
    if not isinstance(name, str):
        raise UsageTypeError(f"dataset name must be a string, got {type(name).__name__}")
    _check_image_size(image_size)
    check_data_dir(data_dir, download)
    kind, _, arg = name.partition(":")
    if kind in IDX_SPECS and not arg:
        return _in_memory(name, load_idx_dataset(name, data_dir, download), val_size, seed, image_size)
    if kind in CIFAR_SPECS and not arg:
        return _in_memory(name, load_cifar(name, data_dir, download), val_size, seed, image_size)
    if kind == "synthetic":
        return _in_memory(name, synthetic(**parse_synthetic_options(arg)), val_size, seed, image_size)
    if kind == "imagefolder":
        return _image_folder(name, arg, val_size, seed, image_size, strict)
    raise UsageError(f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)}")
