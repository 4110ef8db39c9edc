"""Float spiking models: surrogate gradients, LIF steps, training and QNet export."""

from .data import load_digits_split, rate_code_copies
from .export import layer_scales, to_qnet
from .mlp import LIFMLP, MLPOutput
from .neurons import LIFParams, beta_from_shifts, lif_step, readout_step
from .surrogate import DEFAULT_SCALE, SpikeFunction, Surrogate, spike, surrogate_grad
from .train import EpochStats, evaluate, predict, train

__all__ = [
    "DEFAULT_SCALE",
    "LIFMLP",
    "EpochStats",
    "LIFParams",
    "MLPOutput",
    "SpikeFunction",
    "Surrogate",
    "beta_from_shifts",
    "evaluate",
    "layer_scales",
    "lif_step",
    "load_digits_split",
    "predict",
    "rate_code_copies",
    "readout_step",
    "spike",
    "surrogate_grad",
    "to_qnet",
    "train",
]
