"""What a data builder hands to the experiment: datasets plus how to train on them.

Each ``conf/data/*.yaml`` names a builder (``_target_``) that returns a
:class:`DataBundle`. The experiment never asks which task it runs: it builds
the model with ``model_kwargs`` (e.g. ``vocab_size``), compiles with ``loss``
and ``metrics``, and fits on ``train``/``validation``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from seqlab.data.tokenizers import Tokenizer


@dataclasses.dataclass
class DataBundle:
    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    # Keyword arguments the model builder needs from the data (vocab_size, ...).
    model_kwargs: dict[str, Any]
    # Factories, so a fresh loss/metric set is made per compile. The metrics are
    # compiled as weighted_metrics (sample weights mask padding).
    loss: Callable[[], Any]
    metrics: Callable[[], list]
    # Tokens processed per training batch (for tokens/sec); None if not a token task.
    tokens_per_batch: int | None = None
    steps_per_epoch: int | None = None
    tokenizer: Tokenizer | None = None
    # Token ids per split ("train", "validation", "test") for token tasks, so a
    # run can re-score a split another way (e.g. ``trainer.test_streams``).
    split_ids: dict[str, Any] | None = None
    # Facts worth logging as params (data.vocab_size, data.train_tokens, ...).
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
