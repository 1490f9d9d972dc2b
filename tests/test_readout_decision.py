"""The readout's own time constant and the network's decision rule, from config to every target.

DelRec's SSC model (``alexmaxad/DelRec``, ``src/SSC/snn.py``) has no readout neuron: its output
is the last synaptic stage, and ``src/utils.py`` decides by ``argmax_c sum_t output[t, c]`` and
trains on the cross-entropy of that sum. Here that is ``readout_tau = 1`` (no leak) with
``decision = "summed_output"``; the default stays ``sum_t softmax`` of a leaky readout.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from helpers import moderate_network, warmed_model

from delaydeploy.checkpoint import checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.config import NetworkConfig, get_preset
from delaydeploy.errors import CheckpointError, IRValidationError, NIRFormatError
from delaydeploy.exporters.nir import network_to_nir, nir_to_network, read_nir, write_nir
from delaydeploy.exporters.nir_executor import simulate_nir
from delaydeploy.finetune import model_from_network
from delaydeploy.fixed_reference import predict_fixed, simulate_fixed
from delaydeploy.ir import DECISION_RULES, Network, Readout
from delaydeploy.ir_file import fixed_network_from_bytes, fixed_network_to_bytes, network_from_bytes, network_to_bytes
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN, loss_function
from delaydeploy.quantize import quantize
from delaydeploy.reference import Simulation, evidence, predict, simulate

NO_LEAK = NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=5, kernel_size=9, tau=2.0, reset="soft",
                        batchnorm=False, bias=True, recurrent_layers=(False, True), max_recurrent_delay=5,
                        readout_tau=1.0, decision="summed_output")


def _inputs(config: NetworkConfig, steps: int = 25, samples: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((steps, samples, config.input_size), 0.3, dtype=torch.float64),
                           generator=generator)


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize("changes, words", [
    (dict(readout_tau=0.5), "readout_tau = 0.5 steps must be a finite number >= 1"),
    (dict(readout_tau=float("nan")), "readout_tau = nan"),
    (dict(readout_tau="1"), "readout_tau = '1'"),
    (dict(readout_tau=True), "readout_tau = True"),
    (dict(decision="softmax"), "decision = 'softmax' must be one of ('summed_softmax', 'summed_output')"),
])
def test_config_refuses_bad_readout_fields(changes, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        dataclasses.replace(NO_LEAK, **changes)


def test_config_defaults_and_readout_time_constant():
    default = NetworkConfig(input_size=3, hidden_sizes=(4,), num_classes=2, tau=1.5)
    assert (default.readout_tau, default.decision, default.readout_time_constant) == (None, "summed_softmax", 1.5)
    whole = dataclasses.replace(default, readout_tau=1)
    assert isinstance(whole.readout_tau, float) and whole.readout_time_constant == 1.0
    assert dataclasses.replace(default, readout_tau=4.0).readout_time_constant == 4.0


def test_presets_follow_the_authors_rules():
    # DelRec SSC: bare synaptic readout, argmax of the summed output; everything else: summed softmax of a leaky LIF
    ssc = get_preset("delrec_ssc").network
    assert (ssc.readout_time_constant, ssc.decision) == (1.0, "summed_output")
    for name in ("shd", "ssc", "gsc", "delrec_shd"):
        network = get_preset(name).network
        assert (network.readout_time_constant, network.decision) == (network.tau, "summed_softmax"), name


def test_old_checkpoint_without_the_fields_loads_with_the_defaults(tmp_path):
    config = dataclasses.replace(NO_LEAK, readout_tau=None, decision="summed_softmax")
    checkpoint = checkpoint_of(DelaySNN(config))
    data = checkpoint.to_dict()
    del data["config"]["readout_tau"], data["config"]["decision"]  # as written before the fields existed
    path = tmp_path / "old.pt"
    torch.save(data, path)
    loaded = load_checkpoint(path)
    assert (loaded.config.readout_tau, loaded.config.decision) == (None, "summed_softmax")
    assert loaded.config == config
    # and the new fields survive a save/load
    new = checkpoint_of(DelaySNN(NO_LEAK))
    save_checkpoint(new, tmp_path / "new.pt")
    assert load_checkpoint(tmp_path / "new.pt").config == NO_LEAK


@pytest.mark.parametrize("field, value, words", [
    ("decision", "max", "decision = 'max' must be one of"),
    ("readout_tau", 0.0, "readout_tau = 0.0 steps must be"),
    ("readout_tau", "fast", "readout_tau = 'fast' is not of type"),
])
def test_checkpoint_with_a_bad_field_is_refused(field, value, words):
    data = NO_LEAK.to_dict()
    data[field] = value
    with pytest.raises(CheckpointError, match=words):
        NetworkConfig.from_dict(data)


# ------------------------------------------------------------------ model
def test_readout_of_tau_one_is_the_bare_synaptic_output():
    model = warmed_model(NO_LEAK, seed=1)
    x = _inputs(NO_LEAK)
    with torch.no_grad():
        out = model(x, rounded=True)
        current = model.readout(out.spikes[-1], True)  # eval mode: dropout passes the spikes
    assert float(current.abs().max()) > 0.1
    assert torch.equal(out.readout, current)
    # a leaky readout (the network's tau) integrates the same current: v[t] = v[t-1] / 2 + I[t]
    leaky = warmed_model(dataclasses.replace(NO_LEAK, readout_tau=None), seed=1)
    with torch.no_grad():
        leaky_readout = leaky(x, rounded=True).readout
    expected = torch.zeros_like(current)
    for t in range(current.shape[0]):
        expected[t] = current[t] + (expected[t - 1] * 0.5 if t else 0.0)
    torch.testing.assert_close(leaky_readout, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(leaky_readout, current, atol=1e-3)


def test_gradients_reach_the_readout_weights_without_leak():
    model = warmed_model(NO_LEAK, seed=1).train()
    x = _inputs(NO_LEAK, steps=12, samples=4)
    out = model(x)
    assert float(out.spikes[-1].detach().sum()) > 0
    loss_function(out.readout, torch.tensor([0, 1, 2, 3]), decision=NO_LEAK.decision).backward()
    grads = {name: parameter.grad for name, parameter in model.readout.named_parameters()
             if name.split(".")[-1] in ("weight", "bias")}
    assert len(grads) == 2 and all(float(grad.abs().sum()) > 0 for grad in grads.values()), grads.keys()


# ------------------------------------------------------------------ the decision rules
def _disagreeing_readout() -> torch.Tensor:
    """``[T=4, B=2, C=2]``: sample 0 has one huge step for class 0 and three moderate steps for class 1
    (summed output: class 0; summed softmax: class 1); sample 1 is its mirror image."""
    readout = torch.zeros(4, 2, 2, dtype=torch.float64)
    readout[0, 0, 0], readout[1:, 0, 1] = 100.0, 2.0
    readout[0, 1, 1], readout[1:, 1, 0] = 100.0, 2.0
    return readout


def test_rules_on_a_readout_where_they_disagree():
    readout = _disagreeing_readout()
    assert predict(readout, decision="summed_output").tolist() == [0, 1]
    assert predict(readout, decision="summed_softmax").tolist() == [1, 0]
    assert predict(readout).tolist() == [1, 0]  # the default rule is summed softmax
    torch.testing.assert_close(evidence(readout, decision="summed_output"), readout.sum(0))
    torch.testing.assert_close(evidence(readout, decision="summed_softmax"), torch.softmax(readout, -1).sum(0))
    # each sample's own steps: sample 0 limited to its first step sees only the class-0 peak
    steps = torch.tensor([1, 4])
    assert predict(readout, steps, "summed_softmax").tolist() == [0, 0]
    torch.testing.assert_close(evidence(readout, steps, "summed_output")[0], readout[0, 0])
    # the Simulation API decides by the rule it carries
    assert Simulation([], readout, "summed_output").prediction().tolist() == [0, 1]
    assert Simulation([], readout).prediction().tolist() == [1, 0]
    with pytest.raises(IRValidationError, match=r"decision = 'argmax'; expected one of"):
        predict(readout, decision="argmax")


def test_loss_is_the_cross_entropy_of_the_rule_s_evidence():
    readout = _disagreeing_readout()
    labels = torch.tensor([0, 1])
    summed = readout.sum(0)
    torch.testing.assert_close(loss_function(readout, labels, decision="summed_output"),
                               torch.nn.functional.cross_entropy(summed, labels))
    softmax = torch.softmax(readout, -1).sum(0)
    torch.testing.assert_close(loss_function(readout, labels), torch.nn.functional.cross_entropy(softmax, labels))
    assert float(loss_function(readout, labels, decision="summed_output")) < 1e-6  # right by a margin of ~94
    assert float(loss_function(readout, labels)) > 0.5  # summed softmax calls both samples wrong


# ------------------------------------------------------------------ IR, lowering, files
def test_lowering_and_ir_file_keep_readout_tau_and_rule():
    network = lower(warmed_model(NO_LEAK, seed=2))
    assert (network.readout.tau, network.readout.decay, network.decision) == (1.0, 0.0, "summed_output")
    again = network_from_bytes(network_to_bytes(network))
    assert (again.readout.tau, again.decision) == (1.0, "summed_output")
    default = lower(warmed_model(dataclasses.replace(NO_LEAK, readout_tau=None, decision="summed_softmax"), seed=2))
    assert (default.readout.tau, default.decision) == (2.0, "summed_softmax")
    assert network_from_bytes(network_to_bytes(default)).decision == "summed_softmax"


def _rewrite_header(data: bytes, change) -> bytes:
    """The IR file ``data`` with its ``network.json`` changed by ``change(header)``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "network.json":
                header = json.loads(content)
                change(header)
                content = json.dumps(header).encode()
            target.writestr(name, content)
    return buffer.getvalue()


def test_ir_file_without_the_rule_reads_as_the_default_and_a_bad_rule_is_named():
    network = dataclasses.replace(moderate_network(3, readout_tau=1.0), decision="summed_output")
    data = network_to_bytes(network)
    assert network_from_bytes(data).decision == "summed_output"
    old = _rewrite_header(data, lambda header: header.pop("decision"))
    assert network_from_bytes(old, "old.ddn").decision == "summed_softmax"
    bad = _rewrite_header(data, lambda header: header.update(decision="vote"))
    with pytest.raises(IRValidationError, match=r"^bad\.ddn: network: decision = 'vote'; expected one of"):
        network_from_bytes(bad, "bad.ddn")
    missing = _rewrite_header(data, lambda header: header["layers"][0].update(arrays="nowhere"))
    with pytest.raises(IRValidationError, match=r"^missing\.ddn: array 'nowhere\.weights' is missing$"):
        network_from_bytes(missing, "missing.ddn")  # named once, not twice
    with pytest.raises(IRValidationError, match=r"decision = 'mean'"):
        dataclasses.replace(network, decision="mean")
    fixed = quantize(network)
    assert fixed.decision == "summed_output"
    assert fixed_network_from_bytes(fixed_network_to_bytes(fixed)).decision == "summed_output"
    old_fixed = _rewrite_header(fixed_network_to_bytes(fixed), lambda header: header.pop("decision"))
    assert fixed_network_from_bytes(old_fixed).decision == "summed_softmax"


def test_finetuning_raises_the_ir_back_to_a_model_with_its_readout():
    network = lower(warmed_model(NO_LEAK, seed=4))
    template = dataclasses.replace(NO_LEAK, readout_tau=None, decision="summed_softmax")
    model = model_from_network(network, template)
    assert (model.config.readout_time_constant, model.config.decision) == (1.0, "summed_output")
    again = lower(model)
    assert (again.readout.tau, again.decision) == (1.0, "summed_output")
    np.testing.assert_array_equal(again.readout.weights, network.readout.weights)


# ------------------------------------------------------------------ reference simulator and targets
def _assert_same_run(expected: Simulation, got: Simulation, *, min_spikes: float) -> None:
    """``got`` decides by ``expected``'s rule with the same spikes in every layer (each layer more
    than ``min_spikes`` of them), the readout within 1e-9 and the same classes."""
    assert got.decision == expected.decision
    for want, have in zip(expected.spikes, got.spikes):
        assert float(want.sum()) > min_spikes
        assert torch.equal(want, have)
    torch.testing.assert_close(got.readout, expected.readout, rtol=0, atol=1e-9)
    assert torch.equal(got.prediction(), expected.prediction())


@pytest.fixture(scope="module")
def no_leak_case() -> tuple[DelaySNN, Network, torch.Tensor]:
    model = warmed_model(NO_LEAK, seed=3)
    return model, lower(model), _inputs(NO_LEAK, steps=30, samples=8, seed=5)


def test_reference_equals_the_rounded_model(no_leak_case):
    model, network, x = no_leak_case
    with torch.no_grad():
        out = model(x, rounded=True)
    result = simulate(network, x)
    assert result.decision == "summed_output"
    _assert_same_run(result, Simulation(out.spikes, out.readout, "summed_output"), min_spikes=20)
    assert torch.equal(result.prediction(), result.readout.sum(0).argmax(-1))


def test_nir_round_trip_and_execution_keep_the_readout_and_rule(no_leak_case, tmp_path):
    _, network, x = no_leak_case
    path = write_nir(network, tmp_path / "no_leak.nir")
    back = read_nir(path)
    assert (back.readout.tau, back.decision) == (1.0, "summed_output")
    np.testing.assert_array_equal(back.readout.weights, network.readout.weights)
    executed = simulate_nir(path, x)
    assert executed.decision == "summed_output"
    _assert_same_run(simulate(network, x), executed, min_spikes=0)
    # a graph without the rule (a third party's, or written before it existed) reads as summed softmax
    graph = network_to_nir(network)
    del graph.metadata["decision"]
    assert nir_to_network(graph).decision == "summed_softmax"
    assert simulate_nir(graph, x).decision == "summed_softmax"
    graph.metadata["decision"] = "vote"
    with pytest.raises(NIRFormatError, match=r"graph metadata decision = 'vote'; expected one of"):
        nir_to_network(graph)


def test_loihi2_integers_at_readout_decay_zero(no_leak_case):
    """Loihi 2's 12-bit dv stops at 4095: the readout keeps trunc(v / 4096), a leak of 1/4096,
    and the integer model still decides as the float one by the network's rule."""
    rng = np.random.default_rng(7)
    readout = Readout("readout", rng.normal(0.0, 0.5, (4, 12)), rng.integers(0, 5, (4, 12)),
                      rng.normal(0.0, 0.1, 4), tau=1.0)
    alone = Network(12, [], readout, input_kind="binary", tail_steps=4, decision="summed_output")
    x = (rng.random((20, 5, 12)) < 0.4).astype(np.float64)
    fixed = quantize(alone, calibration=x)
    assert fixed.readout.dv == 4095 and fixed.decision == "summed_output"
    reference = simulate(alone, x).readout
    as_float = simulate_fixed(fixed, x).readout.double() / fixed.readout_scale
    # weights on an 8-bit grid, and at most 1/4095 of the previous steps kept
    assert float((as_float - reference).abs().max()) < 0.01 * float(reference.abs().max())
    # a real leak (tau = 2) would keep half of the previous step: far more than that
    leaky = simulate(dataclasses.replace(alone, readout=dataclasses.replace(readout, tau=2.0)), x).readout
    assert float((leaky - reference).abs().max()) > 0.2 * float(reference.abs().max())

    _, network, inputs = no_leak_case
    fixed = quantize(network, calibration=inputs.numpy())
    integers = simulate_fixed(fixed, inputs)
    assert fixed.readout.dv == 4095 and integers.decision == "summed_output"
    assert torch.equal(integers.prediction(), predict_fixed(fixed, integers))
    as_float = integers.readout.double() / fixed.readout_scale
    assert torch.equal(integers.prediction(), predict(as_float, decision="summed_output"))
    agreement = float((integers.prediction() == simulate(network, inputs).prediction()).double().mean())
    assert agreement >= 0.75


def test_every_rule_survives_every_file(tmp_path):
    """Each rule in DECISION_RULES is written and read back by the IR, fixed-point and NIR files."""
    for rule in DECISION_RULES:
        network = dataclasses.replace(moderate_network(6, readout_tau=1.0), decision=rule)
        assert network_from_bytes(network_to_bytes(network)).decision == rule
        assert fixed_network_from_bytes(fixed_network_to_bytes(quantize(network))).decision == rule
        assert read_nir(write_nir(network, tmp_path / f"{rule}.nir")).decision == rule


@pytest.fixture(scope="module")
def recurrent_no_leak() -> tuple[Network, np.ndarray]:
    network = dataclasses.replace(moderate_network(20, (10, 14, 9, 3), recurrent=True, reset="soft", readout_tau=1.0),
                                  decision="summed_output")
    x = (np.random.default_rng(1).random((16, 3, 10)) < 0.3).astype(np.float64)
    return network, x


@pytest.mark.lava
def test_lava_float_and_bit_accurate_runs_at_readout_decay_zero(recurrent_no_leak):
    """Lava's float LIF with dv = 1/tau = 1 keeps no membrane, exactly as the reference; the
    bit-accurate run (dv = 4095) equals the integer reference; both decide by the network's rule."""
    from delaydeploy.exporters.lava.graph import simulate_lava

    network, x = recurrent_no_leak
    lava = simulate_lava(network, x)
    assert lava.decision == "summed_output"
    _assert_same_run(simulate(network, x), lava, min_spikes=50)
    fixed = quantize(network, calibration=x)
    integers = simulate_fixed(fixed, x)
    chip = simulate_lava(fixed, x)
    assert chip.decision == "summed_output" and fixed.readout.dv == 4095
    for expected, got in zip(integers.spikes, chip.spikes):
        assert torch.equal(expected, got)
    assert torch.equal(chip.readout, integers.readout)
    assert torch.equal(chip.prediction(), integers.prediction())


def test_exports_record_the_rule(recurrent_no_leak, tmp_path):
    """Bundles (manifest, IR files, stored predictions) and netx files carry the rule; a netx
    readout of tau = 1 gets Loihi 2's smallest leak."""
    import h5py

    from delaydeploy.artifacts import load_artifact
    from delaydeploy.bundle import load_bundle
    from delaydeploy.export import export
    from delaydeploy.ir_file import save_network

    _, x = recurrent_no_leak
    # netx holds neither recurrent delays nor the soft reset
    network = dataclasses.replace(moderate_network(21, (10, 14, 9, 3), readout_tau=1.0), decision="summed_output")
    path = save_network(network, tmp_path / "no_leak.ddn")
    artifact = load_artifact(path)
    for target in ("lava", "loihi2"):
        bundle = load_bundle(export(artifact, target, tmp_path / target, x))
        assert bundle.manifest["decision"] == "summed_output"
        assert bundle.network.decision == "summed_output"
        stored = bundle.expected()
        assert stored.decision == "summed_output"
        np.testing.assert_array_equal(stored.prediction().numpy(), bundle.vectors["pred"])
    assert load_bundle(tmp_path / "loihi2").fixed.decision == "summed_output"
    _check_bundles_agree_on_the_rule(tmp_path / "loihi2")
    netx = export(artifact, "netx", tmp_path / "no_leak.net", x)
    with h5py.File(netx, "r") as handle:
        assert handle.attrs["decision"] == "summed_output"
        assert int(handle["layer/2/neuron/vDecay"][()]) == 4095


def _check_bundles_agree_on_the_rule(bundle_path) -> None:
    """A manifest or an integer network whose rule contradicts ``network.ddn`` is refused on load."""
    import hashlib
    import json

    from delaydeploy.bundle import load_bundle
    from delaydeploy.errors import BundleError

    manifest_path = bundle_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "decision": "summed_softmax"}))
    with pytest.raises(BundleError, match=r"disagree on the class decision rule"):
        load_bundle(bundle_path)
    fixed_path = bundle_path / "loihi2.ddn"
    fixed_path.write_bytes(_rewrite_header(fixed_path.read_bytes(),
                                           lambda header: header.update(decision="summed_softmax")))
    manifest["files"]["loihi2.ddn"] = hashlib.sha256(fixed_path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"'loihi2\.ddn': 'summed_softmax'"):
        load_bundle(bundle_path)
