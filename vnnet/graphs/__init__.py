"""Station networks: great-circle geometry, station graphs and co-registration on image grids.

Tensor- and array-only: nothing here imports the rest of vnnet, so data, layers and models
can all build on it.
"""

from vnnet.graphs.coregistration import PixelMap, station_pixels
from vnnet.graphs.distance_graph import distance_graph
from vnnet.graphs.distances import EARTH_RADIUS_KM, haversine_km, haversine_pair_km
from vnnet.graphs.station_graph import StationGraph, dense_to_edges, station_hash

__all__ = ["EARTH_RADIUS_KM", "PixelMap", "StationGraph", "dense_to_edges", "distance_graph",
           "haversine_km", "haversine_pair_km", "station_hash", "station_pixels"]
