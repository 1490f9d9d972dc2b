"""Quantisation to Loihi 2 integers: the limits it enforces, the rules it follows, how close it stays."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import moderate_network

from delaydeploy.errors import ConstraintError, IRValidationError
from delaydeploy.fixed_point import (
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    GRADED_PAYLOAD_MAX,
    VTH_MAX,
    FixedLayer,
    FixedNetwork,
    input_payload,
)
from delaydeploy.fixed_reference import predict_fixed, readout_to_float, simulate_fixed
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer
from delaydeploy.quantize import check_overflow, quantize
from delaydeploy.reference import simulate


def _spikes(seed: int, steps: int, batch: int, channels: int, rate: float = 0.2) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, batch, channels)) < rate).astype(np.float64)


# -- limits ---------------------------------------------------------------------------------------

def test_delay_above_limit_names_layer_synapse_and_limit() -> None:
    network = moderate_network(sizes=(20, 30, 25, 5))
    network.layers[1].delays[3, 17] = 70
    with pytest.raises(ConstraintError) as error:
        quantize(network)
    assert str(error.value) == "layer 'hidden1' synapse [3, 17] has delay 70 > 62 (Loihi 2 limit)"


def test_recurrent_and_readout_delays_above_limit() -> None:
    network = moderate_network(recurrent=True)
    network.layers[0].recurrent_delays[2, 4] = 63
    with pytest.raises(ConstraintError, match=r"layer 'hidden0' recurrent synapse \[2, 4\] is 63 > 62"):
        quantize(network)
    network = moderate_network()
    network.readout.delays[1, 0] = 100
    with pytest.raises(ConstraintError, match=r"readout 'readout' synapse \[1, 0\] has delay 100 > 62"):
        quantize(network)


def test_unrepresentable_bias() -> None:
    network = moderate_network()
    network.layers[0].bias[7] = 9000.0  # 9000 thresholds: beyond 4095 << 7 = 8190 x 64 even at vth = 1
    with pytest.raises(ConstraintError, match=r"layer 'hidden0' neuron \[7\] has bias 9000 .*cannot represent"):
        quantize(network)


def test_drive_too_large_for_the_state() -> None:
    network = moderate_network()
    network.layers[1].weights[4] = 5e4  # one step can drive neuron 4 to ~1.5e6 thresholds
    with pytest.raises(ConstraintError, match=r"layer 'hidden1' neuron \[4\] can reach a membrane .*24-bit"):
        quantize(network)


def test_overflow_on_given_data_is_explained() -> None:
    """Counts quantised without calibration assume a peak of 1; far larger counts wrap ``u``."""
    network = moderate_network(input_kind="counts")
    fixed = quantize(network)
    x = _spikes(1, 12, 2, 20)
    check_overflow(fixed, x)  # counts <= 1: within the design
    x[4, 1] *= 1000.0
    with pytest.raises(ConstraintError, match=r"layer 'hidden0' neuron \[\d+\] at step 4 \(sample 1\): activation a = "
                                              r"-?\d+ makes the current u = a << 6 .* wrap"):
        check_overflow(fixed, x)
    quantize(network, calibration=x)  # the same data as calibration: the scale makes room


def test_saturation_and_readout_threshold_are_reported() -> None:
    def layer(name: str, weight: int, weight_exp: int, vth: int, dv: int = 0) -> FixedLayer:
        return FixedLayer(name, [[weight]], weight_exp, [[0]], [0], [0], du=4095, dv=dv, vth=vth)

    x = np.ones((6, 1, 1))
    saturating = FixedNetwork(1, [layer("hidden0", 254, 9, VTH_MAX)], layer("readout", 2, 0, VTH_MAX))
    with pytest.raises(ConstraintError, match=r"layer 'hidden0' neuron \[0\] at step 1 \(sample 0\): the membrane v "
                                              r"would pass \+-8388607 .* saturate"):
        check_overflow(saturating, x)  # a << 6 = 254 << 15 fits u, but v integrates it past 2**23
    firing = FixedNetwork(1, [], layer("readout", 254, 9, 2**16))
    with pytest.raises(ConstraintError, match=r"readout 'readout' class \[0\] at step 0 \(sample 0\): .*would fire"):
        check_overflow(firing, x)


def test_payload_beyond_graded_spikes_is_refused_by_calibration() -> None:
    network = moderate_network(input_kind="analog")
    x = np.random.default_rng(3).normal(0.0, 2.0, (10, 2, 20))
    with pytest.raises(ConstraintError, match="24 bits"):
        quantize(network, calibration=x, input_scale=2.0**22)


def test_fixed_network_validation_rejects_out_of_range_integers() -> None:
    good = dict(weights=[[2, -4]], weight_exp=0, delays=[[0, 62]], bias_mant=[0], bias_exp=[0], du=4095, dv=0, vth=1)
    FixedLayer("h", **good)
    for name, value in [("weights", [[255, 0]]), ("weights", [[-258, 0]]), ("delays", [[0, 63]]),
                        ("bias_mant", [BIAS_MANT_MAX + 1]), ("bias_mant", [BIAS_MANT_MIN - 1]), ("bias_exp", [8]),
                        ("bias_exp", [-1]), ("du", 4096), ("dv", -1), ("vth", VTH_MAX + 1), ("weights", [[2.5, 0]])]:
        with pytest.raises(IRValidationError, match=name):
            FixedLayer("h", **{**good, name: value})
    layer = FixedLayer("h", **good)
    with pytest.raises(IRValidationError, match="input_scale"):
        FixedNetwork(2, [], layer, input_kind="analog", input_scale=0.0)
    with pytest.raises(IRValidationError, match="binary"):
        FixedNetwork(2, [], layer, input_kind="binary", input_scale=4.0)
    with pytest.raises(IRValidationError, match="input_kind"):
        FixedNetwork(2, [], layer, input_kind="spikes")


# -- rules ----------------------------------------------------------------------------------------

def test_integer_ranges_are_used_and_respected() -> None:
    network = moderate_network(recurrent=True)
    fixed = quantize(network)
    for layer in [*fixed.layers, fixed.readout]:
        for weights in (layer.weights, layer.recurrent_weights if layer.is_recurrent else None):
            if weights is not None:
                assert np.all(weights % 2 == 0) and np.abs(weights).max() <= 254
                assert np.abs(weights).max() > 127, f"{layer.name}: weight_exp leaves a bit unused"
        assert layer.du == 4095 and layer.dv == round(4096 / (2.0 if layer is not fixed.readout else 3.0))
        smaller = np.maximum(layer.bias_exp - 1, 0)  # the smallest exponent that fits: one less would not
        needed = layer.bias_exp > 0
        scaled = np.round(layer.bias_mant * 2.0 ** (layer.bias_exp - smaller))
        assert np.all(~needed | (scaled > BIAS_MANT_MAX) | (scaled < BIAS_MANT_MIN) | (layer.bias_mant % 2 != 0))
    assert fixed.readout.vth == VTH_MAX
    assert fixed.readout_scale == 64 * fixed.readout.scale
    for layer, source in zip(fixed.layers, network.layers):  # the threshold maps exactly: vth = S * theta
        assert 1 <= layer.vth <= VTH_MAX and np.isclose(layer.vth, layer.scale * source.neuron.threshold, rtol=1e-12)


def test_bias_mapping_is_best_precision() -> None:
    network = moderate_network()
    network.layers[0].bias[:4] = [1e-3, -0.37, 5.0, -60.0]
    fixed = quantize(network)
    layer, scale = fixed.layers[0], fixed.layers[0].scale
    value = layer.bias_mant[:4] * 2.0 ** layer.bias_exp[:4]
    target = network.layers[0].bias[:4] * 64 * scale
    assert np.all(np.abs(value - target) <= 2.0 ** (layer.bias_exp[:4] - 1))
    assert layer.bias_exp[0] == 0 and layer.bias_exp[3] > 0


def test_analog_input_scale_fills_the_graded_payload() -> None:
    network = moderate_network(input_kind="analog")
    x = np.random.default_rng(5).normal(0.0, 1.5, (16, 4, 20))
    fixed = quantize(network, calibration=x)
    peak = np.abs(x).max()
    assert np.log2(fixed.input_scale) == int(np.log2(fixed.input_scale))  # a power of two
    assert peak * fixed.input_scale <= GRADED_PAYLOAD_MAX < 2 * peak * fixed.input_scale
    assert fixed.layers[0].weight_exp < -10  # the payload scale is shifted back out
    given = quantize(network, calibration=x, input_scale=100.0)
    assert given.input_scale == 100.0
    with pytest.raises(ValueError, match="input_scale"):
        quantize(network)
    with pytest.raises(ValueError, match="as they are"):
        quantize(moderate_network(input_kind="counts"), input_scale=4.0)
    for fixed_network in (fixed, given):
        mismatch = _mismatch(network, fixed_network, x)
        assert max(mismatch) < 0.05, mismatch


def test_decay_near_one_step_is_clamped_to_twelve_bits() -> None:
    fixed = quantize(moderate_network(tau=1.0001))
    assert fixed.layers[0].dv == 4095


def test_decay_too_slow_for_twelve_bits_is_refused() -> None:
    def network(tau: float) -> Network:
        small, none = np.full((2, 2), 1e-3), np.zeros((2, 2), int)
        return Network(2, [SpikingLayer("hidden0", small, none, np.zeros(2), LIFNeuron(tau=tau, threshold=1.0))],
                       Readout("readout", small, none, np.zeros(2), tau=2.0))

    assert quantize(network(8000.0)).layers[0].dv == 1
    with pytest.raises(ConstraintError, match="'hidden0' has tau = 8192 steps.*no leak"):
        quantize(network(8192.0))


def test_negative_spike_counts_are_refused() -> None:
    fixed = quantize(moderate_network(input_kind="counts"))
    x = _spikes(3, 6, 2, 20)
    x[2, 1, 7] = -3
    with pytest.raises(ValueError, match=r"input\[2, 1, 7\] = -3.0.*spike counts \(whole, >= 0\)"):
        input_payload(fixed, x)


def test_deterministic() -> None:
    network = moderate_network(recurrent=True, input_kind="counts")
    x = _spikes(2, 10, 2, 20) * 3
    first, second = quantize(network, calibration=x), quantize(network, calibration=x)
    assert (first.input_scale, first.readout_scale) == (second.input_scale, second.readout_scale)
    for a, b in zip([*first.layers, first.readout], [*second.layers, second.readout]):
        assert (a.weight_exp, a.recurrent_weight_exp, a.vth, a.dv, a.scale) == (b.weight_exp, b.recurrent_weight_exp,
                                                                                b.vth, b.dv, b.scale)
        for field in ("weights", "delays", "bias_mant", "bias_exp", "recurrent_weights"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


# -- closeness to the float network ---------------------------------------------------------------

def _mismatch(network: Network, fixed: FixedNetwork, x: np.ndarray) -> list[float]:
    float_run, fixed_run = simulate(network, x), simulate_fixed(fixed, x)
    return [float((a != b).double().mean()) for a, b in zip(float_run.spikes, fixed_run.spikes)]


@pytest.mark.parametrize("options", [dict(), dict(reset="soft", threshold_rule=">", threshold=0.7),
                                     dict(recurrent=True)],
                         ids=["hard", "soft", "recurrent"])
def test_fixed_network_keeps_most_float_spikes(options: dict) -> None:
    """Integer rounding flips a few spikes (and recurrence spreads each flip): measured, not forbidden."""
    network = moderate_network(11, **options)
    x = _spikes(12, 40, 16, 20)
    fixed = quantize(network, calibration=x)
    mismatch = _mismatch(network, fixed, x)
    print(f"spike mismatch per layer {options}: {[f'{m:.4f}' for m in mismatch]}")
    assert max(mismatch) < (0.15 if options.get("recurrent") else 0.05), mismatch
    agreement = float((predict_fixed(fixed, simulate_fixed(fixed, x)) == simulate(network, x).prediction()).double()
                      .mean())
    assert agreement >= 0.75


def _dequantised(network: Network, fixed: FixedNetwork) -> Network:
    """The float network that the integers stand for: every parameter divided back by its scale."""
    layers = []
    for source, layer in zip(network.layers, fixed.layers):
        scale = layer.scale
        recurrent = layer.recurrent_weights * 2.0**layer.recurrent_weight_exp / scale if layer.is_recurrent else None
        neuron = LIFNeuron(tau=4096 / layer.dv, threshold=layer.vth / scale, reset=layer.reset, threshold_rule=">")
        layers.append(SpikingLayer(source.name, layer.weights * 2.0**layer.weight_exp / scale, layer.delays,
                                   layer.bias_mant * 2.0**layer.bias_exp / (64 * scale), neuron, recurrent,
                                   layer.recurrent_delays))
    readout = fixed.readout
    return Network(network.input_size, layers, Readout(
        "readout", readout.weights * 2.0**readout.weight_exp / readout.scale, readout.delays,
        readout.bias_mant * 2.0**readout.bias_exp / (64 * readout.scale), 4096 / readout.dv), tail_steps=5)


@pytest.mark.parametrize("recurrent", [False, True])
def test_integers_are_the_dequantised_float_network(recurrent: bool) -> None:
    """All of the float-vs-fixed difference is the parameter grid: the integer dynamics (truncating
    decays, floors) add almost nothing to the float network of the dequantised parameters."""
    network = moderate_network(13, recurrent=recurrent)
    x = _spikes(14, 40, 16, 20)
    fixed = quantize(network, calibration=x)
    mismatch = _mismatch(_dequantised(network, fixed), fixed, x)
    assert max(mismatch) < 0.002, mismatch


def test_readout_in_float_units() -> None:
    """Without hidden layers the only differences are rounding: the readout agrees to ~1%."""
    rng = np.random.default_rng(21)
    readout = Readout("readout", rng.normal(0.0, 0.5, (4, 20)), rng.integers(0, 5, (4, 20)), rng.normal(0.0, 0.2, 4),
                      tau=4.0)
    network = Network(20, [], readout, tail_steps=4)
    x = _spikes(22, 30, 8, 20, rate=0.3)
    fixed = quantize(network)
    expected = simulate(network, x).readout
    error = (readout_to_float(fixed, simulate_fixed(fixed, x).readout) - expected).abs().max()
    assert float(error) < 0.01 * float(expected.abs().max())


def test_forced_exponents_keep_every_value_in_range():
    """netx's exponents (weights 0, biases 6) cap the scale instead of overflowing the fields."""
    rng = np.random.default_rng(5)
    neuron = LIFNeuron(tau=2.0, threshold=1.0)
    layer = SpikingLayer("hidden0", rng.normal(0, 3, (6, 5)), rng.integers(0, 4, (6, 5)), rng.normal(0, 2, 6), neuron)
    network = Network(5, [layer], Readout("readout", rng.normal(0, 1, (2, 6)), np.zeros((2, 6), int), np.zeros(2),
                                          tau=2.0))
    fixed = quantize(network, weight_exp=0, bias_exp=6)
    for stage in [*fixed.layers, fixed.readout]:
        assert stage.weight_exp == 0 and np.all(stage.bias_exp == 6)
        assert np.abs(stage.weights).max() <= 254
    free = quantize(network)
    assert free.layers[0].vth >= fixed.layers[0].vth  # the cap only ever lowers the scale


def test_forced_weight_exponent_picks_an_analog_input_scale_the_weights_survive():
    """Weights forced to ``2**0`` units divide by the input scale: one chosen only to fill the 24-bit
    payload rounds every first-stage weight to 0 (as netx export did). The scale is lowered until
    the weights fill their 8 bits; a given scale that zeroes them is refused."""
    network = moderate_network(3, input_kind="analog")
    x = np.random.default_rng(6).normal(0.0, 5.0, (30, 8, 20))
    fixed = quantize(network, calibration=x, weight_exp=0, bias_exp=6)
    assert 127 <= np.abs(fixed.layers[0].weights).max() <= 254
    assert fixed.input_scale < quantize(network, calibration=x).input_scale
    mismatch = _mismatch(network, fixed, x)
    assert max(mismatch) < 0.1, mismatch
    with pytest.raises(ConstraintError, match="'hidden0': every weight rounds to 0"):
        quantize(network, calibration=x, input_scale=2.0**18, weight_exp=0, bias_exp=6)
