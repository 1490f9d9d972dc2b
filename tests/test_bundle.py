"""Deployment bundles: complete, hash-checked, refused when tampered with or incomplete."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from delaydeploy.bundle import estimate_resources, load_bundle, write_bundle
from delaydeploy.cli import main
from delaydeploy.errors import BundleError
from delaydeploy.reference import simulate
from delaydeploy.verify import random_inputs
from helpers import make_network


@pytest.fixture()
def bundle_dir(tmp_path):
    network = make_network()
    inputs = random_inputs(network.input_size, network.input_kind, samples=3, steps=12)
    return write_bundle(tmp_path / "bundle", network, "lava", inputs, simulate(network, inputs))


def test_bundle_contents(bundle_dir):
    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    assert manifest["target"] == "lava" and manifest["format_version"] == 1
    assert set(manifest["files"]) == {"network.ddn", "test_vectors.npz"}
    assert manifest["latency_offsets"] == {"hidden0": 1, "hidden1": 2, "readout": 3}
    assert manifest["time_step_seconds"] == 0.01 and manifest["tail_steps"] == 6
    assert manifest["constraints"]["max_delay"] == 6 and manifest["constraints"]["fits_loihi2_delays"]
    assert manifest["resources"]["neurons"] == 5 + 4 + 2
    assert "torch" in manifest["package_versions"]
    expected = simulate(bundle.network, bundle.inputs)
    assert np.array_equal(bundle.vectors["readout"], expected.readout.numpy())
    assert bundle.vectors["spikes_1"].shape == (12 + 6, 3, 4)


def test_resource_estimate_counts_layers_separately():
    network = make_network(recurrent=False)
    resources = estimate_resources(network)
    synapses = sum(int(np.count_nonzero(stage.weights)) for stage in [*network.layers, network.readout])
    assert resources["synapses"] == synapses
    assert resources["estimated_loihi2_cores"] == 3  # one core per stage for a tiny network
    assert resources["delay_buffer_slots"] == sum(s.size * (s.delays.max() + 1) for s in [*network.layers,
                                                                                            network.readout])


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


def test_failed_write_leaves_nothing(tmp_path):
    network = make_network()
    inputs = random_inputs(network.input_size, network.input_kind, samples=2, steps=5)
    with pytest.raises(Exception):
        write_bundle(tmp_path / "b", network, "loihi2", inputs, simulate(network, inputs))  # no fixed network
    assert not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []
