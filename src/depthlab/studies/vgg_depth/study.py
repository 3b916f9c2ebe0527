"""The vgg-depth study: VGG configurations A, A-LRN, B, C, D, E with the small-input head, trained with one
recipe without batch norm (the paper's nets) and with it.

Claims under test (Simonyan & Zisserman 2015, *Very Deep Convolutional Networks for Large-Scale Image
Recognition*, arXiv:1409.1556, §4.1 and Table 3): the error falls with depth from A (11 layers) to D/E (16/19),
saturating at 19; LRN does not help (A-LRN vs A); at equal depth, C (1×1 convs as the last conv of stages
3–5) is worse than D (3×3 there), so spatial context matters beyond the extra non-linearity. The paper
started the deeper nets from A's weights (§3.1); here they start from the preset's initialisation, or from
A's run of the same seed with ``--set warm_start=true``. A net that never leaves chance is reported as not
trained, never as degradation.

Its four questions (:mod:`.answers`): depth without BN, depth with BN (and what BN changes), LRN, 1×1. The
package: :mod:`.presets`, :mod:`.grid`, :mod:`.evidence` (typed readings of the runs), :mod:`.findings`,
:mod:`.answers`, :mod:`.figures` (the report's table and figures); this module declares the study.
"""

from __future__ import annotations

from depthlab.i18n import N_
from depthlab.studies.declare import Study
from depthlab.studies.registry import register_study
from depthlab.studies.vgg_depth.answers import answers
from depthlab.studies.vgg_depth.figures import sections
from depthlab.studies.vgg_depth.findings import compute_findings
from depthlab.studies.vgg_depth.grid import grid
from depthlab.studies.vgg_depth.presets import PRESETS

__all__ = ["STUDY"]


STUDY = register_study(
    Study(
        name="vgg-depth",
        title=N_("VGG's depth ablation"),
        claim=N_(
            "VGG's Table 3: error falls with depth from A to D/E, LRN does not help, and 1×1 convs (C) are worse "
            "than 3×3 (D) at equal depth (Simonyan & Zisserman 2015). Does it hold here, without batch norm (the "
            "paper's nets) and with it — counting a net that never leaves chance as not trained, not as degraded?"
        ),
        presets=PRESETS,
        grid=grid,
        findings=compute_findings,
        sections=sections,
        answers=answers,
    )
)
