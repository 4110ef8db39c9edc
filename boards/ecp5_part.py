"""Generic ECP5 parts (speed 6, CABGA381), no board: resource and timing estimates.

The clock is only what nextpnr is asked to meet; ``build.json`` reports the Fmax reached.
"""

from spikeforge.boards.target import Family, Part, Target

_SIZES = (  # (nextpnr name, device, LUT4s, DP16KD blocks, 18x18 multipliers, user I/O)
    ("12k", "LFE5U-12F", 12096, 32, 28, 197),
    ("25k", "LFE5U-25F", 24288, 56, 28, 197),
    ("45k", "LFE5U-45F", 43848, 108, 72, 203),
    ("85k", "LFE5U-85F", 83640, 208, 156, 205),
)

TARGETS = tuple(
    Target(name=f"ecp5-{n}", clock_hz=50e6, platform=None,
           description=f"bare {dev}-BG381, speed 6 (part only: estimates, no pinout)",
           part=Part(family=Family.ECP5, device=dev, package="BG381", nextpnr_device=n,
                     nextpnr_package="CABGA381", speed="6", luts=luts, ffs=luts,
                     bram_blocks=ebr, dsps=dsp, user_io=io))
    for n, dev, luts, ebr, dsp, io in _SIZES
)
