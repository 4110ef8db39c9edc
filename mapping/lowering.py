"""Lower a 2-D convolution to a dense weight matrix (docs/QNET.md §1: conv is dense, unrolled).

Input lines are flattened channel-major, ``(c * H + y) * W + x`` (as ``torch``
flattens ``[C, H, W]``). Output neurons are flattened either the same way
(:attr:`NeuronOrder.CHW`) or position-major, ``(y * W_out + x) * C_out + o``
(:attr:`NeuronOrder.HWC`, the default): then a contiguous range of neurons -- what
a tile holds -- is a band of output rows with all their channels, whose
receptive field is a narrow band of the input, so it needs few axons.

:func:`neuron_permutation` is the one definition of both numberings; the SNN
lowering (:mod:`spikeforge.model.lowering`) lowers its convolutions here too.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = ["NeuronOrder", "conv2d_output_shape", "conv2d_to_dense", "neuron_permutation"]


class NeuronOrder(enum.Enum):
    """Order of the output neurons of a lowered convolution."""

    CHW = "chw"  # channel-major, like torch's flatten of [C, H, W]
    HWC = "hwc"  # position-major: a neuron range is a band of rows, all channels


def neuron_permutation(shape: tuple[int, int, int], order: NeuronOrder) -> np.ndarray:
    """Neuron ``a`` of ``order`` is neuron ``perm[a]`` of the channel-major numbering.

    The one definition of a ``[C, H, W]`` layer's neuron numbering: ``CHW`` is the
    identity, ``HWC`` numbers ``(y * W + x) * C + c``. Rows of a channel-major
    matrix go to ``order`` by ``m[perm]``, columns by ``m[:, perm]``.
    """
    if not isinstance(order, NeuronOrder):
        raise ValueError(f"order must be a NeuronOrder, not {order!r}")
    c, h, w = (int(n) for n in shape)
    idx = np.arange(c * h * w)
    if order is NeuronOrder.CHW:
        return idx
    return idx.reshape(c, h, w).transpose(1, 2, 0).ravel()


def conv2d_output_shape(in_shape: tuple[int, int, int], kernel: int, stride: int = 1,
                        padding: int = 0, out_channels: int = 1) -> tuple[int, int, int]:
    """``(C_out, H_out, W_out)`` of a convolution of a ``(C, H, W)`` input."""
    _, h, w = in_shape
    ho = (h + 2 * padding - kernel) // stride + 1
    wo = (w + 2 * padding - kernel) // stride + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"kernel {kernel} with padding {padding} does not fit input {in_shape}")
    return out_channels, ho, wo


def conv2d_to_dense(weights: np.ndarray, in_shape: tuple[int, int, int], stride: int = 1,
                    padding: int = 0, order: NeuronOrder = NeuronOrder.HWC) -> np.ndarray:
    """The dense ``[C_out*H_out*W_out, C*H*W]`` matrix of a convolution (zero padding).

    Parameters
    ----------
    weights : numpy.ndarray
        Kernels ``[C_out, C, K, K]`` (integers or floats; the dtype is kept).
    in_shape : tuple of int
        Input ``(C, H, W)``.
    stride, padding : int
        As in ``torch.nn.Conv2d``; padded positions have no input line, so
        they simply contribute no synapse.
    order : NeuronOrder
        Order of the output neurons (the rows).

    Returns
    -------
    numpy.ndarray
        Row ``(y * W_out + x) * C_out + o`` (``HWC``) or ``(o * H_out + y) * W_out + x``
        (``CHW``) holds the kernel of output channel ``o`` at output position ``(y, x)``.
    """
    w = np.asarray(weights)
    if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[1] != in_shape[0]:
        raise ValueError(f"weights must be [C_out, {in_shape[0]}, K, K], not {list(w.shape)}")
    if stride < 1 or padding < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0, not {stride}, {padding}")
    c_out, c_in, k, _ = w.shape
    _, h, wd = in_shape
    _, ho, wo = conv2d_output_shape(in_shape, k, stride, padding, c_out)
    dense = np.zeros((c_out, ho, wo, c_in, h, wd), dtype=w.dtype)  # channel-major rows
    for y in range(ho):
        for x in range(wo):
            for dy in range(k):
                iy = y * stride + dy - padding
                if not 0 <= iy < h:
                    continue
                for dx in range(k):
                    ix = x * stride + dx - padding
                    if 0 <= ix < wd:
                        dense[:, y, x, :, iy, ix] = w[:, :, dy, dx]
    dense = dense.reshape(c_out * ho * wo, c_in * h * wd)
    return np.ascontiguousarray(dense[neuron_permutation((c_out, ho, wo), order)])
