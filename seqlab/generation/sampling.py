"""Logit processors and token choice: greedy, temperature, top-k, top-p.

One processing order for every strategy (the Hugging Face order)::

    logits / temperature  ->  keep the k largest  ->  keep the nucleus  ->  sample

* **temperature** ``T > 0`` rescales the logits (``softmax(z / T)``); ``T -> 0``
  tends to greedy, ``T = 1`` is the model's distribution.
* **top-k** keeps the ``k`` largest logits (``k >= vocab`` keeps all). Tokens
  tied with the k-th logit are kept too, so a tie can let in more than ``k``.
* **top-p** (nucleus) keeps the smallest set of most probable tokens whose
  cumulative probability is ``>= p``, computed on the distribution left after
  top-k; ``p = 1`` keeps everything. The most probable token is always kept.

Both filters reduce to one threshold on the (tempered) logits: everything
below it becomes ``-inf``. The processors use ``keras.ops`` and take the
filter values as tensors, so a compiled loop does not retrace per ``k``/``p``.

The draw itself is the Gumbel-max trick (``argmax(z + g)``, ``g`` Gumbel
noise), which samples exactly from ``softmax(z)`` and ignores ``-inf`` logits.
The noise is counter-based: a 32-bit integer hash of ``(seed, step, row,
column)`` (:func:`uniform_noise`), so a seed fixes the text whatever else ran
before, in eager, graph and XLA mode alike (TensorFlow's stateless RNG draws
different numbers under XLA than in graph mode). This and the loop are the
TensorFlow pieces: the generation loop is a ``tf.function``.

Why not KerasHub's samplers: keras-hub 0.32 pulls tensorflow-text, kagglehub,
sentencepiece and rich; its samplers draw from a stateful ``SeedGenerator``
(same seed on a fresh sampler only), run over a fixed ``[B, max_length]``
prompt buffer, and its beam sampler has no length penalty or end token. The
processors are a few lines of ``keras.ops``; the recurrent-state loop is the
part seqlab adds.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

from seqlab.errors import ConfigError

STRATEGIES = ("greedy", "temperature", "top_k", "top_p", "beam")

NEG_INF = float("-inf")


# ----------------------------------------------------------------------------
# Validation: one clear message naming the value and the fix.
# ----------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_strategy(strategy, name: str = "strategy") -> str:
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"unknown {name} {strategy!r}; choose one of {', '.join(STRATEGIES)} "
            f"(e.g. {name}=top_p)"
        )
    return strategy


def check_temperature(temperature, name: str = "temperature") -> float:
    if not _is_real(temperature) or not math.isfinite(temperature) or temperature <= 0:
        raise ConfigError(
            f"{name} must be a number > 0, got {temperature!r}; set e.g. {name}=0.8 "
            "(use strategy=greedy for argmax decoding)"
        )
    return float(temperature)


def check_top_k(k, name: str = "top_k") -> int:
    if not _is_int(k) or k <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {k!r}; set e.g. {name}=40")
    return int(k)


def check_top_p(p, name: str = "top_p") -> float:
    if not _is_real(p) or not (0.0 < p <= 1.0):
        raise ConfigError(f"{name} must be in (0, 1], got {p!r}; set e.g. {name}=0.9")
    return float(p)


def check_positive_int(value, name: str, example: int = 1) -> int:
    if not _is_int(value) or value <= 0:
        raise ConfigError(
            f"{name} must be a positive integer, got {value!r}; set e.g. {name}={example}"
        )
    return int(value)


def resolve_sampling(
    strategy: str,
    temperature=1.0,
    top_k=None,
    top_p=None,
    *,
    names: dict[str, str] | None = None,
) -> dict:
    """Validate a sampling strategy and its options.

    Returns ``{"greedy": bool, "temperature": float, "top_k": int, "top_p": float}``
    with ``top_k = 0`` and ``top_p = 1.0`` meaning "no filter".

    * ``greedy``: argmax; the other options are ignored.
    * ``temperature``: sample from ``softmax(z / T)``, further filtered by
      ``top_k`` and/or ``top_p`` when given.
    * ``top_k`` / ``top_p``: the named filter is required; the other one is
      applied too when given; ``temperature`` always applies.

    ``names`` maps the option names to the ones the user typed (the CLI calls
    them ``k`` and ``p``) so the error names what to fix.
    """
    n = {"strategy": "strategy", "temperature": "temperature", "top_k": "top_k", "top_p": "top_p"}
    n.update(names or {})
    check_strategy(strategy, n["strategy"])
    if strategy == "beam":
        raise ConfigError(
            f"{n['strategy']}=beam is a search, not a sampler; call beam_search() "
            "(or generate_text(..., strategy='beam'))"
        )
    if strategy == "greedy":
        return {"greedy": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    if strategy == "top_k" and top_k is None:
        raise ConfigError(f"strategy=top_k needs {n['top_k']}; set e.g. {n['top_k']}=40")
    if strategy == "top_p" and top_p is None:
        raise ConfigError(f"strategy=top_p needs {n['top_p']}; set e.g. {n['top_p']}=0.9")
    return {
        "greedy": False,
        "temperature": check_temperature(temperature, n["temperature"]),
        "top_k": 0 if top_k is None else check_top_k(top_k, n["top_k"]),
        "top_p": 1.0 if top_p is None else check_top_p(top_p, n["top_p"]),
    }


# ----------------------------------------------------------------------------
# Processors (keras.ops; filter values may be tensors).
# ----------------------------------------------------------------------------
def apply_temperature(logits, temperature):
    """``logits / T`` in float32."""
    logits = ops.cast(logits, "float32")
    return logits / ops.cast(temperature, "float32")


def filter_logits(logits, top_k=0, top_p=1.0):
    """Set every logit outside the top-k set and the nucleus to ``-inf``.

    Args:
        logits: ``[B, V]`` (already divided by the temperature).
        top_k: keep the ``k`` largest (``0`` or ``>= V``: keep all).
        top_p: keep the smallest most-probable set with mass ``>= p`` (``>= 1``: all).
    """
    logits = ops.cast(logits, "float32")
    vocab = ops.shape(logits)[-1]
    sorted_desc = ops.flip(ops.sort(logits, axis=-1), axis=-1)
    rank = ops.arange(vocab, dtype="int32")[None, :]

    k = ops.cast(top_k, "int32")
    k = ops.where(ops.logical_or(k <= 0, k > vocab), vocab, k)
    in_top_k = rank < k

    # Nucleus on the distribution renormalised over the top-k set.
    masked = ops.where(in_top_k, sorted_desc, NEG_INF)
    probs = ops.softmax(masked, axis=-1)
    mass_before = ops.cumsum(probs, axis=-1) - probs
    p = ops.cast(top_p, "float32")
    in_nucleus = ops.logical_or(mass_before < p, p >= 1.0)

    keep = ops.logical_and(in_top_k, in_nucleus)
    count = ops.maximum(ops.sum(ops.cast(keep, "int32"), axis=-1, keepdims=True), 1)
    threshold = ops.take_along_axis(sorted_desc, count - 1, axis=-1)
    return ops.where(logits >= threshold, logits, NEG_INF)


def process_logits(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Temperature, then top-k, then top-p (see the module docstring)."""
    return filter_logits(apply_temperature(logits, temperature), top_k, top_p)


def _hash32(x):
    """A 32-bit integer hash (Wellons' lowbias32): exact and identical in eager,
    graph and XLA mode, unlike TensorFlow's stateless RNG, whose XLA kernel
    draws different numbers than its graph kernel."""
    import tensorflow as tf

    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def uniform_noise(shape, seed, step):
    """Counter-based uniform numbers in ``(0, 1)`` for ``(seed, step)``.

    ``seed``: int64 scalar (the user's seed); ``step``: int32 scalar (the
    position being drawn). Each element of ``shape`` (rank 2) gets its own
    counter, hashed with a key derived from both, so the numbers depend on
    nothing but ``(seed, step, row, column)``.
    """
    import tensorflow as tf

    seed = tf.cast(seed, tf.int64)
    lo = tf.cast(tf.bitwise.bitwise_and(seed, 0xFFFFFFFF), tf.uint32)
    hi = tf.cast(tf.bitwise.right_shift(seed, 32), tf.uint32)
    key = _hash32(tf.bitwise.bitwise_xor(_hash32(lo ^ tf.constant(0x9E3779B9, tf.uint32)), hi))
    key = _hash32(tf.bitwise.bitwise_xor(key, tf.cast(step, tf.uint32)))
    key2 = _hash32(tf.bitwise.bitwise_xor(key, tf.constant(0x85EBCA6B, tf.uint32)))
    count = shape[0] * shape[1]
    counter = tf.reshape(tf.cast(tf.range(count), tf.uint32), shape)
    bits = _hash32(tf.bitwise.bitwise_xor(_hash32(tf.bitwise.bitwise_xor(counter, key)), key2))
    top24 = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32)
    return (top24 + 0.5) * (1.0 / (1 << 24))


def gumbel_max(logits, seed, step=0):
    """One draw per row from ``softmax(logits)``, reproducible from ``(seed, step)``."""
    import tensorflow as tf

    logits = tf.cast(logits, tf.float32)
    uniform = uniform_noise(tf.shape(logits), seed, step)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)


def choose_tokens(
    logits,
    seed,
    step=0,
    *,
    greedy: bool,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    filtered: bool = True,
):
    """The next token per row: argmax when ``greedy``, else a processed draw.

    ``filtered=False`` skips the top-k/top-p pass (a sort per step) when the
    caller knows both filters are off.
    """
    if greedy:
        return ops.cast(ops.argmax(ops.cast(logits, "float32"), axis=-1), "int32")
    logits = apply_temperature(logits, temperature)
    if filtered:
        logits = filter_logits(logits, top_k, top_p)
    return gumbel_max(logits, seed, step)


def sample_logits(
    logits, *, seed: int = 0, strategy: str = "temperature", temperature=1.0, top_k=None, top_p=None
):
    """Eager helper: one token per row of ``logits [B, V]`` (NumPy in, NumPy out).

    Row ``i`` of a batch is an independent draw, so tiling one logit vector
    ``n`` times gives ``n`` independent samples of the processed distribution.
    """
    import numpy as np
    import tensorflow as tf

    options = resolve_sampling(strategy, temperature, top_k, top_p)
    out = choose_tokens(
        keras.ops.convert_to_tensor(np.asarray(logits, dtype=np.float32)),
        tf.constant(int(seed), tf.int64),
        tf.constant(0, tf.int32),
        greedy=options["greedy"],
        temperature=options["temperature"],
        top_k=options["top_k"],
        top_p=options["top_p"],
    )
    return np.asarray(out)
