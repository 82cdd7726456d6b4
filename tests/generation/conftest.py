"""Tiny models for the generation tests.

``markov_lm`` is a hand-built recurrent model whose next-token log-probabilities
are a fixed transition table (``log P[next | current]``): an identity
embedding, a linear ``SimpleRNN`` whose kernel is the table and whose
recurrent kernel is zero, and an identity output layer. Its sequence
probabilities can be enumerated exactly with NumPy, the reference for beam
search.
"""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from seqlab.models.rnn_lm import build_rnn_lm  # noqa: E402


def sharpen(model, factor=8.0):
    """Scale the output weights, so sampling is far from uniform."""
    for layer in (model.get_layer("logits"), model.get_layer("embedding")):
        weights = layer.get_weights()
        if len(weights) == 2 or layer.name == "embedding":
            layer.set_weights([weights[0] * factor, *weights[1:]])
            return model
    return model


def tiny_lm(cell="lstm", num_layers=1, vocab=12, hidden=16, seed=0, embedding=8, **options):
    """``build_rnn_lm`` at toy size (seqlab's cells, or ``keras_*`` built-ins)."""
    keras.utils.set_random_seed(seed)
    model = build_rnn_lm(vocab, embedding, hidden, num_layers=num_layers, cell=cell, **options)
    return sharpen(model)


def keras_lm(layer, num_layers=1, vocab=12, hidden=16, seed=0, dropout=0.0):
    """The same shape written with Keras' own recurrent layers, independent of seqlab."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(vocab, 8, name="embedding")(tokens)
    for i in range(num_layers):
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
        x = layer(hidden, return_sequences=True, name=f"rnn_{i}")(x)
    logits = keras.layers.Dense(vocab, name="logits")(x)
    return sharpen(keras.Model(tokens, logits))


def markov_lm(transition: np.ndarray) -> keras.Model:
    """A recurrent LM with ``P(next = j | current = i) = transition[i, j]``."""
    vocab = transition.shape[0]
    log_p = np.log(transition).astype("float32")
    tokens = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(vocab, vocab, name="embedding")(tokens)
    x = keras.layers.SimpleRNN(vocab, activation="linear", return_sequences=True, name="rnn_0")(x)
    logits = keras.layers.Dense(vocab, name="logits")(x)
    model = keras.Model(tokens, logits)
    eye = np.eye(vocab, dtype="float32")
    model.get_layer("embedding").set_weights([eye])
    model.get_layer("rnn_0").set_weights([log_p, np.zeros_like(log_p), np.zeros(vocab, "float32")])
    model.get_layer("logits").set_weights([eye, np.zeros(vocab, "float32")])
    return model


def sequence_log_prob(transition, start: int, seq) -> float:
    log_p, current = 0.0, start
    for token in seq:
        log_p += float(np.log(transition[current, token]))
        current = token
    return log_p


def enumerate_sequences(transition, start, length, end_token=None, length_penalty=0.0):
    """Every continuation up to ``length`` tokens (stopping at ``end_token``),
    with its log-probability and score, best score first."""
    vocab = transition.shape[0]
    out = []
    for n in range(1, length + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            if end_token is not None:
                if end_token in seq[:-1]:
                    continue
                if n < length and seq[-1] != end_token:
                    continue
            elif n < length:
                continue
            lp = sequence_log_prob(transition, start, seq)
            out.append((seq, lp, lp / n**length_penalty))
    out.sort(key=lambda item: -item[2])
    return out


@pytest.fixture
def char_tokenizer():
    from seqlab.data.tokenizers import CharTokenizer

    return CharTokenizer.fit("the cat sits on the mat.\nROMEO: a dog!")
