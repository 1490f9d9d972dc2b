"""The DCLS paper's ablation on the embedded synthetic task: learned vs fixed random vs no delays.

Trains the ``synthetic`` preset (two hidden layers) at several widths, each three times with the
same seed and epochs, changing only the delay mode, and prints the test accuracy of every model
with rounded (deployed) delays. Classes in this task differ only in the relative timing of one
spike per channel, so a network without delays cannot tell them apart; fixed random delays
catch up with learned ones only when the network is wide enough to hold, by chance, the
offsets the task needs.

    python examples/synthetic_ablation.py [--widths 12 24 48] [--epochs N] [--json results.json]
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
    parser.add_argument("--widths", type=int, nargs="+", default=[12, 24, 48],
                        help="neurons per hidden layer, one run of every mode per width")
    parser.add_argument("--epochs", type=int, help="epochs per model (default: the preset's)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    results: dict[int, dict[str, dict]] = {}
    for width in args.widths:
        for mode, label in MODES.items():
            start = time.perf_counter()
            outcome = train_preset("synthetic", epochs=args.epochs, delays=mode, hidden_sizes=(width, width),
                                   progress=False)
            results.setdefault(width, {})[mode] = {
                "label": label, "test_accuracy_rounded": outcome.test_accuracy_rounded,
                "test_accuracy_continuous": outcome.test_accuracy_continuous,
                "seconds": round(time.perf_counter() - start, 1)}
    print(f"\nsynthetic task, {SyntheticTimingDataset.num_classes} classes (chance "
          f"{1 / SyntheticTimingDataset.num_classes:.1%}), test accuracy with rounded delays:")
    print(f"  {'hidden layers':<14}" + "".join(f"{label:>24}" for label in MODES.values()))
    for width, row in results.items():
        print(f"  {f'2 x {width}':<14}" + "".join(f"{row[mode]['test_accuracy_rounded']:>24.1%}" for mode in MODES))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
