"""Trainable synaptic layers: DCLS feedforward delays, delays per neuron, and plain linear maps.

All take and return time-first sequences ``[T, B, C]``. A :class:`DelayLinear` has one
weight ``W[o, i]`` and one continuous position ``P[o, i]`` per synapse (stored in a
``DCLS.construct.modules.Dcls1d``). During training the synapse is a Gaussian-interpolated
kernel over ``K`` taps; deployed, it is the integer delay ``D = K//2 - round(P)``. A
:class:`NeuronDelayLinear` has one weight per synapse and one position per presynaptic
(axonal) or postsynaptic (dendritic) neuron, with the same kernel, schedule and rounding.
"""

from __future__ import annotations

from typing import cast

import torch
from DCLS.construct.modules import Dcls1d
from torch import nn

from delaydeploy.delay_ops import delayed_linear
from delaydeploy.errors import CheckpointError, IRValidationError
from delaydeploy.fast_dcls import METHODS, gaussian_kernel, temporal_conv
from delaydeploy.ir import per_neuron_delays

CONV_METHODS = ("reference", *METHODS)
#: The granularities of :class:`NeuronDelayLinear`: one delay per presynaptic or postsynaptic neuron.
PER_NEURON = ("axonal", "dendritic")


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
    "fixed random delays" rung of the DCLS ablation.

    ``conv_method`` picks how the continuous kernel is applied: ``"reference"`` is the DCLS
    package's kernel construction and ``F.conv1d`` (the authors' computation, kept as the
    reference); the others build the same Gaussian kernel with
    :func:`delaydeploy.fast_dcls.gaussian_kernel` and apply it with
    :func:`delaydeploy.fast_dcls.temporal_conv` (``"auto"``: chosen by size and device).
    """

    granularity = "synaptic"

    def __init__(self, in_features: int, out_features: int, kernel_size: int, *, right_padding: int = 0,
                 bias: bool = False, learn_delays: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size = {kernel_size} must be odd")
        self.kernel_size = kernel_size
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

    @property
    def delay_parameter(self) -> nn.Parameter:
        """What the delay optimiser steps: the positions ``[1, out, in, 1]``."""
        return self.dcls.P

    def clamp_positions(self) -> None:
        """Keep positions inside the kernel, ``[-K//2, K//2]`` (after every optimiser step)."""
        self.dcls.clamp_parameters()

    def round_positions(self) -> None:
        """Round positions in place (half to even) and set sigma to 0: the deployed synapse."""
        with torch.no_grad():
            self.dcls.P.round_()
        self.clamp_positions()
        self.set_sigma(0.0)

    def integer_delays(self) -> torch.Tensor:
        """Deployed delays ``K//2 - round(P)`` in ``[0, K-1]``, as int64 ``[out, in]``."""
        return (self.kernel_size // 2 - torch.round(self.position.detach())).long()

    def load_deployed(self, weights: torch.Tensor, delays: torch.Tensor) -> None:
        """Take the ``weights`` and integer ``delays`` ``[out, in]`` of a deployed stage (sigma 0)."""
        with torch.no_grad():
            self.dcls.weight[:, :, 0] = weights
            self.dcls.P[0, :, :, 0] = self.kernel_size // 2 - delays
        self.set_sigma(0.0)

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


class NeuronDelayLinear(PrunableSynapses, nn.Module):
    """Synapses with a learnable weight each and one learnable delay per neuron (axonal or dendritic).

    ``"axonal"``: every presynaptic spike train is delayed by its neuron's own delay, then the
    synaptic product ``W x`` is taken; ``"dendritic"``: the product is taken, then each
    postsynaptic current is delayed by its neuron's delay. During training a delay is the DCLS
    Gaussian kernel of one position per neuron (:func:`delaydeploy.fast_dcls.gaussian_kernel`,
    the same width schedule, clamping and half-to-even rounding as :class:`DelayLinear`),
    applied as a per-channel (depthwise) temporal convolution: ``in x K`` (or ``out x K``)
    multiply-adds per step beside the ``out x in`` of the product, where a per-synapse kernel
    costs ``out x in x K``. The gradient of a position is the sum over its neuron's synapses.
    Deployed, the stage is the IR's ``[out, in]`` integer delays, one value per column (axonal)
    or row (dendritic), so every target stores it as it stores any per-neuron delays.

    ``right_padding`` and ``learn_delays`` are as for :class:`DelayLinear`.
    """

    sigma_value: torch.Tensor  # the kernel's width (a buffer: the schedule sets it)

    def __init__(self, in_features: int, out_features: int, kernel_size: int, granularity: str, *,
                 right_padding: int = 0, bias: bool = False, learn_delays: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size = {kernel_size} must be odd")
        if granularity not in PER_NEURON:
            raise ValueError(f"granularity = {granularity!r}; expected one of {PER_NEURON}")
        self.kernel_size = kernel_size
        self.granularity = granularity
        self.right_padding = right_padding
        self.learn_delays = learn_delays
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.positions = nn.Parameter(torch.empty(in_features if granularity == "axonal" else out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.register_buffer("sigma_value", torch.zeros(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weights, uniform positions and sigma K//2, as :class:`DelayLinear` starts."""
        half = self.kernel_size // 2
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
            nn.init.uniform_(self.positions, -self.kernel_size // 2, half)
            self.clamp_positions()
            self.set_sigma(half)
        if not self.learn_delays:
            self.round_positions()
            self.positions.requires_grad_(False)

    @property
    def delay_parameter(self) -> nn.Parameter:
        """What the delay optimiser steps: one position per neuron."""
        return self.positions

    def set_sigma(self, value: float) -> None:
        with torch.no_grad():
            self.sigma_value.fill_(value)

    def clamp_positions(self) -> None:
        """Keep positions inside the kernel, ``[-K//2, K//2]`` (after every optimiser step)."""
        half = self.kernel_size // 2
        with torch.no_grad():
            self.positions.clamp_(-half, half)

    def round_positions(self) -> None:
        """Round positions in place (half to even) and set sigma to 0: the deployed synapse."""
        with torch.no_grad():
            self.positions.round_()
        self.clamp_positions()
        self.set_sigma(0.0)

    def neuron_delays(self) -> torch.Tensor:
        """Deployed delays ``K//2 - round(P)`` in ``[0, K-1]``, one per neuron (int64)."""
        return (self.kernel_size // 2 - torch.round(self.positions.detach())).long()

    def integer_delays(self) -> torch.Tensor:
        """The deployed delays of every synapse, ``[out, in]``: a neuron's delay on all its synapses."""
        per_neuron = self.neuron_delays()
        shared = per_neuron[None, :] if self.granularity == "axonal" else per_neuron[:, None]
        return shared.expand(self.weight.shape).contiguous()

    def load_deployed(self, weights: torch.Tensor, delays: torch.Tensor) -> None:
        """Take ``weights`` and integer ``delays`` ``[out, in]`` of a deployed stage (sigma 0); the
        delays must be one per neuron of this stage's kind where a synapse exists."""
        steps = per_neuron_delays(weights.numpy(), delays.numpy(), self.granularity)
        if steps is None:
            raise IRValidationError(f"the delays are not one per {self.granularity} neuron; this stage learns one")
        with torch.no_grad():
            self.weight.copy_(weights)
            self.positions.copy_(torch.as_tensor(self.kernel_size // 2 - steps, dtype=self.positions.dtype))
        self.set_sigma(0.0)

    def delay_kernels(self) -> torch.Tensor:
        """The continuous per-neuron kernels ``[n, 1, K]`` (each sums to 1)."""
        ones = torch.ones_like(self.positions).unsqueeze(1)
        return gaussian_kernel(ones, self.positions.unsqueeze(1), self.sigma_value, self.kernel_size)

    def _delay(self, x: torch.Tensor) -> torch.Tensor:
        """Every channel of ``x`` ``[T, B, n]`` through its neuron's kernel (causal; plus the right
        padding). A depthwise ``conv2d`` over ``[B, n, 1, T]`` in channels-last memory: on the CPU
        it takes about half the time of ``conv1d`` over ``[B, n, T]`` (oneDNN), forward and backward."""
        padded = nn.functional.pad(x, (0, 0, 0, 0, self.kernel_size - 1, self.right_padding))
        image = padded.transpose(0, 1).contiguous().permute(0, 2, 1).unsqueeze(2)  # channels-last [B, n, 1, T']
        kernels = self.delay_kernels().unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return nn.functional.conv2d(image, kernels, groups=x.shape[2]).squeeze(2).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        if rounded or not self.learn_delays:
            if self.right_padding:
                x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.right_padding))
            out = delayed_linear(x, self.weight, self.integer_delays())
        elif self.granularity == "axonal":
            out = nn.functional.linear(self._delay(x), self.weight)
        else:
            out = self._delay(nn.functional.linear(x, self.weight))
        return out if self.bias is None else out + self.bias

    def convert_tied_state(self, state: dict[str, torch.Tensor], prefix: str, source: str) -> None:
        """Convert, in ``state``, this stage as delaydeploy 0.1 saved it (a per-synapse DCLS kernel
        whose positions were kept equal along each neuron: ``dcls.weight``, ``dcls.P``, ``dcls.SIG``,
        ``dcls.bias``) to this form; refused, naming the stage, if its positions are not tied."""
        if f"{prefix}dcls.P" not in state:
            return
        granularity = self.granularity
        positions = state.pop(f"{prefix}dcls.P")[0, :, :, 0]
        axis = 0 if granularity == "axonal" else 1
        shared = positions.select(axis, 0)
        if not torch.equal(positions, shared.unsqueeze(axis).expand_as(positions)):
            raise CheckpointError(f"{source}: {prefix.rstrip('.')} is {granularity} but its positions differ "
                                  f"within a neuron; it cannot be one delay per neuron")
        state[f"{prefix}positions"] = shared.clone()
        state[f"{prefix}weight"] = state.pop(f"{prefix}dcls.weight")[:, :, 0]
        state[f"{prefix}sigma_value"] = state.pop(f"{prefix}dcls.SIG").flatten()[0].clone()
        if f"{prefix}dcls.bias" in state:
            state[f"{prefix}bias"] = state.pop(f"{prefix}dcls.bias")


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

    right_padding = 0

    def integer_delays(self) -> torch.Tensor:
        return torch.zeros(self.weight.shape, dtype=torch.long, device=self.weight.device)

    def load_deployed(self, weights: torch.Tensor, delays: torch.Tensor) -> None:
        """Take the ``weights`` of a deployed stage, whose ``delays`` must all be 0."""
        if delays.any():
            raise IRValidationError(f"a delay-free stage cannot take delays up to {int(delays.max())}")
        with torch.no_grad():
            self.weight.copy_(weights)

    def forward(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        return super().forward(x)


#: A synaptic stage of a :class:`delaydeploy.model.DelaySNN`.
SynapticStage = DelayLinear | NeuronDelayLinear | Linear
