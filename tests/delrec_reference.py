"""Pieces of an independent float64 re-implementation of the DelRec authors' forward
(``alexmaxad/DelRec``, ``src/SHD/snn.py`` and ``src/SSC/snn.py``), shared by the import tests."""

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
