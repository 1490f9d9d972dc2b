#!/usr/bin/env python3
"""Run an exported delay network on NEST or SpiNNaker (through PyNN), or on Brian 2.

Written into the bundle by ``delaydeploy export --target pynn``. It needs only numpy and the
simulator: PyNN with NEST (``pip install nest-simulator pynn``) or sPyNNaker, or Brian 2
(``pip install brian2``)::

    python run.py --simulator nest --input X.npy --output out.npz
    python run.py --simulator brian2 --input X.npy --output out.npz

The network comes from ``pynn_model.json`` and ``pynn_connections.npz`` beside this script,
or from the folder given with ``--network``.

``X.npy`` holds input spikes ``[T, B, C]`` (time steps, samples, channels): 0/1, or spike
counts where the network takes counts. ``out.npz`` holds, on the time axis of delaydeploy's
reference simulator (``T + tail`` steps per sample)::

    spikes_<l>  [T + tail, B, N_l]      spikes of hidden layer l (0 or 1)
    readout     [T + tail, B, classes]  membrane of the non-spiking readout

Compare them with ``test_vectors.npz`` in this folder (its ``inputs`` make a good ``X.npy``).

The network, as it is built below:

* Every layer is a population of ``IF_curr_delta`` neurons. An arriving spike adds its
  weight to the membrane at once; per time step the membrane decays by ``exp(-dt / tau_m)``;
  a neuron fires when ``v >= v_thresh`` and resets to 0, with no refractory time. The readout
  is the same neuron with a threshold it never reaches; its membrane is the output.
* ``pynn_connections.npz`` lists every synapse as ``pre, post, weight, delay`` (delay in
  time steps). A simulator needs at least one step between a spike and its effect, so a
  synapse of delay ``D`` is made with ``D + 1`` steps; each stage therefore runs one step
  behind the one before it, and the read-out below takes that lag off again.
  Positive weights go to the ``excitatory`` receptor, negative ones to the ``inhibitory``
  receptor (PyNN's sign convention for current synapses; SpiNNaker stores their size).
* The bias of a neuron arrives as spikes of weight ``bias`` from a ``clock`` source that
  fires at every step of the sample, delayed by the stage's lag.
* Spike counts above 1 are sent as planes of spike sources: plane ``k`` fires where the
  count exceeds ``k``, and every plane has the input synapses.
* Samples run one after another in one simulation, each in a frame of its own. After a
  sample, the spiking layers are silenced (threshold out of reach) until every spike still
  travelling has arrived; then every membrane is set to 0, so each sample computes exactly
  what it computes alone.
* NEST gets two shortcuts, both exact: the synapse lists go to ``nest.Connect`` in one call
  each, with the weights as listed (PyNN connects neuron by neuron, about a second per
  hundred thousand synapses, and its unit conversion ``w * 1000 * 1e-3`` moves some weights
  by one unit in the last place); and thresholds and membranes are set by one kernel call
  per population (NEST's ``NodeCollection.set`` first reads every neuron's whole status,
  some 20 microseconds a neuron, twice per sample).

Brian 2 builds the same network from the same files with Brian 2's own objects, not through
PyNN's ``pyNN.brian2``, which cannot compute it exactly: its ``IF_curr_delta`` fires on ``v >
v_thresh`` (not ``>=``), keeps the membrane in volts so that every weight is multiplied by
1e-3, and leaves the decay to the ODE solver. Here, in each time step of Brian's schedule:

1. ``groups``: every neuron computes ``v = decay * v + current`` with the network's own
   decay per step (``decay_per_step``; no ``tau_m`` is involved) and clears ``current``;
2. ``thresholds``: a neuron fires when ``v >= v_thresh``;
3. ``synapses``: spikes are sent, and every spike due now adds its weight to ``current``;
4. ``resets``: a neuron that fired is set to 0.

A spike of step ``n`` through a synapse of delay ``D`` therefore reaches the membrane at step
``n + D + 1``: the timing of NEST's ``D + 1`` steps, so the frames below are the same. The
samples run in one call: each neuron's threshold test and update read the step within the
frame, so a layer is silent after its sample and every membrane is 0 at a frame's first step.
Brian's compiled targets build with ``-ffast-math`` by default, which lets the compiler fuse or
reorder the update; ``--codegen cython`` therefore compiles with IEEE arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIMULATORS = ("nest", "spiNNaker", "brian2")
CODEGEN_TARGETS = ("numpy", "cython")  # Brian 2's: numpy needs no compiler; cython compiles once per network layout
# Brian's default compiler flags add -ffast-math and -march=native; these keep each operation IEEE-rounded
IEEE_COMPILE_ARGS = ["-w", "-O3", "-ffp-contract=off", "-std=c++11"]
INPUT_OFFSET = 2  # input row t is sent at step t + 2: a spike source cannot fire before min_delay
NEVER = {"nest": 1e300, "spiNNaker": 32767.0}  # a threshold no membrane reaches (SpiNNaker: s16.15)


def load_network(folder: Path = HERE) -> tuple[dict, dict[str, np.ndarray]]:
    """The populations (``pynn_model.json``) and the synapses (``pynn_connections.npz``)."""
    model = json.loads((folder / "pynn_model.json").read_text())
    with np.load(folder / "pynn_connections.npz", allow_pickle=False) as data:
        connections = {key: data[key] for key in data.files}
    return model, connections


def import_simulator(name: str):
    """``pyNN.nest`` or ``pyNN.spiNNaker``."""
    # NEST 3.10 warns that PyNN 0.13 uses its deprecated calls, and PyNN that it builds no extensions
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(nest|pyNN)\.")
    if name == "nest":
        os.environ.setdefault("PYNEST_QUIET", "1")
        import pyNN.nest as sim

        # PyNN 0.13 gives NEST's IF_curr_delta no name for its membrane: record "v" as "V_m"
        if not hasattr(sim.IF_curr_delta, "variable_map"):
            sim.IF_curr_delta.variable_map = {"v": "V_m"}
            sim.IF_curr_delta.scale_factors = {"v": 1}
        return sim
    if name == "spiNNaker":
        import pyNN.spiNNaker as sim

        return sim
    raise ValueError(f"simulator {name!r}: PyNN runs nest or spiNNaker here")


class Frames:
    """Where sample ``b`` and its stages sit on the simulator's time axis (in steps).

    Sample ``b`` starts at step ``b * length``; its input row ``t`` is sent at ``t + INPUT_OFFSET``
    and stage ``l`` (0-based, the readout last) computes the reference's step ``u`` at
    ``u + INPUT_OFFSET + 1 + l``. ``drain`` steps after the readout's last step end the frame.
    """

    def __init__(self, steps: int, stages: int, drain: int):
        self.steps = steps  # reference steps per sample: T + tail
        self.end = INPUT_OFFSET + stages + steps  # first step after the readout's last one
        self.length = self.end + drain

    def stage_steps(self, sample: int, stage: int) -> np.ndarray:
        """Simulator steps of the reference's steps ``0 .. steps-1`` of ``stage`` in ``sample``."""
        return sample * self.length + INPUT_OFFSET + 1 + stage + np.arange(self.steps)


def input_spike_times(x: np.ndarray, frames: Frames, dt: float) -> list[np.ndarray]:
    """Spike times (ms) of each input source: plane ``k`` of channel ``c`` is source ``k * C + c``."""
    steps_in, samples, channels = x.shape
    planes = max(int(x.max(initial=0)), 1)
    offsets = np.arange(samples) * frames.length + INPUT_OFFSET
    times = []
    for plane in range(planes):
        for channel in range(channels):
            rows, sample = np.nonzero(x[:, :, channel] > plane)
            times.append(np.sort(offsets[sample] + rows) * dt)
    return times


def synapses(connections: dict[str, np.ndarray], stage: str, kind: str) -> dict[str, np.ndarray] | None:
    """Stage ``stage``'s ``input``, ``bias`` or ``recurrent`` synapses, or None if it has none of that kind."""
    if f"{stage}/{kind}/pre" not in connections:
        return None
    return {key: connections[f"{stage}/{kind}/{key}"] for key in ("pre", "post", "weight", "delay")}


def connect(sim, simulator: str, pre, post, table: dict[str, np.ndarray] | None, dt: float,
            source_offset: int = 0) -> None:
    """Make the synapses of ``table`` from population ``pre`` (its neuron ``source_offset + i``) to ``post``."""
    assert table is not None  # the network holds every stage's input and bias synapses, and the recurrent it names
    sources, targets, weights = table["pre"] + source_offset, table["post"], table["weight"]
    delays = (table["delay"] + 1) * dt
    if len(sources) == 0:
        return
    if simulator == "nest":
        import nest

        nest.Connect(np.asarray(pre.node_collection.tolist())[sources],
                     np.asarray(post.node_collection.tolist())[targets], "one_to_one",
                     {"synapse_model": "static_synapse", "weight": weights, "delay": delays})
        return
    for receptor, chosen in (("excitatory", weights > 0), ("inhibitory", weights < 0)):
        if chosen.any():
            rows = np.column_stack([sources[chosen], targets[chosen], weights[chosen], delays[chosen]])
            sim.Projection(pre, post, sim.FromListConnector(rows, column_names=["weight", "delay"]),
                           sim.StaticSynapse(), receptor_type=receptor)


def setup(sim, simulator: str, model: dict, x: np.ndarray, threads: int = 1) -> Frames:
    """Start a simulation on the network's time step; returns the frames of the samples of ``x``."""
    dt = model["time_step_ms"]
    if simulator == "nest":  # delays on the time grid, from one step up
        sim.setup(timestep=dt, min_delay=dt, max_delay=(model["max_delay_steps"] + 1) * dt,
                  spike_precision="on_grid", threads=threads)
    else:
        sim.setup(timestep=dt)
    return Frames(x.shape[0] + model["tail_steps"], len(model["stages"]), model["drain_steps"])


def build(sim, simulator: str, model: dict, connections: dict[str, np.ndarray], x: np.ndarray, frames: Frames):
    """Create the populations and projections; returns ``(spiking layers, readout)``."""
    dt = model["time_step_ms"]
    channels = model["input"]["channels"]
    planes = max(int(x.max(initial=0)), 1)
    clock_times = (np.arange(x.shape[1])[:, None] * frames.length + INPUT_OFFSET
                   + np.arange(frames.steps)[None, :]).ravel() * dt
    inputs = sim.Population(planes * channels, sim.SpikeSourceArray(spike_times=input_spike_times(x, frames, dt)),
                            label="input")
    clock = sim.Population(1, sim.SpikeSourceArray(spike_times=[clock_times]), label="clock")
    populations: list = []  # PyNN populations, the readout last
    for stage in model["stages"]:
        extra = {}
        if simulator == "spiNNaker":  # fixes the weights' fixed-point grid (see pynn_model.json)
            extra["additional_parameters"] = {"max_expected_summed_weight": stage["spinnaker_max_summed_weight"]}
        neurons = sim.Population(stage["size"], sim.IF_curr_delta(
            tau_m=stage["tau_m_ms"], cm=stage["cm_nF"], v_rest=0.0, v_reset=0.0, tau_refrac=0.0, i_offset=0.0,
            v_thresh=stage["v_thresh"] if stage["spiking"] else NEVER[simulator]), label=stage["name"], **extra)
        neurons.initialize(v=0.0)
        name = stage["name"]
        if populations:
            connect(sim, simulator, populations[-1], neurons, synapses(connections, name, "input"), dt)
        else:  # every input plane carries the input synapses
            for plane in range(planes):
                connect(sim, simulator, inputs, neurons, synapses(connections, name, "input"), dt, plane * channels)
        connect(sim, simulator, clock, neurons, synapses(connections, name, "bias"), dt)
        if stage.get("recurrent"):
            connect(sim, simulator, neurons, neurons, synapses(connections, name, "recurrent"), dt)
        neurons.record("spikes" if stage["spiking"] else "v")
        populations.append(neurons)
    return populations[:-1], populations[-1]


def set_state(simulator: str, population, **values: float) -> None:
    """Set ``values`` (PyNN names: ``v_thresh``, ``v``) on every neuron of ``population`` now."""
    if simulator == "nest":
        names = {"v_thresh": "V_th", "v": "V_m"}
        native = {names[key]: float(value) for key, value in values.items()}
        try:  # the kernel call that NodeCollection.set makes after reading every neuron's status
            from nest.lib.hl_api_types import nestkernel

            nestkernel.llapi_set_nc_status(population.node_collection._datum, [native])
        except (ImportError, AttributeError):  # another NEST version: the public call
            population.node_collection.set(native)
        return
    if "v_thresh" in values:
        population.set(v_thresh=values["v_thresh"])
    if "v" in values:
        population.initialize(v=values["v"])


def run_samples(sim, simulator: str, model: dict, layers, readout, frames: Frames, samples: int) -> None:
    """Run the samples one after another, silencing and clearing the network between them."""
    dt = model["time_step_ms"]
    for sample in range(samples):
        start = sample * frames.length
        sim.run_until((start + frames.end) * dt)
        for layer in layers:
            set_state(simulator, layer, v_thresh=NEVER[simulator])
        sim.run_until((start + frames.length - 1) * dt)
        for layer, stage in zip(layers, model["stages"]):
            set_state(simulator, layer, v_thresh=stage["v_thresh"], v=0.0)
        set_state(simulator, readout, v=0.0)
    sim.run_until(samples * frames.length * dt)


def spike_array(layer, stage: int, frames: Frames, samples: int, dt: float) -> np.ndarray:
    """The spikes PyNN recorded from ``layer`` as ``[steps, samples, N]`` on the reference's axis."""
    trains = layer.get_data("spikes").segments[0].spiketrains
    neuron = np.concatenate([np.full(len(train), index) for index, train in enumerate(trains)])
    step = np.rint(np.concatenate([train.magnitude for train in trains]) / dt).astype(np.int64)
    return events_to_array(neuron, step, layer.size, stage, frames, samples)


def events_to_array(neuron: np.ndarray, step: np.ndarray, size: int, stage: int, frames: Frames,
                    samples: int) -> np.ndarray:
    """Spikes of ``stage`` given as (neuron, simulator step) pairs, as ``[steps, samples, size]``."""
    sample, offset = np.divmod(step, frames.length)
    u = offset - frames.stage_steps(0, stage)[0]
    keep = (u >= 0) & (u < frames.steps) & (sample < samples)
    spikes = np.zeros((frames.steps, samples, size))
    spikes[u[keep], sample[keep], neuron[keep]] = 1.0
    return spikes


def membrane_array(readout, stage: int, frames: Frames, samples: int, dt: float) -> np.ndarray:
    """The recorded readout membrane as ``[steps, samples, classes]`` on the reference's axis."""
    signal = readout.get_data("v").segments[0].analogsignals[0]
    rows = np.rint(signal.times.magnitude / dt).astype(np.int64)
    by_step = np.full((samples * frames.length + 1, readout.size), np.nan)
    inside = rows < len(by_step)
    by_step[rows[inside]] = np.asarray(signal.magnitude)[inside]
    steps = np.stack([frames.stage_steps(sample, stage) for sample in range(samples)], axis=1)
    return by_step[steps]


BRIAN2_NEURON = """
v : 1                    # membrane
current : 1              # the weights that arrived since the last update
decay : 1 (constant)     # per time step
v_thresh : 1 (constant)
"""
FRAME_STEP = "(timestep(t, dt) % frame_length)"  # the step within the sample's frame


def brian2_network(b2, model: dict, connections: dict[str, np.ndarray], x: np.ndarray, frames: Frames):
    """The network as Brian 2 objects; returns ``(network, spike monitors of the layers, readout monitor)``."""
    dt = model["time_step_ms"] * b2.ms
    samples, channels = x.shape[1], model["input"]["channels"]
    frame = {"frame_length": frames.length, "silent_from": frames.end}
    times = input_spike_times(x, frames, model["time_step_ms"])
    inputs = b2.SpikeGeneratorGroup(len(times), np.concatenate([np.full(len(t), k) for k, t in enumerate(times)]),
                                    np.concatenate(times) * b2.ms, dt=dt, name="input")
    clock_steps = (np.arange(samples)[:, None] * frames.length + INPUT_OFFSET + np.arange(frames.steps)).ravel()
    clock = b2.SpikeGeneratorGroup(1, np.zeros(len(clock_steps), dtype=np.int64), clock_steps * dt, dt=dt, name="clock")
    objects: list = [inputs, clock]
    populations: list = []  # the readout last

    def connect(pre, post, name: str, table: dict[str, np.ndarray] | None, source_offset: int = 0) -> None:
        assert table is not None  # the network holds every stage's input and bias synapses, and the recurrent it names
        if len(table["pre"]) == 0:
            return
        synapses = b2.Synapses(pre, post, "weight : 1", on_pre="current_post += weight", dt=dt, name=name)
        synapses.connect(i=table["pre"] + source_offset, j=table["post"])
        synapses.weight = table["weight"]
        synapses.delay = table["delay"] * dt
        objects.append(synapses)

    for index, stage in enumerate(model["stages"]):
        name = f"stage{index}"  # Brian names must be identifiers; the JSON's may not be
        spiking = stage["spiking"]
        neurons = b2.NeuronGroup(
            stage["size"], BRIAN2_NEURON, dt=dt, namespace=frame, name=name,
            threshold=f"v >= v_thresh and {FRAME_STEP} < silent_from" if spiking else None,
            reset="v = 0" if spiking else None)
        neurons.decay = stage["decay_per_step"]
        neurons.v_thresh = stage["v_thresh"] if spiking else 0.0
        neurons.run_regularly(f"v = (v * decay + current) * int({FRAME_STEP} != 0)\ncurrent = 0", when="groups",
                              name=f"{name}_update")
        objects.append(neurons)
        if populations:
            connect(populations[-1], neurons, f"{name}_input", synapses(connections, stage["name"], "input"))
        else:  # every input plane carries the input synapses
            for plane in range(max(int(x.max(initial=0)), 1)):
                connect(inputs, neurons, f"{name}_input{plane}", synapses(connections, stage["name"], "input"),
                        plane * channels)
        connect(clock, neurons, f"{name}_bias", synapses(connections, stage["name"], "bias"))
        if stage.get("recurrent"):
            connect(neurons, neurons, f"{name}_recurrent", synapses(connections, stage["name"], "recurrent"))
        populations.append(neurons)
    spikes = [b2.SpikeMonitor(layer, name=f"{layer.name}_spikes") for layer in populations[:-1]]
    membrane = b2.StateMonitor(populations[-1], "v", record=True, when="end", name="readout_v")
    return b2.Network(*objects, *spikes, membrane), spikes, membrane


def brian2_setup(b2, model: dict, x: np.ndarray, codegen: str) -> Frames:
    """Choose Brian 2's code generation target (compiled with IEEE arithmetic); returns the frames of ``x``."""
    if codegen not in CODEGEN_TARGETS:
        raise ValueError(f"codegen {codegen!r}: choose one of {CODEGEN_TARGETS}")
    b2.prefs.codegen.target = codegen
    b2.prefs.codegen.cpp.extra_compile_args_gcc = IEEE_COMPILE_ARGS
    return Frames(x.shape[0] + model["tail_steps"], len(model["stages"]), model["drain_steps"])


def simulate_brian2(model: dict, connections: dict[str, np.ndarray], x: np.ndarray,
                    codegen: str = "numpy") -> dict[str, np.ndarray]:
    """Every sample of ``x`` on Brian 2 in one run (see the module's docstring for a step)."""
    import brian2 as b2

    frames = brian2_setup(b2, model, x, codegen)
    network, layers, readout = brian2_network(b2, model, connections, x, frames)
    network.run(x.shape[1] * frames.length * model["time_step_ms"] * b2.ms, namespace={})
    return brian2_results(model, layers, readout, frames, x.shape[1])


def brian2_results(model: dict, layers, readout, frames: Frames, samples: int) -> dict[str, np.ndarray]:
    """The monitors' records on the reference's axis, read in bulk."""
    dt_s = model["time_step_ms"] * 1e-3
    result = {}
    for index, monitor in enumerate(layers):
        steps = np.rint(monitor.t_[:] / dt_s).astype(np.int64)
        result[f"spikes_{index}"] = events_to_array(np.asarray(monitor.i[:]), steps, monitor.source.N, index,
                                                    frames, samples)
    steps = np.stack([frames.stage_steps(sample, len(layers)) for sample in range(samples)], axis=1)
    result["readout"] = np.asarray(readout.v_[:]).T[steps]  # the monitor records every step from 0
    return result


def check_input(model: dict, x: np.ndarray) -> np.ndarray:
    """``x`` if it is input ``[T, B, C]`` of the network's kind (0/1 spikes, or counts)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != model["input"]["channels"]:
        raise ValueError(f"input has shape {x.shape}; expected [T, B, {model['input']['channels']}]")
    if np.any(x < 0) or np.any(x != np.rint(x)) or (model["input"]["kind"] == "binary" and np.any(x > 1)):
        raise ValueError(f"input must hold {'0/1 spikes' if model['input']['kind'] == 'binary' else 'spike counts'}")
    return x


def simulate(model: dict, connections: dict[str, np.ndarray], x: np.ndarray, simulator: str = "nest",
             threads: int = 1, codegen: str = "numpy") -> dict[str, np.ndarray]:
    """Run every sample of ``x`` ``[T, B, C]``; returns ``spikes_<l>`` and ``readout`` (see module)."""
    x = check_input(model, x)
    if simulator == "brian2":
        return simulate_brian2(model, connections, x, codegen)
    sim = import_simulator(simulator)
    dt = model["time_step_ms"]
    frames = setup(sim, simulator, model, x, threads)
    layers, readout = build(sim, simulator, model, connections, x, frames)
    run_samples(sim, simulator, model, layers, readout, frames, x.shape[1])
    result = {f"spikes_{index}": spike_array(layer, index, frames, x.shape[1], dt)
              for index, layer in enumerate(layers)}
    result["readout"] = membrane_array(readout, len(layers), frames, x.shape[1], dt)
    sim.end()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", choices=SIMULATORS, default="nest")
    parser.add_argument("--input", required=True, help="input spikes .npy, [T, B, C]")
    parser.add_argument("--output", required=True, help="where to write spikes_<l> and readout (.npz)")
    parser.add_argument("--threads", type=int, default=1, help="NEST threads")
    parser.add_argument("--codegen", choices=CODEGEN_TARGETS, default="numpy",
                        help="Brian 2's code generation target (default: numpy, which compiles nothing)")
    parser.add_argument("--network", type=Path, default=HERE,
                        help="folder of pynn_model.json and pynn_connections.npz (default: this script's)")
    args = parser.parse_args()
    model, connections = load_network(args.network)
    result = simulate(model, connections, np.load(args.input), args.simulator, args.threads, args.codegen)
    np.savez(args.output, **result)
    print(f"wrote {args.output}: " + ", ".join(f"{key} {value.shape}" for key, value in result.items()))


if __name__ == "__main__":
    main()
