"""The inception-aux study: GoogLeNet trained with auxiliary-loss weight 0.3 (the paper's) and weight 0 (and,
optionally, with the heads removed), from the same seeds, to the end of its schedule.

Claims under test. Szegedy et al. 2015 (*Going Deeper with Convolutions*, arXiv:1409.4842, §5) add two
auxiliary classifiers (on inception 4a and 4d, loss weight 0.3) "to increase the gradient signal that gets
propagated back" to the lower layers. Szegedy et al. 2015 (*Rethinking the Inception Architecture*,
arXiv:1512.00567, §4) found that they "did not result in improved convergence early in the training" —
training with and without them looks virtually identical until high accuracy — and that near the end the
net with them reaches a slightly higher plateau: they "act as regularizer".

Its three questions (:mod:`.answers`): do the heads lower the final test error; do the aux losses change the
gradient that reaches the lower layers; do they speed up early training. The package: :mod:`.presets`,
:mod:`.grid`, :mod:`.probe` (what is measured on the diagnostics batch), :mod:`.evidence` (typed readings of
the runs), :mod:`.findings`, :mod:`.answers`, :mod:`.figures` (its figures, tables and report sections); this module declares the
study.
"""

from __future__ import annotations

from depthlab.i18n import N_
from depthlab.studies.declare import Study
from depthlab.studies.inception_aux.answers import answers
from depthlab.studies.inception_aux.figures import sections
from depthlab.studies.inception_aux.findings import compute_findings
from depthlab.studies.inception_aux.grid import grid
from depthlab.studies.inception_aux.presets import PRESETS
from depthlab.studies.inception_aux.probe import probe
from depthlab.studies.registry import register_study

__all__ = ["STUDY"]


STUDY = register_study(
    Study(
        name="inception-aux",
        title=N_("Inception's auxiliary classifiers"),
        claim=N_(
            "GoogLeNet's auxiliary classifiers were added to strengthen the gradient reaching the lower layers "
            "(Going Deeper with Convolutions, Szegedy et al. 2015, §5); Szegedy et al. 2015 (Rethinking the "
            "Inception Architecture, §4) found they do not speed up early training and, near the end of training, "
            "reach a slightly higher accuracy plateau. Do they, here, trained to the end of the schedule with the "
            "paper's weight 0.3 against weight 0?"
        ),
        presets=PRESETS,
        grid=grid,
        findings=compute_findings,
        sections=sections,
        answers=answers,
        probe=probe,
    )
)
