"""vnnet: sparse spatio-temporal weather forecasting at ground stations, fusing a graph
network over the station network with a recurrent network over geostationary-satellite
image sequences (VN-Net, arXiv 2404.16037)."""

__version__ = "0.1.0"
