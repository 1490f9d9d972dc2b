"""The deployment IR: the single hand-off between training and every target.

A network is a chain of spiking layers followed by a non-spiking readout, on a discrete
time axis ``t = 0, 1, ...`` (``dt`` seconds per step). Every synapse carries a float weight
and a whole-number delay in steps. All targets (NIR, Lava, Loihi 2, netx) translate this
description, and :mod:`delaydeploy.reference` simulates it as the oracle they are checked
against.

Equations of spiking layer ``l`` with input ``x`` (the network input or the spikes of layer
``l-1``), ``x[t] = 0`` and ``s[t] = 0`` for ``t < 0``, ``V[-1] = 0``::

    I[t, o] = bias[o] + sum_i W[o, i] x[t - D[o, i], i]
                      + sum_j R[o, j] s[t - 1 - E[o, j], j]        (recurrent, optional)
    H[t] = V[t-1] * (1 - 1/tau) + I[t]
    s[t] = H[t] >= threshold            (threshold_rule ">=";  ">" compares strictly)
    V[t] = H[t] * (1 - s[t])            (reset "hard")
    V[t] = H[t] - threshold * s[t]      (reset "soft")

The readout integrates without spiking, ``V[t] = V[t-1] * (1 - 1/tau) + I[t]`` (its own
``tau >= 1``; ``tau = 1`` keeps no membrane: ``V[t] = I[t]``, the bare synaptic output). The
network's ``decision`` rule turns the readout into per-class evidence ``e_c``, summed over
each sample's own steps, and the predicted class is ``argmax_c e_c``::

    "summed_softmax":  e_c = sum_t softmax(V[t])_c      (Hammouamri et al.; DelRec SHD)
    "summed_output":   e_c = sum_t V[t, c]              (DelRec SSC: no softmax)

Training minimises the cross-entropy of the same evidence taken as logits
(:func:`delaydeploy.reference.evidence`).

Delay 0 acts in the same step; a recurrent spike needs at least one step (``1 + E``).
A synapse exists where its weight is nonzero: a pruned (sparse) network keeps its absent
synapses as exact zeros, and every target stores only the others.
Serialisation lives in :mod:`delaydeploy.ir_file`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from delaydeploy.errors import IRValidationError

InputKind = Literal["binary", "counts", "analog"]
ResetKind = Literal["hard", "soft"]
ThresholdRule = Literal[">=", ">"]
DecisionRule = Literal["summed_softmax", "summed_output"]

INPUT_KINDS: tuple[str, ...] = ("binary", "counts", "analog")
RESET_KINDS: tuple[str, ...] = ("hard", "soft")
THRESHOLD_RULES: tuple[str, ...] = (">=", ">")
#: How a network turns its readout into a class (see the module docstring).
DECISION_RULES: tuple[str, ...] = ("summed_softmax", "summed_output")
DEFAULT_DECISION: DecisionRule = "summed_softmax"


def _float_matrix(where: str, name: str, value: object, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if shape is not None and array.shape != shape:
        raise IRValidationError(f"{where}: {name} has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise IRValidationError(f"{where}: {name}{list(bad)} = {array[bad]} is not finite")
    return np.ascontiguousarray(array)


def _delay_matrix(where: str, name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    raw = np.asarray(value)
    if raw.shape != shape:
        raise IRValidationError(f"{where}: {name} has shape {raw.shape}, expected {shape}")
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)):
            raise IRValidationError(f"{where}: {name} contains a non-finite delay")
        fractional = raw != np.round(raw)
        if np.any(fractional):
            index = tuple(int(i) for i in np.argwhere(fractional)[0])
            raise IRValidationError(
                f"{where}: {name}{list(index)} = {raw[index]} is not a whole number of time steps"
            )
    elif raw.dtype.kind not in "iu":
        raise IRValidationError(f"{where}: {name} must be integers, got dtype {raw.dtype}")
    delays = np.ascontiguousarray(raw.astype(np.int64))
    if delays.size and delays.min() < 0:
        index = tuple(int(i) for i in np.argwhere(delays < 0)[0])
        raise IRValidationError(f"{where}: {name}{list(index)} = {delays[index]} is negative; delays must be >= 0")
    return delays


class _Stage:
    """What spiking layers and the readout share: delayed synapses ``[out, in]`` and a bias."""

    name: str
    weights: np.ndarray
    delays: np.ndarray
    bias: np.ndarray
    official_tail: int

    def _validate_synapses(self, where: str) -> None:
        self.weights = _float_matrix(where, "weights", self.weights)
        if self.weights.ndim != 2:
            raise IRValidationError(f"{where}: weights must be [out, in], got shape {self.weights.shape}")
        if 0 in self.weights.shape:
            raise IRValidationError(f"{where}: weights have shape {self.weights.shape}; a stage needs at least one "
                                    "neuron and one input")
        self.delays = _delay_matrix(where, "delays", self.delays, self.weights.shape)
        self.bias = _float_matrix(where, "bias", self.bias, (self.size,))
        if int(self.official_tail) < 0:
            raise IRValidationError(f"{where}: official_tail = {self.official_tail} is negative")
        self.official_tail = int(self.official_tail)

    @property
    def size(self) -> int:
        return int(self.weights.shape[0])

    @property
    def in_size(self) -> int:
        return int(self.weights.shape[1])


DELAY_GRANULARITIES: tuple[str, ...] = ("synaptic", "axonal", "dendritic")


SPARSE_DENSITY = 0.5  # a stage with at most this fraction of its synapses present is stored sparse


def stored_sparse(weights: np.ndarray) -> bool:
    """Whether a target with a sparse form stores this stage's ``[out, in]`` synapses as a list
    of the ones that exist (nonzero weight) rather than as a dense matrix."""
    return np.count_nonzero(weights) <= SPARSE_DENSITY * np.size(weights)


def per_neuron_delays(weights: np.ndarray, delays: np.ndarray, granularity: str) -> np.ndarray | None:
    """One delay per presynaptic (``"axonal"``) or postsynaptic (``"dendritic"``) neuron, if
    every synapse that exists (nonzero weight) from (into) that neuron has it, else None.

    ``weights`` and ``delays`` are ``[out, in]``; a neuron with no synapse gets 0.
    """
    axis = {"axonal": 0, "dendritic": 1}[granularity]
    present = np.asarray(weights) != 0
    delays = np.asarray(delays)
    highest = np.where(present, delays, -1).max(axis=axis)
    lowest = np.where(present, delays, np.iinfo(np.int64).max).min(axis=axis)
    if np.all((highest == lowest) | (highest < 0)):
        return np.maximum(highest, 0).astype(np.int64)
    return None


def delay_structure(weights: np.ndarray, delays: np.ndarray) -> tuple[str, np.ndarray] | None:
    """``("axonal", a)`` or ``("dendritic", b)`` (:func:`per_neuron_delays`), axonal tried
    first (so a stage whose delays are all equal is axonal), else None.

    One delay per neuron is what a compact target stores (NIR: one ``Delay`` node before or
    after the weights).
    """
    for granularity in ("axonal", "dendritic"):
        steps = per_neuron_delays(weights, delays, granularity)
        if steps is not None:
            return granularity, steps
    return None


def check_binary_input(x: np.ndarray) -> None:
    """Raise ``ValueError`` naming the first entry of ``x`` that is not a binary spike (0 or 1)."""
    bad = (x != 0) & (x != 1)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"input{list(index)} = {x[index]}, but the network takes binary spikes (0 or 1)")


def check_decision(decision: object, where: str) -> None:
    """Raise :class:`IRValidationError` unless ``decision`` is one of :data:`DECISION_RULES`."""
    if not (isinstance(decision, str) and decision in DECISION_RULES):
        raise IRValidationError(f"{where}: decision = {decision!r}; expected one of {DECISION_RULES}")


@dataclass(frozen=True)
class LIFNeuron:
    """Leaky integrate-and-fire constants (time constant in steps, see module equations)."""

    tau: float
    threshold: float
    reset: ResetKind = "hard"
    threshold_rule: ThresholdRule = ">="

    def __post_init__(self) -> None:
        if not (np.isfinite(self.tau) and self.tau >= 1.0):
            raise IRValidationError(f"LIF tau = {self.tau} steps; it must be finite and >= 1")
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise IRValidationError(f"LIF threshold = {self.threshold}; it must be finite and > 0")
        if self.reset not in RESET_KINDS:
            raise IRValidationError(f"LIF reset = {self.reset!r}; expected one of {RESET_KINDS}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise IRValidationError(f"LIF threshold_rule = {self.threshold_rule!r}; expected one of {THRESHOLD_RULES}")

    @property
    def decay(self) -> float:
        """Fraction of the membrane kept per step, ``1 - 1/tau``."""
        return 1.0 - 1.0 / self.tau


@dataclass
class SpikingLayer(_Stage):
    """LIF neurons fed by delayed synapses (and optionally delayed recurrent synapses).

    ``weights``/``delays`` are ``[out, in]``; ``recurrent_weights``/``recurrent_delays``
    are ``[out, out]`` (row: postsynaptic). ``official_tail`` is the number of steps the
    training code (DCLS) appends to this layer's output before cutting it; it is used only
    to reproduce that implementation (``semantics="official"``), never by a target.
    """

    name: str
    weights: np.ndarray
    delays: np.ndarray
    bias: np.ndarray
    neuron: LIFNeuron
    recurrent_weights: np.ndarray | None = None
    recurrent_delays: np.ndarray | None = None
    official_tail: int = 0

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        self._validate_synapses(where)
        if (self.recurrent_weights is None) != (self.recurrent_delays is None):
            raise IRValidationError(f"{where}: recurrent weights and delays must be given together")
        if self.recurrent_weights is not None:
            square = (self.size, self.size)
            self.recurrent_weights = _float_matrix(where, "recurrent_weights", self.recurrent_weights, square)
            self.recurrent_delays = _delay_matrix(where, "recurrent_delays", self.recurrent_delays, square)

    @property
    def is_recurrent(self) -> bool:
        return self.recurrent_weights is not None


@dataclass
class Readout(_Stage):
    """Non-spiking leaky integrator fed by delayed synapses; its membrane is the output.

    ``tau`` is in steps and may be 1: no leak at all, the output is each step's synaptic
    current (the DelRec SSC readout, a bare synaptic stage).
    """

    name: str
    weights: np.ndarray
    delays: np.ndarray
    bias: np.ndarray
    tau: float
    official_tail: int = 0

    def __post_init__(self) -> None:
        where = f"readout {self.name!r}"
        self._validate_synapses(where)
        if not (np.isfinite(self.tau) and self.tau >= 1.0):
            raise IRValidationError(f"{where}: tau = {self.tau} steps; it must be finite and >= 1")

    @property
    def decay(self) -> float:
        return 1.0 - 1.0 / self.tau


@dataclass
class Network:
    """A deployable network: input description, spiking layers, readout.

    ``tail_steps`` zero steps are appended to every input sample so that delayed spikes
    still reach the readout; every target runs ``T + tail_steps`` steps. ``decision`` (one of
    ``DECISION_RULES``) is how the readout decides the class (module docstring). ``metadata``
    holds provenance (source, kernel size, ...) as JSON-serialisable scalars.
    """

    input_size: int
    layers: list[SpikingLayer]
    readout: Readout
    input_kind: InputKind = "binary"
    dt: float = 1e-3
    tail_steps: int = 0
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)
    decision: DecisionRule = DEFAULT_DECISION

    def __post_init__(self) -> None:
        self.input_size = int(self.input_size)
        self.tail_steps = int(self.tail_steps)
        self.layers = list(self.layers)
        if self.input_kind not in INPUT_KINDS:
            raise IRValidationError(f"network: input_kind = {self.input_kind!r}; expected one of {INPUT_KINDS}")
        check_decision(self.decision, "network")
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise IRValidationError(f"network: dt = {self.dt} s; it must be finite and > 0")
        if self.tail_steps < 0:
            raise IRValidationError(f"network: tail_steps = {self.tail_steps} is negative")
        names = [layer.name for layer in self.layers] + [self.readout.name]
        if len(set(names)) != len(names):
            raise IRValidationError(f"network: layer names {names} are not unique")
        expected = self.input_size
        for layer in [*self.layers, self.readout]:
            if layer.in_size != expected:
                raise IRValidationError(
                    f"layer {layer.name!r}: weights take {layer.in_size} inputs but the previous stage has {expected}"
                )
            expected = layer.size
        for key, value in self.metadata.items():
            if not isinstance(value, (str, int, float, bool)):
                raise IRValidationError(f"network: metadata[{key!r}] = {value!r} is not a JSON scalar")

    @property
    def num_classes(self) -> int:
        return self.readout.size

    @property
    def max_delay(self) -> int:
        """Largest feedforward delay of any layer (0 for a delay-free network)."""
        return max(int(layer.delays.max(initial=0)) for layer in [*self.layers, self.readout])

    @property
    def max_recurrent_delay(self) -> int:
        """Largest recurrent delay ``E`` (the synapse adds one more step), 0 if none."""
        return max((int(layer.recurrent_delays.max(initial=0)) for layer in self.layers
                    if layer.recurrent_delays is not None), default=0)
