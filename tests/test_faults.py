"""Faults and bad input: damaged run directories, user errors vs bugs in the CLI, a mistyped --data-dir, and
streamed batches whose images fail to decode.

Every verb that reads a run directory answers a damaged, truncated, foreign or missing file with one line on
stderr naming the file, exit code 2, and leaves the directory byte for byte as it was; a resume whose newest
checkpoint is damaged falls back to the previous one and says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from depthlab import create_model
from depthlab.cli import main
from depthlab.data import DataError, load_data
from depthlab.errors import CheckpointError, DepthlabError, MissingFileError, UsageError
from depthlab.train import TrainConfig, TrainEvent, load_run_model, read_metrics, train

# Tiny models: one intra-op thread for the whole module (`one_thread_module` in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread_module")


DATA = "synthetic:size=8,train=64,test=16,classes=4"
CONFIG = TrainConfig(
    model="resnet20", data=DATA, epochs=None, steps=4, batch_size=16, lr=0.05, log_every=2, eval_every=2,
    checkpoint_every=2, device="cpu", precision="fp32",  # pinned: runs are compared bit for bit
)  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed 4-step run: last checkpoint at step 4 (previous: step 2) and a best checkpoint."""
    out = tmp_path_factory.mktemp("faults") / "run"
    train(CONFIG, out)
    return out


def tree_digest(folder: Path) -> str:
    """One hash over every file's relative path and bytes (and every directory's name)."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _pointer(run: Path, kind: str) -> dict:
    return json.loads((run / "checkpoints" / f"{kind}.json").read_text())


def _write_foreign_model(path: Path, step: int) -> None:
    """Weights of a different model (4 → 7 classes) with a valid safetensors header and the right step."""
    other = create_model("resnet20", num_classes=7, in_channels=3).state_dict()
    save_file({k: v.contiguous() for k, v in other.items()}, str(path), metadata={"step": str(step)})


# Each damage: (name, what it does to a file of the run, words the message must contain).
Damage = Callable[[Path, int], None]
DAMAGES: dict[str, tuple[Damage, str]] = {
    "truncated": (lambda p, s: p.write_bytes(p.read_bytes()[:5]), "header too small"),
    "partial": (lambda p, s: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
    "random bytes": (lambda p, s: p.write_bytes(np.random.default_rng(0).bytes(4096)), "safetensors"),
    "empty": (lambda p, s: p.write_bytes(b""), "empty"),
    "missing": (lambda p, s: p.unlink(), "missing"),
    "different model": (_write_foreign_model, "different model"),
    "foreign tensors": (
        lambda p, s: save_file({"x": torch.zeros(3)}, str(p), metadata={"step": str(s)}),
        "different model",
    ),
}


def _damage_weights(run: Path, kind: str, damage: str, which: str = "newest") -> Path:
    pointer = _pointer(run, kind)
    targets = [pointer] if which == "newest" else [pointer, pointer["previous"]]
    for target in targets:
        path = run / "checkpoints" / target["weights"]
        DAMAGES[damage][0](path, target["step"])
    return run / "checkpoints" / pointer["weights"]


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("depthlab: error: ") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


# ---------------------------------------------------------------------------------- damaged checkpoints
@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("kind", ["last", "best"])
def test_eval_of_a_damaged_checkpoint_is_one_line_and_changes_nothing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, kind: str
) -> None:
    run = _copy(finished_run, tmp_path)
    path = _damage_weights(run, kind, damage)
    before = tree_digest(run)
    assert main(["eval", str(run), "--checkpoint", kind]) == 2
    _one_line_error(capsys, str(path), DAMAGES[damage][1])
    assert tree_digest(run) == before
    with pytest.raises(CheckpointError, match=re.escape(DAMAGES[damage][1])):  # what analysis commands call
        load_run_model(run, kind)
    assert tree_digest(run) == before


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_resume_with_no_good_checkpoint_is_one_line_and_changes_nothing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    run = _copy(finished_run, tmp_path)
    path = _damage_weights(run, "last", damage, which="newest and previous")
    before = tree_digest(run)
    assert main(["train", "--resume", str(run)]) == 2
    _one_line_error(capsys, str(path), DAMAGES[damage][1])  # the newest checkpoint's problem is reported
    assert tree_digest(run) == before


@pytest.mark.parametrize(
    ("pointer_text", "words"),
    [
        ("{not json", "not valid JSON"),
        ("", "empty file"),
        ('{"step": 4}', "no 'weights'"),
        ('{"step": -1, "weights": "step-00000004.safetensors"}', "non-negative integer"),
        ('{"step": 4, "weights": "../../config.json"}', "must name a *.safetensors file"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
@pytest.mark.parametrize("kind", ["last", "best"])
def test_a_corrupt_pointer_file_is_one_line_for_every_verb(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pointer_text: str, words: str,
    kind: str,
) -> None:  # fmt: skip
    run = _copy(finished_run, tmp_path)
    pointer = run / "checkpoints" / f"{kind}.json"
    pointer.write_text(pointer_text)
    before = tree_digest(run)
    assert main(["eval", str(run), "--checkpoint", kind]) == 2
    _one_line_error(capsys, str(pointer), words)
    assert main(["train", "--resume", str(run)]) == 2  # a resume reads both pointers
    _one_line_error(capsys, str(pointer), words)
    with pytest.raises(CheckpointError, match=re.escape(words)):
        load_run_model(run, kind)
    assert tree_digest(run) == before


@pytest.mark.parametrize("kind", ["last", "best"])
def test_a_missing_pointer_file_is_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    run = _copy(finished_run, tmp_path)
    pointer = run / "checkpoints" / f"{kind}.json"
    pointer.unlink()
    before = tree_digest(run)
    assert main(["eval", str(run), "--checkpoint", kind]) == 2
    _one_line_error(capsys, str(pointer), "missing")
    if kind == "last":
        assert main(["train", "--resume", str(run)]) == 2
        _one_line_error(capsys, str(pointer), "missing")
    assert tree_digest(run) == before


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("config.json", "{", "not valid JSON"),
        ("config.json", '{"modle": "resnet20"}', "unknown config key 'modle'"),
        ("config.json", '"resnet20"', "not a depthlab config"),
        ("summary.json", "{", "not valid JSON"),
        ("summary.json", '{"status": "completed"}', "not a depthlab run summary"),
    ],
)
def test_damaged_config_or_summary_is_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, words: str
) -> None:
    run = _copy(finished_run, tmp_path)
    (run / name).write_text(text)
    before = tree_digest(run)
    assert main(["eval", str(run)]) == 2
    _one_line_error(capsys, str(run / name), words)
    if name == "config.json":  # a resume does not read the summary (it rewrites it)
        assert main(["train", "--resume", str(run)]) == 2
        _one_line_error(capsys, str(run / name), words)
    assert tree_digest(run) == before


def test_damaged_trainer_state_stops_a_resume(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(finished_run, tmp_path)
    pointer = _pointer(run, "last")
    for target in (pointer, pointer["previous"]):
        state = run / "checkpoints" / target["state"]
        state.write_bytes(state.read_bytes()[:100])
    before = tree_digest(run)
    assert main(["train", "--resume", str(run)]) == 2
    _one_line_error(capsys, str(run / "checkpoints" / pointer["state"]), "trainer state")
    assert tree_digest(run) == before


def test_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "nope")]) == 2
    _one_line_error(capsys, str(tmp_path / "nope"), "does not exist")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    _one_line_error(capsys, str(tmp_path), "not a run directory")


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "missing", "different model"])
def test_resume_falls_back_to_the_previous_checkpoint_and_says_so(
    finished_run: Path, tmp_path: Path, damage: str
) -> None:
    run = _copy(finished_run, tmp_path)
    newest = _pointer(run, "last")
    assert (newest["step"], newest["previous"]["step"]) == (4, 2)
    _damage_weights(run, "last", damage)
    events: list[TrainEvent] = []
    summary = train(CONFIG, run, resume=True, callback=events.append)
    warnings = [e for e in events if e.kind == "warning"]
    assert len(warnings) == 1 and warnings[0].values["resumed_from"] == 2
    assert "step 4" in warnings[0].message and "previous one (step 2)" in warnings[0].message
    assert summary.status == "completed" and summary.step == 4
    # Steps 3-4 were redone from step 2: on CPU the result is the uninterrupted run's, bit for bit.
    redone = load_file(run / "checkpoints" / _pointer(run, "last")["weights"])
    original = load_file(finished_run / "checkpoints" / newest["weights"])
    assert redone.keys() == original.keys() and all(torch.equal(redone[k], original[k]) for k in original)
    assert [r["step"] for r in read_metrics(run)] == [r["step"] for r in read_metrics(finished_run)]


def test_checkpoints_keep_the_previous_one_and_no_more(finished_run: Path) -> None:
    pointer = _pointer(finished_run, "last")
    best = _pointer(finished_run, "best")
    kept = {p.name for p in (finished_run / "checkpoints").iterdir() if p.suffix in (".safetensors", ".pt")}
    named = {
        pointer["weights"],
        pointer["state"],
        pointer["previous"]["weights"],
        pointer["previous"]["state"],
    }
    assert kept == named | {best["weights"]}


# ------------------------------------------------------------------------------------ user errors vs bugs
def test_a_user_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet20", "--input", "3x0x5"]) == 2
    _one_line_error(capsys, "3x0x5")
    assert main(["summary", "resnet21"]) == 2
    _one_line_error(capsys, "unknown model 'resnet21'")
    assert main(["train", "resnet20", "--data", DATA, "--set", "model_kwargs.shortcut=Z"]) == 2
    _one_line_error(capsys, "shortcut must be one of")


def test_an_internal_bug_keeps_its_traceback_and_asks_for_a_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import depthlab.analysis.complexity as complexity

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr(complexity, "trace", broken)
    code = main(["summary", "resnet20"])
    err = capsys.readouterr().err
    assert code not in (0, 2)
    assert "Traceback (most recent call last)" in err and "ValueError: an internal invariant failed" in err
    assert "bug in depthlab" in err and "report it" in err


def test_a_plain_type_error_is_a_bug_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import depthlab.cli.models as models_cli

    monkeypatch.setattr(models_cli, "describe_models", lambda pattern: len(None))  # type: ignore[arg-type]
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "TypeError" in err and "report it" in err


def test_permission_denied_on_a_named_path_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import depthlab.cli.models as models_cli

    def denied(pattern: str) -> None:
        raise PermissionError(13, "Permission denied", "/root/runs")

    monkeypatch.setattr(models_cli, "describe_models", denied)
    assert main(["models"]) == 3  # an error of the environment (tests/test_env_errors.py), not of the input
    _one_line_error(capsys, "/root/runs", "Permission denied")


def test_error_classes_keep_the_builtin_bases() -> None:
    assert issubclass(UsageError, ValueError) and issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(CheckpointError, DepthlabError)
    with pytest.raises(ValueError):  # callers that catch ValueError still catch user errors
        create_model("resnet20", num_classes=0)


# ------------------------------------------------------------------------------------------- --data-dir
def test_a_data_dir_that_does_not_exist_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo"
    for name in ("mnist", "cifar10", DATA):
        with pytest.raises(MissingFileError, match=f"--data-dir {missing} does not exist"):
            load_data(name, data_dir=missing)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MissingFileError, match="is not a directory"):
        load_data("mnist", data_dir=tmp_path / "file")
    out = tmp_path / "run"
    assert main(["train", "resnet20", "--data", DATA, "--data-dir", str(missing), "--out", str(out)]) == 2
    _one_line_error(capsys, str(missing), "does not exist")
    assert not out.exists()
    assert main(["gradflow", "resnet20", "--data", DATA, "--data-dir", str(missing), "--out", str(out)]) == 2
    _one_line_error(capsys, str(missing))


def test_a_data_dir_to_download_into_may_be_new(tmp_path: Path) -> None:
    from depthlab.data.sources import check_data_dir

    check_data_dir(tmp_path / "new", download=True)  # the download creates it
    with pytest.raises(MissingFileError):
        check_data_dir(tmp_path / "new", download=False)


# --------------------------------------------------------------------------- images that fail to decode
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def truncated_png(side: int = 12) -> bytes:
    """A PNG whose chunks are all intact (so PIL's ``verify`` passes) but whose compressed pixel data stops
    a third of the way through (so decoding fails)."""
    raw = b"".join(b"\0" + bytes(range(side * 3)) for _ in range(side))
    packer = zlib.compressobj()
    idat = packer.compress(raw) + packer.flush(zlib.Z_SYNC_FLUSH)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat[: len(idat) // 3])
        + _chunk(b"IEND", b"")
    )  # fmt: skip


def test_the_truncated_png_passes_verify_but_fails_to_decode(tmp_path: Path) -> None:
    from depthlab.data.imagefolder import decode

    path = tmp_path / "t.png"
    path.write_bytes(truncated_png())
    with Image.open(path) as img:
        img.verify()
    with pytest.raises(OSError, match="truncated"):
        decode(str(path), 8)


def _folder(root: Path, bad_train: int, good_train: int) -> Path:
    rng = np.random.default_rng(0)
    for split, good, bad in (("train", good_train, bad_train), ("val", 2, 0), ("test", 2, 0)):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(good):
                Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(folder / f"{i}.png")
            for i in range(bad):
                (folder / f"bad{i}.png").write_bytes(truncated_png())
    return root


def test_steps_whose_images_all_fail_still_evaluate_and_checkpoint(tmp_path: Path) -> None:
    # 4 training images, all undecodable; batch 2 → 2 steps per epoch; 4 steps = 2 epochs.
    root = _folder(tmp_path / "imgs", bad_train=2, good_train=0)
    config = dataclasses.replace(
        CONFIG, data=f"imagefolder:{root}", image_size=8, batch_size=2, steps=4, workers=0, log_every=1,
        eval_every=3, checkpoint_every=3,
    )  # fmt: skip
    events: list[TrainEvent] = []
    summary = train(config, tmp_path / "run", callback=events.append)
    assert summary.status == "completed" and summary.step == 4
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows if r["split"] == "val"] == [3, 4]  # the last step evaluated
    assert [r["step"] for r in rows if r["split"] == "test"] == [3, 4]
    assert not [r for r in rows if r["split"] == "train"]  # no image trained on: no training loss to report
    assert _pointer(tmp_path / "run", "last")["step"] == 4  # ...and checkpointed
    # Each of the 4 bad files failed in both epochs; it is one skipped image, not two.
    assert summary.data["skipped"] == 4
    (warning,) = [e for e in events if e.kind == "warning"]
    assert warning.message.startswith("4 image(s) failed to decode") and warning.values["skipped_steps"] == 4


def test_a_mixed_batch_trains_on_what_decoded(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", bad_train=1, good_train=3)  # 8 images, 2 bad
    config = dataclasses.replace(
        CONFIG, data=f"imagefolder:{root}", image_size=8, batch_size=4, steps=4, workers=0, log_every=2,
        eval_every=4, checkpoint_every=4,
    )  # fmt: skip
    summary = train(config, tmp_path / "run")
    assert summary.data["skipped"] == 2 and summary.status == "completed"
    assert summary.images_per_s > 0 and torch.isfinite(torch.tensor(summary.final["train_loss"]))


def test_strict_fails_at_decode_time_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder(tmp_path / "imgs", bad_train=1, good_train=3)
    bundle = load_data(f"imagefolder:{root}", strict=True, image_size=8)  # verify() passes: loads
    assert bundle.skipped == ()
    args = ["train", "resnet20", "--data", f"imagefolder:{root}", "--image-size", "8", "--steps", "4",
            "--batch-size", "4", "--workers", "0", "--device", "cpu", "--strict", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(args) == 2
    _one_line_error(capsys, "cannot decode image", "bad0.png", "strict")
    with pytest.raises(DataError, match="strict"):
        train(dataclasses.replace(CONFIG, data=f"imagefolder:{root}", image_size=8, batch_size=4, workers=0,
                                  strict_data=True), tmp_path / "r2")  # fmt: skip
