"""Event-driven products of dense layers whose input is spikes.

A dense layer fed spikes ``s`` (every non-zero the same value ``c``: 1, or
``1 / (1 - p)`` after dropout) needs no multiplications: its output row is
``b + c * sum of the weight columns of the active inputs``, and its weight
gradient ``g^T s`` is, per input, ``c * sum of the output gradients of the rows
where it is active``. With a few tens of percent of active inputs (Bernoulli
coded images: ~29 %, hidden LIF layers: ~10 %) these sums are cheaper than the
dense products. The forward reads 64 weight columns at a time (an L2-resident
slice); the weight gradient goes through the rows in blocks of 128, so the block
of ``g`` it sums stays in L2. Measured on one loaded core, [1280, 784] x [784, 300]
at 29 % active: forward 6.1 ms vs 7.2 ms for the dense product, weight gradient
~5.5 ms vs 7.0 ms; at 13 % active ([1280, 300] x [300, 300]) 3-10x faster. The
input gradient ``g W`` stays a dense product.

:func:`event_linear` builds the event list (CSR) in one pass over the input
(C, :mod:`.native`); when the input is not of that form, or too dense for the
sums to pay, it returns None and the caller runs the dense product. Results
equal the dense product up to float summation order.
"""

from __future__ import annotations

import torch

from . import native

__all__ = ["MAX_DENSITY", "event_linear"]

# Above this share of active inputs the dense GEMM is about as fast (measured on
# [1280, 784] x [784, 300], one thread: the sums faster at 29 % active, slower at 50 %).
MAX_DENSITY = 0.35


class _EventLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                idx: torch.Tensor, ptr: torch.Tensor, value: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x, weight, idx, ptr)  # x: only for outputs < 64 wide
        ctx.value, ctx.n_in = value, x.shape[1]
        return native.gather_sum(idx, ptr, weight.t(), value,
                                 bias.detach() if bias is not None else None)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        x, weight, idx, ptr = ctx.saved_tensors
        g = grad.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g.mm(weight)
        if ctx.needs_input_grad[1] and g.shape[1] < 64:
            gw = g.t().mm(x)
        elif ctx.needs_input_grad[1]:
            gw = native.event_wgrad(idx, ptr, ctx.n_in, g, ctx.value).t()
        if ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb, None, None, None


def event_linear(x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> torch.Tensor | None:
    """``x @ weight.T + bias`` by event sums for spike inputs ``x`` ``[rows, n_in]``, else None.

    None when the C kernels are missing, ``x`` is not float32 on the CPU, its
    non-zeros are not all equal, or more than :data:`MAX_DENSITY` of it is non-zero.
    """
    if not (x.dtype == weight.dtype == torch.float32 and x.device.type == "cpu"
            and x.ndim == 2 and native.available()):
        return None
    with torch.no_grad():
        csr = native.event_csr(x.detach())
    if csr is None:
        return None
    idx, ptr, value = csr
    if idx.shape[0] > MAX_DENSITY * x.numel():
        return None
    return _EventLinear.apply(x, weight, bias, idx, ptr, value)
