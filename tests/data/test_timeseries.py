"""Time series: counts equal shared/data/README.md, windows come from the right part,
scaling uses train statistics only (by construction), baselines equal independent
references (a loop, statsmodels' own forecasts, scikit-learn's errors)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from seqlab.data import baselines
from seqlab.data.timeseries import (
    SERIES,
    build_timeseries_data,
    fill_missing,
    load_series,
    read_pollution,
    score_forecasts,
)
from seqlab.errors import ConfigError, DataError


def test_counts_equal_the_readme(data_dir):
    assert {name: load_series(name).target.size for name in ("airline", "sunspots", "min_temps")} == {
        "airline": 144, "sunspots": 2820, "min_temps": 3650}
    airline = load_series("airline").target
    assert (airline.min(), airline.max()) == (104.0, 622.0)
    pm = read_pollution(data_dir / "timeseries" / "pollution.csv")
    assert pm.target.size == 43_824 and int(np.isnan(pm.target).sum()) == 2067
    assert pm.exog.shape == (43_824, 10)
    assert np.all(pm.exog[:, -4:].sum(1) == 1)  # one wind direction per hour


def test_fill_missing_drops_the_leading_run_and_interpolates():
    filled, missing, dropped = fill_missing(np.array([np.nan, np.nan, 2.0, np.nan, np.nan, 8.0]))
    assert dropped == 2
    np.testing.assert_allclose(filled, [2.0, 4.0, 6.0, 8.0])
    assert missing.tolist() == [False, True, True, False]


def _windows(ds):
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_windows_come_from_their_part_and_targets_are_the_values(data_dir):
    bundle = build_timeseries_data(batch_size=256, series="airline", log=False, relative=False)
    y = load_series("airline").target
    info = bundle.info
    assert info["train_points"] == 144 - 24 - 12
    x, t = _windows(bundle.test)
    assert x.shape == (13, 24, 1) and t.shape == (13, 12)
    # Test targets are the last 24 months, scaled with the training statistics.
    mean, std = y[:108].mean(), y[:108].std()
    np.testing.assert_allclose(t * std + mean, y[120 + np.arange(13)[:, None] + np.arange(12)], rtol=1e-5)
    np.testing.assert_allclose(x[0, :, 0] * std + mean, y[96:120], rtol=1e-5)
    xt, tt = _windows(bundle.train)
    assert len(xt) == info["train_windows"] == 108 - 24 - 12 + 1
    assert tt.max() * std + mean <= y[:108].max() + 1e-3  # no training target beyond the training part


def test_scaling_uses_train_statistics_only(data_dir, tmp_path):
    """By construction: changing the validation and test values changes neither
    the scaler nor any training window."""
    folder = tmp_path / "timeseries"
    folder.mkdir()
    source = data_dir / "timeseries" / "airline-passengers.csv"
    shutil.copy(source, folder / source.name)
    lines = source.read_text().splitlines()
    changed = lines[:-36] + [f'{line.split(",")[0]},{float(line.split(",")[1]) + 20 * k}'
                             for k, line in enumerate(lines[-36:])]
    other = tmp_path / "changed"
    other.mkdir()
    (other / source.name).write_text("\r\n".join(changed))
    a = build_timeseries_data(batch_size=512, series="airline", path=str(folder))
    b = build_timeseries_data(batch_size=512, series="airline", path=str(other))
    assert (a.info["scaler_mean"], a.info["scaler_std"]) == (b.info["scaler_mean"], b.info["scaler_std"])
    xa, ta = _windows(a.train.take(1))
    xb, tb = _windows(b.train.take(1))
    np.testing.assert_array_equal(np.sort(ta, axis=0), np.sort(tb, axis=0))
    assert not np.allclose(_windows(a.test)[1], _windows(b.test)[1])


def test_pm25_windows_skip_missing_targets(data_dir):
    bundle = build_timeseries_data(batch_size=512, series="pm25", classical_enabled=False)
    info = bundle.info
    assert info["leading_missing_dropped"] == 24 and info["missing_filled"] == 2067 - 24
    assert info["input_dim"] == 1 + 1 + 2 + 10  # target, missing flag, calendar, weather + wind
    assert info["test_windows"] < 365  # one a day, less the days with a missing target hour


def test_bad_inputs_are_clear_errors(data_dir, tmp_path):
    with pytest.raises(ConfigError, match="data.series='stocks' is unknown"):
        build_timeseries_data(batch_size=8, series="stocks")
    with pytest.raises(ConfigError, match="data.horizon=200 is longer than the held-out tail"):
        build_timeseries_data(batch_size=8, series="airline", horizon=200)
    with pytest.raises(ConfigError, match="fewer than one window"):
        build_timeseries_data(batch_size=8, series="airline", lookback=120)
    with pytest.raises(ConfigError, match="only pm25"):
        build_timeseries_data(batch_size=8, series="sunspots", exogenous=True)
    folder = tmp_path / "ts"
    folder.mkdir()
    (folder / "airline-passengers.csv").write_text('"Month","Passengers"\r\n"1949-01",112\r\n"1949-02",1,2\r\n')
    with pytest.raises(DataError, match=r"airline-passengers.csv, line 3: expected 2 columns, got 3"):
        build_timeseries_data(batch_size=8, series="airline", path=str(folder))
    (folder / "airline-passengers.csv").write_text('"Month","Passengers"\r\n"1949-01",lots\r\n')
    with pytest.raises(DataError, match=r"line 2: column 'Passengers' is not a number: 'lots'"):
        build_timeseries_data(batch_size=8, series="airline", path=str(folder))


def test_seasonal_naive_equals_a_loop():
    y = np.arange(40, dtype=float) ** 1.5
    origins, horizon, m = [12, 20, 30], 7, 5
    want = np.empty((3, horizon))
    for i, o in enumerate(origins):
        for h in range(horizon):
            t = o + h
            while t >= o:  # the same phase in the last observed season
                t -= m
            want[i, h] = y[t]
    np.testing.assert_array_equal(baselines.seasonal_naive(y, origins, horizon, m), want)


def test_errors_and_mase_equal_references():
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    rng = np.random.default_rng(0)
    truth, pred, train = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=50)
    scale = baselines.mase_scale(train, period=4)
    assert scale == pytest.approx(np.mean([abs(train[t] - train[t - 4]) for t in range(4, 50)]))
    errors = baselines.forecast_errors(truth, pred, scale)
    assert errors["mae"] == pytest.approx(mean_absolute_error(truth.ravel(), pred.ravel()))
    assert errors["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth.ravel(), pred.ravel())))
    assert errors["mase"] == pytest.approx(errors["mae"] / scale)
    with pytest.raises(ConfigError, match="undefined"):
        baselines.mase_scale(np.ones(10), period=1)


def test_classical_forecasts_equal_statsmodels_dynamic_predictions():
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    rng = np.random.default_rng(1)
    y = np.empty(300)
    y[0] = 10.0
    for t in range(1, 300):
        y[t] = 10.0 + 0.7 * (y[t - 1] - 10.0) + rng.normal()
    spec = {"kind": "arima", "order": [1, 0, 0], "trend": "c"}
    origins, horizon = [250, 271, 290], 5
    got = baselines.classical_forecasts(y, origins, horizon, spec, fit_end=240)
    fitted = SARIMAX(y[:240], order=(1, 0, 0), trend="c").fit(disp=False)
    full = fitted.apply(y)
    for row, o in zip(got, origins):
        want = full.get_prediction(start=o, end=o + horizon - 1, dynamic=True).predicted_mean
        np.testing.assert_allclose(row, want, rtol=1e-6)
    with pytest.raises(ConfigError, match="data.classical.kind must be one of"):
        baselines.check_classical({"kind": "prophet"})


def test_score_forecasts_of_the_truth_are_zero():
    y = 5.0 + np.sin(np.arange(120) / 3.0)
    origins, horizon = np.arange(100, 116), 4
    from seqlab.data.timeseries import Scaler

    scaler = Scaler.fit(y[:80])
    z = scaler.transform(y)
    truth_scaled = z[origins[:, None] + np.arange(horizon)] - z[origins - 1][:, None]
    scores = score_forecasts(y, origins, horizon, truth_scaled, scaler=scaler, z=z, relative=True,
                             period=12, train_end=80, classical=None)
    assert scores["mae"] == pytest.approx(0, abs=1e-9) and scores["mase"] == pytest.approx(0, abs=1e-9)
    assert scores["seasonal_naive_mae"] > 0 and "naive_rmse" in scores


def test_every_series_has_consistent_defaults():
    for name, spec in SERIES.items():
        d = spec.defaults
        assert d["horizon"] <= min(d["test_size"], d["validation_size"]), name
        baselines.check_classical(spec.classical)


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity"])
def test_a_non_finite_value_names_the_file_line_and_column(tmp_path, cell):
    (tmp_path / "airline-passengers.csv").write_text(f'"Month","Passengers"\r\n"1949-01",112\r\n"1949-02",{cell}\r\n')
    with pytest.raises(DataError, match=rf"airline-passengers.csv, line 3: column 'Passengers' is '{cell}', "
                                        r"not a finite number.*fix or remove the row"):
        load_series("airline", path=str(tmp_path))


def test_pm25_na_is_a_gap_but_an_infinite_weather_value_is_an_error(tmp_path):
    header = "No,year,month,day,hour,pm2.5,DEWP,TEMP,PRES,cbwd,Iws,Is,Ir\n"
    rows = ["1,2010,1,1,0,NA,-21,-11,1021,NW,1.79,0,0\n", "2,2010,1,1,1,129,-16,-4,1020,SE,1.79,0,0\n"]
    path = tmp_path / "pollution.csv"
    path.write_text(header + "".join(rows))
    assert np.isnan(read_pollution(path).target[0])  # the documented gap: kept, filled later
    path.write_text(header + rows[0] + rows[1].replace(",-4,", ",inf,"))
    with pytest.raises(DataError, match=r"pollution.csv, line 3: column 'TEMP' is 'inf', not a finite number"):
        read_pollution(path)
