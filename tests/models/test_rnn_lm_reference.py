"""build_rnn_lm builds, after a seed, the same initial weights and layer names as a plain Keras
reference written out layer by layer (the loop build_rnn_lm had before it used recurrent_stack):
a refactor of the builders must not move a number."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers import LockedDropout, OutputBias, Recurrent, get_cell
from seqlab.models import build_rnn_lm


def reference_lm(vocab_size, embedding_dim, hidden_size, num_layers=1, cell="lstm", dropout=0.0,
                 variational_dropout=False, tie_weights=False, init_scale=None, stateful=False,
                 batch_size=None, residual=False):
    def uniform():
        return keras.initializers.RandomUniform(-init_scale, init_scale) if init_scale else None

    def drop(rate, name):
        return (LockedDropout if variational_dropout else keras.layers.Dropout)(rate, name=name)

    if stateful:
        tokens = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="tokens")
    else:
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    init = {"embeddings_initializer": uniform()} if init_scale else {}
    if tie_weights:
        embedding = keras.layers.ReversibleEmbedding(vocab_size, embedding_dim, tie_weights=True,
                                                     name="embedding", **init)
    else:
        embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding", **init)
    x = embedding(tokens)
    for i in range(num_layers):
        layer_input = x
        if dropout:
            x = drop(dropout, f"dropout_{i}")(x)
        options = {}
        if init_scale:
            options.update(kernel_initializer=uniform(), recurrent_initializer=uniform())
        x = Recurrent(get_cell(cell, hidden_size, **options), return_sequences=True, stateful=stateful,
                      name=f"rnn_{i}")(x)
        if residual and layer_input.shape[-1] == hidden_size:
            x = keras.layers.Add(name=f"residual_{i}")([layer_input, x])
    if dropout:
        x = drop(dropout, "dropout_out")(x)
    if tie_weights:
        logits = OutputBias(bias_initializer=uniform() or "zeros", name="logits")(embedding(x, reverse=True))
    else:
        init = {"kernel_initializer": uniform(), "bias_initializer": uniform()} if init_scale else {}
        logits = keras.layers.Dense(vocab_size, name="logits", **init)(x)
    return keras.Model(tokens, logits)


CASES = {
    "defaults": {},
    "deep": dict(num_layers=3, dropout=0.2, residual=True, variational_dropout=True, cell="gru"),
    "tied_init": dict(num_layers=2, tie_weights=True, init_scale=0.1, dropout=0.1, embedding_dim=6),
    "stateful": dict(num_layers=2, stateful=True, batch_size=2, cell="peephole_lstm"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_initial_weights_and_names_as_the_reference(case):
    kwargs = {"vocab_size": 11, "embedding_dim": 5, "hidden_size": 6, **CASES[case]}
    if kwargs.get("tie_weights"):
        kwargs["hidden_size"] = kwargs["embedding_dim"]
    models = []
    for build in (build_rnn_lm, reference_lm):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        models.append(build(**kwargs))
    ours, ref = models
    assert [layer.name for layer in ours.layers] == [layer.name for layer in ref.layers]
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    for a, b in zip(ours.weights, ref.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
