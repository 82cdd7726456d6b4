"""What a data builder hands to the experiment: datasets plus how to train on them.

Each ``conf/data/*.yaml`` names a builder (``_target_``) that returns a
:class:`DataBundle`. The experiment never asks which task it runs: it builds
the model with ``model_kwargs``, compiles with ``loss`` and ``metrics``, fits
on ``train``/``validation`` with the bundle's ``callbacks`` beside the
configured ones, scores ``test`` (through ``evaluate_test`` where the task
scores it its own way), logs ``info`` and the files ``save_artifacts`` writes,
and reports speed in ``throughput_unit`` per second. A new task is one
builder that fills this in; ``seqlab.experiment.run`` does not change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf


@dataclasses.dataclass
class DataBundle:
    """The datasets of one task and what the run needs to train on them.

    Attributes:
        train: batches of ``(inputs, targets)`` or ``(inputs, targets, weights)``.
        validation: scored after every epoch (None: no validation).
        test: scored once after training (None: no test split).
        model_kwargs: keyword arguments the model builder needs from the data
            (``vocab_size``, ``num_classes``, ``input_dim``, ...).
        loss: a factory of the loss (a fresh object per compile).
        metrics: a factory of the metrics; they are compiled as
            ``weighted_metrics``, so sample weights (padding masks) reach them.
        steps_per_epoch: batches in one pass over ``train`` (None: unknown).
        whole_epochs: why ``train`` must be read one whole pass per epoch
            (e.g. it changes between epochs), so ``trainer.steps_per_epoch``
            must stay null; None: any ``steps_per_epoch`` works.
        throughput_unit: what ``items_per_batch`` counts ("tokens", "images",
            "sequences"); the run logs ``<unit>_per_sec``.
        items_per_batch: ``throughput_unit``s in one training batch (None: no
            throughput metric).
        callbacks: the task's own Keras callbacks (state resets, a text
            sampler, ...), run before the configured ones in ``fit`` and in the
            test evaluation. Those that subclass
            :class:`seqlab.training.context.RunCallback` are bound to the run.
        save_artifacts: writes the task's files (a tokenizer, ...) into the
            folder it is given and returns their paths; the run logs them.
        evaluate_test: scores the trained model on the test split the task's
            own way (e.g. one stateful stream over the whole split) and returns
            ``{metric: value}``; None means ``model.evaluate(test)``.
        info: facts worth logging as params (``data_info.<key>``).
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    model_kwargs: dict[str, Any]
    loss: Callable[[], Any]
    metrics: Callable[[], list]
    steps_per_epoch: int | None = None
    whole_epochs: str | None = None
    throughput_unit: str = "examples"
    items_per_batch: int | None = None
    callbacks: list[keras.callbacks.Callback] = dataclasses.field(default_factory=list)
    save_artifacts: Callable[[Path], list[Path]] | None = None
    evaluate_test: Callable[[keras.Model], dict[str, float]] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
