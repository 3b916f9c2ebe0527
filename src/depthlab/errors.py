"""User-facing errors.

Library code raises these where it validates what the user gave it (a name, a value, a path, a file). The CLI
turns every :class:`DepthlabError` into one line on stderr and exit code 2, with no traceback; any other
exception is a bug in depthlab and keeps its traceback (plus a line asking to report it). Each class also
derives from the built-in exception a caller would expect, so ``except ValueError`` keeps working.

Where each is raised (other modules define domain subclasses: ``ConfigError`` in ``train.config``,
``DataError``/``DatasetNotFoundError`` in ``data.bundle``, ``TrainingDivergedError`` in ``train.loop``):

* :class:`UsageError` — a value that cannot work: an unknown name, a malformed shape, a number out of range.
* :class:`UsageTypeError` — an argument of the wrong type, or a keyword the callee does not accept.
* :class:`MissingFileError` — a file or directory the user named does not exist.
* :class:`CheckpointError` — a run directory's file (checkpoint, pointer, config, summary) that is missing,
  damaged, truncated, foreign or of a different model; the message names the file and what is wrong.
* :class:`OptionError` — a model option that does not apply to the chosen model (SkipInit on a plain net).
* :class:`InputSizeError` / :class:`InputTooSmallError` — an input image whose size does not suit the model.
"""

from __future__ import annotations

__all__ = [
    "DepthlabError",
    "UsageError",
    "UsageTypeError",
    "MissingFileError",
    "CheckpointError",
    "OptionError",
    "InputSizeError",
    "InputTooSmallError",
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


class OptionError(UsageError):
    """An option that does not apply to the chosen model (e.g. SkipInit on a block without a shortcut)."""


class InputSizeError(UsageError):
    """The input image's size does not suit the model as configured."""


class InputTooSmallError(InputSizeError):
    """The input image is smaller than the model's smallest accepted side."""
