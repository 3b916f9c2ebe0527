"""A copy of the tiny degradation study whose probe fails once per run, at the last evaluation step (after
the step-2 checkpoint, before the step-4 one): the Ray executor must retry the task and resume it from its
checkpoint. Registered on import — by the Ray test and by the Ray workers, which import the module defining
the study's probe (``executors.study_modules``) — and kept out of ``studies.py`` so that no other test
session sees an extra study. ``DEPTHLAB_FLAKY_MARKERS`` names a directory where each failure leaves a file.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from depthlab.studies import get_study, register_study
from depthlab.studies.degradation import probe as degradation_probe
from depthlab.studies.engine import ProbeContext

NAME = "flaky-degradation"


def flaky_probe(ctx: ProbeContext) -> dict[str, Any]:
    marker = Path(os.environ["DEPTHLAB_FLAKY_MARKERS"]) / ctx.spec.name
    if ctx.moment == "step" and ctx.step == ctx.spec.config.steps and not marker.exists():
        marker.touch()
        raise RuntimeError(f"injected failure of {ctx.spec.name} at step {ctx.step}")
    return degradation_probe(ctx)


STUDY = register_study(dataclasses.replace(get_study("degradation"), name=NAME, probe=flaky_probe))
