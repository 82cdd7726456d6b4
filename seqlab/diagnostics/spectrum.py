"""Spectrum of recurrent weight matrices: spectral radius and largest singular value.

A recurrent kernel ``U`` of shape ``[H, G*H]`` (Keras/seqlab layout) holds
``G`` square gate blocks ``U[:, g*H:(g+1)*H]`` (G = 1 for a vanilla RNN; 4 for
the LSTMs, gate order i, f, c, o; 3 for the GRU, order z, r, h). For the
linearised recurrence ``h_t ~ f'(.) U_g^T h_{t-1}`` the spectral radius
``max |eig(U_g)|`` tells whether a perturbation decays (< 1) or grows (> 1);
the largest singular value bounds the per-step gain of the linear part.

Metrics (step = optimizer step): ``spectral_radius/<layer>`` (max over the
gate blocks; for a vanilla RNN the radius of ``U`` itself),
``spectral_radius/<layer>/<gate>``, ``max_singular/<layer>`` (of the whole
``[H, G*H]`` kernel), ``max_singular/<layer>/<gate>``.
"""

from __future__ import annotations

import numpy as np

from seqlab.diagnostics._base import DiagnosticCallback, check_every
from seqlab.errors import ConfigError

GATE_NAMES = {1: ("",), 3: ("z", "r", "h"), 4: ("i", "f", "c", "o")}


def gate_blocks(kernel: np.ndarray) -> dict[str, np.ndarray]:
    """Split ``[H, G*H]`` into its square gate blocks, keyed by gate name ('' for G=1)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[1] % kernel.shape[0]:
        raise ConfigError(f"a recurrent kernel must be [H, G*H], got shape {kernel.shape}")
    g = kernel.shape[1] // kernel.shape[0]
    names = GATE_NAMES.get(g, tuple(str(i) for i in range(g)))
    return dict(zip(names, np.split(kernel, g, axis=1), strict=True))


def spectral_radius(matrix: np.ndarray) -> float:
    """``max |eigenvalue|`` of a square matrix."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(matrix, dtype=np.float64)))))


def max_singular_value(matrix: np.ndarray) -> float:
    """The largest singular value (the spectral norm)."""
    return float(np.linalg.norm(np.asarray(matrix, dtype=np.float64), ord=2))


def recurrent_spectrum(kernel: np.ndarray, name: str) -> dict[str, float]:
    """The ``spectral_radius/*`` and ``max_singular/*`` metrics of one recurrent kernel."""
    blocks = gate_blocks(kernel)
    out = {}
    radii = {}
    for gate, block in blocks.items():
        radii[gate] = spectral_radius(block)
        if gate:
            out[f"spectral_radius/{name}/{gate}"] = radii[gate]
            out[f"max_singular/{name}/{gate}"] = max_singular_value(block)
    out[f"spectral_radius/{name}"] = max(radii.values())
    out[f"max_singular/{name}"] = max_singular_value(kernel)
    return out


def recurrent_layers(model, names=None) -> list:
    """The model's layers that own a cell with a ``recurrent_kernel`` (or those named)."""
    found = [
        layer
        for layer in model.layers
        if getattr(getattr(layer, "cell", None), "recurrent_kernel", None) is not None
    ]
    if names is None:
        return found
    by_name = {layer.name: layer for layer in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ConfigError(
            f"no recurrent layer named {missing} in model {model.name!r}; recurrent layers: "
            f"{sorted(by_name)}"
        )
    return [by_name[n] for n in names]


class RecurrentSpectrumMonitor(DiagnosticCallback):
    """Logs the recurrent-kernel spectrum at the start and every ``every_n_steps``.

    Computed with numpy on a copy of the weights, outside the train step.
    """

    def __init__(self, every_n_steps: int = 50, layers: list[str] | None = None):
        super().__init__()
        self.every_n_steps = check_every("spectrum", every_n_steps)
        self.layer_names = list(layers) if layers is not None else None

    def measure(self) -> dict[str, float]:
        out = {}
        for layer in recurrent_layers(self.model, self.layer_names):
            out.update(recurrent_spectrum(np.asarray(layer.cell.recurrent_kernel), layer.name))
        return out

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.log(self.measure(), 0)

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        if self.every_n_steps and self.global_step % self.every_n_steps == 0:
            self.log(self.measure(), self.global_step)
