import math

import numpy as np
import pytest

from seqlab.metrics import BitsPerCharacter, Perplexity


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_perplexity_and_bpc_are_token_weighted_across_uneven_batches():
    rng = np.random.default_rng(0)
    vocab = 7
    batches = [  # 3 sequences of 5 tokens, then 1 sequence of 5 tokens
        (rng.integers(0, vocab, (3, 5)), rng.normal(size=(3, 5, vocab)).astype("float32")),
        (rng.integers(0, vocab, (1, 5)), 4 * rng.normal(size=(1, 5, vocab)).astype("float32")),
    ]
    nats = [-_log_softmax(z)[np.arange(len(y))[:, None], np.arange(5), y] for y, z in batches]
    expected_nats = np.concatenate([n.ravel() for n in nats]).mean()
    mean_of_batch_means = np.mean([n.mean() for n in nats])
    assert abs(expected_nats - mean_of_batch_means) > 1e-3  # the test can tell them apart

    ppl, bpc = Perplexity(), BitsPerCharacter()
    for y, z in batches:
        ppl.update_state(y, z)
        bpc.update_state(y, z)
    assert float(ppl.result()) == pytest.approx(math.exp(expected_nats), rel=1e-5)
    assert float(bpc.result()) == pytest.approx(expected_nats / math.log(2), rel=1e-5)


def test_hand_computed_value_and_sample_weight():
    # Uniform logits over 4 tokens: CE = ln 4 for every token.
    logits = np.zeros((2, 3, 4), "float32")
    y = np.zeros((2, 3), "int32")
    ppl = Perplexity()
    ppl.update_state(y, logits)
    assert float(ppl.result()) == pytest.approx(4.0, rel=1e-6)
    assert float(BitsPerCharacter()(y, logits)) == pytest.approx(2.0, rel=1e-6)
    # A zero weight removes a (badly predicted) token from both sums.
    logits[0, 0] = [0.0, 50.0, 0.0, 0.0]
    weights = np.ones((2, 3), "float32")
    weights[0, 0] = 0.0
    ppl.reset_state()
    ppl.update_state(y, logits, sample_weight=weights)
    assert float(ppl.result()) == pytest.approx(4.0, rel=1e-6)


def test_metrics_serialize():
    import keras

    m = Perplexity(name="val_ppl")
    again = keras.metrics.deserialize(keras.metrics.serialize(m))
    assert isinstance(again, Perplexity) and again.name == "val_ppl"
