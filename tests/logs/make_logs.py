"""Generate the real training logs `seqrep diagnose` is tested on.

Every log here is written by actually training a small model with the tool named — seqrep's
own `fit`, Hugging Face `Trainer` (a tiny BERT built from a config, no download), Lightning
with `CSVLogger` and `TensorBoardLogger` at once, and a hand-written PyTorch loop that logs
JSON Lines / CSV under its own column names — healthy, or with one pathology planted in the
training code (the comment on each case says what line is wrong). Each run takes seconds.

    python tests/logs/make_logs.py                       # everything: 9 seeds x every tool
    python tests/logs/make_logs.py --tools lightning --seeds 0 --cases healthy,overfit
    python tests/logs/make_logs.py --out /tmp/logs       # elsewhere (the slow test does this)

Seeds differ in data, initialisation and size (classes, width, samples: `SIZES`): the rules'
thresholds were set on seed 0 and checked on seeds 1-2; seeds 3-4 and 5-6 were held-out checks
whose misses led to changes; seeds 7-8 were generated after the last change to the rules
(benchmarks/results/diagnose.md). `manifest.json` lists
every log with the tool, the planted case and the verdict kind `seqrep diagnose` must give.
Only the logs are kept (no weights, no pickles): trainer_state.json and the model's config.json
for HF; metrics.csv, the event files and hparams.yaml for Lightning; run.jsonl for seqrep.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

# This script's folder holds a folder named seqrep (the seqrep tool's logs): with only the
# script's folder first on the path, `import seqrep` finds that namespace folder instead of
# the package when the package is installed in editable mode. The repository comes first.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from seqrep.doctor.zoo import allow_torchvision_without_ops

# transformers and lightning import torchvision when it is installed (timm's dependency): let
# it import beside a CPU build of torch, as tests/conftest.py does for the test process.
allow_torchvision_without_ops()

HERE = Path(__file__).resolve().parent
# seed -> sizes: classes, hidden width, training samples (the task gets harder with classes)
SIZES = {
    0: {"classes": 4, "hidden": 32, "n_train": 512},
    1: {"classes": 10, "hidden": 64, "n_train": 768},
    2: {"classes": 6, "hidden": 24, "n_train": 384},
    3: {"classes": 5, "hidden": 48, "n_train": 640},
    4: {"classes": 8, "hidden": 40, "n_train": 448},
    5: {"classes": 7, "hidden": 56, "n_train": 576},
    6: {"classes": 12, "hidden": 32, "n_train": 704},
    7: {"classes": 3, "hidden": 40, "n_train": 480},
    8: {"classes": 9, "hidden": 48, "n_train": 608},
}
# case -> the verdict kind seqrep diagnose must give ("healthy" = no pathology)
EXPECTED = {
    "healthy": "healthy",
    "healthy_data_start": "healthy",
    "no_learning": "no_learning",
    "majority": "stuck_accuracy",
    "val_flat": "val_flat",
    "nonfinite": "nonfinite",
    "diverge": "diverge",
    "lr_zero": "lr_zero",
    "grad_zero": "grad_zero",
    "overfit": "overfit",
    "noisy": "noisy",
    "plateau": "plateau_drop",
    "init_far": "init_far",
    "val_better": "val_better",
    "glued": "glued",
}


# --------------------------------------------------------------------------------------------
# Data: Gaussian classes (Lightning, plain loop) and token sequences (HF)
# --------------------------------------------------------------------------------------------


def blobs(seed: int, n: int, classes: int, dim: int = 16, weights=None, sep: float = 1.0):
    """(X (n, dim) float32, y (n,) int64): one Gaussian per class, unit noise; class means drawn
    once per seed (so train and validation share them). weights: class probabilities."""
    means = np.random.default_rng(1000 + seed).normal(size=(classes, dim)) * sep / math.sqrt(2)
    rng = np.random.default_rng(seed * 7 + n)
    y = rng.choice(classes, size=n, p=weights)
    X = means[y] + rng.normal(size=(n, dim))
    return X.astype(np.float32), y.astype(np.int64)


def tokens(seed: int, n: int, classes: int, length: int = 16, vocab: int = 40, weights=None):
    """(ids (n, length) int64, y (n,)): noise tokens with one class token planted per
    sequence, except in 25% of sequences (so the task is not trivial); token 0 is padding."""
    rng = np.random.default_rng(seed * 11 + n)
    y = rng.choice(classes, size=n, p=weights)
    ids = rng.integers(classes + 1, vocab, size=(n, length))
    planted = rng.random(n) > 0.25
    ids[planted, rng.integers(0, length, size=planted.sum())] = 1 + y[planted]
    return ids.astype(np.int64), y.astype(np.int64)


def _ramp(steps: int):
    """A warm-up multiplier rising geometrically from 0.01 to 100 over `steps`: the lr passes
    through sensible values (the model learns), then 100x too high (it diverges)."""
    return lambda s: 10.0 ** (-2 + 4 * min(s / steps, 1.0))


def imbalanced(classes: int, majority: float = 0.7) -> list[float]:
    """Class probabilities with `majority` on class 0, the rest shared equally."""
    return [majority] + [(1 - majority) / (classes - 1)] * (classes - 1)


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# --------------------------------------------------------------------------------------------
# Lightning: CSVLogger and TensorBoardLogger on the same run
# --------------------------------------------------------------------------------------------

LIGHTNING_CASES = ("healthy", "no_learning", "majority", "val_flat", "nonfinite", "diverge",
                   "lr_zero", "grad_zero", "overfit", "noisy", "plateau", "init_far",
                   "val_better", "glued")


def _mlp(dim: int, hidden: int, classes: int, case: str) -> nn.Module:
    if case == "plateau":  # planted: a deep tanh net initialised at 0.4x the usual scale
        layers = []
        for i in range(6):
            layers += [nn.Linear(dim if i == 0 else 32, 32), nn.Tanh()]
        net = nn.Sequential(*layers, nn.Linear(32, classes))
        with torch.no_grad():
            for m in net:
                if isinstance(m, nn.Linear):
                    m.weight.mul_(0.4)
        return net
    p = 0.5 if case == "val_better" else 0.0  # planted: heavy dropout in the training metric
    net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, hidden),
                        nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, classes))
    if case == "grad_zero":  # planted: a bias init that kills the first layer's ReLUs
        nn.init.constant_(net[0].bias, -100.0)
    if case == "init_far":  # planted: the readout initialised with std 10 instead of ~1/sqrt(fan_in)
        nn.init.normal_(net[-1].weight, std=10.0)
    return net


class _Skip(nn.Module):
    """grad_zero: the dead first layer sits beside a linear path that keeps learning."""

    def __init__(self, net: nn.Module, dim: int, classes: int):
        super().__init__()
        self.net, self.skip = net, nn.Linear(dim, classes)

    def forward(self, x):
        return self.net(x) + self.skip(x)


def _lightning_module(case: str, size: dict, total_steps: int, steps_per_epoch: int):
    import lightning as L
    from lightning.pytorch.utilities import grad_norm

    dim, hidden, classes = 16, size["hidden"] * (4 if case == "overfit" else 1), size["classes"]

    class Net(L.LightningModule):
        def __init__(self, num_classes: int, lr: float):
            super().__init__()
            self.save_hyperparameters()
            net = _mlp(dim, hidden, num_classes, case)
            self.model = _Skip(net, dim, num_classes) if case == "grad_zero" else net

        def training_step(self, batch, _):
            x, y = batch
            if case == "val_better":  # planted: input-noise augmentation while training
                x = x + 0.7 * torch.randn_like(x)
            logits = self.model(x)
            if case == "no_learning":  # planted: the output detached, then requires_grad forced
                loss = nn.functional.cross_entropy(logits.detach(), y).requires_grad_(True)
            else:
                loss = nn.functional.cross_entropy(logits, y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            logits = self.model(x)
            self.log("val_loss", nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def on_before_optimizer_step(self, optimizer):
            self.log_dict(grad_norm(self, norm_type=2))

        def configure_optimizers(self):
            lr = self.hparams.lr
            opt = (torch.optim.SGD(self.parameters(), lr=lr, momentum=0.9)
                   if case == "plateau" else torch.optim.Adam(self.parameters(), lr=lr))
            warm = max(2 * total_steps // 5, 1)
            if case == "lr_zero":  # planted: the schedule's length is one epoch, not the run
                fn = lambda s: max(0.0, 1 - s / steps_per_epoch)  # noqa: E731
            elif case in ("noisy", "plateau"):  # noisy, planted: batch size 1 and an lr 30x too high
                fn = lambda s: 1.0  # noqa: E731
            elif case == "diverge":  # planted: warm-up to a peak lr 150x too high
                fn = lambda s: min(1.0, (s + 1) / warm)  # noqa: E731
            else:  # cosine decay over the whole run
                fn = lambda s: 0.5 * (1 + math.cos(math.pi * min(s / total_steps, 1.0)))  # noqa: E731
            sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    lr = {"diverge": 0.5, "noisy": 0.1, "plateau": 0.05}.get(case, 3e-3)
    return Net(classes, lr)


def _lightning_data(case: str, seed: int, size: dict):
    from torch.utils.data import DataLoader, TensorDataset

    classes = size["classes"]
    n = {"overfit": 48, "plateau": 2048}.get(case, size["n_train"])
    weights = imbalanced(classes) if case == "majority" else None
    X, y = blobs(seed, n, classes, weights=weights)
    Xv, yv = blobs(seed, 512, classes, weights=weights)
    if case == "overfit":  # planted: 48 samples, a 4x wider net, 25% of labels wrong, 60 epochs
        flip = np.random.default_rng(seed).random(n) < 0.25
        y[flip] = (y[flip] + 1) % classes
    if case == "majority":  # planted: a preprocessing step that zeroes every input
        X, Xv = X * 0, Xv * 0
    if case == "nonfinite":  # planted: one training row divided by a zero norm (inf)
        X[np.random.default_rng(seed).integers(n)] /= 0.0
    if case == "val_flat":  # planted: validation labels encoded 1..C, training labels 0..C-1
        yv = (yv + 1) % classes
    batch = 1 if case == "noisy" else 32
    train = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=batch,
                       shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(torch.from_numpy(Xv), torch.from_numpy(yv)), batch_size=256)
    return train, val


def run_lightning(case: str, seed: int, out: Path) -> list[dict]:
    """Train one Lightning run into out/ (csv/ and tb/); return its manifest rows."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    size = SIZES[seed]
    L.seed_everything(seed, verbose=False)
    train, val = _lightning_data(case, seed, size)
    epochs = {"overfit": 60, "noisy": 2, "plateau": 40}.get(case, 10)
    if case == "noisy":
        train = _first(train, min(400, len(train.dataset)))
    total = epochs * len(train)
    module = _lightning_module(case, size, total, len(train))
    fresh(out)

    def trainer(max_epochs: int):
        loggers = [CSVLogger(out, name="csv", version=0), TensorBoardLogger(out, name="tb", version=0)]
        return L.Trainer(max_epochs=max_epochs, logger=loggers, callbacks=[LearningRateMonitor("step")],
                         log_every_n_steps={"noisy": 4, "plateau": 40}.get(case, 5), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         devices=1, num_sanity_val_steps=0, default_root_dir=out / "tmp")

    if case == "glued":  # planted: the script re-run into the same logger version (version=0)
        trainer(epochs // 2).fit(_lightning_module(case, size, total, len(train)), train, val)
    trainer(epochs).fit(module, train, val)
    shutil.rmtree(out / "tmp", ignore_errors=True)
    for ckpt in out.rglob("*.ckpt"):
        ckpt.unlink()
    expected = EXPECTED[case]
    meta = {"tool": "lightning", "case": case, "seed": seed, "classes": size["classes"]}
    return [{**meta, "path": "csv/version_0", "format": "lightning_csv",
             "expected": "healthy" if case == "glued" else expected},
            {**meta, "path": "tb/version_0", "format": "tensorboard", "expected": expected}]


def _first(loader, n: int):
    """The same loader over its dataset's first n samples."""
    from torch.utils.data import DataLoader, Subset

    return DataLoader(Subset(loader.dataset, range(n)), batch_size=loader.batch_size, shuffle=True,
                      generator=loader.generator)


# --------------------------------------------------------------------------------------------
# Hugging Face Trainer: a tiny BERT built from a config (no download)
# --------------------------------------------------------------------------------------------

# No planted plateau: the tiny BERT's healthy runs already sit at ln(C) for a quarter of the run
# while attention finds the class token, so a planted one cannot be told from health.
HF_CASES = ("healthy", "no_learning", "majority", "val_flat", "nonfinite", "diverge", "lr_zero",
            "overfit", "noisy", "init_far", "val_better")


class _Tokens(torch.utils.data.Dataset):
    """Token sequences as the dicts Trainer feeds the model; `corrupt` replaces that fraction
    of tokens by random ones on every read (augmentation)."""

    def __init__(self, ids, y, corrupt: float = 0.0, vocab: int = 40):
        self.ids, self.y, self.corrupt, self.vocab = torch.from_numpy(ids), torch.from_numpy(y), corrupt, vocab

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        ids = self.ids[i].clone()
        if self.corrupt:
            swap = torch.rand(len(ids)) < self.corrupt
            ids[swap] = torch.randint(1, self.vocab, (int(swap.sum()),))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": self.y[i]}


def _hf_data(case: str, seed: int, size: dict):
    classes = size["classes"]
    n = 160 if case == "overfit" else 400 if case == "noisy" else size["n_train"]
    weights = imbalanced(classes) if case == "majority" else None
    ids, y = tokens(seed, n, classes, weights=weights)
    ids_v, y_v = tokens(seed, 512, classes, weights=weights)
    if case == "majority":  # planted: the tokenizer step returns padding only
        ids, ids_v = ids * 0, ids_v * 0
    if case == "overfit":  # planted: 160 samples, 25% of labels wrong, 60 epochs, no weight decay
        flip = np.random.default_rng(seed).random(n) < 0.25
        y[flip] = (y[flip] + 1) % classes
    if case == "val_flat":  # planted: training labels shuffled against their sequences
        y = np.random.default_rng(seed).permutation(y)
    corrupt = 0.1 if case == "val_better" else 0.0  # planted: token-corruption augmentation
    return _Tokens(ids, y, corrupt), _Tokens(ids_v, y_v)


def run_hf(case: str, seed: int, out: Path) -> list[dict]:
    """Train one HF Trainer run; out/ keeps trainer_state.json and the model's config.json."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    transformers.logging.set_verbosity_error()
    size = SIZES[seed]
    torch.manual_seed(seed)
    # BERT's default dropout 0.1 (planted, val_better: 0.2 everywhere; the other plants: none)
    drop = {"val_better": 0.2, "healthy": 0.1}.get(case, 0.0)
    init = 1.0 if case == "init_far" else 0.02  # planted (init_far): the config's init scale 50x
    config = BertConfig(vocab_size=40, hidden_size=size["hidden"], num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * size["hidden"],
                        max_position_embeddings=32, num_labels=size["classes"],
                        hidden_dropout_prob=drop, attention_probs_dropout_prob=drop,
                        initializer_range=init)
    model = BertForSequenceClassification(config)
    train, val = _hf_data(case, seed, size)
    epochs = {"overfit": 60, "val_flat": 30, "noisy": 1, "diverge": 20, "nonfinite": 10, "val_better": 20,
              "healthy": 10}.get(case, 8)
    batch = 1 if case == "noisy" else 32
    steps = epochs * math.ceil(len(train) / batch)
    schedule = {"nonfinite": "constant_with_warmup", "noisy": "constant"}
    args = TrainingArguments(
        output_dir=str(fresh(out)), num_train_epochs=epochs, per_device_train_batch_size=batch,
        per_device_eval_batch_size=256, report_to="none", use_cpu=True, seed=seed, disable_tqdm=True,
        # planted: nonfinite, SGD warming up to 50 over the whole run; noisy, batch size 1 at a
        # constant lr (diverge: below)
        learning_rate={"nonfinite": 50.0, "noisy": 1e-2}.get(case, 5e-3),
        lr_scheduler_type=schedule.get(case, "linear"),
        warmup_steps={"nonfinite": steps}.get(case, 0.1),
        optim="sgd" if case == "nonfinite" else "adamw_torch",
        max_grad_norm=0.0 if case == "nonfinite" else 1.0,
        weight_decay=0.0 if case == "overfit" else 0.01,
        logging_steps=1 if case == "noisy" else 5, eval_strategy="epoch", save_strategy="no",
    )
    optimizers = (None, None)
    if case in ("lr_zero", "diverge"):
        opt = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        per_epoch = steps // epochs
        # planted: lr_zero, the schedule built for one epoch's steps, not the run's; diverge, a
        # warm-up that ramps the lr geometrically to a peak 100x too high (it learns on the way up)
        fn = (lambda s: max(0.0, 1 - s / per_epoch)) if case == "lr_zero" else _ramp(steps)
        optimizers = (opt, torch.optim.lr_scheduler.LambdaLR(opt, fn))

    def accuracy(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    trainer = _trainer_class(case)(model=model, args=args, train_dataset=train, eval_dataset=val,
                                   compute_metrics=accuracy, optimizers=optimizers)
    trainer.train()
    trainer.save_state()
    model.config.save_pretrained(out)
    for extra in out.iterdir():
        if extra.name not in ("trainer_state.json", "config.json"):
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    return [{"tool": "hf", "case": case, "seed": seed, "classes": size["classes"], "path": ".",
             "format": "hf_trainer", "expected": EXPECTED[case]}]


def _trainer_class(case: str):
    """Trainer, or for no_learning / nonfinite a subclass whose compute_loss holds the bug."""
    from transformers import Trainer

    if case not in ("no_learning", "nonfinite"):
        return Trainer

    class PlantedLossTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            if case == "no_learning":  # planted: the logits detached, then requires_grad forced
                loss = nn.functional.cross_entropy(outputs.logits.detach(), labels).requires_grad_(True)
            else:  # planted: a hand-written cross-entropy, log(softmax), -inf once p underflows
                p = torch.softmax(outputs.logits, -1)
                loss = -torch.log(p[torch.arange(len(labels)), labels]).mean()
            return (loss, outputs) if return_outputs else loss

    return PlantedLossTrainer


# --------------------------------------------------------------------------------------------
# seqrep's own fit: run.jsonl
# --------------------------------------------------------------------------------------------

SEQREP_CASES = ("healthy", "healthy_data_start", "no_learning", "postmortem_broken", "postmortem_fixed",
                "grad_zero", "majority", "val_flat", "nonfinite", "diverge", "lr_zero", "overfit",
                "init_far", "val_better")
SEQREP_SIZES = {0: {"classes": 10, "samples": 300}, 1: {"classes": 20, "samples": 400},
                2: {"classes": 6, "samples": 240}, 3: {"classes": 8, "samples": 320},
                4: {"classes": 15, "samples": 360}, 5: {"classes": 12, "samples": 360},
                6: {"classes": 5, "samples": 220}, 7: {"classes": 9, "samples": 300},
                8: {"classes": 4, "samples": 200}}


def _seqrep_callbacks(case: str) -> list:
    import seqrep

    class OneEpochSchedule(seqrep.Callback):
        """lr_zero, planted: the schedule replaced by one that reaches 0 after one epoch."""

        def before_fit(self, state):
            per_epoch = state.steps_per_epoch
            state.scheduler = torch.optim.lr_scheduler.LambdaLR(
                state.optimizer, lambda s: max(0.0, 1 - s / per_epoch))

    class NoiseAugmentation(seqrep.Callback):
        """val_better, planted: strong noise added to every training batch."""

        def before_batch(self, state):
            state.x = state.x + 0.5 * torch.randn_like(state.x)

    class RampTooHigh(seqrep.Callback):
        """diverge, planted: a warm-up that ramps the lr geometrically to 100x the peak."""

        def before_fit(self, state):
            for group in state.optimizer.param_groups:  # the ramp multiplies the peak lr, not
                group["initial_lr"] = group.get("max_lr", state.config.lr)  # OneCycle's start
            state.scheduler = torch.optim.lr_scheduler.LambdaLR(
                state.optimizer, _ramp(state.steps_per_epoch * state.config.epochs))

    class OverflowingBatch(seqrep.Callback):
        """nonfinite, planted (beside the huge lr): from the second epoch's fourth step, one
        series of each batch holds a value past float32's range, as an unscaled reading
        would: its activations overflow and the loss is NaN. (A huge lr alone stopped giving
        a NaN once the model normalised its activations.)"""

        def before_batch(self, state):
            if state.epoch >= 1 and state.step >= 3:
                state.x = state.x.clone()
                state.x[0, 0, 0] = float("inf")

    return {"lr_zero": [OneEpochSchedule()], "val_better": [NoiseAugmentation()],
            "diverge": [RampTooHigh()], "nonfinite": [OverflowingBatch()]}.get(case, [])


def run_seqrep(case: str, seed: int, out: Path) -> list[dict]:
    """Train one seqrep run with `fit`; out/run.jsonl is its log (the checkpoint is dropped)."""
    import seqrep
    from seqrep.train import fit

    size = SEQREP_SIZES[seed]
    postmortem = case.startswith("postmortem")
    data = (seqrep.make_sequences(seed=seed) if postmortem else
            seqrep.make_sequences(n_classes=size["classes"], n_samples=size["samples"], length=96, seed=seed))
    train, val = data.split(0.25, seed=seed)
    if case == "overfit":  # planted: 3 series per class, 60 epochs, no dropout or weight decay
        keep = np.concatenate([np.flatnonzero(train.y == c)[:3] for c in range(train.n_classes)])
        train = train.subset(keep)
    if case == "majority":  # planted: a preprocessing step that zeroes every series
        train = seqrep.SequenceDataset(train.X * 0, train.y, train.class_names)
        val = seqrep.SequenceDataset(val.X * 0, val.y, val.class_names)
    if case == "val_flat":  # planted: validation labels encoded one class off
        val = seqrep.SequenceDataset(val.X, (val.y + 1) % val.n_classes, val.class_names)
    model = {"init": "data" if case in ("healthy_data_start", "grad_zero") else "random",
             "extraction": "broken" if case in ("no_learning", "postmortem_broken", "grad_zero") else "fixed",
             "width": 32, "dropout": {"overfit": 0.0, "val_better": 0.5}.get(case, 0.1)}
    config = seqrep.TrainConfig().replace(
        epochs={"overfit": 60, "diverge": 15}.get(case, 12), budget=0, seed=seed,
        batch_size=min(16, len(train)),  # (overfit on 5 classes: 15 series)
        check_gradients=model["extraction"] == "fixed" and case != "init_far",
        # planted: nonfinite, lr 1e4 with no clipping (diverge: a callback's schedule)
        lr={"nonfinite": 1e4}.get(case, 1e-2),
        grad_clip=0.0 if case == "nonfinite" else 1.0,
        schedule="constant" if case in ("nonfinite", "overfit") else "onecycle",
        weight_decay=0.0 if case in ("overfit", "nonfinite") else 1e-2, model=model)
    net = seqrep.build_model(config, train)
    if case == "init_far":  # planted: the readout's weights scaled up 50x after construction
        with torch.no_grad():
            net.readout.weight.mul_(50.0)
    fresh(out)
    try:
        fit(net, train, val, config, out, _seqrep_callbacks(case), progress=False, verbose=False)
    except seqrep.SeqrepError as err:  # the non-finite guard stops the run: the log says so
        print(f"  {case}: {type(err).__name__}: {str(err)[:100]}", file=sys.stderr)
    for extra in out.iterdir():
        if extra.name != "run.jsonl":
            extra.unlink()
    expected = {"postmortem_broken": "no_learning", "postmortem_fixed": "healthy"}.get(case) or EXPECTED[case]
    return [{"tool": "seqrep", "case": case, "seed": seed, "classes": int(train.n_classes), "path": "run.jsonl",
             "format": "seqrep", "expected": expected}]


# --------------------------------------------------------------------------------------------
# A hand-written PyTorch loop logging JSON Lines or CSV under its own column names
# --------------------------------------------------------------------------------------------

PLAIN_CASES = ("healthy", "healthy_csv", "no_learning", "nonfinite", "glued")
PLAIN_MAP = {"train_loss": "objective", "val_loss": "heldout_objective", "val_acc": "heldout_score",
             "epoch": "ep"}


def _plain_train(case: str, seed: int, write, epochs: int = 8) -> None:
    """The loop: an MLP on Gaussian classes, Adam with a cosine schedule; `write(record)` logs
    every 5th step and every epoch's validation."""
    size = SIZES[seed]
    torch.manual_seed(seed)
    X, y = (torch.from_numpy(a) for a in blobs(seed, size["n_train"], size["classes"]))
    Xv, yv = (torch.from_numpy(a) for a in blobs(seed, 512, size["classes"]))
    if case == "nonfinite":  # planted: one row divided by a zero norm
        X[seed * 13 % len(X)] /= 0.0
    model = nn.Sequential(nn.Linear(16, size["hidden"]), nn.ReLU(), nn.Linear(size["hidden"], size["classes"]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    if case == "no_learning":  # planted: the model rebuilt after the optimizer took the old one's parameters
        model = nn.Sequential(nn.Linear(16, size["hidden"]), nn.ReLU(), nn.Linear(size["hidden"], size["classes"]))
    steps, step = epochs * math.ceil(len(X) / 32), 0
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for ep in range(epochs):
        for idx in torch.randperm(len(X)).split(32):
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 5 == 0:
                write({"it": step, "ep": ep, "objective": float(loss), "lr_now": sched.get_last_lr()[0]})
        with torch.no_grad():
            logits = model(Xv)
        write({"it": step, "ep": ep, "heldout_objective": float(nn.functional.cross_entropy(logits, yv)),
               "heldout_score": float((logits.argmax(1) == yv).float().mean())})


def run_plain(case: str, seed: int, out: Path) -> list[dict]:
    """One plain-loop run into out/metrics.jsonl or out/log.csv (glued: the script run twice,
    appending to the same CSV)."""
    fresh(out)
    csv_log = case in ("healthy_csv", "glued")
    path = out / ("log.csv" if csv_log else "metrics.jsonl")
    columns = ["it", "ep", "objective", "lr_now", "heldout_objective", "heldout_score"]

    def write(record: dict) -> None:
        new = not path.exists()
        with open(path, "a") as f:
            if not csv_log:
                f.write(json.dumps(record) + "\n")
                return
            if new:
                f.write(",".join(columns) + "\n")
            f.write(",".join(str(record.get(c, "")) for c in columns) + "\n")

    if case == "glued":  # planted: a first, interrupted run appended to by the re-run
        _plain_train(case, seed, write, epochs=3)
    _plain_train(case, seed, write)
    expected = "healthy" if case == "healthy_csv" else EXPECTED[case]
    return [{"tool": "plain", "case": case, "seed": seed, "classes": SIZES[seed]["classes"], "path": path.name,
             "format": "csv" if csv_log else "jsonl", "expected": expected, "map": PLAIN_MAP}]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="seqrep,hf,lightning,plain")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8")
    parser.add_argument("--cases", default="", help="comma-separated (default: every case of each tool)")
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args(argv)
    out = Path(args.out)
    runners = {"lightning": (run_lightning, LIGHTNING_CASES), "hf": (run_hf, HF_CASES),
               "seqrep": (run_seqrep, SEQREP_CASES), "plain": (run_plain, PLAIN_CASES)}
    manifest_path = out / "manifest.json"
    wanted = set(filter(None, args.cases.split(",")))
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for tool in args.tools.split(","):
        run, cases = runners[tool]
        for seed in map(int, args.seeds.split(",")):
            for case in cases:
                if wanted and case not in wanted:
                    continue
                where = f"{tool}/{case}_s{seed}"
                rows = run(case, seed, out / where)
                manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
                manifest = [m for m in manifest if not m["path"].startswith(where + "/")]
                manifest += [{**row, "path": f"{where}/{row['path']}"} for row in rows]
                manifest.sort(key=lambda m: m["path"])
                manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
                print(f"{where}: done", file=sys.stderr, flush=True)

if __name__ == "__main__":
    main()
