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
import time

import torch

from delaydeploy.checkpoint import load_checkpoint
from delaydeploy.config import get_preset
from delaydeploy.training import make_loader, preset_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="trained .pt files; ratios are to the last one")
    parser.add_argument("--preset", required=True, help="the preset whose test split to read")
    parser.add_argument("--data-dir", required=True, help="the dataset folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    _, test = preset_splits(get_preset(args.preset), args.data_dir)
    x, _, _ = next(iter(make_loader(test, args.batch_size, shuffle=False)))
    seconds = []
    for path in args.checkpoints:
        model = load_checkpoint(path).build_model()
        x_model = x.to(next(model.parameters()).dtype)
        with torch.no_grad():
            spikes = model(x_model, rounded=True).spikes
            times = []
            for _ in range(args.repeats + 1):  # the first run warms up
                start = time.perf_counter()
                model(x_model, rounded=True)
                times.append(time.perf_counter() - start)
        seconds.append(statistics.median(times[1:]))
        activity = ", ".join(f"{float((stage != 0).float().mean()):.3f}" for stage in (x_model, *spikes))
        print(f"{path}: {seconds[-1] * 1e3:.1f} ms per batch of {len(x[0])}, activity [{activity}]")
    for path, value in zip(args.checkpoints[:-1], seconds[:-1]):
        print(f"{path}: {value / seconds[-1]:.2f}x {args.checkpoints[-1]}")


if __name__ == "__main__":
    main()
