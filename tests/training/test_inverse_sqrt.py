"""The warmup + inverse-square-root schedule against Vaswani et al.'s formula."""

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.errors import ConfigError
from seqlab.instantiate import build
from seqlab.training.schedules import InverseSqrt


def _values(schedule, steps):
    return np.asarray(schedule(np.asarray(steps, dtype="int64")), dtype=np.float64)


def test_inverse_sqrt_is_the_transformer_paper_formula():
    d_model, warmup = 512, 4000
    peak = (d_model * warmup) ** -0.5
    schedule = InverseSqrt(peak, total_steps=100_000, warmup_steps=warmup)
    steps = np.array([0, 1, 999, 3998, 3999, 4000, 10_000, 99_999, 300_000])
    n = steps + 1.0  # the paper counts steps from 1
    paper = d_model**-0.5 * np.minimum(n**-0.5, n * warmup**-1.5)
    np.testing.assert_allclose(_values(schedule, steps), paper, rtol=1e-5)
    # The peak is reached at n = w and is the optimizer's learning rate.
    assert float(schedule(warmup - 1)) == pytest.approx(peak, rel=1e-6)
    values = _values(schedule, range(3 * warmup))
    assert int(np.argmax(values)) == warmup - 1
    rising, falling = values[:warmup], values[warmup - 1 :]
    assert (np.diff(rising) > 0).all() and (np.diff(falling) < 0).all()


def test_inverse_sqrt_config_composes_and_round_trips():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["lr_schedule=inverse_sqrt", "lr_schedule.warmup_steps=10"])
    schedule = build(cfg.lr_schedule, learning_rate=2.0, total_steps=50)
    assert isinstance(schedule, InverseSqrt)
    np.testing.assert_allclose(_values(schedule, [0, 9, 39]), [0.2, 2.0, 1.0], rtol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    np.testing.assert_allclose(_values(again, [0, 9, 39]), [0.2, 2.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("warmup", [0, -3, 2.5, True])
def test_inverse_sqrt_bad_warmup_is_a_clear_error(warmup):
    with pytest.raises(ConfigError, match=r"lr_schedule.warmup_steps must be an integer >= 1"):
        InverseSqrt(1.0, warmup_steps=warmup)
