"""Generic iCE40 parts, no board: resource and timing estimates (pins placed by nextpnr).

The clock is only what nextpnr is asked to meet; ``build.json`` reports the Fmax reached.
"""

from spikeforge.boards.target import Family, Part, Target

_PARTS = (
    Part(family=Family.ICE40, device="iCE40UP5K", package="SG48", nextpnr_device="up5k",
         nextpnr_package="sg48", luts=5280, ffs=5280, bram_blocks=30, dsps=8, user_io=39),
    Part(family=Family.ICE40, device="iCE40HX8K", package="CT256", nextpnr_device="hx8k",
         nextpnr_package="ct256", luts=7680, ffs=7680, bram_blocks=32, dsps=0, user_io=206),
    Part(family=Family.ICE40, device="iCE40HX1K", package="TQ144", nextpnr_device="hx1k",
         nextpnr_package="tq144", luts=1280, ffs=1280, bram_blocks=16, dsps=0, user_io=95),
)

TARGETS = tuple(
    Target(name=f"ice40-{p.nextpnr_device}", part=p, clock_hz=12e6, platform=None,
           description=f"bare {p.device}-{p.package} (part only: estimates, no pinout)")
    for p in _PARTS
)
