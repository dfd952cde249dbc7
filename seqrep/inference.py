"""Who sets train/eval modes, and inference on a whole dataset.

`modes(model, training)` is the one place a mode is switched: it puts the model in train() or
eval() for the block and restores every module's own mode afterwards (fastai's
TrainEvalCallback keeps modes in one owner too). `fit` trains its steps under
`modes(model, True)` and evaluates under `modes(model, False)`; the planner times its steps the
same way; `predict_logits` and `evaluate` leave the model in the mode they found it in.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score
from torch import nn

from .data import SequenceDataset
from .errors import SeqrepError

__all__ = ["check_device", "evaluate", "modes", "predict_logits"]


def check_device(device) -> torch.device:
    """`device` ('cpu', 'cuda:1', a torch.device) as a torch.device this machine can use, or a
    SeqrepError saying why not: a name torch does not know ('banana'), a backend this build of
    torch lacks (CUDA on a CPU-only build), or a device that is not there ('cuda:3')."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SeqrepError(
            f"device {device!r} is not a device name; use 'cpu', 'cuda', 'cuda:1' or 'mps' (--device cpu)."
        ) from None
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as err:
        reason = (str(err).strip() or type(err).__name__).splitlines()[0].split(". ")[0][:160]
        raise SeqrepError(
            f"device {device!r} is not available here ({reason}; torch {torch.__version__}, CUDA "
            f"{'available' if torch.cuda.is_available() else 'not available'}). Use --device cpu "
            "(device='cpu'), or install a torch build for that device."
        ) from None
    return dev


@contextlib.contextmanager
def modes(model: nn.Module, training: bool):
    """`model.train(training)` for the block; afterwards every module is back in the mode it
    was in before (a module the caller had frozen in eval() stays so)."""
    found = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, was in found:
            module.training = was


def predict_logits(model: nn.Module, ds: SequenceDataset, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """(n, n_classes) logits of the whole dataset on the CPU: in eval() mode and under
    no_grad (model(x, training=False)), batches moved to `device`; the model's modes are
    restored afterwards."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SeqrepError(f"batch_size must be a whole number >= 1, got {batch_size!r}.")
    if not isinstance(ds, SequenceDataset):
        raise SeqrepError(f"expected a seqrep.SequenceDataset, got {type(ds).__name__}; wrap arrays with "
                          "SequenceDataset(X, y, class_names).")
    device = check_device(device)
    x_all, m_all = torch.from_numpy(ds.X), None if ds.mask is None else torch.from_numpy(ds.mask)
    out = []
    with modes(model, False), torch.no_grad():
        for first in range(0, len(ds), batch_size):
            x = x_all[first:first + batch_size].to(device)
            m = None if m_all is None else m_all[first:first + batch_size].to(device)
            out.append(model(x, training=False, mask=m).float().cpu())
    return torch.cat(out)


def evaluate(model: nn.Module, ds: SequenceDataset, batch_size: int = 256, device="cpu") -> dict:
    """{"loss", "accuracy", "balanced_accuracy", "macro_f1"} of `model` on `ds` (as
    `predict_logits`: eval() mode, no_grad, modes restored; macro-F1 over the classes present
    in ds)."""
    logits = predict_logits(model, ds, batch_size, device)
    pred = logits.argmax(1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        bal = balanced_accuracy_score(ds.y, pred)
    return {
        "loss": float(nn.functional.cross_entropy(logits, torch.from_numpy(ds.y))),
        "accuracy": float((pred == ds.y).mean()),
        "balanced_accuracy": float(bal),
        "macro_f1": float(f1_score(ds.y, pred, labels=np.unique(ds.y), average="macro", zero_division=0)),
    }
