"""What the checks share: calling the model on what users bring (a tensor, a tuple of tensors, a
dict), finding the time axis a padding mask describes, perturbing inputs, and putting the model
back exactly as it was (parameters, buffers, gradients, modes, RNG state)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..errors import SeqrepError

# Layers whose forward depends on train()/eval(): running them in eval mode while training
# silently changes what is learned (BatchNorm stops adapting, Dropout stops regularising).
MODE_DEPENDENT = (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)


def tensors(value) -> list[torch.Tensor]:
    """Every tensor inside a tensor / list / tuple / dict / PackedSequence, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors(v)]
    return []


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose code runs: through DistributedDataParallel / DataParallel (`.module`)
    and torch.compile (`._orig_mod`). Same parameters, so nothing is copied; the checks run it
    eagerly and locally (no recompilation, no collective communication)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = model.module
        if inner is None:
            return model
        model = inner


def default_forward(model: nn.Module, x):
    """model(x), model(*x) for a tuple/list, model(**x) for a dict."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def logits_of(output, forward_given: bool) -> torch.Tensor:
    """The model's output as one tensor; a tuple or dict needs forward= to pick the logits."""
    if isinstance(output, torch.Tensor):
        return output
    what = f"a {type(output).__name__}" + (f" with keys {list(output)}" if isinstance(output, dict) else "")
    hint = ("forward=lambda m, x: m(x)['logits']" if isinstance(output, dict)
            else "forward=lambda m, x: m(x)[0]")
    raise SeqrepError(f"the model returned {what}, not a tensor of logits; "
                      f"{'your forward= must return' if forward_given else 'pass forward= that returns'} "
                      f"the logits, e.g. {hint}.")


def first_input(x) -> torch.Tensor:
    """The first tensor of the model input: the sequence the mask and perturbations refer to."""
    found = tensors(x)
    if not found:
        raise SeqrepError("check_training: the batch's x holds no tensor; pass (x, y) with x a "
                          "tensor, a tuple of tensors or a dict of tensors.")
    return found[0]


def map_tensors(x, fn: Callable[[torch.Tensor], torch.Tensor]):
    """x with every tensor t replaced by fn(t), in the same structure (tensors, named tuples,
    lists, tuples, dicts; anything else as it is). fn sees the tensors in order."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(map_tensors(v, fn) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(map_tensors(v, fn) for v in x)
    if isinstance(x, dict):
        return {k: map_tensors(v, fn) for k, v in x.items()}
    return x


def take(x, index: torch.Tensor, n: int):
    """x with every tensor whose first axis has the batch's `n` samples indexed by `index`
    (same structure): whole samples, all their tensors, swapped or repeated together."""
    return map_tensors(x, lambda t: t[index.to(t.device)] if t.dim() > 0 and t.shape[0] == n else t)


def replace_first(x, new: torch.Tensor):
    """x with its first tensor replaced by `new` (same structure)."""
    done = [False]

    def swap(value: torch.Tensor) -> torch.Tensor:
        if done[0]:
            return value
        done[0] = True
        return new

    return map_tensors(x, swap)


def time_axis(x: torch.Tensor, mask: torch.Tensor, time_dim: int | None) -> int:
    """The axis of `x` (batch, ...) that a (batch, time) mask describes: the one non-batch axis
    of length `time`, or `time_dim` when several have that length."""
    if mask.dim() != 2 or mask.shape[0] != x.shape[0]:
        raise SeqrepError(f"mask must be (batch, time) = ({x.shape[0]}, time) bool, True for a real "
                          f"step; got shape {tuple(mask.shape)}.")
    if time_dim is not None:
        axis = time_dim % x.dim()
        if axis == 0 or x.shape[axis] != mask.shape[1]:
            raise SeqrepError(f"time_dim={time_dim} is axis {axis} of length {x.shape[axis]} in the "
                              f"input {tuple(x.shape)}; the mask has {mask.shape[1]} steps.")
        return axis
    axes = [d for d in range(1, x.dim()) if x.shape[d] == mask.shape[1]]
    if len(axes) != 1:
        raise SeqrepError(f"cannot tell the time axis of the input {tuple(x.shape)} from the mask's "
                          f"{mask.shape[1]} steps ({'several axes' if axes else 'no axis'} of that "
                          f"length); pass time_dim= (e.g. time_dim={axes[-1] if axes else 1}).")
    return axes[0]


def perturbed(x: torch.Tensor, where: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x with the entries where `where` (broadcastable bool) is True replaced: floats by noise
    of the input's own scale plus one, integers (tokens) by other tokens seen in the batch."""
    if x.is_floating_point():
        scale = float(x.detach().float().std()) + 1.0 if x.numel() > 1 else 1.0
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
        return torch.where(where, x.detach() + 3 * scale * noise, x)
    vocabulary = torch.unique(x)
    if len(vocabulary) < 2:
        vocabulary = torch.stack([vocabulary[0], vocabulary[0] + 1])
    pick = torch.randint(len(vocabulary), x.shape, generator=generator, device="cpu").to(x.device)
    other = vocabulary[pick]
    other = torch.where(other == x, vocabulary[(pick + 1) % len(vocabulary)], other)
    return torch.where(where, other, x)


def _rng_states() -> tuple:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def preserved(model: nn.Module, extra: Iterable[torch.Tensor] = ()):
    """Run the body, then put back every parameter value, buffer, stored gradient, train/eval
    mode and the torch RNG state exactly as they were (`extra`: more leaf tensors whose .grad
    must survive, e.g. unregistered ones)."""
    modules = list(model.modules())
    modes = [m.training for m in modules]
    params = list(dict.fromkeys([*model.parameters(), *extra]))
    grads = [p.grad for p in params]
    values = [p.detach().clone() for p in model.parameters()]
    buffers = [b.detach().clone() for b in model.buffers()]
    rng = _rng_states()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, v in zip(model.parameters(), values):
                if not torch.equal(p, v):
                    p.copy_(v)
            for b, v in zip(model.buffers(), buffers):
                b.copy_(v)
        for p, g in zip(params, grads):
            p.grad = g
        for m, mode in zip(modules, modes):
            m.training = mode
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state_all(rng[1])


def run_eval(model: nn.Module, x, forward: Callable) -> torch.Tensor:
    """One forward in eval mode without autograd: (batch, ...) logits."""
    model.eval()
    with torch.no_grad():
        return logits_of(forward(model, x), True)
