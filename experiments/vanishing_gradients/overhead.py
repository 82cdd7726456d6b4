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

Timing starts after ``--warmup`` steps (graph tracing, and the probe's first
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
from seqlab.models.sequence import build_rnn_regressor  # noqa: E402
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


def main():
    p = argparse.ArgumentParser()
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
