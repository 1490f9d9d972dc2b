"""DelRec: LIF neurons with learnable recurrent delays (Queant et al. 2025).

Each presynaptic neuron ``j`` of the recurrent connection has one delay ``d_j >= 0``. A spike
of ``j`` at step ``t`` reaches neuron ``i`` with weight ``W[i, j]`` at step ``t + 1 + d_j``
(the synapse's own step is the minimum latency). To learn ``d_j``, training spreads each
spike over the neighbouring buffer slots with a triangular kernel of half-width
``1 + sigma``; sigma decays every epoch and is 0 in the deployed (rounded) model, where the
delay is ``round(d_j)``.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import layer
from torch import nn


def triangular_spread(delays: torch.Tensor, sigma: float, length: int) -> torch.Tensor:
    """Weights ``[N, length]`` spreading a spike of neuron ``j`` over slots ``1 + d_j +- (1 + sigma)``.

    Slot ``l`` receives ``max(0, s - |l - (1 + d_j)|) / s**2`` with ``s = 1 + sigma``: at
    ``sigma = 0`` and integer ``d_j`` this is a one-hot at slot ``1 + d_j``.
    """
    width = 1.0 + sigma
    slots = torch.arange(length, dtype=delays.dtype, device=delays.device)
    spread = torch.clamp(width - torch.abs(slots[None, :] - (1.0 + delays)[:, None]), min=0.0) / width**2
    return spread * (slots > 0)  # slot 0 would act in the same step: the synapse forbids it


class RecurrentDelayLIF(nn.Module):
    """A LIF population with delayed recurrent synapses, on time-first sequences ``[T, B, N]``.

    ``forward(x)`` takes the feedforward input current and returns the spikes.
    """

    def __init__(self, size: int, neuron_factory, *, max_delay: int = 62, dropout: float = 0.0,
                 delay_init: tuple[float, float] = (10.0, 30.0)) -> None:
        super().__init__()
        self.size = size
        self.max_delay = max_delay
        self.neuron = neuron_factory(step_mode="s")
        self.recurrent_weights = nn.Parameter(torch.empty(size, size))
        self.recurrent_delays = nn.Parameter(torch.empty(size))
        self.register_buffer("sigma", torch.zeros(()))
        self.dropout = layer.Dropout(dropout, step_mode="s")  # one mask per sequence
        nn.init.orthogonal_(self.recurrent_weights)
        with torch.no_grad():
            low, high = delay_init
            self.recurrent_delays.uniform_(min(low, max_delay), min(high, max_delay))

    def set_sigma(self, value: float) -> None:
        self.sigma.fill_(value)

    def clamp_delays(self) -> None:
        """Keep delays in ``[0, max_delay]`` (done after every optimiser step)."""
        with torch.no_grad():
            self.recurrent_delays.clamp_(0.0, float(self.max_delay))

    def integer_delays(self) -> torch.Tensor:
        """Deployed delay per presynaptic neuron, ``round(d_j)`` (half to even), int64 ``[N]``."""
        return torch.round(self.recurrent_delays.detach()).long()

    def forward(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        steps, batch, size = x.shape
        if rounded:
            delays = self.integer_delays().to(x.dtype)
            sigma = 0.0
        else:
            delays = self.recurrent_delays.to(x.dtype)
            sigma = float(self.sigma)
        length = int(torch.ceil(1.0 + delays.detach().max() + 1.0 + sigma).item()) + 1
        spread = triangular_spread(delays, sigma, length)  # [N_pre, L]
        weights = self.recurrent_weights.to(x.dtype)
        pending = x.new_zeros(batch, size, length)  # ring buffer: slot t % L holds input due at t
        spikes = []
        self.neuron.reset()
        self.dropout.reset()
        for t in range(steps):
            slot = t % length
            out = self.neuron(x[t] + self.dropout(pending[:, :, slot]))
            # input the new spikes cause at t + l, for every l: [B, N_post, L] = W @ (s * spread)
            scheduled = torch.einsum("ij,bj,jl->bil", weights, out, spread)
            emptied = pending.index_fill(2, torch.tensor([slot], device=x.device), 0.0)
            pending = emptied + torch.roll(scheduled, shifts=slot, dims=2)
            spikes.append(out)
        return torch.stack(spikes)
