"""Translation data: the smoothed loss against Keras' own, padding masked out of the
loss, BLEU glue against a hand computation and sacreBLEU, length-bucketed batches,
the bundle on real Multi30k and its test scoring."""

from __future__ import annotations

import math
from collections import Counter

import keras
import numpy as np
import pytest

from seqlab.data.bleu import bleu_scores
from seqlab.data.pair_batches import pair_dataset
from seqlab.data.pairs import BOS_ID, EOS_ID, PAD_ID, SubwordVocab, encode_pairs
from seqlab.data.translation import build_translation_data
from seqlab.data.translation_loss import SmoothedCrossEntropy, TokenAccuracy
from seqlab.data.translation_scoring import TRANSLATIONS_FILE, TranslationRun
from seqlab.errors import ConfigError
from seqlab.models.transformer_seq2seq import build_transformer_seq2seq
from seqlab.training.context import RunContext


# ------------------------------------------------------------------------ the loss
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_smoothed_loss_equals_keras_categorical_crossentropy_with_label_smoothing(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype("float32")
    labels = rng.integers(0, 7, size=(3, 5))
    ours = SmoothedCrossEntropy(eps, reduction="none")(labels, logits)
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=eps, reduction="none")
    np.testing.assert_allclose(np.asarray(ours), np.asarray(keras_loss(np.eye(7)[labels], logits)), rtol=1e-5)


def test_padding_is_masked_out_of_the_loss():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 6)).astype("float32")
    labels = np.array([[3, 4, 2, 0], [5, 2, 0, 0]])
    weights = (labels != PAD_ID).astype("float32")
    loss = SmoothedCrossEntropy(0.1)
    value = float(loss(labels, logits, sample_weight=weights))
    # NumPy: the mean over the 5 real tokens only.
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_token = 0.9 * -np.take_along_axis(logp, labels[..., None], -1)[..., 0] + 0.1 * -logp.mean(-1)
    assert value == pytest.approx(float(per_token[weights > 0].mean()), rel=1e-5)
    # Whatever the model predicts at padded positions does not matter.
    noisy = logits.copy()
    noisy[weights == 0] = 50 * rng.normal(size=(int((weights == 0).sum()), 6))
    assert float(loss(labels, noisy, sample_weight=weights)) == pytest.approx(value, rel=1e-6)


def test_token_accuracy_counts_tokens_across_batches_of_different_lengths():
    rng = np.random.default_rng(2)
    batches = []
    for length in (3, 9):
        labels = rng.integers(0, 5, size=(2, length))
        weights = (rng.random((2, length)) < 0.6).astype("float32")
        batches.append((labels, rng.normal(size=(2, length, 5)).astype("float32"), weights))
    ours = TokenAccuracy()
    for labels, logits, weights in batches:
        ours.update_state(labels, logits, sample_weight=weights)
        one = TokenAccuracy()
        one.update_state(labels, logits, sample_weight=weights)
        keras_acc = keras.metrics.SparseCategoricalAccuracy()  # the same within one batch
        keras_acc.update_state(labels, logits, sample_weight=weights)
        assert float(one.result()) == pytest.approx(float(keras_acc.result()), abs=1e-6)
    hits = np.concatenate([((lg.argmax(-1) == lb) * w).ravel() for lb, lg, w in batches])
    total = np.concatenate([w.ravel() for _, _, w in batches])
    assert float(ours.result()) == pytest.approx(hits.sum() / total.sum(), abs=1e-6)


def test_bad_label_smoothing_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"data.label_smoothing must be in \[0, 1\)"):
        SmoothedCrossEntropy(1.0)


def test_moved_loss_and_metric_keep_their_registered_names_and_old_home():
    import seqlab.data.translation as old

    for cls in (SmoothedCrossEntropy, TokenAccuracy):
        assert getattr(old, cls.__name__) is cls
        assert keras.saving.get_registered_name(cls) == f"seqlab>{cls.__name__}"
    loss = keras.losses.deserialize(keras.losses.serialize(SmoothedCrossEntropy(0.1)))
    assert isinstance(loss, SmoothedCrossEntropy) and loss.label_smoothing == 0.1


# ------------------------------------------------------------------------ BLEU
def _hand_bleu(hyps, refs):
    """Corpus BLEU (Papineni et al.) over whitespace tokens: clipped n-gram precisions
    for n = 1..4 summed over the corpus, geometric mean, brevity penalty."""
    matches, totals = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for hyp, ref in zip(hyps, refs, strict=True):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hc = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            rc = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(log_precision)


def test_bleu_glue_equals_a_hand_computation_and_sacrebleu():
    import sacrebleu

    hyps = ["A man in a red shirt is riding a bike.", "Two dogs play in the snow.",
            "A woman sings on a stage ."]
    refs = ["A man in a red shirt rides a bicycle.", "Two dogs are playing in the snow.",
            "A Woman is singing on the stage."]
    scores = bleu_scores(hyps, refs)
    # Lowercased 13a tokens (punctuation split off) = whitespace tokens of this text:
    tokenized_hyps = ["a man in a red shirt is riding a bike .", "two dogs play in the snow .",
                      "a woman sings on a stage ."]
    tokenized_refs = ["a man in a red shirt rides a bicycle .", "two dogs are playing in the snow .",
                      "a woman is singing on the stage ."]
    assert scores["bleu_lc"] == pytest.approx(_hand_bleu(tokenized_hyps, tokenized_refs), abs=1e-9)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    assert scores["bleu"] < scores["bleu_lc"]  # "Woman" vs "woman" only matches lowercased
    assert "case:lc" in scores["bleu_lc_signature"] and "tok:13a" in scores["bleu_lc_signature"]
    assert "case:mixed" in scores["bleu_signature"] and "smooth:exp" in scores["bleu_signature"]
    assert bleu_scores(refs, refs)["bleu"] == pytest.approx(100.0)


# --------------------------------------------------------------------- batching
DE = ["Ein Hund läuft.", "Zwei Männer sitzen auf einer Bank im Park.", "Ein Kind.", "Eine Frau liest ein Buch.",
      "Leute gehen.", "Ein Mann mit einem Hut fährt Fahrrad auf der Straße."]
EN = ["A dog runs.", "Two men sit on a bench in the park.", "A child.", "A woman reads a book.",
      "People walk.", "A man with a hat rides a bike on the street."]


@pytest.fixture(scope="module")
def pairs():
    vocab = SubwordVocab.fit(DE + EN, vocab_size=80, min_frequency=1)
    return encode_pairs(vocab, vocab, DE * 5, EN * 5, max_source_len=32, max_target_len=32)


@pytest.mark.parametrize(("batch_size", "batch_tokens"), [(4, None), (64, 40)])
def test_bucketed_batches_hold_every_pair_once_padded_and_weighted(pairs, batch_size, batch_tokens):
    ds, steps, tokens = pair_dataset(pairs, batch_size=batch_size, batch_tokens=batch_tokens, bucket_width=4,
                                     shuffle=True, seed=3)
    seen, batches = [], 0
    for inputs, target_out, weights in ds:
        src, tin, tout, w = (np.asarray(a) for a in (inputs["source"], inputs["target_in"], target_out, weights))
        batches += 1
        assert src.shape[1] == tin.shape[1] == tout.shape[1] and src.shape[1] % 4 == 0
        if batch_tokens:
            assert src.shape[0] * src.shape[1] <= batch_tokens
        else:
            assert src.shape[0] <= batch_size
        np.testing.assert_array_equal(w, (tout != PAD_ID).astype("float32"))
        assert (tin[:, 0] == BOS_ID).all()
        for row in range(src.shape[0]):
            n = int(w[row].sum())
            assert tout[row, n - 1] == EOS_ID
            np.testing.assert_array_equal(tin[row, 1:n], tout[row, : n - 1])  # teacher forcing shift
            seen.append((tuple(src[row][src[row] != 0]), tuple(tout[row, :n])))
    assert batches == steps
    expected = [(tuple(s), tuple(t)) for s, t in zip(pairs.source, pairs.target_out, strict=True)]
    assert sorted(seen) == sorted(expected)
    assert tokens == sum(t.size for t in pairs.target_out)


def test_training_batches_drop_each_buckets_remainder(pairs):
    ds, steps, _ = pair_dataset(pairs, batch_size=4, bucket_width=4, shuffle=True, drop_remainder=True)
    sizes = [int(np.asarray(t).shape[0]) for _, t, _ in ds]
    assert len(sizes) == steps and set(sizes) == {4}


# --------------------------------------------------------------------- the bundle
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    import os

    if not os.environ.get("SEQLAB_DATA_DIR"):
        pytest.skip("SEQLAB_DATA_DIR is not set")
    return build_translation_data(batch_size=16, limit=96, vocab_size=600, bucket_width=8,
                                  decoding={"batch_size": 32, "max_new_tokens": 12, "jit_compile": False})


def test_bundle_on_real_multi30k(bundle):
    assert bundle.model_kwargs == {"source_vocab_size": 600, "target_vocab_size": 600, "max_source_len": 64,
                                   "max_target_len": 64, "pad_id": 0, "shared_vocabulary": True}
    assert bundle.throughput_unit == "tokens" and bundle.items_per_batch > 16
    assert bundle.info["train_pairs"] == bundle.info["test_pairs"] == 96
    (inputs, target, weights), = bundle.train.take(1)
    assert set(inputs) == {"source", "target_in"} and target.shape == weights.shape
    names = {m.name for m in bundle.metrics()}
    assert names == {"accuracy", "perplexity"}
    assert bundle.loss().label_smoothing == 0.1


def test_evaluate_test_scores_decodes_and_writes_translations(bundle, tmp_path):
    keras.utils.set_random_seed(0)
    # init_std 0.3: well-separated logits, so argmax (accuracy) has no near-ties.
    model = build_transformer_seq2seq(**bundle.model_kwargs, d_model=16, num_heads=2, num_layers=1, ff_dim=16,
                                      init_std=0.3)
    (run,) = [c for c in bundle.callbacks if isinstance(c, TranslationRun)]
    tags, artifacts = {}, []
    run.bind(RunContext(bundle=bundle, output_dir=tmp_path, set_tag=tags.__setitem__,
                        log_artifact=lambda path, folder: artifacts.append(path)))
    scores = bundle.evaluate_test(model)
    assert {"loss", "perplexity", "accuracy", "word_perplexity", "bleu", "bleu_lc", "decode_time_s"} <= set(scores)
    # An untrained model: far from the data, next to nothing right.
    assert scores["perplexity"] > 100 and scores["accuracy"] < 0.05 and 0 <= scores["bleu"] < 5
    assert scores["word_perplexity"] > scores["perplexity"]  # more pieces than words
    # Same weights, Keras' own evaluation of the test split: the perplexity agrees.
    model.compile(loss=bundle.loss(), weighted_metrics=bundle.metrics())
    keras_scores = model.evaluate(bundle.test, return_dict=True, verbose=0)
    assert scores["perplexity"] == pytest.approx(keras_scores["perplexity"], rel=1e-4)
    assert scores["accuracy"] == pytest.approx(keras_scores["accuracy"], rel=1e-4)
    lines = (tmp_path / TRANSLATIONS_FILE).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "source\treference\thypothesis" and len(lines) == 97
    assert lines[1].split("\t")[:2] == ["Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
                                        "A man in an orange hat starring at something."]
    assert artifacts == [tmp_path / TRANSLATIONS_FILE]
    assert set(tags) == {"sacrebleu_signature", "sacrebleu_signature_lc"}
    assert "test BLEU" in run.on_run_end()


def test_bad_data_options_are_clear_errors():
    with pytest.raises(ConfigError, match=r"data.decoding: unknown option\(s\) \['beam'\]"):
        build_translation_data(batch_size=8, decoding={"beam": 4})
    with pytest.raises(ConfigError, match="data.decoding.strategy='sampling' is unknown"):
        build_translation_data(batch_size=8, decoding={"strategy": "sampling"})
    with pytest.raises(ConfigError, match="data.batch_tokens=10 is less than one pair"):
        build_translation_data(batch_size=8, batch_tokens=10)
    with pytest.raises(ConfigError, match="data.bucket_width must be an integer >= 1"):
        build_translation_data(batch_size=8, bucket_width=0)
