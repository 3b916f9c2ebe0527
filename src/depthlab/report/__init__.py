"""The HTML report of a study, and the figures in it. Reads run directories only; never trains."""

from depthlab.report.html import Report, build_report, model_costs

__all__ = ["Report", "build_report", "model_costs"]
