"""Tokens/second for generating text with the default char-LM shape.

    python experiments/generation/benchmark.py                 # the README table
    python experiments/generation/benchmark.py --tokens 200 --repeats 1

Model: ``build_rnn_lm(vocab 66, embedding 64, 1 x 512 LSTM)`` (the shape of
conf/model/rnn_lm.yaml on Tiny Shakespeare), untrained weights (speed does not
depend on them). Each method generates ``--tokens`` tokens after a 6-token
prompt with temperature sampling, batch 1, after one untimed warm-up call
that traces/compiles the loop. Reported: the best of ``--repeats`` timed calls
(``--naive-repeats`` for the naive method, which takes minutes).

Methods:
  stateful (graph)  carry the LSTM state; tf.function + tf.while_loop
  stateful (XLA)    the same loop with jit_compile=True
  naive (graph)     re-run the model on the whole prefix for every new token
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seqlab.generation import generate  # noqa: E402
from seqlab.models.rnn_lm import build_rnn_lm  # noqa: E402

METHODS = {
    "stateful (graph)": {"method": "stateful", "jit_compile": False},
    "stateful (XLA)": {"method": "stateful", "jit_compile": True},
    "naive (graph)": {"method": "naive", "jit_compile": False},
}


def time_method(model, prompt, tokens, repeats, **kwargs) -> tuple[float, float, np.ndarray]:
    start = time.perf_counter()
    out = generate(model, prompt, tokens, seed=0, temperature=0.8, **kwargs)  # trace + compile
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        again = generate(model, prompt, tokens, seed=0, temperature=0.8, **kwargs)
        best = min(best, time.perf_counter() - start)
        assert (again == out).all(), "same seed must give the same tokens"
    return first, best, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--naive-repeats", type=int, default=1, help="timed calls of the slow naive method"
    )
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = build_rnn_lm(66, 64, args.hidden, num_layers=1, cell="lstm")
    prompt = np.array([20, 27, 25, 17, 25, 10], dtype=np.int32)  # "ROMEO:" in a 66-symbol vocab
    print(
        f"# {args.tokens} tokens, vocab 66, embedding 64, 1x{args.hidden} LSTM, batch 1; "
        f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}"
    )
    print(
        f"| method | first call (trace+compile+run) s | best timed call s (of {args.repeats}; naive {args.naive_repeats}) | tokens/s |"
    )
    print("|---|---:|---:|---:|")
    results = {}
    outputs = {}
    for name in args.methods.split(","):
        repeats = args.naive_repeats if name.startswith("naive") else args.repeats
        first, best, out = time_method(model, prompt, args.tokens, repeats, **METHODS[name])
        results[name] = args.tokens / best
        outputs[name] = out
        print(f"| {name} | {first:.2f} | {best:.3f} | {results[name]:,.0f} |", flush=True)
    if "stateful (graph)" in outputs and "naive (graph)" in outputs:
        same = (outputs["stateful (graph)"] == outputs["naive (graph)"]).all()
        print(
            f"\nstateful (graph) / naive (graph): {results['stateful (graph)'] / results['naive (graph)']:.1f}x; same tokens: {same}"
        )
    if "stateful (XLA)" in results and "stateful (graph)" in results:
        print(
            f"stateful XLA / graph: {results['stateful (XLA)'] / results['stateful (graph)']:.2f}x"
        )


if __name__ == "__main__":
    main()
