"""Time-major layers ``[T, B, ...] -> [T, B, ...]`` and readouts ``[T, B, n] -> [B, n]``.

Stateless layers (dense, conv, pooling, flatten, dropout) fold time into the
batch, so a layer is one large matrix product over all ``T`` steps rather than
``T`` small ones. An input that is the same at every step (a stride-0 view, as
:func:`~spikeforge.model.encoders.direct_input` makes) is computed once.
:class:`LIF` is the only layer with dynamics; it runs
:func:`~spikeforge.model.kernels.lif_sequence`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spikeforge.qnet import Reset
from spikeforge.trainconfig import PoolKind  # torch-free, so configs name it

from .events import event_linear
from .kernels import lif_sequence
from .neurons import LIFParams
from .surrogate import Surrogate

__all__ = [
    "LIF",
    "BatchNorm",
    "Conv2d",
    "Dense",
    "DenseReadout",
    "Dropout",
    "Flatten",
    "Pool2d",
    "PoolKind",
    "SpikeCountReadout",
    "fold_batchnorm",
]


def _constant_in_time(x: torch.Tensor) -> bool:
    return x.shape[0] > 1 and x.stride(0) == 0


def _per_step(fn, x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless ``fn`` to ``[T, B, ...]`` as one call over ``T * B`` samples."""
    if _constant_in_time(x):
        y = fn(x[0])
        return y.unsqueeze(0).expand(x.shape[0], *y.shape)
    t, b = x.shape[:2]
    y = fn(x.reshape(t * b, *x.shape[2:]))
    return y.view(t, b, *y.shape[1:])


class Dense(nn.Linear):
    """Fully connected synapses ``I = W s + b`` applied to every step.

    Spike inputs (every non-zero equal, at most ``events.MAX_DENSITY`` of them
    active) go through the event-driven sums of :mod:`.events`, any other input
    through one matrix product over all ``T * B`` rows.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        # The weight [out, in] is stored column-major: its transpose, which the event sums
        # read and their weight gradient produces, is then contiguous and needs no copy.
        self.weight = nn.Parameter(self.weight.detach().t().contiguous().t())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if _constant_in_time(x):
            return _per_step(super().forward, x)
        y = event_linear(x.reshape(-1, self.in_features), self.weight, self.bias)
        if y is not None:
            return y.view(*x.shape[:-1], self.out_features)
        return super().forward(x)  # one matmul over [T, B, n_in]


class Conv2d(nn.Conv2d):
    """2-D convolution applied to every step, input ``[T, B, C, H, W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _per_step(super().forward, x)


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation of currents ``[T, B, C]`` or ``[T, B, C, H, W]`` per channel.

    Statistics are taken over time, batch (and space) together, as in the
    threshold-dependent batch norm of Zheng et al. 2021 without its threshold
    factor. It sits between a :class:`Dense` or :class:`Conv2d` and its
    :class:`LIF` layer; after training :func:`fold_batchnorm` merges it into
    that layer's weights and bias, so the exported network has none.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.ndim not in (2, 4):
            raise ValueError(f"BatchNorm takes [T, B, C] or [T, B, C, H, W], not {x.ndim + 1}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _per_step(super().forward, x)


class Pool2d(nn.Module):
    """Non-overlapping ``size x size`` average or sum pooling of ``[T, B, C, H, W]``."""

    def __init__(self, size: int, kind: PoolKind = PoolKind.AVERAGE) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, not {size!r}")
        if not isinstance(kind, PoolKind):
            raise ValueError(f"kind must be a PoolKind, not {kind!r}")
        self.size = size
        self.kind = kind

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind is PoolKind.SUM:
            return F.avg_pool2d(x, self.size, divisor_override=1)
        return F.avg_pool2d(x, self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _per_step(self._pool, x)

    def extra_repr(self) -> str:  # noqa: D102
        return f"size={self.size}, kind={self.kind.value}"


class Flatten(nn.Module):
    """``[T, B, ...] -> [T, B, n]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.flatten(2)


class Dropout(nn.Module):
    """Dropout with one mask per sample shared by all steps (a dropped neuron stays dropped).

    Uses the global torch generator, which the trainer seeds.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must lie in [0, 1), not {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[1:], dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        return x * (keep / (1.0 - self.p))

    def extra_repr(self) -> str:  # noqa: D102
        return f"p={self.p}"


class LIF(nn.Module):
    """A layer of LIF (``beta < 1``) or IF (``beta = 1``) neurons: currents -> spikes.

    Parameters
    ----------
    beta : float
        Leak factor in ``(0, 1]`` (use :func:`~spikeforge.model.neurons.beta_from_shifts`
        for a hardware leak).
    threshold : float
        Firing threshold (initial value when learnable).
    reset : Reset
        A spiking mode (``qnet.SPIKING_RESETS``).
    surrogate : Surrogate
        Pseudo-derivative of the spikes.
    scale : float, optional
        Its parameter.
    refractory : int
        Refractory steps after a spike.
    learn_threshold : bool
        Make the threshold a trainable parameter.
    """

    def __init__(self, beta: float, threshold: float = 1.0, *, reset: Reset = Reset.ZERO,
                 surrogate: Surrogate = Surrogate.FAST_SIGMOID, scale: float | None = None,
                 refractory: int = 0, learn_threshold: bool = False) -> None:
        super().__init__()
        self.params = LIFParams(beta=float(beta), threshold=float(threshold), reset=reset,
                                surrogate=surrogate, scale=scale, refractory=refractory)
        self.learn_threshold = bool(learn_threshold)
        if self.learn_threshold:
            self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def step_params(self) -> LIFParams:
        """The step parameters, with the current value of a learnable threshold."""
        if not self.learn_threshold:
            return self.params
        p = self.params
        return LIFParams(beta=p.beta, threshold=self.threshold, reset=p.reset,
                         surrogate=p.surrogate, scale=p.scale, refractory=p.refractory)

    def forward(self, currents: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if _constant_in_time(currents):
            currents = currents.contiguous()
        return lif_sequence(currents, self.step_params())

    def extra_repr(self) -> str:  # noqa: D102
        p = self.params
        return (f"beta={p.beta:.6g}, threshold={p.threshold:.4g}, reset={p.reset.value}, "
                f"surrogate={p.surrogate.value}, scale={p.scale:.4g}, "
                f"refractory={p.refractory}, learn_threshold={self.learn_threshold}")


class DenseReadout(nn.Linear):
    """Dense layer of non-firing neurons; the score is the membrane after the last step.

    With ``v[t] = beta v[t-1] + W s[t] + b`` and ``v[-1] = 0`` the final membrane is
    ``W (sum_t beta^(T-1-t) s[t]) + b sum_t beta^(T-1-t)``: the spikes are summed
    over time first and the product is taken once (``T`` times fewer operations).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 beta: float = 1.0) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"beta must lie in (0, 1], not {beta!r}")
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        t = x.shape[0]
        if self.beta == 1.0:
            acc, gain = x.sum(0), float(t)
        else:
            w = self.beta ** torch.arange(t - 1, -1, -1, dtype=x.dtype, device=x.device)
            acc = torch.tensordot(w, x, dims=([0], [0]))
            gain = float(w.sum())
        y = F.linear(acc, self.weight)
        return y + gain * self.bias if self.bias is not None else y

    def extra_repr(self) -> str:  # noqa: D102
        return f"{super().extra_repr()}, beta={self.beta:.6g}"


class SpikeCountReadout(nn.Module):
    """Score = number of spikes of each neuron over all steps, ``[T, B, n] -> [B, n]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.sum(0)


def _fold(layer: Dense | Conv2d, bn: BatchNorm) -> Dense | Conv2d:
    """``layer`` followed by ``bn`` in evaluation mode, as one layer of the same kind."""
    scale = bn.weight.detach() if bn.affine else torch.ones_like(bn.running_var)
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    gain = scale / torch.sqrt(bn.running_var + bn.eps)
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(gain)
    kw = {"bias": True, "dtype": layer.weight.dtype, "device": layer.weight.device}
    if isinstance(layer, Dense):
        out = Dense(layer.in_features, layer.out_features, **kw)
    else:
        out = Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                     stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                     groups=layer.groups, padding_mode=layer.padding_mode, **kw)
    with torch.no_grad():
        w = layer.weight.detach()
        out.weight.copy_(w * gain.view(-1, *([1] * (w.ndim - 1))))
        out.bias.copy_((bias - bn.running_mean) * gain + shift)
    return out


def fold_batchnorm(layers: list[nn.Module]) -> list[nn.Module]:
    """The layers with every :class:`BatchNorm` merged into the dense or conv layer before it.

    The result computes what the input computes in evaluation mode (running
    statistics), without normalisation layers: what hardware export needs.

    Raises
    ------
    ValueError
        If a BatchNorm does not directly follow a Dense or Conv2d layer.
    """
    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, BatchNorm):
            if not out or not isinstance(out[-1], Dense | Conv2d):
                raise ValueError("a BatchNorm can only be folded into the Dense or Conv2d "
                                 "layer right before it")
            out[-1] = _fold(out[-1], layer)
        else:
            out.append(layer)
    return out
