"""DelRec: LIF neurons with learnable recurrent delays (Queant et al. 2025).

Each presynaptic neuron ``j`` of the recurrent connection has one delay ``d_j >= 0``. A spike
of ``j`` at step ``t`` reaches neuron ``i`` with weight ``W[i, j]`` at step ``t + 1 + d_j``
(the synapse's own step is the minimum latency). To learn ``d_j``, training spreads each
spike over the neighbouring buffer slots with a triangular kernel of half-width
``1 + sigma``; sigma decays every epoch and is 0 in the deployed (rounded) model, where the
delay is ``round(d_j)``.

Cost. The official code (``src/recurrent_neurons.py``, ``axonal_recdel``) multiplies every
new spike by ``W`` for every future slot: ``B*N*N*L`` per step for ``L`` buffer slots. The
recurrent input is linear in the spikes, so it is computed here per presynaptic neuron first:
``a[t, b, j] = sum_l spread[j, l] s[t - l, b, j]`` (the delayed spikes of ``j`` mixed with its
spread weights, ``B*N*L``), then one ``[B, N] x [N, N]`` product gives ``I_rec[t] = a[t] W^T``.
``a`` is kept as a delay line of pending presynaptic input (slot ``k`` holds what arrives
``k`` steps from now), updated once per step by one fused multiply-add, so the backward pass
saves only the spikes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import delaydeploy.spikingjelly_env  # noqa: F401  (first: quiet, slayer-free import)

# isort: split
import spikingjelly.activation_based.base
import torch
from spikingjelly.activation_based import layer
from torch import nn


def triangular_spread(delays: torch.Tensor, sigma: float | torch.Tensor, length: int) -> torch.Tensor:
    """Weights ``[N, length]`` spreading a spike of neuron ``j`` over slots ``1 + d_j +- (1 + sigma)``.

    Slot ``l`` receives ``max(0, s - |l - (1 + d_j)|) / s**2`` with ``s = 1 + sigma``: at
    ``sigma = 0`` and integer ``d_j`` this is a one-hot at slot ``1 + d_j``. ``sigma`` is one
    number or one per neuron (``[N]``).
    """
    width = (1.0 + torch.as_tensor(sigma, dtype=delays.dtype, device=delays.device)).reshape(-1, 1)
    slots = torch.arange(length, dtype=delays.dtype, device=delays.device)
    spread = torch.clamp(width - torch.abs(slots[None, :] - (1.0 + delays)[:, None]), min=0.0) / width**2
    return spread * (slots > 0)  # slot 0 would act in the same step: the synapse forbids it


def initial_delays(size: int, kind: str, max_delay: float) -> torch.Tensor:
    """DelRec's initial recurrent delays, capped at ``max_delay``: ``"uniform"`` on [10, 30] steps
    (``configs/perf_SHD.py``: ``init_recdel_offset``, ``max_rec_delay``) or ``"half_normal"``
    ``|N(0, 12^2)|`` (``configs/perf_SSC.py``: ``delay_std_init``)."""
    if kind == "uniform":
        return torch.empty(size).uniform_(min(10.0, max_delay), min(30.0, max_delay))
    if kind == "half_normal":
        return (torch.randn(size) * 12.0).abs_().clamp_(max=max_delay)
    raise ValueError(f"recurrent delay initialisation {kind!r}; expected 'uniform' or 'half_normal'")


def buffer_length(max_delay: float, sigma: float) -> int:
    """Slots ``0..L-1`` that hold every non-zero spread weight (as the official code sizes its buffer)."""
    return math.ceil(1.0 + max_delay + 1.0 + sigma) + 1


class RecurrentDelayLIF(nn.Module):
    """A LIF population with delayed recurrent synapses, on time-first sequences ``[T, B, N]``.

    ``forward(x)`` takes the feedforward input current and returns the spikes. Recurrent
    dropout (one mask per sequence) acts on the recurrent input of each postsynaptic neuron,
    as in the official code. ``delay_init`` is a kind of :func:`initial_delays`. With
    ``learn_spread`` each presynaptic neuron spreads its spikes over its own width ``1 + 2 sigma
    sigmoid(p_j)``, ``p_j`` (``spread_logits``, from 0) learned with the delays (DelRec's
    ``use_sig_p``); without, all share ``1 + sigma``.
    """

    sigma: torch.Tensor  # a buffer: the spread's sigma, shared

    def __init__(self, size: int, neuron_factory: Callable[..., spikingjelly.activation_based.base.MemoryModule], *,
                 max_delay: int = 62, dropout: float = 0.0, delay_init: str = "uniform",
                 learn_spread: bool = False) -> None:
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
            self.recurrent_delays.copy_(initial_delays(size, delay_init, max_delay))
        self.spread_logits = nn.Parameter(torch.zeros(size)) if learn_spread else None

    def set_sigma(self, value: float) -> None:
        self.sigma.fill_(value)

    def clamp_delays(self) -> None:
        """Keep delays in ``[0, max_delay]`` (done after every optimiser step).

        The official code clamps at 0 only; the cap keeps a trained model within the target's
        delay range (Loihi 2: 62).
        """
        with torch.no_grad():
            self.recurrent_delays.clamp_(0.0, float(self.max_delay))

    def integer_delays(self) -> torch.Tensor:
        """Deployed delay per presynaptic neuron, ``round(d_j)`` (half to even), int64 ``[N]``."""
        return torch.round(self.recurrent_delays.detach()).long()

    def forward(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        """Spikes ``[T, B, N]`` for input current ``x``; ``rounded`` uses the deployed integer delays."""
        _, batch, size = x.shape
        sigma: float | torch.Tensor
        if rounded:
            delays, sigma = self.integer_delays().to(x.dtype), 0.0
        else:
            delays, sigma = self.recurrent_delays.to(x.dtype), float(self.sigma)
            if self.spread_logits is not None:
                sigma = 2.0 * sigma * torch.sigmoid(self.spread_logits.to(x.dtype))
        length = buffer_length(float(delays.detach().max()), float(torch.as_tensor(sigma).detach().max()))
        ahead = triangular_spread(delays, sigma, length)[:, 1:].T[:, None, :]  # [L-1, 1, N]: slot l is l-1 ahead
        weights_t = self.recurrent_weights.to(x.dtype).T
        pending = x.new_zeros(length - 1, batch, size)  # presynaptic input arriving k steps from now
        empty = x.new_zeros(1, batch, size)
        spikes = []
        self.neuron.reset()
        self.dropout.reset()
        for x_t in x.unbind(0):  # (unbind: one stacked gradient, not a zeroed [T, B, N] per step)
            now, later = pending.split([1, length - 2])
            out = self.neuron(x_t + self.dropout(now[0] @ weights_t))
            pending = torch.addcmul(torch.cat([later, empty]), out, ahead)
            spikes.append(out)
        return torch.stack(spikes)
