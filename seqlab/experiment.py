"""A composed config -> one tracked run. The one place that wires everything.

``run(cfg)`` needs no Hydra runtime (tests and notebooks call it with a config
from ``hydra.compose``); ``seqlab-train`` is a thin ``@hydra.main`` wrapper.

    data    = instantiate(cfg.data, batch_size, seed)          -> DataBundle
    model   = instantiate(cfg.model, **data.model_kwargs)       -> keras.Model
    model.compile(optimizer(cfg.optimizer, cfg.lr_schedule, clipnorm), data.loss, data.metrics)
    model.fit(data.train, validation_data=data.validation,
              callbacks=data.callbacks + cfg.callbacks + metrics logger)
    score test (data.evaluate_test or model.evaluate), log the model

It knows no task: what a task adds (its artifacts, callbacks, throughput
unit, how test is scored) comes in the :class:`~seqlab.data.bundle.DataBundle`;
callbacks that need the run subclass
:class:`~seqlab.training.context.RunCallback`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
from omegaconf import DictConfig, OmegaConf

from seqlab.errors import ConfigError
from seqlab.instantiate import build
from seqlab.tracking import TrackedRun
from seqlab.tracking.keras_callback import MetricsLogger
from seqlab.training.context import RunCallback, RunContext
from seqlab.training.optim import build_optimizer
from seqlab.training.precision import check_precision, precision_policy
from seqlab.training.remat import check_remat, rematerialize
from seqlab.training.resume import OUTPUT_DIR_TAG, find_resume_point, mark_resumed, op_determinism
from seqlab.training.signals import stop_on_signals
from seqlab.training.strategy import (
    check_strategy,
    is_chief,
    is_multi_worker,
    make_strategy,
    prepare_model,
    shard_by_data,
)
from seqlab.training.time_budget import TrainTimeBudget
from seqlab.walk import walk_layers

log = logging.getLogger(__name__)


def _positive_int(cfg: DictConfig, key: str, allow_null: bool = False) -> int | None:
    value = OmegaConf.select(cfg, key)
    if value is None and allow_null:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{key} must be a positive integer{' or null' if allow_null else ''}, got {value!r}")
    return value


def validate(cfg: DictConfig) -> None:
    """Checks that need no data, so a typo fails in a second, not after loading
    (and before the MLflow run starts): unknown keys and wrongly typed values
    (:mod:`seqlab.config_check`), then the trainer's ranges."""
    from seqlab.config_check import check_config
    from seqlab.instantiate import check_targets

    check_targets({k: v for k, v in cfg.items_ex(resolve=False) if k != "hydra"}, path="")
    check_config(cfg)
    for key in ("trainer.epochs", "trainer.batch_size"):
        _positive_int(cfg, key)
    for key in ("trainer.steps_per_epoch", "trainer.validation_steps", "trainer.test_steps",
                "trainer.accumulate_steps"):
        _positive_int(cfg, key, allow_null=True)
    jit = OmegaConf.select(cfg, "trainer.jit_compile")
    if jit not in ("auto", True, False):
        raise ConfigError(f"trainer.jit_compile must be auto, true or false, got {jit!r}")
    budget = OmegaConf.select(cfg, "trainer.max_train_time_s", default=None)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float)
                               or not budget > 0):
        raise ConfigError(
            f"trainer.max_train_time_s must be a positive number of seconds or null, got {budget!r}"
        )
    check_precision(OmegaConf.select(cfg, "trainer.precision", default="float32"))
    check_remat(OmegaConf.select(cfg, "trainer.remat", default=False))
    # Also checked where the optimizer is built; here so a zero, negative or
    # non-finite rate fails before the data loads.
    rate = OmegaConf.select(cfg, "optimizer.learning_rate", default=None)
    if (isinstance(rate, int | float) and not isinstance(rate, bool)
            and not (math.isfinite(rate) and rate > 0)):
        raise ConfigError(
            f"optimizer.learning_rate must be a positive, finite number, got {rate!r}; "
            "set e.g. optimizer.learning_rate=1e-3"
        )
    check_strategy(OmegaConf.select(cfg, "trainer.strategy", default="default"),
                   OmegaConf.select(cfg, "trainer.cpu_devices", default=None))
    deterministic = OmegaConf.select(cfg, "trainer.deterministic", default=False)
    if deterministic not in (True, False):
        raise ConfigError(f"trainer.deterministic must be true or false, got {deterministic!r}")


def is_recurrent(model: keras.Model) -> bool:
    """True if any layer (also inside wrappers and sub-models) is a recurrent layer."""
    from seqlab.layers import Recurrent

    return any(isinstance(layer, (Recurrent, keras.layers.RNN)) for layer in walk_layers(model))


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def resolve_jit(setting: Any, model: keras.Model) -> bool:
    """``trainer.jit_compile: auto`` picks what experiments/ measured faster.

    On the 2-core CPU graph mode won for every family measured: recurrent
    models (the fused kernels compile their own time loops), convolutional
    ones (oneDNN convolutions ran 1.3-4x faster than XLA's: CNN, ResNet-20,
    U-Net), the Transformer encoder-decoder (2.8 s against 4.2 s a step) and
    the Transformer LM under mixed bfloat16 (XLA clearly slower); so auto means
    graph mode on a CPU. On a GPU, XLA for everything but recurrent models
    (expected to win there; not measured here). Keras' own "auto" means False
    on a CPU-only TensorFlow, so pass a bool."""
    if setting == "auto":
        return _has_gpu() and not is_recurrent(model)
    return bool(setting)


def _callbacks_from_config(callbacks_cfg: DictConfig | None) -> list[keras.callbacks.Callback]:
    callbacks = []
    for name, node in (callbacks_cfg or {}).items():
        if node is None:
            continue
        if "_target_" not in node:
            raise ConfigError(f"callbacks.{name} needs a _target_, got {OmegaConf.to_container(node)}")
        callbacks.append(build(node))
    return callbacks


def _default_output_dir() -> Path:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    return Path("outputs") / stamp


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> dict[str, float]:
    """Train and evaluate the configured model; return the final metrics.

    Everything is recorded in the MLflow run the tracking config points at;
    on any error the run is closed FAILED (KILLED on Ctrl-C) with the reason
    as tag ``failure_reason``, and what was logged before stays.
    """
    validate(cfg)
    output_dir = Path(output_dir or _default_output_dir()).resolve()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tracking = resolved.get("tracking") or {"enabled": False}
    trainer = cfg.trainer
    # First: splitting the CPU into logical devices must precede any TensorFlow work.
    strategy = make_strategy(trainer.get("strategy") or "default", trainer.get("cpu_devices"))
    if not is_chief():
        # Multi-worker: worker 0 (or the chief) logs and keeps the checkpoints.
        tracking = {**tracking, "enabled": False}
        output_dir = Path(tempfile.mkdtemp(prefix="seqlab-worker-"))
    # resume=<run_id> (seqlab.training.resume): checked before the run is re-opened.
    resume = None
    if cfg.get("resume"):
        resume = find_resume_point(str(cfg.resume), tracking, epochs=int(trainer.epochs),
                                   seed=trainer.get("seed"), output_dir=output_dir)
        output_dir = resume.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    with (
        TrackedRun(tracking, config=resolved, resume_run_id=resume and resume.run_id) as tracker,
        op_determinism(bool(trainer.get("deterministic", False))),
        precision_policy(trainer.get("precision") or "float32"),
    ):
        keras.utils.set_random_seed(int(trainer.seed))
        tracker.set_tag(OUTPUT_DIR_TAG, str(output_dir))
        if resume is not None and tracker.enabled:
            mark_resumed(tracking, resume)
        start = time.perf_counter()
        data = build(cfg.data, batch_size=trainer.batch_size, seed=trainer.seed)
        if is_multi_worker(strategy):
            data.train, data.validation, data.test = map(shard_by_data, (data.train, data.validation, data.test))
        tracker.log_params({f"data_info.{k}": v for k, v in data.info.items()})
        for path in data.save_artifacts(output_dir) if data.save_artifacts else []:
            tracker.log_artifact(path)

        # Again: building the data may draw from the global generators (a
        # first TFDS prepare does, a cached load does not), and the initial
        # weights must not depend on that.
        keras.utils.set_random_seed(int(trainer.seed))
        # Under the strategy: model, optimizer and metric variables are mirrored.
        with strategy.scope():
            model = build(cfg.model, **data.model_kwargs)
            if trainer.get("remat", False):
                log.info("remat: recomputing %s in the backward pass", ", ".join(rematerialize(model)))
            if data.whole_epochs and trainer.steps_per_epoch is not None:
                raise ConfigError(
                    f"trainer.steps_per_epoch={trainer.steps_per_epoch} cannot be used with this data: "
                    f"{data.whole_epochs}; set trainer.steps_per_epoch=null"
                )
            steps_per_epoch = trainer.steps_per_epoch or data.steps_per_epoch
            if not steps_per_epoch:
                raise ConfigError("trainer.steps_per_epoch is needed: the dataset size is unknown")
            total_steps = int(steps_per_epoch) * int(trainer.epochs)
            optimizer = build_optimizer(
                cfg.optimizer, cfg.get("lr_schedule"), clipnorm=trainer.clipnorm, total_steps=total_steps,
                accumulate_steps=trainer.get("accumulate_steps"),
            )
            jit = resolve_jit(trainer.jit_compile, model)
            # weighted_metrics, not metrics: Keras passes sample weights (the padding
            # masks of padded evaluation data) only to weighted metrics.
            model.compile(optimizer=optimizer, loss=data.loss(), weighted_metrics=data.metrics(), jit_compile=jit)
        prepare_model(model, strategy, data.train.element_spec)
        tracker.log_params(
            {"model_info.parameters": model.count_params(), "trainer_info.jit_compile": jit,
             "trainer_info.steps_per_epoch": steps_per_epoch}
        )
        log.info("model %s: %d parameters, jit_compile=%s", model.name, model.count_params(), jit)

        # The task's callbacks first: they may rewrite an epoch's logs (e.g.
        # an exact val_loss) that the configured ones and the logger read.
        callbacks = [*data.callbacks, *_callbacks_from_config(cfg.get("callbacks"))]
        metrics_logger = MetricsLogger(
            tracker.log_metrics,
            log_every_n_steps=int(tracking.get("log_every_n_steps") or 0),
            items_per_batch=data.items_per_batch,
            unit=data.throughput_unit,
        )
        context = RunContext(
            bundle=data,
            output_dir=output_dir,
            config=resolved,
            log_metrics=tracker.log_metrics,
            log_artifact=tracker.log_artifact,
            set_tag=tracker.set_tag,
        )
        run_callbacks = [callback for callback in callbacks if isinstance(callback, RunCallback)]
        for callback in run_callbacks:
            callback.bind(context)

        # (dataset, initial epoch, epochs, extra callbacks) of each fit: one,
        # or two for a resume from a mid-epoch stop (the rest of that epoch first).
        train = data.train.repeat() if trainer.steps_per_epoch else data.train
        phases = [(train, 0, int(trainer.epochs), [])]
        if resume is not None:
            # Weights, optimizer (step, moments), random states, data position.
            resume.restore(model)
            phases = resume.fit_phases(data.train, epochs=int(trainer.epochs),
                                       steps_per_epoch=trainer.steps_per_epoch)
            log.info("resuming run %s %s", resume.run_id, resume.describe())

        # The logger goes last: metrics other callbacks add to ``logs`` are logged too.
        # SIGINT/SIGTERM while fit runs: stop at the next batch boundary, the
        # callbacks save their state (the checkpoint), then StopRequested (KILLED).
        budget = TrainTimeBudget(trainer.get("max_train_time_s"))
        with stop_on_signals(callbacks) as stopper:
            for dataset, initial_epoch, epochs, extra in phases:
                if budget.stopped:
                    break
                model.fit(
                    dataset,
                    initial_epoch=initial_epoch,
                    validation_data=data.validation,
                    validation_steps=trainer.get("validation_steps"),
                    epochs=epochs,
                    steps_per_epoch=int(trainer.steps_per_epoch) if trainer.steps_per_epoch else None,
                    callbacks=[budget, *callbacks, *extra, metrics_logger, stopper],
                    shuffle=False,  # the tf.data pipeline shuffles, with the seed
                    verbose=int(trainer.get("verbose", 1)),
                )

        # The last epoch's validation pass already covered the whole split
        # with the final weights; only the test split is new.
        results: dict[str, float] = dict(metrics_logger.history[-1]) if metrics_logger.history else {}
        if data.test is not None and trainer.get("test", True):
            if data.evaluate_test is not None:
                scores = data.evaluate_test(model)
            else:
                scores = model.evaluate(data.test, steps=trainer.get("test_steps"), verbose=0,
                                        return_dict=True, callbacks=data.callbacks)
            results.update({f"test_{k}": float(v) for k, v in scores.items()})
        results["wall_time_s"] = time.perf_counter() - start
        results["train_time_s"] = budget.train_time_s
        # Only what is new: val_* were logged with the last epoch.
        final_step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        tracker.log_metrics(
            {k: v for k, v in results.items() if k.startswith("test_") or k.endswith("time_s")},
            step=final_step,
        )

        for callback in run_callbacks:
            message = callback.on_run_end()
            if message:
                print(message)

        if tracking.get("log_model", True) and tracker.enabled:
            tracker.log_model(model, step=final_step)  # MLflow Keras flavour: runs:/<id>/model
        plots = output_dir / "plots"
        tracker.plot_learning_curves(plots / "learning_curves.png")
        tracker.log_dir(plots, "plots")

        summary = ", ".join(
            f"{k}={v:.4f}" for k, v in results.items() if k.startswith(("val_", "test_")) and math.isfinite(v)
        )
        print(f"done in {results['wall_time_s']:.0f}s: {summary}")
        if tracker.run_id:
            print(f"MLflow run {tracker.run_id} ({tracker.tracking_uri})")
        results["run_id"] = tracker.run_id
        return results
