"""The ``vnnet`` command line.

``vnnet data synthetic --out DIR`` writes the synthetic world (stations.nc, satellite.nc);
``vnnet data describe PATH`` summarises a station or satellite file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

from vnnet.data.readers import open_satellite, open_stations, write_satellite, write_stations
from vnnet.data.schema import describe_stations
from vnnet.data.synthetic import synthetic_world


def _data_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Make, convert and inspect station / satellite data.")
    commands = parser.add_subcommands(dest="data_command")
    synthetic = ArgumentParser(description="Write the synthetic world (stations.nc, "
                               "satellite.nc) in the canonical schema.")
    synthetic.add_argument("--out", type=str, required=True, help="output directory")
    synthetic.add_function_arguments(synthetic_world, nested_key="world", skip={"progress"})
    commands.add_subcommand("synthetic", synthetic, help="write the synthetic world")
    describe = ArgumentParser(description="Summarise a station or satellite file.")
    describe.add_argument("path", type=str, help=".nc or .zarr file")
    describe.add_argument("--kind", choices=["stations", "satellite"], default="stations")
    commands.add_subcommand("describe", describe, help="summarise a data file")
    return parser


def _run_data(cfg: Namespace) -> None:
    if cfg.data_command == "synthetic":
        args = cfg.synthetic
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stations, satellite = synthetic_world(**args.world.as_dict(), progress=True)
        write_stations(stations, out / "stations.nc")
        write_satellite(satellite, out / "satellite.nc")
        print(describe_stations(stations))
        print(f"satellite: {dict(satellite.sizes)} [{satellite.attrs['units']}]")
        print(f"wrote {out / 'stations.nc'} and {out / 'satellite.nc'}")
    elif cfg.data_command == "describe":
        args = cfg.describe
        if args.kind == "stations":
            print(describe_stations(open_stations(args.path)))
        else:
            sat = open_satellite(args.path)
            print(f"satellite: {dict(sat.sizes)} [{sat.attrs['units']}], "
                  f"{sat.time.values[0]} .. {sat.time.values[-1]}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vnnet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "data":
        sys.exit("usage: vnnet data {synthetic,describe} ...  (see 'vnnet data --help')")
    parser = _data_parser()
    parser.prog = "vnnet data"
    cfg = parser.parse_args(argv[1:])
    try:
        _run_data(cfg)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
