"""seqrep: notebooks and helpers to learn, diagnose and fix sequence models that do not learn.

The names below are the public API, one way to each thing; everything else is importable from
the module of its idea: config (TrainConfig, ModelSpec), data (datasets, class statistics),
rocket (the data-fitted start), model (the fixed classifier), legacy (the broken original),
build (a model from a config), imbalance (class-imbalance remedies), runlog, checkpoint, diagnosis (`diagnose`: read any
training log and name why it is not learning),
doctor (check_training, watch: the silent-bug checks), inference (modes, predict_logits,
evaluate), callbacks (fit's events), plan (epochs, schedule, time budget), builtin (fit's
built-in callbacks), train (fit), experiments (the remedy grid), plots, live (live curves,
widget panel), notebooks (headless runs), cli (the `seqrep` command). CONTRIBUTING.md draws
how they layer.
"""

from importlib.metadata import PackageNotFoundError, version

from .build import build_model
from .builtin import GradientMonitor
from .callbacks import Callback, CancelFit, FitState
from .checkpoint import load_model
from .config import ModelSpec, TrainConfig
from .data import SequenceDataset, class_stats, list_datasets, load_dataset, make_sequences
from .diagnosis import diagnose
from .doctor import KINDS, TrainingBugError, check_training, watch
from .errors import SeqrepError
from .imbalance import per_class_report
from .inference import evaluate, predict_logits
from .legacy import LegacyClassifier
from .live import LivePlot, Panel
from .model import SequenceClassifier, parameter_counts
from .notebooks import key_numbers
from .plots import plot_runs
from .runlog import read_log, show_latest_epoch
from .train import FitResult, fit, new_run_dir, show_training_loop

try:
    __version__ = version("seqrep")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown"

__all__ = [
    "KINDS",
    "Callback",
    "CancelFit",
    "FitResult",
    "FitState",
    "GradientMonitor",
    "LegacyClassifier",
    "LivePlot",
    "ModelSpec",
    "Panel",
    "SeqrepError",
    "SequenceClassifier",
    "SequenceDataset",
    "TrainConfig",
    "TrainingBugError",
    "build_model",
    "check_training",
    "class_stats",
    "diagnose",
    "evaluate",
    "fit",
    "key_numbers",
    "list_datasets",
    "load_dataset",
    "load_model",
    "make_sequences",
    "new_run_dir",
    "parameter_counts",
    "per_class_report",
    "plot_runs",
    "predict_logits",
    "read_log",
    "show_latest_epoch",
    "show_training_loop",
    "watch",
]
