"""Run a NIR graph (or file) step by step with nirtorch: an independent check of the file.

The graph is executed as written, not through the IR: :func:`nirtorch.nir_to_torch` wires
our own torch modules, one forward-Euler step (``dt`` from graph metadata
``euler_dt_seconds``/``dt``, else 1e-4 s) per call:

* ``Delay``: a shift register per element, ``round(delay / dt)`` steps (whole steps only);
* ``LIF`` / ``CubaLIF``: ``v += dt/tau * ((v_leak - v) + r * I)``, fire, reset, honouring
  the ``threshold_rule`` (">=" or NIR's ">") and ``reset`` ("hard" or "soft") stored in the
  node's or the graph's metadata; CubaLIF first updates its current
  ``i += dt/tau_syn * (w_in * x - i)`` and feeds the new ``i`` to the membrane;
* ``LI``, ``I``: the same Euler step without spikes;
* ``Affine`` keeps its bias (nirtorch's default mapping silently drops it), ``Linear``.

How nirtorch executes a graph (nirtorch 2.6, ``nir_interpreter.py``): one ``forward(x, state)``
call is one time step; every edge into a node is summed; a module whose ``forward`` takes
``state`` returns ``(output, state)`` and gets it back on the next call. An edge that closes
a cycle (its source is reachable from the node it feeds) carries the output its source had
at the *previous* call (zeros at the first), which is exactly the IR's one-step recurrent
latency. nirtorch sums a node's inputs in the iteration order of a ``set``, so the rounding
of that sum may differ between processes (by ~1e-16).

Only the result type :class:`~delaydeploy.reference.Simulation` comes from the reference
simulator, none of its dynamics: agreement between the two is the test.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import nir
import nirtorch
import numpy as np
import torch

from delaydeploy.errors import NIRFormatError
from delaydeploy.exporters.nir import (
    check_node_types,
    delay_steps,
    euler_dt,
    graph_decision,
    neuron_rules,
    node_size,
    read_graph,
)
from delaydeploy.reference import Simulation


def _buffer(value: object, size: int) -> torch.Tensor:
    """A float64 parameter vector of ``size`` (scalars broadcast), moved to the run's dtype by nirtorch."""
    return torch.as_tensor(np.broadcast_to(np.asarray(value, dtype=np.float64), (size,)).copy())


class _Affine(torch.nn.Module):
    weight: torch.Tensor  # buffers
    bias: torch.Tensor

    def __init__(self, node: nir.Affine | nir.Linear) -> None:
        super().__init__()
        weight = np.asarray(node.weight, dtype=np.float64)
        self.register_buffer("weight", torch.as_tensor(weight))
        bias = node.bias if isinstance(node, nir.Affine) else 0.0
        self.register_buffer("bias", _buffer(bias, weight.shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class _Delay(torch.nn.Module):
    """``y[t, k] = x[t - steps[k], k]`` with a history of the last ``max(steps)`` inputs as state."""

    steps: torch.Tensor  # a buffer

    def __init__(self, steps: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("steps", torch.as_tensor(steps, dtype=torch.long))
        self.depth = int(steps.max(initial=0))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.depth == 0:
            return x, None
        history = x.new_zeros((self.depth, *x.shape)) if state is None else state
        window = torch.cat([x[None], history])  # window[k] = x[t - k]
        out = torch.gather(window, 0, self.steps.expand(x.shape)[None])[0]
        return out, window[:-1]


class _Integrator(torch.nn.Module):
    """``LI``: ``v += dt/tau * ((v_leak - v) + r x)``; ``I``: ``v += dt * r * x``. Output and state: ``v``."""

    r: torch.Tensor  # buffers
    alpha: torch.Tensor
    v_leak: torch.Tensor

    def __init__(self, node: nir.LI | nir.I, size: int, dt: float) -> None:
        super().__init__()
        self.leaky = isinstance(node, nir.LI)
        self.register_buffer("r", _buffer(node.r, size))
        self.register_buffer("alpha", _buffer(dt / np.asarray(node.tau, dtype=np.float64) if self.leaky else dt, size))
        self.register_buffer("v_leak", _buffer(node.v_leak if self.leaky else 0.0, size))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros_like(x) if state is None else state
        drive = self.r * x + (self.v_leak - v if self.leaky else 0.0)
        v = v + self.alpha * drive
        return v, v


class _SpikingState(NamedTuple):
    v: torch.Tensor
    i: torch.Tensor | None
    spikes: torch.Tensor


class _Spiking(torch.nn.Module):
    """``LIF`` or ``CubaLIF`` (current updated first), with the metadata's threshold rule and reset."""

    alpha: torch.Tensor  # buffers (alpha_syn and w_in of a CubaLIF only)
    r: torch.Tensor
    v_leak: torch.Tensor
    v_threshold: torch.Tensor
    v_reset: torch.Tensor
    alpha_syn: torch.Tensor
    w_in: torch.Tensor

    def __init__(self, node: nir.LIF | nir.CubaLIF, size: int, dt: float, rule: str, reset: str) -> None:
        super().__init__()
        self.cuba = isinstance(node, nir.CubaLIF)
        tau = node.tau_mem if self.cuba else node.tau
        self.register_buffer("alpha", _buffer(dt / np.asarray(tau, dtype=np.float64), size))
        self.register_buffer("r", _buffer(node.r, size))
        self.register_buffer("v_leak", _buffer(node.v_leak, size))
        self.register_buffer("v_threshold", _buffer(node.v_threshold, size))
        self.register_buffer("v_reset", _buffer(node.v_reset, size))
        if self.cuba:
            self.register_buffer("alpha_syn", _buffer(dt / np.asarray(node.tau_syn, dtype=np.float64), size))
            self.register_buffer("w_in", _buffer(node.w_in, size))
        self.strict, self.soft = rule == ">", reset == "soft"

    def forward(self, x: torch.Tensor, state: _SpikingState | None = None) -> tuple[torch.Tensor, _SpikingState]:
        v = torch.zeros_like(x) if state is None else state.v
        current = None
        if self.cuba:
            current = torch.zeros_like(x) if state is None else state.i
            assert current is not None  # the state of a CubaLIF carries its current
            current = current + self.alpha_syn * (self.w_in * x - current)
            x = current
        v = v + self.alpha * ((self.v_leak - v) + self.r * x)
        fired = v > self.v_threshold if self.strict else v >= self.v_threshold
        spikes = fired.to(v.dtype)
        v = v - self.v_threshold * spikes if self.soft else torch.where(fired, self.v_reset, v)
        return spikes, _SpikingState(v, current, spikes)


def _network_order(graph: nir.NIRGraph, start: str) -> dict[str, int]:
    """Shortest edge distance of every node from the Input (unreachable nodes are absent)."""
    following: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for source, target in graph.edges:
        following[str(source)].append(str(target))
    distance, queue = {start: 0}, deque([start])
    while queue:
        name = queue.popleft()
        for target in following[name]:
            if target not in distance:
                distance[target] = distance[name] + 1
                queue.append(target)
    return distance


def _node_map(
    graph: nir.NIRGraph, names: dict[int, str], built: dict[str, torch.nn.Module], dt: float, where: str
) -> dict[type, Callable[[nir.NIRNode], torch.nn.Module]]:
    """nirtorch node map building our modules; ``built`` collects them by NIR node name."""

    def keep(node: nir.NIRNode, module: torch.nn.Module) -> torch.nn.Module:
        built[names[id(node)]] = module
        return module

    def size(node: nir.NIRNode) -> int:
        return node_size(names[id(node)], node, where)

    def spiking(node: nir.LIF | nir.CubaLIF) -> torch.nn.Module:
        rule, reset = neuron_rules(node, graph, names[id(node)], where)
        return keep(node, _Spiking(node, size(node), dt, rule, reset))

    return {
        nir.Input: lambda node: torch.nn.Identity(),
        nir.Output: lambda node: torch.nn.Identity(),
        nir.Affine: lambda node: keep(node, _Affine(node)),
        nir.Linear: lambda node: keep(node, _Affine(node)),
        nir.Delay: lambda node: keep(node, _Delay(delay_steps(names[id(node)], node, dt, where))),
        nir.LIF: spiking,
        nir.CubaLIF: spiking,
        nir.LI: lambda node: keep(node, _Integrator(node, size(node), dt)),
        nir.I: lambda node: keep(node, _Integrator(node, size(node), dt)),
    }


def simulate_nir(
    graph_or_path: nir.NIRGraph | str | os.PathLike, x: torch.Tensor | np.ndarray, *, dtype: torch.dtype = torch.float64
) -> Simulation:
    """Execute a NIR graph on ``x`` ``[T, B, N]`` for ``T + tail_steps`` steps (zero-padded input).

    ``tail_steps`` comes from the graph metadata (0 if absent). Returns the spikes of every
    LIF/CubaLIF node in network order (distance from the Input) and the membrane of the one
    LI node as readout, on the reference simulator's time axis, with the graph's decision rule.
    """
    if isinstance(graph_or_path, nir.NIRGraph):
        graph, where = graph_or_path, "NIR graph"
    else:
        graph, where = read_graph(graph_or_path), str(graph_or_path)
    check_node_types(graph, where)
    dt = euler_dt(graph, where)
    decision = graph_decision(graph, where)
    inputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise NIRFormatError(f"{where}: expected one Input node, found {inputs}")
    order = _network_order(graph, inputs[0])
    unreachable = [name for name in graph.nodes if name not in order]
    if unreachable:
        raise NIRFormatError(f"{where}: nodes {unreachable} cannot be reached from the input {inputs[0]!r}")
    spiking = sorted(
        (name for name, node in graph.nodes.items() if isinstance(node, (nir.LIF, nir.CubaLIF))),
        key=lambda name: (order[name], name),
    )
    readouts = [name for name, node in graph.nodes.items() if isinstance(node, nir.LI)]
    if len(readouts) != 1:
        raise NIRFormatError(f"{where}: expected one LI readout node, found {readouts}")

    names = {id(node): name for name, node in graph.nodes.items()}
    built: dict[str, torch.nn.Module] = {}
    try:
        module = nirtorch.nir_to_torch(graph, _node_map(graph, names, built, dt, where), default_map={}, dtype=dtype)
    except (ValueError, NotImplementedError) as error:
        raise NIRFormatError(f"{where}: nirtorch cannot wire the graph: {error}") from error
    state_key = {id(child): key for key, child in module.named_children()}

    x = torch.as_tensor(x, dtype=dtype)
    size = node_size(inputs[0], graph.nodes[inputs[0]], where)
    if x.ndim != 3 or x.shape[2] != size:
        raise ValueError(f"input has shape {tuple(x.shape)}, expected [T, B, {size}]")
    steps = x.shape[0] + int((graph.metadata or {}).get("tail_steps", 0))
    x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, steps - x.shape[0]))
    spikes = [x.new_zeros(steps, x.shape[1], node_size(name, graph.nodes[name], where)) for name in spiking]
    readout = x.new_zeros(steps, x.shape[1], node_size(readouts[0], graph.nodes[readouts[0]], where))
    state = None
    with torch.no_grad():
        for t in range(steps):
            _, state = module(x[t], state)
            for record, name in zip(spikes, spiking):
                record[t] = state[state_key[id(built[name])]].spikes
            readout[t] = state[state_key[id(built[readouts[0]])]]
    return Simulation(spikes, readout, decision)
