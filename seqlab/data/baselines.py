"""Forecast baselines and errors: naive, seasonal naive, a statsmodels model; MAE, RMSE, MASE.

All functions work on one series ``y`` (NumPy, original units) and a list of
forecast *origins*: the forecast from origin ``o`` covers ``y[o], ...,
y[o + H - 1]`` and may use ``y[:o]`` only.

Seasonal naive (period ``m``): the value one season before, from the last
observed season,

    y_hat[o + h] = y[o + h - m * ceil((h + 1) / m)],   h = 0 .. H-1

(``m = 1`` is the naive forecast ``y[o - 1]`` for every step).

MASE (Hyndman & Koehler 2006): the MAE scaled by the in-sample MAE of the
one-step seasonal naive forecast on the training part,

    MASE = MAE / ( 1/(n - m) * sum_{t=m}^{n-1} |y_t - y_{t-m}| ),   y = training values

so MASE < 1 beats the seasonal naive method's in-sample one-step error.

The classical model is fitted once with ``statsmodels`` on the values
before the first origin (optionally log-transformed), its parameters are
then kept fixed and the model's Kalman filter runs over the whole series
(``results.apply``); the forecast from origin ``o`` propagates the
filter's one-step predicted state ``a_{o|o-1}`` through the model's own
state-space matrices (``y_hat = d + Z a``, ``a <- c + T a``), which is what
``results.get_prediction(start=o, dynamic=True)`` computes, for every origin
in one filter pass. Models: ``ets`` (``statsmodels.tsa.statespace.
exponential_smoothing.ExponentialSmoothing``: additive error, optional
trend and additive seasonality; on logs, multiplicative seasonality) and
``arima`` (``SARIMAX`` with ``order``, ``seasonal_order``, ``trend``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from seqlab.errors import ConfigError

CLASSICAL_KINDS = ("ets", "arima")


def _origins(origins: Sequence[int], horizon: int, n: int) -> np.ndarray:
    origins = np.asarray(origins, np.int64)
    if origins.size and (origins.min() < 1 or origins.max() + horizon > n):
        raise ConfigError(
            f"forecast origins must lie in [1, {n - horizon}] for horizon {horizon} on a series of "
            f"{n} points, got {int(origins.min())} .. {int(origins.max())}"
        )
    return origins


def seasonal_naive(y: np.ndarray, origins: Sequence[int], horizon: int, period: int = 1) -> np.ndarray:
    """Seasonal-naive forecasts ``[len(origins), horizon]`` (see the module docstring).

    Example:

    >>> y = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 0.0, 0.0])
    >>> seasonal_naive(y, origins=[6], horizon=2, period=3).tolist()
    [[10.0, 20.0]]
    >>> seasonal_naive(y, origins=[6], horizon=2, period=1).tolist()
    [[30.0, 30.0]]
    """
    y = np.asarray(y, np.float64)
    origins = _origins(origins, horizon, y.size)
    if origins.size and origins.min() < period:
        raise ConfigError(f"seasonal naive with period {period} needs origins >= {period}")
    h = np.arange(horizon)
    back = period * np.ceil((h + 1) / period).astype(np.int64)
    return y[origins[:, None] + h[None, :] - back[None, :]]


def targets(y: np.ndarray, origins: Sequence[int], horizon: int) -> np.ndarray:
    """The true values ``[len(origins), horizon]``: ``y[o + h]``."""
    y = np.asarray(y, np.float64)
    origins = _origins(origins, horizon, y.size)
    return y[origins[:, None] + np.arange(horizon)[None, :]]


def mase_scale(train: np.ndarray, period: int = 1) -> float:
    """The in-sample MAE of the one-step seasonal naive forecast on ``train``.

    Example:

    >>> mase_scale(np.array([1.0, 3.0, 2.0, 6.0]), period=1)
    2.333333...
    """
    train = np.asarray(train, np.float64)
    if train.size <= period:
        raise ConfigError(f"MASE needs more than period={period} training values, got {train.size}")
    scale = float(np.mean(np.abs(train[period:] - train[:-period])))
    if not scale > 0:
        raise ConfigError("MASE is undefined: the training series is constant at the seasonal lag")
    return scale


def forecast_errors(y_true: np.ndarray, y_pred: np.ndarray, scale: float) -> dict[str, float]:
    """``mae``, ``rmse`` and ``mase`` (``mae / scale``) over all forecasts and steps.

    Example:

    >>> forecast_errors(np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]]), scale=2.0)
    {'mae': 1.5, 'rmse': 1.5811388300841898, 'mase': 0.75}
    """
    err = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    mae = float(np.mean(np.abs(err)))
    return {"mae": mae, "rmse": float(math.sqrt(np.mean(err**2))), "mase": mae / scale}


def check_classical(spec: Mapping | None) -> dict | None:
    """Validate a classical-model spec ``{kind: ets|arima, log, ...}`` (None: no model)."""
    if spec is None:
        return None
    spec = dict(spec)
    kind = spec.get("kind")
    if kind not in CLASSICAL_KINDS:
        raise ConfigError(f"data.classical.kind must be one of {list(CLASSICAL_KINDS)}, got {kind!r}")
    allowed = {"kind", "log", "fit_last"} | (
        {"trend", "damped_trend", "seasonal"} if kind == "ets" else {"order", "seasonal_order", "trend"}
    )
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"data.classical ({kind}) takes no key(s) {unknown}; known: {sorted(allowed)}")
    return spec


def _model(spec: dict, endog: np.ndarray):
    if spec["kind"] == "ets":
        from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing

        return ExponentialSmoothing(
            endog, trend=bool(spec.get("trend", False)), damped_trend=bool(spec.get("damped_trend", False)),
            seasonal=spec.get("seasonal"),
        )
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    return SARIMAX(
        endog, order=tuple(spec.get("order", (1, 0, 0))),
        seasonal_order=tuple(spec.get("seasonal_order", (0, 0, 0, 0))), trend=spec.get("trend"),
    )


def _at(matrix: np.ndarray, t: int, static_ndim: int) -> np.ndarray:
    """A state-space matrix at time ``t`` (time-varying ones carry a last time axis)."""
    return matrix[..., t] if matrix.ndim > static_ndim else matrix


def classical_forecasts(
    y: np.ndarray, origins: Sequence[int], horizon: int, spec: Mapping, fit_end: int | None = None
) -> np.ndarray:
    """Forecasts ``[len(origins), horizon]`` of a statsmodels state-space model
    fitted on ``y[:fit_end]`` (default: up to the first origin; its last
    ``spec["fit_last"]`` values only, if given), parameters then fixed.

    ``spec``: ``{"kind": "ets", "trend": bool, "damped_trend": bool,
    "seasonal": period or None}`` or ``{"kind": "arima", "order": [p, d, q],
    "seasonal_order": [P, D, Q, s], "trend": "c"/"t"/"ct"/None}``, plus
    ``"log": true`` to model ``log y`` (forecasts are exponentiated back).
    """
    spec = check_classical(spec)
    y = np.asarray(y, np.float64)
    origins = _origins(origins, horizon, y.size)
    fit_end = int(origins.min()) if fit_end is None else int(fit_end)
    log = bool(spec.get("log", False))
    if log and np.any(y <= 0):
        raise ConfigError("data.classical.log=true needs a positive series")
    z = np.log(y) if log else y
    start = max(0, fit_end - int(spec["fit_last"])) if spec.get("fit_last") else 0
    # Imported first: on import it puts an "always" filter in front of ours.
    import statsmodels.tools.sm_exceptions  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the optimiser
        fitted = _model(spec, z[start:fit_end]).fit(disp=False)
        full = fitted.apply(z[start:])
    ssm = full.model.ssm
    predicted = full.filter_results.predicted_state  # a_{t|t-1}, [k, n + 1]
    out = np.empty((origins.size, horizon))
    for i, origin in enumerate(origins - start):
        a = predicted[:, origin]
        for h in range(horizon):
            t = origin + h
            out[i, h] = (_at(ssm["obs_intercept"], t, 1) + _at(ssm["design"], t, 2) @ a)[0]
            a = _at(ssm["state_intercept"], t, 1) + _at(ssm["transition"], t, 2) @ a
    return np.exp(out) if log else out
