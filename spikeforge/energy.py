"""Energy from operation counts (the model of docs/ENERGY.md).

Two figures for the same counts:

* the Panda et al. (2020) convention, comparable with the papers:
  ``E_SNN = sum(ACs) * 0.1 pJ``, ``E_ANN = sum(MACs) * 3.2 pJ``, ``EE = E_ANN / E_SNN``;
* a hardware-aware figure: accumulates at the real accumulator width, neuron
  updates (shift-add leak, add, compare) at the membrane width, and weight-memory
  reads at the real word width and memory size.

Counts come from the reference simulator or from the RTL's counters; the report
says which, and states every interpolation rule it used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spikeforge.qnet import QNet

__all__ = ["E_AC_PJ", "E_MAC_PJ", "add_energy_pj", "energy_report", "read_energy_pj",
           "sram_read_pj", "weight_memories"]

E_MAC_PJ = 3.2  # Panda et al. 2020, 32-bit integer MAC
E_AC_PJ = 0.1   # Panda et al. 2020, 32-bit integer accumulate

# Horowitz, ISSCC 2014, 45 nm, 0.9 V
_ADD_POINTS = ((8, 0.03), (32, 0.1))
_SRAM_POINTS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))  # per 64-bit read

RULES = {
    "add": "integer add energy linear in width through Horowitz's 8-bit (0.03 pJ) and "
           "32-bit (0.1 pJ) points; below 8 bits proportional to width (0.03 pJ * bits / 8)",
    "sram": "64-bit SRAM read energy linear in log2(array bytes) through Horowitz's 8 KB "
            "(10 pJ), 32 KB (20 pJ) and 1 MB (100 pJ) points, 10 pJ for arrays under 8 KB; "
            "a word of w bits costs w/64 of that",
    "layout": "a weight read reads one row of one tile memory: a word of (group neurons x "
              "weight bits) from an array of (chunk rows x word); a layer's reads are shared "
              "among its tile memories in proportion to the rows each holds (exact for one "
              "memory per layer and for equal tiles)",
    "neuron_update": "one add per leak shift, one for the input current, one for a bias if "
                     "present, one compare (an add) at the membrane width",
}


def add_energy_pj(bits: int) -> float:
    """Energy of one integer add of ``bits`` bits (rule ``RULES['add']``)."""
    (b0, e0), (b1, e1) = _ADD_POINTS
    if bits < b0:
        return e0 * bits / b0
    return e0 + (bits - b0) * (e1 - e0) / (b1 - b0)


def sram_read_pj(word_bits: int, array_bits: int) -> float:
    """Energy of reading one ``word_bits`` word from an array of ``array_bits`` bits."""
    size = max(array_bits / 8, 1.0)
    pts = _SRAM_POINTS
    if size <= pts[0][0]:
        per64 = pts[0][1]
    else:
        per64 = pts[-1][1]
        for (s0, e0), (s1, e1) in zip(pts, pts[1:]):
            if size <= s1:
                f = (math.log2(size) - math.log2(s0)) / (math.log2(s1) - math.log2(s0))
                per64 = e0 + f * (e1 - e0)
                break
        else:  # beyond 1 MB: continue the last segment's slope
            (s0, e0), (s1, e1) = pts[-2], pts[-1]
            f = (math.log2(size) - math.log2(s0)) / (math.log2(s1) - math.log2(s0))
            per64 = e0 + f * (e1 - e0)
    return per64 * word_bits / 64


def weight_memories(layer, layer_layout=None) -> list[tuple[int, int]]:
    """``(word bits, rows)`` of every weight memory the hardware builds for ``layer``.

    Without a layout: one memory of ``n_in`` rows of ``n_out`` weights (the
    untiled array of the Panda-style figures). With a
    :class:`~spikeforge.hw.layout.LayerLayout`: its weight memory records
    (:meth:`~spikeforge.hw.layout.LayerLayout.memories`), one per chunk with rows.
    """
    if layer_layout is None:
        return [(layer.n_out * layer.weight_bits, layer.n_in)]
    # the layout's memory records (the neuron word width does not matter for weights)
    mems = layer_layout.memories(layer.weight_bits, layer.membrane_bits)
    return [(m.width, m.depth) for m in mems if m.kind == "weights" for _ in range(m.count)]


def read_energy_pj(memories: list[tuple[int, int]]) -> float:
    """Mean energy of one row read, reads shared by rows held (``RULES['layout']``)."""
    rows = sum(r for _, r in memories)
    if rows == 0:
        return 0.0
    return sum(r * sram_read_pj(w, w * r) for w, r in memories) / rows


def energy_report(
    net: QNet, counters: dict[str, dict[str, np.ndarray]], *, source: str, layout=None
) -> dict[str, Any]:
    """Mean energy per sample, per layer and in total, from per-sample counters.

    ``counters[layer][name]`` are int arrays ``[N]`` (reference or RTL);
    ``source`` names where they came from and is copied into the report.
    ``layout`` (a :class:`~spikeforge.hw.layout.HardwareLayout`) is the hardware
    the counters came from: weight reads are costed at its memories' words and
    sizes; without it, one memory per layer.
    """
    layers = []
    tot_snn = tot_ann = tot_hw = 0.0
    for layer in net.layers:
        c = {k: float(np.mean(v)) for k, v in counters[layer.name].items()}
        macs = layer.n_in * layer.n_out
        e_snn = c["synaptic_events"] * E_AC_PJ
        e_ann = macs * E_MAC_PJ
        n_ops = len(layer.leak_shifts) + 1 + (layer.bias is not None) + 1
        e_acc = c["synaptic_events"] * add_energy_pj(layer.accumulator_bits)
        e_upd = c["neuron_updates"] * n_ops * add_energy_pj(layer.membrane_bits)
        mems = weight_memories(layer, None if layout is None else layout.layer(layer.name))
        e_mem = c["weight_reads"] * read_energy_pj(mems)
        word = max(w for w, _ in mems) if mems else 0
        hw = e_acc + e_upd + e_mem
        layers.append({
            "name": layer.name,
            "counts": c,
            "ann_macs": macs,
            "panda": {"snn_pj": e_snn, "ann_pj": e_ann},
            "hardware": {
                "accumulate_pj": e_acc, "neuron_update_pj": e_upd, "weight_read_pj": e_mem,
                "total_pj": hw, "accumulator_bits": layer.accumulator_bits,
                "membrane_bits": layer.membrane_bits, "word_bits": word,
                "memory_bits": sum(w * r for w, r in mems), "memories": len(mems),
            },
        })
        tot_snn += e_snn
        tot_ann += e_ann
        tot_hw += hw
    return {
        "source": source,
        "layout": "default (one memory per layer)" if layout is None else "as built",
        "per": "sample (mean over the samples run)",
        "snn_pj": tot_snn,
        "ann_pj": tot_ann,
        "ee": tot_ann / tot_snn if tot_snn else float("inf"),
        "hardware_pj": tot_hw,
        "convention": f"Panda et al. 2020: E_AC {E_AC_PJ} pJ, E_MAC {E_MAC_PJ} pJ; "
                      "every layer counts ACs (input spikes are rate coded)",
        "rules": RULES,
        "layers": layers,
    }
