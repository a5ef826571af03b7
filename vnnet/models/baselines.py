"""Reference forecasts that every learned model must beat."""

from __future__ import annotations

from typing import Any

import torch

from vnnet.data.batch import Batch
from vnnet.models.base import ForecastModel, last_observed


class Persistence(ForecastModel):
    """Tomorrow is today: each target's last observed input value, held for every lead hour.

    Looks back through the input window for the most recent observed value per station
    (inputs may have gaps); a station with no observation in the window forecasts the
    training mean (0 in scaled units). Needs each target among the input variables.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        index = self.spec.target_input_index()
        missing = [t for t, i in zip(self.spec.target_variables, index, strict=True) if i is None]
        if missing:
            raise ValueError(f"Persistence needs the targets among the inputs; {missing} are not")
        self.register_buffer("target_index", torch.tensor(index, dtype=torch.long),
                             persistent=False)

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        value = last_observed(batch.x[..., self.target_index],
                              batch.x_mask[..., self.target_index])  # (b n c)
        return value.unsqueeze(1).expand(-1, self.spec.n_pred, -1, -1)
