"""Per-time-step gradient flow through a recurrent layer: ``||dL/dh_t||`` for every t.

What is measured
----------------
For a recurrent layer with cell ``f``, inputs ``x_1..x_T`` (the layer's input
for a fixed probe batch) and hidden states ``h_t = f(x_t, s_{t-1})`` (``h_t`` is
the cell output and the first entry of its state ``s_t``; an LSTM's ``c_t`` is
the second), the probe re-runs the layer as an explicit loop over t with the
layer's own cell, and adds a zero perturbation ``eps_t`` to ``h_t`` right
after step t::

    h~_t = h_t + eps_t,   s~_t = (h~_t, c_t, ...),   y_t = h~_t,   h_{t+1} = f(x_{t+1}, s~_t)

The rest of the model (everything after the recurrent layer) maps ``y_1..y_T``
to predictions and the loss. Then ``dL/d eps_t`` at ``eps = 0`` is the *total*
derivative of the loss with respect to ``h_t``: through the output ``y_t``
directly and through every later step (BPTT's ``delta_t``). It is not the
partial ``dL/dy_t`` of the layer's output sequence, which misses the paths
through later steps.

The loss is per example, ``L_b``, taken at the last time step
(``loss_at="last"``: only ``L_b(T)`` of a per-step loss; for a model with one
output per sequence, such as the regressor, it is the loss) or summed over
all time steps (``loss_at="sum"``). Since example b's loss depends on its own
states only, ``d(sum_b L_b)/d eps_t[b] = dL_b/dh_t[b]``; the reported value
is the mean over the probe batch of the per-example Euclidean norm:

    g_t = mean_b || dL_b / dh_t[b] ||_2,     t = 0 .. T-1

Metrics: ``grad_time/<layer>`` with ``step = t`` (the curve of the last probe,
logged at the end of training; every probe's curve is also logged as
``grad_time/<layer>/step<k>`` when ``log_all_probes``) and
``grad_flow/<layer>`` = ``log10(g_0 / g_{T-1})`` at training step k (one
number per probe: negative = vanishing towards early steps, positive =
exploding). Artifacts: ``plots/grad_time_<layer>_step<k>.png`` per probe,
``plots/grad_time_<layer>.png`` (all probes) and ``grad_time/<layer>.csv``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqlab.diagnostics._base import DiagnosticCallback, check_every
from seqlab.diagnostics.plots import plot_time_gradients
from seqlab.errors import ConfigError

log = logging.getLogger(__name__)

LOSS_AT = ("last", "sum")


def per_example_loss(loss) -> Callable:
    """``(y_true, y_pred) -> unreduced loss`` from a Keras loss object, name or function."""
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # the loss before reduction over the batch
    if isinstance(loss, str):
        return keras.losses.get(loss)
    if callable(loss):
        return loss
    raise ConfigError(f"cannot take a per-example loss from {loss!r}; compile the model with a loss")


def _state_units(cell) -> int:
    size = cell.state_size
    size = size[0] if isinstance(size, (list, tuple)) else size
    return int(size)


def _check_layer(layer) -> None:
    if getattr(layer, "cell", None) is None:
        raise ConfigError(f"layer {layer.name!r} has no recurrent cell")
    if not getattr(layer, "return_sequences", True) or getattr(layer, "go_backwards", False):
        raise ConfigError(
            f"layer {layer.name!r}: the time-gradient probe needs a forward layer that returns "
            "sequences (return_sequences=True, go_backwards=False)"
        )


def split_at(model: keras.Model, layer) -> tuple[keras.Model, keras.Model]:
    """``(pre, head)``: model inputs -> layer input, and layer output -> model output."""
    try:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        pre = keras.Model(inputs, layer.input)
        head = keras.Model(layer.output, model.outputs[0])
    except Exception as err:  # subclassed models have no graph to split
        raise ConfigError(
            f"cannot split model {model.name!r} at layer {layer.name!r} (a functional model is "
            f"needed for the time-gradient probe): {err}"
        ) from err
    return pre, head


def loop_gradients(cell, head, loss_fn, x_seq, y, loss_at: str = "last") -> tf.Tensor:
    """``g_t`` (shape ``[T]``) for the layer input ``x_seq [B, T, D]`` (see the module doc).

    The loop is a plain ``for t in tf.range(T)``: eager step by step, or a
    ``tf.while_loop`` when wrapped in ``tf.function``.
    """
    if loss_at not in LOSS_AT:
        raise ConfigError(f"loss_at must be one of {LOSS_AT}, got {loss_at!r}")
    x_seq = tf.convert_to_tensor(x_seq)
    batch = tf.shape(x_seq)[0]
    steps = tf.shape(x_seq)[1]
    units = _state_units(cell)
    eps = tf.zeros(tf.stack([steps, batch, units]), dtype=cell.compute_dtype)
    xs = tf.transpose(x_seq, [1, 0, 2])
    with tf.GradientTape() as tape:
        tape.watch(eps)
        states = cell.get_initial_state(batch_size=batch)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        outputs = tf.TensorArray(cell.compute_dtype, size=steps)
        for t in tf.range(steps):
            _, new_states = cell(xs[t], states, training=False)
            new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
            h = new_states[0] + eps[t]
            states = [h] + new_states[1:]
            outputs = outputs.write(t, h)
        sequence = tf.transpose(outputs.stack(), [1, 0, 2])
        pred = head(sequence, training=False)
        values = tf.convert_to_tensor(loss_fn(y, pred))
        if loss_at == "last" and values.shape.rank >= 2:
            values = values[:, -1]
        total = tf.reduce_sum(tf.cast(values, tf.float32))
    grads = tape.gradient(total, eps)  # [T, B, H]
    # Norms in float64: in float32 the squares of components below ~1e-19 flush
    # to zero and a small-but-nonzero gradient would read as exactly 0.
    return tf.reduce_mean(tf.norm(tf.cast(grads, tf.float64), axis=-1), axis=1)


def time_step_gradients(
    model: keras.Model,
    layer,
    inputs,
    targets,
    loss=None,
    loss_at: str = "last",
    compiled: bool = False,
) -> np.ndarray:
    """``g_t = mean_b ||dL_b/dh_t||`` for ``layer`` of ``model`` on ``(inputs, targets)``.

    ``layer`` is a layer or its name; ``loss`` defaults to the compiled loss.
    """
    if isinstance(layer, str):
        layer = model.get_layer(layer)
    _check_layer(layer)
    loss_fn = per_example_loss(loss if loss is not None else model.loss)
    pre, head = split_at(model, layer)
    fn = loop_gradients
    if compiled:
        fn = tf.function(loop_gradients, reduce_retracing=True)
    x_seq = pre(inputs, training=False)
    return fn(layer.cell, head, loss_fn, x_seq, tf.convert_to_tensor(targets), loss_at).numpy()


class TimeGradientMonitor(DiagnosticCallback):
    """Probes ``||dL/dh_t||`` of each recurrent layer on a fixed batch during training.

    Args:
        steps: training steps at which to probe (0 = before the first update).
        every_n_steps: also probe every N steps (null: only ``steps``).
        at_train_end: probe once more after the last step.
        probe_size: examples in the probe batch (the first of ``split``).
        split: ``validation``, ``test`` or ``train`` split of the run's data bundle.
        loss_at: ``last`` (loss at the last time step) or ``sum`` (summed over steps).
        layers: names of the recurrent layers; null = every layer with a cell.
        log_all_probes: log every probe's curve as ``grad_time/<layer>/step<k>``
            (T metric calls each); the last probe is always ``grad_time/<layer>``.
        max_metric_points: null = log the metric curve at every t; N = at most
            about N evenly spaced t (always including the last step), since each
            point is one tracking call. The CSV and the plots keep every t.
        plot: write and log the PNG plots.
    """

    def __init__(
        self,
        steps: list[int] | tuple[int, ...] = (0,),
        every_n_steps: int | None = None,
        at_train_end: bool = True,
        probe_size: int = 16,
        split: str = "validation",
        loss_at: str = "last",
        layers: list[str] | None = None,
        log_all_probes: bool = False,
        max_metric_points: int | None = None,
        plot: bool = True,
    ):
        super().__init__()
        if loss_at not in LOSS_AT:
            raise ConfigError(f"callbacks.grad_time.loss_at must be one of {LOSS_AT}, got {loss_at!r}")
        if split not in ("train", "validation", "test"):
            raise ConfigError(f"callbacks.grad_time.split must be train|validation|test, got {split!r}")
        self.steps = {int(s) for s in (steps or ())}
        self.every_n_steps = check_every("grad_time", every_n_steps)
        self.at_train_end = bool(at_train_end)
        self.probe_size = int(probe_size)
        self.split = split
        self.loss_at = loss_at
        self.layer_names = list(layers) if layers is not None else None
        self.log_all_probes = bool(log_all_probes)
        if max_metric_points is not None and (not isinstance(max_metric_points, int) or max_metric_points < 2):
            raise ConfigError(
                f"callbacks.grad_time.max_metric_points must be an integer >= 2 or null, got {max_metric_points!r}"
            )
        self.max_metric_points = max_metric_points
        self.plot = bool(plot)
        self.probe: tuple | None = None
        # (layer name, training step) -> g_t as a numpy array
        self.curves: dict[tuple[str, int], np.ndarray] = {}
        self._fns: dict[str, Callable] = {}
        self._last_probe_step: int | None = None
        # Plots are drawn on one worker thread (matplotlib costs more than the
        # probe); the main thread logs each finished file at the next step.
        self._plotter: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def set_probe(self, inputs, targets) -> None:
        """Use this batch (e.g. without a run context in a plain ``model.fit``)."""
        self.probe = (tf.convert_to_tensor(inputs), tf.convert_to_tensor(targets))

    def _default_probe(self):
        bundle = self.context.bundle if self.context is not None else None
        if bundle is None:
            raise ConfigError(
                "TimeGradientMonitor has no probe batch: bind it to a run or call set_probe(x, y)"
            )
        ds = getattr(bundle, self.split, None) or bundle.train
        x, y = next(iter(ds.unbatch().batch(self.probe_size).take(1)))
        return x, y

    def _layers(self):
        from seqlab.diagnostics.spectrum import recurrent_layers

        layers = [
            layer
            for layer in self.model.layers
            if getattr(layer, "cell", None) is not None
            and (self.layer_names is None or layer.name in self.layer_names)
        ]
        if self.layer_names is not None:
            recurrent_layers(self.model, self.layer_names)  # names a missing layer clearly
        if not layers:
            raise ConfigError(f"model {self.model.name!r} has no recurrent layer to probe")
        return layers

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.probe is None:
            self.probe = self._default_probe()
        self._fns = {}
        loss_fn = per_example_loss(self.model.loss)
        x, y = self.probe
        for layer in self._layers():
            _check_layer(layer)
            pre, head = split_at(self.model, layer)
            core = tf.function(loop_gradients, reduce_retracing=True)
            cell = layer.cell

            def run(x=x, y=y, pre=pre, head=head, core=core, cell=cell):
                return core(cell, head, loss_fn, pre(x, training=False), y, self.loss_at).numpy()

            self._fns[layer.name] = run
        if 0 in self.steps:
            self.measure(0)

    def measure(self, step: int) -> dict[str, np.ndarray]:
        """Probe every layer now; record, plot and log (``grad_flow``) under training step ``step``."""
        out = {}
        for name, fn in self._fns.items():
            g = np.asarray(fn(), dtype=np.float64)
            self.curves[(name, step)] = g
            out[name] = g
            with np.errstate(divide="ignore", invalid="ignore"):
                flow = float(np.log10(g[0] / g[-1]))
            self.log({f"grad_flow/{name}": flow}, step)
            if self.log_all_probes:
                self._log_curve(f"grad_time/{name}/step{step}", g)
            if self.plot and self.output_dir is not None:
                self._plot_later(
                    {f"step {step}": g},
                    self.output_dir / "plots" / f"grad_time_{name}_step{step}.png",
                    f"{self.model.name}/{name}: per-time-step gradient at training step {step}",
                )
        self._last_probe_step = step
        return out

    def _plot_later(self, curves, path: Path, title: str) -> None:
        if self._plotter is None:
            self._plotter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqlab-plots")
        self._pending.append(self._plotter.submit(plot_time_gradients, curves, path, title))

    def _log_finished_plots(self, wait: bool = False) -> None:
        still = []
        for future in self._pending:
            if wait or future.done():
                self.log_artifact(future.result(), "plots")
            else:
                still.append(future)
        self._pending = still

    def metric_steps(self, length: int) -> list[int]:
        """The time steps whose value is logged as a metric point."""
        if self.max_metric_points is None or length <= self.max_metric_points:
            return list(range(length))
        stride = -(-length // (self.max_metric_points - 1))
        return sorted({*range(0, length, stride), length - 1})

    def _log_curve(self, key: str, g: np.ndarray) -> None:
        for t in self.metric_steps(len(g)):
            self.log({key: g[t]}, t)

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        if self._pending:
            self._log_finished_plots()
        s = self.global_step
        if s in self.steps or (self.every_n_steps and s % self.every_n_steps == 0):
            self.measure(s)

    def on_train_end(self, logs=None):
        if self.at_train_end and self._last_probe_step != self.global_step:
            self.measure(self.global_step)
        if self._last_probe_step is None:
            return
        for name in self._fns:
            self._log_curve(f"grad_time/{name}", self.curves[(name, self._last_probe_step)])
            probes = sorted(s for (n, s) in self.curves if n == name)
            if self.output_dir is None:
                continue
            table = self.output_dir / "grad_time" / f"{name}.csv"
            table.parent.mkdir(parents=True, exist_ok=True)
            with table.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["t", *(f"step{s}" for s in probes)])
                columns = [self.curves[(name, s)] for s in probes]
                for t in range(len(columns[0])):
                    writer.writerow([t, *(f"{c[t]:.6e}" for c in columns)])
            self.log_artifact(table, "grad_time")
            if self.plot:
                self._plot_later(
                    {f"step {s}": self.curves[(name, s)] for s in probes},
                    self.output_dir / "plots" / f"grad_time_{name}.png",
                    f"{self.model.name}/{name}: per-time-step gradient",
                )
        self._log_finished_plots(wait=True)
        if self._plotter is not None:
            self._plotter.shutdown(wait=True)
            self._plotter = None
