"""CLI fit -> test -> predict on a tiny world, and a checkpoint reloaded in a fresh process."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from vnnet.cli import main

TINY = ["--data.synthetic.n_stations", "5", "--data.synthetic.n_days", "5",
        "--data.synthetic.image_size", "16", "--data.synthetic.n_channels", "2",
        "--data.n_his", "6", "--data.n_pred", "3", "--data.batch_size", "8",
        "--model.model.init_args.hidden", "8",
        "--model.model.init_args.vision.stem_channels", "4",
        "--model.model.init_args.vision.n_queries", "2",
        "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    args = ["--config", "configs/quickstart.yaml", *TINY, "--trainer.default_root_dir",
            str(root)]
    main(["fit", *args])
    ckpts = sorted(root.rglob("*.ckpt"))
    assert any(p.name == "last.ckpt" for p in ckpts)
    best = next(p for p in ckpts if p.name.startswith("best"))
    return root, args, best


def test_cli_test_writes_the_metrics_table(trained, capsys):
    root, args, best = trained
    main(["test", *args, "--ckpt_path", str(best)])
    metrics = json.loads((root / "test_metrics.json").read_text())
    for key in ("test/mae", "test/rmse", "test/mae_h1", "test/mae_h3", "test/rmse_h3"):
        assert np.isfinite(metrics[key]) and metrics[key] > 0
    assert metrics["units"] == {"air_temperature": "degC"}
    out = capsys.readouterr().out
    assert "MAE" in out and "RMSE" in out and "3h" in out


def test_cli_predict_writes_netcdf(trained, tmp_path):
    root, args, best = trained
    out = tmp_path / "forecast.nc"
    main(["predict", *args, "--ckpt_path", str(best), "--prediction_writer.output", str(out)])
    ds = xr.open_dataset(out)
    assert ds.air_temperature.dims == ("init_time", "lead_time", "station")
    assert ds.sizes["lead_time"] == 3 and ds.sizes["station"] == 5
    assert ds.air_temperature.attrs["units"] == "degC"
    assert set(ds.coords) >= {"lat", "lon", "elevation", "valid_time"}
    lead = ds.lead_time.values.astype("timedelta64[h]").astype(int)
    assert lead.tolist() == [1, 2, 3]
    assert np.isfinite(ds.air_temperature.values).all()
    # Forecasts are in physical units (degC), not scaled values.
    assert 0 < float(ds.air_temperature.mean()) < 45


def test_checkpoint_predicts_identically_in_a_fresh_process(trained, tmp_path):
    from vnnet import Forecaster
    from vnnet.data import synthetic_world, write_satellite, write_stations

    root, args, best = trained
    stations, satellite = synthetic_world(seed=11, n_stations=5, n_days=2, image_size=16,
                                          n_channels=2)
    # The trained model knows its own stations: use the training world's station list.
    train_stations, train_sat = synthetic_world(seed=0, n_stations=5, n_days=5,
                                                image_size=16, n_channels=2)
    new = train_stations.isel(time=slice(48, 96))
    write_stations(new, tmp_path / "s.nc")
    write_satellite(train_sat.isel(time=slice(48, 96)), tmp_path / "sat.nc")
    here = Forecaster.load_from_checkpoint(best).predict_xarray(new, train_sat.isel(
        time=slice(48, 96)))
    code = (
        "import sys, xarray as xr\n"
        "from vnnet import Forecaster\n"
        "from vnnet.data import open_satellite, open_stations\n"
        "f = Forecaster.load_from_checkpoint(sys.argv[1])\n"
        "ds = f.predict_xarray(open_stations(sys.argv[2]), open_satellite(sys.argv[3]))\n"
        "ds.to_netcdf(sys.argv[4])\n"
    )
    out = tmp_path / "fresh.nc"
    subprocess.run([sys.executable, "-c", code, str(best), str(tmp_path / "s.nc"),
                    str(tmp_path / "sat.nc"), str(out)], check=True, cwd=Path(root))
    fresh = xr.open_dataset(out)
    assert here.sizes["init_time"] == 48 - 6 - 3 + 1
    np.testing.assert_allclose(fresh.air_temperature.values, here.air_temperature.values,
                               rtol=1e-5, atol=1e-5)
    assert (fresh.init_time.values == here.init_time.values).all()
    with pytest.raises(ValueError, match="unknown stations"):
        Forecaster.load_from_checkpoint(best).predict_xarray(stations.isel(station=[0]),
                                                             satellite)
    with pytest.raises(ValueError, match="not where they were in training"):
        Forecaster.load_from_checkpoint(best).predict_xarray(stations, satellite)


def test_bad_config_value_is_a_message(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vnnet.cli", "fit", "--config",
                           "configs/quickstart.yaml", "--data.n_pred", "0",
                           "--trainer.default_root_dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "n_pred" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "vnnet.cli", "fit", "--config",
                           "configs/quickstart.yaml", "--data.targte", "x"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "targte" in done.stderr


@pytest.mark.parametrize("config", ["configs/weather2k/d60_temp.yaml"])
def test_weather2k_config_trains_on_files_in_the_real_layout(config, tmp_path):
    """The Weather2K configs read VN-Net region files, lon/lat files and Himawari cubes."""
    rng = np.random.default_rng(0)
    n, hours = 4, 120
    lon = rng.uniform(118.5, 122.5, n)
    lat = rng.uniform(39.5, 43.5, n)
    region = rng.normal(10.0, 5.0, size=(hours, n, 23)).astype(np.float32)
    region[:, :, 0], region[:, :, 1], region[:, :, 2] = lat, lon, 100.0
    region[:, :, 8] = rng.uniform(20, 90, size=(hours, n))  # relative humidity in %
    region[:, :, 15] = rng.uniform(0, 360, size=(hours, n))
    region[:, :, 16] = rng.uniform(0, 8, size=(hours, n))
    region[:, :, 20:22] = rng.uniform(1000, 30000, size=(hours, n, 2))
    region[5:9, 1, 4] = np.nan
    np.save(tmp_path / "region.npy", region)
    np.save(tmp_path / "lonlat.npy", np.stack([lon, lat], axis=1))
    frames = rng.uniform(190, 340, size=(hours, 32, 32, 6)).astype(np.float16)
    np.save(tmp_path / "h8.npy", frames)
    main(["fit", "--config", str(config), "--data.stations", str(tmp_path / "region.npy"),
          "--data.stations_lonlat", str(tmp_path / "lonlat.npy"),
          "--data.satellite", str(tmp_path / "h8.npy"), "--data.split", "[0.6, 0.2, 0.2]",
          "--data.num_workers", "0", "--data.n_his", "6", "--data.n_pred", "3",
          "--model.model.init_args.hidden", "8", "--trainer.fast_dev_run", "true",
          "--trainer.default_root_dir", str(tmp_path / "run")])
