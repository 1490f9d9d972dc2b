"""Our Lava processes and process models (float ``floating_pt`` and bit-accurate ``fixed_pt``).

* :class:`FramedLIF` — a LIF population that resets every ``frame_steps`` steps, starting at
  step ``frame_offset + 1`` (the population's lag behind the input), stays silent before its
  first frame and after ``active_steps`` steps of each frame, offers a soft reset, and can
  record its spikes or membrane itself. Its models reuse the sub-threshold dynamics of Lava's
  stock LIF models (``AbstractPyLifModelFloat`` / ``AbstractPyLifModelFixed``), so the
  arithmetic is Lava's own.
* :class:`PyFastDelayDenseModelFloat` / :class:`PyFastDelayDenseModelBitAcc` — faster models of
  Lava's stock ``DelayDense`` process, selected through the run config
  (``exception_proc_model_map={DelayDense: ...}``). Same buffer (``a_buff``), same timing, same
  integer rounding as the stock models; the per-delay weights are built once and only the
  active inputs are summed (the stock models rebuild a ``(max_delay+1)*out x in`` matrix every
  step). Given ``frame_steps`` and ``frame_offset`` (the source's lag) in the process kwargs
  they also empty their buffer when their source starts a new frame, so that samples run back
  to back do not leak into each other: after that step's send for a feedforward synapse (what
  it sends then still belongs to the target's old frame), before it for a recurrent loop
  (``loop=True``: the target starts its frame in the same step as its source).

Keep every Lava import inside ``exporters/lava/``: Lava is archived and sits behind this
adapter.
"""

from __future__ import annotations

import exporters.lava.env  # noqa: F401  (first: makes Lava importable after tqdm)
import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import DelayDense
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat
from lava.proc.lif.process import AbstractLIF
from lava.utils.weightutils import SignMode, clip_weights, determine_sign_mode, truncate_weights

PROBE_PIPE_BLOCKS = 16  # blocks the host may fall behind before a probing population waits


class FramedLIF(AbstractLIF):
    """LIF neurons (Lava's equations) with framing, soft reset and a built-in probe.

    Step ``t`` (Lava counts from 1) is position ``p = t - 1 - frame_offset`` of the
    population's own time axis. For ``p < 0`` the neurons are silent and keep zero state; at
    every ``p % frame_steps == 0`` ``u`` and ``v`` are zeroed before the update; spikes are
    suppressed where ``p % frame_steps >= active_steps``. A spike resets ``v`` to 0
    (``reset="hard"``) or subtracts the threshold (``"soft"``: ``reset_amount`` in float,
    ``vth << 6`` in fixed point).

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
        super().__init__(shape=shape, u=0, v=0, du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp,
                         name=name, log_config=None, frame_steps=int(frame_steps),
                         frame_offset=int(frame_offset), active_steps=int(active_steps),
                         soft_reset=reset == "soft", reset_amount=reset_amount, probe=probe,
                         probe_steps=int(probe_steps), probe_block=int(probe_block))
        self.vth = Var(shape=(1,), init=vth)
        self.probe_out = OutPort(shape=(probe_block, shape[0]))
        if probe is not None:
            self.probe_out.flag_external_pipe(buffer_size=PROBE_PIPE_BLOCKS)

    def receive_probe(self) -> np.ndarray:
        """The next recorded block, ``[probe_block, N]`` (blocks until it has been sent)."""
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
            self._block = np.zeros((block, values.shape[0]))
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


class _FastDelayDense(PyLoihiProcessModel):
    """Shared body of the fast ``DelayDense`` models.

    Per step, exactly as the stock models: send ``a_buff[:, 0]``, drop that column and shift
    the buffer by one, then add this step's input with delay ``k`` into column ``k`` (it
    reaches the target ``1 + k`` steps later). ``_weights_t`` stacks the weights of every
    delay that occurs, ``[in, n_delays * out]``, built once.
    """

    weights: np.ndarray
    delays: np.ndarray
    a_buff: np.ndarray
    num_message_bits: np.ndarray
    s_in: PyInPort
    a_out: PyOutPort

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self._weights_t: np.ndarray | None = None
        self._delay_columns = np.zeros(0, dtype=np.int64)

    def effective_weights(self) -> np.ndarray:
        """The weights as the stock model uses them."""
        return self.weights

    def scale(self, activation: np.ndarray) -> np.ndarray:
        """Turn one step's summed activation into buffer units (identity in float)."""
        return activation

    def _build(self) -> None:
        weights = self.effective_weights()
        present = np.unique(self.delays)
        stacked = np.stack([np.where(self.delays == k, weights, 0) for k in present])  # [n_delays, out, in]
        self._weights_t = np.ascontiguousarray(stacked.reshape(-1, weights.shape[1]).T)
        self._delay_columns = present.astype(np.int64)

    def _flush_due(self) -> bool:
        frame_steps = self.proc_params.get("frame_steps", 0)
        return bool(frame_steps) and frame_position(self.time_step, self.proc_params.get("frame_offset", 0),
                                                    frame_steps) == 0

    def run_spk(self) -> None:
        if self._weights_t is None:
            self._build()
        flush = self._flush_due()
        loop = self.proc_params.get("loop", False)
        if flush and loop:
            self.a_buff[:] = 0
        self.a_out.send(self.a_buff[:, 0])
        s_in = self.s_in.recv()
        self.a_buff[:, 0] = 0
        self.a_buff = np.roll(self.a_buff, -1, axis=1)
        if flush and not loop:
            self.a_buff[:] = 0
        graded = self.num_message_bits.item() > 0
        active = np.flatnonzero(s_in)
        if active.size == 0:
            return
        rows = self._weights_t[active]
        activation = s_in[active] @ rows if graded else rows.sum(axis=0)
        out_size = self.a_buff.shape[0]
        self.a_buff[:, self._delay_columns] += self.scale(activation).reshape(-1, out_size).T


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFastDelayDenseModelFloat(_FastDelayDense):
    """Float ``DelayDense`` with per-delay weights built once (same results as the stock model,
    up to the order of floating-point summation within a step)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    delays: np.ndarray = LavaPyType(np.ndarray, int)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyFastDelayDenseModelBitAcc(_FastDelayDense):
    """Bit-accurate ``DelayDense``: the stock weight clipping/truncation, ``weight_exp`` applied
    to each (step, delay) sum as the stock model does; products and sums in int64."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    delays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def effective_weights(self) -> np.ndarray:
        if np.max(self.delays, initial=0) > 63:
            raise ValueError(f"DelayDense delays must lie in [0, 63] for Loihi, got {np.max(self.delays)}")
        sign_mode: SignMode = self.proc_params.get("sign_mode") or determine_sign_mode(self.weights)
        weights = clip_weights(self.weights, sign_mode, num_bits=8)
        weights = truncate_weights(weights, sign_mode, self.proc_params.get("num_weight_bits", 8))
        return weights.astype(np.int64)

    def scale(self, activation: np.ndarray) -> np.ndarray:
        weight_exp = int(self.proc_params.get("weight_exp", 0))
        activation = activation.astype(np.int64)
        return np.left_shift(activation, weight_exp) if weight_exp > 0 else np.right_shift(activation, -weight_exp)
