"""Runs repeat exactly: the same command and seed give bit-identical weights.

The source of run-to-run differences found in issue 13 was the backward of advanced indexing
with repeated indices (``x[index]``): on a CPU with more than one thread PyTorch adds the
repeated rows with parallel float atomics, so the order of the additions, and the last bits
of the sums, change from run to run with thread timing. The V-LSTM's shared-frame path and the
time-aware node embeddings used it; they now gather with ``index_select`` / ``F.embedding``,
whose backward adds in a fixed order, and the ``vnnet`` command turns on PyTorch's
deterministic algorithms (``trainer.deterministic: warn``) for any other such kernel.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import torch

from vnnet.models.vlstm import VLSTM

ROOT = Path(__file__).parents[1]


def _grad_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(p.grad.numpy().tobytes())
    return h.hexdigest()


def test_vlstm_shared_frames_backward_is_exact_with_threads() -> None:
    """Overlapping windows share frames (the stem runs once per distinct frame): the gradient
    that gathers them back must be the same sum, bit for bit, every time."""
    torch.manual_seed(0)
    frames = torch.rand(16, 2, 32, 32)
    images = torch.stack([frames[i:i + 8] for i in range(8)])  # (b t c H W), windows overlap
    model = VLSTM(2, hidden=16, image_size=(32, 32), stem_channels=8, downsample=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the race needs at least two threads
    try:
        digests = set()
        for _ in range(8):
            model.zero_grad()
            model(images).square().mean().backward()
            digests.add(_grad_digest(model))
    finally:
        torch.set_num_threads(threads)
    assert len(digests) == 1


def _fit_args(out: Path) -> list[str]:
    """``vnnet fit`` on the quickstart (VN-Net with images, default options: two threads,
    the caching allocator) for a few batches."""
    return ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "8", "--trainer.limit_val_batches", "2",
            "--test_after_fit", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--trainer.enable_model_summary", "false",
            "--checkpoint.dirpath", str(out), "--trainer.default_root_dir", str(out)]


def test_two_fits_in_fresh_processes_give_identical_weights(tmp_path: Path) -> None:
    """Two fresh processes at once: each one's threads are preempted by the other's, which is
    when thread-timing-dependent kernels give different sums."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    outs = [tmp_path / "a", tmp_path / "b"]
    runs = [subprocess.Popen([sys.executable, "-c", "from vnnet.console import main; main()",
                              *_fit_args(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for out in outs]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
    first, second = (torch.load(out / "last.ckpt", weights_only=False)["state_dict"]
                     for out in outs)
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert not different, f"weights differ between two identical runs: {different[:5]}"
