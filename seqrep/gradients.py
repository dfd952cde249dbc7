"""Gradient monitoring during training (`GradientMonitor`), and the gradient-flow check's
names kept where earlier code imports them from.

The gradient-flow check itself (`check_gradient_flow`, its report and findings) lives in the
doctor package, `seqrep.doctor.graph`, beside the other pre-flight checks of `check_training`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .doctor.graph import check_gradient_flow
from .doctor.report import BLOCKING, Finding, GradientFlowError, GradientReport
from .errors import SeqrepError

__all__ = ["BLOCKING", "Finding", "GradientFlowError", "GradientMonitor", "GradientReport", "check_gradient_flow"]


class GradientMonitor:
    """Training callback: every `every` optimizer steps, record per-component (and with
    per_parameter=True per-parameter) gradient norms and update-to-weight ratios
    (log10 of std(actual update) / std(weights); Karpathy's rule of thumb: about -3), and the
    fraction of dead ReLU channels (zero for the whole batch). Epoch means go into the run log
    under "monitor"; `history` keeps every sample; `plot()` draws the update-ratio heatmap.
    """

    def __init__(self, every: int = 10, per_parameter: bool = False):
        if every < 1:
            raise SeqrepError(f"GradientMonitor: every must be >= 1, got {every}.")
        self.every, self.per_parameter = every, per_parameter
        self.history: list[dict] = []
        self._handles, self._epoch_rows, self._snapshot = [], [], None
        self._dead: dict[str, float] = {}

    def _groups(self, model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
        if self.per_parameter:
            return {n: [(n, p)] for n, p in model.named_parameters() if p.requires_grad}
        groups: dict = {}
        for n, p in model.named_parameters():
            if p.requires_grad:
                key = ".".join(n.split(".")[:2]) if n.count(".") >= 2 else n.split(".")[0]
                groups.setdefault(key, []).append((n, p))
        return groups

    def on_fit_start(self, state) -> None:
        self.state = state
        self.groups = self._groups(state.model)
        opt = state.optimizer
        self._handles = [opt.register_step_pre_hook(self._before), opt.register_step_post_hook(self._after)]
        for name, module in state.model.named_modules():
            if isinstance(module, nn.ReLU):
                self._handles.append(module.register_forward_hook(self._relu_hook(name)))

    def _step(self) -> int:
        """1-based number of the optimizer step in progress (fit counts completed steps)."""
        return self.state.global_step + 1

    def _due(self) -> bool:
        return self._step() % self.every == 0

    def _relu_hook(self, name):
        def hook(module, args, output):
            if module.training and torch.is_grad_enabled() and self._due() and output.dim() >= 2:
                alive = output.detach().flatten(2).amax(dim=(0, 2)) if output.dim() > 2 else output.detach().amax(0)
                self._dead[name] = float((alive <= 0).float().mean())
        return hook

    def _before(self, optimizer, args, kwargs) -> None:
        if not self._due():
            return
        self._snapshot = {k: [p.detach().clone() for _, p in ps] for k, ps in self.groups.items()}
        self._grads = {}
        for k, ps in self.groups.items():
            gs = [p.grad for _, p in ps if p.grad is not None]
            self._grads[k] = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in gs]))) if gs else None

    def _after(self, optimizer, args, kwargs) -> None:
        if self._snapshot is None:
            return
        ratios = {}
        for k, ps in self.groups.items():
            delta = torch.cat([(p.detach() - b).flatten() for (_, p), b in zip(ps, self._snapshot[k])])
            weights = torch.cat([p.detach().flatten() for _, p in ps])
            r = float(delta.std() / weights.std().clamp(min=1e-12)) if delta.numel() > 1 else 0.0
            ratios[k] = math.log10(r) if r > 0 else float("-inf")
        row = {"step": self._step(), "epoch": self.state.epoch, "grad_norm": self._grads,
               "update_ratio": ratios, "dead_relu": dict(self._dead)}
        self.history.append(row)
        self._epoch_rows.append(row)
        self._snapshot = None

    def epoch_metrics(self, state) -> dict:
        rows, self._epoch_rows = self._epoch_rows, []
        if not rows:
            return {}

        def mean(key):
            keys = rows[-1][key].keys()
            out = {}
            for k in keys:
                vals = [r[key].get(k) for r in rows if r[key].get(k) is not None]
                finite = [v for v in vals if math.isfinite(v)]
                out[k] = float(np.mean(finite)) if finite else (vals[0] if vals else None)
            return out

        return {"monitor": {"samples": len(rows), "grad_norm": mean("grad_norm"),
                            "update_ratio": mean("update_ratio"), "dead_relu": mean("dead_relu")}}

    def on_fit_end(self, state, result) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def plot(self, key: str = "update_ratio", ax=None):
        """Heatmap of `key` ("update_ratio", "grad_norm" (log10) or "dead_relu") per
        component (rows) over optimizer steps (columns)."""
        import matplotlib.pyplot as plt

        if not self.history:
            raise SeqrepError("GradientMonitor.plot: nothing recorded yet; pass the monitor to fit(callbacks=[...]).")
        names = list(self.history[-1][key].keys())
        grid = np.full((len(names), len(self.history)), np.nan)
        for j, row in enumerate(self.history):
            for i, n in enumerate(names):
                v = row[key].get(n)
                if v is not None:
                    grid[i, j] = math.log10(v) if key == "grad_norm" and v > 0 else v
        grid[~np.isfinite(grid)] = np.nan
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
        steps = [r["step"] for r in self.history]
        label = {"update_ratio": "log10(update std / weight std)", "grad_norm": "log10 gradient norm",
                 "dead_relu": "fraction of dead ReLU channels"}[key]
        kwargs = {"vmin": -5, "vmax": -1, "cmap": "coolwarm"} if key == "update_ratio" else {"cmap": "viridis"}
        image = ax.imshow(grid, aspect="auto", interpolation="nearest",
                          extent=(steps[0] - 0.5, steps[-1] + 0.5, len(names) - 0.5, -0.5), **kwargs)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=7)
        ax.set_xlabel("optimizer step")
        ax.figure.colorbar(image, ax=ax, label=label)
        ax.figure.tight_layout()
        return ax.figure
