"""Text in, text out: prompts through a tokenizer, the strategies, the next-token view.

Unknown characters/words in a prompt are handled as the tokenizer defines
them: they map to ``<unk>`` (id ``tokenizer.unk_id``). With
``on_unknown="warn"`` (the default) a ``UserWarning`` names them; with
``on_unknown="error"`` a :class:`~seqlab.errors.ConfigError` does. The model
never saw ``<unk>`` in a character corpus, so the continuation after one is
poor: the warning says so.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from seqlab.errors import ConfigError
from seqlab.generation.beam import Hypothesis, beam_search, check_beam_options
from seqlab.generation.decode import generate
from seqlab.generation.sampling import check_positive_int, check_strategy

ON_UNKNOWN = ("warn", "error")


class TokenProb(NamedTuple):
    token: str
    id: int
    prob: float


class BeamText(NamedTuple):
    text: str
    log_prob: float
    score: float


def _unknown_pieces(tokenizer, prompt: str, ids: np.ndarray) -> list[str]:
    """Best effort: the characters (or words) of ``prompt`` that became ``<unk>``."""
    if ids.size == len(prompt):  # one id per character
        return sorted({c for c, i in zip(prompt, ids, strict=True) if i == tokenizer.unk_id})
    pieces = []
    for word in prompt.split():
        if np.any(tokenizer.encode(word) == tokenizer.unk_id) and word not in pieces:
            pieces.append(word)
    return pieces


def encode_prompt(tokenizer, prompt, on_unknown: str = "warn") -> np.ndarray:
    """``prompt`` -> int32 ids; empty prompts and unknown symbols are reported."""
    if on_unknown not in ON_UNKNOWN:
        raise ConfigError(f"on_unknown must be one of {', '.join(ON_UNKNOWN)}, got {on_unknown!r}")
    if not isinstance(prompt, str):
        raise ConfigError(
            f"prompt must be a string, got {prompt!r}; quote it, e.g. prompt='ROMEO:'"
        )
    if prompt == "":
        raise ConfigError("the prompt is empty; give at least one character, e.g. prompt='ROMEO:'")
    ids = np.asarray(tokenizer.encode(prompt), dtype=np.int32).reshape(-1)
    if ids.size == 0:
        raise ConfigError(
            f"prompt {prompt!r} encodes to no tokens; give text the tokenizer keeps, e.g. prompt='ROMEO:'"
        )
    unk = getattr(tokenizer, "unk_id", None)
    if unk is not None and np.any(ids == unk):
        pieces = _unknown_pieces(tokenizer, prompt, ids)
        shown = ", ".join(repr(p) for p in pieces) or "some symbols"
        if on_unknown == "error":
            raise ConfigError(
                f"prompt {prompt!r} has symbols outside the vocabulary: {shown}; remove or "
                "replace them, or set on_unknown=warn to map them to <unk>"
            )
        warnings.warn(
            f"prompt {prompt!r} has symbols outside the vocabulary: {shown}; they map to "
            "<unk>, which the model rarely saw (set on_unknown=error to refuse such prompts)",
            UserWarning,
            stacklevel=3,
        )
    return ids


def _check_vocab(model, tokenizer) -> None:
    vocab = model.output_shape[-1]
    if vocab is not None and vocab != tokenizer.vocab_size:
        raise ConfigError(
            f"the model predicts {vocab} tokens but the tokenizer has {tokenizer.vocab_size}; "
            "load the tokenizer.json saved with this model"
        )


def generate_texts(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 300,
    *,
    num_samples: int = 1,
    seed: int = 0,
    strategy: str = "temperature",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    on_unknown: str = "warn",
    method: str = "auto",
    jit_compile: bool | str = "auto",
) -> list[str]:
    """``num_samples`` sampled continuations of ``prompt`` (new text only)."""
    ids = encode_prompt(tokenizer, prompt, on_unknown)
    _check_vocab(model, tokenizer)
    out = generate(
        model,
        ids,
        max_new_tokens,
        strategy=strategy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        num_samples=num_samples,
        method=method,
        jit_compile=jit_compile,
    )
    return [tokenizer.decode(row) for row in out]


def beam_search_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 100,
    *,
    beam_width: int = 5,
    num_return: int | None = None,
    length_penalty: float = 0.0,
    end_text: str | None = None,
    on_unknown: str = "warn",
    method: str = "auto",
    jit_compile: bool | str = "auto",
) -> list[BeamText]:
    """The best continuations by beam search, best first, with their scores.

    ``end_text`` (e.g. ``"\\n"``) must encode to exactly one token; a beam that
    emits it stops there.
    """
    ids = encode_prompt(tokenizer, prompt, on_unknown)
    _check_vocab(model, tokenizer)
    end_token = None
    if end_text is not None:
        end_ids = np.asarray(tokenizer.encode(str(end_text))).reshape(-1)
        if end_ids.size != 1 or end_ids[0] == tokenizer.unk_id:
            raise ConfigError(
                f"end token {end_text!r} is not one token of the vocabulary; pick a single "
                "known token (e.g. a newline for a character model) or leave it null"
            )
        end_token = int(end_ids[0])
    hyps: list[Hypothesis] = beam_search(
        model,
        ids,
        max_new_tokens,
        beam_width=beam_width,
        num_return=num_return,
        length_penalty=length_penalty,
        end_token=end_token,
        method=method,
        jit_compile=jit_compile,
    )
    return [BeamText(tokenizer.decode(h.tokens), h.log_prob, h.score) for h in hyps]


def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 300,
    *,
    seed: int = 0,
    strategy: str = "temperature",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    beam_width: int = 5,
    length_penalty: float = 0.0,
    on_unknown: str = "warn",
    method: str = "auto",
    jit_compile: bool | str = "auto",
) -> str:
    """One continuation of ``prompt`` (the new text only, without the prompt).

    ``strategy``: ``greedy``, ``temperature``, ``top_k``, ``top_p`` (sampled
    with ``seed``; ``top_k``/``top_p`` also filter the other strategies when
    given) or ``beam`` (the best beam of width ``beam_width``).
    """
    check_strategy(strategy)
    if strategy == "beam":
        check_beam_options(beam_width, 1, length_penalty, None)
        return beam_search_text(
            model,
            tokenizer,
            prompt,
            max_new_tokens,
            beam_width=beam_width,
            num_return=1,
            length_penalty=length_penalty,
            on_unknown=on_unknown,
            method=method,
            jit_compile=jit_compile,
        )[0].text
    return generate_texts(
        model,
        tokenizer,
        prompt,
        max_new_tokens,
        num_samples=1,
        seed=seed,
        strategy=strategy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        on_unknown=on_unknown,
        method=method,
        jit_compile=jit_compile,
    )[0]


def next_token_distribution(
    model, tokenizer, prompt: str, k: int = 5, *, on_unknown: str = "warn"
) -> list[TokenProb]:
    """The ``k`` most likely next tokens after ``prompt`` with their probabilities.

    One forward pass over the prompt; probabilities are ``softmax`` of the last
    position's logits (temperature 1), sorted from most likely.
    """
    k = check_positive_int(k, "k", 5)
    ids = encode_prompt(tokenizer, prompt, on_unknown)
    _check_vocab(model, tokenizer)
    logits = np.asarray(model(ids[None, :], training=False))[0, -1].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top = np.argsort(-probs, kind="stable")[: min(k, probs.size)]
    return [TokenProb(tokenizer.decode([int(i)]), int(i), float(probs[i])) for i in top]


def format_distribution(prompt: str, dist: list[TokenProb]) -> str:
    """``'The cat sits on the' -> 'mat' 0.300, 'floor' 0.250, ...`` on one line."""
    shown = ", ".join(f"{t.token!r} {t.prob:.3f}" for t in dist)
    return f"{prompt!r} -> {shown}"
