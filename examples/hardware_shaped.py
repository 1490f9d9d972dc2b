"""Hardware-shaped delay networks: dense or sparse synapses, one delay per synapse, per axon, per dendrite, or none.

Trains a preset (``synthetic``, 12-48-48-8, by default; ``fsdd`` with ``--data-dir``, and
``--test-speakers`` for a speaker-independent split; same seed and epochs) for every combination of
connectivity (``dense``; ``sparse``: each neuron keeps about ``--synapses-per-neuron``
synapses, a stage with ``n`` inputs pruning ``1 - k / n`` of them, as the DCLS paper's sparse
models) and delays (``synaptic``: DCLS, one per synapse; ``axonal``: one per presynaptic
neuron; ``dendritic``: one per postsynaptic neuron; ``none``). For each model it reports the
test accuracy with rounded delays (float reference) and as Loihi 2 integers (quantised on the
training data's peak, integer reference), each with its 95 % Wilson interval and sample count,
and what a chip stores: synapses, delay-buffer slots, estimated Loihi 2 cores
(:func:`delaydeploy.bundle.estimate_resources`), and the size of the NIR file (NIR's
``Linear`` is dense: a sparse model's file is no smaller; one delay per neuron is one
``Delay`` node per stage). Writes ``hardware_shaped.md``, ``.json`` and ``.png`` into ``-o``.

    python examples/hardware_shaped.py [--preset synthetic|fsdd] [--data-dir DIR] [--test-speakers S]
        [--epochs N] [--max-samples N] [-o hardware_shaped]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from delaydeploy.bundle import estimate_resources
from delaydeploy.cli import EXIT_USAGE, at_least
from delaydeploy.config import Preset, get_preset
from delaydeploy.datasets import with_test_speakers
from delaydeploy.errors import DelayDeployError
from delaydeploy.exporters.nir import write_nir
from delaydeploy.fileio import atomic_path, check_output_directory
from delaydeploy.finetune import QuantizedTrainingModel, data_peak, evaluate_fixed, peak_calibration
from delaydeploy.ir import Network
from delaydeploy.lowering import lower
from delaydeploy.report import wilson_interval
from delaydeploy.training import make_loader, preset_splits, train_preset

DELAYS = ("synaptic", "axonal", "dendritic", "none")
CONNECTIVITY = ("dense", "sparse")
TABLE = "hardware_shaped.md"


PRESETS = ("synthetic", "fsdd")


def stage_sparsity(preset: Preset, synapses_per_neuron: int) -> tuple[float, ...]:
    """Per synaptic stage of ``preset``: the fraction pruned so that a neuron keeps about
    ``synapses_per_neuron`` of its inputs (0 where it has no more)."""
    network = preset.network
    inputs = (network.input_size, *network.hidden_sizes)
    return tuple(max(0.0, 1.0 - synapses_per_neuron / n) for n in inputs)


def integer_accuracy(network: Network, train_set, test_set) -> float:
    """Test accuracy of the Loihi 2 integer model, quantised on the training data's peak."""
    model = QuantizedTrainingModel(network, peak_calibration(network, data_peak(train_set)))
    return evaluate_fixed(model, make_loader(test_set, 256, shuffle=False))


def run(preset: Preset, data_dir: str | None, test_speakers: str | None, epochs: int | None,
        max_samples: int | None, synapses_per_neuron: int) -> dict[str, dict[str, dict]]:
    """Train and measure every combination; results by connectivity, then delays."""
    train_set, test_set = preset_splits(preset, data_dir, max_samples)
    results: dict[str, dict[str, dict]] = {}
    with tqdm(total=len(CONNECTIVITY) * len(DELAYS), desc="hardware-shaped", unit="model") as bar, \
            tempfile.TemporaryDirectory() as scratch:
        for connectivity in CONNECTIVITY:
            sparsity = stage_sparsity(preset, synapses_per_neuron) if connectivity == "sparse" else 0.0
            for delays in DELAYS:
                bar.set_postfix_str(f"{connectivity}, {delays}")
                start = time.perf_counter()
                outcome = train_preset(preset.name, data_dir=data_dir, test_speakers=test_speakers, epochs=epochs,
                                       max_samples=max_samples, progress=False,
                                       sparsity=sparsity, delays="none" if delays == "none" else "learned",
                                       delay_granularity="synaptic" if delays == "none" else delays)
                network = lower(outcome.model)
                samples = len(test_set)
                correct = round(integer_accuracy(network, train_set, test_set) * samples)
                rounded = round(outcome.test_accuracy_rounded * samples)
                nir_file = write_nir(network, Path(scratch) / f"{connectivity}_{delays}.nir")
                results.setdefault(connectivity, {})[delays] = {
                    "test_samples": samples,
                    "accuracy_rounded": outcome.test_accuracy_rounded,
                    "interval_95_rounded": list(wilson_interval(rounded, samples)),
                    "accuracy_loihi2": correct / samples, "interval_95_loihi2": list(wilson_interval(correct, samples)),
                    **estimate_resources(network), "nir_bytes": nir_file.stat().st_size,
                    "sparsity": list(np.atleast_1d(sparsity).tolist()),
                    "seconds": round(time.perf_counter() - start, 1)}
                bar.update(1)
    return results


def table(results: dict[str, dict[str, dict]], preset: Preset, epochs: int | None, split: str) -> str:
    """The results as a Markdown table."""
    samples = next(iter(next(iter(results.values())).values()))["test_samples"]
    sizes = "-".join(str(n) for n in (preset.network.input_size, *preset.network.hidden_sizes,
                                      preset.network.num_classes))
    lines = [f"{preset.name} ({split}), {sizes}, {epochs or preset.train.epochs} epochs; test accuracy on "
             f"{samples} samples with its 95 % Wilson interval.", "",
             "| synapses | delays | rounded (float) | Loihi 2 integers | synapses stored | delay-buffer slots | "
             "Loihi 2 cores (est.) | NIR file |", "|---|---|---|---|---|---|---|---|"]
    for connectivity, row in results.items():
        for delays, entry in row.items():
            low, high = entry["interval_95_rounded"]
            low2, high2 = entry["interval_95_loihi2"]
            lines.append(f"| {connectivity} | {delays} | {100 * entry['accuracy_rounded']:.1f}% [{100 * low:.1f}, "
                         f"{100 * high:.1f}] | {100 * entry['accuracy_loihi2']:.1f}% [{100 * low2:.1f}, "
                         f"{100 * high2:.1f}] | {entry['synapses']:,} | {entry['delay_buffer_slots']:,} | "
                         f"{entry['estimated_loihi2_cores']} | {entry['nir_bytes'] / 1024:.0f} KiB |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, dict]], path: Path) -> None:
    """Accuracy (rounded, with its interval) against synapses stored, one marker per model, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    markers = {"synaptic": "o", "axonal": "s", "dendritic": "^", "none": "x"}
    colours = {"dense": "tab:blue", "sparse": "tab:orange"}
    for connectivity, row in results.items():
        for delays, entry in row.items():
            low, high = entry["interval_95_rounded"]
            accuracy = 100 * entry["accuracy_rounded"]
            ax.errorbar(entry["synapses"], accuracy, yerr=[[accuracy - 100 * low], [100 * high - accuracy]],
                        marker=markers[delays], color=colours[connectivity], capsize=3,
                        label=f"{connectivity}, {delays}")
    ax.set_xscale("log")
    ax.set_xlabel("synapses stored")
    ax.set_ylabel(f"test accuracy, rounded delays (%), n = {entry['test_samples']}")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default="synthetic")
    parser.add_argument("--data-dir", help="dataset folder (fsdd)")
    parser.add_argument("--test-speakers", metavar="NAME[,NAME]",
                        help="FSDD: test on every recording of these speakers, train on the others")
    parser.add_argument("--epochs", type=at_least(1), help="epochs per model (default: the preset's)")
    parser.add_argument("--max-samples", type=at_least(1), help="at most this many samples per split (quick runs)")
    parser.add_argument("--synapses-per-neuron", type=at_least(1), default=10,
                        help="what a sparse model's neuron keeps (default 10, as the DCLS paper's sparse models)")
    parser.add_argument("-o", "--output", default="hardware_shaped", help="folder for the table, JSON and plot")
    args = parser.parse_args(argv)
    output = Path(args.output)
    try:
        check_output_directory(output, TABLE)
        preset = get_preset(args.preset)
        preset = dataclasses.replace(preset, dataset_options=with_test_speakers(preset.dataset_options,
                                                                                args.test_speakers))
        results = run(preset, args.data_dir, args.test_speakers, args.epochs, args.max_samples,
                      args.synapses_per_neuron)
        output.mkdir(parents=True, exist_ok=True)
        split = f"test speakers {args.test_speakers}" if args.test_speakers else "its test split"
        text = table(results, preset, args.epochs, split)
        with atomic_path(output / TABLE) as tmp:
            tmp.write_text(text)
        with atomic_path(output / "hardware_shaped.json") as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
        plot(results, output / "hardware_shaped.png")
        print(text)
        print(f"wrote {output / TABLE}, hardware_shaped.json and hardware_shaped.png")
    except DelayDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
