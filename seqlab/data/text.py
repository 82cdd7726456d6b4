"""Text corpus -> tokenizer -> teacher-forced language-model datasets."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import keras

from seqlab.data.bundle import DataBundle
from seqlab.data.corpora import load_corpus
from seqlab.data.curriculum import (
    SeqLenCurriculum,
    check_seq_len_schedule,
    curriculum_dataset,
    epoch_variable,
)
from seqlab.data.streams import num_stream_windows, stream_dataset
from seqlab.data.tokenizers import build_tokenizer
from seqlab.data.windows import lm_dataset
from seqlab.errors import ConfigError
from seqlab.metrics import BitsPerCharacter, ExactLoss, Perplexity
from seqlab.training.stateful import ExactValidationLoss, ResetStatesCallback, evaluate_streams
from seqlab.training.text_sampler import TextSampler

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


def encode_corpus(
    name: str,
    *,
    tokenizer: str = "char",
    tokenizer_options: dict | None = None,
    path: str | None = None,
    tfds_name: str | None = None,
    download: bool = True,
    cache_dir: str | None = None,
    limit_chars: int | None = None,
    split_fractions: list[float] | tuple[float, float] | None = None,
):
    """Load corpus ``name`` and fit ``tokenizer`` on its training split.

    Returns ``(corpus, tokenizer, ids)`` with ``ids[split]`` the token ids of
    ``train``, ``validation`` and ``test``; the same arguments give the same
    ids (what a re-scoring of a finished run relies on).
    """
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
    return corpus, tok, ids


def build_text_lm_data(
    name: str,
    *,
    batch_size: int,
    seq_len: int = 128,
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
    test_streams: int | None = None,
    sampler: Mapping | None = None,
    seq_len_schedule: list | None = None,
) -> DataBundle:
    """Load corpus ``name``, fit the tokenizer on its training split, batch all splits.

    ``seq_len`` tokens per window: the model is unrolled this far.

    ``batching="windows"``: independent windows; training windows are
    shuffled with ``seed``; validation and test windows keep corpus order and
    the last partial batch (metrics are token-weighted, so an uneven last
    batch is counted correctly).

    ``batching="streams"``: stateful truncated BPTT (:mod:`seqlab.data.streams`):
    ``batch_size`` contiguous streams, consecutive windows continue each
    other; validation and test cover the whole split with padded, masked
    (sample weight 0) tails. ``model_kwargs`` then carries ``stateful=True``
    and ``batch_size`` so the builder makes a fixed-batch stateful model; the
    bundle's callbacks reset the states at each epoch and evaluation, and
    make ``val_loss``/``test_loss`` the exact token-weighted mean (Keras
    would weight the padded last batch as a full one).
    ``test_streams``: score test with this many parallel streams carrying
    state over the whole split (1 is how the TensorFlow PTB tutorial scores
    test); None: ``batch_size`` streams.

    ``loss``: ``token_mean`` (cross-entropy per token) or ``time_sum``
    (summed over the window's time steps, mean over the batch; Zaremba et
    al.'s objective, see :class:`TimeSummedCrossEntropy`). The logged
    ``loss``/``val_loss`` follow it; ``perplexity`` and ``bpc`` do not.

    ``sampler``: options of :class:`seqlab.training.text_sampler.TextSampler`
    (prompt, length, temperature, ...); None: no samples.

    ``seq_len_schedule``: ``[[epoch, seq_len], ...]``, a curriculum on the
    training windows' length (:mod:`seqlab.data.curriculum`): every batch
    keeps ``batch_size x seq_len`` tokens and every epoch the same steps;
    validation and test stay at ``seq_len``. None: ``seq_len`` throughout.

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
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len <= 0:
        raise ConfigError(f"data.seq_len must be a positive integer, got {seq_len!r}")
    if test_streams is not None:
        if isinstance(test_streams, bool) or not isinstance(test_streams, int) or test_streams <= 0:
            raise ConfigError(f"data.test_streams must be a positive integer or null, got {test_streams!r}")
        if batching != "streams":
            raise ConfigError(
                f"data.test_streams={test_streams} scores a stateful model; it needs data.batching=streams, "
                f"got data.batching={batching!r} (set data.test_streams=null)"
            )
    stages = check_seq_len_schedule(seq_len_schedule, seq_len=seq_len, batch_size=batch_size, batching=batching)
    corpus, tok, ids = encode_corpus(
        name, tokenizer=tokenizer, tokenizer_options=tokenizer_options, path=path, tfds_name=tfds_name,
        download=download, cache_dir=cache_dir, limit_chars=limit_chars, split_fractions=split_fractions,
    )

    model_kwargs = {"vocab_size": tok.vocab_size}
    callbacks = []
    metrics = lm_metrics
    evaluate_test = None
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

        def metrics():
            return [*lm_metrics(), ExactLoss(LOSSES[loss]())]

        callbacks = [ResetStatesCallback(), ExactValidationLoss()]
        if test is not None:

            def evaluate_test(model):
                return evaluate_streams(
                    model, ids["test"], streams=test_streams or batch_size, seq_len=seq_len,
                    loss=LOSSES[loss](), metrics=metrics(),
                )
    else:
        if stages is None:
            train = lm_dataset(ids["train"], seq_len, batch_size, shuffle=True, seed=seed, split="train")
        else:
            epoch = epoch_variable()
            train, _ = curriculum_dataset(ids["train"], stages, seq_len=seq_len, batch_size=batch_size,
                                          seed=seed, epoch=epoch)
            callbacks.append(SeqLenCurriculum(stages, epoch))
        validation = lm_dataset(ids["validation"], seq_len, batch_size, shuffle=False, split="validation")
        test = (
            lm_dataset(ids["test"], seq_len, batch_size, shuffle=False, split="test")
            if ids["test"].size > seq_len
            else None
        )
        train_windows = (ids["train"].size - 1) // seq_len
        steps = -(-train_windows // batch_size)
    whole_epochs = None
    if stages is not None:
        # The dataset reads the epoch's length when fit makes the epoch's iterator.
        whole_epochs = ("data.seq_len_schedule changes the window length between epochs, which needs "
                        "one pass over the training data per epoch")
    if sampler is not None:
        callbacks.append(TextSampler(tok, **dict(sampler)))
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
        metrics=metrics,
        steps_per_epoch=steps,
        whole_epochs=whole_epochs,
        throughput_unit="tokens",
        items_per_batch=batch_size * seq_len,
        callbacks=callbacks,
        save_artifacts=lambda folder: [tok.save(folder / "tokenizer.json")],
        evaluate_test=evaluate_test,
        info=info,
    )
