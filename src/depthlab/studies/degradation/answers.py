"""The degradation study's questions, each answered from its findings (read by key, never re-derived).

A verdict is about the claim in ``paper``: ``supported`` or ``contradicted`` only from resolved comparisons
(or, for the vanishing-gradient question, resolved gradient outcomes), otherwise ``not resolved``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from depthlab.present.format import difference_ci
from depthlab.studies.declare import Answer, Finding
from depthlab.studies.degradation.findings import NOT_VANISHING
from depthlab.studies.results import StudyResult

__all__ = ["answers"]


def _line(
    f: Finding | None, scale: float = 100.0, unit: str = "points", digits: int = 1, log: bool = False
) -> str:
    """ "a x vs b y: +d points, 95% CI [l, h] (outcome, n seeds each; McNemar p)" from a comparison finding's
    numbers (``scale`` 100: fractions written as percentages and points)."""
    if f is None:
        return ""
    n = f.numbers
    ci = n.get("ci") or {}
    a, b = n.get("a_seeds"), n.get("b_seeds")
    seeds = f"{a} seed{'s' if a != 1 else ''} each" if a == b else f"{a} and {b} seeds"
    why = n.get("no_interval") if f.outcome != "unknown" else None
    text = difference_ci(float(n["difference"]), ci.get("low"), ci.get("high"), scale=scale, unit=unit,
                         digits=digits, reason=why)  # fmt: skip

    def value(x: float) -> str:
        if not math.isfinite(x):
            return "unknown"  # a non-finite value (read back from null)
        if log:  # the comparison is of log10 values: write the geometric means
            return f"{10**x:.3g}"
        return f"{scale * x:.{digits}f}%" if scale == 100.0 else f"{x:.{max(digits, 2)}f}"

    def mean(side: str) -> str:
        # "—": no seed left to average (every one diverged); "unknown": a non-finite value
        return "—" if n.get(f"{side}_seeds") == 0 else value(float(n[f"{side}_mean"]))

    test = n.get("paired_test")
    mcnemar = (f"; McNemar p = {test['p']:.2g}" if test["p"] > 0 else "; McNemar p < 1e-300") if test else ""
    return (
        f"{n['a']} {mean('a')} vs {n['b']} {mean('b')}: "
        f"{text.removeprefix('difference ')} ({f.outcome}, {seeds}{mcnemar})"
    )


def _by_key(findings: Sequence[Finding]) -> Mapping[str, Finding]:
    return {f.key: f for f in findings if f.key}


def _find(by: Mapping[str, Finding], prefix: str) -> Finding | None:
    """The comparison whose key starts with ``prefix`` and names the most distant depths (the last listed)."""
    hits = [f for k, f in by.items() if k.startswith(prefix)]
    return hits[-1] if hits else None


def _deepest_pair(by: Mapping[str, Finding], kind: str, a: str, b: str) -> Finding | None:
    """The ``kind`` comparison of family ``a``'s deepest net with family ``b``'s (deepest or shallowest)."""
    keys = [k for k in by if k.startswith(f"{kind}:{a}-")]
    matches = [k for k in keys if k.split(":")[2].startswith(f"{b}-")]
    if not matches:
        return None

    def depths(k: str) -> tuple[int, int]:
        _, x, y = k.split(":")
        return int(x.split("-")[1]), -int(y.split("-")[1])

    return by[max(matches, key=depths)]


def _verdict(outcome: str | None, expected: str) -> str:
    if outcome == expected:
        return "supported"
    if outcome in ("higher", "lower"):
        return "contradicted"
    return "not resolved"


def _degradation(by: Mapping[str, Finding]) -> Answer | None:
    f = _deepest_pair(by, "train_error", "plain", "plain")
    if f is None:
        return None
    plateaus = [g for k, g in by.items() if k.startswith("plateau:")]
    still = [g.key.split(":")[1] for g in plateaus if g.outcome == "lower"]
    numbers = _line(f) + (f"; still falling over the last 10%: {', '.join(still)}" if still else "")
    return Answer("degradation", "Does depth raise training error in plain nets?", _verdict(f.outcome, "higher"),
                  numbers, "He et al. 2015 (Fig. 6 left, Table 6): yes — plain-56 ends above plain-20 on training "
                  "error (the degradation problem)", (f.key, *(g.key for g in plateaus)))  # fmt: skip


def _vanishing(by: Mapping[str, Finding]) -> Answer | None:
    verdict_f = next((f for k, f in by.items() if k.startswith("vanishing:")), None)
    if verdict_f is None:
        return None
    outcomes: dict[str, Any] = dict(verdict_f.numbers.get("outcomes", {}))
    known = [o for o in outcomes.values() if o is not None]
    deg = _deepest_pair(by, "train_error", "plain", "plain")
    if deg is None or deg.outcome != "higher" or not known:
        verdict = "not resolved"  # no degradation (or no gradient measured) to explain
    elif all(o == "vanishing" for o in known):
        verdict = "supported"
    elif all(o in NOT_VANISHING for o in known):
        verdict = "contradicted"
    else:
        verdict = "not resolved"
    name = verdict_f.key.split(":", 1)[1]
    settings = {"init_bn": "at init", "during_bn": "during training"}
    growth = [by[k] for k in (f"grad_growth:{s}:{name}" for s in settings) if k in by]
    states = [f"{v} {w}" for w, v in (("at init", outcomes.get("init")), ("during training", outcomes.get("during")))
              if v]  # fmt: skip
    parts = [f"{name} with BN: gradient {', '.join(states)}"]
    for g in growth:
        ci = g.numbers.get("ci") or {}
        if ci:
            parts.append(f"growth toward the input {settings[g.key.split(':')[1]]} {g.numbers['difference']:+.3f} "
                         f"log10 per block, 95% CI [{ci['low']:+.3f}, {ci['high']:+.3f}]")  # fmt: skip
    return Answer("vanishing", "Do vanishing gradients explain the degradation (nets with BN)?", verdict,
                  "; ".join(parts), "Lecture notes: yes. He et al. 2015 (§4.1): unlikely — with BN the forward and "
                  "backward signals are healthy. The verdict is about the lecture notes' claim.",
                  (verdict_f.key, *(g.key for g in growth)))  # fmt: skip


def _shortcuts(by: Mapping[str, Finding]) -> Answer | None:
    f = _deepest_pair(by, "train_error", "ResNet", "plain")
    if f is None:
        return None
    return Answer("shortcuts", "Do shortcuts remove the degradation: does the deepest ResNet end below its plain "
                  "twin on training error?", _verdict(f.outcome, "lower"), _line(f),
                  "He et al. 2015 (Fig. 6, Table 6): yes — ResNet-56 ends far below plain-56", (f.key,))  # fmt: skip


def _deeper_resnet(by: Mapping[str, Finding]) -> Answer | None:
    """The weaker half of Fig. 6 right: the deeper ResNet does not end above the shallower one. Supported by a
    resolved lower error or by equivalence within the stated bound; contradicted only by a resolved higher."""
    f = _deepest_pair(by, "train_error", "ResNet", "ResNet")
    if f is None:
        return None
    verdict = (
        "supported"
        if f.outcome in ("lower", "equivalent")
        else "contradicted"
        if f.outcome == "higher"
        else ("not resolved")
    )
    bound = (f.numbers.get("equivalence") or {}).get("bound")
    tail = f" (equivalence bound ±{100 * bound:.0f} points)" if bound else ""
    return Answer("deeper_resnet", "Does the deepest ResNet end no higher than the shallowest on training error?",
                  verdict, _line(f) + tail,
                  "He et al. 2015 (Fig. 6 right): yes, lower — ResNet-56 below ResNet-20 throughout training",
                  (f.key,))  # fmt: skip


def _test_error(by: Mapping[str, Finding]) -> Answer | None:
    f = _deepest_pair(by, "test_error", "ResNet", "ResNet")
    if f is None:
        return None
    other = _deepest_pair(by, "test_error", "ResNet", "plain")
    numbers = _line(f) + (f"; {_line(other)}" if other is not None else "")
    evidence = (f.key,) + ((other.key,) if other is not None else ())
    return Answer("test_error", "Does the deeper ResNet end below the shallower one on test error?",
                  _verdict(f.outcome, "lower"), numbers,
                  "He et al. 2015 (Table 6, CIFAR-10): yes — ResNet-56 6.97% vs ResNet-20 8.75% test error",
                  evidence)  # fmt: skip


def _shattered(by: Mapping[str, Finding]) -> Answer | None:
    f = _find(by, "shattered:bn:")
    if f is None:
        return None
    twin = _find(by, "shattered:no_bn:")
    numbers = _line(f, scale=1.0, unit="", digits=2) + (
        f"; BN-free twins: {_line(twin, scale=1.0, unit='', digits=2)}" if twin is not None else ""
    )
    evidence = (f.key,) + ((twin.key,) if twin is not None else ())
    return Answer("shattered", "Are residual gradients less shattered at initialisation (lag-1 autocorrelation "
                  "along a line of inputs, with BN)?", _verdict(f.outcome, "higher"), numbers,
                  "Balduzzi et al. 2017: yes — a plain net's gradients decorrelate with depth like white noise, a "
                  "ResNet's stay correlated", evidence)  # fmt: skip


def _responses(by: Mapping[str, Finding]) -> Answer | None:
    f = _deepest_pair(by, "response", "ResNet", "plain")
    if f is None:
        return None
    numbers = _line(f, scale=1.0, unit="in log10", digits=2, log=True)
    return Answer("responses", "Do residual layers respond more weakly than plain ones after training (Fig. 7)?",
                  _verdict(f.outcome, "lower"), numbers,
                  "He et al. 2015 (Fig. 7): yes — ResNets' layer responses have smaller std than plain nets'",
                  (f.key,))  # fmt: skip


def answers(result: StudyResult, findings: Sequence[Finding]) -> list[Answer]:
    """The study's questions, in order, answered from ``findings``; a question whose evidence is missing is
    left out."""
    by = _by_key(findings)
    out = [
        a(by)
        for a in (_degradation, _vanishing, _shortcuts, _deeper_resnet, _test_error, _shattered, _responses)
    ]
    return [a for a in out if a is not None]
