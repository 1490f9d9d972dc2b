"""The PyNN bundle on NEST and on Brian 2: every exported network runs spike for spike like the reference.

NEST 3.10 with PyNN 0.13, and Brian 2, are installed by the project's set-up, so none of these
tests skips. Each test runs on both simulators: random networks (sizes, delays up to 62, binary
and counts input, recurrent layers, both threshold rules, a readout without leak, a 10 ms step),
the official conformance models, and the partner's whole path (export, signed verify, ``run.py``
by a Python that cannot import delaydeploy, ``compare``) for a trained synthetic model, a model
trained on real FSDD recordings, an imported official SHD model and an imported DelRec model, and
every kind of artifact; and the readout to the last bit where every sum is exact. What only
Brian 2 has (its compiled target) is in ``test_pynn_brian2.py``.
"""

from __future__ import annotations

import json

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
from delaydeploy.exporters.pynn.backend import simulate_script
from delaydeploy.exporters.pynn.model import nest_tau_m
from delaydeploy.ir_file import save_network
from delaydeploy.reference import simulate

SIMULATORS = ["nest", "brian2"]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", RANDOM_NETWORKS)
def test_random_networks(name: str, simulator: str) -> None:
    network, x = random_network_case(name)
    assert_same(simulate(network, x), simulate_script(network, x, simulator), network)


# taus whose decays each simulator computes exactly: NEST those of some tau_m (2 and 4: 0.5 and 0.75),
# Brian 2 any, as it multiplies by the network's own decay (1.05 and 1.7, which no tau_m reaches)
EXACT_TAUS = {"nest": (2.0, 4.0), "brian2": (1.05, 1.7)}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_readout_bit_identical_when_every_sum_is_exact(simulator: str) -> None:
    """Weights and biases on a 2**-16 grid and decays the simulator computes exactly: nothing is
    left to round, so the readout is equal to the last bit (the spikes already were)."""
    tau, readout_tau = EXACT_TAUS[simulator]
    network = on_grid(moderate_network(8, recurrent=True, tau=tau, readout_tau=readout_tau))
    if simulator == "nest":
        assert nest_tau_m(0.5, 1.0)[1] == 0.5 and nest_tau_m(0.75, 1.0)[1] == 0.75
    else:
        assert nest_tau_m(1 - 1 / 1.05, 1.0)[1] != 1 - 1 / 1.05
    x = spiking_inputs(network, samples=3, steps=30, seed=8)
    assert_same(simulate(network, x), simulate_script(network, x, simulator), network, exact=True)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_official_snn_delays_model(conformance_model, simulator: str) -> None:
    """The authors' SHD model (folded BatchNorm biases fire neurons before any input arrives)."""
    network, x = conformance_model
    assert_same(simulate(network, x), simulate_script(network, x, simulator), network)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_official_delrec_model(delrec_model, simulator: str) -> None:
    """DelRec SHD: 140-256-256(recurrent, per-neuron delays, latency 1 + E)-20."""
    network, x, _ = delrec_model
    assert_same(simulate(network, x), simulate_script(network, x, simulator), network)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_trained_synthetic_model(tmp_path, capsys, simulator: str) -> None:
    """The demo's preset (tests/test_cli.py's demo test verifies its PyNN bundle on both
    simulators on all 512 test samples)."""
    from delaydeploy.datasets import pad_collate
    from delaydeploy.datasets.synthetic import SyntheticTimingDataset
    from delaydeploy.training import train_preset

    checkpoint = tmp_path / "m.pt"
    train_preset("synthetic", output=str(checkpoint), epochs=1, progress=False)
    test_set = SyntheticTimingDataset("test")
    inputs = pad_collate([test_set[i] for i in range(6)])[0].double().numpy()
    bundle = export_verify_and_run(tmp_path, checkpoint, inputs, capsys, simulator)
    assert main(["verify", str(checkpoint), "--backend", simulator, "--input", str(tmp_path / "x.npy")]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["target"] == "pynn" and set(manifest["files"]) >= {"run.py", "pynn_model.json",
                                                                        "pynn_connections.npz"}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_imported_official_shd_model(tmp_path, snn_delays_vectors, state_dict_from, capsys, simulator: str) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(snn_delays_vectors, "state_disc"), state)
    checkpoint = tmp_path / "shd.pt"
    assert main(["import", "snn-delays", str(state), "--preset", "shd", "--hidden", "32", "--layers", "2",
                 "-o", str(checkpoint)]) == 0
    export_verify_and_run(tmp_path, checkpoint, snn_delays_vectors["x"].astype(np.float64), capsys, simulator)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_imported_delrec_model(tmp_path, delrec_vectors, state_dict_from, capsys, simulator: str) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(delrec_vectors, "state"), state)
    checkpoint = tmp_path / "delrec.pt"
    assert main(["import", "delrec", str(state), "--preset", "shd", "-o", str(checkpoint)]) == 0
    export_verify_and_run(tmp_path, checkpoint, delrec_vectors["input"][:, :2].astype(np.float64), capsys, simulator)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_simulate_writes_the_keys_of_run(tmp_path, simulator: str) -> None:
    network = moderate_network(9)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, spiking_inputs(network, 2, 20, 9))
    assert main(["run", str(model), "--input", str(x_path), "-o", str(tmp_path / "run.npz")]) == 0
    assert main(["simulate", str(model), "--backend", simulator, "--input", str(x_path),
                 "-o", str(tmp_path / "simulated.npz")]) == 0
    with np.load(tmp_path / "run.npz") as run, np.load(tmp_path / "simulated.npz") as simulated:
        assert sorted(run.files) == sorted(simulated.files)
        for key in run.files:
            np.testing.assert_allclose(simulated[key], run[key], rtol=0, atol=1e-9)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_model_trained_on_fsdd(tmp_path, fsdd_dir, capsys, simulator: str) -> None:
    """The fsdd preset (140-128-128-10, K = 25) after a short epoch on real recordings, verified
    on real test recordings."""
    from delaydeploy.datasets import pad_collate
    from delaydeploy.datasets.fsdd import FSDD
    from delaydeploy.training import train_preset

    checkpoint = tmp_path / "fsdd.pt"
    train_preset("fsdd", output=str(checkpoint), data_dir=str(fsdd_dir), epochs=1, progress=False, max_samples=96)
    test_set = FSDD(fsdd_dir, "test")
    inputs = pad_collate([test_set[i] for i in range(0, 250, 60)])[0].double().numpy()
    export_verify_and_run(tmp_path, checkpoint, inputs, capsys, simulator)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_every_kind_of_artifact_verifies(tmp_path, capsys, simulator: str) -> None:
    """IR file, NIR file, Lava and Loihi 2 bundles (a Loihi 2 bundle's float network against the
    float reference: the simulators run floats)."""
    network = moderate_network(12, recurrent=True)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, spiking_inputs(network, 2, 25, 12))
    artifacts = [model, tmp_path / "m.nir", tmp_path / "lava", tmp_path / "loihi2"]
    for target, path in zip(("nir", "lava", "loihi2"), artifacts[1:]):
        assert main(["export", str(model), "--target", target, "-o", str(path), "--input", str(x_path)]) == 0
    for path in artifacts:
        capsys.readouterr()
        assert main(["verify", str(path), "--backend", simulator, "--input", str(x_path)]) == 0
        assert f"{simulator} vs reference" in capsys.readouterr().out
