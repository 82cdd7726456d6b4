"""SIGINT / SIGTERM during training (seqlab.training.signals): a stop at the
next batch boundary, a checkpoint, the MLflow run KILLED, exit 130 / 143, a
second signal ends the process at once; then ``resume=`` ends like an
uninterrupted run. Real subprocesses, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from seqlab.tracking.run import seqlab_custom_objects
from seqlab.training.signals import (
    STOP_SIGNAL_TAG,
    StopOnSignal,
    StopRequested,
    raise_on_signals,
    stop_on_signals,
)
from tests.e2e.helpers import all_runs, compose_cfg, store_client

REPO = Path(__file__).resolve().parents[2]
# debug=tiny: 39 steps an epoch; deterministic, so a resumed run can match to the bit.
CONFIG = ["debug=tiny", "trainer.epochs=3", "trainer.deterministic=true"]
STEPS_PER_EPOCH = 39
STOP_STEP = STEPS_PER_EPOCH + 5  # in epoch 2, five batches after the epoch-1 checkpoint


class PauseAtStep(keras.callbacks.Callback):
    """Test-only: at optimizer step ``step`` (once: ``marker`` records it, and
    the resumed run, which rebuilds the callback from config.yaml, does not
    pause), touch ``marker`` and wait up to ``seconds`` for the test's signal,
    so the stop happens at that very step. With ``after_signal`` it goes on
    waiting after the first signal (a slow checkpoint write) and touches
    ``marker + '.signalled'`` for the test to send the second."""

    def __init__(self, step: int, marker: str, seconds: float = 30.0, after_signal: bool = False):
        super().__init__()
        self.step, self.marker, self.seconds = int(step), Path(marker), float(seconds)
        self.after_signal = bool(after_signal)

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) != self.step or self.marker.exists():
            return
        self.marker.touch()
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            # The first signal resets the handlers to the default.
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                if not self.after_signal:
                    return
                Path(f"{self.marker}.signalled").touch()
            time.sleep(0.02)


def _pause(tmp_path: Path, step: int = STOP_STEP, **kwargs) -> str:
    args = ",".join(f"{k}:{str(v).lower()}" for k, v in kwargs.items())
    return (f"+callbacks.pause={{_target_:{__name__}.PauseAtStep,step:{step},"
            f"marker:'{tmp_path / 'paused'}'{',' + args if args else ''}}}")


def _start(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    script = Path(sys.executable).parent / "seqlab-train"
    return subprocess.Popen(
        [str(script), f"tracking.store_dir={tmp_path / 'mlruns'}", "trainer.verbose=0", *overrides],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _resume(tmp_path: Path, run_id: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "seqlab-train"), f"resume={run_id}",
         f"tracking.store_dir={tmp_path / 'mlruns'}", "trainer.verbose=0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {path.name}:\n{proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.02)


def _stopped_run(tmp_path: Path, signum: int, *overrides: str, step: int = STOP_STEP):
    """Start a run, send ``signum`` when it pauses at optimizer step ``step``;
    the finished process and its (one) MLflow run."""
    proc = _start(tmp_path, *overrides, _pause(tmp_path, step))
    _wait_for(tmp_path / "paused", proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    (run,) = all_runs(store_client(tmp_path))
    return proc, err, run


@pytest.mark.slow
def test_sigterm_stops_checkpoints_kills_the_run_and_resume_ends_like_an_uninterrupted_run(tmp_path, data_dir):
    from seqlab.experiment import run

    proc, err, cut = _stopped_run(tmp_path, signal.SIGTERM, *CONFIG)
    assert proc.returncode == 143, err[-3000:]
    assert f"stopped on SIGTERM after optimizer step {STOP_STEP}" in err
    assert f"seqlab-train resume={cut.info.run_id}" in err
    assert cut.info.status == "KILLED"
    assert cut.data.tags[STOP_SIGNAL_TAG] == "SIGTERM"
    assert cut.data.tags["failure_reason"].startswith("StopRequested: stopped on SIGTERM")
    folder = Path(cut.data.tags["seqlab.output_dir"]) / "checkpoints"
    # The stop position (mid-epoch) and the last epoch end, which resume reads.
    stopped = json.loads((folder / "stopped.json").read_text())
    assert (stopped["epoch"], stopped["batch"], stopped["global_step"]) == (1, 5, STOP_STEP)
    stopped_model = keras.models.load_model(folder / "stopped.keras", custom_objects=seqlab_custom_objects())
    assert int(stopped_model.optimizer.iterations.numpy()) == STOP_STEP
    last = json.loads((folder / "last.json").read_text())
    assert (last["epoch"], last["global_step"]) == (1, STEPS_PER_EPOCH)

    resumed = _resume(tmp_path, cut.info.run_id)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client = store_client(tmp_path)
    after = client.get_run(cut.info.run_id)
    assert after.info.status == "FINISHED"
    # From the stop position (mid-epoch), not the epoch end before it.
    assert after.data.tags["seqlab.resumed"].startswith(f"from epoch 1 batch 5 (step {STOP_STEP}) after KILLED")

    # The same config, never interrupted (in this process, without the pause).
    full = run(compose_cfg(tmp_path, *CONFIG[1:]), output_dir=tmp_path / "full")
    compared = [k for k in full if k.startswith(("val_", "test_")) or k in ("loss", "perplexity")]
    assert "val_loss" in compared and "test_loss" in compared
    for key in compared:
        assert after.data.metrics[key] == pytest.approx(full[key], rel=1e-6, abs=1e-6), key
    # Every epoch's metrics, the stopped epoch's running means included.
    for key in ("loss", "perplexity", "val_loss"):
        history = {m.step: m.value for m in client.get_metric_history(cut.info.run_id, key)}
        reference = {m.step: m.value for m in client.get_metric_history(full["run_id"], key)}
        assert sorted(history) == sorted(reference) == [STEPS_PER_EPOCH * k for k in (1, 2, 3)], key
        for step, value in reference.items():
            assert history[step] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, step)


@pytest.mark.slow
def test_sigint_exits_130_and_a_stop_in_the_first_epoch_resumes_from_its_batch(tmp_path, data_dir):
    proc, err, cut = _stopped_run(tmp_path, signal.SIGINT, "debug=tiny", "trainer.epochs=2", step=3)
    assert proc.returncode == 130, err[-3000:]
    assert cut.info.status == "KILLED"
    assert cut.data.tags[STOP_SIGNAL_TAG] == "SIGINT"
    folder = Path(cut.data.tags["seqlab.output_dir"]) / "checkpoints"
    assert (folder / "stopped.keras").is_file() and not (folder / "last.keras").exists()
    # Stopped in the first epoch: resume starts from the stop position.
    resumed = _resume(tmp_path, cut.info.run_id)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = store_client(tmp_path).get_run(cut.info.run_id)
    assert after.info.status == "FINISHED"
    assert after.data.tags["seqlab.resumed"].startswith("from epoch 0 batch 3 (step 3) after KILLED")


@pytest.mark.slow
def test_a_second_signal_during_the_stop_exits_at_once(tmp_path, data_dir):
    proc = _start(tmp_path, "debug=tiny", "trainer.epochs=2", _pause(tmp_path, step=3, seconds=60, after_signal=True))
    _wait_for(tmp_path / "paused", proc)
    proc.send_signal(signal.SIGTERM)
    _wait_for(tmp_path / "paused.signalled", proc)  # stopping, and held there (a slow write)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM  # ended by the signal itself, not 60 s later
    assert time.monotonic() - sent < 10


# ------------------------------------------------------------ the handler, in-process
def test_handlers_are_installed_for_the_block_only_and_a_first_signal_restores_the_default():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals() as stopper:
        assert all(signal.getsignal(s) is not before[s] for s in before)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between bytecodes
        assert stopper.requested == signal.SIGTERM
        # A second signal would now end the process at once.
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
        stopper.requested = None  # (not to raise on leaving the block)
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_signal_after_the_last_batch_still_stops_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(StopRequested) as caught, stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert caught.value.exit_code == 130 and caught.value.signal_name == "SIGINT"
    assert isinstance(caught.value, KeyboardInterrupt)  # what TrackedRun closes KILLED
    assert signal.getsignal(signal.SIGINT) is before


@pytest.fixture
def _keep_handlers():
    """raise_on_signals leaves the default actions after a signal (the
    process is on its way out): give this process its handlers back."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield before
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_outside_fit_the_console_scripts_handler_raises_at_once(_keep_handlers):
    with pytest.raises(StopRequested) as caught, raise_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # interrupted: the handler raises here
    assert caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with raise_on_signals():  # no signal: the handlers come back
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_inside_seqlab_train_the_default_actions_stay_after_a_stop_in_fit(_keep_handlers):
    with raise_on_signals():
        outer = signal.getsignal(signal.SIGTERM)
        with pytest.raises(StopRequested), stop_on_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        # Not the raising handler again: a second signal during the run's
        # closing (the MLflow write) ends the process at once.
        assert outer is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.getsignal(signal.SIGINT) is signal.SIG_DFL


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def body():
        before = signal.getsignal(signal.SIGTERM)
        with stop_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM) is before)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [True]


def test_the_callback_saves_then_raises_at_the_batch_end():
    saved = []

    class Saver(keras.callbacks.Callback):
        def on_stop_requested(self, epoch, batch):
            saved.append((epoch, batch))

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    stopper = StopOnSignal([Saver(), keras.callbacks.Callback()])
    stopper.set_model(model)
    stopper.on_epoch_begin(1)
    model.fit(np.ones((8, 2)), np.ones(8), batch_size=2, verbose=0)  # 4 steps into epoch 1
    stopper.on_train_batch_end(3)  # nothing requested: nothing happens
    stopper.request(signal.SIGTERM)
    with pytest.raises(StopRequested, match="stopped on SIGTERM after optimizer step 4") as caught:
        stopper.on_train_batch_end(3)
    assert saved == [(1, 4)] and caught.value.exit_code == 143
