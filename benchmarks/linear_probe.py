"""Where in the frames is the information about a station's next hours? A linear probe.

Ridge regressions (lambda 10, standardised inputs, one output per lead) forecast the scaled
target of the synthetic world from the station history alone, and with pixels added: the
latest frame above each station, or the latest frame sampled 0-12 h upstream along the
network-mean wind the stations report (what ``VisionOptions.upstream_hours`` does with
learned features), or, as an upper bound, the true future cloud forcing at each station
(read from inside the generator). Prints test MAE in physical units as a Markdown table:

    python -m benchmarks.linear_probe [--world '{"n_days": 60}'] [--target air_temperature]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from scipy.ndimage import map_coordinates

import vnnet.data.synthetic as synthetic
from vnnet.data.datamodule import WeatherDataModule

UPSTREAM_HOURS = (0, 1, 2, 3, 4, 6, 8, 10, 12)
STEERING_RATIO = 1 / 0.45  # the generator's surface wind is 0.35-0.55 of the steering wind
MODES = {"none": "station history (12 h of all inputs) + lead calendar",
         "local": "+ latest frame at each station (all channels)",
         "upstream": "+ latest frame sampled 0-12 h upstream along the network-mean wind",
         "oracle": "+ the true future cloud forcing at the station (an oracle)"}


def _cloud_forcing(world: dict[str, Any]) -> np.ndarray:
    """(time, station) lagged cloud cooling (K) of the generator, caught on its way in."""
    caught = {}
    original = synthetic._stations

    def spy(rng, times, lat, lon, elevation, tau, *args, **kwargs):  # noqa: ANN001, ANN202
        caught.update(tau=tau, times=times, lon=lon)
        return original(rng, times, lat, lon, elevation, tau, *args, **kwargs)

    synthetic._stations = spy
    try:
        synthetic.synthetic_world(**world)
    finally:
        synthetic._stations = original
    lagged = synthetic._ema(1.0 - np.exp(-caught["tau"].astype(float)),
                            synthetic.CLOUD_LAG_HOURS)
    sun = synthetic._daylight(synthetic._local_hour(caught["times"], caught["lon"]))
    return lagged * (synthetic.CLOUD_COOLING_NIGHT_K + synthetic.CLOUD_COOLING_DAY_K * sun)


def _features(dm: WeatherDataModule, split: str, mode: str, forcing: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows*stations, k) features, (.., h) scaled targets and their masks."""
    scaler = dm.station_scaler.to_dict()
    inputs = dm.input_variables

    def physical(x: np.ndarray, name: str) -> np.ndarray:
        i = scaler["names"].index(name)
        return x * scaler["std"][i] + scaler["mean"][i]

    ds, sat = dm.stations, dm.satellite
    lat, lon = ds.lat.values, ds.lon.values
    plat, plon = sat.lat.values, sat.lon.values
    xs, ys, ms = [], [], []
    loader = dm.train_dataloader() if split == "train" else dm.test_dataloader()
    for batch in loader:
        x, x_mask = batch.x.numpy(), batch.x_mask.numpy()
        b, _, n, _ = x.shape
        parts = [x.transpose(0, 2, 1, 3).reshape(b, n, -1),
                 np.broadcast_to(batch.time_pred.numpy().reshape(b, 1, -1), (b, n, 48))]
        if mode == "oracle":
            t0 = batch.init_time.numpy()
            parts.append(np.stack([forcing[t0 + h] for h in range(dm.n_pred + 1)], -1))
        elif mode in ("local", "upstream"):
            iws, idir = inputs.index("wind_speed"), inputs.index("wind_from_direction")
            speed = physical(x[:, -3:, :, iws], "wind_speed")
            toward = np.deg2rad(physical(x[:, -3:, :, idir], "wind_from_direction"))
            seen = x_mask[:, -3:, :, iws] & x_mask[:, -3:, :, idir]
            count = seen.sum((1, 2)).clip(1)
            u = (-speed * np.sin(toward) * seen).sum((1, 2)) / count * 3.6 * STEERING_RATIO
            v = (-speed * np.cos(toward) * seen).sum((1, 2)) / count * 3.6 * STEERING_RATIO
            hours = UPSTREAM_HOURS if mode == "upstream" else (0,)
            hour = batch.time.numpy()[:, -1, :2]  # sin, cos of the init hour
            frames = batch.images.numpy()[:, -1]  # (b c H W), latest frame
            per_window = []
            for i in range(b):
                rows = [(plat[0] - (lat - v[i] * h / 111.2)) / (plat[0] - plat[1])
                        for h in hours]
                cols = [(lon - u[i] * h / (111.2 * np.cos(np.deg2rad(lat))) - plon[0])
                        / (plon[1] - plon[0]) for h in hours]
                where = [np.stack(rows, 1).ravel(), np.stack(cols, 1).ravel()]
                values = np.stack([map_coordinates(f, where, order=1, mode="nearest")
                                   for f in frames[i]], -1).reshape(n, -1)
                # The sun sets the cooling under cloud: let the weights depend on the hour.
                per_window.append(np.concatenate(
                    [values, values * hour[i, 0], values * hour[i, 1]], -1))
            parts.append(np.stack(per_window))
        xs.append(np.concatenate(parts, -1).reshape(b * n, -1))
        ys.append(batch.y.numpy()[..., 0].transpose(0, 2, 1).reshape(b * n, -1))
        ms.append(batch.y_mask.numpy()[..., 0].transpose(0, 2, 1).reshape(b * n, -1))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ms)


def probe(world: dict[str, Any], target: str, lam: float = 10.0) -> dict[str, np.ndarray]:
    """Test MAE per lead (physical units) of each probe in ``MODES``."""
    dm = WeatherDataModule(synthetic=world, target=target, batch_size=64)
    dm.setup("fit")
    dm.setup("test")
    scaler = dm.station_scaler.to_dict()
    std = scaler["std"][scaler["names"].index(target)]
    forcing = _cloud_forcing(world)
    out = {}
    for mode in MODES:
        x_tr, y_tr, _ = _features(dm, "train", mode, forcing)
        x_te, y_te, m_te = _features(dm, "test", mode, forcing)
        mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
        a_tr = np.c_[(x_tr - mu) / sd, np.ones(len(x_tr))]
        a_te = np.c_[(x_te - mu) / sd, np.ones(len(x_te))]
        w = np.linalg.solve(a_tr.T @ a_tr + lam * np.eye(a_tr.shape[1]), a_tr.T @ y_tr)
        err = np.abs(a_te @ w - y_te) * m_te
        out[mode] = err.sum(0) / m_te.sum(0) * std
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="{}", help="synthetic_world options as JSON")
    parser.add_argument("--target", default="air_temperature")
    args = parser.parse_args()
    results = probe(json.loads(args.world), args.target)
    print("| features | MAE avg | MAE 1h | MAE 3h | MAE 6h | MAE 12h |\n|---|---|---|---|---|---|")
    for mode, mae in results.items():
        print(f"| {MODES[mode]} | {mae.mean():.3f} | " + " | ".join(
            f"{mae[h - 1]:.3f}" for h in (1, 3, 6, 12)) + " |")


if __name__ == "__main__":
    main()
