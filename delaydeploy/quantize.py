"""Quantisation of a float deployment IR network to its Loihi 2 integer form, with the chip's limits.

Every stage (hidden layer or readout) gets one scale ``S``: its integer membrane is
``v ~= 64 * S * V`` of the float stage (``u`` likewise). The rules, and why:

* **Scale.** ``S`` is as large as the 24-bit state allows for *every* input up to the input
  peak, with one spare bit for rounding: ``S <= VTH_MAX / (2 * B)`` where
  ``B = max(theta + I+, tau * I+, tau * I-)`` bounds ``|V|`` and ``|I|`` (``I+`` / ``I-``:
  the largest positive / negative drive one step can bring, all same-sign synapses active at
  the input peak, bias included; ``theta + I+`` bounds a hard-reset membrane, ``tau * I`` the
  leaky sum). So ``u`` can never wrap, ``v`` never saturate and the readout never reach its
  threshold, and all remaining resolution goes to the threshold and the activations. The bias
  adds ``S <= 4095 * 2**7 / (64 * max|bias|)`` so that every bias fits 13 + 3 bits.
* **Threshold.** ``vth = floor(S * theta)`` (17 bits), then ``S = vth / theta`` so that the
  threshold (and the soft reset's subtraction) is exact. The float rule ``">="`` and Lava's
  ``v > vth << 6`` then differ only where ``v`` lands exactly on ``vth << 6``, one value out of
  ``64 * vth``; the rounding of the weights moves ``v`` by more than that. ``vth < 1`` means the
  layer cannot be represented: a ``ConstraintError`` names the bias or drive at fault.
* **Weights.** ``w = 2 * round(W * S / (q * 2**weight_exp) / 2)``: even integers in
  [-254, 254], which Lava's ``DelayDense`` uses unchanged in every sign mode, with the
  smallest shared ``weight_exp`` (possibly negative) that keeps ``max|w| <= 254``, i.e. all 8
  bits. ``q`` is the input payload scale (``input_scale`` for the first stage, 1 for spikes).
  Recurrent weights use the layer's ``S`` and their own exponent. With ``weight_exp < 0``
  Lava floors each delay group's sum, a bias of at most one unit (``1/S``) per group and step.
* **Bias.** ``bias_mant << bias_exp = round(b * 64 * S)``, per neuron the smallest exponent
  whose mantissa fits 13 bits (the best precision).
* **Decays.** ``du = 4095`` (Lava adds one: ``u`` is the instantaneous current) and
  ``dv = round(4096 / tau)`` (at most 4095: ``tau`` close to 1 keeps ``1/4096`` of ``v``; a
  ``tau`` of 8192 steps or more, which would round to no leak, is refused). A readout without
  leak (``tau = 1``: the DelRec SSC readout, the bare synaptic output) has no exact Loihi 2
  form either: its ``v[t] = trunc(v[t-1] / 4096) + u[t] + bias`` carries at most ``1/4095`` of
  the previous steps, below the rounding of the 8-bit weights (``1/254``), so it is kept.
* **Readout.** A ``FixedLayer`` with ``vth = VTH_MAX`` (unreachable by the scale rule) and
  ``readout_scale = 64 * S`` to read its membrane in float units.
* **Inputs.** Binary spikes and counts go as they are (``input_scale = 1``); their peak is
  1 for spikes and ``max(calibration)`` for counts (1 without calibration). Analog inputs are
  sent as ``round(x * input_scale)``: ``input_scale`` as given, or the largest power of two
  with ``max|calibration| * input_scale <= 2**23 - 1``, the 24-bit payload of Loihi 2 graded
  spikes (Lava: ``num_message_bits = 24``); their peak is ``max|calibration|`` (1 without).
  With ``weight_exp`` forced (netx), no larger than lets the first stage's weights, which
  divide by it, still fill their 8 bits.

Limits that quantisation cannot fix raise :class:`~delaydeploy.errors.ConstraintError`: delays
above 62, a bias or drive too large for the state, and -- given calibration data --
:func:`check_overflow` finds where the integer network would wrap ``u``, saturate ``v`` or fire
its readout on those data. Nothing is clipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from delaydeploy.errors import ConstraintError
from delaydeploy.fixed_point import (
    ACTIVATION_SHIFT,
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_UNITY,
    DELAY_MAX,
    GRADED_PAYLOAD_MAX,
    STATE_MAX,
    VTH_MAX,
    FixedLayer,
    FixedNetwork,
)
from delaydeploy.fixed_reference import FixedTrace, trace_fixed
from delaydeploy.ir import Network, Readout, SpikingLayer

WEIGHT_GRID_MAX = 254  # even weights in [-254, 254] are lossless in every Lava sign mode
HEADROOM = 2.0  # one spare bit of state over the worst-case membrane, for rounding
BIAS_LIMIT = BIAS_MANT_MAX << BIAS_EXP_MAX  # largest |bias_mant << bias_exp| used


def _first(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]]


def check_delays(network: Network) -> None:
    """Raise :class:`ConstraintError` for the first synapse whose delay exceeds ``DELAY_MAX``."""
    for stage in [*network.layers, network.readout]:
        where = f"readout {stage.name!r}" if isinstance(stage, Readout) else f"layer {stage.name!r}"
        if stage.delays.max(initial=0) > DELAY_MAX:
            index = _first(stage.delays > DELAY_MAX)
            raise ConstraintError(f"{where} synapse {index} has delay {stage.delays[tuple(index)]} > {DELAY_MAX} "
                                  "(Loihi 2 limit)")
        if (isinstance(stage, SpikingLayer) and stage.recurrent_delays is not None
                and stage.recurrent_delays.max() > DELAY_MAX):
            delays = stage.recurrent_delays
            index = _first(delays > DELAY_MAX)
            # DelRec: one delay per presynaptic neuron (every row alike); name the neuron, not a synapse
            source = (f"recurrent delay of presynaptic neuron [{index[1]}]" if np.all(delays == delays[:1])
                      else f"recurrent synapse {index}")
            raise ConstraintError(f"{where} {source} is {delays[tuple(index)]} > {DELAY_MAX} (Loihi 2 limit; the "
                                  "synapse adds its own step)")


def _choose_input_scale(network: Network, calibration: np.ndarray | None, input_scale: float | None) -> float:
    if network.input_kind != "analog":
        if input_scale not in (None, 1):
            raise ValueError(f"{network.input_kind} inputs are sent as they are (input_scale 1), got {input_scale}")
        return 1.0
    if input_scale is not None:
        if not (np.isfinite(input_scale) and input_scale > 0):
            raise ValueError(f"input_scale = {input_scale}; it must be finite and > 0")
        return float(input_scale)
    if calibration is None:
        raise ValueError("analog inputs need input_scale, or calibration data to choose it")
    peak = float(np.abs(calibration).max(initial=0.0))
    if peak == 0:
        return 1.0
    scale = 2.0 ** np.floor(np.log2(GRADED_PAYLOAD_MAX / peak))
    return float(scale if round(peak * scale) <= GRADED_PAYLOAD_MAX else scale / 2)


def _weight_filling_input_scale(network: Network, peak: float, weight_exp: int, bias_exp: int | None) -> float:
    """With ``weight_exp`` forced, the largest power of two ``q`` at which the first stage's weights
    ``W * S / (q * 2**weight_exp)`` can still reach their 8 bits at the scale ``S`` the stage allows.

    Its weights divide by the input scale: one chosen only to fill the 24-bit payload would make
    them round to 0.
    """
    stage = network.layers[0] if network.layers else network.readout
    largest = float(np.abs(stage.weights).max(initial=0.0))
    by_state, by_bias, _ = _scale_limits(stage, peak, True, FixedExponents(bias_exp=bias_exp))
    allowed = min(by_state, by_bias)
    if largest == 0 or not np.isfinite(allowed):
        return np.inf
    return float(2.0 ** np.floor(np.log2(allowed * largest / ((WEIGHT_GRID_MAX - 1) * 2.0**weight_exp))))


def _input_peak(network: Network, calibration: np.ndarray | None) -> float:
    if network.input_kind == "binary" or calibration is None:
        return 1.0
    return float(np.abs(calibration).max(initial=0.0)) or 1.0


def _drives(stage: SpikingLayer | Readout, peak: float, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Largest positive and negative one-step drive per neuron (inputs at ``peak``, bias included)."""
    weights = stage.weights
    if signed:
        positive = negative = peak * np.abs(weights).sum(axis=1)
    else:
        positive, negative = peak * np.clip(weights, 0, None).sum(axis=1), peak * np.clip(-weights, 0, None).sum(axis=1)
    if isinstance(stage, SpikingLayer) and stage.recurrent_weights is not None:
        positive = positive + np.clip(stage.recurrent_weights, 0, None).sum(axis=1)
        negative = negative + np.clip(-stage.recurrent_weights, 0, None).sum(axis=1)
    return positive + np.clip(stage.bias, 0, None), negative + np.clip(-stage.bias, 0, None)


def _scale_limits(stage: SpikingLayer | Readout, peak: float, signed: bool,
                  fixed: FixedExponents) -> tuple[float, float, np.ndarray]:
    """``(S allowed by the state and the weights, S allowed by the bias, per-neuron membrane bound B)``."""
    positive, negative = _drives(stage, peak, signed)
    if isinstance(stage, SpikingLayer):
        theta, tau = stage.neuron.threshold, stage.neuron.tau
        bound = np.maximum(theta + positive, tau * np.maximum(positive, negative))
    else:
        bound = stage.tau * np.maximum(positive, negative)
    worst = float(bound.max(initial=0.0))
    by_state = VTH_MAX / (HEADROOM * worst) if worst > 0 else np.inf
    if fixed.weight_exp is not None:
        largest = max([float(np.abs(stage.weights).max(initial=0.0)) * fixed.payload_factor]
                      + ([float(np.abs(stage.recurrent_weights).max(initial=0.0))]
                         if isinstance(stage, SpikingLayer) and stage.recurrent_weights is not None else []))
        if largest > 0:
            by_state = min(by_state, (WEIGHT_GRID_MAX - 1) * 2.0**fixed.weight_exp / largest)
    largest_bias = float(np.abs(stage.bias).max(initial=0.0))
    bias_limit = BIAS_LIMIT if fixed.bias_exp is None else (BIAS_MANT_MAX - 1) << fixed.bias_exp
    by_bias = bias_limit / (2**ACTIVATION_SHIFT * largest_bias) if largest_bias > 0 else np.inf
    return by_state, by_bias, bound


def _weights(weights: np.ndarray, factor: float, exponent: int | None = None) -> tuple[np.ndarray, int]:
    """``weights * factor`` as even 8-bit integers and a shared exponent using the whole range.

    A given ``exponent`` is used as it is (the caller has capped the scale so the weights fit).
    """
    if exponent is not None:
        return (2 * np.round(np.ldexp(weights * factor, -exponent) / 2)).astype(np.int64), exponent
    peak = float(np.abs(weights).max(initial=0.0)) * factor
    if peak == 0:
        return np.zeros(weights.shape, dtype=np.int64), 0
    exponent = int(np.ceil(np.log2(peak / WEIGHT_GRID_MAX)))
    while np.ldexp(peak, -exponent) > WEIGHT_GRID_MAX:
        exponent += 1
    while np.ldexp(peak, 1 - exponent) <= WEIGHT_GRID_MAX:
        exponent -= 1
    return (2 * np.round(np.ldexp(weights * factor, -exponent) / 2)).astype(np.int64), exponent


def _bias(bias: np.ndarray, scale: float, exponent: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``round(b * 64 * S)`` as mantissa << exponent, per neuron the smallest exponent that fits.

    A given ``exponent`` is used for every neuron (the caller has capped the scale so it fits).
    """
    value = bias * 2**ACTIVATION_SHIFT * scale
    exponents = np.arange(BIAS_EXP_MAX + 1) if exponent is None else np.array([exponent])
    mantissas = np.round(np.ldexp(value[:, None], -exponents[None, :]))
    fits = (mantissas >= BIAS_MANT_MIN) & (mantissas <= BIAS_MANT_MAX)  # exponent 7 always fits (S <= by_bias)
    chosen = np.argmax(fits, axis=1)
    return mantissas[np.arange(len(bias)), chosen].astype(np.int64), exponents[chosen].astype(np.int64)


def _decay(stage_name: str, tau: float) -> int:
    """``dv = round(4096 / tau)``, at most 4095; from ``tau = 8192`` steps on it would round to no leak at all."""
    dv = round(DECAY_UNITY / tau)
    if dv == 0:
        raise ConstraintError(f"stage {stage_name!r} has tau = {tau:g} steps; Loihi 2's 12-bit decay rounds "
                              f"4096 / tau to 0 (no leak at all) from tau = {2 * DECAY_UNITY} steps on")
    return int(min(dv, DECAY_UNITY - 1))


def _spiking_scale(layer: SpikingLayer, peak: float, signed: bool, fixed: FixedExponents) -> tuple[float, int]:
    """``(S, vth)`` of a spiking layer; raises when not even ``vth = 1`` fits the bias or state."""
    by_state, by_bias, bound = _scale_limits(layer, peak, signed, fixed)
    theta = layer.neuron.threshold
    vth = int(np.floor(min(by_state, by_bias) * theta))
    if vth >= 1:
        return vth / theta, vth
    if by_bias < by_state:
        neuron = int(np.argmax(np.abs(layer.bias)))
        most = BIAS_LIMIT / 2**ACTIVATION_SHIFT
        raise ConstraintError(
            f"layer {layer.name!r} neuron [{neuron}] has bias {layer.bias[neuron]:.6g} = "
            f"{layer.bias[neuron] / theta:.6g} x its threshold; Loihi 2 cannot represent it: "
            f"a bias mantissa << exponent (13 + 3 bits) holds at most {most:.0f} thresholds "
            f"even with the smallest threshold vth = 1")
    neuron = int(np.argmax(bound))
    most = VTH_MAX / HEADROOM
    raise ConstraintError(
        f"layer {layer.name!r} neuron [{neuron}] can reach a membrane of {bound[neuron] / theta:.6g} x its threshold "
        f"(inputs at their peak {peak:g}, all same-sign synapses at once, tau {layer.neuron.tau:g}); the 24-bit "
        f"state holds at most {most:.0f} thresholds even with the smallest threshold vth = 1: reduce the weights")


def _fixed_stage(stage: SpikingLayer | Readout, scale: float, payload_scale: float, vth: int,
                 fixed: FixedExponents) -> FixedLayer:
    weights, weight_exp = _weights(stage.weights, scale / payload_scale, fixed.weight_exp)
    bias_mant, bias_exp = _bias(stage.bias, scale, fixed.bias_exp)
    extra: dict[str, Any] = {}
    if isinstance(stage, SpikingLayer):
        tau, reset = stage.neuron.tau, stage.neuron.reset
        if stage.recurrent_weights is not None:
            recurrent, recurrent_exp = _weights(stage.recurrent_weights, scale, fixed.weight_exp)
            extra = dict(recurrent_weights=recurrent, recurrent_weight_exp=recurrent_exp,
                         recurrent_delays=stage.recurrent_delays)
    else:
        tau, reset = stage.tau, "hard"
    if np.any(stage.weights) and not np.any(weights):
        raise ConstraintError(f"stage {stage.name!r}: every weight rounds to 0 at scale {scale:.6g} with weight_exp "
                              f"{weight_exp} (largest |W| {np.abs(stage.weights).max():.6g}); the target's fixed "
                              "exponents cannot hold these weights")
    return FixedLayer(stage.name, weights, weight_exp, stage.delays, bias_mant, bias_exp, du=DECAY_UNITY - 1,
                      dv=_decay(stage.name, tau), vth=vth, reset=reset, scale=scale, **extra)


@dataclass(frozen=True)
class FixedExponents:
    """Exponents a target imposes instead of letting quantisation choose them.

    lava-dl netx, for one, stores integer weights (``weight_exp = 0``) and biases in ``a_in``
    units (``bias_exp = 6``). A fixed exponent caps the scale ``S`` so every value still fits.
    """

    weight_exp: int | None = None
    bias_exp: int | None = None
    payload_factor: float = 1.0  # 1 / input_scale for the first stage: its weights divide by it


def quantize(network: Network, *, calibration: np.ndarray | torch.Tensor | None = None,
             input_scale: float | None = None, weight_exp: int | None = None,
             bias_exp: int | None = None) -> FixedNetwork:
    """Map ``network`` to Loihi 2 integers by the rules in the module docstring.

    ``calibration`` (``[T, B, input_size]``, optional) sets the input peak (counts, analog),
    chooses ``input_scale`` for analog inputs when none is given, and is run through
    :func:`check_overflow`. ``weight_exp``/``bias_exp`` force those exponents for every stage
    (targets that cannot hold others, such as netx). Raises :class:`ConstraintError` for what
    the chip cannot hold.
    """
    check_delays(network)
    if isinstance(calibration, torch.Tensor):
        calibration = calibration.detach().cpu().numpy()
    if calibration is not None:
        calibration = np.asarray(calibration, dtype=np.float64)
    payload_scale = _choose_input_scale(network, calibration, input_scale)
    peak, signed = _input_peak(network, calibration), network.input_kind == "analog"
    if signed and input_scale is None and weight_exp is not None:
        payload_scale = min(payload_scale, _weight_filling_input_scale(network, peak, weight_exp, bias_exp))
    stages = []
    for index, layer in enumerate(network.layers):
        first = index == 0
        fixed = FixedExponents(weight_exp, bias_exp, 1.0 / payload_scale if first else 1.0)
        scale, vth = _spiking_scale(layer, peak if first else 1.0, signed and first, fixed)
        stages.append(_fixed_stage(layer, scale, payload_scale if first else 1.0, vth, fixed))
    first = not network.layers
    fixed = FixedExponents(weight_exp, bias_exp, 1.0 / payload_scale if first else 1.0)
    by_state, by_bias, _ = _scale_limits(network.readout, peak if first else 1.0, signed and first, fixed)
    scale = min(by_state, by_bias)
    if not np.isfinite(scale):  # a readout without weights or bias: any scale is exact
        scale = 1.0
    readout = _fixed_stage(network.readout, scale, payload_scale if first else 1.0, VTH_MAX, fixed)
    quantized = FixedNetwork(network.input_size, stages, readout, input_kind=network.input_kind,
                             input_scale=payload_scale, readout_scale=2**ACTIVATION_SHIFT * scale, dt=network.dt,
                             tail_steps=network.tail_steps, metadata=dict(network.metadata),
                             decision=network.decision)
    if calibration is not None:
        check_overflow(quantized, calibration)
    return quantized


def check_overflow(network: FixedNetwork, x: np.ndarray | torch.Tensor, *,
                   device: str | torch.device | None = None) -> None:
    """Run the integer reference on ``x`` and raise :class:`ConstraintError` at the first stage,
    then step, sample and neuron where ``u`` would wrap, ``v`` would saturate, or the readout
    would reach its threshold (or where an input payload exceeds 24 bits)."""
    check_traces(network, trace_fixed(network, x, device=device))


def check_traces(network: FixedNetwork, traces: list[FixedTrace]) -> None:
    """:func:`check_overflow` on traces already computed with :func:`trace_fixed`."""
    stages = [*network.layers, network.readout]
    for stage, trace in zip(stages, traces):
        readout = stage is network.readout
        events = trace.u_wrapped | trace.v_saturated
        if readout:
            events = events | trace.spikes.bool()
        if not bool(events.any()):
            continue
        t, b, n = (int(i) for i in torch.nonzero(events)[0])
        where = (f"{'readout' if readout else 'layer'} {stage.name!r} {'class' if readout else 'neuron'} [{n}] "
                 f"at step {t} (sample {b})")
        advice = (f"its weights (scale {stage.scale:.6g}, weight_exp {stage.weight_exp}) drive more than the 24-bit "
                  "state holds on these data; quantise with calibration data that cover them, or reduce the weights")
        if bool(trace.u_wrapped[t, b, n]):
            a = int(trace.a[t, b, n])
            raise ConstraintError(f"{where}: activation a = {a} makes the current u = a << 6 (+ decayed u) leave the "
                                  f"24-bit range (-2^23, 2^23], and Loihi 2 would wrap it; {advice}")
        if bool(trace.v_saturated[t, b, n]):
            raise ConstraintError(f"{where}: the membrane v would pass +-{STATE_MAX} (24 bits) and saturate; {advice}")
        raise ConstraintError(f"{where}: the membrane v passes the readout's threshold vth << 6 = "
                              f"{stage.vth << ACTIVATION_SHIFT}, so the non-spiking readout would fire and reset; "
                              f"{advice}")
