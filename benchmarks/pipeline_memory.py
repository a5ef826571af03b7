"""Is the pipeline's resident memory the cube's or the station record's?

Writes a station record and a Himawari-layout cube of ``--frames`` hours (``--size`` pixels,
small by default: only the record length matters here), then in a fresh process per case runs
``benchmarks.pipeline.measure_pipeline`` (the ``WeatherDataModule`` training loader, no
workers, batch 16) with and without the satellite and prints the process's peak resident
memory (``VmHWM``):

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[2000, 40000])
    parser.add_argument("--size", type=int, default=8, help="frame size in pixels")
    parser.add_argument("--stations", type=int, default=60)
    parser.add_argument("--tmp", default=None, help="parent folder for the inputs")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from benchmarks.pipeline import measure_pipeline, write_inputs

    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure_pipeline(spec["frames"], args.size, workers=0, batches=40,
                                          batch_size=16, n_stations=args.stations,
                                          folder=spec["folder"], satellite=spec["satellite"])))
        return

    root = Path(tempfile.mkdtemp(prefix="vnnet_pipe_mem_", dir=args.tmp))
    print("| record hours | satellite | peak RSS MiB (after imports) |\n|---|---|---|")
    try:
        for frames in args.frames:
            folder = root / str(frames)
            write_inputs(folder, frames=frames, size=args.size, n_stations=args.stations)
            for satellite in (False, True):
                spec = json.dumps({"folder": str(folder), "frames": frames,
                                   "satellite": satellite})
                out = subprocess.run([sys.executable, "-m", "benchmarks.pipeline_memory",
                                      "--child", spec], capture_output=True, text=True,
                                     check=True, cwd=Path(__file__).parents[1])
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"| {frames:,} | {'yes' if satellite else 'no'} | "
                      f"{r['peak_mib_main']:,.0f} ({r['peak_mib_imports']:,.0f}) |", flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
