"""Does memory stay flat as the satellite archive grows? Peak RSS of training on lazy archives.

For each archive length N (hourly frames) and format (zarr, netCDF), writes a synthetic
satellite archive of N frames (64 x 64 x 4 float32, smooth moving fields made per block: cheap
to generate, never whole in memory) and a station dataset over the same N hours. Then, in a
fresh process per archive: builds the ``WeatherDataModule`` (validation, frame alignment, the
image scaler fitted on the training frames), iterates the training loader for ``--batches``
batches of 16 windows (12 frames each), and fits a tiny VN-Net for ``--fit-steps`` steps
(+ 2 validation batches). The peak resident memory of that process (``ru_maxrss``) is recorded
after each phase and for the whole process (``os.wait4``); a Markdown table goes to stdout and
``DIR/results.md``. Archives already in DIR are reused.

    python -m benchmarks.archive_memory --frames 1000 20000 --out runs/archive_memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the orchestrating process imports no numpy / torch / xarray (see main)
    import numpy as np

SIZE, CHANNELS, STATIONS = 64, 4, 6
BBOX = (30.0, 36.4, 110.0, 116.4)  # lat_min, lat_max, lon_min, lon_max (the synthetic world's)
BLOCK = 250  # frames generated per dask block


def _frames(start: int, n: int) -> np.ndarray:
    """(n, c, H, W) float32 brightness temperatures (K) of hours start..start+n: smooth fields
    drifting east, cheap to compute, and not constant (so the codecs have work to do)."""
    import numpy as np

    t = np.arange(start, start + n, dtype=np.float32)[:, None, None, None]
    c = np.arange(CHANNELS, dtype=np.float32)[None, :, None, None]
    y = np.linspace(0, 2 * np.pi, SIZE, dtype=np.float32)[None, None, :, None]
    x = np.linspace(0, 2 * np.pi, SIZE, dtype=np.float32)[None, None, None, :]
    cloud = np.sin(x - 0.05 * t) * np.cos(y + 0.03 * t + c) + 0.3 * np.sin(2 * x + 0.011 * t)
    noise = np.random.default_rng(start).normal(0, 0.5, (n, CHANNELS, SIZE, SIZE))
    return (270.0 + 5 * c - 25.0 * cloud + noise).astype(np.float32)


def write_archive(n_frames: int, out: Path, formats: list[str]) -> dict[str, Path]:
    """Write stations_{N}.nc and archive_{N}.{zarr,nc}; existing files are reused."""
    import dask.array as dsa
    import numpy as np
    import pandas as pd
    import xarray as xr

    from vnnet.data import write_satellite, write_stations

    times = pd.date_range("2020-01-01", periods=n_frames, freq="h")
    lat = np.linspace(BBOX[1], BBOX[0], SIZE)  # row 0 = north
    lon = np.linspace(BBOX[2], BBOX[3], SIZE)
    paths = {"stations": out / f"stations_{n_frames}.nc"}
    if not paths["stations"].exists():
        rng = np.random.default_rng(0)
        hours = np.arange(n_frames)[:, None]
        temp = 20 + 8 * np.sin(2 * np.pi * (hours % 24) / 24) + rng.normal(0, 1, (n_frames,
                                                                                  STATIONS))
        stations = xr.Dataset(
            {"air_temperature": (("time", "station"), temp, {"units": "degC"}),
             "relative_humidity": (("time", "station"), np.clip(70 - 2 * (temp - 20), 5, 100),
                                   {"units": "%"})},
            coords={"time": times, "station": [f"s{i}" for i in range(STATIONS)],
                    "lat": ("station", rng.uniform(BBOX[0] + 1, BBOX[1] - 1, STATIONS)),
                    "lon": ("station", rng.uniform(BBOX[2] + 1, BBOX[3] - 1, STATIONS)),
                    "elevation": ("station", rng.uniform(0, 500, STATIONS))})
        write_stations(stations, paths["stations"])
    blocks = [min(BLOCK, n_frames - s) for s in range(0, n_frames, BLOCK)]
    cube = dsa.map_blocks(lambda block, block_info=None: _frames(
        block_info[None]["array-location"][0][0], block.shape[0]),
        dsa.zeros((n_frames, CHANNELS, SIZE, SIZE), chunks=(tuple(blocks), CHANNELS, SIZE, SIZE),
                  dtype=np.float32), dtype=np.float32)
    satellite = xr.DataArray(cube, dims=("time", "channel", "lat", "lon"),
                             coords={"time": times, "channel": [f"ir{i + 1}" for i in
                                                                range(CHANNELS)],
                                     "lat": lat, "lon": lon},
                             name="brightness_temperature", attrs={"units": "K"})
    for fmt in formats:
        path = out / f"archive_{n_frames}.{'zarr' if fmt == 'zarr' else 'nc'}"
        if not path.exists():
            partial = path.with_name("partial_" + path.name)  # renamed once complete
            write_satellite(satellite, partial)  # one frame per chunk, zlib (nc) / zstd (zarr)
            partial.rename(path)
        paths[fmt] = path
    return paths


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(stations: str, satellite: str, batches: int, fit_steps: int) -> None:
    """The measured process: datamodule setup, loader iteration, a short fit."""
    import lightning as L

    from vnnet import Forecaster
    from vnnet.data import WeatherDataModule
    from vnnet.models import VNNet

    phases: dict[str, dict[str, float]] = {"imports": {"peak_mib": _peak_mib(), "s": 0.0}}
    start = time.perf_counter()

    def mark(name: str) -> None:
        phases[name] = {"peak_mib": _peak_mib(), "s": time.perf_counter() - start}

    dm = WeatherDataModule(stations=stations, satellite=satellite, target="air_temperature",
                           n_his=12, n_pred=12, batch_size=16, num_workers=0)
    dm.setup("fit")
    mark("setup")  # open, validate, align frames, fit the image scaler on the training frames
    seen, loader = 0, dm.train_dataloader()
    while seen < batches:  # a short archive has fewer batches per epoch: go round again
        for batch in loader:
            assert batch.images is not None and batch.images.shape[-1] == SIZE
            seen += 1
            if seen == batches:
                break
    mark("batches")
    model = VNNet(dm.description(), hidden=8, vision={"stem_channels": 4, "n_queries": 2})
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1,
                        limit_train_batches=fit_steps, limit_val_batches=2,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Forecaster(model), dm)
    mark("fit")
    print("RESULT " + json.dumps({"phases": phases, "batches": seen,
                                  "train_windows": len(dm.windows("train"))}))


def measure(stations: Path, satellite: Path, batches: int, fit_steps: int, log: Path) -> dict:
    """Run ``child`` in a fresh process: its phase peaks, and its ru_maxrss from wait4."""
    cmd = [sys.executable, "-m", "benchmarks.archive_memory", "--child", str(stations),
           str(satellite), "--batches", str(batches), "--fit-steps", str(fit_steps)]
    start = time.perf_counter()
    with open(log, "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed, see {log}:\n{log.read_text()[-3000:]}")
    result = json.loads(next(line[7:] for line in out.splitlines()
                             if line.startswith("RESULT ")))
    result["wall_s"] = time.perf_counter() - start
    result["process_peak_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    return result


def table(rows: list[dict], command: str) -> str:
    """Peak RSS (ru_maxrss, MiB) after each phase of the child, and its timings."""
    lines = [f"Command: `{command}`", "",
             "| frames | format | archive on disk | peak RSS after imports | + setup (image "
             "scaler fit) | + training batches | + fit | whole process | setup s | s / batch "
             "| fit s |", "|" + "---|" * 11]
    for r in rows:
        p = r["phases"]
        lines.append(
            f"| {r['frames']:,} | {r['format']} | {r['disk_mib']:,.0f} MiB | "
            f"{p['imports']['peak_mib']:,.0f} MiB | {p['setup']['peak_mib']:,.0f} MiB | "
            f"{p['batches']['peak_mib']:,.0f} MiB ({r['batches']}) | "
            f"{p['fit']['peak_mib']:,.0f} MiB | **{r['process_peak_mib']:,.0f} MiB** | "
            f"{p['setup']['s']:.1f} | "
            f"{(p['batches']['s'] - p['setup']['s']) / r['batches']:.2f} | "
            f"{p['fit']['s'] - p['batches']['s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--formats", nargs="+", choices=["zarr", "netcdf"],
                        default=["zarr", "netcdf"])
    parser.add_argument("--out", default="runs/archive_memory")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--fit-steps", type=int, default=10)
    parser.add_argument("--child", nargs=2, metavar=("STATIONS", "SATELLITE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, batches=args.batches, fit_steps=args.fit_steps)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.write_only:
        for n in args.frames:
            write_archive(n, out, args.formats)
        return
    rows = []
    for n in args.frames:
        # This process stays small (no torch / xarray imported): a child's ru_maxrss starts
        # from its parent's resident size at fork (Linux keeps the pre-exec high-water mark).
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmarks.archive_memory", "--write-only",
                        "--frames", str(n), "--out", str(out), "--formats", *args.formats],
                       check=True)
        paths = {"stations": out / f"stations_{n}.nc",
                 **{f: out / f"archive_{n}.{'zarr' if f == 'zarr' else 'nc'}"
                    for f in args.formats}}
        print(f"{n} frames written/found in {time.perf_counter() - t0:.0f} s", flush=True)
        for fmt in args.formats:
            result = measure(paths["stations"], paths[fmt], args.batches, args.fit_steps,
                             out / f"child_{n}_{fmt}.log")
            rows.append({"frames": n, "format": fmt, "disk_mib": _disk_bytes(paths[fmt]) / 2**20,
                         **result})
            print(json.dumps(rows[-1]), flush=True)
    command = "OMP_NUM_THREADS=1 python -m benchmarks.archive_memory " + shlex.join(
        sys.argv[1:])
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    md = table(rows, command)
    (out / "results.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
