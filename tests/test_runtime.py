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


def run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**environ, **env}, check=True)
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
