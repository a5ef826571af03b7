"""vnnet: sparse spatio-temporal weather forecasting at ground stations, fusing a graph
network over the station network with a recurrent network over geostationary-satellite
image sequences (VN-Net, arXiv 2404.16037)."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so `import vnnet` (and `vnnet data ...`) does not pay for Lightning's import.
    if name == "Forecaster":
        from vnnet.forecaster import Forecaster

        return Forecaster
    raise AttributeError(f"module 'vnnet' has no attribute {name!r}")
