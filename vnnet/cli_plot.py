"""``vnnet plot``: PNG figures from the files the other commands write.

    vnnet plot lead --results DIR/results.csv --out lead.png      # error by lead, per model
    vnnet plot lead --metrics a/test_metrics.json b/test_metrics.json --labels A B --out x.png
    vnnet plot map --forecast forecast.nc --stations stations.nc --out map.png
    vnnet plot frame --satellite satellite.nc --stations stations.nc --time 0 --out frame.png

Each draws with ``vnnet.plots`` and writes a PNG with ``vnnet.plots.save_figure``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from jsonargparse import ArgumentParser, Namespace

__all__ = ["plot_parser", "run_plot"]


def plot_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vnnet plot", description="Draw a figure and write a PNG.")
    commands = parser.add_subcommands(dest="plot_command")

    lead = ArgumentParser(description="Error by lead hour, one line per model: from a "
                          "'vnnet reproduce' results.csv (mean over seeds) or from "
                          "test_metrics.json files.")
    lead.add_argument("--results", type=str | None, default=None, help="results.csv")
    lead.add_argument("--region", type=str | None, default=None,
                      help="region of results.csv (default: its first)")
    lead.add_argument("--target", type=str | None, default=None,
                      help="target of results.csv (default: its first)")
    lead.add_argument("--metrics", type=str, nargs="+", default=[],
                      help="test_metrics.json files")
    lead.add_argument("--labels", type=str, nargs="+", default=[],
                      help="a label per metrics file")
    lead.add_argument("--metric", type=str, default="mae", help="mae or rmse")
    lead.add_argument("--units", type=str | None, default=None, help="units for the axis label")
    lead.add_argument("--out", type=str, required=True, help="PNG path")
    commands.add_subcommand("lead", lead, help="error by lead hour for several models")

    station_map = ArgumentParser(description="Stations on a map coloured by their MAE over "
                                 "all init and lead times of a forecast file.")
    station_map.add_argument("--forecast", type=str, required=True, help="vnnet predict output")
    station_map.add_argument("--stations", type=str, required=True, help="observations file")
    station_map.add_argument("--variable", type=str | None, default=None,
                             help="forecast variable (default: the first)")
    station_map.add_argument("--out", type=str, required=True, help="PNG path")
    commands.add_subcommand("map", station_map, help="per-station error map")

    frame = ArgumentParser(description="One satellite frame with the stations drawn on it.")
    frame.add_argument("--satellite", type=str, required=True, help=".nc or .zarr cube")
    frame.add_argument("--stations", type=str | None, default=None, help="stations file")
    frame.add_argument("--time", type=str, default="0", help="time index or ISO time")
    frame.add_argument("--channel", type=str, default="0", help="channel index or name")
    frame.add_argument("--out", type=str, required=True, help="PNG path")
    commands.add_subcommand("frame", frame, help="a satellite frame with the stations")
    return parser


def _index_or_label(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def lead_results_from_csv(path: str | Path, region: str | None, target: str | None
                          ) -> dict[str, dict[str, float]]:
    """Per model, the seed-mean test metrics of one region and target of a results.csv."""
    table = pd.read_csv(path)
    for column, value in (("region", region), ("target", target)):
        choices = list(dict.fromkeys(table[column].astype(str)))
        chosen = choices[0] if value is None else value
        if chosen not in choices:
            raise ValueError(f"{column} {chosen!r} is not in {path}; it has {choices}")
        table = table[table[column].astype(str) == chosen]
    metrics = [c for c in table.columns if c.startswith("test/")]
    means = table.groupby("model", sort=False)[metrics].mean()
    return {str(model): row.dropna().to_dict() for model, row in means.iterrows()}


def run_plot(cfg: Namespace) -> Path:
    """Draw the figure ``cfg`` asks for and write it; returns the PNG path."""
    from vnnet import plots

    command = cfg.plot_command
    args = cfg[command]
    if command == "lead":
        if bool(args.results) == bool(args.metrics):
            raise ValueError("give either --results (a results.csv) or --metrics files")
        if args.results:
            results = lead_results_from_csv(args.results, args.region, args.target)
        else:
            labels = args.labels or [Path(p).parent.name for p in args.metrics]
            if len(labels) != len(args.metrics):
                raise ValueError(f"--labels: {len(labels)} labels for {len(args.metrics)} "
                                 f"metrics files")
            results = {label: json.loads(Path(p).read_text())
                       for label, p in zip(labels, args.metrics, strict=True)}
        fig = plots.error_by_lead(results, metric=args.metric, units=args.units)
    elif command == "map":
        import xarray as xr

        from vnnet.analysis import absolute_errors
        from vnnet.data.readers import open_stations

        forecast = xr.open_dataset(args.forecast)
        stations = open_stations(args.stations)
        variable = args.variable or next(iter(forecast.data_vars))
        errors = absolute_errors(forecast, stations, variables=[variable])[variable]
        mae = errors.mean(dim=[d for d in errors.dims if d != "station"])
        mae.attrs["units"] = forecast[variable].attrs.get("units")
        fig = plots.station_error_map(stations, mae, units=mae.attrs["units"],
                                      title=f"{variable}: MAE per station")
    else:
        from vnnet.data.readers import open_satellite, open_stations

        satellite = open_satellite(args.satellite)
        stations = open_stations(args.stations) if args.stations else None
        fig = plots.satellite_frame(satellite, _index_or_label(args.time),
                                    _index_or_label(args.channel), stations=stations)
    return plots.save_figure(fig, args.out)
