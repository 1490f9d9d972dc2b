"""The compiled ring-synapse step (``csrc/ring_synapses.c``) adds exactly what its definition says.

One step for several lanes: every active input's synapses summed per (delay, output), each
sum scaled (integers: by ``2 ** shift``, a negative shift flooring) and added to ring row
``(delay + head) % slots``, and the scratch left zero. Checked against the definition written
out in numpy, float to the last bit (the same summation order) and integers exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from delaydeploy import native

LANES, INPUTS, OUTPUTS, SLOTS = 3, 7, 5, 6


def _synapses(rng: np.random.Generator, dtype: type) -> tuple[np.ndarray, np.ndarray, sparse.csr_array]:
    weights = rng.integers(-300, 300, (OUTPUTS, INPUTS)) * (rng.random((OUTPUTS, INPUTS)) < 0.7)
    weights = weights.astype(dtype) if dtype is np.int64 else weights * 0.37
    delays = rng.integers(0, SLOTS, (OUTPUTS, INPUTS))
    post, pre = np.nonzero(weights)
    matrix = sparse.csr_array((weights[post, pre], (pre, delays[post, pre] * OUTPUTS + post)),
                              shape=(INPUTS, SLOTS * OUTPUTS))
    return weights, delays, matrix


def _expected(x: np.ndarray, weights: np.ndarray, delays: np.ndarray, ring: np.ndarray, head: int,
              shift: int | None) -> np.ndarray:
    ring = ring.copy()
    for lane in range(LANES):
        sums = np.zeros((SLOTS, OUTPUTS), dtype=weights.dtype)
        for i in range(INPUTS):
            if x[lane, i] != 0:
                for post in range(OUTPUTS):
                    if weights[post, i] != 0:
                        sums[delays[post, i], post] += x[lane, i] * weights[post, i]
        if shift is not None:
            sums = sums << shift if shift >= 0 else sums >> -shift
        for delay in range(SLOTS):
            ring[lane, (delay + head) % SLOTS] += sums[delay].astype(ring.dtype)
    return ring


@pytest.mark.parametrize("head", [0, 4])
def test_float_step(head) -> None:
    rng = np.random.default_rng(head)
    weights, delays, matrix = _synapses(rng, np.float64)
    x = rng.poisson(0.8, (LANES, INPUTS)).astype(np.float64)
    ring = rng.normal(size=(LANES, SLOTS, OUTPUTS))
    scratch = np.zeros(ring.size)
    expected = _expected(x, weights, delays, ring, head, None)
    kernel = native.ring_step(False)
    assert kernel is not None
    kernel(LANES, INPUTS, SLOTS * OUTPUTS, SLOTS, head, x.ctypes.data, matrix.indptr.astype(np.int64).ctypes.data,
           matrix.indices.astype(np.int64).ctypes.data, matrix.data.ctypes.data, scratch.ctypes.data, ring.ctypes.data)
    np.testing.assert_array_equal(ring, expected)
    assert not scratch.any()


@pytest.mark.parametrize("shift", [-3, 0, 2])
def test_integer_step(shift) -> None:
    rng = np.random.default_rng(10 + shift)
    weights, delays, matrix = _synapses(rng, np.int64)
    x = rng.integers(-5, 9, (LANES, INPUTS)) * (rng.random((LANES, INPUTS)) < 0.6)
    ring = rng.integers(-1000, 1000, (LANES, SLOTS, OUTPUTS)).astype(np.int32)
    scratch = np.zeros(ring.size, dtype=np.int64)
    expected = _expected(x, weights, delays, ring, 2, shift)
    assert (expected != ring).sum() > 10  # the step adds something
    kernel = native.ring_step(True)
    assert kernel is not None
    indptr, indices, data = (np.ascontiguousarray(a, dtype=np.int64) for a in (matrix.indptr, matrix.indices,
                                                                              matrix.data))
    kernel(LANES, INPUTS, SLOTS * OUTPUTS, SLOTS, 2, np.ascontiguousarray(x, dtype=np.int64).ctypes.data,
           indptr.ctypes.data, indices.ctypes.data, data.ctypes.data, shift, scratch.ctypes.data, ring.ctypes.data)
    np.testing.assert_array_equal(ring, expected)
    assert not scratch.any()
