"""A checkpoint written by an earlier vnnet still loads and forecasts the same.

``tests/fixtures/vnnet_tiny.ckpt`` and its inputs / expected forecasts are made by
``tests/fixtures/make_checkpoint.py``. If this test fails after a change to the models or
the Forecaster, the change breaks users' checkpoints: keep the format, or bump the major
version and remake the fixture on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vnnet
from vnnet import Forecaster
from vnnet.data import open_satellite, open_stations
from vnnet.forecaster import IncompatibleCheckpointError

FIXTURES = Path(__file__).parent / "fixtures"
CKPT = FIXTURES / "vnnet_tiny.ckpt"


@pytest.fixture(scope="module")
def checkpoint() -> dict:
    return torch.load(CKPT, map_location="cpu", weights_only=False)


def doctored(checkpoint: dict, tmp_path: Path, edit) -> Path:
    """A copy of the fixture checkpoint changed by ``edit(copy)``, saved in tmp_path."""
    copy = torch.load(CKPT, map_location="cpu", weights_only=False)
    edit(copy)
    path = tmp_path / "doctored.ckpt"
    torch.save(copy, path)
    return path


def test_fixture_is_small_and_records_its_version(checkpoint):
    for path in FIXTURES.glob("vnnet_tiny*"):
        assert path.stat().st_size < 1_000_000, path
    assert checkpoint["vnnet_version"] == json.loads(
        (FIXTURES / "vnnet_tiny_expected.json").read_text())["vnnet_version"]


def test_committed_checkpoint_reproduces_its_forecasts():
    meta = json.loads((FIXTURES / "vnnet_tiny_expected.json").read_text())
    expected = np.load(FIXTURES / "vnnet_tiny_expected.npy")
    forecaster = Forecaster.load_from_checkpoint(CKPT, map_location="cpu")
    forecast = forecaster.predict_xarray(open_stations(FIXTURES / "vnnet_tiny_stations.nc"),
                                         open_satellite(FIXTURES / "vnnet_tiny_satellite.nc"))
    got = forecast[meta["variable"]]
    assert list(got.dims) == meta["dims"] and got.attrs["units"] == meta["units"]
    assert [str(t) for t in got.init_time.values.astype("datetime64[s]")] == meta["init_time"]
    np.testing.assert_allclose(got.values, expected, rtol=1e-5, atol=1e-5)


def test_a_missing_state_dict_key_names_both_versions(checkpoint, tmp_path):
    key = next(k for k in checkpoint["state_dict"] if k.startswith("model.decoder"))
    path = doctored(checkpoint, tmp_path, lambda c: c["state_dict"].pop(key))
    version = vnnet.__version__
    with pytest.raises(IncompatibleCheckpointError,
                       match=rf"checkpoint written by vnnet {version} cannot be loaded by vnnet "
                             rf"{version}: .*missing state-dict keys \['{key}'\]"):
        Forecaster.load_from_checkpoint(path)


def test_an_unexpected_key_and_a_changed_shape_are_named(checkpoint, tmp_path):
    def edit(c):
        c["state_dict"]["model.encoder.extra_weight"] = torch.zeros(3)
        key = next(k for k, v in c["state_dict"].items() if v.ndim == 2)
        c["state_dict"][key] = torch.zeros(*c["state_dict"][key].shape[::-1], 5)

    with pytest.raises(IncompatibleCheckpointError,
                       match=r"unexpected state-dict keys \['model.encoder.extra_weight'\]"
                             r"; changed shapes"):
        Forecaster.load_from_checkpoint(doctored(checkpoint, tmp_path, edit))


@pytest.mark.parametrize(("version", "match"), [
    ("99.0.0", r"checkpoint written by vnnet 99\.0\.0 cannot be loaded by vnnet "
               r"\d+\.\d+\.\d+: the major versions differ"),
    (None, r"checkpoint written by vnnet \(unknown version\) cannot be loaded by vnnet "
           r"\d+\.\d+\.\d+: it records no 'vnnet_version'"),
    ("banana", r"'vnnet_version' 'banana' is not a version number"),
])
def test_an_incompatible_or_missing_version_is_refused(checkpoint, tmp_path, version, match):
    def edit(c):
        if version is None:
            del c["vnnet_version"]
        else:
            c["vnnet_version"] = version

    with pytest.raises(IncompatibleCheckpointError, match=match):
        Forecaster.load_from_checkpoint(doctored(checkpoint, tmp_path, edit))


def test_changed_hyper_parameters_of_another_version_are_named(checkpoint, tmp_path):
    """A later version that renamed a model argument cannot rebuild the old model."""
    def edit(c):
        c["vnnet_version"] = "0.0.1"
        init_args = c["hyper_parameters"]["model"]["init_args"]
        init_args["hidden_size"] = init_args.pop("hidden")

    with pytest.raises(IncompatibleCheckpointError,
                       match=r"checkpoint written by vnnet 0\.0\.1 cannot be loaded by vnnet "
                             r"\d+\.\d+\.\d+: the model cannot be rebuilt from the checkpoint's "
                             r"hyper-parameters .*hidden_size"):
        Forecaster.load_from_checkpoint(doctored(checkpoint, tmp_path, edit))


def test_changed_sizes_give_a_structural_message(checkpoint, tmp_path):
    """Same version, hyper-parameters edited: the rebuilt model no longer fits the weights."""
    def edit(c):
        c["hyper_parameters"]["model"]["init_args"]["hidden"] = 16

    with pytest.raises(IncompatibleCheckpointError, match="changed shapes"):
        Forecaster.load_from_checkpoint(doctored(checkpoint, tmp_path, edit))
