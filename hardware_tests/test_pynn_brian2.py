"""The PyNN bundle on Brian 2 (``run.py --simulator brian2``): spike for spike like the reference.

Brian 2 is installed by the project's set-up (the ``brian2`` extra), so none of these tests
skips. The networks are those of the NEST tests (sizes, delays up to 62, binary and counts
input, recurrent layers, both threshold rules, a readout without leak, a 10 ms step), the
official conformance models, trained and imported models through the partner's whole path,
and the compiled ``cython`` target beside the default ``numpy`` one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import moderate_network
from pynn_checks import (
    RANDOM_NETWORKS,
    assert_same,
    export_verify_and_run,
    on_grid,
    random_network_case,
    spiking_inputs,
)

from delaydeploy.cli import main
from delaydeploy.exporters.pynn import run as script
from delaydeploy.exporters.pynn.backend import simulate_script
from delaydeploy.exporters.pynn.model import to_pynn
from delaydeploy.ir import Network
from delaydeploy.ir_file import save_network
from delaydeploy.reference import Simulation, simulate


def simulate_brian2(network: Network, x: np.ndarray) -> Simulation:
    return simulate_script(network, x, "brian2")


@pytest.mark.parametrize("name", RANDOM_NETWORKS)
def test_random_networks(name: str) -> None:
    network, x = random_network_case(name)
    assert_same(simulate(network, x), simulate_brian2(network, x), network)


def test_readout_bit_identical_for_any_decay_when_every_sum_is_exact() -> None:
    """Brian 2 multiplies by the network's own decay, so with weights and biases on a 2**-16
    grid the readout is equal to the last bit even for a tau whose decay no NEST ``tau_m``
    reaches (1.05: ``1 - 1/1.05``)."""
    network = on_grid(moderate_network(8, recurrent=True, tau=1.05, readout_tau=1.7))
    x = spiking_inputs(network, samples=3, steps=30, seed=8)
    assert_same(simulate(network, x), simulate_brian2(network, x), network, exact=True)


def test_official_snn_delays_model(conformance_model) -> None:
    """The authors' SHD model (folded BatchNorm biases fire neurons before any input arrives)."""
    network, x = conformance_model
    assert_same(simulate(network, x), simulate_brian2(network, x), network)


def test_official_delrec_model(delrec_model) -> None:
    """DelRec SHD: 140-256-256(recurrent, per-neuron delays, latency 1 + E)-20."""
    network, x, _ = delrec_model
    assert_same(simulate(network, x), simulate_brian2(network, x), network)


def test_cython_target_gives_the_same_results_as_numpy() -> None:
    """``--codegen cython`` compiles Brian's code (without -ffast-math): the same spikes and the
    same readout to the last bit as the numpy target."""
    network = moderate_network(11, sizes=(12, 16, 4), recurrent=True)
    x = spiking_inputs(network, samples=2, steps=25, seed=11)
    model, connections = to_pynn(network)
    numpy_run = script.simulate(model, connections, x, "brian2", codegen="numpy")
    cython_run = script.simulate(model, connections, x, "brian2", codegen="cython")
    assert sorted(numpy_run) == sorted(cython_run) == ["readout", "spikes_0"]
    assert numpy_run["spikes_0"].sum() > 0
    for key in numpy_run:
        np.testing.assert_array_equal(cython_run[key], numpy_run[key])
    expected = simulate(network, x)
    np.testing.assert_array_equal(numpy_run["spikes_0"], expected.spikes[0].numpy())


def test_trained_synthetic_model(tmp_path, capsys) -> None:
    """The demo's preset, through the partner's path on Brian 2 (tests/test_cli.py's demo test
    verifies its PyNN bundle on Brian 2 on all 512 test samples)."""
    from delaydeploy.datasets import pad_collate
    from delaydeploy.datasets.synthetic import SyntheticTimingDataset
    from delaydeploy.training import train_preset

    checkpoint = tmp_path / "m.pt"
    train_preset("synthetic", output=str(checkpoint), epochs=1, progress=False)
    test_set = SyntheticTimingDataset("test")
    inputs = pad_collate([test_set[i] for i in range(6)])[0].double().numpy()
    export_verify_and_run(tmp_path, checkpoint, inputs, capsys, "brian2")
    assert main(["verify", str(checkpoint), "--backend", "brian2", "--input", str(tmp_path / "x.npy")]) == 0


def test_imported_official_shd_model(tmp_path, snn_delays_vectors, state_dict_from, capsys) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(snn_delays_vectors, "state_disc"), state)
    checkpoint = tmp_path / "shd.pt"
    assert main(["import", "snn-delays", str(state), "--preset", "shd", "--hidden", "32", "--layers", "2",
                 "-o", str(checkpoint)]) == 0
    export_verify_and_run(tmp_path, checkpoint, snn_delays_vectors["x"].astype(np.float64), capsys, "brian2")


def test_imported_delrec_model(tmp_path, delrec_vectors, state_dict_from, capsys) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(delrec_vectors, "state"), state)
    checkpoint = tmp_path / "delrec.pt"
    assert main(["import", "delrec", str(state), "--preset", "shd", "-o", str(checkpoint)]) == 0
    export_verify_and_run(tmp_path, checkpoint, delrec_vectors["input"][:, :2].astype(np.float64), capsys, "brian2")


def test_simulate_on_brian2_writes_the_keys_of_run(tmp_path) -> None:
    network = moderate_network(9)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, spiking_inputs(network, 2, 20, 9))
    assert main(["run", str(model), "--input", str(x_path), "-o", str(tmp_path / "run.npz")]) == 0
    assert main(["simulate", str(model), "--backend", "brian2", "--input", str(x_path),
                 "-o", str(tmp_path / "brian2.npz")]) == 0
    with np.load(tmp_path / "run.npz") as run, np.load(tmp_path / "brian2.npz") as brian2:
        assert sorted(run.files) == sorted(brian2.files)
        for key in run.files:
            np.testing.assert_allclose(brian2[key], run[key], rtol=0, atol=1e-9)


def test_a_changed_spike_on_brian2_is_named_by_verify(tmp_path, capsys, monkeypatch) -> None:
    """The verdict on Brian 2 is the reference's, not Brian's: one spike Brian 2 got wrong
    (here moved by hand in the script's output) fails verify with exit 1, naming it."""
    from delaydeploy.exporters.pynn import backend

    network = moderate_network(13)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, spiking_inputs(network, 2, 20, 13))
    real = backend.simulate_script

    def one_spike_lost(*args, **kwargs) -> Simulation:
        result = real(*args, **kwargs)
        step, sample, neuron = (int(i) for i in torch.nonzero(result.spikes[1])[0])
        result.spikes[1][step, sample, neuron] = 0.0
        return result

    monkeypatch.setattr(backend, "simulate_script", one_spike_lost)
    capsys.readouterr()
    assert main(["verify", str(model), "--backend", "brian2", "--input", str(x_path)]) == 1
    out = capsys.readouterr().out
    assert "brian2 vs reference" in out and "FAILED" in out and "hidden1" in out
