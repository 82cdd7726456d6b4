"""Machine translation data: parallel corpus -> subword pairs -> teacher-forced batches.

One example is a sentence pair, served as

    inputs  {"source": [B, S], "target_in": [B, T]}    source pieces + <eos>; <bos> + target pieces
    targets target_out [B, T]                          target pieces + <eos> (target_in shifted by one)
    weights [B, T] float32                             1 on real tokens, 0 on padding

so any encoder-decoder model (Transformer or recurrent) trains with plain
``model.fit`` on next-token cross-entropy (optionally label-smoothed), the
padding masked out of the loss and the metrics by the sample weights.

Batches group pairs of similar length (buckets every ``bucket_width``
tokens, padded to the bucket's upper edge: few distinct shapes, so few XLA
compilations, and little padding). A batch holds ``batch_size`` pairs, or
with ``batch_tokens`` as many pairs as fit ``batch_tokens`` padded positions
(``batch_tokens // bucket_length``; long sentences, smaller batches).

Test scoring (:func:`build_translation_data`'s ``evaluate_test``) reports the
token-level loss, perplexity and accuracy, then decodes the whole test set
(:func:`seqlab.generation.seq2seq.translate`, greedy or beam) and scores the
detokenized output with sacreBLEU (see :func:`bleu_scores`); the translations
are written to ``test_translations.tsv`` and the sacreBLEU signatures set as
run tags; a model with attention adds ``plots/test_attention.png``
(:mod:`seqlab.data.attention_maps`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import keras
import numpy as np
from keras import ops

from seqlab.data.bundle import DataBundle
from seqlab.data.pairs import (
    PAD_ID,
    EncodedPairs,
    SubwordVocab,
    encode_pairs,
    fit_vocabularies,
    load_parallel_corpus,
)
from seqlab.errors import ConfigError
from seqlab.metrics import Perplexity
from seqlab.training.context import RunCallback

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
TRANSLATIONS_FILE = "test_translations.tsv"


# ------------------------------------------------------------------------- loss
@keras.saving.register_keras_serializable(package="seqlab")
class SmoothedCrossEntropy(keras.losses.Loss):
    """Sparse cross-entropy from logits with label smoothing (Szegedy et al. 2016).

    The target distribution puts ``1 - eps`` on the true token and spreads
    ``eps`` uniformly over all ``V`` tokens (the true one included), as in
    ``keras.losses.CategoricalCrossentropy(label_smoothing=eps)`` on one-hot
    targets and in Vaswani et al. (``eps = 0.1``)::

        loss = (1 - eps) * (-log p_y) + eps * mean_v(-log p_v)

    ``eps = 0`` is plain cross-entropy. With the default reduction
    (``mean_with_sample_weight``) the batch loss is the mean over tokens of
    weight 1, so padding (weight 0) neither counts nor dilutes.

    Example:

    >>> import numpy as np
    >>> logits = np.log(np.array([[[0.7, 0.2, 0.1]]], "float32"))
    >>> loss = SmoothedCrossEntropy(label_smoothing=0.1)
    >>> expected = 0.9 * -np.log(0.7) + 0.1 * -np.log([0.7, 0.2, 0.1]).mean()
    >>> bool(np.isclose(float(loss(np.array([[0]]), logits)), expected, atol=1e-6))
    True
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        name: str = "smoothed_crossentropy",
        reduction: str = "mean_with_sample_weight",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ConfigError(f"data.label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        y_true = ops.cast(y_true, "int32")
        nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)
        if self.label_smoothing == 0.0:
            return nll
        smooth = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "name": self.name,
                "reduction": self.reduction, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="seqlab")
class TokenAccuracy(keras.metrics.Metric):
    """Share of real tokens whose argmax prediction is right, over the whole split.

        accuracy = sum_i w_i [argmax_v logits_iv == y_i] / sum_i w_i

    over every token of every batch (``w``: the padding mask).
    ``keras.metrics.SparseCategoricalAccuracy`` with ``[B, T]`` sample weights
    averages each sequence over its padded length first, so a token in a
    batch padded to 32 counts half as much as one padded to 16; this one
    counts tokens, like :class:`~seqlab.metrics.Perplexity`.

    Example:

    >>> import numpy as np
    >>> m = TokenAccuracy()
    >>> logits = np.eye(3, dtype="float32")[None, [0, 1, 2]]     # predicts 0, 1, 2
    >>> m.update_state(np.array([[0, 2, 2]]), logits, sample_weight=np.array([[1, 1, 0]]))
    >>> float(m.result())
    0.5
    """

    def __init__(self, name: str = "accuracy", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hit = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), ops.cast(y_true, "int32")), self.dtype)
        weight = ops.ones_like(hit) if sample_weight is None else ops.broadcast_to(
            ops.cast(sample_weight, self.dtype), ops.shape(hit))
        self.correct.assign_add(ops.sum(hit * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


def translation_metrics() -> list:
    """Token accuracy and perplexity (unsmoothed), token-weighted over the split, padding masked."""
    return [TokenAccuracy(name="accuracy"), Perplexity(name="perplexity")]


# ------------------------------------------------------------------------- BLEU
def bleu_scores(hypotheses: list[str], references: list[str]) -> dict[str, object]:
    """Corpus BLEU of detokenized ``hypotheses`` against one reference each, two ways.

    ``bleu``: sacreBLEU's standard (mixed case, its ``13a`` tokenizer,
    ``exp`` smoothing); the number to compare across papers, reported with
    its signature.

    ``bleu_lc``: lowercased, ``13a``-tokenized corpus 4-gram BLEU with no
    smoothing: the comparable of bentrevett/pytorch-seq2seq's figure, which
    is ``torchtext.data.metrics.bleu_score`` (corpus 4-gram BLEU, uniform
    weights, brevity penalty, no smoothing) over lowercased spaCy tokens.
    Differences that remain: ``13a`` keeps contractions and hyphenated words
    whole (spaCy splits ``man's`` into ``man 's`` and ``t-shirt`` into
    ``t - shirt``, which adds easy matches), and their hypotheses can contain
    ``<unk>`` (a word-level vocabulary of words seen twice), ours never do
    (byte-level BPE). With ``13a`` and no unknown words the score is, if
    anything, slightly harder to earn.

    Returns ``{"bleu", "bleu_lc"}`` (0-100) and their signatures
    ``{"bleu_signature", "bleu_lc_signature"}``.
    """
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ConfigError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    standard = BLEU()
    lowercased = BLEU(lowercase=True, tokenize="13a", smooth_method="none")
    score = standard.corpus_score(hypotheses, [references])
    score_lc = lowercased.corpus_score(hypotheses, [references])
    return {
        "bleu": float(score.score),
        "bleu_lc": float(score_lc.score),
        "bleu_signature": str(standard.get_signature()),
        "bleu_lc_signature": str(lowercased.get_signature()),
    }


def count_words(lines: list[str]) -> int:
    """Words of ``lines`` as the ``13a`` tokenizer splits them (for per-word perplexity)."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()
    return sum(len(tokenize(line).split()) for line in lines)


# --------------------------------------------------------------------- datasets
def bucket_lengths(pairs: EncodedPairs) -> np.ndarray:
    """The length a pair is bucketed by: its longer side (source, or target_in)."""
    return np.maximum(pairs.source_lengths(), pairs.target_lengths())


def bucket_plan(lengths: np.ndarray, *, batch_size: int, batch_tokens: int | None, bucket_width: int):
    """``(boundaries, batch_sizes, batches)`` for ``tf.data``'s ``bucket_by_sequence_length``.

    Bucket ``k`` holds lengths ``(k w, (k + 1) w]`` padded to ``(k + 1) w``
    (``w = bucket_width``); its batch size is ``batch_size``, or
    ``max(1, batch_tokens // ((k + 1) w))``. ``batches``: the number of
    batches one pass yields with ``drop_remainder=False``, per bucket.
    """
    top = max(int(lengths.max()), 1)
    buckets = -(-top // bucket_width)
    boundaries = [(k + 1) * bucket_width + 1 for k in range(buckets)]
    sizes = [
        max(1, batch_tokens // ((k + 1) * bucket_width)) if batch_tokens else batch_size
        for k in range(buckets)
    ]
    index = (np.maximum(lengths, 1) - 1) // bucket_width
    counts = np.bincount(index, minlength=buckets)
    return boundaries, sizes + [sizes[-1]], counts, np.asarray(sizes)


def pair_dataset(
    pairs: EncodedPairs,
    *,
    batch_size: int,
    batch_tokens: int | None = None,
    bucket_width: int = 8,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
):
    """Length-bucketed ``({"source", "target_in"}, target_out, weights)`` batches.

    Returns ``(dataset, batches per pass, target tokens per pass)``. With
    ``shuffle`` the pairs are reshuffled every pass (seeded) before they are
    bucketed; ``drop_remainder`` drops each bucket's last incomplete batch
    (training: fewer distinct batch shapes to compile; the pairs dropped
    change from pass to pass).
    """
    import tensorflow as tf

    lengths = bucket_lengths(pairs)
    boundaries, sizes, counts, bucket_sizes = bucket_plan(
        lengths, batch_size=batch_size, batch_tokens=batch_tokens, bucket_width=bucket_width
    )
    width = boundaries[-1] - 1

    def padded(rows):
        out = np.zeros((len(rows), width), dtype=np.int32)
        for i, row in enumerate(rows):
            out[i, : row.size] = row
        return out

    arrays = (
        padded(pairs.source), pairs.source_lengths().astype(np.int32),
        padded(pairs.target_in), padded(pairs.target_out), pairs.target_lengths().astype(np.int32),
    )
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)

    def unpad(source, source_len, target_in, target_out, target_len):
        return source[:source_len], target_in[:target_len], target_out[:target_len]

    def longest(source, target_in, target_out):
        return tf.maximum(tf.shape(source)[0], tf.shape(target_in)[0])

    def to_model(source, target_in, target_out):
        weights = tf.cast(tf.not_equal(target_out, PAD_ID), tf.float32)
        return {"source": source, "target_in": target_in}, target_out, weights

    ds = ds.map(unpad, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.bucket_by_sequence_length(
        longest, boundaries, sizes, padding_values=PAD_ID, pad_to_bucket_boundary=True,
        drop_remainder=drop_remainder,
    )
    ds = ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    per_bucket = counts // bucket_sizes if drop_remainder else -(-counts // bucket_sizes)
    if drop_remainder:
        # tokens of the pairs that make it into a batch, on average
        kept = np.minimum(counts, per_bucket * bucket_sizes)
        share = np.divide(kept, counts, out=np.zeros(counts.shape), where=counts > 0)
        index = (np.maximum(lengths, 1) - 1) // bucket_width
        tokens = float(np.sum(pairs.target_lengths() * share[index]))
    else:
        tokens = float(pairs.target_lengths().sum())
    return ds, int(per_bucket.sum()), tokens


# ------------------------------------------------------------------- test scoring
class TranslationRun(RunCallback):
    """Gives the test scoring the run's output folder, artifact and tag logging.

    It does nothing during ``fit``; outside a run (``context`` None) the
    translations file goes to ``fallback_dir`` if one is given.
    """

    def __init__(self, fallback_dir: str | Path | None = None):
        super().__init__()
        self.fallback_dir = None if fallback_dir is None else Path(fallback_dir)
        self.summary: str | None = None

    def output_dir(self) -> Path | None:
        return self.context.output_dir if self.context is not None else self.fallback_dir

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.context is not None:
            self.context.log_artifact(path, artifact_path)

    def set_tag(self, key: str, value: str) -> None:
        if self.context is not None:
            self.context.set_tag(key, value)

    def on_run_end(self):
        return self.summary


@dataclasses.dataclass
class TestSet:
    pairs: EncodedPairs
    source_lines: list[str]
    reference_lines: list[str]


def token_scores(model, dataset, label_smoothing: float) -> dict[str, float]:
    """Exact token-weighted test loss (as trained: smoothed), perplexity and accuracy."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(inputs):
        return model(inputs, training=False)

    loss_fn = SmoothedCrossEntropy(label_smoothing)
    nll_fn = SmoothedCrossEntropy(0.0)
    total = {"loss": 0.0, "nats": 0.0, "correct": 0.0, "tokens": 0.0}
    for inputs, target, weights in dataset:
        logits = forward(inputs)
        w = np.asarray(weights, dtype=np.float64)
        total["loss"] += float(np.sum(np.asarray(loss_fn.call(target, logits)) * w))
        total["nats"] += float(np.sum(np.asarray(nll_fn.call(target, logits)) * w))
        hit = np.asarray(ops.argmax(logits, axis=-1)) == np.asarray(target)
        total["correct"] += float(np.sum(hit * w))
        total["tokens"] += float(w.sum())
    n = max(total["tokens"], 1.0)
    return {
        "loss": total["loss"] / n,
        "perplexity": math.exp(total["nats"] / n),
        "accuracy": total["correct"] / n,
        "nats": total["nats"],
    }


def make_evaluate_test(
    test: TestSet,
    dataset,
    target_vocab: SubwordVocab,
    *,
    label_smoothing: float,
    decoding: dict,
    max_target_len: int,
    length_multiple: int,
    run: TranslationRun,
    source_vocab: SubwordVocab | None = None,
):
    """``evaluate_test(model)``: token scores, then decode the test set and score BLEU; a model
    with attention also gets a heat map of a few test sentences (``plots/test_attention.png``)."""
    from seqlab.generation.seq2seq import translate

    words = count_words(test.reference_lines) + len(test.reference_lines)  # + one <eos> each

    def evaluate_test(model) -> dict[str, float]:
        scores = token_scores(model, dataset, label_smoothing)
        nats = scores.pop("nats")
        # -log P(reference) summed over the test set, per 13a word (+ <eos>): comparable
        # across subword vocabularies, unlike the per-piece perplexity.
        scores["word_perplexity"] = math.exp(nats / max(words, 1))
        start = time.perf_counter()
        generated = translate(
            model,
            test.pairs.source,
            strategy=decoding["strategy"],
            max_new_tokens=decoding["max_new_tokens"] or max_target_len,
            beam_width=decoding["beam_width"],
            length_penalty=decoding["length_penalty"],
            batch_size=decoding["batch_size"],
            length_multiple=length_multiple,
            method=decoding["method"],
            jit_compile=decoding["jit_compile"],
        )
        hypotheses = target_vocab.decode_batch(generated)
        bleu = bleu_scores(hypotheses, test.reference_lines)
        scores["bleu"], scores["bleu_lc"] = bleu["bleu"], bleu["bleu_lc"]
        scores["decode_time_s"] = time.perf_counter() - start
        run.set_tag("sacrebleu_signature", bleu["bleu_signature"])
        run.set_tag("sacrebleu_signature_lc", bleu["bleu_lc_signature"])
        folder = run.output_dir()
        if folder is not None:
            path = write_translations(
                Path(folder) / TRANSLATIONS_FILE, test.source_lines, test.reference_lines, hypotheses
            )
            run.log_artifact(path)
            from seqlab.data.attention_maps import ATTENTION_FILE, save_attention_maps

            plot = save_attention_maps(model, test.pairs.source, generated, source_vocab or target_vocab,
                                       target_vocab, Path(folder) / "plots" / ATTENTION_FILE)
            if plot is not None:
                run.log_artifact(plot, "plots")
        log.info("test BLEU %.2f (%s), lowercased 13a BLEU %.2f (%s)", bleu["bleu"],
                 bleu["bleu_signature"], bleu["bleu_lc"], bleu["bleu_lc_signature"])
        examples = "\n".join(
            f"  {s}\n  -> {h}\n  (reference: {r})"
            for s, r, h in list(zip(test.source_lines, test.reference_lines, hypotheses, strict=True))[:2]
        )
        run.summary = (
            f"test BLEU {bleu['bleu']:.2f} [{bleu['bleu_signature']}], lowercased 13a BLEU "
            f"{bleu['bleu_lc']:.2f}, {decoding['strategy']} decoding:\n{examples}"
        )
        return scores

    return evaluate_test


def write_translations(path: Path, sources, references, hypotheses) -> Path:
    """A TSV with a header: ``source``, ``reference``, ``hypothesis`` per test pair."""
    def clean(text):
        return text.replace("\t", " ").replace("\n", " ")

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["source\treference\thypothesis"]
    lines += [
        f"{clean(s)}\t{clean(r)}\t{clean(h)}"
        for s, r, h in zip(sources, references, hypotheses, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------- builder
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
