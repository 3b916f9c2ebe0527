"""Answers first: a study's questions with their verdicts, then its findings grouped under them.

Shared by the HTML report, the README block and the CLI so that all three group findings the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from depthlab.i18n import N_, _

__all__ = ["group_findings", "OTHER"]

OTHER = N_("Other findings")


def group_findings(answers: Sequence[Any], findings: Sequence[Any]) -> list[tuple[str, list[Any]]]:
    """(question, findings) in the order of ``answers``; findings under no listed question come last under
    :data:`OTHER` (in the reader's language). Works on :class:`~depthlab.studies.engine.Answer`/``Finding`` objects and on their
    ``to_dict()`` forms (``results.json``)."""

    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key)

    groups: dict[str, list[Any]] = {get(a, "id"): [] for a in answers}
    titles = {get(a, "id"): get(a, "question") for a in answers}
    other: list[Any] = []
    for f in findings:
        groups.get(get(f, "question") or "", other).append(f)
    out = [(titles[k], v) for k, v in groups.items() if v]
    if other:
        out.append((_(OTHER), other))
    return out
