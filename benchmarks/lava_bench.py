"""Lava speed: our fast DelayDense models against Lava's stock ones, and framed throughput.

SHD-sized float network (140-256-256-20, delays 0..24, random weights), SHD-like binary
input (100 steps of 5 % Bernoulli spikes, 36 tail steps). Step times are taken from the end
of the first chunk of steps (which includes compilation and process start-up) to the end of
one run; sample rates are end to end (graph build, compilation, run, data transfer). The
stock and fast runs must agree spike for spike, or the benchmark fails.

Keys of :func:`run`: ``stock_ms_per_step`` and ``fast_ms_per_step`` (milliseconds per Lava
step with Lava's stock ``DelayDense`` and with ours, :data:`TIMED_SAMPLES` framed in one run),
``lava_samples_per_s`` (our models, :data:`THROUGHPUT_SAMPLES`) and ``reference_samples_per_s`` (the
reference simulator on the same samples).

Run: ``python -m benchmarks lava_bench`` (with the allocator settings of ``benchmarks/__main__.py``).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer
from delaydeploy.reference import Simulation, simulate
from exporters.lava.graph import build_lava_graph, run_lava_graph, simulate_lava

SIZES = (140, 256, 256, 20)
MAX_DELAY = 24
STEPS = 100
TIMED_SAMPLES = 3  # samples in the stock/fast step-time runs
THROUGHPUT_SAMPLES = 8


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


def timed_run(network: Network, x: np.ndarray, synapse: str) -> tuple[float, Simulation]:
    """Milliseconds per Lava step of one framed run (after its first chunk), and its result."""
    marks: list[tuple[int, float]] = []
    result = run_lava_graph(build_lava_graph(network, x, synapse=synapse),
                            on_chunk=lambda done: marks.append((done, time.perf_counter())))
    (first_steps, first_time), (last_steps, last_time) = marks[0], marks[-1]
    return (last_time - first_time) / (last_steps - first_steps) * 1e3, result


def samples_per_s(run: Callable[[], object], samples: int) -> float:
    """Samples per second of one call of ``run``, which processes ``samples`` samples."""
    start = time.perf_counter()
    run()
    return samples / (time.perf_counter() - start)


def run() -> dict[str, float]:
    network = shd_like_network()
    timed = shd_like_input(TIMED_SAMPLES)
    stock_ms, stock = timed_run(network, timed, "stock")
    fast_ms, fast = timed_run(network, timed, "fast")
    for layer, stock_spikes, fast_spikes in zip(network.layers, stock.spikes, fast.spikes):
        if not bool((stock_spikes == fast_spikes).all()):
            raise AssertionError(f"{layer.name}: fast and stock DelayDense models disagree")
    x = shd_like_input(THROUGHPUT_SAMPLES, seed=2)
    return {
        "stock_ms_per_step": stock_ms,
        "fast_ms_per_step": fast_ms,
        "lava_samples_per_s": samples_per_s(lambda: simulate_lava(network, x), THROUGHPUT_SAMPLES),
        "reference_samples_per_s": samples_per_s(lambda: simulate(network, x), THROUGHPUT_SAMPLES),
    }
