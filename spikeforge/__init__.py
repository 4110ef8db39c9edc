"""spikeforge: spiking neural networks from PyTorch training to bit-exact FPGA hardware."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spikeforge")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.1.0"
