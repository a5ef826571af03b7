"""vnnet's synthetic benchmark world: ground stations under clouds seen from a geostationary
satellite (the embedded default dataset of DESIGN.md, "The embedded default: a synthetic world").

Weather2K and Himawari cannot be downloaded by the package, so ``synthetic_world`` generates a
region in which the satellite carries real information about the stations' future:

* Cloud systems (elliptical blobs, radius ~0.25-0.7 deg, some elongated) are born, grow and decay
  while a slowly varying steering wind (20-50 km/h, direction drifting over days around a
  westerly mean) carries them across the region, so clouds enter the box from outside.
* The satellite sees infrared brightness temperatures: clear sky shows the surface (seasonal and
  diurnal cycle, colder on high terrain), cloud shows a cold top (250 K for thin cloud down to
  ~212 K for thick cloud); each channel weighs the surface differently (the last one is
  water-vapour-like and sees mostly the cold upper troposphere).
* Station temperature cools under cloud with a lag (an exponential moving average of the cloud
  fraction over the station, time constant ``CLOUD_LAG_HOURS``; stronger by day), relative
  humidity rises, visibility drops and thick cloud rains. Stations are sparse relative to cloud
  size, so the images show weather arriving that no station has sensed yet.

Everything is deterministic from ``seed``; independent random streams are used for the wind,
the clouds, the terrain, station placement, station noise and missing data, so e.g. changing
``image_size`` does not change the station records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy.interpolate import CubicSpline
from scipy.signal import lfilter

from .schema import CATALOGUE, validate_satellite, validate_stations

__all__ = ["synthetic_world", "CLOUD_LAG_HOURS", "LAPSE_RATE_K_PER_KM", "STATION_VARIABLES"]

# --- key constants of the generated physics (documented in the module docstring) ---
CLOUD_LAG_HOURS = 3.0  # e-folding time of the station response to the cloud above it
LAPSE_RATE_K_PER_KM = -6.5  # air temperature decrease with station elevation
CLOUD_COOLING_NIGHT_K = 2.0  # cooling under full (lagged) cloud at night ...
CLOUD_COOLING_DAY_K = 5.0  # ... plus this much extra at local noon (shading of the sun)
DIURNAL_AMPLITUDE_K = 4.5  # clear-sky air temperature half-range, maximum at 15 h local
SKIN_DIURNAL_AMPLITUDE_K = 7.0  # the land surface seen by the satellite swings more
STEERING_SPEED_KMH = (20.0, 50.0)
CLOUD_RADIUS_DEG = (0.25, 0.7)  # below the station spacing: clouds slip between stations
CLOUD_TOP_K = (250.0, 212.0)  # thin cloud -> thick cloud
UPPER_TROPOSPHERE_K = 236.0  # what a water-vapour channel sees in clear sky
CLEAR_VISIBILITY_M = 30_000.0
KM_PER_DEG = 111.2

# Catalogue names (schema.CATALOGUE) of the generated station variables, in output order.
STATION_VARIABLES = (
    "air_temperature",
    "relative_humidity",
    "dew_point_temperature",
    "air_pressure",
    "visibility",
    "wind_speed",
    "wind_from_direction",
    "precipitation_amount",
)

_HOURS_PAD = 48  # hours of wind simulated before/after the period so cloud tracks are defined
_SYSTEM_MARGIN_DEG = 8.0  # mid-life cloud positions are drawn this far around the box
_SYSTEMS_PER_HOUR_PER_DEG2 = 0.0126  # cloud-system birth rate (tuned for ~30 % cover)
_CHUNK_HOURS = 6
_DIRECTION_SD_DEG = 30.0  # day-to-day wander of the steering direction


@dataclass(frozen=True)
class _Wind:
    """The steering wind on hours ``-pad .. n_hours + pad - 1`` (index ``h + pad``).

    ``u_kmh``/``v_kmh`` blow toward east/north; ``disp_lat``/``disp_lon`` (deg) are the
    displacement of an air parcel since hour 0, used to advect cloud systems.
    """

    pad: int
    u_kmh: np.ndarray
    v_kmh: np.ndarray
    disp_lat: np.ndarray
    disp_lon: np.ndarray

    def displacement(self, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Parcel displacement (lat, lon in deg) at fractional ``hours`` (any shape)."""
        grid = np.arange(self.disp_lat.size) - self.pad
        return np.interp(hours, grid, self.disp_lat), np.interp(hours, grid, self.disp_lon)


@dataclass(frozen=True)
class _CloudSystems:
    """Cloud systems, one entry per system: mid-life time (h) and position (deg), lifetime,
    semi-axes (deg), orientation and spin, peak optical depth and own drift (deg/h)."""

    t_mid: np.ndarray
    life: np.ndarray
    lat_mid: np.ndarray
    lon_mid: np.ndarray
    a_major: np.ndarray
    a_minor: np.ndarray
    angle: np.ndarray
    spin: np.ndarray
    depth: np.ndarray
    drift_lat: np.ndarray
    drift_lon: np.ndarray


def _smooth_series(rng: np.random.Generator, hours: np.ndarray, knot_hours: float,
                   sd: float, phi: float = 0.0) -> np.ndarray:
    """A smooth random series on ``hours``: AR(1) knots every ``knot_hours``, cubic spline."""
    knots = np.arange(hours[0] - knot_hours, hours[-1] + 2 * knot_hours, knot_hours)
    values = np.empty(knots.size)
    values[0] = rng.normal(0.0, sd)
    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), knots.size)
    for i in range(1, knots.size):  # a few dozen knots: the loop is negligible
        values[i] = phi * values[i - 1] + shocks[i]
    return CubicSpline(knots, values)(hours)


def _steering_wind(rng: np.random.Generator, n_hours: int, lat0: float) -> _Wind:
    """Steering wind: speed in ``STEERING_SPEED_KMH``, direction wandering around westerly."""
    hours = np.arange(-_HOURS_PAD, n_hours + _HOURS_PAD, dtype=float)
    lo, hi = STEERING_SPEED_KMH
    speed = lo + (hi - lo) / (1.0 + np.exp(-_smooth_series(rng, hours, 24.0, 1.2, 0.5)))
    # Direction the air blows toward, counter-clockwise from east; mean toward east-north-east
    # (mid-latitude westerlies) with excursions of tens of degrees that drift over days.
    wander = _smooth_series(rng, hours, 24.0, _DIRECTION_SD_DEG, 0.7)
    toward = np.deg2rad(rng.uniform(-20.0, 40.0) + wander)
    u, v = speed * np.cos(toward), speed * np.sin(toward)
    dlat = v / KM_PER_DEG
    dlon = u / (KM_PER_DEG * np.cos(np.deg2rad(lat0)))
    disp_lat, disp_lon = np.cumsum(dlat), np.cumsum(dlon)
    return _Wind(_HOURS_PAD, u, v, disp_lat - disp_lat[_HOURS_PAD], disp_lon - disp_lon[_HOURS_PAD])


def _cloud_systems(rng: np.random.Generator, n_hours: int,
                   bbox: tuple[float, float, float, float]) -> _CloudSystems:
    """Draw cloud systems whose mid-life positions are uniform over the box plus a margin.

    Drawing positions at mid-life in the moving frame keeps the cloud cover statistically
    homogeneous over the box although systems are carried in from upstream.
    """
    lat_min, lat_max, lon_min, lon_max = bbox
    m = _SYSTEM_MARGIN_DEG
    area = (lat_max - lat_min + 2 * m) * (lon_max - lon_min + 2 * m)
    n = int(rng.poisson(_SYSTEMS_PER_HOUR_PER_DEG2 * area * (n_hours + 2 * _HOURS_PAD)))
    radius = rng.uniform(*CLOUD_RADIUS_DEG, n)
    aspect = np.where(rng.random(n) < 0.4, rng.uniform(1.8, 3.5, n), rng.uniform(1.0, 1.5, n))
    return _CloudSystems(
        t_mid=rng.uniform(-36.0, n_hours + 36.0, n),  # half the longest life: full cover at t=0
        life=rng.uniform(18.0, 72.0, n),
        lat_mid=rng.uniform(lat_min - m, lat_max + m, n),
        lon_mid=rng.uniform(lon_min - m, lon_max + m, n),
        a_major=radius * np.sqrt(aspect),
        a_minor=radius / np.sqrt(aspect),
        angle=rng.uniform(0.0, np.pi, n),
        spin=rng.normal(0.0, 0.01, n),
        depth=rng.lognormal(np.log(1.2), 0.5, n),
        drift_lat=rng.normal(0.0, 0.03, n),
        drift_lon=rng.normal(0.0, 0.03, n),
    )


def _optical_depth(systems: _CloudSystems, wind: _Wind, n_hours: int, lat: np.ndarray,
                   lon: np.ndarray, bbox: tuple[float, float, float, float],
                   progress: bool) -> np.ndarray:
    """Cloud optical depth at points (``lat``, ``lon``: (point,)) for every hour: (time, point).

    Loops over chunks of hours; inside a chunk it is vectorised over (time, system, point) for
    the few systems alive and near the box.
    """
    lat_min, lat_max, lon_min, lon_max = bbox
    lat0, lon0 = 0.5 * (lat_min + lat_max), 0.5 * (lon_min + lon_max)
    coslat = np.cos(np.deg2rad(lat0))
    reach = 3.0 * systems.a_major  # beyond this a blob adds < exp(-9) of its depth
    # Each blob is exp(-q) with q a quadratic form in local coordinates (X, Y) (deg, X scaled
    # by cos(lat)); writing q as coefficients (time, system, 6) @ monomials (6, point) turns
    # the whole chunk into one matrix product.
    x, y = (lon - lon0) * coslat, lat - lat0
    monomials = np.stack([x * x, 2 * x * y, y * y, x, y, np.ones_like(x)]).astype(np.float32)
    starts = range(0, n_hours, _CHUNK_HOURS)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="synthetic clouds", unit="chunk")
    out = np.zeros((n_hours, lat.size), dtype=np.float32)
    d_mid_lat, d_mid_lon = wind.displacement(systems.t_mid)
    for start in starts:
        hours = np.arange(start, min(start + _CHUNK_HOURS, n_hours), dtype=float)
        d_lat, d_lon = wind.displacement(hours)
        since_mid = hours[:, None] - systems.t_mid[None, :]  # (time, system)
        c_lat = systems.lat_mid + d_lat[:, None] - d_mid_lat + systems.drift_lat * since_mid
        c_lon = systems.lon_mid + d_lon[:, None] - d_mid_lon + systems.drift_lon * since_mid
        age = (since_mid + systems.life / 2) / systems.life  # 0 at birth, 1 at death
        envelope = np.sin(np.pi * np.clip(age, 0.0, 1.0))  # grow, mature, decay
        near = ((c_lat > lat_min - reach) & (c_lat < lat_max + reach)
                & (c_lon > lon_min - reach) & (c_lon < lon_max + reach) & (envelope > 0))
        keep = near.any(axis=0)
        if not keep.any():
            continue
        ang = systems.angle[keep] + systems.spin[keep] * since_mid[:, keep]
        ca, sa = np.cos(ang), np.sin(ang)
        ia, ib = systems.a_major[keep] ** -2, systems.a_minor[keep] ** -2
        qa = ca * ca * ia + sa * sa * ib
        qb = ca * sa * (ia - ib)
        qc = sa * sa * ia + ca * ca * ib
        cx, cy = (c_lon[:, keep] - lon0) * coslat, c_lat[:, keep] - lat0
        coef = np.stack([qa, qb, qc, -2 * (qa * cx + qb * cy), -2 * (qc * cy + qb * cx),
                         qa * cx * cx + 2 * qb * cx * cy + qc * cy * cy], axis=-1)
        q = coef.astype(np.float32) @ monomials  # (time, system, point)
        np.exp(np.negative(q, out=q), out=q)
        amp = (envelope[:, keep] * systems.depth[keep]).astype(np.float32)
        out[start:start + hours.size] = (amp[:, None, :] @ q)[:, 0]
    return out


def _terrain(rng: np.random.Generator, bbox: tuple[float, float, float, float]
             ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A smooth terrain height function (m, 0..~2000) made of random Gaussian ridges/hills.

    Normalised on a fixed reference grid so heights do not depend on ``image_size``.
    """
    lat_min, lat_max, lon_min, lon_max = bbox
    n = 14
    c_lat = rng.uniform(lat_min - 1, lat_max + 1, n)
    c_lon = rng.uniform(lon_min - 1, lon_max + 1, n)
    width = rng.uniform(0.4, 1.8, n)
    height = rng.uniform(0.2, 1.0, n)

    def raw(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        d2 = (lat[..., None] - c_lat) ** 2 + (lon[..., None] - c_lon) ** 2
        return (height * np.exp(-d2 / width**2)).sum(axis=-1)

    ref = raw(*np.meshgrid(np.linspace(lat_min, lat_max, 64), np.linspace(lon_min, lon_max, 64)))
    lo, hi = ref.min(), ref.max()

    def terrain(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.clip(2000.0 * (raw(lat, lon) - lo) / (hi - lo), 0.0, None)

    return terrain


def _place_stations(rng: np.random.Generator, n: int, bbox: tuple[float, float, float, float],
                    margin_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Scatter ``n`` stations inside the box at roughly even spacing.

    The stations keep ``margin_fraction`` of the box size from the image edges, so the images
    see weather some hours before it reaches the network (like the Weather2K regions inside
    their satellite crops).
    """
    lat_min, lat_max, lon_min, lon_max = bbox
    margin = margin_fraction * min(lat_max - lat_min, lon_max - lon_min)
    lo = np.array([lat_min + margin, lon_min + margin])
    hi = np.array([lat_max - margin, lon_max - margin])
    d_min = 0.7 * np.sqrt(np.prod(hi - lo) / n)  # dart throwing: no two closer than this
    points: list[np.ndarray] = []
    while len(points) < n:
        for cand in rng.uniform(lo, hi, (200, 2)):
            if not points or np.hypot(*(np.asarray(points) - cand).T).min() >= d_min:
                points.append(cand)
                if len(points) == n:
                    break
        else:
            d_min *= 0.9  # box too crowded for this spacing: relax it
    pts = np.asarray(points)
    return pts[:, 0], pts[:, 1]


def _local_hour(times: pd.DatetimeIndex, lon: np.ndarray) -> np.ndarray:
    """Local solar hour (time, point) from UTC times and longitudes."""
    utc = times.hour.to_numpy() + times.minute.to_numpy() / 60.0
    return (utc[:, None] + lon[None, :] / 15.0) % 24.0


def _daylight(local_hour: np.ndarray) -> np.ndarray:
    """Sun strength proxy in [0, 1]: 0 from 18 h to 6 h local, 1 at noon."""
    return np.clip(np.cos(2 * np.pi * (local_hour - 12.0) / 24.0), 0.0, None)


def _climate_temperature(times: pd.DatetimeIndex, lat: np.ndarray, elevation: np.ndarray,
                         anomaly: np.ndarray) -> np.ndarray:
    """Daily-mean clear-sky air temperature (degC), (time, point): season, latitude, terrain."""
    doy = times.day_of_year.to_numpy() - 1 + times.hour.to_numpy() / 24.0
    season = 15.0 - 12.0 * np.cos(2 * np.pi * (doy - 15.0) / 365.25)  # ~18 degC on 1 May
    return (season[:, None] + anomaly[:, None] - 0.6 * (lat[None, :] - 33.0)
            + LAPSE_RATE_K_PER_KM * elevation[None, :] / 1000.0)


def _ema(x: np.ndarray, hours: float) -> np.ndarray:
    """Exponential moving average along axis 0 with e-folding time ``hours``, started at x[0]."""
    alpha = 1.0 - np.exp(-1.0 / hours)
    zi = (1.0 - alpha) * x[:1]
    return lfilter([alpha], [1.0, alpha - 1.0], x, axis=0, zi=zi)[0]


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float, sd: float) -> np.ndarray:
    """AR(1) noise along axis 0 with stationary standard deviation ``sd``."""
    e = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), shape)
    e[0] /= np.sqrt(1.0 - phi**2)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], e, axis=0)


def _dew_point(t: np.ndarray, rh: np.ndarray) -> np.ndarray:
    """Dew point (degC) from temperature (degC) and RH (%) by the Magnus formula."""
    b, c = 17.62, 243.12
    g = np.log(rh / 100.0) + b * t / (c + t)
    return c * g / (b - g)


def _stations(rng: np.random.Generator, times: pd.DatetimeIndex, lat: np.ndarray,
              lon: np.ndarray, elevation: np.ndarray, tau: np.ndarray, wind: _Wind,
              t_anomaly: np.ndarray, p_anomaly: np.ndarray,
              q_anomaly: np.ndarray) -> dict[str, np.ndarray]:
    """Station records (time, station) of ``STATION_VARIABLES`` from the cloud above them."""
    n_t, n_s = tau.shape
    cloud = 1.0 - np.exp(-tau.astype(float))  # cloud fraction (time, station)
    lagged = _ema(cloud, CLOUD_LAG_HOURS)  # the response builds up over hours
    hloc = _local_hour(times, lon)
    sun = _daylight(hloc)

    base = _climate_temperature(times, lat, elevation, t_anomaly)
    diurnal = DIURNAL_AMPLITUDE_K * np.cos(2 * np.pi * (hloc - 15.0) / 24.0)
    cooling = lagged * (CLOUD_COOLING_NIGHT_K + CLOUD_COOLING_DAY_K * sun)
    offset = rng.normal(0.0, 0.5, n_s)  # siting effects
    temp = base + offset + diurnal - cooling + _ar1(rng, (n_t, n_s), 0.7, 0.3)

    # Thick cloud rains, intermittently; rounded to the 0.1 mm of a tipping bucket.
    rate = 2.5 * np.clip(tau - 1.8, 0.0, None) ** 1.3 * rng.gamma(1.5, 1 / 1.5, (n_t, n_s))
    precip = np.round(np.where(rng.random((n_t, n_s)) < 0.85, rate, 0.0), 1)

    rh = (60.0 + 30.0 * lagged + 6.0 * np.minimum(precip, 2.0) - 2.5 * diurnal
          + q_anomaly[:, None] + rng.normal(0.0, 4.0, n_s) + _ar1(rng, (n_t, n_s), 0.8, 3.0))
    rh = np.clip(rh, 1.0, 100.0)

    # Station instruments see the cloud only through its lagged effects (and rain), so the
    # images, not the station records, show where cloud is now.
    vis = (CLEAR_VISIBILITY_M * np.exp(-1.2 * lagged) * np.exp(-np.clip(rh - 75.0, 0, None) / 8.0)
           / (1.0 + 2.5 * precip) * np.exp(_ar1(rng, (n_t, n_s), 0.6, 0.2)))
    vis = np.clip(vis, 20.0, 50_000.0)

    tide = 0.8 * np.cos(4 * np.pi * (hloc - 10.0) / 24.0)  # semi-diurnal pressure tide
    p0 = 1012.0 + p_anomaly[:, None] - 2.0 * lagged + tide + rng.normal(0.0, 0.2, (n_t, n_s))
    pressure = p0 * (1.0 - 2.25577e-5 * elevation[None, :]) ** 5.25588

    # Surface wind: a damped, terrain-turned steering wind, gustier under cloud, plus noise.
    h = np.arange(n_t) + wind.pad
    su, sv = wind.u_kmh[h, None] / 3.6, wind.v_kmh[h, None] / 3.6  # m s-1
    turn = np.deg2rad(rng.uniform(-25.0, 25.0, n_s))
    damp = rng.uniform(0.35, 0.55, n_s) * (1.0 + 0.4 * lagged)
    u = damp * (su * np.cos(turn) - sv * np.sin(turn)) + _ar1(rng, (n_t, n_s), 0.6, 1.0)
    v = damp * (su * np.sin(turn) + sv * np.cos(turn)) + _ar1(rng, (n_t, n_s), 0.6, 1.0)
    return {
        "air_temperature": temp,
        "relative_humidity": rh,
        "dew_point_temperature": _dew_point(temp, rh),
        "air_pressure": pressure,
        "visibility": vis,
        "wind_speed": np.hypot(u, v),
        "wind_from_direction": (270.0 - np.rad2deg(np.arctan2(v, u))) % 360.0,
        "precipitation_amount": precip,
    }


def _images(rng: np.random.Generator, times: pd.DatetimeIndex, lat: np.ndarray,
            lon: np.ndarray, elevation: np.ndarray, tau: np.ndarray, t_anomaly: np.ndarray,
            n_channels: int) -> np.ndarray:
    """Infrared brightness temperatures (K), (time, channel, lat, lon), from the cloud field.

    ``lat``/``lon``/``elevation``/``tau`` are flattened over pixels ((point,), (time, point)).
    """
    n_t, n_p = tau.shape
    hloc = _local_hour(times, lon)
    skin = (273.15 + _climate_temperature(times, lat, elevation, t_anomaly)
            + SKIN_DIURNAL_AMPLITUDE_K * np.cos(2 * np.pi * (hloc - 13.0) / 24.0))
    skin = skin.astype(np.float32)
    cloud = 1.0 - np.exp(-tau)
    thin, thick = CLOUD_TOP_K
    top = thin + (thick - thin) * (1.0 - np.exp(-tau / 1.5))  # thicker cloud = higher, colder
    # Surface weight per channel: 1 for the window channel down to 0.4 for a water-vapour-like
    # channel that mostly sees the cold upper troposphere.
    weights = np.linspace(1.0, 0.4, n_channels) if n_channels > 1 else np.ones(1)
    out = np.empty((n_t, n_channels, n_p), dtype=np.float32)
    for k, w in enumerate(weights):
        clear = w * skin + (1.0 - w) * UPPER_TROPOSPHERE_K
        cold = np.minimum(top - 0.8 * k, clear)
        out[:, k] = (1.0 - cloud) * clear + cloud * cold
    out += 0.25 * rng.standard_normal(out.shape, dtype=np.float32)  # sensor noise
    return out


def _station_missing(rng: np.random.Generator, shape: tuple[int, int, int],
                     missing_fraction: float, outage_fraction: float) -> np.ndarray:
    """Boolean mask (time, station, variable): scattered gaps plus whole-station outages."""
    n_t, n_s, n_v = shape
    mask = rng.random(shape) < missing_fraction
    outage = np.zeros((n_t, n_s), dtype=bool)
    target = outage_fraction * n_t * n_s
    while outage.sum() < target:  # blocks of 1-3 days, all variables at once
        # The last block is trimmed (but kept >= 1 day) so coverage lands near the target.
        length = min(int(rng.integers(24, 73)), max(24, int(np.ceil(target - outage.sum()))))
        s = int(rng.integers(n_s))
        t0 = int(rng.integers(-length // 2, n_t - length // 2))
        outage[max(t0, 0):max(t0 + length, 0), s] = True
    return mask | outage[:, :, None]


def _frame_missing(rng: np.random.Generator, images: np.ndarray,
                   missing_frame_fraction: float) -> None:
    """Blank whole frames and a few small pixel patches with NaN, in place."""
    n_t, _, n_y, n_x = images.shape
    n_missing = min(int(round(missing_frame_fraction * n_t)), n_t - 1)
    images[rng.choice(n_t, n_missing, replace=False)] = np.nan
    for _ in range(max(1, n_t // 48)):  # dropped scan lines / corrupted blocks
        t = int(rng.integers(n_t))
        size = int(rng.integers(2, 6))
        y, x = int(rng.integers(max(n_y - size, 1))), int(rng.integers(max(n_x - size, 1)))
        images[t, :, y:y + size, x:x + size] = np.nan


def synthetic_world(
    *,
    seed: int = 0,
    n_stations: int = 40,
    n_days: int = 60,
    image_size: int = 64,
    n_channels: int = 4,
    start: str = "2021-05-01 00:00",
    bbox: tuple[float, float, float, float] = (30.0, 36.4, 110.0, 116.4),
    missing_fraction: float = 0.02,
    outage_fraction: float = 0.02,
    missing_frame_fraction: float = 0.03,
    station_margin: float = 0.15,
    progress: bool = False,
) -> tuple[xr.Dataset, xr.DataArray]:
    """Generate vnnet's synthetic benchmark world: stations and satellite images, hourly.

    Parameters
    ----------
    seed: seed of all randomness; the same arguments give identical arrays.
    n_stations, n_days: number of stations and of days (``24 * n_days`` hourly times).
    image_size: pixels per side of the square image grid covering ``bbox``.
    n_channels: infrared channels ``ir1 .. irC`` (window channel first, water-vapour-like last).
    start: first time (UTC).
    bbox: ``(lat_min, lat_max, lon_min, lon_max)`` in degrees; the image covers it exactly and
        the stations lie inside it with a margin.
    missing_fraction: share of (time, station, variable) entries set to NaN at random.
    outage_fraction: share of station-time covered by station outages (blocks of 1-3 days,
        all variables NaN).
    missing_frame_fraction: share of image frames that are entirely NaN (a few small NaN pixel
        patches are added too).
    station_margin: stations keep this fraction of the box size from the image edges (0.15:
        about 1 deg on the default 6.4 deg box, 2-5 hours of cloud travel).
    progress: show a tqdm bar over the time chunks of the cloud simulation.

    Returns
    -------
    stations: ``xr.Dataset`` with dims (time, station), the variables ``STATION_VARIABLES``
        (catalogue names and units), coords ``lat``, ``lon``, ``elevation``.
    satellite: ``xr.DataArray`` "brightness_temperature" (K, float32) with dims
        (time, channel, lat, lon), lat descending (row 0 = north), pixel-centre coordinates.
    Both have passed ``validate_stations`` / ``validate_satellite``.
    """
    lat_min, lat_max, lon_min, lon_max = (float(b) for b in bbox)
    if not (-90 <= lat_min < lat_max <= 90 and lon_min < lon_max):
        raise ValueError(f"bbox must be (lat_min, lat_max, lon_min, lon_max), got {bbox}")
    for name, value in (("n_stations", n_stations), ("n_days", n_days),
                        ("n_channels", n_channels)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if image_size < 2:
        raise ValueError(f"image_size must be >= 2, got {image_size}")
    for name, value in (("missing_fraction", missing_fraction),
                        ("outage_fraction", outage_fraction),
                        ("missing_frame_fraction", missing_frame_fraction)):
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"{name} must be in [0, 0.5], got {value}")
    if not 0.0 <= station_margin < 0.5:
        raise ValueError(f"station_margin must be in [0, 0.5), got {station_margin}")
    bbox = (lat_min, lat_max, lon_min, lon_max)
    n_hours = 24 * n_days
    times = pd.date_range(pd.Timestamp(start), periods=n_hours, freq="h").as_unit("ns")

    # Independent streams: changing one knob (e.g. image_size) leaves the others' draws alone.
    streams = np.random.SeedSequence(seed).spawn(8)
    r_wind, r_cloud, r_terrain, r_place, r_station, r_miss, r_image, r_frame = (
        np.random.default_rng(s) for s in streams)

    lat0 = 0.5 * (lat_min + lat_max)
    wind = _steering_wind(r_wind, n_hours, lat0)
    systems = _cloud_systems(r_cloud, n_hours, bbox)
    terrain = _terrain(r_terrain, bbox)
    hours = np.arange(n_hours, dtype=float)
    # Regional synoptic anomalies shared by stations and images (multi-day swings).
    t_anomaly = _smooth_series(r_wind, hours, 36.0, 2.5, 0.6)
    p_anomaly = _smooth_series(r_wind, hours, 36.0, 5.0, 0.6)
    q_anomaly = _smooth_series(r_wind, hours, 36.0, 8.0, 0.6)

    st_lat, st_lon = _place_stations(r_place, n_stations, bbox, station_margin)
    st_elev = np.clip(terrain(st_lat, st_lon) + r_place.normal(0.0, 30.0, n_stations), 0.0, None)

    dlat, dlon = (lat_max - lat_min) / image_size, (lon_max - lon_min) / image_size
    px_lat = lat_max - (np.arange(image_size) + 0.5) * dlat  # descending: row 0 = north
    px_lon = lon_min + (np.arange(image_size) + 0.5) * dlon
    grid_lat, grid_lon = (a.ravel() for a in np.meshgrid(px_lat, px_lon, indexing="ij"))

    # One cloud evaluation for pixels and stations, so both see the same clouds.
    tau = _optical_depth(systems, wind, n_hours, np.concatenate([grid_lat, st_lat]),
                         np.concatenate([grid_lon, st_lon]), bbox, progress)
    tau_grid, tau_st = tau[:, :grid_lat.size], tau[:, grid_lat.size:]

    images = _images(r_image, times, grid_lat, grid_lon, terrain(grid_lat, grid_lon), tau_grid,
                     t_anomaly, n_channels).reshape(n_hours, n_channels, image_size, image_size)
    _frame_missing(r_frame, images, missing_frame_fraction)

    records = _stations(r_station, times, st_lat, st_lon, st_elev, tau_st, wind, t_anomaly,
                        p_anomaly, q_anomaly)
    mask = _station_missing(r_miss, (n_hours, n_stations, len(STATION_VARIABLES)),
                            missing_fraction, outage_fraction)

    params = (f"seed={seed}, n_stations={n_stations}, n_days={n_days}, "
              f"image_size={image_size}, n_channels={n_channels}, start={str(times[0])!r}, "
              f"bbox={bbox}, missing_fraction={missing_fraction}, "
              f"outage_fraction={outage_fraction}, "
              f"missing_frame_fraction={missing_frame_fraction}, "
              f"station_margin={station_margin}")
    source = f"vnnet.data.synthetic.synthetic_world({params})"
    common = {"source": source, "synthetic_seed": seed,
              "cloud_lag_hours": CLOUD_LAG_HOURS,
              "comment": "Synthetic data; regenerate with the call in 'source'."}

    data_vars = {}
    for k, name in enumerate(STATION_VARIABLES):
        values = np.where(mask[:, :, k], np.nan, records[name]).astype(np.float32)
        if np.isnan(values).all():  # never blank a whole variable
            values.flat[0] = np.float32(records[name].flat[0])
        var = CATALOGUE[name]
        attrs = {"units": var.units, "long_name": var.long_name}
        if var.standard_name:
            attrs["standard_name"] = var.standard_name
        data_vars[name] = (("time", "station"), values, attrs)
    stations = xr.Dataset(
        data_vars,
        coords={
            "time": times.values,
            "station": [f"S{i:03d}" for i in range(n_stations)],
            "lat": ("station", st_lat, {"units": "degrees_north"}),
            "lon": ("station", st_lon, {"units": "degrees_east"}),
            "elevation": ("station", st_elev, {"units": "m"}),
        },
        attrs={"title": "vnnet synthetic world: ground stations", **common},
    )
    satellite = xr.DataArray(
        images,
        dims=("time", "channel", "lat", "lon"),
        coords={
            "time": times.values,
            "channel": [f"ir{k + 1}" for k in range(n_channels)],
            "lat": ("lat", px_lat, {"units": "degrees_north"}),
            "lon": ("lon", px_lon, {"units": "degrees_east"}),
        },
        name="brightness_temperature",
        attrs={"units": "K", "long_name": "infrared brightness temperature",
               "standard_name": "toa_brightness_temperature",
               "title": "vnnet synthetic world: geostationary infrared images", **common},
    )
    return validate_stations(stations), validate_satellite(satellite)
