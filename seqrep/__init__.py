"""seqrep: notebooks and helpers to learn, diagnose and fix sequence models that do not learn.

Every helper the notebooks use is importable from here; each lives in the module of its idea:
data (datasets), model (the fixed classifier), legacy (the broken original), train (fit),
runlog (run log, show-latest-epoch), doctor (check_training, watch: the silent-bug checks),
gradients (gradient monitor), imbalance (class
imbalance), live (live curves, widget panel), plots (static figures), notebooks (headless runs),
cli (the `seqrep` command).
"""

from .data import SequenceDataset, check_arrays, list_datasets, load_dataset, make_sequences
from .doctor import KINDS, TrainingReport, check_training, watch
from .errors import SeqrepError
from .gradients import GradientFlowError, GradientMonitor, GradientReport, check_gradient_flow
from .imbalance import (
    ClassReport,
    ClassStats,
    FocalLoss,
    LogitAdjustedLoss,
    adjust_logits,
    class_stats,
    class_weights,
    per_class_report,
    split_per_class,
)
from .legacy import LegacyClassifier
from .live import LivePlot, Panel, overlay, run_labels
from .model import SequenceClassifier, parameter_counts
from .notebooks import key_numbers
from .plots import plot_runs
from .runlog import latest_epoch, read_log, show_latest_epoch
from .train import (
    Callback,
    FitResult,
    NonFiniteLossError,
    TrainConfig,
    build_model,
    evaluate,
    fit,
    load_model,
    new_run_dir,
    predict_logits,
)

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "Callback",
    "ClassReport",
    "ClassStats",
    "FitResult",
    "FocalLoss",
    "GradientFlowError",
    "GradientMonitor",
    "GradientReport",
    "LegacyClassifier",
    "LivePlot",
    "LogitAdjustedLoss",
    "NonFiniteLossError",
    "Panel",
    "SeqrepError",
    "SequenceClassifier",
    "SequenceDataset",
    "TrainConfig",
    "TrainingReport",
    "adjust_logits",
    "build_model",
    "check_arrays",
    "check_gradient_flow",
    "check_training",
    "class_stats",
    "class_weights",
    "evaluate",
    "fit",
    "key_numbers",
    "latest_epoch",
    "list_datasets",
    "load_dataset",
    "load_model",
    "make_sequences",
    "new_run_dir",
    "overlay",
    "parameter_counts",
    "per_class_report",
    "plot_runs",
    "predict_logits",
    "read_log",
    "run_labels",
    "show_latest_epoch",
    "split_per_class",
    "watch",
]
