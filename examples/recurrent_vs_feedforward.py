"""Recurrent delays (DelRec) against feedforward delays (DCLS) at equal parameter count.

Trains the ``synthetic`` preset (12-48-48-8, a learned delay on every feedforward synapse)
and the ``synthetic_delrec`` preset (12-71-8, plain feedforward synapses, one learned
recurrent delay per hidden neuron) with the same epochs and seed, and prints the test
accuracy of each with rounded (deployed) delays next to its parameter count: weights
(synaptic weights, biases, BatchNorm) plus delays (DCLS positions, recurrent delays). The
hidden sizes are chosen so that both counts agree within 1%. ``--json`` writes the results
keyed by preset.

    python examples/recurrent_vs_feedforward.py [--epochs N] [--seed S] [--max-samples N] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import torch
from tqdm import tqdm

from delaydeploy.cli import EXIT_USAGE, at_least
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.errors import DelayDeployError
from delaydeploy.fileio import atomic_path, check_output_file
from delaydeploy.model import DelaySNN
from delaydeploy.training import train_preset

MODELS = {"synthetic": "feedforward delays (DCLS)", "synthetic_delrec": "recurrent delays (DelRec)"}


def parameter_counts(model: DelaySNN) -> dict[str, int]:
    """Trainable parameters: ``weights`` (with biases and BatchNorm), ``delays`` and ``total``."""
    groups = model.parameter_groups()
    weights = sum(p.numel() for p in groups["weights"] + groups["norm"])
    delays = sum(p.numel() for p in groups["delays"])
    return {"weights": weights, "delays": delays, "total": weights + delays}


def compare(epochs: int | None, seed: int, max_samples: int | None) -> dict[str, dict]:
    """Train both presets with the same epochs and seed; results by preset name."""
    results = {}
    for preset, label in tqdm(MODELS.items(), desc="models", unit="model"):
        start = time.perf_counter()
        outcome = train_preset(preset, epochs=epochs, seed=seed, progress=False, max_samples=max_samples)
        results[preset] = {"label": label, "hidden_sizes": list(outcome.model.config.hidden_sizes),
                           "parameters": parameter_counts(outcome.model), "epochs": len(outcome.history),
                           "seed": seed, "test_accuracy_rounded": outcome.test_accuracy_rounded,
                           "test_accuracy_continuous": outcome.test_accuracy_continuous,
                           "seconds": round(time.perf_counter() - start, 1)}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=at_least(1), help="epochs per model (default: the presets' 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-samples", type=at_least(1),
                        help="use at most this many samples of each split (quick runs)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    try:
        if args.json is not None:
            check_output_file(args.json)  # before training, not after
        torch.set_num_threads(1)  # these small networks run many tiny ops per step: faster on one thread
        results = compare(args.epochs, args.seed, args.max_samples)
        epochs = next(iter(results.values()))["epochs"]
        print(f"\nsynthetic task, {SyntheticTimingDataset.num_classes} classes (chance "
              f"{1 / SyntheticTimingDataset.num_classes:.1%}), epochs {epochs}, seed {args.seed}; "
              "test accuracy with rounded delays:")
        print(f"  {'model':<27} {'hidden':>6} {'weights':>8} {'delays':>7} {'total':>6} {'test acc':>9} {'time':>7}")
        for row in results.values():
            counts = row["parameters"]
            hidden = "-".join(str(size) for size in row["hidden_sizes"])
            print(f"  {row['label']:<27} {hidden:>6} {counts['weights']:>8} {counts['delays']:>7} "
                  f"{counts['total']:>6} {row['test_accuracy_rounded']:>9.1%} {row['seconds']:>6.0f}s")
        if args.json:
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(results, indent=2) + "\n")
            print(f"wrote {args.json}")
    except DelayDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
