"""TensorBoard output for runs: ``tensorboard --logdir runs/`` shows every run's curves.

:class:`TensorBoardWriter` is a training callback (it consumes the :class:`~depthlab.train.TrainEvent` rows
the trainer reports, so it sees exactly what ``metrics.jsonl`` holds) and writes, through
``torch.utils.tensorboard``, into ``RUN_DIR/tensorboard/``:

* ``loss/train``, ``error/train``, ``lr`` (and ``images_per_s``) at every training row, the step being
  the optimizer step;
* ``loss/val``, ``error/val``, ``loss/test``, ``error/test`` at every evaluation (plain cross-entropy and
  top-1 error, as in ``metrics.jsonl``).

Same-named tags of different runs share a chart, so train/val/test curves of one run, or one metric of
many runs, compare at a glance. A resumed run purges the events after the step it resumed from, as
``metrics.jsonl`` drops its rows. :func:`write_image` adds a figure (``depthlab gradflow`` uses it).

TensorBoard is optional (``pip install 'depthlab[tensorboard]'``): :func:`tensorboard_available` says
whether it is installed; the CLI writes events when it is, unless ``--no-tensorboard``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from depthlab.errors import UsageError

__all__ = ["TensorBoardWriter", "tensorboard_available", "require_tensorboard", "write_image", "LOG_SUBDIR"]

LOG_SUBDIR = "tensorboard"
INSTALL_HINT = "pip install 'depthlab[tensorboard]'"


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package is installed)."""
    try:
        _summary_writer()
    except ImportError:  # torch.utils.tensorboard raises it when the tensorboard package is missing
        return False
    return True


def _summary_writer() -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def require_tensorboard(option: str = "--tensorboard") -> None:
    if not tensorboard_available():
        raise UsageError(f"{option} needs TensorBoard, which is not installed: {INSTALL_HINT}")


class TensorBoardWriter:
    """A training callback writing the run's scalars to ``RUN_DIR/tensorboard`` (see the module docstring).

    The writer opens on the ``start`` event (which names the run directory) and closes on ``end`` or
    :meth:`close`; other events before ``start`` are ignored.
    """

    def __init__(self) -> None:
        require_tensorboard()
        self.writer: Any = None
        self.log_dir: Path | None = None

    def __call__(self, event: Any) -> None:
        v = event.values
        if event.kind == "start":
            self.close()
            self.log_dir = Path(v["run_dir"]) / LOG_SUBDIR
            resumed = v.get("resumed_from")
            # purge_step: hide the events after the step resumed from (metrics.jsonl keeps rows up to and
            # including it), which the run is about to redo.
            purge = resumed + 1 if resumed is not None else None
            self.writer = _summary_writer()(str(self.log_dir), purge_step=purge)
            return
        if self.writer is None:
            return
        if event.kind == "train":
            self.writer.add_scalar("loss/train", v["loss"], event.step)
            self.writer.add_scalar("error/train", v["error"], event.step)
            self.writer.add_scalar("lr", v["lr"], event.step)
            if v.get("images_per_s"):
                self.writer.add_scalar("images_per_s", v["images_per_s"], event.step)
        elif event.kind == "eval":
            self.writer.add_scalar(f"loss/{v['split']}", v["loss"], event.step)
            self.writer.add_scalar(f"error/{v['split']}", v["error"], event.step)
        elif event.kind == "checkpoint":
            self.writer.flush()  # what a checkpoint keeps, TensorBoard shows
        elif event.kind == "end":
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def write_image(log_dir: str | Path, tag: str, png: bytes, step: int = 0) -> Path:
    """Add a PNG image (e.g. a rendered figure) under ``tag`` to the TensorBoard log in ``log_dir``."""
    from PIL import Image

    require_tensorboard()
    with Image.open(io.BytesIO(png)) as img:
        pixels = np.asarray(img.convert("RGB"))  # H×W×3 uint8
    writer = _summary_writer()(str(log_dir))
    try:
        writer.add_image(tag, pixels, step, dataformats="HWC")
    finally:
        writer.close()
    return Path(log_dir)
