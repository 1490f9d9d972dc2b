"""Network and training configurations, and the presets with the published recipes.

A preset bundles a :class:`NetworkConfig`, a :class:`TrainConfig` and the dataset it trains
on. ``shd``/``ssc``/``gsc`` follow Hammouamri et al. (ICLR 2024, repo Thvnvtos/SNN-delays),
``delrec_shd``/``delrec_shd_equiparam``/``delrec_ssc`` follow Queant et al. (2025, repo alexmaxad/DelRec).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, cast

from delaydeploy.errors import CheckpointError
from delaydeploy.ir import DECISION_RULES, DEFAULT_DECISION, DELAY_GRANULARITIES, INPUT_KINDS

DELAY_MODES = ("learned", "fixed", "none")
SEMANTICS = ("streaming", "official")
OPTIMIZERS = ("adam", "adamw")
POSITION_SCHEDULES = ("cosine", "one_cycle")
SURROGATES = ("atan", "triangle")
LINEAR_INITS = ("kaiming", "default")
RECURRENT_DELAY_INITS = ("uniform", "half_normal")
RECURRENT_SPREADS = ("shared", "learned")


@dataclass
class NetworkConfig:
    """Shape and neuron constants of a :class:`delaydeploy.model.DelaySNN`.

    ``delay_stages`` says, for every synaptic stage (each hidden layer, then the readout),
    whether it carries DCLS delays (else it is a plain linear map); ``recurrent_layers``
    says which hidden layers have DelRec recurrent delays. ``delays`` is the ablation switch:
    ``learned`` (DCLS), ``fixed`` (random integer delays, not trained) or ``none``.
    ``tail_steps`` zero steps are appended to every input in streaming semantics; by default
    one half kernel per delay stage, so outputs are as long as the official implementation's.

    The readout is a non-spiking LIF with time constant ``readout_tau`` steps (``None``: the
    network's ``tau``; ``1``: no leak, the readout is each step's synaptic output, as in the
    DelRec SSC model). ``decision`` (one of ``DECISION_RULES``) is how the readout decides the
    class and what the loss optimises: ``"summed_softmax"`` (``argmax_c sum_t softmax(V[t])_c``,
    cross-entropy of that sum) or ``"summed_output"`` (``argmax_c sum_t V[t, c]``, cross-entropy
    of the summed output); see :func:`delaydeploy.reference.evidence`.

    Training-only choices, none of which changes the deployed (rounded) network, follow the
    published recipes: ``surrogate`` gradient of a spike, ``"atan"`` (spikingjelly's ATan with
    ``surrogate_alpha``) or ``"triangle"`` (``max(0, 1 - |h - threshold|)``, DelRec SSC's);
    ``detach_reset`` (no gradient through the reset); ``linear_init`` of plain synaptic stages,
    ``"kaiming"`` (Kaiming-uniform for ReLU) or ``"default"`` (``torch.nn.Linear``'s own); and,
    for recurrent delays, ``recurrent_delay_init`` (``"uniform"`` on [10, 30] steps, DelRec SHD's,
    or ``"half_normal"`` ``|N(0, 12^2)|``, DelRec SSC's) and ``recurrent_spread`` (``"shared"``: one
    triangular spread width ``1 + sigma``; ``"learned"``: ``1 + 2 sigma sigmoid(p_j)`` per neuron,
    ``p_j`` trained with the delays, DelRec SSC's ``use_sig_p``).

    ``sparsity`` (one value, or one per synaptic stage) is the fraction of feedforward synapses
    pruned (the DCLS authors' ``sparsity_p``): a synaptic stage keeps each synapse with probability
    ``1 - sparsity``, a mask drawn once when the network is built and kept in its state; pruned
    weights are exact zeros, in training and in every deployed form. ``delay_granularity``
    (one value, or one per synaptic stage) gives a DCLS stage one delay per synapse
    (``"synaptic"``), per presynaptic neuron (``"axonal"``) or per postsynaptic neuron
    (``"dendritic"``): the shared positions are trained with the same Gaussian kernel and sigma
    schedule and rounded the same way, and targets store them once per neuron.
    """

    input_size: int
    hidden_sizes: tuple[int, ...]
    num_classes: int
    kernel_size: int = 25
    tau: float = 1.005
    threshold: float = 1.0
    reset: str = "hard"
    dropout: float = 0.4
    batchnorm: bool = True
    bias: bool = False
    delays: str = "learned"
    delay_stages: tuple[bool, ...] | None = None
    recurrent_layers: tuple[bool, ...] | None = None
    max_recurrent_delay: int = 62
    recurrent_dropout: float = 0.0
    semantics: str = "streaming"
    tail_steps: int | None = None
    input_kind: str = "counts"
    dt: float = 0.01
    surrogate_alpha: float = 5.0
    readout_tau: float | None = None
    decision: str = DEFAULT_DECISION
    surrogate: str = "atan"
    detach_reset: bool = True
    linear_init: str = "kaiming"
    recurrent_delay_init: str = "uniform"
    recurrent_spread: str = "shared"
    sparsity: float | tuple[float, ...] = 0.0
    delay_granularity: str | tuple[str, ...] = "synaptic"

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(size) for size in self.hidden_sizes)
        if self.delay_stages is not None:
            self.delay_stages = tuple(bool(flag) for flag in self.delay_stages)
        if self.recurrent_layers is not None:
            self.recurrent_layers = tuple(bool(flag) for flag in self.recurrent_layers)
        stages = len(self.hidden_sizes) + 1
        problems = []
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            problems.append(f"hidden_sizes = {self.hidden_sizes} needs at least one layer of size >= 1")
        if len(self.stage_has_delays) != stages:
            problems.append(f"delay_stages has {len(self.stage_has_delays)} entries, expected {stages} "
                            "(hidden layers + readout)")
        if len(self.layer_is_recurrent) != len(self.hidden_sizes):
            problems.append(f"recurrent_layers has {len(self.layer_is_recurrent)} entries, "
                            f"expected {len(self.hidden_sizes)}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            problems.append(f"kernel_size = {self.kernel_size} must be odd and >= 1 (delays 0..K-1)")
        if not self.tau > 1.0:
            problems.append(f"tau = {self.tau} steps must be > 1")
        if self.readout_tau is not None:
            if isinstance(self.readout_tau, bool) or not isinstance(self.readout_tau, (int, float)) \
                    or not math.isfinite(self.readout_tau) or self.readout_tau < 1.0:
                problems.append(f"readout_tau = {self.readout_tau!r} steps must be a finite number >= 1 "
                                "(1: no leak), or None for the network's tau")
            else:
                self.readout_tau = float(self.readout_tau)
        if self.decision not in DECISION_RULES:
            problems.append(f"decision = {self.decision!r} must be one of {DECISION_RULES}")
        if self.reset not in ("hard", "soft"):
            problems.append(f"reset = {self.reset!r} must be 'hard' or 'soft'")
        if self.delays not in DELAY_MODES:
            problems.append(f"delays = {self.delays!r} must be one of {DELAY_MODES}")
        if self.semantics not in SEMANTICS:
            problems.append(f"semantics = {self.semantics!r} must be one of {SEMANTICS}")
        if self.semantics == "official" and self.tail_steps is not None:
            problems.append("official semantics fixes the tail to one half kernel per delay stage")
        if self.tail_steps is not None and self.tail_steps < 0:
            problems.append(f"tail_steps = {self.tail_steps} must be >= 0")
        if self.input_kind not in INPUT_KINDS:
            problems.append(f"input_kind = {self.input_kind!r} must be one of {', '.join(INPUT_KINDS)}")
        if not 0 <= self.max_recurrent_delay:
            problems.append(f"max_recurrent_delay = {self.max_recurrent_delay} must be >= 0")
        for name, choices in (("surrogate", SURROGATES), ("linear_init", LINEAR_INITS),
                              ("recurrent_delay_init", RECURRENT_DELAY_INITS), ("recurrent_spread", RECURRENT_SPREADS)):
            if getattr(self, name) not in choices:
                problems.append(f"{name} = {getattr(self, name)!r} must be one of {choices}")
        if not isinstance(self.detach_reset, bool):
            problems.append(f"detach_reset = {self.detach_reset!r} must be True or False")
        if not isinstance(self.delay_granularity, str):
            self.delay_granularity = tuple(self.delay_granularity)
            if len(self.delay_granularity) != stages:
                problems.append(f"delay_granularity has {len(self.delay_granularity)} entries, expected {stages} "
                                "(hidden layers + readout)")
        if any(choice not in DELAY_GRANULARITIES for choice in self.stage_granularity):
            problems.append(f"delay_granularity = {self.delay_granularity!r}: each must be one of "
                            f"{DELAY_GRANULARITIES}")
        if isinstance(self.sparsity, (tuple, list)):
            self.sparsity = tuple(self.sparsity)
            if len(self.sparsity) != stages:
                problems.append(f"sparsity has {len(self.sparsity)} entries, expected {stages} "
                                "(hidden layers + readout)")
        if any(isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0
               for p in self.stage_sparsity):
            problems.append(f"sparsity = {self.sparsity!r}: each must be a fraction in [0, 1)")
        if problems:
            raise ValueError("invalid network configuration: " + "; ".join(problems))

    @property
    def readout_time_constant(self) -> float:
        """The readout LIF's tau in steps: ``readout_tau``, or the network's ``tau``."""
        return self.tau if self.readout_tau is None else self.readout_tau

    @property
    def stage_has_delays(self) -> tuple[bool, ...]:
        """Per synaptic stage (hidden layers, then readout): DCLS delays or a plain linear map."""
        if self.delays == "none":
            return (False,) * (len(self.hidden_sizes) + 1)
        return self.delay_stages if self.delay_stages is not None else (True,) * (len(self.hidden_sizes) + 1)

    @property
    def stage_sparsity(self) -> tuple[float, ...]:
        """Per synaptic stage: the fraction of its synapses pruned."""
        if isinstance(self.sparsity, tuple):
            return self.sparsity
        return (self.sparsity,) * (len(self.hidden_sizes) + 1)

    @property
    def stage_granularity(self) -> tuple[str, ...]:
        """Per synaptic stage: one delay per synapse (``synaptic``), per presynaptic neuron
        (``axonal``) or per postsynaptic neuron (``dendritic``)."""
        if isinstance(self.delay_granularity, str):
            return (self.delay_granularity,) * (len(self.hidden_sizes) + 1)
        return self.delay_granularity

    @property
    def layer_is_recurrent(self) -> tuple[bool, ...]:
        """Per hidden layer: DelRec recurrent delays or not."""
        return self.recurrent_layers if self.recurrent_layers is not None else (False,) * len(self.hidden_sizes)

    @property
    def num_delay_stages(self) -> int:
        """Synaptic stages that carry feedforward delays (0 when ``delays == 'none'``)."""
        return sum(self.stage_has_delays)

    @property
    def tail(self) -> int:
        """Zero steps appended to every input: ``tail_steps``, or one half kernel per delay stage."""
        return self.official_tail * self.num_delay_stages if self.tail_steps is None else self.tail_steps

    @property
    def official_tail(self) -> int:
        """Steps the official DCLS code appends per delay stage (its right padding)."""
        return (self.kernel_size - 1) // 2

    def resized(self, hidden: int | None = None, layers: int | None = None) -> NetworkConfig:
        """This network with ``layers`` hidden layers of ``hidden`` neurons each (``None`` keeps its own).

        Raises ``ValueError`` for a new layer count where per-layer settings (recurrent layers,
        delay stages, per-stage sparsity or granularity) fix the count."""
        count = len(self.hidden_sizes) if layers is None else layers
        size = self.hidden_sizes[0] if hidden is None else hidden
        per_layer = [name for name in ("recurrent_layers", "delay_stages", "sparsity", "delay_granularity")
                     if isinstance(getattr(self, name), tuple)]
        if count != len(self.hidden_sizes) and per_layer:
            raise ValueError(f"the number of hidden layers ({len(self.hidden_sizes)}) is fixed by its per-layer "
                             f"{', '.join(per_layer)}; {count} asked for")
        return dataclasses.replace(self, hidden_sizes=(size,) * count)

    def to_dict(self) -> dict[str, Any]:
        return _as_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        return _from_plain(cls, data)


@dataclass
class TrainConfig:
    """Optimisation recipe: weights with Adam (or AdamW) and a OneCycle schedule peaking at
    ``lr_weights * one_cycle_factor``; delay positions with their own Adam and
    ``position_schedule``: ``"cosine"`` from ``lr_positions`` to 0 (the DCLS authors' and DelRec
    SHD's recipe) or ``"one_cycle"`` peaking at ``lr_positions`` (DelRec SSC and equal-parameter SHD).
    """

    epochs: int
    batch_size: int
    lr_weights: float = 1e-3
    lr_positions: float = 0.1
    weight_decay: float = 1e-5
    one_cycle_factor: float = 5.0
    optimizer: str = "adam"
    position_schedule: str = "cosine"
    sigma_final: float = 0.23
    sigma_epoch_fraction: float = 0.25
    recurrent_sigma_init: float = 10.0
    recurrent_sigma_decay: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        def integer(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        problems = [f"{name} = {getattr(self, name)!r} must be an integer >= 1" for name in ("epochs", "batch_size")
                    if not (integer(getattr(self, name)) and getattr(self, name) >= 1)]
        rules = {"> 0": (lambda v: v > 0, ("lr_weights", "one_cycle_factor")),
                 ">= 0": (lambda v: v >= 0, ("lr_positions", "weight_decay", "sigma_final", "recurrent_sigma_init")),
                 "in (0, 1]": (lambda v: 0 < v <= 1, ("sigma_epoch_fraction", "recurrent_sigma_decay"))}
        for rule, (holds, names) in rules.items():
            problems += [f"{name} = {getattr(self, name)!r} must be a finite number {rule}" for name in names
                         if not (number(getattr(self, name)) and holds(getattr(self, name)))]
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer = {self.optimizer!r} must be one of {OPTIMIZERS}")
        if self.position_schedule not in POSITION_SCHEDULES:
            problems.append(f"position_schedule = {self.position_schedule!r} must be one of {POSITION_SCHEDULES}")
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return _as_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_plain(cls, data)


@dataclass
class Preset:
    """A named recipe: network, training and the dataset it is meant for.

    ``augmentation``: how the training split is augmented (:func:`delaydeploy.datasets.augment.augment`;
    empty: not at all).
    """

    name: str
    dataset: str
    network: NetworkConfig
    train: TrainConfig
    description: str = ""
    dataset_options: dict[str, Any] = field(default_factory=dict)
    augmentation: dict[str, Any] = field(default_factory=dict)


def _as_plain(config: Any) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(config).items()}


_PLAIN_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _is_plain(type_name: str, value: Any) -> bool:
    """Whether ``value`` is of the plain type named ``type_name`` (a bool is no number here)."""
    if isinstance(value, bool) and type_name != "bool":
        return False
    return isinstance(value, _PLAIN_TYPES.get(type_name, object))


def _matches(annotation: str, value: Any) -> bool:
    """Whether ``value`` fits a field annotation such as ``int``, ``str | None``, ``tuple[int, ...]``."""
    for option in (part.strip() for part in annotation.split("|")):
        if option == "None":
            if value is None:
                return True
        elif option.startswith("tuple["):
            element = option[len("tuple["):].split(",")[0].strip()
            if isinstance(value, (list, tuple)) and all(_is_plain(element, item) for item in value):
                return True
        elif _is_plain(option, value):
            return True
    return False


def _from_plain(cls: type, data: dict[str, Any]) -> Any:
    """``cls(**data)`` for a dict read from a file: unknown fields and wrong types are refused."""
    fields = {f.name: cast(str, f.type) for f in dataclasses.fields(cls)}  # postponed annotations: strings
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(f"{cls.__name__}: unknown fields {unknown}")
    for name, value in data.items():
        if not _matches(fields[name], value):
            raise CheckpointError(f"{cls.__name__}: {name} = {value!r} is not of type {fields[name]}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{cls.__name__}: {error}") from None


def _shd() -> Preset:
    network = NetworkConfig(input_size=140, hidden_sizes=(256, 256), num_classes=20, kernel_size=25,
                            tau=(10.05 + 1e-9) / 10, dropout=0.4, input_kind="counts")
    train = TrainConfig(epochs=150, batch_size=256)
    return Preset("shd", "shd", network, train, "SHD, 140-256-256-20, K=25 (Hammouamri et al. 2024)")


def _ssc() -> Preset:
    network = NetworkConfig(input_size=140, hidden_sizes=(512, 512, 512), num_classes=35, kernel_size=31,
                            tau=(15 + 1e-9) / 10, dropout=0.25, input_kind="counts")
    train = TrainConfig(epochs=60, batch_size=128)
    return Preset("ssc", "ssc", network, train, "SSC, 140-512x3-35, K=31 (Hammouamri et al. 2024)")


def _gsc() -> Preset:
    network = NetworkConfig(input_size=140, hidden_sizes=(512, 512, 512), num_classes=35, kernel_size=31,
                            tau=(15 + 1e-9) / 10, dropout=0.25, input_kind="analog")
    train = TrainConfig(epochs=100, batch_size=128)
    return Preset("gsc", "gsc", network, train, "GSC v0.02 log-mel, 140-512x3-35, K=31 (Hammouamri et al. 2024)")


def _synthetic() -> Preset:
    network = NetworkConfig(input_size=12, hidden_sizes=(48, 48), num_classes=8, kernel_size=25, tau=1.05,
                            dropout=0.1, input_kind="binary", dt=0.001)
    train = TrainConfig(epochs=15, batch_size=64, lr_weights=2e-3, lr_positions=0.2)
    return Preset("synthetic", "synthetic", network, train, "embedded relative-timing task that needs delays")


def _synthetic_delrec() -> Preset:
    network = NetworkConfig(input_size=12, hidden_sizes=(71,), num_classes=8, tau=1.05, dropout=0.1,
                            delay_stages=(False, False), recurrent_layers=(True,), recurrent_dropout=0.2,
                            input_kind="binary", dt=0.001, tail_steps=36)
    train = TrainConfig(epochs=15, batch_size=64, lr_weights=5e-3, lr_positions=5e-2, optimizer="adamw",
                        recurrent_sigma_init=1.0)
    return Preset("synthetic_delrec", "synthetic", network, train,
                  "synthetic task with DelRec recurrent delays (12-71-8: as many parameters as `synthetic`)")


def _fsdd() -> Preset:
    network = NetworkConfig(input_size=140, hidden_sizes=(128, 128), num_classes=10, kernel_size=25, tau=1.5,
                            dropout=0.2, input_kind="counts")
    train = TrainConfig(epochs=30, batch_size=64, lr_weights=2e-3, lr_positions=0.2)
    return Preset("fsdd", "fsdd", network, train, "Free Spoken Digit Dataset, spike-encoded real audio")


def _delrec_shd() -> Preset:
    # src/SHD/snn.py ends in Linear + LIF (tau = config.tau, threshold 1e8) and src/utils.py calc_loss_SHD /
    # calc_metric_SHD use sum_t softmax(v[t]): the default readout and decision. Its loader (src/datasets.py
    # BinnedSpikingHeidelbergDigits, duration = time_step = 10 ms) uses src/SHD/SHD_downloader.py's
    # integrate_events_by_fixed_duration_shd: a 10 ms grid from each sample's first event ("onset_grid").
    # configs/perf_SHD.py: AdamW, weights by OneCycle peaking at lr_w (src/SHD/trainer.py), positions by
    # cosine; use_augmentations with shift_max 100, thin_p 0.5 and no jitter in the blend (src/datasets.py
    # SHDTripleAugDataset). Their loader also holds a random 20 % of the training set out for validation;
    # delaydeploy trains on all of it.
    network = NetworkConfig(input_size=140, hidden_sizes=(256, 256), num_classes=20, tau=1.05, dropout=0.4,
                            bias=True, delay_stages=(False, False, False), recurrent_layers=(False, True),
                            recurrent_dropout=0.2, input_kind="counts")
    train = TrainConfig(epochs=150, batch_size=256, lr_weights=5e-3, lr_positions=5e-2, one_cycle_factor=1.0,
                        optimizer="adamw")
    return Preset("delrec_shd", "shd", network, train, "DelRec SHD: recurrent delays in layer 2 (Queant et al. 2025)",
                  dataset_options={"frames": "onset_grid", "dt": 0.01},
                  augmentation={"kind": "tripled", "shift_max": 100, "thin_p": 0.5})


def _delrec_shd_equiparam() -> Preset:
    # equiparam_SHD.py with configs/equiparam_SHD.py: the SHD classes of src/SHD/snn.py without BatchNorm
    # (use_batch_norm = False) or bias, tau 2 (hard reset to 0, threshold 1, decay_input False), dropout 0.4
    # (recurrent 0.2), K = max_feedforward_delay = 25 with left_padding K-1 and right_padding 0 (streaming
    # timing without tail), 30 epochs, batch 256, AdamW lr_w 5e-3 / lr_positions 0.1, weight decay 1e-5;
    # same loader as delrec_shd (10 ms "onset_grid", 140 channels), no augmentations. The script trains
    # six classes at equal parameter counts; this network is SNN_recurrent_delays at its default
    # [42, 42] (_default_hidden_for_model; the config's hidden_layers). Imports read the stage layout from
    # the keys. Its src/SHD/trainer.py schedules weights and positions with OneCycle peaking at lr_w and
    # lr_positions (scheduler_weights = scheduler_pos = 'onecycle'); init_ff_weights = 'default'.
    network = NetworkConfig(input_size=140, hidden_sizes=(42, 42), num_classes=20, kernel_size=25, tau=2.0,
                            dropout=0.4, batchnorm=False, bias=False, delay_stages=(False, False, False),
                            recurrent_layers=(False, True), recurrent_dropout=0.2, tail_steps=0, input_kind="counts",
                            linear_init="default")
    train = TrainConfig(epochs=30, batch_size=256, lr_weights=5e-3, lr_positions=0.1, one_cycle_factor=1.0,
                        optimizer="adamw", position_schedule="one_cycle")
    return Preset("delrec_shd_equiparam", "shd", network, train,
                  "DelRec equal-parameter SHD (configs/equiparam_SHD.py): 140-42-42-20, no BatchNorm, tau 2 "
                  "(Queant et al. 2025)", dataset_options={"frames": "onset_grid", "dt": 0.01})


def _delrec_ssc() -> Preset:
    # perf_SSC.py trains SNN_recurrent_delays: Linear synapses (no feedforward delays; K is used only by
    # an imported DCLS variant), recurrent delays in all three layers. Its loader (src/datasets.py
    # SSC_SpikeIterator) gives each event step np.digitize(t, np.linspace(0, 1.4, 250)) of 250 steps
    # ("digitize"), a step of 1.4/249 s. Its readout is the bare last Linear
    # (src/SSC/snn.py, no neuron: readout_tau 1) and src/utils.py calc_loss_SSC / calc_metric_SSC use
    # sum_t output[t] (no softmax): decision "summed_output". configs/perf_SSC.py: Adam, lr_w 1e-3 and
    # lr_positions 5e-2, both scheduled by OneCycle peaking at those rates (src/SSC/trainer.py); the
    # Triangle surrogate (src/utils.py), detach_reset False, init_ff_weights 'default', recurrent delays
    # from |N(0, 12^2)| (init_rec_delay 'half_normal', delay_std_init 12) with a learned spread width per
    # neuron (use_sig_p, its p_spread trained with the delays).
    step = 1.4 / 249
    network = NetworkConfig(input_size=140, hidden_sizes=(256, 256, 256), num_classes=35, kernel_size=25, tau=2.0,
                            reset="soft", dropout=0.1, batchnorm=False, bias=True,
                            delay_stages=(False, False, False, False), recurrent_layers=(True, True, True),
                            recurrent_dropout=0.3, input_kind="counts", dt=step, readout_tau=1.0,
                            decision="summed_output", surrogate="triangle", detach_reset=False,
                            linear_init="default", recurrent_delay_init="half_normal", recurrent_spread="learned")
    train = TrainConfig(epochs=100, batch_size=128, lr_weights=1e-3, lr_positions=5e-2, one_cycle_factor=1.0,
                        position_schedule="one_cycle")
    return Preset("delrec_ssc", "ssc", network, train,
                  "DelRec SSC: recurrent delays in all 3 layers, soft reset (Queant et al. 2025)",
                  dataset_options={"frames": "digitize", "steps": 250, "max_time": 1.4})


_PRESETS = {
    factory().name: factory
    for factory in (_shd, _ssc, _gsc, _synthetic, _synthetic_delrec, _fsdd, _delrec_shd, _delrec_shd_equiparam,
                    _delrec_ssc)
}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def get_preset(name: str) -> Preset:
    """A fresh copy of the preset called ``name``."""
    try:
        return _PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}") from None
