"""How much the satellite images add: relative MAE change against a reference model.

VN-Net (arXiv 2404.16037) reports an "interpretation analysis" of the visual branch: the
same network with and without images (N-Net, its numerical-only ablation) and with noise in
place of the images (the official code's ``is_random`` control). :func:`vision_contribution`
measures the change in MAE of each model against a reference, per target, lead time and
station, with paired bootstrap confidence intervals over forecast init times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from vnnet.analysis.errors import ERROR_DIMS, common_support

__all__ = ["bootstrap_weights", "vision_contribution"]

KEEPABLE = ("lead_time", "station")


def bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator,
                      block_length: int = 1) -> np.ndarray:
    """(n_boot, n) how often each of ``n`` ordered samples is drawn in each resample.

    ``block_length`` 1 draws samples independently with replacement; a longer block draws
    runs of consecutive samples (the moving-block bootstrap), which keeps the dependence
    between neighbouring init times (hourly windows share most of their weather).
    """
    if n < 1 or n_boot < 1:
        raise ValueError(f"need at least one sample and one resample, got n={n}, "
                         f"n_boot={n_boot}")
    if not 1 <= block_length <= n:
        raise ValueError(f"block_length must be in [1, {n}] (the number of init times), got "
                         f"{block_length}")
    n_blocks = -(-n // block_length)
    starts = rng.integers(0, n - block_length + 1, size=(n_boot, n_blocks))
    index = (starts[..., None] + np.arange(block_length)).reshape(n_boot, -1)[:, :n]
    flat = index + n * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _pooled(errors: xr.DataArray, by: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(init_time, *by) sums of absolute errors and counts of observed points."""
    pooled = [d for d in ERROR_DIMS[1:] if d not in by]
    values = errors.transpose("init_time", *by, *pooled).values
    observed = np.isfinite(values)
    axes = tuple(range(1 + len(by), values.ndim))
    return (np.where(observed, values, 0.0).sum(axis=axes),
            observed.sum(axis=axes).astype(np.float64))


def vision_contribution(errors_by_model: Mapping[str, xr.Dataset | xr.DataArray],
                        reference: str = "N-Net", n_boot: int = 1000, seed: int = 0,
                        ci: float = 0.95, by: Sequence[str] = KEEPABLE,
                        block_length: int = 1) -> xr.Dataset:
    """Relative MAE change of each model against ``reference``, with bootstrap intervals.

    The change is ``MAE_model / MAE_reference - 1``: negative when the model is better, e.g.
    -0.08 for VN-Net 8 % below N-Net. Comparing VN-Net and the noise-image control against
    N-Net separates what real images add from what extra capacity alone does (arXiv
    2404.16037, interpretation analysis; the official code's ``is_random`` images).

    Args:
        errors_by_model: model name -> absolute errors with dims ``(init_time, lead_time,
            station)`` (:func:`vnnet.analysis.absolute_errors`), NaN where unobserved. Only
            points observed for every model count (:func:`common_support`).
        reference: the name of the reference model among ``errors_by_model``.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.
        ci: the central probability of the percentile intervals.
        by: the dims kept in the result, among ``lead_time`` and ``station``; the others
            (and ``init_time``) are pooled: ``by=()`` gives one overall number per target.
        block_length: init times per resampled block (1: independent draws).

    The bootstrap resamples init times (forecast windows) with replacement, the same
    resamples for every model and the reference (paired), so the interval reflects how the
    difference between models varies from window to window, not each model's own spread.

    Returns a Dataset with dims ``(model, target, *by)`` (``model`` without the reference):
    ``relative_change`` with ``ci_lower``/``ci_upper``, ``mae`` and ``mae_reference`` (in
    each target's units) and ``n_observed``, the number of points pooled.
    """
    by = tuple(str(d) for d in by)
    unknown = [d for d in by if d not in KEEPABLE]
    if unknown or len(set(by)) != len(by):
        raise ValueError(f"by: expected distinct dims among {KEEPABLE}, got {by}")
    by = tuple(d for d in KEEPABLE if d in by)
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if reference not in errors_by_model:
        raise ValueError(f"reference '{reference}' is not among the models "
                         f"{list(errors_by_model)}")
    if len(errors_by_model) < 2:
        raise ValueError("errors_by_model: need the reference and at least one other model")
    aligned = common_support(errors_by_model)
    models = [m for m in aligned if m != reference]
    targets = list(aligned[reference].data_vars)
    ref_ds = aligned[reference]
    n_init = ref_ds.sizes["init_time"]
    weights = bootstrap_weights(n_init, n_boot, np.random.default_rng(seed), block_length)
    tail = (1 - ci) / 2

    keys = ("relative_change", "ci_lower", "ci_upper", "mae", "mae_reference", "n_observed")
    out = {key: [] for key in keys}
    for model in models:
        rows = {key: [] for key in keys}
        for target in targets:
            ref_sum, count = _pooled(ref_ds[target], by)
            model_sum, _ = _pooled(aligned[model][target], by)
            cells = ref_sum.shape[1:]
            total_ref, total_model, n_obs = ref_sum.sum(0), model_sum.sum(0), count.sum(0)
            with np.errstate(divide="ignore", invalid="ignore"):
                estimate = np.where(total_ref > 0, total_model / total_ref - 1, np.nan)
                boot_ref = weights @ ref_sum.reshape(n_init, -1)
                boot_model = weights @ model_sum.reshape(n_init, -1)
                boot = np.where(boot_ref > 0, boot_model / boot_ref - 1, np.nan)
                mae = np.where(n_obs > 0, total_model / n_obs, np.nan)
                mae_ref = np.where(n_obs > 0, total_ref / n_obs, np.nan)
            lower, upper = _percentiles(boot, tail)
            for key, value in zip(keys, (estimate, lower.reshape(cells), upper.reshape(cells),
                                         mae, mae_ref, n_obs), strict=True):
                rows[key].append(value)
        for key in keys:
            out[key].append(np.stack(rows[key]))

    dims = ("model", "target", *by)
    coords: dict = {"model": models, "target": targets}
    for d in by:
        coords[d] = ref_ds[d].values
    if "station" in by:
        for c in ("lat", "lon", "elevation"):
            if c in ref_ds.coords and ref_ds[c].dims == ("station",):
                coords[c] = ("station", ref_ds[c].values)
    attrs = {
        "relative_change": {"long_name": "relative MAE change against the reference "
                            "(MAE / MAE_reference - 1)", "units": "1"},
        "ci_lower": {"long_name": f"lower bound of the {ci:.0%} bootstrap interval",
                     "units": "1"},
        "ci_upper": {"long_name": f"upper bound of the {ci:.0%} bootstrap interval",
                     "units": "1"},
        "mae": {"long_name": "MAE of the model (each target in its own units)"},
        "mae_reference": {"long_name": "MAE of the reference on the same points"},
        "n_observed": {"long_name": "observed points pooled", "units": "1"},
    }
    return xr.Dataset(
        {key: (dims, np.stack(out[key]), attrs[key]) for key in keys}, coords=coords,
        attrs={"reference": reference, "n_boot": n_boot, "ci": ci, "seed": seed,
               "block_length": block_length, "n_init_times": n_init,
               "resampling": "paired bootstrap over init times"})


def _percentiles(boot: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell percentile bounds of (n_boot, cells) resampled values, NaN where all NaN."""
    finite = np.isfinite(boot).any(axis=0)
    lower = np.full(boot.shape[1], np.nan)
    upper = np.full(boot.shape[1], np.nan)
    if finite.any():
        lower[finite], upper[finite] = np.nanquantile(boot[:, finite], [tail, 1 - tail],
                                                      axis=0)
    return lower, upper
