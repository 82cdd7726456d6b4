"""Char-LM training-step throughput: seqlab cells vs Keras built-ins, side by side.

Model: tokens [B, T] -> Embedding(vocab, emb) -> one recurrent layer (H units,
return_sequences) -> Dense(vocab) logits; sparse categorical cross-entropy from
logits; Adam. One process, the same random batch for every variant; each
variant is timed as the median of ``--steps`` training steps after warm-up.

    python experiments/cell_benchmark/benchmark.py            # full (~10+ min on 2 cores)
    python experiments/cell_benchmark/benchmark.py --quick    # smoke run, < 3 min

Printed per variant: tokens/s, achieved GFLOP/s (matmul FLOPs of forward +
backward, counted analytically: 3 x 2 x (D*G*H + H*G*H + H*V) per token, where
G = 4 for LSTMs, 3 for GRUs, 1 for the simple RNN), share of the machine's
float32 matmul peak (a 2048^2 ``tf.matmul`` measured in the same run), and the
ratio to the Keras built-in of the same kind in its faster mode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seqlab.layers import Recurrent, get_cell  # noqa: E402

GATES = {"lstm": 4, "gru": 3, "gru_cho": 3, "simple_rnn": 1}
# the reference of each kind (its faster jit mode is used)
REFERENCES = ("keras LSTM", "keras GRU", "keras GRU(reset_after=False)", "keras SimpleRNN")


def matmul_peak(n=2048, repeats=10):
    """Float32 GFLOP/s of an n x n tf.matmul (median of ``repeats``)."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    f().numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f().numpy()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def variants(hidden, include_fast, jit_modes=(False, True)):
    """(label, kind, jit, factory) for every benchmarked variant."""
    out = []
    for jit in jit_modes:
        out.append(("keras LSTM", "lstm", jit, lambda: keras.layers.LSTM(hidden, return_sequences=True)))
        out.append(("keras GRU", "gru", jit, lambda: keras.layers.GRU(hidden, return_sequences=True)))
        out.append((
            "keras GRU(reset_after=False)", "gru_cho", jit,
            lambda: keras.layers.GRU(hidden, reset_after=False, return_sequences=True),
        ))
        out.append(("keras SimpleRNN", "simple_rnn", jit, lambda: keras.layers.SimpleRNN(hidden, return_sequences=True)))
        out.append((
            "keras RNN(LSTMCell)", "lstm", jit,
            lambda: keras.layers.RNN(keras.layers.LSTMCell(hidden), return_sequences=True),
        ))
    cells = [
        ("simple_rnn", "simple_rnn"),
        ("lstm", "lstm"),
        ("gru", "gru"),
        ("gru_cho", "gru_cho"),
        ("peephole_lstm", "lstm"),
        ("layernorm_lstm", "lstm"),
    ]
    impls = ["generic"] + (["auto"] if include_fast else [])
    for impl in impls:
        for jit in jit_modes:
            for name, kind in cells:
                out.append((
                    f"seqlab {name} [{impl}]", kind, jit,
                    lambda name=name, impl=impl: Recurrent(
                        get_cell(name, hidden), return_sequences=True, implementation=impl
                    ),
                ))
    return out


def build_variant(factory, jit, args, x, y):
    """A compiled char-LM around ``factory()``'s layer, warmed up."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input(shape=(args.seq,), batch_size=args.batch, dtype="int32")
    h = keras.layers.Embedding(args.vocab, args.embedding)(tokens)
    layer = factory()
    h = layer(h)
    logits = keras.layers.Dense(args.vocab)(h)
    model = keras.Model(tokens, logits)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    return model, getattr(layer, "execution_path", "")


def time_step(model, x, y):
    """(wall seconds, CPU seconds of this process) of one training step."""
    t0, c0 = time.perf_counter(), time.process_time()
    loss = model.train_on_batch(x, y)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if not np.isfinite(loss):
        raise RuntimeError(f"non-finite loss {loss}")
    return elapsed, cpu


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=7, help="timed steps per variant (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps (compile) per variant")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--embedding", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--jit", choices=("both", "on", "off"), default=None,
                   help="XLA modes to time (default both; --quick: off)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: hidden 128, seq 32, 3 steps, 1 warm-up, graph mode only")
    p.add_argument("--fast", action="store_true", help="also time implementation='auto' (the fused kernels, seqlab.layers.fused)")
    p.add_argument("--only", default="", help="comma-separated substrings; time only variants whose label contains one")
    args = p.parse_args(argv)
    if args.quick:
        args.hidden, args.seq, args.steps, args.warmup = 128, 32, 3, 1
    jit = args.jit or ("off" if args.quick else "both")
    jit_modes = {"both": (False, True), "on": (True,), "off": (False,)}[jit]

    rng = np.random.default_rng(0)
    x = rng.integers(0, args.vocab, (args.batch, args.seq)).astype("int32")
    y = rng.integers(0, args.vocab, (args.batch, args.seq)).astype("int32")
    peak = matmul_peak()
    print(f"# TF {tf.__version__}, Keras {keras.__version__}, CPU threads: "
          f"{os.cpu_count()}, float32 matmul peak (2048^2): {peak:.1f} GFLOP/s")
    print(f"# vocab {args.vocab}, embedding {args.embedding}, hidden {args.hidden}, "
          f"batch {args.batch}, seq {args.seq}, median of {args.steps} steps after {args.warmup} warm-up")
    ntok = args.batch * args.seq
    # Build and warm up every variant first, then time them round-robin (one
    # step of each per round), so that a change in machine load hits all
    # variants alike instead of whichever happened to run at that moment.
    only = [o for o in args.only.split(",") if o]
    selected = [v for v in variants(args.hidden, args.fast, jit_modes) if not only or any(o in v[0] for o in only)]
    built = []
    for label, kind, jit, factory in selected:
        t0 = time.perf_counter()
        model, path = build_variant(factory, jit, args, x, y)
        built.append((label, kind, jit, model, path))
        print(f"  built {label} jit={jit} in {time.perf_counter() - t0:.0f} s", flush=True)
    times = {i: [] for i in range(len(built))}
    for round_ in range(args.steps):
        for i, (_, _, _, model, _) in enumerate(built):
            times[i].append(time_step(model, x, y))
        print(f"  round {round_ + 1}/{args.steps} done", flush=True)
    peak = max(peak, matmul_peak())  # again after the timing, under the same load
    print(f"# float32 matmul peak (max of before/after): {peak:.1f} GFLOP/s")
    rows = []
    for i, (label, kind, jit, _model, path) in enumerate(built):
        g, hdim = GATES[kind], args.hidden
        flops_tok = 3 * 2 * (args.embedding * g * hdim + hdim * g * hdim + hdim * args.vocab)
        t = statistics.median(w for w, _ in times[i])
        cpu = statistics.median(c for _, c in times[i])
        rows.append(dict(label=label, kind=kind, jit=jit, t=t, tps=ntok / t, cpu_tps=ntok / cpu,
                         gflops=flops_tok * ntok / t / 1e9, path=path))

    best_ref, best_cpu_ref = {}, {}
    for r in rows:
        if r["label"] in REFERENCES:
            best_ref[r["kind"]] = max(best_ref.get(r["kind"], 0), r["tps"])
            best_cpu_ref[r["kind"]] = max(best_cpu_ref.get(r["kind"], 0), r["cpu_tps"])
    print()
    print("tokens/CPU-s = tokens per second of this process's CPU time (all threads): robust to")
    print("other processes competing for the cores, unlike wall-clock tokens/s.")
    print()
    print("| variant | jit | tokens/s | GFLOP/s | % of matmul peak | ratio to built-in | "
          "tokens/CPU-s | CPU ratio to built-in |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ref, cref = best_ref.get(r["kind"]), best_cpu_ref.get(r["kind"])
        ratio = f"{r['tps'] / ref:.2f}" if ref else "-"
        cratio = f"{r['cpu_tps'] / cref:.2f}" if cref else "-"
        print(f"| {r['label']} | {'on' if r['jit'] else 'off'} | {r['tps']:.0f} | {r['gflops']:.1f} | "
              f"{100 * r['gflops'] / peak:.0f} % | {ratio} | {r['cpu_tps']:.0f} | {cratio} |")
    print()
    print("best mode per variant (ratio vs best built-in of its kind; LSTM for all LSTMs and simple_rnn also vs LSTM):")
    best = {}
    for r in rows:
        if r["tps"] > best.get(r["label"], {"tps": 0})["tps"]:
            best[r["label"]] = r
    for label, r in best.items():
        ref = best_ref.get(r["kind"])
        extra = ""
        if r["kind"] == "simple_rnn" and "lstm" in best_ref:
            extra = f", vs LSTM {r['tps'] / best_ref['lstm']:.2f}"
        print(f"  {label:34s} best jit={'on' if r['jit'] else 'off'}  {r['tps']:.0f} tok/s  "
              f"ratio {r['tps'] / ref:.2f}{extra}" if ref else f"  {label}")


if __name__ == "__main__":
    main()
