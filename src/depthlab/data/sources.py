"""Where each in-memory dataset comes from and how its files are read.

* ``fashion-mnist`` / ``mnist`` — IDX files (``train-images-idx3-ubyte`` …, gzipped or not). A data
  directory may hold them flat, in a ``fashion-mnist``/``mnist`` subfolder, or in torchvision's layout
  (``FashionMNIST/raw``, ``MNIST/raw``). Fashion-MNIST is also looked for in Debian's
  ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``).
* ``cifar10`` / ``cifar100`` — the python-pickle batches in torchvision's folders ``cifar-10-batches-py``
  (``data_batch_1..5``, ``test_batch``, ``batches.meta``) and ``cifar-100-python`` (``train``, ``test``,
  ``meta``), read by torchvision's dataset classes. torchvision checks each file's md5 before reading; we
  replace that check by a structural one (array shapes, label ranges, class names; see
  :func:`_check_arrays`), documented here because it is deliberate: it lets the same code read the real
  files and the small fixtures the tests write. Downloads are still verified, by torchvision's md5 of the
  archive.
* ``synthetic`` — generated, deterministic and learnable (see :func:`synthetic`).

Search order for every file-based dataset: ``data_dir`` (``--data-dir``), ``$DEPTHLAB_DATA``,
``~/.cache/depthlab``, then the dataset's system location if it has one. A ``data_dir`` the user gives must
be an existing directory (:func:`check_data_dir`; with ``download=True`` it may be missing and is created):
a mistyped path is an error, never silently passed over for another copy. Nothing is downloaded unless
``download=True``; downloads go to the first of ``data_dir``, ``$DEPTHLAB_DATA``, ``~/.cache/depthlab``.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from depthlab.data.bundle import DataError, DatasetNotFoundError, TensorSplit
from depthlab.errors import MissingFileError, UsageError

__all__ = [
    "RawDataset",
    "check_data_dir",
    "search_roots",
    "read_idx",
    "load_idx_dataset",
    "load_cifar",
    "synthetic",
    "parse_synthetic_options",
    "IDX_SPECS",
    "CIFAR_SPECS",
    "SYNTHETIC_DEFAULTS",
]

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@dataclass(frozen=True, eq=False)
class RawDataset:
    """A dataset's official train and test sets, before the validation split."""

    train: TensorSplit
    test: TensorSplit
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str


def check_data_dir(data_dir: str | os.PathLike[str] | None, download: bool = False) -> None:
    """Refuse a ``data_dir`` that does not exist (unless ``download`` will create it) or is not a directory."""
    if data_dir is None:
        return
    path = Path(data_dir).expanduser()
    if path.is_dir() or (download and not path.exists()):
        return
    what = "is not a directory" if path.exists() else "does not exist"
    raise MissingFileError(
        f"--data-dir {os.fspath(data_dir)} {what} (data_dir must be an existing directory)"
    )


def search_roots(data_dir: str | os.PathLike[str] | None, system_dir: str | None = None) -> list[Path]:
    """The directories searched, in order: ``data_dir``, ``$DEPTHLAB_DATA``, ``~/.cache/depthlab``, then
    ``system_dir``. Duplicates are dropped."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get("DEPTHLAB_DATA")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(Path.home() / ".cache" / "depthlab")
    if system_dir is not None:
        roots.append(Path(system_dir))
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def download_root(data_dir: str | os.PathLike[str] | None) -> Path:
    return search_roots(data_dir)[0]


# --------------------------------------------------------------------------------------------- IDX files
_IDX_DTYPES = {0x08: torch.uint8}  # the MNIST family only stores unsigned bytes


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (gzipped if its name ends in ``.gz``) into a uint8 tensor of its stored shape.

    Format: 2 zero bytes, a type byte (0x08 = uint8), a byte giving the number of dimensions d, d
    big-endian uint32 sizes, then the data.
    """
    opener: Callable[..., object] = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            data = f.read()  # type: ignore[attr-defined]
    except (OSError, EOFError, zlib.error) as exc:  # gzip: truncated (EOFError), corrupt (BadGzipFile/zlib)
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(
            f"{path}: truncated or invalid IDX header ({ndim} dimensions need a {header}-byte header; the "
            f"file has {len(data)} bytes)"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # Python ints: no overflow for absurd headers
    if len(data) - header != expected:
        raise DataError(
            f"{path}: header promises shape {shape} ({expected} bytes) but the file holds "
            f"{len(data) - header} bytes of data"
        )
    if expected == 0:
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape)


@dataclass(frozen=True)
class IdxSpec:
    subdirs: tuple[str, ...]  # where, under a root, the four files may sit
    system_dir: str | None
    torchvision_class: str  # for download=True
    classes: tuple[str, ...]
    mean: float
    std: float


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

IDX_SPECS: dict[str, IdxSpec] = {
    "fashion-mnist": IdxSpec(
        subdirs=("", "fashion-mnist", "FashionMNIST/raw"),
        system_dir=DEBIAN_FASHION_MNIST,
        torchvision_class="FashionMNIST",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),  # fmt: skip
        mean=0.2860,  # measured on the 60k training images
        std=0.3530,
    ),
    "mnist": IdxSpec(
        subdirs=("", "mnist", "MNIST/raw"),
        system_dir=None,
        torchvision_class="MNIST",
        classes=tuple(str(d) for d in range(10)),
        mean=0.1307,
        std=0.3081,
    ),
}


def _find_idx_dir(roots: list[Path], spec: IdxSpec) -> tuple[Path | None, list[Path]]:
    """The first directory holding all four IDX files (each plain or .gz), and every directory looked in."""
    looked: list[Path] = []
    for root in roots:
        for sub in spec.subdirs:
            folder = root / sub if sub else root
            looked.append(folder)
            if all(_idx_file(folder, name) is not None for name in _IDX_FILES.values()):
                return folder, looked
    return None, looked


def _idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download_torchvision(class_name: str, root: Path, name: str) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            getattr(tvd, class_name)(str(root), train=train, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError depending on the failure
        raise DataError(f"downloading {name} into {root} failed: {exc}") from exc


def _not_found(name: str, looked: list[Path], fix_files: str) -> DatasetNotFoundError:
    places = ", ".join(str(p) for p in looked)
    return DatasetNotFoundError(
        f"{name} not found; looked in: {places}. Fix it either way: {fix_files}; "
        f"or add --download (download=True) to fetch it through torchvision"
    )


def load_idx_dataset(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> RawDataset:
    """Fashion-MNIST or MNIST from IDX files (see the module docstring for where they are looked for)."""
    check_data_dir(data_dir, download)
    spec = IDX_SPECS[name]
    roots = search_roots(data_dir, spec.system_dir)
    folder, looked = _find_idx_dir(roots, spec)
    if folder is None and download:
        _download_torchvision(spec.torchvision_class, download_root(data_dir), name)
        folder, looked = _find_idx_dir(roots, spec)
    if folder is None:
        files = ", ".join(f"{f}.gz" for f in _IDX_FILES.values())
        apt = " (Debian/Ubuntu: apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
        raise _not_found(name, looked, f"put {files} in --data-dir DIR or $DEPTHLAB_DATA{apt}")
    arrays = {key: read_idx(_idx_file(folder, fname)) for key, fname in _IDX_FILES.items()}  # type: ignore[arg-type]
    splits = []
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.dim() != 3 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{name} in {folder}: {part} images have shape {tuple(images.shape)} and labels "
                f"{tuple(labels.shape)}; expected N×H×W images and N labels"
            )
        splits.append(TensorSplit(images.unsqueeze(1).contiguous(), labels.long()))
    return RawDataset(splits[0], splits[1], spec.classes, (spec.mean,), (spec.std,), str(folder))


# ------------------------------------------------------------------------------------------------ CIFAR
@dataclass(frozen=True)
class CifarSpec:
    torchvision_class: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec("CIFAR10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": CifarSpec("CIFAR100", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _structural_twin(cls: type) -> type:
    """torchvision's CIFAR class with its per-file md5 check replaced by an existence check (md5 ``None``
    makes ``torchvision.datasets.utils.check_integrity`` test only that the file exists); the arrays are
    checked by :func:`_check_arrays` instead."""
    return type(
        f"Structural{cls.__name__}",
        (cls,),
        {
            "train_list": [[fname, None] for fname, _ in cls.train_list],
            "test_list": [[fname, None] for fname, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        },
    )


def _check_arrays(name: str, folder: Path, part: str, data: np.ndarray, labels: list[int], k: int) -> None:
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[1:] != (32, 32, 3):
        raise DataError(
            f"{name} in {folder}: {part} images have shape {data.shape}; expected N×32×32×3 uint8"
        )
    if len(labels) != data.shape[0]:
        raise DataError(f"{name} in {folder}: {part} has {data.shape[0]} images but {len(labels)} labels")
    if labels and (min(labels) < 0 or max(labels) >= k):
        raise DataError(
            f"{name} in {folder}: {part} labels span {min(labels)}..{max(labels)}; expected 0..{k - 1}"
        )


def load_cifar(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> RawDataset:
    """CIFAR-10 or CIFAR-100 through torchvision's dataset classes (python-pickle batches)."""
    import torchvision.datasets as tvd

    check_data_dir(data_dir, download)
    spec = CIFAR_SPECS[name]
    tv_cls = getattr(tvd, spec.torchvision_class)
    reader = _structural_twin(tv_cls)
    roots = search_roots(data_dir)
    looked = [root / tv_cls.base_folder for root in roots]
    needed = [f for f, _ in tv_cls.train_list + tv_cls.test_list] + [tv_cls.meta["filename"]]
    found = next((r for r in roots if all((r / tv_cls.base_folder / f).is_file() for f in needed)), None)
    if found is None and download:
        found = download_root(data_dir)
        found.mkdir(parents=True, exist_ok=True)
        try:
            tv_cls(str(found), train=True, download=True)
        except Exception as exc:  # RuntimeError/URLError/OSError depending on the failure
            raise DataError(f"downloading {name} into {found} failed: {exc}") from exc
    if found is None:
        raise _not_found(
            name, looked, f"extract the python version of {name} ({tv_cls.filename}) into --data-dir DIR"
        )
    splits = []
    classes: tuple[str, ...] = ()
    for train in (True, False):
        try:
            ds = reader(str(found), train=train)
        except Exception as exc:  # whatever torchvision's reader raises on these files, the files are bad
            raise DataError(f"cannot read {name} from {found / tv_cls.base_folder}: {exc!r}") from exc
        part = "train" if train else "test"
        _check_arrays(name, found / tv_cls.base_folder, part, ds.data, list(ds.targets), spec.num_classes)
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        splits.append(TensorSplit(images, torch.tensor(ds.targets, dtype=torch.int64)))
        classes = tuple(ds.classes)
    if len(classes) != spec.num_classes:
        raise DataError(
            f"{name} in {found}: the metadata lists {len(classes)} classes; expected {spec.num_classes}"
        )
    return RawDataset(splits[0], splits[1], classes, spec.mean, spec.std, str(found / tv_cls.base_folder))


# -------------------------------------------------------------------------------------------- synthetic
SYNTHETIC_MAX_BYTES = 2**30  # uint8 pixels; generating them takes 4× that in float32
SYNTHETIC_DEFAULTS: dict[str, int] = {
    "classes": 10,
    "channels": 3,
    "size": 32,
    "train": 5000,
    "test": 1000,
    "seed": 0,
}


def parse_synthetic_options(options: str) -> dict[str, int]:
    """``"channels=1,size=28"`` → the full option dict; unknown keys and non-integers are errors."""
    values = dict(SYNTHETIC_DEFAULTS)
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or key not in values:
            raise UsageError(
                f"bad synthetic option {item!r}; use synthetic:key=value,... with keys "
                f"{', '.join(SYNTHETIC_DEFAULTS)}"
            )
        try:
            values[key] = int(raw)
        except ValueError:
            raise UsageError(f"synthetic option {key} must be an integer, got {raw!r}") from None
    for key in ("classes", "channels", "size", "train"):
        if values[key] < 1:
            raise UsageError(f"synthetic option {key} must be ≥ 1, got {values[key]}")
    if values["classes"] < 2 or values["test"] < 0:
        raise UsageError("synthetic needs classes ≥ 2 and test ≥ 0")
    # Generated in memory as float32 before the uint8 result: refuse what cannot fit rather than crash.
    size = (values["train"] + values["test"]) * values["channels"] * values["size"] ** 2
    if size > SYNTHETIC_MAX_BYTES:
        raise UsageError(
            f"synthetic dataset of {size:,} bytes (train+test × channels × size²) is larger than the "
            f"{SYNTHETIC_MAX_BYTES:,} allowed; lower train, test, channels or size"
        )
    return values


def synthetic(classes: int, channels: int, size: int, train: int, test: int, seed: int) -> RawDataset:
    """A learnable image classification task, the same for the same arguments on any machine.

    Each class has a smooth random template (4×4 noise upsampled to ``size``); an image is its class's
    template plus per-image noise, so a small convnet separates the classes within a few hundred steps,
    and random crops and flips keep most of the signal.
    """
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(classes, channels, 4, 4, generator=g)
    templates = torch.nn.functional.interpolate(
        templates, size=(size, size), mode="bilinear", align_corners=False
    )

    def make(n: int) -> TensorSplit:
        labels = torch.arange(n) % classes
        labels = labels[torch.randperm(n, generator=g)]
        noise = torch.randn(n, channels, size, size, generator=g)
        pixels = 128 + 48 * templates[labels] + 40 * noise
        return TensorSplit(pixels.round().clamp(0, 255).to(torch.uint8), labels.to(torch.int64))

    train_split, test_split = make(train), make(test)
    return RawDataset(
        train_split,
        test_split,
        tuple(f"class{i}" for i in range(classes)),
        (0.5,) * channels,
        (0.25,) * channels,
        f"synthetic(classes={classes}, channels={channels}, size={size}, train={train}, test={test}, seed={seed})",
    )
