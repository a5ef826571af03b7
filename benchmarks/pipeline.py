"""Data-pipeline throughput: windows/s of the ``WeatherDataModule`` training loader.

Inputs are written in the Weather2K / VN-Net file layouts the package reads: a processed region
file ``(time, N, 23)`` float32 with its ``lonlat`` ``(N, 2)``, and a Himawari cube
``(time, H, W, 6)`` float16 (``np.lib.format.open_memmap``, never whole in memory), region NE.
The datamodule opens both lazily (memory maps), and the training loader (shuffled windows,
12 input + 12 lead hours, batch 16) is iterated with 0 and 2 worker processes; each worker
reads its windows' 12 frames from the memory map, scales them to [0, 1] and fills NaN.

Choices: a fixed image range (``image_range``) instead of fitting the min-max scaler, which
would read every training frame once at setup (a one-off cost, not a per-window one); the cube
is read from the page cache right after it is written (what a second epoch sees when the cube
fits in memory), so this measures the pipeline's CPU cost, not the disk.
The full size, 20,000 frames of 160 x 160 x 6 at float16, is 6.1 GB on disk; check ``df``.

    python -m benchmarks.pipeline --frames 20000 --size 160 --workers 0 2
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REGION = "NE"
BOX = (38.3, 44.7, 117.3, 123.7)  # lat_min, lat_max, lon_min, lon_max of region NE
CHANNELS = 6


def write_inputs(folder: Path, frames: int, size: int, n_stations: int, seed: int = 0
                 ) -> dict[str, Any]:
    """Write stations.npy (time, N, 23), lonlat.npy (N, 2) and cube.npy (time, H, W, 6)."""
    folder.mkdir(parents=True, exist_ok=True)
    need = frames * size * size * CHANNELS * 2 + frames * n_stations * 23 * 4
    free = shutil.disk_usage(folder).free
    if need > 0.8 * free:
        raise RuntimeError(f"{folder}: the inputs need {need / 1e9:.1f} GB, only "
                           f"{free / 1e9:.1f} GB free; use --pipeline-size / --tmp")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    lat = rng.uniform(BOX[0] + 0.3, BOX[1] - 0.3, n_stations)
    lon = rng.uniform(BOX[2] + 0.3, BOX[3] - 0.3, n_stations)
    np.save(folder / "lonlat.npy", np.stack([lon, lat], -1))
    stations = np.lib.format.open_memmap(folder / "stations.npy", mode="w+", dtype=np.float32,
                                         shape=(frames, n_stations, 23))
    elevation = rng.uniform(0, 800, n_stations)
    hours = np.arange(frames)
    for lo in range(0, frames, 5000):
        hi = min(lo + 5000, frames)
        block = rng.normal(0, 1, (hi - lo, n_stations, 23)).astype(np.float32)
        block[..., 0], block[..., 1], block[..., 2] = lat, lon, elevation
        block[..., 3:] += 10 + 5 * np.sin(2 * np.pi * hours[lo:hi, None, None] / 24)
        stations[lo:hi] = block
    stations.flush()
    del stations
    cube = np.lib.format.open_memmap(folder / "cube.npy", mode="w+", dtype=np.float16,
                                     shape=(frames, size, size, CHANNELS))
    base = (260 + 30 * rng.standard_normal((64, size, size, CHANNELS))).astype(np.float16)
    for lo in range(0, frames, 64):
        hi = min(lo + 64, frames)
        cube[lo:hi] = base[:hi - lo] + np.float16(lo % 7)
    cube.flush()
    del cube
    return {"folder": str(folder), "write_s": time.perf_counter() - t0,
            "cube_gb": frames * size * size * CHANNELS * 2 / 1e9}


def measure_pipeline(frames: int, size: int, workers: int, batches: int, batch_size: int,
                     n_stations: int, folder: str, satellite: bool = True) -> dict[str, Any]:
    """Windows/s of the training loader over the inputs in ``folder`` (see write_inputs);
    ``satellite=False`` reads the station record only."""
    import torch

    from benchmarks.perf import peak_rss_mib
    from vnnet.data.datamodule import WeatherDataModule

    torch.set_num_threads(1)
    imports_mib = peak_rss_mib()
    folder_path = Path(folder)
    t0 = time.perf_counter()
    dm = WeatherDataModule(stations=str(folder_path / "stations.npy"),
                           stations_lonlat=str(folder_path / "lonlat.npy"),
                           satellite=str(folder_path / "cube.npy") if satellite else None,
                           use_satellite=satellite, satellite_region=REGION,
                           target="air_temperature", n_his=12, n_pred=12, split=(0.7, 0.1, 0.2),
                           batch_size=batch_size, num_workers=workers, pin_memory=False,
                           image_range=([150.0] * CHANNELS, [350.0] * CHANNELS))
    dm.setup("fit")
    setup_s = time.perf_counter() - t0
    loader = dm.train_dataloader()
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)  # includes starting the workers
    first_s = time.perf_counter() - t0
    for _ in range(min(2, batches)):  # let the workers' prefetch settle
        next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        batch = next(it)
        n += batch.batch_size
    elapsed = time.perf_counter() - t0
    shape = None if first.images is None else tuple(first.images.shape)
    del it, loader
    return {"frames": frames, "size": size, "channels": CHANNELS, "workers": workers,
            "batch_size": batch_size, "batches": batches, "windows": n,
            "train_windows": len(dm.windows("train")), "setup_s": setup_s,
            "first_batch_s": first_s, "windows_s": n / elapsed, "images_shape": shape,
            "peak_mib_imports": imports_mib, "peak_mib_main": peak_rss_mib(),
            # workers are forked: their ru_maxrss counts pages shared with the main process
            "peak_mib_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def pipeline_table(rows: list[dict]) -> str:
    lines = ["| cube (time, H, W, c) float16 | GB | workers | windows/s | first batch s | "
             "setup s | train windows | peak RSS MiB main / worker |",
             "|---|---|---|---|---|---|---|---|"]
    for p in rows:
        gb = p["frames"] * p["size"] ** 2 * p["channels"] * 2 / 1e9
        lines.append(f"| ({p['frames']:,}, {p['size']}, {p['size']}, {p['channels']}) | "
                     f"{gb:.1f} | {p['workers']} | {p['windows_s']:,.1f} | "
                     f"{p['first_batch_s']:.2f} | {p['setup_s']:.1f} | {p['train_windows']:,} | "
                     f"{p['peak_mib_main']:,.0f} / {p['peak_mib_workers']:,.0f} |")
    return "\n".join(lines)


def run(frames: int, size: int, workers: list[int], batches: int, batch_size: int,
        n_stations: int, tmp: str | None, child) -> list[dict]:  # noqa: ANN001 - a callable
    """Write the inputs into a fresh temp folder, measure each worker count with
    ``child(spec)`` (a fresh process), remove the folder."""
    folder = Path(tempfile.mkdtemp(prefix="vnnet_perf_pipeline_", dir=tmp))
    try:
        info = write_inputs(folder, frames, size, n_stations)
        rows = []
        for w in workers:
            spec = {"frames": frames, "size": size, "workers": w, "batches": batches,
                    "batch_size": batch_size, "n_stations": n_stations, "folder": str(folder)}
            rows.append({**child(spec), "write_s": info["write_s"]})
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--stations", type=int, default=60)
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args()
    rows = run(args.frames, args.size, args.workers, args.batches, args.batch, args.stations,
               args.tmp, lambda spec: measure_pipeline(**spec))
    print(pipeline_table(rows))


if __name__ == "__main__":
    main()
