"""What every study shares (issue 23): the one convergence rule, the budget an answer holds for, outlying
seeds, comparisons written alike, and the answers' primary tests adjusted together.

* **Convergence.** A net's running training error (training mode: the augmented batches since the
  previous logged row) averaged over the logged rows of the last 10% of iterations, against the 10% before,
  paired by seed (:func:`depthlab.stats.convergence`): ``still falling`` (the 95% CI of the change lies
  below 0, however small the fall), ``rising``, ``flat`` (the change within ±the preset's
  ``plateau_bound`` by TOST) or ``not resolved``. A net that still falls does not stop an answer: every
  end-of-training answer says what it was measured after (:func:`budget`) and the state of each net it
  compares, so that it reads as what it is — a statement about that budget.
* **One primary test per question.** An answer rests on one :class:`~depthlab.stats.ClaimTest`; a study's
  answers are Holm-adjusted together (:func:`finalize`) and a verdict is ``supported`` or ``contradicted``
  only when the adjusted p-value is below 0.05. Every other finding is secondary: its 95% interval
  describes, it is not corrected for the number of comparisons.
* **The seed is the unit.** Every comparison is across seeds (Welch's t, or paired t where both sides
  come from the same runs); no test treats the images of a few trained nets as the sample.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from depthlab.i18n import N_, _
from depthlab.present.format import difference_ci, p_text, pct, sci
from depthlab.stats import (
    LEVEL,
    ClaimTest,
    Convergence,
    Difference,
    Equivalence,
    Estimate,
    bounded_outcome,
    convergence,
    equivalence,
    holm,
    outlying,
)
from depthlab.studies.declare import Answer, Finding
from depthlab.studies.results import Condition, StudyResult

__all__ = [
    "PLATEAU_FRACTION",
    "ALPHA",
    "STATE_OUTCOME",
    "ConvergenceReading",
    "convergence_reading",
    "convergence_finding",
    "budget",
    "states_text",
    "pair_seeds_text",
    "Compared",
    "compared",
    "relative_bound",
    "tost_text",
    "error_sentence",
    "comparison_numbers",
    "margin_text",
    "test_text",
    "outlier_finding",
    "net_findings",
    "answer",
    "finalize",
    "by_key",
]

PLATEAU_FRACTION = (
    0.1  # the windows of the convergence reading: the last 10% of iterations and the 10% before
)
ALPHA = 1.0 - LEVEL  # a verdict needs the Holm-adjusted p-value of its primary test below this
# A convergence state as a finding's outcome (what a replication compares).
STATE_OUTCOME = {
    "still falling": "lower",
    "rising": "higher",
    "flat": "equivalent",
    "not resolved": "not resolved",
    "unknown": "unknown",
}


# ------------------------------------------------------------------------------------------ convergence
@dataclass(frozen=True)
class ConvergenceReading:
    """The convergence of one condition: its running training error over the rows logged in the window
    ``(window[1], window[2]]`` (the last 10% of iterations) against ``(window[0], window[1]]``."""

    label: str
    steps: int
    window: tuple[int, int, int]
    result: Convergence

    @property
    def state(self) -> str:
        return self.result.state


def convergence_reading(c: Condition, label: str, bound: float) -> ConvergenceReading | None:
    """The convergence reading of condition ``c`` (module docstring) against ``bound`` (a change of the
    error, as a fraction, per 10% of iterations); ``None`` when a run has no logged row in either window or
    no seed is left to read (every one diverged)."""
    steps = max((int(r.config.get("steps") or r.step) for r in c.runs), default=0)
    span = max(1, round(PLATEAU_FRACTION * steps))
    a, b = steps - 2 * span, steps - span
    befores: list[float] = []
    afters: list[float] = []
    for r in c.runs:
        curve = r.curves.get("train", ())
        before = [e for s, e in curve if a < s <= b]
        after = [e for s, e in curve if b < s <= steps]
        if not before or not after:
            return None
        befores.append(statistics.fmean(before))
        afters.append(statistics.fmean(after))
    e_before, e_after = c.estimate(befores), c.estimate(afters)
    if e_before is None or e_after is None or not e_after.values:
        return None
    return ConvergenceReading(label, steps, (a, b, steps), convergence(label, e_before, e_after, bound))


def convergence_finding(r: ConvergenceReading, question: str) -> Finding:
    """The sentence of a convergence reading, keyed ``convergence:LABEL``."""
    d = r.result.change
    a, b, end = r.window
    e = r.result.equivalence
    interval = difference_ci(
        d.difference,
        d.ci.low if d.ci else None,
        d.ci.high if d.ci else None,
        reason=d.no_interval if not d.unknown else None,
    )
    tost = (
        _("flat needs the change within ±{bound} points: TOST 90% CI [{low:+.1f}, {high:+.1f}]").format(
            bound=f"{100 * r.result.bound:g}", low=100 * e.ci.low, high=100 * e.ci.high
        )
        if e.ci is not None
        else _("flat needs the change within ±{bound} points").format(bound=f"{100 * r.result.bound:g}")
    )
    text = _(
        "Convergence, {label}: the running training error (training mode) over iterations {b1}–{end} (the last "
        "{pct}%) is {after} vs {before} over {a1}–{b} ({interval}, paired t, {seeds}): {state} ({tost})."
    ).format(
        label=r.label,
        b1=b + 1,
        end=end,
        pct=f"{100 * PLATEAU_FRACTION:.0f}",
        after=pct(r.result.change.a.mean),
        before=pct(r.result.change.b.mean),
        a1=a + 1,
        b=b,
        interval=interval,
        seeds=pair_seeds_text(d),
        state=_(r.state),
        tost=tost,
    )
    numbers = {**r.result.to_dict(), "window": list(r.window)}
    return Finding(text, "convergence", "end", numbers, outcome=STATE_OUTCOME[r.state],
                   key=f"convergence:{r.label}", question=question)  # fmt: skip


def budget(result: StudyResult) -> str:
    """What an end-of-training answer holds for: "after 240 iterations of batch 128 (15.4 passes over
    2,000 training images)", read from the runs' configurations and summaries ("" without runs)."""
    if not result.runs:
        return ""
    steps = max(int(r.config.get("steps") or r.step) for r in result.runs)
    batch = max(int(r.config.get("batch_size") or 0) for r in result.runs)
    images = max((int(r.data.get("train") or 0) for r in result.runs), default=0)
    passes = ""
    if images and batch:
        passes = _(" ({passes:.1f} passes over {images:,} training images)").format(
            passes=steps * batch / images, images=images
        )
    if not batch:
        return _("after {steps:,} iterations").format(steps=steps)
    return _("after {steps:,} iterations of batch {batch}").format(steps=steps, batch=batch) + passes


def states_text(states: Mapping[str, str]) -> str:
    """ "plain-20 flat, plain-56 still falling"."""
    return ", ".join(f"{label} {_(state)}" for label, state in states.items())


# ------------------------------------------------------------------------------------------- sentences
def pair_seeds_text(d: Difference) -> str:
    """ "6 seeds each", "5 and 6 seeds": the seeds of both sides of a comparison (one estimate's, with its
    diverged seeds: :func:`depthlab.stats.seeds_text`)."""
    if d.a.seeds == d.b.seeds:
        return (
            _("{n} seed each").format(n=d.a.seeds)
            if d.a.seeds == 1
            else _("{n} seeds each").format(n=d.a.seeds)
        )
    return _("{a} and {b} seeds").format(a=d.a.seeds, b=d.b.seeds)


@dataclass(frozen=True)
class Compared:
    """``a − b`` across seeds (:class:`~depthlab.stats.Difference`) with its TOST where "the same" can be
    said (``equivalence``, against a bound fixed in the preset), and ``withheld``: why no outcome may be drawn
    whatever the numbers say (e.g. a net that did not train), else "".

    ``outcome``: ``not resolved`` when withheld; ``unknown`` for a non-finite value; ``higher``/``lower`` when
    the 95% CI excludes 0; then ``equivalent`` when the TOST holds; else ``not resolved`` (a side with fewer
    than two seeds has no interval)."""

    difference: Difference
    equivalence: Equivalence | None = None
    withheld: str = ""

    @property
    def outcome(self) -> str:
        if self.withheld:
            return "not resolved"
        if self.difference.unknown:
            return "unknown"
        return bounded_outcome(self.difference, self.equivalence)

    def numbers(self) -> dict[str, object]:
        return {
            **self.difference.to_dict(),
            "equivalence": self.equivalence.to_dict() if self.equivalence else None,
            "withheld": self.withheld or None,
            "outcome": self.outcome,
        }


def relative_bound(reference: Estimate | None, margin: float) -> float | None:
    """``margin`` × the reference condition's mean error (the preset's relative margin, in error units);
    ``None`` when the reference has no positive finite mean (no bound, so no equivalence test)."""
    if reference is None or not reference.values or not math.isfinite(reference.mean) or reference.mean <= 0:
        return None
    return margin * reference.mean


def compared(d: Difference, bound: float | None, withheld: str = "") -> Compared:
    """``d`` with its TOST against ``bound`` (none without a bound)."""
    return Compared(d, equivalence(d, bound) if bound else None, withheld)


def tost_text(c: Compared) -> str:
    """ "; TOST against ±1.6 points: p = 0.003" ("" without an equivalence test)."""
    e = c.equivalence
    if e is None:
        return ""
    return "; " + _("TOST against ±{bound} points: {p}").format(bound=f"{100 * e.bound:.2g}", p=p_text(e.p))


def error_sentence(c: Compared, noun: str, setting: str, a: str = "", b: str = "") -> str:
    """One comparison of error rates, without its closing stop: resolved, the same within the bound, not
    resolved, withheld (with the reason), or unknown. ``a``/``b`` name the two sides (default their labels),
    ``setting`` starts the sentence ("At the end", "Without batch norm")."""
    d = c.difference
    a, b = a or d.a_label, b or d.b_label
    values = f"{pct(d.a.mean)} vs {pct(d.b.mean)}, " + difference_ci(
        d.difference, d.ci.low if d.ci else None, d.ci.high if d.ci else None,
        reason=d.no_interval if not d.unknown else None,
    )  # fmt: skip
    basis = _("Welch t, {seeds}").format(seeds=pair_seeds_text(d))
    bound = f"±{100 * c.equivalence.bound:.2g}" if c.equivalence else ""
    fields = {"setting": setting, "a": a, "b": b, "noun": _(noun), "values": values, "basis": basis,
              "bound": bound, "tost": tost_text(c)}  # fmt: skip
    if c.withheld:
        return _("{setting}, {a} vs {b} on {noun} ({values}; {basis}): {why}").format(
            **fields, why=c.withheld
        )
    match c.outcome:
        case "higher":
            return _("{setting}, {a} has higher {noun} than {b} ({values}; {basis})").format(**fields)
        case "lower":
            return _("{setting}, {a} has lower {noun} than {b} ({values}; {basis})").format(**fields)
        case "equivalent":
            return _("{setting}, {a} and {b} have the same {noun} within {bound} points ({values}; {basis}{tost})"
                     ).format(**fields)  # fmt: skip
        case "unknown":
            return _("{setting}, how the {noun} of {a} and {b} compare is unknown: non-finite values ({raw})"
                     ).format(**fields, raw=f"{_sci(d.a)} vs {_sci(d.b)}")  # fmt: skip
    text = _("{setting}, whether {a} has higher or lower {noun} than {b} is not resolved ({values}; {basis})")
    if bound:
        text += _(", nor is equivalence within {bound} points shown{tost}")
    return text.format(**fields)


def comparison_numbers(
    d: Difference,
    outcome: str,
    *,
    scale: float = 100.0,
    unit: str = N_("points"),
    digits: int = 1,
    log: bool = False,
) -> str:
    """The key numbers of one comparison: "plain-56 38.4% vs plain-20 9.1%: +29.3 points, 95% CI [+22.6,
    +36.0] (higher, 6 seeds each)". ``log``: the sides hold log10 values, written as geometric means. ``unit``
    is shown as ``_(unit)``: mark a new one with ``N_``."""

    def value(e: Estimate) -> str:
        if not e.values:
            return "—"  # no seed to average (every one diverged): the interval's reason says so
        if not math.isfinite(e.mean):
            return _("unknown")
        if log:
            return f"{10**e.mean:.3g}"
        return pct(e.mean) if scale == 100.0 else f"{e.mean:.{max(digits, 2)}f}"

    why = d.no_interval if not d.unknown else None
    text = difference_ci(d.difference, d.ci.low if d.ci else None, d.ci.high if d.ci else None, scale=scale,
                         unit=unit, digits=digits, reason=why, head=False)  # fmt: skip
    return _("{a} {a_value} vs {b} {b_value}: {difference} ({outcome}, {seeds})").format(
        a=d.a_label, a_value=value(d.a), b=d.b_label, b_value=value(d.b),
        difference=text, outcome=_(outcome), seeds=pair_seeds_text(d),
    )  # fmt: skip


def _sci(e: Estimate) -> str:
    return ", ".join(sci(v) for v in e.values)


def margin_text(points: float, margin: float, reference: str) -> str:
    """ "margin 1.6 points: 10% of A's error" (``points`` a fraction of error, ``margin`` the preset's)."""
    return _("margin {points:.1f} points: {pct:.0f}% of {reference}'s error").format(
        points=100 * points, pct=100 * margin, reference=reference
    )


def test_text(test: ClaimTest | None, p_holm: float | None, count: int) -> str:
    """ "primary test p = 0.0018, Holm-adjusted over 7 answers p = 0.011"."""
    if test is None:  # not asked: the answer's numbers say why (a net that did not train, nothing to explain)
        return _("no primary test")
    if test.p is None:
        return _("no primary test (too few seeds or a non-finite value)")
    return _("primary test {p}, Holm-adjusted over {count} answers {p_holm}").format(
        p=p_text(test.p), count=count, p_holm=p_text(p_holm)
    )


# -------------------------------------------------------------------------------------------- outliers
STALL_RATIO = 1.5  # fixed in advance: a stalled seed's error is at least 1.5× the other seeds' median


def outlier_finding(c: Condition, split: str, noun: str, question: str, key: str) -> Finding | None:
    """A finding naming the seeds of ``c`` whose final ``split`` error stands out: more than 3 scaled MADs from
    the median (:func:`depthlab.stats.outlying`) *and* at least :data:`STALL_RATIO` times the other seeds'
    median — a seed that fitted far worse than the others, which a mean and its t interval hide — with the
    median and the range of the others; ``None`` when no seed stands out."""
    measured = [(r.seed, r.final[split]) for r in c.runs if r.final.get(split) is not None]
    seeds, values = [s for s, _v in measured], [float(v) for _s, v in measured]  # a seed beside its own value
    if len(values) < 3:
        return None
    far = outlying(values)
    rest = [v for i, v in enumerate(values) if i not in far]
    base = statistics.median(rest) if rest else math.nan
    stalled = [i for i in far if base > 0 and values[i] >= STALL_RATIO * base]
    if not stalled:
        return None
    named = ", ".join(
        _("seed {seed} at {value} ({ratio:.1f}× the others' median)").format(
            seed=seeds[i], value=pct(values[i]), ratio=values[i] / base
        )
        for i in stalled
    )
    text = _(
        "{label}'s {noun} has stalled seeds: {named}, more than 3 scaled MADs from the median {median} of all "
        "seeds (the other {n} seeds {low}–{high}); the mean and its interval describe a mixture, the median "
        "does not."
    ).format(
        label=c.name, noun=_(noun), named=named, median=pct(statistics.median(values)), n=len(rest),
        low=pct(min(rest)), high=pct(max(rest)),
    )  # fmt: skip
    numbers = {"values": values, "seeds": seeds, "outlying": [seeds[i] for i in stalled],
               "median": statistics.median(values)}  # fmt: skip
    return Finding(text, "spread", "end", numbers, key=key, question=question)


def net_findings(nets: Iterable[tuple[str, Condition, str]], plateau_bound: float) -> list[Finding]:
    """For each (label, condition, question): its convergence reading against ``plateau_bound``
    (``convergence:LABEL``), then, for those whose seeds stalled, the spread of the final eval-mode training
    error (``spread:LABEL``)."""
    listed = list(nets)
    out = []
    for label, c, question in listed:
        reading = convergence_reading(c, label, plateau_bound)
        if reading is not None:
            out.append(convergence_finding(reading, question))
    for label, c, question in listed:
        spread = outlier_finding(c, "train_eval", N_("final training error"), question, f"spread:{label}")
        if spread is not None:
            out.append(spread)
    return out


# --------------------------------------------------------------------------------------------- answers
def answer(qid: str, question: str, paper: str, numbers: str, evidence: Sequence[str], test: ClaimTest | None,
           primary: str, *, result: StudyResult | None = None, by: Mapping[str, Finding] | None = None,
           nets: Sequence[str] = ()) -> Answer:  # fmt: skip
    """An answer whose verdict :func:`finalize` draws. An end-of-training answer (``result`` given) carries
    the budget and the state of each net of ``nets`` (labels) that has a convergence finding in ``by``."""
    spent, states = "", {}
    if result is not None:
        spent = budget(result)
        found = {label: (by or {}).get(f"convergence:{label}") for label in nets}
        states = {label: str(f.numbers["state"]) for label, f in found.items() if f is not None}
    return Answer(qid, question, "not resolved", numbers, paper, tuple(evidence), primary, test, budget=spent,
                  states=states)  # fmt: skip


def finalize(answers: Sequence[Answer | None]) -> list[Answer]:
    """The study's answers with their primary tests Holm-adjusted together (``p_holm``) and each verdict
    drawn from its adjusted p-value (:meth:`~depthlab.stats.ClaimTest.verdict`); a question whose evidence
    is missing (``None``) is left out. ``numbers`` gets the test's line."""
    kept = [a for a in answers if a is not None]
    adjusted = holm([a.test.p if a.test is not None else None for a in kept])
    count = sum(p is not None for p in adjusted)
    out = []
    for a, p in zip(kept, adjusted, strict=True):
        verdict = a.test.verdict(p, ALPHA) if a.test is not None else "not resolved"
        numbers = f"{a.numbers}; {test_text(a.test, p, count)}"
        if a.budget:
            numbers += f"; {a.budget}" + (f": {states_text(a.states)}" if a.states else "")
        out.append(dataclasses.replace(a, verdict=verdict, p_holm=p, numbers=numbers))
    return out


def by_key(findings: Sequence[Finding]) -> Mapping[str, Finding]:
    return {f.key: f for f in findings if f.key}
