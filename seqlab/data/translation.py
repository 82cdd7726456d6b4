"""Machine translation data: parallel corpus -> subword pairs -> teacher-forced batches.

One example is a sentence pair, served as

    inputs  {"source": [B, S], "target_in": [B, T]}    source pieces + <eos>; <bos> + target pieces
    targets target_out [B, T]                          target pieces + <eos> (target_in shifted by one)
    weights [B, T] float32                             1 on real tokens, 0 on padding

so any encoder-decoder model (Transformer or recurrent) trains with plain
``model.fit`` on next-token cross-entropy (optionally label-smoothed), the
padding masked out of the loss and the metrics by the sample weights
(:mod:`seqlab.data.translation_loss`).

Batches group pairs of similar length (buckets every ``bucket_width``
tokens, padded to the bucket's upper edge: few distinct shapes, so few XLA
compilations, and little padding). A batch holds ``batch_size`` pairs, or
with ``batch_tokens`` as many pairs as fit ``batch_tokens`` padded positions
(``batch_tokens // bucket_length``; long sentences, smaller batches); see
:mod:`seqlab.data.pair_batches`.

Test scoring (:func:`build_translation_data`'s ``evaluate_test``,
:mod:`seqlab.data.translation_scoring`) reports the token-level loss,
perplexity and accuracy, then decodes the whole test set
(:func:`seqlab.generation.seq2seq.translate`, greedy or beam) and scores the
detokenized output with sacreBLEU (see :func:`seqlab.data.bleu.bleu_scores`);
the translations are written to ``test_translations.tsv`` and the sacreBLEU
signatures set as run tags; a model with attention adds
``plots/test_attention.png`` (:mod:`seqlab.data.attention_maps`).

The corpus, vocabularies and encoding are :mod:`seqlab.data.pairs`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from seqlab.data.bundle import DataBundle
from seqlab.data.pair_batches import pair_dataset
from seqlab.data.pairs import PAD_ID, encode_pairs, fit_vocabularies, load_parallel_corpus
from seqlab.data.translation_loss import SmoothedCrossEntropy, translation_metrics
from seqlab.data.translation_scoring import TestSet, TranslationRun, make_evaluate_test
from seqlab.errors import ConfigError

log = logging.getLogger(__name__)

#: The decoding options of ``conf/data/multi30k.yaml`` (read-only).
DECODING_DEFAULTS = MappingProxyType({
    "strategy": "greedy",
    "beam_width": 5,
    "length_penalty": 1.0,
    "max_new_tokens": None,
    "batch_size": 100,
    "method": "auto",
    "jit_compile": "auto",
})


def _check_int(key, value, minimum=1, allow_null=False):
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"data.{key} must be an integer >= {minimum}{' or null' if allow_null else ''}, got {value!r}"
        )
    return value


def _decoding_options(decoding: Mapping | None) -> dict:
    options = dict(DECODING_DEFAULTS)
    given = dict(decoding or {})
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise ConfigError(f"data.decoding: unknown option(s) {unknown}; known: {sorted(options)}")
    options.update(given)
    from seqlab.generation.seq2seq import METHODS, STRATEGIES, check_beam_settings

    if options["strategy"] not in STRATEGIES:
        raise ConfigError(
            f"data.decoding.strategy={options['strategy']!r} is unknown; choose one of {list(STRATEGIES)}"
        )
    if options["method"] not in METHODS:
        raise ConfigError(f"data.decoding.method={options['method']!r} is unknown; choose one of {list(METHODS)}")
    if options["jit_compile"] not in ("auto", True, False):
        raise ConfigError(f"data.decoding.jit_compile must be auto, true or false, got {options['jit_compile']!r}")
    check_beam_settings(options["beam_width"], options["length_penalty"])
    _check_int("decoding.batch_size", options["batch_size"])
    _check_int("decoding.max_new_tokens", options["max_new_tokens"], allow_null=True)
    return options


def build_translation_data(
    name: str = "multi30k",
    *,
    batch_size: int,
    seed: int = 0,
    source_lang: str = "de",
    target_lang: str = "en",
    path: str | None = None,
    limit: int | None = None,
    vocabulary: str = "shared",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    max_source_len: int = 64,
    max_target_len: int = 64,
    length_policy: str = "filter",
    batch_tokens: int | None = None,
    bucket_width: int = 8,
    label_smoothing: float = 0.1,
    decoding: Mapping | None = DECODING_DEFAULTS,
) -> DataBundle:
    """A parallel corpus as a translation :class:`DataBundle` (defaults: ``conf/data/multi30k.yaml``).

    Args:
        name: the corpus (:data:`seqlab.data.pairs.CORPORA`), read from
            ``path`` or ``$SEQLAB_DATA_DIR/<name>``.
        batch_size: pairs per batch (``trainer.batch_size``), unless
            ``batch_tokens`` is set.
        seed: shuffles the training pairs every epoch.
        source_lang, target_lang: the direction.
        limit: the first ``limit`` pairs of every split (quick runs, tests).
        vocabulary: ``shared`` (one BPE for both languages) or ``separate``.
        vocab_size: ids per vocabulary, the 4 specials included.
        min_frequency: a BPE merge must be seen this often in training.
        max_source_len, max_target_len: longest ``source`` (pieces + ``<eos>``)
            and ``target_in`` (``<bos>`` + pieces) the model sees.
        length_policy: a longer *training* pair is dropped (``filter``) or
            cut (``truncate``); validation and test pairs are always cut,
            never dropped (BLEU is scored on the untouched reference text).
        batch_tokens: padded positions per training batch (token batching);
            None: ``batch_size`` pairs.
        bucket_width: bucket lengths are multiples of this.
        label_smoothing: of the training loss (``SmoothedCrossEntropy``).
        decoding: how test is decoded: ``strategy`` (greedy | beam),
            ``beam_width``, ``length_penalty``, ``max_new_tokens`` (null:
            ``max_target_len``), ``batch_size``, ``method`` (auto | cached |
            full) and ``jit_compile``; options not given keep
            :data:`DECODING_DEFAULTS`.

    ``model_kwargs``: ``source_vocab_size``, ``target_vocab_size``,
    ``max_source_len``, ``max_target_len`` (rounded up to a multiple of
    ``bucket_width``, the longest padded batch), ``pad_id`` and
    ``shared_vocabulary`` (a builder ties source and target embeddings only
    when it is true).
    """
    _check_int("batch_size (trainer.batch_size)", batch_size)
    _check_int("batch_tokens", batch_tokens, allow_null=True)
    _check_int("bucket_width", bucket_width)
    _check_int("min_frequency", min_frequency)
    decoding = _decoding_options(decoding)
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ConfigError(f"data.label_smoothing must be in [0, 1), got {label_smoothing!r}")
    longest = -(-max(max_source_len, max_target_len) // bucket_width) * bucket_width
    if batch_tokens is not None and batch_tokens < longest:
        raise ConfigError(
            f"data.batch_tokens={batch_tokens} is less than one pair of the longest allowed length "
            f"({longest} padded positions); raise it or lower data.max_source_len / max_target_len"
        )
    corpus = load_parallel_corpus(name, source_lang=source_lang, target_lang=target_lang, path=path, limit=limit)
    source_vocab, target_vocab = fit_vocabularies(corpus, vocabulary, vocab_size, min_frequency)
    lengths = {"max_source_len": max_source_len, "max_target_len": max_target_len}
    encoded = {
        split: encode_pairs(
            source_vocab, target_vocab, corpus.source[split], corpus.target[split], **lengths,
            policy=length_policy if split == "train" else "truncate",
        )
        for split in ("train", "validation", "test")
    }
    if len(encoded["train"]) == 0:
        raise ConfigError(
            f"no training pair fits data.max_source_len={max_source_len} / max_target_len={max_target_len}; "
            "raise them or set data.length_policy=truncate"
        )
    options = {"batch_size": batch_size, "batch_tokens": batch_tokens, "bucket_width": bucket_width}
    train, steps, train_tokens = pair_dataset(encoded["train"], shuffle=True, seed=seed, drop_remainder=True,
                                              **options)
    if steps == 0:
        raise ConfigError(
            f"the {len(encoded['train'])} training pairs fill no complete batch of trainer.batch_size="
            f"{batch_size} in any length bucket (data.limit={limit}); lower the batch size or raise data.limit"
        )
    # Evaluation: batch_size pairs (or batch_tokens), every pair, no shuffle.
    validation, _, _ = pair_dataset(encoded["validation"], **options)
    test_ds, _, _ = pair_dataset(encoded["test"], **options)
    run = TranslationRun()
    test = TestSet(encoded["test"], corpus.source["test"], corpus.target["test"])
    evaluate_test = make_evaluate_test(
        test, test_ds, target_vocab, label_smoothing=float(label_smoothing), decoding=decoding,
        max_target_len=max_target_len, length_multiple=bucket_width, run=run, source_vocab=source_vocab,
    )

    def save_artifacts(folder: Path) -> list[Path]:
        if source_vocab is target_vocab:
            return [source_vocab.save(folder / "vocab.json")]
        return [source_vocab.save(folder / "source_vocab.json"), target_vocab.save(folder / "target_vocab.json")]

    info = {
        "corpus": f"{corpus.name} {source_lang}-{target_lang} ({corpus.folder})",
        "vocabulary": vocabulary,
        "source_vocab_size": source_vocab.vocab_size,
        "target_vocab_size": target_vocab.vocab_size,
        "train_pairs": len(encoded["train"]),
        "train_pairs_filtered": encoded["train"].dropped,
        "train_pairs_truncated": encoded["train"].truncated,
        "validation_pairs": len(encoded["validation"]),
        "validation_pairs_truncated": encoded["validation"].truncated,
        "test_pairs": len(encoded["test"]),
        "test_pairs_truncated": encoded["test"].truncated,
        "mean_source_len": round(float(encoded["train"].source_lengths().mean()), 2),
        "mean_target_len": round(float(encoded["train"].target_lengths().mean()), 2),
        "test_oov_rate": round(source_vocab.oov_rate(corpus.source["test"]), 6),
        "decoding": decoding["strategy"] + (f"{decoding['beam_width']}" if decoding["strategy"] == "beam" else ""),
        "bleu": "sacrebleu corpus BLEU (13a, mixed case) and bleu_lc (lowercased, 13a, no smoothing)",
    }
    log.info("%s: %s", name, info)
    return DataBundle(
        train=train,
        validation=validation,
        test=test_ds,
        model_kwargs={
            "source_vocab_size": source_vocab.vocab_size,
            "target_vocab_size": target_vocab.vocab_size,
            # Batches are padded to multiples of bucket_width: the position tables must reach that far.
            "max_source_len": -(-max_source_len // bucket_width) * bucket_width,
            "max_target_len": -(-max_target_len // bucket_width) * bucket_width,
            "pad_id": PAD_ID,
            "shared_vocabulary": source_vocab is target_vocab,
        },
        loss=lambda: SmoothedCrossEntropy(float(label_smoothing)),
        metrics=translation_metrics,
        steps_per_epoch=steps,
        throughput_unit="tokens",
        items_per_batch=max(1, round(train_tokens / steps)),
        callbacks=[run],
        save_artifacts=save_artifacts,
        evaluate_test=evaluate_test,
        info=info,
    )


# The registered Keras loss and metric moved to translation_loss; still importable from here.
from seqlab.data.translation_loss import TokenAccuracy  # noqa: E402, F401
