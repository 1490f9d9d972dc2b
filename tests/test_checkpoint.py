"""Checkpoints round-trip, load safely, and bad files give one clear line and exit code 2."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from delaydeploy.checkpoint import checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.errors import CheckpointError
from delaydeploy.model import DelaySNN


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    config = dataclasses.replace(get_preset("synthetic").network, hidden_sizes=(8,))
    model = DelaySNN(config)
    path = save_checkpoint(checkpoint_of(model, preset="synthetic", metrics={"accuracy": 0.5}), tmp_path / "m.pt")
    return model, path


def test_round_trip_with_weights_only(saved):
    model, path = saved
    raw = torch.load(path, weights_only=True)  # no code runs on load
    assert raw["format"] == "delaydeploy-checkpoint" and torch.__version__.startswith(raw["versions"]["torch"])
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == model.config and checkpoint.metrics == {"accuracy": 0.5}
    rebuilt = checkpoint.build_model()
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)


def _run_cli(capsys, args):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign", "shape", "preset"])
def test_bad_checkpoint_is_one_clear_error(tmp_path, saved, capsys, damage):
    model, path = saved
    bad = tmp_path / "bad.pt"
    if damage == "truncate":
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        expected = "not a readable checkpoint"
    elif damage == "garbage":
        bad.write_bytes(b"\x00not a checkpoint" * 10)
        expected = "not a readable checkpoint"
    elif damage == "foreign":
        torch.save({"weight": torch.zeros(3)}, bad)
        expected = "not a delaydeploy checkpoint"
    elif damage == "shape":
        data = torch.load(path, weights_only=True)
        data["state_dict"]["blocks.0.synapses.dcls.weight"] = torch.zeros(8, 5, 1)
        torch.save(data, bad)
        expected = "blocks.0.synapses.dcls.weight has shape (8, 5, 1), the configuration needs (8, 12, 1)"
    else:
        data = torch.load(path, weights_only=True)
        data["config"]["hidden_sizes"] = [9]
        torch.save(data, bad)
        expected = "has shape"
    output = tmp_path / "out.npz"
    x = tmp_path / "x.npy"
    import numpy as np

    np.save(x, np.zeros((5, 1, 12)))
    code, err = _run_cli(capsys, ["run", str(bad), "--input", str(x), "-o", str(output)])
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and str(bad) in err[0] and expected in err[0]
    assert not output.exists()
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


def test_import_with_wrong_preset_fails_cleanly(tmp_path, capsys, snn_delays_vectors, state_dict_from):
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(snn_delays_vectors, "state_disc"), state)
    output = tmp_path / "model.pt"
    for args, expected in [
        (["--preset", "shd"], "model.0.weight has shape (32, 140, 1), the configuration needs (256, 140, 1)"),
        (["--preset", "shd", "--hidden", "32", "--layers", "3"],
         "are 2 hidden layers and the readout, the configuration has 3"),
        (["--preset", "ssc", "--hidden", "32", "--layers", "2"], "needs"),
    ]:
        code, err = _run_cli(capsys, ["import", "snn-delays", str(state), "-o", str(output), *args])
        assert code == 2 and len(err) == 1 and expected in err[0], err
        assert not output.exists()


def test_input_of_wrong_shape_is_refused(tmp_path, saved, capsys):
    import numpy as np

    _, path = saved
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((5, 1, 7)))
    code, err = _run_cli(capsys, ["run", str(path), "--input", str(x), "-o", str(tmp_path / "o.npz")])
    assert code == 2 and "expects [T, B, 12]" in err[0]
    np.save(x, np.full((5, 1, 12), 0.5))
    code, err = _run_cli(capsys, ["run", str(path), "--input", str(x), "-o", str(tmp_path / "o.npz")])
    assert code == 2 and "binary spikes" in err[0]
    assert not (tmp_path / "o.npz").exists()
