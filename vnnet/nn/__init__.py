"""Neural-network building blocks of VN-Net (arXiv 2404.16037)."""

# "X as X" marks explicit re-exports (ruff F401) without a shared __all__ to edit
from vnnet.nn.adjacency import AdaptiveAdjacency as AdaptiveAdjacency
from vnnet.nn.adjacency import DynamicAdjacency as DynamicAdjacency
from vnnet.nn.adjacency import row_normalize as row_normalize
from vnnet.nn.advection import UpstreamSampler as UpstreamSampler
from vnnet.nn.attention import CrossAttentionBlock as CrossAttentionBlock
from vnnet.nn.attention import MultiScaleChannelSpatial as MultiScaleChannelSpatial
from vnnet.nn.attention import positional_encoding_2d as positional_encoding_2d
from vnnet.nn.convlstm import ConvLSTM as ConvLSTM
from vnnet.nn.convlstm import ConvLSTMCell as ConvLSTMCell
from vnnet.nn.degcn import DEGCNEncoder as DEGCNEncoder
from vnnet.nn.graph_gru import GraphConv as GraphConv
from vnnet.nn.graph_gru import GraphConvGRUCell as GraphConvGRUCell
from vnnet.nn.r2plus1d import MLVFEM as MLVFEM
