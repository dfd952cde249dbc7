"""Datasets. Every entry point returns a `SequenceDataset`: X as (n, channels, time) float32,
y as int64 labels 0..K-1, the original class names, an optional padding mask and, for
synthetic data, where the class motifs were planted.

validation.py: the dataset type and its checks; synthetic.py: the seed scenario;
archives.py: the UCR/UEA readers and where datasets are found.
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
from .synthetic import class_sizes, make_sequences
from .validation import SequenceDataset, check_arrays, check_train_val, stratified_split

__all__ = [
    "FORMATS",
    "SPLITS",
    "SequenceDataset",
    "check_arrays",
    "check_train_val",
    "class_sizes",
    "data_dirs",
    "dataset_files",
    "find_dataset",
    "list_datasets",
    "load_dataset",
    "load_train_val",
    "make_sequences",
    "read_file",
    "stratified_split",
]
