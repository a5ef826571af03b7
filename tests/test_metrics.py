import math

import pytest
import torch

from vnnet.metrics import ForecastErrors, masked_mae, per_station_errors


def test_masked_metrics_against_hand_computed_values():
    # b=1, h=2, n=2, c=1. Errors: lead 1 -> [1, -3], lead 2 -> [2, (masked 10)].
    pred = torch.tensor([[[[1.0], [0.0]], [[4.0], [10.0]]]])
    target = torch.tensor([[[[0.0], [3.0]], [[2.0], [0.0]]]])
    mask = torch.tensor([[[[True], [True]], [[True], [False]]]])
    metric = ForecastErrors(n_pred=2, target_names=["air_temperature"])
    metric.update(pred, target, mask)
    out = metric.compute()
    assert out["mae"].item() == pytest.approx((1 + 3 + 2) / 3)
    assert out["rmse"].item() == pytest.approx(math.sqrt((1 + 9 + 4) / 3))
    assert out["mae_h1"].item() == pytest.approx(2.0)
    assert out["rmse_h1"].item() == pytest.approx(math.sqrt(5.0))
    assert out["mae_h2"].item() == pytest.approx(2.0)
    assert masked_mae(pred, target, mask).item() == pytest.approx(2.0)
    mae_n, rmse_n = per_station_errors(pred, target, mask)
    assert mae_n[:, 0].tolist() == pytest.approx([1.5, 3.0])
    assert rmse_n[1, 0].item() == pytest.approx(3.0)


def test_accumulates_exactly_over_batches_and_ignores_nan_targets():
    torch.manual_seed(0)
    pred, target = torch.randn(6, 3, 4, 2), torch.randn(6, 3, 4, 2)
    mask = torch.rand(6, 3, 4, 2) > 0.3
    whole = ForecastErrors(3, ["a", "b"])
    whole.update(pred, target, mask)
    parts = ForecastErrors(3, ["a", "b"])
    for i in range(0, 6, 2):
        parts.update(pred[i:i + 2], target[i:i + 2], mask[i:i + 2])
    for key, value in whole.compute().items():
        assert parts.compute()[key].item() == pytest.approx(value.item(), rel=1e-6)
    out = whole.compute()
    expect_a = (pred - target)[..., 0].abs()[mask[..., 0]].mean()
    assert out["mae_a"].item() == pytest.approx(expect_a.item(), rel=1e-5)
    assert out["mae"].item() == pytest.approx((out["mae_a"] + out["mae_b"]).item() / 2, rel=1e-5)
    nan_target = target.clone()
    nan_target[0, 0, 0, 0] = float("nan")
    m = ForecastErrors(3, ["a", "b"])
    m.update(pred, nan_target, torch.ones_like(mask))
    assert torch.isfinite(m.compute()["mae"])


def test_shape_mismatch_is_a_clear_error():
    metric = ForecastErrors(2, ["a"])
    with pytest.raises(ValueError, match="same"):
        metric.update(torch.zeros(1, 2, 3, 1), torch.zeros(1, 2, 3, 2), torch.ones(1, 2, 3, 1,
                                                                                dtype=torch.bool))
