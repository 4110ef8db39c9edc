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

__all__ = ["available", "lif_backward", "lif_forward"]

_FWD = r"""
#include <stdint.h>
#define FWD(T_, NAME)                                                                  \
void NAME(const T_* restrict cur, T_* restrict u, T_* restrict flag, T_* restrict out, \
          T_* restrict v, int64_t steps, int64_t n, T_ beta, T_ theta, int subtract) {  \
    for (int64_t j = 0; j < n; j++) v[j] = 0;                                          \
    for (int64_t t = 0; t < steps; t++) {                                              \
        const T_* restrict c = cur + t * n; T_* restrict ut = u + t * n;               \
        T_* restrict ft = flag + t * n; T_* restrict ot = out + t * n;                 \
        if (subtract) {                                                                \
            for (int64_t j = 0; j < n; j++) {                                          \
                T_ x = beta * v[j]; x = x + c[j];                                      \
                T_ s = x >= theta ? (T_)1 : (T_)0;                                     \
                ut[j] = x; ft[j] = s; ot[j] = s; v[j] = x - theta * s;                 \
            }                                                                          \
        } else {                                                                       \
            for (int64_t j = 0; j < n; j++) {                                          \
                T_ x = beta * v[j]; x = x + c[j];                                      \
                T_ keep = x >= theta ? (T_)0 : (T_)1;                                  \
                ut[j] = x; ft[j] = keep; ot[j] = (T_)1 - keep; v[j] = x * keep;        \
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
/* One pass per step: surrogate, adjoint recurrence, threshold-gradient sums.
   kind: 0 exponential, 1 piecewise linear, 2 fast sigmoid, 3 arctan, 4 straight-through */
#define INNER(T_, SG)                                                                  \
    for (int64_t j = 0; j < n; j++) {                                                  \
        T_ x = ut[j] - theta; T_ sg = (SG);                                            \
        T_ av = g[j] * sg; T_ nextv = nx[j];                                           \
        o[j] = av + beta * (sub1 + sub0 * ft[j]) * nextv;                              \
        acc += av; acc2 += ft[j] * nextv;                                              \
    }
#define BWD(T_, NAME, EXP, FABS, FMAX)                                                 \
double NAME(const T_* restrict gs, const T_* restrict u, const T_* restrict flag,      \
            T_* restrict gu, const T_* restrict zeros, int64_t steps, int64_t n,       \
            T_ beta, T_ theta, int subtract, int kind, T_ a) {                         \
    double gth = 0;                                                                    \
    const T_ k3 = (T_)(3.14159265358979323846 / 2.0) * a;                              \
    const T_ sub1 = subtract ? (T_)1 : (T_)0, sub0 = (T_)1 - sub1;                     \
    for (int64_t t = steps - 1; t >= 0; t--) {                                         \
        const T_* restrict g = gs + t * n; const T_* restrict ut = u + t * n;          \
        const T_* restrict ft = flag + t * n; T_* restrict o = gu + t * n;             \
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

_KIND = {Surrogate.EXPONENTIAL: 0, Surrogate.PIECEWISE_LINEAR: 1, Surrogate.FAST_SIGMOID: 2,
         Surrogate.ARCTAN: 3, Surrogate.STRAIGHT_THROUGH: 4}
_lib: ctypes.CDLL | None = None
_tried = False


def _build() -> ctypes.CDLL | None:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None or os.environ.get("SPIKEFORGE_NO_NATIVE"):
        return None
    key = hashlib.sha256((_FWD + _BWD + cc).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spikeforge"
    so = cache / f"lif-{key}.so"
    if not so.is_file():
        try:
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                (t / "fwd.c").write_text(_FWD)
                (t / "bwd.c").write_text(_BWD)
                base = [cc, "-O3", "-march=native", "-fPIC", "-c"]
                # exact: no FMA contraction; -fno-trapping-math only lets the compare vectorise
                subprocess.run(base + ["-ffp-contract=off", "-fno-trapping-math", "fwd.c"],
                               cwd=t, check=True, capture_output=True)
                subprocess.run(base + ["-ffast-math", "bwd.c"], cwd=t, check=True,
                               capture_output=True)
                subprocess.run([cc, "-shared", "-o", "lif.so", "fwd.o", "bwd.o", "-lm"], cwd=t,
                               check=True, capture_output=True)
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
        f.argtypes = [p, p, p, p, p, i64, i64, real, real, i32]
        f.restype = None
        b = getattr(lib, f"lif_bwd_{name}")
        b.argtypes = [p, p, p, p, p, i64, i64, real, real, i32, i32, real]
        b.restype = ctypes.c_double
    return lib


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
    """``(u, flag, spikes)`` of the fused forward (see :mod:`.kernels`)."""
    c = currents.contiguous()
    steps = c.shape[0]
    n = c.numel() // max(steps, 1)
    u, flag, out = torch.empty_like(c), torch.empty_like(c), torch.empty_like(c)
    v = torch.empty(n, dtype=c.dtype)
    getattr(_lib, f"lif_fwd_{_suffix(c)}")(
        c.data_ptr(), u.data_ptr(), flag.data_ptr(), out.data_ptr(), v.data_ptr(), steps, n,
        beta, theta, int(reset is Reset.SUBTRACT))
    return u, flag, out


def lif_backward(grad: torch.Tensor, u: torch.Tensor, flag: torch.Tensor, beta: float,
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
        g.data_ptr(), u.data_ptr(), flag.data_ptr(), gu.data_ptr(), zeros.data_ptr(), steps, n,
        beta, theta,
        int(reset is Reset.SUBTRACT), _KIND[kind], scale)
    return gu, float(gth)
