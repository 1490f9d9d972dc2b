"""The reference simulator of the deployment IR: the oracle every target is verified against.

Written as a functional core in the style of Norse: pure ``step(input, state, params)``
functions for the neurons, and :func:`simulate` that threads state through time. It is
batched, runs on CPU or CUDA, and uses float64 by default so that comparisons against other
float64 simulators (Lava, NIR) can be exact in spikes and within 1e-9 in the readout.

Two time semantics:

* ``"streaming"`` (what a chip computes): the input is padded once with
  ``network.tail_steps`` zero steps and every layer runs for the same ``T + tail`` steps.
* ``"official"`` (the DCLS authors' code): each stage's output is cut
  ``official_tail`` steps after its input ends, so layer ``l`` lives for
  ``T + sum(official_tail[:l+1])`` steps and the spikes it would emit later are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from delaydeploy.delay_ops import delayed_linear
from delaydeploy.ir import DEFAULT_DECISION, LIFNeuron, Network, SpikingLayer, check_decision


class LIFParams(NamedTuple):
    """Per-step constants of a LIF population (see :class:`delaydeploy.ir.LIFNeuron`)."""

    decay: float
    threshold: float
    soft_reset: bool
    strict: bool

    @classmethod
    def from_neuron(cls, neuron: LIFNeuron) -> LIFParams:
        return cls(neuron.decay, neuron.threshold, neuron.reset == "soft", neuron.threshold_rule == ">")


def lif_step(current: torch.Tensor, v: torch.Tensor, params: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF step: returns ``(spikes, v_next)`` for input ``current`` and membrane ``v``."""
    h = v * params.decay + current
    fired = h > params.threshold if params.strict else h >= params.threshold
    spikes = fired.to(h.dtype)
    v_next = h - params.threshold * spikes if params.soft_reset else h * (1.0 - spikes)
    return spikes, v_next


def integrator_step(current: torch.Tensor, v: torch.Tensor, decay: float) -> torch.Tensor:
    """One step of the non-spiking readout: ``v_next = v * decay + current`` (``decay = 0`` at
    ``tau = 1``: the current itself, as ``v * 0.0`` is 0 for every finite ``v``)."""
    return v * decay + current


@dataclass
class Simulation:
    """Result of a run, time first: ``spikes[l]`` is ``[T_l, B, N_l]``, ``readout`` ``[T_out, B, C]``;
    ``decision`` is the network's rule (:data:`delaydeploy.ir.DECISION_RULES`)."""

    spikes: list[torch.Tensor]
    readout: torch.Tensor
    decision: str = DEFAULT_DECISION

    def __post_init__(self) -> None:
        check_decision(self.decision, "simulation")

    def prediction(self, steps: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted class per sample by the network's rule (see :func:`predict`)."""
        return predict(self.readout, steps, self.decision)


def evidence(readout: torch.Tensor, steps: torch.Tensor | None = None,
             decision: str = DEFAULT_DECISION) -> torch.Tensor:
    """Per-class evidence ``[B, classes]`` of a readout ``[T, B, classes]`` under ``decision``.

    ``"summed_softmax"``: ``sum_t softmax(readout[t])``; ``"summed_output"``: ``sum_t readout[t]``
    (see :mod:`delaydeploy.ir`). The class is its argmax (:func:`predict`) and the training loss
    its cross-entropy as logits (:func:`delaydeploy.model.loss_function`): the one place the
    rules are written.

    ``steps`` (one count per sample, see :func:`own_steps`) limits each sample's sum to its own
    readout steps: in a batch padded to its longest sample, the later steps would otherwise make
    a sample's class depend on its batch-mates, and differ from a chip that runs it alone.
    """
    check_decision(decision, "evidence")
    per_step = torch.softmax(readout, dim=-1) if decision == "summed_softmax" else readout
    if steps is not None:
        own = torch.arange(readout.shape[0], device=readout.device)[:, None] < steps.to(readout.device)[None, :]
        per_step = per_step * own.unsqueeze(-1)
    return per_step.sum(dim=0)


def predict(readout: torch.Tensor, steps: torch.Tensor | None = None,
            decision: str = DEFAULT_DECISION) -> torch.Tensor:
    """Class decision used by training and every backend: argmax of :func:`evidence`."""
    return evidence(readout, steps, decision).argmax(dim=-1)


def own_steps(lengths: torch.Tensor, input_steps: int, readout: torch.Tensor) -> torch.Tensor:
    """Readout steps of each sample of a batch padded to ``input_steps``: its own ``lengths`` plus
    what the network appends (the streaming tail or the official padding)."""
    return lengths.to(readout.device) + (readout.shape[0] - input_steps)


class _Recurrence(NamedTuple):
    """Recurrent synapses grouped by delay: ``(delay, presynaptic columns, weights[:, columns].T)``."""

    groups: list[tuple[int, torch.Tensor, torch.Tensor]]


def _recurrence(layer: SpikingLayer, dtype: torch.dtype, device: torch.device) -> _Recurrence:
    weights = torch.as_tensor(layer.recurrent_weights, dtype=dtype, device=device)
    delays = torch.as_tensor(layer.recurrent_delays, device=device)
    groups = []
    for delay in torch.unique(delays).tolist():
        mask = delays == delay
        columns = torch.nonzero(mask.any(dim=0)).flatten()
        groups.append((int(delay), columns, (weights * mask)[:, columns].T.contiguous()))
    return _Recurrence(groups)


def _run_spiking_layer(
    layer: SpikingLayer, x: torch.Tensor, steps: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Spikes ``[steps, B, N]`` of ``layer`` driven by ``x`` (``[>=steps, B, in]``)."""
    weights = torch.as_tensor(layer.weights, dtype=dtype, device=device)
    delays = torch.as_tensor(layer.delays, device=device)
    bias = torch.as_tensor(layer.bias, dtype=dtype, device=device)
    current = delayed_linear(x[:steps], weights, delays) + bias
    params = LIFParams.from_neuron(layer.neuron)
    recurrence = _recurrence(layer, dtype, device) if layer.is_recurrent else None
    spikes = torch.zeros(steps, x.shape[1], layer.size, dtype=dtype, device=device)
    v = torch.zeros(x.shape[1], layer.size, dtype=dtype, device=device)
    for t in range(steps):
        total = current[t]
        if recurrence is not None:
            for delay, columns, weights_t in recurrence.groups:
                source = t - 1 - delay
                if source >= 0:
                    total = total + spikes[source][:, columns] @ weights_t
        spikes[t], v = lif_step(total, v, params)
    return spikes


def simulate(
    network: Network,
    x: torch.Tensor | np.ndarray,
    *,
    semantics: str = "streaming",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
) -> Simulation:
    """Run ``network`` on input ``x`` ``[T, B, input_size]`` (time first).

    Streaming output has ``T + network.tail_steps`` steps for every layer; official output
    has the lengths of the DCLS reference code (see module docstring).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    x = torch.as_tensor(x, dtype=dtype, device=device)
    if x.ndim != 3 or x.shape[2] != network.input_size:
        raise ValueError(f"input has shape {tuple(x.shape)}, expected [T, B, {network.input_size}]")
    steps_in = x.shape[0]
    stages = [*network.layers, network.readout]
    if semantics == "streaming":
        lengths = [steps_in + network.tail_steps] * len(stages)
    elif semantics == "official":
        lengths = (steps_in + np.cumsum([stage.official_tail for stage in stages])).tolist()
    else:
        raise ValueError(f"semantics = {semantics!r}; expected 'streaming' or 'official'")
    signal = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, max(lengths) - steps_in))
    all_spikes = []
    for layer, steps in zip(network.layers, lengths):
        spikes = _run_spiking_layer(layer, signal, steps, dtype, device)
        all_spikes.append(spikes)
        signal = torch.nn.functional.pad(spikes, (0, 0, 0, 0, 0, max(lengths) - steps))
    readout = network.readout
    steps = lengths[-1]
    current = delayed_linear(
        signal[:steps],
        torch.as_tensor(readout.weights, dtype=dtype, device=device),
        torch.as_tensor(readout.delays, device=device),
    ) + torch.as_tensor(readout.bias, dtype=dtype, device=device)
    v = torch.zeros_like(current[0])
    trace = torch.empty_like(current)
    for t in range(steps):
        v = integrator_step(current[t], v, readout.decay)
        trace[t] = v
    return Simulation(all_spikes, trace, network.decision)
