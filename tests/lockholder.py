"""A process that holds a run's lock as depthlab does, for the lock and worker tests: it locks RUN/.lock
(with filelock, or with flock itself and a forked child that inherits the descriptor) and writes the holder
record, without importing depthlab, so it starts in a fraction of a second."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

HOST = socket.gethostname()

# Locks RUN/.lock (filelock, or flock itself with "fork": then forks a child that inherits the descriptor),
# writes the holder record depthlab writes, says "held CHILD" (the forked child's pid, or 0), then sleeps until
# killed.
HOLDER = r"""
import fcntl, json, os, sys, time
from filelock import FileLock
run, host, how = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(run, exist_ok=True)
if how == "fork":
    fd = os.open(os.path.join(run, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
else:
    lock = FileLock(os.path.join(run, ".lock"))
    lock.acquire(blocking=False)
record = {"host": host, "pid": os.getpid(), "started": time.time(), "command": "holder", "token": "t"}
with open(os.path.join(run, ".lock.json"), "w") as f:
    json.dump(record, f)
child = os.fork() if how == "fork" else 1
if child == 0:
    time.sleep(120)
    os._exit(0)
print("held", child if how == "fork" else 0, flush=True)
time.sleep(120)
"""


class Holder:
    """A process holding a run's lock, as depthlab would; ``kill()`` is ``kill -9`` (and reaps it)."""

    def __init__(self, run: Path, how: str = "filelock", host: str = HOST) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run), host, how],
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        line = self.proc.stdout.readline().split()  # type: ignore[union-attr]
        assert len(line) == 2 and line[0] == "held", line
        self.child = int(line[1]) or None  # the forked child that inherited the locked descriptor
        self.pid = self.proc.pid

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        if self.child is not None:
            try:
                os.kill(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass
