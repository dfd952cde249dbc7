"""A gallery of minimal reconstructions of silent bugs that people reported for sequence
models, each with where it was reported, the finding kind and culprit `check_training` must
name, and the one-line fix (the same case built with fixed=True); plus clean sequence
architectures that must get no finding at all. The tests and notebook 06 run every entry.

    >>> for case in REPORTED_BUGS:
    ...     setup = case.build(fixed=False)
    ...     report = seqrep.check_training(setup.model, *setup.arguments(make_toy()))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import gallery_models as gm
from .toy import Toy


@dataclass
class Setup:
    """A model ready to check or train on a `Toy` batch: `inputs(toy)` builds x, `targets(toy)`
    y; `uses_mask` passes the toy's padding mask to the check; `full` asks for unpadded data."""

    model: nn.Module
    inputs: Callable[[Toy], object]
    targets: Callable[[Toy], torch.Tensor] = lambda t: t.y
    loss_fn: Callable | None = None
    optimizer: torch.optim.Optimizer | None = None
    forward: Callable | None = None
    uses_mask: bool = False
    train_mode: bool = True
    full: bool = False
    expect_frozen: tuple = ()

    def __post_init__(self):
        if self.optimizer is None:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def arguments(self, toy: Toy) -> tuple[tuple, dict]:
        """((x, y),) and the keyword arguments of check_training for this batch."""
        return ((self.inputs(toy), self.targets(toy)),), {
            "loss_fn": self.loss_fn, "optimizer": self.optimizer, "forward": self.forward,
            "mask": toy.mask if self.uses_mask else None, "train_mode": self.train_mode,
            "expect_frozen": self.expect_frozen}


@dataclass(frozen=True)
class Case:
    """One reported bug class: `kind` and `culprit` (a name the finding must list; None when
    the finding has no name) that check_training must report, the one-line `fix`, and
    `source`: where it was reported (verified by reading the thread unless it says otherwise)."""

    name: str
    symptom: str
    kind: str
    culprit: str | None
    fix: str
    source: str
    build: Callable[[bool], Setup] = field(repr=False)

    def caught_by(self, findings) -> object | None:
        """The finding of this case's kind that names the culprit (a module also matches names
        inside it: "encoder" matches "encoder.layers.0"), or None."""
        for f in findings:
            if f.kind == self.kind and (self.culprit is None or any(
                    n == self.culprit or n.startswith(self.culprit + ".") for n in f.names)):
                return f
        return None


def _x(t: Toy):
    return t.x


def _x_mask(t: Toy):
    return (t.x, t.mask)


def _x_lengths(t: Toy):
    return (t.x, t.lengths)


def _conv(bug: str, **kw) -> Callable[[bool], Setup]:
    def build(fixed: bool) -> Setup:
        torch.manual_seed(0)
        return Setup(gm.ConvNet(None if fixed else bug), _x, full=True, **kw)
    return build


def _frozen(fixed: bool) -> Setup:
    torch.manual_seed(0)
    model = gm.ConvNet()
    if not fixed:
        for p in model.encoder.parameters():  # meant: freeze a pretrained part, froze the new one
            p.requires_grad_(False)
    return Setup(model, _x, full=True)


def _late_optimizer(fixed: bool) -> Setup:
    torch.manual_seed(0)
    model = gm.ConvNet()
    params = model.parameters() if fixed else model.encoder.parameters()
    return Setup(model, _x, optimizer=torch.optim.Adam(params, lr=1e-3), full=True)


def _left_in_eval(fixed: bool) -> Setup:
    torch.manual_seed(0)
    model = gm.ConvNet().eval()  # the validation loop of the previous epoch
    if fixed:
        model.train()
    return Setup(model, _x, train_mode=False, full=True)


def _item_loss(fixed: bool) -> Setup:
    def loss(out, y):
        value = F.cross_entropy(out, y)
        return value if fixed else torch.tensor(value.item(), requires_grad=True)
    torch.manual_seed(0)
    return Setup(gm.ConvNet(), _x, loss_fn=loss, full=True)


def _binary(bug: str | None, fixed: bool, targets: Callable) -> Setup:
    torch.manual_seed(0)
    return Setup(gm.ConvNet(None if fixed else bug, out=1), _x, targets=targets,
                 loss_fn=nn.BCEWithLogitsLoss(), full=True)


def _nll(fixed: bool) -> Setup:
    torch.manual_seed(0)
    loss = (lambda out, y: F.nll_loss(F.log_softmax(out, dim=1), y)) if fixed else nn.NLLLoss()
    return Setup(gm.ConvNet(None if fixed else "softmax"), _x, loss_fn=loss, full=True)


def _regression(fixed: bool) -> Setup:
    torch.manual_seed(0)
    model = gm.ConvNet(out=1)
    forward = (lambda m, x: m(x).squeeze(-1)) if fixed else None
    return Setup(model, _x, targets=lambda t: t.y.float(), loss_fn=nn.MSELoss(), forward=forward, full=True)


def _one_based(fixed: bool) -> Setup:
    torch.manual_seed(0)
    return Setup(gm.ConvNet(), _x, targets=(lambda t: t.y) if fixed else (lambda t: t.y + 1), full=True)


def _rnn(bug: str, fix: str | None = None, mask: bool = False) -> Callable[[bool], Setup]:
    def build(fixed: bool) -> Setup:
        torch.manual_seed(0)
        return Setup(gm.RNNNet(fix if fixed else bug), _x_lengths, uses_mask=mask)
    return build


def _attn(bug: str) -> Callable[[bool], Setup]:
    def build(fixed: bool) -> Setup:
        torch.manual_seed(0)
        return Setup(gm.AttnNet(None if fixed else bug), _x_mask, uses_mask=True)
    return build


def _listnet(bug: str) -> Callable[[bool], Setup]:
    def build(fixed: bool) -> Setup:
        torch.manual_seed(0)
        return Setup(gm.ListNet(None if fixed else bug), _x_mask, uses_mask=True)
    return build


def _unscaled(fixed: bool) -> Setup:
    torch.manual_seed(0)
    return Setup(gm.PoolNet(), (lambda t: (t.x, t.mask)) if fixed else (lambda t: (1000 * t.x, t.mask)),
                 uses_mask=True)


def _lr(lr: float, fixed_lr: float, sgd: bool = False) -> Callable[[bool], Setup]:
    def build(fixed: bool) -> Setup:
        torch.manual_seed(0)
        model = gm.PoolNet()
        kind = torch.optim.SGD if sgd else torch.optim.Adam
        return Setup(model, _x_mask, optimizer=kind(model.parameters(), lr=fixed_lr if fixed else lr), uses_mask=True)
    return build


def _deep_sigmoid(fixed: bool) -> Setup:
    torch.manual_seed(0)
    return Setup(gm.PoolNet(depth=12, act=nn.ReLU if fixed else nn.Sigmoid), _x_mask, uses_mask=True)


def _gain(fixed: bool) -> Setup:
    torch.manual_seed(0)
    return Setup(gm.ReluRNN(None if fixed else "gain"), _x_lengths)


def _dead(fixed: bool) -> Setup:
    torch.manual_seed(0)
    return Setup(gm.PoolNet(None if fixed else "dead_bias"), _x_mask, uses_mask=True)


GH = "github.com/"
DPT = "discuss.pytorch.org/t/"

REPORTED_BUGS: list[Case] = [
    Case("no_grad_features", "features extracted under torch.no_grad(): the encoder never trains "
         "(this project's seed bug)", "no_grad", "encoder", "h = self.encoder(x)  # no torch.no_grad() while training",
         "this project's post-mortem (notebook 01)", _conv("no_grad")),
    Case("numpy_roundtrip", "features go through .detach().numpy() and back", "graph_break", "encoder",
         "h = self.encoder(x)  # stay in torch", "this project's post-mortem (notebook 01)", _conv("numpy")),
    Case("eval_in_forward", "forward() calls self.encoder.eval(): BatchNorm frozen while training",
         "eval_mode", "encoder", "delete self.encoder.eval() from forward()",
         "this project's post-mortem (notebook 01)", _conv("eval_in_forward")),
    Case("left_in_eval", "validation set model.eval() and training never switched back", "eval_mode", "(model)",
         "model.train()  # at the start of every training epoch",
         GH + "pytorch/tutorials issue 1624; " + GH + "fartashf/vsepp issue 4; " + GH + "facebookresearch/clevr-iep PR 22",
         _left_in_eval),
    Case("optimizer_misses_head", "the optimizer was built from part of the model", "not_in_optimizer",
         "head.weight", "optimizer = torch.optim.Adam(model.parameters())",
         GH + "zjunlp/HVPNeT issue 5 (CRF and fc never added to the optimizer: 'crf and fc will not be "
         "trained'); " + GH + "jwohlwend/boltz issue 204", _late_optimizer),
    Case("frozen_by_mistake", "a freezing loop froze the part that should train", "frozen", "encoder.0.weight",
         "p.requires_grad_(True)", GH + "wannabeOG/MAS-PyTorch issue 1 (inverted freeze: 'we actually train "
         "frozen layers and ignore the not frozen layers'); " + GH + "r-three/t-few issue 31", _frozen),
    Case("unused_branch", "a branch defined in __init__ is never called in forward", "unused", "aux.weight",
         "out = out + self.aux(h)", DPT + "relationship-between-the-net-structure-and-forward/17826 (a layer "
         "defined in __init__, unused in forward, is never updated); " + GH + "pytorch/pytorch issue 43259",
         _conv("unused")),
    Case("loss_rebuilt_from_item", "loss = torch.tensor(loss.item(), requires_grad=True)", "detached_loss", None,
         "loss = F.cross_entropy(out, y)  # keep the graph", GH + "ronghuaiyang/arcface-pytorch issue 56 "
         "(loss.requires_grad = True; loss does not decline, accuracy 0)", _item_loss),
    Case("softmax_into_cross_entropy", "softmax in forward, then nn.CrossEntropyLoss", "loss_input", "output",
         "return self.head(h)  # logits", DPT + "cross-entropy-loss-is-not-decreasing/43814 (answer 16)",
         _conv("softmax")),
    Case("sigmoid_into_bce_with_logits", "sigmoid in forward, then nn.BCEWithLogitsLoss", "loss_input", "output",
         "return self.head(h)  # logits", GH + "yudi-mars/daisyRec PR 15; " + GH + "avBuffer/UNet3plus_pth issue 23",
         lambda fixed: _binary("sigmoid", fixed, lambda t: (t.y % 2).float()[:, None])),
    Case("softmax_into_nll", "softmax (not log_softmax) into nn.NLLLoss: the loss goes negative", "loss_input",
         "output", "F.nll_loss(F.log_softmax(out, dim=1), y)",
         GH + "AnubhavGupta3377/Text-Classification-Models-Pytorch issue 9; " + GH + "yanx27/Pointnet_Pointnet2_pytorch issue 30",
         _nll),
    Case("mse_broadcast", "MSE of a (B, 1) output against (B,) targets broadcasts to (B, B)", "loss_input",
         "output", "loss_fn(out.squeeze(-1), y)", GH + "deepset-ai/FARM issue 229; " + GH + "Photon-AI-Research/NeuralSolvers issue 20",
         _regression),
    Case("labels_one_based", "class labels 1..C with C outputs", "loss_input", "target", "y = y - 1",
         GH + "pytorch/pytorch issue 15666 (labels 1..10 for 10 classes; on CUDA a device-side assert)", _one_based),
    Case("bce_minus_one_labels", "labels in {-1, 1} for BCEWithLogitsLoss: no minimum", "loss_input", "target",
         "y = (y > 0).float()", GH + "bigmb/Unet-Segmentation-Pytorch-Nest-of-Unets issue 18 (masks in "
         "[-1, 1] into BCE: the loss goes negative); " + GH + "huanglianghua/siamfc-pytorch issue 37",
         lambda fixed: _binary(None, True, (lambda t: (t.y % 2).float()[:, None]) if fixed
                               else (lambda t: (2 * (t.y % 2) - 1).float()[:, None]))),
    Case("lstm_time_first", "an LSTM without batch_first fed (batch, time, features)", "batch_mixing", "lstm",
         "nn.LSTM(..., batch_first=True)", DPT + "lstm-change-batch-first-true-loss-does-not-decrease/62364",
         _rnn("time_first")),
    Case("h_n_reshape", "h_n (layers, batch, hidden) reshaped to (batch, -1)", "batch_mixing", "head",
         "h = h_n[-1]", GH + "graykode/nlp-tutorial issue 38; " + GH + "OpenNMT/OpenNMT-py issue 1521; "
         + GH + "timbmg/Sentence-VAE issue 15", _rnn("hn_reshape", "hn_fixed")),
    Case("sorted_never_unsorted", "sorted by length for packing, outputs never unsorted", "batch_mixing", "head",
         "pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)",
         GH + "fartashf/vsepp PR 36 (\"embeddings in a batch seemed to be mixed up\"); " + GH + "espnet/espnet issue 1201",
         _rnn("sorted")),
    Case("last_step_of_padding", "output[:, -1] of a right-padded batch: the last step is padding", "padding_leak",
         "head", "h = out[torch.arange(len(x)), lengths - 1]  # or pack the batch",
         GH + "thtrieu/qclass_dl issue 1 (TensorFlow: outputs[-1] is the output of the <PAD/> word, "
         "'terrible result')", _rnn("last_step", mask=True)),
    Case("inverted_key_padding_mask", "src_key_padding_mask with True = real step (PyTorch wants True = pad)",
         "padding_leak", "encoder", "src_key_padding_mask=~mask",
         GH + "pytorch/pytorch PR 39321 (True masks out, 'counterintuitive'); " + GH + "jadore801120/attention-is-all-you-need-pytorch issue 148",
         _attn("inverted_mask")),
    Case("mean_over_padding", "mean pooling over all steps, padding included", "padding_leak", "head",
         "(h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)",
         GH + "jina-ai/clip-as-service issue 93 (REDUCE_MEAN without input_mask); " + GH + "dbiir/UER-py PR 190",
         _attn("mean_over_padding")),
    Case("layers_in_python_list", "layers kept in a Python list: never optimised", "unregistered", "layers",
         "self.layers = nn.ModuleList([...])", GH + "ikostrikov/pytorch-meta-optimizer issue 11", _listnet("list")),
    Case("layer_built_in_forward", "nn.Linear created inside forward(): new weights every call", "unregistered",
         "model", "self.head = nn.Linear(...)  # in __init__", DPT + "can-i-instantiate-layers-in-forward-function/105054",
         _listnet("in_forward")),
    Case("tensor_not_parameter", "a weight as a plain tensor with requires_grad=True", "unregistered", "scale",
         "self.scale = nn.Parameter(torch.ones(width))", GH + "automan000/Convolutional_LSTM_PyTorch issue 17 "
         "(ConvLSTM peephole weights as plain tensors: 'parameters will not be updated forever'); "
         + GH + "SimonThomine/RememberingNormality issue 7", _listnet("tensor")),
    Case("unscaled_inputs", "raw inputs ~1000x the unit scale, no normalisation: loss at init huge", "init_loss",
         "head", "x = (x - mean) / std", DPT + "neural-network-could-not-learn-on-this-type-of-data-why/96648 "
         "(inputs 1-4000 do not learn until normalised); " + GH + "zhouhaoyi/Informer2020 issue 251",
         _unscaled),
    Case("learning_rate_too_high", "Adam with lr=1 (an SGD habit)", "step_size", "body.0",
         "torch.optim.Adam(model.parameters(), lr=1e-3)", GH + "OpenNMT/OpenNMT-py issue 805 (Adam with the SGD "
         "default lr 1: perplexity stays high; fix lr=0.001); " + GH + "OpenNMT/OpenNMT-py issue 253", _lr(1.0, 1e-3)),
    Case("learning_rate_too_low", "SGD with lr=1e-9: nothing moves", "step_size", "optimizer",
         "torch.optim.SGD(model.parameters(), lr=0.1)", GH + "OpenLMLab/LOMO issue 50 (the loss does not go "
         "down; the maintainer: the learning rate is too small)", _lr(1e-9, 0.1, sgd=True)),
    Case("deep_sigmoid_stack", "12 sigmoid layers: early gradients vanish", "vanishing_gradient", "body.0.weight",
         "nn.ReLU()", GH + "phlippe/uvadlc_notebooks issue 119 (a sigmoid MLP barely trains: the early layers' "
         "gradients; Glorot and Bengio 2010)", _deep_sigmoid),
    Case("recurrent_gain", "ReLU RNN with recurrent weights 1.5 x identity: gradients explode", "exploding_gradient",
         "rnn.weight_hh_l0", "nn.init.orthogonal_(rnn.weight_hh_l0)", GH + "Marcovaldong/lstmp.pytorch issue 2 (LSTM "
         "loss NaN after ~1200 iterations; clipping at norm 1 fixed it); " + GH + "pytorch/pytorch issue 2623", _gain),
    Case("dead_relu_bias", "a large negative bias kills every ReLU unit", "dead_units", "body.1",
         "nn.init.zeros_(layer.bias)", GH + "facebookresearch/dlrm PR 358 (a large negative bias init 'prevents any "
         "training, as all derivatives are zero'); " + DPT + "cross-entropy-loss-is-not-decreasing/43814 (answer 16)", _dead),
]


@dataclass(frozen=True)
class Clean:
    """A correct sequence architecture: check_training must report nothing."""

    name: str
    build: Callable[[], Setup] = field(repr=False)


def _seqrep_default() -> Setup:
    from ..config import ModelSpec
    from ..model import SequenceClassifier

    torch.manual_seed(0)
    model = SequenceClassifier(4, 4, 24, ModelSpec())  # the default: the data-fitted start
    # its readout is solved by ridge and part of its groups stay as fitted: frozen by design
    frozen = tuple(name for name, p in model.named_parameters() if not p.requires_grad)
    return Setup(model, lambda t: (t.x.transpose(1, 2), t.mask),
                 forward=lambda m, x: m(x[0], mask=x[1]), uses_mask=True, expect_frozen=frozen)


def _seqrep_as_fit_calls_it() -> Setup:
    """fit's call: model(x, training=True, mask=m), autograd on in the mode fit set."""
    setup = _seqrep_default()
    setup.forward = lambda m, x: m(x[0], training=True, mask=x[1])
    return setup


def _clean(model_fn: Callable[[], nn.Module], inputs: Callable, **kw) -> Callable[[], Setup]:
    def build() -> Setup:
        torch.manual_seed(0)
        return Setup(model_fn(), inputs, **kw)
    return build


CLEAN: list[Clean] = [
    Clean("seqrep SequenceClassifier (multi-scale conv + attention, masked)", _seqrep_default),
    Clean("seqrep SequenceClassifier as fit calls it (training=True)", _seqrep_as_fit_calls_it),
    Clean("LSTM, packed, last real step", _clean(gm.RNNNet, _x_lengths, uses_mask=True)),
    Clean("2-layer LSTM, packed, h_n[-1]", _clean(lambda: gm.RNNNet("hn_fixed"), _x_lengths, uses_mask=True)),
    Clean("bidirectional GRU, packed, attention pooling, dict output",
          _clean(gm.GRUAttention, _x_lengths, forward=lambda m, x: m(*x)["logits"], uses_mask=True)),
    Clean("TransformerEncoder with key_padding_mask, masked mean", _clean(gm.AttnNet, _x_mask, uses_mask=True)),
    Clean("token TransformerEncoder, padding_idx, mask from the pad id",
          _clean(gm.TokenTransformer, lambda t: t.tokens, uses_mask=True)),
    Clean("token CNN, padding_idx, masked max pooling", _clean(gm.TokenCNN, lambda t: t.tokens, uses_mask=True)),
    Clean("1-D CNN with BatchNorm, global average pooling", _clean(gm.ConvNet, _x, full=True)),
    Clean("TCN (causal dilated convolutions, residual)", _clean(gm.TCN, _x, full=True)),
    Clean("per-step MLP, masked mean", _clean(gm.PoolNet, _x_mask, uses_mask=True)),
    Clean("ModuleList layers + Parameter scale", _clean(gm.ListNet, _x_mask, uses_mask=True)),
    Clean("binary GRU attention with BCEWithLogitsLoss",
          _clean(lambda: gm.GRUAttention(out=1), _x_lengths, forward=lambda m, x: m(*x)["logits"],
                 targets=lambda t: (t.y % 2).float()[:, None], loss_fn=nn.BCEWithLogitsLoss(), uses_mask=True)),
    Clean("regression CNN with MSE", _clean(lambda: gm.ConvNet(out=1), _x, targets=lambda t: t.y.float(),
                                            loss_fn=nn.MSELoss(), forward=lambda m, x: m(x).squeeze(-1), full=True)),
]


def train_curve(setup: Setup, train: Toy, val: Toy, steps: int, *, batch_size: int = 32, lr: float | None = 3e-3,
                seed: int = 0) -> dict:
    """Train `setup.model` for `steps` optimizer steps on minibatches of `train` (Adam with `lr`,
    or the setup's own optimizer when lr is None) and return the training loss per step and the
    accuracy on `val` (argmax of the logits, or logit > 0 for one output) at the end."""
    from .batch import default_forward

    model, forward = setup.model, setup.forward or default_forward
    loss_fn = setup.loss_fn or F.cross_entropy
    optimizer = setup.optimizer if lr is None else torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    model.train(setup.train_mode or model.training)
    for _ in range(steps):
        part = train.subset(torch.randint(len(train.y), (batch_size,), generator=g))
        loss = loss_fn(forward(model, setup.inputs(part)), setup.targets(part))
        optimizer.zero_grad()
        if loss.requires_grad:
            loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        out = forward(model, setup.inputs(val))
    target = setup.targets(val)
    predicted = (out > 0).long().reshape(target.shape) if out.dim() == 1 or out.shape[-1] == 1 else out.argmax(1)
    return {"loss": losses, "accuracy": float((predicted == target.long()).float().mean())}
