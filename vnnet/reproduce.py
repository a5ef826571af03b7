"""``vnnet reproduce``: the paper's MAE/RMSE tables from a grid of training runs.

A grid YAML names regions, targets, models and seeds; every combination is a *cell*, trained
through the same LightningCLI path as ``vnnet fit`` (best-validation checkpoint, then test)
and stored as ``DIR/cells/<region>/<target>/<model>/seed<k>/result.json``. Finished cells are
skipped on the next call, so a long grid survives interruptions. From all finished cells it
writes ``DIR/results.csv`` (one row per cell) and ``DIR/table.md``: per region a row per
model and, per target, MAE and RMSE at 3, 6 and 12 h and over all lead hours, mean +- std
over seeds, the best mean in each column in bold (the layout of VN-Net's Tables 2-4).

Grid file::

    epochs: 12                      # trainer.max_epochs of every fitted cell
    seeds: [0, 1, 2]
    leads: [3, 6, 12]               # optional, the lead hours of the table
    regions:                        # name -> CLI arguments that choose the data
      synthetic: []
    targets:                        # name -> CLI arguments that choose the target
      temperature: [--data.target, air_temperature]
    models:                         # name -> base config, extra arguments, fit or test only
      persistence: {config: configs/nnet_quickstart.yaml,
                    args: [--model.model, vnnet.models.Persistence], fit: false}
      VN-Net: {config: configs/quickstart.yaml}
    args: []                        # optional, appended to every cell

Arguments may be a list or one string (split like a shell). Later arguments win, in the
order config, region, target, model, grid ``args``, then the cell's seed, epochs and folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.cli import LightningCLI

MakeCLI = Callable[[list[str]], LightningCLI]

__all__ = ["Cell", "Grid", "load_grid", "run_grid", "summarise", "format_table"]


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    region: str
    target: str
    model: str
    seed: int
    config: str
    args: tuple[str, ...]
    fit: bool

    def folder(self, out: Path) -> Path:
        parts = (self.region, self.target, self.model, f"seed{self.seed}")
        return out / "cells" / Path(*(_slug(p) for p in parts))


@dataclass
class Grid:
    """A parsed grid file: the cells to run and how to report them."""

    cells: list[Cell]
    epochs: int
    leads: list[int] = field(default_factory=lambda: [3, 6, 12])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


def _args(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
    raise ValueError(f"{where}: expected a list of CLI arguments or one string, got {value!r}")


def _named(grid: dict[str, Any], key: str) -> dict[str, Any]:
    value = grid.get(key)
    if not isinstance(value, dict) or not value:
        raise ValueError(f"grid: '{key}' must be a non-empty mapping of name -> settings, "
                         f"got {value!r}")
    return value


def load_grid(path: str | os.PathLike[str]) -> Grid:
    """Read and check a grid YAML (see the module docstring for its keys)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"grid file {path} does not exist")
    grid = yaml.safe_load(path.read_text())
    if not isinstance(grid, dict):
        raise ValueError(f"grid file {path} must hold a mapping, got {type(grid).__name__}")
    known = {"epochs", "seeds", "leads", "regions", "targets", "models", "args"}
    unknown = sorted(set(grid) - known)
    if unknown:
        raise ValueError(f"grid file {path}: unknown keys {unknown}; expected {sorted(known)}")
    epochs = grid.get("epochs", 12)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"grid: epochs must be a positive integer, got {epochs!r}")
    seeds = grid.get("seeds", [2023])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"grid: seeds must be a non-empty list of integers, got {seeds!r}")
    leads = grid.get("leads", [3, 6, 12])
    if not isinstance(leads, list) or not all(isinstance(h, int) and h >= 1 for h in leads):
        raise ValueError(f"grid: leads must be a list of positive integers, got {leads!r}")
    common = _args(grid.get("args"), "grid args")
    regions, targets = _named(grid, "regions"), _named(grid, "targets")
    cells = []
    for model, spec in _named(grid, "models").items():
        if not isinstance(spec, dict) or "config" not in spec:
            raise ValueError(f"grid: model {model!r} needs a mapping with a 'config' file")
        extra = set(spec) - {"config", "args", "fit"}
        if extra:
            raise ValueError(f"grid: model {model!r} has unknown keys {sorted(extra)}; "
                             f"expected config, args, fit")
        config = str(spec["config"])
        if not Path(config).is_file():
            raise ValueError(f"grid: model {model!r}: config file {config} does not exist")
        for region, region_args in regions.items():
            for target, target_args in targets.items():
                args = (_args(region_args, f"region {region!r}")
                        + _args(target_args, f"target {target!r}")
                        + _args(spec.get("args"), f"model {model!r}") + common)
                cells += [Cell(str(region), str(target), str(model), seed, config, tuple(args),
                               bool(spec.get("fit", True))) for seed in seeds]
    return Grid(cells, epochs, leads)


def run_cell(cell: Cell, out: Path, epochs: int, make_cli: MakeCLI) -> dict[str, Any]:
    """Train (or only test) one cell and store its test metrics in ``result.json``.

    ``make_cli(args)`` builds the (not yet run) LightningCLI from command-line arguments;
    ``vnnet.cli`` passes its ``VNNetCLI``, so a cell trains exactly like ``vnnet fit``.
    """
    folder = cell.folder(out)
    args = ["--config", cell.config, *cell.args, "--seed_everything", str(cell.seed),
            "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(folder),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    with warnings.catch_warnings():
        # The grid's own command line is in sys.argv; the cell's arguments are given in full.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = make_cli(args)
    start = time.perf_counter()
    if cell.fit:
        cli.trainer.fit(cli.model, cli.datamodule)
        ckpt = "best" if cli.trainer.checkpoint_callback.best_model_path else None
        cli.trainer.test(cli.model, cli.datamodule, ckpt_path=ckpt, verbose=False)
    else:
        cli.trainer.test(cli.model, cli.datamodule, verbose=False)
    result = {"region": cell.region, "target": cell.target, "model": cell.model,
              "seed": cell.seed, "seconds": time.perf_counter() - start,
              "metrics": cli.model.test_results}
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(folder / "result.json")  # atomic: a killed run leaves no half-written result
    return result


def _set_threads(threads: int) -> None:
    """Worker initialiser: this many intra-op threads per parallel cell."""
    import torch

    torch.set_num_threads(threads)


def run_grid(grid: Grid, out: str | os.PathLike[str], make_cli: MakeCLI,
             progress: bool = True, jobs: int = 1) -> list[dict[str, Any]]:
    """Run every unfinished cell, then write ``results.csv`` and ``table.md`` under ``out``.

    ``jobs > 1`` trains that many cells at once, each in its own (spawned) process with
    ``cpu_count // jobs`` torch threads: small models use two single-threaded processes
    better than one two-threaded one. ``make_cli`` must then be picklable (a module-level
    function). Cells are independent and each writes its own folder, so results are the same
    as with ``jobs=1`` up to the run-to-run nondeterminism of multi-threaded kernels.
    """
    from tqdm.auto import tqdm

    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    out = Path(out)
    todo = [c for c in grid.cells if not (c.folder(out) / "result.json").is_file()]
    bar = tqdm(total=len(grid.cells), initial=len(grid.cells) - len(todo), unit="cell",
               desc="vnnet reproduce", disable=not progress)
    for cell in todo:
        cell.folder(out).mkdir(parents=True, exist_ok=True)
    if jobs == 1:
        for cell in todo:
            bar.set_postfix_str(f"{cell.region}/{cell.target}/{cell.model}/seed{cell.seed}")
            run_cell(cell, out, grid.epochs, make_cli)
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_set_threads, initargs=(threads,)) as pool:
            futures = {pool.submit(run_cell, c, out, grid.epochs, make_cli): c for c in todo}
            for future in as_completed(futures):
                cell = futures[future]
                future.result()  # a failed cell stops the grid with its own error
                bar.set_postfix_str(f"{cell.model}/seed{cell.seed} done")
                bar.update()
    bar.close()
    results = [json.loads((c.folder(out) / "result.json").read_text()) for c in grid.cells]
    write_csv(results, out / "results.csv")
    (out / "table.md").write_text(format_table(summarise(results), grid.leads) + "\n")
    return results


def write_csv(results: list[dict[str, Any]], path: Path) -> None:
    """One row per cell: region, target, model, seed, seconds and every test metric."""
    keys = sorted({k for r in results for k in r["metrics"]})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["region", "target", "model", "seed", "seconds", *keys])
        for r in results:
            writer.writerow([r["region"], r["target"], r["model"], r["seed"],
                             f"{r['seconds']:.1f}",
                             *(r["metrics"].get(k, float("nan")) for k in keys)])


def summarise(results: list[dict[str, Any]]
              ) -> dict[tuple[str, str, str], dict[str, tuple[float, float, int]]]:
    """(region, target, model) -> metric -> (mean, std over seeds, number of seeds).

    std is the sample standard deviation (ddof 1); 0 for a single seed.
    """
    groups: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for r in results:
        groups.setdefault((r["region"], r["target"], r["model"]), []).append(r["metrics"])
    summary = {}
    for key, runs in groups.items():
        stats = {}
        for metric in runs[0]:
            values = [run[metric] for run in runs if metric in run]
            mean = sum(values) / len(values)
            var = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)
                   if len(values) > 1 else 0.0)
            stats[metric] = (mean, math.sqrt(var), len(values))
        summary[key] = stats
    return summary


def format_table(summary: dict[tuple[str, str, str], dict[str, tuple[float, float, int]]],
                 leads: list[int]) -> str:
    """Markdown, one table per region: a row per model, per target MAE/RMSE columns."""
    columns = [(f"{m.upper()} {h}h", f"test/{m}_h{h}") for h in leads for m in ("mae", "rmse")]
    columns += [("MAE avg", "test/mae"), ("RMSE avg", "test/rmse")]
    blocks = []
    for region in dict.fromkeys(k[0] for k in summary):
        targets = list(dict.fromkeys(k[1] for k in summary if k[0] == region))
        models = list(dict.fromkeys(k[2] for k in summary if k[0] == region))
        header = ["model"] + [f"{t} {name}" for t in targets for name, _ in columns]
        rows = [header, ["---"] * len(header)]
        cells: dict[tuple[str, str, str], str] = {}
        for target in targets:
            for _, key in columns:
                means = {m: summary[(region, target, m)][key][0] for m in models
                         if (region, target, m) in summary and key in summary[(region, target, m)]}
                best = min(means.values()) if means else None
                for m, mean in means.items():
                    _, std, n = summary[(region, target, m)][key]
                    text = f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"
                    cells[(target, key, m)] = f"**{text}**" if mean == best else text
        for m in models:
            rows.append([m] + [cells.get((t, key, m), "—") for t in targets for _, key in columns])
        n_seeds = max(s[2] for stats in summary.values() for s in stats.values())
        blocks.append(f"### {region}\n\nmean ± std over {n_seeds} seed(s); best mean in bold\n\n"
                      + "\n".join("| " + " | ".join(r) + " |" for r in rows))
    return "\n\n".join(blocks)
