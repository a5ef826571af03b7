"""``vnnet plot``: each figure command writes a PNG; bad arguments are named."""

import json

import pandas as pd
import pytest

from vnnet.cli import main
from vnnet.data.readers import write_satellite, write_stations
from vnnet.data.synthetic import synthetic_world


def metrics(scale):
    return {**{f"test/mae_h{k}": scale * k for k in (1, 2, 3)},
            **{f"test/rmse_h{k}": scale * k + 0.1 for k in (1, 2, 3)},
            "test/mae": 2 * scale, "test/rmse": 2 * scale + 0.1}


def test_plot_lead_from_results_csv_and_metrics_files(tmp_path, capsys):
    rows = [{"region": "r", "target": "t", "model": m, "seed": s, **metrics(v + s)}
            for m, v in (("A", 1.0), ("B", 2.0)) for s in (0, 1)]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    main(["plot", "lead", "--results", str(tmp_path / "results.csv"), "--out",
          str(tmp_path / "lead.png")])
    assert (tmp_path / "lead.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out
    for name, scale in (("a", 1.0), ("b", 2.0)):
        (tmp_path / f"{name}.json").write_text(json.dumps(metrics(scale)))
    main(["plot", "lead", "--metrics", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
          "--labels", "A", "B", "--out", str(tmp_path / "lead2.png")])
    assert (tmp_path / "lead2.png").is_file()


def test_plot_frame_and_bad_arguments(tmp_path, capsys):
    stations, satellite = synthetic_world(n_stations=4, n_days=2, image_size=16, n_channels=2)
    write_stations(stations, tmp_path / "stations.nc")
    write_satellite(satellite, tmp_path / "satellite.nc")
    main(["plot", "frame", "--satellite", str(tmp_path / "satellite.nc"), "--stations",
          str(tmp_path / "stations.nc"), "--time", "3", "--channel", "ir2", "--out",
          str(tmp_path / "frame.png")])
    assert (tmp_path / "frame.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["plot", "lead", "--out", str(tmp_path / "x.png")])
    assert "either --results" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plot", "frame", "--satellite", str(tmp_path / "satellite.nc"), "--channel",
              "ir9", "--out", str(tmp_path / "y.png")])
    assert "ir9" in capsys.readouterr().err
