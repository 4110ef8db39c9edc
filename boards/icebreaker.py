"""iCEBreaker v1.0: Lattice iCE40UP5K-SG48, 12 MHz oscillator, FTDI UART (pins 6 rx, 9 tx).

The UP5K also has four 256 kbit SPRAMs; the generated design does not use them
(yosys maps the weight memories to the 30 EBRs only), so the fits check counts EBR.
"""

from spikeforge.boards.target import Family, Part, Target

UP5K_SG48 = Part(family=Family.ICE40, device="iCE40UP5K", package="SG48",
                 nextpnr_device="up5k", nextpnr_package="sg48",
                 luts=5280, ffs=5280, bram_blocks=30, dsps=8, user_io=39)

TARGETS = (
    Target(name="icebreaker", part=UP5K_SG48, clock_hz=12e6,
           description="1BitSquared iCEBreaker, iCE40UP5K, 12 MHz, USB UART",
           platform="amaranth_boards.icebreaker:ICEBreakerPlatform"),
)
