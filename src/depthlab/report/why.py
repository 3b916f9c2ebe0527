"""The report's "Why it works" section: lesion, path-length, loss-landscape and attribution results that
``depthlab lesion|landscape|attribute`` (or ``depthlab study … --analyses``) stored in the study's run
directories. Reads JSON and PNG files only; computes nothing."""

from __future__ import annotations

from depthlab.i18n import _
from depthlab.present.types import ReportFigure, Section
from depthlab.studies.results import StudyResult
from depthlab.studies.why import ATTRIBUTIONS
from depthlab.studies.why import why_section as collect

__all__ = ["why_section"]


def why_section(result: StudyResult) -> Section | None:
    """The section, or ``None`` when no run of ``result`` holds an analysis result."""

    figures, sentences = collect([r.run_dir for r in result.runs])
    if not figures and not sentences:
        return None
    return Section(
        "why",
        _("Why it works: lesions, paths, loss landscapes, attributions"),
        text=tuple(sentences),
        figures=tuple(
            ReportFigure(
                _title(title),
                caption,
                png,
                "why_" + "".join(c if c.isalnum() else "_" for c in title.lower()),
            )
            for title, caption, png in figures
        ),
    )


def _title(title: str) -> str:
    """An English figure title of :func:`~depthlab.studies.why.why_section` in the reader's language (the PNG
    keeps the English name)."""
    prefix = ATTRIBUTIONS.split("{", 1)[0]
    if title.startswith(prefix):
        return _(ATTRIBUTIONS).format(label=title.removeprefix(prefix))
    return _(title)
