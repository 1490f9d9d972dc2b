"""Deployment IR <-> NIR (nir 1.0.8): an exact encoding of per-synapse delays, and an importer.

NIR is continuous time and has no per-synapse delay: ``Delay`` delays every element of a
vector by its own amount. A stage of the IR (spiking layer or readout) with weights ``W`` and
integer delays ``D`` is therefore written as one branch per distinct delay ``d``::

    pre -> Delay(d * dt) -> Linear(W * [D == d]) -> neuron        (d > 0)
    pre -> Affine(W * [D == 0], bias)            -> neuron        (always; it holds the bias)

Every executor sums the edges into a node, so the branches add up to the IR's current. A
stage whose existing synapses have one delay per presynaptic neuron ``a`` (axonal) or per
postsynaptic neuron ``b`` (dendritic; :func:`delaydeploy.ir.delay_structure`) is written with
a single Delay node instead::

    pre -> Delay(a * dt) -> Affine(W, bias) -> neuron                        (axonal)
    pre -> Linear(W) -> Delay(b * dt) -> neuron;  pre -> Affine(0, bias) -> neuron   (dendritic)

The time step is the ecosystem's forward-Euler convention, ``dt = EULER_DT = 1e-4`` s: a
neuron with ``tau_steps`` is ``LIF(tau = tau_steps * dt, r = tau_steps, v_leak = 0,
v_threshold = theta, v_reset = 0)``, so one Euler step of ``tau dv/dt = (v_leak - v) + r I``
is ``v * (1 - 1/tau_steps) + I``, the IR's equation. The readout is
``LI(tau = tau_steps * dt, r = tau_steps, v_leak = 0) -> I(r = 1/dt) -> Output``: the LI
membrane is the IR's readout, the integrator its running sum. A readout without leak
(``tau_steps = 1``) is ``LI(tau = dt, r = 1)``, whose Euler step ``v + (I - v)`` is the
current itself; its running sum is then the evidence of the ``"summed_output"`` rule. Node names are
``hidden<k>.{affine, delay<d>, linear<d>, rec_delay<e>, rec_linear<e>, lif}``,
``readout.{affine, delay<d>, linear<d>, li, integrator}``, ``input`` and ``output`` (a compact
stage: ``delay``, ``linear``, ``rec_delay``, ``rec_linear`` without a number).

Recurrent synapses (``I_rec[t] = sum_j R[o, j] s[t - 1 - E[o, j], j]``) become one cycle per
distinct ``e``: ``lif -> Delay(e * dt) -> Linear(R * [E == e]) -> lif`` (no Delay for e = 0),
or a single cycle through one Delay node where ``E`` is one per neuron (DelRec's are).
Latency convention (graph metadata ``recurrent_latency_steps = 1``): a cycle through a
neuron takes one step by itself, so a cycle whose Delay nodes add ``e`` steps delivers a
spike ``1 + e`` steps after it was emitted. This is how nirtorch executes a cycle (the
edge back into the neuron carries the previous step's output) and what Lava's Dense does.

What NIR cannot say is kept in metadata (consumers must not rely on it; our reader does):
graph ``delaydeploy_format``/``delaydeploy_format_version`` (marker), ``dt_seconds`` (the
IR's real time step), ``euler_dt_seconds``, ``delay_unit_steps`` (IR steps per Euler step
of a Delay node: 1), ``tail_steps``, ``input_kind``, ``threshold_rule`` and ``reset``
(network-wide, or ``"per_node"``), ``recurrent_latency_steps``, ``ir_metadata_json``,
``decision`` (the class rule; a graph without it reads as ``"summed_softmax"``);
per neuron node ``threshold_rule``, ``reset`` (NIR's LIF fires on ``v > v_threshold`` and
resets hard; the IR also allows ``>=`` and a soft reset), ``ir_name``, ``official_tail`` and,
only where a synapse has weight exactly 0 but a delay (which no Linear can carry),
``zero_weight_delays``/``zero_weight_recurrent_delays`` as ``[n, 3]`` rows ``(o, i, d)``.

The reader also accepts third-party graphs made of Input, Output, Affine, Linear, Delay,
LIF, CubaLIF (only with ``tau_syn = dt``: an instantaneous current, updated before the
membrane in the same step), LI (the readout) and I (only as ``r = 1/dt`` running sum after
the readout), as long as they form the IR's chain (Delay nodes may sit before the weights,
per input, or after them, per output). Without metadata it uses ``dt = 1e-4`` (or graph
metadata ``euler_dt_seconds``/``dt``), NIR's ``>`` threshold rule, hard reset and input kind
``"analog"``; an ``r`` other than ``tau/dt`` is folded into the incoming weights and bias as
the Euler input gain ``r * dt / tau``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import nir
import numpy as np

from delaydeploy.errors import IRValidationError, NIRFormatError
from delaydeploy.fileio import atomic_path
from delaydeploy.ir import (
    DECISION_RULES,
    DEFAULT_DECISION,
    INPUT_KINDS,
    RESET_KINDS,
    THRESHOLD_RULES,
    DecisionRule,
    InputKind,
    LIFNeuron,
    Network,
    Readout,
    ResetKind,
    SpikingLayer,
    ThresholdRule,
    delay_structure,
)

EULER_DT = 1e-4
FORMAT_NAME = "delaydeploy-nir"
FORMAT_VERSION = 1
RECURRENT_LATENCY_STEPS = 1
_RELATIVE_TOLERANCE = 1e-9
_SUPPORTED = (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.Delay, nir.LIF, nir.CubaLIF, nir.LI, nir.I)
_SPIKING = (nir.LIF, nir.CubaLIF)


# --------------------------------------------------------------------------- IR -> NIR
def _branches(
    prefix: str, source: str, target: str, weights: np.ndarray, delays: np.ndarray, bias: np.ndarray | None
) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """The synapses from ``source`` into ``target`` (see module docstring): one Delay node before
    (axonal) or after (dendritic) the weights where the delays have that structure, else one
    branch per distinct delay.

    ``bias`` given: feedforward (``affine``, ``delay``/``linear``, or ``delay<d>``/``linear<d>``);
    ``None``: recurrent (the same names with ``rec_``, and no ``affine``).
    """
    kind = "" if bias is not None else "rec_"
    structure = delay_structure(weights, delays)
    if structure is not None:
        return _compact_branch(prefix, kind, source, target, weights, bias, *structure)
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    if bias is not None:
        nodes[f"{prefix}.affine"] = nir.Affine(weight=weights * (delays == 0), bias=bias.copy())
        edges += [(source, f"{prefix}.affine"), (f"{prefix}.affine", target)]
    for delay in np.unique(delays).tolist():
        if delay == 0 and bias is not None:
            continue
        linear = f"{prefix}.{kind}linear{delay}"
        if delay == 0:
            edges.append((source, linear))
        else:
            delay_node = f"{prefix}.{kind}delay{delay}"
            nodes[delay_node] = nir.Delay(delay=np.full(weights.shape[1], delay * EULER_DT))
            edges += [(source, delay_node), (delay_node, linear)]
        nodes[linear] = nir.Linear(weight=weights * (delays == delay))
        edges.append((linear, target))
    return nodes, edges


def _compact_branch(prefix: str, kind: str, source: str, target: str, weights: np.ndarray, bias: np.ndarray | None,
                    granularity: str, steps: np.ndarray) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """``source -> Delay(a) -> weights -> target`` (axonal) or ``source -> weights -> Delay(b) -> target``
    (dendritic); no Delay node where every delay is 0. A dendritic stage's bias sits on an Affine
    of zero weights beside the branch, so that it is not delayed."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    delayed = bool(steps.any())
    weight_node = f"{prefix}.{kind}linear"
    if bias is not None and (granularity == "axonal" or not delayed):
        weight_node = f"{prefix}.affine"
        nodes[weight_node] = nir.Affine(weight=weights.copy(), bias=bias.copy())
    else:
        nodes[weight_node] = nir.Linear(weight=weights.copy())
        if bias is not None:
            nodes[f"{prefix}.affine"] = nir.Affine(weight=np.zeros_like(weights), bias=bias.copy())
            edges += [(source, f"{prefix}.affine"), (f"{prefix}.affine", target)]
    path = [source, weight_node, target]
    if delayed:
        delay_node = f"{prefix}.{kind}delay"
        nodes[delay_node] = nir.Delay(delay=steps * EULER_DT)
        path.insert(1 if granularity == "axonal" else 2, delay_node)
    return nodes, edges + list(zip(path, path[1:]))


def _zero_weight_delays(weights: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """Rows ``(o, i, d)`` of synapses whose weight is 0 but whose delay is not."""
    index = np.argwhere((weights == 0) & (delays != 0))
    return np.column_stack([index, delays[tuple(index.T)]]).astype(np.int64).reshape(-1, 3)


def _stage_metadata(name: str, official_tail: int, weights: np.ndarray, delays: np.ndarray) -> dict[str, Any]:
    metadata: dict[str, Any] = {"ir_name": name, "official_tail": official_tail}
    lost = _zero_weight_delays(weights, delays)
    if lost.size:
        metadata["zero_weight_delays"] = lost
    return metadata


def _network_rule(values: set[str], default: str) -> str:
    return values.pop() if len(values) == 1 else ("per_node" if values else default)


def network_to_nir(network: Network) -> nir.NIRGraph:
    """Translate ``network`` into a NIR graph (exact per-synapse delays, see module docstring)."""
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array([network.input_size]))}
    edges: list[tuple[str, str]] = []
    source = "input"
    for index, layer in enumerate(network.layers):
        prefix, size, neuron = f"hidden{index}", layer.size, layer.neuron
        lif = f"{prefix}.lif"
        branch_nodes, branch_edges = _branches(prefix, source, lif, layer.weights, layer.delays, layer.bias)
        nodes.update(branch_nodes)
        edges += branch_edges
        metadata = _stage_metadata(layer.name, layer.official_tail, layer.weights, layer.delays)
        metadata.update(threshold_rule=neuron.threshold_rule, reset=neuron.reset)
        nodes[lif] = nir.LIF(
            tau=np.full(size, neuron.tau * EULER_DT),
            r=np.full(size, float(neuron.tau)),
            v_leak=np.zeros(size),
            v_threshold=np.full(size, float(neuron.threshold)),
            v_reset=np.zeros(size),
            metadata=metadata,
        )
        if layer.recurrent_weights is not None and layer.recurrent_delays is not None:
            rec_nodes, rec_edges = _branches(prefix, lif, lif, layer.recurrent_weights, layer.recurrent_delays, None)
            nodes.update(rec_nodes)
            edges += rec_edges
            lost = _zero_weight_delays(layer.recurrent_weights, layer.recurrent_delays)
            if lost.size:
                metadata["zero_weight_recurrent_delays"] = lost
        source = lif
    readout, size = network.readout, network.readout.size
    branch_nodes, branch_edges = _branches(
        "readout", source, "readout.li", readout.weights, readout.delays, readout.bias
    )
    nodes.update(branch_nodes)
    edges += branch_edges
    nodes["readout.li"] = nir.LI(
        tau=np.full(size, readout.tau * EULER_DT),
        r=np.full(size, float(readout.tau)),
        v_leak=np.zeros(size),
        metadata=_stage_metadata(readout.name, readout.official_tail, readout.weights, readout.delays),
    )
    nodes["readout.integrator"] = nir.I(r=np.full(size, 1.0 / EULER_DT))
    nodes["output"] = nir.Output(output_type=np.array([size]))
    edges += [("readout.li", "readout.integrator"), ("readout.integrator", "output")]
    metadata = {
        "delaydeploy_format": FORMAT_NAME,
        "delaydeploy_format_version": FORMAT_VERSION,
        "dt_seconds": float(network.dt),
        "euler_dt_seconds": EULER_DT,
        "delay_unit_steps": 1,
        "tail_steps": network.tail_steps,
        "input_kind": network.input_kind,
        "threshold_rule": _network_rule({layer.neuron.threshold_rule for layer in network.layers}, ">="),
        "reset": _network_rule({layer.neuron.reset for layer in network.layers}, "hard"),
        "recurrent_latency_steps": RECURRENT_LATENCY_STEPS,
        "ir_metadata_json": json.dumps(network.metadata, sort_keys=True),
        "decision": network.decision,
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` as a NIR (HDF5) file, atomically; returns the path."""
    graph = network_to_nir(network)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return Path(path)


# --------------------------------------------------------------------------- reading helpers
def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """``nir.read`` with its failures (missing, corrupt, unknown node) as :class:`NIRFormatError`.

    Reads without nir's type inference: the importer and the executor check shapes
    themselves and name the nodes involved.
    """
    try:
        return nir.read(path, type_check=False)
    except Exception as error:  # h5py, KeyError, AssertionError, ValueError: all mean "not a NIR file we can read"
        raise NIRFormatError(f"{path}: not a readable NIR file ({type(error).__name__}: {error})") from error


def _is_close(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) <= _RELATIVE_TOLERANCE * np.maximum(np.abs(b), 1.0)


def euler_dt(graph: nir.NIRGraph, where: str = "NIR graph") -> float:
    """The Euler time step of ``graph``: metadata ``euler_dt_seconds`` or ``dt``, else 1e-4 s."""
    metadata = graph.metadata or {}
    value = metadata.get("euler_dt_seconds", metadata.get("dt", EULER_DT))
    try:
        dt = float(value)
    except (TypeError, ValueError):
        dt = float("nan")
    if not (np.isfinite(dt) and dt > 0):
        raise NIRFormatError(f"{where}: graph metadata gives time step {value!r}; it must be a number > 0")
    return dt


def graph_decision(graph: nir.NIRGraph, where: str = "NIR graph") -> DecisionRule:
    """The class rule in the graph metadata ``decision``, else ``"summed_softmax"``."""
    value = (graph.metadata or {}).get("decision", DEFAULT_DECISION)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not (isinstance(value, str) and value in DECISION_RULES):
        raise NIRFormatError(f"{where}: graph metadata decision = {value!r}; expected one of {DECISION_RULES}")
    return cast(DecisionRule, value)


def delay_steps(name: str, node: nir.Delay, dt: float, where: str = "NIR graph") -> np.ndarray:
    """Whole-step delays of a Delay node (``delay / dt``, integral within 1e-9 relative)."""
    seconds = np.asarray(node.delay, dtype=np.float64)
    if seconds.ndim != 1:
        raise NIRFormatError(f"{where}: Delay node {name!r} has delay shape {seconds.shape}; expected a vector")
    steps = seconds / dt
    rounded = np.round(steps)
    bad = ~np.isfinite(steps) | (steps < -0.5) | ~_is_close(steps, rounded)
    if np.any(bad):
        first = int(np.argwhere(bad)[0, 0])
        raise NIRFormatError(
            f"{where}: Delay node {name!r}: delay[{first}] = {seconds[first]!r} s is {steps[first]!r} steps "
            f"at dt = {dt} s, not a whole non-negative number of steps"
        )
    return rounded.astype(np.int64)


def neuron_rules(node: nir.NIRNode, graph: nir.NIRGraph, name: str,
                 where: str = "NIR graph") -> tuple[ThresholdRule, ResetKind]:
    """``(threshold_rule, reset)`` of a spiking node: its metadata, the graph's, else NIR's ``">"``/``"hard"``."""
    rules = []
    for key, allowed, default in (("threshold_rule", THRESHOLD_RULES, ">"), ("reset", RESET_KINDS, "hard")):
        graph_value = (graph.metadata or {}).get(key)
        value = (node.metadata or {}).get(key, graph_value if graph_value in allowed else default)
        value = str(value)
        if value not in allowed:
            raise NIRFormatError(f"{where}: node {name!r} has metadata {key} = {value!r}; expected one of {allowed}")
        rules.append(value)
    return cast(ThresholdRule, rules[0]), cast(ResetKind, rules[1])


def node_size(name: str, node: nir.NIRNode, where: str = "NIR graph") -> int:
    """Length of the (1-D) vector a node emits."""
    if isinstance(node, nir.Input):
        shape = tuple(np.atleast_1d(node.input_type["input"]).tolist())
    elif isinstance(node, (nir.Affine, nir.Linear)):
        shape = (np.asarray(node.weight).shape[0],)
    elif isinstance(node, nir.Delay):
        shape = np.asarray(node.delay).shape
    elif isinstance(node, nir.Output):
        shape = tuple(np.atleast_1d(node.output_type["output"]).tolist())
    else:
        shape = np.asarray(node.r).shape
    if len(shape) != 1:
        raise NIRFormatError(f"{where}: node {name!r} ({type(node).__name__}) has shape {shape}; the IR needs vectors")
    return int(shape[0])


def check_node_types(graph: nir.NIRGraph, where: str = "NIR graph") -> None:
    """Raise :class:`NIRFormatError` naming the first node the IR cannot represent."""
    for name, node in graph.nodes.items():
        if isinstance(node, nir.IF):
            raise NIRFormatError(
                f"{where}: node {name!r} is an IF neuron (no leak, tau = infinity); the IR's LIF needs a "
                "finite tau >= 1 step"
            )
        if type(node) not in _SUPPORTED:
            supported = ", ".join(kind.__name__ for kind in _SUPPORTED)
            raise NIRFormatError(
                f"{where}: node {name!r} of type {type(node).__name__} has no IR equivalent (supported: {supported})"
            )
    for source, target in graph.edges:
        for end in (source, target):
            if end not in graph.nodes:
                raise NIRFormatError(f"{where}: edge ({source!r}, {target!r}) names a node {end!r} that does not exist")


# --------------------------------------------------------------------------- NIR -> IR
@dataclass
class _Branch:
    """Synapses from ``source`` into a neuron along one path: ``W``, bias and delays ``[out, in]``."""

    source: str
    weights: np.ndarray
    bias: np.ndarray
    delays: np.ndarray
    path: tuple[str, ...]


@dataclass
class _Neuron:
    """Constants of one imported neuron population; ``gain`` is folded into its incoming synapses."""

    tau: float
    gain: np.ndarray | None
    threshold: float


class _Reader:
    """Walks a NIR graph backwards from every neuron and fuses the branches into IR stages."""

    def __init__(self, graph: nir.NIRGraph, where: str) -> None:
        self.graph, self.where = graph, where
        check_node_types(graph, where)
        self.nodes = graph.nodes
        self.metadata = dict(graph.metadata or {})
        self.ours = self.metadata.get("delaydeploy_format") == FORMAT_NAME
        self.dt = euler_dt(graph, where)
        self.inputs: dict[str, list[str]] = {name: [] for name in self.nodes}
        for source, target in graph.edges:
            self.inputs[str(target)].append(str(source))
        self.used: set[str] = set()

    def fail(self, message: str) -> NIRFormatError:
        return NIRFormatError(f"{self.where}: {message}")

    def _mismatch(self, a: str, a_size: int, b: str, b_size: int) -> NIRFormatError:
        return self.fail(
            f"shape mismatch: node {a!r} ({type(self.nodes[a]).__name__}) emits ({a_size},) but node {b!r} "
            f"({type(self.nodes[b]).__name__}) takes ({b_size},)"
        )

    def branches(self, target: str) -> list[_Branch]:
        """Every path ``source -> Delay* -> [Affine|Linear] -> Delay* -> target``."""
        found: list[_Branch] = []
        if not self.inputs[target]:
            raise self.fail(f"node {target!r} ({type(self.nodes[target]).__name__}) has no input")
        size = node_size(target, self.nodes[target], self.where)
        for pred in self.inputs[target]:
            self._walk(pred, target, np.zeros(size, np.int64), None, None, None, (target,), found)
        return found

    def _walk(
        self,
        name: str,
        consumer: str,
        post: np.ndarray,
        weights: np.ndarray | None,
        bias: np.ndarray | None,
        pre: np.ndarray | None,
        path: tuple[str, ...],
        found: list[_Branch],
    ) -> None:
        node = self.nodes[name]
        if name in path[1:]:
            raise self.fail(f"cycle {' <- '.join(path + (name,))} has no neuron in it")
        path = path + (name,)
        carried = post.size if weights is None else weights.shape[1]
        if isinstance(node, nir.Delay):
            self.used.add(name)
            steps = delay_steps(name, node, self.dt, self.where)
            if steps.size != carried:
                raise self._mismatch(name, steps.size, consumer, carried)
            if not self.inputs[name]:
                raise self.fail(f"Delay node {name!r} has no input")
            for pred in self.inputs[name]:
                if weights is None:
                    self._walk(pred, name, post + steps, None, None, None, path, found)
                else:
                    self._walk(pred, name, post, weights, bias, pre + steps, path, found)
        elif isinstance(node, (nir.Affine, nir.Linear)):
            self.used.add(name)
            matrix = np.asarray(node.weight, dtype=np.float64)
            if weights is not None:
                raise self.fail(
                    f"nodes {name!r} and {consumer!r} are two weight nodes in series; the IR has one per synapse"
                )
            if matrix.ndim != 2:
                raise self.fail(
                    f"node {name!r} ({type(node).__name__}) has weight shape {matrix.shape}; expected [out, in]"
                )
            if matrix.shape[0] != post.size:
                raise self._mismatch(name, matrix.shape[0], consumer, post.size)
            offset = np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else np.zeros(post.size)
            if offset.shape != (post.size,):
                raise self.fail(f"Affine node {name!r} has bias shape {offset.shape}, expected ({post.size},)")
            if np.any((offset != 0) & (post != 0)):
                raise self.fail(
                    f"Affine node {name!r} has a bias that passes through a Delay; the IR's bias acts from step 0"
                )
            if not self.inputs[name]:
                raise self.fail(f"node {name!r} has no input")
            for pred in self.inputs[name]:
                self._walk(pred, name, post, matrix, offset, np.zeros(matrix.shape[1], np.int64), path, found)
        elif isinstance(node, (nir.Input, *_SPIKING)):
            size = node_size(name, node, self.where)
            if size != carried:
                raise self._mismatch(name, size, consumer, carried)
            if weights is None:
                weights, bias, pre = np.eye(size), np.zeros(size), np.zeros(size, np.int64)
            assert bias is not None and pre is not None  # carried along with the weights
            found.append(_Branch(name, weights, bias, post[:, None] + pre[None, :], path))
        else:
            raise self.fail(
                f"node {name!r} ({type(node).__name__}) feeds {consumer!r}; only Input, LIF and CubaLIF can drive "
                "synapses (the readout must be last)"
            )

    def fuse(
        self, target: str, branches: list[_Branch], shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sum branches into one ``(W, D, bias)``; a synapse used at two different delays is an error."""
        weights, delays = np.zeros(shape), np.zeros(shape, np.int64)
        claimed = np.zeros(shape, bool)
        bias = np.zeros(shape[0])
        owner = np.full(shape, -1)
        for index, branch in enumerate(branches):
            active = branch.weights != 0
            clash = active & claimed & (delays != branch.delays)
            if np.any(clash):
                o, i = (int(k) for k in np.argwhere(clash)[0])
                other = branches[owner[o, i]]
                raise self.fail(
                    f"synapse [{o}, {i}] into {target!r} has weights at delays {delays[o, i]} "
                    f"(via {' <- '.join(other.path[1:])}) and {branch.delays[o, i]} "
                    f"(via {' <- '.join(branch.path[1:])}); the IR allows one delay per synapse"
                )
            weights = weights + branch.weights
            delays = np.where(active, branch.delays, delays)
            owner = np.where(active, index, owner)
            claimed |= active
            bias = bias + branch.bias
        return weights, delays, bias

    def _uniform(self, name: str, node: nir.NIRNode, field: str) -> float:
        values = np.asarray(getattr(node, field), dtype=np.float64).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise self.fail(f"node {name!r}: {field} = {values} must be finite")
        if not np.all(values == values[0]):
            raise self.fail(
                f"node {name!r}: {field} varies across neurons ({values.min()} .. {values.max()}); "
                "the IR has one value per layer"
            )
        return float(values[0])

    def _zero(self, name: str, node: nir.NIRNode, field: str) -> None:
        value = self._uniform(name, node, field)
        if value != 0:
            raise self.fail(f"node {name!r} ({type(node).__name__}): {field} = {value}; the IR needs {field} = 0")

    def _membrane(self, name: str, node: nir.NIRNode, tau_field: str, r: np.ndarray) -> tuple[float, np.ndarray | None]:
        """``(tau_steps, input gain)`` of one Euler step; gain ``None`` means exactly 1."""
        tau = self._uniform(name, node, tau_field)
        tau_steps = tau / self.dt
        if not tau_steps >= 1.0 - _RELATIVE_TOLERANCE:
            raise self.fail(
                f"node {name!r}: {tau_field} = {tau} s is {tau_steps} steps at dt = {self.dt} s; "
                "the IR needs tau >= 1 step (is the graph's dt right?)"
            )
        r = np.broadcast_to(np.asarray(r, dtype=np.float64), (node_size(name, node, self.where),))
        if np.all(_is_close(r, tau_steps)) and np.all(r == r[0]):
            return float(r[0]), None
        return max(tau_steps, 1.0), r / tau_steps

    def neuron(self, name: str) -> _Neuron:
        node = self.nodes[name]
        self._zero(name, node, "v_leak")
        if isinstance(node, nir.LI):
            tau, gain = self._membrane(name, node, "tau", node.r)
            return _Neuron(tau, gain, 0.0)
        self._zero(name, node, "v_reset")
        if isinstance(node, nir.CubaLIF):
            tau_syn = self._uniform(name, node, "tau_syn")
            if not _is_close(tau_syn / self.dt, 1.0):
                raise self.fail(
                    f"CubaLIF node {name!r}: tau_syn = {tau_syn} s ({tau_syn / self.dt} steps at dt = {self.dt} s) is "
                    "a real synaptic time constant; the IR's LIF has an instantaneous current (tau_syn = dt)"
                )
            tau, gain = self._membrane(name, node, "tau_mem", np.asarray(node.r) * np.asarray(node.w_in))
        else:
            tau, gain = self._membrane(name, node, "tau", node.r)
        return _Neuron(tau, gain, self._uniform(name, node, "v_threshold"))

    def chain(self) -> tuple[list[str], dict[str, tuple[list[_Branch], list[_Branch]]]]:
        """The neuron nodes from input to readout, and each one's (feedforward, recurrent) branches."""
        nodes = self.nodes
        inputs = [name for name, node in nodes.items() if isinstance(node, nir.Input)]
        outputs = [name for name, node in nodes.items() if isinstance(node, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise self.fail(f"the IR needs exactly one Input and one Output node, found {inputs} and {outputs}")
        neurons = [name for name, node in nodes.items() if isinstance(node, (*_SPIKING, nir.LI))]
        feeds: dict[str, str] = {}
        incoming: dict[str, tuple[list[_Branch], list[_Branch]]] = {}
        for name in neurons:
            branches = self.branches(name)
            recurrent = [branch for branch in branches if branch.source == name]
            forward = [branch for branch in branches if branch.source != name]
            sources = sorted({branch.source for branch in forward})
            if len(sources) != 1:
                raise self.fail(
                    f"node {name!r} takes feedforward input from {sources or 'nothing'}; the IR is a chain with one "
                    "source per layer"
                )
            if recurrent and isinstance(nodes[name], nir.LI):
                raise self.fail(f"LI node {name!r} is recurrent; the IR's readout is not")
            feeds[name] = sources[0]
            incoming[name] = (forward, recurrent)
        chain, current = [], inputs[0]
        while True:
            consumers = sorted(name for name, fed_by in feeds.items() if fed_by == current)
            if len(consumers) > 1:
                raise self.fail(f"node {current!r} drives several layers {consumers}; the IR is a chain")
            if not consumers:
                break
            current = consumers[0]
            chain.append(current)
        if not chain or not isinstance(nodes[chain[-1]], nir.LI):
            raise self.fail(f"the chain {[inputs[0], *chain]} does not end in an LI readout")
        stray = [name for name in neurons if name not in chain]
        if stray:
            raise self.fail(f"neuron nodes {stray} are not on one chain from the input to the readout")
        end = chain[-1]
        output_feeds = self.inputs[outputs[0]]
        if len(output_feeds) == 1 and isinstance(nodes[output_feeds[0]], nir.I):
            integrator = output_feeds[0]
            r = np.asarray(nodes[integrator].r, dtype=np.float64)
            if self.inputs[integrator] != [end] or not np.all(_is_close(r * self.dt, 1.0)):
                raise self.fail(
                    f"I node {integrator!r} is accepted only as the running sum of the readout {end!r} "
                    f"(r = 1/dt = {1 / self.dt}); it has r = {r.ravel()[:3]} and inputs {self.inputs[integrator]}"
                )
            self.used.add(integrator)
            end = integrator
        if output_feeds != [end]:
            raise self.fail(f"Output node {outputs[0]!r} is fed by {output_feeds}; expected only {end!r}")
        self.used.update([inputs[0], outputs[0], *chain])
        unused = [name for name in nodes if name not in self.used]
        if unused:
            raise self.fail(f"nodes {unused} are not on a path from the input to the readout")
        return chain, incoming

    def stage(
        self, name: str, in_size: int, forward: list[_Branch]
    ) -> tuple[_Neuron, np.ndarray, np.ndarray, np.ndarray]:
        """Neuron constants and fused feedforward ``(W, D, bias)`` (gain folded) of one stage."""
        neuron = self.neuron(name)
        weights, delays, bias = self.fuse(name, forward, (node_size(name, self.nodes[name], self.where), in_size))
        self.restore_zero_weight_delays(name, "zero_weight_delays", weights, delays)
        weights, bias = _scaled(neuron.gain, weights, bias)
        return neuron, weights, delays, bias

    def layer(self, name: str, in_size: int, forward: list[_Branch], recurrent: list[_Branch]) -> SpikingLayer:
        """The spiking layer of a LIF/CubaLIF node, with its recurrent cycles if any."""
        neuron, weights, delays, bias = self.stage(name, in_size, forward)
        rec_weights = rec_delays = None
        if recurrent:
            size = weights.shape[0]
            rec_weights, rec_delays, rec_bias = self.fuse(name, recurrent, (size, size))
            if np.any(rec_bias != 0):
                raise self.fail(f"a recurrent path into {name!r} has a bias; it would arrive a step late")
            self.restore_zero_weight_delays(name, "zero_weight_recurrent_delays", rec_weights, rec_delays)
            (rec_weights,) = _scaled(neuron.gain, rec_weights)
        rule, reset = neuron_rules(self.nodes[name], self.graph, name, self.where)
        ir_name, official_tail = self.stage_info(name)
        lif = LIFNeuron(neuron.tau, neuron.threshold, reset, rule)
        return SpikingLayer(ir_name, weights, delays, bias, lif, rec_weights, rec_delays, official_tail)

    def readout(self, name: str, in_size: int, forward: list[_Branch]) -> Readout:
        """The readout of the LI node."""
        neuron, weights, delays, bias = self.stage(name, in_size, forward)
        ir_name, official_tail = self.stage_info(name)
        return Readout(ir_name, weights, delays, bias, neuron.tau, official_tail)

    def stage_info(self, name: str) -> tuple[str, int]:
        metadata = self.nodes[name].metadata or {}
        return str(metadata.get("ir_name", name)), int(metadata.get("official_tail", 0))

    def restore_zero_weight_delays(self, name: str, key: str, weights: np.ndarray, delays: np.ndarray) -> None:
        rows = (self.nodes[name].metadata or {}).get(key) if self.ours else None
        for o, i, d in np.asarray(rows if rows is not None else np.zeros((0, 3)), dtype=np.int64).reshape(-1, 3):
            if 0 <= o < weights.shape[0] and 0 <= i < weights.shape[1] and weights[o, i] == 0:
                delays[o, i] = d


def _scaled(gain: np.ndarray | None, *arrays: np.ndarray) -> list[np.ndarray]:
    if gain is None:
        return list(arrays)
    return [array * (gain[:, None] if array.ndim == 2 else gain) for array in arrays]


def nir_to_network(graph: nir.NIRGraph, source: str = "NIR graph") -> Network:
    """Translate a NIR graph into the IR, fusing delay branches into per-synapse delays.

    ``source`` names the graph in error messages. Raises :class:`NIRFormatError` naming the
    node (and value or shapes) for anything the IR cannot represent.
    """
    reader = _Reader(graph, source)
    chain, incoming = reader.chain()
    nodes = reader.nodes
    input_name = next(name for name, node in nodes.items() if isinstance(node, nir.Input))
    input_size = node_size(input_name, nodes[input_name], source)
    layers: list[SpikingLayer] = []
    in_size = input_size
    for name in chain:
        try:
            if name == chain[-1]:
                readout = reader.readout(name, in_size, incoming[name][0])
            else:
                layers.append(reader.layer(name, in_size, *incoming[name]))
                in_size = layers[-1].size
        except (IRValidationError, ValueError, TypeError) as error:
            kind = type(nodes[name]).__name__
            raise reader.fail(f"node {name!r} ({kind}) is not a valid IR stage: {error}") from error
    try:
        metadata = reader.metadata
        input_kind = str(metadata.get("input_kind", "analog"))
        if input_kind not in INPUT_KINDS:
            raise reader.fail(f"graph metadata input_kind = {input_kind!r}; expected one of {INPUT_KINDS}")
        ir_metadata = json.loads(str(metadata["ir_metadata_json"])) if reader.ours else {"imported_from": source}
        return Network(
            input_size,
            layers,
            readout,
            input_kind=cast(InputKind, input_kind),  # checked above
            dt=float(metadata.get("dt_seconds", reader.dt)),
            tail_steps=int(metadata.get("tail_steps", 0)),
            metadata=ir_metadata,
            decision=graph_decision(graph, source),
        )
    except (IRValidationError, ValueError, TypeError, KeyError) as error:
        raise reader.fail(f"the graph metadata does not form a valid IR: {error}") from error


def read_nir(path: str | os.PathLike) -> Network:
    """Read a NIR file into the IR (see :func:`nir_to_network`)."""
    return nir_to_network(read_graph(path), source=str(path))
