"""The vgg-depth study's findings, in two stages: comparisons (:class:`~depthlab.studies.common.Compared`,
from :mod:`depthlab.stats`), then a few sentence templates.

The seed is the unit (issue 23): every comparison is ``higher``/``lower`` (of the first named condition) when
its 95% Welch interval across seeds excludes 0, ``equivalent`` when a TOST keeps it within the preset's
relative ``margin`` of the reference (second-named) condition's error, ``unknown`` from non-finite values,
else ``not resolved``. A comparison with a net that did not train (in any seed) is not resolved: it says so,
and is never called degradation. A sentence names its seeds and its CI, and agrees or disagrees with the
paper only when resolved. Each net's convergence is the shared rule of :mod:`depthlab.studies.common`, and a
seed that stalled is named. These findings are secondary: each question's primary test, Holm-adjusted
across the questions, is in :mod:`.answers`. Definitions of the measures: :mod:`.evidence`.
"""

from __future__ import annotations

import math
from typing import Any

from depthlab.i18n import _
from depthlab.present.format import difference_ci, pct
from depthlab.stats import welch
from depthlab.studies.common import (
    Compared,
    compared,
    error_sentence,
    net_findings,
    pair_seeds_text,
    relative_bound,
    tost_text,
)
from depthlab.studies.declare import Finding
from depthlab.studies.results import Condition, StudyResult, status_findings
from depthlab.studies.vgg_depth.evidence import (
    Net,
    Training,
    depth_effect,
    ladder,
    nets,
    preset_of,
    training,
)
from depthlab.studies.vgg_depth.presets import TABLE3

__all__ = [
    "PAPER",
    "HE",
    "question_of",
    "compare_errors",
    "compare_depth_effect",
    "depth_pairs",
    "untrained_clause",
    "compute_findings",
]

PAPER = "Simonyan & Zisserman 2015, Table 3"
HE = "He et al. 2016"
NOUN = {"train_eval": "final training error", "test": "test error"}
KEY = {"train_eval": "train_error", "test": "test_error"}


def question_of(net: Net) -> str:
    """The question a net's own findings (did it train, its convergence, its seeds) belong to."""
    if net.bn:
        return "bn"
    return {"A-LRN": "lrn", "C": "1x1"}.get(net.config, "depth")


# ------------------------------------------------------------------------------------ stage 1: comparisons
def _untrained(conditions: tuple[Condition, ...], chance_margin: float) -> tuple[Training, ...]:
    readings = [training(c, chance_margin) for c in conditions]
    return tuple(t for t in readings if t is not None and not t.all_trained)


def untrained_clause(ts: tuple[Training, ...]) -> str:
    """Why a comparison with a net that never left chance is not resolved."""
    parts = [_("{net} did not train in {n} of {seeds} seeds").format(net=t.condition, n=t.untrained, seeds=t.seeds)
             for t in ts]  # fmt: skip
    return _(
        "{nets} (final training error at least {threshold}, chance {chance}), so the comparison is not resolved — "
        "a net that never left chance is not a deeper net that trains worse"
    ).format(nets="; ".join(parts), threshold=pct(ts[0].threshold), chance=pct(ts[0].chance))


def compare_errors(
    a: Condition, b: Condition, split: str, margin: float, chance_margin: float
) -> Compared | None:
    """Final error of ``split`` (``train_eval`` or ``test``): ``a`` − ``b``, Welch across seeds, with a TOST
    against ``margin`` × ``b``'s mean error; not resolved when either net did not train in a seed."""
    ea, eb = a.error(split), b.error(split)
    if ea is None or eb is None:
        return None
    untrained = _untrained((a, b), chance_margin)
    return compared(welch(a.name, ea, b.name, eb), relative_bound(eb, margin),
                    untrained_clause(untrained) if untrained else "")  # fmt: skip


def compare_depth_effect(
    deep_bn: Condition, shallow_bn: Condition, deep: Condition, shallow: Condition, margin: float,
    chance_margin: float,
) -> Compared | None:  # fmt: skip
    """Does batch norm change what depth does to the test error? (deep+BN − shallow+BN) − (deep − shallow):
    Welch over the per-seed depth effects of the two settings; the same within ``margin`` × the shallow
    BN-free net's test error (the paper's reference net)."""
    with_bn = depth_effect(deep_bn, shallow_bn, "test")
    without = depth_effect(deep, shallow, "test")
    if with_bn is None or without is None:
        return None
    d = welch(f"{deep_bn.name} − {shallow_bn.name}", with_bn, f"{deep.name} − {shallow.name}", without)
    untrained = _untrained((deep_bn, shallow_bn, deep, shallow), chance_margin)
    return compared(d, relative_bound(shallow.error("test"), margin),
                    untrained_clause(untrained) if untrained else "")  # fmt: skip


def depth_pairs(steps: list[Net]) -> list[tuple[Net, Net]]:
    """(deeper, shallower): every deeper net against the shallowest, then each consecutive step not already
    listed (A, D, E: D vs A, E vs A, E vs D)."""
    if len(steps) < 2:
        return []
    pairs = [(deep, steps[0]) for deep in steps[1:]]
    return pairs + [(b, a) for a, b in zip(steps[1:], steps[2:], strict=False)]


# -------------------------------------------------------------------------------------- stage 2: sentences
def _paper_difference(a: str, b: str) -> str:
    """The paper's two errors and their difference: ``D 27.0% vs A 29.6%, −2.6 points``."""
    return f"{a} {TABLE3[a]:.1f}% vs {b} {TABLE3[b]:.1f}%, {TABLE3[a] - TABLE3[b]:+.1f} points"


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
        "higher": f"1×1 convs are worse than 3×3 at equal depth, as in {PAPER} ({_paper_difference('C', 'D')})",
        "lower": f"1×1 convs are better than 3×3 here, unlike {PAPER} ({_paper_difference('C', 'D')})",
    }.get(c.outcome)


def _points(x: float) -> str:
    """A signed difference of error rates in points; "—" when there is none (no seed to average)."""
    return f"{100 * x:+.1f} points" if math.isfinite(x) else "—"


def effect_sentence(c: Compared) -> str:
    """Does batch norm change the depth effect (a difference of per-seed differences)?"""
    d = c.difference
    values = f"{_points(d.a.mean)} with batch norm vs {_points(d.b.mean)} without, " + difference_ci(
        d.difference, d.ci.low if d.ci else None, d.ci.high if d.ci else None, reason=d.no_interval
    )
    head = (
        f"Test error change with depth, {d.a_label} against {d.b_label}: {values}; Welch t over the per-seed "
        f"depth effects, {pair_seeds_text(d)}"
    )
    if c.withheld:
        return f"{head}: {c.withheld}."
    bound = f"±{100 * c.equivalence.bound:.2g} points" if c.equivalence else "a bound"
    verdict = {
        "lower": "batch norm makes depth help more (or hurt less)",
        "higher": "batch norm makes depth help less (or hurt more)",
        "equivalent": f"batch norm does not change the effect of depth by more than {bound}{tost_text(c)}",
        "unknown": "unknown: non-finite values",
    }.get(
        c.outcome,
        f"whether batch norm changes it is not resolved, nor is the change within {bound}{tost_text(c)}",
    )
    return f"{head}: {verdict}."


def training_sentence(t: Training) -> str:
    errors = ", ".join(pct(e) for e in t.errors)
    if t.untrained == t.seeds:
        head = f"{t.condition} did not train: it never left chance in any seed"
    else:
        head = f"{t.condition} did not train in {t.untrained} of {t.seeds} seeds"
    return (
        f"{head} (final training error {errors}; chance {pct(t.chance)}, and a run ending at {pct(t.threshold)} or "
        f"above did not train). It is reported as not trained, not as degradation, and left out of every "
        f"comparison's verdict."
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
        f"final training error is within {100 * preset.chance_margin:g} points of chance. The seed is the unit: "
        f"each comparison is a difference with its 95% Welch t interval across seeds; errors are called the same "
        f"only within ±{100 * preset.margin:.0f}% of the reference (second-named) net's error, by a TOST. A "
        f"net's convergence compares its running training error over the last 10% of iterations with the 10% "
        f"before (flat within ±{100 * preset.plateau_bound:g} points). The paper's numbers are ImageNet top-1 "
        f"errors: directions are compared, not values. These comparisons are secondary; each question's primary "
        f"test, Holm-adjusted across the questions, is in its answer.",
        "method",
        "end",
        {
            "train_images": train_images,
            "test_images": test_images,
            "steps": last,
            "init": preset.init,
            "warm_start": preset.warm_start,
            "margin": preset.margin,
            "plateau_bound": preset.plateau_bound,
            "chance_margin": preset.chance_margin,
        },  # fmt: skip
        key="method:errors",
        question="depth",
    )


def training_findings(by: dict[Net, Condition], chance_margin: float) -> list[Finding]:
    out = []
    for net, c in by.items():
        t = training(c, chance_margin)
        if t is not None and not t.all_trained:
            numbers = {"errors": list(t.errors), "chance": t.chance, "threshold": t.threshold,
                       "untrained": t.untrained, "seeds": t.seeds}  # fmt: skip
            out.append(Finding(training_sentence(t), "trained", "end", numbers, key=f"trained:{net.label}",
                               question=question_of(net)))  # fmt: skip
    return out


def depth_findings(by: dict[Net, Condition], margin: float, chance_margin: float) -> list[Finding]:
    out = []
    for bn in (False, True):
        for deep, shallow in depth_pairs(ladder(by, bn)):
            for split in ("test", "train_eval"):
                c = compare_errors(by[deep], by[shallow], split, margin, chance_margin)
                if c is None:
                    continue
                text = error_sentence(c, NOUN[split], _setting(bn), deep.named, shallow.named)
                key = f"{KEY[split]}:{deep.label}:{shallow.label}"
                clause = None if c.withheld else depth_clause(c, deep, shallow, split)
                out.append(
                    _finding(_with(text, clause), "depth", c, key, "bn" if bn else "depth", split=split)
                )
    return out


def bn_effect_findings(by: dict[Net, Condition], margin: float, chance_margin: float) -> list[Finding]:
    """The depth effect with BN against without, for each deeper net both settings trained, vs A."""
    out = []
    plain, with_bn = ladder(by, False), ladder(by, True)
    if not plain or not with_bn or plain[0].config != with_bn[0].config:
        return out
    for deep in with_bn[1:]:
        twin = Net(deep.config, False)
        if twin not in by:
            continue
        c = compare_depth_effect(by[deep], by[with_bn[0]], by[twin], by[plain[0]], margin, chance_margin)
        if c is not None:
            key = f"depth_effect:{deep.label}-{with_bn[0].label}:{twin.label}-{plain[0].label}"
            out.append(_finding(effect_sentence(c), "bn", c, key, "bn"))
    return out


PAIRS = (
    ("A-LRN", "A", "lrn", lrn_clause, "LRN after the first conv"),
    ("C", "D", "1x1", conv1x1_clause, "1×1 convs as the last conv of stages 3–5, vs 3×3, at equal depth"),
)


def pair_findings(by: dict[Net, Condition], margin: float, chance_margin: float) -> list[Finding]:
    """A-LRN vs A and C vs D on the test error, for each normalisation both sides of a pair were run."""
    out = []
    for a, b, topic, clause, what in PAIRS:
        for bn in (False, True):
            na, nb = Net(a, bn), Net(b, bn)
            if na not in by or nb not in by:
                continue
            c = compare_errors(by[na], by[nb], "test", margin, chance_margin)
            if c is None:
                continue
            text = error_sentence(c, "test error", f"{_setting(bn)} ({what})", na.label, nb.label)
            out.append(_finding(_with(text, None if c.withheld else clause(c)), topic, c,
                                f"test_error:{na.label}:{nb.label}", topic))  # fmt: skip
    return out


def compute_findings(result: StudyResult) -> list[Finding]:
    """The study's findings, in reading order: status, method, which nets did not train, depth without and
    with BN (test and training error), what BN changes, LRN and 1×1, convergence and stalled seeds."""
    if not any(r.final for r in result.runs):
        return [Finding("No run has logged an error yet, so there is nothing to compare.", "status", "end")]
    out: list[Finding] = status_findings(result)  # unfinished runs; diverged seeds, left out and counted
    preset = preset_of(result)
    margin, chance_margin = preset.margin, preset.chance_margin
    by = nets(result)
    out.append(method_finding(result))
    out += training_findings(by, chance_margin)
    out += depth_findings(by, margin, chance_margin)
    out += bn_effect_findings(by, margin, chance_margin)
    out += pair_findings(by, margin, chance_margin)
    out += net_findings([(n.label, c, question_of(n)) for n, c in by.items()], preset.plateau_bound)
    return out
