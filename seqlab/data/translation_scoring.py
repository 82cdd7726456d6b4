"""Test scoring of a translation model: token scores, decoding, BLEU, the translations file.

:func:`make_evaluate_test` builds the bundle's ``evaluate_test(model)``: the
exact token-weighted test loss (as trained: smoothed), perplexity and
accuracy (:func:`token_scores`), the perplexity per ``13a`` word

    word_perplexity = exp(-sum log P(reference) / (13a words + one <eos> per sentence))

(comparable across subword vocabularies), then the whole test set decoded
(:func:`seqlab.generation.seq2seq.translate`, greedy or beam) and scored with
sacreBLEU (:func:`seqlab.data.bleu.bleu_scores`). The translations are
written to ``test_translations.tsv`` and the sacreBLEU signatures set as run
tags, through :class:`TranslationRun`; a model with attention adds
``plots/test_attention.png`` (:mod:`seqlab.data.attention_maps`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
from keras import ops

from seqlab.data.bleu import bleu_scores, count_words
from seqlab.data.pairs import EncodedPairs, SubwordVocab
from seqlab.data.translation_loss import SmoothedCrossEntropy
from seqlab.training.context import RunCallback

log = logging.getLogger(__name__)

TRANSLATIONS_FILE = "test_translations.tsv"


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
