"""Process-wide speed settings for CPU training: transparent huge pages for large tensors.

A training step of the official VN-Net variant allocates about 17 GB of activations, and
PyTorch's CPU allocator hands large tensors back to the operating system when they are freed.
Every step then faults its activations in afresh, one 4 KiB page at a time: for the
memory-bound passes (BatchNorm, ReLU, copies) the page faults cost more than the arithmetic
(``benchmarks/RESULTS.md``). PyTorch can ask the kernel for 2 MiB transparent huge pages for
tensors of 2 MiB and more (its ``THP_MEM_ALLOC_ENABLE`` switch): 512 times fewer faults, and
nothing else changes: the same values, memory still returned when freed.

PyTorch reads the switch once, at the first CPU tensor allocation of the process (importing
``vnnet.cli`` already allocates), so ``request_huge_pages()`` must run before that: the
``vnnet`` command (``vnnet.console``) calls it before importing anything else, and a script
can call it first thing. ``THP_MEM_ALLOC_ENABLE=0`` in the environment keeps it off.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["enable_huge_pages", "huge_pages_active", "request_huge_pages"]

_HUGE_PAGE = 2 * 1024 * 1024
_SYSFS = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _anon_huge_kib() -> int:
    with open("/proc/self/smaps_rollup") as smaps:
        for line in smaps:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def huge_pages_active() -> bool:
    """Whether a large CPU tensor allocated now is backed by transparent huge pages (an 8 MiB
    probe is written and the process's ``AnonHugePages`` checked)."""
    import torch

    if not _SYSFS.exists() or "[never]" in _SYSFS.read_text():
        return False
    try:
        before = _anon_huge_kib()
        probe = torch.ones(4 * _HUGE_PAGE, dtype=torch.uint8)
        grown = _anon_huge_kib() > before
    except OSError:  # no /proc: not Linux
        return False
    del probe
    return grown


def request_huge_pages() -> None:
    """Ask PyTorch for huge-page allocation in this process unless the environment already
    decides (``THP_MEM_ALLOC_ENABLE``). Imports nothing; effective only before the process's
    first tensor allocation. Linux only (elsewhere, or where the kernel has transparent huge
    pages off, nothing changes)."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def enable_huge_pages() -> bool:
    """``request_huge_pages()``, then whether it took effect (``huge_pages_active()``)."""
    request_huge_pages()
    return huge_pages_active()
