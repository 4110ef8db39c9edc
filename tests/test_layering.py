"""The hardware side needs only a QNet: importing it must not import torch."""

from __future__ import annotations

import subprocess
import sys


def test_hardware_side_and_cli_do_not_import_torch():
    code = (
        "import sys\n"
        "import spikeforge.hw, spikeforge.sim.fast, spikeforge.sim.cli, spikeforge.sim.runner\n"
        "import spikeforge.mapping, spikeforge.boards, spikeforge.reference, spikeforge.energy\n"
        "from spikeforge.cli import build_parser\n"
        "build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
