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
:mod:`.answers`, :mod:`.figures`; this module declares the study and its report table.
"""

from __future__ import annotations

from depthlab.i18n import N_, _
from depthlab.present.format import pct
from depthlab.present.types import ReportTable, Section
from depthlab.stats import Estimate
from depthlab.studies.declare import Study
from depthlab.studies.registry import register_study
from depthlab.studies.results import StudyResult
from depthlab.studies.vgg_depth import figures as figs
from depthlab.studies.vgg_depth.answers import answers
from depthlab.studies.vgg_depth.evidence import Net, nets, preset_of, training
from depthlab.studies.vgg_depth.findings import compute_findings
from depthlab.studies.vgg_depth.grid import grid
from depthlab.studies.vgg_depth.presets import DEPTH, MODELS, PRESETS, TABLE3, TABLE3_SOURCE

__all__ = ["STUDY", "sections"]


def _cell(e: Estimate | None) -> str:
    if e is None:
        return "—"
    ci = e.ci()
    return f"{pct(e.mean)} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]" if ci else pct(e.mean)


def _table(result: StudyResult) -> ReportTable:
    by = nets(result)
    margin = preset_of(result).chance_margin
    rows = []
    for config in MODELS:
        for bn in (False, True):
            c = by.get(Net(config, bn))
            if c is None:
                continue
            t = training(c, margin)
            trained = "—" if t is None else _("{n} of {seeds}").format(n=t.seeds - t.untrained, seeds=t.seeds)
            rows.append((c.name, str(DEPTH[config]), f"{TABLE3[config]:.1f}%", trained,
                         _cell(c.error("train_eval")), _cell(c.error("test"))))  # fmt: skip
    return ReportTable(
        _("Final error by configuration"),
        (_("condition"), _("weight layers"), _("Table 3 top-1"), _("seeds that trained"), _("training error"),
         _("test error")),
        tuple(rows),
        _("Training error: eval mode over the fixed training subset at the last step; test error at the end. Mean "
          "over seeds [95% CI across seeds]. A seed did not train when its training error stayed within "
          "{points:g} points of chance. Table 3: {source} (ImageNet, for the direction).").format(
            points=100 * margin, source=TABLE3_SOURCE),
    )  # fmt: skip


def sections(result: StudyResult) -> list[Section]:
    return [Section("results", _("Error by configuration"), tables=(_table(result),),
                    figures=tuple(figs.figures(result)))]  # fmt: skip


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
