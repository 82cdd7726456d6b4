"""Text corpus -> tokenizer -> teacher-forced language-model datasets."""

from __future__ import annotations

import logging

import keras

from seqlab.data.bundle import DataBundle
from seqlab.data.corpora import load_corpus
from seqlab.data.tokenizers import build_tokenizer
from seqlab.data.windows import lm_dataset
from seqlab.metrics import BitsPerCharacter, Perplexity

log = logging.getLogger(__name__)


def lm_metrics() -> list:
    """Perplexity and bits per token from logits, plus next-token accuracy."""
    return [
        Perplexity(name="perplexity"),
        BitsPerCharacter(name="bpc"),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    ]


def lm_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_text_lm_data(
    name: str,
    *,
    batch_size: int,
    seq_len: int,
    seed: int = 0,
    tokenizer: str = "char",
    tokenizer_options: dict | None = None,
    path: str | None = None,
    tfds_name: str | None = None,
    download: bool = True,
    cache_dir: str | None = None,
    limit_chars: int | None = None,
) -> DataBundle:
    """Load corpus ``name``, fit the tokenizer on its training split, window all splits.

    Training windows are shuffled with ``seed``; validation and test windows
    keep corpus order and the last partial batch (metrics are token-weighted,
    so an uneven last batch is counted correctly).
    """
    if limit_chars is not None and limit_chars <= 0:
        from seqlab.errors import ConfigError

        raise ConfigError(f"data.limit_chars must be positive or null, got {limit_chars}")
    corpus = load_corpus(
        name, path=path, tfds_name=tfds_name, download=download, cache_dir=cache_dir
    ).truncated(limit_chars)
    tok = build_tokenizer(tokenizer, corpus.train, **(tokenizer_options or {}))
    ids = {split: tok.encode(corpus.split(split)) for split in ("train", "validation", "test")}

    train = lm_dataset(ids["train"], seq_len, batch_size, shuffle=True, seed=seed, split="train")
    validation = lm_dataset(ids["validation"], seq_len, batch_size, shuffle=False, split="validation")
    test = (
        lm_dataset(ids["test"], seq_len, batch_size, shuffle=False, split="test")
        if ids["test"].size > seq_len
        else None
    )
    train_windows = (ids["train"].size - 1) // seq_len
    steps = -(-train_windows // batch_size)
    info = {
        "source": corpus.source,
        "vocab_size": tok.vocab_size,
        "train_tokens": int(ids["train"].size),
        "validation_tokens": int(ids["validation"].size),
        "test_tokens": int(ids["test"].size),
        "validation_oov_rate": round(tok.oov_rate(corpus.validation), 6),
        "test_oov_rate": round(tok.oov_rate(corpus.test), 6),
    }
    log.info("%s: %s", name, info)
    return DataBundle(
        train=train,
        validation=validation,
        test=test,
        model_kwargs={"vocab_size": tok.vocab_size},
        loss=lm_loss,
        metrics=lm_metrics,
        tokens_per_batch=batch_size * seq_len,
        steps_per_epoch=steps,
        tokenizer=tok,
        info=info,
    )
