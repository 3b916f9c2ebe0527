"""The vgg-depth study's findings, in two stages: comparisons (:class:`Compared`, from
:mod:`depthlab.stats`), then a few sentence templates.

Every comparison is ``higher``/``lower`` (of the first named condition) when its 95% CI across seeds
excludes 0 — Welch's interval, plus McNemar's test on the test images, seed-matched, where the runs wrote
their per-image results —, ``equivalent`` when a TOST against the stated bound says so, ``unknown`` from
non-finite values, else ``not resolved``. A comparison with a net that did not train (in any seed) is not
resolved: it says so, and is never called degradation. A sentence names its seeds and its CI, and agrees or
disagrees with the paper only when resolved. Definitions of the measures: :mod:`.evidence`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from depthlab.present.format import difference_ci, pct, sci
from depthlab.stats import (
    Difference,
    Equivalence,
    bounded_outcome,
    equivalence,
    mcnemar,
    paired,
    welch,
    with_paired_test,
)
from depthlab.studies.declare import Finding
from depthlab.studies.results import Condition, StudyResult, status_findings
from depthlab.studies.vgg_depth.evidence import (
    LoadCorrect,
    Net,
    Plateau,
    Training,
    depth_effect,
    ladder,
    nets,
    plateau,
    preset_of,
    test_correct,
    training,
)
from depthlab.studies.vgg_depth.presets import TABLE3

__all__ = [
    "PAPER",
    "HE",
    "Compared",
    "compare_errors",
    "compare_depth_effect",
    "compare_plateau",
    "depth_pairs",
    "compute_findings",
]

PAPER = "Simonyan & Zisserman 2015, Table 3"
HE = "He et al. 2016"
NOUN = {"train_eval": "final training error", "test": "test error"}
KEY = {"train_eval": "train_error", "test": "test_error"}


# ------------------------------------------------------------------------------------ stage 1: comparisons
@dataclass(frozen=True)
class Compared:
    """``a − b`` (:class:`~depthlab.stats.Difference`), its TOST against ``equivalence.bound``, and
    the conditions of the comparison that did not train in every seed (``untrained``: their
    :class:`~.evidence.Training`); the finding's outcome.

    The outcome is ``higher``/``lower`` when the 95% CI excludes 0 (and an attached McNemar test agrees),
    else ``equivalent`` when the TOST keeps the difference inside ±bound, else ``not resolved``. With
    ``minimum_effect`` (the plateau check) the bound is also the smallest change that counts: equivalence
    first, and a direction only when the CI lies beyond the bound, so that a replication cannot flip between
    "plateau" and "still falling" through a small deviation."""

    difference: Difference
    equivalence: Equivalence | None = None
    untrained: tuple[Training, ...] = ()
    minimum_effect: bool = False

    @property
    def finite(self) -> bool:
        """No non-finite value (a side with no value left, every seed diverged, is not non-finite: it has
        too few seeds, which makes the comparison ``not resolved``)."""
        return not self.difference.unknown

    @property
    def outcome(self) -> str:
        if self.untrained:
            return "not resolved"
        if not self.finite:
            return "unknown"
        return bounded_outcome(self.difference, self.equivalence, minimum_effect=self.minimum_effect)

    def numbers(self) -> dict[str, Any]:
        return {
            **self.difference.to_dict(),
            "equivalence": self.equivalence.to_dict() if self.equivalence else None,
            "did_not_train": {t.condition: t.untrained for t in self.untrained},
            "outcome": self.outcome,
        }


def _untrained(conditions: tuple[Condition, ...], margin: float) -> tuple[Training, ...]:
    readings = [training(c, margin) for c in conditions]
    return tuple(t for t in readings if t is not None and not t.all_trained)


def compare_errors(
    a: Condition, b: Condition, split: str, bound: float, margin: float, load: LoadCorrect | None = None
) -> Compared | None:
    """Final error of ``split`` (``train_eval`` or ``test``): ``a`` − ``b`` (Welch; on the test split with
    McNemar's test over seed-matched runs when each wrote its per-image correctness)."""
    ea, eb = a.error(split), b.error(split)
    if ea is None or eb is None:
        return None
    d = welch(a.name, ea, b.name, eb)
    if split == "test" and (pairs := test_correct(a, b, load)) is not None:
        d = with_paired_test(d, mcnemar(*pairs))
    return Compared(d, equivalence(d, bound), _untrained((a, b), margin))


def compare_depth_effect(
    deep_bn: Condition,
    shallow_bn: Condition,
    deep: Condition,
    shallow: Condition,
    bound: float,
    margin: float,
) -> Compared | None:
    """Does batch norm change what depth does to the test error? (deep+BN − shallow+BN) − (deep − shallow):
    Welch over the per-seed depth effects of the two settings."""
    with_bn = depth_effect(deep_bn, shallow_bn, "test")
    without = depth_effect(deep, shallow, "test")
    if with_bn is None or without is None:
        return None
    d = welch(f"{deep_bn.name} − {shallow_bn.name}", with_bn, f"{deep.name} − {shallow.name}", without)
    return Compared(d, equivalence(d, bound), _untrained((deep_bn, shallow_bn, deep, shallow), margin))


def compare_plateau(p: Plateau, bound: float) -> Compared:
    """End − start of the last 10% of iterations, paired by seed; TOST against ``bound``, which is also the
    smallest change that counts as still falling (or rising)."""
    d = paired(f"{p.condition} at {p.end}", p.after, f"{p.condition} at {p.start}", p.before)
    return Compared(d, equivalence(d, bound), minimum_effect=True)


def depth_pairs(steps: list[Net]) -> list[tuple[Net, Net]]:
    """(deeper, shallower): every deeper net against the shallowest, then each consecutive step not already
    listed (A, D, E: D vs A, E vs A, E vs D)."""
    if len(steps) < 2:
        return []
    pairs = [(deep, steps[0]) for deep in steps[1:]]
    return pairs + [(b, a) for a, b in zip(steps[1:], steps[2:], strict=False)]


# -------------------------------------------------------------------------------------- stage 2: sentences
def _seeds(d: Difference) -> str:
    a, b = d.a.seeds, d.b.seeds
    return f"{a} seed{'s' if a != 1 else ''} each" if a == b else f"{a} and {b} seeds"


def _mcnemar(d: Difference) -> str:
    t = d.paired_test
    if t is None:
        return ""
    return (
        f"; McNemar {p_value(t.p)} on the test images where they disagree ({d.a_label} alone right on "
        f"{t.a_only:,}, {d.b_label} alone on {t.b_only:,}, pooled over {d.a.seeds} seed pairs)"
    )


def _tost(c: Compared) -> str:
    e = c.equivalence
    return f"; TOST against ±{100 * e.bound:g} points: {p_value(e.p)}" if e is not None else ""


def _values(d: Difference) -> str:
    ci = d.ci
    return f"{pct(d.a.mean)} vs {pct(d.b.mean)}, " + difference_ci(
        d.difference, ci.low if ci else None, ci.high if ci else None, reason=d.no_interval
    )


def untrained_clause(ts: tuple[Training, ...]) -> str:
    """Why a comparison with a net that never left chance is not resolved."""
    parts = [f"{t.condition} did not train in {t.untrained} of {t.seeds} seeds" for t in ts]
    threshold = ts[0].threshold
    return (
        f"{'; '.join(parts)} (final training error at least {pct(threshold)}, chance "
        f"{pct(ts[0].chance)}), so the comparison is not resolved — a net that never left chance is not a "
        f"deeper net that trains worse"
    )


def error_sentence(c: Compared, a: str, b: str, noun: str, setting: str) -> str:
    """One comparison of error rates: resolved, the same within the bound, not resolved, or unknown.
    ``a``/``b`` name the two conditions (e.g. with their depths), ``setting`` starts the sentence."""
    d = c.difference
    values = _values(d)
    basis = f"Welch t, {_seeds(d)}{_mcnemar(d)}"
    bound = 100 * (c.equivalence.bound if c.equivalence else 0.0)
    if c.untrained:
        return f"{setting}, {a} vs {b} on {noun} ({values}; {basis}): {untrained_clause(c.untrained)}"
    match c.outcome:
        case "higher" | "lower":
            return f"{setting}, {a} has {c.outcome} {noun} than {b} ({values}; {basis})"
        case "equivalent":
            return f"{setting}, {a} and {b} have the same {noun} within ±{bound:g} points ({values}; {basis}{_tost(c)})"
        case "unknown":
            return (
                f"{setting}, how the {noun} of {a} and {b} compare is unknown: non-finite values "
                f"({', '.join(sci(v) for v in d.a.values)} vs {', '.join(sci(v) for v in d.b.values)})"
            )
    return (
        f"{setting}, whether {a} has higher or lower {noun} than {b} is not resolved ({values}; {basis}), nor "
        f"is equivalence within ±{bound:g} points shown{_tost(c)}"
    )


def _paper_difference(a: str, b: str) -> str:
    """The paper's two errors and their difference: ``D 27.0% vs A 29.6%, −2.6 points``."""
    return f"{a} {TABLE3[a]:.1f}% vs {b} {TABLE3[b]:.1f}%, {TABLE3[a] - TABLE3[b]:+.1f} points"


def p_value(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def depth_clause(c: Compared, deep: Net, shallow: Net, split: str) -> str | None:
    """What a resolved depth comparison means, against the paper (test error) or He et al. (training)."""
    if c.outcome not in ("higher", "lower"):
        return None
    if split == "train_eval":
        return (
            f"the deeper net fits its training images worse although both train — the degradation {HE} describe"
            if c.outcome == "higher"
            else "the deeper net fits its training images better"
        )
    paper = _paper_difference(deep.config, shallow.config)
    if deep.config == "E" and shallow.config == "D":  # Table 3: the error saturates at 19 layers
        better = "deeper is better here" if c.outcome == "lower" else "deeper is worse here"
        return f"{better}; in {PAPER} the error saturates at 19 layers ({paper})"
    word = "as in" if c.outcome == "lower" else "unlike"
    return (
        f"{'deeper is better' if c.outcome == 'lower' else 'deeper is worse'} here, {word} {PAPER} ({paper})"
    )


def lrn_clause(c: Compared) -> str | None:
    return {
        "lower": f"LRN helps here, unlike {PAPER}, where it does not ({_paper_difference('A-LRN', 'A')})",
        "higher": f"LRN hurts here; in {PAPER} it does not help either ({_paper_difference('A-LRN', 'A')})",
        "equivalent": f"LRN makes no difference larger than the bound, as in {PAPER} ({_paper_difference('A-LRN', 'A')})",
    }.get(c.outcome)


def conv1x1_clause(c: Compared) -> str | None:
    return {
        "higher": f"1×1 convs are worse than 3×3 at equal depth, as in {PAPER} ({_paper_difference('C', 'D')}): "
        "spatial context in those layers matters",
        "lower": f"1×1 convs are better than 3×3 here, unlike {PAPER} ({_paper_difference('C', 'D')})",
    }.get(c.outcome)


def effect_sentence(c: Compared) -> str:
    """Does batch norm change the depth effect (a difference of per-seed differences)?"""
    d = c.difference
    values = f"{_points(d.a.mean)} with batch norm vs {_points(d.b.mean)} without, " + difference_ci(
        d.difference, d.ci.low if d.ci else None, d.ci.high if d.ci else None, reason=d.no_interval
    )
    basis = f"Welch t over the per-seed depth effects, {_seeds(d)}"
    head = f"Test error change with depth, {d.a_label} against {d.b_label}: {values}; {basis}"
    if c.untrained:
        return f"{head}: {untrained_clause(c.untrained)}."
    bound = 100 * (c.equivalence.bound if c.equivalence else 0.0)
    verdict = {
        "lower": "batch norm makes depth help more (or hurt less)",
        "higher": "batch norm makes depth help less (or hurt more)",
        "equivalent": f"batch norm does not change the effect of depth by more than ±{bound:g} points{_tost(c)}",
        "unknown": "unknown: non-finite values",
    }.get(
        c.outcome,
        f"whether batch norm changes it is not resolved, nor is the change within ±{bound:g} points{_tost(c)}",
    )
    return f"{head}: {verdict}."


def plateau_sentence(c: Compared, p: Plateau) -> str:
    d = c.difference
    ci = d.ci
    change = difference_ci(
        d.difference, ci.low if ci else None, ci.high if ci else None, reason=d.no_interval
    )
    head = (
        f"Over the last 10% of iterations ({p.start} → {p.end}), the training error of {p.condition} went from "
        f"{pct(d.b.mean)} to {pct(d.a.mean)} ({change}; paired t, {d.a.seeds} seed{'s' if d.a.seeds != 1 else ''}"
        f"{_tost(c)})"
    )
    bound = 100 * (c.equivalence.bound if c.equivalence else 0.0)
    verdict = {
        "equivalent": f"it has reached a plateau (a change within ±{bound:g} points)",
        "lower": f"it was still falling by more than {bound:g} points, so the run ended before its plateau",
        "higher": "it rose at the end of the schedule",
        "unknown": "unknown: non-finite values",
    }.get(c.outcome, f"whether it has reached a plateau (a change within ±{bound:g} points) is not resolved")
    return f"{head}: {verdict}."


def _points(x: float) -> str:
    """A signed difference of error rates in points; "—" when there is none (no seed to average)."""
    return f"{100 * x:+.1f} points" if math.isfinite(x) else "—"


def training_sentence(t: Training) -> str:
    errors = ", ".join(pct(e) for e in t.errors)
    if t.untrained == t.seeds:
        head = f"{t.condition} did not train: it never left chance in any seed"
    else:
        head = f"{t.condition} did not train in {t.untrained} of {t.seeds} seeds"
    return (
        f"{head} (final training error {errors}; chance {pct(t.chance)}, and a run ending at {pct(t.threshold)} or "
        f"above did not train). It "
        f"is reported as not trained, not as degradation, and left out of every comparison's verdict."
    )


def _with(text: str, clause: str | None) -> str:
    return f"{text}: {clause}." if clause else f"{text}."


# ----------------------------------------------------------------------------------------------- findings
def _finding(text: str, topic: str, c: Compared, key: str, question: str, **extra: Any) -> Finding:
    return Finding(
        text, topic, "end", {**c.numbers(), **extra}, outcome=c.outcome, key=key, question=question
    )


def _setting(bn: bool) -> str:
    return "With batch norm" if bn else "Without batch norm"


def method_finding(result: StudyResult) -> Finding:
    preset = preset_of(result)
    last = max((r.step for r in result.runs), default=0)
    train_images = max((r.images.get("train_eval", 0) for r in result.runs), default=0)
    test_images = max((r.images.get("test", 0) for r in result.runs), default=0)
    init = {"model": "the zoo's He fan-out convs and N(0, 0.01) linear layers", "glorot": "Glorot uniform (the "
            "paper's footnote)", "kaiming": "He normal, fan-in (Kaiming)"}.get(preset.init, preset.init)  # fmt: skip
    start = (
        f"the deeper nets warm-started from A's weights of the same seed (its first four convs and the head, the "
        f"paper's §3.1), the rest {init}"
        if preset.warm_start
        else f"every net from {init}"
    )
    return Finding(
        f"Training error is the eval-mode error over all {train_images:,} images of the fixed training subset at "
        f"iteration {last}; test error over {test_images:,} test images; {start}. A run did not train when its "
        f"final training error is within {100 * preset.chance_margin:g} points of chance. Each comparison is a "
        f"difference with its 95% CI across seeds (Welch t; on the test images also McNemar's test, "
        f"seed-matched); errors are called the same only within ±{100 * preset.error_bound:g} points by a TOST. "
        f"The paper's numbers are ImageNet top-1 errors: directions are compared, not values.",
        "method",
        "end",
        {
            "train_images": train_images,
            "test_images": test_images,
            "steps": last,
            "init": preset.init,
            "warm_start": preset.warm_start,
            "error_bound": preset.error_bound,
            "chance_margin": preset.chance_margin,
        },  # fmt: skip
    )


def training_findings(by: dict[Net, Condition], margin: float) -> list[Finding]:
    out = []
    for net, c in by.items():
        t = training(c, margin)
        if t is not None and not t.all_trained:
            numbers = {"errors": list(t.errors), "chance": t.chance, "threshold": t.threshold,
                       "untrained": t.untrained, "seeds": t.seeds}  # fmt: skip
            out.append(Finding(training_sentence(t), "trained", "end", numbers, key=f"trained:{net.label}",
                               question="bn" if net.bn else "depth"))  # fmt: skip
    return out


def depth_findings(
    by: dict[Net, Condition], bound: float, margin: float, load: LoadCorrect | None
) -> list[Finding]:
    out = []
    for bn in (False, True):
        for deep, shallow in depth_pairs(ladder(by, bn)):
            for split in ("test", "train_eval"):
                c = compare_errors(by[deep], by[shallow], split, bound, margin, load)
                if c is None:
                    continue
                text = error_sentence(c, deep.named, shallow.named, NOUN[split], _setting(bn))
                key = f"{KEY[split]}:{deep.label}:{shallow.label}"
                clause = None if c.untrained else depth_clause(c, deep, shallow, split)
                out.append(_finding(_with(text, clause) if not c.untrained else text + ".", "depth", c, key,
                                    "bn" if bn else "depth", split=split))  # fmt: skip
    return out


def bn_effect_findings(by: dict[Net, Condition], bound: float, margin: float) -> list[Finding]:
    """The depth effect with BN against without, for each deeper net both settings trained, vs A."""
    out = []
    plain, with_bn = ladder(by, False), ladder(by, True)
    if not plain or not with_bn or plain[0].config != with_bn[0].config:
        return out
    for deep in with_bn[1:]:
        twin = Net(deep.config, False)
        if twin not in by:
            continue
        c = compare_depth_effect(by[deep], by[with_bn[0]], by[twin], by[plain[0]], bound, margin)
        if c is not None:
            key = f"depth_effect:{deep.label}-{with_bn[0].label}:{twin.label}-{plain[0].label}"
            out.append(_finding(effect_sentence(c), "bn", c, key, "bn"))
    return out


def pair_findings(
    by: dict[Net, Condition], bound: float, margin: float, load: LoadCorrect | None
) -> list[Finding]:
    """A-LRN vs A and C vs D on the test error, for each normalisation both sides of a pair were run."""
    out = []
    for a, b, topic, clause, what in (
        ("A-LRN", "A", "lrn", lrn_clause, "LRN after the first conv"),
        ("C", "D", "1x1", conv1x1_clause, "1×1 convs as the last conv of stages 3–5, vs 3×3, at equal depth"),
    ):
        for bn in (False, True):
            na, nb = Net(a, bn), Net(b, bn)
            if na not in by or nb not in by:
                continue
            c = compare_errors(by[na], by[nb], "test", bound, margin, load)
            if c is None:
                continue
            text = error_sentence(c, na.label, nb.label, "test error", f"{_setting(bn)} ({what})")
            out.append(_finding(_with(text, None if c.untrained else clause(c)), topic, c,
                                f"test_error:{na.label}:{nb.label}", topic))  # fmt: skip
    return out


def plateau_findings(by: dict[Net, Condition], bound: float, margin: float) -> list[Finding]:
    """The plateau check of every condition whose seeds all trained (a net at chance has no plateau to reach)."""
    out = []
    for net, cond in by.items():
        t = training(cond, margin)
        p = plateau(cond)
        if p is None or (t is not None and not t.all_trained):
            continue
        c = compare_plateau(p, bound)
        out.append(_finding(plateau_sentence(c, p), "plateau", c, f"plateau:{net.label}",
                            "bn" if net.bn else "depth", start=p.start, end=p.end))  # fmt: skip
    return out


def compute_findings(result: StudyResult, load: LoadCorrect | None = None) -> list[Finding]:
    """The study's findings, in reading order: status, method, which nets did not train, depth without and
    with BN (test and training error), what BN changes, LRN and 1×1, plateaus. ``load``: per-image
    correctness reader (default ``depthlab.train.load_correct``)."""
    if not any(r.final for r in result.runs):
        return [Finding("No run has logged an error yet, so there is nothing to compare.", "status", "end")]
    out: list[Finding] = status_findings(result)  # unfinished runs; diverged seeds, left out and counted
    preset = preset_of(result)
    bound, margin = preset.error_bound, preset.chance_margin
    by = nets(result)
    out.append(method_finding(result))
    out += training_findings(by, margin)
    out += depth_findings(by, bound, margin, load)
    out += bn_effect_findings(by, bound, margin)
    out += pair_findings(by, bound, margin, load)
    out += plateau_findings(by, preset.plateau_bound, margin)
    return out
