"""The user's own images: ``imagefolder:PATH``, one subfolder per class.

Layouts: ``PATH/<class>/<image>`` (the validation split is then held out of it, and there is no test
split), or ``PATH/train/<class>/<image>`` with an optional ``PATH/test/<class>/<image>`` (and optional
``PATH/val/<class>/<image>``, used instead of a held-out split). Class names are the sorted folder names of
the training set; a test/val folder may not introduce new ones.

Images are decoded as RGB (gray, palette, RGBA and CMYK converted; 16-bit gray scaled to 8 bits); the
shorter side is resized to ``image_size`` (bilinear, antialiased) and the centre ``image_size``×``image_size``
is kept. Hidden files and folders are ignored; symlinked folders are followed, each once (a link cycle
does not loop). Every file is checked with PIL's ``verify`` when the dataset
is loaded: unreadable files are reported by path and skipped (fatal with ``strict=True``). A file that
passes ``verify`` but fails to decode during training is skipped the same way by
:class:`FolderDataset`/:func:`collate_skipping`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from depthlab.data.bundle import DataError, DatasetNotFoundError, FolderSplit

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "scan_folder",
    "FolderDataset",
    "collate_skipping",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Image folders are normalised with the ImageNet statistics rather than measured ones: measuring would mean
# decoding every image before training.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    found = []
    visited = {os.path.realpath(folder)}  # symlinked folders are followed, but a link cycle only once
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, d))
            if not d.startswith(".") and real not in visited:
                visited.add(real)
                keep.append(d)
        dirnames[:] = keep
        # Hidden files are not images of the set (e.g. macOS's "._x.png" resource forks).
        found.extend(
            Path(dirpath) / f
            for f in sorted(filenames)
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
    return found


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()
    except _DECODE_ERRORS:
        return False
    return True


def scan_folder(
    folder: Path, classes: Sequence[str] | None, strict: bool
) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...], tuple[str, ...]]:
    """(samples, class names, unreadable paths) of one class-per-subfolder tree."""
    if not folder.is_dir():
        raise DatasetNotFoundError(f"image folder {folder} does not exist or is not a directory")
    found = _class_dirs(folder)
    if not found:
        raise DataError(
            f"no class folders in {folder}: expected {folder}/<class name>/<image> "
            f"(or {folder}/train/<class name>/<image>)"
        )
    names = tuple(found) if classes is None else tuple(classes)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"{folder} has class folders not in the training set: {', '.join(unknown)}")
    samples: list[tuple[str, int]] = []
    bad: list[str] = []
    for name in found:
        for path in _images_in(folder / name):
            if _readable(path):
                samples.append((str(path), names.index(name)))
            else:
                bad.append(str(path))
    if bad and strict:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(f"{len(bad)} unreadable image(s) in {folder} (strict): {shown}")
    if not samples:
        raise DataError(
            f"no readable images in the class folders of {folder} (extensions: {' '.join(IMAGE_EXTENSIONS)})"
        )
    return tuple(samples), names, tuple(bad)


# Pillow's convert("RGB") clips 16/32-bit integer and float pixels to 0..255 instead of scaling them.
_WIDE_INT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB with 8 bits per channel; 16-bit (and 32-bit integer) gray is scaled by 1/257 (65535 → 255), float
    gray is taken as 0..1."""
    if img.mode in _WIDE_INT_MODES or img.mode == "F":
        scale = 255.0 if img.mode == "F" else 1 / 257
        pixels = np.clip(np.asarray(img, dtype=np.float64) * scale, 0, 255).round().astype(np.uint8)
        img = Image.fromarray(pixels, mode="L")
    return img.convert("RGB")


def decode(path: str, image_size: int) -> torch.Tensor:
    """One image as uint8 3×S×S: RGB, shorter side resized to S, centre crop."""
    with Image.open(path) as img:
        img = _to_rgb(img)
        w, h = img.size
        scale = image_size / min(w, h)
        new_w, new_h = max(image_size, round(w * scale)), max(image_size, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (new_w - image_size) // 2, (new_h - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(image_size, image_size, 3).permute(2, 0, 1).contiguous()


class FolderDataset(torch.utils.data.Dataset):
    """Items are ``(position, image or None, label, path)``; ``None`` marks a file that failed to decode."""

    def __init__(self, split: FolderSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, int, str]:
        path, label = self.split.samples[index]
        try:
            image = decode(path, self.split.image_size)
        except _DECODE_ERRORS:
            image = None
        return index, image, label, path


def collate_skipping(
    items: list[tuple[int, torch.Tensor | None, int, str]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """(images uint8 B×3×S×S, labels, positions in the batch that decoded, paths that failed)."""
    kept = [(pos, img, label) for pos, (_, img, label, _) in enumerate(items) if img is not None]
    failed = tuple(path for _, img, _, path in items if img is None)
    if not kept:
        return (
            torch.empty(0, dtype=torch.uint8),
            torch.empty(0, dtype=torch.int64),
            torch.empty(0, dtype=torch.int64),
            failed,
        )
    positions = torch.tensor([pos for pos, _, _ in kept], dtype=torch.int64)
    images = torch.stack([img for _, img, _ in kept])  # type: ignore[misc]
    labels = torch.tensor([label for _, _, label in kept], dtype=torch.int64)
    return images, labels, positions, failed
