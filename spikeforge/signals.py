"""SIGTERM and SIGHUP behave like Ctrl-C.

:func:`install` makes both raise :class:`Terminated` (a ``KeyboardInterrupt``)
in the main thread, so every ``finally`` and every cleanup written for Ctrl-C
runs for them too: staging folders are removed, child processes started with
:mod:`subprocess` are killed, Dask clusters are closed. The CLI then exits with
status 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator

__all__ = ["Terminated", "exit_status", "held", "install", "terminating"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, frame) -> None:
    raise Terminated(signum)


def install() -> None:
    """Route SIGTERM and SIGHUP to :class:`Terminated` (main thread only)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            signal.signal(sig, _raise)


def exit_status(e: KeyboardInterrupt) -> int:
    """128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + (e.signum if isinstance(e, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def terminating(proc: subprocess.Popen, grace: float = 5.0) -> Iterator[subprocess.Popen]:
    """Terminate ``proc`` (then kill it) if the block is left by an exception."""
    try:
        yield proc
    except BaseException:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for the block (delivered when it ends).

    For the few steps that must not be cut in half: moving outputs into place,
    stopping children. Outside the main thread it holds nothing.
    """
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (ValueError, OSError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
