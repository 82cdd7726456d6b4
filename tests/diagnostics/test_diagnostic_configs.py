"""The YAML side: callbacks=diagnostics and the experiment presets compose and build."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from seqlab.cli import CONFIG_DIR
from seqlab.diagnostics import GradientNormMonitor, RecurrentSpectrumMonitor, TimeGradientMonitor
from seqlab.experiment import _callbacks_from_config
from seqlab.training.callbacks import LastGoodCheckpoint, StopOnNonFinite


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_callbacks_diagnostics_adds_the_monitors_to_the_defaults():
    cfg = _compose("callbacks=diagnostics")
    kinds = {type(c) for c in _callbacks_from_config(cfg.callbacks)}
    assert {LastGoodCheckpoint, StopOnNonFinite, GradientNormMonitor, RecurrentSpectrumMonitor,
            TimeGradientMonitor} <= kinds
    assert cfg.callbacks.grad_norms.every_n_steps == 50
    assert cfg.callbacks.spectrum.every_n_steps == 50


@pytest.mark.parametrize(
    "preset, cell, kwargs_keys, out_shape",
    [("adding", "simple_rnn", {"input_dim", "output_dim"}, (None, 1)),
     ("copy_memory", "gru", {"vocab_size", "num_classes"}, (None, None, 10))],
)
def test_presets_build_data_and_model(preset, cell, kwargs_keys, out_shape):
    cfg = _compose(f"experiment={preset}", f"model/cell={cell}", "data.length=12", "data.train_size=40",
                   "data.validation_size=8", "data.test_size=8", "model.hidden_size=4",
                   "+model.cell.recurrent_initializer=identity")
    assert cfg.tracking.experiment_name == "vanishing_gradients"
    assert "sampler" not in cfg.callbacks and "sampler" not in cfg.data
    t = cfg.trainer
    bundle = instantiate(cfg.data, batch_size=t.batch_size if t.batch_size <= 40 else 8, seed=t.seed)
    assert bundle.callbacks == [] and bundle.throughput_unit == "sequences"
    assert set(bundle.model_kwargs) == kwargs_keys
    model = instantiate(cfg.model, **bundle.model_kwargs)
    assert model.output_shape == out_shape
    import numpy as np

    assert np.array_equal(np.asarray(model.get_layer("rnn_0").cell.recurrent_kernel)[:, :4], np.eye(4))
