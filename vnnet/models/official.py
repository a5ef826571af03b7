"""VN-Net as in the official code: DEGCN + MLVFEM + LGVNFM + AGCRN decoder (VNNET-SPEC 2).

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") exists in two versions: the paper's
(:class:`vnnet.models.VNNet`) and the official implementation's (GitHub NoahRe1/VN-Net, a
later "journal" revision), rebuilt here from the description in VNNET-SPEC section 2 (no code
copied). End to end (L layers, b batch, t input hours, h lead hours, n stations):

1. :class:`~vnnet.nn.degcn.DEGCNEncoder` over ``(b t n f+3)`` station inputs -> ``F_X (L b n d)``;
2. :class:`~vnnet.nn.r2plus1d.MLVFEM` over ``(b t c H W)`` frames -> ``F_I (b d H/4 W/4)``;
3. :class:`~vnnet.models.lgvnfm.LGVNFMFusion` -> ``(L b n d)``, the decoder's initial state;
4. :class:`AGCRNDecoder`: AGCRN GRU cells over the decoder's own adaptive graph, GO = zeros,
   autoregressive over h steps with scheduled sampling -> ``(b h n c)`` scaled forecasts.

``vision=False`` skips 2-3 (the decoder starts from ``F_X``): the numerical-only variant the
official code has no switch for. ``official_init`` re-initialises every parameter as the
official code does (VNNET-SPEC 2.6).

:func:`official_parameter_count` reconciles this model's size with the official totals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vnnet.data.batch import Batch
from vnnet.data.readers.weather2k import WEATHER2K_FEATURES
from vnnet.models.agcrn import AGCRNCell, chebyshev_supports
from vnnet.models.base import ForecastModel
from vnnet.models.baselines import check_inputs
from vnnet.models.lgvnfm import LGVNFMFusion
from vnnet.nn.degcn import DEGCNEncoder
from vnnet.nn.r2plus1d import MLVFEM

__all__ = ["OFFICIAL_MODULES_D60", "OFFICIAL_TOTALS", "AGCRNDecoder", "VNNetOfficial",
           "official_description", "official_initialisation", "official_parameter_count",
           "unused_official_parameters"]

#: Trainable parameters of the official model per region size N (VNNET-SPEC 2.7).
OFFICIAL_TOTALS: dict[int, int] = {60: 1_634_311, 96: 1_671_751, 139: 1_716_471}
#: The official per-module breakdown for d60 (VNNET-SPEC 2.7).
OFFICIAL_MODULES_D60: dict[str, int] = {"encoder": 934_904, "decoder": 449_025,
                                        "mlvfem": 244_078, "lgvnfm": 6_304}


def official_initialisation(module: nn.Module) -> None:
    """The official global re-initialisation (VNNET-SPEC 2.6), in place.

    Every parameter with more than one dimension (linear and conv weights, weight pools,
    embedding tables, attention projections) -> Xavier-uniform; every 0-/1-dim parameter
    (biases, BatchNorm weight and bias, the diffusion alpha) -> U(0, 1). This overrides the
    module-specific inits (e.g. BatchNorm's weight 1 / bias 0, zero biases).
    """
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
            else:
                nn.init.uniform_(p, 0.0, 1.0)


class AGCRNDecoder(nn.Module):
    """The official decoder: stacked AGCRN GRU cells, autoregressive, scheduled sampling.

    Each layer is :class:`vnnet.models.agcrn.AGCRNCell` (node-adaptive Chebyshev graph
    convolution, ``K`` supports of ``softmax(relu(E E^T))`` from the decoder's own static
    node embedding ``E (n d_e)``; weight pools ``(d_e K in out)``). That cell names its gate
    halves the other way round from the official one (the *first* half keeps the old state,
    the second resets it): the same function up to a permutation of the gate pool's output
    columns, with the same parameters and initial distribution. The first step's input is
    zeros (the official GO symbol), each later step's input the previous prediction;
    ``Linear(hidden -> c)`` projects the top state.

    Args:
        n_nodes: stations n.
        out_dim: targets c (official 1), also the step input size.
        hidden: state size d (official 32).
        n_layers: stacked cells (official 2).
        embed_dim: node-embedding size (official 8).
        cheb_order: Chebyshev supports K (official ``max_view`` = 6).
    """

    def __init__(self, n_nodes: int, out_dim: int, hidden: int = 32, n_layers: int = 2,
                 embed_dim: int = 8, cheb_order: int = 6) -> None:
        super().__init__()
        if min(n_nodes, out_dim, hidden, n_layers, embed_dim) < 1 or cheb_order < 2:
            raise ValueError(f"AGCRNDecoder: need n_nodes, out_dim, hidden, n_layers, embed_dim "
                             f">= 1 and cheb_order >= 2, got {n_nodes}, {out_dim}, {hidden}, "
                             f"{n_layers}, {embed_dim}, {cheb_order}")
        self.n_nodes, self.out_dim, self.hidden, self.n_layers = n_nodes, out_dim, hidden, n_layers
        self.cheb_order = cheb_order
        self.node_embedding = nn.Parameter(torch.empty(n_nodes, embed_dim))
        nn.init.xavier_uniform_(self.node_embedding)
        dims = [out_dim] + [hidden] * (n_layers - 1)
        self.cells = nn.ModuleList(AGCRNCell(d, hidden, embed_dim, cheb_order) for d in dims)
        self.projection = nn.Linear(hidden, out_dim)

    def adjacency(self) -> torch.Tensor:
        """The decoder's ``(n n)`` row-stochastic graph ``softmax(relu(E E^T))``."""
        e = self.node_embedding
        return torch.softmax(torch.relu(e @ e.T), dim=-1)

    def forward(self, h0: torch.Tensor, n_pred: int, targets: torch.Tensor | None = None,
                target_mask: torch.Tensor | None = None, teacher_forcing: float = 0.0
                ) -> torch.Tensor:
        """Decode ``n_pred`` steps from ``h0 (L b n d)`` -> ``(b h n c)``.

        In training mode with ``teacher_forcing > 0``, before each step after the first one
        coin per batch decides (with that probability) to feed the previous step's truth
        ``targets[:, step - 1]`` (``(b h n c)``) instead of the prediction, where
        ``target_mask`` (default: finite targets) says it was observed (DCRNN's curriculum).
        """
        if h0.dim() != 4 or h0.shape[0] != self.n_layers \
                or h0.shape[2:] != (self.n_nodes, self.hidden):
            raise ValueError(f"AGCRNDecoder: h0: expected (L b n d) = ({self.n_layers} b "
                             f"{self.n_nodes} {self.hidden}), got {tuple(h0.shape)}")
        if n_pred < 1:
            raise ValueError(f"AGCRNDecoder: n_pred: expected >= 1, got {n_pred}")
        b = h0.shape[1]
        sampling = self.training and teacher_forcing > 0.0 and n_pred > 1
        if sampling:
            expect = (b, n_pred, self.n_nodes, self.out_dim)
            if targets is None or tuple(targets.shape) != expect:
                got = None if targets is None else tuple(targets.shape)
                raise ValueError(f"AGCRNDecoder: targets (b h n c) = {expect} are needed for "
                                 f"teacher_forcing > 0 in training, got {got}")
            if target_mask is None:
                target_mask = torch.isfinite(targets)
            elif target_mask.shape != targets.shape:
                raise ValueError(f"AGCRNDecoder: target_mask: expected {expect}, got "
                                 f"{tuple(target_mask.shape)}")
        embeddings = self.node_embedding
        supports = chebyshev_supports(self.adjacency(), self.cheb_order).to(h0.dtype)
        states = list(h0.unbind(0))
        inp = h0.new_zeros(b, self.n_nodes, self.out_dim)  # GO symbol
        preds = []
        for step in range(n_pred):
            if step > 0:
                inp = preds[-1]
                if sampling and bool(torch.rand(()) < teacher_forcing):
                    inp = torch.where(target_mask[:, step - 1], targets[:, step - 1], inp)
            for layer, cell in enumerate(self.cells):
                states[layer] = cell(inp, states[layer], supports, embeddings)
                inp = states[layer]
            preds.append(self.projection(inp))
        return torch.stack(preds, dim=1)


class VNNetOfficial(ForecastModel):
    """VN-Net, official-code version: ``(b t n f)`` inputs + ``(b t c H W)`` frames ->
    ``(b h n c)`` scaled forecasts.

    Encoder inputs per station and hour: the f scaled variables (0 where missing) and the
    standardised static location (lat, lon, elevation). On Weather2K (20 variables) that is the
    official 23-feature input, whose first three features are the z-scored station lat, lon and
    altitude. Calendar: ``batch.time_index`` (month, day, hour) drives the time-aware node
    embeddings (the official code appends the same three integers to the input). Frames of
    ``H x W`` pixels give an ``H/4 x W/4`` feature grid over the same lat/lon box (rounded up
    when H or W is not a multiple of 4, then the last row/column covers a little more).

    Args:
        data: the datamodule description (``WeatherDataModule.description()``).
        hidden: state size of encoder, fusion, decoder and image features (official 32).
        n_layers: layers of encoder and decoder (official 2).
        embed_dim: node / calendar embedding size (official 8).
        cheb_order: Chebyshev supports K of encoder and decoder (official ``max_view`` 6).
        dgnn_hidden: SDGC / CGD feature size (official 64).
        ode_steps, ode_step_size: explicit Euler steps of the graph diffusion (official 4 x 0.25).
        dropout: dropout in the DGNN blocks (official 0.3).
        vision: MLVFEM + LGVNFM on; False gives the numerical-only variant.
        image_noise: replace the frames by N(0, 1) noise at train and test time (the official
            ``is_random`` control; like the official code the noise is not min-max scaled).
        official_init: the official global re-initialisation (:func:`official_initialisation`).
    """

    def __init__(self, data: dict[str, Any], hidden: int = 32, n_layers: int = 2,
                 embed_dim: int = 8, cheb_order: int = 6, dgnn_hidden: int = 64,
                 ode_steps: int = 4, ode_step_size: float = 0.25, dropout: float = 0.3,
                 vision: bool = True, image_noise: bool = False, official_init: bool = True
                 ) -> None:
        super().__init__(data)
        spec = self.spec
        if vision and not spec.has_images:
            raise ValueError("VNNetOfficial has a vision branch but the data has no satellite "
                             "images; set vision: false or give the datamodule a satellite")
        if image_noise and not vision:
            raise ValueError("image_noise needs the vision branch (vision is false)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected in [0, 1), got {dropout}")
        self.register_buffer("static_features", spec.static_features(), persistent=False)
        self.encoder = DEGCNEncoder(spec.n_stations, spec.n_inputs + 3, hidden, n_layers,
                                    embed_dim, cheb_order, dgnn_hidden, ode_steps, ode_step_size,
                                    dropout)
        self.vision = self.fusion = None
        self.image_noise = image_noise
        if vision:
            self.vision = MLVFEM(spec.image_channels, hidden)
            feature_size = MLVFEM.feature_size(*spec.image_size)
            rows, cols = spec.pixels_on_grid(*feature_size)
            self.fusion = LGVNFMFusion(hidden, rows, cols, feature_size)
        self.decoder = AGCRNDecoder(spec.n_stations, spec.n_targets, hidden, n_layers, embed_dim,
                                    cheb_order)
        if official_init:
            official_initialisation(self)

    def encode(self, batch: Batch) -> torch.Tensor:
        """``(L b n d)`` encoder states, fused with the images when the vision branch is on."""
        check_inputs(self.spec, batch, "VNNetOfficial")
        b, t, n, _ = batch.x.shape
        inputs = torch.cat([batch.x, self.static_features.to(batch.x.dtype).expand(b, t, n, -1)],
                           dim=-1)
        states = self.encoder(inputs, batch.time_index)
        if self.vision is None:
            return states
        if batch.images is None:
            raise ValueError("VNNetOfficial has a vision branch but the batch carries no images")
        expect = (b, t, self.spec.image_channels, *self.spec.image_size)
        if tuple(batch.images.shape) != expect:
            raise ValueError(f"VNNetOfficial: batch.images: expected (b t c H W) = {expect}, got "
                             f"{tuple(batch.images.shape)}")
        if self.image_noise:
            features = self.vision(torch.randn_like(batch.images))
        else:
            features = self.vision(batch.images, batch.image_mask)
        return self.fusion(states, features)

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        states = self.encode(batch)
        return self.decoder(states, self.spec.n_pred, targets=batch.y, target_mask=batch.y_mask,
                            teacher_forcing=teacher_forcing)


# ---- size of the official model -----------------------------------------------------------

def official_description(n_stations: int, image_channels: int = 6, image_size: int = 160,
                         n_his: int = 12, n_pred: int = 12, seed: int = 0) -> dict[str, Any]:
    """A datamodule description shaped like a Weather2K region (no data needed).

    ``n_stations`` stations at random positions inside a 6.4 x 6.4 degree satellite box of
    ``image_size`` pixels a side, the 20 Weather2K variables as inputs (+ lat, lon, elevation
    = the official 23 input features) and air temperature as the target.
    """
    rng = np.random.default_rng(seed)
    step = 6.4 / image_size
    lat = 30.0 + step * (np.arange(image_size)[::-1] + 0.5)  # descending, row 0 = north
    lon = 110.0 + step * (np.arange(image_size) + 0.5)
    return {
        "station_ids": [f"s{i:03d}" for i in range(n_stations)],
        "lat": rng.uniform(30.5, 35.9, n_stations).tolist(),
        "lon": rng.uniform(110.5, 115.9, n_stations).tolist(),
        "elevation": rng.uniform(0.0, 500.0, n_stations).tolist(),
        "input_variables": list(WEATHER2K_FEATURES[3:]),
        "target_variables": ["air_temperature"],
        "n_his": n_his, "n_pred": n_pred,
        "satellite": {"channels": [f"ir{i + 1}" for i in range(image_channels)],
                      "lat": lat.tolist(), "lon": lon.tolist()},
    }


def unused_official_parameters(n_stations: int, n_layers: int = 2, dgnn_hidden: int = 64
                               ) -> dict[str, int]:
    """Parameters the official encoder builds but never uses, per kind.

    Each of its ``2 * n_layers`` DGNN blocks holds

    - two ``BatchNorm1d(dgnn_hidden * n)`` layers, never applied: ``2 * 2 * dgnn_hidden * n``
      (the N-dependence of the official totals, 1,040 per station = 16 embedding rows + 8 x 128,
      shows there are 8 in a 2-layer encoder);
    - two GREAD ODE-function objects (one used, one a duplicate) of ``4 + 2 * dgnn_hidden``
      parameters each (scalars alpha, source, alpha_sc, source_sc; ``dgnn_hidden``-vectors beta
      (``beta_dim: vc``) and the diagonal ``b_W`` (``beta_diag: true``)), of which only the
      used object's alpha enters the computation: ``2 * (4 + 2 * dgnn_hidden) - 1``.
    """
    blocks = 2 * n_layers
    return {"batch_norm": blocks * 2 * 2 * dgnn_hidden * n_stations,
            "ode_functions": blocks * (2 * (4 + 2 * dgnn_hidden) - 1)}


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def official_parameter_count(n_stations: int, image_channels: int = 6) -> dict[str, Any]:
    """This model's parameter count with the official sizes, reconciled with the official one.

    Builds :class:`VNNetOfficial` for a Weather2K-shaped region (:func:`official_description`)
    and returns ``{"ours": {encoder, decoder, mlvfem, lgvnfm, total}, "unused":
    unused_official_parameters(n), "encoder_official": ours + unused, "total_official":
    ours + unused, "reported": OFFICIAL_TOTALS.get(n)}``.
    """
    model = VNNetOfficial(official_description(n_stations, image_channels))
    ours = {"encoder": _count(model.encoder), "decoder": _count(model.decoder),
            "mlvfem": _count(model.vision), "lgvnfm": _count(model.fusion)}
    ours["total"] = _count(model)
    if ours["total"] != sum(v for k, v in ours.items() if k != "total"):
        raise RuntimeError("VNNetOfficial holds parameters outside its four modules")
    unused = unused_official_parameters(n_stations)
    return {"ours": ours, "unused": unused,
            "encoder_official": ours["encoder"] + sum(unused.values()),
            "total_official": ours["total"] + sum(unused.values()),
            "reported": OFFICIAL_TOTALS.get(n_stations)}


if __name__ == "__main__":  # python -m vnnet.models.official: the reconciliation table
    for n in OFFICIAL_TOTALS:
        c = official_parameter_count(n)
        print(f"N={n}: ours {c['ours']}, unused in the official encoder {c['unused']}, "
              f"ours + unused {c['total_official']:,} vs official {c['reported']:,}")
