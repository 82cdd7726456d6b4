"""Recurrent models for sequence tasks other than language modelling.

    build_rnn_regressor:   x [B, T, D] --RNN x L--> [B, T, H] --last step--> [B, H] --Dense--> [B, out]
    build_rnn_tagger:      tokens [B, T] (+ features [B, T, F]) --one-hot / Embedding--> --RNN x L
                           (optionally bidirectional)--> [B, T, H] --Dense--> logits [B, T, C]
    build_rnn_classifier:  tokens [B, T] --Embedding (0 = padding, masked)--> --RNN x L-->
                           --pool (last | mean | max, masking-aware)--> [B, H] --Dense--> logits [B, C]
    build_rnn_forecaster:  window [B, T, D] --RNN x L--> final state [B, H] --Dense-->
                           [B, horizon] (or [B, horizon, targets])
    build_rnn_conditioned_lm:  tokens [B, T], condition [B] --> logits [B, T, V]; the condition's
                           embedding sets the initial state of every recurrent layer, enters
                           every step's input, or both

Every builder stacks its recurrent layers with :func:`seqlab.layers.recurrent_stack`
(or :func:`seqlab.layers.recurrent_layer`), so ``cell`` is a cell name or
``{"name": ..., **cell options}`` and the options (``recurrent_initializer:
identity | orthogonal``, ``forget_bias`` / ``unit_forget_bias``, ``dropout``,
``recurrent_dropout``, ...) go to the cell unchanged. The regressor keeps the
full hidden sequence inside the graph and takes its last step with
:class:`seqlab.layers.LastTimeStep`, so gradient diagnostics can split the
model at the recurrent layer's output.

Padding: token id 0 is padding wherever a builder masks (``mask_zero`` of the
tagger, always for the classifier's tokens). A masked step carries the
recurrent state through unchanged, so right-padding changes neither the last
state of the forward direction nor anything the backward direction of a
bidirectional layer sees. Masks do not weight the loss: the data bundles give
padded positions sample weight 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from seqlab.errors import ConfigError
from seqlab.layers import BroadcastConcat, LastTimeStep, MaskedGlobalMaxPooling1D, OneHot
from seqlab.layers.stacks import recurrent_layer, recurrent_stack, split_cell_spec
from seqlab.models._checks import check_positive, check_rate

POOLING = ("last", "mean", "max")


def _stack(x, cell, hidden_size: int, num_layers: int, **options):
    # Layers rnn_0, rnn_1, ... (rnn_bidirectional_i when bidirectional).
    return recurrent_stack(x, cell, hidden_size, num_layers, name="rnn", key="model.cell", **options)


def build_rnn_regressor(
    input_dim: int,
    output_dim: int = 1,
    hidden_size: int = 128,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    name: str = "rnn_regressor",
) -> keras.Model:
    """Sequence ``[B, T, input_dim]`` -> ``[B, output_dim]`` from the last hidden state.

    Layers: ``inputs``, ``rnn_0`` ... ``rnn_{L-1}`` (all returning sequences),
    ``last_step`` (:class:`seqlab.layers.LastTimeStep`) and the linear
    ``output``. The defaults are those of ``conf/model/rnn_regressor.yaml``.

    Args:
        input_dim: features per time step (the data bundle supplies it).
        output_dim: regression outputs (linear).
        hidden_size: units of every recurrent layer.
        num_layers: stacked recurrent layers (``rnn_0``, ``rnn_1``, ...).
        cell: cell name or ``{"name": ..., **options}`` (see
            :func:`seqlab.layers.recurrent_layer`).
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from float ``inputs [B, T, input_dim]``
        to ``[B, output_dim]``.

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad
            value.

    Example:

    >>> model = build_rnn_regressor(input_dim=2, hidden_size=4, cell="simple_rnn")
    >>> [layer.name for layer in model.layers]
    ['inputs', 'rnn_0', 'last_step', 'output']
    >>> model.output.shape
    (None, 1)
    >>> model.count_params()
    33
    """
    check_positive(input_dim=input_dim, output_dim=output_dim, hidden_size=hidden_size,
                    num_layers=num_layers)
    split_cell_spec(cell, "model.cell")
    inputs = keras.Input(shape=(None, input_dim), name="inputs")
    x = _stack(inputs, cell, hidden_size, num_layers)
    x = LastTimeStep(name="last_step")(x)
    outputs = keras.layers.Dense(output_dim, name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def build_rnn_tagger(
    num_classes: int,
    vocab_size: int | None = None,
    input_dim: int | None = None,
    embedding_dim: int | None = None,
    hidden_size: int = 128,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    name: str = "rnn_tagger",
    bidirectional: bool = False,
    mask_zero: bool = False,
    dropout: float = 0.0,
    feature_vocab_sizes: Sequence[int] | None = None,
    feature_embedding_dim: int = 16,
) -> keras.Model:
    """Sequence -> per-step logits ``[B, T, num_classes]`` (many-to-many, aligned).

    The input is either token ids ``[B, T]`` (``vocab_size`` given; one-hot
    encoded by :class:`seqlab.layers.OneHot`, or embedded when
    ``embedding_dim`` is set) or features ``[B, T, input_dim]``. Token inputs
    may carry extra per-token categorical features (``feature_vocab_sizes``,
    e.g. the POS tag of each word for chunking): a second input ``features
    [B, T, F]`` whose column ``f`` is embedded with its own table of width
    ``feature_embedding_dim`` and concatenated to the token embedding. The
    defaults are those of ``conf/model/rnn_tagger.yaml``.

    With ``bidirectional`` every layer reads the sequence both ways
    (``keras.layers.Bidirectional``, outputs concatenated): step ``t`` sees
    the whole sentence, which is the point of tagging when the sequence is
    available at once. With ``mask_zero`` token id 0 is padding: it is masked
    in the recurrent layers (a padded step carries the state through), so
    right-padding does not reach the backward direction.

    Args:
        num_classes: classes per time step (the width of the logits).
        vocab_size: number of token ids, for token inputs; give exactly one of
            ``vocab_size`` and ``input_dim``.
        input_dim: features per time step, for feature inputs.
        embedding_dim: embed the tokens with ``keras.layers.Embedding`` of
            this width (``None``: one-hot inputs); only with ``vocab_size``.
        hidden_size: units of every recurrent layer (per direction).
        num_layers: stacked recurrent layers (``rnn_0``, ``rnn_1``, ...).
        cell: cell name or ``{"name": ..., **options}`` (see
            :func:`seqlab.layers.recurrent_layer`).
        name: the Keras model name.
        bidirectional: wrap every recurrent layer in
            ``keras.layers.Bidirectional`` (layers ``rnn_bidirectional_i``).
        mask_zero: token id 0 is padding and masked (needs ``embedding_dim``).
        dropout: dropout rate on the embedding output, between recurrent
            layers and before the output projection (0: none).
        feature_vocab_sizes: number of ids of each extra per-token feature
            column (None: no ``features`` input); only with ``vocab_size`` and
            ``embedding_dim``. With ``mask_zero`` feature id 0 is padding too.
        feature_embedding_dim: embedding width of each feature column.

    Returns:
        An uncompiled ``keras.Model`` from ``tokens [B, T]`` (int32, plus
        ``features [B, T, F]`` when ``feature_vocab_sizes`` is set; the inputs
        are then the dict ``{"tokens", "features"}``) or ``inputs [B, T,
        input_dim]`` to logits ``[B, T, num_classes]`` (no softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad
            value, or if both or neither of ``vocab_size`` and ``input_dim``
            are given.

    Example:

    >>> model = build_rnn_tagger(num_classes=3, vocab_size=5, hidden_size=4, cell="gru")
    >>> [layer.name for layer in model.layers]
    ['tokens', 'one_hot', 'rnn_0', 'logits']
    >>> model.output.shape
    (None, None, 3)
    >>> model.count_params()
    147
    >>> bi = build_rnn_tagger(num_classes=3, vocab_size=5, embedding_dim=2, hidden_size=4,
    ...                       cell="gru", bidirectional=True, mask_zero=True)
    >>> [layer.name for layer in bi.layers]
    ['tokens', 'embedding', 'rnn_bidirectional_0', 'logits']
    >>> bi.output.shape
    (None, None, 3)
    """
    if (vocab_size is None) == (input_dim is None):
        raise ConfigError(
            "build_rnn_tagger needs exactly one of vocab_size (token inputs) or input_dim "
            f"(feature inputs), got vocab_size={vocab_size!r}, input_dim={input_dim!r}"
        )
    check_positive(num_classes=num_classes, hidden_size=hidden_size, num_layers=num_layers)
    check_rate("dropout", dropout)
    split_cell_spec(cell, "model.cell")
    if mask_zero and embedding_dim is None:
        raise ConfigError(
            "model.mask_zero=true masks token id 0 in the embedding; it needs model.embedding_dim "
            "(one-hot inputs carry no mask): set model.embedding_dim, or model.mask_zero=false"
        )
    if feature_vocab_sizes and (vocab_size is None or embedding_dim is None):
        raise ConfigError(
            "model.feature_vocab_sizes (extra per-token features) needs token inputs with an "
            f"embedding (vocab_size and model.embedding_dim), got vocab_size={vocab_size!r}, "
            f"embedding_dim={embedding_dim!r}"
        )
    features = None
    if vocab_size is not None:
        check_positive(vocab_size=vocab_size)
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        if embedding_dim is None:
            x = OneHot(vocab_size, name="one_hot")(inputs)
        else:
            check_positive(embedding_dim=embedding_dim)
            x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=bool(mask_zero),
                                       name="embedding")(inputs)
        if feature_vocab_sizes:
            sizes = list(feature_vocab_sizes)
            check_positive(feature_embedding_dim=feature_embedding_dim,
                           **{f"feature_vocab_sizes[{i}]": s for i, s in enumerate(sizes)})
            features = keras.Input(shape=(None, len(sizes)), dtype="int32", name="features")
            columns = [
                # Masked alike: Concatenate merges its inputs' masks with "any",
                # so an unmasked column would unmask the padding.
                keras.layers.Embedding(size, feature_embedding_dim, mask_zero=bool(mask_zero),
                                       name=f"feature_embedding_{i}")(features[:, :, i])
                for i, size in enumerate(sizes)
            ]
            x = keras.layers.Concatenate(name="token_features")([x, *columns])
    else:
        check_positive(input_dim=input_dim)
        inputs = keras.Input(shape=(None, input_dim), name="inputs")
        x = inputs
    x = _stack(x, cell, hidden_size, num_layers, bidirectional=bool(bidirectional),
               input_dropout=float(dropout), dropout_between=float(dropout))
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout_out")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    model_inputs = {"tokens": inputs, "features": features} if features is not None else inputs
    return keras.Model(model_inputs, logits, name=name)


def build_rnn_classifier(
    num_classes: int,
    vocab_size: int | None = None,
    input_dim: int | None = None,
    embedding_dim: int = 128,
    hidden_size: int = 128,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    bidirectional: bool = False,
    pooling: str = "last",
    dropout: float = 0.0,
    embedding_dropout: float | None = None,
    word_dropout: float = 0.0,
    name: str = "rnn_classifier",
) -> keras.Model:
    """Sequence -> class logits ``[B, num_classes]`` (many-to-one).

    Token ids ``[B, T]`` (``vocab_size``) are embedded with id 0 as padding
    (``mask_zero``); feature sequences ``[B, T, input_dim]`` are read as
    they are (no mask). The recurrent stack's outputs ``h_1 .. h_T`` are
    reduced over the valid steps ``V`` (the unmasked ones):

    - ``last``: the final state, ``h_{last valid step}``; bidirectional:
      ``[h_fwd at the last valid step ; h_bwd at step 1]``, each direction's
      summary of the whole sequence;
    - ``mean``: ``(1 / |V|) sum_{t in V} h_t``;
    - ``max``: ``max_{t in V} h_t`` per unit (:class:`seqlab.layers.MaskedGlobalMaxPooling1D`).

    then dropout and a linear ``logits`` layer. The defaults are those of
    ``conf/model/rnn_classifier.yaml``.

    Args:
        num_classes: number of classes (the width of the logits).
        vocab_size: number of token ids incl. padding 0; give exactly one of
            ``vocab_size`` and ``input_dim``.
        input_dim: features per time step, for feature inputs.
        embedding_dim: width of the token embedding.
        hidden_size: units of every recurrent layer (per direction).
        num_layers: stacked recurrent layers.
        cell: cell name or ``{"name": ..., **options}``.
        bidirectional: wrap every recurrent layer in ``keras.layers.Bidirectional``.
        pooling: ``last``, ``mean`` or ``max`` (see above).
        dropout: dropout between recurrent layers and before ``logits``.
        embedding_dropout: dropout on the embedding output (None: ``dropout``).
        word_dropout: in training, drop whole token embeddings (one draw per
            token, scaled by ``1 / (1 - rate)``), as word dropout in Iyyer et
            al. 2015; token inputs only. 0: none.
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from ``tokens [B, T]`` (int32) or
        ``inputs [B, T, input_dim]`` to logits ``[B, num_classes]`` (no softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value.

    Example:

    >>> model = build_rnn_classifier(num_classes=2, vocab_size=10, embedding_dim=4,
    ...                              hidden_size=3, cell="gru", pooling="max")
    >>> [layer.name for layer in model.layers]
    ['tokens', 'embedding', 'rnn_0', 'pool_max', 'logits']
    >>> model.output.shape
    (None, 2)
    >>> model.count_params()
    129
    """
    if (vocab_size is None) == (input_dim is None):
        raise ConfigError(
            "build_rnn_classifier needs exactly one of vocab_size (token inputs) or input_dim "
            f"(feature inputs), got vocab_size={vocab_size!r}, input_dim={input_dim!r}"
        )
    if pooling not in POOLING:
        raise ConfigError(f"model.pooling must be one of {list(POOLING)}, got {pooling!r}")
    check_positive(num_classes=num_classes, hidden_size=hidden_size, num_layers=num_layers)
    embedding_dropout = dropout if embedding_dropout is None else embedding_dropout
    check_rate("dropout", dropout)
    check_rate("embedding_dropout", embedding_dropout)
    check_rate("word_dropout", word_dropout)
    split_cell_spec(cell, "model.cell")
    if vocab_size is not None:
        check_positive(vocab_size=vocab_size, embedding_dim=embedding_dim)
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(inputs)
        if word_dropout:
            x = keras.layers.Dropout(word_dropout, noise_shape=(None, None, 1), name="word_dropout")(x)
    else:
        check_positive(input_dim=input_dim)
        inputs = keras.Input(shape=(None, input_dim), name="inputs")
        x = inputs
    x = _stack(x, cell, hidden_size, num_layers, bidirectional=bool(bidirectional),
               input_dropout=float(embedding_dropout), dropout_between=float(dropout),
               return_sequences=pooling != "last")
    if pooling == "mean":
        x = keras.layers.GlobalAveragePooling1D(name="pool_mean")(x)  # masking-aware
    elif pooling == "max":
        x = MaskedGlobalMaxPooling1D(name="pool_max")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout_out")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def build_rnn_forecaster(
    input_dim: int,
    horizon: int,
    num_targets: int = 1,
    hidden_size: int = 64,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    dropout: float = 0.0,
    name: str = "rnn_forecaster",
) -> keras.Model:
    """A window of the past ``[B, T, input_dim]`` -> the next ``horizon`` values.

    ``input_dim`` counts every feature per step: the target series and any
    exogenous columns (temperature, wind, ... for PM2.5). The final state of
    the recurrent stack ``h_T`` is mapped by one linear layer to all
    ``horizon x num_targets`` outputs at once (the direct, multi-output
    strategy: no feedback of its own forecasts):

        y_hat = reshape(W h_T + b, [horizon, num_targets])

    The defaults are those of ``conf/model/rnn_forecaster.yaml``.

    Args:
        input_dim: features per time step (the data bundle supplies it).
        horizon: steps ahead forecast at once.
        num_targets: target series forecast (1: output ``[B, horizon]``).
        hidden_size: units of every recurrent layer.
        num_layers: stacked recurrent layers.
        cell: cell name or ``{"name": ..., **options}``.
        dropout: dropout between recurrent layers and before the output.
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from float ``inputs [B, T, input_dim]``
        to ``[B, horizon]`` (``num_targets == 1``) or ``[B, horizon, num_targets]``.

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value.

    Example:

    >>> model = build_rnn_forecaster(input_dim=3, horizon=12, hidden_size=4, cell="gru")
    >>> [layer.name for layer in model.layers]
    ['inputs', 'rnn_0', 'forecast']
    >>> model.output.shape
    (None, 12)
    >>> build_rnn_forecaster(input_dim=3, horizon=6, num_targets=2, hidden_size=4).output.shape
    (None, 6, 2)
    """
    check_positive(input_dim=input_dim, horizon=horizon, num_targets=num_targets,
                   hidden_size=hidden_size, num_layers=num_layers)
    check_rate("dropout", dropout)
    split_cell_spec(cell, "model.cell")
    inputs = keras.Input(shape=(None, input_dim), name="inputs")
    x = _stack(inputs, cell, hidden_size, num_layers, dropout_between=float(dropout),
               return_sequences=False)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout_out")(x)
    outputs = keras.layers.Dense(horizon * num_targets, name="forecast")(x)
    if num_targets > 1:
        outputs = keras.layers.Reshape((horizon, num_targets), name="per_target")(outputs)
    return keras.Model(inputs, outputs, name=name)


def build_rnn_conditioned_lm(
    vocab_size: int,
    num_conditions: int,
    embedding_dim: int = 32,
    condition_dim: int = 16,
    hidden_size: int = 128,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    dropout: float = 0.0,
    conditioning: str = "initial_state",
    name: str = "rnn_conditioned_lm",
) -> keras.Model:
    """A language model conditioned on a class (one-to-many): e.g. names given a language.

    The condition ``c`` (an id in ``[0, num_conditions)``) is embedded once,
    ``e_c = E[c]``, and enters the recurrence in one of two ways (or both):

    - ``conditioning="initial_state"``: it sets the **initial state** of every
      recurrent layer ``l`` (every state of it: ``h`` and, for an LSTM, ``c``),

          s^l_0 = tanh(W^l_s e_c + b^l_s),   then the usual recurrence over the tokens

      as an image caption is generated from the image (Vinyals et al. 2015).
      The network must carry the condition in its state for the whole
      sequence, and the recurrence is free to forget it.
    - ``conditioning="every_step"``: it is concatenated to the input of
      every recurrent layer at every step, ``x^l_t <- [x^l_t; e_c]`` (Mikolov
      & Zweig 2012's context vector; the decoder of Cho et al. 2014 feeds its
      summary ``c`` to every step the same way), so no step can lose it.
    - ``"both"``: the two together.

    Logits ``[B, T, vocab_size]`` for the next token at every step (teacher
    forcing). The defaults are those of ``conf/model/rnn_conditioned_lm.yaml``.

    Args:
        vocab_size: number of token ids.
        num_conditions: number of condition classes.
        embedding_dim: width of the token embedding.
        condition_dim: width of the condition embedding.
        hidden_size: units of every recurrent layer.
        num_layers: stacked recurrent layers (``rnn_0``, ...).
        cell: a seqlab cell name or ``{"name": ..., **options}`` (not the
            ``keras_*`` built-ins).
        dropout: dropout on the token embedding, between layers and before
            the output (never on the condition).
        conditioning: ``initial_state``, ``every_step`` or ``both``.
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from ``{"tokens": [B, T] int32,
        "condition": [B] int32}`` to logits ``[B, T, vocab_size]``.

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value.

    Example:

    >>> model = build_rnn_conditioned_lm(vocab_size=6, num_conditions=3, embedding_dim=4,
    ...                                  condition_dim=2, hidden_size=5, cell="lstm")
    >>> sorted(model.input)
    ['condition', 'tokens']
    >>> model.output.shape
    (None, None, 6)
    >>> [layer.name for layer in model.layers if layer.name.startswith("initial_state")]
    ['initial_state_0_0', 'initial_state_0_1']
    >>> every = build_rnn_conditioned_lm(vocab_size=6, num_conditions=3, embedding_dim=4,
    ...                                  condition_dim=2, hidden_size=5, conditioning="every_step")
    >>> every.get_layer("rnn_0").input.shape  # 4 token + 2 condition features
    (None, None, 6)
    """
    check_positive(vocab_size=vocab_size, num_conditions=num_conditions, embedding_dim=embedding_dim,
                   condition_dim=condition_dim, hidden_size=hidden_size, num_layers=num_layers)
    check_rate("dropout", dropout)
    if conditioning not in CONDITIONINGS:
        raise ConfigError(
            f"model.conditioning must be one of {', '.join(CONDITIONINGS)}; got {conditioning!r}"
        )
    cell_name, _ = split_cell_spec(cell, "model.cell")
    if cell_name.startswith("keras_"):
        raise ConfigError(
            f"build_rnn_conditioned_lm conditions seqlab cells; model.cell "
            f"{cell_name!r} is a Keras built-in: use {cell_name.removeprefix('keras_')!r}"
        )
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    condition = keras.Input(shape=(), dtype="int32", name="condition")
    e_c = keras.layers.Embedding(num_conditions, condition_dim, name="condition_embedding")(condition)
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(tokens)
    for i in range(num_layers):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        if conditioning != "initial_state":
            x = BroadcastConcat(name=f"condition_input_{i}")(x, e_c)
        layer = recurrent_layer(cell, hidden_size, name=f"rnn_{i}", key="model.cell")
        initial = None
        if conditioning != "every_step":
            initial = [
                keras.layers.Dense(size, activation="tanh", name=f"initial_state_{i}_{k}")(e_c)
                for k, size in enumerate(layer.state_size)
            ]
        x = layer(x, initial_state=initial)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout_out")(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model({"tokens": tokens, "condition": condition}, logits, name=name)


CONDITIONINGS = ("initial_state", "every_step", "both")
