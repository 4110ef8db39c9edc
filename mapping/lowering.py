"""Lower a 2-D convolution to a dense weight matrix (SPEC.md §1: conv is dense, unrolled).

Neurons and input lines are flattened channel-major, ``index = (c * H + y) * W + x``,
so a contiguous range of neurons is a band of rows of one channel's feature
map, which keeps a tile's receptive field small.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv2d_output_shape", "conv2d_to_dense"]


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
                    padding: int = 0) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        Row ``(o * H_out + y) * W_out + x`` holds the kernel of output channel
        ``o`` at output position ``(y, x)``.
    """
    w = np.asarray(weights)
    if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[1] != in_shape[0]:
        raise ValueError(f"weights must be [C_out, {in_shape[0]}, K, K], not {list(w.shape)}")
    if stride < 1 or padding < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0, not {stride}, {padding}")
    c_out, c_in, k, _ = w.shape
    _, h, wd = in_shape
    _, ho, wo = conv2d_output_shape(in_shape, k, stride, padding, c_out)
    dense = np.zeros((c_out, ho, wo, c_in, h, wd), dtype=w.dtype)
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
    return dense.reshape(c_out * ho * wo, c_in * h * wd)
