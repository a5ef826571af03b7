"""MAE skill scores against reference forecasts (persistence, climatology).

A skill score says how much of a reference forecast's error a model removes:
``1 - MAE / MAE_reference`` (1 perfect, 0 no better than the reference, negative worse).
VN-Net (arXiv 2404.16037) is judged by MAE per lead hour; scoring it against persistence
(``vnnet.models.Persistence``) and the station x hour-of-day climatology
(``vnnet.models.Climatology``) puts those numbers on a scale that means the same on any
station network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from vnnet.analysis.errors import common_support

__all__ = ["skill"]


def skill(errors_by_model: Mapping[str, xr.Dataset | xr.DataArray],
          reference: str | Sequence[str] = ("Persistence", "Climatology")) -> xr.Dataset:
    """MAE skill score ``1 - MAE / MAE_reference`` of every model, per lead time.

    Args:
        errors_by_model: model name -> absolute errors with dims ``(init_time, lead_time,
            station)`` (:func:`vnnet.analysis.absolute_errors`), including the references.
            Only points observed for every model count (:func:`common_support`).
        reference: the name(s) of the reference model(s) among ``errors_by_model``.

    Returns a Dataset with ``skill`` (reference, model, target, lead_time) and
    ``skill_all_leads`` (reference, model, target), from ``mae`` (model, target,
    lead_time) and ``mae_all_leads`` (model, target) pooled over init times and stations
    (and leads). A reference scores 0 against itself.
    """
    references = [reference] if isinstance(reference, str) else [str(r) for r in reference]
    if not references:
        raise ValueError("reference: give at least one reference model")
    unknown = [r for r in references if r not in errors_by_model]
    if unknown:
        raise ValueError(f"reference(s) {unknown} not among the models {list(errors_by_model)}")
    aligned = common_support(errors_by_model)
    models = list(aligned)
    targets = list(aligned[models[0]].data_vars)
    leads = aligned[models[0]]["lead_time"].values

    sums = np.zeros((len(models), len(targets), len(leads)))
    counts = np.zeros_like(sums)
    for i, model in enumerate(models):
        for j, target in enumerate(targets):
            values = aligned[model][target].transpose("lead_time", ...).values
            values = values.reshape(len(leads), -1)
            observed = np.isfinite(values)
            sums[i, j] = np.where(observed, values, 0.0).sum(axis=1)
            counts[i, j] = observed.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mae = np.where(counts > 0, sums / counts, np.nan)
        total = counts.sum(-1)
        mae_all = np.where(total > 0, sums.sum(-1) / total, np.nan)
        ref = [models.index(r) for r in references]
        score = 1 - mae[None] / mae[ref][:, None]
        score_all = 1 - mae_all[None] / mae_all[ref][:, None]
    dims, dims_all = ("reference", "model", "target", "lead_time"), ("reference", "model",
                                                                      "target")
    return xr.Dataset(
        {
            "skill": (dims, score, {"long_name": "MAE skill score 1 - MAE / MAE_reference",
                                    "units": "1"}),
            "skill_all_leads": (dims_all, score_all, {"long_name": "MAE skill score over "
                                                      "all leads", "units": "1"}),
            "mae": (dims[1:], mae, {"long_name": "MAE (each target in its own units)"}),
            "mae_all_leads": (dims_all[1:], mae_all, {"long_name": "MAE over all leads"}),
        },
        coords={"reference": references, "model": models, "target": targets,
                "lead_time": leads},
    )
