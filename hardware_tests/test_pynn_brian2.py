"""The PyNN bundle on Brian 2, beyond what ``test_pynn_simulators.py`` checks on every simulator:
the compiled ``cython`` target beside the default ``numpy`` one, and a wrong spike named by ``verify``.

Brian 2 is installed by the project's set-up (the ``brian2`` extra), so none of these tests skips.
"""

from __future__ import annotations

import numpy as np
import torch
from helpers import moderate_network
from pynn_checks import spiking_inputs

from delaydeploy.cli import main
from delaydeploy.exporters.pynn import run as script
from delaydeploy.exporters.pynn.model import to_pynn
from delaydeploy.ir_file import save_network
from delaydeploy.reference import Simulation, simulate


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


def test_a_changed_spike_on_brian2_is_named_by_verify(tmp_path, capsys, monkeypatch) -> None:
    """The verdict on Brian 2 is the reference's, not Brian's: one spike Brian 2 got wrong
    (here moved by hand in the script's output) fails verify with exit 1, naming it."""
    from delaydeploy.exporters.pynn import backend

    network = moderate_network(13)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, spiking_inputs(network, 2, 20, 13))
    real = backend.simulate_script
    lost: list[tuple[int, int, int]] = []

    def one_spike_lost(*args, **kwargs) -> Simulation:
        result = real(*args, **kwargs)
        step, sample, neuron = (int(i) for i in torch.nonzero(result.spikes[1])[0])
        result.spikes[1][step, sample, neuron] = 0.0
        lost.append((step, sample, neuron))
        return result

    monkeypatch.setattr(backend, "simulate_script", one_spike_lost)
    capsys.readouterr()
    assert main(["verify", str(model), "--backend", "brian2", "--input", str(x_path)]) == 1
    out = capsys.readouterr().out
    (step, sample, neuron), = lost
    assert "brian2 vs reference" in out and "hidden1: 1 spike mismatches" in out
    assert f"first divergence: hidden1, neuron {neuron}, time step {step}, sample {sample}: expected 1.0, " \
           "got 0.0" in out
