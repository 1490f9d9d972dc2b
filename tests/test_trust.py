"""A verdict the artifact cannot forge: each test is an attack on a bundle, and fails if the
defence against it goes away.

Nothing a bundle carries runs (its ``run.py`` is compared byte for byte with the installed
script, never executed); every derived file is derived again from ``network.ddn`` and compared
element by element; a signature ties the whole folder to a key; results produced elsewhere
are checked back with ``compare``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ec_keys, moderate_network

from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.ir_file import fixed_network_from_bytes, fixed_network_to_bytes, save_network
from delaydeploy.model import DelaySNN

SIDE_EFFECT = "print-me-if-run.txt"


def _rehash(bundle: Path) -> None:
    """What a forger does after changing a file: write its new sha256 into the manifest."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {name: hashlib.sha256((bundle / name).read_bytes()).hexdigest() for name in manifest["files"]}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """One PyNN bundle (signed and not), one Loihi 2 bundle, of a network whose layers fire."""
    tmp = tmp_path_factory.mktemp("trust")
    network = moderate_network(11)
    ir = save_network(network, tmp / "net.ddn")
    x = (np.random.default_rng(3).random((20, 3, network.input_size)) < 0.2).astype(np.float64)
    np.save(tmp / "x.npy", x)
    key, public, other = ec_keys(tmp)
    for target, name, extra in (("pynn", "pynn", []), ("pynn", "signed", ["--sign", str(key)]),
                                ("loihi2", "loihi2", [])):
        assert main(["export", str(ir), "--target", target, "-o", str(tmp / name), "--input", str(tmp / "x.npy"),
                     *extra]) == 0
    return {"tmp": tmp, "x": tmp / "x.npy", "key": key, "public": public, "other": other,
            **{name: tmp / name for name in ("pynn", "signed", "loihi2")}}


@pytest.fixture()
def copy_of(made, tmp_path):
    def copy(name: str) -> Path:
        return Path(shutil.copytree(made[name], tmp_path / name))

    return copy


def _failed_line(capsys) -> str:
    out = capsys.readouterr().out.strip().splitlines()
    assert out and out[-1].startswith("FAILED: "), out
    return out[-1]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_changed_run_py_never_runs_and_is_not_verified(copy_of, made, tmp_path, capsys, monkeypatch):
    """The issue's attack: one extra line in run.py that writes a file, the manifest re-hashed."""
    bundle = copy_of("pynn")
    witness = tmp_path / SIDE_EFFECT
    script = bundle / "run.py"
    script.write_text(script.read_text().replace(
        "def main() -> None:", f"open({str(witness)!r}, 'w').write('ran')\n\n\ndef main() -> None:"))
    _rehash(bundle)
    monkeypatch.chdir(tmp_path)
    assert main(["verify", str(bundle)]) == 1
    assert _failed_line(capsys) == (f"FAILED: {bundle}/run.py: not the run.py this delaydeploy writes (changed, or "
                                    "written by another delaydeploy version: export again); it is never run")
    assert main(["simulate", str(bundle), "--backend", "nest", "-o", str(tmp_path / "o.npz")]) == 2
    assert f"{bundle}/run.py: not the run.py this delaydeploy writes" in _error_line(capsys)
    for command in (["inspect", str(bundle)], ["compare", str(bundle), str(made["x"])]):
        assert main(command) == 2
        assert "run.py: not the run.py" in _error_line(capsys)
    assert not witness.exists() and not (tmp_path / "o.npz").exists()


def test_a_run_py_that_copies_the_test_vectors_is_not_verified(copy_of, capsys):
    """A script that writes the stored answers instead of simulating would pass any comparison of outputs."""
    bundle = copy_of("pynn")
    script = bundle / "run.py"
    honest = script.read_text()
    forged = honest.replace(
        "    result = simulate(model, connections, np.load(args.input), args.simulator, args.threads, args.codegen)\n",
        "    result = dict(np.load(HERE / 'test_vectors.npz'))\n")
    assert forged != honest, "the line the forgery replaces is no longer in run.py"
    script.write_text(forged)
    _rehash(bundle)
    assert main(["verify", str(bundle)]) == 1
    assert "run.py: not the run.py this delaydeploy writes" in _failed_line(capsys)


def test_one_weight_moved_by_one_ulp_is_found_and_named(copy_of, capsys):
    bundle = copy_of("pynn")
    connections = _arrays(bundle / "pynn_connections.npz")
    weights = connections["hidden1/input/weight"]
    before = float(weights[7])
    weights[7] = np.nextafter(weights[7], np.inf)
    np.savez_compressed(bundle / "pynn_connections.npz", **connections)
    _rehash(bundle)
    pre, post = connections["hidden1/input/pre"][7], connections["hidden1/input/post"][7]
    assert main(["verify", str(bundle)]) == 1
    assert _failed_line(capsys) == (f"FAILED: {bundle}/pynn_connections.npz: hidden1/input/weight[7] (synapse "
                                    f"{pre} -> {post}): {float(weights[7])!r} against expected {before!r}")


def test_a_delay_of_the_pynn_model_is_found_and_named(copy_of, capsys):
    bundle = copy_of("pynn")
    connections = _arrays(bundle / "pynn_connections.npz")
    connections["readout/input/delay"][0] += 1
    np.savez_compressed(bundle / "pynn_connections.npz", **connections)
    _rehash(bundle)
    assert main(["verify", str(bundle)]) == 1
    assert "pynn_connections.npz: readout/input/delay[0] (synapse " in _failed_line(capsys)


def test_a_changed_neuron_of_the_pynn_model_is_found_and_named(copy_of, capsys):
    bundle = copy_of("pynn")
    model = json.loads((bundle / "pynn_model.json").read_text())
    model["stages"][1]["v_thresh"] *= 0.5
    (bundle / "pynn_model.json").write_text(json.dumps(model))
    _rehash(bundle)
    assert main(["verify", str(bundle)]) == 1
    assert "pynn_model.json: ['stages'][1]['v_thresh']: 0.5 against expected 1.0" in _failed_line(capsys)


def test_one_loihi2_weight_changed_is_found_and_named(copy_of, capsys):
    bundle = copy_of("loihi2")
    fixed = fixed_network_from_bytes((bundle / "loihi2.ddn").read_bytes())
    original = int(fixed.layers[0].weights[2, 3])
    fixed.layers[0].weights[2, 3] += 1
    (bundle / "loihi2.ddn").write_bytes(fixed_network_to_bytes(fixed))
    _rehash(bundle)
    assert main(["verify", str(bundle), "--backend", "fixed-reference"]) == 1
    assert _failed_line(capsys) == (f"FAILED: {bundle}/loihi2.ddn: layers[hidden0].weights[2, 3] (the quantisation "
                                    f"of network.ddn): {original + 1} against expected {original}")


@pytest.mark.parametrize("name", ["pynn", "loihi2"])
def test_one_test_vector_spike_moved_is_found_and_named(copy_of, capsys, name):
    bundle = copy_of(name)
    vectors = _arrays(bundle / "test_vectors.npz")
    spikes = vectors["spikes_1"]
    step, sample, neuron = (int(i) for i in np.argwhere(spikes == 1)[0])
    spikes[step, sample, neuron] = 0.0
    np.savez_compressed(bundle / "test_vectors.npz", **vectors)
    _rehash(bundle)
    assert main(["verify", str(bundle), "--backend", "reference"]) == 1
    assert _failed_line(capsys) == (f"FAILED: {bundle}/test_vectors.npz: hidden1, neuron {neuron}, time step {step}, "
                                    f"sample {sample}: 0.0 against expected 1.0 (the oracle's run of the bundle's "
                                    "inputs)")


def test_a_derived_manifest_entry_changed_is_found_and_named(copy_of, capsys):
    bundle = copy_of("loihi2")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["latency_offsets"]["readout"] = 2
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(bundle), "--backend", "fixed-reference"]) == 1
    assert "manifest.json: ['latency_offsets']['readout']: 2 against expected 3" in _failed_line(capsys)


def test_a_file_the_manifest_does_not_list_is_not_covered(copy_of, capsys):
    bundle = copy_of("pynn")
    (bundle / "helper.py").write_text("print('hello')\n")
    assert main(["verify", str(bundle)]) == 1
    assert f"{bundle}/helper.py: not part of the bundle (manifest.json does not list it)" in _failed_line(capsys)


def test_a_signed_bundle_verifies_with_its_key_and_inspect_names_the_key(made, capsys):
    assert main(["verify", str(made["signed"]), "--trusted-key", str(made["public"]), "--backend", "reference"]) == 0
    out = capsys.readouterr().out
    fingerprint = hashlib.sha256(made["public"].read_bytes()).hexdigest()  # openssl's PEM is the SPKI PEM
    assert f"signed by the trusted key {made['public']} ({fingerprint}); no file changed since" in out
    assert "verified: 0 spike mismatches" in out
    assert main(["inspect", str(made["signed"])]) == 0
    assert f"signature: signed by key {fingerprint}" in capsys.readouterr().out
    assert main(["inspect", str(made["pynn"])]) == 0
    assert "signature: none (unsigned bundle)" in capsys.readouterr().out


@pytest.mark.parametrize("file", ["manifest.json", "network.ddn", "test_vectors.npz", "run.py", "pynn_model.json",
                                  "pynn_connections.npz"])
def test_any_byte_changed_after_signing_is_refused_naming_the_file(copy_of, made, capsys, file):
    bundle = copy_of("signed")
    data = bytearray((bundle / file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / file).write_bytes(bytes(data))
    if file != "manifest.json":
        _rehash(bundle)
    assert main(["verify", str(bundle), "--trusted-key", str(made["public"])]) == 2
    changed = "manifest.json" if file == "manifest.json" else f"manifest.json, {file}"
    assert _error_line(capsys) == f"error: {bundle}: changed since it was signed: {changed}"


def test_a_file_added_after_signing_is_refused(copy_of, made, capsys):
    bundle = copy_of("signed")
    (bundle / ".gitignore").write_text("*\n")
    assert main(["verify", str(bundle), "--trusted-key", str(made["public"])]) == 2
    assert _error_line(capsys) == f"error: {bundle}: changed since it was signed: .gitignore (added)"


def test_a_signature_by_another_key_is_refused_naming_both_keys(made, capsys):
    assert main(["verify", str(made["signed"]), "--trusted-key", str(made["other"])]) == 2
    line = _error_line(capsys)
    assert f"signed by key {hashlib.sha256(made['public'].read_bytes()).hexdigest()}, not by the trusted key " \
           f"{made['other']} ({hashlib.sha256(made['other'].read_bytes()).hexdigest()})" in line


def test_a_forged_signature_file_is_refused(copy_of, made, capsys):
    """Someone without the key copies the key's fingerprint into a signature of their own making."""
    bundle = copy_of("signed")
    signature = json.loads((bundle / "bundle.sig").read_text())
    signature["dsseEnvelope"]["signatures"][0]["sig"] = signature["dsseEnvelope"]["signatures"][0]["sig"][::-1]
    (bundle / "bundle.sig").write_text(json.dumps(signature))
    assert main(["verify", str(bundle), "--trusted-key", str(made["public"])]) == 2
    assert f"{bundle}/bundle.sig: " in _error_line(capsys)


def test_trusted_key_on_an_unsigned_bundle_is_refused(made, capsys):
    assert main(["verify", str(made["pynn"]), "--trusted-key", str(made["public"])]) == 2
    assert f"{made['pynn']}: unsigned (no bundle.sig)" in _error_line(capsys)


def test_signing_refuses_a_key_that_is_not_an_ec_private_key_before_writing(made, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["export", str(made["tmp"] / "net.ddn"), "--target", "lava", "-o", str(out), "--sign",
                 str(made["public"])]) == 2
    assert f"{made['public']}: not a PEM private key" in _error_line(capsys)
    assert main(["export", str(made["tmp"] / "net.ddn"), "--target", "nir", "-o", str(tmp_path / "m.nir"), "--sign",
                 str(made["key"])]) == 2
    assert "--sign signs a bundle" in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def _results(made, tmp_path: Path, name: str = "o.npz") -> Path:
    """Results as run.py writes them: here, the reference's own run (through ``simulate``)."""
    path = tmp_path / name
    assert main(["simulate", str(made["pynn"]), "--backend", "reference", "-o", str(path)]) == 0
    return path


def test_compare_accepts_results_that_agree(made, tmp_path, capsys):
    results = _results(made, tmp_path)
    assert main(["compare", str(made["pynn"]), str(results)]) == 0
    out = capsys.readouterr().out
    assert "vs reference of" in out and "on 3 samples x 20 steps" in out and "verified: 0 spike mismatches" in out
    assert main(["compare", str(made["pynn"]), str(results), "--input", str(made["x"])]) == 0


def test_compare_names_a_moved_spike(made, tmp_path, capsys):
    results = _results(made, tmp_path)
    arrays = _arrays(results)
    step, sample, neuron = (int(i) for i in np.argwhere(arrays["spikes_0"] == 1)[2])
    arrays["spikes_0"][step, sample, neuron] = 0.0
    arrays["spikes_0"][step + 1, sample, neuron] = 1.0 - arrays["spikes_0"][step + 1, sample, neuron]
    np.savez(results, **arrays)
    capsys.readouterr()
    assert main(["compare", str(made["pynn"]), str(results)]) == 1
    assert _failed_line(capsys) == (f"FAILED: first divergence: hidden0, neuron {neuron}, time step {step}, "
                                    f"sample {sample}: expected 1.0, got 0.0")


@pytest.mark.parametrize("damage, message", [
    ("no readout", "lacks readout (results hold spikes_0, spikes_1, readout)"),
    ("short time axis", "spikes_1 has 24 time steps; the reference's time axis has 25 (the input's 20 steps + the "
                        "network's tail of 5)"),
    ("one sample", "spikes_0 has shape (25, 1, 30); expected (25, 3, 30) [time steps, samples, neurons]"),
    ("an array", "one array; results are an .npz archive of spikes_<l> and readout"),
])
def test_compare_refuses_results_it_cannot_compare(made, tmp_path, capsys, damage, message):
    results = _results(made, tmp_path)
    arrays = _arrays(results)
    if damage == "no readout":
        del arrays["readout"]
    elif damage == "short time axis":
        arrays["spikes_1"] = arrays["spikes_1"][:-1]
    elif damage == "one sample":
        arrays["spikes_0"] = arrays["spikes_0"][:, :1]
    if damage == "an array":
        np.save(tmp_path / "one.npy", arrays["readout"])
        results = tmp_path / "one.npy"
    else:
        np.savez(results, **arrays)
    capsys.readouterr()
    assert main(["compare", str(made["pynn"]), str(results)]) == 2
    assert _error_line(capsys) == f"error: {results}: {message}"


def test_a_bundle_records_its_dataset_and_a_contradicting_preset_is_refused(tmp_path, capsys):
    torch.manual_seed(0)
    preset = get_preset("synthetic")
    checkpoint = save_checkpoint(checkpoint_of(DelaySNN(preset.network), preset="synthetic"), tmp_path / "m.pt")
    bundle = tmp_path / "b"
    assert main(["export", str(checkpoint), "--target", "lava", "-o", str(bundle), "--samples", "2"]) == 0
    record = json.loads((bundle / "manifest.json").read_text())["dataset"]
    assert record == {"preset": "synthetic", "dataset": "synthetic", "options": preset.dataset_options}
    assert main(["inspect", str(bundle)]) == 0
    assert "dataset: preset synthetic (synthetic), test split as the dataset defines it" in capsys.readouterr().out
    assert main(["verify", str(bundle), "--preset", "shd", "--data-dir", str(tmp_path)]) == 2
    assert _error_line(capsys) == (f"error: {bundle} was made for preset 'synthetic'; --preset shd contradicts it "
                                   "(leave --preset out)")
