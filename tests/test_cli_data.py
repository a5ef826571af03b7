import subprocess
import sys

import pytest

from vnnet.cli import main
from vnnet.data import open_satellite, open_stations


def test_vnnet_data_synthetic_writes_the_canonical_files(tmp_path, capsys):
    out = tmp_path / "world"
    main(["data", "synthetic", "--out", str(out), "--world.n_stations", "5",
          "--world.n_days", "3", "--world.image_size", "16", "--world.seed", "7"])
    stations = open_stations(out / "stations.nc")
    satellite = open_satellite(out / "satellite.nc")
    assert stations.sizes == {"time": 72, "station": 5}
    assert satellite.sizes == {"time": 72, "channel": 4, "lat": 16, "lon": 16}
    assert stations.air_temperature.attrs["units"] == "degC"
    assert "wrote" in capsys.readouterr().out
    main(["data", "describe", str(out / "stations.nc")])
    assert "5 stations x 72 times" in capsys.readouterr().out


def test_bad_cli_values_give_a_message_not_a_traceback(tmp_path):
    cmd = [sys.executable, "-m", "vnnet.cli", "data", "synthetic", "--out", str(tmp_path),
           "--world.n_stations", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode != 0
    assert "n_stations" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(SystemExit):
        main(["data", "describe", str(tmp_path / "missing.nc")])


def test_data_file_paths_are_never_read_as_configs(tmp_path, monkeypatch):
    """jsonargparse reads a string naming an existing file as a candidate YAML config unless
    the type says it is a path: a data file would be read whole (a 12 GB cube exhausted the
    memory) and one that happens to parse as YAML would become a dict."""
    import jsonargparse._paths
    from jsonargparse import ArgumentParser

    from vnnet.data import WeatherDataModule

    read = []
    original = jsonargparse._paths.Path.read_text
    monkeypatch.setattr(jsonargparse._paths.Path, "read_text",
                        lambda self, *a, **k: read.append(str(self)) or original(self, *a, **k))
    parser = ArgumentParser()
    parser.add_class_arguments(WeatherDataModule, "data", sub_configs=True)  # as LightningCLI
    files = {}
    for name in ("stations", "satellite", "stations_lonlat"):
        files[name] = tmp_path / f"{name}.nc"
        files[name].write_text("a: 1\n")  # valid YAML: read as config, it would be {'a': 1}
    cfg = parser.parse_args([f"--data.{k}={v}" for k, v in files.items()])
    for name, path in files.items():
        assert cfg.data[name] == str(path)
    assert read == []  # no data file was opened by the parser
