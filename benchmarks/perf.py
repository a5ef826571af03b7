"""Speed of the three models on synthetic tensors at Weather2K sizes, and of the data pipeline.

For each model and region size N, in a fresh process (so its peak resident memory is its own):

- training step (forward + backward + gradient clipping + Adam step) at ``--batch`` (16): median
  time over ``--steps`` steps after warm-up, and samples/s;
- FLOPs of one training step's forward + backward (``torch.utils.flop_counter``) and of one
  inference forward; achieved share of the machine's fp32 matmul peak = FLOPs / time / peak,
  with the peak measured in the same run (``torch.mm`` of 2048 x 2048 at the same threads,
  best of several, before and after the models; the higher is used);
- inference (eval mode, no autograd) samples/s at batch 16 and 64;
- peak resident memory of the process (``VmHWM``; see :func:`peak_rss_mib`).

Models (``--models``):

``vnnet``          the paper version (``configs/weather2k`` defaults) with its speed options on
                   (shared frames, split gates), batches of consecutive windows (as the ``predict``
                   loader reads them, and as a run-of-windows sampler would train on them);
``vnnet-random``   the same, batches of random windows (the shuffled training loader: no frame
                   repeats within a batch);
``vnnet-plain``    the paper version with its speed options off (reference), consecutive windows;
``nnet``           N-Net (``vision: null``);
``official``       the official-code variant (``VNNetOfficial``) with the MLVFEM fast path;
``official-plain`` the same with plain ``Conv3d`` (the eager reference: same parameters).

Shapes: N stations, 12 input hours of 23 features (20 Weather2K variables + lat, lon, elevation
for the official variant; the paper version adds observed-masks), 12 lead hours, frames
160 x 160 x 6 (``--image``). ``--quick`` shrinks everything (N = 8, 32 x 32 frames, batch 4, a
2,000-frame cube) so that the harness itself runs in seconds.

The pipeline part (``benchmarks/pipeline.py``) measures windows/s of the ``WeatherDataModule``
training loader over a memory-mapped Himawari-layout cube, with 0 and 2 workers, and compares
with the training consumption (samples/s of the paper version's training step).

    python -m benchmarks.perf --out runs/perf                       # everything, full size
    python -m benchmarks.perf --quick --out /tmp/perf_quick          # smoke test, seconds
    python -m benchmarks.perf --models official official-plain --stations 60 --steps 2

Markdown tables (with the exact command) go to stdout and ``DIR/results.md``, raw figures to
``DIR/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODELS = ("vnnet", "vnnet-random", "vnnet-plain", "nnet", "official", "official-plain")
FULL = {"image": 160, "channels": 6, "n_his": 12, "n_pred": 12}
QUICK = {"image": 32, "channels": 6, "n_his": 12, "n_pred": 12}


# ---------------------------------------------------------------- building blocks


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB): ``VmHWM`` of /proc/self/status.

    Not ``ru_maxrss`` alone: on Linux that survives ``execve``, so a process started by a
    parent with a large resident set (e.g. one that has just written a memory-mapped cube)
    would report the parent's size. ``ru_maxrss`` where /proc is missing.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def matmul_peak(threads: int, size: int = 2048, repeats: int = 7) -> float:
    """Best fp32 ``torch.mm`` rate (GFLOP/s) of two size x size matrices at ``threads``."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def build_model(kind: str, description: dict[str, Any]):  # noqa: ANN201 - a ForecastModel
    """The model of ``kind`` (see the module docstring) for ``description``."""
    from vnnet.models.official import VNNetOfficial
    from vnnet.models.vlstm import VLSTM
    from vnnet.models.vnnet import VisionOptions, VNNet
    from vnnet.nn.r2plus1d import MLVFEM

    if kind.startswith("vnnet"):
        # configs/weather2k/d60_temp.yaml: hidden 32, 2 layers, embed 8, stem 16, downsample 4,
        # 4 heads, 16 queries.
        model = VNNet(description, hidden=32, n_layers=2, embed_dim=8,
                      vision=VisionOptions(stem_channels=16, downsample=4, n_heads=4,
                                           n_queries=16))
    elif kind == "nnet":
        model = VNNet(description, hidden=32, n_layers=2, embed_dim=8, vision=None)
    elif kind.startswith("official"):
        model = VNNetOfficial(description)
    else:
        raise ValueError(f"unknown model {kind!r}; expected one of {MODELS}")
    fast = not kind.endswith("-plain")
    for m in model.modules():
        if isinstance(m, VLSTM):
            m.shared_frames = m.channels_last = fast
        elif isinstance(m, MLVFEM):
            m.fast = fast
    return model


def make_batch(description: dict[str, Any], b: int, consecutive: bool, seed: int = 0):  # noqa: ANN201
    """A ``Batch`` of b windows with random values at the description's sizes.

    ``consecutive``: window i starts one hour after window i-1, so the windows share frames
    (b + t - 1 distinct frames), as in a batch of the (unshuffled) predict loader; otherwise
    every frame is distinct, as in a shuffled training batch.
    """
    import torch

    from vnnet.data.batch import Batch

    g = torch.Generator().manual_seed(seed)
    t, h = description["n_his"], description["n_pred"]
    n, f = len(description["lat"]), len(description["input_variables"])
    start = torch.arange(b) if consecutive else torch.randperm(10_000, generator=g)[:b] * 24
    hours = start[:, None] + torch.arange(t)[None, :]  # (b t) hour index
    batch = {
        "x": torch.randn(b, t, n, f, generator=g),
        "x_mask": torch.rand(b, t, n, f, generator=g) > 0.05,
        "y": torch.randn(b, h, n, 1, generator=g),
        "y_mask": torch.rand(b, h, n, 1, generator=g) > 0.05,
        "time": torch.randn(b, t, 4, generator=g),
        "time_index": torch.stack([(hours // 720) % 12, (hours // 24) % 31, hours % 24], -1),
        "time_pred": torch.randn(b, h, 4, generator=g),
        "init_time": hours[:, -1].clone(),
    }
    sat = description.get("satellite")
    if sat is not None:
        c, size = len(sat["channels"]), len(sat["lat"])
        if consecutive:  # one frame sequence, windows cut from it (copies, as a loader makes)
            frames = torch.rand(b + t - 1, c, size, size, generator=g)
            batch["images"] = frames[hours - hours.min()].contiguous()
        else:
            batch["images"] = torch.rand(b, t, c, size, size, generator=g)
        batch["image_mask"] = torch.ones(b, t, dtype=torch.bool)
    return Batch(**batch)


def _masked_mae(pred, batch):  # noqa: ANN001, ANN202
    import torch

    mask = batch.y_mask
    return torch.where(mask, (pred - batch.y).abs(), 0.0).sum() / mask.sum().clamp_min(1)


def measure_model(kind: str, n_stations: int, batch_size: int, steps: int, warmup: int,
                  infer_batches: list[int], infer_reps: int, infer_warmup: int, sizes: dict,
                  threads: int, caching_allocator: bool = False) -> dict[str, Any]:
    """All figures of one model and region size, in this process (see the module docstring)."""
    from vnnet.runtime import huge_pages_active, use_caching_allocator

    if caching_allocator and not use_caching_allocator():  # before the first large tensor
        raise RuntimeError("the caching CPU allocator did not install")
    # Checked first: once blocks are cached, a probe may reuse one and show no new pages.
    huge_pages = huge_pages_active()
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vnnet.models.official import official_description

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    description = official_description(n_stations, image_channels=sizes["channels"],
                                       image_size=sizes["image"], n_his=sizes["n_his"],
                                       n_pred=sizes["n_pred"])
    if kind == "nnet":
        description = {k: v for k, v in description.items() if k != "satellite"}
    model = build_model(kind, description)
    consecutive = kind != "vnnet-random"
    result: dict[str, Any] = {"model": kind, "n": n_stations, "batch": batch_size,
                              "threads": threads, "windows": "consecutive" if consecutive
                              else "random",
                              "parameters": sum(p.numel() for p in model.parameters())}
    batch = make_batch(description, batch_size, consecutive)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3, eps=1e-3)
    model.train()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = _masked_mae(model(batch, teacher_forcing=0.5), batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    torch.manual_seed(1)
    counter = FlopCounterMode(display=False)
    t0 = time.perf_counter()
    with counter:  # also the first warm-up step
        optimizer.zero_grad(set_to_none=True)
        _masked_mae(model(batch, teacher_forcing=0.5), batch).backward()
    result["first_step_s"] = time.perf_counter() - t0
    optimizer.step()
    result["train_flops"] = counter.get_total_flops()
    for _ in range(warmup):
        train_step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - t0)
    result["train_step_s"] = statistics.median(times)
    result["train_step_all_s"] = times
    result["train_samples_s"] = batch_size / result["train_step_s"]
    result["train_peak_mib"] = peak_rss_mib()

    model.eval()
    optimizer.zero_grad(set_to_none=True)  # frees the gradients
    for p in model.parameters():
        p.requires_grad_(False)
    result["infer"] = {}
    for b in infer_batches:
        ibatch = make_batch(description, b, consecutive, seed=2)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:  # (its module tracker fails under inference_mode and
            model(ibatch)               # with parameters that require gradients under no_grad)
        with torch.inference_mode():
            for _ in range(infer_warmup):
                model(ibatch)
            times = []
            for _ in range(infer_reps):
                t0 = time.perf_counter()
                model(ibatch)
                times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        result["infer"][str(b)] = {"s": median, "flops": counter.get_total_flops(),
                                   "samples_s": b / median}
    result["peak_mib"] = peak_rss_mib()
    result["huge_pages"] = huge_pages
    if caching_allocator:
        from vnnet.runtime import caching_allocator_stats

        result["allocator"] = caching_allocator_stats()
    return result


# ---------------------------------------------------------------- orchestration


#: glibc malloc settings for ``--malloc tuned``: never serve allocations by mmap and never trim
#: the heap, so freed tensor memory is reused instead of returned to the OS and faulted in
#: afresh (page by page) for every large tensor of the next step.
TUNED_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2 ** 40)}


def _run_child(args: list[str], label: str, log: Path | None,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m benchmarks.perf --child ...`` and return the JSON it prints last."""
    cmd = [sys.executable, "-m", "benchmarks.perf", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1],
                          env={**os.environ, **(env or {})})
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _allocation(row: dict) -> str:
    """How the measured process allocated CPU memory."""
    parts = (["huge pages"] if row.get("huge_pages") else []) \
        + (["caching allocator"] if row.get("allocator") else [])
    return " + ".join(parts) or "PyTorch default"


def model_table(rows: list[dict], peak: float) -> str:
    sizes = sorted({int(b) for r in rows for b in r["infer"]})
    head = ["model", "N", "windows", "params", "train step s (median)", "train samples/s",
            "GFLOP / train step", "% of matmul peak (train)",
            *[f"infer samples/s b{b}" for b in sizes],
            *[f"% of peak (infer b{b})" for b in sizes], "peak RSS MiB", "allocation"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        gflop = r["train_flops"] / 1e9
        share = 100 * gflop / r["train_step_s"] / peak
        infer = [r["infer"].get(str(b)) for b in sizes]
        cells = [r["model"], str(r["n"]), r["windows"], f"{r['parameters']:,}",
                 _fmt(r["train_step_s"], 3), _fmt(r["train_samples_s"]), _fmt(gflop, 1),
                 _fmt(share, 1),
                 *[_fmt(i["samples_s"]) if i else "-" for i in infer],
                 *[_fmt(100 * i["flops"] / 1e9 / i["s"] / peak, 1) if i else "-"
                   for i in infer],
                 _fmt(r["peak_mib"], 0), _allocation(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_table(rows: list[dict], pipeline: list[dict] | None, peak: float,
                  test_windows: int = 8737) -> str:
    """The issue-6 targets checked against this run's figures."""
    by = {(r["model"], r["n"]): r for r in rows}
    lines = ["| target | figure | met? |", "|---|---|---|"]
    ns = sorted({r["n"] for r in rows})
    n0 = 60 if 60 in ns else (ns[0] if ns else None)
    for kind, label in (("vnnet", "consecutive windows"), ("vnnet-random", "random windows")):
        r = by.get((kind, n0))
        if r:
            lines.append(f"| paper version trains at >= 4 samples/s (N={n0}, {label}) | "
                         f"{_fmt(r['train_samples_s'])} samples/s | "
                         f"{'yes' if r['train_samples_s'] >= 4 else 'no'} |")
    off, plain = by.get(("official", n0)), by.get(("official-plain", n0))
    if off and plain:
        ratio = plain["train_step_s"] / off["train_step_s"]
        same = off["parameters"] == plain["parameters"]
        lines.append(f"| official variant >= 1.5x faster per training step than plain eager "
                     f"(N={n0}) | {_fmt(plain['train_step_s'], 1)} s -> "
                     f"{_fmt(off['train_step_s'], 1)} s: x{_fmt(ratio)} (parameters "
                     f"{'equal' if same else 'DIFFER'}: {off['parameters']:,}) | "
                     f"{'yes' if ratio >= 1.5 and same else 'no'} |")
        share = 100 * off["train_flops"] / off["train_step_s"] / peak / 1e9
        lines.append(f"| official variant's training step at >= 45% of the matmul peak "
                     f"(N={n0}) | {_fmt(share, 1)} % | {'yes' if share >= 45 else 'no'} |")
    vn = by.get(("vnnet-random", n0)) or by.get(("vnnet", n0))
    if pipeline and vn:
        for p in pipeline:
            ratio = p["windows_s"] / vn["train_samples_s"]
            lines.append(f"| data pipeline >= 10x training consumption ({p['workers']} workers, "
                         f"{p['frames']:,} frames {p['size']}x{p['size']}x{p['channels']}) | "
                         f"{_fmt(p['windows_s'], 1)} windows/s / {_fmt(vn['train_samples_s'])} "
                         f"samples/s = x{_fmt(ratio, 1)} | {'yes' if ratio >= 10 else 'no'} |")
    r = by.get(("vnnet", n0))
    if r:
        b = max(r["infer"], key=int)
        rate = r["infer"][b]["samples_s"]
        minutes = test_windows / rate / 60
        lines.append(f"| `vnnet predict` over a test year ({test_windows:,} windows, N={n0}) "
                     f"in minutes | {test_windows:,} / {_fmt(rate, 1)} samples/s = "
                     f"{_fmt(minutes, 1)} min (model only, batch {b}, consecutive windows) | "
                     f"{'yes' if minutes < 60 else 'no'} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 2 ** 20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "load_avg": os.getloadavg()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--stations", nargs="+", type=int, default=[60, 96, 139])
    parser.add_argument("--plain-stations", nargs="+", type=int, default=[60],
                        help="region sizes at which the -plain references run (default 60)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--official-steps", type=int, default=2,
                        help="timed training steps of the official variant (a minute each)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed training steps after the FLOP-counting one (official: 0)")
    parser.add_argument("--infer-batches", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--infer-reps", type=int, default=3, help="(official: 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--image", type=int, default=None, help="frame size (default 160)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (N=8, 32x32 frames, batch 4, 2,000 frames): seconds")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the data pipeline")
    parser.add_argument("--pipeline-only", action="store_true")
    parser.add_argument("--pipeline-frames", type=int, default=20_000)
    parser.add_argument("--pipeline-size", type=int, default=160)
    parser.add_argument("--pipeline-workers", nargs="+", type=int, default=[0, 2])
    parser.add_argument("--pipeline-batches", type=int, default=40)
    parser.add_argument("--tmp", default=None, help="folder for the pipeline's cube (default: "
                        "the system temp folder; a uniquely named folder is made and removed)")
    parser.add_argument("--out", default=None, help="write results.md and results.json here")
    parser.add_argument("--malloc", choices=["default", "tuned"], default="default",
                        help="tuned: measurement processes run with " + " ".join(
                            f"{k}={v}" for k, v in TUNED_MALLOC.items()) + " (glibc keeps "
                        "freed memory for reuse; see TUNED_MALLOC)")
    parser.add_argument("--huge-pages", choices=["off", "on"], default="off",
                        help="on: measurement processes run with THP_MEM_ALLOC_ENABLE=1 "
                        "(PyTorch's transparent-huge-page allocation, what `vnnet` does; "
                        "vnnet.runtime)")
    parser.add_argument("--cpu-allocator", choices=["default", "caching"], default="default",
                        help="caching: measurement processes serve CPU tensors from "
                        "vnnet.runtime's caching allocator (what `vnnet` does)")
    parser.add_argument("--plain-env", choices=["same", "default"], default="same",
                        help="default: the -plain references run as a plain PyTorch process "
                        "(no huge pages, PyTorch's allocator), the rest as set above, so one "
                        "run compares vnnet's path with the reference as usually run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:  # one measurement in this fresh process; JSON on stdout
        spec = json.loads(args.child)
        if spec.pop("what") == "model":
            result = measure_model(**spec)
        else:
            from benchmarks.pipeline import measure_pipeline

            result = measure_pipeline(**spec)
        print(json.dumps(result))
        return

    sizes = dict(QUICK if args.quick else FULL)
    if args.image:
        sizes["image"] = args.image
    if args.quick:
        args.stations, args.plain_stations = [8], [8]
        args.batch, args.steps, args.official_steps = 4, 2, 1
        args.infer_batches, args.infer_reps = [4, 8], 1
        args.pipeline_frames, args.pipeline_size, args.pipeline_batches = 2000, 32, 10
    command = "python -m benchmarks.perf " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out) if args.out else None
    log = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        log = out / "children.log"
        log.write_text("")
    info = machine()
    print(f"# {command}\n# {info}", file=sys.stderr)
    mm_size = 512 if args.quick else 2048
    peaks = [matmul_peak(args.threads, mm_size)]
    print(f"matmul peak {peaks[0]:.1f} GFLOP/s", file=sys.stderr)

    rows: list[dict] = []
    failed: list[str] = []
    env = dict(TUNED_MALLOC) if args.malloc == "tuned" else {}
    env["THP_MEM_ALLOC_ENABLE"] = "1" if args.huge_pages == "on" else "0"
    if not args.pipeline_only:
        for kind in args.models:
            official = kind.startswith("official")
            for n in args.plain_stations if kind.endswith("-plain") else args.stations:
                spec = {"what": "model", "kind": kind, "n_stations": n,
                        "batch_size": args.batch,
                        "steps": args.official_steps if official else args.steps,
                        "warmup": 0 if official else args.warmup,
                        "infer_batches": args.infer_batches,
                        "infer_reps": 1 if official else args.infer_reps,
                        "infer_warmup": 0 if official else 1, "sizes": sizes,
                        "threads": args.threads,
                        "caching_allocator": args.cpu_allocator == "caching"}
                child_env = env
                if kind.endswith("-plain") and args.plain_env == "default":
                    spec["caching_allocator"] = False
                    child_env = {**env, "THP_MEM_ALLOC_ENABLE": "0"}
                label = f"{kind} N={n}"
                print(f"running {label} ...", file=sys.stderr, flush=True)
                try:
                    r = _run_child(["--child", json.dumps(spec)], label, log, child_env)
                except RuntimeError as err:  # e.g. out of memory: report, go on
                    print(f"  {label} FAILED: {str(err)[-500:]}", file=sys.stderr, flush=True)
                    failed.append(label)
                    continue
                print(f"  {label}: step {r['train_step_s']:.3f} s, "
                      f"{r['train_samples_s']:.2f} samples/s, peak {r['peak_mib']:.0f} MiB, "
                      f"wall {r['wall_s']:.0f} s", file=sys.stderr, flush=True)
                rows.append(r)

    pipeline: list[dict] = []
    if not args.no_pipeline:
        from benchmarks.pipeline import run as run_pipeline

        def child(spec: dict) -> dict:
            label = f"pipeline, {spec['workers']} workers"
            print(f"running {label} ...", file=sys.stderr, flush=True)
            p = _run_child(["--child", json.dumps({"what": "pipeline", **spec})], label, log,
                           env)
            print(f"  {p['windows_s']:.1f} windows/s", file=sys.stderr, flush=True)
            return p

        print(f"writing a {args.pipeline_frames:,}-frame cube ...", file=sys.stderr, flush=True)
        pipeline = run_pipeline(args.pipeline_frames, args.pipeline_size, args.pipeline_workers,
                                args.pipeline_batches, args.batch, args.stations[0], args.tmp,
                                child)

    peaks.append(matmul_peak(args.threads, mm_size))
    peak = max(peaks)
    info_end = os.getloadavg()
    text = [f"```bash\n{command}\n```", "",
            f"Machine: {info['cpu']}, {info['cores']} cores ({info['cpu_capability']}), "
            f"{info['memory']}, torch {info['torch']}, {args.threads} threads. Load average "
            f"(1/5/15 min) {', '.join(f'{v:.2f}' for v in info['load_avg'])} at the start, "
            f"{', '.join(f'{v:.2f}' for v in info_end)} at the end. fp32 matmul peak "
            f"(torch.mm {mm_size}^2, best of 7): {peaks[0]:.1f} GFLOP/s at the start, "
            f"{peaks[1]:.1f} at the end; shares use {peak:.1f}. Memory allocator: "
            + ("glibc default" if args.malloc == "default" else "tuned glibc malloc (" + ", ".join(
                f"{k}={v}" for k, v in TUNED_MALLOC.items()) + ")")
            + f", transparent huge pages {args.huge_pages} (THP_MEM_ALLOC_ENABLE="
            f"{env['THP_MEM_ALLOC_ENABLE']}), CPU allocator {args.cpu_allocator}"
            + ("; the -plain references with neither (a plain PyTorch process)"
               if args.plain_env == "default" else "")
            + (f". FAILED: {', '.join(failed)}" if failed else "") + ".", ""]
    if rows:
        text += [f"Sizes: batch {args.batch}, {sizes['n_his']} input hours, {sizes['n_pred']} "
                 f"leads, frames {sizes['image']}x{sizes['image']}x{sizes['channels']}. "
                 "FLOPs: forward + backward of one training step (torch.utils.flop_counter; "
                 "the Adam step is not counted).", "", model_table(rows, peak), ""]
    if pipeline:
        from benchmarks.pipeline import pipeline_table

        text += [pipeline_table(pipeline), ""]
    text += ["Targets (issue 6):", "", targets_table(rows, pipeline, peak), ""]
    markdown = "\n".join(text)
    print(markdown)
    if out is not None:
        (out / "results.md").write_text(markdown)
        (out / "results.json").write_text(json.dumps(
            {"command": command, "machine": info, "load_end": info_end, "matmul_peak": peaks,
             "models": rows, "pipeline": pipeline}, indent=2))


if __name__ == "__main__":
    main()
