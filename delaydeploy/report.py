"""``delaydeploy report``: how much accuracy the chip loses, and what the model costs on it.

The **accuracy ladder**, on the test split of the checkpoint's dataset:

1. continuous delays -- the trained PyTorch model (DCLS Gaussian kernels);
2. rounded delays -- the reference simulator of the IR (float64, the checkpoint's semantics;
   for an ``official`` checkpoint a streaming rung follows, what a chip computes);
3. Loihi 2 integers -- :func:`simulate_fixed` of :func:`quantize` (streaming);
   SpiNNaker weights -- the reference simulator with every weight and bias on sPyNNaker's
   16-bit ring-buffer grid (:func:`delaydeploy.exporters.pynn.spinnaker.spinnaker_weights`, the grid
   calibrated on the first :data:`SPINNAKER_CALIBRATION_SAMPLES` training samples as an
   export calibrates it on its inputs; streaming; its s16.15 membrane arithmetic and ring-buffer
   saturation are not modelled);
4. Lava fixed point -- Lava's bit-accurate CPU models on ``lava_samples`` test samples drawn
   with a fixed seed, stratified by class (the whole split if it is no larger, or ``"all"``), checked
   spike for spike against the integer reference (mismatches must be 0), with the integer
   reference's accuracy on the same samples beside it; where Lava is not installed the rung
   is skipped, and ``skipped_rungs`` says why.

Every accuracy carries its 95 % Wilson score interval (``interval_95``): a rung of 16 samples
and one of 500 are not equally sure.

Calibration is the training data's peak (recorded by fine-tuning, else measured), as in
:mod:`delaydeploy.finetune`. All rungs see the same padded test batches, as the training
code's evaluation does.

Cost, of the deployed integer model on the test set (NeuroBench definitions):

* effective synaptic operations per sample: every nonzero activation (input value or spike)
  counts its nonzero outgoing synapses (feedforward, and recurrent for a recurrent layer);
* activation sparsity: the fraction of zero spiking-neuron outputs over neurons x steps;
* quantisation spike changes: hidden spikes the integer model adds or drops against the
  rounded float model (streaming), as a fraction of the float model's spikes;
* memory: 8-bit weight + 6-bit delay per nonzero synapse, 24-bit ``u`` and ``v`` per neuron,
  plus the estimate of delay buffers and cores of :func:`delaydeploy.bundle.estimate_resources`.

Writes ``report.json``, ``report.md`` and PNG plots (delay histograms, one raster, firing
rates, the ladder).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sized
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from delaydeploy.bundle import estimate_resources
from delaydeploy.checkpoint import load_checkpoint
from delaydeploy.datasets import pad_collate
from delaydeploy.errors import ConstraintError, DelayDeployError
from delaydeploy.fileio import atomic_directory, check_output_directory
from delaydeploy.finetune import data_peak, dataset_splits, peak_calibration, single_thread
from delaydeploy.fixed_point import FixedNetwork, effective_weights, padded_payload
from delaydeploy.fixed_reference import readout_to_float, simulate_fixed, trace_fixed
from delaydeploy.ir import Network
from delaydeploy.lowering import lower
from delaydeploy.quantize import check_traces, quantize
from delaydeploy.reference import own_steps, predict, simulate
from delaydeploy.training import make_loader
from delaydeploy.verify import LAVA_BATCH_SIZE, compare_on_dataset, default_workers

REPORT_FILE = "report.json"
PLOTS = ("ladder.png", "delays.png", "raster.png", "firing_rates.png")
WEIGHT_BITS, DELAY_BITS, STATE_BITS = 8, 6, 24
#: Test samples that calibrate the SpiNNaker weight grid of the ladder's SpiNNaker rung.
SPINNAKER_CALIBRATION_SAMPLES = 64
LAVA_SAMPLE_SEED = 0
WILSON_Z = 1.959963984540054  # the normal quantile of 97.5 %


def wilson_interval(correct: int, samples: int, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of ``correct`` out of ``samples`` (95 % for the default ``z``)."""
    if samples == 0:
        return 0.0, 1.0
    p = correct / samples
    centre = (p + z * z / (2 * samples)) / (1 + z * z / samples)
    half = z / (1 + z * z / samples) * math.sqrt(p * (1 - p) / samples + z * z / (4 * samples * samples))
    return max(0.0, centre - half), min(1.0, centre + half)


def _rung(name: str, correct: int, samples: int) -> dict[str, Any]:
    return {"rung": name, "accuracy": correct / max(samples, 1), "samples": samples,
            "interval_95": list(wilson_interval(correct, samples))}


def stratified_sample(labels: list[int], count: int, seed: int = LAVA_SAMPLE_SEED) -> list[int]:
    """``count`` indices drawn class by class in turn (classes in order, each class shuffled with
    ``seed``), so that every class is represented; sorted. All indices if ``count`` covers them."""
    if count >= len(labels):
        return list(range(len(labels)))
    rng = np.random.default_rng(seed)
    by_class = {label: list(rng.permutation([i for i, sample_label in enumerate(labels) if sample_label == label]))
                for label in sorted(set(labels))}
    chosen: list[int] = []
    while len(chosen) < count:
        for members in by_class.values():
            if members and len(chosen) < count:
                chosen.append(int(members.pop()))
    return sorted(chosen)


@dataclass
class _Cost:
    """Running sums over the test set for synaptic operations, sparsity and firing rates."""

    synops: dict[str, float] = field(default_factory=dict)
    zeros: dict[str, float] = field(default_factory=dict)
    activations: dict[str, float] = field(default_factory=dict)
    spikes_per_neuron: dict[str, np.ndarray] = field(default_factory=dict)
    steps: float = 0.0
    samples: int = 0

    def add(self, name: str, key: str, value: float | np.ndarray) -> None:
        table = getattr(self, key)
        table[name] = table.get(name, 0.0) + value


def _fanout(weights: np.ndarray) -> torch.Tensor:
    """Nonzero outgoing synapses of every presynaptic neuron (the chip's effective weights)."""
    return torch.as_tensor(np.count_nonzero(effective_weights(weights), axis=0), dtype=torch.float64)


def _accumulate_cost(cost: _Cost, fixed: FixedNetwork, payload: torch.Tensor, spikes: list[torch.Tensor],
                     mask: torch.Tensor) -> None:
    """Add one batch: ``mask`` ``[T, B, 1]`` marks each sample's own steps (its length + tail)."""
    stages = [*fixed.layers, fixed.readout]
    sources = [payload, *spikes]
    for stage, source in zip(stages, sources):
        active = (source != 0).to(torch.float64) * mask
        cost.add(stage.name, "synops", float((active * _fanout(stage.weights)).sum()))
    for layer, layer_spikes in zip(fixed.layers, spikes):
        active = (layer_spikes != 0).to(torch.float64) * mask
        if layer.recurrent_weights is not None:
            cost.add(layer.name, "synops", float((active * _fanout(layer.recurrent_weights)).sum()))
        total = float(mask.sum()) * layer.size
        cost.add(layer.name, "zeros", total - float(active.sum()))
        cost.add(layer.name, "activations", total)
        cost.add(layer.name, "spikes_per_neuron", active.sum(dim=(0, 1)).numpy())
    cost.steps += float(mask.sum())
    cost.samples += payload.shape[1]


def memory(fixed: FixedNetwork, network: Network) -> dict[str, Any]:
    """Bytes a chip needs for weights, delays and neuron state, per stage and in total."""
    per_stage = {}
    for stage in [*fixed.layers, fixed.readout]:
        synapses = int(np.count_nonzero(effective_weights(stage.weights)))
        if stage.recurrent_weights is not None:
            synapses += int(np.count_nonzero(effective_weights(stage.recurrent_weights)))
        per_stage[stage.name] = {"synapses": synapses, "weight_bytes": synapses * WEIGHT_BITS / 8,
                                 "delay_bytes": synapses * DELAY_BITS / 8,
                                 "neuron_state_bytes": stage.size * 2 * STATE_BITS / 8}
    totals = {key: sum(stage[key] for stage in per_stage.values())
              for key in ("synapses", "weight_bytes", "delay_bytes", "neuron_state_bytes")}
    totals["total_bytes"] = totals["weight_bytes"] + totals["delay_bytes"] + totals["neuron_state_bytes"]
    resources = estimate_resources(network)
    return {**totals, "per_stage": per_stage, "delay_buffer_slots": resources["delay_buffer_slots"],
            "estimated_loihi2_cores": resources["estimated_loihi2_cores"]}


def _lava_check(fixed: FixedNetwork, test_set, indices: list[int], workers: int | None,
                progress: bool) -> dict[str, Any]:
    """Run Lava's bit-accurate models on the test samples ``indices``, :data:`LAVA_BATCH_SIZE` at a
    time, and compare every spike and the readout with the integer reference."""
    from delaydeploy.exporters.lava.graph import simulate_lava

    result = compare_on_dataset(
        torch.utils.data.Subset(test_set, indices), lambda x: simulate_fixed(fixed, x),
        lambda x: simulate_lava(fixed, x, workers=workers or default_workers()), [layer.name for layer in fixed.layers],
        batch_size=LAVA_BATCH_SIZE, tolerance=0.0, progress=progress, desc="Lava vs integer reference")
    first_divergence = None
    if result.first_divergence is not None:
        in_split = replace(result.first_divergence, sample=indices[result.first_divergence.sample])
        first_divergence = f"{in_split} (sample: its index in the test split)"
    samples = result.samples
    return {"samples": samples, "spike_mismatches": result.spike_mismatches,
            "total_spike_mismatches": sum(result.spike_mismatches.values()),
            "readout_mismatches": result.readout_mismatches,
            "accuracy": result.correct / samples, "interval_95": list(wilson_interval(result.correct, samples)),
            "integer_reference_accuracy": result.oracle_correct / samples,
            "integer_reference_interval_95": list(wilson_interval(result.oracle_correct, samples)),
            "first_divergence": first_divergence}


def _spinnaker_network(network: Network, train_set) -> tuple[Network, dict[str, dict[str, float]]]:
    """The network on SpiNNaker's weight grid calibrated on the first training samples, and the
    grid's unit per stage and receptor."""
    from delaydeploy.exporters.pynn.spinnaker import spinnaker_weights, summed_weight_peaks, weight_grid

    x = pad_collate([train_set[i] for i in range(min(SPINNAKER_CALIBRATION_SAMPLES, len(train_set)))])[0]
    peaks = summed_weight_peaks(network, x.double().numpy())
    grid = weight_grid([stage.name for stage in [*network.layers, network.readout]], peaks)
    units = {name: {receptor: entry["unit"] for receptor, entry in receptors.items()}
             for name, receptors in grid.items()}
    return spinnaker_weights(network, peaks), units


def compute_report(path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                   lava_samples: int | Literal["all"] = 16, workers: int | None = None, max_samples: int | None = None,
                   batch_size: int = 64, test_speakers: str | None = None,
                   progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report of the checkpoint at ``path`` as a JSON-ready dict, and the arrays its plots need;
    the test split is the one the checkpoint was trained with unless ``test_speakers`` (FSDD) says
    otherwise. ``lava_samples``: a count, or ``"all"`` for the whole test split, run on Lava in
    ``workers`` parallel runs (default :func:`delaydeploy.verify.default_workers`)."""
    with single_thread():
        return _compute_report(path, data_dir, lava_samples, workers, max_samples, batch_size, test_speakers,
                               progress)


def _compute_report(path: str | os.PathLike, data_dir: str | os.PathLike | None, lava_samples: int | Literal["all"],
                    workers: int | None, max_samples: int | None, batch_size: int, test_speakers: str | None,
                    progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    checkpoint = load_checkpoint(path)
    model = checkpoint.build_model()
    network = lower(model)
    semantics = checkpoint.config.semantics
    train_set, test_set, dataset = dataset_splits(checkpoint, data_dir, max_samples, test_speakers)
    peak = checkpoint.metrics.get("calibration_peak")
    if peak is None:
        peak = data_peak(train_set, progress)
    fixed = quantize(network, calibration=peak_calibration(network, peak))
    spinnaker, spinnaker_units = _spinnaker_network(network, train_set)
    loader = make_loader(test_set, batch_size, shuffle=False)
    names = ["continuous delays", f"rounded delays ({semantics})"]
    if semantics != "streaming":
        names.append("rounded delays (streaming)")
    names += ["Loihi 2 integers", "SpiNNaker weights"]
    correct = dict.fromkeys(names, 0)
    changed: dict[str, int] = {}  # hidden spikes the integer model adds or drops against the rounded float model
    float_total: dict[str, int] = {}
    cost = _Cost()
    raster = None
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        for batch, (x, labels, lengths) in enumerate(tqdm(loader, desc="accuracy ladder", disable=not progress)):
            x64 = x.double()
            streaming = simulate(network, x64)
            readouts = [model(x.to(dtype), rounded=False).readout]
            if semantics != "streaming":
                readouts.append(simulate(network, x64, semantics=semantics).readout)
            readouts.append(streaming.readout)
            traces = trace_fixed(fixed, x64)
            try:
                check_traces(fixed, traces)
            except ConstraintError as error:
                raise ConstraintError(f"{path}: test batch {batch} (samples counted from the batch start), which "
                                      f"the calibration peak does not cover: {error}") from None
            readouts.append(readout_to_float(fixed, traces[-1].v))
            readouts.append(simulate(spinnaker, x64).readout)
            predictions = [predict(readout, own_steps(lengths, x.shape[0], readout), network.decision)
                           for readout in readouts]
            for layer, float_spikes, trace in zip(fixed.layers, streaming.spikes, traces):
                changed[layer.name] = changed.get(layer.name, 0) + int((float_spikes != trace.spikes).sum())
                float_total[layer.name] = float_total.get(layer.name, 0) + int(float_spikes.sum())
            for name, prediction in zip(names, predictions):
                correct[name] += int((prediction == labels).sum())
            spikes = [trace.spikes for trace in traces[:-1]]
            payload = torch.as_tensor(padded_payload(fixed, x64.numpy()), dtype=torch.float64)
            steps = torch.arange(payload.shape[0])[:, None, None]
            mask = (steps < (lengths + fixed.tail_steps)[None, :, None]).to(torch.float64)
            _accumulate_cost(cost, fixed, payload, spikes, mask)
            if raster is None:
                raster = {"input": payload[:, 0].numpy(), "label": int(labels[0]),
                          **{layer.name: s[:, 0].numpy() for layer, s in zip(fixed.layers, spikes)}}
    assert isinstance(test_set, Sized) and isinstance(train_set, Sized)  # torch's Dataset declares no __len__
    samples = len(test_set)
    ladder = [_rung(name, correct[name], samples) for name in names]
    from delaydeploy.exporters.lava.env import lava_missing

    lava = None
    skipped = []
    lava_count = samples if lava_samples == "all" else lava_samples
    missing = lava_missing() if lava_count > 0 else None
    if missing is not None:
        skipped.append({"rung": "Lava fixed point", "reason": missing})
    elif lava_count > 0:
        indices = stratified_sample([int(test_set[i][1]) for i in range(samples)], lava_count)
        lava = {**_lava_check(fixed, test_set, indices, workers, progress), "indices": indices,
                "seed": LAVA_SAMPLE_SEED}
        ladder.append({"rung": "Lava fixed point", "accuracy": lava["accuracy"], "samples": lava["samples"],
                       "interval_95": lava["interval_95"],
                       "integer_reference_accuracy_same_samples": lava["integer_reference_accuracy"],
                       "spike_mismatches": lava["total_spike_mismatches"]})
    per_layer_sparsity = {name: cost.zeros[name] / cost.activations[name] for name in cost.zeros}
    report = {
        "checkpoint": str(path), "preset": checkpoint.preset, "dataset": dataset, "semantics": semantics,
        "dataset_options": checkpoint.dataset_options(test_speakers),
        "finetuned": "finetuned_from" in checkpoint.metrics, "adaptation": checkpoint.metrics.get("adaptation"),
        "test_samples": samples,
        "calibration_peak": float(peak), "ladder": ladder, "lava": lava, "skipped_rungs": skipped,
        "quantisation_spike_changes": {name: {"changed": changed[name], "float_spikes": float_total[name],
                                              "fraction": changed[name] / max(float_total[name], 1)}
                                       for name in changed},
        "synaptic_operations": {"per_sample": sum(cost.synops.values()) / max(cost.samples, 1),
                                "per_sample_by_stage": {k: v / max(cost.samples, 1) for k, v in cost.synops.items()}},
        "activation_sparsity": {"overall": sum(cost.zeros.values()) / max(sum(cost.activations.values()), 1.0),
                                "per_layer": per_layer_sparsity},
        "firing_rates": {name: {"spikes_per_neuron_per_step": 1.0 - sparsity,
                                "hz": (1.0 - sparsity) / network.dt}
                         for name, sparsity in per_layer_sparsity.items()},
        "memory": memory(fixed, network),
        "spinnaker": {"calibrated_on_samples": min(SPINNAKER_CALIBRATION_SAMPLES, len(train_set)),
                      "weight_units": spinnaker_units},
        "loihi2": {"input_scale": fixed.input_scale, "readout_scale": fixed.readout_scale,
                   "layers": {layer.name: {"weight_exp": layer.weight_exp, "vth": layer.vth, "dv": layer.dv}
                              for layer in [*fixed.layers, fixed.readout]}},
        "plots": list(PLOTS),
    }
    arrays = {"network": network, "raster": raster,
              "rates": {name: counts / max(cost.steps, 1.0) for name, counts in cost.spikes_per_neuron.items()}}
    return report, arrays


def format_ladder(report: dict[str, Any]) -> str:
    """The ladder as a small text table."""
    lines = [f"accuracy ladder ({report['dataset']} test split, {report['test_samples']} samples)",
             f"  {'rung':<30} {'accuracy':>9} {'95% interval':>15} {'samples':>8}"]
    for rung in report["ladder"]:
        lines.append(f"  {rung['rung']:<30} {100 * rung['accuracy']:8.2f}% {_interval(rung):>15} "
                     f"{rung['samples']:8d}")
    for skipped in report.get("skipped_rungs", []):
        lines.append(f"  {skipped['rung']}: skipped, {skipped['reason']}")
    lava = report.get("lava")
    if lava is not None:
        drawn = ("the whole test split" if lava["samples"] == report["test_samples"]
                 else f"stratified by class, seed {lava['seed']}")
        lines.append(f"  Lava vs integer reference: {lava['total_spike_mismatches']} spike mismatches, "
                     f"{lava['readout_mismatches']} readout mismatches on {lava['samples']} samples "
                     f"({drawn}; integer reference {100 * lava['integer_reference_accuracy']:.2f}% on the same "
                     "samples)")
    return "\n".join(lines)


def _interval(rung: dict[str, Any]) -> str:
    low, high = rung["interval_95"]
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def _adaptation(adaptation: dict[str, Any] | None) -> str:
    if not adaptation:
        return ""
    return (f", BatchNorm adapted to {adaptation['samples']} of the {adaptation['of']} {adaptation['split']} "
            "samples (labels unused)")


def _markdown(report: dict[str, Any]) -> str:
    memory_info = report["memory"]
    lines = [f"# Deployment report: {report['checkpoint']}", "",
             f"Preset `{report['preset']}`, dataset `{report['dataset']}`, {report['test_samples']} test samples, "
             f"calibration peak {report['calibration_peak']:g}{', fine-tuned' if report['finetuned'] else ''}"
             f"{_adaptation(report.get('adaptation'))}.", "",
             "| rung | accuracy | 95% interval | samples | note |", "|---|---:|---:|---:|---|"]
    for r in report["ladder"]:
        note = ""
        if "integer_reference_accuracy_same_samples" in r:
            note = (f"integer reference {100 * r['integer_reference_accuracy_same_samples']:.2f}% on the same samples; "
                    f"{r['spike_mismatches']} spike mismatches")
        lines.append(f"| {r['rung']} | {100 * r['accuracy']:.2f}% | {_interval(r)} | {r['samples']} | {note} |")
    lines += [f"| {r['rung']} | skipped | | | {r['reason']} |" for r in report.get("skipped_rungs", [])]
    lava = report.get("lava")
    if lava is not None:
        lines += ["", f"Lava fixed point vs the integer reference: {lava['total_spike_mismatches']} spike mismatches, "
                      f"{lava['readout_mismatches']} readout mismatches on {lava['samples']} samples."]
    lines += ["", "## Cost of the Loihi 2 integer model", "",
              f"* effective synaptic operations per sample: {report['synaptic_operations']['per_sample']:.0f}",
              "* hidden spikes changed by quantisation (vs rounded float): " + ", ".join(
                  f"{k} {100 * v['fraction']:.2f}%" for k, v in report["quantisation_spike_changes"].items()),
              f"* activation sparsity: {report['activation_sparsity']['overall']:.4f} "
              + "(" + ", ".join(f"{k} {v:.4f}" for k, v in report["activation_sparsity"]["per_layer"].items()) + ")",
              f"* memory: {memory_info['synapses']} synapses, {memory_info['weight_bytes']:.0f} B weights + "
              f"{memory_info['delay_bytes']:.0f} B delays + {memory_info['neuron_state_bytes']:.0f} B neuron state = "
              f"{memory_info['total_bytes'] / 1024:.1f} KiB; ~{memory_info['estimated_loihi2_cores']} core(s)",
              "", *[f"![{name}]({name})" for name in report["plots"]], ""]
    return "\n".join(lines)


def _plot(report: dict[str, Any], arrays: dict[str, Any], directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    network: Network = arrays["network"]
    ladder = report["ladder"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    heights = np.array([100 * r["accuracy"] for r in ladder])
    errors = np.abs(np.array([[100 * bound for bound in r["interval_95"]] for r in ladder]).T - heights)
    bars = ax.bar(range(len(ladder)), heights, yerr=errors, capsize=4, color="tab:blue", ecolor="0.3")
    ax.bar_label(bars, labels=[f"{h:.1f}\nn={r['samples']}" for h, r in zip(heights, ladder)], fontsize=7,
                 label_type="center", color="white")
    for index, rung in enumerate(ladder):
        if "integer_reference_accuracy_same_samples" in rung:
            ax.plot(index, 100 * rung["integer_reference_accuracy_same_samples"], "D", color="tab:orange",
                    label=f"integer reference, same samples ({rung['spike_mismatches']} spike mismatches)")
    if any("integer_reference_accuracy_same_samples" in rung for rung in ladder):
        ax.legend(fontsize=7, loc="lower left")
    ax.set_xticks(range(len(ladder)), [r["rung"].replace(" (", "\n(") for r in ladder], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"accuracy ladder ({report['dataset']}; bars: 95% Wilson intervals)")
    fig.tight_layout()
    fig.savefig(directory / "ladder.png", dpi=100)
    plt.close(fig)

    stages = [*network.layers, network.readout]
    fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages), 2.8), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        delays = stage.delays[stage.weights != 0]
        ax.hist(delays, bins=np.arange(int(stage.delays.max(initial=0)) + 2) - 0.5, color="tab:green")
        ax.set_title(stage.name)
        ax.set_xlabel("delay (steps)")
    axes[0][0].set_ylabel("synapses")
    fig.tight_layout()
    fig.savefig(directory / "delays.png", dpi=100)
    plt.close(fig)

    raster = arrays["raster"]
    panels = ["input", *[layer.name for layer in network.layers]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.8 * len(panels)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], panels):
        steps, neurons = np.nonzero(raster[name])
        ax.scatter(steps, neurons, s=2, color="black")
        ax.set_ylabel(name)
    axes[0, 0].set_title(f"one test sample (label {raster['label']}), Loihi 2 integer model")
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(directory / "raster.png", dpi=100)
    plt.close(fig)

    rates = arrays["rates"]
    fig, axes = plt.subplots(1, max(len(rates), 1), figsize=(3.2 * max(len(rates), 1), 2.8), squeeze=False)
    for ax, (name, values) in zip(axes[0], rates.items()):
        ax.hist(values / network.dt, bins=20, color="tab:orange")
        ax.set_title(f"{name}: mean {values.mean() / network.dt:.1f} Hz")
        ax.set_xlabel("firing rate (Hz)")
    axes[0][0].set_ylabel("neurons")
    fig.tight_layout()
    fig.savefig(directory / "firing_rates.png", dpi=100)
    plt.close(fig)


def write_report(report: dict[str, Any], arrays: dict[str, Any], output: str | os.PathLike) -> Path:
    """Write ``report.json``, ``report.md`` and the plots into the directory ``output`` (atomically)."""
    with atomic_directory(output, REPORT_FILE) as tmp:
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        (tmp / "report.md").write_text(_markdown(report))
        _plot(report, arrays, tmp)
    return Path(output)


def build_report(path: str | os.PathLike, output: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Compute the report of a checkpoint (options of :func:`compute_report`) and write it to ``output``
    (checked first: a directory is replaced only if empty or a report)."""
    check_output_directory(output, REPORT_FILE)
    report, arrays = compute_report(path, **options)
    write_report(report, arrays, output)
    return report


def load_report(directory: str | os.PathLike) -> dict[str, Any]:
    """Read ``report.json`` back from a report directory."""
    file = Path(directory) / REPORT_FILE
    if not file.is_file():
        raise DelayDeployError(f"{directory}: not a report directory ({REPORT_FILE} is missing)")
    return json.loads(file.read_text())
