"""The vgg-depth study's questions and their answers, drawn from its keyed findings.

A verdict is about the paper's claim: ``supported`` or ``contradicted`` only from resolved findings, else
``not resolved``. A depth answer is not resolved while a net it compares did not train, or while a net was
not shown to have converged (its plateau check did not find the last 10% of iterations' change within the
bound: still falling, or not resolved). "The same within the bound" does not decide
a directional claim whose size on ImageNet says nothing of its size here (depth, 1×1), but it does support
"LRN does not improve the error". The key numbers come with their 95% CIs across seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from depthlab.present.format import difference_ci
from depthlab.studies.declare import Answer, Finding
from depthlab.studies.results import StudyResult
from depthlab.studies.vgg_depth.evidence import ladder, nets
from depthlab.studies.vgg_depth.findings import PAPER, p_value

__all__ = ["QUESTIONS", "CLAIMS", "compute_answers"]

QUESTIONS = {
    "depth": "Without batch norm (the paper's nets), does going from 11 to 16 to 19 weight layers lower the test "
    "error, when every net trains?",
    "bn": "With batch norm after every conv, does depth lower the test error — and does batch norm change the "
    "effect of depth?",
    "lrn": "Does local response normalisation fail to improve the test error (A-LRN vs A)?",
    "1x1": "At equal depth, are 1×1 convs worse than 3×3 (C vs D)?",
}
CLAIMS = {
    "depth": f"{PAPER}: the error decreases with depth, from A (11 layers, 29.6%) to D (16, 27.0%) and E (19, "
    "27.3%), saturating at 19 layers. The paper trained the deeper nets by starting them from A's weights "
    "(§3.1), and notes that Glorot initialisation trains them without it.",
    "bn": f"{PAPER} has no batch norm (it predates it); its claim that depth lowers the error, asked of the "
    "same nets with BN after every conv, which Ioffe & Szegedy 2015 introduced to let deep nets train from a "
    "plain initialisation.",
    "lrn": f"{PAPER}: A-LRN 29.7% vs A 29.6% — LRN does not improve the error (§4.1).",
    "1x1": f"{PAPER}: C 28.1% vs D 27.0% — at equal depth, 1×1 convs are worse than 3×3: spatial context "
    "matters beyond the extra non-linearity (§4.1).",
}


def _ci(numbers: Mapping[str, Any]) -> tuple[float | None, float | None]:
    ci = numbers.get("ci")
    return (ci["low"], ci["high"]) if ci else (None, None)


def _difference(f: Finding) -> str:
    """``E vs A −1.2 points [..] (lower)``."""
    n = f.numbers
    low, high = _ci(n)
    test = n.get("paired_test")
    mc = f", McNemar {p_value(test['p'])}" if test else ""
    untrained = n.get("did_not_train") or {}
    why = f", {' and '.join(untrained)} did not train" if untrained else ""
    # no interval: why (too few seeds, e.g. after divergence), unless the value itself is unknown
    reason = n.get("no_interval") if f.outcome != "unknown" else None
    return f"{n['a']} vs {n['b']} {difference_ci(n['difference'], low, high, reason=reason)} ({f.outcome}{mc}{why})"


def _seeds(fs: Sequence[Finding]) -> str:
    counts = sorted({int(f.numbers[k]) for f in fs for k in ("a_seeds", "b_seeds") if k in f.numbers})
    return "/".join(map(str, counts)) or "?"


def _depth(by: Mapping[str, Finding], result: StudyResult, bn: bool) -> Answer | None:
    steps = ladder(nets(result), bn)
    if len(steps) < 2:
        return None
    base = steps[0].label
    vs_base = [by.get(f"test_error:{deep.label}:{base}") for deep in steps[1:]]
    found = [f for f in vs_base if f is not None]
    if not found:
        return None
    steps_test = [f for k, f in by.items() if k.startswith("test_error:") and f.question == ("bn" if bn else "depth")
                  and f not in found and f.topic == "depth"]  # fmt: skip
    plateaus = [
        f for k, f in by.items() if k.startswith("plateau:") and f.question == ("bn" if bn else "depth")
    ]
    untrained = [
        f for k, f in by.items() if k.startswith("trained:") and f.question == ("bn" if bn else "depth")
    ]
    outcomes = {f.outcome for f in found}
    verdict = "not resolved"
    if len(found) == len(vs_base) and outcomes == {"lower"}:
        verdict = "supported"
    elif "higher" in outcomes:
        verdict = "contradicted"
    if untrained or any(f.outcome != "equivalent" for f in plateaus):
        # A net at chance, or one whose training error has not been shown to plateau (still falling, or a
        # change the TOST cannot bound), cannot carry a depth verdict: Table 3 compares converged nets.
        verdict = "not resolved"
    numbers = "test error: " + "; ".join(_difference(f) for f in (*found, *steps_test))
    numbers += f" (Welch t, {_seeds(found)} seeds)"
    if untrained:
        numbers += "; did not train: " + ", ".join(
            f"{str(f.key).split(':', 1)[1]} ({f.numbers['untrained']} of {f.numbers['seeds']} seeds)"
            for f in untrained
        )
    if plateaus:
        falling = [str(f.key).split(":", 1)[1] for f in plateaus if f.outcome == "lower"]
        flat = sum(f.outcome == "equivalent" for f in plateaus)
        numbers += f"; plateau reached (TOST) by {flat} of {len(plateaus)} trained nets"
        numbers += f", still falling: {', '.join(falling)}" if falling else ""
        open_ = [str(f.key).split(":", 1)[1] for f in plateaus if f.outcome not in ("equivalent", "lower")]
        numbers += f", plateau not resolved: {', '.join(open_)}" if open_ else ""
    keys = tuple(f.key for f in (*found, *steps_test, *untrained, *plateaus))
    if bn:
        effects = [f for k, f in by.items() if k.startswith("depth_effect:")]
        if effects:
            numbers += "; does BN change the depth effect on test error: " + "; ".join(
                map(_difference, effects)
            )
            keys += tuple(f.key for f in effects)
    qid = "bn" if bn else "depth"
    return Answer(qid, QUESTIONS[qid], verdict, numbers, CLAIMS[qid], keys)


def _pair(by: Mapping[str, Finding], qid: str, key: str, verdicts: Mapping[str, str]) -> Answer | None:
    f = by.get(key)
    if f is None:
        return None
    verdict = verdicts.get(str(f.outcome), "not resolved")
    eq = f.numbers.get("equivalence") or {}
    tost = f"; TOST against ±{100 * eq['bound']:g} points: {p_value(eq['p'])}" if eq else ""
    numbers = f"test error: {_difference(f)} (Welch t, {_seeds([f])} seeds{tost})"
    return Answer(qid, QUESTIONS[qid], verdict, numbers, CLAIMS[qid], (f.key,))


def compute_answers(result: StudyResult, findings: Sequence[Finding]) -> list[Answer]:
    """One answer per question with evidence; LRN and 1×1 are asked of the paper's nets (no BN)."""
    by = {f.key: f for f in findings if f.key}
    answers = [
        _depth(by, result, bn=False),
        _depth(by, result, bn=True),
        # LRN "does not improve": supported by a resolved rise or by equivalence, contradicted by a fall.
        _pair(
            by,
            "lrn",
            "test_error:A-LRN:A",
            {"higher": "supported", "equivalent": "supported", "lower": "contradicted"},
        ),  # fmt: skip
        _pair(by, "1x1", "test_error:C:D", {"higher": "supported", "lower": "contradicted"}),
    ]
    return [a for a in answers if a is not None]
