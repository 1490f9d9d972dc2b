"""Lava target: the deployment IR (float) or its Loihi 2 integer form as a Lava process graph.

Graph per network: ``RingBuffer`` input -> per stage a ``DelayDense`` (plus a recurrent
``DelayDense`` from a layer's spikes back to its own input) -> a :class:`FramedLIF`
population; a pruned stage (:func:`delaydeploy.ir.stored_sparse`) is a
``DelaySparse`` that holds only the synapses that exist. In the chip-shaped graph a stage
whose delays are one per neuron (:func:`per_neuron_form`) stores no delay per synapse: a
:class:`DelayLine` of its presynaptic spikes before a ``Dense`` (``Sparse`` when pruned) for
axonal delays, of its postsynaptic currents after it for dendritic ones, and a bare ``Dense``
when every delay is 0; a ``DelayLine`` takes no step of its own, so the timing below holds
unchanged. The readout is a ``FramedLIF`` that
never fires (float: ``dv = 1/tau``, so a readout of ``tau = 1`` keeps no membrane and is the
current itself, exactly; bit-accurate: Loihi 2's smallest leak, see
:mod:`delaydeploy.quantize`). Only what is compared is recorded: each hidden population
probes its spikes, the readout its membrane, and they send them to the host in blocks of
steps through external pipes. (``Monitor`` data moves value by value through the runtime,
~30k values/s; an ``Extractor`` is one more process to synchronise every step.)

Time alignment. Every ``DelayDense`` adds one step, the LIF none, and the ring buffer sends
input row ``t`` at Lava step ``t + 1``; so stage ``k`` (hidden layers 1..L, readout L+1) lags
the reference by ``k`` steps: its reference time ``t`` is Lava step ``t + k + 1``. A recurrent
``DelayDense`` takes ``1 + e`` steps, exactly the IR's latency. Each ``FramedLIF`` is told its
lag (``frame_offset``): it stays silent with zero state until its first input can arrive, so
its bias acts from its reference time 0 and not from Lava's step 1.

Lanes and frames (many samples in one run, one compilation). A graph runs ``lanes``
independent copies of the network side by side (every population ``[lanes, N]``, one synapse
buffer per lane; ``lanes=None`` builds the chip-shaped graph of Lava's stock ``DelayDense`` and
``[N]`` populations instead), and each lane runs its samples back to back, one frame of
``frame_steps`` steps each: sample ``s`` runs in lane ``s % lanes``, frame ``s // lanes``;
stage ``k`` zeroes ``u, v`` at the start of each of its frames (at its own lag). With the
fast synapse models each ``DelayDense`` also empties its buffer when its source starts a
frame, so frames are ``T + tail`` steps with no gap. Lava's stock ``DelayDense`` cannot be
flushed: there every frame ends with a silent gap (no spikes, long enough for the largest
delay to drain) instead. Either way every sample computes exactly what it computes alone.
The laned graph's input streams in from the host in blocks while it runs
(:class:`StreamedInput`), so a run holds a few blocks of input, not the whole split.
"""

from __future__ import annotations

import delaydeploy.exporters.lava.env  # noqa: F401  (first: makes Lava importable after tqdm)

# isort: split
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import DelayDense, Dense
from lava.proc.io.source import RingBuffer
from lava.proc.sparse.process import DelaySparse, Sparse
from scipy.sparse import csr_matrix
from tqdm import tqdm

from delaydeploy.exporters.lava.processes import (
    PROBE_PIPE_BLOCKS,
    DelayLine,
    FramedLIF,
    LaneDelayDense,
    PyDelayLineModelFixed,
    PyDelayLineModelFloat,
    PyFastDelayDenseModelBitAcc,
    PyFastDelayDenseModelFloat,
    PyFastDelaySparseModelBitAcc,
    PyFastDelaySparseModelFloat,
    PyFramedLifModelBitAcc,
    PyFramedLifModelFloat,
    PyLaneDelayDenseModelBitAcc,
    PyLaneDelayDenseModelFloat,
    PyStreamedInputModelFixed,
    PyStreamedInputModelFloat,
    StreamedInput,
)
from delaydeploy.fixed_point import FixedLayer, FixedNetwork, input_message_bits, input_payload
from delaydeploy.fixed_reference import FixedSimulation
from delaydeploy.ir import (
    DEFAULT_DECISION,
    Network,
    Readout,
    SpikingLayer,
    check_binary_input,
    delay_structure,
    per_neuron_delays,
    stored_sparse,
)
from delaydeploy.reference import Simulation

SYNAPSES = ("fast", "stock")
DEFAULT_LANES = 256  # samples side by side in a laned graph
MAX_BLOCK = 64  # steps per block that a probing population sends to the host (and the input receives)
BLOCK_BYTES = 1 << 20  # a block's size is kept near this, so a pipe of PROBE_PIPE_BLOCKS blocks stays small
MIN_SAMPLES_PER_WORKER = 64  # fewer samples per process than this cost more in start-up than they save
FAST_DELAY_DENSE = {"floating_pt": PyFastDelayDenseModelFloat, "fixed_pt": PyFastDelayDenseModelBitAcc}
FAST_DELAY_SPARSE = {"floating_pt": PyFastDelaySparseModelFloat, "fixed_pt": PyFastDelaySparseModelBitAcc}
LANE_DELAY_DENSE = {"floating_pt": PyLaneDelayDenseModelFloat, "fixed_pt": PyLaneDelayDenseModelBitAcc}
STREAMED_INPUT = {"floating_pt": PyStreamedInputModelFloat, "fixed_pt": PyStreamedInputModelFixed}
FRAMED_LIF = {"floating_pt": PyFramedLifModelFloat, "fixed_pt": PyFramedLifModelBitAcc}
DELAY_LINE = {"floating_pt": PyDelayLineModelFloat, "fixed_pt": PyDelayLineModelFixed}


@dataclass(frozen=True)
class FrameLayout:
    """Where samples and stages sit on Lava's time axis and in its lanes (see module docstring)."""

    steps: int  # reference steps per sample, T + tail
    frame_steps: int  # Lava steps per sample: ``steps`` plus the drain gap of stock synapses
    num_samples: int
    num_stages: int  # hidden layers + readout; stage k (1-based) lags k steps
    lanes: int = 1

    @property
    def frames(self) -> int:
        return -(-self.num_samples // self.lanes)

    @property
    def run_steps(self) -> int:
        return self.frames * self.frame_steps + self.num_stages

    def input_rows(self, payload: np.ndarray, start: int, count: int) -> np.ndarray:
        """Lava steps ``start + 1 .. start + count`` of the input ``payload [T, num_samples, C]``,
        as ``[count, lanes, C]``: zero outside each sample's first ``T`` steps and in unused lanes."""
        rows = np.zeros((count, self.lanes, payload.shape[2]), dtype=payload.dtype)
        for row in range(start, min(start + count, self.frames * self.frame_steps)):
            frame, position = divmod(row, self.frame_steps)
            if position < payload.shape[0]:
                samples = payload[position, frame * self.lanes: (frame + 1) * self.lanes]
                rows[row - start, : samples.shape[0]] = samples
        return rows

    def stage_trace(self, recorded: np.ndarray, stage: int) -> np.ndarray:
        """Cut stage ``stage``'s (1-based) ``[run_steps, lanes, N]`` record into ``[steps, num_samples, N]``."""
        rows = recorded[stage: stage + self.frames * self.frame_steps]
        frames = rows.reshape(self.frames, self.frame_steps, self.lanes, -1)[:, : self.steps]
        samples = frames.transpose(1, 0, 2, 3).reshape(self.steps, self.frames * self.lanes, -1)
        return np.ascontiguousarray(samples[:, : self.num_samples])


@dataclass
class LavaGraph:
    """A built, not yet compiled Lava graph of one network and its input samples."""

    source: RingBuffer | StreamedInput  # the chip-shaped graph holds its input; a laned one streams it
    payload: np.ndarray  # the input as Lava receives it, ``[T, num_samples, C]``
    neurons: list[FramedLIF]  # hidden layers probe their spikes, the readout its membrane
    run_cfg: Loihi2SimCfg
    layout: FrameLayout
    block: int  # steps per probe (and input) block
    readout_scale: float | None  # a FixedNetwork's (its readout is the raw integer v); None in float
    decision: str = DEFAULT_DECISION  # the network's class rule, carried by the Simulation


@dataclass(frozen=True)
class _Stage:
    """One stage in Lava's units: synapses plus ``FramedLIF`` keyword arguments."""

    name: str
    weights: np.ndarray
    delays: np.ndarray
    synapse_kwargs: dict
    neuron_kwargs: dict
    recurrent: tuple[np.ndarray, np.ndarray, dict] | None


def _float_stage(stage: SpikingLayer | Readout) -> _Stage:
    recurrent: tuple[np.ndarray, np.ndarray, dict] | None = None
    if isinstance(stage, Readout):
        neuron = dict(du=1.0, dv=1.0 / stage.tau, bias_mant=stage.bias, vth=np.inf)
    else:
        theta = stage.neuron.threshold
        # Lava fires on v > vth; the largest double below theta turns that into v >= theta.
        vth = float(np.nextafter(theta, 0.0)) if stage.neuron.threshold_rule == ">=" else theta
        neuron = dict(du=1.0, dv=1.0 / stage.neuron.tau, bias_mant=stage.bias, vth=vth,
                      reset=stage.neuron.reset, reset_amount=theta)
        if stage.recurrent_weights is not None and stage.recurrent_delays is not None:
            recurrent = (stage.recurrent_weights, stage.recurrent_delays, {})
    return _Stage(stage.name, stage.weights, stage.delays, {}, neuron, recurrent)


def _fixed_stage(layer: FixedLayer) -> _Stage:
    neuron = dict(du=layer.du, dv=layer.dv, bias_mant=layer.bias_mant, bias_exp=layer.bias_exp, vth=layer.vth,
                  reset=layer.reset)
    recurrent: tuple[np.ndarray, np.ndarray, dict] | None = None
    if layer.recurrent_weights is not None and layer.recurrent_delays is not None:
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


def per_neuron_form(weights: np.ndarray, delays: np.ndarray, weight_exp: int) -> tuple[str, np.ndarray] | None:
    """``(granularity, delays)`` if a chip-shaped stage runs as a :class:`DelayLine` and a
    ``Dense`` (``Sparse`` when pruned) instead of per-synapse delays, else None.

    A stage qualifies when its existing synapses have one delay per neuron
    (:func:`delaydeploy.ir.delay_structure`). Axonal delays need ``weight_exp >= 0``: they bring
    inputs of different delays into one sum, which a negative ``weight_exp`` floors once, where
    Lava's ``DelayDense`` and the integer reference floor each delay group's sum apart; such a
    stage runs dendritic if its delays allow, else per synapse.
    """
    structure = delay_structure(weights, delays)
    if structure is None or structure[0] == "dendritic" or weight_exp >= 0:
        return structure
    steps = per_neuron_delays(weights, delays, "dendritic")
    return None if steps is None else ("dendritic", steps)


def _block_steps(lanes: int, widths: list[int]) -> int:
    """Steps per block: ``MAX_BLOCK``, or fewer where a block of the widest record would pass ``BLOCK_BYTES``."""
    return int(np.clip(BLOCK_BYTES // (8 * lanes * max(widths)), 1, MAX_BLOCK))


def build_lava_graph(network: Network | FixedNetwork, x: np.ndarray, *, synapse: str = "fast",
                     lanes: int | None = DEFAULT_LANES) -> LavaGraph:
    """Build the Lava graph that runs ``network`` on all samples of ``x`` ``[T, B, C]`` in one run.

    A :class:`FixedNetwork` maps 1:1 onto Lava's bit-accurate parameters (``fixed_pt``); a
    float :class:`Network` onto the float models (``floating_pt``). ``lanes`` samples run side
    by side (at most ``B``); ``lanes=None`` builds the chip-shaped graph, one sample after the
    other, where ``synapse`` picks our fast ``DelayDense`` models (``"fast"``) or Lava's stock
    ones (``"stock"``).
    """
    if synapse not in SYNAPSES:
        raise ValueError(f"synapse = {synapse!r}; expected one of {SYNAPSES}")
    if lanes is not None and (lanes < 1 or synapse != "fast"):
        raise ValueError(f"lanes = {lanes}: a laned graph needs lanes >= 1 and the fast synapses")
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
    lane_count = 1 if lanes is None else min(lanes, num_samples)
    layout = FrameLayout(steps, steps + gap, num_samples, len(stages), lane_count)
    lane_shape = () if lanes is None else (lane_count,)
    block = _block_steps(lane_count, [stage.weights.shape[0] for stage in stages])

    if lanes is None:
        source = RingBuffer(data=layout.input_rows(payload, 0, layout.run_steps)[:, 0].T)
    else:
        source = StreamedInput(shape=(lane_count, network.input_size), block=block, name="input")

    def synapses(weights: np.ndarray, delays: np.ndarray, source_lag: int, loop: bool = False, **kwargs):
        """One stage's synapses fed by a source lagging ``source_lag`` steps: the port the source
        connects to and the port that feeds the neurons."""
        compact = None if lanes is not None or loop else per_neuron_form(weights, delays, kwargs.get("weight_exp", 0))
        if compact is not None:
            granularity, steps = compact
            if stored_sparse(weights):
                connection = Sparse(weights=csr_matrix(weights), **kwargs)
            else:
                connection = Dense(weights=weights, **kwargs)
            if not steps.any():
                return connection.s_in, connection.a_out
            line = DelayLine(delays=steps, frame_steps=layout.frame_steps, name=f"{kwargs['name']}.{granularity}",
                             frame_offset=source_lag + (granularity == "dendritic"))
            delay_lines.append(line)
            if granularity == "axonal":
                line.s_out.connect(connection.s_in)
                return line.s_in, connection.a_out
            connection.a_out.connect(line.s_in)
            return connection.s_in, line.s_out
        if synapse == "fast":
            kwargs.update(frame_steps=layout.frame_steps, frame_offset=source_lag, loop=loop)
        if lanes is not None:
            process = LaneDelayDense(lanes=lane_count, weights=weights, delays=delays, **kwargs)
        elif stored_sparse(weights):
            post, pre = np.nonzero(weights)
            kwargs["max_delay"] = max(int(delays[post, pre].max(initial=0)), 1)  # DelaySparse takes 0 as "unset"
            process = DelaySparse(weights=csr_matrix((weights[post, pre], (post, pre)), shape=weights.shape),
                                  delays=csr_matrix((delays[post, pre].astype(int), (post, pre)), shape=weights.shape),
                                  **kwargs)
        else:
            process = DelayDense(weights=weights, delays=delays, **kwargs)
        synapse_processes.append(process)
        return process.s_in, process.a_out

    neurons: list[FramedLIF] = []
    synapse_processes: list[DelayDense | DelaySparse] = []  # the per-synapse-delay ones
    delay_lines: list[DelayLine] = []
    previous = source.s_out
    for lag, stage in enumerate(stages, start=1):
        probe = "v" if lag == len(stages) else "spikes"
        neuron = FramedLIF(shape=(*lane_shape, stage.weights.shape[0]), frame_offset=lag, active_steps=steps,
                           name=stage.name, frame_steps=layout.frame_steps, probe=probe,
                           probe_steps=layout.run_steps, probe_block=block, **stage.neuron_kwargs)
        entry, exit_port = synapses(stage.weights, stage.delays, lag - 1, num_message_bits=message_bits,
                                       name=f"{stage.name}.synapses", **stage.synapse_kwargs)
        previous.connect(entry)
        exit_port.connect(neuron.a_in)
        if stage.recurrent is not None:
            weights, delays, kwargs = stage.recurrent
            entry, exit_port = synapses(weights, delays, lag, loop=True, name=f"{stage.name}.recurrent", **kwargs)
            neuron.s_out.connect(entry)
            exit_port.connect(neuron.a_in)
        neurons.append(neuron)
        previous = neuron.s_out
        message_bits = 0

    # Our processes are mapped per instance: class keys would make Lava's model discovery
    # import every module of the ``delaydeploy.exporters.lava`` package.
    models: dict = {neuron: FRAMED_LIF[tag] for neuron in neurons}
    models.update({line: DELAY_LINE[tag] for line in delay_lines})
    if lanes is not None:
        models.update({process: LANE_DELAY_DENSE[tag] for process in synapse_processes})
        models[source] = STREAMED_INPUT[tag]
    elif synapse == "fast":
        models[DelayDense] = FAST_DELAY_DENSE[tag]
        models[DelaySparse] = FAST_DELAY_SPARSE[tag]
    run_cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=models)
    return LavaGraph(source, payload, neurons, run_cfg, layout, block,
                     network.readout_scale if isinstance(network, FixedNetwork) else None, network.decision)


@dataclass
class RunTimes:
    """Where a run's wall time went, in seconds (filled by :func:`run_lava_graph`)."""

    compile_s: float = 0.0  # compilation and start of Lava's processes
    stepping_s: float = 0.0  # inside Lava's blocking runs: every process's steps and their synchronisation
    host_s: float = 0.0  # the host between runs: input blocks queued, probe blocks received


def run_lava_graph(graph: LavaGraph, *, progress: bool = False, on_chunk: Callable[[int], None] | None = None,
                   times: RunTimes | None = None) -> Simulation:
    """Compile and run ``graph`` once; return spikes and readout on the reference time axis.

    Lava steps in blocking chunks that fit the pipes (``PROBE_PIPE_BLOCKS`` blocks): before a
    chunk the host queues its input blocks (laned graph), after it drains the probes' blocks,
    so the host never competes with the run. ``on_chunk(steps_done)`` is called after each
    chunk; ``times``, if given, is filled in.
    """
    layout, block = graph.layout, graph.block
    streamed = isinstance(graph.source, StreamedInput)
    blocks: list[list[np.ndarray]] = [[] for _ in graph.neurons]
    times = times or RunTimes()
    done = 0
    try:
        start = time.perf_counter()
        graph.source.create_runtime(run_cfg=graph.run_cfg)
        times.compile_s += time.perf_counter() - start
        with tqdm(total=layout.run_steps, desc="lava", unit="step", disable=not progress) as bar:
            while done < layout.run_steps:
                chunk = min(block * PROBE_PIPE_BLOCKS, layout.run_steps - done)
                first, end = done // block, -(-(done + chunk) // block)  # blocks this chunk starts or completes
                start = time.perf_counter()
                if streamed:
                    for index in range(first, end):
                        graph.source.send_block(layout.input_rows(graph.payload, index * block, block))
                started = time.perf_counter()
                graph.source.run(condition=RunSteps(num_steps=chunk))
                stepped = time.perf_counter()
                for received, neuron in zip(blocks, graph.neurons):
                    received.extend(neuron.receive_probe() for _ in range(first, end))
                times.stepping_s += stepped - started
                times.host_s += time.perf_counter() - stepped + started - start
                done += chunk
                bar.update(chunk)
                if on_chunk is not None:
                    on_chunk(done)
    finally:
        graph.source.stop()
    records = [np.concatenate(received)[: layout.run_steps].reshape(layout.run_steps, layout.lanes, -1)
               for received in blocks]
    spikes = [torch.from_numpy(layout.stage_trace(data, stage).astype(np.float64))
              for stage, data in enumerate(records[:-1], 1)]
    readout = layout.stage_trace(records[-1], layout.num_stages)
    if graph.readout_scale is None:
        return Simulation(spikes, torch.from_numpy(readout), graph.decision)
    return FixedSimulation(spikes, torch.from_numpy(readout.astype(np.int64)), decision=graph.decision,
                           readout_scale=graph.readout_scale)


def simulate_lava(network: Network | FixedNetwork, x: np.ndarray, *, synapse: str = "fast",
                  lanes: int | None = DEFAULT_LANES, workers: int = 1, progress: bool = False) -> Simulation:
    """Run ``network`` on Lava's CPU simulator for input ``x`` ``[T, B, C]``.

    ``lanes`` samples run side by side in one compiled run (``None``: the chip-shaped graph, one
    sample after the other; see :func:`build_lava_graph`); ``workers`` processes each run a
    contiguous share of the samples (at least ``MIN_SAMPLES_PER_WORKER`` each), merged in order.
    Returns what :func:`delaydeploy.reference.simulate` (streaming) or
    :func:`delaydeploy.fixed_reference.simulate_fixed` return, on the same time axis: hidden
    spikes ``[T + tail, B, N]`` (float64 0/1) and the readout membrane ``[T + tail, B, C]``
    (float64; for a :class:`FixedNetwork` a ``FixedSimulation`` with the raw integer ``v`` as
    int64, whose ``prediction()`` reads it in float units).
    """
    x = np.asarray(x)
    shares = np.array_split(np.arange(x.shape[1]), max(1, min(workers, x.shape[1] // MIN_SAMPLES_PER_WORKER)))
    if len(shares) == 1:
        return run_lava_graph(build_lava_graph(network, x, synapse=synapse, lanes=lanes), progress=progress)
    parts = _run_workers(network, [x[:, share] for share in shares], synapse, lanes, progress)
    spikes = [torch.cat([part.spikes[layer] for part in parts], dim=1) for layer in range(len(parts[0].spikes))]
    readout = torch.cat([part.readout for part in parts], dim=1)
    if isinstance(network, FixedNetwork):
        return FixedSimulation(spikes, readout, decision=network.decision, readout_scale=network.readout_scale)
    return Simulation(spikes, readout, network.decision)


def _pass_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Put each line of ``stream`` on ``lines`` (in a thread: a worker's progress)."""
    for line in stream:
        lines.put(line)


def _run_workers(network: Network | FixedNetwork, shares: list[np.ndarray], synapse: str, lanes: int | None,
                 progress: bool) -> list[Simulation]:
    """Run each input share in a worker process (:mod:`delaydeploy.exporters.lava.worker`); their results in order."""
    frames = sum(-(-share.shape[1] // min(lanes or 1, share.shape[1])) for share in shares)
    finished: queue.Queue[str] = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="delaydeploy-lava-") as scratch:
        folder = Path(scratch)
        workers = []
        for index, share in enumerate(shares):
            job = folder / f"job{index}.pkl"
            job.write_bytes(pickle.dumps({"network": network, "x": share, "synapse": synapse, "lanes": lanes}))
            command = [sys.executable, "-m", "delaydeploy.exporters.lava.worker", str(job),
                       str(folder / f"result{index}.pkl")]
            with open(folder / f"stderr{index}.txt", "w") as errors:  # a file: a full pipe would stall the worker
                worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
            threading.Thread(target=_pass_lines, args=(worker.stdout, finished), daemon=True).start()
            workers.append(worker)
        with tqdm(total=frames, desc=f"lava x{len(shares)}", unit="frame", disable=not progress) as bar:
            while any(worker.poll() is None for worker in workers) or not finished.empty():
                try:
                    finished.get(timeout=0.2)
                    bar.update(1)
                except queue.Empty:
                    pass
        for index, worker in enumerate(workers):
            if worker.returncode != 0:
                last = ((folder / f"stderr{index}.txt").read_text().strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"Lava worker {index} failed (exit code {worker.returncode}): {last}")
        return [pickle.loads((folder / f"result{index}.pkl").read_bytes()) for index in range(len(shares))]
