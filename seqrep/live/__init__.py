"""Watching training: `LivePlot` (live curves, a `fit` callback) in figure.py, and `Panel`
(the ipywidgets hyperparameter panel that trains in a background thread) in panel.py.
Overlays of finished or running runs are static figures: `seqrep.plot_runs`."""

from .figure import LIVE_PNG, LivePlot
from .panel import (
    SHIPPED_DATASETS,
    Panel,
    PanelRun,
    default_datasets,
    parse_kernel_sizes,
    parse_whole,
)

__all__ = ["LIVE_PNG", "SHIPPED_DATASETS", "LivePlot", "Panel", "PanelRun", "default_datasets",
           "parse_kernel_sizes", "parse_whole"]
