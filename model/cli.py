"""The ``spikeforge train CONFIG --out DIR`` sub-command.

Its parser lives in :mod:`spikeforge.cli` (so that commands other than
``train`` never import torch); it is re-exported here for callers that build
their own argument parsers.
"""

from __future__ import annotations

from spikeforge.cli import add_train_parser as add_parser

__all__ = ["add_parser"]
