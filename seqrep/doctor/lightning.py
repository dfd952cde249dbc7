"""For Lightning users: a callback that runs `check_training` on the first training batch and
stops the run on a blocking finding, optionally with `watch` for the rest of training.
Lightning is imported only when the callback is created, so seqrep works without it
(`pip install seqrep[lightning]`).

    >>> trainer = lightning.Trainer(callbacks=[seqrep.doctor.lightning.DoctorCallback()])
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

from ..errors import SeqrepError
from .report import BLOCKING, TrainingBugError
from .training import check_training
from .watch import watch


@functools.cache
def _callback_class():
    try:
        import lightning.pytorch as pl
    except ImportError as err:
        raise SeqrepError("DoctorCallback needs Lightning: pip install 'seqrep[lightning]' "
                          "(or pip install lightning).") from err

    class _DoctorCallback(pl.Callback):
        def __init__(self, options: dict):
            self.options, self.report, self.watch = options, None, None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if self.report is not None:
                return
            o = self.options
            x, y = o["split_batch"](batch)
            self.report = check_training(pl_module, (x, y), loss_fn=o["loss_fn"], optimizer=trainer.optimizers[0],
                                         forward=o["forward"], mask=o["mask"](batch) if o["mask"] else None,
                                         train_mode=False)  # the modes Lightning will really train with
            blocking = [f for f in self.report.findings if f.kind in BLOCKING]
            if blocking and o["on_blocking"] == "raise":
                raise TrainingBugError(f"DoctorCallback: training would not learn.\n{self.report.verdict()}")
            if self.report.findings:
                warnings.warn(f"DoctorCallback: {self.report.verdict()}", stacklevel=2)
            if o["watch"]:
                self.watch = watch(pl_module, trainer.optimizers[0], on_finding=o["watch"]).start()

        def on_train_end(self, trainer, pl_module):
            if self.watch is not None:
                self.watch.stop()

    return _DoctorCallback


def DoctorCallback(*, loss_fn: Callable | None = None, forward: Callable | None = None,
                   split_batch: Callable = tuple, mask: Callable | None = None, on_blocking: str = "raise",
                   watch: str | None = "warn"):
    """A Lightning callback: `check_training` on the first training batch, in the modes Lightning
    trains with. split_batch(batch) -> (x, y) (default: the batch is (x, y)); mask(batch) -> the
    (batch, time) padding mask; loss_fn / forward as in check_training (default: cross-entropy
    on pl_module(x)). on_blocking="raise" stops the fit on a blocking finding ("warn" only
    warns); watch="warn" / "raise" / None runs `watch` for the rest of training."""
    if on_blocking not in ("raise", "warn"):
        raise SeqrepError(f"DoctorCallback: on_blocking must be 'raise' or 'warn', got {on_blocking!r}.")
    return _callback_class()({"loss_fn": loss_fn, "forward": forward, "split_batch": split_batch,
                              "mask": mask, "on_blocking": on_blocking, "watch": watch})
