"""Datasets. Every entry point returns a `SequenceDataset`: X as (n, channels, time) float32,
y as int64 labels 0..K-1, the original class names, an optional padding mask and, for
synthetic data, where the class motifs were planted.

validation.py: the dataset type and its checks; classes.py: class statistics (scarcity vs
imbalance); synthetic.py: the post-mortem's scenario; archives.py: the UCR/UEA readers and
where datasets are found.
"""

from .archives import (
    FORMATS,
    SPLITS,
    data_dirs,
    dataset_files,
    find_dataset,
    list_datasets,
    load_dataset,
    load_train_val,
    read_file,
)
from .classes import ClassStats, class_stats
from .synthetic import class_sizes, make_sequences
from .validation import (
    SequenceDataset,
    channel_spread,
    check_arrays,
    check_train_val,
    scale_problem,
    stratified_split,
)

__all__ = [
    "FORMATS",
    "SPLITS",
    "ClassStats",
    "SequenceDataset",
    "channel_spread",
    "check_arrays",
    "check_train_val",
    "class_sizes",
    "class_stats",
    "data_dirs",
    "dataset_files",
    "find_dataset",
    "list_datasets",
    "load_dataset",
    "load_train_val",
    "make_sequences",
    "read_file",
    "scale_problem",
    "stratified_split",
]
