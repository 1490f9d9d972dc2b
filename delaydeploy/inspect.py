"""``delaydeploy inspect``: a human-readable description of an artifact."""

from __future__ import annotations

import numpy as np

from delaydeploy.artifacts import Artifact
from delaydeploy.bundle import estimate_resources
from delaydeploy.ir import delay_structure

SHARED_DELAYS = {"axonal": "one per presynaptic neuron", "dendritic": "one per postsynaptic neuron"}


def _histogram(delays: np.ndarray, width: int = 40) -> list[str]:
    """Text histogram of delay values (one row per delay, bars scaled to ``width``)."""
    counts = np.bincount(delays.ravel())
    peak = max(int(counts.max(initial=0)), 1)
    return [f"      {d:3d} | {'#' * round(width * c / peak):<{width}} {c}" for d, c in enumerate(counts) if c]


def _synapses(weights: np.ndarray, delays: np.ndarray) -> tuple[str, np.ndarray]:
    """``"N synapses"`` (``"N of M synapses (x %)"`` for a pruned stage) and the delays of those that exist."""
    present = weights != 0
    count, total = int(present.sum()), int(present.size)
    text = f"{count} synapses" if count == total else f"{count} of {total} synapses ({100 * count / total:.1f} %)"
    return text, delays[present]


def _delay_range(weights: np.ndarray, delays: np.ndarray) -> str:
    """``"a..b"`` of the existing synapses' delays, and how they are shared if they are one per neuron."""
    present = delays[weights != 0]
    if not present.size:
        return "none"
    structure = delay_structure(weights, delays)
    shared = f" ({SHARED_DELAYS[structure[0]]})" if structure is not None and present.max() > 0 else ""
    return f"{present.min()}..{present.max()}{shared}"


def describe(artifact: Artifact) -> str:
    network = artifact.network
    lines = [f"{artifact.path} ({artifact.kind}{', target ' + artifact.target if artifact.target else ''})"]
    if artifact.bundle is not None:
        signer = artifact.bundle.signed_by
        lines.append("  signature: " + ("none (unsigned bundle)" if signer is None else
                                        f"signed by key {signer} (check it: verify --trusted-key PUB.pem)"))
    if artifact.dataset is not None:
        record = artifact.dataset
        speakers = record["options"].get("test_speakers")
        lines.append(f"  dataset: preset {record['preset']} ({record['dataset']}), test split "
                     + (f"speakers {', '.join(speakers)}" if speakers else "as the dataset defines it"))
    lines += [f"  input: {network.input_size} channels, {network.input_kind}; time step {network.dt * 1e3:g} ms; "
             f"tail {network.tail_steps} steps; semantics {artifact.semantics}"]
    for layer in network.layers:
        neuron = layer.neuron
        synapses, delays = _synapses(layer.weights, layer.delays)
        lines.append(f"  {layer.name}: {layer.in_size} -> {layer.size} LIF (tau {neuron.tau:g} steps, "
                     f"threshold {neuron.threshold:g}, spike if v {neuron.threshold_rule} threshold, "
                     f"{neuron.reset} reset); {synapses}, delays {_delay_range(layer.weights, layer.delays)}")
        lines.extend(_histogram(delays))
        if layer.recurrent_delays is not None:
            lines.append(f"    recurrent {layer.size} -> {layer.size}: delays {layer.recurrent_delays.min()}.."
                         f"{layer.recurrent_delays.max()} (+1 step synaptic latency)")
    readout = network.readout
    leak = "no leak: the synaptic output" if readout.tau == 1 else f"tau {readout.tau:g} steps"
    synapses, delays = _synapses(readout.weights, readout.delays)
    lines.append(f"  {readout.name}: {readout.in_size} -> {readout.size} non-spiking ({leak}); "
                 f"{synapses}, delays {_delay_range(readout.weights, readout.delays)}; class by {network.decision}")
    lines.extend(_histogram(delays))
    resources = estimate_resources(network)
    lines.append("  resources: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in resources.items()))
    if artifact.fixed is not None:
        fixed = artifact.fixed
        lines.append(f"  Loihi 2 integers: input scale {fixed.input_scale:g}, readout scale {fixed.readout_scale:g}; "
                     + "; ".join(f"{layer.name} weight_exp {layer.weight_exp} vth {layer.vth} dv {layer.dv}"
                                 for layer in [*fixed.layers, fixed.readout]))
    return "\n".join(lines)
