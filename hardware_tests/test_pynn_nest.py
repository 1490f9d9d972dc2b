"""The PyNN target on NEST: every exported network runs spike for spike like the reference.

NEST 3.10 and PyNN 0.13 are installed by the project's set-up, so none of these tests skips.
Each compares every hidden spike exactly and the readout to 1e-9 (exactly where weights and
decays are representable), with networks that fire, on random networks (sizes, delays up to
62, binary and counts input, recurrent layers, both threshold rules, a readout without leak,
a 10 ms step), the official conformance models, a trained synthetic model, a model trained
on real FSDD recordings, and ``run.py`` run by a Python that cannot import delaydeploy.
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
from delaydeploy.ir import Network
from delaydeploy.ir_file import save_network
from delaydeploy.reference import Simulation, simulate


def simulate_nest(network: Network, x: np.ndarray) -> Simulation:
    return simulate_script(network, x, "nest")


@pytest.mark.parametrize("name", RANDOM_NETWORKS)
def test_random_networks(name: str) -> None:
    network, x = random_network_case(name)
    assert_same(simulate(network, x), simulate_nest(network, x), network)


def test_readout_bit_identical_when_every_sum_is_exact() -> None:
    """Weights and biases on a 2**-16 grid and decays NEST reaches exactly: nothing is left to
    round, so the readout is equal to the last bit (the spikes already were)."""
    network = on_grid(moderate_network(8, recurrent=True, tau=2.0, readout_tau=4.0))
    assert nest_tau_m(0.5, 1.0)[1] == 0.5 and nest_tau_m(0.75, 1.0)[1] == 0.75
    x = spiking_inputs(network, samples=3, steps=30, seed=8)
    assert_same(simulate(network, x), simulate_nest(network, x), network, exact=True)


def test_official_snn_delays_model(conformance_model) -> None:
    """The authors' SHD model (folded BatchNorm biases fire neurons before any input arrives)."""
    network, x = conformance_model
    assert_same(simulate(network, x), simulate_nest(network, x), network)


def test_official_delrec_model(delrec_model) -> None:
    """DelRec SHD: 140-256-256(recurrent, per-neuron delays, latency 1 + E)-20."""
    network, x, _ = delrec_model
    assert_same(simulate(network, x), simulate_nest(network, x), network)


def test_trained_synthetic_model(tmp_path, capsys) -> None:
    from delaydeploy.training import train_preset

    checkpoint = tmp_path / "m.pt"
    train_preset("synthetic", output=str(checkpoint), epochs=1, progress=False)
    from delaydeploy.datasets import pad_collate
    from delaydeploy.datasets.synthetic import SyntheticTimingDataset

    test_set = SyntheticTimingDataset("test")
    inputs = pad_collate([test_set[i] for i in range(6)])[0].double().numpy()
    bundle = export_verify_and_run(tmp_path, checkpoint, inputs, capsys, "nest")
    assert main(["verify", str(checkpoint), "--backend", "nest", "--input", str(tmp_path / "x.npy")]) == 0
    # the whole test split on NEST: tests/test_cli.py's demo test verifies its PyNN bundle on all 512 samples
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["target"] == "pynn" and set(manifest["files"]) >= {"run.py", "pynn_model.json",
                                                                        "pynn_connections.npz"}


def test_imported_official_shd_model(tmp_path, snn_delays_vectors, state_dict_from, capsys) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(snn_delays_vectors, "state_disc"), state)
    checkpoint = tmp_path / "shd.pt"
    assert main(["import", "snn-delays", str(state), "--preset", "shd", "--hidden", "32", "--layers", "2",
                 "-o", str(checkpoint)]) == 0
    export_verify_and_run(tmp_path, checkpoint, snn_delays_vectors["x"].astype(np.float64), capsys, "nest")


def test_imported_delrec_model(tmp_path, delrec_vectors, state_dict_from, capsys) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(delrec_vectors, "state"), state)
    checkpoint = tmp_path / "delrec.pt"
    assert main(["import", "delrec", str(state), "--preset", "shd", "-o", str(checkpoint)]) == 0
    export_verify_and_run(tmp_path, checkpoint, delrec_vectors["input"][:, :2].astype(np.float64), capsys, "nest")


def test_model_trained_on_fsdd(tmp_path, fsdd_dir, capsys) -> None:
    """The fsdd preset (140-128-128-10, K = 25) after a short epoch on real recordings, verified
    on real test recordings."""
    from delaydeploy.datasets import pad_collate
    from delaydeploy.datasets.fsdd import FSDD
    from delaydeploy.training import train_preset

    checkpoint = tmp_path / "fsdd.pt"
    train_preset("fsdd", output=str(checkpoint), data_dir=str(fsdd_dir), epochs=1, progress=False, max_samples=96)
    test_set = FSDD(fsdd_dir, "test")
    inputs = pad_collate([test_set[i] for i in range(0, 250, 60)])[0].double().numpy()
    export_verify_and_run(tmp_path, checkpoint, inputs, capsys, "nest")


def test_every_kind_of_artifact_verifies_on_nest(tmp_path, capsys) -> None:
    """IR file, NIR file, Lava and Loihi 2 bundles (a Loihi 2 bundle's float network against the
    float reference: NEST runs floats)."""
    network = moderate_network(12, recurrent=True)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, spiking_inputs(network, 2, 25, 12))
    artifacts = [model, tmp_path / "m.nir", tmp_path / "lava", tmp_path / "loihi2"]
    for target, path in zip(("nir", "lava", "loihi2"), artifacts[1:]):
        assert main(["export", str(model), "--target", target, "-o", str(path), "--input", str(x_path)]) == 0
    for path in artifacts:
        capsys.readouterr()
        assert main(["verify", str(path), "--backend", "nest", "--input", str(x_path)]) == 0
        assert "nest vs reference" in capsys.readouterr().out


def test_simulate_writes_the_keys_of_run(tmp_path) -> None:
    network = moderate_network(9)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, spiking_inputs(network, 2, 20, 9))
    assert main(["run", str(model), "--input", str(x_path), "-o", str(tmp_path / "run.npz")]) == 0
    assert main(["simulate", str(model), "--backend", "nest", "--input", str(x_path),
                 "-o", str(tmp_path / "nest.npz")]) == 0
    with np.load(tmp_path / "run.npz") as run, np.load(tmp_path / "nest.npz") as nest:
        assert sorted(run.files) == sorted(nest.files)
        for key in run.files:
            np.testing.assert_allclose(nest[key], run[key], rtol=0, atol=1e-9)
