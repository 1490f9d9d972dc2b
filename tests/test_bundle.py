"""Deployment bundles: complete, hash-checked, refused when tampered with or incomplete."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import assert_same_network, make_network

from delaydeploy import bundle as bundle_module
from delaydeploy.bundle import estimate_resources, load_bundle, write_bundle
from delaydeploy.cli import main
from delaydeploy.errors import BundleError, DelayDeployError
from delaydeploy.reference import simulate
from delaydeploy.verify import random_inputs


def _write(path, target="lava", steps=12):
    network = make_network()
    inputs = random_inputs(network.input_size, network.input_kind, samples=3, steps=steps)
    return write_bundle(path, network, target, inputs, simulate(network, inputs))


@pytest.fixture()
def bundle_dir(tmp_path):
    return _write(tmp_path / "bundle")


def test_bundle_holds_what_was_written(bundle_dir):
    """The network, inputs and the oracle's spikes, readout and predictions come back exactly."""
    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    assert manifest["target"] == "lava" and manifest["format_version"] == 1
    assert set(manifest["files"]) == {"network.ddn", "test_vectors.npz"}
    assert manifest["latency_offsets"] == {"hidden0": 1, "hidden1": 2, "readout": 3}
    assert manifest["time_step_seconds"] == 0.01 and manifest["tail_steps"] == 6
    assert manifest["constraints"]["max_delay"] == 6 and manifest["constraints"]["fits_loihi2_delays"]
    assert manifest["resources"]["neurons"] == 5 + 4 + 2
    assert manifest["test_vectors"] == {"samples": 3, "steps": 12}
    assert "torch" in manifest["package_versions"]
    network = make_network()
    assert_same_network(bundle.network, network)
    inputs = random_inputs(network.input_size, network.input_kind, samples=3, steps=12)
    np.testing.assert_array_equal(bundle.inputs, inputs)
    expected = simulate(network, inputs)
    assert set(bundle.vectors) == {"inputs", "readout", "pred", "spikes_0", "spikes_1"}
    for index, spikes in enumerate(expected.spikes):
        assert spikes.sum() > 0
        np.testing.assert_array_equal(bundle.vectors[f"spikes_{index}"], spikes.numpy())
    np.testing.assert_array_equal(bundle.vectors["readout"], expected.readout.numpy())
    np.testing.assert_array_equal(bundle.vectors["pred"], expected.prediction().numpy())
    assert bundle.vectors["spikes_1"].shape == (12 + 6, 3, 4)


def test_resource_estimate_counts_every_stage_and_the_recurrent_synapses():
    network = make_network()  # hidden1 is recurrent: its feedback crosses one more step (delay + 1)
    recurrent = network.layers[1]
    stages = [*network.layers, network.readout]
    resources = estimate_resources(network)
    assert resources["neurons"] == 5 + 4 + 2
    assert resources["synapses"] == sum(int(np.count_nonzero(stage.weights)) for stage in stages) + int(
        np.count_nonzero(recurrent.recurrent_weights))
    assert resources["delay_buffer_slots"] == sum(s.size * (s.delays.max() + 1) for s in stages) + recurrent.size * (
        recurrent.recurrent_delays.max() + 2)
    assert resources["estimated_loihi2_cores"] == 3  # one core per stage for a tiny network


@pytest.mark.parametrize("damage", ["modified", "missing", "manifest", "unlisted"])
def test_damaged_bundle_is_refused(bundle_dir, capsys, damage):
    if damage == "modified":
        vectors = bundle_dir / "test_vectors.npz"
        data = bytearray(vectors.read_bytes())
        data[-10] ^= 0xFF
        vectors.write_bytes(bytes(data))
        expected = "test_vectors.npz does not match its sha256"
    elif damage == "missing":
        (bundle_dir / "network.ddn").unlink()
        expected = "network.ddn is missing"
    elif damage == "manifest":
        (bundle_dir / "manifest.json").unlink()
        expected = "not a bundle (manifest.json is missing)"
    else:
        manifest = json.loads((bundle_dir / "manifest.json").read_text())
        del manifest["files"]["network.ddn"]
        (bundle_dir / "manifest.json").write_text(json.dumps(manifest))
        expected = "manifest does not list network.ddn"
    with pytest.raises(BundleError, match=re.escape(expected)):
        load_bundle(bundle_dir)
    assert main(["inspect", str(bundle_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_a_write_failing_midway_leaves_nothing_and_keeps_the_old_bundle(tmp_path, monkeypatch):
    """Files already written when the failure strikes are removed; a bundle being replaced stays intact."""
    old = _write(tmp_path / "b", steps=12)
    before = {path.name: path.read_bytes() for path in old.iterdir()}

    def failing_hash(path):
        assert (path.parent / "network.ddn").is_file()  # the failure comes after the first files
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "_sha256", failing_hash)
    for target in ("b", "new"):
        with pytest.raises(OSError, match="disk full"):
            _write(tmp_path / target, steps=5)
    monkeypatch.undo()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b"]
    assert {path.name: path.read_bytes() for path in old.iterdir()} == before
    assert load_bundle(old).manifest["test_vectors"]["steps"] == 12


def test_a_loihi2_bundle_without_its_integer_network_is_refused_before_writing(tmp_path):
    with pytest.raises(DelayDeployError, match="a loihi2 bundle needs the fixed-point network"):
        _write(tmp_path / "b", target="loihi2")
    assert list(tmp_path.iterdir()) == []
