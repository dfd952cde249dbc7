"""Does a sample's output depend only on that sample's real steps? `batch_mixing`: change one
sample, watch the others. `padding_leak`: change only padded steps, watch every output. Both run
in eval mode without autograd, so BatchNorm's batch statistics and dropout do not count, and
name the first module whose output shows the effect."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .batch import (
    MODE_DEPENDENT,
    first_input,
    logits_of,
    map_tensors,
    perturbed,
    replace_first,
    take,
    tensors,
    time_axis,
)
from .report import Finding

# A relative change below this (of the largest output magnitude) is float noise. Measured
# (benchmarks/results/doctor.md): clean models change by exactly 0; the reconstructed bugs by
# 0.16 (mixing) and 0.41 (padding) at least.
TOLERANCE = 1e-4


def _to_eval(module, args):
    module.training = False


class _Capture:
    """Pre-hooks that put every BatchNorm/Dropout module in eval mode right before it runs, so a
    forward that switches modes itself (e.g. model(x, training=True)) still runs them in eval
    mode here (the modes are restored afterwards by `preserved`); with record=True, forward
    hooks on every module that keep its first input and output tensor, in call order (to name
    where an effect appears, only once one is found: hooks on every module cost more than the
    forward of a small model)."""

    def __init__(self, model: nn.Module, record: bool):
        self.calls: list[tuple[str, torch.Tensor | None, torch.Tensor | None]] = []
        self.handles = [m.register_forward_pre_hook(_to_eval) for m in model.modules() if isinstance(m, MODE_DEPENDENT)]
        if record:
            self.handles += [m.register_forward_hook(self._hook(n)) for n, m in model.named_modules() if n]

    def _hook(self, name):
        def hook(module, args, output):
            first_in, first_out = tensors(args), tensors(output)
            self.calls.append((name, first_in[0] if first_in else None, first_out[0] if first_out else None))
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _run(model: nn.Module, x, forward: Callable, rng: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, list]:
    """The eval-mode output and (record=True) the per-module record, from the same RNG state
    every time (so a layer built inside forward() is built alike and its randomness does not
    count as a change)."""
    capture = _Capture(model, record)
    torch.set_rng_state(rng)
    try:
        model.eval()
        with torch.no_grad():
            out = logits_of(forward(model, x), True)
    finally:
        capture.remove()
    return out, capture.calls


def _locate(model: nn.Module, x, changed, forward: Callable, rng: torch.Tensor, n: int, affected: Callable,
            extra: int = 0) -> tuple[tuple[str, ...], str]:
    """Where an effect first appears: both runs again, recording every module's output."""
    base_calls = _run(model, x, forward, rng, record=True)[1]
    calls = _run(model, changed, forward, rng, record=True)[1]
    return _where(_first_affected(base_calls, calls, n, affected, extra))


def inference_modules(model: nn.Module, x, forward: Callable, rng: torch.Tensor) -> set[str]:
    """The modules an eval-mode forward calls."""
    return {name for name, _, _ in _run(model, x, forward, rng, record=True)[1]}


def _scale(a: torch.Tensor) -> float:
    """The largest finite magnitude of `a` (a sample whose output is NaN, as a fully masked
    attention row gives, must not hide the change of the others)."""
    magnitude = a.detach().float().abs()
    finite = magnitude[torch.isfinite(magnitude)]
    return (float(finite.max()) if finite.numel() else 0.0) + 1e-12


def _per_sample(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Largest absolute change per sample (dim 0), relative to the largest finite magnitude of
    `a`; `keep` (broadcastable bool) restricts the comparison to those entries."""
    diff = (a.float() - b.float()).abs()
    if keep is not None:
        diff = torch.where(keep.bool(), diff, torch.zeros((), device=diff.device))
    return diff.reshape(len(diff), -1).amax(1) / _scale(a)


def _comparable(a, b, n: int, extra: int) -> bool:
    return (a is not None and b is not None and a.dim() > 0 and a.shape[0] == n
            and _aligned(a, b, extra) is not None)


def _first_affected(base: list, changed: list, n: int, affected: Callable, extra: int = 0) -> tuple[str, bool] | None:
    """The first module (in completion order) whose output shows the effect, and whether its
    input already did; None when the two runs called different modules."""
    if [c[0] for c in base] != [c[0] for c in changed]:
        return None
    for (name, in_a, out_a), (_, in_b, out_b) in zip(base, changed):
        if _comparable(out_a, out_b, n, extra) and affected(out_a, out_b):
            return name, bool(_comparable(in_a, in_b, n, extra) and affected(in_a, in_b))
    return None


def _where(located: tuple[str, bool] | None) -> tuple[tuple[str, ...], str]:
    if located is None:
        return ("model",), "the model"
    name, before = located
    if before:
        return (name,), f"the code in forward() before {name} (its input is already affected)"
    return (name,), name


def run_captured(model: nn.Module, x, forward: Callable) -> tuple[torch.Tensor, object, torch.Tensor]:
    """The unchanged eval-mode output, the input it came from, and the RNG state every changed
    run starts from."""
    rng = torch.get_rng_state()
    return (_run(model, x, forward, rng)[0], x, rng)


def _donors(x0: torch.Tensor, chosen: list[int]) -> list[int] | None:
    """For each chosen sample, the other sample whose input differs from it most (None when
    every other sample is identical to it: then no swap can show anything)."""
    flat = x0.detach().reshape(len(x0), -1).float()
    others = [j for j in range(len(x0)) if j not in chosen]
    donors = []
    for i in chosen:
        distance = (flat[others] - flat[i]).abs().sum(1)
        if not bool((distance > 0).any()):
            return None
        donors.append(others[int(distance.argmax())])
    return donors


def _changed_samples(x, x0: torch.Tensor, chosen: list[int], generator: torch.Generator):
    """x with the chosen samples changed, or None when no change is possible. Float inputs get
    noise over the whole sample (padded steps too: a mixing model may read another sample's
    padding). Integer tokens keep the model's own input rules (counts of special tokens,
    masks, lengths): the chosen samples become copies of other real samples, all their
    tensors at once."""
    n = x0.shape[0]
    if x0.is_floating_point():
        where = torch.zeros(x0.shape, dtype=torch.bool, device=x0.device)
        where[chosen] = True
        return replace_first(x, perturbed(x0, where, generator)), "noise"
    donors = _donors(x0, chosen)
    if donors is None:
        return None, None
    index = torch.arange(n, device=x0.device)  # on the batch's device, whatever torch's default
    index[chosen] = torch.tensor(donors, device=x0.device)
    return take(x, index, n), f"copies of samples {donors}"


def check_batch_mixing(model: nn.Module, x, forward: Callable, generator: torch.Generator,
                       base: tuple) -> tuple[list[Finding], dict]:
    """Change the first and the middle sample; every other sample's output must stay."""
    x0 = first_input(x)
    n = x0.shape[0]
    chosen = sorted({0, n // 2})
    changed, how = _changed_samples(x, x0, chosen, generator)
    if changed is None:
        return [], {"largest_change": 0.0, "note": "all samples identical"}
    out, _ = _run(model, changed, forward, base[2])
    others = [i for i in range(n) if i not in chosen]
    change = _per_sample(base[0], out)
    worst = float(change[others].max()) if others else 0.0
    hit = [i for i in others if change[i] > TOLERANCE]
    if not hit:
        return [], {"largest_change": worst}

    def mixes(a, b):
        return bool((_per_sample(a, b)[others] > TOLERANCE).any())

    names, label = _locate(model, x, changed, forward, base[2], n, mixes)
    return [Finding("batch_mixing", names, f"changing only sample(s) {chosen} ({how}) changes the output of {len(hit)} other sample(s) (e.g. sample {hit[0]}, "
                    f"by {float(change[hit[0]]):.2g} of the output scale): samples mix in {label}. Typical "
                    "causes: an RNN fed (batch, time, features) while it expects time first, h_n reshaped "
                    "across layers and batch, sequences sorted for packing and never unsorted.",
                    "nn.LSTM(..., batch_first=True)  # or h_n[-1], or pack with enforce_sorted=False",
                    {"changed": chosen, "how": how, "affected": hit[:20], "largest_change": worst})], \
        {"largest_change": worst}


def _aligned(a: torch.Tensor, b: torch.Tensor, extra: int) -> torch.Tensor | None:
    """`b` cut back to `a`'s shape when the probe appended `extra` steps along one axis (a
    per-step output); None when the shapes differ otherwise."""
    if a.shape == b.shape:
        return b
    if a.dim() != b.dim():
        return None
    grown = [d for d in range(a.dim()) if a.shape[d] != b.shape[d]]
    if len(grown) != 1 or b.shape[grown[0]] != a.shape[grown[0]] + extra:
        return None
    return b.narrow(grown[0], 0, a.shape[grown[0]])


def _real(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """`mask` laid over the axis of `t` that has the mask's number of steps (None if none):
    per-step outputs are compared on real steps only, as a padded step's own output may
    follow its own (changed) input."""
    axes = [d for d in range(1, t.dim()) if t.shape[d] == mask.shape[1]]
    if not axes or t.shape[0] != mask.shape[0]:
        return None
    shape = [1] * t.dim()
    shape[0], shape[axes[0]] = mask.shape[0], mask.shape[1]
    return mask.reshape(shape)


def _steps(row: torch.Tensor, extra: int) -> str:
    idx = (~row).nonzero().flatten().tolist()
    if not idx:
        return f"none of its own; the probe appended {extra} padded steps" if extra else "none"
    return f"{idx[0]}-{idx[-1]}" if len(idx) > 1 else str(idx[0])


def _pad_token(x0: torch.Tensor, where: torch.Tensor) -> int | None:
    """The pad id of integer tokens: one value fills every padded step and no real one."""
    if x0.is_floating_point() or not where.any():
        return None
    values = torch.unique(x0[where])
    if len(values) == 1 and not (x0[~where] == values[0]).any():
        return int(values[0])
    return None


def _extended(x, x0: torch.Tensor, axis: int, mask: torch.Tensor, extra: int):
    """x with `extra` more padded steps: every input with the mask's (batch, time) leading axes
    (the tokens, a mask, a key_padding_mask) grows along time by the value it holds at a padded
    step of a sample that really has padding, so a model that reads padding from pad tokens
    still sees padding there."""
    i, t = (~mask).nonzero()[0].tolist()
    n, steps = mask.shape

    def grow(value, tensor_axis):
        index = [slice(None)] * value.dim()
        index[0], index[tensor_axis] = slice(i, i + 1), slice(t, t + 1)
        shape = list(value.shape)
        shape[0], shape[tensor_axis] = n, extra
        return torch.cat([value, value[tuple(index)].expand(shape)], dim=tensor_axis)

    def walk(value: torch.Tensor) -> torch.Tensor:
        if value is x0:
            return grow(value, axis)
        if value.dim() >= 2 and tuple(value.shape[:2]) == (n, steps):
            return grow(value, 1)
        return value

    return map_tensors(x, walk)


def _alone(x, x0: torch.Tensor, axis: int, mask: torch.Tensor, i: int):
    """Sample i by itself without its padding: a batch of one in which the first input keeps
    only its real steps along `axis`, every other (batch, time, ...) input (a mask) only those
    steps along time, and every other per-sample tensor (lengths) its row i."""
    n, steps = mask.shape
    real = mask[i].nonzero().flatten()

    def walk(value: torch.Tensor) -> torch.Tensor:
        if value.dim() == 0 or value.shape[0] != n:
            return value
        one = value[i:i + 1]
        if value is x0:
            return one.index_select(axis, real.to(value.device))
        if value.dim() >= 2 and value.shape[1] == steps:
            return one.index_select(1, real.to(value.device))
        return one

    return map_tensors(x, walk)


def _differs_alone(model: nn.Module, x, x0: torch.Tensor, axis: int, mask: torch.Tensor, i: int,
                   forward: Callable, rng: torch.Tensor, base: torch.Tensor) -> bool:
    """Whether sample i's output in the batch (a row of `base`, (batch, ...)) differs from its
    output alone without padding (`_alone`; per-step outputs compared on its real steps). A
    model that reads the pad value only where the sample alone reads the same value (a 'same'
    convolution's window over the last real step, on zero padding) is padding-invariant; True
    when the two cannot be compared or the run alone fails."""
    real = mask[i].nonzero().flatten()
    try:
        out, _ = _run(model, _alone(x, x0, axis, mask, i), forward, rng)
    except Exception:
        return True
    ref = base[i:i + 1]
    grown = [d for d in range(1, ref.dim()) if out.dim() == ref.dim() and out.shape[d] != ref.shape[d]]
    if len(grown) == 1 and ref.shape[grown[0]] == mask.shape[1] and out.shape[grown[0]] == len(real):
        ref = ref.index_select(grown[0], real.to(ref.device))
    if out.shape != ref.shape:
        return True
    return not bool(((out.float() - ref.float()).abs() <= TOLERANCE * _scale(base)).all())


def _changes(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, extra: int) -> torch.Tensor | None:
    """Per-sample relative change of `b` against `a` on the original, real steps (None when
    the two cannot be aligned)."""
    b = _aligned(a, b, extra)
    if b is None:
        return None
    keep = _real(a, mask) if a.dim() > 1 else None
    return _per_sample(a, b, keep)


def _causes(x) -> list[str]:
    """Likely causes of a padding leak, most likely first: with an attention_mask in the
    inputs (Hugging Face), that mask not reaching the model or inverted."""
    causes = ["the last step of a right-padded batch", "a key_padding_mask with True for real steps "
              "(PyTorch wants True = padding)", "mean or attention pooling over padded steps"]
    if isinstance(x, dict) and any("attention_mask" in k for k in x):
        causes.insert(0, "the attention_mask not passed to the model, or inverted (Hugging Face "
                         "models want 1 = real token, 0 = padding)")
    return causes


def check_padding_leak(model: nn.Module, x, forward: Callable, mask: torch.Tensor, time_dim: int | None,
                       generator: torch.Generator, base: tuple, extra: int = 4) -> tuple[list[Finding], dict]:
    """Change only padded steps of the first input (float values: noise; integer tokens padded
    with a pad id: `extra` more padded steps, as the model could read padding from the pad id);
    a change of an output on the real steps is a leak when a changed sample alone, without its
    padding, gives another output too (`_differs_alone`), or has no padding of its own."""
    x0 = first_input(x)
    mask = mask.to(torch.bool).to(x0.device)
    axis = time_axis(x0, mask, time_dim)
    shape = [1] * x0.dim()
    shape[0], shape[axis] = mask.shape
    where = (~mask).reshape(shape).expand(x0.shape)
    if not where.any():
        return [], {"largest_change": 0.0, "note": "no padded step in the batch"}
    grows = _pad_token(x0, where) is not None
    changed = _extended(x, x0, axis, mask, extra) if grows else replace_first(x, perturbed(x0, where, generator))
    extra = extra if grows else 0
    base, _, rng = base
    out, _ = _run(model, changed, forward, rng)
    change = _changes(base, out, mask, extra)
    if change is None:
        return [], {"note": f"outputs of shapes {tuple(base.shape)} and {tuple(out.shape)} cannot be compared"}
    worst = float(change.max())
    leaky = [i for i in range(len(change)) if change[i] > TOLERANCE]
    confirmed = any(bool(mask[i].all()) or _differs_alone(model, x, x0, axis, mask, i, forward, rng, base)
                    for i in leaky)  # stops at the first sample that confirms it
    if not confirmed:
        note = {"note": "outputs change only where the samples alone read the same pad value"} if leaky else {}
        return [], {"largest_change": worst, **note}

    def leaks(a, b):
        found = _changes(a, b, mask, extra)
        return found is not None and bool((found > TOLERANCE).any())

    names, label = _locate(model, x, changed, forward, rng, len(change), leaks, extra)
    i = next((j for j in leaky if not mask[j].all()), leaky[0])  # a sample with padding of its own
    causes = _causes(x)
    return [Finding("padding_leak", (*names, f"sample {i}"), f"changing only padded steps changes "
                    f"the output of {len(leaky)} sample(s): sample {i} (padded steps {_steps(mask[i], extra)}) "
                    f"moves by {float(change[i]):.2g} of the output scale. Padding leaks in at "
                    f"{label}. Likely cause: {causes[0]}; else {', '.join(causes[1:])}.",
                    "model(**x)  # with x['attention_mask'] (1 = real token)" if "attention_mask" in causes[0] else
                    "pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # or key_padding_mask=~mask",
                    {"samples": leaky[:20], "largest_change": worst, "causes": causes})], {"largest_change": worst}
