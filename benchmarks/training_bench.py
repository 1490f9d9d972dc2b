"""Delay learning at the speed of a delay-free network: seconds per training step and per inference batch.

For the SHD-size (140-256-256-20, K = 25) and SSC-size (140-512-512-512-35, K = 31) networks,
batch 32, 100 input steps of 5 % spikes: one training step (forward, backward, both
optimiser steps, clamping) with the reference DCLS path (the DCLS package's kernel and
``conv1d``), with the fast path, with fixed integer delays (the ablation's fixed random
delays, and the form quantisation-aware fine-tuning trains), and for a delay-free network of
the same shape; and one inference batch with rounded integer delays against the delay-free
network. Median of a few repetitions after a warm-up step. Before inference each network's
BatchNorm statistics are set from the batch, as training would leave them: a fresh network's
hidden layers are otherwise nearly silent, which flatters any activity-driven method. The run
reports the fraction of nonzero inputs each synaptic stage saw (``activity``: the input, then
each hidden layer's spikes), the steps each network runs (with delays, the input and its
streaming tail), and the share of each inference batch spent in the synaptic products
(``infer_s_*_synapses``; the rest is BatchNorm and the LIF loops, which scale with the steps).

For the SHD size also one training step with one learned delay per presynaptic
(``axonal``) or postsynaptic (``dendritic``) neuron in every stage
(:class:`delaydeploy.layers.NeuronDelayLinear`), against the delay-free step of the same run.

Keys per network (``shd``, ``ssc``), in seconds unless said: ``train_s_reference``,
``train_s_fast``, ``train_s_fixed_delays``, ``train_s_no_delay``, (``shd`` only)
``train_s_axonal``, ``train_s_dendritic``, ``infer_s_rounded``,
``infer_s_no_delay``, ``infer_s_rounded_synapses``, ``infer_s_no_delay_synapses``;
``steps_rounded``, ``steps_no_delay`` (steps per sample); ``activity`` (fractions); and the
ratios ``train_speedup_fast_vs_reference``, ``train_fast_vs_no_delay``, ``infer_rounded_vs_no_delay``
and (``shd``) ``train_axonal_vs_no_delay``, ``train_dendritic_vs_no_delay``.

Run: ``python -m benchmarks training_bench``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from delaydeploy.config import NetworkConfig, TrainConfig, get_preset
from delaydeploy.model import DelaySNN
from delaydeploy.training import Trainer

BATCH = 32
STEPS = 100
SIZES = {"shd": get_preset("shd").network, "ssc": get_preset("ssc").network}
PER_NEURON_SIZES = ("shd",)  # where the per-neuron delays are timed


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _train_step(config: NetworkConfig, method: str, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], object]:
    model = DelaySNN(config)
    model.set_conv_method(method)
    trainer = Trainer(model, TrainConfig(epochs=10, batch_size=BATCH), torch.device("cpu"))
    model.train()
    return lambda: trainer.step(x, labels)


def _calibrated(model: DelaySNN, x: torch.Tensor) -> DelaySNN:
    """``model`` in eval mode with its BatchNorm running statistics set to those of ``x``."""
    model.eval()
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm1d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one batch sets the statistics exactly
        norm.train()
    with torch.no_grad():
        model(x, rounded=True)
    for norm in norms:
        norm.eval()
    return model


def _inference(model: DelaySNN, x: torch.Tensor) -> Callable[[], object]:
    def batch() -> None:
        with torch.no_grad():
            model(x, rounded=True)

    return batch


def _synaptic_seconds(model: DelaySNN, x: torch.Tensor, repeats: int) -> float:
    """Median seconds per inference batch spent inside the synaptic stages (timed by hooks)."""
    stages = [block.synapses for block in model.blocks] + [model.readout]
    started, spent = [0.0], [0.0]

    def before(module: torch.nn.Module, inputs: object) -> None:
        started[0] = time.perf_counter()

    def after(module: torch.nn.Module, inputs: object, output: object) -> None:
        spent[0] += time.perf_counter() - started[0]

    handles = [hook for stage in stages
               for hook in (stage.register_forward_pre_hook(before), stage.register_forward_hook(after))]
    try:
        totals = []
        for _ in range(repeats + 1):  # the first is a warm-up
            spent[0] = 0.0
            with torch.no_grad():
                model(x, rounded=True)
            totals.append(spent[0])
        return statistics.median(totals[1:])
    finally:
        for hook in handles:
            hook.remove()


def _activity(model: DelaySNN, x: torch.Tensor) -> list[float]:
    """Fraction of nonzero entries in the input and in each hidden layer's spikes."""
    with torch.no_grad():
        spikes = model(x, rounded=True).spikes
    return [float((stage != 0).float().mean()) for stage in (x, *spikes)]


def run(repeats: int = 3, inference_repeats: int = 15) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    results = {}
    for name, config in SIZES.items():
        x = torch.bernoulli(torch.full((STEPS, BATCH, config.input_size), 0.05))
        labels = torch.randint(0, config.num_classes, (BATCH,))
        flat = dataclasses.replace(config, delays="none")
        rounded_model, flat_model = _calibrated(DelaySNN(config), x), _calibrated(DelaySNN(flat), x)
        results[name] = {
            "train_s_reference": _median_seconds(_train_step(config, "reference", x, labels), repeats),
            "train_s_fast": _median_seconds(_train_step(config, "auto", x, labels), repeats),
            "train_s_fixed_delays": _median_seconds(_train_step(dataclasses.replace(config, delays="fixed"), "auto",
                                                                x, labels), repeats),
            "train_s_no_delay": _median_seconds(_train_step(flat, "auto", x, labels), repeats),
            "infer_s_rounded": _median_seconds(_inference(rounded_model, x), inference_repeats),
            "infer_s_no_delay": _median_seconds(_inference(flat_model, x), inference_repeats),
            "infer_s_rounded_synapses": _synaptic_seconds(rounded_model, x, inference_repeats),
            "infer_s_no_delay_synapses": _synaptic_seconds(flat_model, x, inference_repeats),
            "steps_rounded": STEPS + config.tail,
            "steps_no_delay": STEPS + flat.tail,
            "activity": _activity(rounded_model, x),
        }
        row = results[name]
        if name in PER_NEURON_SIZES:
            for granularity in ("axonal", "dendritic"):
                per_neuron = dataclasses.replace(config, delay_granularity=granularity)
                row[f"train_s_{granularity}"] = _median_seconds(_train_step(per_neuron, "auto", x, labels), repeats)
                row[f"train_{granularity}_vs_no_delay"] = row[f"train_s_{granularity}"] / row["train_s_no_delay"]
        row["train_speedup_fast_vs_reference"] = row["train_s_reference"] / row["train_s_fast"]
        row["train_fast_vs_no_delay"] = row["train_s_fast"] / row["train_s_no_delay"]
        row["infer_rounded_vs_no_delay"] = row["infer_s_rounded"] / row["infer_s_no_delay"]
    return results
