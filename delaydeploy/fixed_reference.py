"""Integer reference simulator of a :class:`~delaydeploy.fixed_point.FixedNetwork`, bit for bit.

It computes the equations of :mod:`delaydeploy.fixed_point` (Lava's ``fixed_pt`` models:
``DelayDense`` weight clipping and per-group ``weight_exp`` shifts, the LIF's truncating
decays, Lava's 24-bit wrap of ``u``, saturation of ``v``, ``v > vth << 6``, hard or soft
reset) on the IR's time axis: the input is padded with ``tail_steps`` zeros, every layer runs
``T + tail`` steps, an input at step ``t`` with delay ``d`` acts at ``t + d``, a recurrent
spike after ``1 + e`` steps, and every bias from ``t = 0``. Lava's own lag of one step per
synapse and its bias timing are the Lava exporter's business, not this module's.

Functional core as in :mod:`delaydeploy.reference`: :func:`fixed_lif_step` is a pure step
function, :func:`run_fixed_layer` threads it through time. Inputs, activations and traces are
int64 and batched, on CPU or CUDA. Synaptic sums are matrix products in float64, which are exact
here: every product ``|w| * |x| <= 2**8 * 2**23`` and every partial sum of fewer than ``2**21``
of them is an integer below ``2**53``. The LIF step also runs in float64 on integer values (all
below ``2**36``, so exact), with straight-through rounding: the same function is the
differentiable integer forward of quantisation-aware fine-tuning (:mod:`delaydeploy.finetune`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from delaydeploy.fixed_point import (
    ACTIVATION_SHIFT,
    DECAY_UNITY,
    STATE_MAX,
    WRAP_LIMIT,
    FixedLayer,
    FixedNetwork,
    effective_weights,
    padded_payload,
)
from delaydeploy.reference import Simulation, predict


class FixedLIFParams(NamedTuple):
    """Per-step integer constants of one population."""

    u_keep: int  # 4096 - du - 1 (Lava adds 1 to du)
    v_keep: int  # 4096 - dv
    bias: torch.Tensor  # bias_mant << bias_exp, [N] float64 (integer values)
    threshold: int  # vth << 6
    soft_reset: bool

    @classmethod
    def from_layer(cls, layer: FixedLayer, device: torch.device) -> FixedLIFParams:
        bias = torch.as_tensor(layer.bias_mant << layer.bias_exp, dtype=torch.float64, device=device)
        return cls(DECAY_UNITY - layer.du - 1, DECAY_UNITY - layer.dv, bias, layer.vth << ACTIVATION_SHIFT,
                   layer.reset == "soft")


class FixedStep(NamedTuple):
    """One step's result: spikes, the new state, and where the 24-bit state overflowed."""

    spikes: torch.Tensor  # 0/1 in the state's dtype
    u: torch.Tensor
    v: torch.Tensor
    u_wrapped: torch.Tensor  # bool: u left (-2**23, 2**23] and was wrapped
    v_saturated: torch.Tensor  # bool: v left [-(2**23 - 1), 2**23 - 1] and was clipped


class FixedTrace(NamedTuple):
    """A layer's run, ``[T, B, N]`` each: activations ``a``, state after each step, overflow masks."""

    spikes: torch.Tensor  # float64 0/1
    a: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    u_wrapped: torch.Tensor
    v_saturated: torch.Tensor


def shift(values: torch.Tensor, exponent: int) -> torch.Tensor:
    """``values << exponent``, or an arithmetic (flooring) right shift for a negative exponent."""
    return values << exponent if exponent >= 0 else values >> -exponent


def straight_through(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``exact`` in the forward (to the bit), the gradient of ``surrogate`` in the backward."""
    return exact + (surrogate - surrogate.detach())


def trunc(values: torch.Tensor) -> torch.Tensor:
    """Truncation toward zero with an identity gradient."""
    return straight_through(torch.trunc(values.detach()), values)


def fixed_lif_step(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, params: FixedLIFParams,
                   spike_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> FixedStep:
    """One step of Lava's bit-accurate LIF for activation ``a`` from state ``u, v`` (float64
    tensors holding integers).

    The decays truncate toward zero (``trunc(x * keep / 4096)``, exact: ``keep / 4096`` is
    dyadic), ``u`` wraps into ``(-2**23, 2**23]``, ``v`` saturates at 24 bits, a spike is
    ``v > threshold``. Every rounding passes gradients straight through; ``spike_fn(v)`` gives
    the spikes with a surrogate gradient (default: the plain comparison, as 0/1).
    """
    current = trunc(u * (params.u_keep / DECAY_UNITY)) + a * 2.0**ACTIVATION_SHIFT
    high, low = current.detach() > WRAP_LIMIT, current.detach() <= -WRAP_LIMIT
    u = current - (high.to(current.dtype) - low.to(current.dtype)) * (2 * WRAP_LIMIT)
    voltage = trunc(v * (params.v_keep / DECAY_UNITY)) + u + params.bias
    saturated = voltage.detach().abs() > STATE_MAX
    voltage = straight_through(voltage.detach().clamp(-STATE_MAX, STATE_MAX), voltage)
    if spike_fn is None:
        spikes = (voltage.detach() > params.threshold).to(voltage.dtype)
    else:
        spikes = spike_fn(voltage)
    reset = params.threshold if params.soft_reset else voltage
    return FixedStep(spikes, u, voltage - reset * spikes.detach(), high | low, saturated)


def _delay_groups(weights: np.ndarray, delays: np.ndarray, device: torch.device) -> list[tuple[int, torch.Tensor]]:
    """Effective weights split by delay: ``(delay, weights[:, delay == d].T)`` as float64."""
    weights = effective_weights(weights)
    return [(int(d), torch.as_tensor(np.where(delays == d, weights, 0).T, dtype=torch.float64, device=device))
            for d in np.unique(delays)]


def _group_sum(x: torch.Tensor, weights_t: torch.Tensor, exponent: int) -> torch.Tensor:
    """``shift(x @ weights_t, exponent)`` for one delay group, exact in int64."""
    return shift((x @ weights_t).to(torch.int64), exponent)


def feedforward_activation(x: torch.Tensor, layer: FixedLayer) -> torch.Tensor:
    """``a[t]`` of the feedforward synapses for integer input ``x`` ``[T, B, in]``: ``[T, B, out]`` int64."""
    steps = x.shape[0]
    x = x.to(torch.float64)
    a = torch.zeros(steps, x.shape[1], layer.size, dtype=torch.int64, device=x.device)
    for delay, weights_t in _delay_groups(layer.weights, layer.delays, x.device):
        if delay < steps:
            a[delay:] += _group_sum(x[: steps - delay], weights_t, layer.weight_exp)
    return a


def run_fixed_layer(layer: FixedLayer, x: torch.Tensor) -> FixedTrace:
    """Run ``layer`` on integer input ``x`` ``[T, B, in]`` (payloads or 0/1 spikes) for ``T`` steps."""
    device = x.device
    a = feedforward_activation(x, layer)
    params = FixedLIFParams.from_layer(layer, device)
    recurrence = (_delay_groups(layer.recurrent_weights, layer.recurrent_delays, device)
                  if layer.recurrent_weights is not None and layer.recurrent_delays is not None else [])
    steps, batch = a.shape[:2]
    spikes = torch.zeros(steps, batch, layer.size, dtype=torch.float64, device=device)
    u_trace, v_trace = torch.empty_like(a), torch.empty_like(a)
    u_wrapped = torch.empty(a.shape, dtype=torch.bool, device=device)
    v_saturated = torch.empty_like(u_wrapped)
    u = v = torch.zeros(batch, layer.size, dtype=torch.float64, device=device)
    for t in range(steps):
        for delay, weights_t in recurrence:
            if t - 1 - delay >= 0:
                a[t] += _group_sum(spikes[t - 1 - delay], weights_t, layer.recurrent_weight_exp)
        step = fixed_lif_step(a[t].to(torch.float64), u, v, params)
        u, v = step.u, step.v
        spikes[t], u_trace[t], v_trace[t] = step.spikes, u, v
        u_wrapped[t], v_saturated[t] = step.u_wrapped, step.v_saturated
    return FixedTrace(spikes, a, u_trace, v_trace, u_wrapped, v_saturated)


def trace_fixed(network: FixedNetwork, x: torch.Tensor | np.ndarray, *,
                device: str | torch.device | None = None) -> list[FixedTrace]:
    """Full traces of every layer, readout last, for input ``x`` ``[T, B, input_size]`` (streaming)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 3 or x.shape[2] != network.input_size:
        raise ValueError(f"input has shape {tuple(x.shape)}, expected [T, B, {network.input_size}]")
    signal = torch.as_tensor(padded_payload(network, x), dtype=torch.int64, device=device)
    traces = []
    for layer in [*network.layers, network.readout]:
        traces.append(run_fixed_layer(layer, signal))
        signal = traces[-1].spikes
    return traces


@dataclass
class FixedSimulation(Simulation):
    """A :class:`Simulation` whose ``readout`` is the raw integer membrane; ``prediction()``
    applies the network's rule to it in float units (``readout / readout_scale``)."""

    readout_scale: float = 1.0

    def prediction(self, steps: torch.Tensor | None = None) -> torch.Tensor:
        return predict(self.readout.to(torch.float64) / self.readout_scale, steps, self.decision)


def simulate_fixed(network: FixedNetwork, x: torch.Tensor | np.ndarray, *,
                   device: str | torch.device | None = None) -> FixedSimulation:
    """Run ``network`` on ``x`` ``[T, B, input_size]`` exactly as Lava's ``fixed_pt`` models do.

    ``x`` holds binary spikes, or values sent as payloads ``round(x * input_scale)``. Returns
    float64 0/1 spikes ``[T + tail, B, N]`` per layer and the readout's raw integer membrane
    ``v`` (int64) ``[T + tail, B, C]``; see :func:`readout_to_float` and :func:`predict_fixed`.
    """
    *layers, readout = trace_fixed(network, x, device=device)
    return FixedSimulation([trace.spikes for trace in layers], readout.v, decision=network.decision,
                           readout_scale=network.readout_scale)


def readout_to_float(network: FixedNetwork, readout: torch.Tensor) -> torch.Tensor:
    """The integer readout membrane in the float network's units, ``v / readout_scale`` (float64)."""
    return readout.to(torch.float64) / network.readout_scale


def predict_fixed(network: FixedNetwork, simulation: Simulation) -> torch.Tensor:
    """Predicted class per sample, the network's rule applied to the readout in float units."""
    return predict(readout_to_float(network, simulation.readout), decision=network.decision)
