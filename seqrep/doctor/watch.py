"""`watch(model, optimizer)`: the doctor inside a training loop, hand-written or `fit`'s.

It hooks the optimizer's step and the parameters' gradient accumulation, and reports:
gradients accumulated across steps because zero_grad() was never called (`accumulated_grad`),
gradients computed and discarded because optimizer.step() is never called (`missing_step`),
optimizer.step() while a BatchNorm/Dropout module is in eval mode (`eval_step`, naming a
forward() that switches modes itself), parameters the optimizer holds that get no gradient
(`stale_parameter`), a learning rate of zero for consecutive steps (`zero_lr`), a non-finite
loss or gradients. Each finding is reported
once; warn by default, raise with on_finding="raise", or only record with "record".

    >>> with seqrep.watch(model, optimizer) as w:      # or w = watch(...); w.start(); ...; w.stop()
    ...     for x, y in loader:
    ...         loss = loss_fn(model(x), y)
    ...         w.after_loss(loss)                   # optional: checks the loss itself
    ...         loss.backward(); optimizer.step(); optimizer.zero_grad()
    >>> w.findings
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import SeqrepError, warn
from .batch import MODE_DEPENDENT
from .graph import matches, outermost
from .report import Finding, TrainingBugError, _plural

__all__ = ["TrainingWarning", "Watch", "watch"]


FITTED_LOSS = 1e-3  # a loss below this (cross-entropy: the right class at > 99.9 %) fits the batch
ANNEALED = 0.01  # a group's learning rate below this fraction of its peak: a schedule's tail


class TrainingWarning(UserWarning):
    """A finding of `watch` while training."""


class Watch:
    """See `watch`. Fit-protocol events: before_fit / after_loss / after_fit (start, loss, stop)."""

    def __init__(self, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None, *,
                 on_finding: str = "warn", expect_eval=(), stale_every: int = 50, stale_steps: int = 3):
        if on_finding not in ("warn", "raise", "record"):
            raise SeqrepError(f"watch: on_finding must be 'warn', 'raise' or 'record', got {on_finding!r}.")
        self.model, self.optimizer, self.on_finding = model, optimizer, on_finding
        self.expect_eval, self.stale_every, self.stale_steps = tuple(expect_eval), stale_every, stale_steps
        self.findings: list[Finding] = []
        self.steps = 0
        self._handles, self._reported, self._fresh = [], set(), set()
        self._zero_lr_run, self._snapshot, self._unchanged = 0, None, {}
        self._loss, self._has_grad, self._graded, self._annealed, self._peak_lr = None, set(), set(), set(), {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Watch:
        if not isinstance(self.model, nn.Module) or not isinstance(self.optimizer, torch.optim.Optimizer):
            raise SeqrepError(
                f"watch: give the model and the optimizer, e.g. watch(model, optimizer).start(); got a "
                f"{type(self.model).__name__} and a {type(self.optimizer).__name__}."
            )
        if self._handles:
            return self
        opt = self.optimizer
        self._held = [p for g in opt.param_groups for p in g["params"]]
        self._names = {id(p): n for n, p in self.model.named_parameters()}
        self._handles = [opt.register_step_pre_hook(self._before_step), opt.register_step_post_hook(self._after_step)]
        self._handles += [p.register_hook(self._grad_hook(p)) for p in self._held if p.requires_grad]
        self._modes = [(n, m) for n, m in self.model.named_modules() if isinstance(m, MODE_DEPENDENT)]
        self._handles.append(self.model.register_forward_pre_hook(self._forward_entry))
        return self

    def _forward_entry(self, module, args) -> None:
        """The modes as the model's forward starts: a module in eval() at the step that was in
        train() here was switched by forward() itself."""
        self._entry = {n for n, m in self._modes if not m.training}

    def stop(self) -> Watch:
        if self._handles and self.steps == 0 and self._fresh:
            self._missing_step()  # gradients computed, never used by a step
        for h in self._handles:
            h.remove()
        self._handles = []
        return self

    def __enter__(self) -> Watch:
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def before_fit(self, state=None) -> None:
        self.model = self.model or getattr(state, "model", None)
        self.optimizer = self.optimizer or getattr(state, "optimizer", None)
        self.start()

    def after_fit(self, state=None, *args) -> None:
        self.stop()

    def after_loss(self, state=None, loss=None) -> None:
        """Check the loss: pass it (w.after_loss(loss)) or a state with a `.loss`."""
        if loss is None:
            loss = state if isinstance(state, (torch.Tensor, float, int)) else getattr(state, "loss", None)
        if loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        self._loss = value
        if not math.isfinite(value):
            self._report(Finding("nonfinite_loss", (), f"the loss is {value} at step {self.steps + 1}: "
                                 "every update from here is NaN. Lower the learning rate, clip gradients, "
                                 "or guard log/div/sqrt in forward.", "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)"))

    # -- hooks -----------------------------------------------------------------------------
    def _grad_hook(self, p: torch.Tensor):
        def hook(grad):
            if id(p) in self._fresh:  # a second backward before any step: accumulation, or discarded
                if p.grad is None or not bool(p.grad.ne(0).any()):
                    self._missing_step(p)
            else:
                self._fresh.add(id(p))
                if self.steps and p.grad is not None and bool(p.grad.ne(0).any()):
                    self._accumulated(p)
            return grad
        return hook

    def _missing_step(self, p=None) -> None:
        name = self._names.get(id(p), "parameter") if p is not None else "optimizer"
        self._report(Finding("missing_step", (name,), ("backward() ran again after zero_grad() cleared "
                             "the previous gradients without an optimizer.step() in between" if p is not None
                             else "backward() ran but optimizer.step() was never called")
                             + f" ({self.steps} step(s) so far): the gradients are computed and thrown "
                             "away, so the weights never change.",
                             "optimizer.step()  # after loss.backward(), before the next zero_grad()"))

    def _accumulated(self, p) -> None:
        self._report(Finding("accumulated_grad", (self._names.get(id(p), "parameter"),), "gradients of the "
                             f"previous step were still in .grad when backward ran after step {self.steps}: "
                             "zero_grad() was not called between optimizer steps, so every step follows "
                             "the sum of all past gradients.", "optimizer.zero_grad()  # before loss.backward()"))

    def _before_step(self, optimizer, args, kwargs) -> None:
        self._check_modes()
        self._check_lr()
        groups = self.optimizer.param_groups
        for i, g in enumerate(groups):
            self._peak_lr[i] = max(self._peak_lr.get(i, 0.0), g.get("lr", 0.0))
        grads = [p.grad for p in self._held if p.grad is not None]
        if grads and not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            bad = [self._names.get(id(p), "?") for p in self._held if p.grad is not None and not torch.isfinite(p.grad).all()]
            self._report(Finding("nonfinite_grad", tuple(bad), f"non-finite gradients at step {self.steps + 1} "
                                 f"in {_plural(len(bad), 'parameter')} (e.g. {bad[0]}).",
                                 "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)"))
        due = self.steps < self.stale_steps or (self.steps + 1) % self.stale_every == 0
        self._snapshot = [p.detach().clone() for p in self._held] if due else None
        if due:  # parameters with a gradient at this step, and with a non-zero one
            with_grad = [p for p in self._held if p.grad is not None]
            self._has_grad = {id(p) for p in with_grad}
            self._graded = {id(p) for p in with_grad if bool(p.grad.ne(0).any())}
            self._annealed = {id(p) for i, g in enumerate(groups) if g.get("lr", 1.0) < ANNEALED * self._peak_lr[i]
                              for p in g["params"]}

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.steps += 1
        self._fresh = set()
        if self._snapshot is not None:
            self._check_stale()
            self._snapshot = None

    # -- checks ----------------------------------------------------------------------------
    def _check_modes(self) -> None:
        off = [n for n, m in self._modes if not m.training and not matches(n, self.expect_eval)]
        if not off:
            return
        names = tuple(outermost(off))
        where = f"optimizer.step() {self.steps + 1} ran while {', '.join(names[:3])} {'is' if len(names) == 1 else 'are'} in eval mode"
        entry = getattr(self, "_entry", None)
        if entry is not None and not any(n in entry for n in off):
            message, fix = (f"{where}, although the model was in train() when forward() started: the "
                            "model's own forward() (or code it calls) switches them to eval(), so "
                            "model.train() before each epoch cannot help; it trains without dropout and "
                            "with frozen BatchNorm statistics.", "delete the .eval() call inside forward()")
        elif self.steps == 0:
            message, fix = (f"{where} from the first step: the model was never put in train() mode "
                            "before training (a loaded or freshly evaluated model starts in eval()).",
                            "model.train()  # before the training loop")
        else:
            message, fix = (f"{where}: validation left the model in eval(), so it trains without "
                            "dropout and with frozen BatchNorm statistics.",
                            "model.train()  # at the start of every epoch")
        self._report(Finding("eval_step", names, message, fix))

    def _check_lr(self) -> None:
        if all(g.get("lr", 1.0) == 0 for g in self.optimizer.param_groups):
            self._zero_lr_run += 1
            if self._zero_lr_run >= 2:  # warm-up may start at zero for one step
                self._report(Finding("zero_lr", ("optimizer",), f"the learning rate is 0 at step "
                                     f"{self.steps + 1} and the step before: nothing can change (a "
                                     "scheduler that decays to 0, or lr=0).", "optimizer.param_groups[0]['lr'] = 1e-3"))
        else:
            self._zero_lr_run = 0

    def _check_stale(self) -> None:
        same = [p.requires_grad and torch.equal(p.detach(), before) for p, before in zip(self._held, self._snapshot)]
        # the step moved the model: most values with a gradient changed (a step too small to act
        # still shifts a few zero-initialised biases, as any update of 0 shows)
        graded = [(p.numel(), s) for p, s in zip(self._held, same) if id(p) in self._has_grad]
        moved = sum(n for n, s in graded if not s) > 0.5 * sum(n for n, _ in graded)
        for p, unchanged in zip(self._held, same):
            if not unchanged:
                self._unchanged[id(p)] = 0
            elif not self._expected_unchanged(p, moved):
                self._unchanged[id(p)] = self._unchanged.get(id(p), 0) + 1
        stale = [self._names.get(id(p), "?") for p in self._held if self._unchanged.get(id(p), 0) >= self.stale_steps]
        if stale and self._zero_lr_run == 0:
            self._report(Finding("stale_parameter", tuple(stale), f"{_plural(len(stale), 'parameter')} the "
                                 f"optimizer holds did not change over {self.stale_steps} checked steps (e.g. "
                                 f"{stale[0]}): they get no gradient (unused, cut from the graph), or "
                                 "no parameter changed at those steps (a learning rate too small to act).", "seqrep.check_training(model, batch, optimizer=optimizer)"))

    def _expected_unchanged(self, p, moved: bool) -> bool:
        """Unchanged by a step without a bug, so not counted towards `stale_parameter`: with a
        gradient while most values with a gradient did change (`moved`: its own gradient
        is exactly zero or too small for float32 to register the update — a zero-initialised
        branch, or a bias whose loss is near its floor, as seqrep's readout.bias on a
        many-class set); with a non-zero gradient while the loss (given to after_loss) is below
        FITTED_LOSS (the model fits the batch, as a data-fitted start does at ~1e-5) or while
        its group's lr has decayed below ANNEALED of its peak (a schedule's tail); with a
        gradient at a loss of exactly 0 (every gradient is 0). A parameter without a gradient
        always counts, and so does every parameter of a step that changed nothing (a learning
        rate too small to act)."""
        if id(p) not in self._has_grad:
            return False
        if moved or self._loss == 0.0:
            return True
        return id(p) in self._graded and ((self._loss is not None and self._loss < FITTED_LOSS) or id(p) in self._annealed)

    def _report(self, finding: Finding) -> None:
        # once per kind (stale parameters: once per set of names, as more may go stale later)
        key = (finding.kind, finding.names if finding.kind == "stale_parameter" else ())
        if key in self._reported:
            return
        self._reported.add(key)
        self.findings.append(finding)
        text = f"[{finding.kind}] {finding.message} Fix: {finding.fix}"
        if self.on_finding == "raise":
            raise TrainingBugError(f"watch: {text}")
        if self.on_finding == "warn":
            warn(text, TrainingWarning)


def watch(model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None, *,
          on_finding: str = "warn", expect_eval=(), stale_every: int = 50, stale_steps: int = 3) -> Watch:
    """Watch a training loop for silent bugs (see the module docstring). Use as a context manager
    or start()/stop() it; `expect_eval`: module names meant to stay in eval mode (a frozen
    BatchNorm); parameters unchanged over `stale_steps` checked steps (the first steps, then
    every `stale_every`-th) are reported."""
    return Watch(model, optimizer, on_finding=on_finding, expect_eval=expect_eval,
                 stale_every=stale_every, stale_steps=stale_steps)
