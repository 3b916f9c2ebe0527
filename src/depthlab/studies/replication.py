"""Does a study's result replicate? Compare the findings of two directories of the same study.

``depthlab replicate DIR_A DIR_B`` reads each directory's ``results.json`` (or the file itself) and, for
every finding of A, matches B's finding with the same ``key``:

* ``agrees`` — A resolved it (higher, lower or equivalent) and B has the same outcome;
* ``not resolved`` — A resolved it, B did not (its CI includes 0, or the numbers were non-finite);
* ``compatible`` — one says "the same within ±bound" (TOST) and the other a resolved difference whose 95% CI
  does not lie wholly beyond that bound: both can be true of one small effect (D+BN − A+BN = +0.3 points,
  CI [−1.3, +2.0], equivalent within ±2; then +1.3, CI [+0.3, +2.3], higher), so neither contradicts the other;
* ``opposite`` — A resolved it one way and B the other way, or one says equivalent and the other a
  difference whose CI lies wholly beyond the bound (or the numbers to tell are missing);
* ``missing`` — B has no finding with that key;
* ``unresolved in A`` — A did not resolve it, so there is nothing to replicate (listed, not judged).

Each question's verdicts are compared the same way. A replication is on *fresh* seeds when the two
directories share no seed; ``fresh`` says whether they do.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlab.studies.engine import StudyError

__all__ = ["Agreement", "AnswerAgreement", "Replication", "replicate", "read_results", "STATUSES"]

STATUSES = ("agrees", "compatible", "not resolved", "opposite", "missing", "unresolved in A")
_RESOLVED = ("higher", "lower", "equivalent")


@dataclass(frozen=True)
class Agreement:
    key: str
    text_a: str
    outcome_a: str | None
    outcome_b: str | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "text_a": self.text_a,
            "outcome_a": self.outcome_a,
            "outcome_b": self.outcome_b,
            "status": self.status,
        }


@dataclass(frozen=True)
class AnswerAgreement:
    id: str
    question: str
    verdict_a: str
    verdict_b: str | None
    status: str  # "agrees", "not resolved", "opposite", "missing", "unresolved in A"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "verdict_a": self.verdict_a,
            "verdict_b": self.verdict_b,
            "status": self.status,
        }


@dataclass(frozen=True)
class Replication:
    study: str
    preset: str | None
    a: str
    b: str
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    findings: tuple[Agreement, ...]
    answers: tuple[AnswerAgreement, ...]

    @property
    def fresh(self) -> bool:
        """True when B ran none of A's seeds."""
        return not set(self.seeds_a) & set(self.seeds_b)

    def counts(self) -> dict[str, int]:
        """How many of A's findings ended in each status."""
        c = Counter(f.status for f in self.findings)
        return {s: c.get(s, 0) for s in STATUSES}

    @property
    def replicated(self) -> bool:
        """Every finding A resolved holds in B with the same outcome, or a compatible one (none opposite, not
        resolved or missing)."""
        return all(f.status in ("agrees", "compatible", "unresolved in A") for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "preset": self.preset,
            "a": self.a,
            "b": self.b,
            "seeds_a": list(self.seeds_a),
            "seeds_b": list(self.seeds_b),
            "fresh_seeds": self.fresh,
            "replicated": self.replicated,
            "counts": self.counts(),
            "answers": [a.to_dict() for a in self.answers],
            "findings": [f.to_dict() for f in self.findings],
        }


def read_results(path: str | Path) -> dict[str, Any]:
    """``results.json`` of a study directory (or the file itself)."""
    p = Path(path)
    file = p / "results.json" if p.is_dir() else p
    if not file.is_file():
        raise StudyError(f"{file} does not exist: run the study (depthlab experiment …) first")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise StudyError(f"{file} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "evidence" not in data:
        raise StudyError(f"{file} is not a depthlab results.json (no 'evidence' list)")
    return data


def _bound(numbers: Mapping[str, Any]) -> float | None:
    eq = numbers.get("equivalence")
    bound = eq.get("bound") if isinstance(eq, Mapping) else None
    return float(bound) if isinstance(bound, int | float) else None


def _beyond(numbers: Mapping[str, Any], bound: float) -> bool | None:
    """Whether the 95% CI of the difference lies wholly outside ±``bound`` (None: no CI recorded)."""
    ci = numbers.get("ci")
    if not isinstance(ci, Mapping) or not all(isinstance(ci.get(k), int | float) for k in ("low", "high")):
        return None
    return bool(ci["low"] > bound or ci["high"] < -bound)


def _status(
    a: str | None,
    b: str | None,
    *,
    found: bool,
    numbers_a: Mapping[str, Any] | None = None,
    numbers_b: Mapping[str, Any] | None = None,
) -> str:
    if a not in _RESOLVED:
        return "unresolved in A"
    if not found:
        return "missing"
    if b == a:
        return "agrees"
    if b not in _RESOLVED:
        return "not resolved"
    if "equivalent" in (a, b):
        # One bounds the effect, the other resolves its sign: a contradiction only when the direction's CI
        # lies wholly beyond the bound.
        eq, direction = (numbers_a, numbers_b) if a == "equivalent" else (numbers_b, numbers_a)
        bound = _bound(eq or {})
        beyond = _beyond(direction or {}, bound) if bound is not None else None
        if beyond is False:
            return "compatible"
    return "opposite"


def _verdict_status(a: str, b: str | None, *, found: bool) -> str:
    if a not in ("supported", "contradicted"):
        return "unresolved in A"
    if not found:
        return "missing"
    if b == a:
        return "agrees"
    return "opposite" if b in ("supported", "contradicted") else "not resolved"


def _seeds(results: Mapping[str, Any]) -> tuple[int, ...]:
    if "seed_list" in results:
        return tuple(int(s) for s in results["seed_list"])
    return tuple(sorted({int(r["seed"]) for r in results.get("runs", [])}))


def replicate(dir_a: str | Path, dir_b: str | Path) -> Replication:
    """Every finding and answer of ``dir_a`` matched against ``dir_b`` (module docstring)."""
    ra, rb = read_results(dir_a), read_results(dir_b)
    if ra.get("study") != rb.get("study"):
        raise StudyError(f"{dir_a} holds a {ra.get('study')!r} study and {dir_b} a {rb.get('study')!r} study")
    if ra.get("preset") != rb.get("preset"):
        raise StudyError(
            f"{dir_a} ran preset {ra.get('preset')!r} and {dir_b} preset {rb.get('preset')!r}: "
            "a replication runs the same preset"
        )
    # A finding that compares nothing (a definition, a measured value) has no outcome to replicate.
    compared = [e for e in ra["evidence"] if e.get("outcome") is not None]
    unkeyed = [e.get("text", "")[:60] for e in compared if not e.get("key")]
    if unkeyed:
        raise StudyError(
            f"{dir_a} has findings without a key (written by an older depthlab), e.g. {unkeyed[0]!r}: "
            "re-run its `depthlab experiment` command, which keeps the finished runs and rewrites results.json"
        )
    b_by_key = {e["key"]: e for e in rb["evidence"] if e.get("key")}
    findings = tuple(
        Agreement(
            e["key"],
            e["text"],
            e.get("outcome"),
            b_by_key[e["key"]].get("outcome") if e["key"] in b_by_key else None,
            _status(
                e.get("outcome"),
                b_by_key.get(e["key"], {}).get("outcome"),
                found=e["key"] in b_by_key,
                numbers_a=e.get("numbers") or {},
                numbers_b=b_by_key.get(e["key"], {}).get("numbers") or {},
            ),
        )
        for e in compared
    )
    b_answers = {a["id"]: a for a in rb.get("answers", [])}
    answers = tuple(
        AnswerAgreement(
            a["id"],
            a["question"],
            a["verdict"],
            b_answers[a["id"]]["verdict"] if a["id"] in b_answers else None,
            _verdict_status(
                a["verdict"], b_answers.get(a["id"], {}).get("verdict"), found=a["id"] in b_answers
            ),
        )
        for a in ra.get("answers", [])
    )
    return Replication(
        study=str(ra.get("study")),
        preset=ra.get("preset"),
        a=str(dir_a),
        b=str(dir_b),
        seeds_a=_seeds(ra),
        seeds_b=_seeds(rb),
        findings=findings,
        answers=answers,
    )
