"""Issue 22: a diverging net is a result, not a crash. A tiny degradation study (tests/diverging_study.py)
whose plain-20 diverges in seed 0 of 2: the run stops with status "diverged" and its record, the study
counts it, compares plain-20 on its other seed only — so no comparison with plain-20 has an interval, and
each says why — and results.json and the report are written. Hand-made runs cover the condition whose every
seed diverged, and one seed in each study."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest

from depthlab.studies import get_study
from depthlab.studies.engine import StudyResult, read_study, results_json, run_study
from studies import TINY, make_result, make_run, study_run, tiny_preset, tiny_study

# The tests that train the diverging studies run them on one thread (they are tiny); not the one-seed test,
# which reads the session's shared tiny study and must not change the thread count it is trained with.
one_thread = pytest.mark.usefixtures("one_thread")

FEWER = "fewer than two seeds: "


@functools.cache
def diverging_study() -> tuple[Path, tuple[str, ...]]:
    """The tiny study on seeds 0 and 1 with plain-20's seed 0 at a learning rate that diverges."""
    import diverging_study as module

    root = Path(tempfile.mkdtemp(prefix="depthlab-diverging-")) / "study"
    lines: list[str] = []
    overrides = [*TINY, "seeds=2"]
    run_study(
        module.STUDY, tiny_preset("seeds=2"), root, device="cpu", overrides=overrides, progress=lines.append
    )
    return root, tuple(lines)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    if diverging_study.cache_info().currsize:
        shutil.rmtree(diverging_study()[0].parent, ignore_errors=True)


@one_thread
def test_a_diverged_run_is_recorded_and_the_study_still_writes_its_results():
    root, lines = diverging_study()
    summary = json.loads((root / "runs" / "plain20-s0" / "summary.json").read_text())
    record = summary["diverged"]
    assert summary["status"] == "diverged" and record["step"] == summary["step"] <= 4
    # checkpoints every 2 steps (eval_every): the last good one is kept, if the run got that far
    assert record["checkpoint"] == (2 if record["step"] > 2 else None)
    assert record["cause"] == "parameters" or record["value"] in ("nan", "inf", "-inf")
    assert any(line.startswith("[1/4] plain20-s0: training diverged at step") for line in lines)
    results = json.loads((root / "results.json").read_text())  # strict JSON, written
    runs = {r["name"]: r for r in results["runs"]}
    assert (
        runs["plain20-s0"]["status"] == "diverged"
        and runs["plain20-s0"]["diverged"]["step"] == record["step"]
    )
    assert runs["plain20-s1"]["status"] == "completed" and runs["plain20-s1"]["diverged"] is None
    conditions = {c["condition"]: c for c in results["conditions"]}
    assert conditions["plain-20"]["diverged"] == [0] and conditions["plain-20"]["seeds"] == 1
    assert conditions["ResNet-20"]["diverged"] == [] and conditions["ResNet-20"]["seeds"] == 2
    # the diverged seed's numbers are not among the compared values
    assert len(conditions["plain-20"]["error"]["train_eval"]["values"]) == 1

    # A re-run skips the diverged run (it would diverge again) and rebuilds the same results.
    again: list[str] = []
    import diverging_study as module

    run_study(module.STUDY, tiny_preset("seeds=2"), root, device="cpu", overrides=[*TINY, "seeds=2"],
              progress=again.append)  # fmt: skip
    assert "[1/4] plain20-s0: already diverged, skipped" in again
    assert json.loads((root / "results.json").read_text()) == results


@one_thread
def test_the_findings_count_the_diverged_seed_and_say_why_nothing_with_it_resolves():
    root, _ = diverging_study()
    result = read_study(root)
    by_key = {f.key: f for f in result.findings}
    status = by_key["diverged:plain-20"]
    assert status.text.startswith("plain-20 diverged in 1 of 2 seeds (seed 0 at step ")
    assert status.text.endswith("plain-20 is compared on its 1 other seed — fewer than two, so no comparison "
                                "with it has an interval.")  # fmt: skip
    assert status.numbers["compared"] == 1 and [d["seed"] for d in status.numbers["diverged"]] == [0]
    with_plain = [f for f in result.findings if f.outcome is not None and "plain-20" in f.key]
    assert with_plain, "no comparison involves plain-20"
    for f in with_plain:
        assert f.outcome in ("not resolved", "unknown"), f.text
        if f.outcome == "not resolved" and f.numbers.get("ci", 1) is None:
            assert f.numbers["no_interval"].startswith(FEWER) and "plain-20" in f.numbers["no_interval"]
    shortcut = by_key["train_error:ResNet-20:plain-20"]
    assert shortcut.numbers["b_seeds"] == 1 and shortcut.numbers["b_diverged"] == 1
    assert f"no CI ({FEWER}plain-20 has 1, 1 diverged)" in shortcut.text
    answers = {a.id: a for a in result.answers}
    assert answers["shortcuts"].verdict == "not resolved"
    assert f"{FEWER}plain-20 has 1, 1 diverged" in answers["shortcuts"].numbers
    for text in (*[f.text for f in result.findings], *[a.numbers for a in result.answers]):
        assert " nan" not in text and "+nan" not in text and "nan%" not in text, text


@one_thread
def test_the_report_of_a_study_with_a_diverged_run_is_written(tmp_path):
    from depthlab.cli import main

    root, _ = diverging_study()
    out = tmp_path / "report.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    html = out.read_text()
    assert "plain-20 diverged in 1 of 2 seeds" in html and "ResNet-20" in html
    assert main(["report", str(root), "--markdown"]) == 0


@one_thread
# The figures leave out a legend that would have no entry (matplotlib warns and draws an empty box).
@pytest.mark.filterwarnings("error:No artists with labels found to put in legend")
def test_a_condition_that_diverged_in_every_seed_still_gets_results_and_a_report(tmp_path):
    """One seed, and plain-20 diverges in it: nothing of plain-20 is left to compare; the study still writes
    results.json (plain-20's error estimate holds no value, its mean null) and its report."""
    import diverging_study as module
    from depthlab.cli import main

    root = tmp_path / "study"
    run_study(module.EVERY_SEED, tiny_preset("shatter_points=0"), root, device="cpu", overrides=TINY)
    results = json.loads((root / "results.json").read_text())
    plain = next(c for c in results["conditions"] if c["condition"] == "plain-20")
    assert plain["seeds"] == 0 and plain["diverged"] == [0]
    assert plain["error"]["train_eval"]["values"] == [] and plain["error"]["train_eval"]["mean"] is None
    texts = {e["key"]: e["text"] for e in results["evidence"]}
    assert "plain-20 is compared on no seed" in texts["diverged:plain-20"]
    assert f"{FEWER}ResNet-20 has 1; plain-20 has none, 1 diverged" in texts["train_error:ResNet-20:plain-20"]
    shortcuts = next(a for a in results["answers"] if a["id"] == "shortcuts")
    assert shortcuts["verdict"] == "not resolved" and "vs plain-20 —: —, no CI" in shortcuts["numbers"]
    assert main(["report", str(root), "--out", str(tmp_path / "report.html")]) == 0
    assert "plain-20 diverged in 1 of 1 seeds" in (tmp_path / "report.html").read_text()


# ---------------------------------------------------------------------------------------- hand-made runs
def _diverged(run, step: int = 3):  # noqa: ANN001, ANN202
    record = {"step": step, "epoch": 0.1, "cause": "loss", "loss": math.nan, "value": "nan", "tensors": [],
              "checkpoint": step - 1}  # fmt: skip
    return dataclasses.replace(run, status="diverged", step=step, diverged=record)


def test_a_condition_whose_every_seed_diverged_is_compared_with_nothing():
    """plain-56 diverged in all 3 seeds: it is counted, every comparison with it is not resolved and says it
    has no seed left, its mean is written '—' (never NaN), and the answers say so instead of crashing."""
    runs = [make_run(m, train, 0.3, seed=s) for s in range(3)
            for m, train in (("plain20", 0.10), ("resnet20", 0.08), ("resnet56", 0.05))]  # fmt: skip
    runs += [_diverged(make_run("plain56", 0.9, 0.9, seed=s), step=5 + s) for s in range(3)]
    result = make_result(runs)
    findings = {f.key: f for f in get_study("degradation").findings(result)}
    status = findings["diverged:plain-56"]
    assert status.text.startswith("plain-56 diverged in 3 of 3 seeds (seed 0 at step 5 (training loss nan); "
                                  "seed 1 at step 6 (training loss nan); seed 2 at step 7 (training loss nan))")  # fmt: skip
    assert "plain-56 is compared on no seed" in status.text
    degradation = findings["train_error:plain-56:plain-20"]
    assert degradation.outcome == "not resolved" and degradation.numbers["a_seeds"] == 0
    assert f"(— vs 10.0%; difference —, no CI ({FEWER}plain-56 has none, 3 diverged)" in degradation.text
    twin = findings["train_error:ResNet-56:plain-56"]
    assert twin.outcome == "not resolved" and "plain-56 has none, 3 diverged" in twin.text
    answers = {a.id: a for a in get_study("degradation").answers(result, list(findings.values()))}
    assert answers["degradation"].verdict == "not resolved" and answers["shortcuts"].verdict == "not resolved"
    assert "plain-56 has none, 3 diverged" in answers["degradation"].numbers
    json.dumps(results_json(dataclasses.replace(result, findings=tuple(findings.values()))), allow_nan=True)


def test_one_seed_gives_no_interval_in_every_study_and_says_so():
    """--seeds 1, what the papers ran: every comparison of each study is not resolved and its text says why
    (one seed a side), none invents an interval, and each study still answers its questions."""
    root, _, _ = tiny_study()  # the tiny degradation study runs one seed
    result = read_study(root)
    compared = [f for f in result.findings if f.outcome is not None]
    assert compared and all(f.outcome in ("not resolved", "unknown") for f in compared)
    assert all(f.numbers.get("ci") is None for f in compared)  # none invents an interval
    for f in compared:
        if "no_interval" in f.numbers:
            assert f.numbers["ci"] is None and f.numbers["no_interval"].startswith(FEWER), f.text
            assert "has 1" in f.numbers["no_interval"], f.text
            assert "no CI (fewer than two seeds" in f.text or "no CI (1 seed)" in f.text, f.text
    assert {a.verdict for a in result.answers} == {"not resolved"}

    aux = [study_run(f"{name}-0", name, factors, final={"train_eval": 0.1 + k / 100, "test": 0.2 + k / 100},
                     images={"train_eval": 500, "test": 500}, curves={"train": ((2, 0.5), (4, 0.4)),
                     "train_eval": ((36, 0.2), (40, 0.1 + k / 100)), "test": ((40, 0.2 + k / 100),)}, steps=40)
           for k, (name, factors) in enumerate((("aux 0.3", {"aux_weight": 0.3, "aux_heads": True}),
                                                ("aux 0", {"aux_weight": 0.0, "aux_heads": True}),
                                                ("no aux heads", {"aux_weight": 0.0, "aux_heads": False})))]  # fmt: skip
    vgg = [study_run(f"{c}-0", c, {"config": c, "bn": False, "depth": d}, final={"train_eval": e, "test": e + 0.1},
                     images={"train_eval": 500, "test": 500}, curves={"train_eval": ((270, e), (300, e))},
                     steps=300, data={"num_classes": 10})
           for c, d, e in (("A", 11, 0.2), ("D", 16, 0.25))]  # fmt: skip
    for name, runs in (("inception-aux", aux), ("vgg-depth", vgg)):
        study = get_study(name)
        r: StudyResult = make_result(runs, study=name)
        findings = study.findings(r)
        compared = [f for f in findings if f.outcome is not None]
        assert compared, name
        assert all(f.outcome in ("not resolved", "unknown") for f in compared), name
        assert all(f.numbers.get("ci") is None for f in compared), name  # none invents an interval
        assert all(FEWER in f.text for f in compared if f.numbers.get("ci", 0) is None), name
        answers = study.answers(r, findings)  # type: ignore[misc]
        assert answers and all(a.verdict == "not resolved" for a in answers), name
        assert any(FEWER in a.numbers for a in answers), name  # the answers say why, too
