"""Laned Lava graphs compute exactly what the chip-shaped graph computes, and both what the reference computes.

A laned graph runs samples side by side (populations ``[lanes, N]``, one synapse ring per
lane, input streamed in blocks); the chip-shaped graph (``lanes=None``: Lava's ``DelayDense``
process and ``[N]`` populations) runs them one after the other. Both must give every spike
and the readout bit for bit alike, float and fixed point, with recurrent layers, soft reset
and graded input, where the lanes do not divide the samples (the last frame part-filled),
across worker processes, and with the compiled synapse kernel or its scipy fallback.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import moderate_network

from delaydeploy.exporters.lava import processes
from delaydeploy.exporters.lava.graph import build_lava_graph, simulate_lava
from delaydeploy.fixed_reference import simulate_fixed
from delaydeploy.reference import Simulation, simulate

pytestmark = pytest.mark.lava  # Lava's own models (the lava extra, Python 3.10)


def _assert_identical(expected: Simulation, actual: Simulation) -> None:
    for want, got in zip(expected.spikes, actual.spikes, strict=True):
        assert want.shape == got.shape
        assert bool((want == got).all())
    assert expected.readout.dtype == actual.readout.dtype
    assert bool((expected.readout == actual.readout).all())


def _assert_matches(reference: Simulation, actual: Simulation, readout_tolerance: float) -> None:
    for want, got in zip(reference.spikes, actual.spikes, strict=True):
        want = torch.as_tensor(want, dtype=torch.float64)
        assert want.sum() > 0, "a silent layer would prove little"
        assert int((want != got).sum()) == 0
    error = (torch.as_tensor(reference.readout, dtype=torch.float64) - actual.readout.double()).abs().max()
    assert float(error) <= readout_tolerance


def _counts(seed: int, steps: int, samples: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(0.5, (steps, samples, channels)).astype(np.float64)


@pytest.mark.parametrize("options", [
    dict(recurrent=True, reset="soft"),
    dict(recurrent=True, threshold_rule=">", tau=1.5, max_delay=9),
], ids=["recurrent-soft-reset", "recurrent-strict"])
def test_float_lanes_equal_chip_graph_and_reference(options) -> None:
    network = moderate_network(70, (9, 12, 8, 4), input_kind="counts", **options)
    x = _counts(71, 13, 7, 9)
    assert x.max() > 1  # graded input
    chip = simulate_lava(network, x, lanes=None)
    _assert_matches(simulate(network, x), chip, 1e-9)
    for lanes in (3, 7, 64):  # three frames with the last one part-filled; one frame; more lanes than samples
        _assert_identical(chip, simulate_lava(network, x, lanes=lanes))


@pytest.mark.parametrize("options", [
    dict(recurrent=True, reset="soft", weight_exp=-2),
    dict(recurrent=True, input_kind="analog", input_scale=4.0, weight_exp=1),
], ids=["recurrent-soft-reset-negative-exp", "graded-analog-positive-exp"])
def test_fixed_lanes_equal_chip_graph_and_integer_reference(random_fixed_network, options) -> None:
    network = random_fixed_network(72, [9, 12, 8, 4], **options)
    rng = np.random.default_rng(73)
    if options.get("input_kind") == "analog":
        x = rng.random((13, 7, 9)) * 3.0 * (rng.random((13, 7, 9)) < 0.4)
    else:
        x = (rng.random((13, 7, 9)) < 0.3).astype(np.float64)
    chip = simulate_lava(network, x, lanes=None)
    assert chip.readout.dtype == torch.int64
    _assert_matches(simulate_fixed(network, x), chip, 0.0)
    for lanes in (3, 7):
        _assert_identical(chip, simulate_lava(network, x, lanes=lanes))


def test_workers_merge_their_shares_in_order() -> None:
    network = moderate_network(74, (8, 10, 7, 3), recurrent=True)
    x = (np.random.default_rng(75).random((10, 130, 8)) < 0.3).astype(np.float64)
    alone = simulate_lava(network, x, lanes=64, workers=1)
    _assert_matches(simulate(network, x), alone, 1e-9)
    _assert_identical(alone, simulate_lava(network, x, lanes=64, workers=2))


def test_scipy_fallback_equals_compiled_kernel(monkeypatch, random_fixed_network) -> None:
    """Without a C compiler the synapses use scipy's sparse product: the same floats and integers."""
    float_network = moderate_network(76, (8, 10, 7, 3), recurrent=True, input_kind="counts")
    fixed_network = random_fixed_network(77, [8, 10, 7, 3], recurrent=True, weight_exp=-1, input_kind="counts")
    x = _counts(78, 12, 5, 8)
    compiled = [simulate_lava(network, x, lanes=lanes) for network in (float_network, fixed_network)
                for lanes in (None, 2)]
    assert processes.native.ring_step(False) is not None
    monkeypatch.setattr(processes.native, "ring_step", lambda integer: None)  # Lava's processes are forked
    fallback = [simulate_lava(network, x, lanes=lanes) for network in (float_network, fixed_network)
                for lanes in (None, 2)]
    for expected, actual in zip(compiled, fallback, strict=True):
        _assert_identical(expected, actual)


def test_a_laned_graph_needs_the_fast_synapses() -> None:
    network = moderate_network(79, (4, 5, 3))
    with pytest.raises(ValueError, match="lanes"):
        build_lava_graph(network, np.zeros((3, 2, 4)), synapse="stock", lanes=2)


def test_verify_every_test_sample_of_an_shd_folder_on_a_loihi2_bundle(tmp_path, snn_delays_vectors, state_dict_from,
                                                                       capsys) -> None:
    """``verify BUNDLE --data-dir``: an imported official SHD model's Loihi 2 bundle, checked on
    every sample of an SHD-layout test file, bit for bit on Lava against the integer reference;
    the bundle recorded its preset, so none is named, and naming another is refused."""
    from helpers import write_heidelberg_h5

    from delaydeploy.cli import main

    rng = np.random.default_rng(80)

    def recordings(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
        events = [int(n) for n in rng.integers(200, 1200, count)]
        return [(np.sort(rng.random(n) * 0.9), rng.integers(0, 700, n)) for n in events]

    data = tmp_path / "shd"
    data.mkdir()
    write_heidelberg_h5(data / "shd_train.h5", recordings(2), [0, 1])
    write_heidelberg_h5(data / "shd_test.h5", recordings(300), [int(label) for label in rng.integers(0, 20, 300)])
    torch.save(state_dict_from(snn_delays_vectors, "state_disc"), tmp_path / "state.pt")
    model, bundle = tmp_path / "model.pt", tmp_path / "bundle"
    assert main(["import", "snn-delays", str(tmp_path / "state.pt"), "--preset", "shd", "--hidden", "32",
                 "--layers", "2", "-o", str(model)]) == 0
    assert main(["export", str(model), "--target", "loihi2", "-o", str(bundle)]) == 0
    capsys.readouterr()
    assert main(["verify", str(bundle), "--data-dir", str(data), "--quiet"]) == 0  # the bundle knows its preset
    out = capsys.readouterr().out
    assert "lava-cpu vs fixed-reference on every sample of the test split: 300 samples" in out
    assert "verified: 0 spike mismatches on all 300 samples" in out
    assert main(["verify", str(bundle), "--data-dir", str(data), "--preset", "ssc", "--quiet"]) == 2
    assert f"{bundle} was made for preset 'shd'; --preset ssc contradicts it" in capsys.readouterr().err
