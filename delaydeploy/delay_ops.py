"""Synaptic products with integer per-synapse delays, shared by training and the simulators.

``delayed_linear`` computes ``y[t, b, o] = sum_i W[o, i] x[t - D[o, i], b, i]`` (zero before
``t = 0``) for a whole sequence at once. It is the rounded-delay (deployed) form of a DCLS
layer and the synaptic stage of the reference simulator: one implementation serves both.

Cost. One masked dense product per delay value costs ``n_delays`` delay-free products. Two
exact ways avoid that:

* native (CPU, float32/64): a compiled kernel (``csrc/delayed_product.c``, built on first use
  by :mod:`delaydeploy.native`) builds each output row in vector registers, every synapse
  adding its weight times its input row shifted by its own delay. One multiply-add per synapse
  and step, as a delay-free layer, whatever the number of delay values or the activity; it
  takes 1.6-2x a tuned GEMM's time (2-core Zen 3, 140-512 channels), less than the grouped
  path even for a single delay value, so it is taken wherever it applies (``_uses_native``).
* grouped (CUDA, other dtypes, no C compiler): the synapses are grouped by delay and each
  group goes one of two ways:

  - dense: one GEMM of the time-shifted input restricted to the group's rows and columns --
    cheapest where the group fills its block (few distinct delays, delays clustered on a few
    values, a small readout);
  - sparse: one multiply-add per synapse and sample in a sparse (COO) times dense product over
    the input unfolded along delays. The unfolding is an overlapping strided view of the
    padded input, so nothing of size ``n_delays x input`` is built. A synapse-sample costs
    about ``_SPARSE_COST`` dense GEMM multiply-adds, so a group goes sparse when its block
    is less than ``1 / _SPARSE_COST`` full: uniform random delays over more than ~6 values.

  On CUDA every group is dense (GPU GEMMs are cheap; this rule was not measured there).

Both are exact: every output is the same sum of the same products, added in another order
(float64 agrees with the per-delay masked loop to ~1e-15 relative). The backward pass takes
the forward's path. ``dL/dx`` is the product again, with the delays turned into advances;
``dL/dW[o, i]`` correlates ``dL/dy[o]`` with input ``i`` shifted by its delay: the kernel
takes one dot product per synapse (``delayed_correlation``), the grouped path one GEMM per
delay group.

In the grouped path sequences are channel-major, ``[C, T * B]``: a delay is then a column
offset of ``d * B``, channel subsets are row gathers and every dense step is a plain GEMM.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from delaydeploy import native

# Dense GEMM multiply-adds per synapse-sample of the sparse product: the measured crossover
# (2-core EPYC, float32 and float64) between dense-per-delay and sparse lies at 5-8 uniform delays.
_SPARSE_COST = 6.0
# Samples (time x batch) per sparse product call: long rows for the COO kernel's inner AXPY.
_CHUNK = 4096
# Bytes of shifted input one batch tile of the sparse product spans (``C x (span+1) x tile``):
# small enough to stay in cache while each input row is reused; 2 MiB measured best of 1-16 MiB.
_CACHE_BYTES = 2 << 20

# Worker pools by (process id, torch thread count): starting threads costs about a millisecond
# per call, and a forked child inherits the dict but none of its parent's threads.
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _thread_pool() -> ThreadPoolExecutor:
    """This process's pool of ``torch.get_num_threads()`` workers for the single-threaded COO
    products (they release the GIL)."""
    key = (os.getpid(), max(1, torch.get_num_threads()))
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(max_workers=key[1])
    return _POOLS[key]


@dataclass(frozen=True)
class _Group:
    """Synapses ``(outputs[k], inputs[k])`` sharing one delay.

    ``rows`` / ``cols`` are the distinct outputs / inputs; synapse ``k`` sits at
    ``(row_pos[k], col_pos[k])`` of the ``rows x cols`` block.
    """

    delay: int
    outputs: torch.Tensor
    inputs: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    row_pos: torch.Tensor
    col_pos: torch.Tensor
    dense: bool


def delayed_linear(x: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """Apply delayed synapses to a time-first sequence.

    Args:
        x: input ``[T, B, in]``.
        weights: ``[out, in]``, same dtype and device as ``x`` (gradients flow to it).
        delays: integer delays ``[out, in]``, ``>= 0``.

    Returns:
        ``[T, B, out]``; contributions whose delay exceeds the sequence are dropped.
    """
    if delays.numel() and int(delays.min()) < 0:
        raise ValueError(f"delayed_linear: delays must be >= 0, got {int(delays.min())}")
    if x.numel() == 0 or weights.numel() == 0:  # no terms, whatever the delays: the plain (empty) product
        return x @ weights.T
    return _DelayedLinear.apply(x, weights, delays)


class _DelayedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
        steps, batch, _ = x.shape
        delays = delays.to(device=x.device)
        ctx.save_for_backward(x, weights, delays)
        ctx.groups = None
        if _uses_native(x, weights):
            return _native_product(x, weights, delays)
        ctx.groups = _plan(delays, steps)
        return _time_major(_product(ctx.groups, _channel_major(x), weights, steps, batch, transpose=False),
                           steps, batch)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weights, delays = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = None
        if ctx.groups is None:  # the forward took the kernel; so does the backward
            if ctx.needs_input_grad[0]:  # delays become advances
                grad_x = _native_product(grad, weights.T, delays.T, advance=True)
            if ctx.needs_input_grad[1]:
                grad_w = _native_correlation(x, grad, delays)
            return grad_x, grad_w, None
        steps, batch, _ = x.shape
        grad_rows = _channel_major(grad)
        if ctx.needs_input_grad[0]:
            grad_x = _time_major(_product(ctx.groups, grad_rows, weights, steps, batch, transpose=True), steps, batch)
        if ctx.needs_input_grad[1]:
            grad_w = _correlation(ctx.groups, grad_rows, _channel_major(x), weights, batch)
        return grad_x, grad_w, None


def _uses_native(x: torch.Tensor, weights: torch.Tensor) -> bool:
    """Whether the compiled kernel applies: CPU, float32/64 (one dtype for both), a C compiler."""
    return x.device.type == "cpu" and weights.dtype == x.dtype and native.delayed_product(x.dtype) is not None


def _native_product(x: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor, advance: bool = False
                    ) -> torch.Tensor:
    """``[T, B, out]``, ``y[t] = W x[t - D]`` (or ``x[t + D]``), through the compiled kernel."""
    steps, batch, inputs = x.shape
    outputs = weights.shape[0]
    x, weights = x.detach().contiguous(), weights.detach().contiguous()
    delays = delays.to(torch.int64).contiguous()  # the kernel reads int64
    out = torch.empty(steps, batch, outputs, dtype=x.dtype)
    kernel = native.delayed_product(x.dtype)
    assert kernel is not None  # taken only where _uses_native found the kernel
    if kernel(x.data_ptr(), weights.data_ptr(), delays.data_ptr(), out.data_ptr(), steps, batch, inputs, outputs,
              int(advance)):
        raise MemoryError(f"delayed product: no memory for its working buffers ({outputs} x {inputs} synapses, "
                          f"per thread {inputs} + {outputs} rows of up to 8 samples x {steps} steps)")
    return out


def _native_correlation(x: torch.Tensor, grad: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """``dL/dW[o, i] = sum_{t, b} grad[t, b, o] x[t - D[o, i], b, i]`` through the compiled kernel."""
    steps, batch, inputs = x.shape
    outputs = grad.shape[2]
    x, delays = x.detach().contiguous(), delays.to(torch.int64).contiguous()
    grad_weights = torch.empty(outputs, inputs, dtype=x.dtype)
    kernel = native.delayed_correlation(x.dtype)
    assert kernel is not None  # taken only after a forward through the kernel
    if kernel(x.data_ptr(), grad.data_ptr(), delays.data_ptr(), grad_weights.data_ptr(), steps, batch, inputs,
              outputs):
        raise MemoryError(f"delayed correlation: no memory for rows of {batch} samples x {steps} steps for "
                          f"{inputs} inputs and {outputs} outputs")
    return grad_weights


def _channel_major(sequence: torch.Tensor) -> torch.Tensor:
    """``[T, B, C]`` -> contiguous ``[C, T * B]``."""
    return sequence.permute(2, 0, 1).reshape(sequence.shape[2], -1).contiguous()


def _time_major(rows: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
    """``[C, T * B]`` -> contiguous ``[T, B, C]``."""
    return rows.view(-1, steps, batch).permute(1, 2, 0).contiguous()


def _plan(delays: torch.Tensor, steps: int) -> list[_Group]:
    """Group synapses by delay (delays ``>= steps`` dropped) and send each group dense or sparse."""
    inputs_count = delays.shape[1]
    flat = delays.flatten()
    order = torch.argsort(flat, stable=True)  # within a group, synapses stay in (output, input) order
    values, counts = torch.unique_consecutive(flat[order], return_counts=True)
    groups = []
    for delay, synapses in zip(values.tolist(), order.split(counts.tolist())):
        if delay >= steps:
            break
        outputs, inputs = synapses // inputs_count, synapses % inputs_count
        rows, row_pos = torch.unique_consecutive(outputs, return_inverse=True)
        cols, col_pos = torch.unique(inputs, return_inverse=True)
        dense = delays.device.type != "cpu" or rows.numel() * cols.numel() <= _SPARSE_COST * synapses.numel()
        groups.append(_Group(delay, outputs, inputs, rows, cols, row_pos, col_pos, dense))
    return groups


def _product(groups: list[_Group], source: torch.Tensor, weights: torch.Tensor, steps: int, batch: int,
             transpose: bool) -> torch.Tensor:
    """Channel-major ``y[o, t] = sum W[o, i] x[i, t - D]`` (transposed: ``g[i, t] = sum W[o, i] y[o, t + D]``)."""
    size = weights.shape[1] if transpose else weights.shape[0]
    out = source.new_zeros(size, steps * batch)
    for group in groups:
        if not group.dense:
            continue
        block = weights.new_zeros(group.rows.numel(), group.cols.numel())
        block[group.row_pos, group.col_pos] = weights[group.outputs, group.inputs]
        later, earlier = slice(group.delay * batch, None), slice(0, (steps - group.delay) * batch)
        if transpose:  # g[cols, t] += block.T @ y[rows, t + d]
            src_idx, dst_idx, mapping, read, write = group.rows, group.cols, block.T, later, earlier
        else:  # y[rows, t + d] += block @ x[cols, t]
            src_idx, dst_idx, mapping, read, write = group.cols, group.rows, block, earlier, later
        shifted = source[:, read] if src_idx.numel() == source.shape[0] else source.index_select(0, src_idx)[:, read]
        if dst_idx.numel() == size:
            out[:, write].addmm_(mapping, shifted)
        else:
            out[:, write].index_add_(0, dst_idx, mapping @ shifted)
    sparse = [group for group in groups if not group.dense]
    if sparse:
        outputs, inputs = torch.cat([g.outputs for g in sparse]), torch.cat([g.inputs for g in sparse])
        shifts = torch.cat([torch.full_like(g.outputs, g.delay) for g in sparse])
        dst, src = (inputs, outputs) if transpose else (outputs, inputs)
        out += _sparse_product(source, dst, src, shifts, weights[outputs, inputs], size, steps, batch,
                               advance=transpose)
    return out


def _sparse_product(source: torch.Tensor, dst: torch.Tensor, src: torch.Tensor, shifts: torch.Tensor,
                    values: torch.Tensor, size: int, steps: int, batch: int, advance: bool) -> torch.Tensor:
    """Channel-major ``out[dst, t] += v * source[src, t -/+ shift]`` for every listed synapse.

    A batch tile of ``w`` samples is padded by ``span`` zero steps (in front for delays,
    behind for advances) to ``[C, (T + span) * w]`` and read through an overlapping strided
    view whose row ``r`` starts at sample ``r * w``: row ``c * (T + span) + j`` is channel
    ``c`` moved by ``span - j`` steps. A COO matrix ``[size, rows]`` with one entry per synapse
    times that view is the delayed product. Tiles are sized to :data:`_CACHE_BYTES` so the
    shifted rows a column chunk reads stay in cache; they run on a thread pool (the COO
    kernel is single-threaded and releases the GIL).
    """
    channels = source.shape[0]
    span = int(shifts.max())
    rows = (channels - 1) * (steps + span) + span + 1
    offsets = shifts if advance else span - shifts
    matrix = torch.sparse_coo_tensor(torch.stack([dst, src * (steps + span) + offsets]), values,
                                     (size, rows), check_invariants=True).coalesce()
    tile = max(1, min(batch, _CACHE_BYTES // (channels * (span + 1) * source.element_size())))
    by_sample = source.view(channels, steps, batch)
    out = source.new_empty(size, steps, batch)

    def tile_product(first: int) -> None:
        width = min(tile, batch - first)
        padding = (0, 0, 0, span) if advance else (0, 0, span, 0)
        padded = torch.nn.functional.pad(by_sample[:, :, first:first + width], padding).contiguous()
        view = padded.view(-1).as_strided((rows, steps * width), (width, 1))
        chunk = max(1, _CHUNK // width) * width
        for start in range(0, steps * width, chunk):
            piece = torch.sparse.mm(matrix, view[:, start:start + chunk]).view(size, -1, width)
            out[:, start // width:start // width + piece.shape[1], first:first + width] = piece

    list(_thread_pool().map(tile_product, range(0, batch, tile)))
    return out.view(size, steps * batch)


def _correlation(groups: list[_Group], grad: torch.Tensor, x: torch.Tensor, weights: torch.Tensor,
                 batch: int) -> torch.Tensor:
    """``dL/dW[o, i] = sum_{t, b} grad[o, t, b] x[i, t - D[o, i], b]`` (channel-major), one GEMM per delay."""
    samples = x.shape[1]
    grad_w = torch.zeros_like(weights)
    for group in groups:
        later = grad[:, group.delay * batch:]
        earlier = x[:, : samples - group.delay * batch]
        if group.rows.numel() < grad.shape[0]:
            later = later.index_select(0, group.rows)
        if group.cols.numel() < x.shape[0]:
            earlier = earlier.index_select(0, group.cols)
        grad_w[group.outputs, group.inputs] = (later @ earlier.T)[group.row_pos, group.col_pos]
    return grad_w
