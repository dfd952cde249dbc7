"""Tensors that require grad and feed the loss but are not parameters of the model
(`unregistered`): layers kept in a Python list or dict, a layer built inside forward(), a plain
tensor attribute with requires_grad=True. The optimizer built from model.parameters() never
sees them, state_dict() does not save them, .to(device) does not move them."""

from __future__ import annotations

import torch
from torch import nn

from .batch import tensors
from .report import Finding, _plural
from .trace import Trace


def _containers(value):
    """Every module or tensor inside lists / tuples / dicts kept as plain attributes."""
    if isinstance(value, (nn.Module, torch.Tensor)):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _containers(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _containers(v)


def hidden_tensors(model: nn.Module) -> dict[int, tuple[str, str, torch.Tensor]]:
    """{id: (attribute path, how it is held, tensor)} for every tensor that requires grad but
    that the model does not register: held in a plain list/dict attribute (with the layers
    inside it) or as a plain tensor attribute."""
    registered = {id(p) for p in model.parameters()}
    found = {}
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") or isinstance(value, (nn.Module, nn.Parameter)):
                continue
            path = f"{prefix}.{attr}" if prefix else attr
            how = "a plain tensor attribute" if isinstance(value, torch.Tensor) else f"a Python {type(value).__name__}"
            for item in _containers(value):
                items = item.parameters() if isinstance(item, nn.Module) else [item]
                for t in items:
                    if t.requires_grad and id(t) not in registered:
                        found[id(t)] = (path, how, t)
    return found


def check_unregistered(model: nn.Module, trace: Trace, x, hidden: dict) -> list[Finding]:
    """One finding per place that holds (or builds) grad-requiring tensors feeding the loss."""
    registered = {id(p) for p in model.parameters()} | {id(t) for t in tensors(x)}
    # a view of the input made to require grad (Wav2Vec2's feature encoder does this for
    # gradient checkpointing) is the batch, not a weight
    inputs = {t.untyped_storage().data_ptr() for t in tensors(x)}
    stray = {k: t for k, t in trace.leaves.items()
             if k not in registered and t.untyped_storage().data_ptr() not in inputs}
    if not stray:
        return []
    groups: dict[str, dict] = {}
    for key in stray:
        if key in hidden:
            path, how, _ = hidden[key]
            groups.setdefault(path, {"how": how, "n": 0, "built": False})["n"] += 1
            continue
        owner = next((f for f in trace.recorder.foreign if key in f["parameters"]), None)
        where = owner["inside"] if owner else ""
        label = f"{owner['type'] if owner else 'tensor'} built in {where or 'the model'}'s forward"
        groups.setdefault(label, {"how": "built in forward", "n": 0, "built": True, "inside": where})["n"] += 1
    found = []
    for label, g in groups.items():
        if g["built"]:
            name = g["inside"] or "model"
            found.append(Finding("unregistered", (name,), f"a {label}: {_plural(g['n'], 'tensor')} "
                                 "requiring grad feed the loss but are created anew on every call, "
                                 "so whatever the optimizer does to them is thrown away.",
                                 "self.layer = nn.Linear(...)  # in __init__, then self.layer(h) in forward"))
        else:
            fix = ("self.w = nn.Parameter(torch.randn(...))" if g["how"] == "a plain tensor attribute"
                   else f"self.{label.rpartition('.')[2]} = nn.ModuleList([...])  # not a Python list")
            found.append(Finding("unregistered", (label,), f"{label} is {g['how']} holding "
                                 f"{_plural(g['n'], 'tensor')} that require grad and feed the loss, "
                                 "but the model does not register them: model.parameters() (and so "
                                 "the optimizer), state_dict() and .to(device) miss them.", fix))
    return found
