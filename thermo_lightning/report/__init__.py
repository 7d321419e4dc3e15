"""The report: a folder of runs (a sweep, or Lightning's own log folders) into the paper's
results (``thermo-lightning report``).

- :mod:`.make`: :func:`make_report`, as its stages;
- :mod:`.output`: where a report writes (a staging folder, its manifest) and what it never
  touches;
- :mod:`.summary`: one run's tail, :class:`Regime` and :class:`Exclusion`;
- :mod:`.temperature`: ``T`` along the sweep, the power law, the batch-size collapse, ``F``
  along every run;
- :mod:`.intervals`: intervals over seeds and the within-run bootstrap;
- :mod:`.figures`: the PNG figures;
- :mod:`.tensorboard_view`: what the report writes for TensorBoard.

The report reads runs through :mod:`thermo_lightning.runs` and never imports the sweep, the
launchers or the meter; reading and the tables need neither torch nor Lightning.
"""

from thermo_lightning.report.make import ReportResult, make_report
from thermo_lightning.report.summary import (
    REGIMES,
    Exclusion,
    Regime,
    RunSummary,
    classify_regime,
    final_stride_points,
    summarize_run,
    tail_bootstrap_of,
    window_spec,
)
from thermo_lightning.report.temperature import batch_size_collapse, free_energy_along_runs
from thermo_lightning.runs.layout import find_runs
from thermo_lightning.runs.read import RunData, read_run

__all__ = [
    "REGIMES",
    "Exclusion",
    "Regime",
    "ReportResult",
    "RunData",
    "RunSummary",
    "batch_size_collapse",
    "classify_regime",
    "final_stride_points",
    "find_runs",
    "free_energy_along_runs",
    "make_report",
    "read_run",
    "summarize_run",
    "tail_bootstrap_of",
    "window_spec",
]
