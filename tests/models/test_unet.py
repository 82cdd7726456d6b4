"""build_unet: output resolution = input resolution, the divisibility error, parameters counted
from the architecture, the skip bridges, training (binary and multi-class), saving, bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.models.unet import build_unet


@pytest.mark.parametrize(
    ("input_shape", "depth", "num_classes", "upsampling"),
    [
        ((16, 16, 1), 1, 1, "transpose"),
        ((32, 24, 3), 3, 4, "bilinear"),
        ((8, 40, 2), 3, 1, "bilinear"),
        ((64, 32, 1), 5, 2, "transpose"),
    ],
)
def test_output_resolution_equals_input_resolution(input_shape, depth, num_classes, upsampling):
    model = build_unet(input_shape, num_classes, depth=depth, base_filters=2,
                       upsampling=upsampling)
    assert model.output.shape == (None, *input_shape[:2], num_classes)
    x = np.random.default_rng(0).normal(size=(1, *input_shape)).astype("float32")
    assert np.asarray(model(x)).shape == (1, *input_shape[:2], num_classes)
    # The deepest map is 2**depth times smaller; the decoder climbs back level by level.
    bottom = model.get_layer("bottleneck").output.shape
    assert bottom[1:3] == (input_shape[0] // 2**depth, input_shape[1] // 2**depth)
    for level in range(depth):
        assert model.get_layer(f"dec_{level}").output.shape[1:3] == \
            model.get_layer(f"enc_{level}").output.shape[1:3]


def _unet_params(c_in, f, depth, classes, upsampling, bn=True):
    """Total parameters counted from the architecture (BN: 4 values per channel)."""
    def conv(k, cin, cout):
        return k * k * cin * cout + (0 if bn else cout) + (4 * cout if bn else 0)

    def double(cin, cout):
        return conv(3, cin, cout) + conv(3, cout, cout)

    total, cin = 0, c_in
    for level in range(depth):
        total += double(cin, f * 2**level)
        cin = f * 2**level
    total += double(cin, f * 2**depth)
    cin = f * 2**depth
    for level in reversed(range(depth)):
        c = f * 2**level
        total += 2 * 2 * cin * c + c  # up: 2x2 (transposed) conv with bias, both modes
        total += double(c + c, c)     # on the concatenation [skip, up]
        cin = c
    return total + cin * classes + classes  # 1x1 logits


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_parameter_count_follows_the_architecture(upsampling, batch_norm):
    model = build_unet((32, 32, 3), 5, depth=3, base_filters=4, upsampling=upsampling,
                       batch_norm=batch_norm)
    assert model.count_params() == _unet_params(3, 4, 3, 5, upsampling, bn=batch_norm)


def test_the_paper_sized_unet():
    # Ronneberger et al.'s 4-level, 64-filter U-Net has about 31 M weights (with BN: 31.04 M).
    model = build_unet((16, 16, 1), 1)  # the count does not depend on the image size
    assert model.count_params() == _unet_params(1, 64, 4, 1, "transpose")
    assert round(model.count_params() / 1e6) == 31


def test_skip_bridges_carry_the_encoder_detail():
    """dec_0 sees enc_0's map: a change in one input pixel reaches the output through the
    bridge even when the bottleneck's contribution is cut (its output zeroed)."""
    keras.utils.set_random_seed(1)
    model = build_unet((16, 16, 1), 1, depth=2, base_filters=2, batch_norm=False)
    assert {t.name for t in model.get_layer("dec_0").input} == {
        model.get_layer("dec_1").output.name, model.get_layer("enc_0").output.name}
    x = np.zeros((1, 16, 16, 1), "float32")
    bridge = x.copy()
    bridge[0, 8, 8, 0] = 1.0
    for var in model.get_layer("bottleneck").weights:  # no signal through the bottom
        var.assign(np.zeros(var.shape))
    assert not np.allclose(np.asarray(model(bridge)), np.asarray(model(x)))


@pytest.mark.parametrize(("num_classes", "upsampling"), [(1, "transpose"), (3, "bilinear")])
def test_training_reduces_the_loss_and_the_model_reloads(num_classes, upsampling, tmp_path):
    """Eager steps: tracing the U-Net's train step costs more CPU than ten eager steps (the
    compiled path runs in the ResNet's test and in the end-to-end runs)."""
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 16, 16, 1)).astype("float32")
    if num_classes == 1:  # a binary mask, one logit per pixel
        y = (x > 0.3).astype("float32")
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        y = np.digitize(x[..., 0], [-0.5, 0.5]).astype("int32")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = build_unet((16, 16, 1), num_classes, depth=2, base_filters=4, dropout=0.1,
                       upsampling=upsampling)
    model.compile(keras.optimizers.Adam(1e-2), loss, run_eagerly=True)
    before = float(loss(y, model(x, training=True)))
    model.fit(x, y, batch_size=8, epochs=10, verbose=0)
    assert float(loss(y, model(x, training=True))) < 0.7 * before
    model.save(tmp_path / "unet.keras")
    restored = keras.saving.load_model(tmp_path / "unet.keras")
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


def test_bad_input_names_the_value():
    with pytest.raises(ConfigError, match=r"model.depth=4 needs height and width divisible by "
                                          r"2\*\*4 = 16, got height 100 \(nearest valid: 96 or "
                                          r"112\); crop or pad"):
        build_unet((100, 128, 1), depth=4)
    with pytest.raises(ConfigError, match=r"got height 500 \(nearest valid: 480 or 512\), width "
                                          r"250 \(nearest valid: 224 or 256\)"):
        build_unet((500, 250, 1), depth=5, base_filters=2)
    with pytest.raises(ConfigError, match=r"width 8 \(nearest valid: 16\)"):
        build_unet((16, 8, 1), depth=4, base_filters=2)
    with pytest.raises(ConfigError, match="model.upsampling must be one of .* got 'nearest'"):
        build_unet((16, 16, 1), upsampling="nearest")
    with pytest.raises(ConfigError, match="model.depth must be a positive integer, got 0"):
        build_unet((16, 16, 1), depth=0)
    with pytest.raises(ConfigError, match="model.num_classes must be a positive integer, got 0"):
        build_unet((16, 16, 1), 0)
    with pytest.raises(ConfigError, match=r"input_shape .* got \(None, None, 1\)"):
        build_unet((None, None, 1))
    model = build_unet((16, 16, 3), depth=1, base_filters=2)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        model(np.zeros((1, 16, 16, 1), "float32"))  # a grayscale batch for an RGB model
