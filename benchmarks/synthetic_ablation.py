"""Does the satellite branch matter? VN-Net vs N-Net vs the image-noise control vs persistence.

Trains each variant through the same LightningCLI path as ``vnnet fit`` (the quickstart
config, same data, seed and epochs), tests the best checkpoint, and writes a Markdown table.

    python -m benchmarks.synthetic_ablation --epochs 8 --out runs/ablation
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from vnnet.cli import VNNetCLI
from vnnet.data.datamodule import WeatherDataModule
from vnnet.forecaster import Forecaster

VARIANTS = {
    "persistence": ["--model.model", "vnnet.models.Persistence"],
    "N-Net (no images)": ["--model.model.init_args.vision", "null", "--data.use_satellite",
                          "false"],
    "VN-Net, image-noise control": ["--model.model.init_args.image_noise", "true"],
    "VN-Net": [],
    # The paper's DQAM local branch (own pixel only), without the upstream sampling.
    "VN-Net, paper local branch": ["--model.model.init_args.vision.upstream_hours", "[]"],
}


def run_variant(name: str, extra: list[str], epochs: int, seed: int, out: Path,
                config: str, overrides: list[str]) -> dict[str, float]:
    root = out / "".join(ch if ch.isalnum() else "_" for ch in name).strip("_") / f"seed{seed}"
    args = ["--config", config, "--trainer.default_root_dir", str(root),
            "--trainer.max_epochs", str(epochs), "--seed_everything", str(seed),
            "--trainer.enable_progress_bar", "false", *overrides, *extra]
    cli = VNNetCLI(Forecaster, WeatherDataModule, run=False, args=args,
                   save_config_kwargs={"overwrite": True})
    start = time.perf_counter()
    if name != "persistence":
        cli.trainer.fit(cli.model, cli.datamodule)
        cli.trainer.test(cli.model, cli.datamodule, ckpt_path="best", verbose=False)
    else:
        cli.trainer.test(cli.model, cli.datamodule, verbose=False)
    seconds = time.perf_counter() - start
    return {**cli.model.test_results, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2023])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--set", default="", metavar="'--KEY VALUE ...'",
                        help="CLI overrides for every variant, e.g. --set='--model.lr 0.001'")
    args = parser.parse_args()
    out = Path(args.out)
    results = {}
    for name in args.variants:
        for seed in args.seeds:
            results[f"{name} | seed {seed}"] = run_variant(name, VARIANTS[name], args.epochs,
                                                          seed, out, args.config,
                                                          shlex.split(args.set))
            print(name, seed, {k: round(v, 4) for k, v in results[f"{name} | seed {seed}"].items()
                               if k in ("test/mae", "test/rmse", "seconds")})
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    leads = (1, 3, 6, 12)
    lines = ["| model | seed | " + " | ".join(f"MAE {h}h" for h in leads)
             + " | MAE avg | RMSE avg | wall s |", "|---" * (len(leads) + 5) + "|"]
    for key, r in results.items():
        name, seed = key.split(" | seed ")
        cells = [f"{r[f'test/mae_h{h}']:.3f}" for h in leads]
        lines.append(f"| {name} | {seed} | " + " | ".join(cells)
                     + f" | {r['test/mae']:.3f} | {r['test/rmse']:.3f} | {r['seconds']:.0f} |")
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
