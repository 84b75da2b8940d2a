"""``toylab reproduce all``: every registered finding checked on its study's run, as one HTML report.

:func:`run_all` runs the studies the chosen findings need (resuming finished ones), checks each
finding (:mod:`toylab.experiments.findings`) and writes ``report.html`` and ``findings.json``.
"""

from toylab.report.runner import run_all, tables

__all__ = ["run_all", "tables"]
