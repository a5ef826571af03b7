import numpy as np
import pandas as pd
import pytest

from vnnet.data.windows import (
    calendar_index,
    chronological_splits,
    cyclic_features,
    window_starts,
)


def test_weather2k_preset_matches_the_official_protocol():
    times = pd.date_range("2017-01-01", periods=40896, freq="h")
    splits = chronological_splits(times, "weather2k")
    assert times[splits["train"]][[0, -1]].tolist() == [pd.Timestamp("2017-01-01 00:00"),
                                                        pd.Timestamp("2019-09-01 23:00")]
    assert times[splits["val"]][[0, -1]].tolist() == [pd.Timestamp("2019-09-02 00:00"),
                                                      pd.Timestamp("2020-08-31 23:00")]
    assert times[splits["test"]][[0, -1]].tolist() == [pd.Timestamp("2020-09-01 00:00"),
                                                       pd.Timestamp("2021-08-31 23:00")]
    assert splits["train"].stop - splits["train"].start == 23376
    assert len(window_starts(splits["test"], 12, 12)) == 8737


def test_fraction_and_date_splits_are_consecutive():
    times = pd.date_range("2021-01-01", periods=1000, freq="h")
    s = chronological_splits(times, (0.7, 0.1, 0.2))
    assert (s["train"].stop, s["val"].start, s["val"].stop, s["test"].stop) == (700, 700, 800, 1000)
    d = chronological_splits(times, {"val_start": "2021-01-30", "test_start": "2021-02-05"})
    assert times[d["val"].start] == pd.Timestamp("2021-01-30")
    assert times[d["test"].start] == pd.Timestamp("2021-02-05")
    assert d["train"].stop == d["val"].start and d["test"].stop == 1000


@pytest.mark.parametrize("split", [(0.7, 0.1, 0.2), {"val_start": "2021-01-20",
                                                     "test_start": "2021-01-31"}])
def test_no_window_crosses_a_split_boundary(split):
    times = pd.date_range("2021-01-01", periods=1000, freq="h")
    splits = chronological_splits(times, split)
    covered = {}
    for name, seg in splits.items():
        starts = window_starts(seg, 12, 6, stride=1)
        assert starts.min() == seg.start and starts.max() + 18 == seg.stop
        for s in starts:
            hours = set(range(s, s + 18))
            assert hours <= set(range(seg.start, seg.stop))
        covered[name] = {h for s in starts for h in range(s, s + 18)}
    assert not covered["train"] & covered["val"] and not covered["val"] & covered["test"]


def test_stride_and_too_short_segment():
    assert window_starts(slice(10, 40), 4, 2, stride=5).tolist() == [10, 15, 20, 25, 30]
    assert window_starts(slice(0, 5), 4, 2).size == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"n_his": 0, "n_pred": 2}, "n_his"), ({"n_his": 3, "n_pred": -1}, "n_pred"),
    ({"n_his": 3, "n_pred": 2, "stride": 0}, "stride"), ({"n_his": 2.5, "n_pred": 2}, "n_his"),
])
def test_bad_window_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        window_starts(slice(0, 100), **kwargs)


@pytest.mark.parametrize("split, match", [
    ("weather3k", "unknown preset"), ((0.8, 0.3, 0.1), "fractions"), ((0.5, 0.5), "fractions"),
    ({"val_start": "2021-02-01"}, "date keys"),
    ({"val_start": "2021-02-01", "test_start": "2021-01-05"}, "before"),
    ({"val_start": "nonsense", "test_start": "2021-01-05"}, "parse"),
    ("weather2k", "needs more than"), ((0.0, 0.5, 0.5), "training split is empty"),
])
def test_bad_splits(split, match):
    times = pd.date_range("2021-01-01", periods=1000, freq="h")
    with pytest.raises(ValueError, match=match):
        chronological_splits(times, split)


def test_calendar_and_cyclic_features():
    times = pd.DatetimeIndex(["2020-03-31 06:00", "2020-12-31 18:00"])
    assert calendar_index(times).tolist() == [[2, 30, 6], [11, 30, 18]]
    feats = cyclic_features(times)
    assert feats.shape == (2, 4) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[0, :2], [1.0, 0.0], atol=1e-6)  # 06:00 -> quarter turn
    np.testing.assert_allclose(feats[1, :2], [-1.0, 0.0], atol=1e-6)  # 18:00
    np.testing.assert_allclose(feats[:, 2] ** 2 + feats[:, 3] ** 2, 1.0, rtol=1e-6)
