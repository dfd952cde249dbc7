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
from .errors import SeqrepError

__all__ = ["CHECKPOINT_NAME", "load_model", "read_checkpoint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "seqrep-checkpoint-2"


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write `payload` (tensors and plain data; `seqrep.builtin.Checkpointer` assembles it from
    a run's state) to `path` with this version's format mark, atomically: a temp file, then a
    rename, so a crash leaves the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


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
    return ckpt


def check_fits(ckpt: dict, path: Path, model: nn.Module, requested: TrainConfig) -> None:
    """Raise unless `ckpt` was made by `model`'s class, with `requested`, for its architecture."""
    if ckpt["model_class"] != type(model).__name__:
        raise SeqrepError(
            f"{path} holds a {ckpt['model_class']}, not a {type(model).__name__}; resume with the "
            "same model, or start a new run directory."
        )
    changed = TrainConfig.from_json(ckpt["config"]).diff(requested)
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
    path = Path(run_dir) / CHECKPOINT_NAME
    ckpt = read_checkpoint(path)
    config = TrainConfig.from_json(ckpt["config"])
    model = build_model(config, DataShape(**ckpt["data"]))
    check_fits(ckpt, path, model, config)
    model.load_state_dict(ckpt["model"])
    return model.eval()
