"""Reading and writing depthlab's files: one atomic write, one rule for JSON.

Every file depthlab writes in one piece goes through :func:`atomic_write`: a temporary file in the same
folder is written, flushed, fsynced and renamed over the target (then the folder is fsynced), so a reader —
or a crash at any instant — sees the old file or the new one, never half of one. :func:`write_bytes`,
:func:`write_text` and :func:`write_json` are that write for bytes, text and JSON.

JSON is strict (:func:`strict_json`): a non-finite float (NaN, ±inf) is written as ``null`` — JSON has no
such numbers, and strict parsers (``jq``, browsers, other languages) reject Python's ``NaN``/``Infinity`` —
and a reader turns ``null`` back into NaN, "unknown" (:func:`read_number`). :func:`read_json` reads a file;
:func:`read_json_checked` reads a run directory's file and names it in a one-line
:class:`~depthlab.errors.CheckpointError` when it cannot.

Nothing here imports more than the standard library and :mod:`depthlab.errors`: every layer may use it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from depthlab.errors import CheckpointError

__all__ = [
    "atomic_write",
    "write_bytes",
    "write_text",
    "write_json",
    "strict_json",
    "read_number",
    "read_json",
    "read_json_checked",
]


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through ``write(binary file)`` via a temporary file in the same directory.

    On any failure the temporary file is removed and ``path`` is left as it was. An :class:`OSError` of
    the file system (a full disk, a read-only file system, ...) is raised again naming ``path``: a failed
    ``write()`` or ``fsync()`` names no file, and the temporary name means nothing to a reader.
    Missing parent folders are created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; run directories are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):  # e.g. the directory itself was deleted
                os.unlink(tmp)
    _fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """``data`` written to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(Path(path), lambda f: f.write(data))


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """``text`` written to ``path`` as UTF-8, atomically (:func:`atomic_write`)."""
    atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | os.PathLike[str], values: Any, *, indent: int | None = 1) -> None:
    """``values`` written to ``path`` as strict JSON (:func:`strict_json`; indented by ``indent``, ``None``:
    one line) with one trailing newline, atomically (:func:`atomic_write`)."""
    write_text(path, json.dumps(strict_json(values), indent=indent, allow_nan=False) + "\n")


def strict_json(values: Any) -> Any:
    """``values`` with every non-finite float (NaN, ±inf) replaced by ``None``: JSON has no such numbers, and
    Python's ``NaN``/``Infinity`` extensions are rejected by strict parsers (``jq``, browsers, other
    languages). A reader sees ``null`` where a diverged run's loss was NaN."""
    if isinstance(values, float):
        return values if math.isfinite(values) else None
    if isinstance(values, dict):
        return {k: strict_json(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [strict_json(v) for v in values]
    return values


def read_number(value: Any) -> float:
    """The reader's half of :func:`strict_json`: a number read back from a depthlab JSON file, ``null`` (a
    non-finite number when it was written) as NaN — "unknown", which every statistic of
    :mod:`depthlab.stats` withholds its result from. One rule for every reader of runs and studies
    (losses, gradients, responses, landscapes, lesion accuracies), so that a ``null`` never crashes one."""
    return math.nan if value is None else float(value)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON value of the file ``path``."""
    return json.loads(Path(path).read_text())


def read_json_checked(path: Path) -> Any:
    """A JSON file of a run directory; :class:`CheckpointError` naming it if it cannot be read or parsed."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file is missing") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = "empty file" if path.stat().st_size == 0 else str(exc)
        raise CheckpointError(f"{path}: damaged, not valid JSON ({why})") from None
