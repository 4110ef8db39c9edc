"""Float spiking models: neurons, surrogate gradients, encoders, layers, training, QNet export.

Neuron dynamics are pure step functions (:mod:`.neurons`) run by one generic
time loop, with a fused equivalent for speed (:mod:`.kernels`); layers are
time-major (:mod:`.layers`); :func:`train_from_config` trains from YAML.
"""

from .augment import Augment, augment_batch
from .backres import BackRes
from .config import TrainRunConfig, load_train_config
from .convert import Conversion, Method, ReLUNet, convert
from .data import load_digits_split, rate_code_copies
from .encoders import (
    Encoding,
    bernoulli_spikes,
    direct_input,
    encode,
    latency_spikes,
    regular_spikes,
)
from .engine import (
    EpochResult,
    epoch_seed,
    evaluate_encoded,
    predict_encoded,
    retain_freed_memory,
    train_epoch,
)
from .export import FloatDense, float_layers, layer_scales, to_qnet
from .hybrid import ReLU, hybrid_mlp
from .kernels import Backend, lif_sequence, lif_sequence_reference
from .layers import (
    LIF,
    BatchNorm,
    Conv2d,
    Dense,
    DenseReadout,
    Dropout,
    Flatten,
    Pool2d,
    PoolKind,
    SpikeCountReadout,
    fold_batchnorm,
)
from .mlp import LIFMLP, MLPOutput
from .network import SNN, LayerActivity, SNNOutput
from .neurons import (
    LIFParams,
    RefractoryState,
    ShiftLIFParams,
    beta_from_shifts,
    lif_step,
    readout_step,
    refractory_lif_step,
    run_steps,
    shift_leak,
    shift_lif_step,
)
from .opcount import LayerOps, OpCount, count_ops
from .quantize import ClipRule, QuantSNN, post_training_quantize
from .stdp import (
    Competition,
    CompetitiveParams,
    STDPLayer,
    STDPParams,
    competitive_step,
    stdp_to_qnet,
    stdp_update,
    train_stdp,
)
from .stochmax import Stochmax
from .surrogate import DEFAULT_SCALE, SpikeFunction, Surrogate, spike, surrogate_grad
from .train import EpochStats, evaluate, predict, train
from .trainer import build_model, train_from_config

__all__ = [
    "DEFAULT_SCALE",
    "LIF",
    "LIFMLP",
    "SNN",
    "Augment",
    "BackRes",
    "BatchNorm",
    "Backend",
    "ClipRule",
    "Competition",
    "CompetitiveParams",
    "Conv2d",
    "Conversion",
    "Dense",
    "DenseReadout",
    "Dropout",
    "Encoding",
    "EpochResult",
    "EpochStats",
    "Flatten",
    "FloatDense",
    "LIFParams",
    "LayerActivity",
    "LayerOps",
    "MLPOutput",
    "Method",
    "OpCount",
    "Pool2d",
    "PoolKind",
    "QuantSNN",
    "ReLU",
    "ReLUNet",
    "RefractoryState",
    "SNNOutput",
    "STDPLayer",
    "STDPParams",
    "ShiftLIFParams",
    "SpikeCountReadout",
    "SpikeFunction",
    "Stochmax",
    "Surrogate",
    "TrainRunConfig",
    "bernoulli_spikes",
    "beta_from_shifts",
    "augment_batch",
    "build_model",
    "competitive_step",
    "convert",
    "count_ops",
    "direct_input",
    "encode",
    "epoch_seed",
    "evaluate",
    "evaluate_encoded",
    "float_layers",
    "fold_batchnorm",
    "hybrid_mlp",
    "latency_spikes",
    "layer_scales",
    "lif_sequence",
    "lif_sequence_reference",
    "lif_step",
    "load_digits_split",
    "load_train_config",
    "post_training_quantize",
    "predict",
    "predict_encoded",
    "rate_code_copies",
    "readout_step",
    "refractory_lif_step",
    "regular_spikes",
    "retain_freed_memory",
    "run_steps",
    "shift_leak",
    "shift_lif_step",
    "spike",
    "stdp_to_qnet",
    "stdp_update",
    "surrogate_grad",
    "to_qnet",
    "train",
    "train_epoch",
    "train_from_config",
    "train_stdp",
]
