"""``vnnet reproduce``: a tiny grid runs, resumes without redoing cells, and tabulates."""

import csv
import json

import pytest
import yaml

from vnnet.cli import main
from vnnet.reproduce import format_table, load_grid, summarise

TINY = ("--data.synthetic.n_stations 5 --data.synthetic.n_days 5 "
        "--data.synthetic.image_size 16 --data.n_his 6 --data.n_pred 3 --data.batch_size 8 "
        "--trainer.limit_train_batches 2 --trainer.limit_val_batches 1 --trainer.logger false")


def write_grid(path, **extra):
    grid = {
        "epochs": 1, "seeds": [0, 1], "leads": [1, 3],
        "regions": {"tiny": TINY},
        "targets": {"temperature": ["--data.target", "air_temperature"]},
        "models": {
            "persistence": {"config": "configs/nnet_quickstart.yaml",
                            "args": ["--model.model", "vnnet.models.Persistence"],
                            "fit": False},
            "N-Net": {"config": "configs/nnet_quickstart.yaml",
                      "args": "--model.model.init_args.hidden 8"},
        },
        **extra,
    }
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_grid_runs_resumes_and_writes_the_table(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml")
    out = tmp_path / "out"
    main(["reproduce", "--grid", str(grid), "--out", str(out), "--progress", "false"])
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["model"], r["seed"]) for r in rows] == [
        ("persistence", "0"), ("persistence", "1"), ("N-Net", "0"), ("N-Net", "1")]
    assert all(float(r["test/mae"]) > 0 for r in rows)
    # Persistence has no randomness: both seeds give the same figures.
    assert rows[0]["test/mae"] == rows[1]["test/mae"]
    table = (out / "table.md").read_text()
    assert "| persistence |" in table and "| N-Net |" in table
    assert "temperature MAE 3h" in table and "±" in table and "**" in table

    # A second call finds every cell finished: nothing is trained again.
    results = sorted(out.rglob("result.json"))
    stamps = [p.stat().st_mtime_ns for p in results]
    main(["reproduce", "--grid", str(grid), "--out", str(out), "--progress", "false"])
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert "wrote" in capsys.readouterr().out


def test_parallel_cells_give_the_serial_results(tmp_path, capsys):
    """--jobs 2 trains two cells at once in spawned processes, with the serial figures."""
    grid = write_grid(tmp_path / "grid.yaml")
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    main(["reproduce", "--grid", str(grid), "--out", str(serial), "--progress", "false"])
    main(["reproduce", "--grid", str(grid), "--out", str(parallel), "--progress", "false",
          "--jobs", "2"])
    a, b = (list(csv.DictReader((d / "results.csv").open())) for d in (serial, parallel))
    assert [(r["model"], r["seed"]) for r in a] == [(r["model"], r["seed"]) for r in b]
    for x, y in zip(a, b, strict=True):  # thread counts differ: equal up to float rounding
        assert float(y["test/mae"]) == pytest.approx(float(x["test/mae"]), rel=1e-4)
    with pytest.raises(SystemExit):
        main(["reproduce", "--grid", str(grid), "--out", str(parallel), "--jobs", "0"])
    assert "jobs must be a positive integer" in capsys.readouterr().err


def test_summary_and_table_by_hand():
    results = [
        {"region": "r", "target": "t", "model": "A", "seed": s,
         "metrics": {"test/mae": v, "test/rmse": v + 1, "test/mae_h1": v, "test/rmse_h1": v}}
        for s, v in ((0, 1.0), (1, 3.0))
    ] + [{"region": "r", "target": "t", "model": "B", "seed": 0,
          "metrics": {"test/mae": 1.5, "test/rmse": 2.0, "test/mae_h1": 1.5,
                      "test/rmse_h1": 1.5}}]
    summary = summarise(results)
    mean, std, n = summary[("r", "t", "A")]["test/mae"]
    assert (mean, n) == (2.0, 2) and std == pytest.approx(2 ** 0.5)  # sample std of 1 and 3
    table = format_table(summary, [1])
    row_a = next(line for line in table.splitlines() if line.startswith("| A |"))
    row_b = next(line for line in table.splitlines() if line.startswith("| B |"))
    assert "2.000 ± 1.414" in row_a and "**1.500**" in row_b  # B has the best mean MAE


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"models": {"X": {"config": "nope.yaml"}}}, "config file nope.yaml does not exist"),
    ({"models": {"X": {"args": []}}}, "needs a mapping with a 'config'"),
    ({"regions": {}}, "'regions' must be a non-empty mapping"),
    ({"model": {}}, "unknown keys"),
])
def test_bad_grids_are_named(tmp_path, change, message):
    path = tmp_path / "grid.yaml"
    write_grid(path)
    grid = yaml.safe_load(path.read_text())
    grid.update(change)
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    with pytest.raises(ValueError, match=message):
        load_grid(path)


def test_cli_reports_a_bad_grid(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "--grid", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)])
    assert exit_info.value.code != 0
    assert "does not exist" in capsys.readouterr().err


def test_result_files_are_plain_json(tmp_path):
    grid = load_grid(write_grid(tmp_path / "grid.yaml"))
    assert len(grid.cells) == 4
    cell = grid.cells[0]
    assert cell.folder(tmp_path).parts[-4:] == ("tiny", "temperature", "persistence", "seed0")
    json.dumps([c.args for c in grid.cells])  # arguments are plain strings


@pytest.mark.parametrize(("path", "n_models"), [("configs/grids/synthetic.yaml", 9),
                                               ("configs/grids/weather2k.yaml", 9),
                                               ("configs/grids/paper_vs_official.yaml", 3)])
def test_shipped_grids_parse(path, n_models):
    grid = load_grid(path)
    assert grid.cells and len({c.model for c in grid.cells}) >= n_models
