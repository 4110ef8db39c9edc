"""The `spikeforge train` configuration, defined torch-free in :mod:`spikeforge.trainconfig`.

Re-exported here (the same classes), so ``spikeforge run`` and the DSE read the
trainer's sections without importing torch. Edit :mod:`spikeforge.trainconfig`.
"""

from __future__ import annotations

from spikeforge.trainconfig import (  # noqa: F401
    MAX_ACTIVATIONS,
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_INPUT_VALUES,
    MAX_PARAMETERS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_TIMESTEPS,
    ConvParams,
    ConvSpec,
    DataConfig,
    Dataset,
    DenseSpec,
    DropoutSpec,
    Encoding,
    EncodingConfig,
    EvalConfig,
    ExportConfig,
    FlattenSpec,
    LayerSpec,
    ModelConfig,
    NeuronConfig,
    Optimizer,
    PoolKind,
    PoolParams,
    PoolSpec,
    Readout,
    Schedule,
    Surrogate,
    TrainConfig,
    TrainRunConfig,
    __all__,
    _config_error,
    _SizeError,
    load_train_config,
    model_sizes,
)
