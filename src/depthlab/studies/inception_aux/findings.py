"""The inception-aux study's findings, in two stages: comparisons (:class:`~depthlab.studies.common.Compared`,
from :mod:`depthlab.stats`), then a few sentence templates.

The seed is the unit (issue 23): every comparison is ``higher``/``lower`` (of the first named condition or
quantity) when its 95% Welch interval across seeds excludes 0, ``equivalent`` when a TOST keeps it within the
stated bound (for errors the preset's relative ``margin`` of the reference condition's error), ``unknown``
from non-finite values, else ``not resolved``. A sentence names its seeds, its CI, and agrees or disagrees
with a paper only when resolved. Each condition's convergence is the shared rule of
:mod:`depthlab.studies.common`, and a seed that stalled is named. These findings are secondary: each
question's primary test, Holm-adjusted across the questions, is in :mod:`.answers`. Definitions of the
measures: :mod:`depthlab.studies.inception_aux.evidence`.
"""

from __future__ import annotations

from typing import Any

from depthlab.present.format import p_text, sci
from depthlab.stats import Estimate, compare_log, seeds_text, welch
from depthlab.studies.common import Compared, compared, error_sentence, net_findings, relative_bound
from depthlab.studies.declare import Finding
from depthlab.studies.inception_aux.evidence import (
    GradientReading,
    Groups,
    early_error,
    early_step,
    gradient_reading,
    groups,
    preset_of,
)
from depthlab.studies.inception_aux.probe import LOWER_TAPS, tap_label
from depthlab.studies.results import Condition, StudyResult, status_findings

__all__ = [
    "RETHINKING",
    "GOING_DEEPER",
    "COSINE_BOUND",
    "FINDING_MOMENTS",
    "compare_early",
    "compare_final",
    "compare_gap",
    "compare_share",
    "compare_cosine",
    "compute_findings",
]

RETHINKING = "Szegedy et al. 2015 (Rethinking the Inception Architecture, §4)"
GOING_DEEPER = "Szegedy et al. 2015 (Going Deeper with Convolutions, §5)"
COSINE_BOUND = 0.1  # |cos| below this: the aux and main gradients are called orthogonal (TOST)
FINDING_MOMENTS = ("init", "during")  # the gradient findings' moments (the figure also shows the end)


# ------------------------------------------------------------------------------------ stage 1: comparisons
def compare_early(a: Condition, b: Condition, step: int, margin: float) -> Compared | None:
    """Mean running training error over iterations 1 … ``step``: ``a`` − ``b``; the same within ``margin`` ×
    ``b``'s."""
    ea, eb = early_error(a, step), early_error(b, step)
    if ea is None or eb is None:
        return None
    return compared(welch(a.name, ea, b.name, eb), relative_bound(eb, margin))


def compare_final(a: Condition, b: Condition, split: str, margin: float) -> Compared | None:
    """Final error of ``split`` (``train_eval`` or ``test``): ``a`` − ``b``; the same within ``margin`` ×
    ``b``'s."""
    ea, eb = a.error(split), b.error(split)
    if ea is None or eb is None:
        return None
    return compared(welch(a.name, ea, b.name, eb), relative_bound(eb, margin))


def compare_gap(a: Condition, b: Condition, margin: float) -> Compared | None:
    """The generalisation gap (test − final training error, per seed): ``a`` − ``b``; the same within
    ``margin`` × ``b``'s test error."""

    def gap(c: Condition) -> Estimate | None:
        return c.estimate([r.final["test"] - r.final["train_eval"] for r in c.runs
                           if "test" in r.final and "train_eval" in r.final])  # fmt: skip

    ga, gb = gap(a), gap(b)
    if ga is None or gb is None:
        return None
    return compared(welch(a.name, ga, b.name, gb), relative_bound(b.error("test"), margin))


def compare_share(r: GradientReading, bound: float) -> Compared:
    """The aux share against ``bound``, as log10 values (a one-sample t interval: the bound has no spread)."""
    return Compared(
        compare_log(f"{r.condition} aux share", r.share, "bound", Estimate((bound,) * r.share.seeds))
    )


def compare_cosine(r: GradientReading) -> Compared:
    """cos(g_aux, g_main) against 0 (a one-sample t interval); TOST against ±:data:`COSINE_BOUND`."""
    return compared(
        welch(f"{r.condition} cosine", r.cosine, "0", Estimate((0.0,) * r.cosine.seeds)), COSINE_BOUND
    )


# -------------------------------------------------------------------------------------- stage 2: sentences
EARLY_CLAUSE = {
    "equivalent": f"the auxiliary losses did not speed up early training, as {RETHINKING} found",
    "lower": f"the auxiliary losses sped up early training here, unlike {RETHINKING}, who found no faster early "
    "convergence",
    "higher": f"the auxiliary losses slowed early training here, unlike {RETHINKING}, who found early training "
    "virtually identical with and without them",
}
TEST_CLAUSE = {
    "lower": f"as {RETHINKING} found: with auxiliary heads the net ends on a slightly higher accuracy plateau",
    "higher": f"unlike {RETHINKING}, where the net with auxiliary heads ends slightly more accurate",
    "equivalent": f"any effect is smaller than the bound; {RETHINKING} report a slightly higher plateau with "
    "the heads, which a bound this wide cannot rule out",
}
GAP_CLAUSE = {
    "lower": f"consistent with the regularising effect {RETHINKING} attribute to the auxiliary heads (a smaller "
    "gap can also come from a higher training error: the test error is compared on its own)",
    "higher": f"the opposite of what the regularising effect {RETHINKING} attribute to them would give",
}


def _with(text: str, clause: str | None) -> str:
    return f"{text}: {clause}." if clause else f"{text}."


def _moment(moment: str, r: GradientReading) -> str:
    if moment == "init":
        return "At initialisation"
    if moment == "during":
        return f"During training (per seed the median over its {r.probes} probes)"
    return "At the end"


def _unknown(r: GradientReading, what: str, e: Estimate) -> str:
    values = ", ".join(sci(v) for v in e.values)
    return (
        f"{_moment(r.moment, r)}, {what} at the {tap_label(r.tap)} output of {r.condition} is unknown: non-finite "
        f"values ({values})."
    )


def share_sentence(c: Compared, r: GradientReading, bound: float) -> str:
    d = c.difference
    tap = tap_label(r.tap)
    if c.outcome == "unknown":
        return _unknown(r, "the aux share", r.share)
    ci = d.ci
    interval = (
        f", 95% CI [{sci(bound * 10**ci.low)}, {sci(bound * 10**ci.high)}]"
        if ci
        else f", no CI ({seeds_text(r.share)})"
    )
    head = (
        f"{_moment(r.moment, r)}, the aux share ‖{r.weight:g}·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ at the {tap} output of "
        f"{r.condition} is {sci(10**d.a.mean)} (geometric mean over {d.a.seeds} seed"
        f"{'s' if d.a.seeds != 1 else ''}{interval}; Welch t on log10)"
    )
    verdict = {
        "higher": f"above the {bound:g} bound: the aux losses change the gradient that reaches {tap}, as "
        f"{GOING_DEEPER} meant them to",
        "lower": f"below the {bound:g} bound: the aux losses change the gradient at {tap} by less than "
        f"{100 * bound:g}% of the main loss's",
    }.get(c.outcome, f"whether it lies above or below the {bound:g} bound is not resolved")
    return f"{head}: {verdict}."


def _cosine_tost(c: Compared) -> str:
    e = c.equivalence
    return f"; TOST against ±{e.bound:g}: {p_text(e.p)}" if e is not None else ""


def cosine_sentence(c: Compared, r: GradientReading) -> str:
    d = c.difference
    tap = tap_label(r.tap)
    if c.outcome == "unknown":
        return _unknown(r, "the cosine between the aux and main gradients", r.cosine)
    ci = d.ci
    interval = f", 95% CI [{ci.low:+.2f}, {ci.high:+.2f}]" if ci else f", no CI ({seeds_text(r.cosine)})"
    head = (
        f"{_moment(r.moment, r)}, the cosine between ∂L_aux/∂y and ∂L_main/∂y at the {tap} output of "
        f"{r.condition} is {d.a.mean:+.2f} (mean over {d.a.seeds} seed{'s' if d.a.seeds != 1 else ''}"
        f"{interval}{_cosine_tost(c)})"
    )
    verdict = {
        "higher": f"the aux losses push {tap} the way the main loss does",
        "lower": f"the aux losses push {tap} against the main loss",
        "equivalent": f"orthogonal within ±{COSINE_BOUND:g}: the aux losses add a direction of their own rather "
        "than more of the main loss's gradient",
    }.get(c.outcome, f"its sign is not resolved, nor is it within ±{COSINE_BOUND:g} of 0")
    return f"{head}: {verdict}."


# ----------------------------------------------------------------------------------------------- findings
def _finding(text: str, topic: str, when: str, c: Compared, key: str, question: str, **extra: Any) -> Finding:
    return Finding(text, topic, when, {**c.numbers(), **extra}, outcome=c.outcome, key=key, question=question)


def method_finding(result: StudyResult) -> Finding:
    preset = preset_of(result)
    step = early_step(result)
    last = max((r.step for r in result.runs), default=0)
    train_images = max((r.images.get("train_eval", 0) for r in result.runs), default=0)
    test_images = max((r.images.get("test", 0) for r in result.runs), default=0)
    return Finding(
        f"Early training is the running training error (training mode, the batches being fitted) averaged over "
        f"iterations 1–{step}; final training error the eval-mode error over all {train_images:,} images of the "
        f"fixed training subset at iteration {last}; test error over {test_images:,} test images. The seed is "
        f"the unit: each comparison is a difference with its 95% Welch t interval across seeds; errors are called "
        f"the same only within ±{100 * preset.margin:.0f}% of the reference (second-named) condition's error, by "
        f"a TOST. A condition's convergence compares its running training error over the last 10% of iterations "
        f"with the 10% before (flat within ±{100 * preset.plateau_bound:g} points). These comparisons are "
        f"secondary; each question's primary test, Holm-adjusted across the questions, is in its answer.",
        "method",
        "end",
        {
            "early_step": step,
            "train_images": train_images,
            "test_images": test_images,
            "margin": preset.margin,
            "plateau_bound": preset.plateau_bound,
        },  # fmt: skip
        key="method:errors",
        question="final",
    )


def error_findings(result: StudyResult, g: Groups) -> list[Finding]:
    out: list[Finding] = []
    if g.aux is None:
        return out
    margin = preset_of(result).margin
    step = early_step(result)
    for base in g.baselines:
        if step is not None and (c := compare_early(g.aux, base, step, margin)) is not None:
            text = error_sentence(c, "mean running training error", f"Over iterations 1–{step}")
            out.append(_finding(_with(text, EARLY_CLAUSE.get(c.outcome)), "early", "during", c,
                                f"early_train_error:{g.aux.name}:{base.name}", "early", step=step))  # fmt: skip
    for base in g.baselines:
        if (c := compare_final(g.aux, base, "train_eval", margin)) is not None:
            text = error_sentence(c, "final training error", "At the end")
            out.append(_finding(_with(text, None), "final", "end", c, f"train_error:{g.aux.name}:{base.name}",
                                "final"))  # fmt: skip
        if (c := compare_final(g.aux, base, "test", margin)) is not None:
            text = error_sentence(c, "test error", "At the end")
            out.append(_finding(_with(text, TEST_CLAUSE.get(c.outcome)), "final", "end", c,
                                f"test_error:{g.aux.name}:{base.name}", "final"))  # fmt: skip
        if (c := compare_gap(g.aux, base, margin)) is not None:
            text = error_sentence(c, "generalisation gap (test − final training error)", "At the end")
            out.append(_finding(_with(text, GAP_CLAUSE.get(c.outcome)), "regulariser", "end", c,
                                f"gap:{g.aux.name}:{base.name}", "final"))  # fmt: skip
    if g.zero is not None and g.none is not None:
        if (c := compare_final(g.zero, g.none, "test", margin)) is not None:
            text = error_sentence(c, "test error", "Control: at the end") + (
                " — both train only the main classifier (with weight 0 the heads run but get no gradient); they "
                "differ in the draw of the initial weights and dropout masks only."
            )
            out.append(
                _finding(text, "control", "end", c, f"test_error:{g.zero.name}:{g.none.name}", "final")
            )
    return out


def gradient_findings(result: StudyResult, g: Groups) -> list[Finding]:
    out: list[Finding] = []
    if g.aux is None:
        return out
    bound = preset_of(result).share_bound
    for moment in FINDING_MOMENTS:
        for tap in LOWER_TAPS:
            r = gradient_reading(g.aux, tap, moment)
            if r is None:
                continue
            s, c = compare_share(r, bound), compare_cosine(r)
            label = tap_label(tap)
            out.append(_finding(share_sentence(s, r, bound), "gradient", moment, s, f"aux_share:{label}:{moment}",
                                "gradient", bound=bound, probes=r.probes))  # fmt: skip
            out.append(_finding(cosine_sentence(c, r), "gradient", moment, c, f"aux_cosine:{label}:{moment}",
                                "gradient", probes=r.probes))  # fmt: skip
    return out


def compute_findings(result: StudyResult) -> list[Finding]:
    """The study's findings, in reading order: status, method, errors (early, final, gap, control),
    convergence and stalled seeds, gradients."""
    if not any(r.final for r in result.runs):
        return [Finding("No run has logged an error yet, so there is nothing to compare.", "status", "end")]
    out: list[Finding] = status_findings(result)  # unfinished runs; diverged seeds, left out and counted
    g = groups(result)
    out.append(method_finding(result))
    out += error_findings(result, g)
    out += net_findings([(c.name, c, "final") for c in result.conditions()], preset_of(result).plateau_bound)
    out += gradient_findings(result, g)
    return out
