"""Hostile inputs for every ``spikeforge`` subcommand, generated in code.

Used by ``tests/test_hostile.py``. A :class:`Case` is one bad input: a change to a
small valid workspace (a tiny QNet, inputs, a run/train config, a hardware
description, a mapping, a DSE study and a folder of the user's own files) and
the command line that must refuse it. The contract every case checks:

1. exit status 2;
2. exactly one stderr line, ``spikeforge: error: ...``, naming the file and the
   field (or the option);
3. no ``Traceback``;
4. the workspace is exactly as it was (nothing of the user's changed or
   deleted, nothing new written: no --out folder, no staging folder);
5. it ends within a time limit.

The helpers here build the workspace, take snapshots, run a case in-process or
in a real process, and turn an outcome into a list of violations (``tags``).

"Real work" (training, Verilog generation, simulation, mapping, synthesis, a
worker pool, talking to a board) is guarded by *tripwires* while a hostile case
runs in-process: reaching one means the input was not refused up front.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PREFIX = "spikeforge: error: "
TIMEOUT_S = 60  # per case: a hang is a failure, not a stuck suite
PROC_MEMORY = 3 << 30  # address-space limit of a real-process case (bombs fail fast)

# ----------------------------------------------------------------------------- the workspace

QNET_T = 3
N_IN = 6

RUN_CFG = """\
data:
  dataset: digits
model:
  input_shape: [64]
  layers:
    - dense: 16
    - dense: 10
  neuron:
    leak_shifts: [3, 4]
    threshold: 1.0
encoding:
  timesteps: 4
train:
  epochs: 1
rtl:
  samples: 4
"""

TRAIN_CFG = """\
name: tiny
seed: 0
data:
  dataset: digits
  train_limit: 64
  test_limit: 32
encoding:
  kind: bernoulli
  timesteps: 2
model:
  input_shape: [64]
  layers:
    - dense: 8
    - dense: 10
  neuron:
    leak_shifts: [3, 4]
train:
  epochs: 1
  batch_size: 32
eval:
  timesteps: [2]
  activity_samples: 8
"""

STUDY = """\
name: tiny_study
seed: 0
base:
  dataset: digits
  train_samples: 64
  test_samples: 32
  hidden: [8]
  epochs: 1
  rtl_samples: 2
  map_samples: 4
parameters:
  weight_bits: {choices: [4, 6]}
  timesteps: {choices: [2, 3]}
objectives:
  accuracy: max
  cycles_rtl: min
search:
  method: grid
"""

HW_FALLBACK = """\
name: mesh4x4_256
mesh: {rows: 4, cols: 4}
tiles: 16
tile:
  axons: 256
  neurons: 256
  synapse_memory_bits: 524288
  neuron_lanes: 8
noc:
  hop_cycles: 1
  hop_energy_pj: 2.0
io: {row: 0, col: -1}
clock_mhz: 100
"""

MAPPING_FALLBACK = """\
format: mapping/1
hardware:
  tile: {axons: 256, neurons: 256, synapse_memory_bits: 524288, neuron_lanes: 2}
tiles:
  - {layer: hid, fragment: 0, neurons: [0, 4], axons: [[0, 6]]}
  - {layer: readout, fragment: 1, neurons: [0, 3], axons: [[0, 4]]}
"""


def tiny_qnet(name: str = "net", hidden: int = 4, n_in: int = N_IN, timesteps: int = QNET_T,
              fill: int | None = None, weight_bits: int = 4):
    """A 6-4-3 QNet (LIF hidden layer, integrating readout); ``fill``: every weight equal."""
    from spikeforge.qnet import InputSpec, Layer, QNet, Reset

    rng = np.random.default_rng(3)
    lo, hi = -(1 << (weight_bits - 1)), 1 << (weight_bits - 1)

    def w(shape):
        return np.full(shape, fill, dtype=np.int64) if fill is not None else \
            rng.integers(lo, hi, size=shape)

    l1 = Layer(name="hid", n_in=n_in, n_out=hidden, weight_bits=weight_bits,
               weights=w((hidden, n_in)), threshold=5, membrane_bits=12, leak_shifts=(3,),
               reset=Reset.ZERO, fire=True)
    l2 = Layer(name="readout", n_in=hidden, n_out=3, weight_bits=weight_bits,
               weights=w((3, hidden)), threshold=1, membrane_bits=12, reset=Reset.NONE,
               fire=False)
    shape = (2, 3) if n_in == N_IN else None
    return QNet(layers=(l1, l2), timesteps=timesteps, input=InputSpec(size=n_in, shape=shape),
                name=name)


def build_workspace(root: Path) -> None:
    """Write the valid workspace every case starts from into ``root``."""
    from spikeforge.qnet import save_qnet

    root.mkdir(parents=True, exist_ok=True)
    save_qnet(tiny_qnet(), root / "net")
    rng = np.random.default_rng(7)
    spikes = (rng.random((4, QNET_T, N_IN)) < 0.4).astype(np.uint8)
    labels = np.array([0, 1, 2, 1], dtype=np.int64)
    np.savez(root / "in.npz", spikes=spikes, labels=labels)
    np.savez(root / "pix.npz", pixels=rng.integers(0, 256, size=(4, N_IN), dtype=np.uint8),
             seeds=np.arange(1, 5, dtype=np.uint32), labels=labels)
    np.save(root / "in.npy", spikes)
    hw = REPO / "examples" / "hw" / "mesh4x4_256.yaml"
    (root / "hw.yaml").write_text(hw.read_text() if hw.is_file() else HW_FALLBACK)
    (root / "cfg.yaml").write_text(RUN_CFG)
    (root / "train.yaml").write_text(TRAIN_CFG)
    (root / "study.yaml").write_text(STUDY)
    (root / "mapping.yaml").write_text(_made_mapping(root) or MAPPING_FALLBACK)
    user = root / "user"
    user.mkdir()
    (user / "notes.txt").write_text("the user's own notes\n")
    (user / "results.csv").write_text("a,b\n1,2\n")
    (root / ".hidden-user-file").write_text("hidden\n")


def _made_mapping(root: Path) -> str | None:
    """A mapping.yaml written by ``spikeforge map`` for the tiny net (None if map fails)."""
    from spikeforge.cli import main

    tmp = root.parent / f".{root.name}-map"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            rc = main(["map", str(root / "net.qnet.yaml"), "--hw", str(root / "hw.yaml"),
                       "--out", str(tmp), "--method", "in-order", "--samples", "4"])
        if rc == 0 and (tmp / "mapping.yaml").is_file():
            return (tmp / "mapping.yaml").read_text()
        return None
    except Exception:  # the fallback is good enough for mutations
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- snapshots


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (hidden ones too): path -> (kind, mode, content hash/target)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", mode, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, None)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with contextlib.suppress(OSError), open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                out[rel] = ("file", mode, h.hexdigest())
            else:
                out[rel] = ("other", mode, st.st_mode)
    return out


def snapshot_diff(before: dict[str, tuple], after: dict[str, tuple]) -> dict[str, list[str]]:
    """``changed``, ``deleted`` (the user's) and ``new`` entries between two snapshots."""
    return {
        "changed": sorted(k for k in before if k in after and before[k] != after[k]),
        "deleted": sorted(k for k in before if k not in after),
        "new": sorted(k for k in after if k not in before),
    }


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One hostile input: ``mutate`` the workspace, run ``argv``, expect a refusal.

    ``names``: strings that must appear in the error line (``a|b``: either).
    ``proc``: run in a real process (bombs, huge allocations: memory limited).
    ``skip``: returns a reason to skip on this machine, or None.
    ``unprivileged``: the case needs file modes to bind (a read-only folder); as root it
    runs in a real process as user ``nobody`` (root writes into any folder).
    """

    id: str
    argv: tuple[str, ...]
    names: tuple[str, ...] = ()
    mutate: Callable[[Path], None] | None = None
    proc: bool = False
    skip: Callable[[], str | None] | None = None
    unprivileged: bool = False


@dataclass(frozen=True)
class Valid:
    """An input that must still succeed (exit 0), quickly."""

    id: str
    argv: tuple[str, ...]
    mutate: Callable[[Path], None] | None = None
    check: Callable[[Path], None] | None = None
    needs: tuple[str, ...] = ()  # programs that must be on PATH


# --- mutation helpers (each returns a closure over the workspace folder)


def chain(*fns: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        for f in fns:
            f(w)
    return run


def write(name: str, data: str | bytes) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        p = w / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
    return run


def append(name: str, data: str | bytes) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        p = w / name
        old = p.read_bytes()
        p.write_bytes(old + (data if isinstance(data, bytes) else data.encode()))
    return run


def remove(name: str) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        p = w / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return run


def edit_yaml(name: str, fn: Callable[[Any], Any]) -> Callable[[Path], None]:
    """Load ``name``, let ``fn`` change the document in place (its result is ignored), dump it."""
    def run(w: Path) -> None:
        p = w / name
        doc = yaml.safe_load(p.read_text())
        fn(doc)
        p.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return run


def setpath(doc: Any, dotted: str, value: Any) -> None:
    """``doc[a][b][c] = value`` for ``"a.b.c"`` (list indices as integers), creating mappings."""
    keys = [int(k) if k.lstrip("-").isdigit() else k for k in dotted.split(".")]
    cur = doc
    for k in keys[:-1]:
        if isinstance(k, str) and k not in cur:
            cur[k] = {}
        cur = cur[k]
    cur[keys[-1]] = value


def delpath(doc: Any, dotted: str) -> None:
    keys = [int(k) if k.lstrip("-").isdigit() else k for k in dotted.split(".")]
    cur = doc
    for k in keys[:-1]:
        cur = cur[k]
    del cur[keys[-1]]


def set_yaml(name: str, dotted: str, value: Any) -> Callable[[Path], None]:
    return edit_yaml(name, lambda d: setpath(d, dotted, value))


def del_yaml(name: str, dotted: str) -> Callable[[Path], None]:
    return edit_yaml(name, lambda d: delpath(d, dotted))


def replace_text(name: str, old: str, new: str) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        p = w / name
        text = p.read_text()
        assert old in text, f"{old!r} not in {name}"
        p.write_text(text.replace(old, new, 1))
    return run


def edit_npz(name: str, fn: Callable[[dict[str, np.ndarray]], Any]) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        p = w / name
        with np.load(p, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
        fn(arrays)
        with open(p, "wb") as f:
            np.savez(f, **arrays)
    return run


def npz(name: str, **arrays: Any) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        with open(w / name, "wb") as f:
            np.savez(f, **arrays)
    return run


def npy(name: str, arr: Any) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        with open(w / name, "wb") as f:
            np.save(f, np.asarray(arr))
    return run


def truncate(name: str, keep: float = 0.5) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        p = w / name
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])
    return run


def random_bytes(name: str, n: int = 4096) -> Callable[[Path], None]:
    return write(name, np.random.default_rng(11).integers(0, 256, n, dtype=np.uint8).tobytes())


def mkdir(name: str) -> Callable[[Path], None]:
    return lambda w: (w / name).mkdir(parents=True, exist_ok=True)


def symlink(name: str, target: str) -> Callable[[Path], None]:
    return lambda w: (w / name).symlink_to(target)


def move(src: str, dst: str) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        (w / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(w / src), str(w / dst))
    return run


def save_net(name: str, **kw: Any) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        from spikeforge.qnet import save_qnet

        save_qnet(tiny_qnet(name=name, **kw), w / name)
    return run


def rename_layer(old: str, new: Any) -> Callable[[Path], None]:
    """Rename a layer in the QNet YAML and (for a string name) its NPZ arrays too."""
    def run(w: Path) -> None:
        def doc_fn(d):
            for rec in d["layers"]:
                if rec["name"] == old:
                    rec["name"] = new
        edit_yaml("net.qnet.yaml", doc_fn)(w)
        if isinstance(new, str):
            def arr_fn(a):
                for k in list(a):
                    if k.startswith(old + "."):
                        a[new + k[len(old):]] = a.pop(k)
            edit_npz("net.qnet.npz", arr_fn)(w)
    return run


def qset(dotted: str, value: Any) -> Callable[[Path], None]:
    return set_yaml("net.qnet.yaml", dotted, value)


def qweights(layer: str, value: Any) -> Callable[[Path], None]:
    def fn(a):
        a[f"{layer}.weights"] = np.asarray(value)
    return edit_npz("net.qnet.npz", fn)


def readonly_dir(name: str) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        d = w / name
        d.mkdir()
        d.chmod(0o555)
    return run


def chmod_back(root: Path) -> None:
    """Make every folder under ``root`` writable again (so pytest can clean up)."""
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.chmod(0o755)


NOBODY = 65534


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def nobody_workspace(template: Path) -> Path:
    """A copy of the workspace that user ``nobody`` owns (for cases run as nobody by root).

    It lies in a fresh folder under /tmp (pytest's folders are private to root), beside a
    home folder of nobody's own, so that no cache the tools write lands in the workspace.
    """
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="spikeforge-hostile-", dir="/tmp"))
    top.chmod(0o755)
    shutil.copytree(template, top / "ws", symlinks=True)
    (top / "home").mkdir()
    return top / "ws"


def _cannot_drop_root() -> str | None:
    if is_root() and shutil.which("setpriv") is None:
        return "running as root without setpriv: a read-only mode does not stop root"
    return None


def give_to_nobody(top: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), NOBODY, NOBODY)
    os.lchown(top, NOBODY, NOBODY)


def _no(program: str) -> Callable[[], str | None]:
    return lambda: None if shutil.which(program) else f"{program} is not on PATH"


# --- documents that attack the YAML reader


def bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" flow sequence: ``width ** levels`` leaves through aliases."""
    parts = ["&l0 [" + ", ".join(["1"] * width) + "]"]
    for k in range(1, levels):
        parts.append(f"&l{k} [" + ", ".join([f"*l{k - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def deep(depth: int = 20000) -> str:
    return "[" * depth + "1" + "]" * depth


NON_UTF8 = b"# caf\xe9 \xff\xfe not UTF-8 in a comment\n"


# ----------------------------------------------------------------------------- the base commands

BASE: dict[str, tuple[str, ...]] = {
    "run": ("run", "cfg.yaml", "--out", "out"),
    "train": ("train", "train.yaml", "--out", "out", "--quiet"),
    "rtl": ("rtl", "net.qnet.yaml", "--out", "out"),
    "sim": ("sim", "net.qnet.yaml", "--inputs", "in.npz", "--out", "out"),
    "verify": ("verify", "net.qnet.yaml", "--inputs", "in.npz", "--out", "out"),
    "map": ("map", "net.qnet.yaml", "--hw", "hw.yaml", "--out", "out", "--samples", "4",
            "--moves", "50"),
    "dse": ("dse", "study.yaml", "--out", "out", "--workers", "0"),
    "build": ("build", "net.qnet.yaml", "--board", "icebreaker", "--out", "out", "--quiet"),
    "board run": ("board", "run", "net.qnet.yaml", "--board", "icebreaker", "--inputs", "in.npz",
                  "--sim", "--out", "out"),
}

# the input file each command reads (an --out that is or holds it must be refused)
MAIN_INPUT = {"run": "cfg.yaml", "train": "train.yaml", "dse": "study.yaml"}


def with_opt(argv: tuple[str, ...], opt: str, value: str | None) -> tuple[str, ...]:
    """``argv`` with option ``opt`` set to ``value`` (replaced or appended; None: removed)."""
    a = list(argv)
    if opt in a:
        i = a.index(opt)
        flag = i + 1 >= len(a) or a[i + 1].startswith("--")
        del a[i: i + (1 if flag else 2)]
    if value is not None:
        a += [opt, value]
    return tuple(a)


def with_flag(argv: tuple[str, ...], flag: str) -> tuple[str, ...]:
    return argv if flag in argv else (*argv, flag)


def swap(argv: tuple[str, ...], old: str, new: str) -> tuple[str, ...]:
    return tuple(new if a == old else a for a in argv)


# ----------------------------------------------------------------------------- case generators

QN = "net.qnet"  # names both QNet files (the line must name the one at fault)


def qnet_cases() -> list[Case]:
    """A damaged QNet, read by ``rtl`` (the YAML and NPZ of the QNet format)."""
    rtl = BASE["rtl"]
    c: list[tuple[str, Callable[[Path], None], tuple[str, ...]]] = [
        # YAML syntax and reader attacks
        ("yaml-syntax", append("net.qnet.yaml", "layers: [\n"), (QN,)),
        ("yaml-tab-indent", write("net.qnet.yaml", "format: qnet/1\n\ttimesteps: 3\n"), (QN,)),
        ("yaml-non-utf8-comment", append("net.qnet.yaml", NON_UTF8), (QN,)),
        ("yaml-nul-byte", append("net.qnet.yaml", b"name: a\x00b\n"), (QN,)),
        ("yaml-list-doc", write("net.qnet.yaml", "- 1\n- 2\n"), (QN,)),
        ("yaml-scalar-doc", write("net.qnet.yaml", "42\n"), (QN,)),
        ("yaml-empty", write("net.qnet.yaml", ""), (QN,)),
        ("yaml-two-docs", append("net.qnet.yaml", "---\nformat: qnet/1\n"), (QN,)),
        ("yaml-python-tag", append("net.qnet.yaml", "meta: !!python/object/apply:os.system "
                                                    "['echo pwned > pwned.txt']\n"), (QN,)),
        ("duplicate-timesteps", append("net.qnet.yaml", "timesteps: 4\n"), (QN, "timesteps")),
        ("duplicate-layer-key", replace_text("net.qnet.yaml", "  n_in: 6\n",
                                             "  n_in: 6\n  n_in: 6\n"), (QN, "n_in")),
        ("typo-tiemsteps", append("net.qnet.yaml", "tiemsteps: 3\n"), (QN, "tiemsteps")),
        ("unknown-input-key", qset("input.colour", "red"), (QN, "colour")),
        ("unknown-layer-key", qset("layers.0.colour", "red"), (QN, "colour")),
        ("format-missing", edit_yaml("net.qnet.yaml", lambda d: d.pop("format")), (QN, "format")),
        ("format-qnet2", qset("format", "qnet/2"), (QN, "format")),
        # top-level fields
        ("timesteps-string", qset("timesteps", "3"), (QN, "timesteps")),
        ("timesteps-float", qset("timesteps", 3.5), (QN, "timesteps")),
        ("timesteps-bool", qset("timesteps", True), (QN, "timesteps")),
        ("timesteps-zero", qset("timesteps", 0), (QN, "timesteps")),
        ("timesteps-negative", qset("timesteps", -1), (QN, "timesteps")),
        ("timesteps-huge", qset("timesteps", 10**9), (QN, "timesteps")),
        ("timesteps-null", qset("timesteps", None), (QN, "timesteps")),
        ("timesteps-missing", del_yaml("net.qnet.yaml", "timesteps"), (QN, "timesteps")),
        ("name-list", qset("name", [1, 2]), (QN, "name")),
        ("name-bad-identifier", qset("name", "my net; drop"), (QN, "name")),
        ("meta-string", qset("meta", "a string"), (QN, "meta")),
        ("meta-list", qset("meta", [1, 2]), (QN, "meta")),
        # input
        ("input-missing", del_yaml("net.qnet.yaml", "input"), (QN, "input")),
        ("input-scalar", qset("input", 6), (QN, "input")),
        ("input-size-zero", qset("input.size", 0), (QN, "size")),
        ("input-size-string", qset("input.size", "6"), (QN, "size")),
        ("input-size-float", qset("input.size", 6.0), (QN, "size")),
        ("input-size-mismatch", qset("input.size", 7), (QN, "n_in|size")),
        ("input-shape-vs-size", qset("input.shape", [4, 4]), (QN, "shape")),
        ("input-shape-zero", qset("input.shape", [0, 6]), (QN, "shape")),
        ("input-shape-string", qset("input.shape", "2x3"), (QN, "shape")),
        ("input-shape-bool", qset("input.shape", [True, 6]), (QN, "shape")),
        ("input-encoding-unknown", qset("input.encoding", "morse"), (QN, "encoding")),
        # layers
        ("layers-empty", qset("layers", []), (QN, "layers")),
        ("layers-mapping", qset("layers", {"hid": 1}), (QN, "layers")),
        ("layers-scalar-item", qset("layers.1", 5), (QN, "layer")),
        ("layer-name-underscore", rename_layer("hid", "_"), (QN, "name")),
        ("layer-name-unicode", rename_layer("hid", "ñandú"), (QN, "name")),
        ("layer-name-list", rename_layer("hid", ["a", "b"]), (QN, "name")),
        ("layer-name-empty", rename_layer("hid", ""), (QN, "name")),
        ("layer-name-digit", rename_layer("hid", "1st"), (QN, "name")),
        ("layer-name-duplicate", rename_layer("readout", "hid"), (QN, "hid|name")),
        ("n_in-string", qset("layers.0.n_in", "6"), (QN, "n_in")),
        ("n_in-zero", qset("layers.0.n_in", 0), (QN, "n_in")),
        ("n_out-float", qset("layers.0.n_out", 4.0), (QN, "n_out")),
        ("n_out-vs-weights", qset("layers.1.n_out", 4), (QN, "n_out|weights")),
        ("weight_bits-1", qset("layers.0.weight_bits", 1), (QN, "weight_bits")),
        ("weight_bits-17", qset("layers.0.weight_bits", 17), (QN, "weight_bits")),
        ("weight_bits-string", qset("layers.0.weight_bits", "4"), (QN, "weight_bits")),
        ("weight_bits-null", qset("layers.0.weight_bits", None), (QN, "weight_bits")),
        ("membrane_bits-64", qset("layers.0.membrane_bits", 64), (QN, "membrane_bits")),
        ("threshold-zero", qset("layers.0.threshold", 0), (QN, "threshold")),
        ("threshold-huge", qset("layers.0.threshold", 2**40), (QN, "threshold")),
        ("threshold-string", qset("layers.0.threshold", "high"), (QN, "threshold")),
        ("threshold-float", qset("layers.0.threshold", 1.5), (QN, "threshold")),
        ("threshold-per-neuron-missing", qset("layers.0.threshold", "per-neuron"),
         (QN, "threshold")),
        ("leak_shifts-string", qset("layers.0.leak_shifts", "3"), (QN, "leak_shifts")),
        ("leak_shifts-zero", qset("layers.0.leak_shifts", [0]), (QN, "leak_shifts")),
        ("leak_shifts-duplicate", qset("layers.0.leak_shifts", [3, 3]), (QN, "leak_shifts")),
        ("leak_shifts-too-wide", qset("layers.0.leak_shifts", [40]), (QN, "leak_shifts")),
        ("reset-unknown", qset("layers.0.reset", "sometimes"), (QN, "reset")),
        ("fire-string", qset("layers.0.fire", "yes"), (QN, "fire")),
        ("fire-false-hidden", chain(qset("layers.0.fire", False), qset("layers.0.reset", "none")),
         (QN, "fire")),
        ("kind-conv", qset("layers.0.kind", "conv"), (QN, "kind")),
        ("bias-without-array", qset("layers.0.bias", True), (QN, "bias")),
        # the NPZ
        ("npz-missing", remove("net.qnet.npz"), (QN,)),
        ("yaml-missing", remove("net.qnet.yaml"), (QN,)),
        ("npz-truncated", truncate("net.qnet.npz"), (QN,)),
        ("npz-random-bytes", random_bytes("net.qnet.npz"), (QN,)),
        ("npz-empty-file", write("net.qnet.npz", b""), (QN,)),
        ("npz-is-a-folder", chain(remove("net.qnet.npz"), mkdir("net.qnet.npz")), (QN,)),
        ("npz-member-garbage", _npz_member_garbage, (QN,)),
        ("npz-weights-missing", edit_npz("net.qnet.npz", lambda a: a.pop("hid.weights")),
         (QN, "weights")),
        ("weights-shape", qweights("hid", np.zeros((4, 5), dtype=np.int64)), (QN, "weights")),
        ("weights-1d", qweights("hid", np.zeros(24, dtype=np.int64)), (QN, "weights")),
        ("weights-scalar", qweights("hid", np.int64(1)), (QN, "weights")),
        ("weights-fraction", qweights("hid", np.full((4, 6), 0.5)), (QN, "weights")),
        ("weights-nan", qweights("hid", np.full((4, 6), np.nan)), (QN, "weights")),
        ("weights-inf", qweights("hid", np.full((4, 6), np.inf)), (QN, "weights")),
        ("weights-out-of-range", qweights("hid", np.full((4, 6), 100)), (QN, "weights")),
        ("weights-uint64-max", qweights("hid", np.full((4, 6), 2**64 - 1, dtype=np.uint64)),
         (QN, "weights")),
        ("weights-float-huge", qweights("hid", np.full((4, 6), 1e30)), (QN, "weights")),
        ("weights-complex", qweights("hid", np.ones((4, 6), dtype=np.complex128)),
         (QN, "weights")),
        ("weights-strings", qweights("hid", np.full((4, 6), "1")), (QN, "weights")),
        ("weights-bool", qweights("hid", np.ones((4, 6), dtype=bool)), (QN, "weights")),
    ]
    cases = [Case(f"rtl-qnet-{i}", rtl, names, m) for i, m, names in c]
    # the reader attacks that need a real process (memory, recursion)
    cases += [
        Case("rtl-qnet-alias-bomb-input-shape", rtl, (QN,),
             replace_text("net.qnet.yaml", "  shape:\n  - 2\n  - 3\n",
                          f"  shape: {bomb()}\n"), proc=True),
        Case("rtl-qnet-deep-nesting", rtl, (QN,), append("net.qnet.yaml", f"meta: {deep()}\n"),
             proc=True),
    ]
    return cases


def _npz_member_garbage(w: Path) -> None:
    import zipfile

    p = w / "net.qnet.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hid.weights.npy", b"\x93NUMPY garbage that is no array header")
        z.writestr("readout.weights.npy", b"not numpy at all")


def rtl_option_cases() -> list[Case]:
    b = BASE["rtl"]
    m = with_opt(b, "--mapping", "mapping.yaml")
    mp = "mapping.yaml"
    return [
        Case("rtl-lanes-zero", with_opt(b, "--lanes", "0"), ("--lanes",)),
        Case("rtl-lanes-negative", with_opt(b, "--lanes", "-3"), ("--lanes",)),
        Case("rtl-lanes-not-int", with_opt(b, "--lanes", "abc"), ("--lanes",)),
        Case("rtl-lanes-float", with_opt(b, "--lanes", "2.5"), ("--lanes",)),
        Case("rtl-mapping-missing", with_opt(b, "--mapping", "nope.yaml"), ("nope.yaml",)),
        Case("rtl-mapping-folder", with_opt(b, "--mapping", "user"), ("user", "--mapping|user")),
        Case("rtl-mapping-syntax", m, (mp,), append(mp, "tiles: [\n")),
        Case("rtl-mapping-non-utf8", m, (mp,), append(mp, NON_UTF8)),
        Case("rtl-mapping-duplicate-key", m, (mp, "format"), append(mp, "format: mapping/1\n")),
        Case("rtl-mapping-unknown-key", m, (mp, "colour"), append(mp, "colour: red\n")),
        Case("rtl-mapping-format", m, (mp, "format"), set_yaml(mp, "format", "mapping/9")),
        Case("rtl-mapping-lanes-fraction", m, (mp, "neuron_lanes"),
             set_yaml(mp, "hardware.tile.neuron_lanes", 3.7)),
        Case("rtl-mapping-lanes-string", m, (mp, "neuron_lanes"),
             set_yaml(mp, "hardware.tile.neuron_lanes", "four")),
        Case("rtl-mapping-tiles-empty", m, (mp, "tiles"), set_yaml(mp, "tiles", [])),
        Case("rtl-mapping-axons-out-of-range", m, (mp, "axons"),
             edit_yaml(mp, lambda d: [t.__setitem__("axons", [[0, 99]]) for t in d["tiles"]])),
        Case("rtl-mapping-axons-negative", m, (mp, "axons"),
             edit_yaml(mp, lambda d: d["tiles"][0].__setitem__("axons", [[-5, 6]]))),
        Case("rtl-mapping-axons-not-ranges", m, (mp, "axons"),
             edit_yaml(mp, lambda d: d["tiles"][0].__setitem__("axons", "all"))),
        Case("rtl-mapping-neurons-out-of-range", m, (mp, "neurons"),
             edit_yaml(mp, lambda d: d["tiles"][0].__setitem__("neurons", [0, 1000]))),
        Case("rtl-mapping-unknown-layer", m, (mp, "layer|tiles"),
             edit_yaml(mp, lambda d: d["tiles"][0].__setitem__("layer", "ghost"))),
        Case("rtl-mapping-list-doc", m, (mp,), write(mp, "- 1\n")),
        Case("rtl-mapping-axons-huge-range", m, (mp, "axons"),
             edit_yaml(mp, lambda d: d["tiles"][0].__setitem__("axons", [[0, 10**12]])),
             proc=True),
        Case("rtl-mapping-alias-bomb-axons", m, (mp,),
             _bomb_in_mapping, proc=True),
    ]


def _bomb_in_mapping(w: Path) -> None:
    p = w / "mapping.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["tiles"][0]["axons"] = "@BOMB@"
    p.write_text(yaml.safe_dump(doc, sort_keys=False).replace("'@BOMB@'", bomb()))


def run_cases() -> list[Case]:
    b = BASE["run"]
    f = "cfg.yaml"

    def s(dotted, value):
        return set_yaml(f, dotted, value)

    c = [
        ("yaml-syntax", append(f, "model: [16,\n"), (f,)),
        ("non-utf8-comment", append(f, NON_UTF8), (f,)),
        ("duplicate-key", append(f, "model:\n  bias: true\n"), (f, "model")),
        ("unknown-top-key", append(f, "sead: 1\n"), (f, "sead")),
        ("unknown-nested-key", s("model.hiden", [16]), (f, "hiden")),
        ("list-doc", write(f, "- a\n"), (f,)),
        ("python-tag", append(f, "name: !!python/name:os.system\n"), (f,)),
        ("seed-negative", s("seed", -1), (f, "seed")),
        ("seed-2-64", s("seed", 2**64), (f, "seed")),
        ("seed-string", s("seed", "zero"), (f, "seed")),
        ("seed-float", s("seed", 1.5), (f, "seed")),
        ("timesteps-huge", s("encoding.timesteps", 10**9), (f, "timesteps")),
        ("timesteps-zero", s("encoding.timesteps", 0), (f, "timesteps")),
        ("layers-empty", s("model.layers", []), (f, "layers")),
        ("dense-zero", s("model.layers.0.dense", 0), (f, "dense")),
        ("dense-huge", s("model.layers.0.dense", 10**9), (f, "dense")),
        ("dense-string", s("model.layers.0.dense", "16"), (f, "dense")),
        ("layer-unknown-kind", s("model.layers.0", {"lstm": 16}), (f, "layers")),
        ("input-shape-not-the-data", s("model.input_shape", [784]), (f, "input_shape")),
        ("classes-too-few", s("model.layers.1.dense", 4), (f, "layers")),
        ("encoding-direct", s("encoding.kind", "direct"), (f, "kind")),
        ("epochs-zero", s("train.epochs", 0), (f, "epochs")),
        ("epochs-bool", s("train.epochs", True), (f, "epochs")),
        ("batch-negative", s("train.batch_size", -1), (f, "batch_size")),
        ("lr-nan", replace_text(f, "train:\n", "train:\n  lr: .nan\n"), (f, "lr")),
        ("lr-inf", replace_text(f, "train:\n", "train:\n  lr: .inf\n"), (f, "lr")),
        ("test-limit-zero", s("data.test_limit", 0), (f, "test_limit")),
        ("idx-without-path", s("data.dataset", "idx"), (f, "data")),
        ("dataset-unknown", s("data.dataset", "imagenet"), (f, "dataset")),
        ("weight-bits-17", s("quantize.weight_bits", 17), (f, "weight_bits")),
        ("rtl-samples-zero", s("rtl.samples", 0), (f, "samples")),
        ("stall-seed-negative", s("rtl.stall_seed", -1), (f, "stall_seed")),
        ("stall-seed-2-64", s("rtl.stall_seed", 2**64), (f, "stall_seed")),
        ("simulator-unknown", s("rtl.simulator", "modelsim"), (f, "simulator")),
        ("name-unicode", s("name", "ñandú"), (f, "name")),
        ("leak-shifts-zero", s("model.neuron.leak_shifts", [0]), (f, "leak_shifts")),
        ("threshold-negative", s("model.neuron.threshold", -1.0), (f, "threshold")),
    ]
    cases = [Case(f"run-{i}", b, names, m) for i, m, names in c]
    cases += [
        Case("run-config-missing", swap(b, f, "nope.yaml"), ("nope.yaml",)),
        Case("run-config-is-folder", swap(b, f, "user"), ("user",)),
        Case("run-config-random-bytes", b, (f,), random_bytes(f)),
        Case("run-alias-bomb-layers", b, (f,),
             replace_text(f, "- dense: 16", f"- dense: {bomb()}"), proc=True),
        Case("run-deep-nesting", b, (f,), replace_text(f, "- dense: 16", f"- dense: {deep()}"),
             proc=True),
    ]
    return cases


def train_cases() -> list[Case]:
    b = BASE["train"]
    f = "train.yaml"

    def s(dotted, value):
        return set_yaml(f, dotted, value)

    c = [
        ("yaml-syntax", append(f, "model: {\n"), (f,)),
        ("non-utf8-comment", append(f, NON_UTF8), (f,)),
        ("duplicate-key", append(f, "seed: 1\n"), (f, "seed")),
        ("unknown-top-key", append(f, "epochz: 3\n"), (f, "epochz")),
        ("unknown-neuron-key", s("model.neuron.colour", "red"), (f, "colour")),
        ("seed-negative", s("seed", -1), (f, "seed")),
        ("seed-2-64", s("seed", 2**64), (f, "seed")),
        ("model-missing", del_yaml(f, "model"), (f, "model")),
        ("layers-empty", s("model.layers", []), (f, "layers")),
        ("layer-dense-zero", s("model.layers.0", {"dense": 0}), (f, "dense")),
        ("layer-unknown-kind", s("model.layers.0", {"lstm": 8}), (f, "layers")),
        ("layer-dense-string", s("model.layers.0", {"dense": "eight"}), (f, "dense")),
        ("last-layer-dropout", s("model.layers.1", {"dropout": 0.1}), (f, "layers|model")),
        ("input-shape-zero", s("model.input_shape", [0]), (f, "input_shape")),
        ("input-shape-4d", s("model.input_shape", [1, 2, 3, 4]), (f, "input_shape")),
        ("input-shape-vs-data", s("model.input_shape", [63]), (f, "input_shape")),
        ("timesteps-huge", s("encoding.timesteps", 10**9), (f, "timesteps")),
        ("epochs-zero", s("train.epochs", 0), (f, "epochs")),
        ("lr-negative", s("train.lr", -1.0), (f, "lr")),
        ("eval-timesteps-empty", s("eval.timesteps", []), (f, "timesteps")),
        ("export-weight-bits-1", s("export", {"weight_bits": 1}), (f, "weight_bits")),
        ("dataset-unknown", s("data.dataset", "imagenet"), (f, "dataset")),
        ("idx-without-path", s("data.dataset", "idx"), (f, "path|dataset")),
        ("threads-zero", s("threads", 0), (f, "threads")),
        ("neuron-both-leaks", s("model.neuron.beta", 0.9), (f, "neuron|beta|leak_shifts")),
        ("list-doc", write(f, "- 1\n"), (f,)),
    ]
    cases = [Case(f"train-{i}", b, names, m) for i, m, names in c]
    cases += [
        Case("train-config-missing", swap(b, f, "nope.yaml"), ("nope.yaml",)),
        Case("train-resume-without-checkpoint", with_flag(b, "--resume"),
             ("checkpoint|--resume",)),
        Case("train-alias-bomb-input-shape", b, (f,),
             replace_text(f, "input_shape: [64]", f"input_shape: {bomb()}"), proc=True),
    ]
    return cases


def dse_cases() -> list[Case]:
    b = BASE["dse"]
    f = "study.yaml"

    def s(dotted, value):
        return set_yaml(f, dotted, value)

    c = [
        ("yaml-syntax", append(f, "parameters: [\n"), (f,)),
        ("non-utf8-comment", append(f, NON_UTF8), (f,)),
        ("duplicate-key", append(f, "seed: 3\n"), (f, "seed")),
        ("unknown-top-key", append(f, "budgett: 3\n"), (f, "budgett")),
        ("unknown-base-key", s("base.hiddn", [8]), (f, "hiddn")),
        ("seed-negative", s("seed", -1), (f, "seed")),
        ("seed-2-64", s("seed", 2**64), (f, "seed")),
        ("base-seed-negative", s("base.seed", -1), (f, "seed")),
        ("parameters-empty", s("parameters", {}), (f, "parameters")),
        ("parameter-unknown-setting", s("parameters.colour", {"choices": [1]}), (f, "colour")),
        ("parameter-choice-out-of-range", s("parameters.weight_bits", {"choices": [99]}),
         (f, "weight_bits")),
        ("parameter-empty-range", s("parameters.weight_bits", {"low": 8, "high": 2}),
         (f, "weight_bits")),
        ("parameter-choices-empty", s("parameters.weight_bits", {"choices": []}),
         (f, "weight_bits|choices")),
        ("parameter-choices-string", s("parameters.weight_bits", {"choices": "abc"}),
         (f, "choices|weight_bits")),
        ("parameter-timesteps-huge", s("parameters.timesteps", {"choices": [10**9]}),
         (f, "timesteps")),
        ("objective-goal-unknown", s("objectives.accuracy", "maximize"), (f, "accuracy")),
        ("objective-unknown-metric", s("objectives.happiness", "max"), (f, "happiness")),
        ("objectives-empty", s("objectives", {}), (f, "objectives")),
        ("constraint-unknown-metric", s("constraints", [{"metric": "luck", "min": 1}]),
         (f, "luck|metric")),
        ("search-method-unknown", s("search.method", "bogus"), (f, "method")),
        ("search-budget-zero", s("search.budget", 0), (f, "budget")),
        ("search-budget-huge", s("search.budget", 10**9), (f, "budget")),
        ("base-hidden-zero", s("base.hidden", [0]), (f, "hidden")),
        ("base-timesteps-huge", s("base.timesteps", 10**9), (f, "timesteps")),
        ("list-doc", write(f, "- 1\n"), (f,)),
    ]
    cases = [Case(f"dse-{i}", b, names, m) for i, m, names in c]
    cases += [
        Case("dse-study-missing", swap(b, f, "nope.yaml"), ("nope.yaml",)),
        Case("dse-workers-negative", with_opt(b, "--workers", "-1"), ("--workers",)),
        Case("dse-workers-not-int", with_opt(b, "--workers", "many"), ("--workers",)),
        Case("dse-cluster-not-an-address", with_opt(b, "--cluster", "not an address"),
             ("--cluster",)),
        Case("dse-alias-bomb-choices", b, (f,),
             replace_text(f, "timesteps: {choices: [2, 3]}", f"timesteps: {{choices: {bomb()}}}"),
             proc=True),
        Case("dse-deep-nesting", b, (f,),
             replace_text(f, "timesteps: {choices: [2, 3]}", f"timesteps: {{choices: {deep()}}}"),
             proc=True),
    ]
    return cases


def map_cases() -> list[Case]:
    b = BASE["map"]
    h = "hw.yaml"

    def s(dotted, value):
        return set_yaml(h, dotted, value)

    c = [
        ("hw-yaml-syntax", append(h, "mesh: {rows: 4,\n"), (h,)),
        ("hw-non-utf8-comment", append(h, NON_UTF8), (h,)),
        ("hw-duplicate-key", append(h, "tiles: 8\n"), (h, "tiles")),
        ("hw-unknown-key", append(h, "colour: red\n"), (h, "colour")),
        ("hw-unknown-tile-key", s("tile.colour", "red"), (h, "colour")),
        ("hw-mesh-256x256", chain(s("mesh", {"rows": 256, "cols": 256}),
                                  del_yaml(h, "tiles")), (h, "mesh")),
        ("hw-mesh-zero", s("mesh.rows", 0), (h, "rows")),
        ("hw-tile-axons-zero", s("tile.axons", 0), (h, "axons")),
        ("hw-tile-axons-string", s("tile.axons", "many"), (h, "axons")),
        ("hw-tile-neurons-huge", s("tile.neurons", 1 << 40), (h, "neurons")),
        ("hw-neuron-lanes-fraction", s("tile.neuron_lanes", 3.7), (h, "neuron_lanes")),
        ("hw-neuron-lanes-over-neurons", s("tile.neuron_lanes", 1000), (h, "neuron_lanes")),
        ("hw-synapse-bits-one", s("tile.synapse_memory_bits", 1), (h, "synapse_memory_bits")),
        ("hw-tiles-over-mesh", s("tiles", 17), (h, "tiles")),
        ("hw-io-inside", s("io", {"row": 1, "col": 1}), (h, "io")),
        ("hw-clock-zero", s("clock_mhz", 0), (h, "clock_mhz")),
        ("hw-clock-nan", replace_text(h, "clock_mhz: 100", "clock_mhz: .nan"), (h, "clock_mhz")),
        ("hw-hop-energy-inf", replace_text(h, "hop_energy_pj: 2.0", "hop_energy_pj: .inf"),
         (h, "hop_energy_pj")),
        ("hw-hop-energy-negative", s("noc.hop_energy_pj", -1.0), (h, "hop_energy_pj")),
        ("hw-name-bad", s("name", "my chip!"), (h, "name")),
        ("hw-list-doc", write(h, "- 1\n"), (h,)),
        ("hw-too-small-for-net",
         write(h, "name: tiny\nmesh: {rows: 1, cols: 1}\ntiles: 1\n"
                  "tile: {axons: 2, neurons: 2, synapse_memory_bits: 32, neuron_lanes: 1}\n"),
         (h, "tiles|fit")),
    ]
    cases = [Case(f"map-{i}", b, names, m) for i, m, names in c]
    cases += [
        Case("map-hw-missing", swap(b, h, "nope.yaml"), ("nope.yaml",)),
        Case("map-seed-negative", with_opt(b, "--seed", "-1"), ("--seed",)),
        Case("map-seed-2-64", with_opt(b, "--seed", str(2**64)), ("--seed",)),
        Case("map-samples-zero", with_opt(b, "--samples", "0"), ("--samples",)),
        Case("map-samples-negative", with_opt(b, "--samples", "-5"), ("--samples",)),
        Case("map-moves-negative", with_opt(b, "--moves", "-1"), ("--moves",)),
        Case("map-moves-huge", with_opt(b, "--moves", str(10**9)), ("--moves",)),
        Case("map-rate-above-one", with_opt(b, "--rate", "1.5"), ("--rate",)),
        Case("map-rate-nan", with_opt(b, "--rate", "nan"), ("--rate",)),
        Case("map-method-unknown", with_opt(b, "--method", "magic"), ("--method",)),
        Case("map-inputs-missing", with_opt(b, "--inputs", "nope.npy"), ("nope.npy",)),
        Case("map-inputs-random-bytes", with_opt(b, "--inputs", "in.npy"), ("in.npy",),
             random_bytes("in.npy")),
        Case("map-inputs-wrong-shape", with_opt(b, "--inputs", "in.npy"), ("in.npy",),
             npy("in.npy", np.zeros((4, QNET_T, N_IN + 1), dtype=np.uint8))),
        Case("map-inputs-zero-samples", with_opt(b, "--inputs", "in.npy"), ("in.npy",),
             npy("in.npy", np.zeros((0, QNET_T, N_IN), dtype=np.uint8))),
        Case("map-inputs-spikes-two", with_opt(b, "--inputs", "in.npy"), ("in.npy",),
             npy("in.npy", np.full((4, QNET_T, N_IN), 2, dtype=np.uint8))),
        Case("map-inputs-intensity-nan", with_opt(b, "--inputs", "in.npy"), ("in.npy",),
             npy("in.npy", np.full((4, N_IN), np.nan))),
        Case("map-inputs-strings", with_opt(b, "--inputs", "in.npy"), ("in.npy",),
             npy("in.npy", np.full((4, N_IN), "x"))),
        Case("map-qnet-weights-uint64", b, (QN, "weights"),
             qweights("hid", np.full((4, 6), 2**64 - 1, dtype=np.uint64))),
        Case("map-qnet-missing", swap(b, "net.qnet.yaml", "gone.qnet.yaml"), ("gone.qnet",)),
        Case("map-samples-huge", with_opt(b, "--samples", str(10**9)), ("--samples",),
             proc=True),
        Case("map-qnet-timesteps-huge", b, (QN, "timesteps"), qset("timesteps", 10**9),
             proc=True),
        Case("map-hw-alias-bomb-tile-axons", b, (h,),
             replace_text(h, "axons: 256", f"axons: {bomb()}"), proc=True),
        Case("map-hw-deep-nesting", b, (h,), replace_text(h, "axons: 256", f"axons: {deep()}"),
             proc=True),
    ]
    return cases


def sim_cases() -> list[Case]:
    cases: list[Case] = []
    i = "in.npz"
    for cmd in ("sim", "verify"):
        b = BASE[cmd]
        c = [
            ("inputs-missing", with_opt(b, "--inputs", "nope.npz"), ("nope.npz",), None),
            ("inputs-random-bytes", b, (i,), random_bytes(i)),
            ("inputs-truncated", b, (i,), truncate(i)),
            ("inputs-no-arrays", b, (i, "spikes"), npz(i, other=np.zeros(3))),
            ("spikes-wrong-shape", b, (i, "spikes"),
             npz(i, spikes=np.zeros((4, QNET_T, N_IN + 1), dtype=np.uint8))),
            ("spikes-2d", b, (i, "spikes"), npz(i, spikes=np.zeros((4, N_IN), dtype=np.uint8))),
            ("spikes-values-two", b, (i, "spikes"),
             npz(i, spikes=np.full((4, QNET_T, N_IN), 2, dtype=np.uint8))),
            ("spikes-float", b, (i, "spikes"), npz(i, spikes=np.full((4, QNET_T, N_IN), 0.5))),
            ("spikes-zero-samples", b, (i, "spikes"),
             npz(i, spikes=np.zeros((0, QNET_T, N_IN), dtype=np.uint8))),
            ("pixels-wrong-shape", b, (i, "pixels"),
             npz(i, pixels=np.zeros((4, N_IN + 2), dtype=np.uint8))),
            ("pixels-over-255", b, (i, "pixels"),
             npz(i, pixels=np.full((4, N_IN), 300, dtype=np.uint16))),
            ("seeds-wrong-length", b, (i, "seeds"),
             npz(i, pixels=np.zeros((4, N_IN), dtype=np.uint8), seeds=np.arange(3))),
            ("seeds-negative", b, (i, "seeds"),
             npz(i, pixels=np.zeros((4, N_IN), dtype=np.uint8), seeds=-np.arange(1, 5))),
        ]
        cases += [Case(f"{cmd}-{n}", a, names, m) for n, a, names, m in c]
    b = BASE["sim"]
    cases += [
        Case("sim-simulator-unknown", with_opt(b, "--simulator", "modelsim"), ("--simulator",)),
        Case("sim-mode-unknown", with_opt(b, "--mode", "turbo"), ("--mode",)),
        Case("sim-stall-seed-negative", (*with_opt(b, "--stall-seed", "-1"), "--mode", "cocotb"),
             ("--stall-seed",)),
        Case("sim-stall-seed-2-64", (*with_opt(b, "--stall-seed", str(2**64)), "--mode",
                                     "cocotb"), ("--stall-seed",)),
        Case("sim-stall-seed-not-int", with_opt(b, "--stall-seed", "x"), ("--stall-seed",)),
        Case("sim-lanes-zero", with_opt(b, "--lanes", "0"), ("--lanes",)),
        Case("sim-mapping-lanes-fraction", with_opt(b, "--mapping", "mapping.yaml"),
             ("mapping.yaml", "neuron_lanes"),
             set_yaml("mapping.yaml", "hardware.tile.neuron_lanes", 3.7)),
        Case("sim-qnet-npz-truncated", b, (QN,), truncate("net.qnet.npz")),
        Case("sim-qnet-timesteps-string", b, (QN, "timesteps"), qset("timesteps", "3")),
        Case("verify-qnet-weights-uint64", BASE["verify"], (QN, "weights"),
             qweights("hid", np.full((4, 6), 2**64 - 1, dtype=np.uint64))),
        Case("verify-seeds-over-32-bits", with_opt(BASE["verify"], "--inputs", "pix.npz"),
             ("pix.npz", "seeds"), npz("pix.npz", pixels=np.zeros((4, N_IN), dtype=np.uint8),
                                       seeds=np.full(4, 2**40, dtype=np.int64))),
    ]
    return cases


def build_cases() -> list[Case]:
    b = BASE["build"]
    return [
        Case("build-freq-negative", with_opt(b, "--freq", "-5"), ("--freq",)),
        Case("build-freq-nan", with_opt(b, "--freq", "nan"), ("--freq",)),
        Case("build-freq-inf", with_opt(b, "--freq", "inf"), ("--freq",)),
        Case("build-freq-zero", with_opt(b, "--freq", "0"), ("--freq",)),
        Case("build-freq-huge", with_opt(b, "--freq", "1e12"), ("--freq",)),
        Case("build-freq-not-number", with_opt(b, "--freq", "fast"), ("--freq",)),
        Case("build-board-unknown", with_opt(b, "--board", "arty-a7"), ("--board",)),
        Case("build-board-empty", with_opt(b, "--board", ""), ("--board",)),
        Case("build-baud-zero", with_opt(b, "--baud", "0"), ("--baud",)),
        Case("build-baud-negative", with_opt(b, "--baud", "-9600"), ("--baud",)),
        Case("build-buffer-one", with_opt(b, "--buffer", "1"), ("--buffer",)),
        Case("build-buffer-negative", with_opt(b, "--buffer", "-1"), ("--buffer",)),
        Case("build-buffer-huge", with_opt(b, "--buffer", str(10**9)), ("--buffer",)),
        Case("build-lanes-zero", with_opt(b, "--lanes", "0"), ("--lanes",)),
        Case("build-net-too-big", swap(b, "net.qnet.yaml", "big.qnet.yaml"),
             ("icebreaker|big.qnet",),
             save_net("big", hidden=256, n_in=128, fill=1, weight_bits=8)),
        Case("build-inputs-pixels-without-encoder", with_opt(b, "--inputs", "pix.npz"),
             ("pix.npz|--encoder",)),
        Case("build-inputs-wrong-shape", with_opt(b, "--inputs", "in.npz"), ("in.npz", "spikes"),
             npz("in.npz", spikes=np.zeros((4, QNET_T, N_IN + 1), dtype=np.uint8))),
        Case("build-qnet-weights-uint64", b, (QN, "weights"),
             qweights("hid", np.full((4, 6), 2**64 - 1, dtype=np.uint64))),
        Case("build-qnet-typo-key", b, (QN, "tiemsteps"), append("net.qnet.yaml",
                                                                 "tiemsteps: 3\n")),
        Case("build-mapping-lanes-fraction", with_opt(b, "--mapping", "mapping.yaml"),
             ("mapping.yaml", "neuron_lanes"),
             set_yaml("mapping.yaml", "hardware.tile.neuron_lanes", 3.7)),
    ]


def board_run_cases() -> list[Case]:
    b = BASE["board run"]
    i = "in.npz"
    rng = np.random.default_rng(5)
    spikes = (rng.random((4, QNET_T, N_IN)) < 0.4).astype(np.uint8)
    return [
        Case("board-run-samples-negative", with_opt(b, "--samples", "-1"), ("--samples",)),
        Case("board-run-samples-zero", with_opt(b, "--samples", "0"), ("--samples",)),
        Case("board-run-board-unknown", with_opt(b, "--board", "nexys"), ("--board",)),
        Case("board-run-buffer-one", with_opt(b, "--buffer", "1"), ("--buffer",)),
        Case("board-run-buffer-negative", with_opt(b, "--buffer", "-1"), ("--buffer",)),
        Case("board-run-baud-zero", with_opt(b, "--baud", "0"), ("--baud",)),
        Case("board-run-no-port-no-sim", tuple(a for a in b if a != "--sim"), ("--port",)),
        Case("board-run-port-missing-device",
             (*(a for a in b if a != "--sim"), "--port", "/nonexistent/ttyUSB9"),
             ("--port|ttyUSB9",)),
        Case("board-run-labels-wrong-length", b, (i, "labels"),
             npz(i, spikes=spikes, labels=np.arange(7))),
        Case("board-run-labels-float", b, (i, "labels"),
             npz(i, spikes=spikes, labels=np.full(4, 0.5))),
        Case("board-run-labels-out-of-range", b, (i, "labels"),
             npz(i, spikes=spikes, labels=np.full(4, 99))),
        Case("board-run-spikes-zero-samples", b, (i, "spikes"),
             npz(i, spikes=np.zeros((0, QNET_T, N_IN), dtype=np.uint8))),
        Case("board-run-spikes-wrong-dtype", b, (i, "spikes"),
             npz(i, spikes=np.full((4, QNET_T, N_IN), 0.5))),
        Case("board-run-inputs-truncated", b, (i,), truncate(i)),
        Case("board-run-pixels-without-encoder", with_opt(b, "--inputs", "pix.npz"),
             ("pix.npz|--encoder",)),
        Case("board-run-encoder-with-spikes", with_flag(b, "--encoder"), (i, "--encoder|spikes")),
        Case("board-run-qnet-typo-key", b, (QN, "tiemsteps"),
             append("net.qnet.yaml", "tiemsteps: 3\n")),
    ]


def out_cases() -> list[Case]:
    """An unusable --out, for every command that writes one."""
    cases: list[Case] = []
    for cmd, b in BASE.items():
        tag = cmd.replace(" ", "-")
        inp = MAIN_INPUT.get(cmd, "net.qnet.yaml")
        cases += [
            Case(f"{tag}-out-is-a-file", with_opt(b, "--out", "user/notes.txt"), ("--out",)),
            Case(f"{tag}-out-under-a-file", with_opt(b, "--out", "user/notes.txt/sub"),
                 ("--out",)),
            Case(f"{tag}-out-user-folder", with_opt(b, "--out", "user"), ("--out",)),
            Case(f"{tag}-out-symlink-to-user-folder", with_opt(b, "--out", "link"), ("--out",),
                 symlink("link", "user")),
            Case(f"{tag}-out-is-the-input", with_opt(b, "--out", inp), ("--out",)),
            Case(f"{tag}-out-holds-the-input", with_opt(b, "--out", "."), ("--out",)),
            Case(f"{tag}-out-read-only", with_opt(b, "--out", "ro/out"), ("--out",),
                 readonly_dir("ro"), unprivileged=True, skip=_cannot_drop_root),
        ]
    # a few more, on the commands that stage their output
    for cmd in ("rtl", "run", "map"):
        b = BASE[cmd]
        cases += [
            Case(f"{cmd}-out-empty-string", with_opt(b, "--out", ""), ("--out",)),
            Case(f"{cmd}-out-in-proc", with_opt(b, "--out", "/proc/spikeforge-hostile/out"),
                 ("--out",)),
            Case(f"{cmd}-out-symlink-loop", with_opt(b, "--out", "loop/x"), ("--out",),
                 symlink("loop", "loop")),
        ]
    # an --out that is a spikeforge-made folder holding the QNet it would be rewritten from
    cases.append(Case("rtl-out-own-folder-holds-qnet",
                      ("rtl", "made/net.qnet.yaml", "--out", "made"), ("--out",),
                      _own_folder_with_qnet))
    return cases


def _own_folder_with_qnet(w: Path) -> None:
    from spikeforge.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            _cwd(w):
        rc = main(["rtl", "net.qnet.yaml", "--out", "made"])
    if rc != 0:
        (w / "made").mkdir(exist_ok=True)
    shutil.copy(w / "net.qnet.yaml", w / "made" / "net.qnet.yaml")
    shutil.copy(w / "net.qnet.npz", w / "made" / "net.qnet.npz")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def argparse_cases() -> list[Case]:
    """Usage errors: one line too, naming the option."""
    c = [
        ("top-no-command", (), ("command|run",)),
        ("top-unknown-command", ("rtll", "net.qnet.yaml"), ("rtll",)),
        ("top-unknown-option", ("--colour", "rtl", "net.qnet.yaml", "--out", "out"),
         ("--colour",)),
        ("board-no-subcommand", ("board",), ("board_command|run|list",)),
        ("board-unknown-subcommand", ("board", "flash", "net.qnet.yaml"), ("flash",)),
    ]
    cases = [Case(f"argparse-{i}", a, names) for i, a, names in c]
    for cmd, b in BASE.items():
        tag = cmd.replace(" ", "-")
        words = 2 if cmd == "board run" else 1
        required = "--board" if cmd in ("build", "board run") else (
            "--hw" if cmd == "map" else "--inputs" if cmd in ("sim", "verify") else "--out")
        cases += [
            Case(f"argparse-{tag}-unknown-option", (*b, "--frobnicate"), ("--frobnicate",)),
            Case(f"argparse-{tag}-missing-{required[2:]}", with_opt(b, required, None),
                 (required,)),
            Case(f"argparse-{tag}-missing-positional", tuple(b[:words]) + tuple(
                a for a in b[words + 1:]), ("qnet|config|study",)),
            Case(f"argparse-{tag}-option-without-value", (*with_opt(b, "--out", None), "--out"),
                 ("--out",)),
        ]
    return cases


def _huge_npy(shape: tuple[int, ...], dtype: str = "<i8") -> bytes:
    """A .npy file whose header claims ``shape`` but which holds 64 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                              "shape": shape})
    return buf.getvalue() + bytes(64)


def huge_member(name: str, member: str, shape: tuple[int, ...], dtype: str = "<i8",
                keep: dict[str, np.ndarray] | None = None) -> Callable[[Path], None]:
    """An NPZ whose array ``member`` claims a shape of many gigabytes."""
    def run(w: Path) -> None:
        import zipfile

        with zipfile.ZipFile(w / name, "w") as z:
            for k, v in (keep or {}).items():
                b = io.BytesIO()
                np.save(b, v)
                z.writestr(f"{k}.npy", b.getvalue())
            z.writestr(f"{member}.npy", _huge_npy(shape, dtype))
    return run


def fifo(name: str) -> Callable[[Path], None]:
    def run(w: Path) -> None:
        p = w / name
        if p.exists():
            p.unlink()
        os.mkfifo(p)
    return run


def more_cases() -> list[Case]:
    """Odd files and odd values in every reader: devices, FIFOs, huge headers, odd YAML.

    An array header that claims gigabytes is refused by size, before a field is read: the
    file is the relevant name there.
    """
    rtl, run, mp = BASE["rtl"], BASE["run"], BASE["map"]
    sim = BASE["sim"]
    q = "net.qnet.yaml"
    readout = np.zeros((3, 4), dtype=np.int64)
    return [
        # YAML values PyYAML builds but no field takes
        Case("rtl-qnet-timesteps-5000-digits", rtl, (QN, "timesteps"),
             replace_text(q, "timesteps: 3", "timesteps: " + "1" * 5000)),
        Case("run-seed-5000-digits", run, ("cfg.yaml", "seed"),
             append("cfg.yaml", "seed: " + "7" * 5000 + "\n")),
        Case("rtl-qnet-timesteps-date", rtl, (QN, "timesteps"),
             replace_text(q, "timesteps: 3", "timesteps: 2024-01-01")),
        Case("rtl-qnet-timesteps-inf", rtl, (QN, "timesteps"),
             replace_text(q, "timesteps: 3", "timesteps: .inf")),
        Case("rtl-qnet-threshold-nan", rtl, (QN, "threshold"),
             replace_text(q, "threshold: 5", "threshold: .nan")),
        Case("rtl-qnet-complex-key", rtl, (QN,), append(q, "? [a, b]\n: 1\n")),
        Case("run-complex-key", run, ("cfg.yaml",), append("cfg.yaml", "? {a: 1}\n: 1\n")),
        Case("rtl-qnet-binary-tag", rtl, (QN, "name"),
             replace_text(q, "name: net", "name: !!binary aGVsbG8=")),
        Case("map-hw-merge-key-bomb", mp, ("hw.yaml",),
             append("hw.yaml", "x: &a {k: 1}\ny:\n  <<: *a\n")),
        Case("rtl-qnet-yaml-17mb", rtl, (QN,),
             append(q, b"# " + b"x" * (17 << 20) + b"\n")),
        # files that are not regular files
        Case("rtl-qnet-yaml-is-fifo", rtl, (QN,), fifo(q), proc=True),
        Case("run-config-is-fifo", run, ("cfg.yaml",), fifo("cfg.yaml"), proc=True),
        Case("run-config-is-dev-zero", swap(run, "cfg.yaml", "/dev/zero"), ("/dev/zero",),
             proc=True),
        Case("run-config-symlink-to-dev-zero", run, ("cfg.yaml",),
             chain(remove("cfg.yaml"), symlink("cfg.yaml", "/dev/zero")), proc=True),
        Case("rtl-mapping-is-dev-zero", with_opt(rtl, "--mapping", "/dev/zero"),
             ("/dev/zero",), proc=True),
        Case("sim-inputs-is-dev-zero", with_opt(sim, "--inputs", "/dev/zero"), ("/dev/zero",),
             proc=True),
        Case("map-inputs-is-dev-zero", with_opt(mp, "--inputs", "/dev/zero"), ("/dev/zero",),
             proc=True),
        Case("map-hw-is-fifo", mp, ("hw.yaml",), fifo("hw.yaml"), proc=True),
        # NPZ members whose header claims gigabytes
        Case("rtl-qnet-npz-huge-header", rtl, (QN,),
             huge_member("net.qnet.npz", "hid.weights", (100_000, 100_000),
                         keep={"readout.weights": readout}), proc=True),
        Case("sim-inputs-huge-header", sim, ("in.npz",),
             huge_member("in.npz", "spikes", (10**9, QNET_T, N_IN), "|u1"), proc=True),
        Case("map-inputs-npy-huge-header", with_opt(mp, "--inputs", "in.npy"), ("in.npy",),
             write("in.npy", _huge_npy((10**9, QNET_T, N_IN), "|u1")), proc=True),
        Case("build-inputs-huge-header", with_opt(BASE["build"], "--inputs", "in.npz"),
             ("in.npz",),
             huge_member("in.npz", "spikes", (10**9, QNET_T, N_IN), "|u1"), proc=True),
        # paths the file system refuses
        Case("rtl-out-name-too-long", with_opt(rtl, "--out", "x" * 300), ("--out",)),
        Case("map-out-path-too-long", with_opt(mp, "--out", "/".join(["y" * 200] * 25)),
             ("--out",)),
        Case("run-config-name-too-long", swap(run, "cfg.yaml", "c" * 300 + ".yaml"),
             ("ccc",)),
    ]


def all_cases() -> list[Case]:
    cases = [*qnet_cases(), *rtl_option_cases(), *run_cases(), *train_cases(), *dse_cases(),
             *map_cases(), *sim_cases(), *build_cases(), *board_run_cases(), *out_cases(),
             *argparse_cases(), *more_cases()]
    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, f"duplicate case ids: {sorted(dup)}"
    return cases


# ----------------------------------------------------------------------------- valid inputs


def _has(*names: str) -> Callable[[Path], None]:
    def check(w: Path) -> None:
        for n in names:
            hits = list(w.glob(n))
            assert hits, f"{n} was not written"
    return check


def valid_cases() -> list[Valid]:
    rtl = BASE["rtl"]

    def twice(w: Path) -> None:
        from spikeforge.cli import main

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
                io.StringIO()), _cwd(w):
            assert main(list(rtl)) == 0, "the first rtl run failed"
        (w / "out" / "mine.txt").write_text("the user's file, put here between runs\n")
        (w / "out" / "hw.json").write_text("{}")  # spikeforge's own output: replaced

    def twice_check(w: Path) -> None:
        assert (w / "out" / "mine.txt").read_text().startswith("the user's file"), \
            "the user's file in --out was changed"
        assert (w / "out" / "hw.json").read_text() != "{}", "hw.json was not replaced"

    return [
        Valid("rtl-new-folder", rtl, check=_has("out/*.v", "out/hw.json")),
        Valid("rtl-nested-new-folder", with_opt(rtl, "--out", "a/b/c"),
              check=_has("a/b/c/*.v")),
        Valid("rtl-absolute-qnet-path", rtl, check=_has("out/hw.json")),
        Valid("rtl-twice-keeps-user-file", rtl, mutate=twice, check=twice_check),
        Valid("rtl-lanes-2", with_opt(rtl, "--lanes", "2"), check=_has("out/*.v")),
        Valid("rtl-encoder", with_flag(rtl, "--encoder"), check=_has("out/*.v")),
        Valid("rtl-mapping", with_opt(rtl, "--mapping", "mapping.yaml"), check=_has("out/*.v")),
        Valid("rtl-into-empty-user-folder", with_opt(rtl, "--out", "empty"), mutate=mkdir("empty"),
              check=_has("empty/*.v")),
        Valid("rtl-help", ("rtl", "--help")),
        Valid("board-list", ("board", "list")),
        Valid("map-tiny", BASE["map"], check=_has("out/mapping.yaml")),
        Valid("map-inputs-greedy", (*BASE["map"], "--inputs", "in.npy", "--method", "greedy",
                                    "--no-balance"), check=_has("out/mapping.yaml")),
        Valid("sim-fast-tiny", BASE["sim"], check=_has("out/outputs.npz"), needs=("iverilog",)),
    ]


# ----------------------------------------------------------------------------- running a case


class Tripwire(BaseException):
    """Raised where real work starts: the input was not refused before it."""


class CaseTimeout(BaseException):
    """The per-case time limit passed."""


TRIPWIRES: tuple[tuple[str, str, str], ...] = (
    # (module, attribute, what it is)
    ("spikeforge.model.trainer", "build_model", "training"),
    ("spikeforge.model.trainer", "train_epoch", "training"),
    ("spikeforge.hw.export", "write_verilog", "Verilog generation"),
    ("spikeforge.sim.fast", "run_fast", "simulation"),
    ("spikeforge.sim.runner", "run_rtl", "simulation"),
    ("spikeforge.mapping.flow", "run_mapping", "mapping"),
    ("spikeforge.dse.runner", "make_executor", "a DSE worker pool"),
    ("spikeforge.dse.execute", "make_executor", "a DSE worker pool"),
    ("spikeforge.boards.flow", "find_tools", "synthesis"),
    ("spikeforge.boards.flow", "_elaborate", "synthesis"),
    ("spikeforge.boards.host", "run_samples", "talking to a board"),
    ("spikeforge.boards.sim", "SimulatedPort", "a simulated board"),
)


# Modules that bind a tripwire's target when they are imported (``from x import f``): they
# are imported before any tripwire is set, so none of them keeps one after a case.
PREIMPORT = (
    "spikeforge.hw", "spikeforge.hw.export", "spikeforge.sim.fast", "spikeforge.sim.runner",
    "spikeforge.sim.cli", "spikeforge.sim.amaranth_sim", "spikeforge.mapping",
    "spikeforge.mapping.flow", "spikeforge.mapping.cli", "spikeforge.dse.execute",
    "spikeforge.dse.runner", "spikeforge.dse.evaluate", "spikeforge.dse.cli",
    "spikeforge.boards.flow", "spikeforge.boards.host", "spikeforge.boards.sim",
    "spikeforge.boards.top", "spikeforge.boards.cli", "spikeforge.pipeline",
    "spikeforge.model", "spikeforge.model.trainer",
)
_preimported = False


def install_tripwires(monkeypatch) -> None:
    """Replace the entry points of real work with :class:`Tripwire` raisers."""
    import importlib

    global _preimported
    if not _preimported:
        for mod_name in PREIMPORT:
            with contextlib.suppress(Exception):
                importlib.import_module(mod_name)
        _preimported = True
    for mod_name, attr, what in TRIPWIRES:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # a module that moved or needs what is not installed
            continue
        if hasattr(mod, attr):
            monkeypatch.setattr(mod, attr, _tripwire(f"{what} ({mod_name}.{attr})"))
    try:
        pipeline = importlib.import_module("spikeforge.pipeline")
    except Exception:
        return
    passes = getattr(pipeline, "PASSES", None)
    if isinstance(passes, tuple):
        monkeypatch.setattr(pipeline, "PASSES", tuple(
            (name, fn if name == "data" else _tripwire(f"the run's {name} pass"))
            for name, fn in passes))


def _tripwire(what: str) -> Callable[..., Any]:
    def trip(*args: Any, **kwargs: Any) -> Any:
        raise Tripwire(f"reached {what} before refusing the input")
    trip.__doc__ = f"Tripwire: {what}."
    return trip


@dataclass
class Outcome:
    status: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool = False
    tripped: str | None = None
    extra: list[str] = field(default_factory=list)


_SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM,
                        signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2)]


def run_inprocess(argv: list[str], capfd, timeout: float = TIMEOUT_S) -> Outcome:
    """``spikeforge.cli.main(argv)`` here, with what a real process would show.

    An exception that escapes is printed as Python would print it (exit status 1);
    warnings are printed as Python's default filters would print them. Signal
    handlers the CLI installs are restored afterwards.
    """
    from spikeforge.cli import main

    saved = {s: signal.getsignal(s) for s in _SIGNALS}

    def on_alarm(signum, frame):
        raise CaseTimeout(f"no answer within {timeout} s")

    status: int | None = None
    extra_err = ""
    tripped = None
    timed_out = False
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for cat in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                        ResourceWarning):
                warnings.simplefilter("ignore", cat)
            try:
                rc = main(argv)
                status = 0 if rc is None else rc if isinstance(rc, int) else 1
            except SystemExit as e:
                code = e.code
                status = 0 if code is None else code if isinstance(code, int) else 1
                if not isinstance(code, int | None):
                    extra_err += f"{code}\n"
            except Tripwire as e:
                tripped = str(e)
                status = 1
                extra_err += "Traceback (most recent call last):\n" + \
                    f"hostile_cases.Tripwire: {e}\n"
            except CaseTimeout:
                timed_out = True
            except Exception:  # what the real process would print before exiting with 1
                status = 1
                extra_err += traceback.format_exc()
            gc.collect(1)  # amaranth warns about unused elaboratables when they are collected
        for w in caught:
            extra_err += warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in saved.items():
            with contextlib.suppress(TypeError, ValueError, OSError):
                signal.signal(s, h if h is not None else signal.SIG_DFL)
    seconds = time.perf_counter() - t0
    captured = capfd.readouterr()
    return Outcome(status, captured.out, captured.err + extra_err, seconds, timed_out, tripped)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (PROC_MEMORY, PROC_MEMORY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_process(argv: list[str], cwd: Path, timeout: float = TIMEOUT_S,
                uid: int | None = None) -> Outcome:
    """``python -m spikeforge.cli ARGV`` in ``cwd``, memory limited, killed after ``timeout``.

    ``uid``: run as this user (root only, through ``setpriv``), with a home folder beside
    ``cwd``.
    """
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "spikeforge.cli", *argv]
    if uid is not None:
        home = str(cwd.parent / "home")
        env.update(HOME=home, MPLCONFIGDIR=home, XDG_CACHE_HOME=home, TMPDIR=home)
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True, preexec_fn=_limits)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    return Outcome(None if timed_out else proc.returncode,
                   out.decode(errors="replace"), err.decode(errors="replace"),
                   time.perf_counter() - t0, timed_out)


# ----------------------------------------------------------------------------- the verdict

_EXC = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt|Tripwire)|"
                  r"[A-Za-z_][\w.]*\.[A-Z]\w+)(?::|$)")


def exception_name(text: str) -> str:
    """The exception type of the last traceback in ``text`` (or ``?``)."""
    tail = text[text.rfind("Traceback (most recent call last)"):]
    name = "?"
    for line in tail.splitlines():
        if line and not line.startswith((" ", "\t", "Traceback")):
            m = _EXC.match(line.strip())
            if m:
                name = m.group(1).rsplit(".", 1)[-1]
    return name


def violations(case: Case, o: Outcome, diff: dict[str, list[str]]) -> list[str]:
    """The contract's breaches, most telling first (the first one groups the failure)."""
    tags: list[str] = []
    if o.timed_out:
        tags.append(f"timeout(>{TIMEOUT_S}s)")
    if o.tripped:
        what = o.tripped.removeprefix("reached ").removesuffix(" before refusing the input")
        tags.append(f"reached-real-work({what.split(' (')[0]})")
    both = o.out + o.err
    if "Traceback" in both:
        tags.append(f"traceback({exception_name(both)})")
    elif o.status is not None and o.status < 0:
        tags.append(f"killed-by-signal({-o.status})")
    if not o.timed_out and o.status != 2:
        tags.append(f"exit-status-{o.status}")
    lines = [ln for ln in o.err.splitlines() if ln.strip()]
    if len(lines) != 1:
        tags.append(f"stderr-{len(lines)}-lines")
    elif not lines[0].startswith(PREFIX):
        tags.append("stderr-not-'spikeforge: error:'")
    else:
        missing = [n for n in case.names if not any(alt in lines[0] for alt in n.split("|"))]
        if missing:
            tags.append(f"line-does-not-name({', '.join(missing)})")
    if diff["deleted"]:
        tags.append("user-file-deleted")
    if diff["changed"]:
        tags.append("user-file-changed")
    if diff["new"]:
        tags.append("leftover-output")
    return tags


def describe(case: Case, o: Outcome, diff: dict[str, list[str]], tags: list[str]) -> str:
    """The failure message: tags first (the report groups by them), then the evidence."""
    err = o.err if len(o.err) < 1500 else o.err[:700] + "\n[...]\n" + o.err[-700:]
    parts = [f"HOSTILE[{';'.join(tags)}]", f"argv: spikeforge {' '.join(case.argv)}",
             f"status: {o.status}, {o.seconds:.1f} s, {'process' if case.proc else 'in-process'}"]
    for k in ("deleted", "changed", "new"):
        if diff[k]:
            parts.append(f"{k}: {diff[k][:8]}")
    parts.append(f"stderr:\n{err}")
    return "\n".join(parts)
