"""Synaptic products with integer per-synapse delays, shared by training and the simulators.

``delayed_linear`` computes ``y[t, b, o] = sum_i W[o, i] x[t - D[o, i], b, i]`` (zero before
``t = 0``) for a whole sequence at once. It is the rounded-delay (deployed) form of a DCLS
layer and the synaptic stage of the reference simulator: one implementation serves both.
"""

from __future__ import annotations

import torch


def delayed_linear(x: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """Apply delayed synapses to a time-first sequence.

    Args:
        x: input ``[T, B, in]``.
        weights: ``[out, in]``, same dtype and device as ``x`` (gradients flow to it).
        delays: integer delays ``[out, in]``, ``>= 0``.

    Returns:
        ``[T, B, out]``; contributions whose delay exceeds the sequence are dropped.
    """
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
