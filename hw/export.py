"""Verilog generation for a QNet (deterministic: same QNet, same bytes)."""

from __future__ import annotations

import os
from pathlib import Path

from amaranth.back import verilog

from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.top import Network
from spikeforge.qnet import QNet

__all__ = ["TOP_NAME", "to_verilog", "write_verilog"]

TOP_NAME = "spikeforge_top"


def to_verilog(qnet: QNet, name: str = TOP_NAME, *, encoder: bool = False,
               layout: HardwareLayout | None = None, probes: bool = True) -> str:
    """Return the Verilog text of the network top for ``qnet`` (default layout without one).

    ``probes=False`` leaves out the verification copies of firing layers' membranes.
    """
    top = Network(qnet, encoder=encoder, layout=layout, probes=probes)
    return verilog.convert(top, name=name, emit_src=False)


def write_verilog(qnet: QNet, out_dir: str | os.PathLike[str], name: str = TOP_NAME, *,
                  encoder: bool = False, layout: HardwareLayout | None = None) -> Path:
    """Write ``out_dir/NAME.v`` atomically and return its path."""
    text = to_verilog(qnet, name, encoder=encoder, layout=layout)  # fails before writing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.v"
    tmp = path.with_suffix(".v.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
