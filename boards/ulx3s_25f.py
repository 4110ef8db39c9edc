"""Radiona ULX3S with the LFE5U-25F (ECP5, CABGA381, speed 6), 25 MHz, FTDI UART."""

from spikeforge.boards.target import Family, Part, Target

LFE5U_25F_BG381 = Part(family=Family.ECP5, device="LFE5U-25F", package="BG381",
                       nextpnr_device="25k", nextpnr_package="CABGA381", speed="6",
                       luts=24288, ffs=24288, bram_blocks=56, dsps=28, user_io=197)

TARGETS = (
    Target(name="ulx3s-25f", part=LFE5U_25F_BG381, clock_hz=25e6,
           description="Radiona ULX3S, ECP5 LFE5U-25F, 25 MHz, USB UART",
           platform="amaranth_boards.ulx3s:ULX3S_25F_Platform"),
)
