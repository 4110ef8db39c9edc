"""Frozen hardware parameters derived from a QNet layer (never guessed).

One object per block, shared by the component, the tests and the reports;
derived widths are properties, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeforge.contracts import counter_bits
from spikeforge.qnet import RESET_RULES, Layer, QNet, Reset, ResetRule, bits_for_signed

__all__ = ["LayerParams", "NetworkParams", "current_bits", "index_bits"]


def index_bits(n: int) -> int:
    """Width of an index in ``0 .. n-1`` (at least 1 bit)."""
    return max(1, (n - 1).bit_length())


def current_bits(weights: np.ndarray) -> int:
    """Signed width of any sum of a subset of each row's entries (rows: neurons)."""
    w = np.asarray(weights, dtype=np.int64)
    if w.size == 0:
        return 1
    lo = int(np.minimum(w, 0).sum(axis=1).min())
    hi = int(np.maximum(w, 0).sum(axis=1).max())
    return bits_for_signed(lo, hi)


def _count_bits(max_count: int) -> int:
    return max(1, int(max_count).bit_length())


@dataclass(frozen=True)
class LayerParams:
    """What one dense layer's hardware needs to know, all derived from a QNet ``Layer``."""

    layer: Layer
    timesteps: int

    def __post_init__(self) -> None:
        if not isinstance(self.layer, Layer):
            raise TypeError(f"layer must be a spikeforge.qnet.Layer, not {self.layer!r}")
        if not isinstance(self.timesteps, int) or self.timesteps < 1:
            raise ValueError(f"timesteps must be a positive integer, not {self.timesteps!r}")

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def n_in(self) -> int:
        return self.layer.n_in

    @property
    def n_out(self) -> int:
        return self.layer.n_out

    @property
    def weight_bits(self) -> int:
        return self.layer.weight_bits

    @property
    def membrane_bits(self) -> int:
        return self.layer.membrane_bits

    @property
    def acc_bits(self) -> int:
        """Signed width that holds any input current of this layer exactly.

        Within a step each input line adds its weight at most once, so every
        current (and every partial sum on the way) lies between the most
        negative and the most positive column sums of the actual weights;
        never wider than docs/QNET.md §2's ``wb + ceil(log2(n_in + 1))``.
        """
        return current_bits(self.layer.weights)
    @property
    def in_index_bits(self) -> int:
        return index_bits(self.n_in)

    @property
    def out_index_bits(self) -> int:
        return index_bits(self.n_out)

    @property
    def fire(self) -> bool:
        return self.layer.fire

    @property
    def reset(self) -> Reset:
        return self.layer.reset

    @property
    def reset_rule(self) -> ResetRule:
        """The semantics of the layer's reset (``qnet.RESET_RULES``)."""
        return RESET_RULES[self.layer.reset]

    @property
    def state_bits(self) -> int:
        """State bits per neuron besides the membrane (the previous spike, if the rule needs it)."""
        return self.reset_rule.state_bits

    @property
    def neuron_word_bits(self) -> int:
        """Bits of one neuron in the membrane memory: membrane, then its state bits."""
        return self.membrane_bits + self.state_bits

    @property
    def counter_bits(self) -> int:
        """Counter width from the largest count a sample can reach (synaptic events)."""
        return counter_bits(self.timesteps, self.n_in, self.n_out)


@dataclass(frozen=True)
class NetworkParams:
    """Parameters of the whole network top, derived from a QNet."""

    qnet: QNet
    encoder: bool = False  # on-chip rate encoder: the input stream carries 8-bit pixels
    layout: object = field(default=None)  # HardwareLayout; None: the default layout

    def __post_init__(self) -> None:
        from spikeforge.hw.layout import HardwareLayout

        if self.layout is None:
            object.__setattr__(self, "layout", HardwareLayout.default(self.qnet))
        elif not isinstance(self.layout, HardwareLayout):
            raise TypeError(f"layout must be a HardwareLayout, not {self.layout!r}")
        else:
            self.layout.check(self.qnet)

    @property
    def layers(self) -> tuple[LayerParams, ...]:
        return tuple(LayerParams(layer, self.qnet.timesteps) for layer in self.qnet.layers)

    @property
    def timesteps(self) -> int:
        return self.qnet.timesteps

    @property
    def step_bits(self) -> int:
        return _count_bits(self.timesteps)

    @property
    def cycle_bits(self) -> int:
        """Cycle counter width: generous bound of every layer's work for every step."""
        per_step = sum(p.n_in + p.n_out + lay.batches + 6
                       for p, lay in zip(self.layers, self.layout.layers))
        if self.encoder:  # one cycle per pixel per step, plus loading the pixels
            per_step += self.qnet.n_in + 4
        return _count_bits(self.timesteps * per_step * 4 + self.qnet.n_in) + 1

    def memories(self):
        """Every memory the generator builds (``HardwareLayout.memories``: the one
        resource model, with the encoder's pixels when there is one)."""
        return self.layout.memories(self.qnet, encoder=self.encoder)

    def layer_memories(self) -> list[dict[str, int]]:
        """Per layer: bits of its weight, membrane and line-table memories."""
        return [lay.memory_bits(p.weight_bits, p.neuron_word_bits)
                for p, lay in zip(self.layers, self.layout.layers)]

    @property
    def memory_bits(self) -> int:
        """Bits of every memory (:meth:`memories`), the encoder's pixels included."""
        return sum(m.bits for m in self.memories())

    @property
    def max_cycles_per_sample(self) -> int:
        """Upper bound on ``cycles`` for one sample (every input spiking, layers not overlapped).

        Per step and layer: one cycle per input spike, three to drain the last add
        and take ``STEP_END``, ``ceil(C/P) + 1`` to update, one per output spike,
        one for the emitted ``STEP_END``; with the encoder, ``n_in + 2`` per step
        and ``n_in`` to load the pixels.
        """
        per_step = sum(p.n_in + p.n_out + lay.batches + 5
                       for p, lay in zip(self.layers, self.layout.layers))
        extra = 0
        if self.encoder:
            per_step += self.qnet.n_in + 2
            extra = self.qnet.n_in
        return self.timesteps * per_step + extra

    @property
    def min_cycles_per_sample(self) -> int:
        """Lower bound with no input spikes at all: every step still updates every membrane."""
        return self.timesteps * max(lay.batches + 1 for lay in self.layout.layers)

    def describe(self) -> dict:
        """A JSON-ready description of the generated instance."""
        return {
            "timesteps": self.timesteps,
            "layout": self.layout.source,
            "tiles": sum(lay.tiles() for lay in self.layout.layers),
            "layers": [
                {
                    "name": p.name, "n_in": p.n_in, "n_out": p.n_out,
                    "weight_bits": p.weight_bits, "membrane_bits": p.membrane_bits,
                    "accumulator_bits": p.acc_bits, "counter_bits": p.counter_bits,
                    "neuron_lanes": lay.lanes, "update_cycles": lay.batches + 1,
                    "tiles": [
                        {"neurons": [g.lo, g.hi], "chunk": k, "rows": len(c),
                         "weight_memory": {"words": len(c), "word_bits": g.size * p.weight_bits,
                                           "bits": len(c) * g.size * p.weight_bits},
                         "accumulators": g.size,
                         **({"membrane_memory": {
                             "words": -(-g.size // lay.lanes),
                             "word_bits": lay.lanes * p.neuron_word_bits}} if k == 0 else {})}
                        for g in lay.groups for k, c in enumerate(g.chunks)
                    ],
                    "memory_bits": mem,
                }
                for p, lay, mem in zip(self.layers, self.layout.layers, self.layer_memories())
            ],
            "memory_bits": self.memory_bits,
            "memories": [m.to_dict() for m in self.memories()],
            "encoder": "xorshift32 rate encoder, 8-bit pixels" if self.encoder else None,
            "multipliers": 0,
            "max_cycles_per_sample": self.max_cycles_per_sample,
            "min_cycles_per_sample": self.min_cycles_per_sample,
            "cycle_model": "docs/HARDWARE.md#cycle-model",
        }
