"""build_transformer_lm and build_transformer_classifier: shapes, causality,
padding, learning, saving, configs and bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.config_check import check_config
from seqlab.errors import ConfigError
from seqlab.models.transformer import build_transformer_classifier, build_transformer_lm

POSITIONS = ["learned", "sinusoidal", "rope"]


def tiny_lm(position="learned", **options):
    keras.utils.set_random_seed(0)
    kwargs = dict(vocab_size=11, max_length=12, d_model=16, num_heads=2, num_layers=2)
    kwargs.update(options)
    return build_transformer_lm(position=position, init_std=0.2, **kwargs)


@pytest.mark.parametrize("position", POSITIONS)
def test_lm_is_causal(position):
    """Changing the tokens after position t leaves the logits at positions <= t unchanged."""
    model = tiny_lm(position)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 11, (2, 10))
    base = np.asarray(model(tokens))
    assert base.shape == (2, 10, 11) and base.dtype == np.float32
    for t in (0, 4, 8):
        changed = tokens.copy()
        changed[:, t + 1 :] = rng.integers(0, 11, changed[:, t + 1 :].shape)
        assert (changed != tokens).any()
        out = np.asarray(model(changed))
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)
        assert not np.allclose(out[:, t + 1 :], base[:, t + 1 :], atol=1e-4)


def test_lm_layers_and_tied_weights():
    tied = tiny_lm(norm_first=False)
    assert [layer.name for layer in tied.layers] == [
        "tokens",
        "embedding",
        "position",
        "block_0",
        "block_1",
        "logits",
    ]
    untied = tiny_lm(tie_weights=False, dropout=0.1)
    assert "embedding_dropout" in [layer.name for layer in untied.layers]
    # Untied: a Dense(16 -> 11) instead of a bias of 11; the final LayerNorm is in both.
    assert untied.count_params() - tiny_lm().count_params() == 16 * 11
    rope = tiny_lm("rope")
    assert "position" not in [layer.name for layer in rope.layers]
    assert rope.get_layer("block_0").attention.rotary


def test_lm_trains_and_generates_under_mixed_precision(tmp_path):
    """mixed_bfloat16 (trainer.precision): bf16 matmuls, float32 softmax, norms and logits."""
    from seqlab.generation import generate

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny_lm("rope")
        assert model.output.dtype == "float32"
        assert model.get_layer("block_0").attention.compute_dtype == "bfloat16"
        x = np.tile(np.arange(1, 9), (4, 2))
        model.compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        history = model.fit(x[:, :-1], x[:, 1:], epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        for jit in (False, True):
            out = generate(model, [1, 2, 3], 16, strategy="greedy", jit_compile=jit)
            assert out.shape == (1, 16) and 0 <= out.min() and out.max() < 11
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # Reloaded under a float32 global policy, the blocks' sublayers keep the saved policy.
    model.save(tmp_path / "bf16.keras")
    loaded = keras.saving.load_model(tmp_path / "bf16.keras")
    assert loaded.get_layer("block_0").ffn_in.compute_dtype == "bfloat16"
    np.testing.assert_allclose(loaded(x[:, :8]), model(x[:, :8]), atol=2e-2)


def test_lm_few_steps_reduce_the_loss():
    """A repeating pattern: a few Adam steps must lower the cross-entropy clearly."""
    model = tiny_lm(max_length=16)
    x = np.tile(np.array([1, 2, 3, 4, 5, 6, 7, 8]), (8, 3))[:, :17]
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    first = model.evaluate(x[:, :-1], x[:, 1:], verbose=0)
    model.fit(x[:, :-1], x[:, 1:], epochs=30, batch_size=8, verbose=0)
    last = model.evaluate(x[:, :-1], x[:, 1:], verbose=0)
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("position", POSITIONS)
def test_lm_save_and_reload(tmp_path, position):
    model = tiny_lm(position, dropout=0.1)
    tokens = np.random.default_rng(1).integers(0, 11, (2, 7))
    want = np.asarray(model(tokens))
    model.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras")
    np.testing.assert_allclose(loaded(tokens), want, atol=1e-6)


def test_classifier_learns_a_separable_task():
    """Label = whether token 3 occurs; padded (0) tails of random length."""
    rng = np.random.default_rng(2)
    n, length = 256, 10
    x = rng.integers(4, 12, (n, length))
    y = rng.integers(0, 2, n)
    for i in range(n):
        if y[i]:
            x[i, rng.integers(0, 5)] = 3
        x[i, rng.integers(6, length + 1) :] = 0
    keras.utils.set_random_seed(0)
    model = build_transformer_classifier(
        vocab_size=12,
        num_classes=2,
        max_length=length,
        d_model=16,
        num_heads=2,
        num_layers=1,
        dropout=0.0,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x[:192], y[:192], epochs=25, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x[192:], y[192:], verbose=0)
    assert accuracy > 0.9


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_ignores_padding(pooling, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_transformer_classifier(
        vocab_size=12,
        num_classes=3,
        max_length=8,
        d_model=16,
        num_heads=2,
        num_layers=2,
        pooling=pooling,
    )
    short = np.array([[5, 6, 7]])
    padded = np.array([[5, 6, 7, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(model(short), model(padded), atol=1e-5)
    model.save(tmp_path / "clf.keras")
    loaded = keras.saving.load_model(tmp_path / "clf.keras")
    np.testing.assert_allclose(loaded(padded), model(padded), atol=1e-6)


def test_bad_values_name_the_key():
    with pytest.raises(
        ConfigError, match=r"model.d_model=30 is not divisible by model.num_heads=4"
    ):
        build_transformer_lm(11, d_model=30, num_heads=4)
    with pytest.raises(
        ConfigError, match=r"model.position must be one of sinusoidal, learned, rope, got 'alibi'"
    ):
        build_transformer_lm(11, position="alibi")
    with pytest.raises(ConfigError, match=r"model.max_length must be a positive integer, got 0"):
        build_transformer_lm(11, max_length=0)
    with pytest.raises(ConfigError, match=r"model.pooling must be one of cls, mean"):
        build_transformer_classifier(11, 2, pooling="max")
    with pytest.raises(ConfigError, match=r"model.activation must be one of"):
        build_transformer_lm(11, activation="softmax")


def test_sequence_longer_than_the_learned_maximum():
    model = tiny_lm(max_length=6)
    with pytest.raises(
        ValueError, match=r"a sequence of length 8 \(positions 0\.\.7\) is longer than max_length=6"
    ):
        model(np.zeros((1, 8), "int32"))
    # Sinusoidal and rotary positions are defined beyond it.
    assert tiny_lm("sinusoidal", max_length=6)(np.zeros((1, 8), "int32")).shape == (1, 8, 11)


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=transformer_lm"],
        ["model=transformer_lm", "data.seq_len=32", "model.position=rope"],
        ["experiment=shakespeare_transformer"],
    ],
)
def test_configs_compose_check_and_build(overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    check_config(cfg)
    assert cfg.model.max_length == cfg.data.seq_len
    from seqlab.instantiate import build

    model = build(cfg.model, vocab_size=65)
    assert model.output.shape == (None, None, 65)


def test_classifier_config_builds():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=transformer_classifier"])
    from seqlab.instantiate import build

    model = build(cfg.model, vocab_size=30, num_classes=4)
    assert model.output.shape == (None, 4)
