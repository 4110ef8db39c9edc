"""NIR import and export (needs the ``nir`` extra: ``pip install 'spikeforge[nir]'``).

Export a trained :class:`~spikeforge.model.network.SNN` or
:class:`~spikeforge.model.mlp.LIFMLP` with :func:`to_nir`; import a graph made
by another tool (snnTorch, Norse, Sinabs, ...) as a float network with
:func:`from_nir` or straight into a QNet with :func:`nir_to_qnet`. The neuron
conventions are in :mod:`.nir_convention` and docs/NIR.md. Kept out of
``spikeforge.model``'s own imports so that the package loads without ``nir``.
"""

from __future__ import annotations

import os

from spikeforge.extras import require

from .lowering import LoweringError, dense_equivalent, snn_to_qnet
from .nir_convention import (
    DEFAULT_DT,
    RESET_METADATA,
    NIRError,
    beta_from_tau,
    leak_shifts_for,
    nearest_leak,
    tau_from_beta,
    threshold_from_nir,
    threshold_to_nir,
)
from .nir_export import lifmlp_to_snn, to_nir
from .nir_import import NIRNetwork, chain_layers, from_nir, nir_to_qnet, node_chain

nir = require("nir", "nir", "NIR support")

__all__ = [
    "DEFAULT_DT",
    "RESET_METADATA",
    "LoweringError",
    "NIRError",
    "NIRNetwork",
    "beta_from_tau",
    "chain_layers",
    "dense_equivalent",
    "from_nir",
    "leak_shifts_for",
    "lifmlp_to_snn",
    "nearest_leak",
    "nir_to_qnet",
    "node_chain",
    "read_nir",
    "snn_to_qnet",
    "tau_from_beta",
    "threshold_from_nir",
    "threshold_to_nir",
    "to_nir",
    "write_nir",
]


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike[str]) -> None:
    """Write ``graph`` to ``path`` (HDF5, ``nir.write``) through a temporary name.

    Parameters
    ----------
    graph : nir.NIRGraph
        The graph.
    path : str or path-like
        Destination, conventionally ``NAME.nir``.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_nir(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """Read a NIR file (``nir.read``)."""
    return nir.read(os.fspath(path))
