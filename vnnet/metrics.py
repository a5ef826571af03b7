"""Masked forecast errors in physical units: MAE and RMSE overall, per lead hour, per target.

Only entries where the target was observed count (the mask of DESIGN.md); RMSE is one
square root of the mean squared error over the whole set, not an average of per-window
RMSEs (VNNET-SPEC 4.1). The metric accumulates sums, so it is exact across batches and
synchronises across processes by summation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is True (0 when nothing is observed)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over observed entries; missing targets (NaN or masked) ignored."""
    diff = torch.where(mask, pred - target, torch.zeros_like(pred))
    return masked_mean(diff.abs(), mask)


class ForecastErrors(Metric):
    """Accumulates masked absolute and squared errors per lead hour and target.

    ``update(pred, target, mask)`` takes (b h n c) tensors in physical units and a boolean
    mask; ``compute()`` returns a flat dict: ``mae``, ``rmse`` (per target then averaged over
    targets when there are several), ``mae_h{k}`` / ``rmse_h{k}`` for lead k = 1..h, and with
    several targets also ``mae_{name}``, ``rmse_{name}``, ``mae_{name}_h{k}``, ...
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, n_pred: int, target_names: Sequence[str]) -> None:
        super().__init__()
        self.n_pred, self.target_names = n_pred, list(target_names)
        shape = (n_pred, len(self.target_names))
        for name in ("abs_sum", "sq_sum", "count"):
            self.add_state(name, default=torch.zeros(shape, dtype=torch.float64),
                           dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        if pred.shape != target.shape or pred.shape != mask.shape:
            raise ValueError(f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
                             f"{tuple(mask.shape)} must have the same (b h n c) shape")
        mask = mask & torch.isfinite(target)
        diff = torch.where(mask, pred.double() - target.double(), 0.0)
        self.abs_sum += diff.abs().sum(dim=(0, 2))
        self.sq_sum += diff.square().sum(dim=(0, 2))
        self.count += mask.sum(dim=(0, 2)).double()

    @staticmethod
    def _errors(abs_sum: torch.Tensor, sq_sum: torch.Tensor, count: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        count = count.clamp_min(1.0)
        return abs_sum / count, (sq_sum / count).sqrt()

    def compute(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        # Per target over all leads, then averaged over targets (units differ between targets).
        mae_c, rmse_c = self._errors(self.abs_sum.sum(0), self.sq_sum.sum(0), self.count.sum(0))
        mae_hc, rmse_hc = self._errors(self.abs_sum, self.sq_sum, self.count)
        out["mae"], out["rmse"] = mae_c.mean(), rmse_c.mean()
        for k in range(self.n_pred):
            out[f"mae_h{k + 1}"], out[f"rmse_h{k + 1}"] = mae_hc[k].mean(), rmse_hc[k].mean()
        if len(self.target_names) > 1:
            for j, name in enumerate(self.target_names):
                out[f"mae_{name}"], out[f"rmse_{name}"] = mae_c[j], rmse_c[j]
                for k in range(self.n_pred):
                    out[f"mae_{name}_h{k + 1}"] = mae_hc[k, j]
                    out[f"rmse_{name}_h{k + 1}"] = rmse_hc[k, j]
        return {key: value.float() for key, value in out.items()}


def per_station_errors(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(n c) masked MAE and RMSE per station from (b h n c) physical-unit tensors."""
    mask = mask & torch.isfinite(target)
    diff = torch.where(mask, pred - target, torch.zeros_like(pred))
    count = mask.sum(dim=(0, 1)).clamp_min(1)
    return diff.abs().sum(dim=(0, 1)) / count, (diff.square().sum(dim=(0, 1)) / count).sqrt()
