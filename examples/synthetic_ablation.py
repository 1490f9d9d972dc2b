"""The DCLS paper's ablation on the embedded synthetic task: learned vs fixed random vs no delays.

Trains the ``synthetic`` preset (two hidden layers) at several widths, each three times with the
same seed and epochs, changing only the delay mode, and prints the test accuracy of every model
with rounded (deployed) delays. Classes in this task differ only in the relative timing of one
spike per channel, so a network without delays cannot tell them apart; fixed random delays
catch up with learned ones only when the network is wide enough to hold, by chance, the
offsets the task needs. ``--json`` writes the results keyed by width, then mode; ``--plot``
draws accuracy against width, one line per mode.

    python examples/synthetic_ablation.py [--widths 12 24 48] [--epochs N] [--max-samples N]
        [--json results.json] [--plot ablation.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from delaydeploy.cli import EXIT_USAGE, at_least
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.errors import DelayDeployError
from delaydeploy.fileio import atomic_path, check_output_file
from delaydeploy.training import train_preset

MODES = {"learned": "learned delays (DCLS)", "fixed": "fixed random delays", "none": "no delays"}
CHANCE = 1 / SyntheticTimingDataset.num_classes


def run_ablation(widths: list[int], epochs: int | None, max_samples: int | None) -> dict[int, dict[str, dict]]:
    """Train every delay mode at every width; results by width, then mode."""
    results: dict[int, dict[str, dict]] = {}
    with tqdm(total=len(widths) * len(MODES), desc="ablation", unit="model") as bar:
        for width in widths:
            for mode, label in MODES.items():
                bar.set_postfix_str(f"2 x {width}, {label}")
                start = time.perf_counter()
                outcome = train_preset("synthetic", epochs=epochs, delays=mode, hidden=width,
                                       progress=False, max_samples=max_samples)
                results.setdefault(width, {})[mode] = {
                    "label": label, "epochs": len(outcome.history),
                    "test_accuracy_rounded": outcome.test_accuracy_rounded,
                    "test_accuracy_continuous": outcome.test_accuracy_continuous,
                    "seconds": round(time.perf_counter() - start, 1)}
                bar.update(1)
    return results


def plot_ablation(results: dict[int, dict[str, dict]], path: Path) -> None:
    """Test accuracy (rounded delays) against width, one line per delay mode, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = list(results)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode, label in MODES.items():
        ax.plot(widths, [100 * results[width][mode]["test_accuracy_rounded"] for width in widths], "o-", label=label)
    ax.axhline(100 * CHANCE, color="gray", linestyle=":", label="chance")
    ax.set_xticks(widths)
    ax.set_xlabel("neurons per hidden layer (2 layers)")
    ax.set_ylabel("test accuracy, rounded delays (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=at_least(1), nargs="+", default=[12, 24, 48],
                        help="neurons per hidden layer, one run of every mode per width")
    parser.add_argument("--epochs", type=at_least(1), help="epochs per model (default: the preset's)")
    parser.add_argument("--max-samples", type=at_least(1),
                        help="use at most this many samples of each split (quick runs)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--plot", help="also draw the results into this PNG file")
    args = parser.parse_args(argv)
    try:
        for path in (args.json, args.plot):
            if path is not None:
                check_output_file(path)  # before training, not after
        results = run_ablation(list(dict.fromkeys(args.widths)), args.epochs, args.max_samples)
        print(f"\nsynthetic task, {SyntheticTimingDataset.num_classes} classes (chance {CHANCE:.1%}), "
              "test accuracy with rounded delays:")
        print(f"  {'hidden layers':<14}" + "".join(f"{label:>24}" for label in MODES.values()))
        for width, row in results.items():
            print(f"  {f'2 x {width}':<14}" + "".join(f"{row[mode]['test_accuracy_rounded']:>24.1%}"
                                                     for mode in MODES))
        if args.json:
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(results, indent=2) + "\n")
            print(f"wrote {args.json}")
        if args.plot:
            plot_ablation(results, Path(args.plot))
            print(f"wrote {args.plot}")
    except DelayDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
