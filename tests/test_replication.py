"""`depthlab replicate`, seed offsets and answers first: replication is matched by finding key, judged by
outcome, and only resolved findings of the original count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from depthlab.report.answers import OTHER, group_findings
from depthlab.report.readme import replication_markdown, results_markdown
from depthlab.studies import get_study
from depthlab.studies.engine import Answer, Finding, StudyError, seed_list
from depthlab.studies.replication import replicate


def _results(path: Path, outcomes: dict[str, str | None], *, seeds=(0, 1, 2), verdict="supported", study="s"):
    evidence = [
        {"key": key, "question": "q", "text": f"finding {key}", "topic": "t", "when": "end", "outcome": o,
         "numbers": {}}
        for key, o in outcomes.items()
    ]  # fmt: skip
    data = {
        "study": study,
        "preset": "quick",
        "seeds": len(seeds),
        "seed_list": list(seeds),
        "runs": [{"seed": s} for s in seeds],
        "conditions": [],
        "answers": [{"id": "q", "question": "Does it?", "verdict": verdict, "numbers": "n", "paper": "p",
                     "evidence": list(outcomes)}],
        "findings": [e["text"] for e in evidence],
        "evidence": evidence,
    }  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(data))
    return path


def test_each_resolved_finding_gets_the_status_its_outcomes_imply(tmp_path):
    a = _results(tmp_path / "a", {"k1": "higher", "k2": "lower", "k3": "higher", "k4": "lower",
                                  "k5": "not resolved", "k6": "equivalent", "k7": None})  # fmt: skip
    b = _results(tmp_path / "b", {"k1": "higher", "k2": "not resolved", "k3": "lower", "k5": "higher",
                                  "k6": "higher"}, seeds=(3, 4, 5), verdict="not resolved")  # fmt: skip
    rep = replicate(a, b)
    status = {f.key: f.status for f in rep.findings}
    assert status == {"k1": "agrees", "k2": "not resolved", "k3": "opposite", "k4": "missing",
                      "k5": "unresolved in A", "k6": "opposite"}  # fmt: skip
    assert "k7" not in status  # a finding that compares nothing has nothing to replicate
    assert rep.fresh and not rep.replicated
    assert rep.counts() == {"agrees": 1, "compatible": 0, "not resolved": 1, "opposite": 2, "missing": 1,
                            "unresolved in A": 1}  # fmt: skip
    assert [(x.verdict_a, x.verdict_b, x.status) for x in rep.answers] == [
        ("supported", "not resolved", "not resolved")
    ]
    text = replication_markdown(rep.to_dict())
    assert (
        "Of the 5 findings the original resolved, 1 agree, 0 are compatible (the same within a bound in one, a "
        "difference inside it in the other: not a replication), 1 are not resolved, 2 are opposite and 1 "
        in text
    )
    assert "**not replicated** — 0 of the 1 questions the original answered get the same verdict" in text
    assert "opposite in the replication (lower): finding k3" in text
    assert "finding k1" not in text  # agreeing findings are counted, not listed


def test_a_replication_that_agrees_everywhere_is_replicated_and_overlapping_seeds_are_flagged(tmp_path):
    a = _results(tmp_path / "a", {"k1": "higher", "k2": "not resolved"})
    b = _results(tmp_path / "b", {"k1": "higher", "k2": "lower"}, seeds=(2, 3, 4))
    rep = replicate(a, b)
    assert rep.replicated and not rep.fresh  # seed 2 is in both
    assert rep.answers[0].status == "agrees"
    assert "**replicated** — 1 of the 1 questions" in replication_markdown(rep.to_dict())


def test_a_verdict_supported_in_one_and_contradicted_in_the_other_is_opposite(tmp_path):
    a = _results(tmp_path / "a", {"k1": "higher"}, verdict="supported")
    b = _results(tmp_path / "b", {"k1": "lower"}, seeds=(3, 4, 5), verdict="contradicted")
    rep = replicate(a, b)
    assert rep.answers[0].status == "opposite" and not rep.replicated
    c = _results(tmp_path / "c", {"k1": "lower"}, verdict="contradicted")
    d = _results(tmp_path / "d", {"k1": "higher"}, seeds=(3, 4, 5), verdict="supported")
    assert replicate(c, d).answers[0].status == "opposite"


def test_the_replicated_headline_follows_the_answers_and_opposite_findings(tmp_path):
    """Every answered question agrees, but a secondary finding is opposite: not replicated. A question the
    original left not resolved counts neither way; compatible findings are counted apart and do not make it
    replicated or not."""
    a = _results(tmp_path / "a", {"k1": "higher", "k2": "lower"})
    b = _results(tmp_path / "b", {"k1": "higher", "k2": "higher"}, seeds=(3, 4, 5))
    assert not replicate(a, b).replicated
    open_a = _results(tmp_path / "oa", {"k1": "higher"}, verdict="not resolved")
    open_b = _results(tmp_path / "ob", {"k1": "not resolved"}, seeds=(3, 4, 5), verdict="supported")
    rep = replicate(open_a, open_b)
    assert rep.answers[0].status == "unresolved in A" and rep.replicated


def test_replicate_refuses_different_studies_presets_and_unkeyed_findings(tmp_path):
    a = _results(tmp_path / "a", {"k1": "higher"})
    with pytest.raises(StudyError, match="study"):
        replicate(a, _results(tmp_path / "b", {"k1": "higher"}, study="other"))
    data = json.loads((a / "results.json").read_text())
    data["evidence"][0]["key"] = ""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text(json.dumps(data))
    with pytest.raises(StudyError, match="without a key"):
        replicate(tmp_path / "c", a)
    with pytest.raises(StudyError, match="does not exist"):
        replicate(tmp_path / "missing", a)


def test_replicate_cli_writes_json_and_markdown(tmp_path):
    a = _results(tmp_path / "a", {"k1": "higher"})
    b = _results(tmp_path / "b", {"k1": "lower"}, seeds=(3, 4, 5))
    out = tmp_path / "rep.json"
    cmd = [sys.executable, "-m", "depthlab", "replicate", str(a), str(b), "--out", str(out), "--markdown"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    record = json.loads(out.read_text())
    assert record["counts"]["opposite"] == 1 and record["fresh_seeds"] is True
    assert proc.stdout.strip() == replication_markdown(record)


def test_seed_offset_runs_fresh_seeds():
    study = get_study("degradation")
    preset = study.presets["quick"]
    assert list(seed_list(3, 3)) == [3, 4, 5]
    seeds = {s.seed for s in study.grid(preset, seed_list(3, 3), "cpu", None)}
    assert seeds == {3, 4, 5}
    assert all(s.config.seed == s.seed for s in study.grid(preset, seed_list(2, 7), "cpu", None))


def test_answers_come_first_and_findings_sit_under_their_question():
    answers = [
        Answer("b", "Second?", "not resolved", "n2", "p2"),
        Answer("a", "First?", "supported", "n1", "p1"),
    ]
    findings = [Finding("f1", "t", "end", question="a"), Finding("f2", "t", "end", question="b"),
                Finding("f3", "t", "end", question="a"), Finding("f4", "t", "end")]  # fmt: skip
    groups = group_findings(answers, findings)
    assert [(q, [f.text for f in fs]) for q, fs in groups] == [
        ("Second?", ["f2"]), ("First?", ["f1", "f3"]), (OTHER, ["f4"])
    ]  # fmt: skip
    results = {
        "answers": [a.to_dict() for a in answers],
        "evidence": [f.to_dict() for f in findings],
        "conditions": [],
    }
    md = results_markdown(results)
    assert md.index("| Second? | **not resolved** |") < md.index("**Second?**") < md.index("- f2")
    assert md.index("**First?**") < md.index("- f1") < md.index("- f3") < md.index(f"**{OTHER}**")


def test_bad_verdicts_and_outcomes_are_refused():
    with pytest.raises(StudyError, match="verdict"):
        Answer("a", "Q?", "probably", "n", "p")
    with pytest.raises(StudyError, match="outcome"):
        Finding("x", "t", "end", outcome="same")


def test_the_html_report_shows_the_answers_before_the_findings_each_under_its_question(tmp_path):
    from depthlab.report.html import render
    from depthlab.studies.engine import StudyResult

    answers = (Answer("q1", "Does depth hurt?", "supported", "x [a, b]", "yes, Fig. 6"),)
    findings = (Finding("alpha <b>", "t", "end", question="q1"), Finding("beta", "t", "end"))
    result = StudyResult(None, None, 1, (), tmp_path, (), findings=findings, answers=answers)
    html = render(result, str(tmp_path)).html
    assert html.index('id="answers-table"') < html.index('id="findings"')
    q = html.index("<summary>Does depth hurt? (1)</summary>")
    assert (
        q < html.index("alpha &lt;b&gt;") < html.index(f"<summary>{OTHER} (1)</summary>") < html.index("beta")
    )
    assert 'class="l verdict supported">supported<' in html


def test_equivalence_and_a_difference_inside_its_bound_are_compatible_not_opposite(tmp_path):
    """ "The same within ±2 points" and "higher by 1.3, CI [+0.3, +2.3]" can both be true of one small effect
    (the committed vgg-depth replication, D+BN vs A+BN); a CI wholly beyond the bound contradicts it."""

    def with_numbers(path: Path, rows: dict[str, tuple[str, float, float]], seeds: tuple[int, ...]) -> Path:
        _results(path, {k: o for k, (o, _, _) in rows.items()}, seeds=seeds)
        data = json.loads((path / "results.json").read_text())
        for e in data["evidence"]:
            _, low, high = rows[e["key"]]
            e["numbers"] = {"ci": {"low": low, "high": high}, "equivalence": {"bound": 0.02}}
        (path / "results.json").write_text(json.dumps(data))
        return path

    a = with_numbers(tmp_path / "a", {"inside": ("equivalent", -0.013, 0.020), "beyond": ("equivalent", -0.01, 0.01),
                                      "dir": ("higher", 0.003, 0.023), "far": ("higher", 0.03, 0.05)}, (0, 1, 2))  # fmt: skip
    b = with_numbers(tmp_path / "b", {"inside": ("higher", 0.003, 0.023), "beyond": ("higher", 0.025, 0.04),
                                      "dir": ("equivalent", -0.01, 0.015), "far": ("equivalent", -0.01, 0.01)}, (3, 4, 5))  # fmt: skip
    rep = replicate(a, b)
    status = {f.key: f.status for f in rep.findings}
    assert status == {"inside": "compatible", "beyond": "opposite", "dir": "compatible", "far": "opposite"}
    assert rep.counts()["compatible"] == 2 and rep.counts()["agrees"] == 0 and not rep.replicated
    text = replication_markdown(rep.to_dict())
    assert "2 agree" not in text and "0 agree, 2 are compatible (the same within a bound in one" in text
    assert "- compatible in the replication (higher): finding inside" in text
    # Without the numbers to tell, a mix of equivalent and a direction stays "opposite" (the cautious side).
    c = _results(tmp_path / "c", {"inside": "higher"}, seeds=(6, 7, 8))
    assert replicate(_results(tmp_path / "d", {"inside": "equivalent"}), c).findings[0].status == "opposite"


# ------------------------------------------------------------------------------------------------ pooling
def _tiny(root: Path, seeds: int, offset: int, *more: str) -> Path:
    from depthlab.studies.engine import run_study
    from studies import TINY, tiny_preset

    overrides = [*TINY, *more]
    run_study(get_study("degradation"), tiny_preset(*more), root, device="cpu", overrides=overrides,
              seeds=seeds, seed_offset=offset)  # fmt: skip
    return root


def test_pooling_two_seed_sets_gives_the_study_run_on_all_seeds_at_once(tmp_path):
    """Independent truth: the same study run in one go on seeds 0-1. The pool of seed 0 and seed 1 (run
    apart) must read back as that study: the same runs, the same condition estimates, the same findings."""
    from depthlab.studies.replication import pool_studies

    a = _tiny(tmp_path / "a", 1, 0)
    b = _tiny(tmp_path / "b", 1, 1)
    whole = _tiny(tmp_path / "whole", 2, 0)
    result = pool_studies([a, b], tmp_path / "pooled")
    assert sorted({r.seed for r in result.runs}) == [0, 1] and all(r.completed for r in result.runs)
    pooled = json.loads((tmp_path / "pooled" / "results.json").read_text())
    truth = json.loads((whole / "results.json").read_text())
    assert pooled["seed_list"] == truth["seed_list"] == [0, 1]
    assert pooled["conditions"] == truth["conditions"]
    assert [e["text"] for e in pooled["evidence"]] == [e["text"] for e in truth["evidence"]]
    assert pooled["answers"] == truth["answers"]
    # The originals are untouched, and the copies hold no lock of theirs.
    assert json.loads((a / "results.json").read_text())["seed_list"] == [0]
    assert not list((tmp_path / "pooled" / "runs").glob("*/.lock*"))
    # Pooling again only rebuilds results.json.
    again = pool_studies([a, b], tmp_path / "pooled")
    assert [r.name for r in again.runs] == [r.name for r in result.runs]

    # replicate --pooled carries what all the seeds say beside each finding and verdict.
    rep = replicate(a, b, pooled=tmp_path / "pooled")
    assert rep.seeds_pooled == (0, 1)
    by_key = {e["key"]: e for e in pooled["evidence"] if e.get("key")}
    for f in rep.findings:
        assert f.outcome_pooled == by_key[f.key]["outcome"] and f.text_pooled == by_key[f.key]["text"]
    # The pool is an estimate shown beside A and B, never a status: it contains A's seeds.
    assert "status_pooled" not in json.dumps(rep.to_dict())
    record = rep.to_dict()
    assert record["pooled"] == str(tmp_path / "pooled") and record["seeds_pooled"] == [0, 1]
    with pytest.raises(StudyError, match="not the union"):
        replicate(a, b, pooled=whole.parent / "a")


def test_pool_refuses_what_cannot_be_one_study(tmp_path):
    from depthlab.studies.replication import pool_studies

    a = _tiny(tmp_path / "a", 1, 0)
    with pytest.raises(StudyError, match="share seed"):
        pool_studies([a, _tiny(tmp_path / "same", 1, 0)], tmp_path / "p1")
    with pytest.raises(StudyError, match="not consecutive"):
        pool_studies([a, _tiny(tmp_path / "far", 1, 2)], tmp_path / "p2")
    with pytest.raises(StudyError, match="different settings"):
        pool_studies([a, _tiny(tmp_path / "lr", 1, 1, "lr=0.05")], tmp_path / "p3")
    with pytest.raises(StudyError, match="no study.json"):
        pool_studies([a, tmp_path], tmp_path / "p4")
    with pytest.raises(StudyError, match="at least two"):
        pool_studies([a], tmp_path / "p5")
    unfinished = _tiny(tmp_path / "b", 1, 1)
    (unfinished / "runs" / "resnet20-s1" / "summary.json").unlink()
    with pytest.raises(StudyError, match="not finished"):
        pool_studies([a, unfinished], tmp_path / "p6")
    assert not (tmp_path / "p6").exists()  # nothing is written before every check passes


def test_replication_markdown_shows_the_pooled_estimate_beside_and_never_counts_it(tmp_path):
    a = _results(tmp_path / "a", {"k1": "higher", "k2": "lower"})
    b = _results(tmp_path / "b", {"k1": "higher", "k2": "not resolved"}, seeds=(3, 4, 5))
    p = _results(tmp_path / "p", {"k1": "higher", "k2": "lower"}, seeds=(0, 1, 2, 3, 4, 5))
    text = replication_markdown(replicate(a, b, pooled=p).to_dict())
    assert (
        "| question | original | replication | status |" in text
        and "| Does it? | supported | supported | agrees |" in text
    )
    assert (
        "- not resolved in the replication (not resolved): finding k2\n  - pooled estimate, seeds 0–5: finding k2"
        in text
    )
    assert "finding k1" not in text  # agreeing in B: counted, not listed — the pool does not change that
    assert (
        "The pooled estimate (seeds 0–5; it contains the original's seeds, so it is shown, not counted):"
        in text
    )
    assert "- Does it? n" in text
    assert "Pooled over" not in text
    # Without a pooled study the block says nothing of one.
    assert "pooled" not in replication_markdown(replicate(a, b).to_dict()).lower()


@pytest.mark.parametrize(
    "low,high,beyond",
    [
        (0.021, 0.03, True),
        (-0.03, -0.021, True),
        (-0.0226, -0.0174, False),
        (0.0174, 0.0226, False),
        (-0.01, 0.01, False),
    ],
)
def test_beyond_the_bound_holds_on_both_sides(low: float, high: float, beyond: bool) -> None:
    """A CI wholly beyond ±bound, on the negative side as on the positive (a fall of [−0.0226, −0.0174]
    against a 0.02 bound straddles −0.02: not beyond it)."""
    from depthlab.studies.replication import _beyond

    assert _beyond({"ci": {"low": low, "high": high}}, 0.02) is beyond
