"""Errors of the environment are not bugs: a full disk, permission denied, a read-only file system and a run
directory deleted under a running trainer end the command with one line naming the file, what the OS said
and what to do, exit code 3 — and nothing is lost: no partial file is left, every metrics row written before
the failure stays, and a resume finishes the run with the weights of a run that never failed.

Faults are injected into the atomic write (``os.replace`` raising) where the disk cannot really fill; where
the test runs as root and can mount a 4 MiB tmpfs, the disk really fills.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from depthlab.cli import main
from depthlab.errors import EnvironmentFault
from depthlab.io import write_text
from depthlab.train import TrainConfig, read_metrics, train
from depthlab.train.rundir import MetricsLog, environment_message
from depthlab.train.runlock import guard_run

# Tiny models: one intra-op thread for the whole module, so the reference and the resumed runs compare bit for bit.
pytestmark = pytest.mark.usefixtures("one_thread_module")

DATA = "synthetic:size=8,train=64,test=16,classes=4"
# fp32 pinned: runs are compared bit for bit, and "auto" would train in bf16 on a CPU with native bf16.
TRAIN = [
    "train", "resnet20", "--data", DATA, "--steps", "6", "--batch-size", "16", "--lr", "0.05", "--log-every", "1",
    "--eval-every", "2", "--checkpoint-every", "2", "--device", "cpu", "--precision", "fp32", "--quiet",
    "--no-tensorboard",
]  # fmt: skip
STRERROR = {errno.ENOSPC: "No space left on device", errno.EACCES: "Permission denied",
            errno.EROFS: "Read-only file system", errno.EDQUOT: "Disk quota exceeded"}  # fmt: skip
REMEDY = {errno.ENOSPC: "free space", errno.EACCES: "write access", errno.EROFS: "read-only file system",
          errno.EDQUOT: "quota"}  # fmt: skip


def rows_without_speed(run: Path) -> list[dict]:
    """metrics.jsonl without images_per_s (a wall-clock measurement, different in every session)."""
    return [{k: v for k, v in row.items() if k != "images_per_s"} for row in read_metrics(run)]


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    pointer = json.loads((run / "checkpoints" / "last.json").read_text())
    return load_file(run / "checkpoints" / pointer["weights"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run, never interrupted."""
    run = tmp_path_factory.mktemp("env") / "reference"
    assert main([*TRAIN, "--out", str(run)]) == 0
    return run


def fail_on(monkeypatch: pytest.MonkeyPatch, fragment: str, code: int) -> None:
    """Make the atomic rename of any file whose name contains ``fragment`` fail with ``code``, as the OS
    would report it (no file name: the write path must add it)."""
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if fragment in os.fspath(dst):
            raise OSError(code, os.strerror(code))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("depthlab: error: ") and "\n" not in err, err
    assert "Traceback" not in err and "bug" not in err
    return err


def temporary_files(run: Path) -> list[str]:
    return [p.name for p in run.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------ a full disk, resumed
def test_a_full_disk_at_a_checkpoint_is_exit_3_and_loses_nothing(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        fail_on(m, "step-00000004", errno.ENOSPC)
        assert main([*TRAIN, "--out", str(run)]) == 3
    err = one_line(capsys)
    assert err == (
        f"depthlab: error: {run / 'checkpoints' / 'step-00000004.safetensors'}: No space left on device; free "
        f"space on the file system of {run} and run `depthlab train --resume {run}`; the last good checkpoint "
        f"is step 2"
    )
    # No partial file: no temporary file, nothing of the failed checkpoint, the pointer still at step 2.
    assert temporary_files(run) == []
    assert not list((run / "checkpoints").glob("step-00000004*"))
    assert json.loads((run / "checkpoints" / "last.json").read_text())["step"] == 2
    # Every metrics row written before the failure is kept, equal to the uninterrupted run's.
    written = rows_without_speed(run)
    expected = rows_without_speed(reference)
    assert max(r["step"] for r in written) >= 2 and written == expected[: len(written)]
    # Nothing lost: the resume ends where the uninterrupted run ended, bit for bit.
    assert main(["train", "--resume", str(run), "--quiet", "--no-tensorboard"]) == 0
    assert rows_without_speed(run) == expected
    ours, theirs = last_weights(run), last_weights(reference)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.EDQUOT])
def test_each_refusal_of_the_os_names_its_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], code: int
) -> None:
    run = tmp_path / "run"
    fail_on(monkeypatch, "summary.json", code)  # the first write after config.json: before any checkpoint
    assert main([*TRAIN, "--out", str(run)]) == 3
    err = one_line(capsys)
    assert f"{run / 'summary.json'}: {STRERROR[code]}" in err and REMEDY[code] in err
    assert "it had no checkpoint yet" in err and f"remove {run}" in err
    assert temporary_files(run) == []


def test_a_study_run_that_hits_a_full_disk_names_the_experiment_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies import TINY

    argv = ["experiment", "degradation", "--device", "cpu", "--out", str(tmp_path / "s")]
    argv += [x for item in [*TINY, "shatter_points=0"] for x in ("--set", item)]
    fail_on(monkeypatch, "step-00000004", errno.ENOSPC)
    assert main(argv) == 3
    err = one_line(capsys)
    run = tmp_path / "s" / "runs" / "plain20-s0"
    assert f"{run / 'checkpoints' / 'step-00000004.safetensors'}: No space left on device" in err
    # What to do is the command as typed: it resumes the run from its last good checkpoint.
    assert "run `depthlab experiment degradation --device cpu" in err
    assert "again: it resumes plain20-s0 from its last good checkpoint, step 2" in err


# ------------------------------------------------------------------------------------ a deleted directory
def test_a_run_directory_deleted_while_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = TrainConfig(model="resnet20", data=DATA, epochs=None, steps=6, batch_size=16, lr=0.05, log_every=1,
                         eval_every=2, checkpoint_every=2, device="cpu", precision="fp32")  # fmt: skip

    def delete_during_step_3(event) -> None:
        if event.kind == "step" and event.step == 3 and run.exists():
            shutil.rmtree(run)

    with pytest.raises(EnvironmentFault) as info, guard_run(run):
        train(config, run, callback=delete_during_step_3)
    fault = info.value
    assert fault.deleted and fault.run_dir == str(run) and fault.errno == errno.ENOENT
    assert str(fault).startswith(f"{run}: the run directory was deleted while it was being trained (")
    assert str(fault).endswith(f"its checkpoints went with it: start the run again with --out {run}")
    # The failing trainer recreated the directory for its summary; nothing of that is left behind.
    assert not run.exists()


# ------------------------------------------------------------------------------------ the write primitives
def test_an_atomic_write_that_fails_names_its_file_and_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "summary.json"
    write_text(path, "old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what fsync says: no file name

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        write_text(path, "new\n")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_metrics_rows_are_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl", enabled=True)
    log.write([{"step": 1, "split": "train", "loss": 1.0}])
    before = (tmp_path / "metrics.jsonl").read_bytes()
    real = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 8:
            return real(fd, bytes(data[: len(data) // 2]))  # a short write: part of the rows reaches the disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError) as info:
        log.write([{"step": 2, "split": "train", "loss": 0.5}, {"step": 2, "split": "val", "loss": 0.7}])
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "metrics.jsonl")
    assert (tmp_path / "metrics.jsonl").read_bytes() == before  # the earlier row stays, no torn row


def test_the_message_without_a_run_says_to_run_the_command_again() -> None:
    cause = OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/out/results.json")
    assert environment_message(cause) == (
        "/mnt/ro/out/results.json: Read-only file system; /mnt/ro/out is on a read-only file system: remount "
        "it read-write (or use another directory), then run the command again"
    )


# ------------------------------------------------------------------------------------ a real full disk
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs (root only): room for the first checkpoint of the tiny run, not for the second."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_disk_that_really_fills_up(
    reference: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = small_disk / "run"
    assert main([*TRAIN, "--out", str(run)]) == 3
    err = one_line(capsys)
    assert "No space left on device" in err and f"depthlab train --resume {run}" in err
    assert "the last good checkpoint is step 2" in err
    assert temporary_files(run) == []
    written = rows_without_speed(run)
    assert written == rows_without_speed(reference)[: len(written)]
    # Free space (a larger file system), resume: the run ends as if the disk had never filled.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert main(["train", "--resume", str(run), "--quiet", "--no-tensorboard"]) == 0
    ours, theirs = last_weights(run), last_weights(reference)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
