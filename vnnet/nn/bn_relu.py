"""Fused training-mode BatchNorm + ReLU for channels-last CPU tensors (a speed path).

MLVFEM (the official VN-Net image encoder, ``vnnet.nn.r2plus1d``) normalises and rectifies
maps of up to 16 x 12 x 160 x 160 voxels x 45 channels after every convolution. On a CPU these
passes are limited by memory traffic, not arithmetic: eager PyTorch reads and writes each map
five times forward (BatchNorm statistics, normalise, ReLU) and seven times backward (ReLU
mask, BatchNorm's two reductions and its input gradient). The kernel here does the same
arithmetic in three accesses forward (statistics; normalise and rectify in one write) and five
backward (the ReLU mask is recomputed from the saved input instead of read from the output),
with the saved tensors unchanged (the BatchNorm input).

``bn_relu(x, bn)`` equals ``relu(bn(x))`` for a ``BatchNorm{1,2,3}d`` in training mode:
batch statistics (biased variance) normalise; running statistics are updated with the unbiased
variance and the module's momentum (or the cumulative average when momentum is None);
``num_batches_tracked`` counts. Statistics are accumulated in double precision.
``tests/test_performance_equivalence.py`` checks outputs, gradients and running statistics
against the eager pair. The C++ source is compiled on first use with
``torch.utils.cpp_extension`` (about half a minute, cached); where that fails,
``available()`` is False and callers keep the eager path.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import warnings

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["available", "bn_relu", "supports"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <vector>
#include <cmath>

// Per-channel sums (s1, s2) of two per-element terms over the M rows of an (M, C) matrix:
// add_row(i, b1, b2) adds row i's terms to the float accumulators b1, b2 (C each). Rows are
// split into chunks for at::parallel_for; each chunk sums 256-row blocks in float, then in
// double.
template <typename AddRow>
static void channel_sums(int64_t M, int64_t C, const AddRow& add_row,
                         std::vector<double>& s1, std::vector<double>& s2) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads() * 4,
                                                                (M + 4095) / 4096));
  std::vector<double> p1(chunks * C, 0.0), p2(chunks * C, 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> v1(C), v2(C);
    float* __restrict b1 = v1.data();
    float* __restrict b2 = v2.data();
    for (int64_t k = lo; k < hi; ++k) {
      const int64_t r0 = M * k / chunks, r1 = M * (k + 1) / chunks;
      double* q1 = p1.data() + k * C;
      double* q2 = p2.data() + k * C;
      for (int64_t r = r0; r < r1; r += 256) {
        const int64_t re = std::min(r1, r + 256);
        std::fill(b1, b1 + C, 0.f);
        std::fill(b2, b2 + C, 0.f);
        for (int64_t i = r; i < re; ++i) add_row(i, b1, b2);
        for (int64_t c = 0; c < C; ++c) { q1[c] += b1[c]; q2[c] += b2[c]; }
      }
    }
  });
  s1.assign(C, 0.0);
  s2.assign(C, 0.0);
  for (int64_t k = 0; k < chunks; ++k)
    for (int64_t c = 0; c < C; ++c) { s1[c] += p1[k * C + c]; s2[c] += p2[k * C + c]; }
}

// Forward: y = max(0, (x - mean) * invstd * gamma + beta). Returns {y, mean, var_biased}.
std::vector<torch::Tensor> bn_relu_forward(torch::Tensor x2, torch::Tensor gamma,
                                           torch::Tensor beta, double eps) {
  const int64_t M = x2.size(0), C = x2.size(1);
  const float* x = x2.data_ptr<float>();
  // Moments of (x - shift), shift = the first row: keeps the variance well conditioned.
  std::vector<float> shift(x, x + C);
  std::vector<double> s1, s2;
  const float* __restrict sh = shift.data();
  channel_sums(M, C, [&](int64_t i, float* __restrict b1, float* __restrict b2) {
    const float* __restrict row = x + i * C;
    #pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float d = row[c] - sh[c];
      b1[c] += d;
      b2[c] += d * d;
    }
  }, s1, s2);
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor mean = torch::empty({C}, opts), var = torch::empty({C}, opts);
  std::vector<float> a(C), b(C);
  const float* g = gamma.data_ptr<float>();
  const float* be = beta.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double m1 = s1[c] / M;
    const double v = std::max(0.0, s2[c] / M - m1 * m1);
    const double mu = shift[c] + m1;
    mean.data_ptr<double>()[c] = mu;
    var.data_ptr<double>()[c] = v;
    const double inv = 1.0 / std::sqrt(v + eps);
    a[c] = static_cast<float>(g[c] * inv);
    b[c] = static_cast<float>(be[c] - mu * g[c] * inv);
  }
  torch::Tensor y2 = torch::empty_like(x2);
  float* y = y2.data_ptr<float>();
  at::parallel_for(0, M, 2048, [&](int64_t lo, int64_t hi) {
    const float* __restrict pa = a.data();
    const float* __restrict pb = b.data();
    for (int64_t i = lo; i < hi; ++i) {
      const float* __restrict row = x + i * C;
      float* __restrict out = y + i * C;
      #pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = std::max(0.f, row[c] * pa[c] + pb[c]);
    }
  });
  return {y2, mean, var};
}

// Backward of y = relu(bn(x)) from the saved input: the mask is y > 0, recomputed.
// Returns {grad_x, grad_gamma, grad_beta}.
std::vector<torch::Tensor> bn_relu_backward(torch::Tensor grad2, torch::Tensor x2,
                                            torch::Tensor gamma, torch::Tensor beta,
                                            torch::Tensor mean, torch::Tensor var, double eps) {
  const int64_t M = x2.size(0), C = x2.size(1);
  const float* x = x2.data_ptr<float>();
  const float* gy = grad2.data_ptr<float>();
  const float* g = gamma.data_ptr<float>();
  const float* be = beta.data_ptr<float>();
  std::vector<float> mu(C), inv(C), a(C), b(C);
  for (int64_t c = 0; c < C; ++c) {
    mu[c] = static_cast<float>(mean.data_ptr<double>()[c]);
    const double iv = 1.0 / std::sqrt(var.data_ptr<double>()[c] + eps);
    inv[c] = static_cast<float>(iv);
    a[c] = static_cast<float>(g[c] * iv);
    b[c] = static_cast<float>(be[c] - mean.data_ptr<double>()[c] * g[c] * iv);
  }
  // Pass 1: sum of the masked gradient and of its product with (x - mean), per channel.
  std::vector<double> sg, sgx;
  const float* __restrict pa = a.data();
  const float* __restrict pb = b.data();
  const float* __restrict pm = mu.data();
  channel_sums(M, C, [&](int64_t i, float* __restrict b1, float* __restrict b2) {
    const float* __restrict row = x + i * C;
    const float* __restrict gr = gy + i * C;
    #pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float gm = (row[c] * pa[c] + pb[c] > 0.f) ? gr[c] : 0.f;
      b1[c] += gm;
      b2[c] += gm * (row[c] - pm[c]);
    }
  }, sg, sgx);
  torch::Tensor grad_gamma = torch::empty({C}, gamma.options());
  torch::Tensor grad_beta = torch::empty({C}, gamma.options());
  std::vector<float> k0(C), k1(C);
  for (int64_t c = 0; c < C; ++c) {
    const double iv = inv[c];
    grad_beta.data_ptr<float>()[c] = static_cast<float>(sg[c]);
    grad_gamma.data_ptr<float>()[c] = static_cast<float>(sgx[c] * iv);
    // dx = a * (gm - sg / M - (x - mean) * iv^2 * sgx / M)
    k0[c] = static_cast<float>(sg[c] / M);
    k1[c] = static_cast<float>(iv * iv * sgx[c] / M);
  }
  // Pass 2: the input gradient.
  torch::Tensor gx2 = torch::empty_like(x2);
  float* gx = gx2.data_ptr<float>();
  at::parallel_for(0, M, 2048, [&](int64_t lo, int64_t hi) {
    const float* __restrict p0 = k0.data();
    const float* __restrict p1 = k1.data();
    for (int64_t i = lo; i < hi; ++i) {
      const float* __restrict row = x + i * C;
      const float* __restrict gr = gy + i * C;
      float* __restrict out = gx + i * C;
      #pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float gm = (row[c] * pa[c] + pb[c] > 0.f) ? gr[c] : 0.f;
        out[c] = pa[c] * (gm - p0[c] - (row[c] - pm[c]) * p1[c]);
      }
    }
  });
  return {gx2, grad_gamma, grad_beta};
}
"""


def _cpu_tag() -> str:
    """A short hash of this CPU's instruction-set flags: the build uses ``-march=native``, so a
    cache shared between different machines (a cluster's home directory) keeps one build per
    CPU kind."""
    flags = platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            flags += next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return hashlib.sha1(flags.encode()).hexdigest()[:10]


@functools.cache
def _extension():  # noqa: ANN202 - a compiled module
    from torch.utils.cpp_extension import load_inline

    return load_inline(f"vnnet_bn_relu_{_cpu_tag()}", cpp_sources=_SOURCE,
                       functions=["bn_relu_forward", "bn_relu_backward"],
                       extra_cflags=["-O3", "-march=native", "-fopenmp-simd"], verbose=False)


@functools.cache
def available() -> bool:
    """True when the kernel compiled (once per process); otherwise warn once, eager path."""
    try:
        _extension()
    except Exception as error:  # a missing compiler or ninja: keep the eager path
        warnings.warn(f"vnnet: fused BatchNorm+ReLU kernel unavailable ({error}); using "
                      f"eager PyTorch", RuntimeWarning, stacklevel=2)
        return False
    return True


def supports(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> bool:
    """Whether ``bn_relu`` can run ``x`` through ``bn``: CPU float32 channels-last, training
    with batch statistics, affine, running statistics tracked, no autocast."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() not in (4, 5):
        return False
    layout = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    return (bn.training and bn.affine and bn.track_running_stats
            and x.is_contiguous(memory_format=layout)
            and bn.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and available())


class _BNReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y2, mean, var = _extension().bn_relu_forward(x2, weight.detach(), bias.detach(), eps)
        ctx.save_for_backward(x2, weight, bias, mean, var)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        return y2, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor, *_: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2, weight, bias, mean, var = ctx.saved_tensors
        gx, gw, gb = _extension().bn_relu_backward(grad.contiguous(), x2, weight.detach(),
                                                   bias.detach(), mean, var, ctx.eps)
        return gx, gw, gb, None


def bn_relu(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """``relu(bn(x))`` with one fused kernel where ``supports(x, bn)``, else eagerly."""
    if not supports(x, bn):
        return F.relu(bn(x))
    bn.num_batches_tracked.add_(1)
    momentum = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                else float(bn.momentum))
    channels = x.shape[1]
    # Channels-last memory is an (M, C) matrix: a permuted view, no copy.
    perm = (0, *range(2, x.dim()), 1)
    x2 = x.permute(perm).reshape(-1, channels)
    y2, mean, var = _BNReLU.apply(x2, bn.weight, bn.bias, float(bn.eps))
    count = x2.shape[0]
    with torch.no_grad():
        unbiased = var * (count / max(count - 1, 1))
        bn.running_mean.mul_(1 - momentum).add_(mean.to(bn.running_mean.dtype), alpha=momentum)
        bn.running_var.mul_(1 - momentum).add_(unbiased.to(bn.running_var.dtype),
                                               alpha=momentum)
    inverse = [0, x.dim() - 1, *range(1, x.dim() - 1)]
    return y2.view(x.permute(perm).shape).permute(inverse)
