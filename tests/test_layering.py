"""The hardware side needs only a QNet: importing any of it must not import torch.

Every module of ``spikeforge`` (core), ``spikeforge.hw``, ``.sim``, ``.mapping``
and ``.boards`` is imported, found by walking the packages, so a new module is
checked without being listed here.
"""

from __future__ import annotations

import subprocess
import sys

HARDWARE_SIDE = ("spikeforge.hw", "spikeforge.sim", "spikeforge.mapping", "spikeforge.boards")


def test_every_hardware_side_module_and_the_cli_do_not_import_torch():
    code = (
        "import importlib, pkgutil, sys\n"
        "import spikeforge\n"
        f"pkgs = {HARDWARE_SIDE!r}\n"
        "names = [m.name for m in pkgutil.iter_modules(spikeforge.__path__, 'spikeforge.')\n"
        "         if m.name not in ('spikeforge.model', 'spikeforge.dse', 'spikeforge.__main__')]\n"
        "for p in pkgs:\n"
        "    mod = importlib.import_module(p)\n"
        "    names += [m.name for m in pkgutil.iter_modules(mod.__path__, p + '.')]\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "from spikeforge.cli import build_parser\n"
        "build_parser()\n"
        "print(len(names), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert int(out[0]) >= 50, "the walk found too few modules"
    assert out[1] == "False"
