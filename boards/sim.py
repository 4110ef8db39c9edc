"""The on-board top in Amaranth's simulator, behind a pyserial-like port.

:class:`SimulatedPort` drives the core's ``rx`` pin bit by bit and decodes its
``tx`` pin at the middle of every bit, so the host code of
:mod:`spikeforge.boards.host` talks to the simulated gateware (UART included)
exactly as it talks to a board over USB.
"""

from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

from spikeforge.boards.top import BoardCore

__all__ = ["SimulatedPort"]

_PERIOD = 1e-6  # simulated clock period (the value does not matter)


class SimulatedPort:
    """``write``/``read`` of bytes to a :class:`BoardCore` running in the simulator.

    Parameters
    ----------
    core : BoardCore
        The design (use a small divisor, e.g. 4, to keep the simulation short).
    timeout_cycles : int
        ``read`` gives up (returning what it has) after this many cycles without
        a new byte, as a serial port's timeout would.
    gap_bits : int
        Idle bit times the driver leaves between bytes (0: back to back).
    """

    def __init__(self, core: BoardCore, *, timeout_cycles: int = 200_000, gap_bits: int = 0):
        self.core = core
        self.timeout_cycles = timeout_cycles
        self._gap = gap_bits
        self._to_board: deque[int] = deque()
        self._from_board: deque[int] = deque()
        self.cycles = 0
        self._sim = None  # built on the first read, so an unused port leaves nothing behind

    def _simulator(self) -> Simulator:
        if self._sim is None:
            self._sim = Simulator(self.core)
            self._sim.add_clock(_PERIOD)
            self._sim.add_testbench(self._drive, background=True)
            self._sim.add_testbench(self._monitor, background=True)
        return self._sim

    async def _drive(self, ctx):
        div = self.core.divisor
        rx = self.core.rx
        ctx.set(rx, 1)
        while True:
            if not self._to_board:
                await ctx.tick()
                continue
            byte = self._to_board.popleft()
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                ctx.set(rx, bit)
                await ctx.tick().repeat(div)
            if self._gap:
                await ctx.tick().repeat(self._gap * div)

    async def _monitor(self, ctx):
        div = self.core.divisor
        tx = self.core.tx
        while True:
            await ctx.tick()
            if ctx.get(tx):
                continue
            await ctx.tick().repeat(div // 2)  # middle of the start bit
            if ctx.get(tx):
                continue  # a glitch
            byte = 0
            for k in range(8):
                await ctx.tick().repeat(div)
                byte |= ctx.get(tx) << k
            await ctx.tick().repeat(div)
            if ctx.get(tx):  # a stop bit; a missing one drops the byte, as a UART does
                self._from_board.append(byte)

    def write(self, data: bytes) -> int:
        self._to_board.extend(data)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes; fewer when ``timeout_cycles`` pass without a new one."""
        sim = self._simulator()
        out = bytearray()
        idle = 0
        step = 64 * self.core.divisor
        while len(out) < size and idle < self.timeout_cycles:
            if self._from_board:
                out.append(self._from_board.popleft())
                idle = 0
                continue
            self.cycles += step
            sim.run_until(self.cycles * _PERIOD)
            idle += step
        return bytes(out)

    def reset_input_buffer(self) -> None:
        self._from_board.clear()

    def close(self) -> None:
        pass
