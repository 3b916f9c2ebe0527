"""Training precision: ``fp32``, or ``bf16`` autocast; ``auto`` picks bf16 only where it is native.

``bf16`` runs each training step's forward pass — and with it the backward pass's convolutions and matrix
products — under ``torch.autocast(device, dtype=torch.bfloat16)``. Parameters, gradients, optimizer state,
BatchNorm statistics and the loss (computed from logits cast back to fp32) stay fp32, so checkpoints are
fp32 whatever the precision.

``auto`` resolves, once per run, to:
* ``bf16`` on CUDA (what depthlab has always done there);
* ``bf16`` on a CPU with native bf16 arithmetic — the ``avx512_bf16`` or ``amx_bf16`` flag in
  ``/proc/cpuinfo`` (AVX512-BF16: Cooper Lake and later Xeons, Zen 4; AMX: Sapphire Rapids and later).
  There oneDNN's bf16 kernels are faster than fp32 (issue 15 measured a 1.6× faster ResNet-20 step);
* ``fp32`` on every other CPU, where bf16 is emulated by converting to and from fp32 and is slower, not
  faster. ``bf16`` can still be forced there (for tests and parity checks), and is then slow.

``DEPTHLAB_CPU_BF16`` overrides the detection (:func:`cpu_bf16_switch`): ``1`` treats this machine's CPU as
having native bf16, ``0`` as not having it; unset (or empty), ``/proc/cpuinfo`` decides. It exists so that
the behaviour of ``auto`` on the other kind of CPU can be reproduced here — the test suite runs its
precision-sensitive tests both ways — and so a user can keep ``auto`` off bf16 on a CPU where it does not
pay. It judges only this machine: an explicit ``cpuinfo`` text passed to :func:`resolve_precision` is judged
by its flags alone. A run records when the switch decided (``environment.json`` ``precision.cpu_bf16_switch``).

The resolved value, never ``auto``, is what a run records (``config.json``, ``environment.json``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from depthlab.errors import UsageError

__all__ = [
    "PRECISIONS",
    "BF16_FLAGS",
    "PrecisionInfo",
    "autocast",
    "CPU_BF16_SWITCH",
    "cpu_bf16_flags",
    "cpu_bf16_switch",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16")
# CPU flags (Linux /proc/cpuinfo names) whose presence means bf16 matrix arithmetic runs natively.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
# The environment variable that overrides the detection, and what its values mean.
CPU_BF16_SWITCH = "DEPTHLAB_CPU_BF16"
_SWITCH_VALUES = {"0": False, "1": True}


def cpu_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The native-bf16 flags (of :data:`BF16_FLAGS`) that every processor listed in ``cpuinfo`` has.

    ``cpuinfo``: the text of ``/proc/cpuinfo`` (default: read it; on a system without it — macOS,
    Windows — nothing is native as far as depthlab can tell, and the answer is ``()``). A flag counts only
    when every ``flags`` line lists it, so a hybrid CPU whose small cores lack it is not taken for native.
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return ()
    per_cpu = [
        set(line.split(":", 1)[1].split())
        for line in cpuinfo.splitlines()
        if line.split(":", 1)[0].strip() == "flags" and ":" in line
    ]
    if not per_cpu:
        return ()
    common = set.intersection(*per_cpu)
    return tuple(flag for flag in BF16_FLAGS if flag in common)


def cpu_bf16_switch() -> bool | None:
    """``DEPTHLAB_CPU_BF16`` read from the environment: ``True`` (``1``: treat the CPU as native bf16),
    ``False`` (``0``: treat it as not native), ``None`` when unset or empty (detect from ``/proc/cpuinfo``).
    Any other value is a :class:`~depthlab.errors.UsageError` naming it and the choices."""
    raw = os.environ.get(CPU_BF16_SWITCH, "").strip()
    if not raw:
        return None
    if raw not in _SWITCH_VALUES:
        raise UsageError(
            f"{CPU_BF16_SWITCH}={raw!r} is not a valid value; choose from: 0 (no native bf16), 1 (native "
            "bf16), or leave it unset to detect it from /proc/cpuinfo"
        )
    return _SWITCH_VALUES[raw]


@dataclass(frozen=True)
class PrecisionInfo:
    """What a run asked for, what it used, and why (written to ``environment.json``).

    ``cpu_bf16_flags``: the native-bf16 flags ``/proc/cpuinfo`` lists (on a CPU device); ``cpu_bf16_switch``:
    ``"0"``/``"1"`` when ``DEPTHLAB_CPU_BF16`` decided whether the CPU counts as native instead of those
    flags, else ``None``."""

    requested: str
    used: str
    device: str
    cpu_bf16_flags: tuple[str, ...]
    cpu_bf16_switch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "used": self.used,
            "device": self.device,
            "cpu_bf16_flags": list(self.cpu_bf16_flags),
            "cpu_bf16_switch": self.cpu_bf16_switch,
        }


def resolve_precision(
    requested: str, device: torch.device | str, cpuinfo: str | None = None
) -> PrecisionInfo:
    """``requested`` (``auto``, ``fp32`` or ``bf16``) resolved for ``device`` (see the module docstring).

    ``cpuinfo``: the ``/proc/cpuinfo`` text to judge the CPU by (default: this machine's, where
    ``DEPTHLAB_CPU_BF16``, when set, overrides its flags).
    """
    if requested not in PRECISIONS:
        raise UsageError(f"unknown precision {requested!r}; choose from: {', '.join(PRECISIONS)}")
    device = torch.device(device)
    # Read (and checked) whatever the device, so a misspelt value is reported on any machine.
    switch = cpu_bf16_switch() if cpuinfo is None else None
    flags = cpu_bf16_flags(cpuinfo) if device.type == "cpu" else ()
    native = bool(flags) if switch is None else switch
    if requested != "auto":
        used = requested
    elif device.type == "cuda":
        used = "bf16"
    elif device.type == "cpu":
        used = "bf16" if native else "fp32"
    else:
        used = "fp32"
    recorded = None if switch is None or device.type != "cpu" else str(int(switch))
    return PrecisionInfo(requested, used, device.type, flags, recorded)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The context a forward pass runs in: bf16 autocast on ``device`` for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise UsageError(f"precision must be resolved to fp32 or bf16, got {precision!r}")
