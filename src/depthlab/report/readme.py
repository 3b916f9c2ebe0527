"""A study's ``results.json`` as the README quotes it: the error table and the findings, verbatim.

The README holds one block per committed study result, between ``<!-- results:NAME:start -->`` and
``<!-- results:NAME:end -->``; ``depthlab report DIR --markdown`` prints the block and a test checks that
the README's copy equals what this function makes of the committed ``results/NAME/results.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depthlab.report.format import pct

__all__ = ["results_markdown"]

_SPLITS = (("train_eval", "train error (eval mode, fitted images)"), ("train", "running train error"),
           ("test", "test error"))  # fmt: skip


def results_markdown(results: Mapping[str, Any]) -> str:
    """The README block of one ``results.json``: a table of every condition, then every finding."""
    conditions = results.get("conditions", [])
    splits = [(s, name) for s, name in _SPLITS if any(s in c["error"] for c in conditions)]
    if splits and splits[0][0] == "train_eval":
        splits = [s for s in splits if s[0] != "train"]
    header = ["condition", "seeds", *(name for _, name in splits)]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(splits)]
    for c in conditions:
        cells = [str(c["condition"]), str(c["seeds"])]
        for split, _ in splits:
            e = c["error"].get(split)
            cells.append(pct(e["mean"], e["std"]) if e else "—")
        lines.append("| " + " | ".join(cells) + " |")
    runs = results.get("runs", [])
    if runs:
        total = sum(float(r.get("wall_seconds", 0.0)) for r in runs)
        lines += [
            "",
            f"{len(runs)} runs; their wall times (each run's `summary.json`) add up to {total:.0f} s.",
        ]
    lines.append("")
    lines += [f"- {text}" for text in results.get("findings", [])]
    return "\n".join(lines)
