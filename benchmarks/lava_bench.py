"""Lava speed: samples side by side (lanes) against one after the other, our synapses against Lava's.

SHD-sized float network (140-256-256-20, delays 0..24, random weights), SHD-like binary
input (100 steps of 5 % Bernoulli spikes, 36 tail steps). Sample rates are end to end (graph
build, compilation, run, data transfer); step times are the time inside Lava's blocking runs
per Lava step. Every Lava run must agree with the reference spike for spike
(and the stock and fast synapses with each other), or the benchmark fails.

Keys of :func:`run`:

* ``lava_samples_per_s`` -- the default path: :data:`BATCHED_SAMPLES` samples in one run, in
  ``lava_lanes`` lanes; ``lava_framed_samples_per_s`` -- the chip-shaped graph, one sample
  after the other (:data:`FRAMED_SAMPLES`), our synapses; ``lava_batched_over_framed``: their ratio;
* ``lava_time_split`` -- where the batched run's time goes: ``compile_s`` (compilation and
  process start), ``stepping_s`` (Lava's blocking runs), ``host_s`` (input blocks queued and
  probe blocks received between runs), ``ms_per_step`` (stepping per Lava step) and
  ``idle_ms_per_step`` (the same graph on all-zero input: the runtime's synchronisation,
  the neuron updates, probes and input, without a synaptic event);
* ``stock_ms_per_step`` and ``fast_ms_per_step`` -- milliseconds per Lava step of the
  chip-shaped graph with Lava's stock ``DelayDense`` and with ours (:data:`TIMED_SAMPLES`
  framed in one run, the fastest of :data:`REPEATS` runs: the stock model's time varied by 2x
  from run to run); ``fast_over_stock``: their ratio; ``chip_idle_ms_per_step``: the
  chip-shaped graph on all-zero input (Lava's per-step synchronisation and the neurons, which
  both synapse models pay);
* ``reference_samples_per_s`` -- the reference simulator on the batched samples.

Run: ``python -m benchmarks lava_bench`` (with the allocator settings of ``benchmarks/__main__.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from delaydeploy.exporters.lava.graph import DEFAULT_LANES, RunTimes, build_lava_graph, run_lava_graph, simulate_lava
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer
from delaydeploy.reference import Simulation, simulate

SIZES = (140, 256, 256, 20)
MAX_DELAY = 24
STEPS = 100
TIMED_SAMPLES = 3  # samples in the stock/fast step-time runs
REPEATS = 3  # step times are the fastest of this many runs: on a shared machine noise only adds time
BATCHED_SAMPLES = 512  # two frames of the default lanes
FRAMED_SAMPLES = 8


def shd_like_network(seed: int = 0) -> Network:
    """Random 140-256-256-20 network with delays 0..24 whose hidden layers fire at a few percent."""
    rng = np.random.default_rng(seed)
    layers = []
    for index, (n_in, n_out) in enumerate(zip(SIZES[:-2], SIZES[1:-1])):
        weights = rng.normal(0.02, 1.5 / np.sqrt(n_in), (n_out, n_in))
        layers.append(SpikingLayer(f"hidden{index}", weights, rng.integers(0, MAX_DELAY + 1, (n_out, n_in)),
                                   rng.normal(0.1, 0.05, n_out), LIFNeuron(tau=1.5, threshold=1.0)))
    readout = Readout("readout", rng.normal(0.0, 0.1, (SIZES[-1], SIZES[-2])),
                      rng.integers(0, MAX_DELAY + 1, (SIZES[-1], SIZES[-2])), np.zeros(SIZES[-1]), tau=1.5)
    return Network(SIZES[0], layers, readout, input_kind="binary", dt=0.01, tail_steps=36)


def shd_like_input(samples: int, seed: int = 1) -> np.ndarray:
    """``[STEPS, samples, 140]`` binary input, 5 % of entries spiking."""
    return (np.random.default_rng(seed).random((STEPS, samples, SIZES[0])) < 0.05).astype(np.float64)


def timed_run(network: Network, x: np.ndarray, synapse: str,
              lanes: int | None = None) -> tuple[float, RunTimes, Simulation]:
    """Milliseconds per Lava step of one run (stepping only), its time split, and its result."""
    times = RunTimes()
    graph = build_lava_graph(network, x, synapse=synapse, lanes=lanes)
    result = run_lava_graph(graph, times=times)
    return times.stepping_s / graph.layout.run_steps * 1e3, times, result


def samples_per_s(run: Callable[[], Simulation], samples: int) -> tuple[float, Simulation]:
    """Samples per second of one call of ``run``, which processes ``samples`` samples, and its result."""
    start = time.perf_counter()
    result = run()
    return samples / (time.perf_counter() - start), result


def check_spikes(expected: Simulation, actual: Simulation, what: str) -> None:
    """Fail the benchmark unless ``actual`` has every spike of ``expected``."""
    for index, (want, got) in enumerate(zip(expected.spikes, actual.spikes)):
        if not bool((want == got).all()):
            raise AssertionError(f"{what}: hidden layer {index} disagrees with the reference")


def run() -> dict[str, object]:
    network = shd_like_network()
    timed = shd_like_input(TIMED_SAMPLES)
    stock_ms, _, stock = min((timed_run(network, timed, "stock") for _ in range(REPEATS)), key=lambda run: run[0])
    fast_ms, _, fast = min((timed_run(network, timed, "fast") for _ in range(REPEATS)), key=lambda run: run[0])
    check_spikes(stock, fast, "fast against stock DelayDense")
    chip_idle_ms = min(timed_run(network, np.zeros_like(timed), "fast")[0] for _ in range(REPEATS))
    x = shd_like_input(BATCHED_SAMPLES, seed=2)
    reference_rate, reference = samples_per_s(lambda: simulate(network, x), BATCHED_SAMPLES)
    batched_rate, batched = samples_per_s(lambda: simulate_lava(network, x, workers=1), BATCHED_SAMPLES)
    check_spikes(reference, batched, "batched Lava")
    framed_rate, framed = samples_per_s(lambda: simulate_lava(network, x[:, :FRAMED_SAMPLES], lanes=None),
                                        FRAMED_SAMPLES)
    check_spikes(simulate(network, x[:, :FRAMED_SAMPLES]), framed, "framed Lava")
    ms_per_step, times, _ = timed_run(network, x, "fast", DEFAULT_LANES)
    idle_ms_per_step, _, _ = timed_run(network, np.zeros_like(x), "fast", DEFAULT_LANES)
    return {
        "lava_samples_per_s": batched_rate,
        "lava_framed_samples_per_s": framed_rate,
        "lava_batched_over_framed": batched_rate / framed_rate,
        "lava_lanes": min(DEFAULT_LANES, BATCHED_SAMPLES),
        "lava_time_split": {"compile_s": times.compile_s, "stepping_s": times.stepping_s, "host_s": times.host_s,
                            "ms_per_step": ms_per_step, "idle_ms_per_step": idle_ms_per_step},
        "stock_ms_per_step": stock_ms,
        "fast_ms_per_step": fast_ms,
        "fast_over_stock": stock_ms / fast_ms,
        "chip_idle_ms_per_step": chip_idle_ms,
        "reference_samples_per_s": reference_rate,
    }
