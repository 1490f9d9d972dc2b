"""Fast DCLS paths equal the reference ones: the Gaussian kernel equals DCLS's, and every
``temporal_conv`` method equals ``F.conv1d`` in value and in gradient (through the kernel)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from DCLS.construct.modules import Dcls1d
from hypothesis import given, settings
from hypothesis import strategies as st

from delaydeploy.fast_dcls import METHODS, _dft_conv, gaussian_kernel, select_method, temporal_conv

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


@pytest.fixture(autouse=True)
def _full_float32_on_cuda():
    """cuDNN convolutions default to TF32 (~1e-3 relative): compare against full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


SIGMA = 1.5  # kernel width in the conv tests: s = |sigma| + 0.27
WIDTH = SIGMA + 0.27


def relative_error(value: torch.Tensor, reference: torch.Tensor, scale: float | None = None) -> float:
    """Largest deviation over ``scale`` (default: the largest reference entry)."""
    scale = float(reference.abs().max()) if scale is None else scale
    return float((value - reference).abs().max()) / max(scale, 1e-300)


def dcls_layer(inputs: int, outputs: int, taps: int, dtype: torch.dtype, sigma_per_synapse: bool) -> Dcls1d:
    layer = Dcls1d(inputs, outputs, kernel_count=1, dilated_kernel_size=taps, bias=False, version="gauss").to(dtype)
    with torch.no_grad():
        layer.P.uniform_(-(taps // 2), taps // 2)
        if sigma_per_synapse:
            layer.SIG.uniform_(-2.0, 2.0)
        else:
            layer.SIG.fill_(taps / 5)
    return layer


@pytest.mark.parametrize("taps", [1, 6, 25])
@pytest.mark.parametrize("sigma_per_synapse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_kernel_equals_dcls_forward_vgauss(taps, sigma_per_synapse, dtype):
    torch.manual_seed(taps)
    layer = dcls_layer(7, 5, taps, dtype, sigma_per_synapse)
    reference = layer.DCK(layer.weight, layer.P, layer.SIG)
    sigma = layer.SIG[0, :, :, 0] if sigma_per_synapse else float(layer.SIG.detach().flatten()[0])
    kernel = gaussian_kernel(layer.weight[:, :, 0], layer.P[0, :, :, 0], sigma, taps)
    assert kernel.shape == reference.shape == (5, 7, taps)
    assert (kernel - reference).abs().max() <= 1e-6


@pytest.mark.parametrize("taps", [4, 9])
def test_gaussian_kernel_gradients_equal_dcls_autograd(taps):
    torch.manual_seed(0)
    layer = dcls_layer(6, 4, taps, torch.float64, sigma_per_synapse=True)
    upstream = torch.randn(4, 6, taps, dtype=torch.float64)
    layer.DCK(layer.weight, layer.P, layer.SIG).backward(upstream)
    weight = layer.weight[:, :, 0].detach().requires_grad_()
    positions = layer.P[0, :, :, 0].detach().requires_grad_()
    sigma = layer.SIG[0, :, :, 0].detach().requires_grad_()
    gaussian_kernel(weight, positions, sigma, taps).backward(upstream)
    torch.testing.assert_close(weight.grad, layer.weight.grad[:, :, 0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(positions.grad, layer.P.grad[0, :, :, 0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sigma.grad, layer.SIG.grad[0, :, :, 0], rtol=1e-10, atol=1e-12)


def test_gaussian_kernel_gradcheck_with_shared_sigma():
    torch.manual_seed(1)
    weight = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    positions = (4 * torch.rand(3, 4, dtype=torch.float64) - 2).requires_grad_()
    sigma = torch.tensor(-0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, p, s: gaussian_kernel(w, p, s, 5), (weight, positions, sigma))


def conv_case(device: str, batch: int, inputs: int, outputs: int, steps: int, taps: int, right_padding: bool,
              seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input padded like a DCLS layer (K-1 left, optionally (K-1)//2 right) and (W, P) leaves."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, inputs, steps, generator=generator, dtype=dtype)
    x = F.pad(x, (taps - 1, (taps - 1) // 2 if right_padding else 0)).to(device)
    weight = torch.randn(outputs, inputs, generator=generator, dtype=dtype).to(device).requires_grad_()
    positions = (torch.rand(outputs, inputs, generator=generator, dtype=dtype) - 0.5) * (taps - 1)
    return x, weight, positions.to(device).requires_grad_()


def run(method: str, x: torch.Tensor, weight: torch.Tensor, positions: torch.Tensor, taps: int,
        upstream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    weight.grad = positions.grad = None
    out = temporal_conv(x, gaussian_kernel(weight, positions, SIGMA, taps), method)
    out.backward(upstream)
    return out.detach(), weight.grad.clone(), positions.grad.clone()


def rounding_scales(x: torch.Tensor, weight: torch.Tensor, positions: torch.Tensor, taps: int,
                    upstream: torch.Tensor) -> tuple[float, float, float]:
    """Bounds on |output|, |dL/dW| and |dL/dP| from the magnitudes of the summed terms.

    A transform mixes all taps and lags, so its rounding error is a fraction of these bounds
    rather than of the (possibly cancelled, or kernel-tail-only) values themselves.
    """
    with torch.no_grad():
        kernel = gaussian_kernel(weight, positions, SIGMA, taps)
        out = x.abs().max() * kernel.abs().sum(dim=(1, 2)).max()
        lag_bound = upstream.abs().sum(-1).T @ x.abs().amax(-1)  # >= |dL/dkernel[o, i, k]| for every k
        shape = gaussian_kernel(torch.ones_like(weight), positions, SIGMA, taps)
        offsets = (torch.arange(taps, dtype=x.dtype, device=x.device) - (positions + taps // 2).unsqueeze(-1)) / WIDTH
        slope = shape * (offsets - (shape * offsets).sum(-1, keepdim=True)) / WIDTH  # d kernel / d P, per unit weight
        sensitivity = weight.abs() * slope.abs().sum(-1)
    return float(out), float(lag_bound.max()), float((lag_bound * sensitivity).max())


def assert_matches_direct(method: str, x: torch.Tensor, weight: torch.Tensor, positions: torch.Tensor, taps: int,
                          tolerances: tuple[float, float, float] = (1e-5, 1e-4, 1e-4),
                          bounded: bool = False) -> None:
    """Value, dL/dW and dL/dP of ``method`` against ``"direct"``, relative to the largest
    reference entry (or, ``bounded``, to :func:`rounding_scales`)."""
    shape = (x.shape[0], weight.shape[0], x.shape[2] - taps + 1)
    upstream = torch.randn(shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype).to(x.device)
    reference = run("direct", x, weight, positions, taps, upstream)
    result = run(method, x, weight, positions, taps, upstream)
    assert result[0].shape == reference[0].shape
    scales = rounding_scales(x, weight, positions, taps, upstream) if bounded else (None,) * 3
    for value, expected, tolerance, scale in zip(result, reference, tolerances, scales):
        assert relative_error(value, expected, scale) <= tolerance


@pytest.mark.parametrize("device", DEVICES)
@given(batch=st.integers(1, 4), inputs=st.integers(1, 12), outputs=st.integers(1, 12), steps=st.integers(1, 40),
       taps=st.integers(1, 26), right_padding=st.booleans(), method=st.sampled_from(["fft", "dft", "auto"]),
       seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_fast_methods_are_exact_on_any_size(device, batch, inputs, outputs, steps, taps, right_padding, method, seed):
    """float64, single synapses and sequences shorter than the kernel included: errors are
    rounding only, 1e-10 of the terms' magnitude (values that cancel or sit in a kernel tail
    can be far smaller than their terms, so they are not the yardstick here)."""
    x, weight, positions = conv_case(device, batch, inputs, outputs, steps, taps, right_padding, seed, torch.float64)
    assert_matches_direct(method, x, weight, positions, taps, (1e-10, 1e-10, 1e-10), bounded=True)


@pytest.mark.parametrize("device", DEVICES)
@given(batch=st.integers(1, 4), inputs=st.integers(8, 32), outputs=st.integers(8, 32), taps=st.integers(1, 31),
       extra_steps=st.integers(0, 60), right_padding=st.booleans(), method=st.sampled_from(["fft", "dft", "auto"]),
       seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_fast_methods_equal_direct_in_float32(device, batch, inputs, outputs, taps, extra_steps, right_padding,
                                             method, seed):
    """float32 on layer-like sizes: several synapses per output, sequences at least a kernel long
    (a lone synapse's gradient can cancel to far below the rounding of its terms)."""
    x, weight, positions = conv_case(device, batch, inputs, outputs, taps + extra_steps, taps, right_padding, seed)
    assert_matches_direct(method, x, weight, positions, taps)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("taps", [24, 25, 31])
@pytest.mark.parametrize("method", ["fft", "dft"])
def test_fast_methods_at_training_shapes(device, taps, method):
    x, weight, positions = conv_case(device, 4, 64, 48, 100, taps, right_padding=True, seed=taps)
    assert_matches_direct(method, x, weight, positions, taps)


@pytest.mark.parametrize("taps", [1, 2, 5, 8])
def test_every_overlap_save_block_count_is_exact(taps):
    torch.manual_seed(taps)
    x = torch.randn(2, 3, 20, dtype=torch.float64)
    kernel = torch.randn(4, 3, taps, dtype=torch.float64)
    reference = F.conv1d(x, kernel)
    for blocks in range(1, reference.shape[-1] + 1):
        torch.testing.assert_close(_dft_conv(x, kernel, blocks), reference, rtol=0, atol=1e-12)


def test_input_gradient_flows_through_every_method():
    torch.manual_seed(3)
    x = torch.randn(2, 5, 30, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    for method in ["fft", "dft"]:
        assert torch.autograd.gradcheck(lambda a, b, method=method: temporal_conv(a, b, method), (x, kernel))


def test_selection_rule():
    # SHD / SSC DCLS layers on CPU go spectral; a 3-tap kernel, CUDA and half precision stay direct.
    assert select_method(32, 140, 256, 136, 25) == "dft"
    assert select_method(32, 512, 512, 145, 31) == "dft"
    assert select_method(32, 256, 20, 136, 25) == "dft"
    assert select_method(32, 256, 256, 102, 3) == "direct"
    assert select_method(32, 512, 512, 145, 31, device="cuda") == "direct"
    assert select_method(32, 512, 512, 145, 31, dtype=torch.bfloat16) == "direct"
    assert set(METHODS) == {"auto", "direct", "fft", "dft"}


def test_bad_arguments_raise():
    x, kernel = torch.zeros(1, 2, 5), torch.zeros(3, 2, 3)
    with pytest.raises(ValueError, match="method"):
        temporal_conv(x, kernel, "winograd")
    with pytest.raises(ValueError, match="must be"):
        temporal_conv(x, torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match="longer than the input"):
        temporal_conv(x, torch.zeros(3, 2, 6))
