"""Networks for the NIR tests: the two conformance models built by hand, and random networks.

Self-contained on purpose (no project importer): the IR is assembled from the published
state dicts exactly as the conformance README describes.
"""

from __future__ import annotations

import nir
import numpy as np
from helpers import CONFORMANCE, require_file
from hypothesis import strategies as st

from delaydeploy.exporters.nir import EULER_DT
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer

SHD_SMALL = CONFORMANCE / "snn_delays_shd_small.npz"
DELREC = CONFORMANCE / "delrec_shd.npz"
BN_EPS = 1e-5


def _bn_scale(state: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scale, beta, mean)`` of a BatchNorm1d in eval mode."""
    gamma, beta = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
    mean, var = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
    return gamma / np.sqrt(var + BN_EPS), beta, mean


def shd_small() -> tuple[Network, np.ndarray, np.lib.npyio.NpzFile]:
    """The SNN-delays conformance model (rounded delays, BatchNorm folded), its input and the archive."""
    data = np.load(require_file(SHD_SMALL))
    prefix = "state_disc/"
    state = {key[len(prefix):]: data[key].astype(np.float64) for key in data.files if key.startswith(prefix)}
    tau = float(data["meta/tau"])
    layers = []
    for index, (synapses, norm) in enumerate([(0, 1), (4, 5)]):
        scale, beta, mean = _bn_scale(state, f"model.{norm}")
        weights = state[f"model.{synapses}.weight"][:, :, 0] * scale[:, None]
        layers.append(
            SpikingLayer(f"hidden{index}", weights, data[f"delay_{index}"], beta - mean * scale,
                         LIFNeuron(tau=tau, threshold=1.0), official_tail=12)
        )
    readout = Readout("readout", state["model.8.weight"][:, :, 0], data["delay_2"], np.zeros(20), tau, official_tail=12)
    network = Network(140, layers, readout, input_kind="binary", dt=0.01, tail_steps=36)
    return network, data["x"].astype(np.float64), data


def delrec() -> tuple[Network, np.ndarray, np.lib.npyio.NpzFile]:
    """The DelRec conformance model (recurrent delays per presynaptic neuron), its input and the archive."""
    data = np.load(require_file(DELREC))
    state = {key[len("state/"):]: data[key] for key in data.files if key.startswith("state/")}
    tau = 1.05
    layers = []
    for index, (linear, norm) in enumerate([(0, 1), (5, 6)]):
        scale, beta, mean = _bn_scale(state, f"layers.{norm}")
        weights = state[f"layers.{linear}.weight"] * scale[:, None]
        bias = (state[f"layers.{linear}.bias"] - mean) * scale + beta
        recurrent = {}
        if index == 1:
            size = weights.shape[0]
            recurrent = dict(
                recurrent_weights=state["layers.7.recurrent_weights"],
                recurrent_delays=np.broadcast_to(data["rounded_recurrent_delays_0"], (size, size)),
            )
        layers.append(SpikingLayer(f"hidden{index}", weights, np.zeros(weights.shape, np.int64), bias,
                                   LIFNeuron(tau=tau, threshold=1.0), **recurrent))
    readout = Readout("readout", state["layers.10.weight"], np.zeros((20, 256), np.int64), state["layers.10.bias"], tau)
    network = Network(140, layers, readout, input_kind="binary", dt=0.01, tail_steps=0)
    return network, data["input"], data


@st.composite
def random_networks(
    draw: st.DrawFn, max_delay: int = 62, distinct_delays: int | None = None
) -> tuple[Network, np.ndarray]:
    """A random IR network and an input for it.

    Hypothesis draws the structure (sizes, delay values, recurrence, neuron rules, input
    kind); the float values come from a seeded generator, so that no membrane lands exactly
    on a threshold (ties would compare float rounding, not semantics). ``distinct_delays``
    caps the number of distinct delay values per network (each is one NIR branch).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = draw(st.lists(st.integers(1, 12), min_size=2, max_size=4))  # input, 1-3 hidden
    classes = draw(st.integers(1, 6))
    if distinct_delays is None:
        delay_cap = draw(st.sampled_from([0, 3, max_delay]))
        values = np.arange(delay_cap + 1)
    else:
        values = np.array(sorted(draw(st.sets(st.integers(0, max_delay), min_size=1, max_size=distinct_delays))))
        delay_cap = int(values.max())
    input_kind = draw(st.sampled_from(["binary", "counts", "analog"]))

    def synapses(out: int, inp: int) -> tuple[np.ndarray, np.ndarray]:
        weights = rng.normal(0.4, 1.5, (out, inp)) / np.sqrt(inp)
        return weights, rng.choice(values, (out, inp))

    layers = []
    for index, (inp, out) in enumerate(zip(sizes[:-1], sizes[1:])):
        weights, delays = synapses(out, inp)
        neuron = LIFNeuron(
            tau=float(draw(st.sampled_from([1.0, 1.005, 1.5, 2.0, 7.3]))),
            threshold=float(rng.uniform(0.3, 1.5)),
            reset=draw(st.sampled_from(["hard", "soft"])),
            threshold_rule=draw(st.sampled_from([">=", ">"])),
        )
        recurrent = {}
        if draw(st.booleans()):
            rec_weights, rec_delays = synapses(out, out)
            recurrent = dict(recurrent_weights=rec_weights, recurrent_delays=rec_delays)
        layers.append(SpikingLayer(f"layer{index}", weights, delays, rng.normal(0.1, 0.3, out), neuron,
                                   official_tail=draw(st.integers(0, 3)), **recurrent))
    weights, delays = synapses(classes, sizes[-1])
    readout = Readout("readout", weights, delays, rng.normal(0.0, 0.3, classes), float(rng.uniform(1.0, 10.0)))
    network = Network(sizes[0], layers, readout, input_kind=input_kind, dt=float(rng.choice([1e-3, 0.01])),
                      tail_steps=draw(st.integers(0, delay_cap + 2)), metadata={"seed_note": "hypothesis", "k": 3})
    steps, batch = draw(st.integers(1, 40)), draw(st.integers(1, 3))
    if input_kind == "binary":
        x = (rng.random((steps, batch, sizes[0])) < 0.3).astype(np.float64)
    elif input_kind == "counts":
        x = rng.poisson(0.5, (steps, batch, sizes[0])).astype(np.float64)
    else:
        x = rng.normal(0.5, 1.0, (steps, batch, sizes[0]))
    return network, x


def lif_node(size: int, tau_steps: float, threshold: float, r: float | None = None, dt: float = EULER_DT) -> nir.LIF:
    """A LIF population in the Euler convention (``r = tau_steps`` unless given)."""
    return nir.LIF(tau=np.full(size, tau_steps * dt), r=np.full(size, tau_steps if r is None else r),
                   v_leak=np.zeros(size), v_threshold=np.full(size, threshold), v_reset=np.zeros(size))


def li_node(size: int, tau_steps: float) -> nir.LI:
    """An LI readout in the Euler convention."""
    return nir.LI(tau=np.full(size, tau_steps * EULER_DT), r=np.full(size, tau_steps), v_leak=np.zeros(size))


def third_party_graph(hidden: nir.NIRNode | None = None, *extra: nir.NIRNode) -> nir.NIRGraph:
    """``Input -> Affine -> LIF -> Linear -> LI -> Output`` (nir's own naming), no metadata."""
    rng = np.random.default_rng(7)
    return nir.NIRGraph.from_list(
        nir.Affine(weight=rng.normal(size=(4, 3)), bias=rng.normal(0, 0.2, 4)),
        hidden if hidden is not None else lif_node(4, 2.0, 0.8),
        nir.Linear(weight=rng.normal(size=(2, 4))),
        *extra,
        li_node(2, 3.0),
    )


def delays_on_both_sides_graph() -> nir.NIRGraph:
    """Per-element Delay nodes before (per input) and after (per output) the weights, bias apart."""
    nodes = {
        "in": nir.Input(input_type=np.array([3])),
        "pre": nir.Delay(delay=np.array([0.0, 1.0, 2.0]) * EULER_DT),
        "w": nir.Linear(weight=np.random.default_rng(3).normal(size=(2, 3))),
        "post": nir.Delay(delay=np.array([0.0, 10.0]) * EULER_DT),
        "bias": nir.Affine(weight=np.zeros((2, 3)), bias=np.array([0.1, 0.2])),
        "lif": lif_node(2, 1.5, 1.0),
        "ro": nir.Linear(weight=np.ones((1, 2))),
        "li": li_node(1, 2.0),
        "out": nir.Output(output_type=np.array([1])),
    }
    edges = [("in", "pre"), ("pre", "w"), ("w", "post"), ("post", "lif"), ("in", "bias"), ("bias", "lif"),
             ("lif", "ro"), ("ro", "li"), ("li", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges)
