"""Our Lava processes and process models (float ``floating_pt`` and bit-accurate ``fixed_pt``).

* :class:`FramedLIF` — a LIF population that resets every ``frame_steps`` steps, starting at
  step ``frame_offset + 1`` (the population's lag behind the input), stays silent before its
  first frame and after ``active_steps`` steps of each frame, offers a soft reset, and can
  record its spikes or membrane itself. Its models reuse the sub-threshold dynamics of Lava's
  stock LIF models (``AbstractPyLifModelFloat`` / ``AbstractPyLifModelFixed``), so the
  arithmetic is Lava's own. Its shape is ``(N,)`` (one population, as on a chip) or
  ``(lanes, N)``: independent copies that run different samples in lockstep.
* :class:`PyFastDelayDenseModelFloat` / :class:`PyFastDelayDenseModelBitAcc` (and the
  ``DelaySparse`` pair, for pruned stages) — faster models of Lava's stock ``DelayDense``
  (``DelaySparse``) process, selected through the run config
  (``exception_proc_model_map={DelayDense: ...}``). The same buffer (kept as a ring), same
  timing, same integer rounding as the stock models; the synapses are indexed by (input,
  delay) once and only the active inputs are summed (the stock models rebuild a
  ``(max_delay+1)*out x in`` matrix every step). Given ``frame_steps`` and ``frame_offset``
  (the source's lag) in the process kwargs they also empty their buffer when their source
  starts a new frame, so that
  samples run back to back do not leak into each other: after that step's send for a
  feedforward synapse (what it sends then still belongs to the target's old frame), before it
  for a recurrent loop (``loop=True``: the target starts its frame in the same step as its source).
* :class:`LaneDelayDense` — the same synapses with a lane axis: ``s_in [lanes, in]``,
  ``a_out [lanes, out]``, one buffer per lane; its models are the fast ones above.
* :class:`DelayLine` — one delay per element of a vector (NIR's ``Delay``): before a
  ``Dense`` it gives every synapse from input ``i`` the delay ``a[i]`` (axonal), after one
  every synapse into output ``o`` the delay ``b[o]`` (dendritic), so a stage whose delays have
  that structure stores one delay per neuron instead of one per synapse.
* :class:`StreamedInput` — the input of a laned graph, ``[lanes, C]`` per step, which the host
  sends in blocks of steps through an external pipe while the graph runs (so a run of any
  length holds only a few blocks).

Keep every Lava import inside ``exporters/lava/``: Lava is archived and sits behind this
adapter.
"""

from __future__ import annotations

import delaydeploy.exporters.lava.env  # noqa: F401  (first: makes Lava importable after tqdm)

# isort: split
import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import DelayDense
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat
from lava.proc.lif.process import AbstractLIF
from lava.proc.sparse.process import DelaySparse
from lava.utils.weightutils import SignMode, clip_weights, determine_sign_mode, truncate_weights
from scipy import sparse
from scipy.sparse import csr_matrix

from delaydeploy import native

PROBE_PIPE_BLOCKS = 8  # blocks the host may fall behind before a probing population waits


class FramedLIF(AbstractLIF):
    """LIF neurons (Lava's equations) with framing, soft reset and a built-in probe.

    Step ``t`` (Lava counts from 1) is position ``p = t - 1 - frame_offset`` of the
    population's own time axis. For ``p < 0`` the neurons are silent and keep zero state; at
    every ``p % frame_steps == 0`` ``u`` and ``v`` are zeroed before the update; spikes are
    suppressed where ``p % frame_steps >= active_steps``. A spike resets ``v`` to 0
    (``reset="hard"``) or subtracts the threshold (``"soft"``: ``reset_amount`` in float,
    ``vth << 6`` in fixed point).

    ``shape`` is ``(N,)`` or ``(lanes, N)``; per-neuron biases ``[N]`` apply to every lane.
    ``probe="spikes"`` or ``"v"`` records that quantity (``v`` after the reset) for the first
    ``probe_steps`` steps and sends it to the host in blocks of ``probe_block`` steps through
    an external pipe (Lava's ``Extractor`` mechanism, without an extra process: every process
    costs a synchronisation per step); read the blocks with :meth:`receive_probe`.
    """

    def __init__(
        self,
        *,
        shape: tuple[int],
        du: float,
        dv: float,
        bias_mant: float | np.ndarray,
        vth: float,
        frame_steps: int,
        frame_offset: int,
        active_steps: int,
        bias_exp: float | np.ndarray = 0,
        reset: str = "hard",
        reset_amount: float = 0.0,
        probe: str | None = None,
        probe_steps: int = 0,
        probe_block: int = 64,
        name: str | None = None,
    ) -> None:
        if reset not in ("hard", "soft"):
            raise ValueError(f"reset = {reset!r}; expected 'hard' or 'soft'")
        if not 0 < active_steps <= frame_steps:
            raise ValueError(f"active_steps = {active_steps} must lie in [1, frame_steps = {frame_steps}]")
        if probe not in (None, "spikes", "v"):
            raise ValueError(f"probe = {probe!r}; expected None, 'spikes' or 'v'")
        if len(shape) not in (1, 2):
            raise ValueError(f"shape = {shape}; expected (N,) or (lanes, N)")
        bias_mant = np.broadcast_to(bias_mant, shape).copy()
        bias_exp = np.broadcast_to(bias_exp, shape).copy()
        super().__init__(shape=shape, u=0, v=0, du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp,
                         name=name, log_config=None, frame_steps=int(frame_steps),
                         frame_offset=int(frame_offset), active_steps=int(active_steps),
                         soft_reset=reset == "soft", reset_amount=reset_amount, probe=probe,
                         probe_steps=int(probe_steps), probe_block=int(probe_block))
        self.vth = Var(shape=(1,), init=vth)
        self.probe_out = OutPort(shape=(probe_block, *shape))
        if probe is not None:
            self.probe_out.flag_external_pipe(buffer_size=PROBE_PIPE_BLOCKS)

    def receive_probe(self) -> np.ndarray:
        """The next recorded block, ``[probe_block, *shape]`` (blocks until it has been sent)."""
        return self.probe_out.external_pipe_csp_recv_port.recv()


def frame_position(time_step: int, frame_offset: int, frame_steps: int) -> int | None:
    """Position of Lava step ``time_step`` in the frames of a process lagging ``frame_offset``
    steps, or None before its first frame."""
    position = time_step - 1 - frame_offset
    return None if position < 0 else position % frame_steps


class _FramedLifBehaviour:
    """Framing, reset and probe logic shared by the float and fixed models of :class:`FramedLIF`."""

    proc_params: ty.Any
    time_step: int
    u: np.ndarray
    v: np.ndarray
    s_out: PyOutPort
    probe_out: PyOutPort
    subthr_dynamics: ty.Callable[..., None]  # from Lava's LIF models
    _block: np.ndarray | None = None

    def update(self, a_in: np.ndarray, threshold: ty.Any, soft_reset_amount: ty.Any) -> None:
        """One step: frame reset, ``subthr_dynamics``, ``v > threshold``, reset, send, record."""
        position = frame_position(self.time_step, self.proc_params["frame_offset"], self.proc_params["frame_steps"])
        spikes = np.zeros(self.v.shape, dtype=bool)
        if position is not None:
            if position == 0:
                self.u[:] = 0
                self.v[:] = 0
            self.subthr_dynamics(activation_in=a_in)
            if position < self.proc_params["active_steps"]:
                spikes = self.v > threshold
            if self.proc_params["soft_reset"]:
                self.v[spikes] -= soft_reset_amount
            else:
                self.v[spikes] = 0
        self.s_out.send(spikes)
        probe = self.proc_params["probe"]
        if probe is not None:
            self._record(spikes if probe == "spikes" else self.v)

    def _record(self, values: np.ndarray) -> None:
        row, steps, block = self.time_step - 1, self.proc_params["probe_steps"], self.proc_params["probe_block"]
        if row >= steps:
            return
        if self._block is None:
            self._block = np.zeros((block, *values.shape))
        self._block[row % block] = values
        if row % block == block - 1 or row == steps - 1:
            self.probe_out.send(self._block)
            self._block = np.zeros_like(self._block)


@implements(proc=FramedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFramedLifModelFloat(_FramedLifBehaviour, AbstractPyLifModelFloat):
    """Float :class:`FramedLIF`: Lava's float LIF update, ``s = v > vth``."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    probe_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    vth: float = LavaPyType(float, float)

    def run_spk(self) -> None:
        self.update(self.a_in.recv(), self.vth, self.proc_params["reset_amount"])


@implements(proc=FramedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyFramedLifModelBitAcc(_FramedLifBehaviour, AbstractPyLifModelFixed):
    """Bit-accurate :class:`FramedLIF`: Lava's Loihi 2 LIF update, ``s = v > vth << 6``."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    probe_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        self.scale_bias()
        effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.update(a_in, effective_vth, effective_vth)


class LaneDelayDense(DelayDense):
    """Lava's ``DelayDense`` synapses for ``lanes`` independent copies of the network: the same
    weights and delays, ``s_in [lanes, in]``, ``a_out [lanes, out]`` and a buffer per lane
    (``lanes`` reaches the models as a process parameter). Runs on the fast models below."""

    def __init__(self, *, lanes: int, weights: np.ndarray, delays: np.ndarray, **kwargs) -> None:
        super().__init__(weights=weights, delays=delays, lanes=int(lanes), **kwargs)
        out_size, in_size = weights.shape
        self.s_in = InPort(shape=(lanes, in_size))
        self.a_out = OutPort(shape=(lanes, out_size))


class StreamedInput(AbstractProcess):
    """Input ``[lanes, C]`` per step, received from the host in blocks of ``block`` steps.

    The host sends block ``k`` (steps ``k * block + 1 .. (k + 1) * block``, ``[block, lanes, C]``)
    with :meth:`send_block` before the run reaches it; the pipe holds ``PROBE_PIPE_BLOCKS`` blocks.
    """

    def __init__(self, *, shape: tuple[int, int], block: int, name: str | None = None) -> None:
        super().__init__(shape=shape, block=int(block), name=name)
        self.s_out = OutPort(shape=shape)
        self.blocks_in = InPort(shape=(block, *shape))
        self.blocks_in.flag_external_pipe(buffer_size=PROBE_PIPE_BLOCKS)

    def send_block(self, values: np.ndarray) -> None:
        """Queue the next block of input (the runtime must exist: see ``create_runtime``)."""
        self.blocks_in.external_pipe_csp_send_port.send(values)


class _StreamedInputBehaviour:
    """Send row ``(t - 1) % block`` of the current block at step ``t``, taking a new block when one is used up."""

    proc_params: ty.Any
    time_step: int
    blocks_in: PyInPort
    s_out: PyOutPort
    _block: np.ndarray | None = None

    def run_spk(self) -> None:
        row = (self.time_step - 1) % self.proc_params["block"]
        if row == 0:
            self._block = self.blocks_in.recv()
        assert self._block is not None  # received at the first step
        self.s_out.send(self._block[row])


@implements(proc=StreamedInput, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyStreamedInputModelFloat(_StreamedInputBehaviour, PyLoihiProcessModel):
    """Float :class:`StreamedInput`."""

    blocks_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=StreamedInput, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStreamedInputModelFixed(_StreamedInputBehaviour, PyLoihiProcessModel):
    """Fixed-point :class:`StreamedInput` (the payload Loihi 2 receives, as integers)."""

    blocks_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)


class DelayLine(AbstractProcess):
    """``out[i](t) = in[i](t - delays[i])`` for a vector of ``len(delays)`` values (spikes,
    graded payloads or synaptic currents).

    It takes no step of its own: each step it receives, then sends, so a delay of 0 passes the
    value on in the same step. It empties itself when its input starts a new frame
    (``frame_steps``, and ``frame_offset``: the input's lag), so samples run back to back do
    not leak into each other.
    """

    def __init__(self, *, delays: np.ndarray, frame_steps: int, frame_offset: int, name: str | None = None) -> None:
        super().__init__(frame_steps=int(frame_steps), frame_offset=int(frame_offset), name=name)
        delays = np.asarray(delays, dtype=np.int64)
        if delays.ndim != 1 or delays.min(initial=0) < 0:  # checked after Lava's set-up, which its __del__ needs
            raise ValueError(f"DelayLine delays must be a vector of integers >= 0, got shape {delays.shape}, "
                             f"smallest {delays.min(initial=0)}")
        self.s_in = InPort(shape=delays.shape)
        self.s_out = OutPort(shape=delays.shape)
        self.delays = Var(shape=delays.shape, init=delays)


class _DelayLineBehaviour:
    """A ring ``[max_delay + 1, n]`` whose row ``head`` is sent this step: the value received at
    step ``t`` is added ``delays[i]`` rows on, sent at step ``t + delays[i]``."""

    proc_params: ty.Any
    time_step: int
    delays: np.ndarray
    s_in: PyInPort
    s_out: PyOutPort
    ring_dtype: type
    _ring: np.ndarray | None = None
    _head = 0

    def run_spk(self) -> None:
        if self._ring is None:
            self._ring = np.zeros((int(self.delays.max(initial=0)) + 1, self.delays.size), dtype=self.ring_dtype)
            self._columns = np.arange(self.delays.size)
        if frame_position(self.time_step, self.proc_params["frame_offset"], self.proc_params["frame_steps"]) == 0:
            self._ring[:] = 0
        slots = self._ring.shape[0]
        self._ring[(self._head + self.delays) % slots, self._columns] += self.s_in.recv()
        self.s_out.send(self._ring[self._head].copy())
        self._ring[self._head] = 0
        self._head = (self._head + 1) % slots


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDelayLineModelFloat(_DelayLineBehaviour, PyLoihiProcessModel):
    """Float :class:`DelayLine`."""

    ring_dtype = np.float64

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    delays: np.ndarray = LavaPyType(np.ndarray, int)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyDelayLineModelFixed(_DelayLineBehaviour, PyLoihiProcessModel):
    """Integer :class:`DelayLine` (spikes, 24-bit payloads or 16-bit currents, unchanged)."""

    ring_dtype = np.int32

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    delays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)


class _FastDelayDense(PyLoihiProcessModel):
    """Shared body of the fast ``DelayDense`` models, with or without lanes.

    Per step, with the stock models' timing: send the buffer's next row, clear it, then add
    this step's input with delay ``k`` ``k`` rows further on (it reaches the target ``1 + k``
    steps later). The buffer is a ring ``[lanes, max_delay + 1, out]`` of the model's own (the
    stock ``a_buff`` transposed, its row ``head`` the stock column 0; the ``a_buff`` Var is
    not kept), so a step moves ``head`` instead of shifting every column and sends one
    contiguous row. The synapses are a sparse ``[in, (max_delay + 1) * out]`` matrix holding
    each nonzero weight once, at column ``delay * out + post``, built once: a step sums, per
    lane, the rows of the active inputs and adds each (delay, output) sum to the ring, its row
    turned by ``head``. The compiled kernel (:func:`delaydeploy.native.ring_step`) does that
    in one pass; without a C compiler scipy's sparse product does it, with the same floats.
    """

    weights: np.ndarray | csr_matrix  # dense (DelayDense) or sparse (DelaySparse)
    delays: np.ndarray | csr_matrix
    a_buff: np.ndarray
    num_message_bits: np.ndarray
    s_in: PyInPort
    a_out: PyOutPort
    accumulator: type = np.float64  # the dtype products and sums are formed in

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self._synapses: sparse.csr_array | None = None
        self._ring = np.zeros(0)
        self._sent_shape: tuple[int, ...] = ()
        self._head = 0
        self._kernel = native.ring_step(self.accumulator is np.int64)
        self._scratch: np.ndarray = np.zeros(0, dtype=self.accumulator)

    def effective_weights(self) -> np.ndarray:
        """The weights as the stock model uses them."""
        return self.weights

    def weight_exp(self) -> int:
        """Each (step, delay) sum is scaled by ``2 ** weight_exp`` (0 in float)."""
        return 0

    def _build(self) -> None:
        weights = sparse.coo_array(self.effective_weights())  # dense (DelayDense) or sparse (DelaySparse)
        present = weights.data != 0
        post, pre, values = weights.row[present], weights.col[present], weights.data[present]
        # scipy has no type hints, so issparse does not narrow the union
        delays = (self.delays.toarray() if sparse.issparse(self.delays)  # type: ignore[union-attr]
                  else np.asarray(self.delays))
        out_size, in_size = weights.shape
        slots = self.a_buff.shape[-1]
        lanes = self.proc_params.get("lanes")
        self._sent_shape = (out_size,) if lanes is None else (lanes, out_size)
        synapses = sparse.csr_array((values.astype(self.accumulator), (pre, delays[post, pre] * out_size + post)),
                                    shape=(in_size, slots * out_size))
        synapses.indptr = synapses.indptr.astype(np.int64)
        synapses.indices = synapses.indices.astype(np.int64)
        self._synapses = synapses
        self._ring = np.zeros((lanes or 1, slots, out_size), dtype=self.a_buff.dtype)
        self._scratch = np.zeros(self._ring.size, dtype=self.accumulator)

    def _flush_due(self) -> bool:
        frame_steps = self.proc_params.get("frame_steps", 0)
        return bool(frame_steps) and frame_position(self.time_step, self.proc_params.get("frame_offset", 0),
                                                    frame_steps) == 0

    def run_spk(self) -> None:
        if self._synapses is None:
            self._build()
        flush = self._flush_due()
        loop = self.proc_params.get("loop", False)
        if flush and loop:
            self._ring[:] = 0
        self.a_out.send(self._ring[:, self._head].reshape(self._sent_shape))
        s_in = self.s_in.recv()
        self._ring[:, self._head] = 0
        self._head = (self._head + 1) % self._ring.shape[1]
        if flush and not loop:
            self._ring[:] = 0
        if s_in.any():
            graded = self.num_message_bits.item() > 0
            values = s_in if graded else s_in != 0
            self._add(np.ascontiguousarray(values.reshape(-1, s_in.shape[-1]), dtype=self.accumulator))

    def _add(self, values: np.ndarray) -> None:
        """Add the synaptic input of ``values [lanes, in]`` to every lane's ring."""
        lanes, inputs = values.shape
        _, slots, out_size = self._ring.shape
        assert self._synapses is not None  # built at the first step
        if self._kernel is not None:
            shift = [self.weight_exp()] if self.accumulator is np.int64 else []
            self._kernel(lanes, inputs, slots * out_size, slots, self._head, values.ctypes.data,
                         self._synapses.indptr.ctypes.data, self._synapses.indices.ctypes.data,
                         self._synapses.data.ctypes.data, *shift, self._scratch.ctypes.data, self._ring.ctypes.data)
            return
        sums = sparse.csr_array(values) @ self._synapses  # [lanes, slots * out], column delay * out + post
        sums.indices = (sums.indices + self._head * out_size) % (slots * out_size)
        exponent = self.weight_exp()
        if exponent:
            sums.data = np.left_shift(sums.data, exponent) if exponent > 0 else np.right_shift(sums.data, -exponent)
        ring = sums + self._ring.reshape(lanes, -1)
        self._ring = ring.astype(self._ring.dtype, copy=False).reshape(self._ring.shape)


class _FloatDelayDense(_FastDelayDense):
    """Float types and arithmetic (same results as the stock model, up to the order of
    floating-point summation within a step)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    delays: np.ndarray = LavaPyType(np.ndarray, int)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)


class _BitAccDelayDense(_FastDelayDense):
    """Bit-accurate types and arithmetic: the stock weight clipping/truncation, ``weight_exp``
    applied to each (step, delay) sum as the stock model does; products and sums in int64."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    delays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)
    accumulator = np.int64

    def effective_weights(self) -> np.ndarray:
        largest = self.delays.max() if sparse.issparse(self.delays) else np.max(self.delays, initial=0)
        if largest > 63:
            raise ValueError(f"DelayDense delays must lie in [0, 63] for Loihi, got {largest}")
        sign_mode: SignMode = self.proc_params.get("sign_mode") or determine_sign_mode(self.weights)
        weights = clip_weights(self.weights, sign_mode, num_bits=8)
        weights = truncate_weights(weights, sign_mode, self.proc_params.get("num_weight_bits", 8))
        return weights.astype(np.int64)

    def weight_exp(self) -> int:
        return int(self.proc_params.get("weight_exp", 0))


class _FloatDelaySparse(_FloatDelayDense):
    """Float types of ``DelaySparse``: its weights and delays are sparse matrices."""

    weights: csr_matrix = LavaPyType(csr_matrix, float)
    delays: csr_matrix = LavaPyType(csr_matrix, int)


class _BitAccDelaySparse(_BitAccDelayDense):
    """Bit-accurate types of ``DelaySparse``: its weights and delays are sparse matrices."""

    weights: csr_matrix = LavaPyType(csr_matrix, np.int32, precision=8)
    delays: csr_matrix = LavaPyType(csr_matrix, np.int32, precision=6)


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFastDelayDenseModelFloat(_FloatDelayDense):
    """Float ``DelayDense`` (one network)."""


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyFastDelayDenseModelBitAcc(_BitAccDelayDense):
    """Bit-accurate ``DelayDense`` (one network)."""


@implements(proc=LaneDelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLaneDelayDenseModelFloat(_FloatDelayDense):
    """Float :class:`LaneDelayDense`."""


@implements(proc=LaneDelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyLaneDelayDenseModelBitAcc(_BitAccDelayDense):
    """Bit-accurate :class:`LaneDelayDense`."""


@implements(proc=DelaySparse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFastDelaySparseModelFloat(_FloatDelaySparse):
    """Float ``DelaySparse`` (one network; only the synapses that exist are stored)."""


@implements(proc=DelaySparse, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyFastDelaySparseModelBitAcc(_BitAccDelaySparse):
    """Bit-accurate ``DelaySparse`` (one network; only the synapses that exist are stored)."""
