"""Radiona ULX3S with the LFE5U-85F (ECP5, CABGA381, speed 6), 25 MHz, FTDI UART."""

from spikeforge.boards.target import Family, Part, Target

LFE5U_85F_BG381 = Part(family=Family.ECP5, device="LFE5U-85F", package="BG381",
                       nextpnr_device="85k", nextpnr_package="CABGA381", speed="6",
                       luts=83640, ffs=83640, bram_blocks=208, dsps=156, user_io=205)

TARGETS = (
    Target(name="ulx3s-85f", part=LFE5U_85F_BG381, clock_hz=25e6,
           description="Radiona ULX3S, ECP5 LFE5U-85F, 25 MHz, USB UART",
           platform="amaranth_boards.ulx3s:ULX3S_85F_Platform"),
)
