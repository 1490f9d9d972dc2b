"""netx files load in lava-dl's ``hdf5.Network`` and run on Lava's CPU backend exactly as the
integer reference computes them, spike for spike and readout membrane for membrane.

Alignment (documented in :mod:`delaydeploy.exporters.netx`): stage ``k`` (1-based) computes the reference's
step ``t`` at Lava step ``t + k + 1`` (the monitor's row ``t + k``); netx's LIF adds its bias
from Lava step 1, so the runner starts every bias at zero and switches stage ``k``'s bias on
after ``k`` steps, when the IR's bias for that stage starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import with_per_neuron_delays, with_pruned_synapses

from delaydeploy.errors import ConstraintError
from delaydeploy.fixed_point import FixedLayer, FixedNetwork, input_message_bits, input_payload
from delaydeploy.fixed_reference import simulate_fixed

pytestmark = pytest.mark.lava  # Lava's own models (the lava extra, Python 3.10)

pytest.importorskip("lava.lib.dl.netx", reason="lava-dl is not installed (see the Makefile's install recipe)")


def _network(seed: int, sizes: list[int], *, weight_exp: int = 0, input_kind: str = "binary",
             tail_steps: int = 4) -> FixedNetwork:
    """Integers netx can hold: even effective weights ``w * 2**weight_exp``, biases in a_in units."""
    rng = np.random.default_rng(seed)
    stages = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        readout = index == len(sizes) - 2
        effective = 2 * rng.integers(-31, 64, (n_out, n_in))
        weights = effective >> weight_exp if weight_exp >= 0 else effective << -weight_exp
        bias = rng.integers(-40, 60, n_out) * 64  # bias_mant << bias_exp with bias_exp 6: multiples of 64
        stages.append(FixedLayer("readout" if readout else f"hidden{index}", weights, weight_exp,
                                 rng.integers(0, 9, (n_out, n_in)), bias // 64, np.full(n_out, 6), du=4095,
                                 dv=int(rng.integers(200, 3000)),
                                 vth=131071 if readout else int(rng.integers(150, 400))))
    return FixedNetwork(sizes[0], stages[:-1], stages[-1], input_kind=input_kind, tail_steps=tail_steps)


def _load_netx(path: Path, network: FixedNetwork):
    """lava-dl's network for the file, loaded as its attributes say (graded input bits, sparse synapses)."""
    import h5py
    from lava.lib.dl.netx import hdf5

    import delaydeploy.exporters.lava.env  # noqa: F401  (first: makes Lava importable after tqdm)

    with h5py.File(path, "r") as handle:
        sparse = bool(handle.attrs["sparse_fc_layer"])
    return hdf5.Network(net_config=str(path), input_message_bits=input_message_bits(network.input_kind),
                        sparse_fc_layer=sparse)


def _run_netx(path: Path, network: FixedNetwork, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """One sample ``x`` ``[T, C]`` through the netx network: hidden spikes and readout ``v`` on the reference's axis."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    payload = input_payload(network, x[:, None, :])[:, 0]
    steps = x.shape[0] + network.tail_steps
    net = _load_netx(path, network)
    stages = list(net.layers)
    run_steps = steps + len(stages)
    data = np.zeros((network.input_size, run_steps), dtype=np.int64)
    data[:, : x.shape[0]] = payload.T
    source = RingBuffer(data=data)
    source.s_out.connect(net.inp)
    monitors = []
    for stage in stages:
        monitor = Monitor()
        probed = stage.neuron.v if stage is stages[-1] else stage.neuron.s_out
        monitor.probe(probed, run_steps)
        monitors.append((monitor, probed))
    biases = [stage.neuron.bias_mant.init.copy() for stage in stages]
    for stage in stages:
        stage.neuron.bias_mant.init = np.zeros_like(stage.neuron.bias_mant.init)
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        for stage, bias in zip(stages, biases):  # stage k's bias starts after k steps
            net.run(condition=RunSteps(num_steps=1), run_cfg=run_cfg)
            stage.neuron.bias_mant.set(bias)
        net.run(condition=RunSteps(num_steps=run_steps - len(stages)), run_cfg=run_cfg)
        records = [monitor.get_data()[probed.process.name][probed.name] for monitor, probed in monitors]
    finally:
        net.stop()
    traces = [record[k: k + steps] for k, record in enumerate(records, start=1)]
    return [trace.astype(np.float64) for trace in traces[:-1]], traces[-1].astype(np.int64)


def _assert_netx_matches_integer_reference(tmp_path: Path, network: FixedNetwork, x: np.ndarray) -> None:
    from delaydeploy.exporters.netx import write_netx

    path = write_netx(network, tmp_path / "network.net")
    reference = simulate_fixed(network, x)
    for sample in range(x.shape[1]):
        spikes, readout = _run_netx(path, network, x[:, sample])
        for layer, got, want in zip(network.layers, spikes, reference.spikes):
            want = want[:, sample].numpy()
            assert want.sum() > 0, f"{layer.name} is silent: the comparison would prove little"
            assert want.sum() < want.size, f"{layer.name} always fires: the comparison would prove little"
            mismatches = int((got != want).sum())
            assert mismatches == 0, f"sample {sample}, {layer.name}: {mismatches} spike mismatches"
        np.testing.assert_array_equal(readout, reference.readout[:, sample].numpy())


@pytest.mark.parametrize("weight_exp", [0, 1, -1], ids=["exp0", "exp+1", "exp-1"])
def test_netx_binary_input(tmp_path: Path, weight_exp: int) -> None:
    network = _network(3, [10, 14, 9, 4], weight_exp=weight_exp)
    x = (np.random.default_rng(4).random((16, 1, 10)) < 0.3).astype(np.float64)
    _assert_netx_matches_integer_reference(tmp_path, network, x)


def test_netx_graded_counts(tmp_path: Path) -> None:
    """Spike counts as graded payloads: netx is loaded with ``input_message_bits=24``."""
    network = _network(5, [8, 12, 4], input_kind="counts")
    x = np.random.default_rng(6).poisson(0.5, (14, 1, 8)).astype(np.float64)
    assert x.max() > 1
    _assert_netx_matches_integer_reference(tmp_path, network, x)


def test_netx_file_layout(tmp_path: Path) -> None:
    import h5py

    from delaydeploy.exporters.netx import write_netx

    network = _network(7, [6, 5, 3])
    path = write_netx(network, tmp_path / "n.net")
    with h5py.File(path, "r") as handle:
        assert sorted(handle["layer"].keys()) == ["0", "1"]
        layer = handle["layer/0"]
        assert layer["type"][0] == b"dense"
        assert layer["delay"].shape == (5, 6)  # per-synapse delays
        np.testing.assert_array_equal(layer["delay"][()], network.layers[0].delays)
        np.testing.assert_array_equal(layer["bias"][()],
                                      (network.layers[0].bias_mant << network.layers[0].bias_exp) // 64)
        assert layer["neuron/iDecay"][()] == 4096 and layer["neuron/vThMant"][()] == network.layers[0].vth
        assert handle["layer/1/neuron/vThMant"][()] == 131071


@pytest.mark.parametrize("granularity, sizes, stored, seed", [
    ("axonal", [10, 14, 9, 4], [(10,), (14,), (9,)], 3),
    ("dendritic", [10, 14, 9, 4], [(14,), (9,), (4,)], 3),
    ("axonal", [10, 10, 10, 4], [(10, 10), (10, 10), (10,)], 11),  # a square layer's [in] would be read as [out]
], ids=["axonal", "dendritic", "axonal-square"])
def test_netx_stores_one_delay_per_neuron(tmp_path: Path, granularity: str, sizes: list[int],
                                          stored: list[tuple[int, ...]], seed: int) -> None:
    """Per-neuron delays are written 1-D where netx reads them exactly, and run as the reference."""
    import h5py

    from delaydeploy.exporters.netx import write_netx

    network = with_per_neuron_delays(_network(seed, sizes), granularity, seed=0, max_delay=8)
    path = write_netx(network, tmp_path / "network.net")
    with h5py.File(path, "r") as handle:
        assert [handle[f"layer/{i}/delay"].shape for i in range(len(sizes) - 1)] == stored
        assert not handle.attrs["sparse_fc_layer"]
    x = (np.random.default_rng(4).random((16, 1, sizes[0])) < 0.3).astype(np.float64)
    _assert_netx_matches_integer_reference(tmp_path, network, x)


def test_netx_pruned_network_loads_as_sparse_synapses(tmp_path: Path) -> None:
    """A pruned network's file asks for netx's sparse synapses, which hold only the existing ones."""
    import h5py
    from lava.proc.sparse.process import DelaySparse

    from delaydeploy.exporters.netx import write_netx

    network = with_pruned_synapses(_network(3, [10, 14, 9, 4]), keep=0.4, seed=11)
    path = write_netx(network, tmp_path / "network.net")
    with h5py.File(path, "r") as handle:
        assert handle.attrs["sparse_fc_layer"]
    net = _load_netx(path, network)
    for block, stage in zip(net.layers, [*network.layers, network.readout]):
        assert isinstance(block.synapse, DelaySparse)
        assert block.synapse.weights.init.nnz == np.count_nonzero(stage.weights)
    x = (np.random.default_rng(4).random((16, 1, 10)) < 0.4).astype(np.float64)
    _assert_netx_matches_integer_reference(tmp_path, network, x)


def _modified(network: FixedNetwork, **changes) -> FixedNetwork:
    import dataclasses

    return dataclasses.replace(network, layers=[dataclasses.replace(network.layers[0], **changes)])


@pytest.mark.parametrize("changes, message", [
    (dict(reset="soft"), "soft reset"),
    (dict(recurrent_weights=np.zeros((5, 5), dtype=np.int64), recurrent_delays=np.zeros((5, 5), dtype=np.int64)),
     "recurrent"),
    (dict(weight_exp=3), "8-bit range"),
    (dict(bias_exp=np.zeros(5, dtype=np.int64)), "multiple of 64"),
    (dict(weights=np.full((5, 6), -128, dtype=np.int64)), "no weight is positive"),  # lava-dl would load -256s
    (dict(weights=np.zeros((5, 6), dtype=np.int64)), "no weight is positive"),  # lava-dl fails to load it
], ids=["soft-reset", "recurrence", "weight-exponent", "bias-granularity", "all-negative", "all-zero"])
def test_netx_refuses_what_it_cannot_express(tmp_path: Path, changes: dict, message: str) -> None:
    from delaydeploy.exporters.netx import write_netx

    network = _modified(_network(8, [6, 5, 3]), **changes)
    with pytest.raises(ConstraintError, match=message) as error:
        write_netx(network, tmp_path / "n.net")
    assert "hidden0" in str(error.value)
    assert not (tmp_path / "n.net").exists()


def test_export_netx_refuses_delays_above_62(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``delaydeploy export --target netx``: a delay of 63 is refused naming layer and synapse, exit 2, no file."""
    from delaydeploy.cli import main
    from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer
    from delaydeploy.ir_file import save_network

    delays = np.zeros((3, 4), dtype=np.int64)
    delays[1, 2] = 63
    layer = SpikingLayer("hidden0", np.ones((3, 4)), delays, np.zeros(3), LIFNeuron(tau=2.0, threshold=1.0))
    network = Network(4, [layer], Readout("readout", np.ones((2, 3)), np.zeros((2, 3), dtype=np.int64),
                                          np.zeros(2), tau=2.0))
    save_network(network, tmp_path / "net.ddn")
    assert main(["export", str(tmp_path / "net.ddn"), "--target", "netx", "-o", str(tmp_path / "out.net")]) == 2
    assert not (tmp_path / "out.net").exists()
    error = capsys.readouterr().err
    assert "hidden0" in error and "[1, 2]" in error and "63" in error


def test_trained_model_exports_to_netx(tmp_path: Path, conformance_model) -> None:
    """A real (official, BatchNorm-folded) model quantised with netx's exponents runs exactly in netx."""
    from delaydeploy.exporters.netx import NETX_BIAS_EXP
    from delaydeploy.quantize import quantize

    network, x = conformance_model
    fixed = quantize(network, calibration=x, weight_exp=0, bias_exp=NETX_BIAS_EXP)
    assert all(stage.weight_exp == 0 and set(stage.bias_exp) <= {NETX_BIAS_EXP}
               for stage in [*fixed.layers, fixed.readout])
    _assert_netx_matches_integer_reference(tmp_path, fixed, x[:, :2])
