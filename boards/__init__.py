"""spikeforge.boards: FPGA targets, fits check, on-board top with a UART, builds and host runs.

Never imports torch: a QNet file is enough to build and run a network on a board.
"""

from spikeforge.boards.protocol import BoardResult, LinkFormat
from spikeforge.boards.target import Family, Part, Target, TargetError, get_target, targets

__all__ = ["BoardResult", "Family", "LinkFormat", "Part", "Target", "TargetError", "get_target",
           "targets"]
