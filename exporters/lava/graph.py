"""Lava target: the deployment IR (float) or its Loihi 2 integer form as a Lava process graph.

Graph per network: ``RingBuffer`` input -> per stage a ``DelayDense`` (plus a recurrent
``DelayDense`` from a layer's spikes back to its own input) -> a :class:`FramedLIF`
population; the readout is a ``FramedLIF`` that never fires (float: ``dv = 1/tau``, so a
readout of ``tau = 1`` keeps no membrane and is the current itself, exactly; bit-accurate:
Loihi 2's smallest leak, see :mod:`delaydeploy.quantize`). Only what is compared is
recorded: each hidden population probes its spikes, the readout its membrane, and they send
them to the host in blocks of steps through external pipes. (``Monitor`` data moves value by
value through the runtime, ~30k values/s; an ``Extractor`` is one more process to synchronise
every step.)

Time alignment. Every ``DelayDense`` adds one step, the LIF none, and the ring buffer sends
input row ``t`` at Lava step ``t + 1``; so stage ``k`` (hidden layers 1..L, readout L+1) lags
the reference by ``k`` steps: its reference time ``t`` is Lava step ``t + k + 1``. A recurrent
``DelayDense`` takes ``1 + e`` steps, exactly the IR's latency. Each ``FramedLIF`` is told its
lag (``frame_offset``): it stays silent with zero state until its first input can arrive, so
its bias acts from its reference time 0 and not from Lava's step 1.

Framing (many samples in one run, one compilation). Samples are laid back to back, one frame
of ``frame_steps`` steps each; stage ``k`` zeroes ``u, v`` at the start of each of its frames
(at its own lag). With the fast synapse models each ``DelayDense`` also empties its buffer when
its source starts a frame, so frames are ``T + tail`` steps with no gap. Lava's stock
``DelayDense`` cannot be flushed: there every frame ends with a silent gap (no spikes, long
enough for the largest delay to drain) instead. Either way every sample computes exactly what
it computes alone.
"""

from __future__ import annotations

import exporters.lava.env  # noqa: F401  (first: makes Lava importable after tqdm)
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import DelayDense
from lava.proc.io.source import RingBuffer
from tqdm import tqdm

from delaydeploy.fixed_point import FixedLayer, FixedNetwork, input_message_bits, input_payload
from delaydeploy.fixed_reference import FixedSimulation
from delaydeploy.ir import DEFAULT_DECISION, Network, Readout, SpikingLayer, check_binary_input
from delaydeploy.reference import Simulation
from exporters.lava.processes import (
    PROBE_PIPE_BLOCKS,
    FramedLIF,
    PyFastDelayDenseModelBitAcc,
    PyFastDelayDenseModelFloat,
    PyFramedLifModelBitAcc,
    PyFramedLifModelFloat,
)

SYNAPSES = ("fast", "stock")
PROBE_BLOCK = 64  # steps per block that a probing population sends to the host
FAST_DELAY_DENSE = {"floating_pt": PyFastDelayDenseModelFloat, "fixed_pt": PyFastDelayDenseModelBitAcc}
FRAMED_LIF = {"floating_pt": PyFramedLifModelFloat, "fixed_pt": PyFramedLifModelBitAcc}


@dataclass(frozen=True)
class FrameLayout:
    """Where samples and stages sit on Lava's time axis (see module docstring)."""

    steps: int  # reference steps per sample, T + tail
    frame_steps: int  # Lava steps per sample: ``steps`` plus the drain gap of stock synapses
    num_samples: int
    num_stages: int  # hidden layers + readout; stage k (1-based) lags k steps

    @property
    def run_steps(self) -> int:
        return self.num_samples * self.frame_steps + self.num_stages

    def stage_trace(self, recorded: np.ndarray, stage: int) -> np.ndarray:
        """Cut stage ``stage``'s (1-based) ``[run_steps, N]`` record into ``[steps, B, N]``."""
        rows = recorded[stage: stage + self.num_samples * self.frame_steps]
        frames = rows.reshape(self.num_samples, self.frame_steps, -1)[:, : self.steps]
        return np.ascontiguousarray(frames.transpose(1, 0, 2))


@dataclass(frozen=True)
class _Stage:
    """One stage in Lava's units: synapses plus ``FramedLIF`` keyword arguments."""

    name: str
    weights: np.ndarray
    delays: np.ndarray
    synapse_kwargs: dict
    neuron_kwargs: dict
    recurrent: tuple[np.ndarray, np.ndarray, dict] | None


@dataclass
class LavaGraph:
    """A built, not yet compiled Lava graph of one network and its input samples."""

    source: RingBuffer
    neurons: list[FramedLIF]  # hidden layers probe their spikes, the readout its membrane
    run_cfg: Loihi2SimCfg
    layout: FrameLayout
    readout_scale: float | None  # a FixedNetwork's (its readout is the raw integer v); None in float
    decision: str = DEFAULT_DECISION  # the network's class rule, carried by the Simulation


def _float_stage(stage: SpikingLayer | Readout) -> _Stage:
    if isinstance(stage, Readout):
        neuron = dict(du=1.0, dv=1.0 / stage.tau, bias_mant=stage.bias, vth=np.inf)
        recurrent = None
    else:
        theta = stage.neuron.threshold
        # Lava fires on v > vth; the largest double below theta turns that into v >= theta.
        vth = float(np.nextafter(theta, 0.0)) if stage.neuron.threshold_rule == ">=" else theta
        neuron = dict(du=1.0, dv=1.0 / stage.neuron.tau, bias_mant=stage.bias, vth=vth,
                      reset=stage.neuron.reset, reset_amount=theta)
        recurrent = (stage.recurrent_weights, stage.recurrent_delays, {}) if stage.is_recurrent else None
    return _Stage(stage.name, stage.weights, stage.delays, {}, neuron, recurrent)


def _fixed_stage(layer: FixedLayer) -> _Stage:
    neuron = dict(du=layer.du, dv=layer.dv, bias_mant=layer.bias_mant, bias_exp=layer.bias_exp, vth=layer.vth,
                  reset=layer.reset)
    recurrent = None
    if layer.is_recurrent:
        recurrent = (layer.recurrent_weights, layer.recurrent_delays, {"weight_exp": layer.recurrent_weight_exp})
    return _Stage(layer.name, layer.weights, layer.delays, {"weight_exp": layer.weight_exp}, neuron, recurrent)


def _input_payload(network: Network | FixedNetwork, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Input values as Lava sends them, and the first synapse's ``num_message_bits``."""
    message_bits = input_message_bits(network.input_kind)
    if isinstance(network, FixedNetwork):
        return input_payload(network, x), message_bits
    if network.input_kind == "binary":
        check_binary_input(x)
    return x.astype(np.float64), message_bits


def _drain_gap(stages: list[_Stage]) -> int:
    """Silent steps after each frame that let stock ``DelayDense`` buffers empty."""
    gap = max(int(stage.delays.max(initial=0)) for stage in stages)
    for stage in stages:
        if stage.recurrent is not None:
            gap = max(gap, 1 + int(stage.recurrent[1].max(initial=0)))
    return gap


def build_lava_graph(network: Network | FixedNetwork, x: np.ndarray, *, synapse: str = "fast") -> LavaGraph:
    """Build the Lava graph that runs ``network`` on all samples of ``x`` ``[T, B, C]`` in one run.

    A :class:`FixedNetwork` maps 1:1 onto Lava's bit-accurate parameters (``fixed_pt``); a
    float :class:`Network` onto the float models (``floating_pt``). ``synapse`` picks our fast
    ``DelayDense`` models (``"fast"``) or Lava's stock ones (``"stock"``).
    """
    if synapse not in SYNAPSES:
        raise ValueError(f"synapse = {synapse!r}; expected one of {SYNAPSES}")
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != network.input_size:
        raise ValueError(f"input has shape {x.shape}, expected [T, B, {network.input_size}]")
    fixed = isinstance(network, FixedNetwork)
    tag = "fixed_pt" if fixed else "floating_pt"
    if fixed:
        stages = [_fixed_stage(layer) for layer in [*network.layers, network.readout]]
    else:
        stages = [_float_stage(layer) for layer in [*network.layers, network.readout]]
    payload, message_bits = _input_payload(network, x)
    steps_in, num_samples, _ = x.shape
    steps = steps_in + network.tail_steps
    gap = 0 if synapse == "fast" else _drain_gap(stages)
    layout = FrameLayout(steps, steps + gap, num_samples, len(stages))

    frames = np.zeros((num_samples, layout.frame_steps, network.input_size), dtype=payload.dtype)
    frames[:, :steps_in] = payload.transpose(1, 0, 2)
    data = np.zeros((network.input_size, layout.run_steps), dtype=payload.dtype)
    data[:, : num_samples * layout.frame_steps] = frames.reshape(-1, network.input_size).T
    source = RingBuffer(data=data)

    def flush(source_lag: int, loop: bool = False) -> dict:
        """Frame kwargs of a fast ``DelayDense`` fed by a source lagging ``source_lag`` steps."""
        return dict(frame_steps=layout.frame_steps, frame_offset=source_lag, loop=loop) if synapse == "fast" else {}

    neurons: list[FramedLIF] = []
    previous = source.s_out
    for lag, stage in enumerate(stages, start=1):
        probe = "v" if lag == len(stages) else "spikes"
        neuron = FramedLIF(shape=(stage.weights.shape[0],), frame_offset=lag, active_steps=steps, name=stage.name,
                           frame_steps=layout.frame_steps, probe=probe, probe_steps=layout.run_steps,
                           probe_block=PROBE_BLOCK, **stage.neuron_kwargs)
        dense = DelayDense(weights=stage.weights, delays=stage.delays, num_message_bits=message_bits,
                           name=f"{stage.name}.synapses", **stage.synapse_kwargs, **flush(lag - 1))
        previous.connect(dense.s_in)
        dense.a_out.connect(neuron.a_in)
        if stage.recurrent is not None:
            weights, delays, kwargs = stage.recurrent
            loop = DelayDense(weights=weights, delays=delays, name=f"{stage.name}.recurrent", **kwargs,
                              **flush(lag, loop=True))
            neuron.s_out.connect(loop.s_in)
            loop.a_out.connect(neuron.a_in)
        neurons.append(neuron)
        previous = neuron.s_out
        message_bits = 0

    models: dict = {}
    if synapse == "fast":
        models[DelayDense] = FAST_DELAY_DENSE[tag]
    # Our processes are mapped per instance: class keys would make Lava's model discovery
    # import every module of the ``exporters.lava`` package.
    models.update({neuron: FRAMED_LIF[tag] for neuron in neurons})
    run_cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=models)
    return LavaGraph(source, neurons, run_cfg, layout, network.readout_scale if fixed else None, network.decision)


def run_lava_graph(graph: LavaGraph, *, progress: bool = False,
                   on_chunk: Callable[[int], None] | None = None) -> Simulation:
    """Compile and run ``graph`` once; return spikes and readout on the reference time axis.

    Lava steps in blocking chunks that fit the probes' pipes (``PROBE_PIPE_BLOCKS`` blocks),
    and the host drains the pipes between chunks, so the host never competes with the run.
    The first chunk is a single block (it includes compilation). ``on_chunk(steps_done)`` is
    called after each chunk (for timing).
    """
    layout = graph.layout
    blocks: list[list[np.ndarray]] = [[] for _ in graph.neurons]
    done = 0
    try:
        with tqdm(total=layout.run_steps, desc="lava", unit="step", disable=not progress) as bar:
            while done < layout.run_steps:
                chunk = min(PROBE_BLOCK if done == 0 else PROBE_BLOCK * PROBE_PIPE_BLOCKS, layout.run_steps - done)
                graph.source.run(condition=RunSteps(num_steps=chunk), run_cfg=graph.run_cfg)
                sent = -(-(done + chunk) // PROBE_BLOCK) - done // PROBE_BLOCK  # blocks completed in this chunk
                for received, neuron in zip(blocks, graph.neurons):
                    received.extend(neuron.receive_probe() for _ in range(sent))
                done += chunk
                bar.update(chunk)
                if on_chunk is not None:
                    on_chunk(done)
    finally:
        graph.source.stop()
    records = [np.concatenate(received)[: layout.run_steps] for received in blocks]
    spikes = [torch.from_numpy(layout.stage_trace(data, stage).astype(np.float64))
              for stage, data in enumerate(records[:-1], 1)]
    readout = layout.stage_trace(records[-1], layout.num_stages)
    if graph.readout_scale is None:
        return Simulation(spikes, torch.from_numpy(readout), graph.decision)
    return FixedSimulation(spikes, torch.from_numpy(readout.astype(np.int64)), decision=graph.decision,
                           readout_scale=graph.readout_scale)


def simulate_lava(network: Network | FixedNetwork, x: np.ndarray, *, synapse: str = "fast",
                  progress: bool = False) -> Simulation:
    """Run ``network`` on Lava's CPU simulator for input ``x`` ``[T, B, C]``, all samples in one run.

    Returns what :func:`delaydeploy.reference.simulate` (streaming) or
    :func:`delaydeploy.fixed_reference.simulate_fixed` return, on the same time axis: hidden
    spikes ``[T + tail, B, N]`` (float64 0/1) and the readout membrane ``[T + tail, B, C]``
    (float64; for a :class:`FixedNetwork` a ``FixedSimulation`` with the raw integer ``v`` as
    int64, whose ``prediction()`` reads it in float units).
    """
    return run_lava_graph(build_lava_graph(network, x, synapse=synapse), progress=progress)
