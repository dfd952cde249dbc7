"""The small models of the gallery: each takes a `bug` name that plants one reported mistake
(None = the correct model). Inputs follow `seqrep.doctor.toy`: (batch, time, features) floats or
(batch, time) tokens with pad id 0, lengths, a (batch, time) mask with True = real step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .toy import CLASSES, FEATURES, VOCAB


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """h: (batch, time, channels), mask: (batch, time) -> (batch, channels) over real steps."""
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


class ConvNet(nn.Module):
    """Conv1d + BatchNorm + ReLU encoder, average over time, linear head. x: (batch, time, features)."""

    def __init__(self, bug: str | None = None, width: int = 16, out: int = CLASSES):
        super().__init__()
        self.bug = bug
        self.encoder = nn.Sequential(nn.Conv1d(FEATURES, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU())
        self.head = nn.Linear(width, out)
        self.aux = nn.Linear(width, out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        if self.bug == "no_grad":
            with torch.no_grad():
                return self.encoder(x).mean(-1)
        if self.bug == "eval_in_forward":
            self.encoder.eval()
        h = self.encoder(x).mean(-1)
        if self.bug == "numpy":
            return torch.from_numpy(h.detach().cpu().numpy())
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        out = self.head(h)
        if self.bug != "unused":
            out = out + self.aux(h)
        if self.bug == "softmax":
            return torch.softmax(out, dim=1)
        if self.bug == "sigmoid":
            return torch.sigmoid(out)
        return out


class PoolNet(nn.Module):
    """Per-step MLP (depth layers), masked mean over time, linear head; no normalisation.
    x: (batch, time, features), mask: (batch, time)."""

    def __init__(self, bug: str | None = None, depth: int = 2, width: int = 32, act: type = nn.ReLU):
        super().__init__()
        layers, size = [], FEATURES
        for _ in range(depth):
            layers += [nn.Linear(size, width), act()]
            size = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, CLASSES)
        if bug == "dead_bias":
            nn.init.constant_(self.body[0].bias, -10.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(masked_mean(self.body(x), mask))


class RNNNet(nn.Module):
    """LSTM classifier on (batch, time, features) with lengths. Bugs: time_first (batch_first
    left False), hn_reshape (h_n.view(batch, -1) across 2 layers), sorted (sorted by length for
    packing, never unsorted), last_step (output[:, -1] of a right-padded batch)."""

    def __init__(self, bug: str | None = None, hidden: int = 16):
        super().__init__()
        self.bug = bug
        layers = 2 if bug in ("hn_reshape", "hn_fixed") else 1
        self.lstm = nn.LSTM(FEATURES, hidden, num_layers=layers, batch_first=bug != "time_first")
        self.head = nn.Linear(hidden * (layers if bug == "hn_reshape" else 1), CLASSES)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.bug in ("time_first", "last_step"):
            out, _ = self.lstm(x)
            return self.head(out[:, -1])
        if self.bug == "sorted":
            order = lengths.argsort(descending=True)
            packed = pack_padded_sequence(x[order], lengths[order].cpu(), batch_first=True)
            _, (h, _) = self.lstm(packed)
            return self.head(h[-1])
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        if self.bug == "hn_reshape":
            return self.head(h.reshape(x.shape[0], -1))
        return self.head(h[-1])


class AttnNet(nn.Module):
    """TransformerEncoder on (batch, time, features) with a mask. Bugs: inverted_mask
    (key_padding_mask=mask, True = real), mean_over_padding (h.mean(1))."""

    def __init__(self, bug: str | None = None, width: int = 16):
        super().__init__()
        self.bug = bug
        self.embed = nn.Linear(FEATURES, width)
        layer = nn.TransformerEncoderLayer(width, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padding = mask if self.bug == "inverted_mask" else ~mask
        h = self.encoder(self.embed(x), src_key_padding_mask=padding)
        return self.head(h.mean(1) if self.bug == "mean_over_padding" else masked_mean(h, mask))


class ListNet(nn.Module):
    """Two per-step layers and a head over a masked mean. Bugs: list (layers in a Python list),
    in_forward (the head built inside forward), tensor (a scale as a plain tensor attribute)."""

    def __init__(self, bug: str | None = None, width: int = 16):
        super().__init__()
        self.bug = bug
        layers = [nn.Linear(FEATURES, width), nn.Linear(width, width)]
        self.layers = layers if bug == "list" else nn.ModuleList(layers)
        if bug != "in_forward":
            self.head = nn.Linear(width, CLASSES)
        scale = torch.ones(width)
        self.scale = scale.requires_grad_() if bug == "tensor" else nn.Parameter(scale)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        h = masked_mean(x, mask) * self.scale
        head = nn.Linear(h.shape[-1], CLASSES) if self.bug == "in_forward" else self.head
        return head(h)


class ReluRNN(nn.Module):
    """Vanilla ReLU RNN, last real step. bug="gain": recurrent weights 1.5 x identity."""

    def __init__(self, bug: str | None = None, hidden: int = 16):
        super().__init__()
        self.rnn = nn.RNN(FEATURES, hidden, nonlinearity="relu", batch_first=True)
        if bug == "gain":
            with torch.no_grad():
                self.rnn.weight_hh_l0.copy_(1.5 * torch.eye(hidden))
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[torch.arange(len(x)), lengths - 1])


class TokenCNN(nn.Module):
    """Embedding (padding_idx 0) + Conv1d + masked max over time. tokens: (batch, time)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width, padding_idx=0)
        self.conv = nn.Conv1d(width, width, 3, padding=1)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(self.embed(tokens).transpose(1, 2))).transpose(1, 2)
        h = h.masked_fill((tokens == 0)[..., None], float("-inf"))
        return self.head(h.amax(1))


class TokenTransformer(nn.Module):
    """Embedding (padding_idx 0) + TransformerEncoder, padding read from the pad id."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width, padding_idx=0)
        layer = nn.TransformerEncoderLayer(width, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        real = tokens != 0
        h = self.encoder(self.embed(tokens), src_key_padding_mask=~real)
        return self.head(masked_mean(h, real))


class GRUAttention(nn.Module):
    """Packed bidirectional GRU, attention pooling over real steps; returns a dict."""

    def __init__(self, hidden: int = 16, out: int = CLASSES):
        super().__init__()
        self.gru = nn.GRU(FEATURES, hidden, batch_first=True, bidirectional=True)
        self.score = nn.Linear(2 * hidden, 1)
        self.head = nn.Linear(2 * hidden, out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> dict:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
        real = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None].to(x.device)
        weights = torch.softmax(self.score(h)[..., 0].masked_fill(~real, float("-inf")), dim=1)
        return {"logits": self.head(torch.einsum("bt,bth->bh", weights, h)), "attention": weights}


class TCN(nn.Module):
    """Causal dilated convolutions with residuals (a temporal convolutional network); the
    output at the last step. x: (batch, time, features), full-length sequences."""

    def __init__(self, width: int = 16, levels: int = 3):
        super().__init__()
        self.inp = nn.Conv1d(FEATURES, width, 1)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, dilation=2 ** i) for i in range(levels))
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.transpose(1, 2))
        for conv in self.convs:
            h = h + torch.relu(conv(F.pad(h, (2 * conv.dilation[0], 0))))
        return self.head(h[..., -1])
