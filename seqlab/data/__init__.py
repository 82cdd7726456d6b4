"""Data builders, each returning a :class:`seqlab.data.bundle.DataBundle`.

Text: tokenizers, TFDS/local corpora, LM windows and stateful streams
(``text``), parallel corpora and translation batches (``pairs``,
``translation``), labelled sequences (``sentiment``, ``spam``, ``names``, built
on ``files``, ``splits``, ``vocabulary``, ``batching`` and ``classification``),
tagging (``tagging``: CoNLL-2000), time series and their baselines
(``timeseries``, ``baselines``), images (``images``: Fashion-MNIST, MNIST, on
the ``idx`` reader; ``membranes``: ISBI 2012; ``tfds_images``: TFDS names),
synthetic long-range tasks (``synthetic``).
"""
