"""Quantisation-aware fine-tuning: train the very integer model that Loihi 2 runs.

The trainable parameters are the float weights and biases of the deployment IR (BatchNorm
folded, delays rounded and frozen). Every forward pass quantises the current IR with the real
:func:`delaydeploy.quantize.quantize` (no gradient) and runs the integer dynamics of
:mod:`delaydeploy.fixed_reference` on those integers, so the forward *is* the deployed model,
bit for bit. Gradients reach the float parameters through straight-through estimators:

* an integer weight ``w = round-to-grid(W * S * 2**-e / q)`` is ``w`` in the forward and
  ``W * S * 2**-e / q`` in the backward (identity through the rounding); biases alike;
* truncations (``trunc0`` of the decays), floors (negative ``weight_exp``), the 24-bit wrap
  and saturation are exact in the forward and the identity in the backward;
* a spike ``v > vth << 6`` is exact in the forward and has spikingjelly's ATan surrogate
  gradient in the backward, taken in float units ``(v - vth << 6) / (64 S)``.

Every straight-through value is written ``exact + (x - x.detach())``: the forward value is
then ``exact`` to the last bit (``x - x.detach()`` is exactly 0), which the brief's
``W + (w * unit - W).detach()`` does not guarantee in floating point. The integers are
carried as float64 tensors, exact below ``2**53`` (see :mod:`delaydeploy.fixed_reference`).

**Calibration.** ``quantize`` depends on its calibration data only through their peak
(``max |x|``: the input peak of counts and analog inputs, and the payload scale of analog
inputs); binary inputs have peak 1 whatever the data. Fine-tuning uses the *training data's
peak* and records it in the checkpoint (``metrics["calibration_peak"]``) and in a calibration
array ``<output stem>.calibration.npy`` (training samples that reach the peak). Exporting
with those inputs (``delaydeploy export finetuned.pt --target loihi2 --input
finetuned.calibration.npy``; for binary inputs any inputs will do) reproduces exactly the
integers that were trained against.

The result is an ordinary checkpoint (:func:`model_from_network`, "raising" an IR back to a
:class:`DelaySNN`: no BatchNorm, biases, DCLS positions ``K//2 - D`` with sigma 0), whose
:func:`delaydeploy.lowering.lower` is the fine-tuned IR exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from delaydeploy.checkpoint import Checkpoint, checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.config import NetworkConfig, get_preset
from delaydeploy.datasets import pad_collate
from delaydeploy.delay_ops import delayed_linear
from delaydeploy.errors import DatasetError, DelayDeployError, IRValidationError
from delaydeploy.fileio import atomic_path, check_output_file
from delaydeploy.fixed_point import (
    ACTIVATION_SHIFT,
    FixedLayer,
    FixedNetwork,
    effective_weights,
    padded_payload,
)
from delaydeploy.fixed_reference import FixedLIFParams, fixed_lif_step, straight_through
from delaydeploy.ir import Network, Readout, SpikingLayer
from delaydeploy.layers import SynapticStage
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN, HiddenBlock, loss_function
from delaydeploy.quantize import quantize
from delaydeploy.reference import own_steps, predict, simulate
from delaydeploy.training import make_loader, preset_splits

FINETUNE_TARGETS = ("loihi2",)


# -- IR -> model ("raising") -----------------------------------------------------------------------

def config_for_network(network: Network, template: NetworkConfig) -> NetworkConfig:
    """The :class:`NetworkConfig` of a DelaySNN whose lowering is ``network``.

    ``template`` supplies what the IR does not say (kernel size, time semantics, which stages
    carry delays, which layers are recurrent, dropout, surrogate); the IR supplies sizes,
    neuron constants (the readout's tau, kept as ``readout_tau`` where it differs from the
    layers') and the decision rule. The model has no BatchNorm and a bias on every stage, so folded
    BatchNorm survives as weights and biases. Raises :class:`IRValidationError` where the IR
    cannot be such a model.
    """
    neurons = {layer.neuron for layer in network.layers}
    if len(neurons) > 1:
        raise IRValidationError(f"a DelaySNN shares one neuron model; the IR's layers have {sorted(map(str, neurons))}")
    neuron = neurons.pop() if neurons else None
    tau = neuron.tau if neuron is not None else template.tau
    if neuron is not None and neuron.threshold_rule != ">=":
        raise IRValidationError(f"a DelaySNN fires on '>=', the IR's layers on {neuron.threshold_rule!r}")
    readout_tau = None if network.readout.tau == tau else network.readout.tau
    changes: dict[str, Any] = dict(
        input_size=network.input_size, hidden_sizes=tuple(layer.size for layer in network.layers),
        num_classes=network.num_classes, tau=tau, readout_tau=readout_tau, decision=network.decision,
        batchnorm=False, bias=True, input_kind=network.input_kind, dt=network.dt,
        tail_steps=None if template.semantics == "official" else network.tail_steps)
    if neuron is not None:
        changes.update(threshold=neuron.threshold, reset=neuron.reset)
    try:
        config = dataclasses.replace(template, **changes)
    except ValueError as error:
        raise IRValidationError(f"the IR does not fit the template configuration: {error}") from None
    if config.tail != network.tail_steps:
        raise IRValidationError(f"the IR appends {network.tail_steps} tail steps, {config.semantics} semantics "
                                f"with kernel size {config.kernel_size} append {config.tail}")
    stages: list[SpikingLayer | Readout] = [*network.layers, network.readout]
    for stage, has_delays, recurrent in zip(stages, config.stage_has_delays,
                                            (*config.layer_is_recurrent, False)):
        _check_stage(stage, config, has_delays, recurrent)
    return config


def _check_stage(stage: SpikingLayer | Readout, config: NetworkConfig, has_delays: bool, recurrent: bool) -> None:
    limit = config.kernel_size - 1 if has_delays else 0
    if stage.delays.max(initial=0) > limit:
        kind = f"a DCLS stage of kernel size {config.kernel_size}" if has_delays else "a delay-free stage"
        raise IRValidationError(f"{stage.name!r}: delay {stage.delays.max()} does not fit {kind} (at most {limit})")
    tail = config.official_tail if has_delays and config.semantics == "official" else 0
    if stage.official_tail != tail:
        raise IRValidationError(f"{stage.name!r}: official_tail {stage.official_tail}, the configuration gives {tail}")
    recurrent_delays = stage.recurrent_delays if isinstance(stage, SpikingLayer) else None
    is_recurrent = recurrent_delays is not None
    if is_recurrent != recurrent:
        raise IRValidationError(f"{stage.name!r}: recurrent {is_recurrent} in the IR, {recurrent} in the template")
    if recurrent_delays is not None:
        per_source = recurrent_delays[0]
        if np.any(recurrent_delays != per_source):
            raise IRValidationError(f"{stage.name!r}: DelRec has one recurrent delay per presynaptic neuron, "
                                    "the IR's differ within a column")
        if per_source.max(initial=0) > config.max_recurrent_delay:
            raise IRValidationError(f"{stage.name!r}: recurrent delay {per_source.max()} exceeds "
                                    f"max_recurrent_delay {config.max_recurrent_delay}")


def _set_synapses(module: SynapticStage, stage: SpikingLayer | Readout) -> None:
    module.load_deployed(torch.from_numpy(stage.weights), torch.from_numpy(stage.delays))
    assert module.bias is not None  # config_for_network gives every stage a bias
    module.bias.copy_(torch.from_numpy(stage.bias))


def model_from_network(network: Network, template: NetworkConfig) -> DelaySNN:
    """A float64 :class:`DelaySNN` whose :func:`~delaydeploy.lowering.lower` equals ``network``."""
    model = DelaySNN(config_for_network(network, template)).double()
    with torch.no_grad():
        for block, layer in zip(cast("Iterable[HiddenBlock]", model.blocks), network.layers):
            _set_synapses(block.synapses, layer)
            if layer.recurrent_weights is not None and layer.recurrent_delays is not None:
                block.neuron.recurrent_weights.copy_(torch.from_numpy(layer.recurrent_weights))
                block.neuron.recurrent_delays.copy_(torch.from_numpy(layer.recurrent_delays[0]))
                block.neuron.set_sigma(0.0)
        _set_synapses(model.readout, network.readout)
    return model.eval()


# -- data ------------------------------------------------------------------------------------------

def dataset_splits(checkpoint: Checkpoint, data_dir: str | os.PathLike | None, max_samples: int | None = None,
                   test_speakers: str | None = None) -> tuple[Dataset, Dataset, str]:
    """``(train, test, dataset name)`` of the dataset the checkpoint's preset trains on.

    The data is framed and split as in training: with the dataset options the checkpoint
    recorded (:meth:`delaydeploy.checkpoint.Checkpoint.dataset_options`), and its time step must be the network's.
    """
    options = checkpoint.dataset_options(test_speakers)
    assert checkpoint.preset is not None  # dataset_options refuses a checkpoint without one
    preset = get_preset(checkpoint.preset)
    train_set, test_set = preset_splits(dataclasses.replace(preset, dataset_options=options), data_dir, max_samples)
    whole = train_set.dataset if isinstance(train_set, torch.utils.data.Subset) else train_set
    data_dt = getattr(whole, "dt", None)
    if data_dt is not None and not math.isclose(data_dt, checkpoint.config.dt, rel_tol=1e-9):
        raise DatasetError(f"{checkpoint.source}: the network runs {checkpoint.config.dt * 1e3:g} ms steps, but "
                           f"{preset.dataset} loads with {data_dt * 1e3:g} ms frames ({options}); the preset's "
                           "framing changed after this checkpoint was trained")
    return train_set, test_set, preset.dataset


def evaluate_reference(network: Network, loader: DataLoader, progress: bool = False) -> float:
    """Accuracy of the float reference simulator (rounded delays, streaming) on ``loader``."""
    correct = seen = 0
    for x, labels, lengths in tqdm(loader, desc="rounded delays (streaming)", disable=not progress, leave=False):
        simulation = simulate(network, x.double(), semantics="streaming")
        correct += int((simulation.prediction(own_steps(lengths, x.shape[0], simulation.readout)) == labels).sum())
        seen += len(labels)
    return correct / max(seen, 1)


# -- calibration -----------------------------------------------------------------------------------

def data_peak(dataset: Dataset, progress: bool = False) -> float:
    """``max |x|`` over a dataset: the only property of calibration data that ``quantize`` uses."""
    assert isinstance(dataset, Sized)  # every dataset here has a length; torch's Dataset type declares none
    peak = 0.0
    for index in tqdm(range(len(dataset)), desc="calibration peak", disable=not progress, leave=False):
        peak = max(peak, float(dataset[index][0].abs().max()))
    return peak


def peak_calibration(network: Network, peak: float) -> np.ndarray:
    """One step ``[1, 1, C]`` at ``peak``: ``quantize`` maps it exactly as any data with that peak."""
    value = 1.0 if network.input_kind == "binary" else peak
    return np.full((1, 1, network.input_size), value)


def calibration_samples(dataset: Dataset, peak: float, count: int = 4) -> np.ndarray:
    """A few samples ``[T, B, C]`` of ``dataset``, the first of which reaches ``peak``.

    Exported with these as inputs (test vectors), a model quantises exactly as in fine-tuning.
    """
    assert isinstance(dataset, Sized)  # every dataset here has a length; torch's Dataset type declares none
    first = next((i for i in range(len(dataset)) if float(dataset[i][0].abs().max()) == peak), 0)
    indices = [first] + [i for i in range(min(count, len(dataset))) if i != first][: count - 1]
    return pad_collate([dataset[i] for i in indices])[0].double().numpy()


# -- straight-through integer dynamics ---------------------------------------------------------------

def _shift(x: torch.Tensor, exponent: int) -> torch.Tensor:
    """``x << e``, or the flooring right shift for ``e < 0`` (identity gradient)."""
    scaled = x * 2.0**exponent
    return scaled if exponent >= 0 else straight_through(torch.floor(scaled.detach()), scaled)


def _spike(h: torch.Tensor, threshold: float, unit: float, alpha: float) -> torch.Tensor:
    """``h > threshold`` with spikingjelly's ATan surrogate gradient in float units (``unit = 64 S``)."""
    x = (h - threshold) / unit
    surrogate = torch.atan(math.pi / 2 * alpha * x) / math.pi
    return straight_through((h.detach() > threshold).to(h.dtype), surrogate)


def _lif(a: torch.Tensor, layer: FixedLayer, bias: torch.Tensor, alpha: float,
         recurrence: list[tuple[int, torch.Tensor]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lava's bit-accurate LIF (:func:`fixed_lif_step`) over ``a`` ``[T, B, N]`` with the
    straight-through ``bias`` and the ATan surrogate: ``(spikes, v after each step)``."""
    params = FixedLIFParams.from_layer(layer, a.device)._replace(bias=bias)
    unit = 2.0**ACTIVATION_SHIFT * layer.scale

    def spike(voltage: torch.Tensor) -> torch.Tensor:
        return _spike(voltage, params.threshold, unit, alpha)

    u = v = torch.zeros_like(a[0])
    spikes: list[torch.Tensor] = []
    trace: list[torch.Tensor] = []
    for t, a_t in enumerate(a.unbind(0)):  # (unbind: one stacked gradient, not a zeroed [T, B, N] per step)
        for delay, weights_t in recurrence or ():
            if t - 1 - delay >= 0:
                a_t = a_t + _shift(spikes[t - 1 - delay] @ weights_t, layer.recurrent_weight_exp)
        step = fixed_lif_step(a_t, u, v, params, spike)
        u, v = step.u, step.v
        spikes.append(step.spikes)
        trace.append(v)
    return torch.stack(spikes), torch.stack(trace)


def _group_masks(delays: np.ndarray) -> list[tuple[int, torch.Tensor]]:
    """``(delay, 0/1 mask of the synapses with that delay)`` for every delay present."""
    return [(int(d), torch.as_tensor(delays == d, dtype=torch.float64)) for d in np.unique(delays)]


@dataclass
class FixedForward:
    """A fine-tuning forward pass: the deployed integer model's spikes and readout (float64, exact integers)."""

    spikes: list[torch.Tensor]  # [T + tail, B, N] 0/1
    readout: torch.Tensor  # raw integer membrane v, [T + tail, B, C]
    fixed: FixedNetwork  # the integers this pass ran

    def readout_float(self) -> torch.Tensor:
        """The readout in the float network's units, ``v / readout_scale`` (what the loss and prediction use)."""
        return self.readout / self.fixed.readout_scale

    def prediction(self, steps: torch.Tensor | None = None) -> torch.Tensor:
        return predict(self.readout_float().detach(), steps, self.fixed.decision)


class QuantizedTrainingModel(nn.Module):
    """The Loihi 2 integer model of an IR with its float weights and biases as parameters.

    ``calibration`` is passed to every :func:`quantize` call (see the module docstring). Delays
    are fixed. ``surrogate_alpha`` is the ATan surrogate's sharpness, in float units.
    """

    def __init__(self, network: Network, calibration: np.ndarray, surrogate_alpha: float = 5.0) -> None:
        super().__init__()
        self.template = network
        self.calibration = np.asarray(calibration, dtype=np.float64)
        self.surrogate_alpha = surrogate_alpha
        stages = [*network.layers, network.readout]
        self.weights = nn.ParameterList(nn.Parameter(torch.from_numpy(stage.weights.copy())) for stage in stages)
        self.biases = nn.ParameterList(nn.Parameter(torch.from_numpy(stage.bias.copy())) for stage in stages)
        self.recurrent = nn.ParameterDict({
            str(index): nn.Parameter(torch.from_numpy(layer.recurrent_weights.copy()))
            for index, layer in enumerate(network.layers) if layer.recurrent_weights is not None})
        self._present = [torch.from_numpy(stage.weights != 0) for stage in stages]
        self._masks = [_group_masks(stage.delays) for stage in stages]
        self._recurrent_masks = {str(index): _group_masks(layer.recurrent_delays)
                                 for index, layer in enumerate(network.layers) if layer.recurrent_delays is not None}

    def network(self) -> Network:
        """The current float IR (delays, neurons and metadata of the original)."""
        def numpy(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().cpu().numpy().copy()

        layers = []
        for index, layer in enumerate(self.template.layers):
            recurrent = self.recurrent[str(index)] if layer.is_recurrent else None
            layers.append(dataclasses.replace(
                layer, weights=numpy(self.weights[index]), bias=numpy(self.biases[index]),
                recurrent_weights=None if recurrent is None else numpy(recurrent)))
        readout = dataclasses.replace(self.template.readout, weights=numpy(self.weights[-1]),
                                      bias=numpy(self.biases[-1]))
        return dataclasses.replace(self.template, layers=layers, readout=readout,
                                   metadata=dict(self.template.metadata))

    def zero_absent(self) -> None:
        """Keep the synapses the original lacks (a pruned network's zeros) at 0 (after every step)."""
        with torch.no_grad():
            for weights, present in zip(self.weights, self._present):
                weights.mul_(present.to(weights.dtype))

    def quantized(self) -> FixedNetwork:
        """``quantize(self.network(), calibration=self.calibration)``: the integers a forward runs."""
        return quantize(self.network(), calibration=self.calibration)

    def forward(self, x: torch.Tensor | np.ndarray) -> FixedForward:
        """Run the integer model on ``x`` ``[T, B, C]`` (streaming: ``tail_steps`` zeros appended)."""
        fixed = self.quantized()
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        signal = torch.as_tensor(padded_payload(fixed, x), dtype=torch.float64)
        spikes: list[torch.Tensor] = []
        for index, stage in enumerate([*fixed.layers, fixed.readout]):
            signal, v = self._stage(index, stage, signal, fixed.input_scale if index == 0 else 1.0)
            spikes.append(signal)
        return FixedForward(spikes[:-1], v, fixed)

    def _stage(self, index: int, layer: FixedLayer, x: torch.Tensor,
               payload_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spikes, v)`` of stage ``index`` (integers ``layer``) driven by ``x``, straight-through to the floats."""
        factor = layer.scale * 2.0**-layer.weight_exp / payload_scale
        weights = straight_through(torch.as_tensor(effective_weights(layer.weights), dtype=torch.float64),
                                   self.weights[index] * factor)
        bias = straight_through(torch.as_tensor(layer.bias_mant << layer.bias_exp, dtype=torch.float64),
                                self.biases[index] * (2.0**ACTIVATION_SHIFT * layer.scale))
        recurrence = None
        if layer.recurrent_weights is not None:
            factor = layer.scale * 2.0**-layer.recurrent_weight_exp
            exact = torch.as_tensor(effective_weights(layer.recurrent_weights), dtype=torch.float64)
            recurrent = straight_through(exact, self.recurrent[str(index)] * factor)
            recurrence = [(delay, (recurrent * mask).T) for delay, mask in self._recurrent_masks[str(index)]]
        return _lif(self._activation(x, weights, index, layer), layer, bias, self.surrogate_alpha, recurrence)

    def _activation(self, x: torch.Tensor, weights: torch.Tensor, index: int, layer: FixedLayer) -> torch.Tensor:
        """``a[t] = sum_d shift(sum_{D = d} w x[t - d], weight_exp)``, each delay group shifted on its own."""
        if layer.weight_exp >= 0:  # a left shift distributes over the groups: one delayed product
            delays = torch.as_tensor(layer.delays)
            return delayed_linear(x, weights, delays) * 2.0**layer.weight_exp
        steps = x.shape[0]
        a = torch.zeros(steps, x.shape[1], layer.size, dtype=torch.float64)
        for delay, mask in self._masks[index]:
            if delay < steps:
                shifted = nn.functional.pad(x[: steps - delay], (0, 0, 0, 0, delay, 0))
                a = a + _shift(shifted @ (weights * mask).T, layer.weight_exp)
        return a


# -- training --------------------------------------------------------------------------------------

@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One torch intra-op thread for the duration: the per-step operations here are tiny, and on
    a busy 2-core machine two threads made a fine-tuning step 7x slower (2.9 s against 0.4 s,
    synthetic preset, batch 64)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class FinetuneEpoch:
    """One epoch of fine-tuning: training loss and accuracy of the integer model, wall time."""

    epoch: int
    train_loss: float
    train_accuracy: float
    seconds: float


def evaluate_fixed(model: QuantizedTrainingModel, loader: DataLoader, progress: bool = False) -> float:
    """Accuracy of the deployed integer model (current parameters) on ``loader``."""
    correct = seen = 0
    with torch.no_grad():
        for x, labels, lengths in tqdm(loader, desc="Loihi 2 integers", disable=not progress, leave=False):
            out = model(x)
            correct += int((out.prediction(own_steps(lengths, x.shape[0], out.readout)) == labels).sum())
            seen += len(labels)
    return correct / max(seen, 1)


def finetune(model: QuantizedTrainingModel, train_set: Dataset, *, epochs: int, batch_size: int = 64,
             lr: float = 1e-4, seed: int = 0, progress: bool = True) -> list[FinetuneEpoch]:
    """Train ``model``'s float weights and biases through the integer forward (Adam, cosine schedule)."""
    torch.manual_seed(seed)
    loader = make_loader(train_set, batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(loader)))
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        with tqdm(loader, desc=f"fine-tune {epoch + 1}/{epochs}", disable=not progress, leave=False) as bar:
            for x, labels, lengths in bar:
                optimizer.zero_grad()
                out = model(x)
                steps = own_steps(lengths, x.shape[0], out.readout)
                loss = loss_function(out.readout_float(), labels, steps, out.fixed.decision)
                loss.backward()
                optimizer.step()
                model.zero_absent()
                schedule.step()
                total_loss += loss.item() * len(labels)
                correct += int((out.prediction(steps) == labels).sum())
                seen += len(labels)
                bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        history.append(FinetuneEpoch(epoch + 1, total_loss / seen, correct / seen, time.perf_counter() - start))
        if progress:
            tqdm.write(f"fine-tune epoch {epoch + 1}: loss {total_loss / seen:.3f}  "
                       f"train acc (Loihi 2 integers) {correct / seen:.3f}  {history[-1].seconds:.1f}s")
    return history


@dataclass
class FinetuneOutcome:
    """A finished fine-tuning run and its test accuracies (rounded float and Loihi 2 integers)."""

    network: Network
    history: list[FinetuneEpoch]
    calibration_peak: float
    accuracy: dict[str, float]
    test_samples: int


def calibration_path_of(output: str | Path) -> Path:
    """Where fine-tuning writes its calibration inputs, next to the checkpoint ``output``."""
    return Path(output).with_suffix(".calibration.npy")


def finetune_checkpoint(path: str | Path, output: str | Path, *, target: str = "loihi2", data_dir: str | None = None,
                        test_speakers: str | None = None,
                        epochs: int = 5, batch_size: int | None = None, lr: float = 1e-4,
                        max_samples: int | None = None, seed: int = 0, progress: bool = True) -> FinetuneOutcome:
    """Fine-tune the checkpoint at ``path`` for ``target`` on its preset's dataset, split as it was
    trained unless ``test_speakers`` says otherwise (FSDD); save a checkpoint that records the split.

    Also writes ``<output stem>.calibration.npy`` (see the module docstring) and prints the
    test accuracies before and after.
    """
    if target not in FINETUNE_TARGETS:
        raise DelayDeployError(f"fine-tuning target {target!r}; choose one of {', '.join(FINETUNE_TARGETS)}")
    check_output_file(output)
    check_output_file(calibration_path_of(output))
    with single_thread():
        return _finetune_checkpoint(path, output, target, data_dir, test_speakers, epochs, batch_size, lr,
                                    max_samples, seed, progress)


def _finetune_checkpoint(path: str | Path, output: str | Path, target: str, data_dir: str | None,
                         test_speakers: str | None, epochs: int, batch_size: int | None, lr: float,
                         max_samples: int | None, seed: int, progress: bool) -> FinetuneOutcome:
    checkpoint = load_checkpoint(path)
    if "adaptation" in checkpoint.metrics:
        print(f"note: {path} is adapted to its test data (delaydeploy adapt); fine-tuning learns from the training "
              "split again and can undo much of the adaptation; the adapted checkpoint exports as it is",
              file=sys.stderr)
    network = lower(checkpoint.build_model())
    train_set, test_set, dataset = dataset_splits(checkpoint, data_dir, max_samples, test_speakers)
    assert isinstance(test_set, Sized)  # every dataset here has a length; torch's Dataset type declares none
    peak = data_peak(train_set, progress)
    batch = batch_size or (checkpoint.train_config.batch_size if checkpoint.train_config else 64)
    test_loader = make_loader(test_set, batch, shuffle=False)
    model = QuantizedTrainingModel(network, peak_calibration(network, peak), checkpoint.config.surrogate_alpha)
    accuracy = {"rounded_before": evaluate_reference(network, test_loader, progress),
                "loihi2_before": evaluate_fixed(model, test_loader, progress)}
    history = finetune(model, train_set, epochs=epochs, batch_size=batch, lr=lr, seed=seed, progress=progress)
    tuned = model.network()
    accuracy["rounded_after"] = evaluate_reference(tuned, test_loader, progress)
    accuracy["loihi2_after"] = evaluate_fixed(model, test_loader, progress)
    tuned_model = model_from_network(tuned, checkpoint.config)
    metrics = {"finetuned_from": str(path), "finetune_target": target, "dataset": dataset,
               "dataset_options": checkpoint.dataset_options(test_speakers),
               "calibration_peak": peak, "finetune_epochs": epochs, "finetune_lr": lr,
               "finetune_history": {"train_loss": [h.train_loss for h in history],
                                    "train_accuracy": [h.train_accuracy for h in history]},
               "test_samples": len(test_set), **{f"test_accuracy_{key}": value for key, value in accuracy.items()},
               "source_metrics": checkpoint.metrics}
    if "adaptation" in checkpoint.metrics:  # its BatchNorm statistics are now in the folded biases
        metrics["adaptation"] = checkpoint.metrics["adaptation"]
    save_checkpoint(checkpoint_of(tuned_model, preset=checkpoint.preset, train_config=checkpoint.train_config,
                                  metrics=metrics), output)
    calibration_path = calibration_path_of(output)
    with atomic_path(calibration_path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, calibration_samples(train_set, peak))
    print(f"test accuracy on {len(test_set)} samples: rounded float {accuracy['rounded_before']:.4f} -> "
          f"{accuracy['rounded_after']:.4f}, Loihi 2 integers {accuracy['loihi2_before']:.4f} -> "
          f"{accuracy['loihi2_after']:.4f}")
    print(f"saved {output} (calibration inputs, peak {peak:g}: {calibration_path})")
    return FinetuneOutcome(tuned, history, peak, accuracy, len(test_set))
