"""``trainer.strategy``: data-parallel training through ``tf.distribute``.

``default``
    one device (TensorFlow's default strategy).
``mirrored``
    ``MirroredStrategy``: one replica per local device, gradients all-reduced
    every step. On a CPU-only machine ``trainer.cpu_devices=N`` splits the CPU
    into ``N`` logical devices (for tests and for checking a distributed
    config on a laptop; it does not make one CPU faster).
``multi_worker``
    ``MultiWorkerMirroredStrategy``: the same, across processes or machines
    described by ``TF_CONFIG`` (``{"cluster": {"worker": [...]}, "task":
    {"type": "worker", "index": i}}``). Every worker runs the same command;
    worker 0 (or a ``chief``) logs to MLflow and keeps the checkpoints, the
    others write to a scratch folder.

In every mode ``trainer.batch_size`` is the **global** batch: each of ``R``
replicas computes the gradient of ``batch_size / R`` examples and the
all-reduce averages them, so a step equals the single-device step on the
whole batch (tested to 1e-5 for mirrored and multi-worker).

Keras 3's ``fit`` under ``MultiWorkerMirroredStrategy`` fails on two eager
reductions (keras-team/keras#20585, tensorflow#72388): the data batch it
reduces to build the model symbolically (integer token batches cannot be
all-reduced) and the per-step logs it reduces along an axis scalars do not
have. :func:`prepare_model` replaces exactly those two steps (the model is
built from the dataset's shapes and dtypes, which also keeps the first batch
for training; the logs are averaged over workers element-wise); everything
else is Keras' own ``fit``.
The replacement touches the private ``keras.src.backend.tensorflow.trainer``
module, which is why ``keras`` is bounded above in ``pyproject.toml``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

from seqlab.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker")


def check_strategy(name: Any, cpu_devices: Any = None) -> None:
    if name not in STRATEGIES:
        raise ConfigError(f"trainer.strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if cpu_devices is not None and (isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int)
                                    or cpu_devices < 1):
        raise ConfigError(f"trainer.cpu_devices must be a positive integer or null, got {cpu_devices!r}")
    if name == "multi_worker":
        cluster = _tf_config()
        if not cluster.get("cluster"):
            raise ConfigError(
                "trainer.strategy=multi_worker needs TF_CONFIG in the environment of every worker, e.g. "
                'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}\''
            )


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG") or "{}"
    try:
        return json.loads(raw)
    except ValueError:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {raw[:200]!r}") from None


def split_cpu(devices: int) -> None:
    """Split the first CPU into ``devices`` logical devices (before TensorFlow starts)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == devices:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        raise ConfigError(
            f"trainer.cpu_devices={devices}: TensorFlow had already started in this process; the CPU can "
            "only be split before that (run it through seqlab-train, or call split_cpu first)"
        ) from None


def make_strategy(name: str, cpu_devices: int | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy named by ``trainer.strategy``."""
    check_strategy(name, cpu_devices)
    if cpu_devices:
        split_cpu(cpu_devices)
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """True unless ``TF_CONFIG`` names this process a non-chief worker."""
    task = _tf_config().get("task") or {}
    cluster = _tf_config().get("cluster") or {}
    kind, index = task.get("type"), int(task.get("index", 0) or 0)
    if kind is None or kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def shard_by_data(dataset: tf.data.Dataset | None) -> tf.data.Dataset | None:
    """Datasets built in memory have no files to shard: shard by element."""
    if dataset is None:
        return None
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def prepare_model(model, strategy: tf.distribute.Strategy, element_spec) -> None:
    """Build the compiled model for ``strategy`` from the dataset's element spec.

    Keras builds a distributed model from the first batch of the training
    iterator (``_maybe_symbolic_build``). That batch is then lost to training
    when ``steps_per_epoch`` keeps the iterator between epochs, so a
    distributed run would skip one batch the single-device run trains on;
    under ``MultiWorkerMirroredStrategy`` the eager reduction of that batch
    fails outright (integer tokens). Building from shapes and dtypes alone
    consumes nothing; the per-step log reduction is fixed for multi-worker.
    """
    if strategy is tf.distribute.get_strategy():  # the default strategy: Keras builds lazily
        return
    import keras
    from keras import tree

    batch = tree.map_structure(lambda spec: keras.KerasTensor(spec.shape, spec.dtype.name), element_spec)
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if is_multi_worker(strategy):
        _patch_log_reduction()


def _patch_log_reduction() -> None:
    import keras.src.backend.tensorflow.trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if getattr(original, "_seqlab_patched", False):
        return
    from keras import tree

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and keras_trainer._collective_all_reduce_multi_worker(strategy):
            # The mean over workers, element-wise: scalars have no axis 0.
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._seqlab_patched = True
    keras_trainer.reduce_per_replica = reduce_per_replica
