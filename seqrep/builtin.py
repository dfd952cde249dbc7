"""fit's built-in callbacks, and `GradientMonitor`, the finer gradient statistics you add.

Built in, in the order they run (`seqrep.train.show_training_loop()` prints it): `StopSignals`
(-100), `RidgeReadout` (-70, a data-fitted start's objective and readout), the `NonFiniteGuard` (-60), the pre-flight `GradientGuard` (-50,
`seqrep.check_training`; config.check_gradients), `WatchTraining` (-45, `seqrep.watch`),
`GradientStats` (-40: per-component gradient norm and update ratio in every epoch record), the
user's callbacks (0), `TimeBudget` (80, budget-planned runs; `seqrep.plan`), the
`Checkpointer` (90), the `RunLogger` (95: an epoch is logged only once its checkpoint is
written), the `ProgressBar` (100). `fit(..., without=(...))` leaves out any of them by name.
"""

from __future__ import annotations

import math
import signal
import threading
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .callbacks import Callback, CancelFit, FitState, training_batches
from .checkpoint import data_summary, save_checkpoint
from .doctor import BLOCKING, TrainingBugError, check_training, watch
from .errors import SeqrepError, warn
from .inference import evaluate, modes
from .model import frozen_by_design, has_ridge_readout
from .plots import plot_monitor
from .rocket import LeaveOneOut

__all__ = [
    "Checkpointer",
    "GradientGuard",
    "GradientMonitor",
    "GradientStats",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "ProgressBar",
    "RidgeReadout",
    "RunLogger",
    "StopSignals",
    "WatchTraining",
]


class NonFiniteLossError(SeqrepError):
    """The loss, the weights or the validation loss became NaN or Inf; training stopped and the
    last good checkpoint (if any) is kept."""


# --------------------------------------------------------------------------------------------
# Gradient statistics (the maths shared by GradientStats and GradientMonitor)
# --------------------------------------------------------------------------------------------


def grad_norms(groups: dict[str, list[nn.Parameter]]) -> dict[str, float | None]:
    """Per group: L2 norm of all its gradients; None when none of them has a gradient."""
    out = {}
    for name, params in groups.items():
        grads = [p.grad for p in params if p.grad is not None]
        out[name] = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else None
    return out


def snapshot(groups: dict[str, list[nn.Parameter]]) -> dict[str, list[torch.Tensor]]:
    return {name: [p.detach().clone() for p in params] for name, params in groups.items()}


def update_ratios(groups: dict[str, list[nn.Parameter]], before: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """Per group: log10(std of the last update / std of the weights); -inf = no update.
    Karpathy's rule of thumb: about -3."""
    out = {}
    for name, params in groups.items():
        delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before[name])])
        weights = torch.cat([p.detach().flatten() for p in params])
        ratio = float(delta.std() / weights.std().clamp(min=1e-12)) if delta.numel() > 1 else 0.0
        out[name] = math.log10(ratio) if ratio > 0 else float("-inf")
    return out


class GradientStats(Callback):
    """Built in: per component (`seqrep.model.components`) with trainable parameters, the
    gradient L2 norm of those averaged over
    the epoch's steps (before clipping; None when no gradient reached it) and the update ratio
    of the epoch's last step, written to the epoch record as "grad_norm" and "update_ratio".
    The running sums live in state.sums, so a resumed epoch continues them."""

    order = -40

    def before_fit(self, state: FitState) -> None:
        # Trainable parameters only: a part frozen on purpose (requires_grad=False, e.g. the
        # solved readout of a data-fitted start) gets no gradient by design, not by a bug.
        trainable = {k: [p for p in ps if p.requires_grad] for k, ps in state.components.items()}
        self.groups, self.before = {k: ps for k, ps in trainable.items() if ps}, None

    def after_backward(self, state: FitState) -> None:
        sums = state.sums.setdefault("grad", {k: 0.0 for k in self.groups})
        for k, v in grad_norms(self.groups).items():
            sums[k] = None if v is None or sums.get(k) is None else sums[k] + v
        state.sums["grad_steps"] = state.sums.get("grad_steps", 0) + 1
        if state.step == state.steps_per_epoch - 1:
            self.before = snapshot(self.groups)

    def after_step(self, state: FitState) -> None:
        if self.before is not None:
            state.sums["update_ratio"] = update_ratios(self.groups, self.before)
            self.before = None

    def after_epoch(self, state: FitState) -> None:
        steps = max(state.sums.get("grad_steps", 0), 1)
        state.record["grad_norm"] = {k: None if v is None else v / steps
                                     for k, v in state.sums.get("grad", {}).items()}
        state.record["update_ratio"] = state.sums.get("update_ratio", {})


class GradientMonitor(Callback):
    """Every `every` optimizer steps: per-group (per-block, or per-parameter with
    per_parameter=True) gradient norms (before clipping) and update-to-weight ratios
    (log10 of std(actual update) / std(weights); Karpathy's rule of thumb: about -3), and the
    fraction of dead ReLU channels (zero for the whole batch). Epoch means go into the run log
    under "monitor"; `history` keeps every sample; `plot()` draws the update-ratio heatmap.
    """

    def __init__(self, every: int = 10, per_parameter: bool = False):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise SeqrepError(f"GradientMonitor: every must be a whole number >= 1, got {every!r}.")
        self.every, self.per_parameter = every, per_parameter
        self.history: list[dict] = []
        self._handles, self._rows, self._before, self._grads = [], [], None, {}
        self._dead: dict[str, float] = {}

    def _groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        groups: dict = {}
        for n, p in model.named_parameters():
            if p.requires_grad:
                key = n if self.per_parameter else ".".join(n.split(".")[:2 if n.count(".") >= 2 else 1])
                groups.setdefault(key, []).append(p)
        return groups

    def _due(self, state: FitState) -> bool:
        return (state.global_step + 1) % self.every == 0  # the step in progress, 1-based

    def before_fit(self, state: FitState) -> None:
        self.state, self.groups = state, self._groups(state.model)
        self._handles = [m.register_forward_hook(self._relu_hook(name))
                         for name, m in state.model.named_modules() if isinstance(m, nn.ReLU)]

    def _relu_hook(self, name):
        def hook(module, args, output):
            if module.training and torch.is_grad_enabled() and self._due(self.state) and output.dim() >= 2:
                alive = output.detach().flatten(2).amax(dim=(0, 2)) if output.dim() > 2 else output.detach().amax(0)
                self._dead[name] = float((alive <= 0).float().mean())
        return hook

    def after_backward(self, state: FitState) -> None:
        if self._due(state):
            self._grads, self._before = grad_norms(self.groups), snapshot(self.groups)

    def after_step(self, state: FitState) -> None:
        if self._before is None:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "grad_norm": self._grads,
               "update_ratio": update_ratios(self.groups, self._before), "dead_relu": dict(self._dead)}
        self.history.append(row)
        self._rows.append(row)
        self._before = None

    def after_epoch(self, state: FitState) -> None:
        rows, self._rows = self._rows, []
        if rows:
            state.record["monitor"] = {"samples": len(rows), **{
                key: _mean_over(rows, key) for key in ("grad_norm", "update_ratio", "dead_relu")}}

    def after_fit(self, state: FitState) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def plot(self, key: str = "update_ratio", ax=None):
        """Heatmap of `key` ("update_ratio", "grad_norm" (log10) or "dead_relu") per group
        (rows) over optimizer steps (columns)."""
        if not self.history:
            raise SeqrepError("GradientMonitor.plot: nothing recorded yet; pass the monitor to fit(callbacks=[...]).")
        return plot_monitor(self.history, key, ax)


def _mean_over(rows: list[dict], key: str) -> dict:
    """Per group, the mean of the finite values of rows[i][key][group] (a non-finite value
    stands when there is nothing else, e.g. -inf for a group that never changed)."""
    out = {}
    for k in rows[-1][key]:
        vals = [r[key].get(k) for r in rows if r[key].get(k) is not None]
        finite = [v for v in vals if math.isfinite(v)]
        out[k] = float(np.mean(finite)) if finite else (vals[0] if vals else None)
    return out


# --------------------------------------------------------------------------------------------
# Built-in callbacks that guard and record the run
# --------------------------------------------------------------------------------------------


class RidgeReadout(Callback):
    """Built in for a data-fitted start: the readout is solved, never stepped; the
    representation trains on the readout's leave-one-out error (`seqrep.rocket.LeaveOneOut`).

    before_fit: solve the readout on the training set's features (the readout's inputs,
    captured by a forward pre-hook, so the broken model's numpy round trip is read as it is) and
    bank them. after_loss: the loss becomes the mean squared leave-one-out residual and
    state.logits the batch's leave-one-out scores (so the epoch's train_accuracy is a
    leave-one-out accuracy). after_step, at each epoch's last step: solve again on the new
    features, so evaluation and the checkpoint see the readout of the weights they hold (an
    epoch cut short is solved at after_epoch, after its evaluation). The representation's
    weights the bank came from are kept in `state.resumable`, so a resumed run rebuilds the
    same bank and continues bitwise. With the post-mortem's bug the captured features carry no
    gradient: the loss has none, nothing steps, and the readout is solved on the start's
    features every epoch.

    The decision rule, at each solve: training keeps an epoch only if it lowered the readout's
    exact leave-one-out error on the whole training split (`ridge_readout`'s "loo_error", the
    quantity the steps descend); an epoch that raised it is undone (the representation and
    readout go back to the best so far; the epoch record says `"kept": false`). A run whose
    every epoch is undone ends at its start, bitwise. The error is measured on the series the
    steps trained on, so it is optimistic: the rule catches steps that hurt the fit (a rate too
    large, a representation pulled apart), not overfitting.
    """

    order = -70

    def before_fit(self, state: FitState) -> None:
        self.active = has_ridge_readout(state.model)
        if not self.active:
            return
        learned = state.model.representation.learned_columns()
        self.objective = state.objective = LeaveOneOut(torch.Generator().manual_seed(state.config.seed), learned)
        self.objective.attach(state.model.readout)
        saved = state.resumable.get(type(self).__name__)
        self.best = None
        self._refit(state, saved["representation"] if saved else None, state.init_features)
        state.init_features = None  # (n, feature_dim) is large: not kept past the first solve

    def _refit(self, state: FitState, source: dict | None = None, features: torch.Tensor | None = None) -> None:
        """Solve the readout and bank the training set's features: `features` when given
        (fit_init's); a resumed run's, of the weights in `source` it banked; else the last
        features with the learned groups' columns computed again (no other column changes)."""
        representation = state.model.representation
        if features is None and source is None:
            features = self.features.clone()
            with modes(state.model, False), torch.no_grad():
                fresh = [representation.learned_features(x, mask) for x, mask in training_batches(state)]
            features[:, representation.learned_columns()] = torch.cat(fresh)
        elif features is None:
            current = {k: v.clone() for k, v in representation.state_dict().items()}
            representation.load_state_dict(source)
            with modes(state.model, False):
                features = self.objective.features(state.model, training_batches(state))
            representation.load_state_dict(current)
        y = torch.from_numpy(state.train.y).long().to(features.device)
        error = self.objective.refit(state.model.readout, features, y)["loo_error"]
        self.kept = self.best is None or error <= self.best[0]
        if not self.kept:  # the epoch raised the leave-one-out error: back to the best weights
            error, weights, features = self.best
            representation.load_state_dict(weights)
            self.objective.refit(state.model.readout, features, y)
        self.features = features
        kept = source or {k: v.clone() for k, v in representation.state_dict().items()}
        self.best = (error, kept, features)
        state.resumable[type(self).__name__] = {"representation": kept}

    def before_epoch(self, state: FitState) -> None:
        if self.active:  # steps skip the fixed groups: their features are banked (after the pre-flight check)
            state.model.representation.skip_fixed = True

    def after_loss(self, state: FitState) -> None:
        if self.active:
            state.loss, state.logits = self.objective.loss(self.objective.captured, state.index.to(state.device))

    def after_step(self, state: FitState) -> None:
        if self.active and state.steps_done == state.steps_per_epoch:
            self._refit(state)

    def after_epoch(self, state: FitState) -> None:
        if not self.active:
            return
        if state.steps_done < state.steps_per_epoch:  # an epoch cut short: solved after its evaluation
            self._refit(state)
            if not self.kept and state.val is not None:  # the record shows the weights kept
                state.record.update({f"val_{k}": v for k, v in evaluate(state.model, state.val, device=state.device).items()})
        state.record.update(loo_error=self.best[0], kept=self.kept)

    def after_fit(self, state: FitState) -> None:
        if self.active:
            self.objective.detach()
            state.model.representation.skip_fixed = False


class GradientGuard(Callback):
    """Built in (config.check_gradients, new runs only): `seqrep.check_training` on the first
    batch_size training series before the first step. A finding whose kind is in
    `seqrep.doctor.BLOCKING` (the model cannot learn, or learns the wrong thing: a cut graph, a
    module in eval mode, probabilities into the loss, batch mixing, a padding leak ...) refuses
    the run; the others (heuristics a deliberate design can trip: loss at init, step size,
    dead units, frozen parts) only warn. `seqrep.doctor.KINDS` gives each kind's reason."""

    order = -50

    def before_fit(self, state: FitState) -> None:
        if not state.config.check_gradients or state.resumed:
            return
        n = min(state.config.batch_size, len(state.train))
        index = torch.arange(n, device="cpu")  # indices into the CPU-held training set
        x, y, m = state.batch(index)
        loss_fn = state.loss_fn
        if state.objective is not None:  # the loss a data-fitted start trains on
            def loss_fn(logits, y):
                return state.objective.loss(state.objective.captured, index.to(state.device))[0]
        report = check_training(
            state.model, (x, y), loss_fn=loss_fn, optimizer=state.optimizer, mask=m,
            forward=lambda model, inputs: model(inputs, training=True, mask=m),
            expect_frozen=frozen_by_design(state.model),
        )
        state.log.append({"event": "checked", "time": time.time(), "seconds": sum(report.seconds.values()),
                          "findings": [{"kind": f.kind, "names": list(f.names), "message": f.message}
                                       for f in report.findings]})
        if any(f.kind in BLOCKING for f in report.findings):
            raise TrainingBugError(
                f"fit refused to start: the pre-flight check found problems that would waste the "
                f"run.\n{report.verdict()}\nFix them, or pass a config with check_gradients=False "
                "(seqrep train --no-check-gradients) to train anyway."
            )
        # A start fitted to the training data may fit the checked batch exactly: fit knows why
        # the loss is 0 there, so that finding is logged above but not warned about.
        expected = [f for f in report.findings if state.fitted_init and f.kind == "blocked_gradient" and report.loss == 0]
        if len(report.findings) > len(expected):
            warn(f"pre-flight check: {report.verdict()}")


class WatchTraining(Callback):
    """Built in: `seqrep.watch` on fit's own loop — accumulated gradients, a step in eval mode,
    parameters the optimizer holds that never change, a zero learning rate, non-finite loss or
    gradients. Findings warn once each and go into the epoch record as "watch"."""

    order = -45

    def before_fit(self, state: FitState) -> None:
        self.watch, self.logged = watch(state.model, state.optimizer), 0
        self.watch.start()

    def after_loss(self, state: FitState) -> None:
        self.watch.after_loss(state)

    def after_epoch(self, state: FitState) -> None:
        new, self.logged = self.watch.findings[self.logged:], len(self.watch.findings)
        if new:
            state.record["watch"] = [{"kind": f.kind, "names": list(f.names), "message": f.message} for f in new]

    def after_fit(self, state: FitState) -> None:
        self.watch.stop()


class NonFiniteGuard(Callback):
    """Built in: stop with NonFiniteLossError on a NaN/Inf training loss (at once), and at an
    epoch's end on non-finite weights or validation loss — before that epoch is logged or
    checkpointed, so the last checkpoint stays a good one."""

    order = -60

    def after_loss(self, state: FitState) -> None:
        loss = float(state.loss.detach())
        if not math.isfinite(loss):
            self._fail(state, f"the loss became {loss} at epoch {state.epoch}, step {state.step}")

    def after_epoch(self, state: FitState) -> None:
        bad = [n for n, p in state.model.named_parameters() if not torch.isfinite(p.detach()).all()]
        if bad:
            self._fail(state, f"{len(bad)} weight tensor(s) became non-finite during epoch "
                       f"{state.epoch} (e.g. {bad[0]})", "weights")
        val_loss = state.record.get("val_loss")
        if val_loss is not None and not math.isfinite(val_loss):
            self._fail(state, f"the validation loss became {val_loss} after epoch {state.epoch}",
                       "validation loss")

    def _fail(self, state: FitState, what: str, kind: str = "loss") -> None:
        state.request_stop(f"non-finite {kind}: {what}")
        c = state.config
        kept = (f"The last good checkpoint ({state.checkpoint_path}, epoch {state.checkpointed_epoch}) "
                "is kept." if state.checkpointed_epoch is not None else "No epoch had finished, so "
                "there is no checkpoint.")
        clip = ("clip gradients (grad_clip=1; --grad-clip 1)" if not c.grad_clip else
                f"gradients are already clipped to norm {c.grad_clip:g} (a smaller clip, --grad-clip "
                f"{c.grad_clip / 10:g}, helps only when single steps blow up)")
        raise NonFiniteLossError(
            f"{what}; training stopped and this epoch was not logged. {kept} Lower the learning "
            f"rate first (lr={c.lr:g}: try --lr {c.lr / 10:g}); {clip}; or check the inputs for "
            "extreme values."
        )


class RunLogger(Callback):
    """Built in: append each epoch record to the run log, after its checkpoint is written (a
    log never names an epoch no checkpoint holds; a record lost between the two is restored
    from the checkpoint on resume); at the end, the run's last record: a "stopped" event with
    the reason (a stop request, an interrupt or an error), or "finished"."""

    order = 95

    def after_epoch(self, state: FitState) -> None:
        state.log.append(state.record)

    def after_fit(self, state: FitState) -> None:
        source = f" (raised by {state.error_source})" if state.error_source else ""
        reason = state.stop_reason or (f"{type(state.error).__name__}: {state.error}{source}" if state.error else None)
        end = {"event": "stopped", "reason": reason} if reason else {"event": "finished"}
        state.log.append({**end, "time": time.time(), "at_epoch": state.epoch, "at_step": state.step})


class Checkpointer(Callback):
    """Built in: after every epoch, before it is logged, write the checkpoint (model,
    optimizer, scheduler, RNG, the epoch's running sums and record, the data's shape and
    fingerprints) atomically (`seqrep.checkpoint.save_checkpoint`)."""

    order = 90

    def before_fit(self, state: FitState) -> None:
        self.data = data_summary(state.train, state.val)  # hashed once: the data do not change

    def after_epoch(self, state: FitState) -> None:
        save_checkpoint(state.checkpoint_path, {
            "config": state.requested.to_json(),  # as the user gave it; the plan is below
            "epochs": state.config.epochs,
            "model_class": type(state.model).__name__,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": state.epoch,
            "complete": state.steps_done == state.steps_per_epoch,
            "next_step": state.steps_done,
            "progress": state.sums,
            "record": state.record,
            "resumable": state.resumable,
            "data": self.data,
        })
        state.checkpointed_epoch = state.epoch


class ProgressBar(Callback):
    """A tqdm progress bar over epochs (tqdm.auto: a widget in Jupyter, text elsewhere)."""

    order = 100

    def before_fit(self, state: FitState) -> None:
        self.bar = tqdm(total=state.config.epochs, initial=state.start_epoch, desc="epochs", leave=False)

    def after_epoch(self, state: FitState) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{state.record['train_loss']:.3f}",
                             val_acc=f"{state.record.get('val_accuracy', float('nan')):.3f}")

    def after_fit(self, state: FitState) -> None:
        self.bar.close()


class StopSignals(Callback):
    """Built in: a set `stop_event` (another thread, the panel's Stop) ends the run at the next
    step; in the main thread, Ctrl-C does too (a second Ctrl-C raises at once), and `fit` then
    re-raises KeyboardInterrupt naming the checkpoint and how to resume."""

    order = -100

    def __init__(self, stop_event: threading.Event | None = None):
        self.stop_event, self.previous, self.interrupted = stop_event, None, False

    def before_fit(self, state: FitState) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, lambda *_: self._sigint(state))

    def _sigint(self, state: FitState) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        state.request_stop("interrupted (Ctrl-C)")

    def before_batch(self, state: FitState) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            raise CancelFit("stop requested")

    def after_fit(self, state: FitState) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
