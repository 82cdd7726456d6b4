"""The fused path inside ``tf.distribute`` replicas.

Two logical CPU devices under ``MirroredStrategy``: each replica runs the
fast path (its custom gradient) on half of the global batch and the
gradients are all-reduced. With plain SGD, one such step must give the same
weights as one single-device step on the whole batch. Logical devices can
only be set before TensorFlow starts, so the check runs in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    from seqlab.layers import GRUCell, LSTMCell, Recurrent

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    y = rng.normal(size=(8, 4)).astype("float32")

    def make(cell):
        keras.utils.set_random_seed(1)
        inputs = keras.Input((5, 3))
        layer = Recurrent(cell, implementation="fast")
        model = keras.Model(inputs, layer(inputs))
        model.compile(keras.optimizers.SGD(0.5), "mse")
        return model, layer

    # one strategy for both models: a second MirroredStrategy in the same
    # program would reuse the first one's collective instance keys
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for name, cell in (("lstm", lambda: LSTMCell(4)), ("gru", lambda: GRUCell(4))):
        single, layer = make(cell())
        assert layer.execution_path == "fast", layer.execution_reason
        initial = single.get_weights()
        single.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        with strategy.scope():
            mirrored, mlayer = make(cell())
        assert strategy.num_replicas_in_sync == 2 and mlayer.execution_path == "fast"
        mirrored.set_weights(initial)
        mirrored.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        moved = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), initial))
        diff = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights()))
        out[name] = {"diff": diff, "moved": moved}
    print("RESULT", json.dumps(out))
    """
)


def test_fast_path_trains_the_same_in_two_mirrored_replicas():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    import json

    result = json.loads(lines[-1][len("RESULT "):])
    for name, r in result.items():
        assert r["moved"] > 1e-3, f"{name}: the step did not change the weights"  # not vacuous
        assert r["diff"] <= 1e-5, f"{name}: mirrored step differs from the single-device step by {r['diff']}"
