"""``Ridge``: a linear forecast over lagged inputs and neighbours, fitted in closed form.

The strong classical bar on real station data: one ridge regression per lead hour and target,
pooled over stations (every station shares the weights), fitted from streamed normal
equations rather than by gradient descent. ``vnnet fit`` fits it (the ``Forecaster`` calls
:meth:`Ridge.fit_closed_form` with the datamodule's training and validation loaders in
``on_fit_start``); the weights are buffers, so the checkpoint holds them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from vnnet.data.batch import CYCLIC_FEATURE_NAMES, Batch
from vnnet.graphs import haversine_km
from vnnet.models.base import ForecastModel, last_observed
from vnnet.models.baselines import check_inputs

__all__ = ["DEFAULT_ALPHAS", "NotFittedError", "Ridge", "nearest_stations"]

#: The default penalty grid: ``lambda = alpha * rows`` on standardised features, 1e-6 .. 1e2
#: in half decades (the penalty per training row; ``rows`` ~ trace(Z^T Z) / p).
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-6, 2, 17))


class NotFittedError(ValueError):
    """A closed-form model asked to forecast before it was fitted."""


def nearest_stations(lat: np.ndarray, lon: np.ndarray, k: int) -> torch.Tensor:
    """(n k) int64 indices of each station's ``k`` nearest other stations (haversine), nearest
    first; ties go to the lower index."""
    d = haversine_km(lat, lon)
    np.fill_diagonal(d, np.inf)
    return torch.from_numpy(np.argsort(d, axis=1, kind="stable")[:, :k].astype(np.int64))


class Ridge(ForecastModel):
    """Ridge regression per lead hour and target, pooled over stations, fitted in closed form.

    Features of station ``s`` in a window (all scaled, layout of one row ``(p,)``):

    - its last ``n_his`` hours of every input, 0 where missing, and their observed-masks
      (``2 t f``);
    - the cyclic calendar of the init hour (hour-of-day and day-of-year sin, cos; ``k = 4``):
      with one fit per lead, the valid hour's sin/cos is a fixed rotation of these, so the
      linear model sees it too;
    - the standardised static location (lat, lon, elevation; ``3``);
    - the latest observed value of every input in the window at its ``k_neighbours`` nearest
      stations (haversine) and whether one was observed (``2 k f``);

    plus an intercept. The regression target is the residual against persistence:
    ``y[b, h, s, c] - y0[b, s, c]`` with ``y0`` the last observed value of the target in the
    input window (0 if none or if the target is not an input), so the penalty shrinks the
    forecast towards persistence. For lead ``h`` and target ``c`` (``j = (h, c)``):

    .. math::

        z = (x - \\mu) / \\sigma, \\qquad
        \\hat w_j(\\lambda) = \\arg\\min_w \\sum_{i: m_{ij}} (r_{ij} - w_0 - z_i^\\top w)^2
                            + \\lambda \\lVert w \\rVert^2, \\qquad \\lambda = \\alpha \\, N_j

    with ``mu``, ``sigma`` the training mean and std of each feature (a feature constant in
    training keeps sigma 1 and gets no weight), the intercept ``w_0`` not penalised, rows
    whose target is missing (``m_ij`` False) left out, and ``N_j`` the number of rows fitted
    (about trace(Z^T Z) / p on standardised features), so one ``alphas`` grid fits any data
    size. ``X^T X`` and ``X^T r`` are summed in float64 over the training loader (memory
    independent of the record length); each ``alpha`` is solved, scored by the masked MAE on
    the validation loader in one pass, and the best is kept for each ``(h, c)`` on its own
    (the first, smallest, on a tie; the largest where validation has no target).

    ``forward(batch) -> (b h n c)`` in scaled units. Buffers saved in the checkpoint:
    ``weight`` (h c p+1) in raw-feature coordinates (intercept first), ``alpha`` (h c) the
    chosen penalty, ``val_mae`` (h c len(alphas)) the validation scores, ``rows`` (h c) the
    training rows fitted (those with an observed target), ``fitted``.

    Args:
        data: the datamodule description.
        k_neighbours: neighbour stations whose latest observations are features (at most
            n - 1 are used).
        alphas: the penalty grid (per training row, on standardised features); default
            :data:`DEFAULT_ALPHAS`.
    """

    weight: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, data: dict[str, Any], k_neighbours: int = 4,
                 alphas: Sequence[float] | None = None) -> None:
        super().__init__(data)
        spec = self.spec
        if int(k_neighbours) != k_neighbours or k_neighbours < 0:
            raise ValueError(f"Ridge: k_neighbours must be an integer >= 0, got {k_neighbours!r}")
        grid = DEFAULT_ALPHAS if alphas is None else tuple(float(a) for a in alphas)
        if not grid or not all(np.isfinite(a) and a > 0 for a in grid):
            raise ValueError(f"Ridge: alphas must be a non-empty list of positive numbers, got "
                             f"{alphas!r}")
        self.k = min(int(k_neighbours), spec.n_stations - 1)
        index = spec.target_input_index()
        t, f, h, c = spec.n_his, spec.n_inputs, spec.n_pred, spec.n_targets
        #: Features per row, without the intercept.
        self.n_features = 2 * t * f + len(CYCLIC_FEATURE_NAMES) + 3 + 2 * self.k * f
        p = self.n_features + 1
        # Built from the description (stored with the checkpoint): not state-dict entries.
        self.register_buffer("alphas", torch.tensor(grid, dtype=torch.float64), persistent=False)
        self.register_buffer("neighbours", nearest_stations(spec.lat, spec.lon, self.k),
                             persistent=False)
        self.register_buffer("static", spec.static_features().double(), persistent=False)
        self.register_buffer("target_index", torch.tensor([-1 if i is None else i for i in index]),
                             persistent=False)
        # The fit: in the checkpoint.
        self.register_buffer("weight", torch.zeros(h, c, p, dtype=torch.float64))
        self.register_buffer("alpha", torch.full((h, c), float("nan"), dtype=torch.float64))
        self.register_buffer("val_mae", torch.full((h, c, len(grid)), float("nan"),
                                                   dtype=torch.float64))
        self.register_buffer("rows", torch.zeros(h, c, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    # ---- features (float64: the fit's sums and solves need it) ----------------------------
    def design(self, batch: Batch) -> torch.Tensor:
        """(b n p+1) design rows: 1 (the intercept), then the features listed in the class
        docstring, in that order."""
        check_inputs(self.spec, batch, "Ridge")
        b, t, n, f = batch.x.shape
        dtype = torch.float64
        x, mask = batch.x.to(dtype), batch.x_mask.to(dtype)
        latest = last_observed(x, batch.x_mask)  # (b n f)
        seen = batch.x_mask.any(dim=1).to(dtype)  # (b n f)
        near = self.neighbours.view(-1)
        return torch.cat([
            torch.ones(b, n, 1, dtype=dtype, device=x.device),
            x.permute(0, 2, 1, 3).reshape(b, n, t * f),
            mask.permute(0, 2, 1, 3).reshape(b, n, t * f),
            batch.time[:, -1].to(dtype).unsqueeze(1).expand(b, n, -1),
            self.static.to(dtype).expand(b, n, -1),
            latest[:, near].reshape(b, n, self.k * f),
            seen[:, near].reshape(b, n, self.k * f),
        ], dim=-1)

    def persistence(self, batch: Batch) -> torch.Tensor:
        """(b n c) the last observed value of each target in the input window (0: none, or
        the target is not an input): what the regression corrects."""
        idx = self.target_index.clamp_min(0)
        value = last_observed(batch.x[..., idx], batch.x_mask[..., idx]).double()
        return torch.where(self.target_index >= 0, value, torch.zeros_like(value))

    def _rows(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Design ``(N p+1)``, residual targets ``(N h*c)`` and their masks, ``N = b n``;
        column ``j = h * c_total + c``."""
        design = self.design(batch)
        b, n, p = design.shape
        residual = batch.y.to(design.dtype) - self.persistence(batch).unsqueeze(1)
        mask = batch.y_mask.permute(0, 2, 1, 3).reshape(b * n, -1)
        residual = residual.permute(0, 2, 1, 3).reshape(b * n, -1)
        return design.reshape(b * n, p), torch.where(mask, residual, 0.0), mask

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        if not bool(self.fitted):
            raise NotFittedError("Ridge is not fitted: run vnnet fit (e.g. vnnet fit --config "
                                 "configs/baselines/ridge.yaml), or test a fitted checkpoint "
                                 "with --ckpt_path")
        design = self.design(batch)
        with torch.autocast(design.device.type, enabled=False):  # float64, not bf16/fp16
            pred = torch.einsum("bnp,hcp->bhnc", design, self.weight)
        return (pred + self.persistence(batch).unsqueeze(1)).to(batch.x.dtype)

    # ---- the fit ------------------------------------------------------------------------
    @torch.no_grad()
    def fit_closed_form(self, train: Iterable[Batch], val: Iterable[Batch]) -> dict[str, Any]:
        """Fit the weights from the ``train`` batches and choose each ``(h, c)``'s penalty by
        the validation MAE on the ``val`` batches (one pass over each; batches are moved to
        this model's device). Returns a summary: rows, features, chosen alpha, seconds."""
        start = time.perf_counter()
        device, dtype = self.weight.device, torch.float64
        h, c, p = self.weight.shape
        gram = torch.zeros(h * c, p, p, dtype=dtype, device=device)  # sum_i m_ij x_i x_i^T
        cross = torch.zeros(h * c, p, dtype=dtype, device=device)  # sum_i m_ij r_ij x_i
        total = torch.zeros(p, p, dtype=dtype, device=device)  # over every row: the moments
        for batch in train:
            x, r, m = self._rows(batch.to(device))
            g = x.T @ x
            total += g
            gram += g
            for j in torch.nonzero(~m.all(dim=0)).view(-1).tolist():
                miss = x[~m[:, j]]  # usually few rows: cheaper than one product per column
                gram[j] -= miss.T @ miss
            cross += r.T @ x
        if total[0, 0] == 0:
            raise ValueError("Ridge: the training loader gave no windows to fit on")
        weights = self._solve(gram, cross, total)  # (L h*c p)

        abs_err = torch.zeros(len(self.alphas), h * c, dtype=dtype, device=device)
        count = torch.zeros(h * c, dtype=dtype, device=device)
        for batch in val:
            x, r, m = self._rows(batch.to(device))
            pred = torch.einsum("np,ljp->nlj", x, weights)
            abs_err += torch.where(m.unsqueeze(1), (pred - r.unsqueeze(1)).abs(), 0.0).sum(0)
            count += m.sum(0)
        mae = (abs_err / count).T  # (h*c L); NaN where validation has no target
        best = torch.where(count > 0, torch.nan_to_num(mae, nan=torch.inf).argmin(dim=1),
                           len(self.alphas) - 1)
        self.weight.copy_(weights[best, torch.arange(h * c, device=device)].view(h, c, p))
        self.alpha.copy_(self.alphas[best].view(h, c))
        self.val_mae.copy_(mae.view(h, c, -1))
        self.rows.copy_(gram[:, 0, 0].view(h, c))
        self.fitted.fill_(True)
        return {"rows": int(total[0, 0]), "features": p - 1, "alpha": self.alpha.tolist(),
                "seconds": time.perf_counter() - start}

    def _solve(self, gram: torch.Tensor, cross: torch.Tensor, total: torch.Tensor
               ) -> torch.Tensor:
        """(L h*c p) raw-coordinate weights for every alpha, from the accumulated moments.

        With ``T`` the standardising map ``[1, x] -> [1, (x - mu) / sigma]``, the
        standardised normal equations are ``(T G T^T + alpha N_j D) v = T b`` (``D`` = the
        identity without the intercept), and ``w = T^T v`` acts on raw rows.
        """
        n_all = total[0, 0]
        mean = total[0, 1:] / n_all
        var = (total.diagonal()[1:] / n_all - mean.square()).clamp_min(0.0)
        constant = var <= 1e-12 * (1.0 + mean.square())  # rounding noise, not a signal
        sd = torch.where(constant, 1.0, var.sqrt())
        t = torch.eye(len(total), dtype=total.dtype, device=total.device)
        t[1:, 0] = -mean / sd
        t[1:, 1:] = torch.diag(1.0 / sd)
        a = t @ gram @ t.T  # (h*c p p)
        b = cross @ t.T  # (h*c p)
        rows = gram[:, 0, 0]
        penalty = torch.ones(len(total), dtype=total.dtype, device=total.device)
        penalty[0] = 0.0
        # A (lead, target) never observed in training: w = 0, i.e. persistence.
        a = torch.where((rows == 0).view(-1, 1, 1), torch.eye(len(total), dtype=a.dtype,
                                                              device=a.device), a)
        out = []
        for alpha in self.alphas.tolist():
            system = a + torch.diag_embed((alpha * rows).unsqueeze(-1) * penalty)
            v = torch.linalg.solve(system, b.unsqueeze(-1)).squeeze(-1)
            out.append(v @ t)
        return torch.stack(out)
