"""Throughput cost of the gradient-flow diagnostics, side by side with no diagnostics.

    python experiments/vanishing_gradients/overhead.py [--steps 200] [--repeats 2]

Trains the same LSTM regressor on the adding problem three ways, interleaved
(A, B, C, A, B, C, ...) so that load drifts on a shared machine hit all
alike, and reports median steps/s and the ratio to the baseline:

  none     no diagnostics callbacks
  default  what ``callbacks=diagnostics`` runs: GradientNormMonitor +
           RecurrentSpectrumMonitor every 50 steps (the train step is
           instrumented: per-variable gradient norms every step, a non-finite
           flag read after every step) + TimeGradientMonitor probing at step 0
           (and at the end, outside the timed window)
  probe50  default + the ||dL/dh_t|| probe (and its PNG, drawn on a worker
           thread) every 50 steps as well

``--mode paired`` (the default) is built for a busy shared machine, where
whole-run timings of identical runs differ by 2x: it alternates single
training steps of a plain and an instrumented copy of the model (same
weights, same batch), so load drift hits both alike, and times the
every-N-steps work (reading the recorded norms + the spectrum; the probe with
its plot) separately; the throughput ratio at ``every_n_steps`` is then
``t_plain / (t_instrumented + event_cost / every_n_steps)``.

``--mode fit``: timing starts after ``--warmup`` steps (graph tracing, and the probe's first
trace at step 0, are excluded: they are one-off costs) and covers ``--steps``
steps, so it includes steps // 50 diagnostics events.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from seqlab.data.synthetic import build_adding_data  # noqa: E402
from seqlab.diagnostics import GradientNormMonitor, RecurrentSpectrumMonitor, TimeGradientMonitor  # noqa: E402
from seqlab.models.rnn_sequence import build_rnn_regressor  # noqa: E402
from seqlab.training.context import RunContext  # noqa: E402


class Clock(keras.callbacks.Callback):
    def __init__(self, warmup):
        super().__init__()
        self.warmup, self.seen, self.start, self.end = warmup, 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def one_run(kind, args, bundle, tmp):
    keras.utils.set_random_seed(0)
    model = build_rnn_regressor(**bundle.model_kwargs, hidden_size=args.hidden, cell=args.cell)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss=bundle.loss())
    callbacks = []
    if kind != "none":
        callbacks += [GradientNormMonitor(every_n_steps=50), RecurrentSpectrumMonitor(every_n_steps=50)]
        every = 50 if kind == "probe50" else None
        callbacks.append(TimeGradientMonitor(steps=[0], every_n_steps=every, at_train_end=False))
    context = RunContext(bundle=bundle, output_dir=tmp)  # plots are written, metrics go nowhere
    for c in callbacks:
        c.bind(context)
    clock = Clock(args.warmup)
    model.fit(bundle.train.repeat(), epochs=1, steps_per_epoch=args.warmup + args.steps,
              callbacks=[*callbacks, clock], verbose=0)
    return args.steps / (clock.end - clock.start)


def _median_time(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired(args, bundle, tmp):
    from seqlab.diagnostics import GradientNormRecorder, plot_time_gradients

    def make():
        keras.utils.set_random_seed(0)
        m = build_rnn_regressor(**bundle.model_kwargs, hidden_size=args.hidden, cell=args.cell)
        m.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss=bundle.loss())
        return m

    plain, inst = make(), make()
    recorder = GradientNormRecorder(inst.optimizer, inst.trainable_variables).install()
    x, y = next(iter(bundle.train))
    plain.train_on_batch(x, y)
    inst.train_on_batch(x, y)

    def step_inst():
        inst.train_on_batch(x, y)
        bool(recorder.nonfinite.numpy())  # what GradientNormMonitor reads every step

    ta, tb = [], []
    for i in range(args.steps):
        for fn, out in (((lambda: plain.train_on_batch(x, y)), ta), (step_inst, tb))[:: 1 if i % 2 else -1]:
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    t_plain, t_inst = statistics.median(ta), statistics.median(tb)

    spectrum = RecurrentSpectrumMonitor(every_n_steps=50)
    spectrum.set_model(inst)
    probe = TimeGradientMonitor(steps=[], at_train_end=False, plot=False)
    probe.bind(RunContext(bundle=bundle, output_dir=tmp))
    probe.set_model(inst)
    probe.on_train_begin()  # traces the probe once (a one-off cost)
    probe._fns["rnn_0"]()
    c_norms = _median_time(lambda: (recorder.read(), spectrum.measure()), 10)
    c_probe = _median_time(lambda: probe.measure(1), 5)
    g = next(iter(probe.curves.values()))
    c_plot = _median_time(lambda: plot_time_gradients({"g": g}, tmp / "p.png", "probe"), 3)
    n = 50
    out = {
        "median_step_s": {"plain": round(t_plain, 5), "instrumented": round(t_inst, 5)},
        "event_cost_s": {"norms_and_spectrum": round(c_norms, 4), "probe": round(c_probe, 4),
                         "plot": round(c_plot, 4)},
        "throughput_ratio_every_50": {
            "instrumented_step_only": round(t_plain / t_inst, 3),
            "default (norms + spectrum every 50)": round(t_plain / (t_inst + c_norms / n), 3),
            "probe50 (+ probe and plot every 50)": round(t_plain / (t_inst + (c_norms + c_probe + c_plot) / n), 3),
        },
    }
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("paired", "fit"), default="paired")
    p.add_argument("--cell", default="lstm")
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    import tempfile
    from pathlib import Path

    bundle = build_adding_data(args.length, batch_size=args.batch, seed=0, train_size=2000,
                               validation_size=100, test_size=100)
    tmp = Path(tempfile.mkdtemp())
    if args.mode == "paired":
        result = paired(args, bundle, tmp)
        print(json.dumps({"config": vars(args), "load_average": os.getloadavg(), "results": result}, indent=2))
        return
    rates = {k: [] for k in ("none", "default", "probe50")}
    for r in range(args.repeats):
        for kind in rates:
            rate = one_run(kind, args, bundle, tmp)
            rates[kind].append(rate)
            print(f"repeat {r} {kind:7s} {rate:7.2f} steps/s", flush=True)
    base = statistics.median(rates["none"])
    summary = {k: {"median_steps_per_s": round(statistics.median(v), 3),
                   "ratio_to_none": round(statistics.median(v) / base, 3), "runs": [round(x, 3) for x in v]}
               for k, v in rates.items()}
    load = os.getloadavg()
    print(json.dumps({"config": vars(args), "load_average": load, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
