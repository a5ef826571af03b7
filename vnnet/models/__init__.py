"""Forecast models: VN-Net (paper version), baselines. All share ``model(batch) -> (b h n c)``."""

from vnnet.models.base import DataSpec, ForecastModel
from vnnet.models.baselines import Persistence
from vnnet.models.vnnet import VisionOptions, VNNet

__all__ = ["DataSpec", "ForecastModel", "Persistence", "VNNet", "VisionOptions"]
