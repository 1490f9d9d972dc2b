"""Trainable synaptic layers: DCLS feedforward delays and plain linear maps.

Both take and return time-first sequences ``[T, B, C]``. A :class:`DelayLinear` has one
weight ``W[o, i]`` and one continuous position ``P[o, i]`` per synapse (stored in a
``DCLS.construct.modules.Dcls1d``). During training the synapse is a Gaussian-interpolated
kernel over ``K`` taps; deployed, it is the integer delay ``D = K//2 - round(P)``.
"""

from __future__ import annotations

from typing import cast

import torch
from DCLS.construct.modules import Dcls1d
from torch import nn

from delaydeploy.delay_ops import delayed_linear
from delaydeploy.fast_dcls import METHODS, gaussian_kernel, temporal_conv
from delaydeploy.ir import DELAY_GRANULARITIES

CONV_METHODS = ("reference", *METHODS)


class PrunableSynapses:
    """Pruning for a synaptic stage with a ``weight [out, in]``: a fixed random mask, as the DCLS
    authors' ``sparsity_p`` (drawn from torch's global generator after the weights' init, each
    synapse kept with probability ``1 - sparsity``), held as the buffer ``synapse_mask`` so that
    a checkpoint restores it; pruned weights are set to 0 now and after every optimiser step."""

    def prune(self, sparsity: float) -> None:
        """Draw the mask and zero the pruned weights."""
        module = cast(nn.Module, self)  # the stage's module, which this is mixed into
        weight = cast(torch.Tensor, module.weight)  # nn.Module's __getattr__ types it Tensor | Module
        mask = (torch.rand(weight.shape) > sparsity).to(weight.dtype)
        module.register_buffer("synapse_mask", mask)
        self.zero_pruned()

    def zero_pruned(self) -> None:
        """Set pruned weights back to 0 (a no-op for a dense stage)."""
        mask = getattr(self, "synapse_mask", None)
        if mask is not None:
            with torch.no_grad():
                cast(torch.Tensor, cast(nn.Module, self).weight).mul_(mask)


class DelayLinear(PrunableSynapses, nn.Module):
    """Synapses with a learnable weight and a learnable delay each (DCLS, Gaussian kernel).

    ``right_padding`` reproduces the official time semantics (each layer's output is that
    many steps longer than its input); 0 gives the causal, streaming layer. With
    ``learn_delays=False`` the random initial positions are rounded and frozen: the
    "fixed random delays" rung of the DCLS ablation. ``granularity`` ``"axonal"`` or
    ``"dendritic"`` ties the positions to one per presynaptic or postsynaptic neuron.

    ``conv_method`` picks how the continuous kernel is applied: ``"reference"`` is the DCLS
    package's kernel construction and ``F.conv1d`` (the authors' computation, kept as the
    reference); the others build the same Gaussian kernel with
    :func:`delaydeploy.fast_dcls.gaussian_kernel` and apply it with
    :func:`delaydeploy.fast_dcls.temporal_conv` (``"auto"``: chosen by size and device).
    """

    def __init__(self, in_features: int, out_features: int, kernel_size: int, *, right_padding: int = 0,
                 bias: bool = False, learn_delays: bool = True, granularity: str = "synaptic") -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size = {kernel_size} must be odd")
        if granularity not in DELAY_GRANULARITIES:
            raise ValueError(f"granularity = {granularity!r}; expected one of {DELAY_GRANULARITIES}")
        self.kernel_size = kernel_size
        self.granularity = granularity
        self.right_padding = right_padding
        self.dcls = Dcls1d(in_features, out_features, kernel_count=1, dilated_kernel_size=kernel_size,
                           bias=bias, version="gauss")
        self.learn_delays = learn_delays
        self.conv_method = "auto"
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weights, uniform positions, sigma at its initial K//2 (official init)."""
        half = self.kernel_size // 2
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.dcls.weight, nonlinearity="relu")
            nn.init.uniform_(self.dcls.P, -self.kernel_size // 2, half)
            if self.granularity != "synaptic":  # one draw per neuron: the first row's or column's
                first = self.position[:1, :] if self.granularity == "axonal" else self.position[:, :1]
                self.position.copy_(first.expand_as(self.position))
            self.clamp_positions()
            self.dcls.SIG.fill_(half)
        self.dcls.SIG.requires_grad_(False)
        if not self.learn_delays:
            self.round_positions()
            self.dcls.P.requires_grad_(False)

    @property
    def weight(self) -> torch.Tensor:
        """Synaptic weights ``[out, in]``."""
        return self.dcls.weight[:, :, 0]

    @property
    def position(self) -> torch.Tensor:
        """Continuous positions ``[out, in]``; the delay is ``K//2 - P``."""
        return self.dcls.P[0, :, :, 0]

    @property
    def bias(self) -> torch.Tensor | None:
        return self.dcls.bias

    @property
    def sigma(self) -> float:
        return float(self.dcls.SIG.detach().flatten()[0])

    def set_sigma(self, value: float) -> None:
        with torch.no_grad():
            self.dcls.SIG.fill_(value)

    def clamp_positions(self) -> None:
        """Keep positions inside the kernel, ``[-K//2, K//2]``, and one per neuron for an axonal or
        dendritic stage, the mean of the shared ones (done after every optimiser step: a projected
        gradient step of the shared position)."""
        self.dcls.clamp_parameters()
        if self.granularity != "synaptic":
            with torch.no_grad():
                shared = self.position.mean(dim=0 if self.granularity == "axonal" else 1, keepdim=True)
                self.position.copy_(shared.expand_as(self.position))

    def round_positions(self) -> None:
        """Round positions in place (half to even) and set sigma to 0: the deployed synapse."""
        with torch.no_grad():
            self.dcls.P.round_()
        self.clamp_positions()
        self.set_sigma(0.0)

    def integer_delays(self) -> torch.Tensor:
        """Deployed delays ``K//2 - round(P)`` in ``[0, K-1]``, as int64 ``[out, in]``."""
        return (self.kernel_size // 2 - torch.round(self.position.detach())).long()

    def kernel(self) -> torch.Tensor:
        """The continuous (Gaussian) kernel ``[out, in, K]``."""
        if self.conv_method == "reference":
            return self.dcls.DCK(self.dcls.weight, self.dcls.P, self.dcls.SIG)
        return gaussian_kernel(self.weight, self.position, self.dcls.SIG[0, :, :, 0], self.kernel_size)

    def forward(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        if rounded or not self.learn_delays:
            if self.right_padding:  # (a zero pad would still copy the sequence)
                x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.right_padding))
            out = delayed_linear(x, self.weight, self.integer_delays())
        else:
            padded = nn.functional.pad(x.permute(1, 2, 0), (self.kernel_size - 1, self.right_padding))
            method = "direct" if self.conv_method == "reference" else self.conv_method
            out = temporal_conv(padded, self.kernel(), method).permute(2, 0, 1)
        return out if self.bias is None else out + self.bias


class Linear(PrunableSynapses, nn.Linear):
    """A delay-free synaptic stage on time-first sequences (all delays 0).

    Weights start Kaiming-uniform for ReLU (``init="kaiming"``, the published DCLS and DelRec SHD
    models) or as ``torch.nn.Linear`` starts them (``"default"``, DelRec SSC).
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = False, init: str = "kaiming") -> None:
        super().__init__(in_features, out_features, bias=bias)
        if init == "kaiming":
            nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        elif init != "default":
            raise ValueError(f"Linear init {init!r}; expected 'kaiming' or 'default'")

    def integer_delays(self) -> torch.Tensor:
        return torch.zeros(self.weight.shape, dtype=torch.long, device=self.weight.device)

    def forward(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        return super().forward(x)
