"""Does a study's result replicate? Compare the findings of two directories of the same study.

``depthlab replicate DIR_A DIR_B`` reads each directory's ``results.json`` (or the file itself) and, for
every finding of A, matches B's finding with the same ``key``:

* ``agrees`` — A resolved it (higher, lower or equivalent) and B has the same outcome;
* ``not resolved`` — A resolved it, B did not (its CI includes 0, or the numbers were non-finite);
* ``compatible`` — one says "the same within ±bound" (TOST) and the other a resolved difference whose 95% CI
  does not lie wholly beyond that bound: both can be true of one small effect (D+BN − A+BN = +0.3 points,
  CI [−1.3, +2.0], equivalent within ±2; then +1.3, CI [+0.3, +2.3], higher), so neither contradicts the
  other — but neither replicates the other either: it is counted apart, never as agreement;
* ``opposite`` — A resolved it one way and B the other way, or one says equivalent and the other a
  difference whose CI lies wholly beyond the bound (or the numbers to tell are missing);
* ``missing`` — B has no finding with that key;
* ``unresolved in A`` — A did not resolve it, so there is nothing to replicate (listed, not judged).

Each question's verdicts are compared the same way. A replication is on *fresh* seeds when the two
directories share no seed; ``fresh`` says whether they do. The study **replicated** when every question A
answered (supported or contradicted) gets the same verdict in B and no finding of A is opposite in B
(:attr:`Replication.replicated`); a question A left not resolved is not counted for or against.

``depthlab pool DIR_A DIR_B --out DIR`` merges two finished directories of one study (same preset and
``--set`` values, disjoint seeds) into one study on all their seeds, without training: their run
directories are copied, the study-level analyses at initialisation are computed for the union of seeds,
and ``results.json`` is rebuilt. ``depthlab replicate DIR_A DIR_B --pooled DIR`` then shows, beside A's and
B's, the pooled estimate of each finding and answer (its sentence, its key numbers). The pool contains A's
seeds, so it is never a status or a count: a false positive of A is carried into the pool (a simulation
with no true effect: when A resolved one, the independent B agreed 2.5% of the time and the pool 31%).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlab.io import read_json
from depthlab.studies.declare import StudyError, preset_from_dict, preset_to_dict, seed_list
from depthlab.studies.registry import get_study
from depthlab.studies.results import FINISHED, run_status
from depthlab.studies.run import run_study

__all__ = [
    "Agreement",
    "AnswerAgreement",
    "Replication",
    "replicate",
    "read_results",
    "pool_studies",
    "STATUSES",
]

STATUSES = ("agrees", "compatible", "not resolved", "opposite", "missing", "unresolved in A")
_RESOLVED = ("higher", "lower", "equivalent")


@dataclass(frozen=True)
class Agreement:
    key: str
    text_a: str
    outcome_a: str | None
    outcome_b: str | None
    status: str
    outcome_pooled: str | None = None  # the pooled estimate's outcome for this key (``--pooled``), shown only
    text_pooled: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "key": self.key,
            "text_a": self.text_a,
            "outcome_a": self.outcome_a,
            "outcome_b": self.outcome_b,
            "status": self.status,
        }
        if self.text_pooled is not None or self.outcome_pooled is not None:
            out |= {"outcome_pooled": self.outcome_pooled, "text_pooled": self.text_pooled}
        return out


@dataclass(frozen=True)
class AnswerAgreement:
    id: str
    question: str
    verdict_a: str
    verdict_b: str | None
    status: str  # "agrees", "not resolved", "opposite", "missing", "unresolved in A"
    numbers_pooled: str | None = None  # the pooled estimate's key numbers (``--pooled``), shown only

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "question": self.question,
            "verdict_a": self.verdict_a,
            "verdict_b": self.verdict_b,
            "status": self.status,
        }
        if self.numbers_pooled is not None:
            out["numbers_pooled"] = self.numbers_pooled
        return out


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
    pooled: str | None = None  # the pooled study (``--pooled``): A's and B's runs on all their seeds
    seeds_pooled: tuple[int, ...] = ()

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
        """Every question A answered (supported or contradicted) has the same verdict in B, and no finding of
        A is opposite in B. A question A left not resolved counts neither way; a compatible, not resolved or
        missing secondary finding does not undo it but is counted and listed (:meth:`counts`)."""
        answered = [a for a in self.answers if a.status != "unresolved in A"]
        return all(a.status == "agrees" for a in answered) and not any(
            f.status == "opposite" for f in self.findings
        )

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
            **({"pooled": self.pooled, "seeds_pooled": list(self.seeds_pooled)} if self.pooled else {}),
        }


def read_results(path: str | Path) -> dict[str, Any]:
    """``results.json`` of a study directory (or the file itself)."""
    p = Path(path)
    file = p / "results.json" if p.is_dir() else p
    if not file.is_file():
        raise StudyError(f"{file} does not exist: run the study (depthlab study …) first")
    try:
        data = read_json(file)
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


def _check_pair(ra: Mapping[str, Any], rb: Mapping[str, Any], dir_a: str | Path, dir_b: str | Path) -> None:
    """Refuse two directories that do not hold the same study run with the same preset."""
    if ra.get("study") != rb.get("study"):
        raise StudyError(f"{dir_a} holds a {ra.get('study')!r} study and {dir_b} a {rb.get('study')!r} study")
    if ra.get("preset") != rb.get("preset"):
        raise StudyError(
            f"{dir_a} ran preset {ra.get('preset')!r} and {dir_b} preset {rb.get('preset')!r}: "
            "a replication runs the same preset"
        )


def _compared(ra: Mapping[str, Any], dir_a: str | Path) -> list[dict[str, Any]]:
    """A's findings that compare something, each of which must have a key to be matched by."""
    # A finding that compares nothing (a definition, a measured value) has no outcome to replicate.
    compared = [e for e in ra["evidence"] if e.get("outcome") is not None]
    unkeyed = [e.get("text", "")[:60] for e in compared if not e.get("key")]
    if unkeyed:
        raise StudyError(
            f"{dir_a} has findings without a key (written by an older depthlab), e.g. {unkeyed[0]!r}: "
            "re-run its `depthlab study` command, which keeps the finished runs and rewrites results.json"
        )
    return compared


def _read_pool(
    pooled: str | Path | None,
    ra: Mapping[str, Any],
    rb: Mapping[str, Any],
    dir_a: str | Path,
    dir_b: str | Path,
) -> dict[str, Any]:
    """The pooled directory's results (``{}`` without one), refused unless it is A's and B's seeds pooled."""
    if pooled is None:
        return {}
    rp = read_results(pooled)
    union = sorted(set(_seeds(ra)) | set(_seeds(rb)))
    if rp.get("study") != ra.get("study") or rp.get("preset") != ra.get("preset"):
        raise StudyError(
            f"{pooled} holds {rp.get('study')!r} ({rp.get('preset')!r}), not {ra.get('study')!r} "
            f"({ra.get('preset')!r}): pool the two directories with `depthlab pool {dir_a} {dir_b} --out DIR`"
        )
    if list(_seeds(rp)) != union:
        raise StudyError(
            f"{pooled} ran seeds {list(_seeds(rp))}, not the union of the two directories' seeds {union}: "
            f"pool them with `depthlab pool {dir_a} {dir_b} --out DIR`"
        )
    return rp


def _judged(e: Mapping[str, Any], other: Mapping[str, Mapping[str, Any]]) -> str:
    """A's finding ``e`` against the finding with its key in ``other`` (B's, or the pool's)."""
    match = other.get(e["key"], {})
    return _status(e.get("outcome"), match.get("outcome"), found=e["key"] in other,
                   numbers_a=e.get("numbers") or {}, numbers_b=match.get("numbers") or {})  # fmt: skip


def replicate(dir_a: str | Path, dir_b: str | Path, pooled: str | Path | None = None) -> Replication:
    """Every finding and answer of ``dir_a`` matched against ``dir_b`` (module docstring); with ``pooled``
    (a :func:`pool_studies` directory of exactly A's and B's seeds) each also carries the pooled outcome."""
    ra, rb = read_results(dir_a), read_results(dir_b)
    _check_pair(ra, rb, dir_a, dir_b)
    compared = _compared(ra, dir_a)
    b_by_key = {e["key"]: e for e in rb["evidence"] if e.get("key")}
    rp = _read_pool(pooled, ra, rb, dir_a, dir_b)
    p_by_key = {e["key"]: e for e in rp.get("evidence", []) if e.get("key")}
    findings = tuple(
        Agreement(
            e["key"],
            e["text"],
            e.get("outcome"),
            b_by_key[e["key"]].get("outcome") if e["key"] in b_by_key else None,
            _judged(e, b_by_key),
            p_by_key.get(e["key"], {}).get("outcome"),
            p_by_key.get(e["key"], {}).get("text"),
        )
        for e in compared
    )
    b_answers = {a["id"]: a for a in rb.get("answers", [])}
    p_answers = {a["id"]: a for a in rp.get("answers", [])}
    answers = tuple(
        AnswerAgreement(
            a["id"],
            a["question"],
            a["verdict"],
            b_answers[a["id"]]["verdict"] if a["id"] in b_answers else None,
            _verdict_status(
                a["verdict"], b_answers.get(a["id"], {}).get("verdict"), found=a["id"] in b_answers
            ),
            p_answers.get(a["id"], {}).get("numbers"),
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
        pooled=str(pooled) if pooled is not None else None,
        seeds_pooled=_seeds(rp) if rp else (),
    )


_NOT_COPIED = (".lock", ".lock.json", ".depthlab-lock.guard")  # a run's lock belongs to its own directory


def _study_record(directory: Path) -> dict[str, Any]:
    path = directory / "study.json"
    if not path.is_file():
        raise StudyError(
            f"{directory} is not a study directory (no study.json): pool the directories that "
            "`depthlab study … --out DIR` wrote, not a results/ copy"
        )
    try:
        return dict(read_json(path))
    except json.JSONDecodeError as exc:
        raise StudyError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def pool_studies(
    dirs: Sequence[str | Path], out: str | Path, *, progress: Callable[[str], None] | None = None
) -> Any:
    """One study on the seeds of several finished directories of it (module docstring); returns its
    :class:`~depthlab.studies.engine.StudyResult`. Nothing is trained: every run of every directory must be
    finished (completed or diverged), and the directories must share the study, its preset settings and
    ``--set`` values, with disjoint seeds that together are consecutive (the engine's seed range)."""

    say = progress or (lambda line: None)
    if len(dirs) < 2:
        raise StudyError(f"pool needs at least two study directories, got {len(dirs)}")
    roots = [Path(d) for d in dirs]
    records = [_study_record(r) for r in roots]
    first = records[0]
    study = get_study(str(first.get("study", "degradation")))
    kind = type(next(iter(study.presets.values())))

    def settings(record: Mapping[str, Any]) -> dict[str, Any]:
        # Through the preset class, so a key an older depthlab did not write takes its default; the seed
        # count and the note are not settings of the runs.
        values = preset_to_dict(preset_from_dict(kind, record.get("preset", {})))
        return {k: v for k, v in values.items() if k not in ("seeds", "note")}

    seeds_of: list[list[int]] = []
    for root, record in zip(roots, records, strict=True):
        if record.get("study", "degradation") != study.name:
            raise StudyError(
                f"{root} holds a {record.get('study')!r} study and {roots[0]} a {study.name!r} study"
            )
        diff = sorted(k for k, v in settings(record).items() if settings(first).get(k) != v)
        if diff:
            raise StudyError(
                f"{root} and {roots[0]} ran different settings ({', '.join(diff)}): only runs of one recipe pool"
            )
        if list(record.get("overrides", ())) != list(first.get("overrides", ())):
            raise StudyError(
                f"{root} ran --set {record.get('overrides')} and {roots[0]} --set {first.get('overrides')}: "
                "only runs of one recipe pool"
            )
        seeds_of.append(list(seed_list(int(record["seeds"]), int(record.get("seed_offset", 0)))))
    every = [s for seeds in seeds_of for s in seeds]
    shared = sorted({s for s in every if every.count(s) > 1})
    if shared:
        raise StudyError(f"the directories share seed(s) {shared}: a pool counts each seed once")
    union = sorted(every)
    if union != list(range(union[0], union[0] + len(union))):
        raise StudyError(f"the seeds {union} are not consecutive: a study runs a range of seeds")
    preset = dataclasses.replace(preset_from_dict(kind, first["preset"]), seeds=len(union))
    names: dict[str, Path] = {}
    for root, seeds in zip(roots, seeds_of, strict=True):
        for spec in study.grid(preset, seeds, "auto", None):
            status = run_status(root / "runs" / spec.name)
            if status not in FINISHED:
                raise StudyError(
                    f"{root / 'runs' / spec.name} is {status}, not finished: finish the study first (re-run its "
                    "`depthlab study` command, which resumes it)"
                )
            names[spec.name] = root / "runs" / spec.name
    target = Path(out)
    for name, source in names.items():
        dest = target / "runs" / name
        if dest.exists() and run_status(dest) in FINISHED:
            continue  # pooled before: a re-run only rebuilds results.json
        if dest.exists():
            shutil.rmtree(dest)
        say(f"copying {source}")
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    overrides = tuple(first.get("overrides", ()))
    # Every run is finished, so this trains nothing: it writes study.json, computes the study-level
    # analyses at initialisation for every seed, and rebuilds results.json from the copied runs.
    return run_study(study, preset, target, seeds=len(union), seed_offset=union[0], overrides=overrides,
                     progress=say)  # fmt: skip
