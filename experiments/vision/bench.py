"""Training images/second: seqlab's vision builders vs the same networks built
the way a Keras user would, side by side in one process.

Rows (seqlab builder | the plain Keras build):
  cnn        build_cnn (fashion_cnn: 32/64/128, BN, dense 128) | keras.Sequential of the same layers
  resnet20   build_resnet(depth=20), 32x32x3 | a functional Keras ResNet-20 (keras-io CIFAR style)
  resnet50   build_resnet(arch="resnet50"), 224x224x3, batch 8 | keras.applications.ResNet50(weights=None)
  unet       build_unet(depth=4, base 16), 256x256x1, batch 4 | a plain functional Keras U-Net (keras-io style)

Each network trains on one fixed random batch (Adam, sparse CE / BCE on
logits) in graph mode and with XLA; a row reports the median seconds of
``--steps`` timed steps after ``--warmup``, in rounds that alternate the two
builds so load drifts hit both; the ratio is seqlab's best mode over the
plain build's best mode. The 2048^2 fp32 matmul rate is printed beside.

    python experiments/vision/bench.py --quick
    python experiments/vision/bench.py --rows cnn,resnet20,unet --steps 10 --rounds 3
    python experiments/vision/bench.py --rows cnn,resnet20 --precision float32,mixed_bfloat16
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

from seqlab.models import build_cnn, build_resnet, build_unet  # noqa: E402

layers = keras.layers


def plain_cnn(shape, classes):
    model = keras.Sequential([keras.Input(shape)])
    for f in (32, 64, 128):
        model.add(layers.Conv2D(f, 3, padding="same", use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.ReLU())
        model.add(layers.MaxPooling2D())
    model.add(layers.Flatten())
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.Dropout(0.3))
    model.add(layers.Dense(classes))
    return model


def plain_resnet20(shape, classes):
    def block(x, filters, stride):
        y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        if stride != 1 or x.shape[-1] != filters:
            x = layers.BatchNormalization()(layers.Conv2D(filters, 1, stride, use_bias=False)(x))
        return layers.ReLU()(layers.Add()([x, y]))

    inputs = keras.Input(shape)
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    for stage, filters in enumerate((16, 32, 64)):
        for i in range(3):
            x = block(x, filters, 2 if stage and i == 0 else 1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes)(x))


def plain_unet(shape, classes, depth=4, base=16):
    def double(x, f):
        for _ in range(2):
            x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(f, 3, padding="same", use_bias=False)(x)))
        return x

    inputs = keras.Input(shape)
    x, skips = inputs, []
    for d in range(depth):
        x = double(x, base * 2**d)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = double(x, base * 2**depth)
    for d in reversed(range(depth)):
        x = layers.Conv2DTranspose(base * 2**d, 2, strides=2)(x)
        x = double(layers.Concatenate()([skips[d], x]), base * 2**d)
    return keras.Model(inputs, layers.Conv2D(classes, 1)(x))


ROWS = {
    # name: (input shape, classes, batch, seqlab builder, plain builder, segmentation)
    "cnn": ((28, 28, 1), 10, 128,
            lambda s, c: build_cnn(s, c, filters=(32, 64, 128), batch_norm=True, dense_units=(128,), dropout=0.3),
            plain_cnn, False),
    "resnet20": ((32, 32, 3), 10, 128, lambda s, c: build_resnet(s, c, depth=20), plain_resnet20, False),
    "resnet50": ((224, 224, 3), 1000, 8, lambda s, c: build_resnet(s, c, arch="resnet50"),
                 lambda s, c: keras.applications.ResNet50(weights=None, input_shape=s, classes=c,
                                                          classifier_activation=None), False),
    "unet": ((256, 256, 1), 1, 4, lambda s, c: build_unet(s, c, depth=4, base_filters=16), plain_unet, True),
}


def matmul_gflops(n=2048, repeats=10):
    a = tf.random.normal((n, n))
    tf.linalg.matmul(a, a).numpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        tf.linalg.matmul(a, a).numpy()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def make_step(builder, shape, classes, batch, segmentation, jit):
    keras.utils.set_random_seed(0)
    model = builder(shape, classes)
    loss = (keras.losses.BinaryCrossentropy(from_logits=True) if segmentation
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(keras.optimizers.Adam(1e-3), loss, jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *shape)).astype("float32")
    y = (rng.random((batch, *shape[:2], 1)) > 0.5).astype("float32") if segmentation \
        else rng.integers(0, classes, batch)
    return lambda: model.train_on_batch(x, y)


def _images_per_s(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def timed(step, steps):
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="cnn,resnet20,resnet50,unet")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="float32",
                        help="comma-separated Keras dtype policies of both builds, e.g. float32,mixed_bfloat16")
    parser.add_argument("--quick", action="store_true", help="cnn and resnet20, 3 steps, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.steps, args.warmup, args.rounds = "cnn,resnet20", 3, 2, 1
    print(f"# {os.cpu_count()} cores; 2048^2 fp32 matmul {matmul_gflops():.0f} GFLOP/s")
    print("| row | policy | batch | seqlab graph | seqlab XLA | Keras graph | Keras XLA | seqlab best / Keras best |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    best = {}  # (row, policy) -> seqlab's best images/s
    for policy in args.precision.split(","):
        keras.mixed_precision.set_global_policy(policy)
        for name in args.rows.split(","):
            shape, classes, batch, ours, plain, seg = ROWS[name]
            steps = {(who, jit): make_step(builder, shape, classes, batch, seg, jit)
                     for who, builder in (("seqlab", ours), ("keras", plain)) for jit in (False, True)}
            for step in steps.values():
                for _ in range(args.warmup):
                    step()
            medians = {key: [] for key in steps}
            for _ in range(args.rounds):
                for key, step in steps.items():
                    medians[key].append(timed(step, args.steps))
            ips = {key: batch / statistics.median(v) for key, v in medians.items()}
            best[name, policy] = max(ips[("seqlab", False)], ips[("seqlab", True)])
            ratio = best[name, policy] / max(ips[("keras", False)], ips[("keras", True)])
            cells = " | ".join(_images_per_s(ips[key]) for key in
                               (("seqlab", False), ("seqlab", True), ("keras", False), ("keras", True)))
            print(f"| {name} | {policy} | {batch} | {cells} | {ratio:.2f}× |", flush=True)
    keras.mixed_precision.set_global_policy("float32")
    policies = args.precision.split(",")
    if "float32" in policies and len(policies) > 1:
        for policy in (p for p in policies if p != "float32"):
            for name in args.rows.split(","):
                print(f"# {name}: seqlab {policy} best / float32 best = "
                      f"{best[name, policy] / best[name, 'float32']:.2f}×")
    print(f"# 2048^2 fp32 matmul after: {matmul_gflops():.0f} GFLOP/s (images/s columns)")


if __name__ == "__main__":
    main()
