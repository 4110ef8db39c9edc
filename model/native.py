"""Optional C kernels of the fused LIF time loop, compiled on first use with the system C compiler.

The torch implementation in :mod:`.kernels` costs ~20 small tensor calls per
layer and step-pair plus five passes for the surrogate; these two C loops do
the forward (membrane, spike, reset) and the backward (surrogate, adjoint
recurrence, threshold gradient) in one pass each over ``[T, N]``. They are a
pure speed-up: ``kernels.lif_sequence`` uses them when they build (``cc`` on
the PATH) and falls back to torch otherwise; tests check both give the same
spikes and gradients.

The forward is compiled without ``-ffast-math`` and without FMA contraction, so
its membranes and spikes are bit-equal to the step functions'; the backward
is compiled with ``-ffast-math`` (vectorised ``exp``), which is well within
the tolerance a gradient needs. Set ``SPIKEFORGE_NO_NATIVE=1`` to disable them.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from spikeforge.qnet import Reset

from .surrogate import Surrogate

__all__ = ["RESET_FLAGS", "available", "bernoulli_splitmix_f32", "event_csr", "event_wgrad",
           "gather_sum", "lif_backward", "lif_forward", "supports"]

_FWD = r"""
#include <stdint.h>
#define FWD(T_, NAME)                                                                  \
void NAME(const T_* restrict cur, T_* restrict u, T_* restrict out, T_* restrict v,    \
          int64_t steps, int64_t n, T_ beta, T_ theta, int subtract) {                 \
    for (int64_t j = 0; j < n; j++) v[j] = 0;                                          \
    for (int64_t t = 0; t < steps; t++) {                                              \
        const T_* restrict c = cur + t * n; T_* restrict ut = u + t * n;               \
        T_* restrict ot = out + t * n;                                                 \
        if (subtract) {                                                                \
            for (int64_t j = 0; j < n; j++) {                                          \
                T_ x = beta * v[j]; x = x + c[j];                                      \
                T_ s = x >= theta ? (T_)1 : (T_)0;                                     \
                ut[j] = x; ot[j] = s; v[j] = x - theta * s;                            \
            }                                                                          \
        } else {                                                                       \
            for (int64_t j = 0; j < n; j++) {                                          \
                T_ x = beta * v[j]; x = x + c[j];                                      \
                T_ keep = x >= theta ? (T_)0 : (T_)1;                                  \
                ut[j] = x; ot[j] = (T_)1 - keep; v[j] = x * keep;                      \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}
FWD(float, lif_fwd_f32)
FWD(double, lif_fwd_f64)
"""

_BWD = r"""
#include <stdint.h>
#include <math.h>
/* One pass per step: surrogate, adjoint recurrence, threshold-gradient sums; ft holds the
   spikes, so the reset factor is 1 - s (zero reset) or 1 (subtract).
   kind: 0 exponential, 1 piecewise linear, 2 fast sigmoid, 3 arctan, 4 straight-through */
#define INNER(T_, SG)                                                                  \
    for (int64_t j = 0; j < n; j++) {                                                  \
        T_ x = ut[j] - theta; T_ sg = (SG);                                            \
        T_ av = g[j] * sg; T_ nextv = nx[j];                                           \
        o[j] = av + beta * ((T_)1 - sub0 * ft[j]) * nextv;                             \
        acc += av; acc2 += ft[j] * nextv;                                              \
    }
#define BWD(T_, NAME, EXP, FABS, FMAX)                                                 \
double NAME(const T_* restrict gs, const T_* restrict u, const T_* restrict spk,       \
            T_* restrict gu, const T_* restrict zeros, int64_t steps, int64_t n,       \
            T_ beta, T_ theta, int subtract, int kind, T_ a) {                         \
    double gth = 0;                                                                    \
    const T_ k3 = (T_)(3.14159265358979323846 / 2.0) * a;                              \
    const T_ sub1 = subtract ? (T_)1 : (T_)0, sub0 = (T_)1 - sub1;                     \
    for (int64_t t = steps - 1; t >= 0; t--) {                                         \
        const T_* restrict g = gs + t * n; const T_* restrict ut = u + t * n;          \
        const T_* restrict ft = spk + t * n;  T_* restrict o = gu + t * n;             \
        const T_* restrict nx = t + 1 < steps ? gu + (t + 1) * n : zeros;              \
        T_ acc = 0, acc2 = 0;                                                          \
        switch (kind) {                                                                \
        case 0: INNER(T_, EXP(-a * FABS(x))) break;                                    \
        case 1: INNER(T_, a * FMAX((T_)0, (T_)1 - FABS(x))) break;                     \
        case 2: INNER(T_, (T_)1 / (((T_)1 + a * FABS(x)) * ((T_)1 + a * FABS(x)))) break;\
        case 3: INNER(T_, (a / (T_)2) / ((T_)1 + (k3 * x) * (k3 * x))) break;          \
        default: INNER(T_, a) break;                                                   \
        }                                                                              \
        gth -= acc;                                                                    \
        if (subtract) gth -= (double)beta * acc2;                                      \
    }                                                                                  \
    return gth;                                                                        \
}
BWD(float, lif_bwd_f32, expf, fabsf, fmaxf)
BWD(double, lif_bwd_f64, exp, fabs, fmax)
"""

_SPARSE = r"""
#include <stdint.h>
#include <string.h>
typedef float v8 __attribute__((vector_size(32), aligned(4)));
/* CSR of the non-zeros of x [rows, n] if they all share one value (returned in *value);
   returns their count, or -1 as soon as a row holds a second non-zero value. idx holds
   rows * n + 8 entries (the vector path stores 8 at a time). */
#ifdef __AVX2__
#include <immintrin.h>
#endif
int64_t event_csr(const float* restrict x, int64_t rows, int64_t n, int32_t* restrict idx,
                  int64_t* restrict ptr, float* restrict value) {
    int64_t k = 0, total = rows * n; float c = 0; int bad = 0;
    for (int64_t j = 0; j < total && c == 0; j++) c = x[j];
    ptr[0] = 0;
#ifdef __AVX2__
    int32_t lut[256][8];
    for (int m = 0; m < 256; m++) {
        int q = 0;
        for (int b = 0; b < 8; b++) if (m >> b & 1) lut[m][q++] = b;
        for (; q < 8; q++) lut[m][q] = 0;
    }
    const __m256 zero = _mm256_setzero_ps(), cv = _mm256_set1_ps(c);
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float* restrict xr = x + r * n;
        int64_t j = 0;
#ifdef __AVX2__
        for (; j + 8 <= n; j += 8) {
            __m256 v = _mm256_loadu_ps(xr + j);
            int nz = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
            int eq = _mm256_movemask_ps(_mm256_cmp_ps(v, cv, _CMP_EQ_OQ));
            bad |= nz & ~eq;
            __m256i at = _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)lut[nz]),
                                          _mm256_set1_epi32((int32_t)j));
            _mm256_storeu_si256((__m256i*)(idx + k), at);
            k += __builtin_popcount(nz);
        }
#endif
        for (; j < n; j++) {
            float v = xr[j];
            idx[k] = (int32_t)j;
            k += v != 0.0f;
            bad |= (v != 0.0f) & (v != c);
        }
        ptr[r + 1] = k;
        if (bad) return -1;
    }
    *value = c;
    return k;
}
/* out[s, :n] (+)= init[:n] + scale * sum over k in segment s of src[idx[k], :n] (added to
   out when acc); src rows hold ld >= n values, n >= 64. 64 columns at a time in 8 vector
   registers; the last slice is [n - 64, n), overlapping the one before (its columns are
   computed twice, equal; with acc the overlap is added only once). */
static void gather(const int32_t* restrict idx, const int64_t* restrict ptr, int64_t segs,
                   const float* restrict src, int64_t ld, int64_t n, const float* restrict init,
                   float scale, float* restrict out, int acc) {
    for (int64_t c0 = 0; c0 < n; c0 += 64) {
        int64_t c = c0 + 64 <= n ? c0 : n - 64, skip = c0 - c;  /* skip: overlap columns */
        for (int64_t s = 0; s < segs; s++) {
            v8 a[8];
            for (int q = 0; q < 8; q++) a[q] = (v8){0};
            for (int64_t k = ptr[s]; k < ptr[s + 1]; k++) {
                const v8* p = (const v8*)(src + (int64_t)idx[k] * ld + c);
                for (int q = 0; q < 8; q++) a[q] += p[q];
            }
            for (int q = 0; q < 8; q++) {
                a[q] *= scale;
                if (init) a[q] += ((const v8*)(init + c))[q];
            }
            float* o = out + s * n + c;
            if (!acc) { for (int q = 0; q < 8; q++) ((v8*)o)[q] = a[q]; continue; }
            const float* af = (const float*)a;
            for (int64_t j = skip; j < 64; j++) o[j] += af[j];
        }
    }
}
void gather_sum(const int32_t* restrict idx, const int64_t* restrict ptr, int64_t segs,
                const float* restrict src, int64_t ld, int64_t n, const float* restrict init,
                float scale, float* restrict out) {
    gather(idx, ptr, segs, src, ld, n, init, scale, out, 0);
}
/* Weight gradient of an event product: out[i, :n] = scale * sum of g[r, :n] over the rows r
   where input i is active (CSR idx/ptr over rows x n_in). Rows go in blocks of blk, each
   block's transpose built in tidx/tptr/fill (blk, n_in + 1, n_in entries), so the block of g
   the sums read stays in L2. */
void event_wgrad(const int32_t* restrict idx, const int64_t* restrict ptr, int64_t rows,
                 int64_t n_in, const float* restrict g, int64_t n, float scale,
                 float* restrict out, int32_t* restrict tidx, int64_t* restrict tptr,
                 int64_t* restrict fill, int64_t blk) {
    memset(out, 0, n_in * n * sizeof(float));
    for (int64_t r0 = 0; r0 < rows; r0 += blk) {
        int64_t r1 = r0 + blk < rows ? r0 + blk : rows;
        memset(tptr, 0, (n_in + 1) * sizeof(int64_t));
        for (int64_t k = ptr[r0]; k < ptr[r1]; k++) tptr[idx[k] + 1]++;
        for (int64_t j = 0; j < n_in; j++) tptr[j + 1] += tptr[j];
        memcpy(fill, tptr, n_in * sizeof(int64_t));
        for (int64_t r = r0; r < r1; r++)
            for (int64_t k = ptr[r]; k < ptr[r + 1]; k++)
                tidx[fill[idx[k]]++] = (int32_t)(r - r0);
        gather(tidx, tptr, n_in, g + r0 * n, n, n, 0, scale, out, 1);
    }
}
/* Bernoulli spikes from a counter-based generator, in one pass: draw k (k = t * n + j)
   is the 16-bit field k % 4 (from the low bits) of splitmix64(seed + (k / 4 + 1) * G),
   as a signed int16 r; out[t, j] = r < level[j] as 0/1 floats. The same bits as
   encoders.splitmix_draws in numpy (tested). */
static inline uint64_t splitmix64_at(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
void bernoulli_splitmix_f32(uint64_t seed, const int32_t* restrict level, int64_t steps,
                            int64_t n, float* restrict out) {
    /* blocks of 2,048 draws: fill the words, then a branch-free compare loop the
       compiler vectorizes (one draw and compare per element was 10x slower) */
    enum { B = 512 };
    int16_t r[4 * B];
    int64_t total = steps * n, j = 0;
    for (int64_t k0 = 0; k0 < total; k0 += 4 * B) {
        int64_t cnt = total - k0 < 4 * B ? total - k0 : 4 * B;
        uint64_t base = (uint64_t)(k0 >> 2);
        for (int64_t i = 0; i < (cnt + 3) / 4; i++) {  /* field k % 4 from the low bits */
            uint64_t w = splitmix64_at(seed, base + (uint64_t)i);
            for (int q = 0; q < 4; q++) r[4 * i + q] = (int16_t)(uint16_t)(w >> (16 * q));
        }
        float* o = out + k0;
        int64_t q = 0;
        while (q < cnt) {
            int64_t run = n - j < cnt - q ? n - j : cnt - q;
            const int32_t* lv = level + j;
            for (int64_t m = 0; m < run; m++) o[q + m] = (float)((int32_t)r[q + m] < lv[m]);
            q += run;
            j += run;
            if (j == n) j = 0;
        }
    }
}
"""

_KIND = {Surrogate.EXPONENTIAL: 0, Surrogate.PIECEWISE_LINEAR: 1, Surrogate.FAST_SIGMOID: 2,
         Surrogate.ARCTAN: 3, Surrogate.STRAIGHT_THROUGH: 4}
_lib: ctypes.CDLL | None = None
_tried = False


def _build() -> ctypes.CDLL | None:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None or os.environ.get("SPIKEFORGE_NO_NATIVE"):
        return None
    key = hashlib.sha256((_FWD + _BWD + _SPARSE + cc).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spikeforge"
    so = cache / f"lif-{key}.so"
    if not so.is_file():
        try:
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                (t / "fwd.c").write_text(_FWD)
                (t / "bwd.c").write_text(_BWD)
                (t / "sparse.c").write_text(_SPARSE)
                base = [cc, "-O3", "-march=native", "-fPIC", "-c"]
                # exact: no FMA contraction; -fno-trapping-math only lets the compare vectorise
                subprocess.run(base + ["-ffp-contract=off", "-fno-trapping-math", "fwd.c"],
                               cwd=t, check=True, capture_output=True)
                subprocess.run(base + ["-ffast-math", "bwd.c"], cwd=t, check=True,
                               capture_output=True)
                subprocess.run(base + ["sparse.c"], cwd=t, check=True, capture_output=True)
                subprocess.run([cc, "-shared", "-o", "lif.so", "fwd.o", "bwd.o", "sparse.o", "-lm"],
                               cwd=t, check=True, capture_output=True)
                part = so.with_name(so.name + f".{os.getpid()}")
                shutil.copyfile(t / "lif.so", part)
                os.replace(part, so)
        except (OSError, subprocess.CalledProcessError):
            return None
    try:
        lib = ctypes.CDLL(str(so))
    except OSError:
        return None
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for name, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        f = getattr(lib, f"lif_fwd_{name}")
        f.argtypes = [p, p, p, p, i64, i64, real, real, i32]
        f.restype = None
        b = getattr(lib, f"lif_bwd_{name}")
        b.argtypes = [p, p, p, p, p, i64, i64, real, real, i32, i32, real]
        b.restype = ctypes.c_double
    lib.event_csr.argtypes = [p, i64, i64, p, p, p]
    lib.event_csr.restype = i64
    lib.gather_sum.argtypes = [p, p, i64, p, i64, i64, p, ctypes.c_float, p]
    lib.gather_sum.restype = None
    lib.event_wgrad.argtypes = [p, p, i64, i64, p, i64, ctypes.c_float, p, p, p, p, i64]
    lib.event_wgrad.restype = None
    lib.bernoulli_splitmix_f32.argtypes = [ctypes.c_uint64, p, i64, i64, p]
    lib.bernoulli_splitmix_f32.restype = None
    return lib


RESET_FLAGS: dict[Reset, int] = {Reset.ZERO: 0, Reset.SUBTRACT: 1}
"""The reset modes the C kernels implement, and their ``subtract`` flag; any other mode
goes through the torch loops of :mod:`.kernels` (never through another mode's kernel)."""


def supports(reset: Reset) -> bool:
    """Whether the C kernels implement the reset mode ``reset``."""
    return reset in RESET_FLAGS


def available() -> bool:
    """Whether the C kernels are built and loaded (building them on the first call)."""
    global _lib, _tried
    if not _tried:
        _tried = True
        _lib = _build()
    return _lib is not None


def usable(x: torch.Tensor) -> bool:
    """Whether ``x`` can go through the C kernels (CPU float32/float64) and they exist."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and available())


def _suffix(x: torch.Tensor) -> str:
    return "f32" if x.dtype == torch.float32 else "f64"


def lif_forward(currents: torch.Tensor, beta: float, theta: float,
                reset: Reset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(u, spikes)`` of the fused forward (see :mod:`.kernels`): membranes before reset."""
    c = currents.contiguous()
    steps = c.shape[0]
    n = c.numel() // max(steps, 1)
    u, out = torch.empty_like(c), torch.empty_like(c)
    v = torch.empty(n, dtype=c.dtype)
    getattr(_lib, f"lif_fwd_{_suffix(c)}")(
        c.data_ptr(), u.data_ptr(), out.data_ptr(), v.data_ptr(), steps, n,
        beta, theta, RESET_FLAGS[reset])
    return u, out


def lif_backward(grad: torch.Tensor, u: torch.Tensor, spikes: torch.Tensor, beta: float,
                 theta: float, reset: Reset, kind: Surrogate,
                 scale: float) -> tuple[torch.Tensor, float]:
    """``(grad_currents, grad_theta)`` of the fused backward."""
    g = grad.contiguous()
    if g.dtype != u.dtype:
        g = g.to(u.dtype)
    steps = u.shape[0]
    n = u.numel() // max(steps, 1)
    gu = torch.empty_like(u)
    zeros = torch.zeros(n, dtype=u.dtype)
    gth = getattr(_lib, f"lif_bwd_{_suffix(u)}")(
        g.data_ptr(), u.data_ptr(), spikes.data_ptr(), gu.data_ptr(), zeros.data_ptr(), steps, n,
        beta, theta,
        RESET_FLAGS[reset], _KIND[kind], scale)
    return gu, float(gth)


def event_csr(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """``(idx, ptr, value)``: the CSR of a float32 ``[rows, n]`` whose non-zeros all equal
    ``value``, or None when they do not (found at the first such row)."""
    c = x.contiguous()
    rows, n = c.shape
    idx = torch.empty(c.numel() + 8, dtype=torch.int32)
    ptr = torch.empty(rows + 1, dtype=torch.int64)
    value = ctypes.c_float(0.0)
    nnz = _lib.event_csr(c.data_ptr(), rows, n, idx.data_ptr(), ptr.data_ptr(),
                         ctypes.byref(value))
    if nnz < 0:
        return None
    return idx[:nnz], ptr, float(value.value)


def gather_sum(idx: torch.Tensor, ptr: torch.Tensor, src: torch.Tensor, scale: float = 1.0,
               init: torch.Tensor | None = None) -> torch.Tensor:
    """``out[s] = init + scale * sum(src[idx[k]] for k in ptr[s]:ptr[s+1])``, ``[segs, n]``.

    ``src`` is float32 ``[rows, n]``; rows of fewer than 64 values are padded.
    """
    segs, n = ptr.shape[0] - 1, src.shape[1]
    if n < 64:
        src = torch.nn.functional.pad(src, (0, 64 - n))
        init = torch.nn.functional.pad(init, (0, 64 - n)) if init is not None else None
        return gather_sum(idx, ptr, src, scale, init)[:, :n]
    src = src.contiguous()
    init = init.contiguous() if init is not None else None
    out = torch.empty(segs, n, dtype=torch.float32)
    _lib.gather_sum(idx.data_ptr(), ptr.data_ptr(), segs, src.data_ptr(), src.shape[1], n,
                    init.data_ptr() if init is not None else None, scale, out.data_ptr())
    return out


def event_wgrad(idx: torch.Tensor, ptr: torch.Tensor, n_in: int, grad: torch.Tensor,
                scale: float = 1.0, block: int = 128) -> torch.Tensor:
    """``[n_in, n]``: ``scale * grad^T x`` for the event input ``x`` of CSR ``(idx, ptr)``.

    ``grad`` is float32 ``[rows, n]``, ``n >= 64``; rows are summed in blocks of ``block``.
    """
    g = grad.contiguous()
    rows, n = g.shape
    out = torch.empty(n_in, n, dtype=torch.float32)
    tidx = torch.empty(max(idx.shape[0], 1), dtype=torch.int32)
    tptr = torch.empty(n_in + 1, dtype=torch.int64)
    fill = torch.empty(n_in, dtype=torch.int64)
    _lib.event_wgrad(idx.data_ptr(), ptr.data_ptr(), rows, n_in, g.data_ptr(), n, scale,
                     out.data_ptr(), tidx.data_ptr(), tptr.data_ptr(), fill.data_ptr(), block)
    return out


def bernoulli_splitmix_f32(seed: int, steps: int, level: torch.Tensor) -> torch.Tensor:
    """Spikes ``[steps, *level.shape]`` from the counter-based draws of ``seed`` (C pass)."""
    level = level.contiguous()
    out = torch.empty((steps, *level.shape), dtype=torch.float32)
    _lib.bernoulli_splitmix_f32(seed % 2**64, level.data_ptr(), steps, level.numel(),
                                out.data_ptr())
    return out
