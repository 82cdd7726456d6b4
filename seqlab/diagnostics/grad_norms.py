"""Gradient norms as the optimizer sees them: before and after clipping, per layer.

:class:`GradientNormRecorder` instruments one optimizer instance: its
``_clip_gradients`` (called by Keras inside ``apply`` on the gradients of the
real training step, after loss-scale unscaling, before the update) is wrapped
so that every step, inside the compiled train function, it stores into
``tf.Variable`` s

* the squared norm of each variable's gradient (pre-clip),
* the pre-clip global norm ``sqrt(sum_i ||g_i||^2)`` and the global norm of the
  clipped gradients (what the update actually uses),
* how many steps ran and how many had a pre-clip norm above
  ``optimizer.global_clipnorm``,
* a sticky flag set when the pre-clip global norm is NaN or Inf.

The extra work per step is one squared-sum per gradient (plus one per clipped
gradient) and a few scalar assignments; reading the values happens only in
:class:`GradientNormMonitor`, every ``every_n_steps`` (and one scalar flag per
step when ``check_finite``).

Metrics (``step`` = optimizer step):
``grad_norm/global``, ``grad_norm/global_clipped``, ``grad_norm/clipped_fraction``
(fraction of the steps since the previous log whose pre-clip norm exceeded the
clip threshold; 0 when clipping is off), ``grad_norm/<layer>`` (pre-clip norm
of the gradients of the variables of top-level layer ``<layer>``, the first
component of ``variable.path``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np
import tensorflow as tf

from seqlab.diagnostics._base import DiagnosticCallback, check_every
from seqlab.errors import TrainingDiverged

log = logging.getLogger(__name__)


def layer_group(variable) -> str:
    """The top-level layer a variable belongs to: ``"rnn_0/lstm_cell/kernel" -> "rnn_0"``."""
    path = getattr(variable, "path", None) or variable.name
    return path.split("/")[0]


def _squared_norm(g) -> tf.Tensor:
    if g is None:
        return tf.constant(0.0, tf.float32)
    if isinstance(g, tf.IndexedSlices):
        g = tf.convert_to_tensor(g)  # duplicates in .indices add up, as in the dense gradient
    g = tf.cast(g, tf.float32)
    return tf.reduce_sum(tf.square(g))


class GradientNormRecorder:
    """Records gradient norms of every ``optimizer`` step into variables.

    ``variables`` is the list of trainable variables in the order the train
    step passes gradients (``model.trainable_variables``); it names the groups.
    Use :meth:`install` / :meth:`uninstall` (or the context manager).
    """

    def __init__(self, optimizer, variables):
        self.optimizer = optimizer
        self.variables = list(variables)
        self.groups = [layer_group(v) for v in self.variables]
        n = max(len(self.variables), 1)
        self.squared_norms = tf.Variable(tf.zeros([n]), trainable=False, name="grad_sq_norms")
        self.global_norm = tf.Variable(0.0, trainable=False, name="grad_global_norm")
        self.clipped_norm = tf.Variable(0.0, trainable=False, name="grad_clipped_norm")
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="grad_steps")
        self.clipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="grad_clipped_steps")
        self.nonfinite = tf.Variable(False, trainable=False, name="grad_nonfinite")
        self.nonfinite_norm = tf.Variable(0.0, trainable=False, name="grad_nonfinite_norm")
        self._installed = False

    @property
    def clip_threshold(self) -> float | None:
        c = getattr(self.optimizer, "global_clipnorm", None)
        return float(c) if c else None

    def _record(self, grads, clipped) -> None:
        squared = [_squared_norm(g) for g in grads]
        norm = tf.sqrt(tf.add_n(squared))
        clipped_norm = tf.sqrt(tf.add_n([_squared_norm(g) for g in clipped]))
        if len(squared) == len(self.variables):
            self.squared_norms.assign(tf.stack(squared))
        self.global_norm.assign(norm)
        self.clipped_norm.assign(clipped_norm)
        self.steps.assign_add(1)
        threshold = self.clip_threshold
        if threshold is not None:
            self.clipped_steps.assign_add(tf.cast(norm > threshold, tf.int64))
        bad = tf.logical_not(tf.math.is_finite(norm))
        first = tf.logical_and(bad, tf.logical_not(self.nonfinite))
        self.nonfinite_norm.assign(tf.where(first, norm, self.nonfinite_norm))
        self.nonfinite.assign(tf.logical_or(self.nonfinite, bad))

    def install(self) -> GradientNormRecorder:
        if self._installed:
            return self
        original = self.optimizer._clip_gradients

        def clip_and_record(grads):
            grads = list(grads)
            clipped = original(grads)
            self._record(grads, clipped)
            return clipped

        # An instance attribute shadows the class method for this optimizer only.
        self.optimizer._clip_gradients = clip_and_record
        self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            try:
                del self.optimizer._clip_gradients
            except AttributeError:
                pass
            self._installed = False

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.uninstall()

    def group_norms(self) -> dict[str, float]:
        """Pre-clip gradient norm per layer group, from the last recorded step."""
        sq = self.squared_norms.numpy()[: len(self.variables)]
        totals: OrderedDict[str, float] = OrderedDict()
        for group, value in zip(self.groups, sq, strict=True):
            totals[group] = totals.get(group, 0.0) + float(value)
        return {k: float(np.sqrt(v)) for k, v in totals.items()}

    def read(self, reset: bool = True) -> dict[str, float]:
        """The metrics of the last step (and the clipped fraction since the last read)."""
        steps = int(self.steps.numpy())
        clipped = int(self.clipped_steps.numpy())
        out = {
            "grad_norm/global": float(self.global_norm.numpy()),
            "grad_norm/global_clipped": float(self.clipped_norm.numpy()),
            "grad_norm/clipped_fraction": clipped / steps if steps else 0.0,
        }
        for group, value in self.group_norms().items():
            out[f"grad_norm/{group}"] = value
        if reset:
            self.steps.assign(0)
            self.clipped_steps.assign(0)
        return out


class GradientNormMonitor(DiagnosticCallback):
    """Logs ``grad_norm/*`` every ``every_n_steps`` and stops on a non-finite gradient.

    Args:
        every_n_steps: logging period in optimizer steps.
        check_finite: read the non-finite flag after every step and raise
            :class:`~seqlab.errors.TrainingDiverged` naming the step (the last
            good checkpoint is left as it is).
    """

    def __init__(self, every_n_steps: int = 50, check_finite: bool = True):
        super().__init__()
        self.every_n_steps = check_every("grad_norms", every_n_steps)
        self.check_finite = bool(check_finite)
        self.recorder: GradientNormRecorder | None = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        optimizer = self.model.optimizer
        if self.recorder is None or self.recorder.optimizer is not optimizer:
            self.recorder = GradientNormRecorder(optimizer, self.model.trainable_variables)
        self.recorder.install()
        # The train function may have been traced before the hook existed.
        self.model.make_train_function(force=True)

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        rec = self.recorder
        if self.check_finite and bool(rec.nonfinite.numpy()):
            norm = float(rec.nonfinite_norm.numpy())
            raise TrainingDiverged(
                f"the gradient became non-finite (global norm {norm}) at step {self.global_step}; "
                "lower optimizer.learning_rate or set trainer.clipnorm "
                "(the last good checkpoint was kept)"
            )
        if self.every_n_steps and self.global_step % self.every_n_steps == 0:
            self.log(rec.read(), self.global_step)

    def on_train_end(self, logs=None):
        if self.recorder is not None:
            self.recorder.uninstall()
            # Later fits/evaluations must not call into the removed hook.
            self.model.make_train_function(force=True)
