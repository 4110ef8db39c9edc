"""Optional dependencies: with an extra's packages blocked, what needs them says so in one
line naming the extra, and everything else still works (training export included)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = "import sys\nfor m in {mods!r}:\n    sys.modules[m] = None  # import raises ImportError\n"

EXTRAS = {"nir": ("nir", "nirtorch")}


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_missing_extra_is_one_line_naming_it(extra):
    code = BLOCK.format(mods=EXTRAS[extra]) + (
        "from spikeforge.errors import SpikeforgeError\n"
        "try:\n"
        "    import spikeforge.model.nir_io\n"
        "except SpikeforgeError as e:\n"
        "    print(str(e))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert len(line.splitlines()) == 1 and f"spikeforge[{extra}]" in line


def test_training_export_needs_no_nir():
    code = BLOCK.format(mods=EXTRAS["nir"]) + (
        "import torch\n"
        "from spikeforge.model.layers import LIF, Dense, DenseReadout\n"
        "from spikeforge.model.network import SNN\n"
        "from spikeforge.model.lowering import snn_to_qnet\n"
        "torch.manual_seed(0)\n"
        "net = SNN([Dense(6, 4), LIF(0.875), DenseReadout(4, 2)])\n"
        "q = snn_to_qnet(net, (6,), weight_bits=8, membrane_bits=16, timesteps=3)\n"
        "print([l.n_out for l in q.layers],\n"
        "      'nir' in sys.modules and sys.modules['nir'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("]")[-1].strip() == "False"
