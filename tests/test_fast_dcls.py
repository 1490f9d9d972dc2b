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


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30))


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
              seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input padded like a DCLS layer (K-1 left, optionally (K-1)//2 right) and (W, P) leaves."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, inputs, steps, generator=generator)
    x = F.pad(x, (taps - 1, (taps - 1) // 2 if right_padding else 0)).to(device)
    weight = torch.randn(outputs, inputs, generator=generator).to(device).requires_grad_()
    positions = ((torch.rand(outputs, inputs, generator=generator) - 0.5) * (taps - 1)).to(device).requires_grad_()
    return x, weight, positions


def run(method: str, x: torch.Tensor, weight: torch.Tensor, positions: torch.Tensor, taps: int,
        upstream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    weight.grad = positions.grad = None
    out = temporal_conv(x, gaussian_kernel(weight, positions, 1.5, taps), method)
    out.backward(upstream)
    return out.detach(), weight.grad.clone(), positions.grad.clone()


def assert_matches_direct(method: str, x: torch.Tensor, weight: torch.Tensor, positions: torch.Tensor,
                          taps: int) -> None:
    shape = (x.shape[0], weight.shape[0], x.shape[2] - taps + 1)
    upstream = torch.randn(shape, generator=torch.Generator().manual_seed(7)).to(x.device)
    reference = run("direct", x, weight, positions, taps, upstream)
    out, grad_weight, grad_positions = run(method, x, weight, positions, taps, upstream)
    assert out.shape == reference[0].shape
    assert relative_error(out, reference[0]) <= 1e-5
    assert relative_error(grad_weight, reference[1]) <= 1e-4
    assert relative_error(grad_positions, reference[2]) <= 1e-4


@pytest.mark.parametrize("device", DEVICES)
@given(batch=st.integers(1, 4), inputs=st.integers(1, 12), outputs=st.integers(1, 12), steps=st.integers(1, 40),
       taps=st.integers(1, 26), right_padding=st.booleans(), method=st.sampled_from(["fft", "dft", "auto"]),
       seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_fast_methods_equal_direct_in_value_and_gradient(device, batch, inputs, outputs, steps, taps, right_padding,
                                                        method, seed):
    x, weight, positions = conv_case(device, batch, inputs, outputs, steps, taps, right_padding, seed)
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
        assert torch.autograd.gradcheck(lambda a, b: temporal_conv(a, b, method), (x, kernel))


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
