"""Interpretation analyses of VN-Net (arXiv 2404.16037): what the satellite images add,
where each station looks on the image, which input factors matter, and skill against
reference forecasts. numpy / xarray in, xarray / pandas out; :mod:`vnnet.plots` draws.

- :func:`absolute_errors`: forecast Dataset (``Forecaster.predict_xarray``) + observations
  -> absolute errors per (init_time, lead_time, station), NaN where unobserved.
- :func:`vision_contribution`: relative MAE change against a reference model (e.g. VN-Net
  and the noise-image control against N-Net) with paired bootstrap intervals.
- :func:`skill`: MAE skill score against persistence / climatology per lead time.
- :func:`fusion_attention` / :func:`fusion_attention_maps`: DQAM station-over-image
  attention as (layer, station, lat, lon) maps.
- :func:`permutation_importance`: MAE increase when an input variable, the static location
  or the images are shuffled.
"""

from vnnet.analysis.attention import fusion_attention, fusion_attention_maps
from vnnet.analysis.contribution import bootstrap_weights, vision_contribution
from vnnet.analysis.errors import absolute_errors, common_support
from vnnet.analysis.importance import cyclic_permutation, permutation_importance
from vnnet.analysis.skill import skill

__all__ = [
    "absolute_errors", "bootstrap_weights", "common_support", "cyclic_permutation",
    "fusion_attention", "fusion_attention_maps", "permutation_importance", "skill",
    "vision_contribution",
]
