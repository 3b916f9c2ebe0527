"""What a loaded dataset is: a :class:`DataBundle` of train / validation / test splits.

In-memory datasets (Fashion-MNIST, MNIST, CIFAR, synthetic) hold each split as a :class:`TensorSplit`:
``images`` uint8 N×C×H×W (0–255, as stored on disk) and ``labels`` int64 N. Image folders hold a
:class:`FolderSplit` (paths and labels) and are decoded while training, through a DataLoader.

The validation split is held out of the training set with a fixed seed, so every run of a dataset (any
training seed) sees the same split; model selection uses it, never the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from depthlab.errors import DepthlabError, UsageError

__all__ = [
    "DataError",
    "DatasetNotFoundError",
    "TensorSplit",
    "FolderSplit",
    "Split",
    "DataBundle",
    "default_val_size",
    "split_indices",
]


class DataError(DepthlabError, ValueError):
    """A dataset that exists but cannot be used: bad format, corrupt file, empty folder."""


class DatasetNotFoundError(DepthlabError, FileNotFoundError):
    """No copy of the dataset was found in any of the places searched."""


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """A split held in memory: ``images`` uint8 N×C×H×W, ``labels`` int64 N."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(
                f"images must be a uint8 N×C×H×W tensor, got {self.images.dtype} of shape "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"labels must be an int64 tensor of shape ({self.images.shape[0]},), got "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> TensorSplit:
        return TensorSplit(self.images[indices].contiguous(), self.labels[indices].contiguous())


@dataclass(frozen=True, eq=False)
class FolderSplit:
    """A split streamed from image files: ``samples`` are (path, label) pairs; images are decoded as RGB,
    their shorter side resized to ``image_size`` and centre-cropped to ``image_size``×``image_size``."""

    samples: tuple[tuple[str, int], ...]
    image_size: int

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def subset(self, indices: torch.Tensor) -> FolderSplit:
        return FolderSplit(tuple(self.samples[i] for i in indices.tolist()), self.image_size)


Split = TensorSplit | FolderSplit


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A dataset ready to train on.

    ``mean``/``std`` are per-channel statistics of pixel values scaled to [0, 1] (used to normalise);
    ``val`` is ``None`` when no validation split was requested (``val_size=0``), ``test`` is ``None`` for
    an image folder without a ``test/`` subfolder. ``skipped`` lists image files that could not be read.
    """

    name: str
    train: Split
    val: Split | None
    test: Split | None
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    source: str
    skipped: tuple[str, ...] = ()
    # Per-pixel mean image (C×H×W, pixel values scaled to [0, 1]) for ``normalize="pixel"`` training: the
    # loader then subtracts it instead of the per-channel mean and pads after normalising (pad = the mean).
    pixel_mean: torch.Tensor | None = None

    @property
    def streamed(self) -> bool:
        """True when the splits are decoded from files while training (image folders)."""
        return isinstance(self.train, FolderSplit)


def default_val_size(num_train: int) -> int:
    """5,000 images (the ResNet paper's 45k/5k CIFAR split; 55k/5k for Fashion-MNIST and MNIST), or a
    tenth of a training set smaller than 50,000."""
    return min(5000, num_train // 10)


def split_indices(num_train: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices), each sorted, from one permutation seeded with ``seed``."""
    if not isinstance(val_size, int) or isinstance(val_size, bool) or val_size < 0:
        raise UsageError(f"val_size must be a non-negative integer, got {val_size!r}")
    if val_size >= num_train:
        raise UsageError(
            f"val_size={val_size} leaves no training images (the training set has {num_train}); "
            f"choose 0 ≤ val_size < {num_train}"
        )
    perm = torch.randperm(num_train, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values
