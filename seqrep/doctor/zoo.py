"""A zoo of stock architectures the doctor must stay silent on and whose injected bugs it must
name: Hugging Face `transformers` encoders, decoders and encoder-decoders (sequence and token
classification, language modelling), audio models with LayerDrop, time-series models, `timm`
image models and plain PyTorch sequence models. Every model is built from a config (random
initialisation, small sizes, no download) and checked on realistic batches: right-padded
sequences with their attention masks, the unpadded (longest) sample placed first, in the middle
or last (`ORDERS`).

`transformers` and `timm` are test dependencies (`pip install seqrep[test]`), imported only when
a model of theirs is built.

    >>> for arch in ZOO:
    ...     for order in ORDERS:
    ...         case = arch.case(None, seed=0, order=order)          # the clean model
    ...         report = seqrep.check_training(case.model, *case.arguments())
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import gallery_models as gm
from .batch import MODE_DEPENDENT, default_forward

ORDERS = ("first", "middle", "last")  # where the unpadded (longest) sample sits in the batch
N, STEPS, VOCAB, CLASSES = 8, 16, 64, 4

_TORCHVISION_SCHEMAS: list = []


def allow_torchvision_without_ops() -> None:
    """Let `import torchvision` (which timm imports for FrozenBatchNorm2d and its transforms)
    succeed when torchvision's compiled operators cannot load, as with PyPI's x86-64 wheel (a
    CUDA build) beside a CPU build of torch: torchvision then registers a fake kernel for
    `torchvision::nms` unconditionally and its import fails with "operator torchvision::nms
    does not exist" (pytorch/vision issue 9085). Declaring the two operators' schemas lets that
    registration succeed; the operators themselves stay unavailable (no timm model used here
    calls them). Does nothing when torchvision is absent or its operators load."""
    spec = importlib.util.find_spec("torchvision")
    if _TORCHVISION_SCHEMAS or spec is None or spec.origin is None:
        return
    library = next(Path(spec.origin).parent.glob("_C*.so"), None)
    if library is None:
        return
    try:
        torch.ops.load_library(str(library))
        return
    except OSError:
        pass
    with contextlib.suppress(RuntimeError):  # already declared by another copy of this function
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_SCHEMAS.append(lib)


# ---------------------------------------------------------------------------------------------
# batches


def lengths_for(seed: int, order: str, n: int = N, steps: int = STEPS) -> torch.Tensor:
    """(n,) lengths between steps // 3 and steps - 1, one sample of the full length (unpadded)
    at the position `order` names."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(steps // 3, steps, (n,), generator=g)
    where = {"first": 0, "middle": n // 2, "last": n - 1}[order]
    lengths[where] = steps
    return lengths


def tokens_for(lengths: torch.Tensor, seed: int, pad: int, low: int = 4, eos: int | None = None,
               bos: int | None = None, steps: int = STEPS, vocab: int = VOCAB) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids (n, steps) with `pad` after each sequence (real tokens are drawn
    from low..vocab-1, so the pad id never appears in a real step), optional bos first and eos
    last; and the (n, steps) bool mask, True = real token."""
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(low, vocab, (len(lengths), steps), generator=g)
    mask = torch.arange(steps)[None] < lengths[:, None]
    if bos is not None:
        ids[:, 0] = bos
    if eos is not None:
        ids[torch.arange(len(lengths)), lengths - 1] = eos
    return ids.masked_fill(~mask, pad), mask


def targets_for(seed: int, n: int = N, classes: int = CLASSES) -> torch.Tensor:
    """(n,) balanced class targets in a seeded order."""
    g = torch.Generator().manual_seed(seed + 2)
    return (torch.arange(n) % classes)[torch.randperm(n, generator=g)]


@dataclass
class Batch:
    """x as the model takes it (a dict of tensors, a tuple or a tensor), y, and the (n, time)
    padding mask of x's first tensor (None for fixed-length inputs)."""

    x: object
    y: torch.Tensor
    mask: torch.Tensor | None = None


def sequence_ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of per-step logits (n, time, classes) against (n, time) targets, -100 ignored."""
    return F.cross_entropy(out.flatten(0, 1), y.flatten())


def next_token_ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Language-modelling loss: logits (n, time, vocab) at step t predict token t + 1."""
    return F.cross_entropy(out[:, :-1].flatten(0, 1), y[:, 1:].flatten())


def student_t_nll(params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """TimeSeriesTransformer's own loss: the negative log-likelihood of the targets (n, horizon)
    under its Student-t (params (n, horizon, 3): degrees of freedom, location, scale)."""
    df, loc, scale = params.unbind(-1)
    return -torch.distributions.StudentT(df, loc, scale).log_prob(y).mean()


def _text(pad: int = 0, eos: int | None = None, bos: int | None = None, per_token: str | None = None,
          types: bool = False) -> Callable[[int, str], Batch]:
    """A right-padded text batch; per_token="classes" / "tokens" gives (n, time) targets with
    -100 at padding (token classification / language modelling)."""
    def make(seed: int, order: str) -> Batch:
        lengths = lengths_for(seed, order)
        ids, mask = tokens_for(lengths, seed, pad, eos=eos, bos=bos)
        x = {"input_ids": ids, "attention_mask": mask.long()}
        if types:
            x["token_type_ids"] = torch.zeros_like(ids)
        if per_token == "classes":
            y = (ids % CLASSES).masked_fill(~mask, -100)
        elif per_token == "tokens":
            y = ids.masked_fill(~mask, -100)
        else:
            y = targets_for(seed)
        return Batch(x, y, mask)
    return make


def _seq2seq(seed: int, order: str) -> Batch:
    lengths = lengths_for(seed, order)
    ids, mask = tokens_for(lengths, seed, pad=0, eos=1, low=2)
    target, _ = tokens_for(torch.full((N,), 6), seed + 5, pad=0, eos=1, low=2, steps=6)
    decoder = torch.cat([torch.zeros(N, 1, dtype=torch.long), target[:, :-1]], dim=1)  # T5 starts with the pad id
    return Batch({"input_ids": ids, "attention_mask": mask.long(), "decoder_input_ids": decoder}, target, mask)


def _audio(samples: int = 400) -> Callable[[int, str], Batch]:
    def make(seed: int, order: str) -> Batch:
        lengths = lengths_for(seed, order, steps=samples)
        g = torch.Generator().manual_seed(seed + 3)
        mask = torch.arange(samples)[None] < lengths[:, None]
        wave = torch.randn(N, samples, generator=g) * mask
        return Batch({"input_values": wave, "attention_mask": mask.long()}, targets_for(seed), mask)
    return make


def _fixed(shape: tuple[int, ...], key: str | None = None) -> Callable[[int, str], Batch]:
    """Fixed-length float inputs (n, *shape): images, spectrograms, fixed windows."""
    def make(seed: int, order: str) -> Batch:
        g = torch.Generator().manual_seed(seed + 3)
        x = torch.randn(N, *shape, generator=g)
        return Batch({key: x} if key else x, targets_for(seed))
    return make


def _series_forecast(seed: int, order: str) -> Batch:
    g = torch.Generator().manual_seed(seed + 3)
    context, horizon = 24, 4  # context_length 16 + the largest lag 8
    x = {"past_values": torch.randn(N, context, generator=g),
         "past_time_features": torch.linspace(0, 1, context).expand(N, context)[..., None].clone(),
         "past_observed_mask": torch.ones(N, context),
         "future_values": torch.randn(N, horizon, generator=g),
         "future_time_features": torch.linspace(1, 1.2, horizon).expand(N, horizon)[..., None].clone()}
    return Batch(x, x["future_values"])


def _float_sequence(seed: int, order: str, *, as_lengths: bool) -> Batch:
    lengths = lengths_for(seed, order)
    g = torch.Generator().manual_seed(seed + 3)
    mask = torch.arange(STEPS)[None] < lengths[:, None]
    x = torch.randn(N, STEPS, gm.FEATURES, generator=g) * mask[..., None]
    return Batch((x, lengths) if as_lengths else (x, mask), targets_for(seed), mask)


def _torch_lengths(seed: int, order: str) -> Batch:
    return _float_sequence(seed, order, as_lengths=True)


def _torch_mask(seed: int, order: str) -> Batch:
    return _float_sequence(seed, order, as_lengths=False)


def _torch_full(seed: int, order: str) -> Batch:
    g = torch.Generator().manual_seed(seed + 3)
    return Batch(torch.randn(N, STEPS, gm.FEATURES, generator=g), targets_for(seed))


# ---------------------------------------------------------------------------------------------
# architectures


def _hf(config_name: str, model_name: str, **config) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        allow_torchvision_without_ops()  # transformers imports torchvision when it is installed
        import transformers

        settings = {"attn_implementation": "eager", **config}
        return getattr(transformers, model_name)(getattr(transformers, config_name)(**settings))
    return build


def _timm(name: str, **kw) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        allow_torchvision_without_ops()
        import timm

        return timm.create_model(name, pretrained=False, num_classes=CLASSES, **kw)
    return build


TEXT = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64, "num_labels": CLASSES}


# Wav2Vec2 and HuBERT share their config's fields; LayerDrop 0.5 skips half the layers in training.
AUDIO = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64,
         "conv_dim": (16, 16), "conv_stride": (5, 4), "conv_kernel": (10, 8), "num_conv_pos_embeddings": 8,
         "num_conv_pos_embedding_groups": 2, "feat_extract_norm": "layer", "do_stable_layer_norm": True,
         "layerdrop": 0.5, "mask_time_prob": 0.0, "num_labels": CLASSES, "classifier_proj_size": 16}


def _logits(m, x):
    return m(**x).logits


def _no_mask(m, x):
    return m(**{k: v for k, v in x.items() if k != "attention_mask"}).logits


def _inverted_mask(m, x):
    return m(**{**x, "attention_mask": 1 - x["attention_mask"]}).logits


class ResNet1D(nn.Module):
    """A 1-D ResNet (two residual stages of Conv-BN-ReLU, global average pooling, linear head)
    on (batch, time, features) full-length sequences."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(gm.FEATURES, width, 7, padding=3), nn.BatchNorm1d(width), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(width, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU(),
                          nn.Conv1d(width, width, 3, padding=1), nn.BatchNorm1d(width)) for _ in range(2))
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.transpose(1, 2))
        for block in self.blocks:
            h = torch.relu(h + block(h))
        return self.head(h.mean(-1))


class ConvGRU(nn.Module):
    """Conv1d over the padded (batch, time, features) sequence, a packed GRU, its last state."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.conv = nn.Conv1d(gm.FEATURES, width, 3, padding=1)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.features(x), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        return self.head(self.gru(packed)[1][-1])


class MHAPool(nn.Module):
    """nn.MultiheadAttention with key_padding_mask, a residual LayerNorm, masked mean pooling."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Linear(gm.FEATURES, width)
        self.attn = nn.MultiheadAttention(width, 2, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(x)
        a = self.attn(h, h, h, key_padding_mask=~mask if padding is None else padding)[0]
        return self.head(gm.masked_mean(self.norm(h + a), mask))


class FrozenEmbeddingGRU(nn.Module):
    """A pretrained-style embedding frozen on purpose (from_pretrained(freeze=True), left out of
    the optimizer), a packed GRU over the tokens (pad id 0), its last state."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(torch.randn(VOCAB, width), freeze=True, padding_idx=0)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), (tokens != 0).sum(1).cpu(),
                                                   batch_first=True, enforce_sorted=False)
        return self.head(self.gru(packed)[1][-1])


def _mixer() -> nn.Module:
    """timm's MLP-Mixer, which zero-initialises its head, at 32 x 32 pixels."""
    allow_torchvision_without_ops()
    from timm.models.mlp_mixer import MlpMixer

    return MlpMixer(num_classes=CLASSES, img_size=32, patch_size=8, num_blocks=2, embed_dim=32)


@dataclass
class Case:
    """One model on one batch, ready for check_training: `arguments()` gives ((x, y),) and its
    keyword arguments."""

    model: nn.Module
    batch: Batch
    forward: Callable | None
    loss_fn: Callable | None
    optimizer: torch.optim.Optimizer
    train_mode: bool = True

    def arguments(self) -> tuple[tuple, dict]:
        return ((self.batch.x, self.batch.y),), {
            "loss_fn": self.loss_fn, "optimizer": self.optimizer, "forward": self.forward,
            "mask": self.batch.mask, "train_mode": self.train_mode}


@dataclass(frozen=True)
class Arch:
    """A stock architecture: how to build it and a batch for it, its forward and loss, the
    `backbone` (the module holding the representation) and `head` (the module after it) the
    generic injected bugs act on, and its own `padding_bugs` {name: forward with the bug}."""

    name: str
    family: str
    build: Callable[[], nn.Module] = field(repr=False)
    batch: Callable[[int, str], Batch] = field(repr=False)
    backbone: str
    head: str
    forward: Callable | None = field(default=_logits, repr=False)
    loss_fn: Callable | None = field(default=None, repr=False)
    padding_bugs: dict = field(default_factory=dict, repr=False)
    classifier: bool = True  # outputs class logits (the softmax bug applies)

    def case(self, bug: str | None = None, seed: int = 0, order: str = "first") -> Case:
        """This architecture, clean (bug=None) or with one injected bug of `bug_names()`."""
        torch.manual_seed(seed)
        model = self.build()
        batch = self.batch(seed, order)
        trainable = [p for p in model.parameters() if p.requires_grad]  # as users build it
        case = Case(model, batch, self.forward, self.loss_fn, torch.optim.Adam(trainable, lr=1e-3))
        if bug is not None:
            INJECT[bug](self, case) if bug in INJECT else setattr(case, "forward", self.padding_bugs[bug])
        return case

    def bug_names(self) -> list[str]:
        torch.manual_seed(0)
        model = self.build()
        return [b for b, applies in APPLIES.items() if applies(self, model)] + list(self.padding_bugs)


# ---------------------------------------------------------------------------------------------
# injected bugs (each a reported class; gallery.py cites the reports)


def _module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # PackedSequence, namedtuples
        return type(value)(*(_detached(v) for v in value))
    if isinstance(value, tuple):
        return type(value)(_detached(v) for v in value)
    if dataclasses.is_dataclass(value) and isinstance(value, dict):  # a transformers ModelOutput
        return dataclasses.replace(value, **{k: _detached(v) for k, v in value.items()})
    return value


def _no_grad_backbone(arch: Arch, case: Case) -> None:
    """`with torch.no_grad(): features = backbone(x)` (the post-mortem's bug)."""
    module, state = _module(case.model, arch.backbone), []

    def before(m, args):
        state.append(torch.is_grad_enabled())
        torch.set_grad_enabled(False)

    def after(m, args, out):
        torch.set_grad_enabled(state.pop())

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)


def _detach_backbone(arch: Arch, case: Case) -> None:
    """`features = backbone(x).detach()` (or a numpy round trip)."""
    _module(case.model, arch.backbone).register_forward_hook(lambda m, args, out: _detached(out))


def _freeze_backbone(arch: Arch, case: Case) -> None:
    _module(case.model, arch.backbone).requires_grad_(False)


def _head_not_in_optimizer(arch: Arch, case: Case) -> None:
    """The optimizer built before the head was added (or from the backbone only)."""
    head = {id(p) for p in _module(case.model, arch.head).parameters()}
    case.optimizer = torch.optim.Adam([p for p in case.model.parameters() if id(p) not in head], lr=1e-3)


def _left_in_eval(arch: Arch, case: Case) -> None:
    case.model.eval()
    case.train_mode = False


def _softmax_output(arch: Arch, case: Case) -> None:
    inner = case.forward or default_forward
    case.forward = lambda m, x: torch.softmax(inner(m, x), dim=-1)


def _unused_branch(arch: Arch, case: Case) -> None:
    case.model.add_module("aux_head", nn.Linear(8, CLASSES))


def _lr_too_high(arch: Arch, case: Case) -> None:
    case.optimizer = torch.optim.Adam(case.model.parameters(), lr=1.0)


def _loss_from_item(arch: Arch, case: Case) -> None:
    inner = case.loss_fn or F.cross_entropy
    case.loss_fn = lambda out, y: torch.tensor(inner(out, y).item(), requires_grad=True)


INJECT: dict[str, Callable[[Arch, Case], None]] = {
    "no_grad_backbone": _no_grad_backbone, "detach_backbone": _detach_backbone,
    "frozen_backbone": _freeze_backbone, "head_not_in_optimizer": _head_not_in_optimizer,
    "left_in_eval": _left_in_eval, "softmax_into_cross_entropy": _softmax_output,
    "unused_branch": _unused_branch, "learning_rate_too_high": _lr_too_high,
    "loss_rebuilt_from_item": _loss_from_item,
}

def _has_mode_layers(arch: Arch, model: nn.Module) -> bool:
    return any(isinstance(m, MODE_DEPENDENT) for m in model.modules())


# bug -> whether it applies to an architecture (and its built model): eval mode changes nothing
# in a model without BatchNorm/Dropout modules (Llama, Whisper use functional dropout)
APPLIES: dict[str, Callable[[Arch, nn.Module], bool]] = {name: (lambda arch, model: True) for name in INJECT}
APPLIES["softmax_into_cross_entropy"] = lambda arch, model: arch.classifier
APPLIES["left_in_eval"] = _has_mode_layers
# the first step of a model with an all-zero weight matrix (a zero-initialised head) moves only
# that matrix, whose size is 0: its update-to-weight ratio is undefined, so a learning rate far
# too high shows only from the second step (watch)
APPLIES["learning_rate_too_high"] = lambda arch, model: not any(p.dim() >= 2 and not p.any() for p in model.parameters())

# bug -> (kind, culprit): the culprit is "backbone" / "head" (the architecture's), a name, or None
EXPECTED: dict[str, tuple[str, str | None]] = {
    "no_grad_backbone": ("no_grad", "backbone"), "detach_backbone": ("graph_break", "backbone"),
    "frozen_backbone": ("frozen", "backbone"), "head_not_in_optimizer": ("not_in_optimizer", "head"),
    "left_in_eval": ("eval_mode", "(model)"), "softmax_into_cross_entropy": ("loss_input", "output"),
    "unused_branch": ("unused", "aux_head"), "learning_rate_too_high": ("step_size", None),
    "loss_rebuilt_from_item": ("detached_loss", None),
    "attention_mask_not_passed": ("padding_leak", "attention_mask"),
    "attention_mask_inverted": ("padding_leak", "attention_mask"),
    "key_padding_mask_inverted": ("padding_leak", None), "last_step_of_padding": ("padding_leak", None),
    "mean_over_padding": ("padding_leak", None),
}

HF_PADDING = {"attention_mask_not_passed": _no_mask, "attention_mask_inverted": _inverted_mask}
# Audio models turn the mask into lengths (an inverted one truncates instead of leaking), and
# Longformer's sliding window keeps an inverted mask's padding away from the pooled token.
NOT_PASSED = {"attention_mask_not_passed": _no_mask}


def named(arch: Arch, case: Case, bug: str, findings) -> object | None:
    """The finding that names `bug` on `arch` with the expected kind and culprit, or None. A
    module culprit also matches the names of its parameters (a head tied to the embedding is
    named by the embedding's parameter); for an attention_mask culprit, the first cause the
    message gives must be the attention_mask."""
    kind, culprit = EXPECTED[bug]
    culprit = {"backbone": arch.backbone, "head": arch.head}.get(culprit, culprit)
    accepted = {culprit}
    if culprit in (arch.backbone, arch.head):
        owned = {id(p) for p in _module(case.model, culprit).parameters()}
        accepted |= {n for n, p in case.model.named_parameters() if id(p) in owned}
    for f in findings:
        if f.kind != kind:
            continue
        if culprit == "attention_mask":
            if "attention_mask" in f.details.get("causes", [""])[0]:
                return f
        elif culprit is None or any(n == c or n.startswith(c + ".") for n in f.names for c in accepted):
            return f
    return None


def _torch_last_step(m, x):
    out, _ = m.lstm(x[0])
    return m.head(out[:, -1])


def _torch_inverted(m, x):
    h = m.encoder(m.embed(x[0]), src_key_padding_mask=x[1])
    return m.head(gm.masked_mean(h, x[1]))


def _torch_mean(m, x):
    h = m.encoder(m.embed(x[0]), src_key_padding_mask=~x[1])
    return m.head(h.mean(1))


def _convgru_last_step(m, x):
    return m.head(m.gru(m.features(x[0]))[0][:, -1])


def _mha_inverted(m, x):
    return m(x[0], x[1], padding=x[1])


def _mha_mean(m, x):
    h = m.embed(x[0])
    return m.head(m.norm(h + m.attn(h, h, h, key_padding_mask=~x[1])[0]).mean(1))


def _tokens(seed: int, order: str) -> Batch:
    batch = _text(pad=0)(seed, order)
    return Batch(batch.x["input_ids"], batch.y, batch.mask)


def _tcn(x):
    return x[0] if isinstance(x, tuple) else x


ZOO: list[Arch] = [
    Arch("BERT sequence classification", "transformers", _hf("BertConfig", "BertForSequenceClassification", **TEXT),
         _text(types=True), "bert", "classifier", padding_bugs=HF_PADDING),
    Arch("BERT token classification", "transformers", _hf("BertConfig", "BertForTokenClassification", **TEXT),
         _text(per_token="classes"), "bert", "classifier", loss_fn=sequence_ce, padding_bugs=HF_PADDING),
    Arch("DistilBERT sequence classification", "transformers",
         _hf("DistilBertConfig", "DistilBertForSequenceClassification", vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2,
             hidden_dim=64, max_position_embeddings=64, num_labels=CLASSES),
         _text(), "distilbert", "classifier", padding_bugs=HF_PADDING),
    Arch("RoBERTa sequence classification", "transformers",
         _hf("RobertaConfig", "RobertaForSequenceClassification", **TEXT, pad_token_id=1),
         _text(pad=1, bos=0, eos=2), "roberta", "classifier", padding_bugs=HF_PADDING),
    Arch("ALBERT sequence classification", "transformers",
         _hf("AlbertConfig", "AlbertForSequenceClassification", **TEXT, embedding_size=16),
         _text(), "albert", "classifier", padding_bugs=HF_PADDING),
    Arch("ELECTRA sequence classification", "transformers",
         _hf("ElectraConfig", "ElectraForSequenceClassification", **TEXT, embedding_size=16),
         _text(), "electra", "classifier", padding_bugs=HF_PADDING),
    Arch("DeBERTa-v2 sequence classification", "transformers",
         _hf("DebertaV2Config", "DebertaV2ForSequenceClassification", **TEXT),
         _text(), "deberta", "classifier", padding_bugs=HF_PADDING),
    Arch("Longformer sequence classification", "transformers",
         _hf("LongformerConfig", "LongformerForSequenceClassification", **TEXT, attention_window=4, pad_token_id=1,
             attn_implementation=None),
         _text(pad=1, bos=0, eos=2), "longformer", "classifier", padding_bugs=NOT_PASSED),
    Arch("BART sequence classification", "transformers",
         _hf("BartConfig", "BartForSequenceClassification", vocab_size=VOCAB, d_model=32, encoder_layers=2,
             decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
             decoder_ffn_dim=64, max_position_embeddings=64, num_labels=CLASSES),
         _text(pad=1, bos=0, eos=2), "model", "classification_head", padding_bugs=HF_PADDING),
    Arch("T5 encoder-decoder language model", "transformers",
         _hf("T5Config", "T5ForConditionalGeneration", vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2,
             num_heads=2, decoder_start_token_id=0),
         _seq2seq, "encoder", "decoder", loss_fn=sequence_ce, padding_bugs=HF_PADDING),
    Arch("GPT-2 language model", "transformers",
         _hf("GPT2Config", "GPT2LMHeadModel", vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64),
         _text(pad=0, per_token="tokens"), "transformer", "lm_head", loss_fn=next_token_ce),
    Arch("GPT-2 sequence classification", "transformers",
         _hf("GPT2Config", "GPT2ForSequenceClassification", vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2,
             n_positions=64, num_labels=CLASSES, pad_token_id=0),
         _text(pad=0), "transformer", "score"),
    Arch("Llama language model", "transformers",
         _hf("LlamaConfig", "LlamaForCausalLM", vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64),
         _text(pad=0, per_token="tokens"), "model", "lm_head", loss_fn=next_token_ce),
    Arch("Wav2Vec2 audio classification (LayerDrop)", "transformers",
         _hf("Wav2Vec2Config", "Wav2Vec2ForSequenceClassification", **AUDIO),
         _audio(), "wav2vec2", "classifier", padding_bugs=NOT_PASSED),
    Arch("HuBERT audio classification (LayerDrop)", "transformers",
         _hf("HubertConfig", "HubertForSequenceClassification", **AUDIO),
         _audio(), "hubert", "classifier", padding_bugs=NOT_PASSED),
    Arch("Whisper audio classification", "transformers",
         _hf("WhisperConfig", "WhisperForAudioClassification", num_mel_bins=8, d_model=32, encoder_layers=2,
             encoder_attention_heads=2, encoder_ffn_dim=64, max_source_positions=16, num_labels=CLASSES,
             classifier_proj_size=16, encoder_layerdrop=0.3),
         _fixed((8, 32), "input_features"), "encoder", "classifier"),
    Arch("PatchTST classification", "transformers",
         _hf("PatchTSTConfig", "PatchTSTForClassification", num_input_channels=3, context_length=32, patch_length=8,
             patch_stride=8, d_model=16, num_attention_heads=2, num_hidden_layers=2, ffn_dim=32, num_targets=CLASSES,
             attn_implementation=None),
         _fixed((32, 3), "past_values"), "model", "head", forward=lambda m, x: m(**x).prediction_logits),
    Arch("PatchTSMixer classification", "transformers",
         _hf("PatchTSMixerConfig", "PatchTSMixerForTimeSeriesClassification", num_input_channels=3, context_length=32,
             patch_length=8, patch_stride=8, d_model=16, num_layers=2, num_targets=CLASSES,
             attn_implementation=None),
         _fixed((32, 3), "past_values"), "model", "head", forward=lambda m, x: m(**x).prediction_outputs),
    Arch("TimeSeriesTransformer forecasting", "transformers",
         _hf("TimeSeriesTransformerConfig", "TimeSeriesTransformerForPrediction", prediction_length=4,
             context_length=16, lags_sequence=[1, 2, 8], num_time_features=1, d_model=16, encoder_layers=2,
             decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
             decoder_ffn_dim=32, attn_implementation=None),
         _series_forecast, "model", "parameter_projection", forward=lambda m, x: torch.stack(m(**x).params, -1),
         loss_fn=student_t_nll, classifier=False),
    Arch("ViT image classification (transformers)", "transformers",
         _hf("ViTConfig", "ViTForImageClassification", image_size=32, patch_size=8, hidden_size=32,
             num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=CLASSES),
         _fixed((3, 32, 32), "pixel_values"), "vit", "classifier"),
    Arch("timm ViT-tiny", "timm", _timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2),
         _fixed((3, 32, 32)), "blocks", "head", forward=None),
    Arch("timm ResNet-18", "timm", _timm("resnet18"), _fixed((3, 32, 32)), "layer1", "fc", forward=None),
    Arch("timm ConvNeXt-atto", "timm", _timm("convnext_atto"), _fixed((3, 32, 32)), "stages", "head", forward=None),
    Arch("torch TransformerEncoder, key_padding_mask", "torch", gm.AttnNet, _torch_mask, "encoder", "head",
         forward=None, padding_bugs={"key_padding_mask_inverted": _torch_inverted, "mean_over_padding": _torch_mean}),
    Arch("torch LSTM, packed", "torch", gm.RNNNet, _torch_lengths, "lstm", "head", forward=None,
         padding_bugs={"last_step_of_padding": _torch_last_step}),
    Arch("torch BiGRU + attention pooling", "torch", gm.GRUAttention, _torch_lengths, "gru", "head",
         forward=lambda m, x: m(*x)["logits"]),
    Arch("torch causal TCN", "torch", gm.TCN, _torch_full, "inp", "head", forward=None),
    Arch("torch ResNet1D", "torch", ResNet1D, _torch_full, "stem", "head", forward=None),
    # found outside the first zoo: each exposed a false alarm or a missed bug the rules now handle
    Arch("WavLM audio classification (LayerDrop)", "transformers",
         _hf("WavLMConfig", "WavLMForSequenceClassification", **AUDIO, num_buckets=32, max_bucket_distance=64),
         _audio(), "wavlm", "classifier", padding_bugs=NOT_PASSED),
    Arch("CANINE sequence classification", "transformers",
         _hf("CanineConfig", "CanineForSequenceClassification", hidden_size=32, num_hidden_layers=2,
             num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, num_hash_buckets=64,
             downsampling_rate=4, local_transformer_stride=8, num_labels=CLASSES),
         _text(types=True), "canine", "classifier", padding_bugs=HF_PADDING),
    Arch("ModernBERT sequence classification", "transformers",
         _hf("ModernBertConfig", "ModernBertForSequenceClassification", vocab_size=VOCAB, hidden_size=32,
             intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
             num_labels=CLASSES, pad_token_id=0, bos_token_id=2, eos_token_id=1, cls_token_id=2, sep_token_id=1,
             local_attention=8, global_attn_every_n_layers=2),
         _text(), "model", "classifier", padding_bugs=HF_PADDING),
    Arch("timm MLP-Mixer (zero-initialised head)", "timm", _mixer, _fixed((3, 32, 32)), "blocks", "head", forward=None),
    Arch("torch Conv1d + packed GRU", "torch", ConvGRU, _torch_lengths, "conv", "head", forward=None,
         padding_bugs={"last_step_of_padding": _convgru_last_step}),
    Arch("torch MultiheadAttention, key_padding_mask", "torch", MHAPool, _torch_mask, "embed", "head",
         forward=None, padding_bugs={"key_padding_mask_inverted": _mha_inverted, "mean_over_padding": _mha_mean}),
    Arch("torch frozen pretrained embedding + GRU", "torch", FrozenEmbeddingGRU, _tokens, "gru", "head", forward=None),
]
