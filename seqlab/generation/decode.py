"""The compiled sampling loop: one ``tf.function`` with a ``tf.while_loop``.

Shapes are static: the token buffer ``[num_samples, prompt_len + max_new_tokens]``
is allocated once; step ``t`` reads token ``t`` and writes token ``t + 1``.
The state-carrying path first runs the cells over the prompt (states only),
then each new token costs one step of every cell; the naive path re-runs the
model on ``tokens[:, :t+1]`` at every step.

Sampling options (temperature, k, p, seed) are tensors, so changing them does
not retrace; a new buffer shape (prompt length, length, batch) does. The draw
at position ``t + 1`` uses the noise of ``(seed, t)``: the same seed
gives the same tokens on both paths.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np

from seqlab.errors import ConfigError
from seqlab.generation.recurrent import make_step
from seqlab.generation.sampling import choose_tokens, resolve_sampling

_CACHE_SIZE = 8
_cache: OrderedDict = OrderedDict()


def cached(model, key, build):
    """Keep a few compiled functions per model (LRU; dies with nothing but eviction)."""
    full_key = (id(model), *key)
    hit = _cache.get(full_key)
    if hit is not None and hit[0]() is model:
        _cache.move_to_end(full_key)
        return hit[1]
    value = build()
    _cache[full_key] = (weakref.ref(model), value)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def consume_prompt(step, tokens, prompt_len, states):
    """Advance a state-carrying step over ``tokens[:, :prompt_len-1]`` (no logits kept)."""
    import tensorflow as tf

    if not step.carries_state:
        return prompt_len - 1, states

    def body(t, states):
        _, states = step(tokens, t, states)
        return t + 1, states

    return tf.while_loop(lambda t, _: t < prompt_len - 1, body, (tf.constant(0), states))


def _build_sampler(model, method: str, greedy: bool, filtered: bool, jit_compile: bool):
    import tensorflow as tf

    step = make_step(model, method)

    def run(tokens, prompt_len, seed, temperature, top_k, top_p):
        batch, length = tokens.shape
        states = step.initial_states(batch)
        t, states = consume_prompt(step, tokens, prompt_len, states)
        columns = tf.range(length)[None, :]

        def body(t, tokens, states):
            logits, states = step(tokens, t, states)
            nxt = choose_tokens(
                logits,
                seed,
                t,
                greedy=greedy,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                filtered=filtered,
            )
            tokens = tf.where(columns == t + 1, nxt[:, None], tokens)
            return t + 1, tokens, states

        _, tokens, _ = tf.while_loop(lambda t, *_: t < length - 1, body, (t, tokens, states))
        return tokens

    # XLA needs static shapes; the naive prefix re-run slices a growing prefix.
    return tf.function(run, jit_compile=bool(jit_compile and step.carries_state))


def resolve_jit_compile(model, method: str, jit_compile) -> bool:
    """``auto``: XLA for the state-carrying loop (the benchmark in
    experiments/generation shows it faster on CPU), graph mode for the naive
    prefix re-run (XLA cannot compile its growing prefix)."""
    if jit_compile == "auto":
        from seqlab.generation.recurrent import carries_state

        # "stateful" on a model that cannot carry its state raises in make_step.
        return method == "stateful" or carries_state(model, method)
    if not isinstance(jit_compile, bool):
        raise ConfigError(f"jit_compile must be true, false or auto, got {jit_compile!r}")
    return jit_compile


def check_prompt_ids(prompt_ids) -> np.ndarray:
    ids = np.asarray(prompt_ids, dtype=np.int32).reshape(-1)
    if ids.size == 0:
        raise ConfigError("the prompt is empty; give at least one token, e.g. prompt='ROMEO:'")
    return ids


def generate(
    model,
    prompt_ids,
    max_new_tokens: int,
    *,
    strategy: str = "temperature",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    num_samples: int = 1,
    method: str = "auto",
    jit_compile: bool | str = "auto",
) -> np.ndarray:
    """Sample ``num_samples`` continuations of ``prompt_ids``.

    Args:
        model: a causal LM, ``int32 [B, T] -> logits [B, T, V]``.
        prompt_ids: 1-D token ids (at least one).
        max_new_tokens: tokens to generate after the prompt.
        strategy: ``greedy``, ``temperature``, ``top_k`` or ``top_p``
            (see :func:`seqlab.generation.sampling.resolve_sampling`).
        seed: fixes the draws (counter-based noise): same seed, same tokens
            in graph and XLA mode.
        method: ``auto`` (carry the recurrent state when the model allows),
            ``stateful`` or ``naive`` (re-run the prefix every step).
        jit_compile: compile the loop with XLA (state-carrying path only);
            ``auto``: XLA when the state is carried, graph mode otherwise.

    Returns:
        ``int32 [num_samples, max_new_tokens]``: the new tokens only.
    """
    import tensorflow as tf

    from seqlab.generation.sampling import check_positive_int

    options = resolve_sampling(strategy, temperature, top_k, top_p)
    max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens", 300)
    num_samples = check_positive_int(num_samples, "num_samples", 3)
    ids = check_prompt_ids(prompt_ids)
    filtered = options["top_k"] > 0 or options["top_p"] < 1.0
    jit = resolve_jit_compile(model, method, jit_compile)
    fn = cached(
        model,
        ("sample", method, options["greedy"], filtered, jit),
        lambda: _build_sampler(model, method, options["greedy"], filtered, jit),
    )
    buffer = np.zeros((num_samples, ids.size + max_new_tokens), dtype=np.int32)
    buffer[:, : ids.size] = ids
    out = fn(
        tf.constant(buffer),
        tf.constant(ids.size, tf.int32),
        tf.constant(int(seed), tf.int64),
        tf.constant(options["temperature"], tf.float32),
        tf.constant(options["top_k"], tf.int32),
        tf.constant(options["top_p"], tf.float32),
    )
    return np.asarray(out)[:, ids.size :]
