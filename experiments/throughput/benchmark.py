"""Training throughput of recurrent char-LMs: seqlab fused kernels vs Keras vs PyTorch.

Model (every row): Embedding(65 -> 64) -> recurrent(H) -> Dense(65), Adam,
sparse softmax cross-entropy on logits, batch 64, sequence 128, float32 (the
defaults). All rows run side by side in one process on the same random token
batch; each row reports the median of ``--steps`` timed training steps after
``--warmup`` untimed ones.

Rows:
  fast_lstm, fast_gru, fast_gru_before (reset_after=False), fast_peephole,
  fast_simple      seqlab.layers.fused (tf.function graph and/or XLA)
  keras_lstm, keras_gru   keras.layers.LSTM / GRU (reset_after=True)
  torch_lstm, torch_gru   torch.nn.LSTM / nn.GRU (skipped when torch is absent)

Columns: tokens/s (median over ``--rounds`` interleaved rounds of ``--steps``
timed steps, so that load drifts on a shared machine hit all rows alike);
GFLOP/s (matmul FLOPs of forward + backward, counted as 3x the forward
2*(D+H)*G*H + 2*H*V per token); % of the 2048^2 fp32 tf.matmul peak
(measured at the start of every round, median); tokens per CPU-second of
this process (process_time: all threads; less sensitive than wall time to
other processes on a shared machine); peak memory of one training step (the
C heap in use, sampled every 1 ms during the second step of a fresh
subprocess per row, above the heap at that step's start, with TF's pooling
allocator off: see ``memory_of_row``; the same method for TF and torch;
``memory_profile.py`` prints the heap over a step) and what the first step
kept for good (graphs, XLA executables); ratio to the Keras built-in of the
same cell in the same mode (torch rows: to Keras graph mode).

    python experiments/throughput/benchmark.py                 # the default table
    python experiments/throughput/benchmark.py --quick         # smoke run
    python experiments/throughput/benchmark.py --cells fast_lstm,fast_lstm_bf16,keras_lstm,keras_lstm_bf16 \
        --modes graph --no-memory                              # bfloat16 against float32
    python experiments/throughput/benchmark.py --cells fast_lstm,torch_lstm \
        --hidden 256,512,1024 --seq 64,256 --steps 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

CELL_CHOICES = [
    "fast_lstm", "fast_gru", "fast_gru_before", "fast_peephole", "fast_simple",
    "keras_lstm", "keras_gru", "torch_lstm", "torch_gru",
]
# Extra rows, not in the default table: the fused kernels without time chunks
# (chunks=1: projection and weight gradients over all T*B rows at once), to
# compare with the default chunked loops.
WHOLE = "_whole"
# And the fused kernels with plain graph-mode loops (compile_loops=False), to
# compare with the default XLA-compiled loops.
PLAIN_LOOPS = "_plain"
EXTRA_CHOICES = ["fast_lstm_whole", "fast_gru_whole", "fast_peephole_whole", "fast_lstm_plain", "fast_gru_plain",
                 "fast_peephole_plain", "fast_simple_plain"]
# seqlab's generic path (Keras' RNN loop over the cell's step, autodiff), per cell.
GENERIC_CHOICES = ["generic_lstm", "generic_gru", "generic_gru_before", "generic_peephole", "generic_simple"]
# Any TF row with this suffix is built under the mixed_bfloat16 policy (bf16 matmuls,
# float32 variables, float32 logits), e.g. fast_lstm_bf16 beside fast_lstm.
BF16 = "_bf16"
SEQLAB_CELL = {"lstm": "lstm", "gru": "gru", "gru_before": "gru_cho", "peephole": "peephole_lstm",
               "simple": "simple_rnn"}


def row_kind(cell):
    """fast_lstm_whole -> lstm, keras_gru -> gru, fast_gru_bf16 -> gru."""
    return cell.split("_", 1)[1].removesuffix(BF16).removesuffix(WHOLE).removesuffix(PLAIN_LOOPS)
GATES = {"lstm": 4, "peephole": 4, "gru": 3, "gru_before": 3, "simple": 1}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", default=",".join(CELL_CHOICES),
                   help="comma-separated rows, from: " + ", ".join(CELL_CHOICES + EXTRA_CHOICES + GENERIC_CHOICES)
                   + f"; a TF row + {BF16!r} runs under mixed_bfloat16")
    p.add_argument("--modes", default="graph,xla", help="graph and/or xla (TF rows)")
    p.add_argument("--xla-cells", default=None,
                   help="comma-separated TF rows that also run in xla mode (default: all of "
                        "--cells); the others run in graph mode only")
    p.add_argument("--hidden", default="512", help="comma-separated hidden sizes")
    p.add_argument("--seq", default="128", help="comma-separated sequence lengths")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--embedding", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--steps", type=int, default=10, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per row")
    p.add_argument("--chunks", type=int, default=None,
                   help="the kernels' `chunks` for the fast rows other than *_whole "
                        "(default: seqlab.layers.fused.DEFAULT_CHUNKS)")
    p.add_argument("--inter-op", type=int, default=0, help="TF inter-op threads (0: TF default)")
    p.add_argument("--intra-op", type=int, default=0,
                   help="TF intra-op threads (0: TF default); torch uses the same count "
                        "(0: os.cpu_count())")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds over all rows, each timing --steps steps per row")
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="skip the per-row memory measurement (one subprocess per row)")
    p.add_argument("--memory-xla", action="store_true",
                   help="also measure memory of XLA rows (off by default: each child "
                        "recompiles, which doubles the time of the memory pass)")
    p.add_argument("--memory-row", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: hidden 64, seq 16, batch 8, 2 timed steps")
    args = p.parse_args(argv)
    if args.quick:
        args.hidden, args.seq, args.batch, args.steps, args.warmup = "64", "16", 8, 2, 1
        args.rounds = 1
    args.cells = [c for c in args.cells.split(",") if c]
    bad = [c for c in args.cells if c.removesuffix(BF16) not in CELL_CHOICES + EXTRA_CHOICES + GENERIC_CHOICES
           or (c.endswith(BF16) and c.startswith("torch"))]
    if bad:
        p.error(f"unknown --cells {bad}; choose from {CELL_CHOICES + EXTRA_CHOICES + GENERIC_CHOICES}")
    args.modes = [m for m in args.modes.split(",") if m]
    args.xla_cells = None if args.xla_cells is None else [c for c in args.xla_cells.split(",") if c]
    args.hidden = [int(h) for h in args.hidden.split(",")]
    args.seq = [int(s) for s in args.seq.split(",")]
    return args


def flops_per_token(kind, d, h, v):
    return 3 * (2 * (d + h) * GATES[kind] * h + 2 * h * v)


# ------------------------------------------------------------------ TensorFlow


def tf_setup(args):
    import tensorflow as tf

    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    return tf


def matmul_peak(tf, n=2048, reps=10):
    a = tf.random.normal([n, n])
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a).numpy()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def make_fast_layer(kind, units, chunks, compile_loops):
    import keras

    from seqlab.layers import fused

    options = dict(chunks=chunks, compile_loops=compile_loops)

    class FastRecurrent(keras.layers.Layer):
        """Minimal benchmark wrapper: Keras-cell weights, fused kernel call."""

        def build(self, input_shape):
            d, g = input_shape[-1], GATES[kind]
            self.kernel = self.add_weight(shape=(d, g * units), initializer="glorot_uniform",
                                          name="kernel")
            self.recurrent_kernel = self.add_weight(
                shape=(units, g * units), initializer="orthogonal", name="recurrent_kernel")
            bshape = (2, g * units) if kind == "gru" else (g * units,)
            self.bias = self.add_weight(shape=bshape, initializer="zeros", name="bias")
            if kind == "peephole":
                self.peep = [self.add_weight(shape=(units,), initializer="zeros", name=f"p_{n}")
                             for n in "ifo"]

        def call(self, x):
            # The kernels compute in their input's dtype; seqlab's Recurrent layer hands them
            # its compute dtype (bfloat16 under mixed_bfloat16), and so does this wrapper.
            x = keras.ops.cast(x, self.compute_dtype)
            w = (x, self.kernel, self.recurrent_kernel, self.bias)
            if kind == "lstm":
                return fused.lstm(*w, **options)[0]
            if kind == "peephole":
                return fused.peephole_lstm(*w, *self.peep, **options)[0]
            if kind in ("gru", "gru_before"):
                return fused.gru(*w, reset_after=kind == "gru", **options)[0]
            return fused.simple_rnn(*w, **options)[0]

    return FastRecurrent()


def build_tf_row(tf, args, cell, mode, hidden, seq, x, y):
    """Build the model and its compiled train step; returns ``step() -> loss``."""
    import keras

    keras.utils.set_random_seed(0)
    policy = "mixed_bfloat16" if cell.endswith(BF16) else "float32"
    cell = cell.removesuffix(BF16)
    impl, kind = cell.split("_", 1)[0], row_kind(cell)
    keras.mixed_precision.set_global_policy(policy)
    if impl == "fast":
        from seqlab.layers import fused

        chunks = 1 if cell.endswith(WHOLE) else (args.chunks or fused.DEFAULT_CHUNKS)
        rnn = make_fast_layer(kind, hidden, chunks=chunks,
                              compile_loops=not cell.endswith(PLAIN_LOOPS))
    elif impl == "generic":
        from seqlab.layers import Recurrent, get_cell

        rnn = Recurrent(get_cell(SEQLAB_CELL[kind], hidden), return_sequences=True, implementation="generic")
    elif kind == "lstm":
        rnn = keras.layers.LSTM(hidden, return_sequences=True)
    else:
        rnn = keras.layers.GRU(hidden, return_sequences=True, reset_after=True)
    model = keras.Sequential([
        keras.layers.Embedding(args.vocab, args.embedding),
        rnn,
        keras.layers.Dense(args.vocab, dtype="float32"),  # logits and softmax in float32 under bf16
    ])
    model.build((args.batch, seq))
    keras.mixed_precision.set_global_policy("float32")
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=(mode == "xla"))
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply(grads, model.trainable_variables)
        return loss

    return lambda: float(train_step(x, y).numpy())


# ------------------------------------------------------------------ torch


class PeakSampler:
    """Peak of ``read()`` (bytes) above a baseline, sampled by a thread while
    the ``with`` block runs. The baseline is ``read()`` when the sampler is
    made (``baseline_at_start=False``) or when the block starts (True).
    ``samples`` keeps every reading, in order (memory_profile.py prints them)."""

    def __init__(self, read, interval=0.002, baseline_at_start=True):
        self.read = read
        self.interval = interval
        self.baseline_at_start = baseline_at_start
        self.base = read()

    def __enter__(self):
        self.peak = self.read()
        self.samples = [self.peak]
        if self.baseline_at_start:
            self.base = self.peak
        self.stop = False

        def sample():
            while not self.stop:
                value = self.read()
                self.samples.append(value)
                self.peak = max(self.peak, value)
                time.sleep(self.interval)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()

    @property
    def delta(self):
        return self.peak - self.base


def rss_reader():
    """Resident set size of this process."""
    import psutil

    proc = psutil.Process()
    return lambda: proc.memory_info().rss


def heap_reader():
    """The C heap in use (glibc ``mallinfo2``: bytes in use in all malloc
    arenas plus mmapped chunks).

    Unlike RSS growth it also sees memory that a runtime keeps allocated
    between steps: XLA's executables hold their buffers from one run to the
    next, so the RSS growth of a second step misses them (run 9 of the study).
    """
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2

    def read():
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return read


def build_torch_row(torch, args, cell, hidden, seq, x_np, y_np):
    """The same model in torch; returns ``step() -> loss``."""
    nn = torch.nn
    torch.manual_seed(0)
    rnn_cls = nn.LSTM if cell == "torch_lstm" else nn.GRU

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(args.vocab, args.embedding)
            self.rnn = rnn_cls(args.embedding, hidden, batch_first=True)
            self.fc = nn.Linear(hidden, args.vocab)

        def forward(self, x):
            return self.fc(self.rnn(self.emb(x))[0])

    model = LM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(x_np).long()
    y = torch.from_numpy(y_np).long()

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, args.vocab), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    return step


# ------------------------------------------------------------------ memory


def memory_of_row(args, cell, mode, hidden, seq):
    """(peak, kept): memory of a training step, measured in a fresh process.

    The child builds the row and runs one warm-up step (tracing, XLA
    compilation). It then samples the C heap in use (glibc ``mallinfo2``)
    every 1 ms during a second step. ``peak``: the most the heap rose above
    its level at the start of that step, i.e. the memory the step itself
    needs. ``kept``: how much the first step left allocated for good
    (traced graphs, XLA executables, caches), the heap at the start of the
    second step above the heap of the built model. Until session 5 the
    memory column was the sum, roughly: the peak above the built model.
    The child also prints the RSS growth during the step (the method of
    runs 1-9). The same method for TF and torch. glibc's
    ``MALLOC_MMAP_THRESHOLD_`` is fixed at 128 KiB so that large blocks are
    mmapped chunks, which ``mallinfo2`` counts as in use until freed.

    The child runs with ``TF_ENABLE_ONEDNN_OPTS=0``. With oneDNN's
    optimizations on, TF's CPU allocator pools large blocks and keeps them
    from one step to the next, so the heap in use shows the pool's growth
    (which blocks the first step happened to request, and whether a step ran
    before the baseline) rather than the bytes a step needs: session 3's
    run 11 was measured that way and is superseded by run 12. The tensors and
    their sizes do not depend on the setting, only which kernels compute them.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", TF_CPP_MIN_LOG_LEVEL="3",
               TF_ENABLE_ONEDNN_OPTS="0")
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-row", f"{cell}:{mode}",
           "--hidden", str(hidden), "--seq", str(seq), "--batch", str(args.batch),
           "--embedding", str(args.embedding), "--vocab", str(args.vocab),
           "--inter-op", str(args.inter_op), "--intra-op", str(args.intra_op)]
    cmd += (["--memory-xla"] if args.memory_xla else []) + (
        ["--chunks", str(args.chunks)] if args.chunks is not None else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("MEMORY ")]
    if out.returncode != 0 or not lines:
        return float("nan"), float("nan")
    fields = lines[-1].split()
    return float(fields[1]), float(fields[3])


def memory_child(args):
    cell, mode = args.memory_row.split(":")
    if mode == "xla" and not args.memory_xla:
        print("MEMORY nan nan nan")  # not measured: see --memory-xla
        return
    hidden, seq = args.hidden[0], args.seq[0]
    x_np, y_np = make_batch(args, seq)
    if cell.startswith("torch"):
        import torch

        torch.set_num_threads(args.intra_op or os.cpu_count())
        step = build_torch_row(torch, args, cell, hidden, seq, x_np, y_np)
    else:
        tf = tf_setup(args)
        step = build_tf_row(tf, args, cell, mode, hidden, seq, tf.constant(x_np),
                            tf.constant(y_np))
    # heap baseline: the built model, before its first step; RSS: the second step's start
    read = heap_reader()
    built = read()
    step()
    with PeakSampler(rss_reader(), interval=0.001) as rss, \
            PeakSampler(read, interval=0.001) as heap:
        step()
    print(f"MEMORY {heap.delta} {rss.delta} {heap.base - built}")


# ------------------------------------------------------------------ main


def paired_ratios(times, row, other, steps):
    """Per round: the speed of ``row`` over that of ``other`` (ratio of their
    median step times in the round). The rows of a round ran back to back,
    so the machine's drift between rounds cancels in each ratio."""
    rounds = len(times[row]) // steps
    return [statistics.median(times[other][k * steps:(k + 1) * steps])
            / statistics.median(times[row][k * steps:(k + 1) * steps]) for k in range(rounds)]


def print_paired_ratios(times, rows, steps):
    """The issue's comparisons as paired per-round ratios: fast and Keras rows
    against torch's row of the same cell, the peephole against the fast LSTM."""
    present = {cell: (cell, mode) for cell, mode in rows if mode in ("graph", "eager")}
    pairs = [(f"{p}_{kind}", f"torch_{kind}") for kind in ("lstm", "gru")
             for p in ("fast", "keras")]
    pairs += [("fast_peephole", "fast_lstm"), ("fast_lstm", "fast_lstm_whole"),
              ("fast_gru", "fast_gru_whole")]
    lines = []
    for a, b in pairs:
        if a in present and b in present:
            r = sorted(paired_ratios(times, present[a], present[b], steps))
            lines.append(f"  {a} / {b}: median {statistics.median(r):.2f}x "
                         f"(rounds {r[0]:.2f}-{r[-1]:.2f}, {sum(x >= 1 for x in r)}/{len(r)} >= 1)")
    if lines:
        print("paired per-round speed ratios (graph mode):")
        print("\n".join(lines), flush=True)


def make_batch(args, seq):
    import numpy as np

    rng = np.random.default_rng(seq)
    x = rng.integers(0, args.vocab, (args.batch, seq)).astype(np.int32)
    y = rng.integers(0, args.vocab, (args.batch, seq)).astype(np.int32)
    return x, y


def main(argv=None):
    args = parse_args(argv)
    if args.memory_row:
        return memory_child(args)
    tf = tf_setup(args)
    import keras

    from seqlab.layers import fused

    try:
        import torch

        torch.set_num_threads(args.intra_op or os.cpu_count())
    except ImportError:
        torch = None

    print(f"TF {tf.__version__}, Keras {keras.__version__}, "
          f"torch {torch.__version__ if torch else 'absent'}, {os.cpu_count()} CPUs, "
          f"TF inter_op={tf.config.threading.get_inter_op_parallelism_threads()} "
          f"intra_op={tf.config.threading.get_intra_op_parallelism_threads()} (0 = TF default), "
          f"torch threads={torch.get_num_threads() if torch else '-'}, "
          f"fused chunks={args.chunks or fused.DEFAULT_CHUNKS} (*_whole: 1), "
          f"compile_loops={fused.DEFAULT_COMPILE_LOOPS} (*_plain: False), "
          f"{args.rounds} rounds x {args.steps} timed steps")
    header = (f"{'H':>5} {'T':>4} {'row':<16} {'mode':<6} {'tokens/s':>9} {'GFLOP/s':>8} "
              f"{'%peak':>6} {'tok/CPU-s':>9} {'mem MiB':>8} {'kept MiB':>8} {'vs keras':>8} {'loss':>7}")
    for hidden in args.hidden:
        for seq in args.seq:
            x_np, y_np = make_batch(args, seq)
            x, y = tf.constant(x_np), tf.constant(y_np)
            rows = []
            for cell in args.cells:
                if cell.startswith("torch"):
                    if torch is None:
                        print(f"{cell}: skipped, torch is not installed")
                        continue
                    rows.append((cell, "eager"))
                else:
                    rows.extend((cell, m) for m in args.modes
                                if m != "xla" or args.xla_cells is None or cell in args.xla_cells)
            steps = {}
            for cell, mode in rows:  # build + warm up (tracing, XLA compilation)
                if cell.startswith("torch"):
                    steps[cell, mode] = build_torch_row(torch, args, cell, hidden, seq, x_np, y_np)
                else:
                    steps[cell, mode] = build_tf_row(tf, args, cell, mode, hidden, seq, x, y)
                for _ in range(args.warmup):
                    steps[cell, mode]()
            times = {r: [] for r in rows}
            cpu = {r: [] for r in rows}
            peaks = []
            losses = {}
            for _ in range(args.rounds):  # interleaved, so load drifts hit all rows alike
                peaks.append(matmul_peak(tf, reps=3))
                for r in rows:
                    # untimed: the first step after another row's steps costs
                    # up to ~0.2 s more, for Keras' rows as for the fused ones
                    # (cause not found); at small shapes or with few steps it
                    # would move the median
                    steps[r]()
                    for _ in range(args.steps):
                        t0, c0 = time.perf_counter(), time.process_time()
                        losses[r] = steps[r]()
                        times[r].append(time.perf_counter() - t0)
                        cpu[r].append(time.process_time() - c0)
            peak = statistics.median(peaks)
            tokens = args.batch * seq
            tps = {r: tokens / statistics.median(t) for r, t in times.items()}
            tpc = {r: tokens / statistics.median(t) for r, t in cpu.items()}
            print(f"\n2048^2 fp32 tf.matmul peak, median over the rounds: {peak:.0f} GFLOP/s "
                  f"(per round: {', '.join(f'{p:.0f}' for p in peaks)})")
            print(header)
            for cell, mode in rows:
                kind = row_kind(cell)
                gflops = tps[cell, mode] * flops_per_token(
                    kind, args.embedding, hidden, args.vocab) / 1e9
                base_kind = "gru" if "gru" in kind else ("lstm" if kind != "simple" else None)
                # bf16 rows: to Keras' bf16 row where it runs, else to Keras in float32
                suffix = BF16 if cell.endswith(BF16) and (f"keras_{base_kind}{BF16}", mode) in tps else ""
                base = tps.get((f"keras_{base_kind}{suffix}", "graph" if mode == "eager" else mode))
                ratio = f"{tps[cell, mode] / base:.2f}x" if base else "-"
                mem, kept = (memory_of_row(args, cell, mode, hidden, seq) if args.memory
                             else (float("nan"), float("nan")))
                print(f"{hidden:>5} {seq:>4} {cell:<16} {mode:<6} {tps[cell, mode]:>9.0f} "
                      f"{gflops:>8.1f} {100 * gflops / peak:>5.1f}% {tpc[cell, mode]:>9.0f} "
                      f"{mem / 2**20:>8.1f} {kept / 2**20:>8.1f} "
                      f"{ratio:>8} {losses[cell, mode]:>7.4f}", flush=True)
            print_paired_ratios(times, rows, args.steps)
            for cell, mode in rows:
                if cell.endswith(BF16) and (cell.removesuffix(BF16), mode) in tps:
                    print(f"{cell} / {cell.removesuffix(BF16)} ({mode}): "
                          f"{tps[cell, mode] / tps[cell.removesuffix(BF16), mode]:.2f}x tokens/s, loss after "
                          f"the same steps {losses[cell, mode]:.4f} vs {losses[cell.removesuffix(BF16), mode]:.4f}")
            del steps
            keras.backend.clear_session()


if __name__ == "__main__":
    main()
