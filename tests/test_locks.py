"""The lock of a run directory: a held run is refused naming its holder; a holder that died is taken over
with a warning (killed, leaving a forked child holding its descriptor, or silent on another machine); a study
directory's status lists each run as done, running or waiting; the machine's cores are shared.

Holders here are small Python processes that lock the files as depthlab does (filelock, or flock itself
for the forked child) without importing depthlab, so they start in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
import torch

from depthlab.cli import main
from depthlab.errors import RunHeldError
from depthlab.train import TrainConfig
from depthlab.train.config import config_to_dict
from depthlab.train.runlock import (
    HOLDER_FILE,
    LOCK_FILE,
    STALE_AFTER_S,
    ThreadShare,
    acquire_run,
    live_trainers,
    lock_status,
    try_acquire_run,
)
from lockholder import HOST, Holder


@pytest.fixture
def holders():
    started: list[Holder] = []

    def start(run: Path, how: str = "filelock") -> Holder:
        started.append(Holder(run, how))
        return started[-1]

    yield start
    for h in started:
        h.close()


# --------------------------------------------------------------------------------------------- held runs
def test_a_held_run_is_refused_naming_its_holder(tmp_path: Path, holders) -> None:
    run = tmp_path / "run"
    holder = holders(run)
    assert try_acquire_run(run) is None
    with pytest.raises(RunHeldError, match=f"{run} is being trained by {HOST} pid {holder.pid} "):
        acquire_run(run)
    status = lock_status(run)
    assert status.held and status.holder is not None and status.holder.pid == holder.pid


def test_train_resume_of_a_held_run_is_one_line_and_exit_2(
    tmp_path: Path, holders, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config = TrainConfig(
        model="resnet20", data="synthetic:size=8,train=64,test=16,classes=4", epochs=None, steps=4
    )
    (run / "config.json").write_text(json.dumps(config_to_dict(config)))
    holder = holders(run)
    before = sorted(p.name for p in run.iterdir())
    assert main(["train", "--resume", str(run), "--quiet", "--no-tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"depthlab: error: {run} is being trained by {HOST} pid {holder.pid} (since ")
    assert "\n" not in err
    assert sorted(p.name for p in run.iterdir()) == before  # the holder's run is untouched


# --------------------------------------------------------------------------------------- dead holders
def test_a_killed_holder_is_taken_over_and_named(tmp_path: Path, holders) -> None:
    run = tmp_path / "run"
    holder = holders(run)
    holder.kill()  # kill -9: the kernel releases its flock; its record stays behind
    assert (run / HOLDER_FILE).exists()
    assert not lock_status(run).held  # a dead holder holds nothing: the next worker takes it
    lock = try_acquire_run(run)
    assert lock is not None and lock.took_over is not None
    assert (lock.took_over.host, lock.took_over.pid) == (HOST, holder.pid)
    record = json.loads((run / HOLDER_FILE).read_text())
    assert record["pid"] == os.getpid()
    lock.release()
    assert not (run / LOCK_FILE).exists() and not (run / HOLDER_FILE).exists()


def test_a_lock_kept_by_a_forked_child_of_a_dead_holder_is_broken(tmp_path: Path, holders) -> None:
    import fcntl

    run = tmp_path / "run"
    holder = holders(run, "fork")
    holder.kill()  # the trainer dies; its child still has the locked descriptor
    fd = os.open(run / LOCK_FILE, os.O_RDWR)
    with pytest.raises(BlockingIOError):  # the flock is really still held
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    lock = try_acquire_run(run)  # the record names a process that is not running: the lock is broken
    assert lock is not None and lock.took_over is not None and lock.took_over.pid == holder.pid
    lock.release()


def test_a_holder_on_another_machine_counts_until_its_heartbeat_is_stale(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    record = {"host": "elsewhere", "pid": 4242, "started": time.time(), "command": "x", "token": "t"}
    (run / HOLDER_FILE).write_text(json.dumps(record))
    # No flock reaches this machine (as on NFS with local_lock=flock), but the heartbeat is fresh: held.
    assert try_acquire_run(run) is None
    assert lock_status(run).holder.host == "elsewhere"  # type: ignore[union-attr]
    stale = time.time() - STALE_AFTER_S - 1
    os.utime(run / HOLDER_FILE, (stale, stale))
    lock = try_acquire_run(run)
    assert lock is not None and lock.took_over is not None and lock.took_over.host == "elsewhere"
    lock.release()


# ----------------------------------------------------------------------------------------- within a process
def test_the_lock_is_reentrant_and_leaves_no_file(tmp_path: Path) -> None:
    run = tmp_path / "new-run"
    outer = try_acquire_run(run)
    assert outer is not None and (run / LOCK_FILE).exists()
    inner = try_acquire_run(run)  # what the trainer does inside the study engine's hold
    assert inner is not None and inner.took_over is None
    inner.release()
    assert (run / LOCK_FILE).exists()  # still held by the outer hold
    outer.release()
    assert not run.exists()  # created by the lock, never used: nothing is left


# ----------------------------------------------------------------------------------------------- status
def test_status_lists_runs_as_done_running_or_waiting(
    tmp_path: Path, holders, capsys: pytest.CaptureFixture[str]
) -> None:
    from depthlab.studies import get_study
    from depthlab.studies.engine import study_status
    from studies import TINY, tiny_preset

    study, preset = get_study("degradation"), tiny_preset("seeds=2")
    names = [s.name for s in study.grid(preset, range(2), "cpu", None)]
    assert len(names) == 4
    done, running = tmp_path / "runs" / names[0], tmp_path / "runs" / names[1]
    done.mkdir(parents=True)
    (done / "summary.json").write_text(json.dumps({"status": "completed", "step": 4}))
    holder = holders(running)
    states = {s.name: s for s in study_status(study, preset, tmp_path)}
    assert [states[n].state for n in names] == ["done", "running", "waiting", "waiting"]
    assert states[names[1]].holder.pid == holder.pid  # type: ignore[union-attr]

    argv = ["experiment", "degradation", "--out", str(tmp_path), "--status"]
    argv += [x for item in [*TINY, "seeds=2"] for x in ("--set", item)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "done (completed)" in out and f"pid {holder.pid}" in out and "1 done, 1 running, 2 waiting" in out

    holder.kill()  # a dead holder's run is waiting for the next worker
    assert study_status(study, preset, tmp_path)[1].state == "waiting"


# ------------------------------------------------------------------------------------------------- cores
def test_live_trainers_counts_the_processes_holding_their_trainer_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holders
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    trainers = tmp_path / f"depthlab-{os.getuid()}" / "trainers"
    trainers.mkdir(parents=True)
    assert live_trainers() == 0
    # Two live trainers (their flock held) and one that died (its file left unlocked).
    first, second = holders(tmp_path / "a"), holders(tmp_path / "b")
    for h, run in ((first, "a"), (second, "b")):
        os.link(tmp_path / run / LOCK_FILE, trainers / f"{h.pid}.lock")
    (trainers / "999999.lock").write_text("")
    assert live_trainers() == 2
    assert not (trainers / "999999.lock").exists()
    # This process counts itself while it holds a run.
    lock = try_acquire_run(tmp_path / "mine")
    assert lock is not None and live_trainers() == 3
    lock.release()
    assert live_trainers() == 2


@pytest.mark.parametrize(
    ("trainers", "cores", "limit", "threads"),
    [(1, 16, 16, 16), (3, 16, 16, 5), (3, 2, 2, 1), (2, 16, 4, 4), (0, 8, 8, 8), (40, 16, 16, 1)],
)
def test_each_trainer_takes_its_share_of_the_cores(
    trainers: int, cores: int, limit: int, threads: int
) -> None:
    assert ThreadShare(limit).threads_for(trainers, cores) == threads


def test_thread_share_sets_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from depthlab.train import runlock

    before = torch.get_num_threads()
    monkeypatch.setattr(runlock, "live_trainers", lambda: 2)
    monkeypatch.setattr(runlock, "usable_cores", lambda: 2)
    try:
        assert ThreadShare(2).apply() == (1, 2, 2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
