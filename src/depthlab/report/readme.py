"""A study's ``results.json`` as the README quotes it: the error table and the findings, verbatim.

The README holds one block per committed study result, between ``<!-- results:NAME:start -->`` and
``<!-- results:NAME:end -->``; ``depthlab report DIR --markdown`` prints the block and a test checks that
the README's copy equals what this function makes of the committed ``results/NAME/results.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depthlab.i18n import N_, _
from depthlab.present.format import pct
from depthlab.report.answers import group_findings

__all__ = ["answers_markdown", "results_markdown", "replication_headline", "replication_markdown"]

_SPLITS = (("train_eval", N_("train error (eval mode, fitted images)")), ("train", N_("running train error")),
           ("test", N_("test error")))  # fmt: skip


def answers_markdown(results: Mapping[str, Any]) -> str:
    """The answers table of one ``results.json`` (question, verdict, key numbers, the paper's claim): what the
    README's first screen quotes; the whole block is :func:`results_markdown`. Its header row and verdict words
    are in the current language (:func:`depthlab.i18n.language`); the rest is ``results``' text."""
    header = (_("question"), _("verdict"), _("key numbers (95% CI)"), _("the paper"))
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
    lines += [
        f"| {_cell(a['question'])} | **{_(a['verdict'])}** | {_cell(a['numbers'])} | {_cell(a['paper'])} |"
        for a in results.get("answers", [])
    ]
    return "\n".join(lines)


def results_markdown(results: Mapping[str, Any]) -> str:
    """The README block of one ``results.json``: the answers (question, verdict, key numbers, the paper's
    claim) first, then a table of every condition, then every finding under its question."""
    conditions = results.get("conditions", [])
    splits = [(s, name) for s, name in _SPLITS if any(s in c["error"] for c in conditions)]
    if splits and splits[0][0] == "train_eval":
        splits = [s for s in splits if s[0] != "train"]
    header = [_("condition"), _("seeds"), *(_(name) for _split, name in splits)]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(splits)]
    for c in conditions:
        cells = [str(c["condition"]), str(c["seeds"])]
        for split, _name in splits:
            e = c["error"].get(split)
            cells.append(pct(e["mean"], e["std"]) if e else "—")
        lines.append("| " + " | ".join(cells) + " |")
    runs = results.get("runs", [])
    if runs:
        total = sum(float(r.get("wall_seconds", 0.0)) for r in runs)
        lines += [
            "",
            _("{n} runs; their wall times (each run's `summary.json`) add up to {total:.0f} s.").format(
                n=len(runs), total=total
            ),
        ]
    answers = results.get("answers", [])
    evidence = results.get("evidence") or [{"text": s, "question": ""} for s in results.get("findings", [])]
    head = [answers_markdown(results), ""] if answers else []
    body = []
    for question, findings in group_findings(answers, evidence):
        body += ["", f"**{question}**", ""] if answers else [""]
        body += [f"- {f['text']}" for f in findings]
    return "\n".join(head + lines + body)


def _cell(text: str) -> str:
    """Text inside a Markdown table cell: a literal ``|`` would end the cell."""
    return str(text).replace("|", "\\|")


def replication_headline(record: Mapping[str, Any]) -> str:
    """The first line of :func:`replication_markdown`: the seeds, and whether the study replicated."""
    return replication_markdown(record).split("\n", 1)[0]


def replication_markdown(record: Mapping[str, Any]) -> str:
    """The README block of a replication (``depthlab replicate A B --out FILE``): whether it replicated
    (:attr:`~depthlab.studies.replication.Replication.replicated`), each question's verdict in both runs,
    then the count of A's resolved findings by status — agrees, compatible (its own column: it replicates
    nothing), not resolved, opposite, missing — and every one that B does not agree with. With a pooled study
    (``--pooled``), the pooled estimate is shown beside them — its key numbers, its sentences — never as a
    status or a count: it contains the original's seeds."""
    seeds_a = _seed_range(record["seeds_a"])
    seeds_b = _seed_range(record["seeds_b"])
    pooled = record.get("pooled")
    seeds_p = _seed_range(record.get("seeds_pooled", ()))
    answered = [a for a in record["answers"] if a["status"] != "unresolved in A"]
    agreeing = sum(a["status"] == "agrees" for a in answered)
    opposite = sum(f["status"] == "opposite" for f in record["findings"])
    verdict = "**replicated**" if record.get("replicated") else "**not replicated**"
    lines = [
        f"Replication of {record['study']} ({record['preset']}): seeds {seeds_a} vs "
        f"{'fresh ' if record['fresh_seeds'] else ''}seeds {seeds_b}: {verdict} — {agreeing} of the "
        f"{len(answered)} questions the original answered get the same verdict, and {opposite} finding"
        f"{'s are' if opposite != 1 else ' is'} opposite.",
        "",
    ]
    if record["answers"]:
        lines += ["| question | original | replication | status |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(a['question'])} | {a['verdict_a']} | {a['verdict_b'] or '—'} | {a['status']} |"
            for a in record["answers"]
        ]
        lines.append("")
    counts = record["counts"]
    resolved = sum(n for st, n in counts.items() if st != "unresolved in A")
    lines.append(
        f"Of the {resolved} findings the original resolved, {counts['agrees']} agree, {counts.get('compatible', 0)} "
        f"are compatible (the same within a bound in one, a difference inside it in the other: not a "
        f"replication), {counts['not resolved']} are not resolved, {counts['opposite']} are opposite and "
        f"{counts['missing']} are missing in the replication."
    )
    for f in record["findings"]:
        if f["status"] in ("agrees", "unresolved in A"):
            continue
        lines.append(f"- {f['status']} in the replication ({f['outcome_b'] or '—'}): {f['text_a']}")
        if pooled:
            lines.append(f"  - pooled estimate, seeds {seeds_p}: {f.get('text_pooled') or '—'}")
    if pooled and record["answers"]:
        lines += ["", f"The pooled estimate (seeds {seeds_p}; it contains the original's seeds, so it is shown, "
                  "not counted):", ""]  # fmt: skip
        lines += [f"- {a['question']} {a.get('numbers_pooled') or '—'}" for a in record["answers"]]
    return "\n".join(lines)


def _seed_range(seeds: Any) -> str:
    """``0–5`` for consecutive seeds, else the list."""
    values = [int(s) for s in seeds]
    if len(values) > 2 and values == list(range(values[0], values[0] + len(values))):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(map(str, values))
