"""Copies of the tiny degradation study whose plain net, in seed 0 (or in every seed), trains at a learning rate
that blows it up within a few steps (issue 22): the study must record the run as diverged, leave it out of every
comparison, count it, and still write results.json and its report. Registered on import, and kept out of
``studies.py`` so that only the tests that import it see an extra study."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from depthlab.studies import get_study, register_study
from depthlab.studies.degradation.grid import grid as degradation_grid
from depthlab.studies.engine import RunSpec

NAME = "diverging-degradation"
DIVERGING_LR = 1e12  # plain-20 at this lr: non-finite BN statistics or loss by step 4 (of 4)


def diverging(every_seed: bool) -> Any:
    """A grid: the degradation study's, with plain-20 at :data:`DIVERGING_LR` in seed 0 (or in every seed)."""

    def grid(preset: Any, seeds: Sequence[int], device: str, data_dir: str | None) -> list[RunSpec]:
        specs = degradation_grid(preset, seeds, device, data_dir)
        return [
            dataclasses.replace(s, config=dataclasses.replace(s.config, lr=DIVERGING_LR))
            if s.condition == "plain-20" and (every_seed or s.seed == 0)
            else s
            for s in specs
        ]

    return grid


STUDY = register_study(dataclasses.replace(get_study("degradation"), name=NAME, grid=diverging(False)))
# plain-20 diverges in every seed: a condition with nothing left to compare
EVERY_SEED = register_study(
    dataclasses.replace(get_study("degradation"), name=NAME + "-every-seed", grid=diverging(True))
)
