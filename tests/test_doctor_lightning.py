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


class _HFModule(lightning.LightningModule):
    """A LightningModule wrapping a Hugging Face classifier on dict batches; leak=True drops
    the attention_mask in forward (padding enters the prediction)."""

    def __init__(self, leak: bool):
        super().__init__()
        from seqrep.doctor.zoo import ZOO

        self.model = next(a for a in ZOO if a.name.startswith("BERT sequence")).build()
        self.leak = leak

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=None if self.leak else attention_mask).logits

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _hf_fit(module, callback):
    from seqrep.doctor.zoo import ORDERS, _text

    batches = [_text(types=False)(seed, order) for seed, order in enumerate(ORDERS[:2])]
    data = [{**b.x, "labels": b.y} for b in batches]
    trainer = lightning.Trainer(max_steps=2, callbacks=[callback], logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=None))
    return trainer


def _split(batch):
    return {k: v for k, v in batch.items() if k != "labels"}, batch["labels"]


@pytest.mark.slow
def test_lightning_callback_on_a_hugging_face_model():
    """Issue 27: clean, the HF model trains with no finding; with the attention_mask dropped the
    callback stops the run naming the padding leak and the attention_mask first; a batch it
    cannot split warns with the fix (split_batch=) and training goes on (issue 29)."""
    from seqrep.doctor.lightning import DoctorCallback

    options = {"split_batch": _split, "mask": lambda b: b["attention_mask"].bool()}
    callback = DoctorCallback(**options)
    trainer = _hf_fit(_HFModule(leak=False), callback)
    assert callback.report.ok, callback.report.verdict()
    assert trainer.global_step == 2
    with pytest.raises(Exception, match=r"padding_leak.*Likely cause: the attention_mask not passed"):
        _hf_fit(_HFModule(leak=True), DoctorCallback(**options))
    callback = DoctorCallback(mask=options["mask"])  # a dict batch, no split_batch=
    with pytest.warns(UserWarning, match="split_batch="):
        trainer = _hf_fit(_HFModule(leak=False), callback)
    assert callback.report is None and trainer.global_step == 2


def test_callback_accepts_expect_frozen_as_its_advice_says():
    """Issue 29: the frozen finding advises expect_frozen, which DoctorCallback did not accept."""
    from seqrep.doctor.lightning import DoctorCallback

    callback = DoctorCallback(expect_frozen=("model.encoder",))
    assert callback.options["expect_frozen"] == ("model.encoder",)
