"""The Loihi 2 fixed-point form of the deployment IR: every number an integer of its bit width.

It is what Lava's bit-accurate (``fixed_pt``) process models compute, per step ``t`` of the
IR's time axis (an input at step ``t`` with delay ``d`` acts at ``t + d``; the bias acts from
``t = 0``)::

    a[t]  = sum_d shift(sum_{i: d[o,i] = d} w'[o, i] * x[t - d, i], weight_exp)       (DelayDense)
          + sum_e shift(sum_{j: e[o,j] = e} r'[o, j] * s[t - 1 - e, j], recurrent_weight_exp)
    u[t]  = wrap24(trunc0(u[t-1] * (4096 - du - 1) / 4096) + (a[t] << 6))
    v[t]  = clip(trunc0(v[t-1] * (4096 - dv) / 4096) + u[t] + (bias_mant << bias_exp),
                 -(2**23 - 1), 2**23 - 1)
    s[t]  = v[t] > (vth << 6)
    v[t]  = 0 where s[t] (hard reset)   |   v[t] - (vth << 6) where s[t] (soft reset)

* ``w' = effective_weights(w)``: Lava clips and truncates each weight matrix by its sign mode
  (mixed: clip to [-256, 255] and drop the lowest bit; all >= 0: clip to [0, 255]; all <= 0:
  clip to [-255, 0]). Even integers in [-254, 254] pass unchanged in every mode.
* ``shift(a, e)`` is ``a << e`` for ``e >= 0`` and an arithmetic right shift (floor) for
  ``e < 0``. It applies to each (input step, delay) group on its own, as Lava's ``DelayDense``
  shifts one step's per-delay sum before buffering it: with ``e < 0`` the floor of a sum of
  groups is not the sum of their floors.
* ``trunc0`` truncates toward zero. ``wrap24(x)`` is Lava's one correction: ``x - 2**24`` if
  ``x > 2**23``, ``x + 2**24`` if ``x <= -2**23``, else ``x`` (a 24-bit wrap whenever
  ``|x| < 3 * 2**23``).
* Lava delivers ``a`` to the LIF's ``a_in`` as the ``DelayDense``'s int32 (the port's declared
  int16 is never applied; measured with Lava 0.10.0) and holds ``a << 6`` and ``u`` in int32.
  The equations above equal Lava while those stay within int32 (``|a| < 2**24`` suffices with
  ``du = 4095``); :func:`delaydeploy.quantize.check_overflow` rejects ``|a << 6| > 2**23``
  long before that.

The readout uses the same equations with ``vth`` so large that it never fires, and its
membrane ``v`` (divided by ``readout_scale``) is the output, decided by the network's
``decision`` rule as in the float IR. ``dv`` is at most 4095 (Lava's ``dm_offset`` is 0), so
``v`` always keeps at least ``trunc(v / 4096)``: a float readout without leak (``tau = 1``)
is approximated by that smallest leak. Inputs are binary spikes or
integer graded payloads (:func:`input_payload`).

:mod:`delaydeploy.quantize` maps a float :class:`delaydeploy.ir.Network` to this form and
:mod:`delaydeploy.fixed_reference` simulates it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delaydeploy.errors import ConstraintError, IRValidationError
from delaydeploy.ir import DEFAULT_DECISION, INPUT_KINDS, check_binary_input, check_decision

WEIGHT_MIN, WEIGHT_MAX = -256, 254  # 8-bit mixed-sign weights: lossless grid is even integers
DELAY_MAX = 62  # per-synapse delay (6 bits on Loihi 2; lava-dl netx accepts up to 62)
DECAY_UNITY = 4096  # du, dv are 12-bit: decay factor (4096 - dv) / 4096
BIAS_MANT_MIN, BIAS_MANT_MAX = -4096, 4095  # 13-bit signed mantissa
BIAS_EXP_MAX = 7  # 3-bit exponent
VTH_MAX = 2**17 - 1  # 17-bit threshold, compared as vth << 6
STATE_MAX = 2**23 - 1  # u, v are 24-bit signed
WRAP_LIMIT = 2**23  # Lava keeps u in (-2**23, 2**23] with one correction of 2**24
ACTIVATION_SHIFT = 6
GRADED_MESSAGE_BITS = 24  # num_message_bits of a synapse fed graded input (24-bit payloads)
GRADED_PAYLOAD_MAX = 2**(GRADED_MESSAGE_BITS - 1) - 1  # the largest signed graded payload


def input_message_bits(input_kind: str) -> int:
    """``num_message_bits`` of the first synapses: 0 for binary spikes, 24 for graded input."""
    return 0 if input_kind == "binary" else GRADED_MESSAGE_BITS


def effective_weights(weights: np.ndarray) -> np.ndarray:
    """The weights Lava's bit-accurate ``DelayDense`` really uses (8 bits, its sign-mode rules).

    Mixed signs: clip to [-256, 255] and drop the lowest bit (floor to even); all >= 0: clip
    to [0, 255]; all <= 0: clip to [-255, 0]. Mirrors ``lava.utils.weightutils``.
    """
    weights = np.asarray(weights, dtype=np.int64)
    if weights.size == 0 or weights.min() >= 0:
        return np.clip(weights, 0, 255)
    if weights.max() <= 0:
        return np.clip(weights, -255, 0)
    return (np.clip(weights, -256, 255) >> 1) << 1


def input_payload(network: FixedNetwork, x: np.ndarray) -> np.ndarray:
    """Integer input as the chip receives it: binary spikes 0/1, or graded payloads
    ``round(x * input_scale)`` (half to even) that must fit the 24-bit graded-spike payload."""
    x = np.asarray(x, dtype=np.float64)
    input_scale = network.input_scale
    if network.input_kind == "binary":
        check_binary_input(x)
        return x.astype(np.int64)
    if not np.all(np.isfinite(x)):
        raise ValueError("input contains a non-finite value")
    if network.input_kind == "counts" and np.any((x != np.round(x)) | (x < 0)):
        index = tuple(int(i) for i in np.argwhere((x != np.round(x)) | (x < 0))[0])
        raise ValueError(f"input{list(index)} = {x[index]}, but the network takes spike counts (whole, >= 0)")
    payload = np.round(x * input_scale)
    if payload.size and np.abs(payload).max() > GRADED_PAYLOAD_MAX:
        index = tuple(int(i) for i in np.argwhere(np.abs(payload) == np.abs(payload).max())[0])
        raise ConstraintError(
            f"input{list(index)} = {x[index]} becomes payload {payload[index]:.0f} = round(x * input_scale "
            f"{input_scale}); Loihi 2 graded spikes carry at most +-{GRADED_PAYLOAD_MAX} (24 bits)")
    return payload.astype(np.int64)


def padded_payload(network: FixedNetwork, x: np.ndarray) -> np.ndarray:
    """:func:`input_payload` followed by ``tail_steps`` silent steps: the whole streaming input
    ``[T + tail, B, C]`` the chip receives."""
    return np.pad(input_payload(network, x), ((0, network.tail_steps), (0, 0), (0, 0)))


def _integer_array(where: str, name: str, value: object, low: int, high: int,
                   shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        if array.dtype.kind != "f" or np.any(array != np.round(array)):
            raise IRValidationError(f"{where}: {name} must hold integers")
    array = array.astype(np.int64)
    if shape is not None and array.shape != shape:
        raise IRValidationError(f"{where}: {name} has shape {array.shape}, expected {shape}")
    if array.size and (array.min() < low or array.max() > high):
        worst = array.min() if array.min() < low else array.max()
        index = tuple(int(i) for i in np.argwhere(array == worst)[0])
        raise IRValidationError(f"{where}: {name}{list(index)} = {worst} is outside [{low}, {high}]")
    return np.ascontiguousarray(array)


@dataclass
class FixedLayer:
    """A spiking layer in Loihi 2 integers (equations in the module docstring).

    ``scale`` records the float-to-integer factor ``S`` chosen by quantisation: the integer
    membrane is ``v ~= 64 * S * V`` of the float layer, so ``w ~= W * S * 2**-weight_exp / q``
    (``q`` the input payload scale: ``input_scale`` for the first layer, 1 for spikes). It
    documents the mapping and plays no part in the integer dynamics.
    """

    name: str
    weights: np.ndarray
    weight_exp: int
    delays: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    du: int
    dv: int
    vth: int
    reset: str = "hard"
    recurrent_weights: np.ndarray | None = None
    recurrent_weight_exp: int = 0
    recurrent_delays: np.ndarray | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        self.weights = _integer_array(where, "weights", self.weights, WEIGHT_MIN, WEIGHT_MAX)
        if self.weights.ndim != 2:
            raise IRValidationError(f"{where}: weights must be [out, in]")
        self.delays = _integer_array(where, "delays", self.delays, 0, DELAY_MAX, self.weights.shape)
        size = self.weights.shape[0]
        self.bias_mant = _integer_array(where, "bias_mant", self.bias_mant, BIAS_MANT_MIN, BIAS_MANT_MAX, (size,))
        self.bias_exp = _integer_array(where, "bias_exp", self.bias_exp, 0, BIAS_EXP_MAX, (size,))
        for name, value, high in (("du", self.du, DECAY_UNITY - 1), ("dv", self.dv, DECAY_UNITY - 1),
                                  ("vth", self.vth, VTH_MAX)):
            if not (isinstance(value, (int, np.integer)) and 0 <= value <= high):
                raise IRValidationError(f"{where}: {name} = {value} is outside [0, {high}]")
        self.du, self.dv, self.vth = int(self.du), int(self.dv), int(self.vth)
        if self.reset not in ("hard", "soft"):
            raise IRValidationError(f"{where}: reset = {self.reset!r}; expected 'hard' or 'soft'")
        if (self.recurrent_weights is None) != (self.recurrent_delays is None):
            raise IRValidationError(f"{where}: recurrent weights and delays must be given together")
        if self.recurrent_weights is not None:
            square = (size, size)
            self.recurrent_weights = _integer_array(where, "recurrent_weights", self.recurrent_weights,
                                                    WEIGHT_MIN, WEIGHT_MAX, square)
            self.recurrent_delays = _integer_array(where, "recurrent_delays", self.recurrent_delays, 0, DELAY_MAX,
                                                   square)
        self.weight_exp, self.recurrent_weight_exp = int(self.weight_exp), int(self.recurrent_weight_exp)

    @property
    def size(self) -> int:
        return int(self.weights.shape[0])

    @property
    def in_size(self) -> int:
        return int(self.weights.shape[1])

    @property
    def is_recurrent(self) -> bool:
        return self.recurrent_weights is not None


@dataclass
class FixedNetwork:
    """A deployment IR network in Loihi 2 integers; ``readout`` is a non-firing :class:`FixedLayer`.

    ``input_scale`` maps graded/analog inputs to integer payloads ``round(x * input_scale)``
    (1 for binary spikes and counts); ``readout_scale`` maps the readout membrane back to the
    float network's units (``v_float ~= v / readout_scale``); ``decision`` is the float
    network's class rule (:data:`delaydeploy.ir.DECISION_RULES`).
    """

    input_size: int
    layers: list[FixedLayer]
    readout: FixedLayer
    input_kind: str = "binary"
    input_scale: float = 1.0
    readout_scale: float = 1.0
    dt: float = 1e-3
    tail_steps: int = 0
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)
    decision: str = DEFAULT_DECISION

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise IRValidationError(f"network: input_kind = {self.input_kind!r}; expected one of {INPUT_KINDS}")
        check_decision(self.decision, "network")
        for name in ("input_scale", "readout_scale", "dt"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise IRValidationError(f"network: {name} = {value}; it must be finite and > 0")
        if self.input_kind == "binary" and self.input_scale != 1:
            raise IRValidationError(f"network: binary spikes carry no payload, but input_scale = {self.input_scale}")
        if int(self.tail_steps) < 0:
            raise IRValidationError(f"network: tail_steps = {self.tail_steps} is negative")
        self.input_size, self.tail_steps = int(self.input_size), int(self.tail_steps)
        expected = self.input_size
        for layer in [*self.layers, self.readout]:
            if layer.in_size != expected:
                raise IRValidationError(
                    f"layer {layer.name!r}: weights take {layer.in_size} inputs but the previous stage has {expected}"
                )
            expected = layer.size
        if self.readout.is_recurrent:
            raise IRValidationError("the readout cannot be recurrent")

    @property
    def num_classes(self) -> int:
        return self.readout.size
