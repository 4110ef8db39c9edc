"""Verification of the generated RTL against the QNet reference (cocotb, Amaranth sim).

Never imports torch.
"""

__all__: list[str] = []
