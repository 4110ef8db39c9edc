"""Logarithmic-depth selection trees: lowest set bit, and argmax with ties to the lowest index.

Every node is a named signal driven by one expression, so Yosys emits
continuous assigns (Icarus evaluates those at time 0, see layer.py) and no
subexpression is copied into its parent twice (a chain written as one
nested expression doubles in size at every level that reuses a child).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, Value

__all__ = ["argmax_tree", "lowest_set_tree"]


def _reduce(nodes, combine):
    level = 0
    while len(nodes) > 1:
        nxt = [combine(a, b, level, k) for k, (a, b) in enumerate(zip(nodes[::2], nodes[1::2]))]
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes, level = nxt, level + 1
    return nodes[0]


def lowest_set_tree(m: Module, bits: Value, index_width: int, name: str = "low"
                    ) -> tuple[Value, Value]:
    """``(any, index)``: whether a bit of ``bits`` is set and the lowest one's index."""
    leaves = [(bits[j], Const(j, index_width)) for j in range(len(bits))]

    def combine(a, b, level, k):
        any_, idx = Signal(name=f"{name}_any_{level}_{k}"), Signal(index_width,
                                                                    name=f"{name}_{level}_{k}")
        m.d.comb += [any_.eq(a[0] | b[0]), idx.eq(Mux(a[0], a[1], b[1]))]
        return any_, idx

    return _reduce(leaves, combine)


def argmax_tree(m: Module, scores: list[Value], index_width: int, name: str = "amax") -> Value:
    """Index of the largest score; ties go to the lowest index (``numpy.argmax``)."""
    leaves = [(s, Const(j, index_width)) for j, s in enumerate(scores)]

    def combine(a, b, level, k):
        score = Signal.like(a[0], name=f"{name}_s_{level}_{k}")
        idx = Signal(index_width, name=f"{name}_{level}_{k}")
        right = b[0] > a[0]  # strictly larger: a tie keeps the left, lower index
        m.d.comb += [score.eq(Mux(right, b[0], a[0])), idx.eq(Mux(right, b[1], a[1]))]
        return score, idx

    return _reduce(leaves, combine)[1]
