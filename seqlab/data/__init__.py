"""Data builders, each returning a :class:`seqlab.data.bundle.DataBundle`.

Text: tokenizers, TFDS/local corpora, LM windows and stateful streams
(``text``), parallel corpora and translation (``pairs``; ``translation``, the
builder, on ``pair_batches``, ``translation_loss``, ``bleu`` and
``translation_scoring``), labelled sequences (``sentiment``, ``spam``, ``names``, built
on ``files``, ``splits``, ``vocabulary``, ``batching`` and ``classification``),
tagging (``tagging``: CoNLL-2000), time series and their baselines
(``timeseries``, ``baselines``), images (``images``: Fashion-MNIST, MNIST, on
the ``idx`` reader; ``membranes``: ISBI 2012; ``tfds_images``: TFDS names),
synthetic long-range tasks (``synthetic``).
"""
