"""The inception-aux study's findings, in two stages: comparisons (:class:`Compared`, from
:mod:`depthlab.stats`), then a few sentence templates.

Every comparison is ``higher``/``lower`` (of the first named condition or quantity) when its 95% CI across
seeds excludes 0 — Welch's interval, plus McNemar's test on the test images where both conditions saw the
same ones —, ``equivalent`` when a TOST against the stated bound says so, ``unknown`` from non-finite
values, else ``not resolved``. A sentence names its seeds, its CI, and agrees or disagrees with a paper only
when resolved. Definitions of the measures: :mod:`depthlab.studies.inception_aux.evidence`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from depthlab.present.format import difference_ci, pct, sci
from depthlab.stats import (
    Difference,
    Equivalence,
    Estimate,
    bounded_outcome,
    compare_log,
    equivalence,
    mcnemar,
    paired,
    seeds_text,
    welch,
    with_paired_test,
)
from depthlab.studies.declare import Finding
from depthlab.studies.inception_aux.evidence import (
    GradientReading,
    Groups,
    Plateau,
    early_error,
    early_step,
    gradient_reading,
    groups,
    plateau,
    preset_of,
    test_correct,
)
from depthlab.studies.inception_aux.probe import LOWER_TAPS, tap_label
from depthlab.studies.results import Condition, StudyResult, status_findings

__all__ = [
    "RETHINKING",
    "GOING_DEEPER",
    "COSINE_BOUND",
    "FINDING_MOMENTS",
    "Compared",
    "compare_early",
    "compare_final",
    "compare_gap",
    "compare_plateau",
    "compare_share",
    "compare_cosine",
    "compute_findings",
]

RETHINKING = "Szegedy et al. 2015 (Rethinking the Inception Architecture, §4)"
GOING_DEEPER = "Szegedy et al. 2015 (Going Deeper with Convolutions, §5)"
COSINE_BOUND = 0.1  # |cos| below this: the aux and main gradients are called orthogonal (TOST)
FINDING_MOMENTS = ("init", "during")  # the gradient findings' moments (the figure also shows the end)

LoadCorrect = Callable[[Any, str], np.ndarray | None]


# ------------------------------------------------------------------------------------ stage 1: comparisons
@dataclass(frozen=True)
class Compared:
    """``a − b`` (:class:`~depthlab.stats.Difference`), its TOST against ``equivalence.bound`` where
    "the same" can be said, and the finding's outcome.

    The outcome is ``higher``/``lower`` when the 95% CI excludes 0, else ``equivalent`` when the TOST keeps
    the difference inside ±bound, else ``not resolved``. With ``minimum_effect`` (the plateau check, as in the
    degradation and vgg-depth studies) the bound is also the smallest change that counts: equivalence first,
    and a direction only when the CI lies beyond the bound, so that a change of 0.2 points cannot be called
    "still falling" against a ±2-point plateau bound it satisfies."""

    difference: Difference
    equivalence: Equivalence | None = None
    minimum_effect: bool = False

    @property
    def finite(self) -> bool:
        """No non-finite value (a side with no value left, every seed diverged, is not non-finite: it has
        too few seeds, which makes the comparison ``not resolved``)."""
        return not self.difference.unknown

    @property
    def outcome(self) -> str:
        if not self.finite:
            return "unknown"
        return bounded_outcome(self.difference, self.equivalence, minimum_effect=self.minimum_effect)

    @property
    def seeds(self) -> int:
        return min(self.difference.a.seeds, self.difference.b.seeds)

    def numbers(self) -> dict[str, Any]:
        return {
            **self.difference.to_dict(),
            "equivalence": self.equivalence.to_dict() if self.equivalence else None,
            "outcome": self.outcome,
        }


def _errors(a: Condition, ea: Estimate, b: Condition, eb: Estimate, bound: float) -> Compared:
    d = welch(a.name, ea, b.name, eb)
    return Compared(d, equivalence(d, bound))


def compare_early(a: Condition, b: Condition, step: int, bound: float) -> Compared | None:
    """Mean running training error over iterations 1 … ``step``: ``a`` − ``b``."""
    ea, eb = early_error(a, step), early_error(b, step)
    return _errors(a, ea, b, eb, bound) if ea is not None and eb is not None else None


def compare_final(
    a: Condition, b: Condition, split: str, bound: float, load: LoadCorrect | None = None
) -> Compared | None:
    """Final error of ``split`` (``train_eval`` or ``test``): ``a`` − ``b``; on the test split with McNemar's
    test over seed-matched runs when each wrote its per-image correctness."""
    ea, eb = a.error(split), b.error(split)
    if ea is None or eb is None:
        return None
    c = _errors(a, ea, b, eb, bound)
    if split == "test":
        pairs = test_correct(a, b, load)
        if pairs is not None:
            return Compared(with_paired_test(c.difference, mcnemar(*pairs)), c.equivalence)
    return c


def compare_gap(a: Condition, b: Condition, bound: float) -> Compared | None:
    """The generalisation gap (test − final training error, per seed): ``a`` − ``b``."""

    def gap(c: Condition) -> Estimate | None:
        return c.estimate([r.final["test"] - r.final["train_eval"] for r in c.runs
                           if "test" in r.final and "train_eval" in r.final])  # fmt: skip

    ga, gb = gap(a), gap(b)
    if ga is None or gb is None:
        return None
    return _errors(a, ga, b, gb, bound)


def compare_plateau(p: Plateau, bound: float) -> Compared:
    """End − start of the last 10% of iterations, paired by seed; TOST against ``bound``, which is also the
    smallest change that counts as still falling (or rising)."""
    d = paired(f"{p.condition} at {p.end}", p.after, f"{p.condition} at {p.start}", p.before)
    return Compared(d, equivalence(d, bound), minimum_effect=True)


def compare_share(r: GradientReading, bound: float) -> Compared:
    """The aux share against ``bound``, as log10 values (a one-sample t interval: the bound has no spread)."""
    return Compared(
        compare_log(f"{r.condition} aux share", r.share, "bound", Estimate((bound,) * r.share.seeds))
    )


def compare_cosine(r: GradientReading) -> Compared:
    """cos(g_aux, g_main) against 0 (a one-sample t interval); TOST against ±:data:`COSINE_BOUND`."""
    d = welch(f"{r.condition} cosine", r.cosine, "0", Estimate((0.0,) * r.cosine.seeds))
    return Compared(d, equivalence(d, COSINE_BOUND))


# -------------------------------------------------------------------------------------- stage 2: sentences
def _seeds(c: Compared) -> str:
    a, b = c.difference.a.seeds, c.difference.b.seeds
    return f"{a} seed{'s' if a != 1 else ''} each" if a == b else f"{a} and {b} seeds"


def _mcnemar(d: Difference) -> str:
    t = d.paired_test
    if t is None:
        return ""
    return (
        f"; McNemar p = {t.p:.2g} on the test images where they disagree ({d.a_label} alone right on "
        f"{t.a_only:,}, {d.b_label} alone on {t.b_only:,}, pooled over {d.a.seeds} seed pairs)"
    )


def _tost(c: Compared, scale: float, unit: str) -> str:
    e = c.equivalence
    if e is None:
        return ""
    return f"; TOST against ±{scale * e.bound:g}{unit}: p = {e.p:.2g}"


def error_sentence(c: Compared, noun: str, when: str) -> str:
    """One comparison of error rates: resolved, the same within the bound, not resolved, or unknown."""
    d = c.difference
    a, b = d.a_label, d.b_label
    ci = d.ci
    values = f"{pct(d.a.mean)} vs {pct(d.b.mean)}, " + difference_ci(
        d.difference, ci.low if ci else None, ci.high if ci else None, reason=d.no_interval
    )
    basis = f"Welch t, {_seeds(c)}{_mcnemar(d)}"
    bound = 100 * (c.equivalence.bound if c.equivalence else 0.0)
    match c.outcome:
        case "higher" | "lower":
            return f"{when}, {a} has {c.outcome} {noun} than {b} ({values}; {basis})"
        case "equivalent":
            return f"{when}, {a} and {b} have the same {noun} within ±{bound:g} points ({values}; {basis}{_tost(c, 100, ' points')})"
        case "unknown":
            return (
                f"{when}, how the {noun} of {a} and {b} compare is unknown: non-finite values "
                f"({', '.join(sci(v) for v in d.a.values)} vs {', '.join(sci(v) for v in d.b.values)})"
            )
    return (
        f"{when}, whether {a} has higher or lower {noun} than {b} is not resolved ({values}; {basis}), nor is "
        f"equivalence within ±{bound:g} points shown{_tost(c, 100, ' points')}"
    )


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
    "lower": f"the regularising effect {RETHINKING} attribute to the auxiliary heads",
    "higher": f"the opposite of the regularising effect {RETHINKING} attribute to them",
}


def _with(text: str, clause: str | None) -> str:
    return f"{text}: {clause}." if clause else f"{text}."


def plateau_sentence(c: Compared, p: Plateau) -> str:
    d = c.difference
    ci = d.ci
    change = difference_ci(
        d.difference, ci.low if ci else None, ci.high if ci else None, reason=d.no_interval
    )
    head = (
        f"Over the last 10% of iterations ({p.start} → {p.end}), the eval-mode training error of {p.condition} "
        f"went from {pct(d.b.mean)} to {pct(d.a.mean)} ({change}; paired t, {d.a.seeds} seed"
        f"{'s' if d.a.seeds != 1 else ''}{_tost(c, 100, ' points')})"
    )
    bound = 100 * (c.equivalence.bound if c.equivalence else 0.0)
    verdict = {
        "equivalent": f"it has reached a plateau (a change within ±{bound:g} points)",
        "lower": f"it was still falling by more than {bound:g} points, so the run ended before its plateau",
        "higher": f"it rose by more than {bound:g} points at the end of the schedule",
        "unknown": "unknown: non-finite values",
    }.get(c.outcome, f"whether it has reached a plateau (a change within ±{bound:g} points) is not resolved")
    return f"{head}: {verdict}."


def _moment(moment: str, r: GradientReading) -> str:
    if moment == "init":
        return "At initialisation"
    if moment == "during":
        return f"During training (per seed the median over its {r.probes} probes)"
    return "At the end"


def share_sentence(c: Compared, r: GradientReading, bound: float) -> str:
    d = c.difference
    tap = tap_label(r.tap)
    if c.outcome == "unknown":
        values = ", ".join(sci(v) for v in r.share.values)
        return (
            f"{_moment(r.moment, r)}, the aux share at the {tap} output of {r.condition} is unknown: non-finite "
            f"values ({values})."
        )
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


def cosine_sentence(c: Compared, r: GradientReading) -> str:
    d = c.difference
    tap = tap_label(r.tap)
    if c.outcome == "unknown":
        values = ", ".join(sci(v) for v in r.cosine.values)
        return (
            f"{_moment(r.moment, r)}, the cosine between the aux and main gradients at the {tap} output of "
            f"{r.condition} is unknown: non-finite values ({values})."
        )
    ci = d.ci
    interval = f", 95% CI [{ci.low:+.2f}, {ci.high:+.2f}]" if ci else f", no CI ({seeds_text(r.cosine)})"
    head = (
        f"{_moment(r.moment, r)}, the cosine between ∂L_aux/∂y and ∂L_main/∂y at the {tap} output of "
        f"{r.condition} is {d.a.mean:+.2f} (mean over {d.a.seeds} seed{'s' if d.a.seeds != 1 else ''}"
        f"{interval}{_tost(c, 1, '')})"
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
    step = early_step(result)
    last = max((r.step for r in result.runs), default=0)
    train_images = max((r.images.get("train_eval", 0) for r in result.runs), default=0)
    test_images = max((r.images.get("test", 0) for r in result.runs), default=0)
    bound = preset_of(result).error_bound
    return Finding(
        f"Early training is the running training error (training mode, the batches being fitted) averaged over "
        f"iterations 1–{step}; final training error the eval-mode error over all {train_images:,} images of the "
        f"fixed training subset at iteration {last}; test error over {test_images:,} test images. Each "
        f"comparison is a difference with its 95% CI across seeds (Welch t; on the test images also McNemar's "
        f"test, seed-matched); errors are called the same only within ±{100 * bound:g} points by a TOST.",
        "method",
        "end",
        {"early_step": step, "train_images": train_images, "test_images": test_images, "error_bound": bound},
    )


def error_findings(result: StudyResult, g: Groups, load: LoadCorrect | None = None) -> list[Finding]:
    out: list[Finding] = []
    if g.aux is None:
        return out
    bound = preset_of(result).error_bound
    step = early_step(result)
    for base in g.baselines:
        if step is not None and (c := compare_early(g.aux, base, step, bound)) is not None:
            text = error_sentence(c, "mean running training error", f"Over iterations 1–{step}")
            out.append(_finding(_with(text, EARLY_CLAUSE.get(c.outcome)), "early", "during", c,
                                f"early_train_error:{g.aux.name}:{base.name}", "early", step=step))  # fmt: skip
    for base in g.baselines:
        if (c := compare_final(g.aux, base, "train_eval", bound, load)) is not None:
            text = error_sentence(c, "final training error", "At the end")
            out.append(
                _finding(
                    _with(text, None), "final", "end", c, f"train_error:{g.aux.name}:{base.name}", "final"
                )
            )
        if (c := compare_final(g.aux, base, "test", bound, load)) is not None:
            text = error_sentence(c, "test error", "At the end")
            out.append(_finding(_with(text, TEST_CLAUSE.get(c.outcome)), "final", "end", c,
                                f"test_error:{g.aux.name}:{base.name}", "final"))  # fmt: skip
        if (c := compare_gap(g.aux, base, bound)) is not None:
            text = error_sentence(c, "generalisation gap (test − final training error)", "At the end")
            out.append(_finding(_with(text, GAP_CLAUSE.get(c.outcome)), "regulariser", "end", c,
                                f"gap:{g.aux.name}:{base.name}", "final"))  # fmt: skip
    if g.zero is not None and g.none is not None:
        if (c := compare_final(g.zero, g.none, "test", bound, load)) is not None:
            text = error_sentence(c, "test error", "Control: at the end") + (
                " — both train only the main classifier (with weight 0 the heads run but get no gradient); they "
                "differ in the draw of the initial weights and dropout masks only."
            )
            out.append(
                _finding(text, "control", "end", c, f"test_error:{g.zero.name}:{g.none.name}", "final")
            )
    return out


def plateau_findings(result: StudyResult, g: Groups) -> list[Finding]:
    bound = preset_of(result).error_bound
    out = []
    for cond in (g.aux, *g.baselines):
        p = plateau(cond) if cond is not None else None
        if p is None:
            continue
        c = compare_plateau(p, bound)
        out.append(_finding(plateau_sentence(c, p), "plateau", "end", c, f"plateau:{p.condition}", "final",
                            start=p.start, end=p.end))  # fmt: skip
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


def compute_findings(result: StudyResult, load: LoadCorrect | None = None) -> list[Finding]:
    """The study's findings, in reading order: status, method, errors (early, final, gap, control), plateau,
    gradients. ``load``: per-image correctness reader (default :func:`depthlab.train.evaluation.load_correct`)."""
    if not any(r.final for r in result.runs):
        return [Finding("No run has logged an error yet, so there is nothing to compare.", "status", "end")]
    out: list[Finding] = status_findings(result)  # unfinished runs; diverged seeds, left out and counted
    g = groups(result)
    out.append(method_finding(result))
    out += error_findings(result, g, load)
    out += plateau_findings(result, g)
    out += gradient_findings(result, g)
    return out
