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
the runs), :mod:`.findings`, :mod:`.answers`, :mod:`.figures`; this module declares the study and its
report tables.
"""

from __future__ import annotations

import math
import statistics

from depthlab.i18n import N_, _
from depthlab.present.format import pct, sci
from depthlab.present.types import ReportTable, Section
from depthlab.studies.declare import Study
from depthlab.studies.inception_aux import figures as figs
from depthlab.studies.inception_aux.answers import answers
from depthlab.studies.inception_aux.evidence import MOMENTS, early_error, early_step, gradient_reading, groups
from depthlab.studies.inception_aux.findings import compute_findings
from depthlab.studies.inception_aux.grid import grid
from depthlab.studies.inception_aux.presets import PRESETS
from depthlab.studies.inception_aux.probe import TAPS, probe, tap_label
from depthlab.studies.registry import register_study
from depthlab.studies.results import StudyResult

__all__ = ["STUDY", "sections"]


def _errors_table(result: StudyResult) -> ReportTable:
    step = early_step(result)
    rows = []
    for c in result.conditions():
        e = early_error(c, step) if step is not None else None
        cells = [c.name, str(c.seeds), pct(e.mean, e.std) if e else "—"]
        for split in ("train_eval", "test"):
            x = c.error(split)
            cells.append(pct(x.mean, x.std) if x else "—")
        rows.append(tuple(cells))
    return ReportTable(
        _("Errors by condition"),
        (
            _("condition"),
            _("seeds"),
            _("running training error, iterations 1–{step}").format(step=step),
            _("final training error"),
            _("test error"),
        ),
        tuple(rows),
        _("Early: the mean running training error (training mode) of the batches of iterations 1 to the early "
          "step; final: the eval-mode error over the whole fixed training subset, and the test error, at the last "
          "step; mean ± standard deviation over seeds (the findings give each difference with its 95% CI)."),
    )  # fmt: skip


def _gradient_table(result: StudyResult) -> ReportTable | None:
    g = groups(result)
    if g.aux is None:
        return None
    rows = []
    for tap in TAPS[:-3]:
        cells = [tap_label(tap)]
        for moment in MOMENTS:
            r = gradient_reading(g.aux, tap, moment)
            if r is None or not r.share.finite or min(r.share.values) <= 0:
                cells += ["—", "—"]
                continue
            gm = 10 ** statistics.fmean(math.log10(v) if v > 0 else math.nan for v in r.share.values)
            cells += [sci(gm), f"{r.cosine.mean:+.2f}" if r.cosine.finite else "—"]
        rows.append(tuple(cells))
    header = [_("output")]
    for moment in MOMENTS:
        header += [
            _("aux share, {moment}").format(moment=_(moment)),
            _("cosine, {moment}").format(moment=_(moment)),
        ]
    return ReportTable(
        _("Aux share and direction of the gradient, {net}").format(net=g.aux.name),
        tuple(header),
        tuple(rows),
        _("Aux share ‖w·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ (geometric mean over seeds) and cos(∂L_aux/∂y, ∂L_main/∂y) "
          "(mean over seeds) at the output y of the stem and of every inception module the aux heads reach; "
          "training mode, the study's diagnostics batch, the same dropout masks; during: per seed the median over "
          "the probes between initialisation and the last step."),
    )  # fmt: skip


def sections(result: StudyResult) -> list[Section]:
    gtable = _gradient_table(result)
    return [
        Section(
            "results",
            _("Training curves and final errors"),
            tables=(_errors_table(result),),
            figures=tuple(figs.error_figures(result)),
        ),  # fmt: skip
        Section(
            "gradients",
            _("Gradient reaching the lower layers"),
            tables=(gtable,) if gtable else (),
            figures=tuple(figs.gradient_figures(result)),
        ),  # fmt: skip
    ]


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
