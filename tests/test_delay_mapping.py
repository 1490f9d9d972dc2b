"""A DCLS position P maps to the integer delay K//2 - round(P), checked with impulses."""

from __future__ import annotations

import pytest
import torch

from delaydeploy.layers import DelayLinear


@pytest.mark.parametrize("kernel_size", [25, 31])
@pytest.mark.parametrize("semantics", ["streaming", "official"])
def test_impulse_arrives_after_the_integer_delay(kernel_size: int, semantics: str):
    half = kernel_size // 2
    positions = torch.tensor([-half, -half + 0.4, -2.5, -1.5, 0.0, 0.5, 3.6, half - 0.4, half], dtype=torch.float64)
    layer = DelayLinear(1, len(positions), kernel_size, right_padding=half if semantics == "official" else 0).double()
    with torch.no_grad():
        layer.dcls.weight.fill_(1.0)
        layer.dcls.P.copy_(positions.view(1, -1, 1, 1))
        layer.set_sigma(0.0)
    expected = (half - torch.round(positions)).long()  # half to even: -2.5 -> -2, 0.5 -> 0
    assert torch.equal(layer.integer_delays().flatten(), expected)
    assert expected.min() == 0 and expected.max() == kernel_size - 1
    steps, onset = 3 * kernel_size, 5
    impulse = torch.zeros(steps, 1, 1, dtype=torch.float64)
    impulse[onset] = 1.0
    rounded = layer(impulse, rounded=True)[:, 0, :]
    layer.round_positions()  # Gaussian kernel at integer positions, sigma 0 (residual width 0.27 steps)
    continuous = layer(impulse)[:, 0, :]
    for out in (rounded, continuous):
        assert out.shape[0] == steps + (half if semantics == "official" else 0)
        assert torch.equal(out.abs().argmax(dim=0), onset + expected)
        assert torch.allclose(out.sum(dim=0), torch.ones(len(positions), dtype=torch.float64), atol=1e-6)
    assert torch.allclose(rounded, continuous, atol=2.5e-3)  # neighbours get exp(-0.5/0.27**2) ~ 1e-3


def test_streaming_layer_is_causal_and_keeps_length():
    layer = DelayLinear(3, 4, 25)
    x = torch.zeros(40, 2, 3)
    x[10:] = torch.rand(30, 2, 3)
    out = layer(x)
    assert out.shape == (40, 2, 4)
    assert torch.all(out[:10] == 0)
