"""The DCLS paper's ablation on the embedded synthetic task: learned vs fixed random vs no delays.

Trains the ``synthetic`` preset three times (same seed, same epochs) changing only the delay
mode, and prints the test accuracy of each model with rounded (deployed) delays. Classes in
this task differ only in the relative timing of one spike per channel, so a network without
delays cannot tell them apart.

    python examples/synthetic_ablation.py [--epochs N] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import time

from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.training import train_preset

MODES = {"learned": "learned delays (DCLS)", "fixed": "fixed random delays", "none": "no delays"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="epochs per model (default: the preset's)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    results = {}
    for mode, label in MODES.items():
        start = time.perf_counter()
        outcome = train_preset("synthetic", epochs=args.epochs, delays=mode, progress=False)
        results[mode] = {"label": label, "test_accuracy_rounded": outcome.test_accuracy_rounded,
                         "test_accuracy_continuous": outcome.test_accuracy_continuous,
                         "seconds": round(time.perf_counter() - start, 1)}
    print(f"\nsynthetic task, {SyntheticTimingDataset.num_classes} classes (chance "
          f"{1 / SyntheticTimingDataset.num_classes:.1%}), test accuracy with rounded delays:")
    for mode, row in results.items():
        print(f"  {row['label']:<24} {row['test_accuracy_rounded']:7.1%}   ({row['seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
