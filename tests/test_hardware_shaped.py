"""Hardware-shaped networks: pruned (sparse) synapses, and one delay per neuron (axonal or dendritic).

``NetworkConfig.sparsity`` (``train --sparsity``) prunes each feedforward synapse with that
probability, as the DCLS authors' ``sparsity_p``; pruned weights are exact zeros in the trained
model, its checkpoint, its IR (delay 0, no buffer) and its resource estimate.
``NetworkConfig.delay_granularity`` (``train --delay-granularity``) learns one position per
presynaptic (axonal) or postsynaptic (dendritic) neuron (``tests/test_neuron_delays.py`` checks
the layer itself), and the NIR export stores them as one ``Delay`` node per stage.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from delaydeploy.bundle import estimate_resources
from delaydeploy.checkpoint import checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import NetworkConfig, get_preset
from delaydeploy.ir import delay_structure
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN
from delaydeploy.training import Trainer

SPARSITY = 0.8


def _config(sparsity: float = SPARSITY) -> NetworkConfig:
    return dataclasses.replace(get_preset("synthetic").network, hidden_sizes=(20, 16), sparsity=sparsity)


def _masks(model: DelaySNN) -> list[torch.Tensor]:
    return [block.synapses.synapse_mask for block in model.blocks] + [model.readout.synapse_mask]


def _weights(model: DelaySNN) -> list[torch.Tensor]:
    return [block.synapses.weight for block in model.blocks] + [model.readout.weight]


def test_the_mask_is_drawn_once_and_pruned_weights_stay_zero_through_training() -> None:
    torch.manual_seed(0)
    model = DelaySNN(_config())
    masks = [mask.clone() for mask in _masks(model)]
    assert all(0.1 < float(mask.mean()) < 0.3 for mask in masks)
    trainer = Trainer(model, get_preset("synthetic").train, torch.device("cpu"))
    x = torch.bernoulli(torch.full((30, 8, 12), 0.2))
    for _ in range(3):
        trainer.step(x, torch.arange(8) % 8)
    for mask, kept, weight in zip(masks, _masks(model), _weights(model)):
        assert torch.equal(mask, kept)
        assert not weight[mask == 0].any()
        assert weight[mask == 1].abs().min() > 0  # the kept synapses trained (none died at exactly 0)


def test_a_checkpoint_restores_the_mask_and_the_ir_keeps_only_the_kept_synapses(tmp_path) -> None:
    torch.manual_seed(1)
    model = DelaySNN(_config())
    path = save_checkpoint(checkpoint_of(model, preset="synthetic"), tmp_path / "sparse.pt")
    torch.manual_seed(2)  # a fresh build draws another mask; loading must replace it
    restored = load_checkpoint(path).build_model()
    for mask, loaded in zip(_masks(model), _masks(restored)):
        assert torch.equal(mask, loaded)
    network = lower(restored)
    kept = [mask.numpy() != 0 for mask in _masks(model)]
    for stage, present in zip([*network.layers, network.readout], kept):
        np.testing.assert_array_equal(stage.weights != 0, present)
        assert not stage.delays[~present].any()
    assert estimate_resources(network)["synapses"] == sum(int(present.sum()) for present in kept)


def test_dense_networks_have_no_mask() -> None:
    model = DelaySNN(_config(0.0))
    assert not any(name.endswith("synapse_mask") for name, _ in model.named_buffers())


@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan")])
def test_a_sparsity_outside_zero_to_one_is_refused(value) -> None:
    with pytest.raises(ValueError, match="sparsity"):
        _config(value)


def test_train_sparsity_on_the_command_line(tmp_path, capsys) -> None:
    assert main(["train", "--preset", "synthetic", "--sparsity", "0.9", "--epochs", "1", "--quiet",
                 "--max-samples", "64", "-o", str(tmp_path / "s.pt")]) == 0
    assert main(["inspect", str(tmp_path / "s.pt")]) == 0
    text = capsys.readouterr().out
    network = lower(load_checkpoint(tmp_path / "s.pt").build_model())
    total = sum(stage.weights.size for stage in [*network.layers, network.readout])
    kept = sum(int(np.count_nonzero(stage.weights)) for stage in [*network.layers, network.readout])
    assert 0.05 * total < kept < 0.15 * total
    assert f"synapses {kept}" in text and "of 576 synapses" in text
    with pytest.raises(SystemExit):
        main(["train", "--sparsity", "1", "-o", str(tmp_path / "x.pt")])
    assert "must be in [0, 1)" in capsys.readouterr().err
    assert main(["finetune", str(tmp_path / "s.pt"), "--epochs", "1", "--max-samples", "64", "--quiet",
                 "-o", str(tmp_path / "f.pt")]) == 0
    tuned = lower(load_checkpoint(tmp_path / "f.pt").build_model())
    pairs = list(zip([*network.layers, network.readout], [*tuned.layers, tuned.readout]))
    for before, after in pairs:
        np.testing.assert_array_equal(after.weights != 0, before.weights != 0)  # fine-tuning revives none
    assert any(not np.array_equal(after.weights, before.weights) for before, after in pairs)


@pytest.mark.lava
def test_a_pruned_model_exports_to_loihi2_and_verifies_on_lava(tmp_path, capsys) -> None:
    model, bundle = tmp_path / "s.pt", tmp_path / "bundle"
    assert main(["train", "--preset", "synthetic", "--sparsity", "0.9", "--epochs", "1", "--quiet",
                 "--max-samples", "64", "-o", str(model)]) == 0
    assert main(["export", str(model), "--target", "loihi2", "-o", str(bundle)]) == 0
    assert main(["verify", str(bundle)]) == 0
    assert main(["verify", str(bundle), "--samples", "6", "--workers", "1"]) == 0
    assert main(["inspect", str(bundle)]) == 0
    assert "of 2304 synapses" in capsys.readouterr().out


@pytest.mark.parametrize("granularity", ["axonal", "dendritic"])
def test_per_neuron_delays_learn_one_position_per_neuron_and_lower_to_it(granularity) -> None:
    torch.manual_seed(3)
    config = dataclasses.replace(_config(0.0), delay_granularity=granularity)
    model = DelaySNN(config)
    trainer = Trainer(model, get_preset("synthetic").train, torch.device("cpu"))
    before = [layer.positions.detach().clone() for layer in model.delay_layers()]
    x = torch.bernoulli(torch.full((30, 8, 12), 0.2))
    for _ in range(3):
        trainer.step(x, torch.arange(8) % 8)
    for layer, start in zip(model.delay_layers(), before):
        n_out, n_in = layer.weight.shape
        assert tuple(layer.positions.shape) == ((n_in,) if granularity == "axonal" else (n_out,))
        assert not torch.equal(layer.positions.detach(), start)  # the positions learn
        assert len(torch.unique(start)) > 3  # one draw per neuron, not one for all
    network = lower(model)
    for stage in [*network.layers, network.readout]:
        assert delay_structure(stage.weights, stage.delays)[0] == granularity


def test_a_granularity_per_stage_and_bad_values() -> None:
    config = dataclasses.replace(_config(0.0), delay_granularity=("axonal", "synaptic", "dendritic"))
    assert [layer.granularity for layer in DelaySNN(config).delay_layers()] == ["axonal", "synaptic", "dendritic"]
    with pytest.raises(ValueError, match="delay_granularity"):
        dataclasses.replace(_config(0.0), delay_granularity="neuronal")
    with pytest.raises(ValueError, match="delay_granularity has 2 entries"):
        dataclasses.replace(_config(0.0), delay_granularity=("axonal", "axonal"))


def test_train_axonal_exports_one_nir_delay_node_per_stage_and_verifies(tmp_path, capsys) -> None:
    import nir

    model, graph_file = tmp_path / "a.pt", tmp_path / "a.nir"
    assert main(["train", "--preset", "synthetic", "--delay-granularity", "axonal", "--epochs", "1", "--quiet",
                 "--max-samples", "64", "-o", str(model)]) == 0
    assert main(["export", str(model), "--target", "nir", "-o", str(graph_file)]) == 0
    graph = nir.read(graph_file, type_check=True)
    assert sorted(name for name, node in graph.nodes.items() if isinstance(node, nir.Delay)) == [
        "hidden0.delay", "hidden1.delay", "readout.delay"]
    assert main(["verify", str(graph_file)]) == 0
    assert "verified: 0 spike mismatches" in capsys.readouterr().out
    assert main(["inspect", str(model)]) == 0
    assert capsys.readouterr().out.count("(one per presynaptic neuron)") == 3


def test_one_delay_per_neuron_is_estimated_as_stored_without_per_synapse_delays() -> None:
    """300 x 256 synapses with 8-bit weights and 6-bit delays pass a core's 128 KiB; without the
    delays (one per neuron instead) they fit one core. Buffers: axonal ``out + in x longest``
    slots, dendritic and per synapse ``out x (longest + 1)``."""
    from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer

    rng = np.random.default_rng(0)
    n_in, n_out, longest = 256, 300, 9
    per_synapse = rng.integers(0, longest + 1, (n_out, n_in))
    per_synapse[0, 0] = longest
    axonal = np.repeat(np.arange(n_in)[None, :] % (longest + 1), n_out, axis=0)
    dendritic = np.repeat(np.arange(n_out)[:, None] % (longest + 1), n_in, axis=1)

    def estimate(delays: np.ndarray) -> dict:
        layer = SpikingLayer("hidden0", rng.normal(0.5, 0.1, (n_out, n_in)), delays, np.zeros(n_out),
                             LIFNeuron(tau=2.0, threshold=1.0))
        readout = Readout("readout", np.ones((2, n_out)), np.zeros((2, n_out), dtype=np.int64), np.zeros(2), tau=2.0)
        return estimate_resources(Network(n_in, [layer], readout))

    synaptic, axonal_estimate, dendritic_estimate = estimate(per_synapse), estimate(axonal), estimate(dendritic)
    readout_slots = 2  # the readout's delays are all 0: 2 accumulators and no spike history
    assert synaptic["delay_buffer_slots"] == n_out * (longest + 1) + readout_slots
    assert axonal_estimate["delay_buffer_slots"] == n_out + n_in * longest + readout_slots
    assert dendritic_estimate["delay_buffer_slots"] == n_out * (longest + 1) + readout_slots
    assert synaptic["estimated_loihi2_cores"] == 2 + 1
    assert axonal_estimate["estimated_loihi2_cores"] == dendritic_estimate["estimated_loihi2_cores"] == 1 + 1
    assert synaptic["synapses"] == axonal_estimate["synapses"] == n_in * n_out + 2 * n_out
