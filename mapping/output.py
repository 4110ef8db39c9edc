"""What a mapping writes: ``mapping.yaml`` (for the hardware generator), ``report.json``, a PNG.

``mapping.yaml`` (``format: mapping/1``) lists every used tile with its mesh
position, layer, role, neurons ``[lo, hi)``, axons as half-open ranges of the
layer's input lines, the tile its partial sums go to (partial tiles) and the
tiles its spikes go to (neuron tiles). Partial sums flow along each group's
chain of tiles (chunk ``k`` sends to chunk ``k-1``; chunk 0 is the neuron
tile). Writing is atomic.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spikeforge.contracts import MAPPING_FORMAT
from spikeforge.jsonio import dumps
from spikeforge.staging import file_mode

from .analysis import Analysis
from .hardware import HardwareSpec
from .partition import Partition, Role
from .placement import Placement
from .traffic import Traffic

__all__ = [
    "FORMAT",
    "axon_ranges",
    "mapping_document",
    "plot_mesh",
    "write_atomic",
    "write_json",
    "write_yaml",
]

FORMAT = MAPPING_FORMAT  # spikeforge.contracts: the one definition


def axon_ranges(axons: np.ndarray) -> list[list[int]]:
    """Sorted line numbers as half-open ``[lo, hi)`` runs: ``[0,1,2,5] -> [[0,3],[5,6]]``."""
    a = np.asarray(axons, dtype=np.int64)
    if len(a) == 0:
        return []
    breaks = np.flatnonzero(np.diff(a) != 1) + 1
    return [[int(r[0]), int(r[-1]) + 1] for r in np.split(a, breaks)]


def mapping_document(part: Partition, hw: HardwareSpec, traffic: Traffic,
                     placement: Placement, extra: dict[str, Any]) -> dict[str, Any]:
    """The ``mapping.yaml`` content as plain data."""
    frags = part.fragments
    io = len(frags)
    slots = placement.slots
    tiles = []
    for f in frags:
        r, c = hw.position(int(slots[f.index]))
        rec: dict[str, Any] = {
            "slot": int(slots[f.index]),
            "position": [r, c],
            "fragment": f.index,
            "layer": f.layer_name,
            "role": f.role.value,
            "neurons": list(f.neurons),
            "axons": axon_ranges(f.axons),
            "n_axons": f.n_axons,
            "memory_bits": f.memory_bits,
        }
        if f.role is Role.PARTIAL:
            rec["partial_to"] = int(slots[f.index - 1])  # the chain: chunk k -> chunk k-1
        else:
            dests = np.flatnonzero(traffic.spikes[f.index, :io] + traffic.readout[f.index, :io])
            rec["spikes_to"] = sorted(int(slots[j]) for j in dests)
            rec["to_io"] = bool(traffic.spikes[f.index, io] + traffic.readout[f.index, io] > 0)
        tiles.append(rec)
    tiles.sort(key=lambda x: x["slot"])
    return {
        "format": FORMAT,
        "qnet": part.net_name,
        "hardware": {**hw.model_dump(mode="json"), "tiles": hw.n_tiles},
        "layers": list(part.layer_names),
        "placement": {"method": placement.method.value, "fell_back_to_in_order":
                      placement.fell_back, "hops_per_sample": float(placement.cost)},
        **extra,
        "tiles": tiles,
    }


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_yaml(path: Path, doc: dict) -> None:
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False).encode())


def write_json(path: Path, doc: dict) -> None:
    write_atomic(path, (dumps(doc, indent=2) + "\n").encode())  # strict: NaN -> null


def plot_mesh(path: Path, part: Partition, hw: HardwareSpec, traffic: Traffic,
              placement: Placement, analysis: Analysis, max_arrows: int = 120) -> None:
    """Draw the mesh: tiles coloured by layer, arrows as wide as their traffic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

    frags = part.fragments
    io = len(frags)
    rows, cols = hw.mesh.rows, hw.mesh.cols
    cmap = plt.get_cmap("tab10")
    cell = min(1.2, 30.0 / max(rows, cols))  # inches per tile: at most ~33 in (4000 px) a side
    fig, ax = plt.subplots(figsize=(cell * cols + 3, cell * rows + 1.5))
    small = min(1.0, cell / 1.2)  # text shrinks with the tiles

    def xy(slot_or_io: int) -> tuple[float, float]:
        if slot_or_io == -1:
            return float(hw.io.col), float(-hw.io.row)
        r, c = hw.position(slot_or_io)
        return float(c), float(-r)

    where = {f.index: int(placement.slots[f.index]) for f in frags}
    by_slot = {s: f for f, s in where.items()}
    for s in range(rows * cols):
        r, c = divmod(s, cols)
        f = by_slot.get(s) if s < hw.n_tiles else None
        if f is None:
            face, text = ("#eeeeee" if s < hw.n_tiles else "white"), ""
        else:
            fr = frags[f]
            face = cmap(fr.layer % 10)
            text = f"{fr.layer_name}\n{fr.neurons[0]}:{fr.neurons[1]}"
            text += "\nΣ" if fr.role is Role.PARTIAL else ""
            text += f"\n{analysis.tile_load[f]:.0f} c/step"
        ax.add_patch(Rectangle((c - 0.4, -r - 0.4), 0.8, 0.8, facecolor=face,
                               edgecolor="black", alpha=0.85 if f is not None else 1.0,
                               linestyle="-" if s < hw.n_tiles else ":"))
        if text:
            ax.text(c, -r, text, ha="center", va="center", fontsize=6 * small)
    ix, iy = xy(-1)
    ax.add_patch(Rectangle((ix - 0.3, iy - 0.3), 0.6, 0.6, facecolor="white", edgecolor="black"))
    ax.text(ix, iy, "I/O", ha="center", va="center", fontsize=7)

    total = traffic.total
    pairs = [(total[i, j], i, j) for i, j in zip(*np.nonzero(total))]
    pairs.sort(reverse=True)
    top = max((p[0] for p in pairs), default=1.0)
    for v, i, j in pairs[:max_arrows]:
        a = xy(-1) if i == io else xy(where[i])
        b = xy(-1) if j == io else xy(where[j])
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=8,
                                     connectionstyle="arc3,rad=0.25",
                                     linewidth=0.3 + 4.0 * v / top, color="black",
                                     alpha=0.25 + 0.5 * v / top, shrinkA=8, shrinkB=8))
    ax.legend(handles=[Patch(color=cmap(l % 10), label=n)
                       for l, n in enumerate(part.layer_names)],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title="layer")
    ax.set_xlim(min(-1.5, ix - 0.5), cols + 0.5)
    ax.set_ylim(-rows - 0.5, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{part.net_name} on {hw.name} ({placement.method.value}): inter-tile hops "
                 f"{-100 * analysis.inter_tile_reduction:+.0f} % vs in-order, all hops "
                 f"{-100 * analysis.traffic_reduction:+.0f} %; busiest/mean load "
                 f"{analysis.load_ratio:.2f}\nΣ: partial-sum tile; c/step: predicted cycles "
                 "per time step; arrows: packets per sample", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
