"""The PyNN translation: NEST's decay, what run.py reads, SpiNNaker's weight grid, and refusals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from helpers import moderate_network

from delaydeploy.cli import main
from delaydeploy.errors import ConstraintError
from delaydeploy.exporters.pynn.model import nest_tau_m, to_pynn, ulp_distance
from delaydeploy.exporters.pynn.spinnaker import check_spinnaker, ring_buffer_shift, spinnaker_weights, weight_unit
from delaydeploy.ir import LIFNeuron
from delaydeploy.ir_file import save_network


@pytest.mark.parametrize("tau", [1.005, 1.05, 1.1, 1.5, 2.0, 3.0, 20.0, 1000.0])
@pytest.mark.parametrize("dt_ms", [1.0, 10.0])
def test_nest_decay_is_the_nearest_reachable(tau: float, dt_ms: float) -> None:
    decay = 1.0 - 1.0 / tau
    tau_m, achieved = nest_tau_m(decay, dt_ms)
    assert achieved == math.exp(-dt_ms / tau_m)  # what NEST computes (std::exp is glibc's exp)
    assert ulp_distance(achieved, decay) <= 8
    for neighbour in (math.nextafter(tau_m, 0.0), math.nextafter(tau_m, math.inf)):
        assert abs(math.exp(-dt_ms / neighbour) - decay) >= abs(achieved - decay)


def test_no_leak_is_a_decay_of_exactly_zero() -> None:
    tau_m, achieved = nest_tau_m(0.0, 1.0)
    assert achieved == 0.0 and tau_m > 0


def test_model_lists_every_nonzero_synapse_with_its_delay() -> None:
    network = moderate_network(3, recurrent=True)
    network.layers[0].weights[0, :4] = 0.0
    model, connections = to_pynn(network)
    for index, stage in enumerate([*network.layers, network.readout]):
        pre, post = connections[f"{stage.name}/input/pre"], connections[f"{stage.name}/input/post"]
        assert len(pre) == np.count_nonzero(stage.weights)
        np.testing.assert_array_equal(connections[f"{stage.name}/input/weight"], stage.weights[post, pre])
        np.testing.assert_array_equal(connections[f"{stage.name}/input/delay"], stage.delays[post, pre])
        bias_post = connections[f"{stage.name}/bias/post"]
        np.testing.assert_array_equal(connections[f"{stage.name}/bias/weight"], stage.bias[bias_post])
        assert set(connections[f"{stage.name}/bias/delay"]) == {index}  # the stage's lag behind the input
    rec = network.layers[0]
    np.testing.assert_array_equal(connections["hidden0/recurrent/delay"],
                                  rec.recurrent_delays[connections["hidden0/recurrent/post"],
                                                       connections["hidden0/recurrent/pre"]])
    assert [stage["spiking"] for stage in model["stages"]] == [True, True, False]


def test_strict_threshold_is_the_next_double() -> None:
    network = moderate_network(4, threshold_rule=">", threshold=0.75)
    model, _ = to_pynn(network)
    assert model["stages"][0]["v_thresh"] == math.nextafter(0.75, math.inf)


@pytest.mark.parametrize("peak, shift", [(0.0, 0), (0.3, 0), (1.0, 1), (1.5, 1), (2.0, 2), (2.3, 2), (7.9, 3),
                                         (8.0, 4)])
def test_ring_buffer_shift_follows_spynnaker(peak: float, shift: int) -> None:
    """sPyNNaker: ceil(log2(peak)) (at least 0), one more when the peak is exactly a power of two."""
    assert ring_buffer_shift(peak) == shift
    assert weight_unit(peak) == 2.0 ** (shift - 15)


def test_spinnaker_weights_lie_on_their_receptors_grid() -> None:
    network = moderate_network(5, recurrent=True)
    peaks = [(3.0, 0.7), (5.0, 2.0), (1.0, 1.0)]
    rounded = spinnaker_weights(network, peaks)
    for stage, original, (excitatory, inhibitory) in zip([*rounded.layers, rounded.readout],
                                                         [*network.layers, network.readout], peaks):
        for values, before in [(stage.weights, original.weights), (stage.bias, original.bias)]:
            unit = np.where(before > 0, weight_unit(excitatory), weight_unit(inhibitory))
            np.testing.assert_array_equal(values / unit, np.rint(values / unit))
            assert np.all(np.abs(values - before) <= unit / 2)
    assert not np.array_equal(rounded.layers[0].weights, network.layers[0].weights)


def test_spinnaker_refuses_a_delay_beyond_its_extension_cores() -> None:
    network = moderate_network(6)
    network.layers[1].delays[2, 3] = 2303  # 25 neurons a core: 256 slots, 9 x 256 with delay extensions
    check_spinnaker(network)
    network.layers[1].delays[2, 3] = 2304
    with pytest.raises(ConstraintError, match=r"'hidden1': synapse 3 -> 2 needs a delay of 2305 ticks; "
                                              r"SpiNNaker holds at most 2304 \(256 slots per core"):
        check_spinnaker(network)


def _refused(tmp_path, network, capsys, message: str) -> None:
    model, bundle = tmp_path / "m.ddn", tmp_path / "bundle"
    save_network(network, model)
    assert main(["export", str(model), "--target", "pynn", "-o", str(bundle), "--samples", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not bundle.exists()


def test_soft_reset_is_refused_naming_the_layer(tmp_path, capsys) -> None:
    network = moderate_network(7)
    layer = network.layers[1]
    network.layers[1] = dataclasses.replace(layer, neuron=LIFNeuron(layer.neuron.tau, layer.neuron.threshold, "soft"))
    _refused(tmp_path, network, capsys, "layer 'hidden1': reset 'soft'")


@pytest.mark.parametrize("simulator", ["nest", "brian2"])
def test_the_simulator_backends_refuse_what_the_bundle_cannot_hold(tmp_path, capsys, simulator) -> None:
    """``--backend nest|brian2`` runs the bundle's translation, so it refuses a soft reset as the
    export does, before any simulator starts, and writes nothing."""
    network = moderate_network(7)
    layer = network.layers[1]
    network.layers[1] = dataclasses.replace(layer, neuron=LIFNeuron(layer.neuron.tau, layer.neuron.threshold, "soft"))
    model = tmp_path / "m.ddn"
    save_network(network, model)
    assert main(["simulate", str(model), "--backend", simulator, "--samples", "1",
                 "-o", str(tmp_path / "o.npz")]) == 2
    assert "layer 'hidden1': reset 'soft'" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_analog_input_is_refused(tmp_path, capsys) -> None:
    _refused(tmp_path, moderate_network(8, input_kind="analog"), capsys, "input is analog")


def test_delay_spinnaker_cannot_hold_is_refused(tmp_path, capsys) -> None:
    network = moderate_network(9)
    network.readout.delays[1, 0] = 10_000
    _refused(tmp_path, network, capsys, "'readout': synapse 0 -> 1 needs a delay of 10001 ticks")


@pytest.mark.parametrize("simulator", ["nest", "brian2"])
def test_a_simulator_backend_without_its_simulator_names_the_extra(tmp_path, capsys, monkeypatch,
                                                                    simulator) -> None:
    import importlib.util

    from delaydeploy.exporters.pynn import backend

    real = importlib.util.find_spec
    monkeypatch.setattr(backend.importlib.util, "find_spec",
                        lambda name, *a: None if name == simulator else real(name, *a))
    model = tmp_path / "m.ddn"
    save_network(moderate_network(10), model)
    assert main(["simulate", str(model), "--backend", simulator, "--samples", "1",
                 "-o", str(tmp_path / "o.npz")]) == 2
    assert f"the {simulator} backend needs" in (err := capsys.readouterr().err)
    assert f"pip install 'delaydeploy[{simulator}]'" in err
    assert not (tmp_path / "o.npz").exists()
