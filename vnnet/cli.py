"""The ``vnnet`` command line: LightningCLI for fit / validate / test / predict, plus data tools.

``vnnet fit --config configs/quickstart.yaml`` trains; ``vnnet test`` prints and writes the
metrics table; ``vnnet predict`` writes netCDF forecasts. The datamodule's description
(stations, variables, scalers, graph, image grid) is linked into the model's ``data``
argument, so the YAML holds only what a user chooses.
``vnnet data synthetic --out DIR`` writes the synthetic world (stations.nc, satellite.nc);
``vnnet data describe PATH`` summarises a station or satellite file;
``vnnet data convert --observations CSV --stations CSV --out FILE ...`` converts station CSVs
(column mapping and units as arguments or ``--config YAML``); ``vnnet data aimsir17 --out FILE``
writes the aimsir17 real observations;
``vnnet reproduce --grid GRID.yaml --out DIR`` runs a grid of trainings into the paper's tables
(``vnnet.reproduce``); ``vnnet plot lead|map|frame ... --out FIG.png`` draws figures
(``vnnet.cli_plot``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from vnnet.data.datamodule import WeatherDataModule
from vnnet.data.readers import (
    open_satellite,
    open_stations,
    read_aimsir17,
    read_stations_csv,
    write_satellite,
    write_stations,
)
from vnnet.data.schema import describe_stations
from vnnet.data.synthetic import synthetic_world
from vnnet.forecaster import Forecaster
from vnnet.predict import NetCDFPredictionWriter
from vnnet.runtime import use_caching_allocator


def describe_data(datamodule: WeatherDataModule) -> dict[str, Any]:
    return datamodule.description()


class VNNetCLI(LightningCLI):
    """LightningCLI with vnnet's links and the official protocol's defaults."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data", "model.model.init_args.data", compute_fn=describe_data,
                              apply_on="instantiate")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(NetCDFPredictionWriter, "prediction_writer")
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after 'fit', test the best checkpoint and print the table")
        parser.add_argument("--cpu_caching_allocator", type=bool, default=True,
                            help="reuse freed CPU tensor memory between steps instead of "
                            "returning it to the system (vnnet.runtime.use_caching_allocator)")
        parser.set_defaults({
            "early_stopping.monitor": "val/mae", "early_stopping.mode": "min",
            "early_stopping.patience": 15,
            "checkpoint.monitor": "val/mae", "checkpoint.mode": "min",
            "checkpoint.save_last": True, "checkpoint.filename": "best-{epoch:03d}",
            "trainer.gradient_clip_val": 1.0, "trainer.max_epochs": 100,
            # Deterministic kernels wherever PyTorch has them (a warning where it has not):
            # the same command and seed give the same weights (benchmarks/RESULTS.md).
            "trainer.deterministic": "warn",
        })

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("cpu_caching_allocator", False):
            use_caching_allocator()

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        super()._add_subcommands(parser, **kwargs)
        # vnnet prints its own compact lead-time table; Lightning's long one is opt-in.
        for name in ("validate", "test"):
            self._subcommand_parsers[name].set_defaults(verbose=False)

    def after_fit(self) -> None:
        if self.config[self.subcommand].get("test_after_fit", False) and \
                not self.trainer.fast_dev_run:
            # The val/mae checkpoint, not trainer.checkpoint_callback: that is the first of
            # several (e.g. a --trainer.callbacks ModelCheckpoint for mid-epoch snapshots).
            best = self.config_init[self.subcommand].get("checkpoint")
            ckpt = best.best_model_path if best is not None and best.best_model_path else None
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt,
                              verbose=False)


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
    commands.add_subcommand("convert", _convert_parser(), help="station CSVs -> netCDF / zarr")
    aimsir17 = ArgumentParser(description="Write the aimsir17 observations (25 Irish stations, "
                              "2017, CC BY 4.0 Met Éireann) as a contract station file.")
    aimsir17.add_argument("--out", type=str, required=True, help=".nc or .zarr file to write")
    aimsir17.add_argument("--folder", type=str | None, default=None, help="the aimsir17 "
                          "folder (default: $VNNET_AIMSIR17, else ../shared/data/aimsir17 "
                          "beside the checkout)")
    commands.add_subcommand("aimsir17", aimsir17, help="write the aimsir17 real observations")
    return parser


def _convert_parser() -> ArgumentParser:
    """``vnnet data convert``: the arguments of ``read_stations_csv`` plus ``--out``."""
    parser = ArgumentParser(description="Convert a long-format observation CSV (.csv or "
                            ".csv.gz) and a station table into a contract station file (.nc or "
                            ".zarr), converting units to the catalogue's.")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with these "
                        "arguments, e.g. configs/aimsir17/convert.yaml")
    parser.add_argument("--observations", type=str, required=True, help="observation CSV: one "
                        "row per station and time, one column per variable")
    parser.add_argument("--stations", type=str, required=True, help="station table CSV: id, "
                        "latitude, longitude (deg), elevation (m)")
    parser.add_argument("--out", type=str, required=True, help=".nc or .zarr file to write")
    parser.add_argument("--time_column", type=str, default="time")
    parser.add_argument("--station_column", type=str, default="station",
                        help="station id column, in both files")
    parser.add_argument("--variables", type=dict[str, str] | None, default=None,
                        help="source column -> CF variable name, e.g. "
                        "'{\"wdsp\": \"wind_speed\"}'; only mapped columns are read (default: "
                        "every column, as named)")
    parser.add_argument("--units", type=dict[str, str] | None, default=None,
                        help="source units by column or variable, e.g. '{\"wdsp\": \"knots\"}'; "
                        "converted to the catalogue's units")
    parser.add_argument("--station_columns", type=dict[str, str] | None, default=None,
                        help="station table column -> lat / lon / elevation, e.g. "
                        '\'{"latitude": "lat", "longitude": "lon", "height": "elevation"}\'')
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
    elif cfg.data_command in ("convert", "aimsir17"):
        args = cfg[cfg.data_command]
        if cfg.data_command == "convert":
            stations = read_stations_csv(
                args.observations, args.stations, variables=args.variables, units=args.units,
                time_column=args.time_column, station_column=args.station_column,
                station_columns=args.station_columns)
        else:
            stations = read_aimsir17(args.folder)
        write_stations(stations, args.out)
        print(describe_stations(stations))
        print(f"wrote {args.out}")
    elif cfg.data_command == "describe":
        args = cfg.describe
        if args.kind == "stations":
            print(describe_stations(open_stations(args.path)))
        else:
            sat = open_satellite(args.path)
            print(f"satellite: {dict(sat.sizes)} [{sat.attrs['units']}], "
                  f"{sat.time.values[0]} .. {sat.time.values[-1]}")


def _reproduce_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vnnet reproduce", description="Run a grid of regions x "
                            "targets x models x seeds (finished cells are skipped) and write "
                            "results.csv and table.md in the paper's layout.")
    parser.add_argument("--grid", type=str, required=True, help="grid YAML, e.g. "
                        "configs/grids/synthetic.yaml")
    parser.add_argument("--out", type=str, required=True, help="output directory")
    parser.add_argument("--progress", type=bool, default=True, help="show a progress bar")
    parser.add_argument("--jobs", type=int, default=1, help="cells trained at once, each in "
                        "its own process with cpu_count / jobs threads (2 on a 2-core machine "
                        "finishes the default grid sooner)")
    return parser


def _grid_cli(args: list[str]) -> VNNetCLI:
    """A not-yet-run VNNetCLI for one grid cell (module level, so worker processes can use it)."""
    return VNNetCLI(Forecaster, WeatherDataModule, run=False, args=args,
                    save_config_kwargs={"overwrite": True})


def _run_reproduce(argv: list[str]) -> None:
    from vnnet.reproduce import load_grid, run_grid

    parser = _reproduce_parser()
    cfg = parser.parse_args(argv)
    try:
        grid = load_grid(cfg.grid)
        run_grid(grid, cfg.out, make_cli=_grid_cli, progress=cfg.progress, jobs=cfg.jobs)
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("VNNET_DEBUG"):
            raise
        parser.error(str(err))
    print((Path(cfg.out) / "table.md").read_text())
    print(f"wrote {Path(cfg.out) / 'results.csv'} and {Path(cfg.out) / 'table.md'}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vnnet`` console script."""
    cli_args = None if argv is None else list(argv)  # None: LightningCLI reads sys.argv
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "data":
        parser = _data_parser()
        parser.prog = "vnnet data"
        cfg = parser.parse_args(argv[1:])
        try:
            _run_data(cfg)
        except (ValueError, FileNotFoundError) as err:
            parser.error(str(err))
        return
    if argv and argv[0] == "reproduce":
        _run_reproduce(argv[1:])
        return
    if argv and argv[0] == "plot":
        from vnnet.cli_plot import plot_parser, run_plot

        parser = plot_parser()
        cfg = parser.parse_args(argv[1:])
        try:
            print(f"wrote {run_plot(cfg)}")
        except (ValueError, FileNotFoundError) as err:
            parser.error(str(err))
        return
    try:
        VNNetCLI(Forecaster, WeatherDataModule, seed_everything_default=2023, args=cli_args,
                 save_config_kwargs={"overwrite": True},
                 parser_kwargs={"description": "vnnet: station + satellite weather forecasting "
                                "(VN-Net, arXiv 2404.16037). Extra: 'vnnet data --help'."})
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("VNNET_DEBUG"):
            raise
        # Errors raised while the data is described for the model come wrapped by
        # jsonargparse ("Call to compute_fn of link ... failed: ..."): show the cause.
        cause = err.__cause__
        if str(err).startswith("Call to compute_fn") and isinstance(cause, ValueError | OSError):
            err = cause
        sys.exit(f"vnnet: error: {err}")


if __name__ == "__main__":
    main()
