"""Training with the DCLS recipe, evaluation of the rounded (deployed) model every epoch.

Weights: Adam (or AdamW) with a OneCycle schedule; delay positions: their own Adam with a
cosine or OneCycle schedule (``TrainConfig.position_schedule``); all stepped once per epoch, as
in the official code. A OneCycle runs over ``epochs + 1`` points: over ``epochs``, as the
official code sets it, its last epoch trains at ``max_lr / 25e4`` (~4e-8) and a one-epoch run
does not train at all. The loss and
the decision follow the configuration's ``decision`` rule (:func:`delaydeploy.reference.evidence`)
and sum over each sample's own steps (input and tail), not over the padding of its batch: what
a chip computes for the sample alone. The Gaussian kernel
width sigma shrinks geometrically from K//2 to ``sigma_final`` over the first quarter of the
epochs; DelRec's triangular spread shrinks as ``sigma_init * decay**(100 e / epochs)``.
Delays are clamped to their range, and pruned weights set back to 0, after every optimiser step.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Sized
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from delaydeploy.config import Preset, TrainConfig
from delaydeploy.datasets import load_dataset, pad_collate, with_test_speakers
from delaydeploy.datasets.augment import augment
from delaydeploy.distributed import ProcessGroup, broadcast_buffers, sum_across
from delaydeploy.errors import DatasetError, DelayDeployError
from delaydeploy.model import DelaySNN, loss_function
from delaydeploy.reference import own_steps, predict


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run is repeatable on the same machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None picks CUDA when present, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise DelayDeployError(f"device {device!r}: {error}") from None
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if resolved.type == "cuda" and (resolved.index or 0) >= visible:
        raise DelayDeployError(f"device {device!r}: no such CUDA device here ({visible} visible)")
    return resolved


def dcls_sigma(config: TrainConfig, kernel_size: int, epochs_done: int) -> float:
    """DCLS kernel width after ``epochs_done`` epochs: K//2 shrinking to ``sigma_final``."""
    start = kernel_size // 2
    final_epoch = max(1, int(config.epochs * config.sigma_epoch_fraction))
    if start <= config.sigma_final:
        return config.sigma_final
    step = (config.sigma_final / start) ** (1.0 / final_epoch)
    return start * step ** min(epochs_done, final_epoch)


def recurrent_sigma(config: TrainConfig, epochs_done: int) -> float:
    """DelRec spread width after ``epochs_done`` epochs."""
    return config.recurrent_sigma_init * config.recurrent_sigma_decay ** (100.0 * epochs_done / config.epochs)


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    test_loss: float
    sigma: float
    seconds: float


class Trainer:
    """Owns the optimisers and schedules of one training run of a :class:`DelaySNN`.

    In a distributed run the forward pass goes through DistributedDataParallel, which
    averages gradients; every process then takes the same optimiser step.
    """

    def __init__(self, model: DelaySNN, config: TrainConfig, device: torch.device,
                 group: ProcessGroup | None = None) -> None:
        self.model = model.to(device)
        self.config = config
        self.device = device
        self.forward: DelaySNN | torch.nn.parallel.DistributedDataParallel = model
        if group is not None:
            device_ids = [device.index] if device.type == "cuda" else None
            self.forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        groups = model.parameter_groups()
        optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.weight_optimizer = optimizer_class(
            [
                {"params": groups["weights"], "weight_decay": config.weight_decay},
                {"params": groups["norm"], "weight_decay": 0.0},
            ],
            lr=config.lr_weights,
        )
        self.weight_schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.weight_optimizer, max_lr=config.lr_weights * config.one_cycle_factor, total_steps=config.epochs + 1
        )
        self.delay_optimizer = None
        if groups["delays"]:
            self.delay_optimizer = torch.optim.Adam(groups["delays"], lr=config.lr_positions, weight_decay=0.0)
            if config.position_schedule == "one_cycle":
                self.delay_schedule: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                    self.delay_optimizer, max_lr=config.lr_positions, total_steps=config.epochs + 1)
            else:
                self.delay_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.delay_optimizer,
                                                                                  T_max=config.epochs)
        self.set_epoch(0)

    def set_epoch(self, epochs_done: int) -> None:
        """Apply the kernel-width schedules for the next epoch."""
        self.sigma = dcls_sigma(self.config, self.model.config.kernel_size, epochs_done)
        self.model.set_sigma(self.sigma)
        self.model.set_recurrent_sigma(recurrent_sigma(self.config, epochs_done))

    def step(self, x: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a batch (forward, backward, both optimisers, clamping);
        returns the loss and the detached readout. ``lengths``: of the samples of a padded batch."""
        self.weight_optimizer.zero_grad()
        if self.delay_optimizer is not None:
            self.delay_optimizer.zero_grad()
        readout = self.forward(x).readout
        steps = None if lengths is None else own_steps(lengths, x.shape[0], readout)
        loss = loss_function(readout, labels, steps, self.model.config.decision)
        loss.backward()
        self.weight_optimizer.step()
        if self.delay_optimizer is not None:
            self.delay_optimizer.step()
        self.model.project()
        return loss.detach(), readout.detach()

    def train_epoch(self, loader: DataLoader, progress: tqdm | None = None) -> tuple[float, float]:
        """One pass over ``loader``; returns mean loss and accuracy (continuous model, train mode)."""
        self.model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for x, labels, lengths in loader:
            x, labels = x.to(self.device), labels.to(self.device)
            loss, readout = self.step(x, labels, lengths)
            total_loss += loss.item() * len(labels)
            steps = own_steps(lengths, x.shape[0], readout)
            correct += int((predict(readout, steps, self.model.config.decision) == labels).sum())
            seen += len(labels)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        loss_sum, correct_sum, seen_sum = sum_across([total_loss, correct, seen], self.device)
        return loss_sum / max(seen_sum, 1), correct_sum / max(seen_sum, 1)

    def end_epoch(self, epochs_done: int) -> None:
        self.weight_schedule.step()
        if self.delay_optimizer is not None:
            self.delay_schedule.step()
        self.set_epoch(epochs_done)


@torch.no_grad()
def evaluate(model: DelaySNN, loader: DataLoader, device: torch.device, rounded: bool = True) -> tuple[float, float]:
    """Accuracy and loss of ``model`` on ``loader`` (rounded integer delays by default).

    Loss and class use each sample's own steps (:func:`~delaydeploy.reference.own_steps`), so
    neither depends on the batch. In a distributed run each process passes its own shard and
    the counts are summed.
    """
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, labels, lengths in loader:
        x, labels = x.to(device), labels.to(device)
        readout = model(x, rounded=rounded).readout
        steps = own_steps(lengths, x.shape[0], readout)
        total_loss += loss_function(readout, labels, steps, model.config.decision).item() * len(labels)
        correct += int((predict(readout, steps, model.config.decision) == labels).sum())
        seen += len(labels)
    loss_sum, correct_sum, seen_sum = sum_across([total_loss, correct, seen], device)
    return correct_sum / max(seen_sum, 1), loss_sum / max(seen_sum, 1)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0,
                group: ProcessGroup | None = None) -> DataLoader:
    """Batches of ``pad_collate``; in a distributed run each process gets its shard.

    ``batch_size`` is the global batch: each of the ``world_size`` processes takes its share.
    Training shards come from DistributedSampler (reshuffled per epoch via ``set_epoch``);
    evaluation shards are disjoint strides, so every sample is counted exactly once.
    """
    if group is None:
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=pad_collate,
                          generator=generator)
    per_process = max(1, math.ceil(batch_size / group.world_size))
    if shuffle:
        sampler: torch.utils.data.DistributedSampler[int] = torch.utils.data.DistributedSampler(
            dataset, group.world_size, group.rank, shuffle=True, seed=seed)
        return DataLoader(dataset, batch_size=per_process, sampler=sampler, collate_fn=pad_collate)
    assert isinstance(dataset, Sized)  # every dataset here has a length; torch's Dataset type declares none
    shard = torch.utils.data.Subset(dataset, range(group.rank, len(dataset), group.world_size))
    return DataLoader(shard, batch_size=per_process, collate_fn=pad_collate)


def train(
    model: DelaySNN,
    train_set: Dataset,
    test_set: Dataset,
    config: TrainConfig,
    *,
    device: torch.device,
    progress: bool = True,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    group: ProcessGroup | None = None,
) -> list[EpochMetrics]:
    """Train ``model`` in place and return per-epoch metrics (test accuracy of the rounded model)."""
    seed_everything(config.seed)
    trainer = Trainer(model, config, device, group)
    train_loader = make_loader(train_set, config.batch_size, shuffle=True, seed=config.seed, group=group)
    test_loader = make_loader(test_set, config.batch_size, shuffle=False, group=group)
    progress = progress and (group is None or group.is_main)
    history = []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        if group is not None:
            cast(torch.utils.data.DistributedSampler, train_loader.sampler).set_epoch(epoch)  # make_loader's
        with tqdm(total=len(train_loader), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress,
                  leave=False) as bar:
            train_loss, train_accuracy = trainer.train_epoch(train_loader, bar)
        sigma = trainer.sigma
        trainer.end_epoch(epoch + 1)
        broadcast_buffers(model)
        test_accuracy, test_loss = evaluate(model, test_loader, device, rounded=True)
        metrics = EpochMetrics(epoch + 1, train_loss, train_accuracy, test_accuracy, test_loss, sigma,
                               time.perf_counter() - start)
        history.append(metrics)
        if progress:
            tqdm.write(
                f"epoch {metrics.epoch:3d}  loss {train_loss:.3f}  train acc {train_accuracy:.3f}  "
                f"test acc (rounded) {test_accuracy:.3f}  sigma {sigma:.2f}  {metrics.seconds:.1f}s"
            )
        if on_epoch is not None:
            on_epoch(metrics)
    return history


def history_to_dict(history: list[EpochMetrics]) -> dict[str, list[float]]:
    """Column-wise metrics, ready for a checkpoint (floats and ints only)."""
    columns: dict[str, list[float]] = {}
    for row in history:
        for key, value in asdict(row).items():
            columns.setdefault(key, []).append(value if not isinstance(value, float) or math.isfinite(value) else 0.0)
    return columns


@dataclass
class TrainOutcome:
    """A finished run: the model, per-epoch history and final test accuracies."""

    model: DelaySNN
    history: list[EpochMetrics]
    test_accuracy_continuous: float
    test_accuracy_rounded: float


def preset_splits(preset: Preset, data_dir: str | os.PathLike | None,
                  max_samples: int | None = None) -> tuple[Dataset, Dataset]:
    """The train and test splits of the preset's dataset, each cut to ``max_samples`` samples drawn
    at random with a fixed seed (files come sorted by label, or with labels in a cycle: the first
    ones, or evenly spaced ones, can all be one class); a :class:`DatasetError` when the data's
    channels do not fit the preset's network."""
    splits = [load_dataset(preset.dataset, data_dir, split, **preset.dataset_options) for split in ("train", "test")]
    if splits[0].num_channels != preset.network.input_size:
        raise DatasetError(f"{preset.dataset}: {splits[0].num_channels} input channels, "
                           f"preset {preset.name!r} expects {preset.network.input_size}")
    if max_samples is None:
        return splits[0], splits[1]
    draw = torch.Generator().manual_seed(0)
    cut = [torch.utils.data.Subset(split, sorted(torch.randperm(len(split), generator=draw)[:max_samples].tolist()))
           if max_samples < len(split) else split for split in splits]
    return cut[0], cut[1]


def train_preset(
    preset_name: str,
    *,
    output: str | None = None,
    data_dir: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    device: str | None = "auto",
    seed: int | None = None,
    delays: str | None = None,
    hidden: int | None = None,
    layers: int | None = None,
    sparsity: float | None = None,
    delay_granularity: str | None = None,
    progress: bool = True,
    max_samples: int | None = None,
    test_speakers: str | None = None,
    augmentation: dict | None = None,
) -> TrainOutcome:
    """Train the preset's network on its dataset, report both accuracies, save a checkpoint.

    ``test_speakers`` (FSDD, comma-separated) tests on those speakers and trains on the others;
    the checkpoint records the split in its ``dataset_options``.

    ``delays``, ``sparsity`` and ``delay_granularity`` override the preset's network, and
    ``hidden``/``layers`` its width and depth (:meth:`NetworkConfig.resized`). The preset's
    ``augmentation`` (or ``augmentation``, if given; ``{}`` for none) augments the training
    split (:mod:`delaydeploy.datasets.augment`). Under
    ``torchrun`` (WORLD_SIZE > 1) this trains data-parallel; rank 0 prints and saves. A bad
    ``output`` path is refused before training.
    """
    from delaydeploy import distributed
    from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
    from delaydeploy.config import get_preset
    from delaydeploy.fileio import check_output_file

    if output is not None:
        check_output_file(output)
    preset = get_preset(preset_name)
    preset = dataclasses.replace(preset, dataset_options=with_test_speakers(preset.dataset_options, test_speakers))
    if augmentation is not None:
        preset = dataclasses.replace(preset, augmentation=dict(augmentation))
    network_changes: dict[str, Any] = {key: value for key, value in (("delays", delays), ("sparsity", sparsity),
                                                                     ("delay_granularity", delay_granularity))
                                       if value is not None}
    try:
        network = dataclasses.replace(preset.network.resized(hidden, layers), **network_changes)
    except ValueError as error:
        raise DelayDeployError(f"preset {preset_name!r}: {error}") from None
    changes: dict[str, Any] = {key: value for key, value in (("epochs", epochs), ("batch_size", batch_size),
                                                             ("seed", seed))
                               if value is not None}
    config = dataclasses.replace(preset.train, **changes)
    train_set, test_set = preset_splits(preset, data_dir, max_samples)
    if preset.augmentation:
        train_set = augment(train_set, preset.augmentation)
    resolved = resolve_device(device)
    group = None
    if distributed.launched_by_torchrun():
        group, resolved = distributed.join(resolved)
    try:
        seed_everything(config.seed)
        model = DelaySNN(network)
        history = train(model, train_set, test_set, config, device=resolved, progress=progress, group=group)
        distributed.check_in_sync(model, resolved)
        test_loader = make_loader(test_set, config.batch_size, shuffle=False, group=group)
        continuous, _ = evaluate(model, test_loader, resolved, rounded=False)
        rounded = history[-1].test_accuracy if history else evaluate(model, test_loader, resolved, rounded=True)[0]
    finally:
        distributed.leave()
    model = model.cpu()
    outcome = TrainOutcome(model, history, continuous, rounded)
    if group is not None and not group.is_main:
        return outcome
    assert isinstance(test_set, Sized)  # every dataset here has a length; torch's Dataset type declares none
    print(f"{preset_name}: test accuracy {continuous:.4f} continuous delays, {rounded:.4f} rounded delays "
          f"({len(test_set)} test samples)")
    if output is not None:
        metrics = {"history": history_to_dict(history), "test_accuracy_continuous": continuous,
                   "test_accuracy_rounded": rounded, "dataset": preset.dataset,
                   "dataset_options": dict(preset.dataset_options), "augmentation": dict(preset.augmentation),
                   "processes": 1 if group is None else group.world_size}
        save_checkpoint(checkpoint_of(model, preset=preset_name, train_config=config, metrics=metrics), output)
        print(f"saved {output}")
    return outcome
