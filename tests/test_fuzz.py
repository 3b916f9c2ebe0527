"""Fuzz battery over the user-facing parsers and inputs.

Property: every input either works (and the result is what it should be) or is refused with one of
depthlab's own errors carrying a one-line message — never another exception (which the CLI would show as a
bug, with a traceback) and never a hang. Hypothesis runs derandomized (the same examples every run, no
example database); tables cover files truncated at every section.

Set DEPTHLAB_FUZZ_COUNT=FILE to have the number of cases tried per target written there (as JSON) when the
module finishes; nothing is printed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import io
import json
import math
import os
import pickle
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from depthlab.cli import main
from depthlab.cli.analysis import parse_input
from depthlab.data import load_data, make_loader
from depthlab.data.imagefolder import FolderDataset
from depthlab.data.sources import SYNTHETIC_DEFAULTS, parse_synthetic_options, read_idx
from depthlab.errors import DepthlabError
from depthlab.train import TrainConfig, apply_overrides
from depthlab.train.setup import build_model

# Tiny models: one intra-op thread for the whole module (`one_thread_module` in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread_module")


CASES: collections.Counter[str] = collections.Counter()
FUZZ = dict(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _count_cases() -> Iterator[None]:
    yield
    if path := os.environ.get("DEPTHLAB_FUZZ_COUNT"):
        Path(path).write_text(json.dumps({"total": sum(CASES.values()), **CASES}, indent=1) + "\n")


@pytest.fixture(autouse=True)
def _no_user_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("DEPTHLAB_DATA", raising=False)


def one_line(exc: BaseException) -> None:
    """A depthlab error whose message is one non-empty line (what the CLI prints)."""
    assert isinstance(exc, DepthlabError), f"{type(exc).__name__}: {exc}"
    message = str(exc.args[0]) if exc.args else ""
    assert message.strip() and "\n" not in message.strip(), repr(message)


@contextlib.contextmanager
def refused_or_fine() -> Iterator[None]:
    try:
        yield
    except DepthlabError as exc:
        one_line(exc)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------ --set values
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
TOKENS = [
    "", " ", "0", "1", "-1", "2", "07", "0.5", "1e-3", "-0.0", "1e999", "inf", "-inf", "nan", "NaN", "none",
    "null", "true", "False", "yes", "off", "1,2", "2,1", ",", "1,,2", "1,nan", "[1, 2]", "[8, 16, 32]",
    "[]", '{"a": 1}', "{}", '"quoted"', "resnet20", "plain20", "sgd", "adamw", "cpu", "cuda", "onecycle",
    "batch", "A", "Z", "9" * 5000, "[" * 3000, " 3 ", "0x10", "1_000", "١٢", "=", "a=b", "\x00", "é",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(TOKENS),
    st.text(max_size=12),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
KEYS = st.one_of(
    st.sampled_from(FIELDS),
    st.sampled_from(["model_kwargs.norm", "model_kwargs.widths", "model_kwargs.layers", "model_kwargs.shortcut",
                     "model_kwargs.num_classes", "model_kwargs.zero_init_residual", "model_kwargs.block",
                     "model_kwargs.", "lrr", " lr ", "", "model_kwargs"]),
    st.text(max_size=10),
)  # fmt: skip


def _check_accepted(config: TrainConfig) -> None:
    """An accepted config holds only finite numbers and builds its model (or refuses it with one line)."""
    for name in FIELDS:
        value = getattr(config, name)
        for v in value if isinstance(value, tuple) else (value,):
            assert not (isinstance(v, float) and not math.isfinite(v)), (name, value)
    with refused_or_fine(), torch.device("meta"):  # meta: checks arguments, allocates nothing
        build_model(config, SimpleNamespace(num_classes=10, in_channels=3))  # type: ignore[arg-type]


@settings(max_examples=500, **FUZZ)
@given(key=KEYS, value=VALUES, sep=st.sampled_from(["=", "", " = "]))
def test_set_overrides(key: str, value: str, sep: str) -> None:
    CASES["--set KEY=VALUE"] += 1
    try:
        config = apply_overrides(TrainConfig(), [f"{key}{sep}{value}"])
    except DepthlabError as exc:
        one_line(exc)
        return
    _check_accepted(config)


MODEL_KWARGS = {
    "resnet20": ["norm", "widths", "layers", "shortcut", "block", "stride_on", "zero_init_residual", "stem"],
    "googlenet": ["variant", "aux_logits", "lrn", "norm"],
    "vgg11": ["config", "head", "dropout", "norm"],
    "alexnet": ["variant", "dropout", "norm"],
}


@settings(max_examples=200, **FUZZ)
@given(
    model=st.sampled_from(sorted(MODEL_KWARGS)),
    data=st.data(),
    value=st.one_of(
        VALUES, st.sampled_from(["[1, 1, 1]", "[0, 2, 2]", "[16, 32]", '"basic"', '"bottleneck"'])
    ),
)
def test_set_model_kwargs(model: str, data: st.DataObject, value: str) -> None:
    key = data.draw(st.sampled_from(MODEL_KWARGS[model]))
    CASES["--set model_kwargs.KEY=VALUE"] += 1
    config = apply_overrides(TrainConfig(), [f"model={model}", f"model_kwargs.{key}={value}"])
    _check_accepted(config)


# ---------------------------------------------------------------------------------------------- --input
SEPARATORS = st.sampled_from(["x", "×", "X", " x ", "*", ",", "xx", ""])
INPUT_TEXT = st.one_of(
    st.text(max_size=16),
    st.builds(
        lambda dims, sep: sep.join(dims),
        st.lists(
            st.one_of(st.integers(-3, 10**6).map(str), st.sampled_from(["", "a", "1.5", "٣"])), max_size=5
        ),
        SEPARATORS,
    ),
)


@settings(max_examples=400, **FUZZ)
@given(text=INPUT_TEXT)
def test_input_parser(text: str) -> None:
    CASES["--input (parser)"] += 1
    try:
        shape = parse_input(text)
    except DepthlabError as exc:
        one_line(exc)
        return
    assert len(shape) == 3 and all(isinstance(v, int) and v >= 1 for v in shape)
    digits = [int(v) for v in text.strip().lower().replace("×", "x").split("x")]
    assert list(shape[3 - len(digits) :]) == digits  # what was typed, channels defaulting to 3


@settings(max_examples=40, **FUZZ)
@given(
    model=st.sampled_from(["resnet20", "alexnet", "googlenet", "vgg11_bn", "resnet18", "plain20"]),
    shape=st.tuples(st.integers(0, 6), st.integers(0, 300), st.integers(0, 300)),
    command=st.sampled_from(["summary", "compare"]),
)
def test_analysis_cli_with_fuzzed_input_shapes(model: str, shape: tuple[int, int, int], command: str) -> None:
    CASES["--input (summary/compare CLI)"] += 1
    text = "x".join(map(str, shape))
    code, out, err = run_cli([command, model, "--input", text, "--json"])
    if code == 2:
        assert err.startswith("depthlab: error: ") and err.count("\n") == 1, err
        assert min(shape) == 0 or "too small" in err or "cannot run" in err, err
        return
    assert code == 0, err
    (row,) = json.loads(out)["models"]
    assert tuple(row["input_shape"]) == shape and row["macs"] > 0


# ------------------------------------------------------------------------------------ --data, synthetic
@settings(max_examples=200, **FUZZ)
@given(
    options=st.one_of(
        st.text(max_size=20),
        st.lists(
            st.tuples(st.sampled_from([*SYNTHETIC_DEFAULTS, "colour", ""]), st.sampled_from(["=", ":", ""]),
                      st.one_of(st.integers(-5, 10**7).map(str), st.sampled_from(["", "x", "1.5", "9" * 5000]))),
            max_size=4,
        ).map(lambda items: ",".join(k + s + v for k, s, v in items)),
    )
)  # fmt: skip
def test_synthetic_options(options: str) -> None:
    CASES["--data synthetic:OPTIONS"] += 1
    try:
        values = parse_synthetic_options(options)
    except DepthlabError as exc:
        one_line(exc)
        return
    assert values.keys() == SYNTHETIC_DEFAULTS.keys() and values["classes"] >= 2 and values["size"] >= 1


@settings(max_examples=100, **FUZZ)
@given(
    name=st.one_of(st.text(max_size=20), st.sampled_from(["imagefolder:", "imagefolder", "MNIST", "cifar"]))
)
def test_dataset_names(name: str) -> None:
    CASES["--data NAME"] += 1
    kind = name.partition(":")[0]
    if kind in ("fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic"):
        return  # real datasets (and generated ones) have their own tests
    with pytest.raises(DepthlabError) as info:
        load_data(name, data_dir=None)
    one_line(info.value)


# ------------------------------------------------------------------------------------------ image folders
def _png(mode: str, size: tuple[int, int] = (10, 10), value: int = 128) -> Image.Image:
    return Image.new(mode, size, value if mode not in ("RGB", "RGBA", "CMYK") else (value,) * len(mode))


def _save(img: Image.Image, path: Path, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bytes(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _rgb16_png(side: int = 6, value: int = 0x8080) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), every sample ``value``."""
    row = b"\0" + struct.pack(">H", value) * (3 * side)
    return _png_bytes(side, side, 16, 2, zlib.compress(row * side))


def _truncated_png(side: int = 10) -> bytes:
    packer = zlib.compressobj()
    idat = packer.compress((b"\0" + bytes(3 * side)) * side) + packer.flush(zlib.Z_SYNC_FLUSH)
    return _png_bytes(side, side, 8, 2, idat[: len(idat) // 3])


def _ok(root: Path, name: str = "ok.png") -> None:
    _save(_png("RGB"), root / "a" / name)


# Each case: a function filling the folder, and the expected outcome — "refused", or
# (training images, skipped at load, failing at decode, expected grey level of the decoded images or None).
FolderCase = tuple[Callable[[Path], None], object]
FOLDER_CASES: dict[str, FolderCase] = {
    "no class folders": (lambda r: r.mkdir(parents=True), "refused"),
    "root is a file": (lambda r: r.write_bytes(b"x"), "refused"),
    "empty class folder": (lambda r: (r / "a").mkdir(parents=True), "refused"),
    "only unreadable files": (lambda r: (r / "a").mkdir(parents=True) or (r / "a" / "x.png").write_bytes(b"no"), "refused"),
    "zero-byte png": (lambda r: _ok(r) or (r / "a" / "zero.png").write_bytes(b""), (1, 1, 0, 128)),
    "text file .txt": (lambda r: _ok(r) or (r / "a" / "notes.txt").write_text("hi"), (1, 0, 0, 128)),
    "text named .png": (lambda r: _ok(r) or (r / "a" / "fake.png").write_text("hi"), (1, 1, 0, 128)),
    "jpeg named .png": (lambda r: _save(_png("RGB"), r / "a" / "x.png", "JPEG"), (1, 0, 0, 128)),
    "png named .jpg": (lambda r: _save(_png("RGB"), r / "a" / "x.jpg"), (1, 0, 0, 128)),
    "upper-case .PNG": (lambda r: _save(_png("RGB"), r / "a" / "X.PNG"), (1, 0, 0, 128)),
    ".gif is not an image extension": (lambda r: _ok(r) or _save(_png("P"), r / "a" / "x.gif", "GIF"), (1, 0, 0, 128)),
    "grayscale L": (lambda r: _save(_png("L"), r / "a" / "g.png"), (1, 0, 0, 128)),
    "grayscale + alpha LA": (lambda r: _save(_png("LA", value=128), r / "a" / "g.png"), (1, 0, 0, 128)),
    "RGBA": (lambda r: _save(_png("RGBA"), r / "a" / "x.png"), (1, 0, 0, 128)),
    "palette P": (lambda r: _save(_png("L").convert("P"), r / "a" / "x.png"), (1, 0, 0, 128)),
    "1-bit": (lambda r: _save(Image.new("1", (10, 10), 1), r / "a" / "x.png"), (1, 0, 0, 255)),
    "16-bit gray png": (lambda r: _save(Image.fromarray(np.full((10, 10), 128 * 257, np.uint16)), r / "a" / "x.png"), (1, 0, 0, 128)),
    "16-bit RGB png": (lambda r: (r / "a").mkdir(parents=True) or (r / "a" / "x.png").write_bytes(_rgb16_png()), (1, 0, 0, 128)),
    "32-bit int tiff": (lambda r: _save(Image.fromarray(np.full((10, 10), 128 * 257, np.int32)), r / "a" / "x.tif", "TIFF"), (1, 0, 0, 128)),
    "float tiff": (lambda r: _save(Image.fromarray(np.full((10, 10), 128 / 255, np.float32)), r / "a" / "x.tif", "TIFF"), (1, 0, 0, 128)),
    "CMYK jpeg": (lambda r: _save(Image.new("CMYK", (10, 10), (0, 0, 0, 127)), r / "a" / "x.jpg", "JPEG"), (1, 0, 0, None)),
    "16-bit pgm": (lambda r: _save(Image.fromarray(np.full((10, 10), 128 * 257, np.uint16)), r / "a" / "x.pgm", "PPM"), (1, 0, 0, 128)),
    "1x1 image": (lambda r: _save(_png("RGB", (1, 1)), r / "a" / "x.png"), (1, 0, 0, 128)),
    "1x400 strip": (lambda r: _save(_png("RGB", (400, 1)), r / "a" / "x.png"), (1, 0, 0, 128)),
    "decompression-bomb header": (lambda r: _ok(r) or (r / "a" / "bomb.png").write_bytes(_png_bytes(100_000, 100_000, 8, 2, zlib.compress(b"\0" * 64))), (1, 1, 0, 128)),
    "zero-size header": (lambda r: _ok(r) or (r / "a" / "z.png").write_bytes(_png_bytes(0, 0, 8, 2, zlib.compress(b""))), (1, 1, 0, 128)),
    "truncated png (passes verify)": (lambda r: _ok(r) or (r / "a" / "t.png").write_bytes(_truncated_png()), (2, 0, 1, 128)),
    "broken symlink": (lambda r: _ok(r) or (r / "a" / "gone.png").symlink_to(r / "nowhere.png"), (1, 1, 0, 128)),
    "symlink cycle": (lambda r: _ok(r) or _ok(r / "a", "sub/y.png") or (r / "a" / "a" / "sub" / "loop").symlink_to(r / "a" / "a" / "sub"), (2, 0, 0, 128)),
    "hidden files and folders": (lambda r: _ok(r) or _ok(r, ".hidden.png") or _ok(r / "a", ".secret/z.png"), (1, 0, 0, 128)),
    "folder named x.png": (lambda r: _ok(r) or (r / "a" / "x.png").mkdir(), (1, 0, 0, 128)),
    "undecodable name bytes": (lambda r: _ok(r) or (r / "a" / os.fsdecode(b"\xff\xfe.png")).write_bytes(b"no"), (1, 1, 0, 128)),
    "test class not in train": (lambda r: _ok(r / "train") or _save(_png("RGB"), r / "test" / "b" / "x.png"), "refused"),
    "empty test folder": (lambda r: _ok(r / "train") or (r / "test").mkdir(), "refused"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_image_folder_with_odd_files(tmp_path: Path, case: str) -> None:
    CASES["image folders"] += 1
    fill, expected = FOLDER_CASES[case]
    root = tmp_path / "imgs"
    fill(root)
    try:
        bundle = load_data(f"imagefolder:{root}", image_size=8, val_size=0)
    except DepthlabError as exc:
        one_line(exc)
        assert expected == "refused", f"{case}: refused with {exc}"
        return
    assert expected != "refused", f"{case}: accepted"
    n_train, n_skipped, n_failed, grey = expected  # type: ignore[misc]
    assert (len(bundle.train), len(bundle.skipped)) == (n_train, n_skipped), case
    decoded = [FolderDataset(bundle.train)[i][1] for i in range(len(bundle.train))]
    assert sum(img is None for img in decoded) == n_failed, case
    for img in (d for d in decoded if d is not None):
        assert img.shape == (3, 8, 8) and img.dtype == torch.uint8, case
        if grey is not None:
            assert (img.int() - grey).abs().max() <= 1, (case, img.unique())
    loader = make_loader(bundle, bundle.train, batch_size=len(bundle.train), train=True, workers=0)
    ((x, y),) = list(loader.epoch(0))
    assert x.shape == (n_train - n_failed, 3, 8, 8) and torch.isfinite(x).all()


def test_image_folder_strict_and_empty_path(tmp_path: Path) -> None:
    CASES["image folders"] += 2
    FOLDER_CASES["text named .png"][0](tmp_path / "imgs")
    with pytest.raises(DepthlabError, match="fake.png") as info:
        load_data(f"imagefolder:{tmp_path / 'imgs'}", strict=True)
    one_line(info.value)
    with pytest.raises(DepthlabError, match="needs a path") as info:
        load_data("imagefolder:")
    one_line(info.value)


# ---------------------------------------------------------------------------------------------- IDX files
def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


IDX_IMAGES = _idx(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3))  # 4 + 12 header + 18 data bytes
IDX_LABELS = _idx(np.array([1, 2], dtype=np.uint8))  # 4 + 4 header + 2 data bytes
IDX_MUTANTS = {
    "zero dimensions": b"\x00\x00\x08\x00",
    "255 dimensions, no sizes": b"\x00\x00\x08\xff" + b"\x00" * 8,
    "huge sizes": b"\x00\x00\x08\x03" + b"\xff" * 12 + b"\x00" * 10,
    "type int32": b"\x00\x00\x0c\x01" + struct.pack(">I", 1) + b"\x00" * 4,
    "zero images": b"\x00\x00\x08\x03" + struct.pack(">III", 0, 28, 28),
    "trailing bytes": IDX_IMAGES + b"\x00",
}


def _idx_cases() -> list[tuple[str, bytes, bool]]:
    cases = []
    for name, blob in (("images", IDX_IMAGES), ("labels", IDX_LABELS)):
        for cut in range(len(blob)):  # header, dimension sizes, data: cut at every byte
            cases.append((f"{name}[:{cut}]", blob[:cut], False))
            cases.append((f"{name}[:{cut}].gz", gzip.compress(blob)[:cut] if cut else b"", True))
        packed = gzip.compress(blob)
        for cut in range(len(blob), len(packed)):  # the rest of the compressed stream
            cases.append((f"{name}.gz[:{cut}]", packed[:cut], True))
        flipped = bytearray(packed)
        flipped[len(flipped) // 2] ^= 0xFF
        cases.append((f"{name}.gz corrupt", bytes(flipped), True))
    cases += [(name, blob, False) for name, blob in IDX_MUTANTS.items()]
    return cases


IDX_CASES = _idx_cases()


def test_idx_files_truncated_at_every_byte(tmp_path: Path) -> None:
    for name, blob, gz in IDX_CASES:
        CASES["IDX files"] += 1
        path = tmp_path / ("f.gz" if gz else "f")
        path.write_bytes(blob)
        try:
            array = read_idx(path)
        except DepthlabError as exc:
            one_line(exc)
            continue
        assert name == "zero images" and tuple(array.shape) == (0, 28, 28), name


@pytest.mark.parametrize("section", ["header", "dims", "data"])
def test_truncated_idx_through_load_data(tmp_path: Path, section: str) -> None:
    CASES["IDX files"] += 1
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 20, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5, dtype=np.uint8),
    }
    for name, array in files.items():
        (tmp_path / name).write_bytes(_idx(array))
    blob = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    cut = {"header": 3, "dims": 9, "data": len(blob) - 1}[section]
    (tmp_path / "train-images-idx3-ubyte").write_bytes(blob[:cut])
    with pytest.raises(DepthlabError, match="train-images-idx3-ubyte") as info:
        load_data("mnist", data_dir=tmp_path)
    one_line(info.value)


# ------------------------------------------------------------------------------------------ CIFAR batches
def _cifar10(root: Path) -> Path:
    """A tiny torchvision-layout CIFAR-10 (2 images per batch)."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, 2)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return folder


def _cuts(size: int) -> list[int]:
    """Every byte of the first 96 (protocol, dict, keys, array header), ~24 through the data, every
    4th byte of the last 96 (the labels and the end of the pickle)."""
    return sorted(set(range(min(96, size))) | set(range(96, size - 96, max(1, (size - 192) // 24)))
                  | set(range(max(0, size - 96), size, 4)))  # fmt: skip


def test_cifar_batches_truncated_at_every_section(tmp_path: Path) -> None:
    folder = _cifar10(tmp_path)
    assert len(load_data("cifar10", data_dir=tmp_path, val_size=2).train) == 8  # the intact copy loads
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        blob = (folder / name).read_bytes()
        for cut in _cuts(len(blob)):
            CASES["CIFAR batches"] += 1
            (folder / name).write_bytes(blob[:cut])
            with pytest.raises(DepthlabError, match=f"cifar10|{name}") as info:
                load_data("cifar10", data_dir=tmp_path, val_size=2)
            one_line(info.value)
        (folder / name).write_bytes(blob)


@pytest.mark.parametrize(
    "batch",
    [
        {"data": np.zeros((2, 3071), np.uint8), "labels": [0, 1]},
        {"data": np.zeros((2, 3072), np.uint8), "labels": [0]},
        {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]},
        {"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]},
        {"data": "not an array", "labels": [0, 1]},
        {"labels": [0, 1]},
        ["a", "list"],
    ],
    ids=["short rows", "too few labels", "label 10", "float data", "string data", "no data", "a list"],
)
def test_cifar_batches_with_wrong_content(tmp_path: Path, batch: object) -> None:
    CASES["CIFAR batches"] += 1
    folder = _cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch))
    with pytest.raises(DepthlabError) as info:
        load_data("cifar10", data_dir=tmp_path, val_size=2)
    one_line(info.value)
