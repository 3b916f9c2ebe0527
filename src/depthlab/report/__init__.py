"""The HTML report of a study, and the figures in it. Reads run directories only; never trains.

``report.types`` (sections, tables, figures) is what studies build; it is imported by the study engine, so
this package loads ``report.html`` (which reads studies through the engine) only when it is asked for.
"""

from typing import Any

__all__ = ["Report", "build_report", "model_costs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from depthlab.report import html

        return getattr(html, name)
    raise AttributeError(f"module 'depthlab.report' has no attribute {name!r}")
