"""Locks on run and study directories: two processes never train the same run at once.

While a process trains a run, its directory holds two small files beside the run's own
(:mod:`depthlab.train.rundir`)::

    RUN_DIR/.lock        the lock: an flock(2) on this file (through the filelock library)
    RUN_DIR/.lock.json   its holder: {"host", "pid", "started", "command", "token"}, written atomically; the
                         file's mtime is the holder's heartbeat, touched every HEARTBEAT_S seconds

and its parent holds ``.depthlab-lock.guard``, a second flock held for milliseconds around taking,
inspecting and giving back any lock of the directories beside it, so that ``.lock.json`` always describes
the lock's current holder. Because every taker holds the guard, giving the lock back can delete both files
without the race that usually forbids deleting a lock file: a finished or refused run keeps no trace of
them. Only a holder that died leaves them behind (which is how the next taker knows).

Rules (:func:`acquire_run`):

* Taking a held run fails at once with :class:`~depthlab.errors.RunHeldError` naming the holder's host and
  pid, unless the caller asks to wait (``wait=True``: poll until the holder is done).
* A process that dies, even by ``kill -9``, loses its flock: the kernel releases it at once on its own
  machine; an NFS server releases it when the dead client's lease runs out. The next process to take the
  lock finds the dead holder's record and says so (:attr:`RunLock.took_over`); the run then resumes from its
  last checkpoint.
* A lock still held whose record names a process that is not running on this machine (a forked child that
  inherited the descriptor outlived the trainer) is broken: the lock file is replaced and taken, and
  reported the same way.
* A holder on another machine cannot be asked whether it runs. It counts as alive while its heartbeat is
  younger than :data:`STALE_AFTER_S`; after that its lock is taken over the same way. This also covers shared
  file systems that do not carry flocks between machines (NFS mounted with ``local_lock=flock``): a process
  that wins the flock but finds another machine's record with a fresh heartbeat counts the run as held. So a
  holder that dies on another machine is taken over within :data:`STALE_AFTER_S` seconds.
* To break a lock by hand — its holder is gone for good and waiting is not wanted — delete
  ``RUN_DIR/.lock`` and ``RUN_DIR/.lock.json``.
* Who takes it: ``depthlab train`` (:func:`guard_run`) and the study engine's ``run_one`` (local workers of
  ``depthlab study`` and Ray tasks). :func:`depthlab.train.train` itself does not; a program calling it
  wraps it in :func:`guard_run`. Within one process the lock is re-entrant.

Cores: every process that holds a run lock also holds an flock on ``TMPDIR/depthlab-UID/trainers/PID.lock``,
so :func:`live_trainers` counts the processes training on this machine (kernel-checked, no pid guessing),
and :class:`ThreadShare` gives each its share of the cores.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from depthlab.errors import DepthlabError, RunHeldError
from depthlab.io import read_json, write_json
from depthlab.train.rundir import environment_fault

__all__ = [
    "Holder",
    "RunLock",
    "ThreadShare",
    "acquire_run",
    "guard_run",
    "environment_errors",
    "took_over_message",
    "try_acquire_run",
    "LockStatus",
    "lock_status",
    "study_lock",
    "live_trainers",
    "LOCK_FILE",
    "HOLDER_FILE",
    "GUARD_FILE",
    "HEARTBEAT_S",
    "STALE_AFTER_S",
]

LOCK_FILE, HOLDER_FILE, GUARD_FILE = ".lock", ".lock.json", ".depthlab-lock.guard"
HEARTBEAT_S = 30.0  # how often a holder touches its record
# A holder on another machine whose heartbeat is older than this is taken for dead: ten missed heartbeats,
# well above an NFS client's attribute cache (up to 60 s) and an NFSv4 lease (90 s).
STALE_AFTER_S = 300.0
GUARD_TIMEOUT_S = 60.0  # the guard is held for milliseconds; a minute means its holder is stuck
WAIT_POLL_S = 1.0  # how often a waiting process tries a held run again


# ------------------------------------------------------------------------------------------------ holders
@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run's lock. ``heartbeat``: when the holder last touched its record (Unix time)."""

    host: str
    pid: int
    started: float
    command: str
    token: str
    heartbeat: float

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"{self.host} pid {self.pid} (since {since})"

    def on_this_host(self) -> bool:
        return self.host == _HOST

    def presumed_alive(self, now: float | None = None) -> bool:
        """Whether the holder may still be running: its pid on this machine, its heartbeat elsewhere."""
        if self.on_this_host():
            return _pid_running(self.pid)
        return (time.time() if now is None else now) - self.heartbeat < STALE_AFTER_S


_HOST = socket.gethostname()


def _pid_running(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there: count it as running
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: it runs no more
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_holder(run_dir: Path) -> Holder | None:
    path = run_dir / HOLDER_FILE
    try:
        values = read_json(path)
        heartbeat = path.stat().st_mtime
        return Holder(str(values["host"]), int(values["pid"]), float(values["started"]),
                      str(values.get("command", "")), str(values["token"]), heartbeat)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):  # missing, or torn by a writer without atomic renames
        return None


def _write_holder(run_dir: Path, holder: Holder) -> None:
    values = {"host": holder.host, "pid": holder.pid, "started": holder.started,
              "command": holder.command, "token": holder.token}  # fmt: skip
    write_json(run_dir / HOLDER_FILE, values, indent=None)


def _new_holder() -> Holder:
    now = time.time()
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else ""
    return Holder(_HOST, os.getpid(), now, command, uuid.uuid4().hex, now)


# -------------------------------------------------------------------------------------- process registry
class _Hold:
    """This process's hold on one run directory (shared by re-entrant acquisitions)."""

    def __init__(self, run_dir: Path, lock: FileLock, holder: Holder, took_over: Holder | None,
                 created: bool) -> None:  # fmt: skip
        self.run_dir, self.lock, self.holder, self.took_over = run_dir, lock, holder, took_over
        self.created = created  # this acquisition created the run directory
        self.count = 1
        self.inode = _inode(run_dir / LOCK_FILE)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"depthlab-heartbeat {run_dir}", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):  # a deleted run directory has no record to touch
                os.utime(self.run_dir / HOLDER_FILE)


_HELD: dict[str, _Hold] = {}
_REGISTRY = threading.Lock()


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _key(run_dir: Path) -> str:
    return str(run_dir.resolve())


@contextlib.contextmanager
def _guard(run_dir: Path) -> Iterator[None]:
    """The guard of ``run_dir``'s lock: an flock on a file in its parent (created if missing)."""
    path = run_dir.parent / GUARD_FILE
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    guard = FileLock(str(path))
    try:
        guard.acquire(timeout=GUARD_TIMEOUT_S)
    except Timeout:
        raise RunHeldError(
            f"{path}: held for over {GUARD_TIMEOUT_S:.0f} s by a stuck process; find it with `fuser {path}` "
            f"and stop it"
        ) from None
    try:
        yield
    finally:
        guard.release()


# -------------------------------------------------------------------------------------------------- lock
class RunLock:
    """A hold on a run directory's lock; :meth:`release` (or leaving the ``with`` block) gives it back.

    ``took_over``: the previous holder, when this acquisition replaced one that had died (callers warn);
    ``None`` otherwise, and for a re-entrant acquisition.
    """

    def __init__(self, hold: _Hold, took_over: Holder | None) -> None:
        self._hold: _Hold | None = hold
        self.run_dir = hold.run_dir
        self.holder = hold.holder
        self.took_over = took_over

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def deleted(self) -> bool:
        """Whether the lock file this process took is gone (its run directory was deleted under it)."""
        return self._hold is not None and _lock_file_gone(self._hold)

    def release(self) -> None:
        hold, self._hold = self._hold, None
        if hold is None:
            return
        with _REGISTRY:
            hold.count -= 1
            if hold.count > 0:
                return
            del _HELD[_key(hold.run_dir)]
        hold.stop.set()
        try:
            if not _lock_file_gone(hold):
                with _guard(hold.run_dir):
                    record = _read_holder(hold.run_dir)
                    if record is not None and record.token == hold.holder.token:
                        (hold.run_dir / HOLDER_FILE).unlink(missing_ok=True)
                    # Safe under the guard: nobody is between opening this file and locking it.
                    (hold.run_dir / LOCK_FILE).unlink(missing_ok=True)
                    hold.lock.release()
                    if hold.created:  # a refused new run leaves no empty directory behind
                        with contextlib.suppress(OSError):
                            hold.run_dir.rmdir()
        finally:
            if hold.lock.is_locked:
                hold.lock.release()
            _trainer_released()


def _lock_file_gone(hold: _Hold) -> bool:
    return hold.inode is None or _inode(hold.run_dir / LOCK_FILE) != hold.inode


def _take(run_dir: Path) -> tuple[FileLock, Holder | None] | None:
    """Under the guard: the lock and the dead holder it replaced, or ``None`` when a live holder has it."""
    lock = FileLock(str(run_dir / LOCK_FILE))
    record = _read_holder(run_dir)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        # Held. Break it only when its holder is certainly gone: a pid not running on this machine, or
        # another machine's heartbeat gone stale; an unknown holder (no record) is left alone.
        if record is None or record.presumed_alive():
            return None
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        lock = FileLock(str(run_dir / LOCK_FILE))
        try:
            lock.acquire(blocking=False)
        except Timeout:
            return None
        return lock, record
    if record is not None and not record.on_this_host() and record.presumed_alive():
        # We won the flock, yet another machine's holder is alive by its heartbeat: this file system's flocks
        # do not reach that machine, or it died moments ago. Either way, the record decides.
        lock.release()
        return None
    return lock, record  # a record left here belongs to a holder that died without releasing the lock


def try_acquire_run(run_dir: str | os.PathLike[str]) -> RunLock | None:
    """Take the lock of ``run_dir`` (created if missing) without waiting; ``None`` when a live process
    holds it. Re-entrant within a process."""
    folder = Path(run_dir)
    key = _key(folder)
    with _REGISTRY:
        if key in _HELD:
            hold = _HELD[key]
            hold.count += 1
            return RunLock(hold, None)
    with _guard(folder):
        created = not folder.is_dir()
        folder.mkdir(exist_ok=True)
        taken = _take(folder)
        if taken is None:
            return None
        lock, previous = taken
        holder = _new_holder()
        try:
            _write_holder(folder, holder)
        except BaseException:
            lock.release()
            raise
    _trainer_acquired()
    hold = _Hold(folder, lock, holder, previous, created)
    with _REGISTRY:
        _HELD[key] = hold
    return RunLock(hold, previous)


def acquire_run(
    run_dir: str | os.PathLike[str], *, wait: bool = False, poll_s: float = WAIT_POLL_S
) -> RunLock:
    """Take the lock of ``run_dir``: at once, or :class:`RunHeldError` naming the holder (``wait=False``);
    or polling every ``poll_s`` seconds until it is free or its holder has died (``wait=True``)."""
    folder = Path(run_dir)
    while True:
        lock = try_acquire_run(folder)
        if lock is not None:
            return lock
        if not wait:
            holder = _read_holder(folder)
            who = holder.describe() if holder is not None else "another process (it left no record)"
            raise RunHeldError(
                f"{folder} is being trained by {who}; wait for it to finish or stop that process "
                f"(a lock whose holder died is taken over by the next command)"
            )
        time.sleep(poll_s)


@dataclass(frozen=True)
class LockStatus:
    """Whether a run's lock is held now, and by whom (``holder`` is ``None`` for a holder that left no
    record, e.g. a depthlab without these locks)."""

    held: bool
    holder: Holder | None = None


def lock_status(run_dir: str | os.PathLike[str]) -> LockStatus:
    """Whether ``run_dir`` is being trained now, and by whom; a dead holder counts as not holding it (the
    next worker takes it over). Never creates the run directory."""
    folder = Path(run_dir)
    if not (folder / LOCK_FILE).exists():
        return LockStatus(False)
    with _REGISTRY:
        if _key(folder) in _HELD:
            return LockStatus(True, _HELD[_key(folder)].holder)
    with _guard(folder):
        if not (folder / LOCK_FILE).exists():  # given back meanwhile (probing must not create it)
            return LockStatus(False)
        record = _read_holder(folder)
        lock = FileLock(str(folder / LOCK_FILE))
        try:
            lock.acquire(blocking=False)
        except Timeout:
            if record is None:
                return LockStatus(True)
            return LockStatus(True, record) if record.presumed_alive() else LockStatus(False)
        lock.release()
    if record is not None and not record.on_this_host() and record.presumed_alive():
        return LockStatus(True, record)
    return LockStatus(False)


def took_over_message(run_dir: str | os.PathLike[str], previous: Holder) -> str:
    return (
        f"took over the lock of {run_dir} from {previous.describe()}, which stopped without releasing it "
        f"(killed or crashed); the run continues from its last checkpoint"
    )


@contextlib.contextmanager
def guard_run(
    run_dir: str | os.PathLike[str], *, lock: bool = True, warn: Callable[[str], None] | None = None
) -> Iterator[RunLock | None]:
    """Around training ``run_dir``: hold its lock (when ``lock``; :class:`RunHeldError` if another process
    holds it; ``warn`` hears of a dead holder taken over) and :func:`environment_errors`."""
    held = acquire_run(run_dir) if lock else None
    try:
        if held is not None and held.took_over is not None and warn is not None:
            warn(took_over_message(run_dir, held.took_over))
        with environment_errors(run_dir, held):
            yield held
    finally:
        if held is not None:
            held.release()


@contextlib.contextmanager
def environment_errors(run_dir: str | os.PathLike[str], held: RunLock | None = None) -> Iterator[None]:
    """Turn a refusal of the OS while training ``run_dir`` — a full disk, permission denied, a read-only
    file system, the run directory deleted meanwhile — into an :class:`~depthlab.errors.EnvironmentFault`
    whose one line says what to do and names the last good checkpoint. Other exceptions pass unchanged.
    ``held``: this process's lock on the run, whose vanished lock file tells that the directory was deleted.
    """

    folder = Path(run_dir)
    try:
        yield
    except Exception as exc:
        if isinstance(exc, DepthlabError) or not isinstance(exc, OSError):
            raise
        deleted = (held.deleted() if held is not None else False) or not folder.is_dir()
        fault = environment_fault(exc, folder, deleted=deleted)
        if fault is None:
            raise
        if deleted:
            _tidy_deleted(folder)
        raise fault from exc


def _tidy_deleted(folder: Path) -> None:
    """After its run directory was deleted, a failing trainer may have recreated it to write its summary:
    remove that lone file (and the directory, if nothing else is there), leaving no partial run behind."""
    with contextlib.suppress(OSError):
        names = set(os.listdir(folder))
        if "config.json" in names or not names <= {"summary.json", "environment.json", "metrics.jsonl"}:
            return
        for name in names:
            (folder / name).unlink()
        folder.rmdir()


# ------------------------------------------------------------------------------------------- study lock
@contextlib.contextmanager
def study_lock(root: str | os.PathLike[str]) -> Iterator[None]:
    """Serialise study-level writes (study.json, study-level analyses, results.json) of all the workers
    on one study directory: ``ROOT/.study.lock``, blocking. Re-entrant within a process."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    key = "study:" + _key(folder)
    with _REGISTRY:
        mine = key in _STUDY
        if mine:
            _STUDY[key] += 1
    if mine:
        try:
            yield
        finally:
            with _REGISTRY:
                _STUDY[key] -= 1
        return
    lock = FileLock(str(folder / ".study.lock"))
    lock.acquire()
    with _REGISTRY:
        _STUDY[key] = 1
    try:
        yield
    finally:
        with _REGISTRY:
            del _STUDY[key]
        lock.release()


_STUDY: dict[str, int] = {}


# ------------------------------------------------------------------------------------------------ cores
def _trainers_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"depthlab-{uid}" / "trainers"


_TRAINER: dict[str, Any] = {"count": 0, "lock": None}


def _trainer_acquired() -> None:
    """This process holds one more run lock; while it holds any, it holds its trainers/PID.lock too."""
    with _REGISTRY:
        _TRAINER["count"] += 1
        if _TRAINER["count"] > 1:
            return
    with contextlib.suppress(OSError, Timeout):  # the count is advice: a host without /tmp still trains
        folder = _trainers_dir()
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / f"{os.getpid()}.lock"))
        lock.acquire(timeout=5)
        _TRAINER["lock"] = lock


def _trainer_released() -> None:
    with _REGISTRY:
        _TRAINER["count"] -= 1
        if _TRAINER["count"] > 0:
            return
        lock, _TRAINER["lock"] = _TRAINER["lock"], None
    if lock is not None:
        lock.release()
        with contextlib.suppress(OSError):
            Path(lock.lock_file).unlink()


def live_trainers() -> int:
    """Processes of this user training a run on this machine now (this one included if it is): those
    holding their ``trainers/PID.lock``; files of dead processes are removed on the way."""
    folder = _trainers_dir()
    mine = f"{os.getpid()}.lock"
    count = 1 if _TRAINER["lock"] is not None else 0
    try:
        entries = [p for p in folder.iterdir() if p.suffix == ".lock" and p.name != mine]
    except OSError:
        return count
    for path in entries:
        probe = FileLock(str(path))
        try:
            probe.acquire(blocking=False)
        except Timeout:
            count += 1
            continue
        except OSError:
            continue
        probe.release()  # nobody held it: a trainer that died; its file goes
        with contextlib.suppress(OSError):
            path.unlink()
    return count


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ThreadShare:
    """Each process training on this machine takes its share of the cores: ``cores // trainers`` torch
    threads, at least 1 and at most ``limit`` (the thread count the process started with, so that
    ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` still caps it).

    Why: intra-op threads that outnumber the free cores spin-wait on each other; a 2-thread training beside
    two 1-thread studies on 2 cores fell from 1,300 to 190–250 img/s. The count is taken when a run starts
    (:meth:`apply`), not during it, so a run's thread count is fixed — a CPU run's bits depend on it.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be a positive thread count, got {limit}")
        self.limit = limit

    def threads_for(self, trainers: int, cores: int) -> int:
        return max(1, min(self.limit, cores // max(trainers, 1)))

    def apply(self) -> tuple[int, int, int]:
        """Set torch's intra-op threads to this process's share; returns (threads, trainers, cores)."""
        import torch

        trainers, cores = live_trainers(), usable_cores()
        threads = self.threads_for(trainers, cores)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads, trainers, cores
