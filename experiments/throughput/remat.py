"""Gradient checkpointing (``trainer.remat``): peak memory and step time, off vs on.

Rows (seqlab builders, Adam, sparse softmax cross-entropy on logits, float32,
graph mode as ``jit_compile: auto`` picks on a CPU):

  lstm          build_rnn_lm: Embedding(65 -> 512) -> 4 x LSTM(512) -> Dense(65),
                T = 256, batch 32 (the issue's "4 x 512 LSTM at T = 256")
  transformer   build_transformer_lm as the shakespeare_transformer preset
                (d_model 128, 4 heads, 4 blocks, learned positions), T = 256,
                batch 32

each with ``remat`` off and on (:func:`seqlab.training.remat.rematerialize`:
every recurrent layer / Transformer block recomputed in the backward pass).

Every (row, remat) setting runs in fresh subprocesses, so no allocator pool
or traced graph of one setting is seen by another:

- **memory**: the child builds the model and runs one warm-up step (tracing),
  then samples the C heap in use (glibc ``mallinfo2``) every 1 ms during a
  second step: ``peak`` is the most it rose above its level at that step's
  start (the activations and gradients the step itself needs), the method of
  ``benchmark.py``'s memory column (``MALLOC_MMAP_THRESHOLD_`` at 128 KiB,
  ``TF_ENABLE_ONEDNN_OPTS=0`` so TF's CPU allocator does not pool blocks
  across steps; see ``benchmark.memory_of_row``). ``maxrss`` is the child's
  whole-life peak resident set (``resource.getrusage``), model and runtime
  included: a coarser, allocator-independent check of the same trade.
- **time**: another child (default TF settings) runs ``--warmup`` untimed
  and ``--steps`` timed training steps (``model.train_on_batch``, Keras'
  compiled train function) and reports the median; ``--rounds`` repeats the
  off/on pair back to back, in alternating order, and the table shows the
  median over rounds.

The 2048^2 fp32 ``tf.matmul`` GFLOP/s of the machine is measured first and
printed beside the timings, so figures from different machines (or a busy
one) can be read against each other.

    python experiments/throughput/remat.py                  # the issue's sizes
    python experiments/throughput/remat.py --quick          # smoke: tiny sizes, 1 round
    python experiments/throughput/remat.py --rows lstm --seq 512 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository, for `seqlab`

ROWS = ("lstm", "transformer")
VOCAB = 65  # Tiny Shakespeare's characters


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {ROWS}")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=512, help="LSTM units (and embedding width)")
    p.add_argument("--layers", type=int, default=4, help="LSTM layers / Transformer blocks")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 x 32 LSTM / d_model 32, T 16, batch 4, 2 steps, 1 round")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # "memory|time:row:on|off"
    args = p.parse_args(argv)
    if args.quick:
        args.seq, args.batch, args.hidden, args.layers, args.d_model, args.heads = 16, 4, 32, 2, 32, 2
        args.steps, args.warmup, args.rounds = 2, 1, 1
    args.rows = [r for r in args.rows.split(",") if r]
    bad = [r for r in args.rows if r not in ROWS]
    if bad:
        p.error(f"unknown --rows {bad}; choose from {ROWS}")
    return args


def _common_flags(args) -> list[str]:
    return ["--seq", str(args.seq), "--batch", str(args.batch), "--hidden", str(args.hidden),
            "--layers", str(args.layers), "--d-model", str(args.d_model), "--heads", str(args.heads),
            "--steps", str(args.steps), "--warmup", str(args.warmup)]


# ------------------------------------------------------------------ child


def build_model(args, row: str, remat: bool):
    import keras

    from seqlab.models import build_rnn_lm
    from seqlab.models.transformer import build_transformer_lm
    from seqlab.training.remat import rematerialize

    keras.utils.set_random_seed(0)
    if row == "lstm":
        model = build_rnn_lm(vocab_size=VOCAB, embedding_dim=args.hidden, hidden_size=args.hidden,
                             num_layers=args.layers, cell="lstm")
    else:
        model = build_transformer_lm(vocab_size=VOCAB, max_length=args.seq, d_model=args.d_model,
                                     num_heads=args.heads, num_layers=args.layers)
    if remat:
        rematerialize(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    return model


def child(args) -> None:
    kind, row, remat = args.child.split(":")
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (args.batch, args.seq)).astype("int32")
    y = rng.integers(0, VOCAB, (args.batch, args.seq)).astype("int32")
    model = build_model(args, row, remat == "on")
    if kind == "memory":
        import benchmark

        read = benchmark.heap_reader()
        model.train_on_batch(x, y)  # tracing, optimizer slots
        with benchmark.PeakSampler(read, interval=0.001) as heap:
            model.train_on_batch(x, y)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        print("RESULT " + json.dumps({"peak": heap.delta, "maxrss": maxrss}))
        return
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    print("RESULT " + json.dumps({"step_s": statistics.median(times)}))


def run_child(args, kind: str, row: str, remat: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if kind == "memory":
        env.update(MALLOC_MMAP_THRESHOLD_="131072", TF_ENABLE_ONEDNN_OPTS="0")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"{kind}:{row}:{remat}", *_common_flags(args)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        print(f"  {kind} {row} remat={remat} failed (exit {out.returncode}): {' | '.join(tail)}", file=sys.stderr)
        return {}
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------ parent


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal([n, n])
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).numpy()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    peak = matmul_gflops()
    print(f"# {os.cpu_count()} CPUs; 2048^2 fp32 tf.matmul: {peak:.0f} GFLOP/s (measured before the rows)")
    print(f"# T {args.seq}, batch {args.batch}, {args.layers} layers; lstm H {args.hidden}; "
          f"transformer d_model {args.d_model}, {args.heads} heads; median of {args.steps} steps, "
          f"{args.rounds} round(s)")
    mib = 2**20
    header = (f"{'row':<12} {'remat':<5} {'step ms':>8} {'tokens/s':>9} {'heap peak MiB':>14} "
              f"{'maxrss MiB':>11} {'time x':>7} {'peak x':>7}")
    results = {}
    for row in args.rows:
        memory = {remat: run_child(args, "memory", row, remat) for remat in ("off", "on")}
        steps = {"off": [], "on": []}
        for k in range(args.rounds):
            for remat in (("off", "on") if k % 2 == 0 else ("on", "off")):
                steps[remat].append(run_child(args, "time", row, remat).get("step_s", float("nan")))
        results[row] = {remat: {**memory[remat], "step_s": statistics.median(steps[remat])}
                        for remat in ("off", "on")}
    print(header)
    for row, by_remat in results.items():
        off = by_remat["off"]
        for remat, r in by_remat.items():
            step = r.get("step_s", float("nan"))
            time_x = step / off.get("step_s", float("nan"))
            peak_x = r.get("peak", float("nan")) / off.get("peak", float("nan"))
            print(f"{row:<12} {remat:<5} {1e3 * step:>8.1f} {args.batch * args.seq / step:>9.0f} "
                  f"{r.get('peak', float('nan')) / mib:>14.1f} {r.get('maxrss', float('nan')) / mib:>11.1f} "
                  f"{time_x:>7.2f} {peak_x:>7.2f}")
    print(f"# time x, peak x: remat on over off (lower peak x = memory saved; "
          f"time x > 1 = the recomputation's cost); matmul {peak:.0f} GFLOP/s")
    return results


if __name__ == "__main__":
    main()
