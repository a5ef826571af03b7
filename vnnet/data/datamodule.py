"""``WeatherDataModule``: station (+ satellite) xarray data in, ``Batch`` windows out.

Stations are small (N x T x F floats) and are held in memory once scaled; satellite cubes
stay lazy (memory-mapped, dask, zarr or a lazily opened netCDF) and each window reads only
its own frames, so memory does not grow with the archive length.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import dask
import lightning as L
import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vnnet.data.batch import Batch, collate_windows
from vnnet.data.readers import (
    open_satellite,
    open_stations,
    read_himawari,
    read_vnnet_region,
    read_weather2k,
)
from vnnet.data.readers.files import load_npy_mmap
from vnnet.data.scalers import MinMaxScaler, StandardScaler
from vnnet.data.schema import check_values, validate_satellite, validate_stations
from vnnet.data.synthetic import synthetic_world
from vnnet.data.windows import (
    SPLITS,
    SplitSpec,
    calendar_index,
    chronological_splits,
    cyclic_features,
    lag_steps,
    lagged_window,
    window_starts,
)
from vnnet.graphs import StationGraph, distance_graph
from vnnet.graphs.coregistration import PixelMap, station_pixels


def load_stations(source: xr.Dataset | str | Path, lonlat: str | Path | None = None
                  ) -> xr.Dataset:
    """A station dataset from an xarray object or a path (.nc, .zarr, Weather2K .npy)."""
    if isinstance(source, xr.Dataset | xr.DataArray):
        return validate_stations(source)  # a DataArray gets the validator's message
    if not isinstance(source, str | Path):
        raise ValueError(f"stations: expected an xarray.Dataset or a path, got "
                         f"{type(source).__name__}")
    path = Path(source)
    if path.suffix == ".npy":
        if lonlat is not None:
            return read_vnnet_region(path, lonlat)
        return read_weather2k(path)
    return open_stations(path)


def load_satellite(source: xr.DataArray | xr.Dataset | str | Path, region: str | None = None,
                   bbox: Sequence[float] | None = None) -> xr.DataArray:
    """A satellite cube from an xarray object or a path (.nc, .zarr, Himawari .npy)."""
    if isinstance(source, xr.DataArray | xr.Dataset):
        return validate_satellite(source)
    if not isinstance(source, str | Path):
        raise ValueError(f"satellite: expected an xarray.DataArray or a path, got "
                         f"{type(source).__name__}")
    path = Path(source)
    if path.suffix == ".npy":
        return read_himawari(path, region=region, bbox=None if bbox is None else tuple(bbox))
    return open_satellite(path)


def align_frames(station_times: pd.DatetimeIndex, frame_times: pd.DatetimeIndex,
                 tolerance: pd.Timedelta) -> np.ndarray:
    """(time,) int64 frame index for each station time: the exact or nearest-earlier frame
    within ``tolerance``, or -1. A frame from after a station time is never used."""
    pos = frame_times.searchsorted(station_times, side="right") - 1
    ok = pos >= 0
    age = np.full(len(station_times), np.timedelta64("NaT"), dtype="timedelta64[ns]")
    age[ok] = station_times.values[ok] - frame_times.values[pos[ok]]
    ok &= age <= tolerance.to_timedelta64()
    return np.where(ok, pos, -1).astype(np.int64)


class FrameReader:
    """Reads frames of a lazy (time, channel, lat, lon) cube by integer index.

    ``source``: optionally the path of the same cube as a ``(time, lat, lon, channel)``
    ``.npy`` (a Himawari file, as :func:`read_himawari` reads it), which :meth:`read` then
    reads directly, by plain file reads rather than through xarray, dask and a memory map: a
    window's frames cost one read call, and no page of the file stays mapped into the process
    (its resident memory does not grow with the part of the archive it has read).
    """

    def __init__(self, satellite: xr.DataArray, source: str | Path | None = None) -> None:
        self.data = satellite
        self.source = None
        if source is not None:
            t, c, height, width = satellite.shape
            mm = load_npy_mmap(source)  # the header only; the map is dropped right away
            if mm.shape == (t, height, width, c) and mm.flags.c_contiguous:
                self.source = Path(source)
                self._offset, self._dtype = int(mm.offset), mm.dtype
            del mm

    def read(self, idx: np.ndarray) -> np.ndarray:
        """(n, H, W, c) frames ``idx`` (channels last, the cube's own dtype; may be a view)."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            return np.zeros((0, *self.data.shape[2:], self.data.shape[1]), dtype=np.float32)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        if self.source is not None:
            _, c, height, width = self.data.shape
            block = np.empty((hi - lo, height, width, c), dtype=self._dtype)
            with open(self.source, "rb", buffering=0) as f:
                f.seek(self._offset + lo * block[0].nbytes)
                if f.readinto(memoryview(block).cast("B")) != block.nbytes:
                    raise OSError(f"{self.source}: file shorter than its header says")
        else:
            with dask.config.set(scheduler="synchronous"):
                block = np.moveaxis(np.asarray(self.data.isel(time=slice(lo, hi)).values), 1, -1)
        if hi - lo == idx.size and (idx == np.arange(lo, hi)).all():
            return block  # consecutive frames, the usual window
        return block[idx - lo]

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            shape = (0, *self.data.shape[1:])
            return np.zeros(shape, dtype=np.float32)
        # Read one contiguous block (cheap for memmap/zarr/netCDF), then pick the frames.
        lo, hi = int(idx.min()), int(idx.max()) + 1
        with dask.config.set(scheduler="synchronous"):
            block = np.asarray(self.data.isel(time=slice(lo, hi)).values, dtype=np.float32)
        return block[idx - lo]


class WindowDataset(Dataset):
    """Forecast windows over in-memory station arrays and a lazy satellite cube.

    Station arrays are laid out (time, station, variable); window ``i`` starts at
    ``starts[i]`` and yields a dict of numpy arrays (see ``Batch`` for the layouts).
    ``target_lag`` (steps, >= n_pred): also yield ``y_lag``/``y_lag_mask``, the targets that
    many steps before each valid time (missing before the record starts).
    """

    def __init__(self, starts: np.ndarray, n_his: int, n_pred: int, arrays: dict[str, np.ndarray],
                 frames: FrameReader | None = None, frame_of_time: np.ndarray | None = None,
                 image_scaler: MinMaxScaler | None = None, target_lag: int | None = None) -> None:
        self.starts, self.n_his, self.n_pred, self.target_lag = starts, n_his, n_pred, target_lag
        self.arrays = arrays
        self.frames, self.frame_of_time, self.image_scaler = frames, frame_of_time, image_scaler

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int, images: np.ndarray | None = None) -> dict[str, np.ndarray]:
        s = int(self.starts[i])
        inp, out = slice(s, s + self.n_his), slice(s + self.n_his, s + self.n_his + self.n_pred)
        a = self.arrays
        sample = {
            "x": a["x"][inp], "x_mask": a["x_mask"][inp],
            "y": a["y"][out], "y_mask": a["y_mask"][out],
            "time": a["cyclic"][inp], "time_index": a["calendar"][inp],
            "time_pred": a["cyclic"][out], "init_time": np.int64(s + self.n_his - 1),
        }
        if self.target_lag is not None:
            sample["y_lag"], sample["y_lag_mask"] = lagged_window(
                a["y"], a["y_mask"], out.start - self.target_lag, self.n_pred)
        if self.frames is not None:
            sample["images"], sample["image_mask"] = self.read_images(self.frame_of_time[inp],
                                                                      images)
        return sample

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """The windows ``indices`` (a DataLoader batch). Their frames are written straight into
        one (b t H W c) array, which :func:`collate_channels_last` hands on without a copy."""
        if self.frames is None:
            return [self[i] for i in indices]
        c, height, width = self.frames.data.shape[1:]
        shape = (len(indices), self.n_his, height, width, c)
        if torch.utils.data.get_worker_info() is not None:
            # In a worker process: straight into shared memory, as torch's default_collate
            # does, so that handing the batch to the main process copies nothing.
            buffer = torch.empty(0)
            storage = buffer._typed_storage()._new_shared(math.prod(shape), device=buffer.device)
            buffer = buffer.new(storage).view(shape)
        else:  # numpy's allocation: malloc reuses freed blocks, no fresh pages to fault in
            buffer = torch.from_numpy(np.empty(shape, dtype=np.float32))
        frames = buffer.numpy()
        samples = [self.__getitem__(i, frames[k]) for k, i in enumerate(indices)]
        for sample in samples:
            sample["batch_images"] = buffer
        return samples

    def read_images(self, frame_ids: np.ndarray, out: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(t c H W) scaled frames with NaN -> 0, and (t,) True where a frame is present.

        The frames are a (t c H W) view of a (t H W c) float32 array (channels last, the layout
        the image encoders convolve fastest; :func:`collate_channels_last` keeps it), ``out``
        if given, scaled in place: a few passes over the window's pixels.
        """
        present = frame_ids >= 0
        c, height, width = self.frames.data.shape[1:]
        images = np.empty((len(frame_ids), height, width, c), dtype=np.float32) if out is None \
            else out
        idx = np.flatnonzero(present)
        if idx.size < len(frame_ids):
            images[~present] = 0.0
        if idx.size:
            if not hasattr(self, "_image_stats"):  # (x - min) / (max - min) in float32, with
                low, high = self.image_scaler.min, self.image_scaler.max  # the per-channel
                self._image_stats = (np.tile(low.astype(np.float32), width),  # stats tiled
                                     np.tile((high - low).astype(np.float32), width))  # by row
            low, span = self._image_stats
            out = images if idx.size == len(frame_ids) else np.empty((idx.size, height, width, c),
                                                                     dtype=np.float32)
            raw = self.frames.read(frame_ids[idx])
            if raw.dtype == np.float16:  # numpy converts half floats slowly, torch does not
                torch.from_numpy(out).copy_(torch.from_numpy(raw))
            else:
                np.copyto(out, raw, casting="unsafe")
            rows = out.reshape(-1, width * c)  # pixel rows: long inner loops for the ufuncs
            np.subtract(rows, low, out=rows)
            np.divide(rows, span, out=rows)
            finite = np.isfinite(out)
            if not finite.all():
                out[~finite] = 0.0
                present[idx] = finite.reshape(idx.size, -1).any(axis=1)  # all-NaN: missing
            if out is not images:
                images[idx] = out
        return images.transpose(0, 3, 1, 2), present


def collate_channels_last(samples: Sequence[dict[str, np.ndarray]]) -> Batch:
    """``collate_windows``, with the images as a (b t c H W) view of a (b t H W c) array:
    channels-last frames, without a transposing copy. Windows read together by
    :meth:`WindowDataset.__getitems__` already share that array ("batch_images"); others are
    stacked into one."""
    if samples[0].get("images") is None:
        return collate_windows(samples)
    batch = collate_windows([{k: v for k, v in s.items() if k != "images"} for s in samples])
    shared = samples[0].get("batch_images")  # a (b t H W c) tensor
    if shared is not None and len(shared) == len(samples) \
            and all(s.get("batch_images") is shared for s in samples):
        stacked = shared
    else:
        stacked = torch.from_numpy(np.stack([s["images"].transpose(0, 2, 3, 1)
                                             for s in samples]))
    batch.images = stacked.permute(0, 1, 4, 2, 3)
    return batch


class WindowSampler(DistributedSampler):
    """The windows one process reads in an epoch: shuffled from ``seed + epoch`` (or in order),
    strided over the ``num_replicas`` processes of a distributed run, from position ``start``.

    A ``DistributedSampler``, so Lightning keeps it under DDP instead of substituting its own.
    Training pads to equal shares (``pad``), as DistributedSampler does; evaluation does not,
    so no window is counted twice in the summed metrics.
    """

    def __init__(self, dataset: Dataset, shuffle: bool, seed: int, num_replicas: int = 1,
                 rank: int = 0, pad: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed)
        self.pad = pad
        if not pad:
            self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.start = 0  # windows of this epoch already read (set when resuming mid-epoch)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        order = (torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
                 .tolist() if self.shuffle else list(range(n)))
        if self.pad and n:
            order = (order * -(-self.total_size // n))[:self.total_size]
        start, self.start = self.start, 0
        return iter(order[self.rank::self.num_replicas][start:])


class ResumableLoader(DataLoader):
    """A training DataLoader whose epoch and position Lightning saves in every checkpoint
    (``state_dict`` / ``load_state_dict``): a fit resumed from a mid-epoch checkpoint reads the
    rest of that epoch in the order the uninterrupted run would (needs a ``WindowSampler``)."""

    _delivered = 0  # batches delivered in the current epoch
    _resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        # A generator: runs at the first batch, after Lightning has set the sampler's epoch.
        resume, self._resume = self._resume, None
        self._delivered = 0
        if resume is not None and resume["epoch"] == self.sampler.epoch:
            self._delivered = resume["batches"]
            self.sampler.start = self._delivered * self.batch_size
        for batch in super().__iter__():
            self._delivered += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._delivered)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)
        self.sampler.set_epoch(state["epoch"])


class WeatherDataModule(L.LightningDataModule):
    """Forecast windows from station observations and, optionally, satellite images.

    Args:
        stations: an xarray Dataset in the station contract, or a path (.nc, .zarr, a
            Weather2K raw ``data.npy``, or a VN-Net region ``.npy`` with ``stations_lonlat``).
            None: the synthetic world (``synthetic`` holds its options).
        satellite: a (time, channel, lat, lon) DataArray or a path (.nc, .zarr, a Himawari
            ``.npy`` with ``satellite_region`` or ``satellite_bbox``); None: no images (or the
            synthetic world's images when ``stations`` is None and ``use_satellite``).
        target: the variable(s) to forecast.
        inputs: the input variables (default: every station variable).
        n_his, n_pred, stride: input hours, lead hours, hours between window starts.
        split: fractions (train, val, test), dates {"val_start", "test_start"} or "weather2k".
        station_ids: optional subset (and order) of stations.
        satellite_tolerance: the oldest frame, relative to a station time, that still counts.
        min_image_coverage: the least share of station times that must have a frame.
        image_range: fixed per-channel (min, max) lists instead of fitting on train frames.
        station_scaler: fixed station scaler statistics (``StandardScaler.to_dict()``) instead
            of fitting on the training split (used to run a trained model on new data).
        mask_zeros: also mask exact-zero targets (the official VN-Net code's compatibility mode).
        pin_memory: page-locked batches for faster host-to-GPU copies; None (default): on when
            CUDA is available.
        graph: options of ``vnnet.graphs.distance_graph``.
        target_lag: a duration (e.g. "24h", at least n_pred steps): batches also carry
            ``y_lag``/``y_lag_mask``, the targets that long before each valid time (what
            ``SeasonalPersistence`` forecasts; the Forecaster sets it for such models).
    """

    def __init__(
        self,
        # ``Path`` in the union tells jsonargparse that these are file paths: without it a
        # string that names an existing file is read whole as a candidate YAML config (a
        # 12 GB satellite cube then exhausts memory before training starts).
        stations: xr.Dataset | str | Path | None = None,
        satellite: xr.DataArray | str | Path | None = None,
        target: str | list[str] = "air_temperature",
        inputs: list[str] | None = None,
        n_his: int = 12,
        n_pred: int = 12,
        stride: int = 1,
        split: SplitSpec = (0.7, 0.1, 0.2),
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        station_ids: list[str] | None = None,
        stations_lonlat: str | Path | None = None,
        satellite_region: str | None = None,
        satellite_bbox: list[float] | None = None,
        use_satellite: bool = True,
        satellite_tolerance: str = "1h",
        min_image_coverage: float = 0.5,
        image_range: tuple[list[float], list[float]] | None = None,
        station_scaler: dict[str, Any] | None = None,
        mask_zeros: bool = False,
        graph: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        predict_split: str = "test",
        seed: int = 0,
        target_lag: str | None = None,
    ) -> None:
        super().__init__()
        window_starts(slice(0, 0), n_his, n_pred, stride)  # validates the three sizes
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                                 ("eval_batch_size", eval_batch_size or 1, 1)):
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if predict_split not in (*SPLITS, "all"):
            raise ValueError(f"predict_split must be one of {(*SPLITS, 'all')}, got "
                             f"{predict_split!r}")
        if not 0 <= min_image_coverage <= 1:
            raise ValueError(f"min_image_coverage must be in [0, 1], got {min_image_coverage}")
        if stations is None and satellite is not None:
            raise ValueError("satellite data was given without station data; give both, or "
                             "neither for the synthetic world")
        try:
            self.tolerance = pd.Timedelta(satellite_tolerance)
        except ValueError:
            raise ValueError(f"satellite_tolerance: cannot parse {satellite_tolerance!r} as a "
                             f"duration (e.g. '1h', '30min')") from None
        for role, source in (("stations", stations), ("satellite", satellite),
                             ("stations_lonlat", stations_lonlat)):
            if isinstance(source, str | Path) and not Path(source).exists():
                raise FileNotFoundError(f"{role}: no such file or directory: {source}")
        self._sources = {"stations": stations, "satellite": satellite,
                         "stations_lonlat": stations_lonlat, "region": satellite_region,
                         "bbox": satellite_bbox, "synthetic": dict(synthetic or {})}
        self.targets = [target] if isinstance(target, str) else list(target)
        if not self.targets:
            raise ValueError("target: at least one target variable is needed")
        self.requested_inputs = None if inputs is None else list(inputs)
        self.n_his, self.n_pred, self.stride = int(n_his), int(n_pred), int(stride)
        self.split = split
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.requested_station_ids = station_ids
        self.use_satellite = use_satellite
        self.min_image_coverage = min_image_coverage
        self.image_range = image_range
        self.fixed_station_scaler = station_scaler
        self.mask_zeros = mask_zeros
        self.graph_options = dict(graph or {})
        options = [p for p in inspect.signature(distance_graph).parameters
                   if p not in ("lat", "lon", "station_ids")]
        unknown = sorted(set(self.graph_options) - set(options))
        if unknown:
            raise ValueError(f"graph: unknown option(s) {unknown}; expected some of {options}")
        self.predict_split = predict_split
        self.seed = seed
        self.target_lag = target_lag  # checked against the time step when windows are cut
        self._arrays: dict[str, np.ndarray] | None = None

    # ---- data as loaded and validated -------------------------------------------------
    @cached_property
    def _loaded(self) -> tuple[xr.Dataset, xr.DataArray | None]:
        src = self._sources
        if src["stations"] is None:
            stations, satellite = synthetic_world(seed=self.seed, **src["synthetic"])
        else:
            stations = load_stations(src["stations"], src["stations_lonlat"])
            satellite = None if src["satellite"] is None else load_satellite(
                src["satellite"], src["region"], src["bbox"])
        if not self.use_satellite:
            satellite = None
        if self.requested_station_ids is not None:
            missing = sorted(set(self.requested_station_ids) - set(stations.station.values))
            if missing:
                raise ValueError(f"station_ids: unknown stations {missing[:5]}")
            stations = stations.sel(station=list(self.requested_station_ids))
        if stations.sizes["time"] < self.n_his + self.n_pred:
            raise ValueError(f"stations: {stations.sizes['time']} time step(s) hold no complete "
                             f"window of n_his + n_pred = {self.n_his}+{self.n_pred} steps; "
                             f"lengthen the data or shorten the window")
        return stations, satellite

    @property
    def stations(self) -> xr.Dataset:
        """The validated station dataset (time, station)."""
        return self._loaded[0]

    @property
    def satellite(self) -> xr.DataArray | None:
        """The validated, lazy satellite cube (time, channel, lat, lon), or None."""
        return self._loaded[1]

    @cached_property
    def input_variables(self) -> list[str]:
        have = [str(v) for v in self.stations.data_vars]
        for role, names in (("target", self.targets), ("inputs", self.requested_inputs or [])):
            unknown = [n for n in names if n not in have]
            if unknown:
                raise ValueError(f"{role}: unknown variable(s) {unknown}; the station data has "
                                 f"{have}")
        return list(self.requested_inputs) if self.requested_inputs is not None else have

    @property
    def target_variables(self) -> list[str]:
        return list(self.targets)

    @property
    def station_ids(self) -> list[str]:
        return [str(s) for s in self.stations.station.values]

    @property
    def n_stations(self) -> int:
        return self.stations.sizes["station"]

    @property
    def times(self) -> pd.DatetimeIndex:
        return self.stations.indexes["time"]

    @property
    def coords(self) -> torch.Tensor:
        """(n 3) float32 station lat (deg), lon (deg), elevation (m)."""
        ds = self.stations
        return torch.tensor(np.stack([ds.lat.values, ds.lon.values, ds.elevation.values], -1),
                            dtype=torch.float32)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(c, H, W) of the satellite frames, or None without images."""
        return None if self.satellite is None else tuple(self.satellite.shape[1:])

    @cached_property
    def graph(self) -> StationGraph:
        ds = self.stations
        return distance_graph(ds.lat.values, ds.lon.values, station_ids=self.station_ids,
                              **self.graph_options)

    @cached_property
    def pixel_map(self) -> PixelMap | None:
        """Each station's pixel on the image grid (None without images)."""
        if self.satellite is None:
            return None
        ds = self.stations
        return station_pixels(ds.lat.values, ds.lon.values, self.satellite.lat.values,
                              self.satellite.lon.values, np.asarray(self.station_ids))

    @cached_property
    def split_slices(self) -> dict[str, slice]:
        return chronological_splits(self.times, self.split)

    def windows(self, split: str) -> np.ndarray:
        """Start indices of the windows of ``split`` ("all": the whole period) on the time axis."""
        if split == "all":
            return window_starts(slice(0, len(self.times)), self.n_his, self.n_pred, self.stride)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or 'all', got {split!r}")
        return window_starts(self.split_slices[split], self.n_his, self.n_pred, self.stride)

    # ---- fitted on the training split ---------------------------------------------------
    @cached_property
    def frame_of_time(self) -> np.ndarray | None:
        """(time,) int64 frame index for each station time (-1: no frame), or None."""
        if self.satellite is None:
            return None
        frame_times = self.satellite.indexes["time"]
        aligned = align_frames(self.times, frame_times, self.tolerance)
        coverage = float((aligned >= 0).mean())
        if coverage < self.min_image_coverage:
            raise ValueError(
                f"satellite frames cover {coverage:.0%} of the station times (need at least "
                f"{self.min_image_coverage:.0%}): stations {self.times[0]} .. {self.times[-1]}, "
                f"frames {frame_times[0]} .. {frame_times[-1]}, tolerance {self.tolerance}"
            )
        return aligned

    @cached_property
    def station_scaler(self) -> StandardScaler:
        names = list(dict.fromkeys(self.input_variables + self.targets))
        if self.fixed_station_scaler is not None:
            scaler = StandardScaler.from_dict(self.fixed_station_scaler)
            scaler.index(names)  # raises if a variable has no statistics
            return scaler
        train = self.stations.isel(time=self.split_slices["train"])
        values = np.stack([train[v].values for v in names], axis=-1)
        return StandardScaler(names).fit(values)

    @cached_property
    def image_scaler(self) -> MinMaxScaler | None:
        if self.satellite is None:
            return None
        if self.image_range is not None:
            scaler = MinMaxScaler(*self.image_range)
            if scaler.min.shape != (self.satellite.sizes["channel"],):
                raise ValueError(f"image_range: need one (min, max) per channel "
                                 f"({self.satellite.sizes['channel']}), got {len(scaler.min)}")
            return scaler
        train_frames = self.frame_of_time[self.split_slices["train"]]
        frames = np.unique(train_frames[train_frames >= 0])
        try:
            return MinMaxScaler().fit(FrameReader(self.satellite), frames, progress=True)
        except ValueError as err:  # lazy cubes: values are first read here
            if not frames.size:
                raise
            raise ValueError(f"satellite: the image scaler cannot be fitted on the {frames.size} "
                             f"training frames: {err} (a channel is all NaN there, or has "
                             f"infinite pixels; mark missing pixels as NaN)") from err

    def _station_arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            ds, scaler = self.stations, self.station_scaler
            for name in scaler.names:
                check_values(ds[name], f"stations: variable '{name}'")
            raw = {v: ds[v].values.astype(np.float32) for v in scaler.names}
            arrays = {}
            for key, names in (("x", self.input_variables), ("y", self.targets)):
                values = np.stack([raw[v] for v in names], axis=-1)  # (time, station, var)
                mask = np.isfinite(values)
                if key == "y" and self.mask_zeros:
                    mask &= values != 0
                scaled = scaler.transform(values, scaler.index(names))
                arrays[key] = np.where(mask, scaled, 0.0).astype(np.float32)
                arrays[f"{key}_mask"] = mask
            arrays["cyclic"] = cyclic_features(self.times)
            arrays["calendar"] = calendar_index(self.times)
            self._arrays = arrays
        return self._arrays

    @classmethod
    def for_inference(cls, description: dict[str, Any], stations: xr.Dataset | str,
                      satellite: xr.DataArray | str | None = None, batch_size: int = 64,
                      target_lag: str | None = None) -> WeatherDataModule:
        """Windows over new data prepared exactly as for a trained model (its description):
        same stations, variables, window sizes and stored scalers; every window predicted."""
        sat = description.get("satellite")
        if sat is not None and satellite is None:
            raise ValueError("this model was trained with satellite images; pass satellite=")
        image_range = None if sat is None else (sat["image_scaler"]["min"],
                                                sat["image_scaler"]["max"])
        return cls(stations, satellite, target=description["target_variables"],
                   inputs=description["input_variables"], n_his=description["n_his"],
                   n_pred=description["n_pred"], station_ids=description["station_ids"],
                   satellite_tolerance=sat["tolerance"] if sat else "1h",
                   image_range=image_range, station_scaler=description["station_scaler"],
                   mask_zeros=description.get("mask_zeros", False), batch_size=batch_size,
                   predict_split="all", use_satellite=sat is not None,
                   graph=(description.get("graph") or {}).get("params"), target_lag=target_lag)

    def setup(self, stage: str | None = None) -> None:
        """Load, validate, co-register and fit the scalers on the training split."""
        self._station_arrays()
        _ = self.graph, self.pixel_map, self.image_scaler
        for split in ("train", "val") if stage in (None, "fit") else ():
            if not len(self.windows(split)):
                raise ValueError(f"the {split} split has no complete window of {self.n_his}+"
                                 f"{self.n_pred} hours; lengthen the data or change split")

    def dataset(self, split: str) -> WindowDataset:
        frames = None
        if self.satellite is not None:
            path = self._sources["satellite"]
            npy = isinstance(path, str | Path) and Path(path).suffix == ".npy"
            frames = FrameReader(self.satellite, path if npy else None)
        lag = None if self.target_lag is None else lag_steps(self.target_lag, self.times,
                                                             self.n_pred)
        return WindowDataset(self.windows(split), self.n_his, self.n_pred, self._station_arrays(),
                             frames, self.frame_of_time, self.image_scaler, lag)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        # Under DDP each process reads its share; training order depends on seed and epoch
        # only, and the training loader's position is checkpointed (mid-epoch resume).
        trainer, dataset = self.trainer, self.dataset(split)
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        sampler = WindowSampler(dataset, shuffle, self.seed, replicas, rank, pad=shuffle)
        return (ResumableLoader if shuffle else DataLoader)(
            dataset, batch_size=self.batch_size if shuffle else self.eval_batch_size,
            sampler=sampler, generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory, collate_fn=collate_channels_last,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_split, shuffle=False)

    @cached_property
    def climatology(self) -> np.ndarray:
        """(c n 24) float32 mean scaled target per station and UTC hour of day, training split.

        Only observed targets count (``y_mask``). A station-hour never observed in training
        falls back to the station's training mean, a station never observed to 0 (the
        variable's training mean in scaled units). Used by ``vnnet.models.Climatology``.
        """
        arrays, train = self._station_arrays(), self.split_slices["train"]
        mask = arrays["y_mask"][train]  # (time station target)
        values = np.where(mask, arrays["y"][train], 0.0).astype(np.float64)
        hours = np.asarray(self.times.hour)[train]
        total = np.stack([values[hours == h].sum(axis=0) for h in range(24)], axis=-1)
        count = np.stack([mask[hours == h].sum(axis=0) for h in range(24)], axis=-1)
        station = total.sum(-1) / np.maximum(count.sum(-1), 1)  # (n c); 0 if never observed
        clim = np.where(count > 0, total / np.maximum(count, 1), station[..., None])
        return clim.transpose(1, 0, 2).astype(np.float32)  # (n c 24) -> (c n 24)

    def description(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild inputs and outputs without this datamodule."""
        ds = self.stations
        info: dict[str, Any] = {
            "station_ids": self.station_ids,
            "lat": ds.lat.values.tolist(), "lon": ds.lon.values.tolist(),
            "elevation": ds.elevation.values.tolist(),
            "input_variables": self.input_variables, "target_variables": self.targets,
            "units": {v: ds[v].attrs.get("units") for v in self.station_scaler.names},
            "n_his": self.n_his, "n_pred": self.n_pred,
            "time_step": str(pd.Timedelta(self.times[1] - self.times[0])),
            "station_scaler": self.station_scaler.to_dict(),
            "graph": self.graph.provenance,
            "mask_zeros": self.mask_zeros,
            "climatology": self.climatology.tolist(),
        }
        if self.satellite is not None:
            sat = self.satellite
            info["satellite"] = {
                "channels": [str(c) for c in sat.channel.values], "units": sat.attrs["units"],
                "lat": sat.lat.values.tolist(), "lon": sat.lon.values.tolist(),
                "tolerance": str(self.tolerance), "image_scaler": self.image_scaler.to_dict(),
            }
        return info
