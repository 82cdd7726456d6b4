"""Beam search in one compiled loop, carrying (and reordering) recurrent states.

``beam_width`` hypotheses advance together. At each step every hypothesis is
extended by every token; the ``beam_width`` best candidates survive, ranked by

    score = log P(generated tokens | prompt) / length ** length_penalty

(``length_penalty = 0``: the raw log-probability, i.e. the most probable
sequence; ``1``: the mean log-probability per token, favouring longer output
when an end token can stop a hypothesis early). A hypothesis that emitted
``end_token`` is finished: it keeps its log-probability and length and stays in
the beam as a single candidate, competing with the live ones by score. The
loop stops when every hypothesis has finished or ``max_new_tokens`` were made.
The recurrent states are gathered by each survivor's parent beam.

Static shapes throughout (``[beam_width, prompt_len + max_new_tokens]``); the
first step expands only beam 0 (the others start at ``-inf``), so no
duplicates enter the beam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqlab.errors import ConfigError
from seqlab.generation.decode import cached, check_prompt_ids, consume_prompt, resolve_jit_compile
from seqlab.generation.recurrent import make_step
from seqlab.generation.sampling import _is_int, _is_real, check_positive_int


@dataclass(frozen=True)
class Hypothesis:
    """One finished beam: the new tokens (end token included if emitted)."""

    tokens: np.ndarray
    log_prob: float
    score: float


def _build_beam(
    model, method: str, length_penalty: float, end_token: int | None, jit_compile: bool
):
    import tensorflow as tf
    from keras import tree

    step = make_step(model, method)
    alpha = float(length_penalty)
    has_end = end_token is not None

    def normalise(log_prob, length):
        if alpha == 0.0:
            return log_prob
        length = tf.cast(tf.maximum(length, 1), tf.float32)
        return log_prob / tf.pow(length, alpha)

    def run(tokens, prompt_len):
        width, length = tokens.shape
        states = step.initial_states(width)
        t, states = consume_prompt(step, tokens, prompt_len, states)
        columns = tf.range(length)[None, :]
        log_prob = tf.concat([[0.0], tf.fill([width - 1], float("-inf"))], axis=0)
        gen_len = tf.zeros([width], tf.int32)
        finished = tf.zeros([width], tf.bool)

        def body(t, tokens, log_prob, gen_len, finished, states):
            logits, states = step(tokens, t, states)
            vocab = logits.shape[-1]
            cand = log_prob[:, None] + tf.nn.log_softmax(logits, axis=-1)
            cand_len = tf.broadcast_to((gen_len + 1)[:, None], tf.shape(cand))
            if has_end:
                # A finished hypothesis has one continuation: itself, unchanged.
                is_end = tf.range(vocab)[None, :] == end_token
                frozen = tf.where(is_end, log_prob[:, None], float("-inf"))
                cand = tf.where(finished[:, None], frozen, cand)
                cand_len = tf.where(finished[:, None], gen_len[:, None], cand_len)
            flat_score = tf.reshape(normalise(cand, cand_len), [-1])
            _, index = tf.math.top_k(flat_score, k=width)
            parent = index // vocab
            token = index % vocab
            log_prob = tf.gather(tf.reshape(cand, [-1]), index)
            gen_len = tf.gather(tf.reshape(cand_len, [-1]), index)
            finished = tf.gather(finished, parent)
            if has_end:
                finished = tf.logical_or(finished, token == end_token)
            tokens = tf.gather(tokens, parent)
            tokens = tf.where(columns == t + 1, token[:, None], tokens)
            states = tree.map_structure(lambda s: tf.gather(s, parent), states)
            return t + 1, tokens, log_prob, gen_len, finished, states

        def cond(t, tokens, log_prob, gen_len, finished, states):
            return tf.logical_and(t < length - 1, tf.logical_not(tf.reduce_all(finished)))

        _, tokens, log_prob, gen_len, _, _ = tf.while_loop(
            cond, body, (t, tokens, log_prob, gen_len, finished, states)
        )
        return tokens, log_prob, gen_len, normalise(log_prob, gen_len)

    return tf.function(run, jit_compile=bool(jit_compile and step.carries_state))


def check_beam_options(beam_width, num_return, length_penalty, end_token, names=None):
    n = {
        "beam_width": "beam_width",
        "num_return": "num_return",
        "length_penalty": "length_penalty",
        "end_token": "end_token",
    }
    n.update(names or {})
    beam_width = check_positive_int(beam_width, n["beam_width"], 5)
    if num_return is None:
        num_return = beam_width
    num_return = check_positive_int(num_return, n["num_return"], beam_width)
    if num_return > beam_width:
        raise ConfigError(
            f"{n['num_return']}={num_return} is more than {n['beam_width']}={beam_width}; "
            f"set {n['num_return']} <= {n['beam_width']}"
        )
    if not _is_real(length_penalty):
        raise ConfigError(
            f"{n['length_penalty']} must be a number, got {length_penalty!r}; "
            f"set e.g. {n['length_penalty']}=0.0 (raw log-probability) or 1.0 (per token)"
        )
    if end_token is not None and (not _is_int(end_token) or end_token < 0):
        raise ConfigError(f"{n['end_token']} must be a token id >= 0, got {end_token!r}")
    return beam_width, num_return, float(length_penalty)


def beam_search(
    model,
    prompt_ids,
    max_new_tokens: int,
    *,
    beam_width: int = 5,
    num_return: int | None = None,
    length_penalty: float = 0.0,
    end_token: int | None = None,
    method: str = "auto",
    jit_compile: bool | str = "auto",
) -> list[Hypothesis]:
    """The ``num_return`` best continuations of ``prompt_ids``, best first.

    Each :class:`Hypothesis` holds the new tokens (up to and including
    ``end_token`` if it was emitted), their total log-probability under the
    model and the length-penalised score used for ranking.
    """
    import tensorflow as tf

    beam_width, num_return, length_penalty = check_beam_options(
        beam_width, num_return, length_penalty, end_token
    )
    max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens", 50)
    ids = check_prompt_ids(prompt_ids)
    vocab = model.output_shape[-1]
    if end_token is not None and vocab is not None and end_token >= vocab:
        raise ConfigError(f"end_token={end_token} is outside the vocabulary (size {vocab})")
    jit = resolve_jit_compile(model, method, jit_compile)
    fn = cached(
        model,
        ("beam", method, length_penalty, end_token, jit),
        lambda: _build_beam(model, method, length_penalty, end_token, jit),
    )
    buffer = np.zeros((beam_width, ids.size + max_new_tokens), dtype=np.int32)
    buffer[:, : ids.size] = ids
    tokens, log_prob, gen_len, score = (
        np.asarray(x) for x in fn(tf.constant(buffer), tf.constant(ids.size, tf.int32))
    )
    order = np.argsort(-score, kind="stable")
    hypotheses = [
        Hypothesis(
            tokens[i, ids.size : ids.size + gen_len[i]].copy(), float(log_prob[i]), float(score[i])
        )
        for i in order
        if np.isfinite(log_prob[i])
    ]
    return hypotheses[:num_return]
