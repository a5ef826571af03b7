"""Is the pipeline's resident memory the cube's or the station record's?

Writes a station record and a Himawari-layout cube of ``--frames`` hours (``--size`` pixels,
small by default: only the record length matters here), then in a fresh process per case sets
up the ``WeatherDataModule`` with and without the satellite, draws 40 shuffled training
batches and prints the process's peak resident memory (``VmHWM``):

    python -m benchmarks.pipeline_memory --frames 2000 40000 --tmp /tmp/pipe_mem

Equal figures with and without the satellite mean the cube adds nothing and what grows with
the record length is the station table (benchmarks/RESULTS.md, issue 6).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def child(folder: Path, satellite: bool) -> dict[str, float]:
    import torch

    from benchmarks.perf import peak_rss_mib
    from vnnet.data.datamodule import WeatherDataModule

    torch.set_num_threads(1)
    imports = peak_rss_mib()
    extra = dict(satellite=str(folder / "cube.npy"), satellite_region="NE",
                 image_range=([150.0] * 6, [350.0] * 6)) if satellite else \
        dict(use_satellite=False)
    dm = WeatherDataModule(stations=str(folder / "stations.npy"),
                           stations_lonlat=str(folder / "lonlat.npy"), target="air_temperature",
                           split=(0.7, 0.1, 0.2), batch_size=16, num_workers=0, **extra)
    dm.setup("fit")
    batches = iter(dm.train_dataloader())
    for _ in range(40):
        next(batches)
    return {"imports_mib": imports, "peak_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[2000, 40000])
    parser.add_argument("--size", type=int, default=8, help="frame size in pixels")
    parser.add_argument("--stations", type=int, default=60)
    parser.add_argument("--tmp", default=None, help="parent folder for the inputs")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(Path(spec["folder"]), spec["satellite"])))
        return

    from benchmarks.pipeline import write_inputs

    root = Path(tempfile.mkdtemp(prefix="vnnet_pipe_mem_", dir=args.tmp))
    print("| record hours | satellite | peak RSS MiB (after imports) |\n|---|---|---|")
    try:
        for frames in args.frames:
            folder = root / str(frames)
            write_inputs(folder, frames=frames, size=args.size, n_stations=args.stations)
            for satellite in (False, True):
                spec = json.dumps({"folder": str(folder), "satellite": satellite})
                out = subprocess.run([sys.executable, "-m", "benchmarks.pipeline_memory",
                                      "--child", spec], capture_output=True, text=True,
                                     check=True, cwd=Path(__file__).parents[1])
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"| {frames:,} | {'yes' if satellite else 'no'} | "
                      f"{r['peak_mib']:,.0f} ({r['imports_mib']:,.0f}) |", flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
