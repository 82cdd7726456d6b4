"""Names as character sequences: surnames by language (names) and US first
names (makemore_names), for classification and character language models.

``build_names_data`` (characters; ``task: classify | generate``)
    18 ``<Language>.txt`` files, 20,074 lines. Lines are stripped and the 24
    ``To The First Page`` lines of ``Russian.txt`` (web-page debris) dropped
    (20,050 left). The split is by **distinct name**: every occurrence of a
    name, in any language, lands in the same split, so no name is in two
    splits (the data holds 2,059 in-file repeats and 465 names in several
    languages). With ``deduplicate`` each (name, language) pair counts once
    (18,013 pairs, 17,451 distinct names; Russian is then 51.9 % rather than
    the 46.9 % of the raw lines). ``classify``: language classification
    from characters. ``generate``: a language-conditioned character LM
    (``model_kwargs`` gives ``num_conditions``); test reports the loss per
    character and samples names per language: the share that are new (not a
    training name) and, with ``classifier_path`` (a ``.keras`` classifier
    trained with ``task=classify`` and the same split), the share the
    classifier assigns to the requested language.

``build_makemore_data`` (characters, unconditioned LM)
    Karpathy's ``names.txt``: 32,033 lower-case first names (29,494
    distinct). Split by distinct name (``test_size`` and ``validation_size``
    distinct names, each with its repeats, as makemore holds out 1,000 names
    for test), so none leaks. Test
    reports the loss per character (nats, the end token included).

Character LM sequences are ``<s> c_1 ... c_n`` -> ``c_1 ... c_n </s>`` with
one boundary token for both ends (id 1, as makemore's ``.``); padded target
positions carry sample weight 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqlab.data.batching import _check_batch, bucketed_dataset, pad_ids
from seqlab.data.bundle import DataBundle
from seqlab.data.classification import check_classes, token_classification_bundle
from seqlab.data.files import data_folder, read_lines
from seqlab.data.splits import _check_fractions, _check_seed, split_by_group
from seqlab.data.vocabulary import PAD, UNK, Vocabulary
from seqlab.errors import ConfigError, DataNotFoundError
from seqlab.training.context import RunCallback

log = logging.getLogger(__name__)

BOUNDARY = "<s>"  # start and end of a name in the character LMs
NAMES_TASKS = ("classify", "generate")
NAMES_NOISE = "To The First Page"


def read_names(folder: Path) -> list[tuple[str, str]]:
    """``(line, language)`` for every line of every ``<Language>.txt``, unchanged
    (languages in file-name order)."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DataNotFoundError(f"dataset 'names': no <Language>.txt files in {folder}")
    return [(line, f.stem) for f in files for line in read_lines(f, "utf-8")]


def clean_names(rows: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Strip each name (trailing spaces in Chinese/Korean), drop empty lines
    and the ``To The First Page`` debris (also with a no-break space)."""
    out = []
    for name, language in rows:
        name = name.replace("\u00a0", " ").strip()
        if name and " ".join(name.split()) != NAMES_NOISE:
            out.append((name, language))
    return out


def read_makemore(path: Path) -> list[str]:
    """The names of ``names.txt`` (stripped, no empty items)."""
    return [line.strip() for line in read_lines(path, "utf-8") if line.strip()]


def names_splits(
    rows: Sequence[tuple[str, str]], fractions: Sequence[float], seed: int, deduplicate: bool
) -> dict[str, list[tuple[str, str]]]:
    """``{train, validation, test}`` lists of ``(name, language)``, split by
    distinct name (:func:`split_by_group`); ``deduplicate`` keeps each
    (name, language) pair once (first occurrence)."""
    if deduplicate:
        rows = list(dict.fromkeys(rows))
    parts = split_by_group([name for name, _ in rows], fractions, seed)
    return {s: [rows[i] for i in idx] for s, idx in zip(("train", "validation", "test"), parts, strict=True)}


class NameSamples(RunCallback):
    """Writes the names generated at test time to ``samples.txt`` and logs it."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def on_run_end(self):
        if not self.lines or self.context is None:
            return None
        path = self.context.output_dir / "samples.txt"
        path.write_text("\n".join(self.lines) + "\n")
        self.context.log_artifact(path, None)
        return "samples:\n" + "\n".join(self.lines[:20])


def _lm_arrays(names: Sequence[str], vocab: Vocabulary, max_len: int | None) -> tuple[dict, np.ndarray]:
    """``<s> name`` -> ``name </s>`` padded: inputs, targets, weights, lengths."""
    boundary = vocab.index[BOUNDARY]
    seqs = [np.concatenate([[boundary], vocab.encode(n), [boundary]]).astype(np.int32) for n in names]
    inputs, lengths = pad_ids([s[:-1] for s in seqs], max_len)
    targets, _ = pad_ids([s[1:] for s in seqs], max_len)
    weights = (np.arange(inputs.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
    return {"tokens": inputs, "targets": targets, "weights": weights}, lengths


def lm_test_loss(model: keras.Model, dataset: tf.data.Dataset) -> dict[str, float]:
    """Exact loss per character (nats, token-weighted over the whole split),
    its perplexity and bits per character."""
    total = count = 0.0
    for x, y, w in dataset:
        logits = np.asarray(model.predict_on_batch(x), np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll = -np.take_along_axis(logp, np.asarray(y)[..., None], -1)[..., 0]
        total += float((nll * np.asarray(w)).sum())
        count += float(np.asarray(w).sum())
    loss = total / max(count, 1.0)
    return {"loss": loss, "perplexity": math.exp(loss), "bpc": loss / math.log(2)}


def sample_names(
    model: keras.Model,
    vocab: Vocabulary,
    n: int,
    *,
    conditions: Sequence[int] | None = None,
    temperature: float = 1.0,
    max_len: int = 24,
    seed: int = 0,
) -> list[str]:
    """Names drawn one character at a time until ``</s>`` (at most
    ``max_len`` characters): ``n`` of them, or one per entry of
    ``conditions`` (the condition ids of a conditioned model). All are drawn
    as one batch; the model re-reads the prefix at each step."""
    if temperature <= 0:
        raise ConfigError(f"data.temperature must be positive, got {temperature!r}")
    if conditions is not None:
        conditions = np.asarray(conditions, np.int32)
        n = conditions.size
    rng = np.random.default_rng(seed)
    boundary = vocab.index[BOUNDARY]
    banned = [vocab.index[t] for t in (PAD, UNK) if t in vocab.index]
    prefix = np.full((n, 1), boundary, np.int32)
    done = np.zeros(n, bool)
    for _ in range(max_len):
        x = prefix if conditions is None else {"tokens": prefix, "condition": conditions}
        logits = np.asarray(model.predict_on_batch(x), np.float64)[:, -1] / temperature
        logits[:, banned] = -np.inf
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        # Inverse-CDF draw, one uniform per row.
        nxt = (p.cumsum(-1) < rng.random((n, 1))).sum(-1).clip(0, p.shape[1] - 1).astype(np.int32)
        nxt[done] = 0
        done |= nxt == boundary
        prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
        if done.all():
            break
    names = []
    for row in prefix[:, 1:]:
        chars = []
        for i in row:
            if i in (boundary, 0):
                break
            chars.append(vocab.tokens[i])
        names.append("".join(chars))
    return names


def _char_vocab(names: Iterable[str], specials: Sequence[str]) -> Vocabulary:
    return Vocabulary.build([list(n) for n in names], min_count=1, specials=specials)


def _lm_bundle_parts(splits, vocab, batch_size, seed, bucket_width, conditions=None):
    datasets, counts = {}, {}
    for split, names in splits.items():
        arrays, lengths = _lm_arrays(names, vocab, None)
        if conditions is not None:
            arrays["condition"] = conditions[split]

            def element(b):
                return {"tokens": b["tokens"], "condition": b["condition"]}, b["targets"], b["weights"]
        else:

            def element(b):
                return b["tokens"], b["targets"], b["weights"]

        datasets[split], counts[split] = bucketed_dataset(
            arrays, lengths, element, batch_size=batch_size, bucket_width=bucket_width,
            shuffle=split == "train", seed=seed, time_keys=("tokens", "targets", "weights"),
        )
    return datasets, counts


def _lm_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def _lm_metrics():
    from seqlab.metrics import Perplexity

    return [Perplexity(name="perplexity"), keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def build_names_data(
    *,
    batch_size: int,
    seed: int = 0,
    task: str = "classify",
    split_seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1),
    deduplicate: bool = True,
    bucket_width: int = 4,
    samples_per_language: int = 50,
    temperature: float = 1.0,
    classifier_path: str | None = None,
    path: str | None = None,
) -> DataBundle:
    """Surnames by language (names), split by distinct name (see the module docstring).

    ``task="classify"``: characters -> language; the model receives
    ``vocab_size`` and ``num_classes=18``; test reports accuracy beside
    ``data_info.majority_test_accuracy``.

    ``task="generate"``: a language-conditioned character LM; the model
    receives ``vocab_size`` and ``num_conditions=18``; test reports
    ``loss`` (nats per character, ``</s>`` included), ``perplexity``,
    ``bpc`` and, from ``samples_per_language`` names per language at
    ``temperature``, ``new_share`` (not a training name), ``unique_share``
    and, with ``classifier_path``, ``classified_as_requested`` beside its
    ceiling ``classifier_balanced_accuracy`` (the same classifier on the real
    test names, averaged over languages as the samples are).
    """
    if task not in NAMES_TASKS:
        raise ConfigError(f"data.task={task!r} is unknown for names; choose one of {list(NAMES_TASKS)}")
    fractions = _check_fractions("split_fractions", split_fractions)
    _check_seed("split_seed", split_seed)
    _check_batch(batch_size)
    folder = data_folder("names", path, [])
    raw = read_names(folder)
    rows = clean_names(raw)
    languages = sorted({lang for _, lang in rows})
    lang_id = {lang: i for i, lang in enumerate(languages)}
    splits = names_splits(rows, fractions, split_seed, deduplicate)
    info = {"task": f"names_{task}", "lines": len(raw), "clean_lines": len(rows),
            "distinct_names": len({n for n, _ in rows}), "deduplicate": deduplicate}
    if task == "classify":
        return token_classification_bundle(
            name="names", splits={s: ([list(n) for n, _ in r], np.array([lang_id[g] for _, g in r], np.int32))
                                  for s, r in splits.items()},
            class_names=languages, batch_size=batch_size, seed=seed, min_count=1, max_len=None,
            bucket_width=bucket_width, positive=None, info=info,
        )
    check_classes(np.array([lang_id[g] for _, g in splits["train"]]), languages, "names")
    vocab = _char_vocab((n for n, _ in splits["train"]), (PAD, BOUNDARY, UNK))
    conditions = {s: np.array([lang_id[g] for _, g in r], np.int32) for s, r in splits.items()}
    datasets, counts = _lm_bundle_parts({s: [n for n, _ in r] for s, r in splits.items()}, vocab,
                                        batch_size, seed, bucket_width, conditions)
    train_names = {n for n, _ in splits["train"]}
    samples = NameSamples()
    info.update(vocab_size=len(vocab), num_conditions=len(languages),
                **{f"{s}_size": len(r) for s, r in splits.items()})
    log.info("names (generate): %s", info)

    def evaluate_test(model):
        scores = lm_test_loss(model, datasets["test"])
        requested = np.repeat(np.arange(len(languages)), samples_per_language)
        generated = sample_names(model, vocab, requested.size, conditions=requested,
                                 temperature=temperature, seed=seed)
        for i, lang in enumerate(languages):
            names = generated[i * samples_per_language: (i + 1) * samples_per_language]
            samples.lines.append(f"{lang}: {', '.join(names[:10])}")
        scores["new_share"] = float(np.mean([g not in train_names for g in generated]))
        scores["unique_share"] = len(set(generated)) / len(generated)
        if classifier_path:
            # One load and one pass of the classifier over the samples and the real test names.
            # The real names give the ceiling: how often the same classifier names the language
            # of real names, averaged over languages (the samples are balanced, the split is not).
            predicted = classify_names(classifier_path, generated + [n for n, _ in splits["test"]],
                                       _char_vocab((n for n, _ in splits["train"]), (PAD, UNK)))
            scores["classified_as_requested"] = float(np.mean(predicted[:len(generated)] == requested))
            scores["classifier_balanced_accuracy"] = balanced_accuracy(conditions["test"],
                                                                       predicted[len(generated):])
        return scores

    return DataBundle(
        train=datasets["train"], validation=datasets["validation"], test=datasets["test"],
        model_kwargs={"vocab_size": len(vocab), "num_conditions": len(languages)},
        loss=_lm_loss, metrics=_lm_metrics, steps_per_epoch=counts["train"],
        throughput_unit="sequences", items_per_batch=batch_size, callbacks=[samples],
        save_artifacts=lambda folder: [vocab.save(Path(folder) / "vocab.json")],
        evaluate_test=evaluate_test, info=info,
    )


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of the share predicted right (recall).

    >>> balanced_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]))
    0.5
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def classify_names(classifier_path: str, names: Sequence[str], vocab: Vocabulary) -> np.ndarray:
    """Language ids a saved names classifier (``task=classify``, same split,
    hence the same character vocabulary) predicts for ``names``."""
    path = Path(classifier_path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(
            f"data.classifier_path={classifier_path!r} is not a file; give the .keras model of a "
            "names classifier run (its checkpoints/last.keras) or null"
        )
    classifier = keras.saving.load_model(path, compile=False)
    ids, _ = pad_ids([vocab.encode(list(n)) if n else np.zeros(0, np.int32) for n in names])
    if ids.shape[1] == 0:
        ids = np.zeros((len(names), 1), np.int32)
    return np.asarray(classifier.predict(ids, verbose=0)).argmax(-1)


def build_makemore_data(
    *,
    batch_size: int,
    seed: int = 0,
    split_seed: int = 0,
    test_size: int = 1000,
    validation_size: int = 1000,
    bucket_width: int = 4,
    num_samples: int = 20,
    temperature: float = 1.0,
    path: str | None = None,
) -> DataBundle:
    """US first names (makemore_names) for an unconditioned character LM,
    split by distinct name. The model receives ``vocab_size`` (29: padding,
    the boundary ``<s>``, ``<unk>`` and a-z). Test reports ``loss`` (nats per
    character incl. ``</s>``), ``perplexity``, ``bpc`` and ``new_share`` of
    ``num_samples`` sampled names."""
    _check_seed("split_seed", split_seed)
    _check_batch(batch_size)
    folder = data_folder("makemore_names", path, ["names.txt"])
    names = read_makemore(folder / "names.txt")
    distinct = len(set(names))
    for key, value in (("test_size", test_size), ("validation_size", validation_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")
    if test_size + validation_size >= distinct:
        raise ConfigError(
            f"data.test_size + data.validation_size ({test_size + validation_size}) must be below "
            f"the {distinct} distinct names"
        )
    fractions = ((distinct - test_size - validation_size) / distinct, validation_size / distinct)
    parts = split_by_group(names, fractions, split_seed)
    splits = {s: [names[i] for i in idx] for s, idx in zip(("train", "validation", "test"), parts, strict=True)}
    vocab = _char_vocab(splits["train"], (PAD, BOUNDARY, UNK))
    datasets, counts = _lm_bundle_parts(splits, vocab, batch_size, seed, bucket_width)
    train_names = set(splits["train"])
    samples = NameSamples()
    info = {"task": "makemore_names", "names": len(names), "distinct_names": distinct,
            "vocab_size": len(vocab), **{f"{s}_size": len(v) for s, v in splits.items()}}
    log.info("makemore_names: %s", info)

    def evaluate_test(model):
        scores = lm_test_loss(model, datasets["test"])
        generated = sample_names(model, vocab, num_samples, temperature=temperature, seed=seed)
        samples.lines.extend(generated)
        scores["new_share"] = float(np.mean([g not in train_names for g in generated]))
        return scores

    return DataBundle(
        train=datasets["train"], validation=datasets["validation"], test=datasets["test"],
        model_kwargs={"vocab_size": len(vocab)}, loss=_lm_loss, metrics=_lm_metrics,
        steps_per_epoch=counts["train"], throughput_unit="sequences", items_per_batch=batch_size,
        callbacks=[samples], save_artifacts=lambda folder: [vocab.save(Path(folder) / "vocab.json")],
        evaluate_test=evaluate_test, info=info,
    )
