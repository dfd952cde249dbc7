"""seqrep: notebooks and helpers to learn, diagnose and fix sequence models that do not learn.

Every helper the notebooks use is importable from here; each lives in the module of its idea:
data (datasets), model (the fixed classifier), legacy (the broken original), train (fit),
runlog (run log, show-latest-epoch), imbalance (class statistics), notebooks (headless runs),
cli (the `seqrep` command).
"""

from .data import SequenceDataset, check_arrays, list_datasets, load_dataset, make_sequences
from .errors import SeqrepError
from .imbalance import ClassStats, class_stats
from .legacy import LegacyClassifier
from .model import SequenceClassifier, parameter_counts
from .notebooks import key_numbers
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
)

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "ClassStats",
    "FitResult",
    "LegacyClassifier",
    "NonFiniteLossError",
    "SeqrepError",
    "SequenceClassifier",
    "SequenceDataset",
    "TrainConfig",
    "build_model",
    "check_arrays",
    "class_stats",
    "evaluate",
    "fit",
    "key_numbers",
    "latest_epoch",
    "list_datasets",
    "load_dataset",
    "load_model",
    "make_sequences",
    "new_run_dir",
    "parameter_counts",
    "read_log",
    "show_latest_epoch",
]
