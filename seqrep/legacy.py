"""THE BUG. The original classifier of the post-mortem, kept for notebook 01. Do not copy.

Its `extract_features()` always switches the representation to eval(), runs it under
torch.no_grad() and converts the features to numpy; `forward()` turns them back into a tensor
for the readout. Every representation parameter is still in the optimizer, so the parameter
count looks right, but no gradient can reach them: only the linear readout ever learns, on top
of frozen random features. `seqrep.SequenceClassifier` is the fixed version.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from .config import ModelSpec
from .errors import SeqrepError
from .model import make_readout, make_representation

__all__ = ["BUG_LINES", "AblatedClassifier", "LegacyClassifier"]


class LegacyClassifier(nn.Module):
    """The broken original (same representation and readout as the fixed model).

    x: (batch, channels, time), mask: (batch, time) or None -> logits (batch, n_classes).
    """

    def __init__(self, in_channels: int, n_classes: int, length: int, spec: ModelSpec | None = None):
        super().__init__()
        self.spec = (spec or ModelSpec()).resolved(length)
        self.representation = make_representation(in_channels, self.spec, length)
        # the original sizes the readout by formula (a data-fitted start knows its own size)
        width = getattr(self.representation, "feature_dim", 2 * self.spec.width)
        self.dropout, self.readout = make_readout(width, n_classes, self.spec)

    def extract_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray:
        self.representation.eval()  # BUG 1: always eval(), even while training
        with torch.no_grad():  # BUG 2: no autograd graph, so no gradient can flow back
            features = self.representation(x, mask)
        return features.cpu().numpy()  # BUG 3: numpy round-trip breaks the graph for good

    def forward(
        self, x: torch.Tensor, training: bool | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        features = self.extract_features(x, mask)
        features = torch.from_numpy(features).to(x.device)
        return self.readout(self.dropout(features))


BUG_LINES = ("eval", "no_grad", "numpy")  # the three lines of extract_features, in order


class AblatedClassifier(LegacyClassifier):
    """The broken original with any subset of its three lines (notebook 01's ablation).

    bugs: a subset of BUG_LINES. "eval": the representation always in eval() mode (BatchNorm on its
    running statistics); "no_grad": features computed under torch.no_grad(); "numpy": the
    features go through `.detach().cpu().numpy()` and back (`.numpy()` refuses a tensor that
    requires grad, so code that keeps autograd on must detach: the same cut). All three is
    LegacyClassifier; none is the fixed model (same architecture, modes follow model.train() /
    model.eval()).

    x: (batch, channels, time), mask: (batch, time) or None -> logits (batch, n_classes).
    """

    def __init__(self, in_channels: int, n_classes: int, length: int, spec: ModelSpec | None = None,
                 bugs=BUG_LINES):
        unknown = set(bugs) - set(BUG_LINES)
        if unknown:
            raise SeqrepError(f"AblatedClassifier: unknown bugs {sorted(unknown)}; choose from {BUG_LINES}.")
        super().__init__(in_channels, n_classes, length, spec)
        self.bugs = frozenset(bugs)

    def extract_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if "eval" in self.bugs:
            self.representation.eval()  # BUG 1 (otherwise modes are the caller's, as in the fix)
        with torch.no_grad() if "no_grad" in self.bugs else contextlib.nullcontext():
            features = self.representation(x, mask)
        if "numpy" in self.bugs:
            features = torch.from_numpy(features.detach().cpu().numpy()).to(x.device)
        return features

    def forward(
        self, x: torch.Tensor, training: bool | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.readout(self.dropout(self.extract_features(x, mask)))

