"""Which tiles the hardware builds: neuron groups, axon chunks and lanes per layer.

A layer is cut into **groups** of consecutive neurons; each group is one
neuron tile (membranes, ``P`` update lanes) fed by one or more **chunk** tiles
(crossbar arrays), each holding the weight rows of a subset of the layer's
input lines. A chunk keeps only the rows with a nonzero weight into its
group: a spike on any other line costs the group nothing (zero-row skipping).
The chunks' partial sums are added before the neuron update.

The layout comes from a ``mapping.yaml`` (``mapping/1``, see docs/MAPPING.md)
or, without one, from :meth:`HardwareLayout.default`: one group and one
chunk per layer. It also tells the reference simulator which synapses the
hardware visits (docs/QNET.md §5: ``synaptic_events`` and ``weight_reads`` count
what the hardware actually reads), through :meth:`HardwareLayout.visits`.

No amaranth here: the mapper, the reference and the CLI read layouts too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeforge.contracts import MAPPING_FORMAT, Memory, weight_memory
from spikeforge.errors import ConfigError
from spikeforge.hw.params import LayerParams, index_bits
from spikeforge.qnet import Layer, QNet
from spikeforge.yamlio import read_yaml, short

__all__ = [
    "MAX_LANES",
    "MAX_MAPPING_TILES",
    "Group",
    "HardwareLayout",
    "LayerLayout",
    "LayoutError",
    "choose_layout",
    "default_layer_layout",
    "layout_from_document",
    "load_layout",
]


class LayoutError(ConfigError):
    """A mapping or lane setting the hardware cannot build (one line, exit status 2)."""


#: Most tiles a mapping file may list (``spikeforge map`` supports meshes of at most
#: this many positions: ``spikeforge.mapping.hardware.MAX_TILES``).
MAX_MAPPING_TILES = 4096
#: Most neuron update lanes (``--lanes``, ``hardware.tile.neuron_lanes``).
MAX_LANES = 1 << 16


@dataclass(frozen=True)
class Group:
    """One neuron tile: neurons ``[lo, hi)`` and the input lines of each of its chunks."""

    lo: int
    hi: int
    chunks: tuple[tuple[int, ...], ...]  # chunk k's rows: input lines, ascending

    @property
    def size(self) -> int:
        return self.hi - self.lo

    @property
    def lines(self) -> np.ndarray:
        """Every line with a row in this group (sorted)."""
        return np.array(sorted(i for c in self.chunks for i in c), dtype=np.int64)


@dataclass(frozen=True)
class LayerLayout:
    """The tiles of one QNet layer."""

    name: str
    n_in: int
    n_out: int
    groups: tuple[Group, ...]
    lanes: int

    @property
    def batches(self) -> int:
        """Update cycles of the largest group: ``ceil(C / P)``."""
        return max(math.ceil(g.size / self.lanes) for g in self.groups)

    def line_fields(self) -> list[tuple[int, int, int]]:
        """Line-table word layout, per group: ``(offset, chunk bits, row bits)``.

        A group's field is a valid bit, then the chunk number, then the row.
        """
        fields, off = [], 0
        for g in self.groups:
            cb = index_bits(len(g.chunks))
            rb = index_bits(max(1, max(len(c) for c in g.chunks)))
            fields.append((off, cb, rb))
            off += 1 + cb + rb
        return fields

    @property
    def line_word_bits(self) -> int:
        off, cb, rb = self.line_fields()[-1]
        return off + 1 + cb + rb

    @property
    def line_table_depth(self) -> int:
        """Words of the line table: one per input line (at least two)."""
        return max(2, self.n_in)

    def memories(self, weight_bits: int, membrane_bits: int) -> tuple[Memory, ...]:
        """Every memory the generator builds for this layer, as it sizes them.

        The line table; per group, one weight memory per chunk with rows (a chunk
        without rows has none) and the membrane memory (``ceil(size / lanes)``
        words of ``lanes`` neurons). ``membrane_bits`` is what one neuron keeps in
        the membrane memory (with any state bits of its reset rule:
        ``LayerParams.neuron_word_bits``). Names are ``layer.line_table``,
        ``layer.g<group>c<chunk>.weights`` and ``layer.g<group>.membranes``.
        """
        out = [Memory(f"{self.name}.line_table", "line_table", self.line_word_bits,
                      self.line_table_depth)]
        for gi, g in enumerate(self.groups):
            out += [weight_memory(f"{self.name}.g{gi}c{ci}.weights", len(c), g.size, weight_bits)
                    for ci, c in enumerate(g.chunks) if c]
            out.append(Memory(f"{self.name}.g{gi}.membranes", "membranes",
                              self.lanes * membrane_bits, math.ceil(g.size / self.lanes)))
        return tuple(out)

    def memory_bits(self, weight_bits: int, membrane_bits: int) -> dict[str, int]:
        """Bits of this layer's memories by kind: weights, membranes, line table
        (the sums of :meth:`memories`)."""
        out = dict.fromkeys(("weights", "membranes", "line_table"), 0)
        for mem in self.memories(weight_bits, membrane_bits):
            out[mem.kind] += mem.bits
        return out

    def visits(self) -> tuple[np.ndarray, np.ndarray]:
        """Per input line: weight rows read and synapses visited by one spike on it."""
        reads = np.zeros(self.n_in, dtype=np.int64)
        syn = np.zeros(self.n_in, dtype=np.int64)
        for g in self.groups:
            lines = g.lines
            reads[lines] += 1
            syn[lines] += g.size
        return reads, syn

    def tiles(self) -> int:
        return sum(len(g.chunks) for g in self.groups)


def _nonzero_lines(weights: np.ndarray, lo: int, hi: int) -> set[int]:
    return set(np.flatnonzero(np.any(weights[lo:hi] != 0, axis=0)).tolist())


def default_layer_layout(layer: Layer, lanes: int | None = None) -> LayerLayout:
    """One group, one chunk of the layer's nonzero rows; ``lanes`` lanes (default ``n_out``)."""
    rows = tuple(sorted(_nonzero_lines(layer.weights, 0, layer.n_out)))
    p = layer.n_out if lanes is None else min(lanes, layer.n_out)
    return LayerLayout(layer.name, layer.n_in, layer.n_out, (Group(0, layer.n_out, (rows,)),), p)


def _check_lanes(lanes: int, where: str, field: str) -> int:
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise LayoutError(where, field, f"must be an integer in 1..{MAX_LANES}, not "
                          f"{short(lanes)}")
    return lanes


@dataclass(frozen=True)
class HardwareLayout:
    """Tiles of every layer of one QNet; build with :meth:`default` or :func:`load_layout`."""

    layers: tuple[LayerLayout, ...]
    source: str = "default"

    @classmethod
    def default(cls, qnet: QNet, lanes: int | None = None) -> HardwareLayout:
        """One group and one chunk per layer; ``lanes`` update lanes (default: one per neuron).

        Rows that are all zero are left out (skipped), as in every layout.
        """
        if lanes is not None:
            _check_lanes(lanes, "--lanes", "lanes")
        return cls(tuple(default_layer_layout(layer, lanes) for layer in qnet.layers))

    def memories(self, qnet: QNet, *, encoder: bool = False) -> tuple[Memory, ...]:
        """Every memory the hardware of ``qnet`` with these tiles builds (the one resource
        model: ``hw.json``, the fits check, the energy model and the DSE read it).

        Per layer :meth:`LayerLayout.memories` at the layer's weight width and neuron
        word (membrane and reset state); with ``encoder``, the rate encoder's pixels.
        """
        out: list[Memory] = []
        for lay, layer in zip(self.layers, qnet.layers):
            p = LayerParams(layer, qnet.timesteps)
            out += lay.memories(p.weight_bits, p.neuron_word_bits)
        if encoder:
            out.append(Memory("encoder.pixels", "pixels", 8, qnet.n_in))
        return tuple(out)

    def memory_bits(self, qnet: QNet, *, encoder: bool = False) -> int:
        """Bits of every memory (:meth:`memories`): ``hw.json``'s ``memory_bits``."""
        return sum(m.bits for m in self.memories(qnet, encoder=encoder))

    def visits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What :func:`spikeforge.reference.simulate` needs to count like this hardware."""
        return {lay.name: lay.visits() for lay in self.layers}

    def layer(self, name: str) -> LayerLayout:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def check(self, qnet: QNet) -> None:
        """Raise :class:`LayoutError` unless this layout builds ``qnet`` exactly."""
        src = self.source
        if [lay.name for lay in self.layers] != [l.name for l in qnet.layers]:
            raise LayoutError(src, "layers", f"{[lay.name for lay in self.layers]} do not "
                              f"match the QNet's layers {[l.name for l in qnet.layers]}")
        for lay, layer in zip(self.layers, qnet.layers):
            where = f"{src}: layer {lay.name}"
            if (lay.n_in, lay.n_out) != (layer.n_in, layer.n_out):
                raise LayoutError(src, f"layers.{lay.name}", f"is {lay.n_in}->{lay.n_out} but the "
                                  f"QNet layer is {layer.n_in}->{layer.n_out}")
            _check_lanes(lay.lanes, where, "neuron_lanes")
            edge = 0
            for g in lay.groups:
                if g.lo != edge or g.hi <= g.lo:
                    raise LayoutError(where, "neurons", f"groups must tile [0, {lay.n_out}) in "
                                      f"order; found [{g.lo}, {g.hi}) after {edge}")
                edge = g.hi
                seen: set[int] = set()
                for c in g.chunks:
                    bad = [i for i in c if not 0 <= i < lay.n_in]
                    if bad:
                        raise LayoutError(where, "axons", f"line {bad[0]} is outside "
                                          f"0..{lay.n_in - 1}")
                    dup = seen.intersection(c)
                    if dup:
                        raise LayoutError(where, "axons", f"line {min(dup)} is in two chunks "
                                          f"of neurons [{g.lo}, {g.hi})")
                    seen.update(c)
                missing = _nonzero_lines(layer.weights, g.lo, g.hi) - seen
                if missing:
                    raise LayoutError(where, "axons", f"{len(missing)} input lines with nonzero "
                                      f"weights into neurons [{g.lo}, {g.hi}) are in no tile "
                                      f"(first: {min(missing)})")
            if edge != lay.n_out:
                raise LayoutError(where, "neurons", f"groups end at {edge}, not at {lay.n_out}")

    def to_dict(self) -> dict:
        """Everything needed to rebuild this layout (``from_dict``), JSON-ready."""
        return {"source": self.source, "layers": [{
            "name": lay.name, "n_in": lay.n_in, "n_out": lay.n_out, "lanes": lay.lanes,
            "groups": [{"neurons": [g.lo, g.hi], "chunks": [list(c) for c in g.chunks]}
                       for g in lay.groups]} for lay in self.layers]}

    @classmethod
    def from_dict(cls, doc: dict) -> HardwareLayout:
        return cls(tuple(
            LayerLayout(d["name"], d["n_in"], d["n_out"], tuple(
                Group(g["neurons"][0], g["neurons"][1], tuple(tuple(c) for c in g["chunks"]))
                for g in d["groups"]), d["lanes"])
            for d in doc["layers"]), source=doc["source"])


# the keys spikeforge map writes (mapping.output.mapping_document); others are typos
_DOC_KEYS = frozenset({"format", "qnet", "hardware", "layers", "placement", "predicted",
                       "tiles"})
_TILE_KEYS = frozenset({"slot", "position", "fragment", "layer", "role", "neurons", "axons",
                        "n_axons", "memory_bits", "partial_to", "spikes_to", "to_io"})


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _ranges(value, where: str, n_in: int, seen: np.ndarray, group: str) -> list[int]:
    """The lines of ``axons`` ranges, each inside ``[0, n_in)``; ``seen`` marks the group's."""
    if not isinstance(value, list):
        raise LayoutError(where, "axons", f"must be a list of [lo, hi) ranges, not {short(value)}")
    lines: list[int] = []
    for r in value:
        if (not isinstance(r, list) or len(r) != 2 or not all(_is_int(x) for x in r)
                or r[0] >= r[1]):
            raise LayoutError(where, "axons", f"{short(r)} is not a [lo, hi) range of integers")
        if r[0] < 0 or r[1] > n_in:
            raise LayoutError(where, "axons", f"[{short(r[0])}, {short(r[1])}) is outside the "
                              f"layer's input lines [0, {n_in})")
        twice = np.flatnonzero(seen[r[0]:r[1]])
        if len(twice):
            raise LayoutError(where, "axons", f"line {r[0] + int(twice[0])} appears twice in "
                              f"the axons of neurons {group}")
        seen[r[0]:r[1]] = True
        lines.extend(range(r[0], r[1]))
    return lines


def _tile_int(t: dict, key: str, where: str) -> int:
    if key not in t:
        raise LayoutError(where, key, "is missing")
    v = t[key]
    if not _is_int(v) or v < 0:
        raise LayoutError(where, key, f"must be an integer >= 0, not {short(v)}")
    return v


def choose_layout(qnet: QNet, mapping: str | Path | None = None,
                  lanes: int | None = None) -> HardwareLayout:
    """The layout of a ``mapping.yaml`` if one is given, else the default; ``lanes`` overrides."""
    if mapping is None:
        return HardwareLayout.default(qnet, lanes)
    return load_layout(mapping, qnet, lanes)


def load_layout(path: str | Path, qnet: QNet, lanes: int | None = None) -> HardwareLayout:
    """Read a ``mapping.yaml`` (``format: mapping/1``) into the layout it describes.

    Chunks keep only the rows with a nonzero weight into their group. ``lanes``
    overrides ``hardware.tile.neuron_lanes``. Raises :class:`LayoutError` (or a
    :class:`ConfigError` for unreadable YAML) with the file and field.
    """
    return layout_from_document(read_yaml(Path(path)), qnet, lanes, source=str(path))


def layout_from_document(doc, qnet: QNet, lanes: int | None = None,
                         source: str = "mapping") -> HardwareLayout:
    """The layout of a mapping document (the content of a ``mapping.yaml``); see
    :func:`load_layout`.

    Every number is checked before anything is built from it: integers only (no
    ``true``, no ``3.7``), neurons inside the layer's ``[0, n_out)``, axons inside
    its ``[0, n_in)`` and in one chunk of a group only, at most
    :data:`MAX_MAPPING_TILES` tiles, lanes in ``1..``:data:`MAX_LANES`.
    """
    src = source
    if not isinstance(doc, dict) or doc.get("format") != MAPPING_FORMAT:
        raise LayoutError(src, "format", f"must be {MAPPING_FORMAT} (written by spikeforge map)")
    extra = sorted(str(k) for k in doc if k not in _DOC_KEYS)
    if extra:
        raise LayoutError(src, extra[0][:80], "unknown key")
    field = "hardware.tile.neuron_lanes"
    try:
        tile_lanes = doc["hardware"]["tile"]["neuron_lanes"]
    except (KeyError, TypeError):
        raise LayoutError(src, field, "is missing") from None
    if not _is_int(tile_lanes) or not 1 <= tile_lanes <= MAX_LANES:
        raise LayoutError(src, field, f"must be an integer in 1..{MAX_LANES}, not "
                          f"{short(tile_lanes)}")
    tiles = doc.get("tiles")
    p = tile_lanes if lanes is None else _check_lanes(lanes, "--lanes", "lanes")
    if not isinstance(tiles, list) or not tiles:
        raise LayoutError(src, "tiles", "must be a non-empty list")
    if len(tiles) > MAX_MAPPING_TILES:
        raise LayoutError(src, "tiles", f"lists {len(tiles)} tiles; at most "
                          f"{MAX_MAPPING_TILES} are supported")
    known = {layer.name: layer for layer in qnet.layers}
    by_layer: dict[str, dict[tuple[int, int], list[tuple[int, list[int]]]]] = {}
    seen: dict[tuple[str, tuple[int, int]], np.ndarray] = {}
    for k, t in enumerate(tiles):
        where = f"{src}: tiles.{k}"
        if not isinstance(t, dict):
            raise LayoutError(where, "-", f"must be a mapping, not {short(t)}")
        extra = sorted(str(key) for key in t if key not in _TILE_KEYS)
        if extra:
            raise LayoutError(where, extra[0][:80], "unknown key")
        for key in ("layer", "neurons", "axons"):
            if key not in t:
                raise LayoutError(where, key, "is missing")
        name, neurons = t["layer"], t["neurons"]
        frag = _tile_int(t, "fragment", where)
        if not isinstance(name, str):
            raise LayoutError(where, "layer", f"must be a layer name, not {short(name)}")
        if name not in known:
            raise LayoutError(where, "layer", f"layer {name[:80]} is not in the QNet")
        layer = known[name]
        if (not isinstance(neurons, list) or len(neurons) != 2
                or not all(_is_int(x) for x in neurons)):
            raise LayoutError(where, "neurons", f"{short(neurons)} is not a [lo, hi) range "
                              "of integers")
        lo, hi = neurons
        if not (0 <= lo < hi <= layer.n_out):
            raise LayoutError(where, "neurons", f"[{lo}, {hi}) is outside layer {name}'s "
                              f"neurons [0, {layer.n_out})")
        mask = seen.setdefault((name, (lo, hi)), np.zeros(layer.n_in, dtype=bool))
        lines = _ranges(t["axons"], where, layer.n_in, mask, f"[{lo}, {hi})")
        by_layer.setdefault(name, {}).setdefault((lo, hi), []).append((frag, lines))
    layers = []
    for layer in qnet.layers:
        groups_doc = by_layer.pop(layer.name, None)
        if groups_doc is None:
            raise LayoutError(src, "tiles", f"no tile holds layer {layer.name}")
        groups = []
        for (lo, hi), chunks in sorted(groups_doc.items()):
            chunks.sort(key=lambda c: c[0])  # chunk 0 (the neuron tile): lowest fragment
            keep = _nonzero_lines(layer.weights, lo, hi)
            groups.append(Group(lo, hi, tuple(tuple(i for i in c if i in keep)
                                              for _, c in chunks)))
        layers.append(LayerLayout(layer.name, layer.n_in, layer.n_out, tuple(groups),
                                  min(p, max(g.size for g in groups))))
    out = HardwareLayout(tuple(layers), source=src)
    out.check(qnet)
    return out
