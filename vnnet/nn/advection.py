"""Advection-aware image sampling: where is the cloud that will reach a station in tau hours?

Cloud fields drift with the steering (mid-tropospheric) wind, so the image pixels that tell a
station about its next hours lie upstream of it, not above it. ``UpstreamSampler`` estimates the
steering wind of each window from the stations' own surface-wind observations (the network
mean of the last input hours, scaled and turned by two learned parameters, since the 10-m wind
is weaker than the wind that carries the clouds and backed by friction) and reads an image
feature map at ``station - tau * wind`` for a fixed set of look-back times ``tau``, by bilinear
interpolation. Positions upstream beyond the image edge read zeros and are flagged.

This is a vnnet extension of VN-Net's local fusion branch (arXiv 2404.16037 gathers the pixel
under each station only); it needs ``wind_speed`` and ``wind_from_direction`` among the inputs.

Layouts: b batch, t input hours, n stations, f input variables, d feature channels,
Hf x Wf feature grid, K look-back times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vnnet.graphs.coregistration import station_pixels

__all__ = ["UpstreamSampler", "WIND_VARIABLES"]

WIND_VARIABLES = ("wind_speed", "wind_from_direction")
_KM_PER_DEG = 111.2


class UpstreamSampler(nn.Module):
    """Sample a (b d Hf Wf) feature map upstream of each station: -> (b n K d), (b n K) inside.

    Args:
        station_lat, station_lon: (n,) station coordinates (deg).
        image_lat, image_lon: pixel-centre coordinates of the regular image grid (lat may be
            descending); the feature map covers the same box at any resolution.
        wind_index: positions of ``wind_speed`` (m/s) and ``wind_from_direction`` (deg, the
            meteorological convention) among the input variables.
        wind_mean, wind_std: the station scaler's statistics of those two inputs, to undo the
            scaling of ``x``.
        hours: the look-back times tau (hours), e.g. (1, 2, 3, 4, 6, 8, 10, 12).
        wind_hours: the last input hours averaged for the wind estimate.
        steering_ratio: initial ratio of steering to surface wind speed (learned).
    """

    def __init__(self, station_lat: np.ndarray, station_lon: np.ndarray,
                 image_lat: np.ndarray, image_lon: np.ndarray, wind_index: Sequence[int],
                 wind_mean: Sequence[float], wind_std: Sequence[float],
                 hours: Sequence[float], wind_hours: int = 3,
                 steering_ratio: float = 2.0) -> None:
        super().__init__()
        hours = [float(h) for h in hours]
        if not hours or min(hours) < 0 or not all(math.isfinite(h) for h in hours):
            raise ValueError(f"upstream hours must be a non-empty list of finite values >= 0, "
                             f"got {hours}")
        if wind_hours < 1:
            raise ValueError(f"wind_hours must be >= 1, got {wind_hours}")
        if not steering_ratio > 0:
            raise ValueError(f"steering_ratio must be > 0, got {steering_ratio}")
        image_lat, image_lon = np.asarray(image_lat, float), np.asarray(image_lon, float)
        # Station positions as fractions of the box from the first row/column edge (the
        # co-registration's, which also rejects stations outside the image), and how far one
        # degree of latitude/longitude moves along rows/columns (signed: row 0 may be north).
        where = station_pixels(station_lat, station_lon, image_lat, image_lon)
        frac = np.stack([where.frac_cols, where.frac_rows], -1)  # (n 2): x = col, y = row
        coslat = math.cos(math.radians(float(np.mean(station_lat))))
        per_deg = [1.0 / ((image_lon[1] - image_lon[0]) * image_lon.size),
                   1.0 / ((image_lat[1] - image_lat[0]) * image_lat.size)]
        self.register_buffer("station_frac", torch.tensor(frac, dtype=torch.float32))
        # km/h of eastward / northward motion -> fraction of the box per hour (x = col, y = row).
        self.register_buffer("kmh_to_frac", torch.tensor(
            [per_deg[0] / (_KM_PER_DEG * coslat), per_deg[1] / _KM_PER_DEG],
            dtype=torch.float32))
        self.register_buffer("hours", torch.tensor(hours, dtype=torch.float32))
        self.register_buffer("wind_index", torch.tensor(list(wind_index), dtype=torch.long))
        self.register_buffer("wind_mean", torch.tensor(list(wind_mean), dtype=torch.float32))
        self.register_buffer("wind_std", torch.tensor(list(wind_std), dtype=torch.float32))
        self.wind_hours = int(wind_hours)
        self.log_steering_ratio = nn.Parameter(torch.tensor(math.log(steering_ratio)))
        self.turn = nn.Parameter(torch.zeros(()))  # radians, counter-clockwise

    def steering_wind(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """(b 2) estimated cloud motion (east, north) in km/h from scaled (b t n f) inputs."""
        k = self.wind_hours
        values = x[:, -k:, :, self.wind_index] * self.wind_std + self.wind_mean  # (b k n 2)
        seen = (x_mask[:, -k:, :, self.wind_index[0]] & x_mask[:, -k:, :, self.wind_index[1]])
        speed, direction = values[..., 0], torch.deg2rad(values[..., 1])
        # "From" direction: a wind from the west (270 deg) blows toward the east (+u).
        u, v = -speed * torch.sin(direction), -speed * torch.cos(direction)
        weight = seen.to(x.dtype)
        count = weight.sum(dim=(1, 2)).clamp_min(1.0)
        wind = torch.stack([(u * weight).sum(dim=(1, 2)), (v * weight).sum(dim=(1, 2))], -1)
        wind = wind / count[:, None] * 3.6  # m/s -> km/h; no observation at all gives 0
        c, s = torch.cos(self.turn), torch.sin(self.turn)
        rotation = torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
        return self.log_steering_ratio.exp() * wind @ rotation.T

    def forward(self, features: torch.Tensor, x: torch.Tensor, x_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """features (b d Hf Wf), x / x_mask (b t n f) -> samples (b n K d), inside (b n K)."""
        motion = self.steering_wind(x, x_mask) * self.kmh_to_frac  # (b 2) box fraction / h
        where = self.station_frac[None, :, None, :] \
            - self.hours[None, None, :, None] * motion[:, None, None, :]  # (b n K 2)
        inside = ((where >= 0) & (where < 1)).all(dim=-1)
        samples = F.grid_sample(features, 2 * where - 1, mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # (b d n K)
        return samples.permute(0, 2, 3, 1), inside
