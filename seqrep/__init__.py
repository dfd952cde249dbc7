"""seqrep: notebooks and helpers to learn, diagnose and fix sequence models that do not learn.

Every helper the notebooks use is importable from here; each lives in the module of its idea:
config (TrainConfig, ModelSpec), data (datasets), model (the fixed classifier), legacy (the
broken original), train (fit), callbacks (fit's events and built-in callbacks), checkpoint,
runlog (run log, show-latest-epoch), diagnosis (`diagnose`: read any training log and name why it is not
learning), doctor (check_training, watch, check_gradient_flow: the
silent-bug checks), imbalance (class
imbalance), live (live curves, widget panel), plots (static figures), notebooks (headless runs),
cli (the `seqrep` command).
"""

from importlib.metadata import PackageNotFoundError, version

from .callbacks import Callback, CancelFit, GradientMonitor, NonFiniteLossError
from .checkpoint import load_model
from .config import ModelSpec, TrainConfig
from .data import SequenceDataset, check_arrays, list_datasets, load_dataset, make_sequences
from .diagnosis import diagnose
from .doctor import (
    KINDS,
    GradientFlowError,
    GradientReport,
    TrainingReport,
    check_gradient_flow,
    check_training,
    watch,
)
from .errors import SeqrepError
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
from .live import LivePlot, Panel
from .model import SequenceClassifier, build_model, parameter_counts
from .notebooks import key_numbers
from .plots import overlay, plot_runs, run_labels
from .runlog import latest_epoch, read_log, show_latest_epoch
from .train import FitResult, FitState, check_fit_inputs, evaluate, fit, new_run_dir, predict_logits

try:
    __version__ = version("seqrep")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown"

__all__ = [
    "KINDS",
    "Callback",
    "CancelFit",
    "ClassReport",
    "ClassStats",
    "FitResult",
    "FitState",
    "FocalLoss",
    "GradientFlowError",
    "GradientMonitor",
    "GradientReport",
    "LegacyClassifier",
    "LivePlot",
    "LogitAdjustedLoss",
    "ModelSpec",
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
    "check_fit_inputs",
    "check_gradient_flow",
    "check_training",
    "class_stats",
    "class_weights",
    "diagnose",
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
