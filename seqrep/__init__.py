"""seqrep: notebooks and helpers to learn, diagnose and fix sequence models that do not learn.

Every helper the notebooks use is importable from here; each lives in one module of its idea:
data (datasets), imbalance (class statistics), cli (the `seqrep` command).
"""

from .data import SequenceDataset, check_arrays, list_datasets, load_dataset, make_sequences
from .errors import SeqrepError
from .imbalance import ClassStats, class_stats

__version__ = "0.1.0"

__all__ = [
    "ClassStats",
    "SeqrepError",
    "SequenceDataset",
    "check_arrays",
    "class_stats",
    "list_datasets",
    "load_dataset",
    "make_sequences",
]
