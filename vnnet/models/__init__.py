"""Forecast models: VN-Net (paper version), baselines. All share ``model(batch) -> (b h n c)``."""

from vnnet.models.agcrn import AGCRN
from vnnet.models.base import DataSpec, ForecastModel
from vnnet.models.baselines import Climatology, Persistence, SeasonalPersistence
from vnnet.models.graph_wavenet import GraphWaveNet
from vnnet.models.gru import GRUBaseline
from vnnet.models.official import VNNetOfficial
from vnnet.models.ridge import Ridge
from vnnet.models.stgcn import STGCN
from vnnet.models.vnnet import VisionOptions, VNNet

__all__ = ["AGCRN", "STGCN", "Climatology", "DataSpec", "ForecastModel", "GRUBaseline",
           "GraphWaveNet", "Persistence", "Ridge", "SeasonalPersistence", "VNNet",
           "VNNetOfficial", "VisionOptions"]
