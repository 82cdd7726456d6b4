"""The one-to-one baseline for sequence classification: a deep averaging network.

Word order is thrown away: the token embeddings are averaged over the valid
(non-padding) positions and a plain MLP classifies the average (Iyyer et al.
2015, "Deep Unordered Composition Rivals Syntactic Methods for Text
Classification"):

    tokens [B, T] (0 = padding) --embedding--> e_t [B, T, d] --word dropout-->
        --masked mean: a_0 = (1 / |V|) sum_{t in V} e_t--> [B, d]
        --dense_l: a_l = f(a_{l-1} W_l + b_l), dropout--> ... (l = 1..L)
        --logits--> [B, num_classes]

It is the recurrent classifiers' baseline row: whatever a BiLSTM gains over
it on the same data and folds is what reading the words in order buys.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from seqlab.errors import ConfigError
from seqlab.layers.pooling import MaskedMeanPooling
from seqlab.models._checks import check_positive, check_rate


def build_averaging_classifier(
    num_classes: int,
    vocab_size: int,
    embedding_dim: int = 128,
    hidden_units: Sequence[int] = (128,),
    activation: str = "relu",
    dropout: float = 0.5,
    word_dropout: float = 0.3,
    name: str = "averaging_classifier",
) -> keras.Model:
    """Token ids ``[B, T]`` -> logits ``[B, num_classes]`` from the mean embedding.

    Layers: ``tokens``, ``embedding`` (``mask_zero``), ``word_dropout`` (when
    set), ``mean`` (:class:`seqlab.layers.MaskedMeanPooling`), per hidden
    layer ``dense_l`` and ``dropout_l`` (when ``dropout``), ``logits``. The
    defaults are those of ``conf/model/averaging_classifier.yaml``.

    Args:
        num_classes: width of the logits.
        vocab_size: token ids incl. padding 0 (the data bundle supplies it).
        embedding_dim: width of the token embedding.
        hidden_units: units of each hidden layer (``[]``: logistic regression
            on the mean embedding).
        activation: a Keras activation name for the hidden layers.
        dropout: dropout after each hidden layer.
        word_dropout: in training, drop whole tokens from the average (one
            draw per token, as Iyyer et al.); kept embeddings are scaled by
            ``1 / (1 - rate)``, so the average is unbiased.
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from int32 ``tokens [B, T]`` to logits.

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value.

    Example:

    >>> model = build_averaging_classifier(num_classes=2, vocab_size=10, embedding_dim=4,
    ...                                    hidden_units=[3])
    >>> [layer.name for layer in model.layers]
    ['tokens', 'embedding', 'word_dropout', 'mean', 'dense_1', 'dropout_1', 'logits']
    >>> model.count_params()          # 10*4 + (4*3 + 3) + (3*2 + 2)
    63
    """
    check_positive(num_classes=num_classes, vocab_size=vocab_size, embedding_dim=embedding_dim)
    check_rate("dropout", dropout)
    check_rate("word_dropout", word_dropout)
    units = list(hidden_units)
    bad = [u for u in units if not isinstance(u, int) or isinstance(u, bool) or u <= 0]
    if bad:
        raise ConfigError(
            f"model.hidden_units must be positive integers, got {units!r}; e.g. [128] or [] "
            "(no hidden layer)"
        )
    try:
        keras.activations.get(activation)
    except ValueError:
        raise ConfigError(
            f"model.activation={activation!r} is not a Keras activation; use e.g. relu or tanh"
        ) from None

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
    if word_dropout:
        x = keras.layers.Dropout(word_dropout, noise_shape=(None, None, 1), name="word_dropout")(x)
    x = MaskedMeanPooling(name="mean")(x)
    for i, width in enumerate(units, start=1):
        x = keras.layers.Dense(width, activation=activation, name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(tokens, logits, name=name)


__all__ = ["build_averaging_classifier"]
