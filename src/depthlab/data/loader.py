"""Batches for training and evaluation, with augmentation done as batched tensor operations.

:class:`InMemoryLoader` keeps a whole split on the training device as one uint8 tensor, stored
channels-last and already zero-padded by the crop padding (N×(H+2p)×(W+2p)×C). A training batch is one
gather from that tensor: for image b with crop offset (oy_b, ox_b) and flip f_b, output pixel (i, j) is
padded pixel (oy_b + i, ox_b + j) — or (oy_b + i, ox_b + W−1−j) when flipped — so random crop, flip and
batch assembly are a single ``index_select`` with different parameters per image. The uint8 result is
converted to float and normalised with one scale and one shift per channel ((x/255 − mean)/std =
x·scale + shift); the float batch is N×C×H×W in channels-last memory format. No Python runs per sample.

Randomness is *stateless*: the permutation of epoch e is drawn from a generator seeded with (seed, e), the
augmentation parameters of batch k of epoch e from one seeded with (seed, e, k). A run resumed at any step
therefore sees exactly the batches an uninterrupted run would, and the batches do not depend on the
device, the number of processes or what else used the global RNG. All random draws are made on the CPU
(a few integers per image) and copied to the device once per epoch, so a training step waits for no copy.

Distributed training: ``batch_size`` is the *global* batch. Every rank draws the same permutation and the
same parameters for the whole global batch and keeps its slice ``[rank·b, (rank+1)·b)`` with
b = batch_size / world_size, so N processes see exactly the images (and crops) one process would.
Evaluation shards the split into contiguous parts, one per rank.

:class:`StreamLoader` does the same for image folders, whose images are decoded by DataLoader workers;
crop, flip and normalisation then run batched on the device exactly as above.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from depthlab.data.bundle import DataBundle, DataError, FolderSplit, Split, TensorSplit
from depthlab.data.imagefolder import FolderDataset, collate_skipping
from depthlab.errors import UsageError

__all__ = ["Augment", "InMemoryLoader", "StreamLoader", "Loader", "make_loader", "epoch_permutation"]

_MIX = 0x9E3779B97F4A7C15  # 2^64 / golden ratio, to spread consecutive seeds apart
_MASK = (1 << 63) - 1


def _mix(*parts: int) -> int:
    h = 0x2545F4914F6CDD1D
    for p in parts:
        h = ((h ^ (p & _MASK)) * _MIX + 0x632BE59BD9B4E019) & ((1 << 64) - 1)
        h ^= h >> 29
    return h & _MASK


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the training images in ``epoch`` (CPU int64)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch)))


@dataclass(frozen=True)
class Augment:
    """Random crop after zero-padding each side by ``crop_padding`` pixels, and random horizontal flip."""

    crop_padding: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise UsageError(f"crop_padding must be a non-negative integer, got {self.crop_padding!r}")


def _augment_params(
    count: int, augment: Augment | None, seed: int, epoch: int, index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crop offsets (oy, ox) in [0, 2p] and flip flags for ``count`` images (CPU int64)."""
    if augment is None:
        zero = torch.zeros(count, dtype=torch.int64)
        return zero, zero, zero
    g = torch.Generator().manual_seed(_mix(seed, epoch, index, 1))
    span = 2 * augment.crop_padding + 1
    oy = torch.randint(0, span, (count,), generator=g)
    ox = torch.randint(0, span, (count,), generator=g)
    flip = (
        torch.randint(0, 2, (count,), generator=g) if augment.flip else torch.zeros(count, dtype=torch.int64)
    )
    return oy, ox, flip


class _Gather:
    """A padded NHWC uint8 table on the device, and the crop/flip/normalise gather from it."""

    def __init__(
        self, padding: int, height: int, width: int, mean: tuple[float, ...], std: tuple[float, ...],
        device: torch.device, dtype: torch.dtype, pixel_mean: torch.Tensor | None = None,
    ) -> None:  # fmt: skip
        self.padding, self.height, self.width, self.device = padding, height, width, device
        # Per-pixel mean (He et al. 2015 §4.2): the table holds normalised floats and is padded with 0 (the
        # mean) after normalising; crops then need no scale/shift.
        self.pixel_mean = pixel_mean
        channels = len(mean)
        std_t = torch.tensor(std, dtype=torch.float64)
        self.scale = (1.0 / (255.0 * std_t)).to(dtype).view(1, channels, 1, 1).to(device)
        self.shift = (
            (-torch.tensor(mean, dtype=torch.float64) / std_t).to(dtype).view(1, channels, 1, 1).to(device)
        )
        self.dtype = dtype
        self.cols = torch.arange(width, device=device)
        self.rows = torch.arange(height, device=device)

    def pad(self, images_nchw: torch.Tensor) -> torch.Tensor:
        """uint8 N×C×H×W → zero-padded uint8 N×(H+2p)×(W+2p)×C on the device (with a per-pixel mean:
        normalised floats, padded with 0 = the mean)."""
        n, c, h, w = images_nchw.shape
        p = self.padding
        if self.pixel_mean is not None:
            mean = self.pixel_mean.to(self.device, self.dtype)
            x = images_nchw.to(self.device).to(self.dtype).div_(255).sub_(mean).mul_(self.scale * 255)
            table = torch.zeros(n, h + 2 * p, w + 2 * p, c, dtype=self.dtype, device=self.device)
            table[:, p : p + h, p : p + w, :] = x.permute(0, 2, 3, 1)
            return table
        table = torch.zeros(n, h + 2 * p, w + 2 * p, c, dtype=torch.uint8, device=self.device)
        table[:, p : p + h, p : p + w, :] = images_nchw.to(self.device, non_blocking=True).permute(0, 2, 3, 1)
        return table

    def __call__(
        self, table: torch.Tensor, index: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor
    ) -> torch.Tensor:
        """Images ``index`` of ``table``, cropped at (oy, ox), flipped where ``flip``, normalised."""
        _, hp, wp, c = table.shape
        index, oy, ox = index.to(self.device), oy.to(self.device), ox.to(self.device)
        flip = flip.to(self.device).bool()
        cols = torch.where(flip[:, None], self.width - 1 - self.cols, self.cols) + ox[:, None]  # B×W
        rows = (oy[:, None] + self.rows) * wp  # B×H
        flat = (index * (hp * wp))[:, None, None] + rows[:, :, None] + cols[:, None, :]  # B×H×W
        pixels = table.view(-1, c).index_select(0, flat.view(-1))
        x = pixels.view(index.shape[0], self.height, self.width, c).permute(0, 3, 1, 2).to(self.dtype)
        if self.pixel_mean is not None:  # already normalised in the table
            return x
        return x.mul_(self.scale).add_(self.shift)  # N×C×H×W, channels-last memory


def _check_batch(batch_size: int, world_size: int, rank: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"rank {rank} is not in 0..{world_size - 1}")


class InMemoryLoader:
    """Batches of a :class:`TensorSplit` held on ``device``.

    ``shuffle=True`` (training): ``len(split) // batch_size`` global batches per epoch (the remainder is
    dropped so every step has the same batch size), reshuffled every epoch, augmented if ``augment``.
    ``shuffle=False`` (evaluation): this rank's contiguous shard in order, every image once, no
    augmentation; ``batch_size`` is then per rank.
    """

    def __init__(
        self,
        split: TensorSplit,
        *,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        dtype: torch.dtype = torch.float32,
        pixel_mean: torch.Tensor | None = None,
    ) -> None:
        _check_batch(batch_size, world_size, rank)
        n, c, h, w = split.images.shape
        if len(mean) != c or len(std) != c:
            raise UsageError(f"mean/std have {len(mean)}/{len(std)} values for {c}-channel images")
        if shuffle:
            if batch_size % world_size:
                raise UsageError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
            if batch_size > n:
                raise UsageError(f"batch_size {batch_size} is larger than the training set ({n} images)")
            self.indices = torch.arange(n)
        else:
            lo, hi = rank * n // world_size, (rank + 1) * n // world_size
            self.indices = torch.arange(lo, hi)
        self.device = torch.device(device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment = augment if shuffle else None
        self.rank, self.world_size = rank, world_size
        padding = self.augment.crop_padding if self.augment is not None else 0
        if pixel_mean is not None and tuple(pixel_mean.shape) != (c, h, w):
            raise ValueError(f"pixel_mean has shape {tuple(pixel_mean.shape)}, images are {(c, h, w)}")
        self._gather = _Gather(padding, h, w, mean, std, self.device, dtype, pixel_mean)
        # Only this rank's evaluation shard needs to live on the device.
        self._table = self._gather.pad(split.images if shuffle else split.images[self.indices])
        self._labels = (split.labels if shuffle else split.labels[self.indices]).to(self.device)
        self.num_images = int(self.indices.numel())

    def __len__(self) -> int:
        if self.shuffle:
            return self.num_images // self.batch_size
        return -(-self.num_images // self.batch_size)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``start, start+1, …`` of ``epoch`` as (normalised float images, int64 labels)."""
        if not self.shuffle:
            for k in range(start, len(self)):
                # Made on the device: a host-side index would be one more copy (and wait) per batch.
                idx = torch.arange(
                    k * self.batch_size, min((k + 1) * self.batch_size, self.num_images), device=self.device
                )
                zero = torch.zeros_like(idx)
                yield self._gather(self._table, idx, zero, zero, zero), self._labels[idx]
            return
        # The whole epoch's draws (this rank's part of each global batch: index, oy, ox, flip) go to the
        # device in one copy: a copy from pageable host memory waits for the device, and four of them per
        # step kept a GPU idle between steps. The values are exactly the per-batch draws.
        perm = epoch_permutation(self.num_images, self.seed, epoch)
        b = self.batch_size // self.world_size
        part = slice(self.rank * b, (self.rank + 1) * b)
        steps = range(start, len(self))
        if not steps:
            return
        draws = torch.stack(
            [
                torch.stack(
                    (
                        perm[k * self.batch_size : (k + 1) * self.batch_size][part],
                        *(
                            p[part]
                            for p in _augment_params(self.batch_size, self.augment, self.seed, epoch, k)
                        ),
                    )
                )  # fmt: skip
                for k in steps
            ],
            dim=1,
        ).to(self.device)  # 4 × steps × b
        for j in range(len(steps)):
            idx, oy, ox, flip = draws[:, j]
            yield self._gather(self._table, idx, oy, ox, flip), self._labels[idx]


class StreamLoader:
    """Batches of a :class:`FolderSplit`, decoded by ``workers`` DataLoader processes.

    Same batching rules and the same stateless randomness as :class:`InMemoryLoader`. Images that fail to
    decode are left out of their batch (a batch may come back empty) and their paths collected in
    :attr:`failed`, each once however many epochs meet it (with ``strict=True`` the first one raises
    :class:`~depthlab.data.DataError`).
    """

    def __init__(
        self,
        split: FolderSplit,
        *,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        dtype: torch.dtype = torch.float32,
        workers: int = 2,
        strict: bool = False,
    ) -> None:
        _check_batch(batch_size, world_size, rank)
        n = len(split)
        if shuffle and batch_size % world_size:
            raise UsageError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
        if shuffle and batch_size > n:
            raise UsageError(f"batch_size {batch_size} is larger than the training set ({n} images)")
        if not isinstance(workers, int) or workers < 0:
            raise UsageError(f"workers must be a non-negative integer, got {workers!r}")
        self.split, self.device = split, torch.device(device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment = augment if shuffle else None
        self.rank, self.world_size, self.workers, self.strict = rank, world_size, workers, strict
        self.lo, self.hi = (0, n) if shuffle else (rank * n // world_size, (rank + 1) * n // world_size)
        self.num_images = self.hi - self.lo
        padding = self.augment.crop_padding if self.augment is not None else 0
        self._gather = _Gather(padding, split.image_size, split.image_size, mean, std, self.device, dtype)
        self.failed: list[str] = []
        self._failed_seen: set[str] = set()

    def __len__(self) -> int:
        if self.shuffle:
            return self.num_images // self.batch_size
        return -(-self.num_images // self.batch_size)

    def _batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle:
            return [
                list(range(s, min(s + self.batch_size, self.hi)))
                for s in range(self.lo, self.hi, self.batch_size)
            ]
        perm = epoch_permutation(self.num_images, self.seed, epoch)
        b = self.batch_size // self.world_size
        return [
            perm[k * self.batch_size + self.rank * b : k * self.batch_size + (self.rank + 1) * b].tolist()
            for k in range(len(self))
        ]

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = self._batches(epoch)[start:]
        if not batches:
            return
        loader = torch.utils.data.DataLoader(
            FolderDataset(self.split),
            batch_sampler=batches,
            num_workers=self.workers,
            collate_fn=collate_skipping,
            pin_memory=self.device.type == "cuda",
        )
        b = self.batch_size // self.world_size if self.shuffle else self.batch_size
        for k, (images, labels, positions, failed) in enumerate(loader, start):
            if failed:
                # Each path once: a file that cannot be decoded fails again in every epoch.
                self.failed.extend(path for path in dict.fromkeys(failed) if path not in self._failed_seen)
                self._failed_seen.update(failed)
                if self.strict:
                    raise DataError(f"cannot decode image {failed[0]} (strict)")
            if self.shuffle:
                oy, ox, flip = _augment_params(self.batch_size, self.augment, self.seed, epoch, k)
                part = slice(self.rank * b, (self.rank + 1) * b)
                oy, ox, flip = oy[part][positions], ox[part][positions], flip[part][positions]
            else:
                oy = ox = flip = torch.zeros(positions.shape[0], dtype=torch.int64)
            if images.shape[0] == 0:
                yield (
                    torch.empty(0, 3, self.split.image_size, self.split.image_size, device=self.device),
                    labels.to(self.device),
                )
                continue
            table = self._gather.pad(images)
            idx = torch.arange(images.shape[0])
            yield self._gather(table, idx, oy, ox, flip), labels.to(self.device, non_blocking=True)


Loader = InMemoryLoader | StreamLoader


def make_loader(
    bundle: DataBundle,
    split: Split,
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
    train: bool = False,
    augment: Augment | None = None,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 2,
    strict: bool = False,
) -> Loader:
    """The right loader for ``split``: training batches (shuffled, augmented) when ``train``, else
    evaluation batches."""
    common = dict(
        batch_size=batch_size, mean=bundle.mean, std=bundle.std, device=device, shuffle=train,
        augment=augment if train else None, seed=seed, rank=rank, world_size=world_size,
    )  # fmt: skip
    if isinstance(split, FolderSplit):
        return StreamLoader(split, workers=workers, strict=strict, **common)  # type: ignore[arg-type]
    return InMemoryLoader(split, pixel_mean=bundle.pixel_mean, **common)  # type: ignore[arg-type]
