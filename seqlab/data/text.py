"""Text corpus -> tokenizer -> teacher-forced language-model datasets."""

from __future__ import annotations

import logging

import keras

from seqlab.data.bundle import DataBundle
from seqlab.data.corpora import load_corpus
from seqlab.data.streams import num_stream_windows, stream_dataset
from seqlab.data.tokenizers import build_tokenizer
from seqlab.data.windows import lm_dataset
from seqlab.errors import ConfigError
from seqlab.metrics import BitsPerCharacter, Perplexity

log = logging.getLogger(__name__)

BATCHING = ("windows", "streams")


def lm_metrics() -> list:
    """Perplexity and bits per token from logits, plus next-token accuracy."""
    return [
        Perplexity(name="perplexity"),
        BitsPerCharacter(name="bpc"),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    ]


def lm_loss():
    # mean_with_sample_weight: divide by the real (weight-1) tokens, not by all
    # B x T positions, so a padded evaluation tail does not dilute val_loss.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


@keras.saving.register_keras_serializable(package="seqlab")
class TimeSummedCrossEntropy(keras.losses.Loss):
    """Next-token cross-entropy summed over the time steps of a window and
    averaged over the batch: ``T x`` the per-token mean.

    This is the objective of Zaremba et al. (2014) and of the TensorFlow PTB
    tutorial (``sequence_loss(..., average_across_timesteps=False)`` then a
    sum over time), on which their learning rate (1.0) and clipping norm (5)
    are set; with a per-token mean the same SGD step needs ``lr x T`` and
    ``clip / T``. With sample weights (a padded evaluation tail) it is ``T x``
    the mean over the real tokens, so ``val_loss / T`` stays the per-token
    cross-entropy.
    """

    def __init__(self, name="time_summed_crossentropy", reduction="mean_with_sample_weight", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return ce * keras.ops.cast(keras.ops.shape(ce)[-1], ce.dtype)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}


LOSSES = {"token_mean": lm_loss, "time_sum": TimeSummedCrossEntropy}


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
    batching: str = "windows",
    split_fractions: list[float] | tuple[float, float] | None = None,
    loss: str = "token_mean",
) -> DataBundle:
    """Load corpus ``name``, fit the tokenizer on its training split, batch all splits.

    ``batching="windows"``: independent windows; training windows are
    shuffled with ``seed``; validation and test windows keep corpus order and
    the last partial batch (metrics are token-weighted, so an uneven last
    batch is counted correctly).

    ``batching="streams"``: stateful truncated BPTT (:mod:`seqlab.data.streams`):
    ``batch_size`` contiguous streams, consecutive windows continue each
    other; validation and test cover the whole split with padded, masked
    (sample weight 0) tails. ``model_kwargs`` then carries ``stateful=True``
    and ``batch_size`` so the builder makes a fixed-batch stateful model.

    ``loss``: ``token_mean`` (cross-entropy per token) or ``time_sum``
    (summed over the window's time steps, mean over the batch; Zaremba et
    al.'s objective, see :class:`TimeSummedCrossEntropy`). The logged
    ``loss``/``val_loss`` follow it; ``perplexity`` and ``bpc`` do not.

    ``name="text_files"`` reads every ``*.txt`` of the folder ``path``
    (see :func:`seqlab.data.corpora.load_corpus`), split by file name or by
    ``split_fractions``.
    """
    if limit_chars is not None and limit_chars <= 0:
        raise ConfigError(f"data.limit_chars must be positive or null, got {limit_chars}")
    if loss not in LOSSES:
        raise ConfigError(f"data.loss={loss!r} is unknown; choose one of {list(LOSSES)}")
    if batching not in BATCHING:
        raise ConfigError(f"data.batching={batching!r} is unknown; choose one of {list(BATCHING)}")
    corpus = load_corpus(
        name,
        path=path,
        tfds_name=tfds_name,
        download=download,
        cache_dir=cache_dir,
        split_fractions=split_fractions,
    ).truncated(limit_chars)
    tok = build_tokenizer(tokenizer, corpus.train, **(tokenizer_options or {}))
    ids = {split: tok.encode(corpus.split(split)) for split in ("train", "validation", "test")}

    model_kwargs = {"vocab_size": tok.vocab_size}
    if batching == "streams":
        train = stream_dataset(ids["train"], batch_size, seq_len, split="train")
        validation = stream_dataset(ids["validation"], batch_size, seq_len, pad=True, split="validation")
        test = (
            stream_dataset(ids["test"], batch_size, seq_len, pad=True, split="test")
            if ids["test"].size > 1
            else None
        )
        steps = num_stream_windows(ids["train"].size, batch_size, seq_len)
        model_kwargs.update(stateful=True, batch_size=batch_size)
    else:
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
        model_kwargs=model_kwargs,
        loss=LOSSES[loss],
        metrics=lm_metrics,
        tokens_per_batch=batch_size * seq_len,
        steps_per_epoch=steps,
        tokenizer=tok,
        info=info,
        split_ids=ids,
    )
