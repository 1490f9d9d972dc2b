"""Fixtures for the Lava tests: the official conformance model as IR, random float and integer networks.

Lava compiles slowly (seconds per run), so the tests keep networks small and put several
samples into one framed run wherever the point is not the framing itself.
"""

from __future__ import annotations

import exporters.lava_env  # noqa: F401  (Lava must be importable after tqdm ran)
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from delaydeploy.fixed_point import FixedLayer, FixedNetwork
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO.parent / "shared" / "conformance"


@pytest.fixture(scope="session")
def conformance_model() -> tuple[Network, np.ndarray]:
    """The official SNN-delays SHD model (140-32-32-20, delays 0..24) as IR, and its input ``x``.

    BatchNorm is folded into the synapses (``W *= scale``) and a per-neuron bias
    (``beta - mean * scale``): that bias makes neurons fire before any input reaches them, so
    the model checks the bias timing of a target.
    """
    path = CONFORMANCE / "snn_delays_shd_small.npz"
    if not path.exists():
        pytest.skip(f"{path} is not available on this machine")
    with np.load(path) as data:
        vectors = {key: data[key] for key in data.files}
    tau = float(vectors["meta/tau"])
    layers = []
    for index, (delay_key, bn) in enumerate((("delay_0", 1), ("delay_1", 5))):
        weights = vectors[f"state_disc/model.{4 * index}.weight"][:, :, 0].astype(np.float64)
        gamma, beta, mean, var = (vectors[f"state_disc/model.{bn}.{key}"].astype(np.float64)
                                  for key in ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var + 1e-5)
        layers.append(SpikingLayer(f"hidden{index}", weights * scale[:, None], vectors[delay_key], beta - mean * scale,
                                   LIFNeuron(tau=tau, threshold=1.0), official_tail=12))
    readout_weights = vectors["state_disc/model.8.weight"][:, :, 0].astype(np.float64)
    readout = Readout("readout", readout_weights, vectors["delay_2"], np.zeros(readout_weights.shape[0]), tau,
                      official_tail=12)
    network = Network(140, layers, readout, input_kind="binary", dt=0.01, tail_steps=36)
    return network, vectors["x"].astype(np.float64)


@pytest.fixture(scope="session")
def delrec_model() -> tuple[Network, np.ndarray, dict[str, np.ndarray]]:
    """The official DelRec SHD model (140-256-256(recurrent)-20) imported and lowered by the
    project's own path, its input, and the archive (official spikes and readout)."""
    import torch

    from delaydeploy.importers import import_delrec
    from delaydeploy.lowering import lower

    path = CONFORMANCE / "delrec_shd.npz"
    if not path.exists():
        pytest.skip(f"{path} is not available on this machine")
    with np.load(path) as data:
        vectors = {key: data[key] for key in data.files}
    state = {key[len("state/"):]: torch.from_numpy(np.array(value)) for key, value in vectors.items()
             if key.startswith("state/")}
    network = lower(import_delrec(state, "delrec_shd").build_model())
    return network, vectors["input"].astype(np.float64), vectors


def _random_network(rng: np.random.Generator, sizes: list[int], *, max_delay: int = 6, tau: float = 2.0,
                    reset: str = "hard", threshold_rule: str = ">=", recurrent: bool = False,
                    input_kind: str = "binary", tail_steps: int = 5) -> Network:
    """A small float network whose layers fire at moderate rates; ``recurrent`` adds DelRec-like
    recurrence (one delay per presynaptic neuron) to every hidden layer."""
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        extra = {}
        if recurrent:
            extra = dict(recurrent_weights=rng.normal(0.0, 0.6, (n_out, n_out)),
                         recurrent_delays=np.tile(rng.integers(0, 4, n_out), (n_out, 1)))
        layers.append(SpikingLayer(f"hidden{index}", rng.normal(0.25, 0.7, (n_out, n_in)),
                                   rng.integers(0, max_delay + 1, (n_out, n_in)), rng.normal(0.1, 0.2, n_out),
                                   LIFNeuron(tau=tau, threshold=1.0, reset=reset, threshold_rule=threshold_rule),
                                   **extra))
    n_in, n_out = sizes[-2:]
    readout = Readout("readout", rng.normal(0.0, 0.5, (n_out, n_in)), rng.integers(0, max_delay + 1, (n_out, n_in)),
                      rng.normal(0.0, 0.1, n_out), tau=3.0)
    return Network(sizes[0], layers, readout, input_kind=input_kind, tail_steps=tail_steps)


def _random_fixed_network(rng: np.random.Generator, sizes: list[int], *, weight_exp: int = 0, reset: str = "hard",
                          recurrent: bool = False, input_kind: str = "binary", input_scale: float = 1.0,
                          tail_steps: int = 5) -> FixedNetwork:
    """A small Loihi 2 integer network drawn directly in integers (mixed-sign weights, odd ones
    included, which Lava floors to even; delays 0..7, 12-bit decays, biases as mantissa << exponent)."""

    def weights(shape: tuple[int, int], low: int, high: int) -> np.ndarray:
        return rng.integers(low, high + 1, shape)

    gain = 2 ** max(0, -weight_exp)  # keep activations at the same scale for negative exponents
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        extra = {}
        if recurrent:
            extra = dict(recurrent_weights=weights((n_out, n_out), -120, 120),
                         recurrent_delays=np.tile(rng.integers(0, 4, n_out), (n_out, 1)), recurrent_weight_exp=weight_exp)
        layers.append(FixedLayer(f"hidden{index}", weights((n_out, n_in), -60, 120), weight_exp,
                                 rng.integers(0, 8, (n_out, n_in)), rng.integers(-300, 600, n_out),
                                 rng.integers(0, 3, n_out), du=4095, dv=int(rng.integers(200, 3000)),
                                 vth=int(rng.integers(150, 400)) // gain, reset=reset, **extra))
    n_in, n_out = sizes[-2:]
    readout = FixedLayer("readout", weights((n_out, n_in), -100, 100), weight_exp, rng.integers(0, 8, (n_out, n_in)),
                         rng.integers(-100, 100, n_out), np.zeros(n_out, dtype=np.int64), du=4095,
                         dv=int(rng.integers(200, 3000)), vth=131071)
    return FixedNetwork(sizes[0], layers, readout, input_kind=input_kind, input_scale=input_scale,
                        tail_steps=tail_steps)


@pytest.fixture
def random_network() -> Callable[..., Network]:
    """``random_network(seed, sizes, **options)``: see :func:`_random_network`."""
    return lambda seed, sizes, **options: _random_network(np.random.default_rng(seed), sizes, **options)


@pytest.fixture
def random_fixed_network() -> Callable[..., FixedNetwork]:
    """``random_fixed_network(seed, sizes, **options)``: see :func:`_random_fixed_network`."""
    return lambda seed, sizes, **options: _random_fixed_network(np.random.default_rng(seed), sizes, **options)


@pytest.fixture
def spikes_input() -> Callable[..., np.ndarray]:
    """``spikes_input(seed, steps, batch, channels, rate=0.3)``: Bernoulli spikes ``[steps, batch, channels]``."""

    def draw(seed: int, steps: int, batch: int, channels: int, rate: float = 0.3) -> np.ndarray:
        return (np.random.default_rng(seed).random((steps, batch, channels)) < rate).astype(np.float64)

    return draw
