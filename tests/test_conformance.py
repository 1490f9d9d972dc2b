"""The imported official models reproduce the authors' own outputs (conformance vectors)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import import_and_run

from delaydeploy.cli import main
from delaydeploy.errors import CheckpointError
from delaydeploy.importers import import_delrec, import_snn_delays
from delaydeploy.lowering import lower
from delaydeploy.reference import simulate

HALF_KERNEL = 12  # (K-1)//2 for K = 25


@pytest.fixture(scope="module")
def official(snn_delays_vectors, state_dict_from):
    """``official(kind)``: the imported SNN-delays checkpoint, ``kind`` = "disc" or "cont"."""

    def load(kind: str):
        return import_snn_delays(state_dict_from(snn_delays_vectors, f"state_{kind}"), "shd", hidden=32, layers=2)

    return load


def test_rounded_model_matches_official_output(snn_delays_vectors, official):
    model = official("disc").build_model()
    with torch.no_grad():
        out = model(torch.from_numpy(snn_delays_vectors["x"]), rounded=True)
    for layer, spikes in enumerate(out.spikes):
        np.testing.assert_array_equal(spikes.numpy(), snn_delays_vectors[f"spk_disc_{layer}"])
    np.testing.assert_allclose(out.readout.numpy(), snn_delays_vectors["out_disc"], rtol=0, atol=1e-5)


def test_continuous_model_matches_official_output(snn_delays_vectors, official):
    model = official("cont").build_model()
    with torch.no_grad():
        out = model(torch.from_numpy(snn_delays_vectors["x"]))
    for layer, spikes in enumerate(out.spikes):
        np.testing.assert_array_equal(spikes.numpy(), snn_delays_vectors[f"spk_cont_{layer}"])
    np.testing.assert_allclose(out.readout.numpy(), snn_delays_vectors["out_cont"], rtol=0, atol=1e-4)


def test_integer_delays_are_the_official_ones(snn_delays_vectors, official):
    network = lower(official("disc").build_model())
    stages = [*network.layers, network.readout]
    for index, stage in enumerate(stages):
        np.testing.assert_array_equal(stage.delays, snn_delays_vectors[f"delay_{index}"])


def test_reference_official_semantics_matches_everywhere(snn_delays_vectors, official):
    network = lower(official("disc").build_model())
    result = simulate(network, snn_delays_vectors["x"], semantics="official")
    steps = snn_delays_vectors["x"].shape[0]
    for layer, spikes in enumerate(result.spikes):
        assert spikes.shape[0] == steps + (layer + 1) * HALF_KERNEL
        np.testing.assert_array_equal(spikes.numpy(), snn_delays_vectors[f"spk_disc_{layer}"])
    np.testing.assert_allclose(result.readout.numpy(), snn_delays_vectors["out_disc"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.readout.numpy(), snn_delays_vectors["out_ref"], rtol=0, atol=1e-6)


def test_reference_streaming_semantics_matches_before_the_first_cut(snn_delays_vectors, official):
    network = lower(official("disc").build_model())
    result = simulate(network, snn_delays_vectors["x"], semantics="streaming")
    valid = snn_delays_vectors["x"].shape[0] + HALF_KERNEL
    assert result.readout.shape[0] == snn_delays_vectors["out_disc"].shape[0]  # tail = 3 half kernels
    for layer, spikes in enumerate(result.spikes):
        np.testing.assert_array_equal(spikes[:valid].numpy(), snn_delays_vectors[f"spk_disc_{layer}"][:valid])
    np.testing.assert_allclose(result.readout[:valid].numpy(), snn_delays_vectors["out_disc"][:valid], atol=1e-5)
    # beyond the cut the streaming layers keep running (the folded BatchNorm bias makes them fire)
    later = result.spikes[0][valid:].sum()
    assert later > 0


def test_delrec_import_reproduces_official_run(delrec_vectors, state_dict_from):
    checkpoint = import_delrec(state_dict_from(delrec_vectors, "state"), "delrec_shd")
    network = lower(checkpoint.build_model())
    np.testing.assert_array_equal(network.layers[1].recurrent_delays[0], delrec_vectors["rounded_recurrent_delays_0"])
    result = simulate(network, delrec_vectors["input"])
    for layer in (0, 1):
        np.testing.assert_array_equal(result.spikes[layer].numpy(), delrec_vectors[f"hidden_spikes_{layer}"])
    np.testing.assert_allclose(result.readout.numpy(), delrec_vectors["output_v_seq"], rtol=0, atol=1e-9)


def test_delrec_model_matches_official_run(delrec_vectors, state_dict_from):
    model = import_delrec(state_dict_from(delrec_vectors, "state"), "delrec_shd").build_model()
    with torch.no_grad():
        out = model(torch.from_numpy(delrec_vectors["input"]), rounded=True)
    for layer in (0, 1):
        np.testing.assert_array_equal(out.spikes[layer].numpy(), delrec_vectors[f"hidden_spikes_{layer}"])
    np.testing.assert_allclose(out.readout.numpy(), delrec_vectors["output_v_seq"], rtol=0, atol=1e-9)


def test_cli_import_and_run_official(tmp_path, snn_delays_vectors, state_dict_from):
    for kind in ("disc", "cont"):
        state = tmp_path / f"state_{kind}.pt"
        torch.save(state_dict_from(snn_delays_vectors, f"state_{kind}"), state)
        model = tmp_path / f"model_{kind}.pt"
        assert main(["import", "snn-delays", str(state), "--preset", "shd", "--hidden", "32", "--layers", "2",
                     "-o", str(model)]) == 0
        np.save(tmp_path / "x.npy", snn_delays_vectors["x"])
        out = tmp_path / f"out_{kind}.npz"
        args = ["run", str(model), "--input", str(tmp_path / "x.npy"), "--semantics", "official", "-o", str(out)]
        assert main(args + (["--continuous"] if kind == "cont" else [])) == 0
        with np.load(out) as result:
            assert set(result.files) == {"readout", "pred", "spikes_0", "spikes_1"}
            np.testing.assert_allclose(result["readout"], snn_delays_vectors[f"out_{kind}"], atol=1e-4)
            for layer in (0, 1):
                np.testing.assert_array_equal(result[f"spikes_{layer}"], snn_delays_vectors[f"spk_{kind}_{layer}"])
            assert result["pred"].shape == (3,)


def test_cli_import_delrec_and_verify(tmp_path, delrec_vectors, state_dict_from, capsys):
    result = import_and_run(tmp_path, "delrec", state_dict_from(delrec_vectors, "state"), "shd",
                            delrec_vectors["input"])
    for layer in (0, 1):
        np.testing.assert_array_equal(result[f"spikes_{layer}"], delrec_vectors[f"hidden_spikes_{layer}"])
    np.testing.assert_allclose(result["readout"], delrec_vectors["output_v_seq"], rtol=0, atol=1e-9)
    assert main(["import", "delrec", str(tmp_path / "state.pt"), "--preset", "gsc",
                 "-o", str(tmp_path / "bad.pt")]) == 2
    assert "delrec has no 'gsc' recipe" in capsys.readouterr().err


def test_imports_refuse_delays_the_authors_code_cannot_hold(snn_delays_vectors, delrec_vectors, state_dict_from):
    """A position outside DCLS's clamp, or a negative recurrent delay, names the official tensor."""
    state = state_dict_from(snn_delays_vectors, "state_disc")
    state["model.0.P"] = state["model.0.P"].clone()
    state["model.0.P"].view(-1)[3] = 40.0
    with pytest.raises(CheckpointError, match=r"model\.0\.P\[0, 0, 3, 0\] = 40; positions of a 25-tap kernel "
                                              r"lie in \[-12, 12\]"):
        import_snn_delays(state, "shd", hidden=32, layers=2)
    state = state_dict_from(delrec_vectors, "state")
    key = next(key for key in state if key.endswith("recurrent_delays"))
    state[key] = state[key].clone()
    state[key][1] = -3.0
    with pytest.raises(CheckpointError, match=rf"{re.escape(key)}\[1\] = -3; recurrent delays lie in \[0, inf\]"):
        import_delrec(state, "delrec_shd")


def test_delrec_shd_with_feedforward_delays_gets_the_official_padding(delrec_vectors, state_dict_from):
    """The authors' SHD DCLS (src/SHD/snn.py under configs/perf_SHD.py) pads (K-1)//2 steps on the
    right: such a state is imported with the official semantics, not with the SSC timing. With every
    position at K//2 (delay 0) the DCLS stage is the official run's Linear stage on the first T steps,
    and every later stage is (K-1)//2 steps longer (tests/test_import_delrec_shd_delays.py checks
    the DCLS models against an independent re-implementation of the authors' forward)."""
    state = state_dict_from(delrec_vectors, "state")
    state["layers.0.weight"] = state["layers.0.weight"][:, :, None]
    state["layers.0.P"] = torch.full((1, *state["layers.0.weight"].shape[:2], 1), 12.0,
                                     dtype=state["layers.0.weight"].dtype)
    checkpoint = import_delrec(state, "delrec_shd")
    assert (checkpoint.config.semantics, checkpoint.config.delay_stages) == ("official", (True, False, False))
    model = checkpoint.build_model().double()
    steps = delrec_vectors["input"].shape[0]
    with torch.no_grad():
        out = model(torch.from_numpy(delrec_vectors["input"]), rounded=True)
    result = simulate(lower(model), delrec_vectors["input"], semantics="official")
    for run in (out, result):
        for layer in (0, 1):
            assert run.spikes[layer].shape[0] == steps + HALF_KERNEL
            np.testing.assert_array_equal(run.spikes[layer][:steps].numpy(), delrec_vectors[f"hidden_spikes_{layer}"])
        assert run.readout.shape[0] == steps + HALF_KERNEL
        np.testing.assert_allclose(run.readout[:steps].numpy(), delrec_vectors["output_v_seq"], rtol=0, atol=1e-9)
