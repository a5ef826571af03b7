"""What every forecast model shares: the data spec it is built for and its forward contract.

A model is built from the datamodule's ``description()`` (station list and coordinates,
variables, scalers, graph parameters, satellite grid) plus its own hyper-parameters, and
records its constructor arguments so a checkpoint can rebuild it without the datamodule.
Forward contract: ``model(batch, teacher_forcing=0.0) -> (b h n c)`` in scaled units.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from torch import nn

from vnnet.data.batch import Batch
from vnnet.data.spec import DataSpec


def last_observed(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b n c) most recent observed value in a (b t n c) window; 0 (the mean) if none."""
    t = x.shape[1]
    steps = torch.arange(t, device=x.device).view(1, t, 1, 1).expand_as(x)
    last = torch.where(mask, steps, -1).amax(dim=1, keepdim=True)
    value = torch.gather(x, 1, last.clamp_min(0))
    return torch.where(last >= 0, value, torch.zeros_like(value)).squeeze(1)


class ForecastModel(nn.Module):
    """Base class of vnnet models: records constructor arguments in ``init_args``.

    Subclasses take ``data`` (a datamodule description dict) as their first argument and
    implement ``forward(batch, teacher_forcing=0.0) -> (b h n c)`` in scaled units.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__init__

        @functools.wraps(init)
        def recording_init(self: ForecastModel, *args: Any, **kw: Any) -> None:
            if not hasattr(self, "_recording"):  # only the outermost __init__ records
                self._recording = True
                bound = inspect.signature(init).bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                init(self, *args, **kw)
                self.init_args = arguments
            else:
                init(self, *args, **kw)

        cls.__init__ = recording_init

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.spec = DataSpec.from_description(data)

    def config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: how to rebuild this model (LightningCLI form)."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                "init_args": dict(self.init_args)}

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        raise NotImplementedError
