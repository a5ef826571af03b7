"""A fit killed with SIGKILL mid-epoch resumes from its last checkpoint and ends exactly where an
uninterrupted run with the same seed ends (deterministic mode): same weights, same validation
metrics after every epoch, same test metrics.

Mid-epoch snapshots come from a second ModelCheckpoint (every_n_train_steps, save_last) added
with ``--trainer.callbacks+=ModelCheckpoint``, beside the val/mae ``--checkpoint``; the training
loader records its epoch and position in them (``ResumableLoader``) and the Forecaster its
random state, so the resumed run sees the rest of the interrupted epoch in the order the
uninterrupted run saw it, and draws the same scheduled-sampling coin flips.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# A callback module loaded by the CLI through --trainer.callbacks: it records the metrics after
# every validation and the final weights, and (stall_at) parks the run just after the checkpoint
# of that step was written, so the test kills it at a known point rather than at a random one.
HELPERS = '''
import json, time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


class Record(Callback):
    def __init__(self, out: str, stall_at: int = -1) -> None:
        self.out, self.stall_at = Path(out), stall_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.stall_at:  # step stall_at's checkpoint is on disk
            (self.out / "stalled").write_text(str(trainer.global_step))
            time.sleep(600)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith("val/")}
        with open(self.out / "val.jsonl", "a") as f:
            f.write(json.dumps({"epoch": trainer.current_epoch, "step": trainer.global_step,
                                **metrics}) + "\\n")

    def on_fit_end(self, trainer, pl_module):
        torch.save(pl_module.state_dict(), self.out / "final_weights.pt")
'''

TINY = ["--config", "configs/quickstart.yaml",
        "--data.synthetic.n_stations", "6", "--data.synthetic.n_days", "5",
        "--data.synthetic.image_size", "16", "--data.synthetic.n_channels", "2",
        "--data.n_his", "6", "--data.n_pred", "3", "--data.batch_size", "8",
        "--model.model.init_args.hidden", "8",
        "--model.model.init_args.vision.stem_channels", "4",
        "--model.model.init_args.vision.n_queries", "2",
        # scheduled sampling draws random numbers every step: the RNG must be restored too
        "--model.scheduled_sampling", "true", "--model.cl_decay_steps", "10",
        "--trainer.max_epochs", "2", "--trainer.deterministic", "true",
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]
# The README's recipe: snapshots every 3 steps into last.ckpt (no logger: both checkpoint
# callbacks write to DEFAULT_ROOT_DIR/checkpoints, so `--ckpt_path last` finds them).
SNAPSHOTS = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.every_n_train_steps",
             "3", "--trainer.callbacks.save_top_k", "0", "--trainer.callbacks.save_last", "true"]
STEPS_PER_EPOCH = 10  # 76 training windows of 6 + 3 hours in batches of 8
STALL_AT = 15  # epoch 1, after 5 of its 10 batches (checkpoints at steps 3, 6, ..., 15)


def _command(root: Path, stall_at: int = -1) -> list[str]:
    return [sys.executable, "-m", "vnnet.cli", "fit", *TINY, "--trainer.default_root_dir",
            str(root), *SNAPSHOTS, "--trainer.callbacks+=resume_helpers.Record",
            "--trainer.callbacks.out", str(root), "--trainer.callbacks.stall_at", str(stall_at)]


def _env(helpers: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "PYTHONPATH": os.pathsep.join([str(helpers), os.environ.get("PYTHONPATH", "")])}


def _val(root: Path) -> dict[int, dict[str, float]]:
    lines = (root / "val.jsonl").read_text().splitlines()
    return {row["epoch"]: row for row in map(json.loads, lines)}


def test_fit_killed_mid_epoch_resumes_to_the_same_result(tmp_path):
    (tmp_path / "resume_helpers.py").write_text(HELPERS)
    env = _env(tmp_path)
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    straight.mkdir(), crashed.mkdir()
    # The uninterrupted run and the run to be killed go side by side.
    run_a = subprocess.Popen(_command(straight), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    run_b = subprocess.Popen(_command(crashed, stall_at=STALL_AT), cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (crashed / "stalled").exists():
            assert run_b.poll() is None, "the run to be killed ended before its stall point"
            assert time.monotonic() < deadline, "the run to be killed never reached its stall"
            time.sleep(0.2)
        run_b.send_signal(signal.SIGKILL)
        run_b.wait(30)
    finally:
        if run_b.poll() is None:
            run_b.kill()
    assert run_b.returncode == -signal.SIGKILL
    # Both checkpoint callbacks save_last (last.ckpt, last-v1.ckpt); `--ckpt_path last` takes
    # the newest, here the snapshot of step STALL_AT.
    last = max((crashed / "checkpoints").glob("last*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == STALL_AT and state["epoch"] == 1  # mid-epoch
    loader_state = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader_state == [{"epoch": 1, "batches": 5}]

    resumed = subprocess.run([*_command(crashed), "--ckpt_path", "last"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _, err = run_a.communicate(timeout=300)
    assert run_a.returncode == 0, err[-3000:]
    # Lightning warns when it resumes mid-epoch with a loader that cannot resume.
    assert "not resumable" not in resumed.stderr

    # Validation after every epoch (epoch 0 came before the crash, epoch 1 after it).
    a, b = _val(straight), _val(crashed)
    assert sorted(a) == sorted(b) == [0, 1]
    for epoch in a:
        assert a[epoch]["step"] == b[epoch]["step"] == STEPS_PER_EPOCH * (epoch + 1)
        for key in ("val/mae", "val/rmse", "val/loss", "val/mae_h3"):
            assert b[epoch][key] == pytest.approx(a[epoch][key], rel=1e-6, abs=1e-7), key
    wa = torch.load(straight / "final_weights.pt")
    wb = torch.load(crashed / "final_weights.pt")
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-6, atol=1e-7, msg=key)
    ta = json.loads((straight / "test_metrics.json").read_text())
    tb = json.loads((crashed / "test_metrics.json").read_text())
    assert tb["test/mae"] == pytest.approx(ta["test/mae"], rel=1e-6)
    assert tb["test/rmse"] == pytest.approx(ta["test/rmse"], rel=1e-6)
