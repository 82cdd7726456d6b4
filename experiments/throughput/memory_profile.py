"""The C heap in use over one training step of a benchmark row, as a text profile.

Where the peak of ``benchmark.py``'s memory column comes from: the heap in
use (glibc ``mallinfo2``) is sampled every 0.5 ms during the second training
step of a row, and printed in units of one [B, T, H] float32 tensor (16 MiB
at the defaults) above the heap at that step's start, as ~60 evenly spaced
samples. A forward loop, a backward loop and the work between them show up
as plateaus. Same model and settings as the benchmark rows.

Run it with TF's pooling allocator off, as the benchmark's memory child does
(see ``memory_of_row``):

    TF_ENABLE_ONEDNN_OPTS=0 MALLOC_MMAP_THRESHOLD_=131072 \\
        python experiments/throughput/memory_profile.py fast_lstm keras_lstm
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402


def profile(row, args, points=60, interval=0.0005):
    """(peak, samples) of the heap in use during the row's second step, in
    units of one [B, T, H] float32 tensor above the heap at that step's start
    (what the first step kept for good, such as XLA executables, is not
    counted: benchmark.py reports it apart)."""
    tf = benchmark.tf_setup(args)
    read = benchmark.heap_reader()
    hidden, seq = args.hidden[0], args.seq[0]
    x, y = benchmark.make_batch(args, seq)
    step = benchmark.build_tf_row(tf, args, row, "graph", hidden, seq, tf.constant(x),
                                  tf.constant(y))
    step()
    sampler = benchmark.PeakSampler(read, interval=interval, baseline_at_start=True)
    with sampler:
        time.sleep(0.01)
        step()
        time.sleep(0.01)
    unit = args.batch * seq * hidden * 4
    values = [(v - sampler.base) / unit for v in sampler.samples]
    stride = max(1, len(values) // points)
    return max(values), values[::stride]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("rows", nargs="+", help="TF rows of benchmark.py (fast_lstm, keras_gru, ...)")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--chunks", type=int, default=None,
                   help="the kernels' `chunks` for fast rows other than *_whole (as benchmark.py)")
    opts = p.parse_args(argv)
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        print("note: TF_ENABLE_ONEDNN_OPTS is not 0, so TF's allocator pools blocks and the "
              "profile shows the pool, not live memory", file=sys.stderr)
    known = benchmark.CELL_CHOICES + benchmark.EXTRA_CHOICES + benchmark.GENERIC_CHOICES
    for row in opts.rows:
        if row not in known or row.startswith("torch"):
            p.error(f"{row!r}: not a TF row of benchmark.py; choose from "
                    + ", ".join(r for r in known if not r.startswith("torch")))
    for row in opts.rows:
        args = benchmark.parse_args(["--hidden", str(opts.hidden), "--seq", str(opts.seq),
                                     "--batch", str(opts.batch)]
                                    + (["--chunks", str(opts.chunks)] if opts.chunks else []))
        peak, samples = profile(row, args)
        print(f"{row} (H {opts.hidden}, T {opts.seq}, B {opts.batch}): peak {peak:.1f} units "
              f"of [B, T, H] above the step's start")
        print("  " + " ".join(f"{v:.1f}" for v in samples))


if __name__ == "__main__":
    main()
