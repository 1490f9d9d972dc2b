"""Fixtures for the Lava tests: the official conformance models as IR, random integer networks and inputs
(random float networks: :func:`helpers.moderate_network`).

Lava compiles slowly (seconds per run), so the tests keep networks small and put several
samples into one framed run wherever the point is not the framing itself.
"""

from __future__ import annotations

import delaydeploy.exporters.lava.env  # noqa: F401  (first: Lava must be importable after tqdm ran)

# isort: split
from collections.abc import Callable

import numpy as np
import pytest
from data_fixtures import (  # noqa: F401  (fixtures, hook)
    delrec_vectors,
    fsdd_dir,
    pytest_collection_modifyitems,
    pytest_ignore_collect,
    snn_delays_vectors,
    state_dict_from,
)
from helpers import CONFORMANCE, require_file
from nir_fixtures import shd_small

from delaydeploy.fixed_point import FixedLayer, FixedNetwork
from delaydeploy.ir import Network


@pytest.fixture(scope="session")
def conformance_model() -> tuple[Network, np.ndarray]:
    """The official SNN-delays SHD model (140-32-32-20, delays 0..24) as IR (built by
    :func:`nir_fixtures.shd_small`), and its input ``x``.

    BatchNorm is folded into the synapses (``W *= scale``) and a per-neuron bias
    (``beta - mean * scale``): that bias makes neurons fire before any input reaches them, so
    the model checks the bias timing of a target.
    """
    network, x, _ = shd_small()
    return network, x


@pytest.fixture(scope="session")
def delrec_model() -> tuple[Network, np.ndarray, dict[str, np.ndarray]]:
    """The official DelRec SHD model (140-256-256(recurrent)-20) imported and lowered by the
    project's own path, its input, and the archive (official spikes and readout)."""
    import torch

    from delaydeploy.importers import import_delrec
    from delaydeploy.lowering import lower

    with np.load(require_file(CONFORMANCE / "delrec_shd.npz")) as data:
        vectors = {key: data[key] for key in data.files}
    state = {key[len("state/"):]: torch.from_numpy(np.array(value)) for key, value in vectors.items()
             if key.startswith("state/")}
    network = lower(import_delrec(state, "delrec_shd").build_model())
    return network, vectors["input"].astype(np.float64), vectors


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
                         recurrent_delays=np.tile(rng.integers(0, 4, n_out), (n_out, 1)),
                         recurrent_weight_exp=weight_exp)
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
def random_fixed_network() -> Callable[..., FixedNetwork]:
    """``random_fixed_network(seed, sizes, **options)``: see :func:`_random_fixed_network`."""
    return lambda seed, sizes, **options: _random_fixed_network(np.random.default_rng(seed), sizes, **options)


@pytest.fixture
def spikes_input() -> Callable[..., np.ndarray]:
    """``spikes_input(seed, steps, batch, channels, rate=0.3)``: Bernoulli spikes ``[steps, batch, channels]``."""

    def draw(seed: int, steps: int, batch: int, channels: int, rate: float = 0.3) -> np.ndarray:
        return (np.random.default_rng(seed).random((steps, batch, channels)) < rate).astype(np.float64)

    return draw
