"""Rounded-delay inference of trained checkpoints against a delay-free twin, on real test data.

Times one batch of the preset's test split through each checkpoint's rounded (deployed) forward
pass, median of repeated runs after a warm-up, and prints each model's activity (fraction of
nonzero inputs to every synaptic stage): the benchmarks use random networks, this uses the
networks people deploy.

    python examples/inference_speed.py out/fsdd/fsdd.pt out/fsdd/fsdd_nodelay.pt \\
        --preset fsdd --data-dir ../shared/data/fsdd/recordings
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import torch

from delaydeploy.checkpoint import load_checkpoint
from delaydeploy.cli import EXIT_USAGE, at_least
from delaydeploy.config import PRESET_NAMES, get_preset
from delaydeploy.datasets import load_dataset
from delaydeploy.errors import DatasetError, DelayDeployError
from delaydeploy.training import make_loader


def time_checkpoints(checkpoints: list[str], preset_name: str, data_dir: str | None, batch_size: int,
                     repeats: int) -> None:
    """Print each checkpoint's median time per test batch and its activity, then the ratios to the last one."""
    models = [load_checkpoint(path).build_model() for path in checkpoints]  # checked before the slow data
    preset = get_preset(preset_name)
    test = load_dataset(preset.dataset, data_dir, "test", **preset.dataset_options)
    for path, model in zip(checkpoints, models):
        if model.config.input_size != test.num_channels:
            raise DatasetError(f"{path}: takes {model.config.input_size} input channels, the {preset_name} "
                               f"test split has {test.num_channels}")
    x, _, _ = next(iter(make_loader(test, batch_size, shuffle=False)))
    seconds = []
    for path, model in zip(checkpoints, models):
        x_model = x.to(next(model.parameters()).dtype)
        with torch.no_grad():
            spikes = model(x_model, rounded=True).spikes  # also the warm-up run
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x_model, rounded=True)
                times.append(time.perf_counter() - start)
        seconds.append(statistics.median(times))
        activity = ", ".join(f"{float((stage != 0).float().mean()):.3f}" for stage in (x_model, *spikes))
        print(f"{path}: {seconds[-1] * 1e3:.1f} ms per batch of {x.shape[1]}, activity [{activity}]")
    for path, value in zip(checkpoints[:-1], seconds[:-1]):
        print(f"{path}: {value / seconds[-1]:.2f}x {checkpoints[-1]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="trained .pt files; ratios are to the last one")
    parser.add_argument("--preset", required=True, choices=PRESET_NAMES, help="the preset whose test split to read")
    parser.add_argument("--data-dir", help="the dataset folder (not needed for synthetic)")
    parser.add_argument("--batch-size", type=at_least(1), default=32, help="test samples per batch (default 32)")
    parser.add_argument("--repeats", type=at_least(1), default=15, help="timed runs per model (default 15)")
    args = parser.parse_args(argv)
    try:
        time_checkpoints(args.checkpoints, args.preset, args.data_dir, args.batch_size, args.repeats)
    except DelayDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
