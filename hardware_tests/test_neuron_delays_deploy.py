"""A network trained with one delay per neuron (``train --delay-granularity axonal|dendritic``)
deploys as any other: one NIR ``Delay`` node per stage, and every target verifies spike for
spike: the NIR file, Lava (float, the laned graph and the chip-shaped graph's ``DelayLine``),
Loihi 2 integers on Lava, and the PyNN bundle on NEST."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from delaydeploy.artifacts import load_artifact
from delaydeploy.cli import main
from delaydeploy.exporters.lava.graph import simulate_lava
from delaydeploy.ir import delay_structure
from delaydeploy.reference import simulate

pytestmark = pytest.mark.lava


@pytest.mark.parametrize("granularity", ["axonal", "dendritic"])
def test_a_trained_per_neuron_model_verifies_on_every_target(tmp_path, capsys, granularity) -> None:
    model = tmp_path / "m.pt"
    assert main(["train", "--preset", "synthetic", "--delay-granularity", granularity, "--epochs", "2",
                 "--max-samples", "512", "--seed", "1", "--quiet", "-o", str(model)]) == 0
    network = load_artifact(model).network
    for stage in [*network.layers, network.readout]:
        structure = delay_structure(stage.weights, stage.delays)
        assert structure is not None and structure[0] == granularity and structure[1].max() > 0
    graph_file = tmp_path / "m.nir"
    assert main(["export", str(model), "--target", "nir", "-o", str(graph_file)]) == 0
    graph = nir.read(graph_file)
    assert sorted(name for name, node in graph.nodes.items() if isinstance(node, nir.Delay)) == [
        "hidden0.delay", "hidden1.delay", "readout.delay"]
    artifacts = [graph_file]
    for target in ("lava", "loihi2", "pynn"):
        artifacts.append(tmp_path / target)
        assert main(["export", str(model), "--target", target, "-o", str(artifacts[-1]), "--samples", "6",
                     "--steps", "60"]) == 0
    capsys.readouterr()
    for artifact in artifacts:
        assert main(["verify", str(artifact)]) == 0, artifact
        assert "verified: 0 spike mismatches" in capsys.readouterr().out
    with np.load(tmp_path / "lava" / "test_vectors.npz") as vectors:
        x = vectors["inputs"]
        assert all(vectors[f"spikes_{index}"].sum() > 0 for index in range(len(network.layers)))
    expected, chip = simulate(network, x), simulate_lava(network, x, lanes=None)  # DelayLine processes
    for want, got in zip(expected.spikes, chip.spikes):
        assert torch.equal(want.double(), got.double())
    assert float((expected.readout - chip.readout).abs().max()) <= 1e-9
