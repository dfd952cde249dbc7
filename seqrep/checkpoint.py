"""Checkpoints: written after every logged epoch, read to resume a run or to load its model.

A checkpoint holds tensors and plain data only, and is read with `torch.load(...,
weights_only=True)`: loading one never runs code. It is written to a temp file and renamed,
so a crash leaves the previous one intact. Resume continues from it bitwise exactly: model,
optimizer, scheduler, the torch RNG, the epoch's running sums and position.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .build import DataShape, build_model
from .config import TrainConfig
from .data import SequenceDataset
from .errors import SeqrepError, as_path

__all__ = ["CHECKPOINT_NAME", "check_data", "data_summary", "load_model", "read_checkpoint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "seqrep-checkpoint-2"
REQUIRED = ("config", "epochs", "model_class", "model", "optimizer", "scheduler", "torch_rng", "epoch",
            "complete", "next_step", "progress", "record", "data")


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write `payload` (tensors and plain data; `seqrep.builtin.Checkpointer` assembles it from
    a run's state) to `path` with this version's format mark, atomically: a temp file, synced,
    then a rename, so a crash leaves the previous checkpoint intact. A write that fails (a full
    disk) removes the temp file and raises SeqrepError with the system's reason."""
    path = Path(path)
    tmp = path.with_suffix(".pt.tmp")
    try:
        with open(tmp, "wb") as f:  # a file object: torch then reports the OSError behind a failed write
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)
        cause = err if isinstance(err, OSError) else err.__context__
        reason = (cause.strerror or str(cause)) if isinstance(cause, OSError) else str(err)
        raise SeqrepError(
            f"{path}: the checkpoint could not be written ({reason}). The previous checkpoint, if "
            "any, is intact, no partial file is left, and this epoch was not logged. Free disk "
            f"space where the run directory is (df -h {path.parent}), then resume the run."
        ) from None


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint at `path` as a dict, or a SeqrepError saying why it cannot be one."""
    path = Path(path)
    if not path.is_file():
        raise SeqrepError(f"{path}: no checkpoint here; has this run finished an epoch?")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, foreign, or code that weights_only refuses to run
        raise SeqrepError(
            f"{path}: not a readable seqrep checkpoint ({type(err).__name__}: it is truncated, "
            "corrupt or not a checkpoint). It is never unpickled as code. Delete it and start a new "
            "run directory, or restore a good copy."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise SeqrepError(
            f"{path}: not a seqrep checkpoint of this version (format {found!r}, expected "
            f"{FORMAT!r}); start a new run directory."
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing or not isinstance(ckpt["model"], dict) or not isinstance(ckpt["data"], dict):
        raise SeqrepError(
            f"{path}: an incomplete seqrep checkpoint (missing or damaged: "
            f"{', '.join(missing) or 'model or data'}); it was not written by seqrep.fit. Restore "
            "a good copy, or start a new run directory."
        )
    return ckpt


def data_summary(train: SequenceDataset, val: SequenceDataset | None) -> dict:
    """What a checkpoint keeps of its data: the shape a model needs (channels, n_classes,
    length) and, to refuse a resume on other data, each split's name, size and fingerprint."""
    def split(ds):
        return None if ds is None else {"name": ds.name, "samples": len(ds), "fingerprint": ds.fingerprint()}

    return {"channels": train.channels, "n_classes": train.n_classes, "length": train.length,
            "train": split(train), "val": split(val)}


def check_data(ckpt: dict, path: Path, train: SequenceDataset, val: SequenceDataset | None) -> None:
    """Raise unless the run of `ckpt` trained on `train` and validated on `val`: the same
    shape, sizes and content (fingerprints). A checkpoint older than fingerprints is checked
    on its shape alone."""
    had, now = ckpt["data"], data_summary(train, val)
    changed = [f"{k}: {had[k]!r} in the checkpoint vs {now[k]!r} now" for k in ("channels", "n_classes", "length")
               if had.get(k) != now[k]]
    for role in ("train", "val"):
        if role in had and (had[role] or {}).get("fingerprint") != (now[role] or {}).get("fingerprint"):
            changed.append(f"{role}: {_described(had[role])} in the checkpoint vs {_described(now[role])} now")
    if changed:
        raise SeqrepError(
            f"{path} was made on different data ({'; '.join(changed)}); resuming would train the "
            "rest of the run on other series inside the same log. Resume with the data the run "
            "started with (the same dataset, --data-seed, --classes, --samples, --length), or "
            "start a new run directory."
        )


def _described(split: dict | None) -> str:
    return "none" if split is None else f"{split['name']!r} ({split['samples']} series, fingerprint {split['fingerprint']})"


def config_of(ckpt: dict, path: Path) -> TrainConfig:
    """The config a checkpoint was made with, or SeqrepError naming the checkpoint."""
    try:
        return TrainConfig.from_json(ckpt["config"])
    except SeqrepError as err:
        raise SeqrepError(
            f"{path}: its config cannot be read ({err}); the checkpoint was written by another "
            "version of seqrep. Load it with that version, or start a new run directory."
        ) from None


def check_fits(ckpt: dict, path: Path, model: nn.Module, requested: TrainConfig) -> None:
    """Raise unless `ckpt` was made by `model`'s class, with `requested`, for its architecture."""
    if ckpt["model_class"] != type(model).__name__:
        raise SeqrepError(
            f"{path} holds a {ckpt['model_class']}, not a {type(model).__name__}; resume with the "
            "same model, or start a new run directory."
        )
    changed = config_of(ckpt, path).diff(requested)
    if changed:
        detail = ", ".join(f"{k}: {a!r} in the checkpoint vs {b!r} now" for k, (a, b) in changed.items())
        raise SeqrepError(
            f"{path} was made with a different config ({detail}); resume with the same config or "
            "start a new run directory."
        )
    own = model.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape) if k in own else 'missing'}"
        for k, v in ckpt["model"].items() if k not in own or own[k].shape != v.shape
    ] + [f"{k} missing from the checkpoint" for k in own if k not in ckpt["model"]]
    if mismatched:
        raise SeqrepError(
            f"{path} does not fit this model's architecture (checkpoint vs model: "
            f"{'; '.join(mismatched[:4])}{' ...' if len(mismatched) > 4 else ''}); was the data "
            "(channels, classes, length) different? Start a new run directory."
        )


def load_model(run_dir: str | os.PathLike) -> nn.Module:
    """The model of a run's latest checkpoint, rebuilt from its config, in eval() mode."""
    path = as_path(run_dir, "load_model: run_dir", "load_model('runs/20260101-120000-GunPoint')") / CHECKPOINT_NAME
    ckpt = read_checkpoint(path)
    config = config_of(ckpt, path)
    model = build_model(config, DataShape(*(ckpt["data"][k] for k in DataShape._fields)))
    if ckpt["model_class"] != type(model).__name__:
        raise SeqrepError(
            f"{path} holds a {ckpt['model_class']}, a model of your own: load_model rebuilds only "
            "seqrep's models from their config. Build yours, then model.load_state_dict("
            f"seqrep.checkpoint.read_checkpoint({str(path)!r})['model'])."
        )
    check_fits(ckpt, path, model, config)
    model.load_state_dict(ckpt["model"])
    return model.eval()
