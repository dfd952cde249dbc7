"""For Lightning users: a callback that runs `check_training` on the first training batch and
stops the run on a blocking finding, optionally with `watch` for the rest of training.
Lightning is imported only when the callback is created, so seqrep works without it
(`pip install seqrep[lightning]`).

    >>> trainer = lightning.Trainer(callbacks=[seqrep.doctor.lightning.DoctorCallback()])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from ..errors import SeqrepError, warn
from .batch import tensors
from .report import BLOCKING, TrainingBugError
from .training import check_training
from .watch import TrainingWarning, watch


def _split(options: dict, batch):
    """(x, y) of a Lightning batch, refusing what no model call can use with the fix named."""
    if isinstance(batch, dict) and options["split_batch"] is tuple:
        raise SeqrepError(f"the batch is a dict (keys {list(batch)}), so it cannot be split into (x, y) "
                          "by default: pass split_batch=, e.g. DoctorCallback(split_batch=lambda b: "
                          "({k: v for k, v in b.items() if k != 'labels'}, b['labels'])).")
    try:
        x, y = options["split_batch"](batch)
    except (TypeError, ValueError) as err:
        raise SeqrepError(f"split_batch(batch) must return (x, y); on a {type(batch).__name__} batch it "
                          f"raised {type(err).__name__}: {err}. Pass split_batch= that returns the model "
                          "input and the targets.") from err
    if not tensors(x):
        raise SeqrepError(f"split_batch(batch) gave an x of type {type(x).__name__} with no tensor in it; "
                          "pass split_batch= that returns (model input, targets), e.g. "
                          "split_batch=lambda b: (b['input_ids'], b['labels']).")
    return x, y


def _check(options: dict, trainer, pl_module, batch):
    x, y = _split(options, batch)
    return check_training(pl_module, (x, y), loss_fn=options["loss_fn"], optimizer=trainer.optimizers[0],
                          forward=options["forward"], mask=options["mask"](batch) if options["mask"] else None,
                          expect_frozen=options["expect_frozen"],
                          train_mode=False)  # the modes Lightning will really train with


@functools.cache
def _callback_class():
    try:
        import lightning.pytorch as pl
    except ImportError as err:
        raise SeqrepError("DoctorCallback needs Lightning: pip install 'seqrep[lightning]' "
                          "(or pip install lightning).") from err

    class _DoctorCallback(pl.Callback):
        def __init__(self, options: dict):
            self.options, self.report, self.watch, self.failed = options, None, None, False

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if self.report is not None or self.failed:
                return
            try:
                self.report = _check(self.options, trainer, pl_module, batch)
            except Exception as err:  # the detector must never abort the user's run
                self.failed = True
                warn(f"DoctorCallback could not check the first batch and lets training go on: {err}",
                     TrainingWarning)
                return
            o = self.options
            blocking = [f for f in self.report.findings if f.kind in BLOCKING]
            if blocking and o["on_blocking"] == "raise":
                raise TrainingBugError(f"DoctorCallback: training would not learn.\n{self.report.verdict()}")
            if self.report.findings:
                warn(f"DoctorCallback: {self.report.verdict()}")
            if o["watch"]:
                self.watch = watch(pl_module, trainer.optimizers[0], on_finding=o["watch"]).start()

        def on_train_end(self, trainer, pl_module):
            if self.watch is not None:
                self.watch.stop()

    return _DoctorCallback


def DoctorCallback(*, loss_fn: Callable | None = None, forward: Callable | None = None,
                   split_batch: Callable = tuple, mask: Callable | None = None, expect_frozen: Iterable[str] = (),
                   on_blocking: str = "raise", watch: str | None = "warn"):
    """A Lightning callback: `check_training` on the first training batch, in the modes Lightning
    trains with. split_batch(batch) -> (x, y) (default: the batch is (x, y); a dict batch needs
    one); mask(batch) -> the (batch, time) padding mask; loss_fn / forward / expect_frozen as in
    check_training (default: cross-entropy on pl_module(x)). on_blocking="raise" stops the fit on
    a blocking finding ("warn" only warns); watch="warn" / "raise" / None runs `watch` for the
    rest of training. A check that cannot run (a batch it cannot split, a forward that raises)
    warns with the reason and never stops the fit."""
    if on_blocking not in ("raise", "warn"):
        raise SeqrepError(f"DoctorCallback: on_blocking must be 'raise' or 'warn', got {on_blocking!r}.")
    return _callback_class()({"loss_fn": loss_fn, "forward": forward, "split_batch": split_batch,
                              "mask": mask, "expect_frozen": tuple(expect_frozen), "on_blocking": on_blocking,
                              "watch": watch})
