"""Host side of the serial protocol: stream a test set to a board, collect its answers.

:func:`run_samples` talks to anything with pyserial's ``write``/``read``: a
``serial.Serial`` on a real board, or :class:`spikeforge.boards.sim.SimulatedPort`
with the gateware in Amaranth's simulator (how the protocol is tested here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from spikeforge.boards.protocol import BoardResult, LinkFormat
from spikeforge.errors import SpikeforgeError

__all__ = ["BoardRun", "open_serial", "run_samples"]


@dataclass
class BoardRun:
    """Every sample's answer, and the host's wall time."""

    results: list[BoardResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def predictions(self) -> np.ndarray:
        return np.array([r.prediction for r in self.results], dtype=np.int64)

    @property
    def cycles(self) -> np.ndarray:
        return np.array([r.cycles for r in self.results], dtype=np.int64)

    def counters(self, layer: str, name: str) -> np.ndarray:
        return np.array([r.counters[layer][name] for r in self.results], dtype=np.int64)


def run_samples(port, link: LinkFormat, samples: np.ndarray, *,
                seeds: np.ndarray | None = None,
                progress: Callable[[int], None] | None = None) -> BoardRun:
    """Send every sample and read its result frame.

    Parameters
    ----------
    port
        An open serial port (``write(bytes)``, ``read(n)``).
    link : LinkFormat
        The build's protocol (from its ``build.json`` or the same QNet and options).
    samples : numpy.ndarray
        Spikes ``[N, T, n_in]``, or with the encoder 8-bit pixels ``[N, n_in]``.
    seeds : numpy.ndarray, optional
        uint32 ``[N]``, the encoder's seed per sample (encoder builds only).
    progress : callable, optional
        Called with the number of samples done after each one.
    """
    run = BoardRun()
    t0 = time.perf_counter()
    if link.encoder and seeds is None:
        raise SpikeforgeError("this build has the on-chip encoder: pixels need seeds")
    for k, sample in enumerate(samples):
        data = (link.encode_pixels(sample, int(seeds[k])) if link.encoder
                else link.encode_spikes(sample))
        port.write(data)
        frame = port.read(link.frame_bytes)
        try:
            run.results.append(link.decode(frame))
        except SpikeforgeError as e:
            raise SpikeforgeError(f"sample {k}: {e}") from None
        if run.results[-1].status:
            raise SpikeforgeError(f"sample {k}: the board reports status "
                                  f"{run.results[-1].status:#x} (bytes lost: a baud rate or "
                                  "cable problem, or a sample longer than the buffer)")
        if progress is not None:
            progress(k + 1)
    run.seconds = time.perf_counter() - t0
    return run


def open_serial(device: str, baud: int, timeout: float = 5.0):
    """A pyserial port; :class:`SpikeforgeError` (one line) when it cannot be opened."""
    try:
        import serial
    except ImportError:
        raise SpikeforgeError("board run needs pyserial (pip install pyserial)") from None
    try:
        return serial.Serial(device, baud, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as e:
        raise SpikeforgeError(f"--port {device}: {e}") from None
