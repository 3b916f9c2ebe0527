"""What studies and analyses hand to a reader, below everything that computes it: report sections, tables and
figures (:mod:`.types`), how numbers are written (:mod:`.format`) and the generic plots (:mod:`.plots`).

A study builds these; the report (:mod:`depthlab.report`) renders them without knowing which study they came
from. Nothing here imports the rest of depthlab, and matplotlib is imported on first use
(:func:`.plots.pyplot`), not when a module is imported.
"""
