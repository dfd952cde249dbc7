"""The doctor's vocabulary and its reports: `Finding`, `GradientReport` (check_gradient_flow),
`TrainingReport` (check_training), `KINDS` (every finding kind, what it means, whether it
blocks training and why) and `BLOCKING`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SeqrepError

__all__ = ["BLOCKING", "KINDS", "Finding", "GradientReport", "TrainingBugError", "TrainingReport"]

# kind -> (what it means, "block" or "warn", why). A blocking kind means the run cannot learn
# (some parameter never changes, or what is learned is wrong by construction); a warning kind is
# a measured heuristic that a deliberate design can trip, so it informs instead of refusing.
KINDS: dict[str, tuple[str, str, str]] = {
    "no_grad": ("a part ran under torch.no_grad()/inference_mode in a training forward", "block",
                "its parameters get no gradient: they never learn (the post-mortem's bug)"),
    "graph_break": ("a module's input has no autograd history although an earlier module's "
                    "parameters need gradients (.detach(), numpy, torch.tensor)", "block",
                    "everything before the break never learns"),
    "unreachable": ("trainable parameters that ran but are not reachable from the loss", "block",
                    "no gradient can reach them"),
    "eval_mode": ("a module with BatchNorm/Dropout ran in eval mode in a training forward", "block",
                  "the model trains with inference behaviour (frozen statistics, no dropout)"),
    "detached_loss": ("the loss has no autograd graph", "block", "backward reaches nothing"),
    "nonfinite_loss": ("the loss is NaN or Inf", "block", "every update is NaN"),
    "unused": ("a module with parameters is never called in forward", "block",
               "its parameters can never learn"),
    "backward_error": ("backward() raised", "block", "no step can be taken"),
    "nonfinite_grad": ("NaN/Inf gradients", "warn",
                       "often one bad sample or an unguarded op; gradient clipping or the "
                       "optimizer's own checks (GradScaler) may be the intended remedy"),
    "blocked_gradient": ("every path from the input layer to the loss multiplies by zero, so even "
                         "the input layer's parameters get an exactly-zero gradient (argmax or round "
                         "in forward, an all-zero mask, all ReLUs dead), or the loss is exactly 0",
                         "warn", "a start fitted to the training data can fit a batch exactly (loss 0); "
                         "zero gradients inside the network are conventions and not reported"),
    "frozen": ("parameters with requires_grad=False", "warn",
               "freezing is often intended; list intended ones in expect_frozen"),
    "not_in_optimizer": ("trainable parameters the optimizer does not hold", "warn",
                         "two optimizers (GANs, per-part learning rates) split parameters on purpose"),
    "frozen_in_optimizer": ("the optimizer holds frozen parameters", "warn", "harmless but useless"),
    "loss_input": ("the loss gets the wrong kind of input: probabilities where it expects logits, "
                   "shapes that broadcast, targets outside the output's classes", "block",
                   "the loss optimises something else than intended"),
    "batch_mixing": ("a sample's output depends on another sample's input (checked in eval mode, "
                     "so BatchNorm's batch statistics do not count)", "block",
                     "the model learns from the wrong sample"),
    "padding_leak": ("the output changes when only padded steps change", "block",
                     "the model learns from padding, and its predictions depend on batch padding"),
    "unregistered": ("tensors that require grad and feed the loss but are not parameters of the "
                     "model (a Python list of layers, a layer built in forward)", "block",
                     "they are re-created every call or never optimised or saved"),
    "init_loss": ("the loss at initialisation is far from an untrained classifier's (ln C)", "warn",
                  "a heuristic: imbalanced targets, label smoothing or a deliberate init move it"),
    "step_size": ("one optimizer step changes weights by far too much or far too little", "warn",
                  "warm-up schedules change the step after the first one"),
    "vanishing_gradient": ("gradients of early layers orders of magnitude below later ones", "warn",
                           "adaptive optimizers and normalisation can partly compensate"),
    "exploding_gradient": ("gradients orders of magnitude above the weights they update", "warn",
                           "gradient clipping may be the intended remedy"),
    "dead_units": ("ReLU units that are zero for every sample and step of the batch", "warn",
                   "a few dead units are normal; a layer mostly dead learns little"),
    # Found by `watch` while training, not by the pre-flight check.
    "accumulated_grad": ("gradients of several steps summed because zero_grad() was not called "
                         "between optimizer steps", "block", "every step uses stale gradients"),
    "eval_step": ("optimizer.step() while a BatchNorm/Dropout module is in eval mode", "block",
                  "validation left the model in eval(): it trains with inference behaviour"),
    "stale_parameter": ("parameters the optimizer holds that got no gradient over the checked steps",
                        "warn", "conditional branches legitimately skip steps"),
    "missing_step": ("backward() ran but optimizer.step() did not: the gradients were discarded by "
                     "zero_grad() before any step, or no step was taken at all", "block",
                     "nothing the model computes changes its weights"),
    "zero_lr": ("a learning rate of zero", "warn", "warm-up starts at zero for a step on purpose"),
}

# The kinds that stop `fit` before the first epoch: every "block" kind above. The others warn.
BLOCKING = frozenset(kind for kind, (_, action, _) in KINDS.items() if action == "block")


class TrainingBugError(SeqrepError):
    """A check found a bug that stops training (a finding whose kind is in BLOCKING, or any
    finding when asked to be strict): raised by `raise_if_broken()`, `fit`'s pre-flight guard,
    `watch(on_finding="raise")` and the Lightning callback; the message is the report."""


@dataclass(frozen=True)
class Finding:
    """One problem: `kind` (a key of `KINDS`), the modules / parameters / samples it is about
    (`names`), a plain-words `message` (what, where, why it stops learning, the fix), the fix as
    one line of code where there is one, and the measured numbers behind it (`details`)."""

    kind: str
    names: tuple[str, ...]
    message: str
    fix: str = ""
    details: dict = field(default_factory=dict, compare=False)

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


@dataclass
class GradientReport:
    """The result of `check_gradient_flow`. `parameters` and `modules` hold one dict per named
    parameter / module; `findings` what is wrong (empty = ok)."""

    loss: float
    parameters: list[dict]
    modules: list[dict]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def _ok_line(self) -> str:
        n = sum(1 for p in self.parameters if p["requires_grad"])
        return f"ok: gradients reach all {n} trainable parameters; no module ran in eval mode or without autograd."

    def verdict(self) -> str:
        if self.ok:
            return self._ok_line()
        head = f"{_plural(len(self.findings), 'finding')}:"
        return "\n".join([head, *(f"  [{f.kind}] {f.message}" for f in self.findings)])

    def raise_if_broken(self, warnings: bool = False) -> None:
        """Raise TrainingBugError with the report when a finding blocks training (its kind is
        in BLOCKING: the rule `fit` refuses a run by), or with warnings=True when there is any
        finding at all."""
        if any(f.blocking or warnings for f in self.findings):
            raise TrainingBugError(str(self))

    def to_frame(self):
        """One row per parameter (a pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self.parameters)

    def table(self) -> str:
        rows = [("parameter", "shape", "trainable", "optimizer", "reachable", "grad norm")]
        for p in self.parameters:
            norm = p["grad_norm"]
            rows.append((
                p["name"],
                "x".join(map(str, p["shape"])) or "scalar",
                "yes" if p["requires_grad"] else "FROZEN",
                {True: "yes", False: "NO", None: "-"}[p["in_optimizer"]],
                "yes" if p["reachable"] else "NO",
                "None" if norm is None else ("0 (exactly)" if norm == 0 else f"{norm:.3g}"),
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def __str__(self) -> str:
        return f"{self.verdict()}\n\nloss {self.loss:.4g}\n{self.table()}"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))

    def plot(self, ax=None):
        """Per-parameter gradient norm on a log axis. Parameters with no gradient (None) and
        exactly-zero gradients get their own marks at the bottom instead of being dropped."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(max(6, 0.18 * len(self.parameters)), 3.6))
        names = [p["name"] for p in self.parameters]
        norms = [p["grad_norm"] for p in self.parameters]
        positive = [n for n in norms if n]
        floor = (min(positive) if positive else 1.0) / 100
        xs = np.arange(len(names))
        ok = [i for i, n in enumerate(norms) if n]
        ax.bar([xs[i] for i in ok], [norms[i] for i in ok], color="tab:blue", label="gradient norm")
        none = [i for i, n in enumerate(norms) if n is None]
        zero = [i for i, n in enumerate(norms) if n == 0]
        ax.scatter([xs[i] for i in none], [floor] * len(none), marker="x", color="tab:red", s=40,
                   label=f"no gradient (None): {len(none)}", zorder=3)
        ax.scatter([xs[i] for i in zero], [floor] * len(zero), marker="o", facecolors="none",
                   edgecolors="tab:orange", s=40, label=f"exactly zero: {len(zero)}", zorder=3)
        ax.set_yscale("log")
        ax.set_ylim(floor / 3, None)
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_ylabel("gradient L2 norm (log)")
        ax.set_title(self.verdict().splitlines()[0])
        ax.legend(fontsize=8, loc="best")
        ax.figure.tight_layout()
        return ax.figure


@dataclass
class TrainingReport(GradientReport):
    """The result of `check_training`: the gradient-flow report plus the findings of every
    other check, the seconds each check took (`seconds`), what was measured (`measured`: loss
    at init and its expected value, update ratios, gradient span, ...) and checks that could not
    run with the reason (`skipped`)."""

    seconds: dict[str, float] = field(default_factory=dict)
    measured: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def _ok_line(self) -> str:
        ran = [k for k in self.seconds if k not in self.skipped]
        return (f"ok: no finding in {_plural(len(ran), 'check')} ({', '.join(ran)}) in "
                f"{sum(self.seconds.values()):.2f} s.")

    def findings_frame(self):
        """One row per finding: kind, blocking, names, message, fix (a pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame([{"kind": f.kind, "blocking": f.blocking, "names": ", ".join(f.names),
                              "message": f.message, "fix": f.fix} for f in self.findings],
                            columns=["kind", "blocking", "names", "message", "fix"])

    def __str__(self) -> str:
        timing = ", ".join(f"{k} {v:.3f}" for k, v in self.seconds.items())
        skipped = "".join(f"\nnot checked: {k} ({why})" for k, why in self.skipped.items())
        return f"{self.verdict()}\n\nseconds per check: {timing}{skipped}\n\nloss {self.loss:.4g}\n{self.table()}"
