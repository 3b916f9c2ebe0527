"""The inception-aux study's questions and their answers, drawn from its keyed findings.

A verdict is about the paper's claim: ``supported`` or ``contradicted`` only from resolved findings, else
``not resolved``. The key numbers come with their 95% CIs across seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from depthlab.present.format import difference_ci, pct, sci
from depthlab.studies.declare import Answer, Finding
from depthlab.studies.inception_aux.evidence import groups
from depthlab.studies.inception_aux.findings import GOING_DEEPER, RETHINKING
from depthlab.studies.inception_aux.probe import LOWER_TAPS, tap_label
from depthlab.studies.results import StudyResult

__all__ = ["QUESTIONS", "compute_answers"]

QUESTIONS = {
    "final": "Do the auxiliary heads change the final accuracy?",
    "gradient": "Do the auxiliary losses change the gradient that reaches the lower layers?",
    "early": "Do the auxiliary losses speed up early training?",
}
PAPER = {
    "final": f"{RETHINKING}: near the end of training the net with auxiliary branches overtakes the one without "
    "and reaches a slightly higher accuracy plateau; the heads act as a regulariser.",
    "gradient": f"{GOING_DEEPER}: the auxiliary classifiers were added to increase the gradient signal that "
    "gets propagated back to the lower layers.",
    "early": f"{RETHINKING}: they did not improve convergence early in training; with and without them, "
    "training progressed virtually identically until high accuracy.",
}


def _ci(numbers: Mapping[str, Any]) -> tuple[float | None, float | None]:
    ci = numbers.get("ci")
    return (ci["low"], ci["high"]) if ci else (None, None)


def _why(f: Finding) -> str | None:
    """Why a comparison has no interval (too few seeds, e.g. after divergence), unless its value is unknown."""
    return f.numbers.get("no_interval") if f.outcome != "unknown" else None


def _error_numbers(f: Finding) -> str:
    n = f.numbers
    low, high = _ci(n)
    test = n.get("paired_test")
    mc = f", McNemar p = {test['p']:.2g}" if test else ""
    return (
        f"{n['a']} {pct(n['a_mean'])} vs {n['b']} {pct(n['b_mean'])}, "
        f"{difference_ci(n['difference'], low, high, reason=_why(f))}"
        f" ({n['a_seeds']} and {n['b_seeds']} seeds{mc}; {f.outcome})"
    )


def _plateau_numbers(f: Finding) -> str:
    n = f.numbers
    low, high = _ci(n)
    name = str(n["a"]).rsplit(" at ", 1)[0]
    return f"{name} {difference_ci(n['difference'], low, high, reason=_why(f))} ({f.outcome})"


def _share_numbers(f: Finding) -> str:
    n = f.numbers
    low, high = _ci(n)
    bound = float(n["bound"])
    interval = (
        f" [{sci(bound * 10**low)}, {sci(bound * 10**high)}]" if low is not None and high is not None else ""
    )
    return f"{sci(10 ** n['a_mean'])}{interval}"


def _cosine_numbers(f: Finding) -> str:
    n = f.numbers
    low, high = _ci(n)
    interval = f" [{low:+.2f}, {high:+.2f}]" if low is not None and high is not None else ""
    return f"{n['a_mean']:+.2f}{interval}"


def _final(by: Mapping[str, Finding], aux: str, base: str) -> Answer | None:
    test = by.get(f"test_error:{aux}:{base}")
    if test is None:
        return None
    plateaus = [f for k, f in by.items() if k.startswith("plateau:")]
    falling = [f for f in plateaus if f.outcome == "lower"]
    verdict = {"lower": "supported", "higher": "contradicted"}.get(str(test.outcome), "not resolved")
    if falling:  # the claim is about the end of training: a net still improving has not reached it
        verdict = "not resolved"
    numbers = f"test error: {_error_numbers(test)}"
    if plateaus:
        numbers += "; training error over the last 10% of iterations: " + ", ".join(
            map(_plateau_numbers, plateaus)
        )
    keys = (test.key, *(f.key for f in plateaus))
    return Answer("final", QUESTIONS["final"], verdict, numbers, PAPER["final"], keys)


def _gradient(by: Mapping[str, Finding]) -> Answer | None:
    shares = [by.get(f"aux_share:{tap_label(t)}:during") for t in LOWER_TAPS]
    cosines = [by.get(f"aux_cosine:{tap_label(t)}:during") for t in LOWER_TAPS]
    found = [f for f in shares if f is not None]
    if not found:
        return None
    outcomes = {f.outcome for f in found}
    verdict = "not resolved"
    if len(found) == len(LOWER_TAPS) and outcomes == {"higher"}:
        verdict = "supported"
    elif len(found) == len(LOWER_TAPS) and outcomes == {"lower"}:
        verdict = "contradicted"
    w = found[0].numbers.get("bound")
    parts = [f"{tap_label(t)} {_share_numbers(f)}" for t, f in zip(LOWER_TAPS, shares, strict=True) if f]
    cos = [f"{tap_label(t)} {_cosine_numbers(f)}" for t, f in zip(LOWER_TAPS, cosines, strict=True) if f]
    seeds = found[0].numbers.get("a_seeds")
    numbers = (
        f"aux share ‖w·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ during training (bound {w:g}): {', '.join(parts)}; cosine "
        f"between the two gradients: {', '.join(cos)} (geometric mean and mean over {seeds} seeds, 95% CIs)"
    )
    keys = tuple(f.key for f in (*found, *(c for c in cosines if c is not None)))
    return Answer("gradient", QUESTIONS["gradient"], verdict, numbers, PAPER["gradient"], keys)


def _early(by: Mapping[str, Finding], aux: str, base: str) -> Answer | None:
    f = by.get(f"early_train_error:{aux}:{base}")
    if f is None:
        return None
    verdict = {"equivalent": "supported", "lower": "contradicted", "higher": "contradicted"}.get(
        str(f.outcome), "not resolved"
    )
    bound = f.numbers.get("equivalence") or {}
    within = f"; same within ±{100 * bound['bound']:g} points by TOST: p = {bound['p']:.2g}" if bound else ""
    numbers = (
        f"mean running training error, iterations 1–{f.numbers.get('step')}: {_error_numbers(f)}{within}"
    )
    return Answer("early", QUESTIONS["early"], verdict, numbers, PAPER["early"], (f.key,))


def compute_answers(result: StudyResult, findings: Sequence[Finding]) -> list[Answer]:
    """One answer per question with evidence: the aux condition against weight 0 (else the net without
    heads)."""
    g = groups(result)
    if g.aux is None or not g.baselines:
        return []
    by = {f.key: f for f in findings if f.key}
    aux, base = g.aux.name, g.baselines[0].name
    answers = [_final(by, aux, base), _gradient(by), _early(by, aux, base)]
    return [a for a in answers if a is not None]
