"""Transparent huge pages for large CPU tensors (vnnet.runtime, the `vnnet` console script).

Each check runs in a fresh interpreter: PyTorch reads its switch at the process's first tensor
allocation, which this test process made long ago."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
pytestmark = pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(),
                                reason="this kernel has no transparent huge pages")


def run(code: str, *args: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter at the repository root; its last line of output."""
    environ = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            env={**environ, **env}, check=True, cwd=Path(__file__).parents[1])
    return result.stdout.strip().splitlines()[-1]


def test_enable_first_thing_gives_huge_pages() -> None:
    code = "from vnnet.runtime import enable_huge_pages; print(enable_huge_pages())"
    assert run(code) == "True"
    assert run(code, THP_MEM_ALLOC_ENABLE="0") == "False"  # the user's choice wins


def test_too_late_is_reported_not_pretended() -> None:
    code = ("import torch; torch.zeros(4); from vnnet.runtime import enable_huge_pages; "
            "print(enable_huge_pages())")
    assert run(code) == "False"


def test_the_vnnet_command_runs_with_huge_pages() -> None:
    code = ("import sys; from vnnet import console; sys.argv = ['vnnet', 'data', '--help']\n"
            "try:\n    console.main()\nexcept SystemExit:\n    pass\n"
            "from vnnet.runtime import huge_pages_active; print(huge_pages_active())")
    assert run(code) == "True"


CACHING_CHECK = """
import torch
from vnnet.runtime import caching_allocator_stats, use_caching_allocator
assert use_caching_allocator()
a = torch.empty(3 << 20, dtype=torch.uint8)  # 3 MiB: a large block, rounded to 4 MiB
ptr = a.data_ptr()
del a
b = torch.empty(4 << 20, dtype=torch.uint8)  # the same rounded size: the cached block
assert b.data_ptr() == ptr, "a freed block of the same size class is reused"
small = torch.empty(1000)
assert caching_allocator_stats()["hits"] >= 1
# No aliasing: many live tensors of mixed sizes keep their own values through frees and reuse.
torch.manual_seed(0)
live = {}
for i in range(200):
    n = int(torch.randint(1, 3 << 20, ()).item())
    live[i] = torch.full((n,), float(i), dtype=torch.float32)
    if i % 3 == 0:  # free a random live tensor
        keys = sorted(live)
        del live[keys[int(torch.randint(0, len(keys), ()).item())]]
for k, v in live.items():
    assert bool((v == k).all()), k
# oneDNN's raw allocations go through it too (a convolution and its backward).
x = torch.randn(8, 16, 64, 64, requires_grad=True)
w = torch.randn(32, 16, 3, 3, requires_grad=True)
torch.nn.functional.conv2d(x, w, padding=1).square().sum().backward()
print(caching_allocator_stats()["hits"] > 1)
"""


def test_caching_allocator_reuses_blocks_without_aliasing() -> None:
    assert run(CACHING_CHECK) == "True"


def test_caching_allocator_stays_within_its_budget() -> None:
    code = ("import os, torch\nfrom vnnet.runtime import caching_allocator_stats, "
            "use_caching_allocator\n"
            "total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')\n"
            "use_caching_allocator(8 * 2 ** 20 / total)  # an 8 MiB budget\n"
            "for n in range(1, 12):\n    torch.empty(n << 20, dtype=torch.uint8)\n"
            "s = caching_allocator_stats()\n"
            "print(s['cached_bytes'] <= s['limit_bytes'] and s['releases'] > 0)")
    assert run(code) == "True"


def test_caching_allocator_bad_fraction() -> None:
    code = ("from vnnet.runtime import use_caching_allocator\ntry:\n"
            "    use_caching_allocator(0.0)\nexcept ValueError as e:\n"
            "    print('fraction' in str(e))")
    assert run(code) == "True"


STEP = """
import sys, torch
caching = sys.argv[1] == "1"
if caching:
    from vnnet.runtime import use_caching_allocator
    assert use_caching_allocator()
from vnnet.models.official import VNNetOfficial, official_description
from benchmarks.perf import make_batch
torch.manual_seed(0)
description = official_description(5, image_channels=3, image_size=16, n_his=4, n_pred=3)
model = VNNetOfficial(description)
batch = make_batch(description, 2, True)
outs = []
for _ in range(3):  # later steps run on reused blocks
    model.zero_grad()
    out = model(batch)
    out.square().mean().backward()
    outs.append(out.detach().clone())
torch.save({"out": outs, "grads": {k: p.grad for k, p in model.named_parameters()}}, sys.argv[2])
print("saved")
"""


def test_caching_allocator_changes_no_value(tmp_path: Path) -> None:
    """The same training steps, bit for bit, with PyTorch's allocator and with the cache."""
    import torch

    results = []
    for caching in ("0", "1"):
        path = tmp_path / f"step{caching}.pt"
        assert run(STEP, caching, str(path), OMP_NUM_THREADS="1") == "saved"
        results.append(torch.load(path))
    plain, cached = results
    for a, b in zip(plain["out"], cached["out"], strict=True):
        assert torch.equal(a, b)
    assert plain["grads"].keys() == cached["grads"].keys()
    for name, grad in plain["grads"].items():
        assert torch.equal(grad, cached["grads"][name]), name
