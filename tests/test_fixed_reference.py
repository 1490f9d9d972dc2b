"""The integer reference equals Lava's own bit-accurate models and a plain per-step loop.

Lava comparison: small ``FixedNetwork`` s run in plain Lava (``RingBuffer`` -> stock
``DelayDense`` -> ``LIF``, ``fixed_pt``, ``Monitor``). Lava lags the IR's time axis by one step
per synapse: stage ``k`` (1-based, readout last) at IR step ``t`` is Lava step ``t + k + 1``,
monitor row ``t + k``. Lava adds the bias from its step 1, i.e. ``k`` steps before IR step 0 of
stage ``k``; the runs below keep stage ``k``'s ``bias_mant`` at 0 for its first ``k`` Lava steps
(``Var.set`` between one-step runs), so that both sides start from zero state with the bias
switched on at IR step 0, and spikes and integer ``v`` are compared exactly at every step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import DelayDense
from lava.proc.io.source import RingBuffer
from lava.proc.lif.models import PyLifModelBitAcc
from lava.proc.lif.process import LIF
from lava.proc.monitor.process import Monitor
from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

from delaydeploy.errors import ConstraintError
from delaydeploy.fixed_point import GRADED_PAYLOAD_MAX, FixedLayer, FixedNetwork, effective_weights, input_payload
from delaydeploy.fixed_reference import predict_fixed, readout_to_float, simulate_fixed, trace_fixed
from delaydeploy.reference import predict

pytestmark = pytest.mark.lava  # Lava's own models (the lava extra, Python 3.10)

@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SoftResetLifBitAcc(PyLifModelBitAcc):
    """Lava's bit-accurate LIF with the soft reset of :mod:`delaydeploy.fixed_point`: ``v -= vth << 6``."""

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        self.v[spike_vector] -= self.effective_vth


def _run_lava(network: FixedNetwork, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(spikes, v)`` ``[T + tail, N]`` of every stage for one sample ``x`` ``[T, in]``, on IR time."""
    stages = [*network.layers, network.readout]
    steps = x.shape[0] + network.tail_steps
    total = steps + len(stages)
    data = np.zeros((network.input_size, total), dtype=np.int64)  # padded: the ring buffer wraps
    data[:, : x.shape[0]] = input_payload(network, x).T
    source = RingBuffer(data=data)
    monitors, neurons, previous = [], [], source.s_out
    for index, layer in enumerate(stages):
        graded = index == 0 and network.input_kind != "binary"
        dense = DelayDense(weights=layer.weights, delays=layer.delays, weight_exp=layer.weight_exp,
                           num_message_bits=24 if graded else 0)
        lif = LIF(shape=(layer.size,), du=layer.du, dv=layer.dv, vth=layer.vth, bias_mant=np.zeros(layer.size),
                  bias_exp=layer.bias_exp)
        previous.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        if layer.is_recurrent:
            recurrent = DelayDense(weights=layer.recurrent_weights, delays=layer.recurrent_delays,
                                   weight_exp=layer.recurrent_weight_exp)
            lif.s_out.connect(recurrent.s_in)
            recurrent.a_out.connect(lif.a_in)
        for target in (lif.s_out, lif.v):  # one Monitor per probe: Lava 0.10 cannot mix ports and Vars in one
            monitors.append(Monitor())
            monitors[-1].probe(target, total)
        neurons.append(lif)
        previous = lif.s_out
    soft = {layer.reset for layer in stages} == {"soft"}
    assert soft or {layer.reset for layer in stages} == {"hard"}
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={LIF: SoftResetLifBitAcc} if soft else {})
    try:
        for lif, layer in zip(neurons, stages):  # stage k's bias starts after its k-step lag
            source.run(condition=RunSteps(num_steps=1), run_cfg=run_cfg)
            lif.bias_mant.set(layer.bias_mant.astype(np.float64))
        source.run(condition=RunSteps(num_steps=total - len(stages)), run_cfg=run_cfg)
        records = [next(iter(next(iter(monitor.get_data().values())).values())) for monitor in monitors]
    finally:
        source.stop()
    return [(records[2 * k][k + 1: k + 1 + steps], records[2 * k + 1][k + 1: k + 1 + steps])
            for k in range(len(stages))]


def _weights(rng: np.random.Generator, shape: tuple[int, int], mode: str = "mixed") -> np.ndarray:
    """Integer weights incl. odd values and -256 (Lava truncates/clips them by sign mode)."""
    weights = rng.integers(-256, 255, shape)
    if mode == "positive":
        return np.abs(weights).clip(0, 254)
    if mode == "negative":
        return -np.abs(weights)
    return weights


def _lava_network(seed: int, *, reset: str = "hard", input_kind: str = "binary", weight_exp: int = 0,
                  recurrent_exp: int = 0, vth: tuple[int, int] = (150, 450), modes: tuple[str, str, str] = (
                      "mixed", "mixed", "mixed")) -> FixedNetwork:
    """A 6-8-5-3 integer network, the second hidden layer recurrent, delays 0..5; ``weight_exp``
    and ``vth`` set the first layer's, ``modes`` the sign modes of the three weight matrices."""
    rng = np.random.default_rng(seed)
    sizes = [6, 8, 5, 3]
    stages = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        readout = index == len(sizes) - 2
        extra = {}
        if index == 1:
            extra = dict(recurrent_weights=_weights(rng, (n_out, n_out)), recurrent_weight_exp=recurrent_exp,
                         recurrent_delays=rng.integers(0, 4, (n_out, n_out)))
        stages.append(FixedLayer(
            "readout" if readout else f"hidden{index}", _weights(rng, (n_out, n_in), modes[index]),
            weight_exp if index == 0 else 0, rng.integers(0, 6, (n_out, n_in)), rng.integers(-2000, 4000, n_out),
            rng.integers(0, 4, n_out), du=int(rng.integers(3000, 4096)), dv=int(rng.integers(200, 3000)),
            vth=131071 if readout else int(rng.integers(*(vth if index == 0 else (150, 450)))), reset=reset, **extra))
    return FixedNetwork(sizes[0], stages[:-1], stages[-1], input_kind=input_kind, tail_steps=4)


def _input(seed: int, kind: str, steps: int = 14, channels: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    active = rng.random((steps, 1, channels)) < 0.35
    if kind == "binary":
        return active.astype(np.float64)
    return (active * rng.integers(1, 9, (steps, 1, channels))).astype(np.float64)


LAVA_CASES = {
    "hard-binary": dict(network=dict(), wraps=False),
    "soft-reset": dict(network=dict(reset="soft"), wraps=False),
    "counts-negative-exp": dict(network=dict(input_kind="counts", weight_exp=-3, recurrent_exp=-2), wraps=False),
    "wrap-saturate-sign-modes": dict(network=dict(weight_exp=9, vth=(60000, 100000), modes=(
        "positive", "mixed", "negative")), wraps=True),
}


@pytest.mark.parametrize("case", list(LAVA_CASES), ids=list(LAVA_CASES))
def test_equals_lava_bit_accurate_models(case: str) -> None:
    options = LAVA_CASES[case]
    network = _lava_network(7, **options["network"])
    x = _input(8, network.input_kind)
    traces = trace_fixed(network, x)
    lava = _run_lava(network, x[:, 0])
    for layer, trace, (spikes, v) in zip([*network.layers, network.readout], traces, lava):
        if layer is not network.readout:
            assert trace.spikes.sum() > 0, f"{layer.name} is silent: the comparison would prove little"
        np.testing.assert_array_equal(spikes, trace.spikes[:, 0].numpy(), err_msg=f"{layer.name} spikes")
        np.testing.assert_array_equal(v, trace.v[:, 0].numpy(), err_msg=f"{layer.name} v")
    overflowed = any(bool(trace.u_wrapped.any()) and bool(trace.v_saturated.any()) for trace in traces)
    assert overflowed == options["wraps"]
    if options["wraps"]:  # LIF.a_in declares int16, yet activations beyond it arrive unchanged (int32)
        assert int(traces[0].a.abs().max()) > 2**15


@pytest.mark.parametrize("mode", ["mixed", "positive", "negative"])
def test_effective_weights_are_lavas(mode: str) -> None:
    weights = _weights(np.random.default_rng(4), (40, 40), mode)
    weights[0, :2] = [-256, 255] if mode == "mixed" else [-256, 0] if mode == "negative" else [255, 0]
    sign_mode = determine_sign_mode(weights)
    lava = truncate_weights(clip_weights(weights, sign_mode, num_bits=8), sign_mode, 8)
    np.testing.assert_array_equal(effective_weights(weights), lava)


def _effective(weights: np.ndarray) -> np.ndarray:
    """Lava's sign-mode weight rules, written out per case."""
    if (weights >= 0).all():
        return np.minimum(weights, 255)
    if (weights <= 0).all():
        return np.maximum(weights, -255)
    clipped = np.clip(weights, -256, 255)
    return clipped - (clipped % 2)


def _loop_reference(network: FixedNetwork, payload: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The module equations as a plain per-step loop over Python integers."""

    def shift(value: int, exponent: int) -> int:
        return value * 2**exponent if exponent >= 0 else value // 2**-exponent

    def trunc_decay(value: int, keep: int) -> int:
        magnitude = abs(value * keep) // 4096
        return magnitude if value >= 0 else -magnitude

    steps, batch = payload.shape[0] + network.tail_steps, payload.shape[1]
    signal = np.zeros((steps, batch, network.input_size), dtype=np.int64)
    signal[: payload.shape[0]] = payload
    spikes_out, v_out = [], None
    for layer in [*network.layers, network.readout]:
        w = _effective(layer.weights)
        r = _effective(layer.recurrent_weights) if layer.is_recurrent else None
        spikes = np.zeros((steps, batch, layer.size), dtype=np.int64)
        v_trace = np.zeros((steps, batch, layer.size), dtype=np.int64)
        for b in range(batch):
            u, v = [0] * layer.size, [0] * layer.size
            for t in range(steps):  # time outside: recurrent input needs every neuron's earlier spikes
                for o in range(layer.size):
                    a = 0
                    for d in set(layer.delays[o].tolist()):
                        group = sum(int(w[o, i]) * int(signal[t - d, b, i]) for i in range(layer.in_size)
                                    if layer.delays[o, i] == d and t - d >= 0)
                        a += shift(group, layer.weight_exp)
                    if r is not None:
                        for e in set(layer.recurrent_delays[o].tolist()):
                            group = sum(int(r[o, j]) * int(spikes[t - 1 - e, b, j]) for j in range(layer.size)
                                        if layer.recurrent_delays[o, j] == e and t - 1 - e >= 0)
                            a += shift(group, layer.recurrent_weight_exp)
                    current = trunc_decay(u[o], 4095 - layer.du) + a * 64
                    u[o] = current - 2**24 if current > 2**23 else current + 2**24 if current <= -(2**23) else current
                    bias = int(layer.bias_mant[o]) * 2 ** int(layer.bias_exp[o])
                    v[o] = min(max(trunc_decay(v[o], 4096 - layer.dv) + u[o] + bias, -(2**23 - 1)), 2**23 - 1)
                    if v[o] > layer.vth * 64:
                        spikes[t, b, o] = 1
                        v[o] = v[o] - layer.vth * 64 if layer.reset == "soft" else 0
                    v_trace[t, b, o] = v[o]
        spikes_out.append(spikes)
        v_out = v_trace
        signal = spikes
    return spikes_out[:-1], v_out


def _random_case(seed: int) -> tuple[FixedNetwork, np.ndarray]:
    """A small random FixedNetwork over the whole integer ranges (wrap and saturation included) and its input."""
    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.integers(1, 5, 1 + rng.integers(0, 3))] + [int(rng.integers(1, 4))]
    reset = str(rng.choice(["hard", "soft"]))

    def weights(shape: tuple[int, int]) -> np.ndarray:
        return _weights(rng, shape, str(rng.choice(["mixed", "positive", "negative"])))

    stages = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        readout = index == len(sizes) - 2
        extra = {}
        if not readout and rng.random() < 0.5:
            extra = dict(recurrent_weights=weights((n_out, n_out)), recurrent_weight_exp=int(rng.integers(-4, 11)),
                         recurrent_delays=rng.integers(0, 4, (n_out, n_out)))
        stages.append(FixedLayer(
            f"stage{index}", weights((n_out, n_in)), int(rng.integers(-6, 11)), rng.integers(0, 5, (n_out, n_in)),
            rng.integers(-4096, 4096, n_out), rng.integers(0, 8, n_out), du=int(rng.integers(0, 4096)),
            dv=int(rng.integers(0, 4096)), vth=int(rng.choice([0, 1, 50, 400, 5000, 131071])), reset=reset, **extra))
    kind = str(rng.choice(["binary", "counts", "analog"]))
    x = (rng.random((int(rng.integers(1, 9)), int(rng.integers(1, 3)), sizes[0])) < 0.5).astype(np.float64)
    scale = 1.0
    if kind == "counts":
        x *= rng.integers(0, 40, x.shape)
    elif kind == "analog":
        x *= rng.normal(0.0, 3.0, x.shape)
        scale = float(rng.choice([0.5, 3.0, 1000.0]))
    network = FixedNetwork(sizes[0], stages[:-1], stages[-1], input_kind=kind, input_scale=scale,
                           tail_steps=int(rng.integers(0, 4)))
    return network, x


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_equals_per_step_loop(seed: int) -> None:
    network, x = _random_case(seed)
    spikes, readout = _loop_reference(network, input_payload(network, x))
    simulation = simulate_fixed(network, x)
    assert len(simulation.spikes) == len(spikes)
    for expected, actual in zip(spikes, simulation.spikes):
        assert actual.dtype == torch.float64
        np.testing.assert_array_equal(actual.numpy(), expected)
    assert simulation.readout.dtype == torch.int64
    np.testing.assert_array_equal(simulation.readout.numpy(), readout)


def test_random_cases_reach_wrap_saturation_and_soft_reset() -> None:
    """The random cases above do exercise the paths they claim to (counted on 40 fixed seeds)."""
    wrapped = saturated = soft_fired = recurrent = 0
    for seed in range(40):
        network, x = _random_case(seed)
        for layer, trace in zip([*network.layers, network.readout], trace_fixed(network, x)):
            wrapped += int(trace.u_wrapped.sum())
            saturated += int(trace.v_saturated.sum())
            soft_fired += int(trace.spikes.sum()) if layer.reset == "soft" else 0
            recurrent += int(trace.spikes.sum()) if layer.is_recurrent else 0
    assert min(wrapped, saturated, soft_fired, recurrent) > 0


def test_readout_helpers_and_batching() -> None:
    network = _lava_network(3, input_kind="counts")
    x = np.concatenate([_input(seed, "counts") for seed in range(4)], axis=1)
    simulation = simulate_fixed(network, x)
    assert simulation.readout.shape == (x.shape[0] + network.tail_steps, 4, 3)
    assert [s.shape[-1] for s in simulation.spikes] == [8, 5]
    as_float = readout_to_float(network, simulation.readout)
    assert as_float.dtype == torch.float64
    assert torch.allclose(as_float * network.readout_scale, simulation.readout.to(torch.float64), rtol=1e-12, atol=0)
    assert torch.equal(predict_fixed(network, simulation), predict(as_float))
    assert torch.equal(simulation.prediction(), predict(as_float))  # the Simulation API works on integers too
    for sample in range(4):  # batching is exact: each sample alone gives the same
        alone = simulate_fixed(network, x[:, sample: sample + 1])
        assert torch.equal(alone.readout[:, 0], simulation.readout[:, sample])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu() -> None:
    network = _lava_network(5, input_kind="counts", weight_exp=-3, recurrent_exp=-2)
    x = np.concatenate([_input(seed, "counts") for seed in range(3)], axis=1)
    cpu, cuda = simulate_fixed(network, x), simulate_fixed(network, x, device="cuda")
    assert torch.equal(cuda.readout.cpu(), cpu.readout)
    assert all(torch.equal(a.cpu(), b) for a, b in zip(cuda.spikes, cpu.spikes))


def test_rejects_bad_inputs() -> None:
    network = _lava_network(1)
    with pytest.raises(ValueError, match="binary"):
        simulate_fixed(network, np.full((3, 1, 6), 2.0))
    with pytest.raises(ValueError, match="expected"):
        simulate_fixed(network, np.zeros((3, 1, 5)))
    counts = _lava_network(1, input_kind="counts")
    with pytest.raises(ValueError, match="whole"):
        simulate_fixed(counts, np.full((3, 1, 6), 0.5))
    with pytest.raises(ConstraintError, match="24 bits"):
        simulate_fixed(counts, np.full((3, 1, 6), GRADED_PAYLOAD_MAX + 1.0))
