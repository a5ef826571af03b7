"""Distributed data parallel training from the CLI: ``--trainer.strategy ddp --trainer.devices 2
--trainer.accelerator cpu`` (gloo) trains the same model as one process on the same global batch.

Two processes with batches of 4 see, step by step, the 8 windows one process sees in a batch of
8: ``WindowSampler`` shuffles from ``seed + epoch`` and strides the permutation over the ranks.
Validation and test windows are split without padding (5 and 15 windows here, odd on purpose:
a padded split would count one window twice), and ``ForecastErrors`` sums its errors over the
processes, so the metrics are those of the whole split.

Tolerance: with no missing target, each rank's loss is a mean over the same number of entries,
so the mean of the two ranks' gradients (DDP's all-reduce) equals the gradient of the mean over
all 8 windows; what differs is float32 summation order (~1e-7 relative per step), carried through
10 Adam steps with clipping. Metrics agree to ~1e-7 in practice; the test allows 1e-5.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]

HELPERS = '''
import json
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


class Record(Callback):
    """Rank 0 writes the metrics after each validation, and the weights at the end of fit."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith("val/")}
        (self.out / "val.json").write_text(json.dumps({"world_size": trainer.world_size,
                                                       "step": trainer.global_step, **metrics}))

    def on_fit_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            torch.save(pl_module.state_dict(), self.out / "final_weights.pt")
'''

TINY = ["--config", "configs/quickstart.yaml",
        "--data.synthetic.n_stations", "6", "--data.synthetic.n_days", "5",
        "--data.synthetic.image_size", "16", "--data.synthetic.n_channels", "2",
        # no missing targets: each rank's loss then averages as many entries as the other's
        "--data.synthetic.missing_fraction", "0", "--data.synthetic.outage_fraction", "0",
        "--data.n_his", "6", "--data.n_pred", "3", "--data.split", "[0.7, 0.11, 0.19]",
        "--model.model.init_args.hidden", "8",
        "--model.model.init_args.vision.stem_channels", "4",
        "--model.model.init_args.vision.n_queries", "2",
        "--trainer.max_epochs", "1", "--trainer.deterministic", "true",
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--trainer.callbacks+=ddp_helpers.Record"]
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="needs torch.distributed with the gloo backend")
def test_ddp_on_two_processes_matches_one_process_on_the_same_global_batch(tmp_path):
    (tmp_path / "ddp_helpers.py").write_text(HELPERS)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    runs = {}
    for name, extra in (("one", ["--data.batch_size", "8"]),
                        ("ddp", ["--data.batch_size", "4", *DDP])):
        root = tmp_path / name
        root.mkdir()
        cmd = [sys.executable, "-m", "vnnet.cli", "fit", *TINY, "--trainer.callbacks.out",
               str(root), "--trainer.default_root_dir", str(root), *extra]
        runs[name] = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
    logs = {name: run.communicate(timeout=300)[0] for name, run in runs.items()}
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}:\n{logs[name][-4000:]}"
    assert "Starting with 2 processes" in logs["ddp"]
    assert "sync_dist=True" not in logs["ddp"]  # Lightning's hint for unsynchronised logs

    one = json.loads((tmp_path / "one" / "val.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "val.json").read_text())
    assert (one["world_size"], ddp["world_size"]) == (1, 2)
    assert one["step"] == ddp["step"] == 10  # 76 training windows, global batches of 8
    assert one.keys() == ddp.keys() and "val/loss" in one and "val/mae_h3" in one
    for key in (k for k in one if k.startswith("val/")):
        assert ddp[key] == pytest.approx(one[key], rel=1e-5), key

    w_one = torch.load(tmp_path / "one" / "final_weights.pt")
    w_ddp = torch.load(tmp_path / "ddp" / "final_weights.pt")
    for key in w_one:
        torch.testing.assert_close(w_ddp[key], w_one[key], rtol=1e-5, atol=1e-5, msg=key)

    # vnnet fit then tests the best checkpoint on the 15 test windows, split over the ranks.
    t_one = json.loads((tmp_path / "one" / "test_metrics.json").read_text())
    t_ddp = json.loads((tmp_path / "ddp" / "test_metrics.json").read_text())
    for key in ("test/mae", "test/rmse", "test/mae_h1", "test/rmse_h3"):
        assert t_ddp[key] == pytest.approx(t_one[key], rel=1e-5), key
