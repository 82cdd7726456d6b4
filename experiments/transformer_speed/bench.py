"""Transformer LM speed: seqlab's build_transformer_lm vs the same shapes from
keras.layers.MultiHeadAttention, training and generation, side by side.

Training rows (per shape d x T, in graph mode and under XLA):

* ``seqlab``: :func:`seqlab.models.transformer.build_transformer_lm` (fused QKV
  projection, one [d, 3d] matmul; masks as constants; float32 logits),
  untied output projection, learned positions, pre-norm, GELU, 4 blocks;
* ``keras``: the same architecture written as a plain Keras script would:
  ``keras.layers.MultiHeadAttention(heads, d // heads)`` with
  ``use_causal_mask=True``, ``LayerNormalization``, ``Dense(4d, gelu)``,
  ``Dense(d)``, an ``Embedding`` for positions;
* ``torch``: ``nn.TransformerEncoder`` (pre-norm, GELU, causal mask) when
  PyTorch is installed.

Every row trains with the same hand-written step (``tf.GradientTape``, AdamW,
sparse softmax cross-entropy on float32 logits) on the same random batch of
``--tokens`` tokens (batch = tokens / T), as a ``tf.function`` with
``jit_compile`` off ("graph") or on ("xla"). Rows are interleaved over
``--rounds`` rounds of ``--steps`` timed steps (after warmup), so load drifts
on a shared machine hit all rows alike; each row reports its best round.
Printed: tokens/s, GFLOP/s (training FLOPs per token ~ 6 x matmul parameters
+ 12 x layers x T x d for the attention scores and weighted sum), the share of
the machine's 2048^2 fp32 matmul GFLOP/s (measured first), and the ratio
seqlab / keras of the best mode of each.

Generation: ``N`` new tokens from a 1-token prompt with the KV cache
(``seqlab.generation.generate``, method ``auto``, XLA) vs re-running the
prefix every step (method ``naive``, graph mode), same model
(d=128, 4 layers, context >= N + 1), greedy; seconds and the speed-up.

    python experiments/transformer_speed/bench.py              # the full table (minutes)
    python experiments/transformer_speed/bench.py --quick      # smoke run (~30 s)
    python experiments/transformer_speed/bench.py --d 256 --T 64,256 --modes xla --generate 0
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The reference row is the plain-Keras GPT of the equal-time comparison.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rnn_vs_transformer"))
from plain import build_gpt  # noqa: E402

VOCAB = 65  # Tiny Shakespeare characters
LAYERS = 4
CLOCK = time.perf_counter  # --cpu-time: time.process_time (all threads of this process)


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Float32 GFLOP/s of an n x n tf.matmul (best of ``repeats``; per CPU-second
    with ``--cpu-time``, like the rows)."""
    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    f().numpy()
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        f().numpy()
        times.append(CLOCK() - t0)
    return 2 * n**3 / min(times) / 1e9


def heads_for(d: int) -> int:
    return max(4, d // 64)


def build_seqlab(d: int, T: int) -> keras.Model:
    from seqlab.models.transformer import build_transformer_lm

    return build_transformer_lm(
        VOCAB,
        max_length=T,
        d_model=d,
        num_heads=heads_for(d),
        num_layers=LAYERS,
        tie_weights=False,
        position="learned",
        name="seqlab_lm",
    )


def build_keras(d: int, T: int) -> keras.Model:
    """The plain-Keras script (keras.layers.MultiHeadAttention blocks), same shapes."""
    return build_gpt(VOCAB, T, d=d, heads=heads_for(d), layers=LAYERS, name="keras_lm")


def flops_per_token(d: int, T: int) -> float:
    """Training FLOPs per token: 6 x matmul parameters + 12 L T d (scores and AV)."""
    per_layer = 4 * d * d + 2 * d * 4 * d  # QKV + output, FFN
    params = LAYERS * per_layer + d * VOCAB
    return 6 * params + 12 * LAYERS * T * d


def keras_step(model, jit: bool):
    optimizer = keras.optimizers.AdamW(1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def torch_row(d: int, T: int, B: int):
    """A callable running one training step of nn.TransformerEncoder, or None."""
    try:
        import torch
    except ImportError:
        return None
    heads = heads_for(d)

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = torch.nn.Embedding(VOCAB, d)
            self.pos = torch.nn.Embedding(T, d)
            layer = torch.nn.TransformerEncoderLayer(
                d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            self.blocks = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.norm = torch.nn.LayerNorm(d)
            self.head = torch.nn.Linear(d, VOCAB)
            self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(T))

        def forward(self, x):
            h = self.tok(x) + self.pos.weight[None]
            h = self.blocks(h, mask=self.mask, is_causal=True)
            return self.head(self.norm(h))

    model = LM()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randint(0, VOCAB, (B, T))
    y = torch.randint(0, VOCAB, (B, T))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_steps(run, steps: int) -> float:
    t0 = CLOCK()
    for _ in range(steps):
        out = run()
    float(out)
    return (CLOCK() - t0) / steps


def training_table(ds, Ts, modes, tokens, steps, rounds, warmup, peak):
    rows = []  # (d, T, name, mode, run, tokens per step)
    for d in ds:
        for T in Ts:
            B = max(1, tokens // T)
            rng = np.random.default_rng(0)
            x = tf.constant(rng.integers(0, VOCAB, (B, T)), tf.int32)
            y = tf.constant(rng.integers(0, VOCAB, (B, T)), tf.int32)
            for name, build in (("seqlab", build_seqlab), ("keras", build_keras)):
                for mode in modes:
                    keras.utils.set_random_seed(0)
                    step = keras_step(build(d, T), mode == "xla")
                    rows.append([d, T, name, mode, (lambda s=step, x=x, y=y: s(x, y)), B * T])
            torch_step = torch_row(d, T, B)
            if torch_step is not None:
                rows.append([d, T, "torch", "eager", torch_step, B * T])
    print(f"compiling {len(rows)} rows (warmup {warmup} steps each) ...", flush=True)
    for row in rows:
        time_steps(row[4], warmup)
    best = {}
    for r in range(rounds):
        for d, T, name, mode, run, n in rows:
            seconds = time_steps(run, steps)
            key = (d, T, name, mode)
            best[key] = max(best.get(key, 0.0), n / seconds)
        print(f"round {r + 1}/{rounds} done", flush=True)

    print(
        f"\n{'d':>4} {'T':>4} {'row':<7} {'mode':<6} {'tokens/s':>10} {'GFLOP/s':>8} {'% peak':>7}"
    )
    for (d, T, name, mode), tps in best.items():
        gflops = tps * flops_per_token(d, T) / 1e9
        print(
            f"{d:>4} {T:>4} {name:<7} {mode:<6} {tps:>10.0f} {gflops:>8.1f} {100 * gflops / peak:>6.1f}%"
        )
    print("\nseqlab / keras, best mode of each (target >= 1.10):")
    for d in ds:
        for T in Ts:
            s = max(v for k, v in best.items() if k[:3] == (d, T, "seqlab"))
            k = max(v for k, v in best.items() if k[:3] == (d, T, "keras"))
            s_mode = max((v, k_[3]) for k_, v in best.items() if k_[:3] == (d, T, "seqlab"))[1]
            k_mode = max((v, k_[3]) for k_, v in best.items() if k_[:3] == (d, T, "keras"))[1]
            print(
                f"  d={d:<4} T={T:<4} {s / k:5.2f}x   (seqlab {s:.0f} tok/s {s_mode}, keras {k:.0f} tok/s {k_mode})"
            )
    return best


def generation_table(n: int, repeats: int):
    from seqlab.generation import generate
    from seqlab.models.transformer import build_transformer_lm

    keras.utils.set_random_seed(0)
    lm = build_transformer_lm(VOCAB, max_length=n + 1, d_model=128, num_heads=4, num_layers=LAYERS)
    print(f"\ngeneration of {n} tokens (d=128, {LAYERS} layers, context {n + 1}, greedy, batch 1):")
    results = {}
    for label, method in (("KV cache (XLA)", "auto"), ("re-run prefix (graph)", "naive")):
        generate(lm, [1], n, strategy="greedy", method=method)  # compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            generate(lm, [1], n, strategy="greedy", method=method)
            times.append(time.perf_counter() - t0)
        results[method] = min(times)
        print(f"  {label:<22} {min(times):8.3f} s   {n / min(times):8.0f} tokens/s")
    print(
        f"  speed-up of the cache: {results['naive'] / results['auto']:.1f}x (target >= 10x at 1,000)"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="d=128, T=64, few steps, 64 generated tokens"
    )
    parser.add_argument("--d", default="128,256,512")
    parser.add_argument("--T", default="64,256")
    parser.add_argument("--modes", default="graph,xla")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per training batch")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--generate", type=int, default=1000, help="tokens to generate (0: skip)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time training by this process's CPU seconds, not wall time (a shared, loaded machine; "
        "tokens/s then means tokens per CPU-second)",
    )
    parser.add_argument(
        "--precision",
        default="float32",
        help="Keras dtype policy of both builds (float32 | mixed_bfloat16 | mixed_float16)",
    )
    args = parser.parse_args(argv)
    keras.mixed_precision.set_global_policy(args.precision)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if args.quick:
        args.d, args.T, args.steps, args.rounds, args.warmup, args.generate = (
            "128",
            "64",
            5,
            2,
            2,
            64,
        )
        args.tokens = 2048
    ds = [int(v) for v in args.d.split(",")]
    Ts = [int(v) for v in args.T.split(",")]
    modes = args.modes.split(",")

    peak = matmul_peak()
    unit = "GFLOP per CPU-second" if args.cpu_time else "GFLOP/s"
    print(
        f"2048^2 fp32 tf.matmul: {peak:.0f} {unit}; {os.cpu_count()} CPUs visible; "
        f"policy {args.precision}"
    )
    training_table(ds, Ts, modes, args.tokens, args.steps, args.rounds, args.warmup, peak)
    if args.generate:
        generation_table(args.generate, repeats=1 if args.quick else 3)


if __name__ == "__main__":
    main()
