"""Two plain Keras character LMs, the references of the equal-wall-time comparison.

What a Keras user would write without seqlab, on the same Tiny Shakespeare
split (seqlab's loader is used for the text only):

* ``lstm``: Embedding(65, 64) -> keras.layers.LSTM(256) -> Dense(65); windows
  of 128, batch 64, Adam 2e-3, global clipnorm 1.
* ``gpt``: nanoGPT's CPU configuration of its shakespeare_char example
  (4 layers, 4 heads, 128 dims, block 64, batch 12, dropout 0, AdamW 1e-3,
  betas (0.9, 0.99), weight decay 0.1, clipnorm 1, warmup 100 then cosine to
  1e-4 over 2,000 steps), pre-norm blocks built from
  ``keras.layers.MultiHeadAttention`` with a causal mask, learned positions.

Each trains for ``budget`` seconds of training (compilation included,
evaluation excluded), on random windows, then is scored on the whole
validation split cut into non-overlapping windows of its own length (mean
cross-entropy in nats per character). XLA on, as a user following Keras'
advice on CPU would find fastest for the Transformer; the LSTM runs in graph
mode (Keras' LSTM has no XLA-friendly fused kernel on CPU; graph was faster
in ``experiments/throughput``).

    python experiments/rnn_vs_transformer/plain.py --model gpt --budget 60
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

PRESETS = {
    "lstm": {"seq_len": 128, "batch": 64, "jit": False},
    "gpt": {"seq_len": 64, "batch": 12, "jit": True},
}


def load_splits() -> tuple[np.ndarray, np.ndarray, int]:
    from seqlab.data.corpora import load_corpus

    corpus = load_corpus("tiny_shakespeare")
    chars = sorted(set(corpus.train))
    index = {c: i for i, c in enumerate(chars)}
    encode = lambda text: np.array([index[c] for c in text if c in index], dtype="int32")  # noqa: E731
    return encode(corpus.train), encode(corpus.validation), len(chars)


def build_lstm(vocab: int, seq_len: int) -> keras.Model:
    return keras.Sequential([
        keras.Input((seq_len,), dtype="int32"),
        keras.layers.Embedding(vocab, 64),
        keras.layers.LSTM(256, return_sequences=True),
        keras.layers.Dense(vocab),
    ], name="plain_lstm")


def build_gpt(
    vocab: int, seq_len: int, d: int = 128, heads: int = 4, layers: int = 4, name: str = "plain_gpt"
) -> keras.Model:
    """nanoGPT's block as a Keras user writes it: keras.layers.MultiHeadAttention, pre-norm.

    Also the reference row of experiments/transformer_speed/bench.py.
    """
    tokens = keras.Input((seq_len,), dtype="int32")
    positions = keras.ops.arange(seq_len)
    x = keras.layers.Embedding(vocab, d)(tokens) + keras.layers.Embedding(seq_len, d)(positions)
    for _ in range(layers):
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        x = x + keras.layers.MultiHeadAttention(heads, d // heads)(h, h, use_causal_mask=True)
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        h = keras.layers.Dense(4 * d, activation="gelu")(h)
        x = x + keras.layers.Dense(d)(h)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    return keras.Model(tokens, keras.layers.Dense(vocab)(x), name=name)


class NanoGPTSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """nanoGPT's get_lr: linear warmup, cosine from lr to min_lr, then min_lr."""

    def __init__(self, lr=1e-3, min_lr=1e-4, warmup=100, decay_steps=2000):
        self.lr, self.min_lr, self.warmup, self.decay_steps = lr, min_lr, warmup, decay_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.lr * (step + 1) / self.warmup
        ratio = keras.ops.clip((step - self.warmup) / (self.decay_steps - self.warmup), 0.0, 1.0)
        cosine = self.min_lr + 0.5 * (1.0 + keras.ops.cos(math.pi * ratio)) * (self.lr - self.min_lr)
        return keras.ops.where(step < self.warmup, warm, cosine)


def random_windows(ids: np.ndarray, seq_len: int, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    while True:
        starts = rng.integers(0, len(ids) - seq_len - 1, size=batch)
        x = np.stack([ids[s : s + seq_len] for s in starts])
        y = np.stack([ids[s + 1 : s + seq_len + 1] for s in starts])
        yield x, y


def evaluate(model: keras.Model, ids: np.ndarray, seq_len: int, batch: int = 64) -> float:
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return float(model.evaluate(x, y, batch_size=batch, verbose=0))


class Budget(keras.callbacks.Callback):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.start, self.steps = seconds, None, 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.start >= self.seconds:
            self.model.stop_training = True


def train(model_name: str, budget: float, seed: int = 0) -> dict:
    keras.utils.set_random_seed(seed)
    train_ids, valid_ids, vocab = load_splits()
    preset = PRESETS[model_name]
    seq_len, batch = preset["seq_len"], preset["batch"]
    if model_name == "lstm":
        model = build_lstm(vocab, seq_len)
        optimizer = keras.optimizers.Adam(2e-3, global_clipnorm=1.0)
    else:
        model = build_gpt(vocab, seq_len)
        optimizer = keras.optimizers.AdamW(NanoGPTSchedule(), beta_2=0.99, weight_decay=0.1,
                                           global_clipnorm=1.0)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=preset["jit"])
    data = tf.data.Dataset.from_generator(
        lambda: random_windows(train_ids, seq_len, batch, seed),
        output_signature=(tf.TensorSpec((batch, seq_len), tf.int32),) * 2,
    ).prefetch(4)
    stopper = Budget(budget)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=10**9, epochs=1, verbose=0, callbacks=[stopper], shuffle=False)
    train_s = time.perf_counter() - start
    val_loss = evaluate(model, valid_ids, seq_len)
    return {"model": f"plain_{model_name}", "steps": stopper.steps, "train_s": train_s,
            "val_loss": val_loss, "params": model.count_params(),
            "chars_per_sec": stopper.steps * batch * seq_len / train_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(PRESETS), required=True)
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(train(args.model, args.budget, args.seed))


if __name__ == "__main__":
    main()
