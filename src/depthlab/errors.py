"""User-facing errors.

Library code raises these where it validates what the user gave it (a name, a value, a path, a file). The CLI
turns every :class:`DepthlabError` into one line on stderr and exit code 2, with no traceback — except
:class:`EnvironmentFault`, exit 3; any other exception is a bug in depthlab and keeps its traceback (plus a
line asking to report it), exit 1. Each class also
derives from the built-in exception a caller would expect, so ``except ValueError`` keeps working.

Where each is raised (other modules define domain subclasses: ``DataError``/``DatasetNotFoundError`` in
``data.bundle``, ``TrainingDivergedError`` in ``train.loop``):

* :class:`UsageError` — a value that cannot work: an unknown name, a malformed shape, a number out of range.
* :class:`UsageTypeError` — an argument of the wrong type, or a keyword the callee does not accept.
* :class:`MissingFileError` — a file or directory the user named does not exist.
* :class:`ConfigError` — a training configuration value that cannot work (``depthlab.train`` re-exports it;
  defined here because :func:`depthlab.runtime.select_device` raises it too).
* :class:`CheckpointError` — a run directory's file (checkpoint, pointer, config, summary) that is missing,
  damaged, truncated, foreign or of a different model; the message names the file and what is wrong.
* :class:`OptionError` — a model option that does not apply to the chosen model (SkipInit on a plain net).
* :class:`InputSizeError` / :class:`InputTooSmallError` — an input image whose size does not suit the model.
* :class:`RunHeldError` — a run directory another process is training (its lock is held); names the holder.
* :class:`EnvironmentFault` — the operating system refused a file operation for a reason that is neither the
  input nor a bug (disk full, permission denied, read-only file system, a run directory deleted under a
  running process); names the file, what the OS said and what to do. Exit code 3.
"""

from __future__ import annotations

__all__ = [
    "DepthlabError",
    "UsageError",
    "UsageTypeError",
    "MissingFileError",
    "CheckpointError",
    "ConfigError",
    "OptionError",
    "InputSizeError",
    "InputTooSmallError",
    "RunHeldError",
    "EnvironmentFault",
]


class DepthlabError(Exception):
    """An error caused by the user's input (bad name, bad value, missing file), not by a bug."""


class UsageError(DepthlabError, ValueError):
    """A value the user gave that cannot work; the message names it and the allowed choices."""


class UsageTypeError(DepthlabError, TypeError):
    """An argument of the wrong type, or a keyword argument that is not accepted."""


class MissingFileError(DepthlabError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class CheckpointError(DepthlabError, ValueError):
    """A run-directory file that is missing, damaged, foreign or does not match the run."""


class ConfigError(DepthlabError, ValueError):
    """A training configuration value that cannot work (named, with the allowed values)."""


class OptionError(UsageError):
    """An option that does not apply to the chosen model (e.g. SkipInit on a block without a shortcut)."""


class InputSizeError(UsageError):
    """The input image's size does not suit the model as configured."""


class InputTooSmallError(InputSizeError):
    """The input image is smaller than the model's smallest accepted side."""


class RunHeldError(DepthlabError, RuntimeError):
    """A run directory whose lock another process holds: it is being trained there (host and pid named)."""


class EnvironmentFault(DepthlabError, OSError):
    """The operating system refused a file operation: a full disk or quota, permission denied, a read-only
    file system, or a run directory deleted while it was being written. Not the user's input and not a bug.

    The message (``args[0]``) is one line: the file, what the OS said, and what to do. ``errno``,
    ``strerror`` and ``filename`` are those of the original :class:`OSError`, so ``except OSError`` callers
    keep working. When a run was being trained: ``run_dir``, the step of its last good checkpoint
    (``step``, ``None`` if it had none) and whether the run directory itself was ``deleted``, so that a
    caller can reword what to do for its own command.
    """

    def __init__(self, message: str, *, errno: int | None = None, strerror: str | None = None,
                 filename: str | None = None, run_dir: str | None = None, step: int | None = None,
                 deleted: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.errno, self.strerror, self.filename = errno, strerror, filename
        self.run_dir, self.step, self.deleted = run_dir, step, deleted

    def __str__(self) -> str:
        return str(self.args[0])
