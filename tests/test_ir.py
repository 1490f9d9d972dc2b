"""The deployment IR validates itself and serialises deterministically."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from helpers import assert_same_network, make_network

from delaydeploy.errors import IRValidationError
from delaydeploy.fixed_point import FixedLayer, FixedNetwork
from delaydeploy.ir import LIFNeuron, Network, SpikingLayer
from delaydeploy.ir_file import (
    fixed_network_from_bytes,
    fixed_network_to_bytes,
    load_network,
    network_to_bytes,
    save_network,
)


def test_file_round_trip_is_exact_and_deterministic(tmp_path):
    network = make_network()
    path = save_network(network, tmp_path / "net.ddn")
    assert_same_network(network, load_network(path))
    first = hashlib.sha256(path.read_bytes()).hexdigest()
    again = save_network(load_network(path), tmp_path / "again.ddn")
    assert hashlib.sha256(again.read_bytes()).hexdigest() == first
    assert network_to_bytes(make_network()) == network_to_bytes(network)
    assert network_to_bytes(make_network(seed=1)) != network_to_bytes(network)


def test_file_is_readable_by_numpy(tmp_path):
    """Every array sits in the file as a plain ``.npy`` entry that numpy reads as it is."""
    network = make_network()
    path = save_network(network, tmp_path / "net.ddn")
    stages = {f"layer{index}": layer for index, layer in enumerate(network.layers)} | {"readout": network.readout}
    expected = {f"{key}.{field}": getattr(stage, field) for key, stage in stages.items()
                for field in ("weights", "delays", "bias", "recurrent_weights", "recurrent_delays")
                if getattr(stage, field, None) is not None}
    with np.load(path) as data:
        assert set(data.files) == {*expected, "network.json"}
        for name, array in expected.items():
            assert data[name].dtype == array.dtype and np.array_equal(data[name], array), name
    assert expected["layer0.delays"].dtype == np.int64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda kw: kw.update(delays=np.full((5, 3), 1.5)), r"hidden0.*delays\[0, 0\] = 1.5 is not a whole number"),
        (lambda kw: kw.update(delays=-np.ones((5, 3), int)), r"hidden0.*delays\[0, 0\] = -1 is negative"),
        (lambda kw: kw.update(weights=np.full((5, 3), np.nan)), r"hidden0.*weights\[0, 0\] = nan is not finite"),
        (lambda kw: kw.update(bias=np.zeros(4)), r"hidden0.*bias has shape \(4,\), expected \(5,\)"),
        (lambda kw: kw.update(delays=np.zeros((3, 5), int)), r"hidden0.*delays has shape \(3, 5\)"),
        (lambda kw: kw.update(recurrent_weights=np.zeros((5, 5))), r"hidden0.*given together"),
        (lambda kw: kw.update(weights=np.ones((0, 3)), delays=np.zeros((0, 3), int), bias=np.zeros(0)),
         r"hidden0.*shape \(0, 3\); a stage needs at least one neuron and one input"),
    ],
)
def test_layer_validation_names_the_layer(change, message):
    kwargs = dict(name="hidden0", weights=np.ones((5, 3)), delays=np.zeros((5, 3), int), bias=np.zeros(5),
                  neuron=LIFNeuron(2.0, 1.0))
    change(kwargs)
    with pytest.raises(IRValidationError, match=message):
        SpikingLayer(**kwargs)


def test_network_validation():
    network = make_network()
    with pytest.raises(IRValidationError, match=r"layer 'hidden1': weights take 4 inputs but the previous stage has 5"):
        Network(3, [network.layers[0], SpikingLayer("hidden1", np.ones((4, 4)), np.zeros((4, 4), int), np.zeros(4),
                                                    LIFNeuron(2.0, 1.0))], network.readout)
    with pytest.raises(IRValidationError, match="not unique"):
        Network(3, [network.layers[0], network.layers[0]], network.readout)
    with pytest.raises(IRValidationError, match="tau = 0.5"):
        LIFNeuron(0.5, 1.0)
    with pytest.raises(IRValidationError, match="input_kind"):
        Network(3, network.layers, network.readout, input_kind="spikes")


def test_corrupt_ir_file_is_refused(tmp_path):
    path = save_network(make_network(), tmp_path / "net.ddn")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IRValidationError, match="not a delaydeploy network file"):
        load_network(path)
    with pytest.raises(IRValidationError, match="format"):
        fixed_network_from_bytes(network_to_bytes(make_network()))


def test_fixed_network_round_trip():
    layer = FixedLayer("hidden0", weights=[[2, -4], [254, -256]], weight_exp=-1, delays=[[0, 62], [3, 4]],
                       bias_mant=[5, -4096], bias_exp=[0, 7], du=4095, dv=100, vth=300, reset="soft",
                       recurrent_weights=[[0, 2], [4, 0]], recurrent_delays=[[1, 2], [0, 0]], scale=3.5)
    readout = FixedLayer("readout", weights=[[2, 2]], weight_exp=0, delays=[[0, 1]], bias_mant=[0], bias_exp=[0],
                         du=4095, dv=10, vth=131071)
    network = FixedNetwork(2, [layer], readout, input_kind="counts", input_scale=1.0, readout_scale=64.0, dt=0.01,
                           tail_steps=3)
    data = fixed_network_to_bytes(network)
    again = fixed_network_from_bytes(data)
    assert fixed_network_to_bytes(again) == data
    for field in dataclasses.fields(FixedNetwork):
        if field.name not in ("layers", "readout"):
            assert getattr(again, field.name) == getattr(network, field.name), field.name
    assert len(again.layers) == 1
    for read, written in ((again.layers[0], layer), (again.readout, readout)):
        for field in dataclasses.fields(FixedLayer):
            left, right = getattr(read, field.name), getattr(written, field.name)
            if isinstance(right, np.ndarray):
                assert left.dtype == right.dtype and np.array_equal(left, right), (written.name, field.name)
            else:
                assert left == right, (written.name, field.name)


def test_fixed_layer_rejects_out_of_range_integers():
    with pytest.raises(IRValidationError, match=r"delays\[0, 0\] = 70 is outside \[0, 62\]"):
        FixedLayer("h", weights=[[2]], weight_exp=0, delays=[[70]], bias_mant=[0], bias_exp=[0], du=0, dv=0, vth=1)
    with pytest.raises(IRValidationError, match=r"weights\[0, 0\] = 300"):
        FixedLayer("h", weights=[[300]], weight_exp=0, delays=[[0]], bias_mant=[0], bias_exp=[0], du=0, dv=0, vth=1)
