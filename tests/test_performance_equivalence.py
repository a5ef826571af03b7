"""Every speed option gives the same outputs and gradients as the plain path (issue 6).

- MLVFEM ``fast`` (2-D convs over channels-last views) vs plain ``Conv3d``, train and eval mode,
  BatchNorm running statistics included; the fused BatchNorm + ReLU kernel vs the eager pair;
- ConvLSTM ``split_gates`` (input part of the gates for all frames at once, no h-conv at the first
  step) vs the plain cell, with and without missing frames;
- V-LSTM ``shared_frames`` (each distinct frame of a batch of overlapping windows encoded once)
  and ``channels_last`` (the stem on channels-last frames) vs the plain path, and the exactness
  of :func:`vnnet.models.vlstm.distinct_frames`;
- whole models (paper VN-Net, official-code VN-Net) with all options on vs all off;
- the GPU-path switches on CPU: Forecaster ``channels_last`` and ``compile``, bf16 autocast
  through the Trainer's ``precision: bf16-mixed``, and the datamodule's ``pin_memory`` default.

The equivalence tests run in float64, where the two paths agree to rounding (about 1e-12:
the same math), and in float32 with a tolerance for its rounding, which BatchNorm in training
mode amplifies (the official MLVFEM normalises twice per conv). Small sizes throughout; the
whole file runs in seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest
import torch

from vnnet.data.batch import Batch
from vnnet.models.official import VNNetOfficial, official_description
from vnnet.models.vlstm import VLSTM, distinct_frames
from vnnet.models.vnnet import VisionOptions, VNNet
from vnnet.nn import bn_relu as fused
from vnnet.nn.convlstm import ConvLSTM
from vnnet.nn.r2plus1d import MLVFEM

ATOL, RTOL = 1e-5, 1e-4  # float32 checks of layouts (channels_last), no arithmetic changes
DTYPES = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, name: str = "") -> None:
    """float64: elementwise to rounding. float32: the largest difference within 1e-3 of the
    tensor's largest value (a gradient that is zero in exact arithmetic, e.g. of a scale
    before a BatchNorm, is pure rounding noise elementwise)."""
    assert a.shape == b.shape, name
    if dtype == torch.float64:
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7, msg=name)
        return
    err, scale = (a - b).abs().max().item(), b.abs().max().item()
    assert err <= 1e-3 * scale + 1e-6, f"{name}: max difference {err:.3g}, max value {scale:.3g}"


def _assert_same_grads(a: torch.nn.Module, b: torch.nn.Module, dtype: torch.dtype) -> None:
    ga, gb = _grads(a), _grads(b)
    assert ga.keys() == gb.keys() and ga
    for k in ga:
        _close(ga[k], gb[k], dtype, k)


def _window_batch_images(b: int, t: int, c: int, size: int, seed: int = 0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(b t c H W) frames of b consecutive hourly windows over one frame sequence (so window i
    holds frames i .. i+t-1), and a (b t) mask with one missing hour (zero-filled)."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(b + t - 1, c, size, size, generator=g)
    present = torch.ones(b + t - 1, dtype=torch.bool)
    present[t // 2] = False
    frames[~present] = 0.0
    idx = torch.arange(b)[:, None] + torch.arange(t)[None, :]
    return frames[idx], present[idx]


# ---------------------------------------------------------------- MLVFEM


@DTYPES
@pytest.mark.parametrize("training", [True, False])
def test_mlvfem_fast_path_matches_conv3d(training: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    plain = MLVFEM(3, 8, stem_channels=4, stem_mid=5, fast=False).to(dtype)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in plain.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    fast = copy.deepcopy(plain)
    fast.fast = True
    assert all(m.fast for m in fast.modules() if hasattr(m, "fast"))
    images = torch.rand(2, 5, 3, 12, 10, dtype=dtype)  # odd t, W: halved rounding up
    mask = torch.tensor([[True, True, False, True, True], [True] * 5])
    plain.train(training)
    fast.train(training)
    out_p, out_f = plain(images, mask), fast(images, mask)
    assert out_f.shape == out_p.shape == (2, 8, 3, 3)
    _close(out_f, out_p, dtype)
    w = torch.linspace(-1, 1, out_p.numel(), dtype=dtype).view_as(out_p)
    (out_p * w).sum().backward()
    (out_f * w).sum().backward()
    _assert_same_grads(plain, fast, dtype)
    for (k, bp), (_, bf) in zip(plain.named_buffers(), fast.named_buffers(), strict=True):
        _close(bf, bp, dtype, k)  # running stats


@pytest.mark.parametrize("dims", [4, 5], ids=["2d", "3d"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_fused_bn_relu_matches_the_eager_pair(dims: int, momentum: float | None) -> None:
    assert fused.available(), "the fused kernel did not compile: the fast path is untested"
    torch.manual_seed(3)
    shape = (3, 45, 4, 9, 11)[:dims]
    layout = torch.channels_last if dims == 4 else torch.channels_last_3d
    x = (torch.randn(shape) * 3 + 1).contiguous(memory_format=layout)
    bn = (torch.nn.BatchNorm2d if dims == 4 else torch.nn.BatchNorm3d)(45, momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(-1.0, 1.5)  # negative scales flip which side the ReLU keeps
        bn.bias.uniform_(-1.0, 1.0)
        bn.running_mean.uniform_(-0.5, 0.5)
    ref = copy.deepcopy(bn)
    assert fused.supports(x, bn)
    xf, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    for _ in range(2):  # two steps: running statistics and the momentum-None average
        out_f, out_e = fused.bn_relu(xf, bn), torch.relu(ref(xe))
        torch.testing.assert_close(out_f, out_e, atol=1e-5, rtol=1e-5)
        assert out_f.is_contiguous(memory_format=layout)
        w = torch.randn_like(out_e)
        (out_f * w).sum().backward()
        (out_e * w).sum().backward()
    torch.testing.assert_close(xf.grad, xe.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(bn.weight.grad, ref.weight.grad, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(bn.bias.grad, ref.bias.grad, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked) == 2


def test_fused_bn_relu_falls_back_where_it_does_not_apply() -> None:
    bn = torch.nn.BatchNorm3d(4)
    x = torch.randn(2, 4, 3, 5, 5).contiguous(memory_format=torch.channels_last_3d)
    assert fused.supports(x, bn)
    assert not fused.supports(x.contiguous(), bn)  # not channels-last
    assert not fused.supports(x.double(), copy.deepcopy(bn).double())  # float64: eager
    bn.eval()
    assert not fused.supports(x, bn)  # running statistics: eager
    torch.testing.assert_close(fused.bn_relu(x, bn), torch.relu(bn(x)))


def test_mlvfem_fast_is_a_switch_with_the_same_parameters() -> None:
    a, b = MLVFEM(6, 32), MLVFEM(6, 32, fast=False)
    assert a.fast and not b.fast
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters()) \
        == 244_078
    assert a.state_dict().keys() == b.state_dict().keys()


# ---------------------------------------------------------------- ConvLSTM


@DTYPES
@pytest.mark.parametrize("masked", [False, True])
def test_convlstm_split_gates_match_plain(masked: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    plain = ConvLSTM(3, 4, n_layers=2).to(dtype)
    split = copy.deepcopy(plain)
    split.split_gates = True
    x = torch.randn(3, 5, 3, 6, 7, dtype=dtype)
    mask = None
    if masked:  # a missing first frame (state stays zero), a missing middle one, a sample with none
        mask = torch.ones(3, 5, dtype=torch.bool)
        mask[0, 0] = mask[1, 2] = False
        mask[2] = False
    xp, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    seq_p, h_p = plain(xp, mask)
    seq_s, h_s = split(xs, mask)
    _close(seq_s, seq_p, dtype)
    _close(h_s, h_p, dtype)
    w = torch.randn_like(seq_p)
    ((seq_p * w).sum() + h_p.sum()).backward()
    ((seq_s * w).sum() + h_s.sum()).backward()
    _assert_same_grads(plain, split, dtype)
    _close(xs.grad, xp.grad, dtype)
    none_seq, h = split(x, mask, sequence=False)
    assert none_seq is None
    _close(h, h_p.detach(), dtype)


# ---------------------------------------------------------------- V-LSTM shared frames


def test_distinct_frames_is_exact() -> None:
    images, _ = _window_batch_images(4, 3, 2, 8)
    index, first = distinct_frames(images)
    assert first.numel() == 4 + 3 - 1
    flat = images.flatten(0, 1)
    assert torch.equal(flat[first][index], images)
    # Frames equal at every probe pixel but not elsewhere stay apart.
    twin = images.clone()
    twin[1, 0, 1, 5, 3] += 1.0  # frame (1, 0) = frame (0, 1) except for one pixel
    index, first = distinct_frames(twin, probes=4)
    assert torch.equal(twin.flatten(0, 1)[first][index], twin)
    assert first.numel() == 4 + 3


VLSTM_OPTIONS = {"shared": {"shared_frames": True},
                 "shared+cl": {"shared_frames": True, "channels_last": True},
                 "split+cl": {"split_gates": True, "channels_last": True},
                 "cl": {"channels_last": True}}


@DTYPES
@pytest.mark.parametrize("options", list(VLSTM_OPTIONS))
def test_vlstm_speed_options_match_plain(options: str, dtype: torch.dtype) -> None:
    torch.manual_seed(2)
    plain = VLSTM(3, (16, 16), hidden=8, stem_channels=4, downsample=4, shared_frames=False,
                  split_gates=False, channels_last=False).to(dtype)
    fast = copy.deepcopy(plain)
    for name, value in VLSTM_OPTIONS[options].items():
        setattr(fast.lstm if name == "split_gates" else fast, name, value)
    images, mask = _window_batch_images(5, 4, 3, 16)
    images = images.to(dtype)
    out_p, out_f = plain(images, mask), fast(images, mask)
    _close(out_f, out_p, dtype)
    w = torch.randn_like(out_p)
    (out_p * w).sum().backward()
    (out_f * w).sum().backward()
    _assert_same_grads(plain, fast, dtype)


def test_vlstm_shared_frames_leave_image_gradients_alone() -> None:
    """With images that require gradients (saliency), every window gets its own gradient."""
    torch.manual_seed(3)
    net = VLSTM(2, (8, 8), hidden=4, stem_channels=4, downsample=2)
    plain = copy.deepcopy(net)
    plain.shared_frames = plain.channels_last = False
    images, _ = _window_batch_images(3, 3, 2, 8)
    a, b = images.clone().requires_grad_(), images.clone().requires_grad_()
    net(a).sum().backward()
    plain(b).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, atol=ATOL, rtol=RTOL)


# ---------------------------------------------------------------- whole models


def _batch(desc: dict, b: int, size: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    t, h, n, f = desc["n_his"], desc["n_pred"], len(desc["lat"]), len(desc["input_variables"])
    images, image_mask = _window_batch_images(b, t, len(desc["satellite"]["channels"]), size,
                                              seed)
    hours = torch.arange(b)[:, None] + torch.arange(t)[None, :]
    time_index = torch.stack([torch.zeros_like(hours), torch.zeros_like(hours), hours % 24], -1)
    return Batch(x=torch.randn(b, t, n, f, generator=g),
                 x_mask=torch.rand(b, t, n, f, generator=g) > 0.1,
                 y=torch.randn(b, h, n, 1, generator=g),
                 y_mask=torch.rand(b, h, n, 1, generator=g) > 0.1,
                 time=torch.randn(b, t, 4, generator=g), time_index=time_index,
                 time_pred=torch.randn(b, h, 4, generator=g), init_time=hours[:, -1],
                 images=images, image_mask=image_mask)


def _set_fast(model: torch.nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, VLSTM):
            m.shared_frames = m.lstm.split_gates = m.channels_last = on
        if isinstance(m, MLVFEM):
            m.fast = on


@DTYPES
@pytest.mark.parametrize("kind", ["vnnet", "official"])
def test_models_with_all_speed_options_match_plain(kind: str, dtype: torch.dtype) -> None:
    torch.manual_seed(4)
    desc = official_description(5, image_channels=3, image_size=16, n_his=4, n_pred=3)
    if kind == "vnnet":
        plain = VNNet(desc, hidden=8, vision=VisionOptions(stem_channels=4, n_queries=2))
    else:
        plain = VNNetOfficial(desc, hidden=8, dropout=0.0)
    plain = plain.to(dtype)
    _set_fast(plain, False)
    fast = copy.deepcopy(plain)
    _set_fast(fast, True)
    batch = _batch(desc, 3, 16)
    batch = dataclasses.replace(batch, x=batch.x.to(dtype), y=batch.y.to(dtype),
                                time_pred=batch.time_pred.to(dtype),
                                images=batch.images.to(dtype))
    out_p = plain(batch, teacher_forcing=0.0)
    out_f = fast(batch, teacher_forcing=0.0)
    _close(out_f, out_p, dtype)
    out_p.square().sum().backward()
    out_f.square().sum().backward()
    _assert_same_grads(plain, fast, dtype)


# ---------------------------------------------------------------- GPU-path switches on CPU


def _forecaster(**kwargs):  # noqa: ANN202
    from vnnet.forecaster import Forecaster

    desc = official_description(5, image_channels=3, image_size=16, n_his=4, n_pred=3)
    desc["station_scaler"] = {"names": ["air_temperature"], "mean": [10.0], "std": [5.0]}
    model = VNNet(desc, hidden=8, vision=VisionOptions(stem_channels=4, n_queries=2))
    return Forecaster(model, **kwargs), desc


def test_forecaster_channels_last_gives_the_same_forecast() -> None:
    torch.manual_seed(5)
    plain, desc = _forecaster()
    cl = copy.deepcopy(plain)
    cl.hparams["channels_last"] = True
    batch = _batch(desc, 3, 16)
    moved = cl.on_after_batch_transfer(batch, 0)
    assert moved.images.permute(0, 1, 3, 4, 2).is_contiguous()  # c innermost
    assert moved.images.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert moved.images.transpose(1, 2).is_contiguous(memory_format=torch.channels_last_3d)
    assert plain.on_after_batch_transfer(batch, 0) is batch
    plain.eval()
    cl.eval()
    torch.testing.assert_close(cl(moved), plain(batch), atol=ATOL, rtol=RTOL)


def test_forecaster_compile_flag() -> None:
    forecaster, desc = _forecaster(compile=True)
    assert forecaster.hparams.compile
    assert forecaster.model._compiled_call_impl is not None  # nn.Module.compile, lazy
    assert not any(k.startswith("_orig_mod") for k in forecaster.state_dict())
    if os.environ.get("VNNET_TEST_COMPILE") != "1":
        pytest.skip("torch.compile (inductor) needs minutes to compile a model on this CPU; "
                    "set VNNET_TEST_COMPILE=1 to compare the compiled forward with eager")
    torch.manual_seed(6)
    eager, _ = _forecaster()
    eager.load_state_dict(forecaster.state_dict())
    eager.eval()
    forecaster.eval()
    batch = _batch(desc, 2, 16)
    with torch.no_grad():
        torch.testing.assert_close(forecaster(batch), eager(batch), atol=1e-4, rtol=1e-3)


def test_bf16_mixed_training_step_on_cpu(tmp_path) -> None:  # noqa: ANN001
    import lightning as L

    from vnnet.data.datamodule import WeatherDataModule
    from vnnet.forecaster import Forecaster

    dm = WeatherDataModule(synthetic={"n_stations": 4, "n_days": 3, "image_size": 16,
                                      "n_channels": 2}, n_his=4, n_pred=3, batch_size=4)
    dm.setup("fit")
    model = VNNet(dm.description(), hidden=8, vision=VisionOptions(stem_channels=4, n_queries=2))
    forecaster = Forecaster(model, channels_last=True)
    before = {k: v.clone() for k, v in forecaster.state_dict().items()}
    trainer = L.Trainer(precision="bf16-mixed", max_steps=1, limit_val_batches=0,
                        accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(forecaster, datamodule=dm)
    assert trainer.global_step == 1 and forecaster.skipped_batches == 0
    loss = trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss)
    changed = [k for k, v in forecaster.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed  # an optimizer step was taken
    assert all(p.dtype == torch.float32 for p in forecaster.parameters())  # weights stay fp32


def test_pin_memory_defaults_to_cuda_availability() -> None:
    from vnnet.data.datamodule import WeatherDataModule

    synthetic = {"n_stations": 3, "n_days": 2, "image_size": 8, "n_channels": 1}
    assert WeatherDataModule(synthetic=synthetic).pin_memory == torch.cuda.is_available()
    assert WeatherDataModule(synthetic=synthetic, pin_memory=True).pin_memory is True
    assert WeatherDataModule(synthetic=synthetic, pin_memory=False).pin_memory is False


# ---------------------------------------------------------------- the benchmark harness itself


def test_perf_harness_runs_at_tiny_sizes(tmp_path) -> None:  # noqa: ANN001
    from benchmarks.perf import measure_model, model_table, targets_table
    from benchmarks.pipeline import measure_pipeline, pipeline_table, write_inputs

    sizes = {"image": 16, "channels": 2, "n_his": 4, "n_pred": 3}
    rows = [measure_model(kind, 4, 2, steps=1, warmup=0, infer_batches=[2], infer_reps=1,
                          infer_warmup=0, sizes=sizes, threads=1)
            for kind in ("vnnet", "official", "official-plain")]
    assert rows[1]["parameters"] == rows[2]["parameters"]
    # The fast path's temporal weight gradient skips the zero padding: a few % fewer FLOPs.
    assert rows[1]["train_flops"] == pytest.approx(rows[2]["train_flops"], rel=0.05)
    assert rows[2]["train_flops"] > rows[0]["train_flops"] > 0
    write_inputs(tmp_path, frames=300, size=16, n_stations=4)
    pipe = [measure_pipeline(300, 16, workers=0, batches=2, batch_size=4, n_stations=4,
                             folder=str(tmp_path))]
    assert pipe[0]["windows"] == 8 and pipe[0]["images_shape"] == (4, 12, 6, 16, 16)
    text = "\n".join([model_table(rows, 50.0), pipeline_table(pipe),
                      targets_table(rows, pipe, 50.0)])
    assert "official variant >= 1.5x" in text and "data pipeline" in text


# ---------------------------------------------------------------- data pipeline


def test_fast_window_reading_matches_the_reference(tmp_path) -> None:  # noqa: ANN001
    """Frames read from a Himawari .npy (plain file reads, channels-last batches, frames written
    straight into the batch array) equal the plain xarray read + min-max scaling + NaN fill."""
    import numpy as np

    from benchmarks.pipeline import write_inputs
    from vnnet.data.datamodule import FrameReader, WeatherDataModule, collate_channels_last

    write_inputs(tmp_path, frames=300, size=8, n_stations=3)
    cube = np.load(tmp_path / "cube.npy", mmap_mode="r+")
    cube[5, 2:4, 1:3, 0] = np.nan  # a NaN patch
    cube[7] = np.nan  # an all-NaN frame = a missing frame
    cube[9, 0, 0, 1] = np.inf
    cube.flush()
    dm = WeatherDataModule(stations=str(tmp_path / "stations.npy"),
                           stations_lonlat=str(tmp_path / "lonlat.npy"),
                           satellite=str(tmp_path / "cube.npy"), satellite_region="NE",
                           target="air_temperature", split=(0.7, 0.1, 0.2), batch_size=4,
                           num_workers=0, image_range=([150.0] * 6, [350.0] * 6))
    dm.setup("fit")
    ds = dm.dataset("train")
    assert ds.frames.source is not None  # the .npy fast path is taken
    plain = FrameReader(dm.satellite)  # xarray + dask
    frames = np.array([3, 4, 5, 6, 7, 9, 11])
    np.testing.assert_array_equal(ds.frames.read(frames), np.moveaxis(plain[frames], 1, -1))

    def reference(start: int) -> tuple[np.ndarray, np.ndarray]:
        ids = dm.frame_of_time[start:start + dm.n_his]
        raw = plain[ids]
        ok = np.isfinite(raw)
        return np.where(ok, dm.image_scaler.transform(raw), 0.0), ok.any(axis=(1, 2, 3))

    for i in (0, 3, 8):
        sample = ds[i]
        images, present = reference(int(ds.starts[i]))
        np.testing.assert_array_equal(sample["images"], images)
        np.testing.assert_array_equal(sample["image_mask"], present)
    assert not ds[7]["image_mask"][0]  # window 7 starts at the all-NaN frame
    batch = collate_channels_last(ds.__getitems__([2, 7, 5, 0]))
    assert batch.images.shape == (4, 12, 6, 8, 8)
    assert batch.images.permute(0, 1, 3, 4, 2).is_contiguous()  # channels last
    for k, i in enumerate([2, 7, 5, 0]):
        images, present = reference(int(ds.starts[i]))
        np.testing.assert_array_equal(batch.images[k].numpy(), images)
        np.testing.assert_array_equal(batch.image_mask[k].numpy(), present)
    loaded = next(iter(dm.predict_dataloader()))  # the loaders use the same path
    np.testing.assert_array_equal(loaded.images[1].numpy(), reference(int(
        dm.windows(dm.predict_split)[1]))[0])
