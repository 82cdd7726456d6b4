"""Real time series as windowed forecasting datasets with a held-out tail.

Series (``data.series``; files in ``$SEQLAB_DATA_DIR/timeseries/``):

============== =============================== ====== =========== ==============================
key            file, target column             points period m   classical baseline
============== =============================== ====== =========== ==============================
airline        airline-passengers, Passengers  144    12 (months) ETS, trend + seasonal 12, logs
sunspots       monthly-sunspots, Sunspots      2,820  1 (none)    ARIMA(2,0,2) + constant
min_temps      daily-min-temperatures, Temp    3,650  365 (days)  ARIMA(2,0,1) + constant
pm25           pollution, pm2.5 (+ weather)    43,824 24 (hours)  ARIMA(2,0,1) + constant
============== =============================== ====== =========== ==============================

The sunspot cycle (~11 years) has no fixed length, so its seasonal naive
forecast is the naive one (m = 1).

Splits, by time: the last ``test_size`` points are the **held-out tail**,
the ``validation_size`` points before it validate, the rest trains. A
window is ``lookback`` past steps of every feature -> the next ``horizon``
target values; its *origin* ``o`` is the first forecast step. Train windows
end inside the training part; validation and test origins lie in their part
(every ``test_stride``-th origin for test) with the whole horizon inside it,
while their inputs may reach back into earlier parts, as a forecaster's
would.

Scaling: ``log`` (optional) then a standardisation whose mean and standard
deviation come from the **training part only**; with ``relative`` the
inputs and targets of a window are measured from its last observed target
value (``x - x_{o-1}``), so the model forecasts changes and a trend that
leaves the training range does not leave the inputs' range.

PM2.5 (``pollution.csv``, hourly 2010-2014, 13 columns): ``pm2.5`` is
``NA`` in 2,067 rows. The leading run of ``NA`` (the first 24 hours) is
dropped; inner gaps are filled by linear interpolation *for the inputs*
(with a 0/1 ``pm25_missing`` feature marking the filled steps) and windows
whose targets hold a filled value are excluded from training and scoring,
so no error is measured against an interpolated value. With ``exogenous``
the inputs add dew point, temperature, pressure, cumulated wind speed,
snow and rain hours (standardised on train) and the wind direction
``cbwd`` one-hot (NE, NW, SE, cv): 12 features per hour. The baselines
forecast the target alone.

Calendar features (``calendar``): sin/cos of the month (monthly series),
the day of the year (daily) or the hour (hourly) at each input step.

Test (``evaluate_test``): the model's forecasts on the tail windows, back in
original units: ``mae``, ``rmse``, ``mase`` (:mod:`seqlab.data.baselines`),
and the same three for ``naive_*``, ``seasonal_naive_*`` and the
classical model (``ets_*`` / ``arima_*``) on exactly the same windows.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqlab.data import baselines
from seqlab.data.batching import _check_batch
from seqlab.data.bundle import DataBundle
from seqlab.data.files import data_folder
from seqlab.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

WIND_DIRECTIONS = ("NE", "NW", "SE", "cv")
POLLUTION_HEADER = ("No", "year", "month", "day", "hour", "pm2.5", "DEWP", "TEMP", "PRES", "cbwd",
                    "Iws", "Is", "Ir")
POLLUTION_WEATHER = ("DEWP", "TEMP", "PRES", "Iws", "Is", "Ir")


@dataclasses.dataclass(frozen=True)
class SeriesSpec:
    file: str
    header: tuple[str, str]
    frequency: str  # monthly | daily | hourly
    period: int
    classical: Mapping
    #: The window and split settings a null ``data.<key>`` takes for this series.
    defaults: Mapping


SERIES = {
    "airline": SeriesSpec(
        "airline-passengers.csv", ("Month", "Passengers"), "monthly", 12,
        {"kind": "ets", "trend": True, "seasonal": 12, "log": True},
        {"lookback": 24, "horizon": 12, "test_size": 24, "validation_size": 12, "test_stride": 1,
         "log": True, "calendar": False, "exogenous": False},
    ),
    "sunspots": SeriesSpec(
        "monthly-sunspots.csv", ("Month", "Sunspots"), "monthly", 1,
        {"kind": "arima", "order": [2, 0, 2], "trend": "c"},
        {"lookback": 120, "horizon": 12, "test_size": 240, "validation_size": 240, "test_stride": 1,
         "log": False, "calendar": False, "exogenous": False},
    ),
    "min_temps": SeriesSpec(
        "daily-min-temperatures.csv", ("Date", "Temp"), "daily", 365,
        {"kind": "arima", "order": [2, 0, 1], "trend": "c"},
        {"lookback": 60, "horizon": 7, "test_size": 365, "validation_size": 365, "test_stride": 1,
         "log": False, "calendar": True, "exogenous": False},
    ),
    "pm25": SeriesSpec(
        "pollution.csv", ("No", "pm2.5"), "hourly", 24,
        {"kind": "arima", "order": [2, 0, 1], "trend": "c", "fit_last": 8760},
        {"lookback": 48, "horizon": 24, "test_size": 8760, "validation_size": 4368, "test_stride": 24,
         "log": False, "calendar": True, "exogenous": True},
    ),
}


@dataclasses.dataclass
class Series:
    """One series: ``target`` (original units, NaN where missing), the
    exogenous columns ``exog`` ``[n, k]`` with their names, and the calendar
    position of every step (``month`` 1-12, ``day_of_year`` 1-366 or ``hour``
    0-23, by frequency)."""

    name: str
    target: np.ndarray
    calendar: np.ndarray
    exog: np.ndarray
    exog_names: list[str]
    frequency: str


def _float(text: str, path: Path, number: int, column: str) -> float:
    """One CSV cell as a finite float.

    ``float()`` also reads ``nan``, ``inf`` and ``-Infinity``: such a value
    would reach the scaler and the loss (a NaN loss epochs later, far from
    its cause), or be interpolated as if it were a documented gap. The only
    missing values a series may hold are pm2.5's ``NA`` cells
    (:func:`read_pollution`, filled by :func:`fill_missing`), read before
    this is called.
    """
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}, line {number}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise DataError(
            f"{path}, line {number}: column {column!r} is {text!r}, not a finite number; this series "
            "expects no missing or infinite values: fix or remove the row (only pm2.5 may be NA, "
            "which is interpolated)"
        )
    return value


def _rows(path: Path, header: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Numbered CSV rows after a header that must start with ``header``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8/ASCII (byte at offset {err.start})") from None
    reader = csv.reader(text.splitlines())
    rows = list(reader)
    if not rows or tuple(rows[0][: len(header)]) != header:
        raise DataError(f"{path}, line 1: expected a header starting {list(header)}, got {rows[:1]}")
    width = len(rows[0])
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != width:
            raise DataError(f"{path}, line {number}: expected {width} columns, got {len(row)}: {row}")
        out.append((number, row))
    return out


def read_univariate(path: Path, spec: SeriesSpec, name: str) -> Series:
    """A two-column ``date,value`` CSV (quoted dates, CRLF)."""
    rows = _rows(path, spec.header)
    values = np.array([_float(r[1], path, n, spec.header[1]) for n, r in rows])
    dates = [r[0] for _, r in rows]
    if spec.frequency == "monthly":
        calendar = np.array([int(d.split("-")[1]) for d in dates])
    else:
        import datetime as dt

        calendar = np.array([dt.date.fromisoformat(d).timetuple().tm_yday for d in dates])
    return Series(name, values, calendar, np.zeros((values.size, 0)), [], spec.frequency)


def read_pollution(path: Path) -> Series:
    """``pollution.csv``: pm2.5 (NaN for ``NA``), the weather columns and the
    wind direction one-hot, hourly."""
    rows = _rows(path, POLLUTION_HEADER)
    col = {c: i for i, c in enumerate(POLLUTION_HEADER)}
    target, exog, hours = [], [], []
    for number, row in rows:
        pm = row[col["pm2.5"]]
        target.append(math.nan if pm == "NA" else _float(pm, path, number, "pm2.5"))
        weather = [_float(row[col[c]], path, number, c) for c in POLLUTION_WEATHER]
        wind = row[col["cbwd"]]
        if wind not in WIND_DIRECTIONS:
            raise DataError(f"{path}, line {number}: cbwd must be one of {list(WIND_DIRECTIONS)}, got {wind!r}")
        exog.append(weather + [float(wind == w) for w in WIND_DIRECTIONS])
        hours.append(int(_float(row[col["hour"]], path, number, "hour")))
    names = [*POLLUTION_WEATHER, *(f"cbwd_{w}" for w in WIND_DIRECTIONS)]
    return Series("pm25", np.array(target), np.array(hours), np.array(exog), names, "hourly")


def load_series(series: str, path: str | None = None) -> Series:
    if series not in SERIES:
        raise ConfigError(f"data.series={series!r} is unknown; choose one of {sorted(SERIES)}")
    spec = SERIES[series]
    folder = data_folder("timeseries", path, [spec.file])
    if series == "pm25":
        return read_pollution(folder / spec.file)
    return read_univariate(folder / spec.file, spec, series)


def fill_missing(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop the leading NaN run, fill inner NaN linearly; ``(filled,
    was_missing, dropped)``.

    Example:

    >>> filled, missing, dropped = fill_missing(np.array([np.nan, 1.0, np.nan, 3.0]))
    >>> filled.tolist(), missing.tolist(), dropped
    ([1.0, 2.0, 3.0], [False, True, False], 1)
    """
    values = np.asarray(values, np.float64)
    valid = np.flatnonzero(~np.isnan(values))
    if valid.size == 0:
        raise DataError("the series has no values (all missing)")
    first = int(valid[0])
    values = values[first:]
    missing = np.isnan(values)
    idx = np.arange(values.size)
    filled = values.copy()
    filled[missing] = np.interp(idx[missing], idx[~missing], values[~missing])
    return filled, missing, first


@dataclasses.dataclass
class Scaler:
    """``(log(x) if log else x - mean) / std`` with statistics from training values."""

    mean: float
    std: float
    log: bool = False

    @classmethod
    def fit(cls, train: np.ndarray, log: bool = False) -> Scaler:
        train = np.asarray(train, np.float64)
        if log and np.any(train <= 0):
            raise ConfigError("data.log=true needs a positive series; set data.log=false")
        z = np.log(train) if log else train
        std = float(z.std())
        return cls(float(z.mean()), std if std > 0 else 1.0, log)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = np.log(x) if self.log else np.asarray(x, np.float64)
        return (z - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        x = np.asarray(z, np.float64) * self.std + self.mean
        return np.exp(x) if self.log else x


def calendar_features(calendar: np.ndarray, frequency: str) -> np.ndarray:
    """``[n, 2]``: sin and cos of the position in the year (month, day) or day (hour)."""
    period = {"monthly": 12.0, "daily": 365.25, "hourly": 24.0}[frequency]
    angle = 2 * np.pi * np.asarray(calendar, np.float64) / period
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def window_origins(start: int, end: int, lookback: int, horizon: int, stride: int = 1) -> np.ndarray:
    """Origins ``o`` with ``start <= o``, ``o + horizon <= end``, ``o >= lookback``, every ``stride``-th."""
    first = max(start, lookback)
    return np.arange(first, end - horizon + 1, stride, dtype=np.int64)


def forecast_loss():
    return keras.losses.MeanSquaredError()


def forecast_metrics() -> list:
    return [keras.metrics.MeanAbsoluteError(name="mae")]


def build_timeseries_data(
    *,
    batch_size: int,
    seed: int = 0,
    series: str = "airline",
    lookback: int | None = None,
    horizon: int | None = None,
    test_size: int | None = None,
    validation_size: int | None = None,
    test_stride: int | None = None,
    log: bool | None = None,
    relative: bool = True,
    calendar: bool | None = None,
    exogenous: bool | None = None,
    classical: Mapping | None = None,
    classical_enabled: bool = True,
    path: str | None = None,
) -> DataBundle:
    """Windowed forecasting data for ``series`` with a held-out tail (see the module docstring).

    A null window or split setting (``lookback``, ``horizon``, ``test_size``,
    ``validation_size``, ``test_stride``, ``log``, ``calendar``,
    ``exogenous``) takes the series' default (:data:`SERIES`), so one
    preset sweeps every series. The model receives ``input_dim`` (target,
    plus the missing flag for PM2.5, plus calendar and exogenous features)
    and ``horizon``. ``classical``: the statsmodels baseline's spec (None:
    the series' default); ``classical_enabled=false`` skips it.
    """
    _check_batch(batch_size)
    if series not in SERIES:
        raise ConfigError(f"data.series={series!r} is unknown; choose one of {sorted(SERIES)}")
    spec = SERIES[series]
    given = {"lookback": lookback, "horizon": horizon, "test_size": test_size,
             "validation_size": validation_size, "test_stride": test_stride, "log": log,
             "calendar": calendar, "exogenous": exogenous}
    settings = {k: spec.defaults[k] if v is None else v for k, v in given.items()}
    lookback, horizon, test_size, validation_size, test_stride = (
        settings[k] for k in ("lookback", "horizon", "test_size", "validation_size", "test_stride")
    )
    log, calendar, exogenous = settings["log"], settings["calendar"], settings["exogenous"]
    for key in ("lookback", "horizon", "test_size", "validation_size", "test_stride"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"data.{key} must be a positive integer or null, got {value!r}")
    data = load_series(series, path)
    if exogenous and not data.exog_names:
        raise ConfigError(f"data.exogenous=true: series {series!r} has no exogenous columns (only pm25 has)")
    y, missing, dropped = fill_missing(data.target)
    n = y.size
    test_start = n - test_size
    val_start = test_start - validation_size
    if horizon > test_size or horizon > validation_size:
        raise ConfigError(
            f"data.horizon={horizon} is longer than the held-out tail (data.test_size={test_size}) or "
            f"the validation part (data.validation_size={validation_size}) of series {series!r} "
            f"({n} points): lower the horizon or enlarge the parts"
        )
    if val_start - lookback - horizon + 1 < 1:
        raise ConfigError(
            f"series {series!r} has {n} points: after the test ({test_size}) and validation "
            f"({validation_size}) parts, {max(val_start, 0)} training points remain, fewer than "
            f"one window of data.lookback + data.horizon = {lookback + horizon}; shorten them"
        )
    scaler = Scaler.fit(y[:val_start], log=log)
    z = scaler.transform(y)
    columns = [z[:, None]]
    names = ["target"]
    if missing.any():
        columns.append(missing[:, None].astype(np.float64))
        names.append("pm25_missing")
    if calendar:
        columns.append(calendar_features(data.calendar[dropped:], data.frequency))
        names += ["calendar_sin", "calendar_cos"]
    if exogenous:
        exog = data.exog[dropped:]
        mean, std = exog[:val_start].mean(0), exog[:val_start].std(0)
        columns.append((exog - mean) / np.where(std > 0, std, 1.0))
        names += data.exog_names
    features = np.concatenate(columns, axis=1).astype(np.float32)

    def windows(origins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Drop windows whose targets hold an interpolated (originally missing) value.
        steps = origins[:, None] + np.arange(horizon)[None, :]
        origins = origins[~missing[steps].any(axis=1)] if origins.size else origins
        past = origins[:, None] + np.arange(-lookback, 0)[None, :]
        x = features[past]
        target = z[origins[:, None] + np.arange(horizon)[None, :]]
        if relative:
            last = z[origins - 1][:, None]
            x = x.copy()
            x[:, :, 0] -= last
            target = target - last
        return x.astype(np.float32), target.astype(np.float32), origins

    parts = {
        "train": windows(window_origins(0, val_start, lookback, horizon)),
        "validation": windows(window_origins(val_start, test_start, lookback, horizon)),
        "test": windows(window_origins(test_start, n, lookback, horizon, test_stride)),
    }
    for split, (x, _, _) in parts.items():
        if len(x) == 0:
            raise ConfigError(f"series {series!r}: no complete {split} window; shorten data.lookback/horizon")
    datasets = {}
    for split, (x, t, _) in parts.items():
        ds = tf.data.Dataset.from_tensor_slices((x, t))
        if split == "train":
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        datasets[split] = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    classical_spec = baselines.check_classical(classical if classical is not None else spec.classical)

    info = {
        "task": "forecast",
        "series": series,
        "points": int(data.target.size),
        "leading_missing_dropped": int(dropped),
        "missing_filled": int(missing.sum()),
        "input_dim": features.shape[1],
        "features": ",".join(names),
        "period": spec.period,
        **{k: v for k, v in settings.items()},
        "train_points": int(val_start),
        "scaler_mean": round(scaler.mean, 6),
        "scaler_std": round(scaler.std, 6),
        **{f"{s}_windows": len(p[0]) for s, p in parts.items()},
    }
    logger.info("timeseries %s: %s", series, info)
    test_x, _, test_origins = parts["test"]

    def evaluate_test(model):
        pred = np.asarray(model.predict(test_x, batch_size=256, verbose=0))
        return score_forecasts(y, test_origins, horizon, pred, scaler=scaler, z=z, relative=relative,
                               period=spec.period, train_end=val_start,
                               classical=classical_spec if classical_enabled else None)

    return DataBundle(
        train=datasets["train"],
        validation=datasets["validation"],
        test=datasets["test"],
        model_kwargs={"input_dim": int(features.shape[1]), "horizon": horizon},
        loss=forecast_loss,
        metrics=forecast_metrics,
        steps_per_epoch=-(-len(parts["train"][0]) // batch_size),
        throughput_unit="windows",
        items_per_batch=batch_size,
        evaluate_test=evaluate_test,
        info=info,
    )


def score_forecasts(
    y: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    pred: np.ndarray,
    *,
    scaler: Scaler,
    z: np.ndarray,
    relative: bool,
    period: int,
    train_end: int,
    classical: Mapping | None,
) -> dict[str, float]:
    """The model's MAE / RMSE / MASE in original units and those of the
    baselines on the same windows (keys ``mae``, ``naive_mae``,
    ``seasonal_naive_mae``, ``<kind>_mae``, ...)."""
    pred = np.asarray(pred, np.float64).reshape(len(origins), horizon)
    if relative:
        pred = pred + z[origins - 1][:, None]
    forecasts = {"": scaler.inverse(pred)}
    forecasts["naive_"] = baselines.seasonal_naive(y, origins, horizon, 1)
    forecasts["seasonal_naive_"] = baselines.seasonal_naive(y, origins, horizon, period)
    if classical is not None:
        forecasts[f"{classical['kind']}_"] = baselines.classical_forecasts(
            y, origins, horizon, classical, fit_end=train_end
        )
    truth = baselines.targets(y, origins, horizon)
    scale = baselines.mase_scale(y[:train_end], period)
    scores = {}
    for prefix, forecast in forecasts.items():
        scores.update({prefix + k: v for k, v in baselines.forecast_errors(truth, forecast, scale).items()})
    return scores
