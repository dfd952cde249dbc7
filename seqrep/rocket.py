"""The data-fitted start (`ModelSpec(init="data")`): the post-mortem's architecture — learned
multi-scale 1-D convolutions, pooling with attention over time, a linear readout — whose first
step is not random, and whose training has something to learn.

    x (batch, channels, time)
      -> standardise each channel (training-set statistics); for long series the post-mortem's
         avg/max/min stem down to <= 512 steps
      -> two views: the series and its first difference (MultiRocket's)
      -> one group per view and time scale: 84 length-9 kernels at dilation d (MiniRocket's
         fixed patterns: weights -1, three taps +2), two dilations per octave
      -> 4 thresholds per kernel, fitted to quantiles of its outputs on a training series;
         "proportion of positive values" (PPV) over time, and the same weighted by attention
      -> features standardised (training-set statistics) -> linear readout, solved by ridge
         regression (penalty chosen by exact leave-one-out error)

MiniRocket (Dempster et al., KDD 2021) with the same kernels, biases and pooling, and a ridge
readout, is the strongest cheap baseline on small many-class sets: its biases are fitted to the
data, exactly what the post-mortem's frozen random features lacked.

Training. A ridge readout fits the training set almost exactly, so a loss of its own
predictions (cross-entropy, as the post-mortem's loop used) has nothing left to teach, and
steps on it moved accuracy down as often as up. What the start does get wrong is what it would
predict for a series it had not seen: `LeaveOneOut` is that error, exact for ridge regression
and differentiable in the features. `fit` trains the representation on it — the kernels, the
thresholds (through a straight-through estimator: the forward pass is the hard PPV, the
backward pass the sigmoid's slope) and the attention of the series view at one dilation per
octave (the other groups stay as fitted: they would triple each step's cost) — and solves the
readout again on the new features every epoch. Measurements behind each choice:
benchmarks/results/learning.md.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DILATIONS_PER_OCTAVE", "MAX_BANK", "VIEWS", "LeaveOneOut", "RocketRepresentation", "amm_pool",
           "dilations_for", "pool_mask", "ridge_readout", "rms", "spread_to_steps"]

PATTERNS = torch.tensor(list(itertools.combinations(range(9), 3)))  # (84, 3): the +2 taps
N_KERNELS, N_BIAS, SHARPNESS = 84, 4, 10.0
DILATIONS_PER_OCTAVE = 2  # MiniRocket spaces its dilations exponentially; two per doubling
VIEWS = ("series", "difference")  # MultiRocket's two views: the series and its first difference
MAX_BANK = 1024  # training series the leave-one-out objective holds at once (an n x n inverse)
SCORE_SCALE = 0.1  # attention scores are scaled by this: attention starts near the plain mean
PHI = (math.sqrt(5) - 1) / 2  # quantile levels {(i + 1) * PHI mod 1}: spread evenly, no repeats


def dilations_for(length: int, per_octave: int = DILATIONS_PER_OCTAVE) -> list[int]:
    """Dilations 1 .. (length - 1) / 8, about `per_octave` per doubling: a length-9 kernel spans
    up to the whole series (MiniRocket's exponential spacing). The octaves are the points of
    per_octave=1, so its dilations are among every finer rule's."""
    top = math.log2(max((length - 1) / 8, 1))
    octaves = int(top)
    if octaves == 0:
        return [1]
    n = per_octave * octaves
    return sorted({int(2 ** (i * top / n)) for i in range(n + 1)})


def amm_pool(x: torch.Tensor, pool: int) -> torch.Tensor:
    """Windowed average, max and min: (batch, channels, time) -> (batch, 3 * channels,
    ceil(time / pool))."""
    return torch.cat([
        F.avg_pool1d(x, pool, pool, ceil_mode=True),
        F.max_pool1d(x, pool, pool, ceil_mode=True),
        -F.max_pool1d(-x, pool, pool, ceil_mode=True),
    ], dim=1)


def pool_mask(mask: torch.Tensor | None, factor: int, length: int) -> torch.Tensor | None:
    """Downsample a (batch, time) bool mask by `factor`: a window is real if any step is."""
    if mask is None:
        return None
    if factor > 1:
        mask = F.max_pool1d(mask[:, None].float(), factor, factor, ceil_mode=True)[:, 0] > 0
    return mask[:, :length]


def spread_to_steps(weights: torch.Tensor, length: int, pool: int) -> torch.Tensor:
    """Weights over pooled steps (batch, ceil(length / pool)) -> weights over the `length`
    input steps (batch, length): a pooled step's weight spread evenly over the steps it covers,
    so each row keeps its sum."""
    window = torch.arange(length, device=weights.device) // pool
    return weights[:, window] / torch.bincount(window)[window]


def pattern_weights(in_channels: int) -> torch.Tensor:
    """(84, in_channels * 9): the 84 patterns; with several channels each kernel reads a random
    subset of 1 .. min(channels, 9) of them (MiniRocket's multivariate rule). Drawn at
    construction from torch's RNG, as every PyTorch layer's initialisation is
    (`seqrep.build.build_model` draws them from a fork seeded by config.seed)."""
    base = -torch.ones(N_KERNELS, 9)
    base[torch.arange(N_KERNELS, device=base.device)[:, None], PATTERNS.to(base.device)] = 2.0
    w = torch.zeros(N_KERNELS, in_channels, 9)
    for k in range(N_KERNELS):
        if in_channels == 1:
            w[k, 0] = base[k]
        else:
            count = max(1, int(2 ** (torch.rand(1).item() * math.log2(min(in_channels, 9) + 1))))
            w[k, torch.randperm(in_channels)[:count]] = base[k]
    return w.reshape(N_KERNELS, in_channels * 9)


class _PPV(torch.autograd.Function):
    """Fused thresholding + pooling over time, chunked over kernels so the (batch, chunk,
    n_bias, time) activations are never stored (recomputed in backward).

    u (B, K, T): scaled conv outputs; c (K, nb): scaled thresholds; vw (B, T, 2): the mean's
    and the attention's weights over time. Forward: hard PPV, sum_t vw_t [u_t > c]
    -> (B, K, nb, 2); backward: the slope of sigmoid(u - c) (straight-through).
    """

    @staticmethod
    def forward(ctx, u, c, vw):
        B, K, T = u.shape
        out = u.new_empty(B, K, c.shape[1], 2)
        step = u.new_empty(B, min(K, 32), c.shape[1], T)  # [u > c] as 0/1, written in place
        for k0 in range(0, K, 32):
            k1 = min(K, k0 + 32)
            s = torch.gt(u[:, k0:k1, None, :], c[None, k0:k1, :, None], out=step[:, : k1 - k0])
            out[:, k0:k1] = torch.bmm(s.view(B, -1, T), vw).view(B, k1 - k0, -1, 2)
        ctx.save_for_backward(u, c, vw)
        return out

    @staticmethod
    def backward(ctx, g):
        u, c, vw = ctx.saved_tensors
        B, K, T = u.shape
        nb = c.shape[1]
        gu, gc, gvw = torch.empty_like(u), torch.empty_like(c), torch.zeros_like(vw)
        step = u.new_empty(B, min(K, 32) * nb, T)
        for k0 in range(0, K, 32):
            k1 = min(K, k0 + 32)
            d = (u[:, k0:k1, None, :] - c[None, k0:k1, :, None]).view(B, -1, T)
            gk = g[:, k0:k1].reshape(B, -1, 2)
            gvw += torch.bmm(torch.gt(d, 0, out=step[:, : d.shape[1]]).transpose(1, 2), gk)
            # the sigmoid's slope s (1 - s) times the incoming gradient, in one fused pass
            gs = torch.ops.aten.sigmoid_backward(torch.bmm(gk, vw.transpose(1, 2)), torch.sigmoid(d))
            gs = gs.view(B, k1 - k0, nb, T)
            gu[:, k0:k1] = gs.sum(2)
            gc[k0:k1] = -gs.sum((0, 3))
        return gu, gc, gvw


class ScaleGroup(nn.Module):
    """One time scale: 84 pattern kernels at `dilation`, N_BIAS thresholds each, PPV pooled by
    the mean and by attention over time. Thresholds are held in units of their kernel's output
    spread (1 / inv_scale), so one learning rate suits every scale and view.

    xp: (batch, channels, time + 2 * pad) zero-padded input -> (batch, 84 * N_BIAS * 2)
    features (or * 1 without attention), and the attention weights (batch, time) or None.
    """

    def __init__(self, in_channels: int, dilation: int, attention: bool, hidden: int = 16):
        super().__init__()
        self.dilation = dilation
        self.weight = nn.Parameter(pattern_weights(in_channels))
        self.bias = nn.Parameter(torch.zeros(N_KERNELS, N_BIAS))
        self.register_buffer("inv_scale", torch.ones(N_KERNELS))
        # Scores are scaled by SCORE_SCALE, so attention starts close to the plain mean (weights
        # within a few percent of uniform) from PyTorch's usual initialisation; a near-zero last
        # layer would do the same but leave the first layer almost without gradient.
        self.score = (nn.Sequential(nn.Linear(N_KERNELS, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
                      if attention else None)

    def conv(self, xp: torch.Tensor, length: int, pad: int) -> torch.Tensor:
        """(batch, channels, length + 2 pad) -> (batch, 84, length): one matmul over the
        9-tap windows (much cheaper on CPU than a Conv1d with 1-3 input channels)."""
        taps = torch.arange(-4, 5, device=xp.device) * self.dilation
        pos = pad + taps[:, None] + torch.arange(length, device=xp.device)[None, :]  # (9, length)
        patches = xp[:, :, pos].reshape(xp.shape[0], -1, length)  # (batch, channels * 9, length)
        return torch.matmul(self.weight, patches)

    def forward(self, xp: torch.Tensor, length: int, pad: int, mask: torch.Tensor | None):
        z = self.conv(xp, length, pad)
        real = torch.ones_like(z[:, 0], dtype=torch.bool) if mask is None else mask
        v = real.to(z.dtype) / real.sum(-1, keepdim=True).clamp(min=1)
        if self.score is None:
            weights, w = None, v
        else:
            scores = SCORE_SCALE * self.score((z * self.inv_scale[:, None]).transpose(1, 2))[..., 0]
            weights = w = torch.softmax(scores.masked_fill(~real, float("-inf")), -1)
        scale = SHARPNESS * self.inv_scale
        out = _PPV.apply(z * scale[:, None], SHARPNESS * self.bias, torch.stack([v, w], 2))
        features = out[..., 0].flatten(1) if self.score is None else out.permute(0, 3, 1, 2).flatten(1)
        return features, weights

    @torch.no_grad()
    def fit(self, xp: torch.Tensor, length: int, pad: int, mask: torch.Tensor | None, first: int,
            generator: torch.Generator) -> None:
        """Thresholds: for each kernel, quantiles of its output on one training series picked
        by `generator` (a CPU generator; MiniRocket's rule; levels from the golden-ratio
        sequence, `first` = this group's offset in it); inv_scale: 1 / the outputs' std over
        all given series (thresholds are stored times inv_scale)."""
        z = self.conv(xp, length, pad)  # (n, 84, length)
        keep = torch.ones_like(z[:, 0], dtype=torch.bool) if mask is None else mask
        flat = torch.where(keep[:, None], z, torch.nan).transpose(0, 1).reshape(N_KERNELS, -1)
        mean = flat.nanmean(1, keepdim=True)
        std = ((flat - mean) ** 2).nanmean(1).sqrt()
        self.inv_scale.copy_(1 / std.clamp(min=1e-3))
        pick = torch.randint(0, len(z), (N_KERNELS,), generator=generator, device="cpu").to(z.device)
        rows = torch.where(keep[pick], z[pick, torch.arange(N_KERNELS, device=z.device)], torch.nan)
        levels = torch.tensor([((first + i + 1) * PHI) % 1 for i in range(N_KERNELS * N_BIAS)], device=z.device)
        self.bias.copy_(_row_quantiles(rows, levels.view(N_KERNELS, N_BIAS)) * self.inv_scale[:, None])


def _row_quantiles(rows: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """rows (K, T) with NaN = ignore, levels (K, q) in [0, 1) -> linear-interpolated quantiles
    (K, q) of each row."""
    ordered, _ = torch.sort(rows, dim=1)  # NaN sorts last
    pos = levels * ((~torch.isnan(rows)).sum(1, keepdim=True) - 1).clamp(min=0)
    lo, hi = ordered.gather(1, pos.floor().long()), ordered.gather(1, pos.ceil().long())
    return lo + (hi - lo) * (pos - pos.floor())


class RocketRepresentation(nn.Module):
    """Standardise (+ avg/max/min stem) -> two views, the series and its first difference ->
    one `ScaleGroup` per view and dilation -> standardised features. Call `fit_init` on training
    data before use (`fit` does, through `seqrep.model.fit_init`).

    x: (batch, channels, time), mask: (batch, time) bool or None -> (batch, feature_dim),
    feature_dim = views * dilations * 84 * 4 * (2 with attention, else 1).
    `spec` must be resolved for the data (`ModelSpec.resolved(length)`).
    """

    def __init__(self, in_channels: int, spec, length: int):
        super().__init__()
        self.pool = spec.pool
        self.register_buffer("mean", torch.zeros(in_channels, 1))
        self.register_buffer("inv_std", torch.ones(in_channels, 1))
        self.register_buffer("fitted", torch.tensor(False))
        channels = in_channels * (3 if self.pool > 1 else 1)
        self.length = math.ceil(length / self.pool)
        self.dilations = dilations_for(self.length)
        self.pad = 4 * max(self.dilations)
        self.groups = nn.ModuleList(ScaleGroup(channels, d, spec.attention) for _ in VIEWS for d in self.dilations)
        learned = set(dilations_for(self.length, per_octave=1))
        for view, group in self._view_groups():
            group.requires_grad_(view == 0 and group.dilation in learned)
        self.feature_dim = len(self.groups) * N_KERNELS * N_BIAS * (2 if spec.attention else 1)
        self.register_buffer("f_mean", torch.zeros(self.feature_dim))
        self.register_buffer("f_inv_std", torch.ones(self.feature_dim))
        self.skip_fixed = False  # fit sets it while training: see raw_features

    def _prepared(self, x: torch.Tensor, mask: torch.Tensor | None):
        """Each view (the standardised series, its first difference) stem-pooled and
        zero-padded: a list of (batch, channels', pooled time + 2 pad), the pooled length and
        the pooled mask."""
        x = (x - self.mean) * self.inv_std
        if mask is not None:  # padded steps hold zeros, whatever the caller put there
            x = x.masked_fill(~mask[:, None, :], 0.0)
        views = [x, torch.diff(x, dim=-1, prepend=x[..., :1])]
        if mask is not None:
            views[1] = views[1].masked_fill(~mask[:, None, :], 0.0)
        if self.pool > 1:
            views = [amm_pool(v, self.pool) for v in views]
        length = views[0].shape[-1]
        return [F.pad(v, (self.pad, self.pad)) for v in views], length, pool_mask(mask, self.pool, length)

    def _view_groups(self):
        """(view index, group) for every group, in feature order."""
        return [(i // len(self.dilations), g) for i, g in enumerate(self.groups)]

    def raw_features(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """Unstandardised features (batch, feature_dim) and the attention weights averaged over
        the groups (batch, pooled time), uniform without attention. With `skip_fixed` set (fit's
        training steps), the groups that stay as fitted are not computed while autograd is on:
        their columns are zeros, which `LeaveOneOut` fills from the features it banked."""
        views, length, m = self._prepared(x, mask)
        skip = self.skip_fixed and torch.is_grad_enabled()
        parts = [group(views[v], length, self.pad, m) if not skip or group.weight.requires_grad
                 else (x.new_zeros(x.shape[0], self.feature_dim // len(self.groups)), None)
                 for v, group in self._view_groups()]
        weights = [w for _, w in parts if w is not None]
        if weights:
            att = torch.stack(weights).mean(0)
        else:
            real = torch.ones(x.shape[0], length, dtype=torch.bool, device=x.device) if m is None else m
            att = real.float() / real.sum(-1, keepdim=True).clamp(min=1)
        return torch.cat([f for f, _ in parts], 1), att

    def learned_columns(self) -> torch.Tensor:
        """(p_learned,) the feature columns the learned groups produce (the rest never change)."""
        width = self.feature_dim // len(self.groups)
        return torch.cat([torch.arange(i * width, (i + 1) * width, device=self.f_mean.device)
                          for i, g in enumerate(self.groups) if g.weight.requires_grad])

    def learned_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The standardised features of the learned groups only, (batch, p_learned), in the
        order of `learned_columns`: what a step can change (the series view alone is computed)."""
        views, length, m = self._prepared(x, mask)
        parts = [group(views[v], length, self.pad, m)[0] for v, group in self._view_groups() if group.weight.requires_grad]
        cols = self.learned_columns()
        return (torch.cat(parts, 1) - self.f_mean[cols]) * self.f_inv_std[cols]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False):
        features, att = self.raw_features(x, mask)
        features = (features - self.f_mean) * self.f_inv_std
        return (features, att) if return_attention else features

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights (mean over scales) mapped to input steps: (batch, time), rows sum
        to 1. Like any forward it keeps autograd as the caller has it (wrap in torch.no_grad()
        at the call site); this module has no BatchNorm or Dropout, so its mode does not matter."""
        _, weights = self(x, mask, return_attention=True)
        return spread_to_steps(weights, x.shape[-1], self.pool)

    @torch.no_grad()
    def fit_init(self, x: torch.Tensor, mask: torch.Tensor | None, generator: torch.Generator,
                 batch_size: int = 64, max_series: int = 256) -> torch.Tensor:
        """Fit every data-dependent start value to training series x (n, channels, time):
        channel statistics, thresholds and scales (from up to `max_series` series drawn by
        `generator`, a CPU torch.Generator), feature standardisation. Returns the standardised
        training features (n, feature_dim), on x's device."""
        keep = torch.ones(x.shape[0], 1, x.shape[2], device=x.device) if mask is None else mask[:, None].float()
        count = keep.sum((0, 2)).clamp(min=1)
        mean = (x * keep).sum((0, 2)) / count
        std = (((x - mean[None, :, None]) * keep) ** 2).sum((0, 2)).div(count).sqrt()
        self.mean.copy_(mean[:, None])
        self.inv_std.copy_(1 / std.clamp(min=1e-6)[:, None])
        pick = torch.randperm(len(x), generator=generator, device="cpu")[:max_series].to(x.device)
        views, length, m = self._prepared(x[pick], None if mask is None else mask[pick])
        for i, (v, group) in enumerate(self._view_groups()):
            group.fit(views[v], length, self.pad, m, first=i * N_KERNELS * N_BIAS, generator=generator)
        raw = torch.cat([
            self.raw_features(x[i:i + batch_size], None if mask is None else mask[i:i + batch_size])[0]
            for i in range(0, len(x), batch_size)])
        mean, std = raw.double().mean(0), raw.double().std(0)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        self.f_mean.copy_(mean.float())
        self.f_inv_std.copy_((1 / std).float())
        self.fitted.fill_(True)
        return (raw - self.f_mean) * self.f_inv_std  # as forward() computes them, to the bit

    def learned_groups(self) -> list[ScaleGroup]:
        """The groups that train: the series view at one dilation per octave. The others (the
        first difference, the dilations between octaves) stay as fitted: they add accuracy to
        the start but would make each step about three times as long (measured in
        benchmarks/results/learning.md), and a 60 s budget would then buy too few steps."""
        return [g for g in self.groups if g.weight.requires_grad]

    def tensor_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters that train, by role: "kernels", "thresholds" (fitted to the data) and
        "scorers" (the attention's, randomly initialised; none without attention).
        `seqrep.model.param_groups` gives each its learning rate."""
        groups = self.learned_groups()
        return {"kernels": [g.weight for g in groups], "thresholds": [g.bias for g in groups],
                "scorers": [p for g in groups if g.score is not None for p in g.score.parameters()]}


def rms(tensors) -> float:
    """Root mean square of all elements of `tensors` (1.0 when it is 0)."""
    flat = torch.cat([t.detach().flatten() for t in tensors])
    return float(flat.pow(2).mean().sqrt()) or 1.0


@torch.no_grad()
def ridge_readout(features: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Ridge regression of +-1 one-hot targets on standardised features (n, p) with the
    penalty chosen by exact leave-one-out error over 10^-3 .. 10^3 (scikit-learn's
    RidgeClassifierCV, as MiniRocket uses), then one logit temperature minimising the
    cross-entropy of the leave-one-out predictions, so softmax training starts calibrated.
    Returns weight (n_classes, p), bias (n_classes,) and {"alpha", "temperature", "loo_accuracy",
    "loo_error"} (the mean squared leave-one-out residual at that alpha).
    """
    f, n, device = features.double(), len(y), features.device
    target = -torch.ones(n, n_classes, dtype=torch.float64, device=device)
    target[torch.arange(n, device=device), y] = 1.0
    offset = target.mean(0)
    centred = target - offset
    u, s, vh = torch.linalg.svd(f - f.mean(0), full_matrices=False)
    uty, s2 = u.T @ centred, s ** 2
    best = None
    for alpha in torch.logspace(-3, 3, 10, dtype=torch.float64, device="cpu").tolist():
        shrink = s2 / (s2 + alpha)
        leverage = (u ** 2) @ shrink + 1.0 / n
        loo = (centred - u @ (shrink[:, None] * uty)) / (1 - leverage).clamp(min=1e-6)[:, None]
        err = float((loo ** 2).mean())
        if best is None or err < best[0]:
            best = (err, alpha, centred - loo + offset)
    loo_error, alpha, loo_scores = best
    weight = (vh.T @ ((s / (s2 + alpha))[:, None] * uty)).T
    bias = offset - weight @ f.mean(0)
    temperatures = torch.logspace(-0.5, 2.5, 40, dtype=torch.float64, device="cpu").tolist()
    losses = [float(F.cross_entropy(t * loo_scores, y)) for t in temperatures]
    tau = temperatures[losses.index(min(losses))]
    info = {"alpha": alpha, "temperature": tau,
            "loo_accuracy": float((loo_scores.argmax(1) == y).double().mean()), "loo_error": loo_error}
    return (weight * tau).float(), (bias * tau).float(), info


def pm_targets(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n,) class indices -> (n, n_classes) float64 targets, +1 for the class, -1 elsewhere."""
    target = -torch.ones(len(y), n_classes, dtype=torch.float64, device=y.device)
    target[torch.arange(len(y), device=y.device), y] = 1.0
    return target


class LeaveOneOut:
    """The data-fitted start's training objective: the leave-one-out error of its ridge readout.

    The readout is never trained by gradient: `refit` solves it by ridge regression on the
    features of the whole training set (`ridge_readout`), and keeps those features as a bank.
    A training step then replaces the batch's rows of the bank by their fresh features (with
    autograd) and returns the mean squared leave-one-out residual of a ridge regression with
    that penalty over the bank — what the readout would get wrong on each series had it not
    seen it. A ridge start fits the training set almost exactly, so cross-entropy on its own
    predictions has nothing left to teach; its leave-one-out error does (see
    benchmarks/results/learning.md for what each objective measured).

    Exact formula: with centred features F (m, p), K = F F^T, A = K + lambda I and centred
    targets Y, the residuals are y - y_hat = lambda A^-1 Y and the leverage of row i is
    1 - lambda (A^-1)_ii + 1/m (the intercept), so the leave-one-out residual is
    lambda (A^-1 Y)_i / (lambda (A^-1)_ii - 1/m). The bank holds at most MAX_BANK series (a
    random subset drawn by `generator` at each refit, the batch's rows added when missing).
    `learned`: the feature columns a step can change (`RocketRepresentation.learned_columns`);
    the batch's other columns are taken from the banked features (so a forward that skipped
    computing them, `RocketRepresentation.skip_fixed`, loses nothing).
    """

    def __init__(self, generator: torch.Generator, learned: torch.Tensor | None = None):
        self.generator, self.learned = generator, learned
        self.bank = self.captured = self.handle = None

    def attach(self, readout: nn.Module) -> None:
        """Capture the readout's input (the features, whatever path they took) at every forward."""
        self.handle = readout.register_forward_pre_hook(self._capture)

    def detach(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def _capture(self, module, args) -> None:
        self.captured = args[0]

    @torch.no_grad()
    def features(self, model: nn.Module, batches) -> torch.Tensor:
        """The readout's inputs (n, feature_dim) for `batches` of (x, mask), run through
        model(x, training=False, mask=mask) in whatever modes the caller set (attach first)."""
        parts = []
        for x, mask in batches:
            model(x, training=False, mask=mask)
            parts.append(self.captured)
        return torch.cat(parts)

    @torch.no_grad()
    def refit(self, readout: nn.Linear, features: torch.Tensor, y: torch.Tensor) -> dict:
        """Solve `readout` by ridge on features (n, p) of the training set with labels y (n,),
        and bank them for the steps until the next refit. Returns ridge_readout's info."""
        weight, bias, info = ridge_readout(features, y, readout.out_features)
        self.source = features
        readout.weight.copy_(weight)
        readout.bias.copy_(bias)
        n = len(y)
        rows = (torch.arange(n, device="cpu") if n <= MAX_BANK else
                torch.randperm(n, generator=self.generator, device="cpu")[:MAX_BANK].sort().values).to(y.device)
        f = features[rows].double()
        self.mean = f.mean(0)
        centred = f - self.mean
        self.bank, self.rows, self.lam = centred, rows, info["alpha"]
        self.gram = centred @ centred.T
        self.targets = pm_targets(y, readout.out_features)
        self.position = torch.full((n,), -1, dtype=torch.long, device=y.device)
        self.position[rows] = torch.arange(len(rows), device=y.device)
        return info

    def loss(self, features: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, p) of training series `index` (B,), with autograd -> (the mean squared
        leave-one-out residual over the bank and the batch, a scalar; the batch's leave-one-out
        scores (B, n_classes), +-1 scale)."""
        if self.bank is None:
            raise RuntimeError("LeaveOneOut.loss before refit: fit the readout first")
        index, back = torch.unique(index, return_inverse=True)  # a balanced order may repeat a series
        first = torch.full((len(index),), len(back), dtype=torch.long, device=back.device)
        first = first.scatter_reduce(0, back, torch.arange(len(back), device=back.device), "amin")
        features = features[first]
        if self.learned is not None:  # only these columns can have changed since the refit
            features = self.source[index].index_copy(1, self.learned, features[:, self.learned])
        fresh = features.double() - self.mean  # centred by the refit's mean, like the bank
        missing = self.position[index] < 0
        rows = torch.cat([self.rows, index[missing]])
        where = self.position[index].clone()
        where[missing] = len(self.rows) + torch.arange(int(missing.sum()), device=where.device)
        bank = torch.cat([self.bank, self.bank.new_zeros(int(missing.sum()), self.bank.shape[1])])
        m = len(rows)
        gram = torch.zeros(m, m, dtype=torch.float64, device=features.device)
        gram[: len(self.rows), : len(self.rows)] = self.gram
        cross = fresh @ bank.T  # (B, m): the batch against every banked series
        gram = gram.index_copy(0, where, cross).index_copy(1, where, cross.T)
        gram = gram.index_put((where[:, None], where[None, :]), fresh @ fresh.T)
        # Centre exactly on the m rows as they now are (the intercept's leverage 1/m assumes it):
        # with d = old mean - new mean, (f_i - new)(f_j - new) = g_ij + a_i + a_j + d.d.
        shift = (bank[where] - fresh).sum(0) / m
        lean = (bank @ shift).index_copy(0, where, fresh @ shift)
        gram = gram + lean[:, None] + lean[None, :] + shift @ shift
        y = self.targets[rows]
        inverse = torch.linalg.inv(gram + self.lam * torch.eye(m, dtype=gram.dtype, device=gram.device))
        alpha = inverse @ (y - y.mean(0))
        residual = self.lam * alpha / (self.lam * torch.diagonal(inverse) - 1.0 / m).clamp(min=1e-9)[:, None]
        return residual.pow(2).mean(), (y - residual)[where][back].float()
