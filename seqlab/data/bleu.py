"""Corpus BLEU of detokenized translations (sacreBLEU), two ways, and the 13a word count.

BLEU (Papineni et al. 2002) over the whole test set, one reference per
sentence::

    BLEU = BP * exp(sum_{n=1..4} log(p_n) / 4)     p_n: clipped n-gram precision, corpus-wide
    BP   = min(1, exp(1 - r / c))                  r, c: reference and hypothesis lengths

:func:`bleu_scores` reports sacreBLEU's standard score (mixed case, ``13a``
tokens, ``exp`` smoothing) and a lowercased, unsmoothed one comparable to
the figures of bentrevett/pytorch-seq2seq; :func:`count_words` counts ``13a``
words, the unit of the translation scoring's per-word perplexity
(:mod:`seqlab.data.translation_scoring`).
"""

from __future__ import annotations

from seqlab.errors import ConfigError


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
