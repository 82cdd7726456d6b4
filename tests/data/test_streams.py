"""Stateful truncated BPTT: stream layout, state carry and reset, exact masked evaluation."""

import math

import keras
import numpy as np
import pytest

from seqlab.data.streams import num_stream_windows, stream_arrays, stream_dataset
from seqlab.data.text import lm_loss, lm_metrics
from seqlab.errors import DataError
from seqlab.metrics import ExactLoss, Perplexity
from seqlab.models import build_rnn_lm
from seqlab.training.stateful import (
    ExactValidationLoss,
    ResetStatesCallback,
    evaluate_streams,
    reset_recurrent_states,
    with_batch_size,
)


def test_each_window_continues_where_the_previous_one_ended():
    ids = np.arange(1000, 1000 + 203, dtype=np.int32)
    x, y, w = stream_arrays(ids, batch_size=4, seq_len=7)
    length = 203 // 4  # 50 tokens per stream, the last 3 tokens dropped
    # 49 (input, next) pairs per stream make 7 full windows of 7, by hand
    assert x.shape == y.shape == (7, 4, 7)
    assert num_stream_windows(203, 4, 7) == 7
    assert (w == 1).all()
    for b in range(4):
        stream = np.concatenate(list(x[:, b]))
        # row b is the b-th contiguous stretch of the corpus, window after window
        np.testing.assert_array_equal(stream, ids[b * length : b * length + stream.size])
        np.testing.assert_array_equal(np.concatenate(list(y[:, b])), stream + 1)
        for t in range(1, x.shape[0]):
            assert x[t, b, 0] == y[t - 1, b, -1]


def test_evaluation_streams_score_every_token_once_and_mask_the_padding():
    ids = np.arange(1, 1 + 103, dtype=np.int32)  # 102 (input, next) pairs
    x, y, w = stream_arrays(ids, batch_size=4, seq_len=10, pad=True)
    assert x.shape == (3, 4, 10)  # streams of ceil(102 / 4) = 26 pairs, 3 windows
    assert w.sum() == 102
    real = w.astype(bool)
    np.testing.assert_array_equal(np.sort(y[real]), ids[1:])
    np.testing.assert_array_equal(y[real] - 1, x[real])  # target is the next token
    assert (y[~real] == 0).all()
    for b in range(4):
        for t in range(1, 3):
            if w[t, b, 0]:
                assert x[t, b, 0] == y[t - 1, b, -1]


def test_too_short_split_for_the_streams_is_a_clear_error():
    with pytest.raises(DataError, match=r"train split has 50 tokens.*batch_size=10.*seq_len \+ 1 = 9"):
        stream_arrays(np.arange(50), batch_size=10, seq_len=8, split="train")


def _sharpen(model):
    """Scale the embedding and output layers so predictions are far from
    uniform: then scoring a padded position, or losing the carried state,
    moves the perplexity well beyond the tolerances below."""
    for name, factor in (("embedding", 30.0), ("logits", 10.0)):
        layer = model.get_layer(name)
        layer.set_weights([w * factor for w in layer.get_weights()])


def _twin_models(vocab=13, batch=3, **kwargs):
    stateful = build_rnn_lm(vocab, hidden_size=8, num_layers=2, stateful=True, batch_size=batch, **kwargs)
    _sharpen(stateful)
    unrolled = build_rnn_lm(vocab, hidden_size=8, num_layers=2, **kwargs)
    unrolled.set_weights(stateful.get_weights())
    return stateful, unrolled


def test_stateful_windows_equal_one_long_unrolled_pass_and_reset_restarts():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 13, size=3 * 40 + 1).astype(np.int32)
    x, _, _ = stream_arrays(ids, batch_size=3, seq_len=8)
    stateful, unrolled = _twin_models()
    per_window = np.concatenate([stateful(x[t]).numpy() for t in range(len(x))], axis=1)
    whole = unrolled(np.concatenate(list(x), axis=1)).numpy()
    np.testing.assert_allclose(per_window, whole, rtol=1e-5, atol=1e-5)
    # Without a reset the state carries on: window 0 now gives other outputs ...
    assert not np.allclose(stateful(x[0]).numpy(), whole[:, :8], atol=1e-4)
    # ... and after a reset it starts from zero again.
    assert reset_recurrent_states(stateful) == 2
    np.testing.assert_allclose(stateful(x[0]).numpy(), whole[:, :8], rtol=1e-5, atol=1e-5)


def test_stateful_evaluation_is_the_exact_token_weighted_perplexity_every_time():
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 13, size=95).astype(np.int32)  # 94 pairs over 3 streams: padded tail
    stateful, unrolled = _twin_models(embedding_dim=6)
    # compiled as the experiment compiles it: Keras gives sample weights (the
    # padding mask) to weighted_metrics only
    stateful.compile(loss=lm_loss(), weighted_metrics=lm_metrics())
    ds = stream_dataset(ids, 3, 8, pad=True)
    reset = [ResetStatesCallback()]
    scores = stateful.evaluate(ds, verbose=0, return_dict=True, callbacks=reset)
    first = scores["perplexity"]
    second = stateful.evaluate(ds, verbose=0, return_dict=True, callbacks=reset)["perplexity"]

    # Reference: each stream in one unrolled pass, cross-entropy of every real pair.
    length = math.ceil(94 / 3)
    nats = []
    for b in range(3):
        inputs = ids[b * length : min((b + 1) * length, 94)]
        targets = ids[b * length + 1 : min((b + 1) * length, 94) + 1]
        logits = unrolled(inputs[None]).numpy()[0]
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
        nats.extend(-logp[np.arange(len(targets)), targets])
    assert len(nats) == 94
    expected = math.exp(np.mean(nats))
    assert first == pytest.approx(expected, rel=1e-5)
    assert scores["bpc"] == pytest.approx(np.mean(nats) / math.log(2), rel=1e-5)
    assert second == pytest.approx(first, rel=1e-6)  # reset before each pass
    # Guard: as plain `metrics` the padding would be scored too, visibly.
    stateful.compile(loss=lm_loss(), metrics=[Perplexity()])
    unweighted = stateful.evaluate(ds, verbose=0, return_dict=True, callbacks=reset)["perplexity"]
    assert unweighted != pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("loss_kind", ["token_mean", "time_sum"])
def test_validation_and_test_loss_are_exact_token_weighted_means(loss_kind):
    """Keras averages an evaluation's loss per batch, weighted by the batch
    size, so the padded last window of the streams would count as a full one.
    With ExactLoss compiled and ExactValidationLoss in fit, val_loss is the
    token-weighted mean: ln(perplexity), which the test above proves exact
    (times T for the time-summed loss)."""
    from seqlab.data.text import LOSSES

    rng = np.random.default_rng(4)
    train = stream_dataset(rng.integers(0, 13, size=3 * 25 + 1).astype(np.int32), 3, 8)
    ids = rng.integers(0, 13, size=95).astype(np.int32)  # 94 pairs: a mostly padded last window
    validation = stream_dataset(ids, 3, 8, pad=True)
    scale = 8 if loss_kind == "time_sum" else 1

    def fit(callbacks):
        keras.utils.set_random_seed(5)  # the same weights for both fits
        stateful, _ = _twin_models(embedding_dim=6)
        # lr 0: the weights the validation pass scores are the initial ones
        stateful.compile(keras.optimizers.SGD(0.0), loss=LOSSES[loss_kind](),
                         weighted_metrics=[*lm_metrics(), ExactLoss(LOSSES[loss_kind]())])
        history = stateful.fit(train, validation_data=validation, epochs=1, verbose=0, shuffle=False,
                               callbacks=[ResetStatesCallback(), *callbacks])
        return stateful, {k: v[0] for k, v in history.history.items()}

    model, logs = fit([ExactValidationLoss()])
    assert "exact_loss" not in logs and "val_exact_loss" not in logs
    assert logs["val_loss"] == pytest.approx(scale * math.log(logs["val_perplexity"]), rel=1e-5)
    scores = evaluate_streams(model, ids, streams=3, seq_len=8, loss=LOSSES[loss_kind](),
                              metrics=[*lm_metrics(), ExactLoss(LOSSES[loss_kind]())])
    assert scores["loss"] == pytest.approx(logs["val_loss"], rel=1e-5)
    assert scores["perplexity"] == pytest.approx(logs["val_perplexity"], rel=1e-5)
    # Guard: Keras' own val_loss is off on the same padded streams, by far more
    # than the float noise of the exact value (~1e-7 here).
    _, raw = fit([])
    assert raw["val_perplexity"] == pytest.approx(logs["val_perplexity"], rel=1e-6)
    assert abs(raw["val_loss"] - logs["val_loss"]) > 1e-5 * logs["val_loss"]


def test_exact_loss_serializes_with_its_loss():
    from seqlab.data.text import TimeSummedCrossEntropy

    metric = ExactLoss(TimeSummedCrossEntropy())
    clone = ExactLoss.from_config(metric.get_config())
    assert isinstance(clone.loss, TimeSummedCrossEntropy) and clone.name == "exact_loss"


def _log_softmax(logits):  # float64 reference
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@pytest.mark.parametrize("options", [{}, {"tie_weights": True, "embedding_dim": 8}, {"cell": "keras_lstm"}])
def test_one_stream_evaluation_is_the_perplexity_of_one_pass_over_the_whole_split(options):
    """trainer.test_streams=1 (the TF PTB tutorial's batch-1 test pass): a
    batch-1 twin of the trained batch-3 model, state carried over every window,
    equals one unrolled pass over the split, also for a tied embedding (a layer
    used twice) and the Keras built-in LSTM."""
    keras.utils.set_random_seed(5)
    stateful, unrolled = _twin_models(**{"embedding_dim": 6, **options})
    ids = np.random.default_rng(6).integers(0, 13, size=61).astype(np.int32)

    twin = with_batch_size(stateful, 1)
    assert twin.input_shape == (1, None) and stateful.input_shape == (3, None)
    for a, b in zip(twin.weights, stateful.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    scores = evaluate_streams(stateful, ids, streams=1, seq_len=7, loss=lm_loss(), metrics=lm_metrics())
    logp = _log_softmax(unrolled(ids[None, :-1]).numpy()[0].astype(np.float64))
    nats = -logp[np.arange(60), ids[1:]]
    assert scores["perplexity"] == pytest.approx(math.exp(nats.mean()), rel=1e-5)
    # Guard: three cold-started streams score the same tokens differently.
    three = evaluate_streams(stateful, ids, streams=3, seq_len=7, loss=lm_loss(), metrics=lm_metrics())
    assert three["perplexity"] != pytest.approx(scores["perplexity"], rel=1e-3)


def test_a_uniform_model_scores_perplexity_equal_to_the_vocabulary_size():
    vocab = 11
    model = build_rnn_lm(vocab, 4, 5, stateful=True, batch_size=4)
    logits_layer = model.get_layer("logits")
    logits_layer.set_weights([np.zeros_like(w) for w in logits_layer.get_weights()])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[Perplexity()])
    ids = np.random.default_rng(3).integers(0, vocab, size=77).astype(np.int32)
    scores = model.evaluate(stream_dataset(ids, 4, 6, pad=True), verbose=0, return_dict=True)
    assert scores["perplexity"] == pytest.approx(vocab, rel=1e-5)


def test_streams_batching_makes_a_stateful_model_from_the_data_bundle(data_dir):
    from seqlab.data.text import build_text_lm_data

    bundle = build_text_lm_data(
        "tiny_shakespeare", batch_size=4, seq_len=16, limit_chars=5000, batching="streams", download=False
    )
    assert bundle.model_kwargs == {"vocab_size": bundle.info["vocab_size"], "stateful": True, "batch_size": 4}
    # the task's callbacks: state resets and the exact val_loss; no sampler asked for
    assert [type(c) for c in bundle.callbacks] == [ResetStatesCallback, ExactValidationLoss]
    assert bundle.evaluate_test is not None and bundle.throughput_unit == "tokens"
    assert bundle.items_per_batch == 4 * 16
    assert bundle.steps_per_epoch == (bundle.info["train_tokens"] // 4 - 1) // 16
    x, y = next(iter(bundle.train))
    assert x.shape == (4, 16)
    xv, yv, wv = next(iter(bundle.validation))
    assert xv.shape == wv.shape == (4, 16)
    total = sum(float(w.numpy().sum()) for _, _, w in bundle.validation)
    assert total == bundle.info["validation_tokens"] - 1


def test_time_summed_loss_is_seq_len_times_the_token_mean():
    from seqlab.data.text import TimeSummedCrossEntropy

    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, size=(3, 5))
    logits = rng.normal(size=(3, 5, 7)).astype("float32")
    mean = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_sequence = -np.take_along_axis(logp, y[..., None], -1)[..., 0].sum(-1)  # [B]
    assert float(TimeSummedCrossEntropy()(y, logits)) == pytest.approx(per_sequence.mean(), rel=1e-5)
    assert float(TimeSummedCrossEntropy()(y, logits)) == pytest.approx(5 * mean, rel=1e-5)
