"""The HTML report of a study, and the figures in it. Reads run directories only; never trains.

The report sits above the studies: it reads any study directory through :mod:`depthlab.studies` and renders
the sections, tables and figures (:mod:`depthlab.present`) each study declares, without knowing which study
made them. :mod:`.html` builds the page, :mod:`.readme` the blocks the README quotes, :mod:`.answers` groups
findings under their questions, :mod:`.why` adds the "Why it works" section and :mod:`.figures` draws
``depthlab gradflow``.
"""

from depthlab.report.html import Report, build_report, model_costs

__all__ = ["Report", "build_report", "model_costs"]
