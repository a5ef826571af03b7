"""What exact repeatability costs: quickstart VN-Net training steps with PyTorch's
deterministic algorithms on and off, side by side in one run.

The ``vnnet`` command sets ``trainer.deterministic: warn`` (``torch.use_deterministic_algorithms
(True, warn_only=True)``). This builds the quickstart's model and data through the command
line's own parser (``configs/quickstart.yaml``), takes the first ``--batches`` training batches,
and times forward + backward + Adam step over them, alternating blocks with the switch on and
off (``--rounds`` each), so both see the same machine state. Prints the median step time of each
and the ratio, and also the shared-frame gather's backward alone, as advanced indexing (the
atomic-add kernel that made runs differ) and as ``index_select`` (what the V-LSTM uses now).

    python -m benchmarks.determinism [--batches 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from vnnet.cli import VNNetCLI
from vnnet.data.datamodule import WeatherDataModule
from vnnet.forecaster import Forecaster


def _steps(forecaster: Forecaster, batches: list, optimizer: torch.optim.Optimizer) -> float:
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad()
        forecaster.compute_loss(forecaster(batch), batch).backward()
        optimizer.step()
    return (time.perf_counter() - start) / len(batches)


def _gather_ms(select: bool, repeats: int = 20) -> float:
    """Backward of gathering (b t) = (16 12) windows of 40 distinct (128 16 16) gate maps."""
    torch.manual_seed(0)
    source = torch.randn(40, 128, 16, 16, requires_grad=True)
    index = torch.randint(0, 40, (16, 12))
    grad = torch.randn(16, 12, 128, 16, 16)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = (source.index_select(0, index.flatten()).unflatten(0, index.shape) if select
               else source[index])
        out.backward(grad)
        times.append(time.perf_counter() - start)
        source.grad = None
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.determinism")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = VNNetCLI(Forecaster, WeatherDataModule, run=False,
                       args=["--config", "configs/quickstart.yaml"])
    forecaster, dm = cli.model, cli.datamodule
    dm.setup("fit")
    batches = []
    for batch in dm.train_dataloader():
        batches.append(forecaster.on_after_batch_transfer(batch, 0))
        if len(batches) == args.batches:
            break
    forecaster.train()
    optimizer = torch.optim.Adam(forecaster.parameters(), lr=1e-4)
    _steps(forecaster, batches, optimizer)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for deterministic in (True, False):
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
            times[deterministic].append(_steps(forecaster, batches, optimizer))
    torch.use_deterministic_algorithms(False)
    on, off = (statistics.median(times[k]) * 1e3 for k in (True, False))
    print(f"threads {torch.get_num_threads()}, {args.batches} batches x {args.rounds} rounds")
    print("| training step (quickstart VN-Net, batch 16) | median ms |")
    print("|---|---|")
    print(f"| deterministic algorithms off | {off:.1f} |")
    print(f"| deterministic algorithms on | {on:.1f} ({on / off:.3f} x) |")
    adv, sel = _gather_ms(False), _gather_ms(True)
    print(f"\nshared-frame gather backward: advanced indexing {adv:.2f} ms, index_select "
          f"{sel:.2f} ms ({sel / adv:.2f} x)")


if __name__ == "__main__":
    main()
