"""The hardware description a mapping targets: a mesh of crossbar tiles (YAML, pydantic).

A chip is ``rows x cols`` mesh positions of which ``tiles`` hold a crossbar
tile (the first ``tiles`` in row-major order; the rest are routers only). Every
tile has the same limits: ``axons`` input lines, ``neurons`` output neurons,
``synapse_memory_bits`` of weight memory and ``neuron_lanes`` parallel LIF
update lanes. A spike or partial-sum packet costs ``hop_cycles`` and
``hop_energy_pj`` per mesh hop; input spikes enter (and output spikes leave)
at the I/O port ``io``, a position just outside the mesh.

Example (``examples/hw/mesh4x4_256.yaml``)::

    name: mesh4x4_256
    mesh: {rows: 4, cols: 4}
    tiles: 16
    tile: {axons: 256, neurons: 256, synapse_memory_bits: 524288, neuron_lanes: 8}
    noc: {hop_cycles: 1, hop_energy_pj: 2.0}
    io: {row: 0, col: -1}
    clock_mhz: 100

Every error is one :class:`~spikeforge.errors.ConfigError` line naming the file
and the field. Integers must be integers (``true``, ``3.7`` and ``"4"`` are
refused) and everything is bounded before anything is allocated: at most
:data:`MAX_TILES` mesh positions (the placer keeps position-by-position
matrices, see :func:`placement_bytes`), at most :data:`MAX_TILE_LINES` axons and
neurons per tile.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, model_validator

from spikeforge.configbase import StrictModel, validation_error
from spikeforge.errors import ConfigError
from spikeforge.yamlio import read_yaml

__all__ = [
    "MAX_MAPPER_BYTES",
    "MAX_TILES",
    "MAX_TILE_LINES",
    "HardwareSpec",
    "IoPort",
    "MeshShape",
    "NocSpec",
    "TileSpec",
    "hardware_from_dict",
    "load_hardware",
    "placement_bytes",
]

#: Mesh positions (``rows * cols``) a hardware description may have: the placer keeps
#: position-by-position distance and traffic matrices (:func:`placement_bytes`).
MAX_TILES = 4096
_MAX_DIM = MAX_TILES  # one side; rows * cols <= MAX_TILES is checked too
#: Axons and neurons of one tile.
MAX_TILE_LINES = 1 << 16
#: The most memory the placer's matrices may take (bytes), checked before any is made.
MAX_MAPPER_BYTES = 2 << 30


def placement_bytes(n_tiles: int) -> int:
    """Bytes of the placer's largest matrices for ``n_tiles`` tiles (I/O port included).

    :class:`~spikeforge.mapping.placement.PlacementProblem` keeps the distances
    between every two positions and the symmetric traffic, the traffic pass
    keeps three ``[F+1, F+1]`` matrices (``F <= n_tiles``) and their sum: about
    six float64 matrices of ``(n_tiles + 1)^2``.
    """
    return 6 * 8 * (n_tiles + 1) ** 2


_Strict = StrictModel
_Int = Annotated[int, Field(strict=True)]  # no bools, no 3.7, no "4"
_Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class MeshShape(_Strict):
    """Mesh dimensions in tile positions."""

    rows: Annotated[_Int, Field(ge=1, le=_MAX_DIM)]
    cols: Annotated[_Int, Field(ge=1, le=_MAX_DIM)]

    @model_validator(mode="after")
    def _size(self) -> MeshShape:
        if self.rows * self.cols > MAX_TILES:
            raise ValueError(f"{self.rows}x{self.cols} = {self.rows * self.cols} positions; "
                             f"at most {MAX_TILES} are supported")
        return self


class TileSpec(_Strict):
    """Limits of one crossbar tile (all tiles are equal)."""

    axons: Annotated[_Int, Field(ge=1, le=MAX_TILE_LINES)]
    neurons: Annotated[_Int, Field(ge=1, le=MAX_TILE_LINES)]
    synapse_memory_bits: Annotated[_Int, Field(ge=2, le=1 << 34)]
    neuron_lanes: Annotated[_Int, Field(ge=1, le=MAX_TILE_LINES)] = 1

    @model_validator(mode="after")
    def _lanes_fit(self) -> TileSpec:
        if self.neuron_lanes > self.neurons:
            raise ValueError(
                f"neuron_lanes ({self.neuron_lanes}) exceeds neurons per tile ({self.neurons})"
            )
        return self


class NocSpec(_Strict):
    """Cost of moving one packet (a spike or a partial sum) one mesh hop."""

    hop_cycles: Annotated[_Int, Field(ge=0, le=1000)] = 1
    hop_energy_pj: Annotated[_Float, Field(ge=0.0, le=1e9)] = 1.0


class IoPort(_Strict):
    """Where input spikes enter the mesh; may lie one step outside it (a border port)."""

    row: Annotated[_Int, Field(ge=-1, le=_MAX_DIM)] = 0
    col: Annotated[_Int, Field(ge=-1, le=_MAX_DIM)] = -1


class HardwareSpec(_Strict):
    """A mesh of equal crossbar tiles; see the module docstring for the fields."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")] = "hardware"
    mesh: MeshShape
    tiles: Annotated[_Int, Field(ge=1, le=MAX_TILES)] | None = None  # None: every position
    tile: TileSpec
    noc: NocSpec = NocSpec()
    io: IoPort = IoPort()
    clock_mhz: Annotated[_Float, Field(gt=0.0, le=100_000.0)] = 100.0

    @model_validator(mode="after")
    def _check(self) -> HardwareSpec:
        positions = self.mesh.rows * self.mesh.cols
        if self.tiles is not None and self.tiles > positions:
            raise ValueError(
                f"tiles ({self.tiles}) exceeds the {self.mesh.rows}x{self.mesh.cols} mesh "
                f"({positions} positions) by {self.tiles - positions}"
            )
        r, c = self.io.row, self.io.col
        inside_r = 0 <= r < self.mesh.rows
        inside_c = 0 <= c < self.mesh.cols
        border = (inside_r and c in (-1, self.mesh.cols)) or (inside_c and r in (-1,
                                                                                 self.mesh.rows))
        if not border:
            raise ValueError(f"io ({r}, {c}) must sit just outside the mesh, next to a tile")
        need = placement_bytes(self.n_tiles)
        if need > MAX_MAPPER_BYTES:
            raise ValueError(f"{self.n_tiles} tiles need about {need / 2**30:.1f} GiB of "
                             f"placement matrices; at most {MAX_MAPPER_BYTES / 2**30:.0f} GiB")
        return self

    @property
    def n_tiles(self) -> int:
        """Number of crossbar tiles."""
        return self.tiles if self.tiles is not None else self.mesh.rows * self.mesh.cols

    def position(self, slot: int) -> tuple[int, int]:
        """``(row, col)`` of tile slot ``slot`` (row-major)."""
        return divmod(slot, self.mesh.cols)

    @property
    def tile_positions(self) -> list[tuple[int, int]]:
        """``(row, col)`` of every tile slot, row-major."""
        return [self.position(s) for s in range(self.n_tiles)]


def load_hardware(path: str | os.PathLike[str]) -> HardwareSpec:
    """Read and validate a hardware description.

    Parameters
    ----------
    path : path-like
        YAML file.

    Returns
    -------
    HardwareSpec
        The validated description.

    Raises
    ------
    ConfigError
        One line naming the file, the field and what is wrong.
    """
    p = Path(path)
    doc = read_yaml(p)
    if not isinstance(doc, dict):
        raise ConfigError(str(p), "-", "must be a YAML mapping")
    return hardware_from_dict(doc, source=str(p))


def hardware_from_dict(doc: dict, source: str = "<hardware>") -> HardwareSpec:
    """Validate a hardware description given as a mapping (see :func:`load_hardware`)."""
    try:
        return HardwareSpec.model_validate(doc)
    except ValidationError as e:
        raise validation_error(source, e) from None
