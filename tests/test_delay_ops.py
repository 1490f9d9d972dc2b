"""``delayed_linear`` equals the per-delay masked loop (its definition) in value and gradient,
on its native (compiled) path, its dense path, its sparse path and mixtures, in float64 to 1e-12 and
float32 to 1e-5."""

from __future__ import annotations

import math
import multiprocessing
import subprocess

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delaydeploy import delay_ops, native
from delaydeploy.delay_ops import delayed_linear

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def masked_loop(x: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """The oracle: one masked dense product per delay value, shifted and summed."""
    steps = x.shape[0]
    out = x.new_zeros(steps, x.shape[1], weights.shape[0])
    delays = delays.to(device=x.device)
    for delay in torch.unique(delays).tolist():
        if delay >= steps:
            continue
        masked = weights * (delays == delay).to(weights.dtype)
        if delay == 0:
            out = out + x @ masked.T
        else:
            shifted = x[: steps - delay] @ masked.T
            out = out + torch.nn.functional.pad(shifted, (0, 0, 0, 0, delay, 0))
    return out


def _grouped_only(x: torch.Tensor, weights: torch.Tensor) -> bool:
    return False


@pytest.fixture(params=["auto", "dense", "sparse", "sparse-tiny-tiles"])
def path(request, monkeypatch):
    """Force the forward product onto one grouped path, or leave it to the rules (``auto``: the
    kernel on the CPU, dense groups on CUDA)."""
    if request.param != "auto":
        monkeypatch.setattr(delay_ops, "_uses_native", _grouped_only)
    if request.param == "dense":
        monkeypatch.setattr(delay_ops, "_SPARSE_COST", math.inf)
    elif request.param.startswith("sparse"):
        monkeypatch.setattr(delay_ops, "_SPARSE_COST", 0.0)
    if request.param == "sparse-tiny-tiles":  # batch tiles of 1-2 samples, chunks of a few steps
        monkeypatch.setattr(delay_ops, "_CACHE_BYTES", 1)
        monkeypatch.setattr(delay_ops, "_CHUNK", 5)
    return request.param


def check(x: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor) -> None:
    """Values and both gradients against the masked loop, relative to the largest reference entry."""
    x = x.detach().requires_grad_()
    weights = weights.detach().requires_grad_()
    out = delayed_linear(x, weights, delays)
    upstream = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1)).to(out.device)
    grad_x, grad_w = torch.autograd.grad(out, (x, weights), upstream)
    reference = masked_loop(x, weights, delays) + 0 * (x.sum() + weights.sum())  # a graph even if no delay fits
    ref_x, ref_w = torch.autograd.grad(reference, (x, weights), upstream)
    tolerance = TOLERANCE[x.dtype]
    for value, expected in ((out, reference), (grad_x, ref_x), (grad_w, ref_w)):
        assert value.shape == expected.shape
        scale = max(1.0, float(expected.detach().abs().max()))
        assert float((value - expected).detach().abs().max()) <= tolerance * scale


def random_case(steps: int, batch: int, inputs: int, outputs: int, max_delay: int, dtype: torch.dtype, seed: int,
                device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, inputs, generator=generator, dtype=dtype)
    weights = torch.randn(outputs, inputs, generator=generator, dtype=dtype)
    delays = torch.randint(0, max_delay + 1, (outputs, inputs), generator=generator)
    return x.to(device), weights.to(device), delays.to(device)


@given(steps=st.integers(1, 30), batch=st.integers(1, 5), inputs=st.integers(1, 12), outputs=st.integers(1, 12),
       max_delay=st.integers(0, 40), dtype=st.sampled_from([torch.float64, torch.float32]), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_equals_masked_loop_on_random_cases(path, steps, batch, inputs, outputs, max_delay, dtype, seed):
    # max_delay up to 40 > steps up to 30: delays at and beyond the sequence are included.
    check(*random_case(steps, batch, inputs, outputs, max_delay, dtype, seed))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equals_masked_loop_at_layer_shapes(path, device, dtype):
    check(*random_case(40, 6, 70, 50, 24, dtype, seed=3, device=device))  # SHD-like: 25 delay values
    check(*random_case(40, 6, 70, 5, 62, dtype, seed=4, device=device))  # small readout, delays past T


def test_clustered_delays_mix_dense_and_sparse_groups():
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(30, 4, 60, generator=generator, dtype=torch.float64)
    weights = torch.randn(40, 60, generator=generator, dtype=torch.float64)
    delays = torch.randint(0, 25, (40, 60), generator=generator)
    delays[torch.rand(40, 60, generator=generator) < 0.6] = 7  # one dense group, the rest sparse
    groups = delay_ops._plan(delays, 30)
    assert any(group.dense for group in groups) and not all(group.dense for group in groups)
    check(x, weights, delays)


def test_zero_delays_are_the_plain_product():
    x = torch.randn(9, 3, 5, dtype=torch.float64)
    weights = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(delayed_linear(x, weights, torch.zeros(4, 5, dtype=torch.long)), x @ weights.T,
                               rtol=0, atol=1e-14)


def test_delays_at_or_beyond_the_sequence_contribute_nothing(path):
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    weights = torch.randn(2, 3, dtype=torch.float64)
    delays = torch.tensor([[6, 7, 100], [6, 6, 9]])
    assert torch.equal(delayed_linear(x, weights, delays), torch.zeros(6, 2, 2, dtype=torch.float64))
    delays[0, 0] = 5  # only its last step sees x[0]
    out = delayed_linear(x, weights, delays)
    assert torch.equal(out[:5], torch.zeros(5, 2, 2, dtype=torch.float64))
    torch.testing.assert_close(out[5, :, 0], weights[0, 0] * x[0, :, 0], rtol=0, atol=0)


def test_spikes_and_integer_weights_are_bit_exact(path):
    """Integer-valued float64 sums are exact in any order: no rounding may creep in."""
    generator = torch.Generator().manual_seed(6)
    x = (torch.rand(50, 8, 30, generator=generator) < 0.3).double()
    weights = torch.randint(-127, 128, (20, 30), generator=generator).double()
    delays = torch.randint(0, 62, (20, 30), generator=generator)
    assert torch.equal(delayed_linear(x, weights, delays), masked_loop(x, weights, delays))


def test_gradcheck(path):
    x, weights, delays = random_case(8, 2, 4, 3, 5, torch.float64, seed=8)
    assert torch.autograd.gradcheck(lambda a, w: delayed_linear(a, w, delays),
                                    (x.requires_grad_(), weights.requires_grad_()))


def spike_case(seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SHD-like: 5 % binary input, 25 uniform delay values."""
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(60, 7, 40, generator=generator) < 0.05).to(dtype)
    weights = torch.randn(30, 40, generator=generator, dtype=dtype)
    return x, weights, torch.randint(0, 25, (30, 40), generator=generator)


def test_the_compiled_kernel_builds_here():
    """CI has a C compiler: the fast path must not silently fall back."""
    assert native.delayed_product(torch.float32) is not None
    assert native.delayed_product(torch.float64) is not None
    assert native.delayed_product(torch.float16) is None


def test_the_kernel_takes_every_cpu_float_product():
    x, weights, delays = spike_case(seed=9)
    assert delay_ops._uses_native(x, weights)
    assert delay_ops._uses_native(x.double(), weights.double())
    assert not delay_ops._uses_native(x, weights.double())  # mixed dtypes keep the grouped path's error
    assert not delay_ops._uses_native(x.half(), weights.half())  # no kernel for it


@pytest.mark.parametrize("steps", [1, 7, 8, 9, 40, 100, 136, 300])
@pytest.mark.parametrize("batch", [1, 3, 8, 13, 36])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_tiles_cover_every_sequence_length(steps, batch, dtype):
    """Wide, middle and narrow tiles, and a last tile running past the sequence, at every length;
    samples interleaved by 1, 2, 4 and 8, with a last group partly empty."""
    generator = torch.Generator().manual_seed(steps)
    x = torch.randn(steps, batch, 9, generator=generator, dtype=dtype)
    weights = torch.randint(-50, 50, (5, 9), generator=generator).to(dtype)
    delays = torch.randint(0, steps + 3, (5, 9), generator=generator)
    x = x.round()  # integer values: any summation order is exact
    assert torch.equal(delayed_linear(x, weights, delays), masked_loop(x, weights, delays))


# Lengths 25 and 97 end one step past a whole number of tiles (12 steps of 8 or 4 samples, 96 of 1).
@pytest.mark.parametrize("lengths", [[25] * 8 + [60] * 8 + [0] * 8, [0, 5, 97, 119, 120, 60, 60]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_skips_the_tiles_that_trailing_zero_steps_cannot_reach(lengths, dtype):
    """A padded batch: samples end in zeros after their lengths, whole groups (of 8 or 4) alike
    or every sample on its own; so does the gradient arriving at the outputs, which the input
    gradient (delays read as advances) skips in the same way."""
    generator = torch.Generator().manual_seed(15)
    x = torch.randint(-3, 4, (120, len(lengths), 30), generator=generator).to(dtype)
    upstream = torch.randint(-3, 4, (120, len(lengths), 12), generator=generator).to(dtype)
    for sample, length in enumerate(lengths):
        x[length:, sample] = 0
        upstream[length:, sample] = 0
    weights = torch.randint(-50, 50, (12, 30), generator=generator).to(dtype)
    for max_delay in (0, 7, 40, 200):
        delays = torch.randint(0, max_delay + 1, (12, 30), generator=generator)
        inputs = x.clone().requires_grad_()
        out = delayed_linear(inputs, weights, delays)
        expected = masked_loop(inputs, weights, delays)
        assert torch.equal(out, expected)
        assert torch.equal(torch.autograd.grad(out, inputs, upstream)[0],
                           torch.autograd.grad(expected, inputs, upstream)[0])


def test_kernel_is_bitwise_independent_of_the_thread_count_and_batch():
    """Each output sums its terms in input order, however samples are grouped and work is split."""
    x, weights, delays = spike_case(seed=10)
    x = torch.cat([x, x.flip(0), x.roll(5, 0)], dim=1)[:, :16]  # 16 samples: groups of 8 (float32)
    x = x * torch.rand(x.shape, generator=torch.Generator().manual_seed(11))  # graded values: order matters
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = delayed_linear(x, weights, delays)
        torch.set_num_threads(3)
        several = [delayed_linear(x[:, :batch], weights, delays) for batch in (1, 2, 4, 16)]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, several[-1])
    for part in several[:-1]:  # grouped by 1, 2 and 4; one sample split across threads by outputs
        assert torch.equal(single[:, :part.shape[1]], part)


def test_kernel_gradients_are_bitwise_independent_of_the_thread_count():
    x, weights, delays = spike_case(seed=16)
    x = torch.cat([x, x.flip(0)], dim=1) * torch.rand(60, 14, 40, generator=torch.Generator().manual_seed(17))
    upstream = torch.randn(60, 14, 30, generator=torch.Generator().manual_seed(18))

    def gradients() -> tuple[torch.Tensor, torch.Tensor]:
        inputs, synapses = x.clone().requires_grad_(), weights.clone().requires_grad_()
        return torch.autograd.grad(delayed_linear(inputs, synapses, delays), (inputs, synapses), upstream)

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = gradients()
        torch.set_num_threads(3)
        several = gradients()
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(single, several))


@pytest.mark.parametrize("delay_dtype", [torch.int32, torch.int16, torch.uint8])
def test_kernel_takes_any_integer_delay_dtype(delay_dtype):
    x, weights, delays = spike_case(seed=14, dtype=torch.float64)
    torch.testing.assert_close(delayed_linear(x, weights, delays.to(delay_dtype)), masked_loop(x, weights, delays),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps, batch, inputs, outputs", [(0, 3, 4, 5), (6, 0, 4, 5), (6, 3, 0, 5), (6, 3, 4, 0)])
def test_empty_sequences_and_layers_give_empty_or_zero_products(steps, batch, inputs, outputs):
    x = torch.rand(steps, batch, inputs, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(outputs, inputs, dtype=torch.float64, requires_grad=True)
    out = delayed_linear(x, weights, torch.randint(0, 3, (outputs, inputs)))
    assert out.shape == (steps, batch, outputs) and not out.any()
    out.sum().backward()
    assert x.grad.shape == x.shape and weights.grad.shape == weights.shape and not weights.grad.any()


def test_negative_delays_are_refused():
    with pytest.raises(ValueError, match="delays must be >= 0, got -2"):
        delayed_linear(torch.zeros(5, 1, 2), torch.ones(3, 2), torch.tensor([[0, 1], [2, -2], [0, 0]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_out_of_memory_raise_memory_error_and_recover(monkeypatch, dtype):
    """Working buffers past the address space (a sequence of 2^46 steps) make both kernels return
    -1 before touching the tensors; the caller raises MemoryError naming the sizes, and the
    next call allocates afresh."""
    x, weights, delays = spike_case(seed=15, dtype=dtype)
    weights.requires_grad_(True)
    for name, message in (("delayed_product", "delayed product: no memory for its working buffers"),
                          ("delayed_correlation", "delayed correlation: no memory for rows")):
        kernel = getattr(native, name)(dtype)

        def starved(*arguments, kernel=kernel):  # arguments[4] is the step count
            return kernel(*arguments[:4], 1 << 46, *arguments[5:])

        with monkeypatch.context() as patch:
            patch.setattr(native, name, lambda _, starved=starved: starved)
            with pytest.raises(MemoryError, match=message):
                delayed_linear(x, weights, delays).sum().backward()
    value = delayed_linear(x, weights, delays)
    value.sum().backward()
    torch.testing.assert_close(value, masked_loop(x, weights, delays), rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_without_a_compiler_the_grouped_path_takes_over(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("DELAYDEPLOY_CACHE", str(tmp_path / "cache"))
    native._library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no-such-compiler.*fall back to the slower pure-torch path"):
            assert native.delayed_product(torch.float32) is None
        x, weights, delays = spike_case(seed=12, dtype=torch.float64)
        assert not delay_ops._uses_native(x, weights)
        torch.testing.assert_close(delayed_linear(x, weights, delays), masked_loop(x, weights, delays),
                                   rtol=1e-12, atol=1e-12)
    finally:
        native._library.cache_clear()


def test_build_is_cached_and_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("DELAYDEPLOY_CACHE", str(tmp_path))
    first = native.build(native.SOURCE, "cc")
    stamp = first.stat().st_mtime_ns
    assert native.build(native.SOURCE, "cc") == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert [path.name for path in tmp_path.iterdir()] == [first.name]  # no temporary left behind
    with pytest.raises(subprocess.CalledProcessError):
        native.build(native.SOURCE, "cc", native.FLAGS + ("-no-such-flag",))
    assert [path.name for path in tmp_path.iterdir()] == [first.name]


def _sparse_product_in_child(case: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    delay_ops._uses_native, delay_ops._SPARSE_COST = _grouped_only, 0.0
    return delayed_linear(*case)


def test_pool_threads_are_started_again_in_a_forked_child(monkeypatch):
    """A fork inherits the parent's pool table but not its threads: the child must start its own."""
    monkeypatch.setattr(delay_ops, "_uses_native", _grouped_only)
    monkeypatch.setattr(delay_ops, "_SPARSE_COST", 0.0)
    case = spike_case(seed=13, dtype=torch.float64)
    parent = delayed_linear(*case)  # the parent's pool now exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_sparse_product_in_child, (case,)).get(timeout=60)
    assert torch.equal(child, parent)
