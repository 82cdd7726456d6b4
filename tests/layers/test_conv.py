"""ConvBlock against a NumPy cross-correlation: the seed's worked examples, strides, padding, BN.

``xcorr2d`` here is the independent reference the vision tests share: a
direct loop over output positions of ``z[i, j, k] = sum x[s*i+u, s*j+v, c] *
W[u, v, c, k]``, with TensorFlow's ``same`` padding (``k - 1`` zeros in all,
the extra one after).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers.conv import ConvBlock


def pad_same(x, kernel, stride):
    """Zero-pad ``x [B, H, W, C]`` as TensorFlow's ``same`` does for this kernel and stride."""
    pads = []
    for n, k in zip(x.shape[1:3], kernel, strict=True):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def xcorr2d(x, w, b=None, stride=1, padding="valid"):
    """``x [B, H, W, C]`` cross-correlated with ``w [kh, kw, C, K]`` (no flip), plus ``b``."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    kh, kw = w.shape[:2]
    if padding == "same":
        x = pad_same(x, (kh, kw), stride)
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out if b is None else out + np.asarray(b, np.float64)


def batch_norm_inference(z, gamma, beta, mean, var, eps):
    return (z - mean) / np.sqrt(var + eps) * gamma + beta


# The seed's filter: every row [1, 0, -1] (a vertical-edge detector).
EDGE_FILTER = np.tile([1.0, 0.0, -1.0], (3, 1))


def _fixed_block(padding, kernel=EDGE_FILTER, in_shape=(1, 5, 5, 1)):
    block = ConvBlock(1, 3, padding=padding, activation=None, use_bias=False)
    block.build(in_shape)
    block.set_weights([kernel.reshape(3, 3, 1, 1)])
    return block


def _run(block, image):
    return np.asarray(block(image[None, :, :, None].astype("float32")))[0, :, :, 0]


def test_seed_worked_example_5x5_gives_minus_6_everywhere():
    image = np.arange(1.0, 26.0).reshape(5, 5)
    got = _run(_fixed_block("valid"), image)
    want = xcorr2d(image[None, :, :, None], EDGE_FILTER.reshape(3, 3, 1, 1))[0, :, :, 0]
    # By hand: each filter row adds x[r, j] - x[r, j + 2] = -2, three rows: -6.
    np.testing.assert_array_equal(want, np.full((3, 3), -6.0))
    np.testing.assert_array_equal(got, want)


def test_seed_vertical_edge_example_valid_and_same():
    """The seed's second example: a 6x6 vertical edge 0 -> 255 and the same filter.

    The seed prints ``[0, -510, -765]`` per row. What the cross-correlation
    really gives (checked here against NumPy, and by hand: each filter row
    contributes ``x[j] - x[j + 2]``, i.e. ``0 - 255`` where the window
    straddles the edge, and three rows add up):

    * ``valid`` (4x4 output): every row ``[0, -765, -765, 0]``;
    * ``same`` (6x6, one zero row/column around): interior rows
      ``[0, 0, -765, -765, 0, 765]``, the top and bottom rows (two image rows
      under the filter) ``[0, 0, -510, -510, 0, 510]``; the ``765`` / ``510``
      at the right border is the edge between the 255s and the zero padding.

    No padding gives a row ``[0, -510, -765]``: -510 appears only on the
    border rows of ``same`` padding, where it is the full response of two
    rows, and -765 is the response of three; a row never holds both. The
    seed's numbers mix the two (and drop the rest of the row).
    """
    image = np.tile([0.0, 0.0, 0.0, 255.0, 255.0, 255.0], (6, 1))
    kernel = EDGE_FILTER.reshape(3, 3, 1, 1)
    valid = _run(_fixed_block("valid", in_shape=(1, 6, 6, 1)), image)
    same = _run(_fixed_block("same", in_shape=(1, 6, 6, 1)), image)
    np.testing.assert_array_equal(valid, xcorr2d(image[None, :, :, None], kernel)[0, :, :, 0])
    np.testing.assert_array_equal(
        same, xcorr2d(image[None, :, :, None], kernel, padding="same")[0, :, :, 0]
    )
    # The hand-computed rows of the docstring.
    np.testing.assert_array_equal(valid, np.tile([0.0, -765.0, -765.0, 0.0], (4, 1)))
    np.testing.assert_array_equal(same[1:-1], np.tile([0.0, 0.0, -765.0, -765.0, 0.0, 765.0], (4, 1)))
    for row in (same[0], same[-1]):
        np.testing.assert_array_equal(row, [0.0, 0.0, -510.0, -510.0, 0.0, 510.0])
    seed = [0.0, -510.0, -765.0]
    rows = [list(r) for r in (*valid, *same)]
    assert not any(r[k:k + 3] == seed for r in rows for k in range(len(r) - 2))


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_block_equals_numpy(padding, stride):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 6, 3)).astype("float32")
    block = ConvBlock(4, kernel_size=(3, 2), strides=stride, padding=padding, activation="relu")
    block.build(x.shape)
    w, b = rng.normal(size=(3, 2, 3, 4)), rng.normal(size=4)
    block.set_weights([w.astype("float32"), b.astype("float32")])
    want = np.maximum(xcorr2d(x, w, b, stride, padding), 0.0)
    got = np.asarray(block(x))
    assert got.shape == want.shape == (2, *block.compute_output_shape(x.shape)[1:])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_norm_between_conv_and_activation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 5, 2)).astype("float32")
    block = ConvBlock(3, batch_norm=True, activation="tanh", bn_epsilon=1e-3)
    block.build(x.shape)
    assert block.use_bias is False  # BN's beta replaces the bias
    w = rng.normal(size=(3, 3, 2, 3))
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    mean, var = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    block.set_weights([a.astype("float32") for a in (w, gamma, beta, mean, var)])
    z = xcorr2d(x, w, padding="same")
    # Inference: the moving statistics.
    want = np.tanh(batch_norm_inference(z, gamma, beta, mean, var, 1e-3))
    np.testing.assert_allclose(np.asarray(block(x, training=False)), want, rtol=1e-5, atol=1e-5)
    # Training: the batch's statistics over (B, H, W).
    m, v = z.mean(axis=(0, 1, 2)), z.var(axis=(0, 1, 2))
    want = np.tanh(batch_norm_inference(z, gamma, beta, m, v, 1e-3))
    np.testing.assert_allclose(np.asarray(block(x, training=True)), want, rtol=1e-4, atol=1e-4)


def test_save_and_reload(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = ConvBlock(4, strides=2, batch_norm=True, activation="gelu", name="block")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    bn = model.get_layer("block").bn
    model(x, training=True)  # moves the BN statistics away from their initial values
    assert not np.allclose(np.asarray(bn.moving_mean), 0.0)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert restored.get_layer("block").get_config() == model.get_layer("block").get_config()


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match="padding must be 'same' or 'valid', got 'full'"):
        ConvBlock(4, padding="full")
    block = ConvBlock(4)
    block.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        block(np.zeros((1, 8, 8, 1), "float32"))
