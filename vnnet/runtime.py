"""Process-wide speed settings for CPU training: huge pages and a caching CPU allocator.

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

``use_caching_allocator()`` goes further: freed CPU blocks of 1 MiB and more are kept and
handed out again for the next request of the same (2 MiB-rounded) size, as PyTorch's CUDA
allocator does on GPUs, so after the first step a training loop allocates no fresh memory at
all. It is a small C++ extension installed with ``c10::SetCPUAllocator``; the ``vnnet``
command line switches it on with ``--cpu_caching_allocator true`` (the default).
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

__all__ = ["caching_allocator_stats", "enable_huge_pages", "huge_pages_active",
           "request_huge_pages", "use_caching_allocator"]

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
    probe is written and the process's ``AnonHugePages`` checked). Ask before the caching
    allocator holds blocks: a probe served from its cache adds no pages and reads False."""
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


# ---------------------------------------------------------------- caching CPU allocator

_ALLOCATOR_SOURCE = r"""
#include <torch/extension.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <pthread.h>
#include <unistd.h>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kBlock = size_t(2) << 20;  // large blocks: 2 MiB multiples (huge pages)

struct CachingCPUAllocator final : at::Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // by rounded size
  std::unordered_map<void*, size_t> sizes;  // live and cached large blocks
  size_t cached = 0, live = 0, limit = 0, hits = 0, misses = 0, releases = 0;
  size_t threshold = size_t(1) << 20;  // below: plain allocations

  // One deleter for every block (also what raw_deleter() must give oneDNN): blocks not in
  // ``sizes`` are small and go straight back.
  static void delete_block(void* p);

  at::DataPtr allocate(size_t n) override {
    if (n < threshold) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &delete_block, at::Device(at::DeviceType::CPU)};
    }
    const size_t size = (n + kBlock - 1) / kBlock * kBlock;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = free_blocks.find(size);
      if (it != free_blocks.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached -= size;
        ++hits;
      } else {
        ++misses;
        if (cached > 0 && live + cached + size > limit) release_locked();
      }
      live += size;
    }
    if (p == nullptr) {
      try {
        p = c10::alloc_cpu(size);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        release_locked();  // out of memory with blocks cached: free them and retry once
        live -= size;
        p = nullptr;
      }
      if (p == nullptr) {
        p = c10::alloc_cpu(size);
        std::lock_guard<std::mutex> lock(mu);
        live += size;
      }
      std::lock_guard<std::mutex> lock(mu);
      sizes[p] = size;
    }
    return {p, p, &delete_block, at::Device(at::DeviceType::CPU)};
  }

  void free_block(void* p) {
    std::unique_lock<std::mutex> lock(mu);
    auto found = sizes.find(p);
    if (found == sizes.end()) {
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    const size_t size = found->second;
    live -= size;
    if (live + cached + size > limit) {  // over the budget: give it back
      sizes.erase(p);
      c10::free_cpu(p);
      ++releases;
      return;
    }
    free_blocks[size].push_back(p);
    cached += size;
  }

  void release_locked() {
    for (auto& kv : free_blocks) {
      for (void* p : kv.second) {
        sizes.erase(p);
        c10::free_cpu(p);
        ++releases;
      }
      kv.second.clear();
    }
    cached = 0;
  }

  at::DeleterFnPtr raw_deleter() const override { return &delete_block; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

CachingCPUAllocator* instance = nullptr;

void CachingCPUAllocator::delete_block(void* p) { instance->free_block(p); }

}  // namespace

void install(double limit_bytes) {
  if (instance == nullptr) {
    instance = new CachingCPUAllocator();  // lives as long as the process
    // A fork (DataLoader workers) must not copy the lock while another thread holds it.
    pthread_atfork([] { instance->mu.lock(); }, [] { instance->mu.unlock(); },
                   [] { instance->mu.unlock(); });
    c10::SetCPUAllocator(instance, /*priority=*/100);
  }
  std::lock_guard<std::mutex> lock(instance->mu);
  instance->limit = static_cast<size_t>(limit_bytes);
}

bool installed() { return instance != nullptr && c10::GetCPUAllocator() == instance; }

void empty_cache() {
  if (instance == nullptr) return;
  std::lock_guard<std::mutex> lock(instance->mu);
  instance->release_locked();
}

std::vector<int64_t> stats() {
  if (instance == nullptr) return {};
  std::lock_guard<std::mutex> lock(instance->mu);
  return {int64_t(instance->live), int64_t(instance->cached), int64_t(instance->limit),
          int64_t(instance->hits), int64_t(instance->misses), int64_t(instance->releases)};
}
"""


@functools.cache
def _allocator_extension():  # noqa: ANN202 - a compiled module
    from torch.utils.cpp_extension import load_inline

    return load_inline("vnnet_caching_cpu_allocator", cpp_sources=_ALLOCATOR_SOURCE,
                       functions=["install", "installed", "empty_cache", "stats"],
                       extra_cflags=["-O2"], verbose=False)


def use_caching_allocator(memory_fraction: float = 0.8) -> bool:
    """Serve CPU tensors of 1 MiB and more from a cache of freed blocks (by size, rounded up
    to 2 MiB), as PyTorch's CUDA allocator does on GPUs.

    A training step allocates the same tensors every step; reusing last step's blocks skips
    the kernel's page faults and page zeroing for all of them. Cached plus live large blocks
    stay within ``memory_fraction`` of the machine's memory: past it, freed blocks go back to
    the system, and a request that would exceed it first empties the cache. Compiles a small
    C++ extension on first use (cached); returns False, with a warning, where that fails.
    Tensors allocated before keep their own allocator. Process-wide; stays installed.
    """
    if not 0.0 < memory_fraction <= 1.0:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction}")
    try:
        ext = _allocator_extension()
    except Exception as error:  # no compiler / ninja: keep PyTorch's allocator
        warnings.warn(f"vnnet: caching CPU allocator unavailable ({error})", RuntimeWarning,
                      stacklevel=2)
        return False
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    ext.install(float(memory_fraction * total))
    return bool(ext.installed())


def caching_allocator_stats() -> dict[str, int]:
    """Live and cached bytes, the limit, cache hits / misses and blocks released (empty when
    the caching allocator is not installed)."""
    if not _allocator_extension.cache_info().currsize:
        return {}
    values = _allocator_extension().stats()
    keys = ("live_bytes", "cached_bytes", "limit_bytes", "hits", "misses", "releases")
    return dict(zip(keys, values, strict=False))
