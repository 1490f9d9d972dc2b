"""DelaySNN: the trainable network (DCLS feedforward delays, optional DelRec recurrent delays).

Each hidden block is ``synapses -> BatchNorm (statistics over time x batch) -> LIF ->
dropout (one mask per sequence)``; the readout is ``synapses -> non-spiking LIF`` whose
membrane is the output, with time constant ``config.readout_time_constant``. LIF neurons are
spikingjelly's (``decay_input=False``, hard reset to 0 or soft reset, ATan or triangle
surrogate: ``config.surrogate``), exactly as in the published models. spikingjelly's LIF
needs ``tau > 1``; a readout of ``tau = 1`` keeps no membrane (``V[t] = I[t]``) and is the
synaptic output itself (DelRec's SSC model has no readout neuron). The class and the loss follow ``config.decision``
(:func:`delaydeploy.reference.evidence`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import delaydeploy.spikingjelly_env  # noqa: F401  (first: quiet, slayer-free import)

# isort: split
import torch
from spikingjelly.activation_based import layer, neuron, surrogate
from torch import nn

from delaydeploy.config import NetworkConfig
from delaydeploy.delrec import RecurrentDelayLIF
from delaydeploy.ir import DEFAULT_DECISION
from delaydeploy.layers import CONV_METHODS, DelayLinear, Linear, NeuronDelayLinear, PrunableSynapses, SynapticStage
from delaydeploy.reference import evidence

READOUT_THRESHOLD = 1e9  # the readout LIF never fires: its membrane is the output


class LIFNode(neuron.LIFNode):
    """spikingjelly's LIF neuron, training over ``x_seq.unbind(0)`` instead of ``x_seq[t]``.

    Same values and gradients. spikingjelly's loop indexes the sequence step by step, and the
    backward of each index allocates and zeroes a gradient of the whole ``[T, B, N]``
    sequence: O(T^2) memory traffic, measured at 45 % of an SHD-size training step. The
    gradient of ``unbind`` is one stack.
    """

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.backend == "torch"):
            return super().multi_step_forward(x_seq)
        spikes, potentials = [], []
        for x in x_seq.unbind(0):
            spikes.append(self.single_step_forward(x))
            if self.store_v_seq:
                potentials.append(self.v)
        if self.store_v_seq:
            self.v_seq = torch.stack(potentials)
        return torch.stack(spikes)


class _Triangle(torch.autograd.Function):
    """A spike ``x >= 0`` whose gradient is ``max(0, 1 - |x|)`` (DelRec SSC's ``Triangle``, gamma 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (1.0 - x.abs()).clamp(min=0.0)


def triangle_surrogate(x: torch.Tensor) -> torch.Tensor:
    """The spike of membrane excess ``x`` with the triangle surrogate gradient."""
    return _Triangle.apply(x)


def make_lif(config: NetworkConfig, *, threshold: float | None = None, tau: float | None = None,
             step_mode: str = "m", store_v_seq: bool = False) -> LIFNode:
    """A spikingjelly LIF neuron with the configuration's constants (``tau``: the network's by default)."""
    spike = surrogate.ATan(alpha=config.surrogate_alpha) if config.surrogate == "atan" else triangle_surrogate
    return LIFNode(
        tau=config.tau if tau is None else tau,
        decay_input=False,
        v_threshold=config.threshold if threshold is None else threshold,
        v_reset=0.0 if config.reset == "hard" else None,
        surrogate_function=spike,
        detach_reset=config.detach_reset,
        step_mode=step_mode,
        store_v_seq=store_v_seq,
    )


def _synapses(config: NetworkConfig, stage: int, in_features: int, out_features: int) -> SynapticStage:
    synapses: SynapticStage
    right = config.official_tail if config.semantics == "official" else 0
    learn = config.delays == "learned"
    if not config.stage_has_delays[stage]:
        synapses = Linear(in_features, out_features, bias=config.bias, init=config.linear_init)
    elif config.stage_granularity[stage] == "synaptic":
        synapses = DelayLinear(in_features, out_features, config.kernel_size, right_padding=right, bias=config.bias,
                               learn_delays=learn)
    else:
        synapses = NeuronDelayLinear(in_features, out_features, config.kernel_size, config.stage_granularity[stage],
                                     right_padding=right, bias=config.bias, learn_delays=learn)
    if config.stage_sparsity[stage] > 0:
        synapses.prune(config.stage_sparsity[stage])
    return synapses


class TimeBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over a ``[T, B, C]`` sequence, statistics over time x batch (as spikingjelly's)."""

    running_mean: torch.Tensor  # always tracked
    running_var: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).view_as(x)


class HiddenBlock(nn.Module):
    """synapses -> BatchNorm -> LIF (or recurrent-delay LIF) -> dropout."""

    def __init__(self, config: NetworkConfig, index: int, in_features: int) -> None:
        super().__init__()
        size = config.hidden_sizes[index]
        self.synapses = _synapses(config, index, in_features, size)
        self.norm = TimeBatchNorm(size) if config.batchnorm else nn.Identity()
        if config.layer_is_recurrent[index]:
            self.neuron = RecurrentDelayLIF(size, lambda step_mode: make_lif(config, step_mode=step_mode),
                                            max_delay=config.max_recurrent_delay, dropout=config.recurrent_dropout,
                                            delay_init=config.recurrent_delay_init,
                                            learn_spread=config.recurrent_spread == "learned")
        else:
            self.neuron = make_lif(config)
        self.dropout = layer.Dropout(config.dropout, step_mode="m")

    def forward(self, x: torch.Tensor, rounded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(spikes, dropped-out spikes passed on)``."""
        current = self.norm(self.synapses(x, rounded))
        if isinstance(self.neuron, RecurrentDelayLIF):
            spikes = self.neuron(current, rounded)
        else:
            self.neuron.reset()
            spikes = self.neuron(current)
        self.dropout.reset()
        return spikes, self.dropout(spikes)


class ReadoutNeuron(nn.Module):
    """The non-spiking readout: ``V[t] = V[t-1] (1 - 1/tau) + I[t]`` over a ``[T, B, C]`` current.

    For ``tau > 1`` it is spikingjelly's LIF with threshold ``READOUT_THRESHOLD`` (never fires),
    as in the published models; at ``tau = 1`` (no leak, which spikingjelly's LIF refuses) the
    membrane is the current itself.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.tau = config.readout_time_constant
        self.lif = (make_lif(config, threshold=READOUT_THRESHOLD, tau=self.tau, store_v_seq=True)
                    if self.tau > 1.0 else None)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if self.lif is None:
            return current
        self.lif.reset()
        self.lif(current)
        return self.lif.v_seq


@dataclass
class SNNOutput:
    """Readout membrane ``[T_out, B, classes]`` and each hidden layer's spikes ``[T_l, B, N_l]``."""

    readout: torch.Tensor
    spikes: list[torch.Tensor]


class DelaySNN(nn.Module):
    """A spiking network with learnable synaptic delays, built from a :class:`NetworkConfig`."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        sizes = (config.input_size, *config.hidden_sizes)
        self.blocks = nn.ModuleList(HiddenBlock(config, i, sizes[i]) for i in range(len(config.hidden_sizes)))
        self.readout = _synapses(config, len(config.hidden_sizes), sizes[-1], config.num_classes)
        self.readout_neuron = ReadoutNeuron(config)

    def forward(self, x: torch.Tensor, rounded: bool = False) -> SNNOutput:
        """Run on ``x`` ``[T, B, input_size]``; ``rounded`` uses the deployed integer delays."""
        if self.config.semantics == "streaming" and self.config.tail:
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.config.tail))
        all_spikes = []
        for block in self.blocks:
            spikes, x = block(x, rounded)
            all_spikes.append(spikes)
        return SNNOutput(self.readout_neuron(self.readout(x, rounded)), all_spikes)

    def delay_layers(self) -> Iterator[DelayLinear | NeuronDelayLinear]:
        """The stages with feedforward delays, per synapse or per neuron."""
        return (module for module in self.modules() if isinstance(module, (DelayLinear, NeuronDelayLinear)))

    def recurrent_layers(self) -> Iterator[RecurrentDelayLIF]:
        return (module for module in self.modules() if isinstance(module, RecurrentDelayLIF))

    def project(self) -> None:
        """After every optimiser step: delays back into their ranges, pruned weights back to 0."""
        for delay_layer in self.delay_layers():
            delay_layer.clamp_positions()
        for recurrent in self.recurrent_layers():
            recurrent.clamp_delays()
        for module in self.modules():
            if isinstance(module, PrunableSynapses):
                module.zero_pruned()

    def set_conv_method(self, method: str) -> None:
        """How DCLS layers apply their continuous kernels (see :class:`delaydeploy.layers.DelayLinear`)."""
        if method not in CONV_METHODS:
            raise ValueError(f"conv method {method!r}; choose one of {', '.join(CONV_METHODS)}")
        for module in self.modules():
            if isinstance(module, DelayLinear):  # a per-neuron delay is always a depthwise convolution
                module.conv_method = method

    def set_sigma(self, value: float) -> None:
        """Width of the DCLS Gaussian kernels (all layers share one schedule)."""
        for module in self.delay_layers():
            if module.learn_delays:
                module.set_sigma(value)

    def set_recurrent_sigma(self, value: float) -> None:
        for module in self.recurrent_layers():
            module.set_sigma(value)

    def round_delays(self) -> None:
        """Round every delay in place and set the kernel widths to 0.

        The continuous forward then stays close to the rounded one but not equal: DCLS's Gaussian
        keeps a width of 0.27 taps at sigma 0, about 0.1 % of each weight on either neighbouring tap.
        """
        for delay_layer in self.delay_layers():
            delay_layer.round_positions()
        with torch.no_grad():
            for recurrent in self.recurrent_layers():
                recurrent.recurrent_delays.copy_(recurrent.integer_delays().to(recurrent.recurrent_delays.dtype))
                recurrent.set_sigma(0.0)

    def converted_state(self, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
        """``state`` with the per-neuron delay stages of delaydeploy 0.1 checkpoints (a per-synapse
        kernel with tied positions) converted to one position per neuron
        (:meth:`delaydeploy.layers.NeuronDelayLinear.convert_tied_state`)."""
        state = dict(state)
        for name, module in self.named_modules():
            if isinstance(module, NeuronDelayLinear):
                module.convert_tied_state(state, f"{name}.", source)
        return state

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``weights`` (with weight decay), ``norm`` (BatchNorm, no decay), ``delays`` (own optimiser)."""
        delays = [m.delay_parameter for m in self.delay_layers() if m.learn_delays]
        delays += [m.recurrent_delays for m in self.recurrent_layers()]
        delays += [m.spread_logits for m in self.recurrent_layers() if m.spread_logits is not None]
        norm = [p for m in self.modules() if isinstance(m, TimeBatchNorm) for p in m.parameters()]
        excluded = {id(p) for p in delays + norm}
        weights = [p for p in self.parameters() if p.requires_grad and id(p) not in excluded]
        return {"weights": weights, "norm": norm, "delays": delays}


def loss_function(readout: torch.Tensor, labels: torch.Tensor, steps: torch.Tensor | None = None,
                  decision: str = DEFAULT_DECISION) -> torch.Tensor:
    """Cross-entropy of the readout's evidence under ``decision``, taken as logits.

    ``"summed_softmax"``: of ``sum_t softmax(V[t])`` (the DCLS authors' and DelRec SHD's loss);
    ``"summed_output"``: of ``sum_t V[t]`` (DelRec SSC's ``calc_loss_SSC``). The same evidence
    decides the class (:func:`delaydeploy.reference.predict`); ``steps`` keeps each sample to
    its own steps of a padded batch (:func:`delaydeploy.reference.own_steps`).
    """
    return nn.functional.cross_entropy(evidence(readout, steps, decision), labels)
