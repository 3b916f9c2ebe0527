"""User-facing errors.

The CLI turns :class:`DepthlabError` (and ``ValueError``/``TypeError``/``FileNotFoundError`` raised while
validating arguments) into one line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations


class DepthlabError(Exception):
    """An error caused by the user's input (bad name, bad value, missing file), not by a bug."""


class OptionError(DepthlabError, ValueError):
    """An option that does not apply to the chosen model (e.g. SkipInit on a block without a shortcut)."""


class InputSizeError(DepthlabError, ValueError):
    """The input image's size does not suit the model as configured."""


class InputTooSmallError(InputSizeError):
    """The input image is smaller than the model's smallest accepted side."""
