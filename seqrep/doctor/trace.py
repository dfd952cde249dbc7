"""One training forward and backward, recorded: which modules ran, in which mode and with
autograd on or off, what reached the loss, the gradients, which ReLU units fired, which modules
ran that the model does not own. Every check of the doctor reads this one record."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import SeqrepError
from .batch import MODE_DEPENDENT, logits_of, preserved, tensors

_RELUS = (nn.ReLU, nn.ReLU6)
_CHANNEL_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.modules.pooling._MaxPoolNd,
                  nn.modules.pooling._AvgPoolNd)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def recorded(module: nn.Module) -> bool:
    """Modules the checks read: those holding parameters, mode-dependent ones, ReLUs and the
    layers that say which axis a ReLU's units are on. The others (activations, containers of
    nothing trainable) are not hooked: hooks on every module cost more than a small model's step."""
    return any(True for _ in module.parameters()) or isinstance(module, (*MODE_DEPENDENT, *_RELUS, *_CHANNEL_FIRST))


class Recorder:
    """Forward pre-hooks and hooks on the modules the checks read (`recorded`): mode, autograd
    state, input history, order; the share of dead units of every ReLU; and (through a global
    hook, removed afterwards) the modules that ran inside the model but are not registered in it."""

    def __init__(self, model: nn.Module, batch_storages: set[int]):
        self.batch_storages = batch_storages
        self.owned = {id(m): name for name, m in model.named_modules()}
        self.calls: dict[str, dict] = {}
        self.dead: dict[str, dict] = {}
        self.foreign: list[dict] = []
        self.order, self.stack, self.last_leaf = 0, [], None
        self.handles = []
        for name, module in model.named_modules():
            if not name or recorded(module):
                self.handles.append(module.register_forward_pre_hook(self._pre(name)))
                self.handles.append(module.register_forward_hook(self._post(name)))
        self.handles.append(nn.modules.module.register_module_forward_pre_hook(self._any))

    def _any(self, module, args):
        if id(module) in self.owned or not self.stack:
            return
        self.foreign.append({"type": type(module).__name__, "inside": self.stack[-1],
                             "parameters": {id(p) for p in module.parameters()}, "module": module})

    def _pre(self, name):
        def hook(module, args):
            float_inputs = [t for t in tensors(args) if t.is_floating_point()]
            self.order += 1
            self.stack.append(name)
            record = self.calls.setdefault(name, {"start": self.order, "calls": 0, "eval_calls": 0,
                                                  "no_grad_calls": 0, "no_history_input": False,
                                                  "batch_input": False})
            record["calls"] += 1
            record["eval_calls"] += not module.training
            record["no_grad_calls"] += not torch.is_grad_enabled() or torch.is_inference_mode_enabled()
            if float_inputs and not any(t.requires_grad for t in float_inputs):
                record["no_history_input"] = True
                record["batch_input"] |= any(_storage(t) in self.batch_storages for t in float_inputs)
        return hook

    def _post(self, name):
        def hook(module, args, output):
            self.order += 1
            self.calls[name]["end"] = self.order
            if self.stack and self.stack[-1] == name:
                self.stack.pop()
            if isinstance(module, _RELUS) and isinstance(output, torch.Tensor) and output.dim() >= 2:
                self._record_dead(name, output)
            if not any(True for _ in module.children()):
                self.last_leaf = module
        return hook

    def _record_dead(self, name: str, output: torch.Tensor) -> None:
        """Units = channels (axis 1) after a convolution or norm layer, else the last axis."""
        axis = 1 if isinstance(self.last_leaf, _CHANNEL_FIRST) else output.dim() - 1
        alive = output.detach().movedim(axis, -1).reshape(-1, output.shape[axis]).amax(0) > 0
        seen = self.dead.get(name)
        alive = alive if seen is None or seen["alive"].shape != alive.shape else alive | seen["alive"]
        self.dead[name] = {"alive": alive, "units": int(alive.numel())}

    def remove(self):
        for h in self.handles:
            h.remove()


def graph_leaves(loss: torch.Tensor) -> dict[int, torch.Tensor]:
    """{id: tensor} of the leaf tensors the loss depends on: walk grad_fn.next_functions down to
    the AccumulateGrad nodes, before any backward."""
    seen, found = set(), {}
    stack = [loss.grad_fn] if loss.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            found[id(variable)] = variable
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def output_ops(output: torch.Tensor, depth: int = 4) -> list[str]:
    """Names of the last autograd ops that produced `output`, skipping views and copies:
    e.g. ['SoftmaxBackward0', 'AddmmBackward0']."""
    skip = ("View", "Reshape", "Squeeze", "Unsqueeze", "Select", "Slice", "Clone", "ToCopy",
            "Expand", "Permute", "Transpose", "Contiguous", "Alias")
    names, node = [], output.grad_fn
    while node is not None and len(names) < depth:
        name = type(node).__name__
        if not name.startswith(skip):
            names.append(name)
        nexts = [n for n, _ in node.next_functions if n is not None]
        node = nexts[0] if nexts else None
    return names


@dataclass
class Trace:
    """What one training forward + backward showed. `grads`: (name, parameter, gradient or
    None); `leaves`: leaf tensors reachable from the loss; `layers`: the names of layers (leaf or torch.nn modules); `loss_warnings`: warnings the loss
    raised (e.g. PyTorch's broadcasting warning), `forward_warnings` those the forward raised
(e.g. torch.utils.checkpoint's); `error`: an exception from forward or loss."""

    output: torch.Tensor | None = None
    output_ops: list[str] = field(default_factory=list)
    loss_value: float = float("nan")
    loss_has_graph: bool = False
    leaves: dict[int, torch.Tensor] = field(default_factory=dict)
    backward_error: str | None = None
    grads: list[tuple] = field(default_factory=list)
    recorder: Recorder | None = None
    layers: set[str] = field(default_factory=set)
    loss_warnings: list[str] = field(default_factory=list)
    forward_warnings: list[str] = field(default_factory=list)
    error: Exception | None = None


def _is_layer(module: nn.Module) -> bool:
    """A layer: a leaf module, or one of torch.nn's own (MultiheadAttention holds a child)."""
    return type(module).__module__.startswith("torch.nn.") or not any(True for _ in module.children())


def _forward_and_loss(model, x, y, forward, loss_fn, forward_given, trace: Trace):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        output = logits_of(forward(model, x), forward_given)
    trace.forward_warnings = [str(w.message) for w in caught]
    if not (output.is_floating_point() or output.is_complex()):
        raise SeqrepError(f"the model's output is an integer tensor ({output.dtype}, shape {tuple(output.shape)}): "
                          "argmax, round or .long() in forward has no gradient, so nothing can learn "
                          "through it. Return the float logits and take argmax only for predictions.")
    trace.output, trace.output_ops = output.detach(), output_ops(output)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = loss_fn(output, y)
    trace.loss_warnings = [str(w.message) for w in caught]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise SeqrepError(f"the loss is not one number but {shape}: a loss with reduction='none' returns "
                          "one value per sample, and backward() needs a scalar. Pass a loss_fn that "
                          "reduces, e.g. loss_fn=lambda out, y: F.cross_entropy(out, y, reduction='none').mean().")
    return loss


def trace_training_step(model: nn.Module, x, y, *, loss_fn: Callable, forward: Callable,
                        forward_given: bool, train_mode: bool, extra=()) -> Trace:
    """One forward (train() mode unless train_mode=False) and backward without side effects.
    `extra`: leaf tensors outside the model's parameters whose .grad must be kept (the layers of
    a Python list); other leaves created during forward lose the gradient this backward gave them."""
    named_params = list(model.named_parameters())
    extra = [*extra, *(t for t in tensors(x) if t.requires_grad)]
    trace = Trace(layers={n for n, m in model.named_modules() if n and _is_layer(m)})
    recorder = Recorder(model, {_storage(t) for t in tensors(x)})
    trace.recorder = recorder
    kept = {id(t) for t in extra} | {id(p) for _, p in named_params}
    with preserved(model, extra):
        for _, p in named_params:
            p.grad = None
        try:
            if train_mode:
                model.train()
            with torch.enable_grad():
                loss = _forward_and_loss(model, x, y, forward, loss_fn, forward_given, trace)
                trace.loss_value = float(loss.detach().float())
                trace.leaves = graph_leaves(loss)
                trace.loss_has_graph = loss.grad_fn is not None
                if loss.requires_grad:
                    try:
                        loss.backward()
                    except RuntimeError as err:
                        trace.backward_error = str(err)
        except Exception as err:  # reported by the caller, with what the check needs
            trace.error = err
        finally:
            recorder.remove()
            # the gradient tensors themselves (no copy: `preserved` gives the parameters back
            # their own .grad, so nothing else holds these)
            trace.grads = [(name, p, None if p.grad is None else p.grad.detach()) for name, p in named_params]
            for key, t in trace.leaves.items():
                if key not in kept:
                    t.grad = None
    return trace
