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
and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, model_validator

from spikeforge.configbase import StrictModel, validation_error
from spikeforge.yamlio import read_yaml
from spikeforge.errors import ConfigError

__all__ = [
    "HardwareSpec",
    "IoPort",
    "MeshShape",
    "NocSpec",
    "TileSpec",
    "hardware_from_dict",
    "load_hardware",
]

_MAX_DIM = 256  # a 256 x 256 mesh is far beyond any chip this targets; catches typos


_Strict = StrictModel


class MeshShape(_Strict):
    """Mesh dimensions in tile positions."""

    rows: Annotated[int, Field(ge=1, le=_MAX_DIM)]
    cols: Annotated[int, Field(ge=1, le=_MAX_DIM)]


class TileSpec(_Strict):
    """Limits of one crossbar tile (all tiles are equal)."""

    axons: Annotated[int, Field(ge=1, le=1 << 20)]
    neurons: Annotated[int, Field(ge=1, le=1 << 20)]
    synapse_memory_bits: Annotated[int, Field(ge=2, le=1 << 34)]
    neuron_lanes: Annotated[int, Field(ge=1, le=1 << 16)] = 1

    @model_validator(mode="after")
    def _lanes_fit(self) -> TileSpec:
        if self.neuron_lanes > self.neurons:
            raise ValueError(
                f"neuron_lanes ({self.neuron_lanes}) exceeds neurons per tile ({self.neurons})"
            )
        return self


class NocSpec(_Strict):
    """Cost of moving one packet (a spike or a partial sum) one mesh hop."""

    hop_cycles: Annotated[int, Field(ge=0, le=1000)] = 1
    hop_energy_pj: Annotated[float, Field(ge=0.0)] = 1.0


class IoPort(_Strict):
    """Where input spikes enter the mesh; may lie one step outside it (a border port)."""

    row: int = 0
    col: int = -1


class HardwareSpec(_Strict):
    """A mesh of equal crossbar tiles; see the module docstring for the fields."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")] = "hardware"
    mesh: MeshShape
    tiles: Annotated[int, Field(ge=1)] | None = None  # None: every mesh position
    tile: TileSpec
    noc: NocSpec = NocSpec()
    io: IoPort = IoPort()
    clock_mhz: Annotated[float, Field(gt=0.0, le=100_000.0)] = 100.0

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
