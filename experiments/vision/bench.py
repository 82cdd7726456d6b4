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
plain build's best mode. The 2048^2 fp32 matmul rate is printed beside, and
each row's share of it: images/s x 3 x the forward FLOPs of one image
(TensorFlow's profiler on the frozen seqlab graph; a training step is about
three forward passes) over the matmul rate.

Where torch is installed, a PyTorch row trains the same network written the
way a PyTorch user would (``nn.Module``, NCHW, eager, Adam), in the same
rounds; ``--no-torch`` leaves it out. The ResNet-50 there is He et al.'s, as
in ``keras.applications.ResNet50`` and seqlab (stride on the first 1x1
convolution, where torchvision puts it on the 3x3; a bias in every
convolution), written out so torchvision is not needed;
each twin's trainable parameter count must equal seqlab's or the row fails.

    python experiments/vision/bench.py --quick
    python experiments/vision/bench.py --rows cnn,resnet20 --steps 5 --rounds 20
    python experiments/vision/bench.py --rows resnet50,unet --steps 2 --rounds 15 --warmup 2
    python experiments/vision/bench.py --rows cnn,resnet20 --precision float32,mixed_bfloat16
    python experiments/vision/bench.py --rows cnn,resnet20 --keras-bn   # the builds apart from BatchNorm

seqlab's builds normalise with :class:`seqlab.layers.BatchNorm`, Keras'
batch norm with TensorFlow's fused kernel in training; the plain builds with
``keras.layers.BatchNormalization``, as a Keras user would.
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

from seqlab.layers import BatchNorm  # noqa: E402
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
    model.add(layers.Dropout(0.3))  # build_cnn puts dropout before every dense layer
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


# ------------------------------------------------------------------------ PyTorch twins
def torch_twin(name: str, shape, classes):
    """The row's network as a PyTorch user would write it, or None without torch."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None

    # keras.applications' ResNet-50 (which seqlab's matches parameter for
    # parameter) keeps a bias before every batch norm; the others do not
    bias = name == "resnet50"

    def conv_bn(cin, cout, k=3, stride=1, relu=True):
        mods = [nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=bias), nn.BatchNorm2d(cout)]
        return nn.Sequential(*mods, nn.ReLU()) if relu else nn.Sequential(*mods)

    class Residual(nn.Module):
        """relu(branch(x) + shortcut(x)); a 1x1 projection exactly when the shape changes."""

        def __init__(self, branch, cin, cout, stride):
            super().__init__()
            self.branch = branch
            self.short = (conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout
                          else nn.Identity())

        def forward(self, x):
            return torch.relu(self.branch(x) + self.short(x))

    def basic(cin, cout, stride):
        return Residual(nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, relu=False)),
                        cin, cout, stride)

    def bottleneck(cin, width, stride):
        branch = nn.Sequential(conv_bn(cin, width, 1, stride), conv_bn(width, width, 3),
                               conv_bn(width, 4 * width, 1, relu=False))
        return Residual(branch, cin, 4 * width, stride)

    class UNet(nn.Module):
        def __init__(self, cin, classes, depth=4, base=16):
            super().__init__()
            double = lambda a, b: nn.Sequential(conv_bn(a, b), conv_bn(b, b))  # noqa: E731
            widths = [base * 2**d for d in range(depth + 1)]
            self.down = nn.ModuleList(double(a, b) for a, b in zip([cin] + widths[:-2], widths[:-1]))
            self.bottom = double(widths[-2], widths[-1])
            self.up = nn.ModuleList(nn.ConvTranspose2d(widths[d + 1], widths[d], 2, 2) for d in range(depth))
            self.merge = nn.ModuleList(double(2 * widths[d], widths[d]) for d in range(depth))
            self.head = nn.Conv2d(base, classes, 1)

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottom(x)
            for d in reversed(range(len(skips))):
                x = self.merge[d](torch.cat([skips[d], self.up[d](x)], 1))
            return self.head(x)

    h, w, c = shape
    if name == "cnn":
        stages = [conv_bn(a, b) for a, b in zip((c, 32, 64), (32, 64, 128))]
        convs = [m for stage in stages for m in (stage, nn.MaxPool2d(2))]
        return nn.Sequential(*convs, nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * (h // 8) * (w // 8), 128),
                             nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, classes))
    if name == "resnet20":
        blocks, cin = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(3):
                blocks.append(basic(cin, width, 2 if stage and i == 0 else 1))
                cin = width
        return nn.Sequential(conv_bn(c, 16), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(64, classes))
    if name == "resnet50":
        blocks, cin = [], 64
        for stage, (width, count) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            for i in range(count):
                blocks.append(bottleneck(cin, width, 2 if stage and i == 0 else 1))
                cin = 4 * width
        return nn.Sequential(conv_bn(c, 64, 7, 2), nn.MaxPool2d(3, 2, 1), *blocks, nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(2048, classes))
    if name == "unet":
        return UNet(c, classes)
    raise KeyError(name)


def make_torch_step(name, shape, classes, batch, segmentation, expected_params):
    model = torch_twin(name, shape, classes)
    if model is None:
        return None
    import torch

    count = sum(p.numel() for p in model.parameters())
    if count != expected_params:  # the twin must be the same network, weight for weight
        raise AssertionError(f"{name}: the PyTorch twin has {count:,} trainable parameters, "
                             f"seqlab's build {expected_params:,}")

    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(batch, shape[2], *shape[:2])).astype("float32"))
    if segmentation:
        y = torch.from_numpy((rng.random((batch, 1, *shape[:2])) > 0.5).astype("float32"))
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        y = torch.from_numpy(rng.integers(0, classes, batch))
        loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach().item()

    return step


def forward_flops(model, shape) -> float:
    """FLOPs of one image's forward pass (TensorFlow's profiler on the frozen graph)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, *shape), tf.float32))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = convert_variables_to_constants_v2(concrete).graph
    return float(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


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
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15,
                        help="this 2-core machine drifts: with under ~15 rounds a row's ratio swings by 5-15 %%")
    parser.add_argument("--precision", default="float32",
                        help="comma-separated Keras dtype policies of both builds, e.g. float32,mixed_bfloat16")
    parser.add_argument("--quick", action="store_true", help="cnn and resnet20, 3 steps, 1 round")
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch rows")
    parser.add_argument("--keras-bn", action="store_true",
                        help="seqlab's builds with Keras' batch-norm arithmetic (its fused kernel off): "
                             "what the builds cost apart from seqlab.layers.BatchNorm")
    args = parser.parse_args()
    if args.keras_bn:
        BatchNorm._fused_applies = lambda self, *_: False
    if args.quick:
        args.rows, args.steps, args.warmup, args.rounds = "cnn,resnet20", 3, 2, 1
    peak = matmul_gflops()
    print(f"# {os.cpu_count()} cores; 2048^2 fp32 matmul {peak:.0f} GFLOP/s"
          + ("; seqlab's batch norm without its fused kernel (--keras-bn)" if args.keras_bn else ""))
    names, policies = args.rows.split(","), args.precision.split(",")
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        parser.error(f"unknown --rows {','.join(unknown)}; known: {','.join(ROWS)}")
    flops, params = {}, {}  # row -> forward FLOPs of one image, trainable parameters
    for name in names:
        shape, classes, _, ours, _, _ = ROWS[name]
        model = ours(shape, classes)
        flops[name] = forward_flops(model, shape)
        params[name] = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print("| row | policy | batch | GFLOP / image (fwd) | seqlab graph | seqlab XLA | Keras graph | Keras XLA "
          "| PyTorch eager | seqlab / Keras | seqlab / PyTorch | seqlab, share of the fp32 matmul rate |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = {}  # (row, policy) -> seqlab's best images/s
    for policy in policies:
        keras.mixed_precision.set_global_policy(policy)
        for name in names:
            shape, classes, batch, ours, plain, seg = ROWS[name]
            steps = {(who, jit): make_step(builder, shape, classes, batch, seg, jit)
                     for who, builder in (("seqlab", ours), ("keras", plain)) for jit in (False, True)}
            if policy == "float32" and not args.no_torch:  # torch ignores Keras' dtype policy
                torch_step = make_torch_step(name, shape, classes, batch, seg, params[name])
                if torch_step is not None:
                    steps["torch", False] = torch_step
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
            torch_ips = ips.get(("torch", False))
            cells = " | ".join(_images_per_s(ips[key]) for key in
                               (("seqlab", False), ("seqlab", True), ("keras", False), ("keras", True)))
            torch_cell = "—" if torch_ips is None else _images_per_s(torch_ips)
            torch_ratio = "—" if torch_ips is None else f"{best[name, policy] / torch_ips:.2f}×"
            share = best[name, policy] * 3 * flops[name] / (peak * 1e9)
            print(f"| {name} | {policy} | {batch} | {flops[name] / 1e9:.3f} | {cells} | {torch_cell} "
                  f"| {ratio:.2f}× | {torch_ratio} | {share:.0%} |", flush=True)
    keras.mixed_precision.set_global_policy("float32")
    if "float32" in policies and len(policies) > 1:
        for policy in (p for p in policies if p != "float32"):
            for name in names:
                print(f"# {name}: seqlab {policy} best / float32 best = "
                      f"{best[name, policy] / best[name, 'float32']:.2f}×")
    print(f"# 2048^2 fp32 matmul after: {matmul_gflops():.0f} GFLOP/s (images/s columns)")


if __name__ == "__main__":
    main()
