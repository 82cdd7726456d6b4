"""Ctrl-C and SIGTERM during training: stop at the next batch boundary.

:func:`stop_on_signals` (used by :func:`seqlab.experiment.run` around
``model.fit`` only; importing this module installs nothing) replaces the
SIGINT and SIGTERM handlers with one that records the signal and puts the
default handlers back, so a second signal ends the process at once. The
:class:`StopOnSignal` callback it yields checks the record after every
training batch: it asks every callback with an ``on_stop_requested(epoch,
batches)`` method to save what it must (the checkpoint callback writes the
stop position), then raises :class:`StopRequested`. ``TrackedRun`` closes the
MLflow run KILLED with tag ``seqlab.stop_signal``; ``seqlab-train`` exits
``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as a shell reports a
process the signal ended. The previous handlers are restored when the block
ends.

Outside ``fit`` (loading data, scoring test, logging the model)
``seqlab-train`` holds :func:`raise_on_signals`: the signal raises
:class:`StopRequested` where the program is, as Ctrl-C raises
KeyboardInterrupt, so the run is closed KILLED there too instead of being
left RUNNING by SIGTERM's default action.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterable, Iterator

import keras

log = logging.getLogger(__name__)

#: The signals that stop a run gracefully.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Run tag naming the signal that stopped a run.
STOP_SIGNAL_TAG = "seqlab.stop_signal"


class StopRequested(KeyboardInterrupt):
    """Training stopped on a signal at a batch boundary. A KeyboardInterrupt,
    so whatever treats Ctrl-C as "interrupted, not failed" treats it so too."""

    def __init__(self, signum: int, step: int | None = None):
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        self.step = step
        where = f" after optimizer step {step}" if step is not None else ""
        super().__init__(f"stopped on {self.signal_name}{where}")

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process this signal ended: 130, 143."""
        return 128 + self.signum


class StopOnSignal(keras.callbacks.Callback):
    """Raises :class:`StopRequested` at the end of the first training batch
    after :meth:`request` (the signal handler calls it), once every callback
    in ``callbacks`` with an ``on_stop_requested(epoch, batches)`` method has
    run it (``epoch`` 0-based, ``batches`` trained in it, counted by the
    optimizer's step: Keras' own batch index is not reliable here)."""

    def __init__(self, callbacks: Iterable[keras.callbacks.Callback] = ()):
        super().__init__()
        self.callbacks = list(callbacks)
        self.requested: int | None = None
        self.epoch = 0
        self.epoch_start_step = 0

    def request(self, signum: int) -> None:
        self.requested = int(signum)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)
        self.epoch_start_step = self._step()

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        if self.requested is None:
            return
        step = self._step()
        batches = step - self.epoch_start_step
        log.warning("%s: stopping after step %d (epoch %d, batch %d), writing a checkpoint",
                    signal.Signals(self.requested).name, step, self.epoch + 1, batches)
        for callback in self.callbacks:
            save = getattr(callback, "on_stop_requested", None)
            if save is not None:
                save(self.epoch, batches)
        raise StopRequested(self.requested, step)


@contextlib.contextmanager
def stop_on_signals(
    callbacks: Iterable[keras.callbacks.Callback] = (), signals: Iterable[int] = STOP_SIGNALS
) -> Iterator[StopOnSignal]:
    """Handle ``signals`` with a graceful stop for the block (outside the main
    thread, where Python cannot install handlers, nothing changes); yields the
    :class:`StopOnSignal` callback to give ``fit``, last."""
    stopper = StopOnSignal(callbacks)
    if threading.current_thread() is not threading.main_thread():
        yield stopper
        return
    signals = tuple(signals)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def handle(signum, frame):
        # The first signal asks for a stop; from now on the default action
        # applies, so a second one ends the process at once.
        for other in signals:
            signal.signal(other, signal.SIG_DFL)
        stopper.request(signum)
        log.warning("%s received: stopping at the next batch boundary (send it again to exit at once)",
                    signal.Signals(signum).name)

    for signum in signals:
        signal.signal(signum, handle)
    try:
        yield stopper
        if stopper.requested is not None:
            # After the last batch (during the final validation): the
            # epoch-end checkpoint is written; still a stop, not a finish.
            raise StopRequested(stopper.requested)
    finally:
        for signum, handler in previous.items():
            if stopper.requested is not None and getattr(handler, "_seqlab_raise", False):
                # Inside raise_on_signals (seqlab-train) after a signal: the
                # next one must still end the process at once.
                handler = signal.SIG_DFL
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def raise_on_signals(signals: Iterable[int] = STOP_SIGNALS) -> Iterator[None]:
    """For the block, ``signals`` raise :class:`StopRequested` at once (a
    second one takes the default action); the console script's handlers
    around a whole run, which :func:`stop_on_signals` refines inside ``fit``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = tuple(signals)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    received = []

    def handle(signum, frame):
        for other in signals:
            signal.signal(other, signal.SIG_DFL)
        received.append(signum)
        raise StopRequested(signum)

    handle._seqlab_raise = True
    for signum in signals:
        signal.signal(signum, handle)
    try:
        yield
    except StopRequested:
        received.append(None)
        raise
    finally:
        # After a signal the default actions stay: the process is on its way out.
        if not received:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
