"""Adaptation to new data without labels: BatchNorm statistics measured on the data it will see.

A network trained on some speakers meets a new one whose recordings drive every neuron with a
different mean and spread of synaptic current. BatchNorm normalises the current with the mean
and variance it saw in training; :func:`adapt_batchnorm` measures them again on unlabeled
samples of the new data and keeps everything else (AdaBN: Li et al., "Revisiting Batch
Normalization For Practical Domain Adaptation", 2016). BatchNorm is folded into the deployed
weights and biases (:mod:`delaydeploy.lowering`), so the adapted network deploys on every
target like any other checkpoint.

The statistics are measured as in training, with the deployed (rounded) delays: shuffled
batches of the training batch size, each layer normalised by its batch's own statistics while
the running ones accumulate (an equal-weight average over batches), dropout off. Labels are
never read.

Adapt a trained checkpoint and export the result as it is. Fine-tuning it afterwards learns from
the training data again and can undo the adaptation; a fine-tuned checkpoint has its BatchNorm
folded into biases and has none left to adapt.
"""

from __future__ import annotations

import os
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from delaydeploy.checkpoint import checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.errors import CheckpointError, DelayDeployError
from delaydeploy.fileio import check_output_file
from delaydeploy.finetune import dataset_splits
from delaydeploy.model import DelaySNN, TimeBatchNorm
from delaydeploy.training import evaluate, make_loader


@dataclass
class AdaptOutcome:
    """The adapted model and its rounded-delay test accuracy before and after, on ``test_samples``;
    ``accuracy_after_unused``: after, on the test samples the adaptation did not use (None if it used all)."""

    model: DelaySNN
    accuracy_before: float
    accuracy_after: float
    accuracy_after_unused: float | None
    adapted_on: int
    test_samples: int


def batchnorm_layers(model: DelaySNN) -> list[TimeBatchNorm]:
    """The network's BatchNorm layers, input side first."""
    return [module for module in model.modules() if isinstance(module, TimeBatchNorm)]


@torch.no_grad()
def adapt_batchnorm(model: DelaySNN, dataset: Dataset, batch_size: int, *, seed: int = 0,
                    progress: bool = False) -> None:
    """Replace every BatchNorm's running mean and variance by those of ``dataset`` (labels unused)."""
    norms = batchnorm_layers(model)
    if not norms:
        raise DelayDeployError("the network has no BatchNorm layers to adapt")
    model.eval()
    saved_momentum = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: every batch counts the same
        norm.train()
    try:
        parameter = next(model.parameters())
        for x, _, _ in tqdm(make_loader(dataset, batch_size, shuffle=True, seed=seed), desc="adapting BatchNorm",
                            disable=not progress, leave=False):
            model(x.to(parameter.device, parameter.dtype), rounded=True)
    finally:
        for norm, momentum in zip(norms, saved_momentum):
            norm.momentum = momentum
        model.eval()


def adapt_checkpoint(path: str | os.PathLike, output: str | os.PathLike, *, data_dir: str | None = None,
                     test_speakers: str | None = None, samples: int | None = None, seed: int = 0,
                     max_samples: int | None = None, progress: bool = True) -> AdaptOutcome:
    """Adapt the checkpoint at ``path`` to its test split (``samples`` of it drawn with ``seed``;
    default all) and save it to ``output``, with the adaptation recorded in its metrics.

    The test split is the one the checkpoint was trained with, or ``test_speakers``' recordings
    (FSDD). Accuracies before and after are on the whole test split, with rounded delays.
    """
    check_output_file(output)
    checkpoint = load_checkpoint(path)
    model = checkpoint.build_model()
    if not batchnorm_layers(model):
        raise CheckpointError(f"{path}: the network has no BatchNorm layers to adapt (a fine-tuned checkpoint has "
                              "them folded into biases: adapt the trained checkpoint it came from)")
    _, test_set, dataset = dataset_splits(checkpoint, data_dir, max_samples, test_speakers)
    assert isinstance(test_set, Sized)  # every dataset here has a length; torch's Dataset type declares none
    if samples is not None and samples > len(test_set):
        raise DelayDeployError(f"--samples {samples}: the test split has only {len(test_set)} samples")
    chosen = (list(range(len(test_set))) if samples is None else
              sorted(torch.randperm(len(test_set), generator=torch.Generator().manual_seed(seed))[:samples].tolist()))
    batch_size = checkpoint.train_config.batch_size if checkpoint.train_config else 64
    test_loader = make_loader(test_set, batch_size, shuffle=False)
    device = torch.device("cpu")
    before = evaluate(model, test_loader, device)[0]
    adapt_batchnorm(model, Subset(test_set, chosen), batch_size, seed=seed, progress=progress)
    after = evaluate(model, test_loader, device)[0]
    unused = sorted(set(range(len(test_set))) - set(chosen))
    after_unused = evaluate(model, make_loader(Subset(test_set, unused), batch_size, shuffle=False),
                            device)[0] if unused else None
    metrics = {"adapted_from": str(path), "dataset": dataset,
               "dataset_options": checkpoint.dataset_options(test_speakers),
               "adaptation": {"kind": "batchnorm_statistics", "split": "test", "samples": len(chosen),
                              "of": len(test_set), "seed": seed},
               "test_samples": len(test_set), "test_accuracy_rounded_before": before,
               "test_accuracy_rounded": after, "test_accuracy_rounded_unused": after_unused,
               "source_metrics": checkpoint.metrics}
    save_checkpoint(checkpoint_of(model, preset=checkpoint.preset, train_config=checkpoint.train_config,
                                  metrics=metrics), output)
    print(f"test accuracy on {len(test_set)} samples, rounded delays: {before:.4f} -> {after:.4f} "
          f"(BatchNorm statistics from {len(chosen)} unlabeled test samples)")
    if unused:
        print(f"after adaptation, on the {len(unused)} test samples it did not use: {after_unused:.4f}")
    print(f"saved {Path(output)}")
    return AdaptOutcome(model, before, after, after_unused, len(chosen), len(test_set))
