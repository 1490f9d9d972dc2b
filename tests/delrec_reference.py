"""Pieces of an independent float64 re-implementation of the DelRec authors' forward
(``alexmaxad/DelRec``, ``src/SHD/snn.py`` and ``src/SSC/snn.py``), their state layouts and the
check that an import put every tensor in its place, shared by the import tests."""

from __future__ import annotations

import numpy as np
import torch


def round_half_even(value: torch.Tensor) -> np.ndarray:
    return np.round(value.detach().double().numpy())  # numpy rounds halves to even, as torch's round_()


def delrec_synapses(state: dict[str, torch.Tensor], index: int, x: torch.Tensor, kernel_size: int,
                    right: int = 0) -> torch.Tensor:
    """Output of the authors' synaptic stage ``layers.{index}``: Linear ``[T, B, out]``, or DCLS v1
    ``[T + right, B, out]`` (a triangle at tap ``round(P) + K//2`` normalised by its sum + 1e-7,
    K-1 zeros on the left and ``right`` on the right)."""
    weight = state[f"layers.{index}.weight"].double()
    bias = state[f"layers.{index}.bias"].double() if f"layers.{index}.bias" in state else None  # bias = False
    if f"layers.{index}.P" not in state:
        return x @ weight.T if bias is None else x @ weight.T + bias
    centre = torch.from_numpy(round_half_even(state[f"layers.{index}.P"][0, :, :, 0])) + kernel_size // 2
    taps = torch.clamp(1.0 - torch.abs(torch.arange(kernel_size, dtype=torch.float64) - centre[..., None]), min=0.0)
    kernel = weight * taps / (taps.sum(-1, keepdim=True) + 1e-7)  # [out, in, K]
    padded = torch.nn.functional.pad(x.permute(1, 2, 0), (kernel_size - 1, right))
    return torch.nn.functional.conv1d(padded, kernel, bias).permute(2, 0, 1)


def delrec_hidden_layer(state: dict[str, torch.Tensor], neuron: int, current: torch.Tensor, tau: float, *,
                        soft_reset: bool = False, delay_shift: int = 0, recurrence: bool = True) -> torch.Tensor:
    """Spikes ``[T, B, N]`` of the authors' LIF ``layers.{neuron}`` driven by ``current``:
    ``H = V (1 - 1/tau) + I + sum_j W[i, j] s_j[t - 1 - D_j]`` (the recurrent term where the state
    holds ``recurrent_weights``; delays rounded half to even), spike if ``H >= 1``, reset to 0
    (hard) or by 1 (soft). ``delay_shift`` and ``recurrence`` perturb it, for tests that must fail."""
    steps, batch, size = current.shape
    recurrent = f"layers.{neuron}.recurrent_weights" in state
    if recurrent:
        weights = state[f"layers.{neuron}.recurrent_weights"].double() * recurrence
        delays = round_half_even(state[f"layers.{neuron}.recurrent_delays"]).astype(int) + delay_shift
    v = torch.zeros(batch, size, dtype=torch.float64)
    spikes = torch.zeros(steps, batch, size, dtype=torch.float64)
    for t in range(steps):
        h = v * (1.0 - 1.0 / tau) + current[t]
        if recurrent:
            arriving = torch.zeros(batch, size, dtype=torch.float64)
            for j in range(size):
                if t - 1 - delays[j] >= 0:
                    arriving[:, j] = spikes[t - 1 - delays[j], :, j]
            h = h + arriving @ weights.T
        spikes[t] = (h >= 1.0).double()
        v = h - spikes[t] if soft_reset else h * (1.0 - spikes[t])
    return spikes


def leaky_readout(current: torch.Tensor, tau: float) -> torch.Tensor:
    """The authors' readout LIF (threshold 1e8: it never fires): its membrane ``V = V (1 - 1/tau) + I``."""
    v = torch.zeros(current.shape[1:], dtype=torch.float64)
    membrane = torch.empty_like(current)
    for t in range(current.shape[0]):
        v = v * (1.0 - 1.0 / tau) + current[t]
        membrane[t] = v
    return membrane


def random_shd_stage(state: dict[str, torch.Tensor], index: int, n_in: int, n_out: int, *, dcls: bool,
                     kernel_size: int, generator: torch.Generator) -> None:
    """Random float32 weights of an authors'-layout SHD synaptic stage ``layers.{index}``: a Linear
    ``weight [out, in]``, or DCLS v1 ``weight [out, in, 1]`` and positions ``P [1, out, in, 1]``."""
    weight = torch.randn(n_out, n_in, generator=generator) * (3.0 / n_in**0.5)
    if dcls:
        state[f"layers.{index}.weight"] = weight[:, :, None].contiguous()
        state[f"layers.{index}.P"] = (torch.rand(1, n_out, n_in, 1, generator=generator) * (kernel_size - 1)
                                      - kernel_size // 2)
    else:
        state[f"layers.{index}.weight"] = weight


def random_shd_recurrence(state: dict[str, torch.Tensor], neuron: int, size: int,
                          generator: torch.Generator) -> None:
    """Random recurrent weights and (continuous) delays of the authors' recurrent-delay LIF ``layers.{neuron}``."""
    state[f"layers.{neuron}.recurrent_weights"] = torch.randn(size, size, generator=generator) * 0.6
    state[f"layers.{neuron}.recurrent_delays"] = torch.rand(size, generator=generator) * 20.0


def assert_delrec_tensors_in_place(model, state: dict[str, torch.Tensor], *, stride: int, neuron_offset: int,
                                   dcls: tuple[bool, ...], recurrent: tuple[bool, ...], right_padding: int) -> None:
    """Every synaptic stage ``layers.{stride * s}`` of the imported ``model`` holds the official weight,
    bias (or has none) and, where DCLS, positions at sigma 0 with ``right_padding``; every recurrent
    layer ``layers.{stride * l + neuron_offset}`` its recurrent weights, delays and (``use_sig_p``)
    ``p_spread`` as the learned spread widths, at sigma 0."""
    stages = [block.synapses for block in model.blocks] + [model.readout]
    for stage, module in enumerate(stages):
        index = stride * stage
        np.testing.assert_array_equal(module.weight.detach().numpy(),
                                      state[f"layers.{index}.weight"].reshape(module.weight.shape).numpy())
        if f"layers.{index}.bias" in state:
            np.testing.assert_array_equal(module.bias.detach().numpy(), state[f"layers.{index}.bias"].numpy())
        else:
            assert module.bias is None
        if dcls[stage]:
            np.testing.assert_array_equal(module.position.detach().numpy(), state[f"layers.{index}.P"][0, :, :, 0])
            assert module.sigma == 0.0 and module.right_padding == right_padding
    for layer, block in enumerate(model.blocks):
        if not recurrent[layer]:
            continue
        neuron = stride * layer + neuron_offset
        names = [("recurrent_weights", "recurrent_weights"), ("recurrent_delays", "recurrent_delays")]
        if f"layers.{neuron}.p_spread" in state:
            names.append(("spread_logits", "p_spread"))
        for ours, theirs in names:
            np.testing.assert_array_equal(getattr(block.neuron, ours).detach().numpy(),
                                          state[f"layers.{neuron}.{theirs}"].numpy())
        assert float(block.neuron.sigma) == 0.0
