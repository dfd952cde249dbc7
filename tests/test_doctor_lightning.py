"""The Lightning DoctorCallback in a real Trainer: it stops a run that cannot learn and lets a
clean one train."""

from __future__ import annotations

import pytest
import torch

from seqrep.doctor.gallery import REPORTED_BUGS
from seqrep.doctor.toy import make_toy

lightning = pytest.importorskip("lightning.pytorch")


class _Module(lightning.LightningModule):
    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _fit(module, callback):
    toy = make_toy(32, full=True)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(toy.x, toy.y), batch_size=16)
    trainer = lightning.Trainer(max_steps=2, callbacks=[callback], logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, loader)
    return trainer


@pytest.mark.slow
def test_lightning_callback_stops_a_broken_run_and_passes_a_clean_one():
    from seqrep.doctor.lightning import DoctorCallback

    case = next(c for c in REPORTED_BUGS if c.name == "softmax_into_cross_entropy")
    broken = _Module(case.build(False).model, torch.nn.functional.cross_entropy)
    with pytest.raises(Exception, match="loss_input"):
        _fit(broken, DoctorCallback(forward=lambda m, x: m(x)))
    callback = DoctorCallback(forward=lambda m, x: m(x))
    trainer = _fit(_Module(case.build(True).model, torch.nn.functional.cross_entropy), callback)
    assert callback.report.ok and trainer.global_step == 2
