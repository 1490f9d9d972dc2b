"""Recurrent delays (DelRec) against feedforward delays (DCLS) at equal parameter count.

Trains the ``synthetic`` preset (12-48-48-8, a learned delay on every feedforward synapse)
and the ``synthetic_delrec`` preset (12-71-8, plain feedforward synapses, one learned
recurrent delay per hidden neuron) with the same epochs and seed, and prints the test
accuracy of each with rounded (deployed) delays next to its parameter count: weights
(synaptic weights, biases, BatchNorm) plus delays (DCLS positions, recurrent delays). The
hidden sizes are chosen so that both counts agree within 1%.

    python examples/recurrent_vs_feedforward.py [--epochs N] [--seed S] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.model import DelaySNN
from delaydeploy.training import train_preset

MODELS = {"synthetic": "feedforward delays (DCLS)", "synthetic_delrec": "recurrent delays (DelRec)"}


def parameter_counts(model: DelaySNN) -> dict[str, int]:
    """Trainable parameters: ``weights`` (with biases and BatchNorm), ``delays`` and ``total``."""
    groups = model.parameter_groups()
    weights = sum(p.numel() for p in groups["weights"] + groups["norm"])
    delays = sum(p.numel() for p in groups["delays"])
    return {"weights": weights, "delays": delays, "total": weights + delays}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="epochs per model (default: the presets' 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # these small networks run many tiny ops per step: faster on one thread
    results = {}
    for preset, label in MODELS.items():
        start = time.perf_counter()
        outcome = train_preset(preset, epochs=args.epochs, seed=args.seed, progress=False)
        results[preset] = {"label": label, "hidden_sizes": list(outcome.model.config.hidden_sizes),
                           "parameters": parameter_counts(outcome.model),
                           "test_accuracy_rounded": outcome.test_accuracy_rounded,
                           "test_accuracy_continuous": outcome.test_accuracy_continuous,
                           "seconds": round(time.perf_counter() - start, 1)}
    epochs = len(outcome.history)
    print(f"\nsynthetic task, {SyntheticTimingDataset.num_classes} classes (chance "
          f"{1 / SyntheticTimingDataset.num_classes:.1%}), {epochs} epochs, seed {args.seed}; "
          "test accuracy with rounded delays:")
    print(f"  {'model':<27} {'hidden':>6} {'weights':>8} {'delays':>7} {'total':>6} {'test acc':>9} {'time':>7}")
    for row in results.values():
        counts = row["parameters"]
        hidden = "-".join(str(size) for size in row["hidden_sizes"])
        print(f"  {row['label']:<27} {hidden:>6} {counts['weights']:>8} {counts['delays']:>7} {counts['total']:>6} "
              f"{row['test_accuracy_rounded']:>9.1%} {row['seconds']:>6.0f}s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
