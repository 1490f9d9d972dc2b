"""Data-parallel training under ``torchrun`` (PyTorch's DistributedDataParallel).

``torchrun --nproc_per_node=N -m delaydeploy train ...`` starts N processes; each sees
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its environment. They join one process group (gloo
on the CPU, nccl on GPUs), each trains on its shard of every epoch (DistributedSampler), and
gradients are averaged. Logging, evaluation summaries and checkpoints happen on rank 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a distributed run."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> tuple[ProcessGroup, torch.device]:
    """Join the process group torchrun set up; on CUDA each process takes its local GPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), local_rank), device


# Tensors handed to collectives, kept referenced until leave(). A gloo worker thread releases
# its work a moment after the call has returned; if that release drops the last reference to a
# Python tensor it must take the GIL, which an exiting interpreter no longer grants: the thread
# then aborts the process ("terminate called without an active exception", seen under gdb in
# ~AsyncAllreduceWork during Py_FinalizeEx, in about one run in five).
_HANDED_OVER: list[torch.Tensor] = []


def _handed_over(tensor: torch.Tensor) -> torch.Tensor:
    _HANDED_OVER.append(tensor)
    return tensor


def leave() -> None:
    """Leave the process group together. The tensors given to collectives are released after
    the final barrier, by which time the worker threads have finished with their works."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _HANDED_OVER.clear()


def sum_across(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (identity outside a distributed run)."""
    if not dist.is_initialized():
        return values
    tensor = _handed_over(torch.tensor(values, dtype=torch.float64, device=device))
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts buffers at the start of each forward, so after the last training step
    each process holds its own statistics; evaluation must use one set.
    """
    if dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(_handed_over(buffer.data), src=0)


def check_in_sync(model: torch.nn.Module, device: torch.device) -> None:
    """Raise if the processes' parameters differ (they must, after averaged gradient steps)."""
    if not dist.is_initialized():
        return
    for name, parameter in model.state_dict().items():
        if not parameter.is_floating_point():
            continue
        reference = _handed_over(parameter.detach().clone().to(device))
        dist.broadcast(reference, src=0)
        if not torch.equal(reference, parameter.detach().to(device)):
            raise RuntimeError(f"rank {dist.get_rank()}: {name} differs from rank 0 after training")
