"""Import of the authors' own checkpoints (raw ``state_dict`` files).

* SNN-delays (Hammouamri et al. 2024, ``Thvnvtos/SNN-delays``): ``nn.Sequential`` keys
  ``model.<i>.*`` with, per hidden block, ``Dcls1d`` (``weight``, ``P``, ``SIG``), optional
  ``BatchNorm1d``, LIF and dropout, then the readout ``Dcls1d`` and LIF. The imported model
  keeps the official time semantics (each layer (K-1)//2 steps longer).
* DelRec (Queant et al. 2025, ``alexmaxad/DelRec``): keys ``layers.<i>.*``; one hidden block
  is, in ``src/SHD/snn.py``, ``Linear``, BatchNorm, LIF, spike recorder, dropout (readout
  ``Linear`` + LIF) and, in ``src/SSC/snn.py``, ``Linear`` or DCLS (``weight``, ``P``; version
  ``v1``, no ``SIG``), dropout, LIF, spike recorder (readout ``Linear`` or DCLS, no neuron).
  The SHD model decides by ``sum_t softmax(v[t])`` of its readout LIF (``src/utils.py``
  ``calc_loss_SHD``/``calc_metric_SHD``), the SSC model by ``sum_t output[t]`` of the bare
  readout stage (``calc_loss_SSC``/``calc_metric_SSC``): imported as ``readout_tau = 1``
  (no leak) with ``decision = "summed_output"``.
  Recurrent-delay LIFs hold ``recurrent_weights``, ``recurrent_delays`` and (``use_sig_p``)
  ``p_spread``, kept as the ``delrec_ssc`` model's learned spread widths (0 where absent). The
  triangular spread is forced to sigma = 0. DelRec's SSC DCLS pads K-1 steps
  on the left only, so the imported model has no tail (outputs as long as inputs, as the
  authors' code). Their SHD DCLS (``dcls_module`` of ``src/SHD/snn.py``, classes
  ``SNN_feedforward_delays`` and ``SNN_recurrent_and_feedforward_delays``) under
  ``configs/perf_SHD.py`` (the ``delrec_shd`` recipe: K = 25) pads K-1 steps on the left and
  (K-1)//2 on the right, so each DCLS stage's output is (K-1)//2 steps longer than its input and
  the following stages run on that longer sequence: delaydeploy's official semantics, which such
  a state is imported with (a Linear stage adds no steps). ``configs/equiparam_SHD.py`` (what
  ``equiparam_SHD.py`` trains these classes with) is another recipe -- tau 2, no bias, no
  BatchNorm (hidden blocks of 4 modules: synapses, LIF, recorder, dropout), no right padding --
  imported with the ``delrec_shd_equiparam`` preset: streaming timing without tail, as their SSC
  DCLS. Each SHD preset refuses, by name, a state of the other recipe.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch

from delaydeploy.checkpoint import Checkpoint, package_versions
from delaydeploy.config import NetworkConfig, get_preset
from delaydeploy.errors import CheckpointError

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class _Conversion:
    """Moves official entries to our keys, remembering where each came from for error messages."""

    def __init__(self, state: dict[str, Any], source: str) -> None:
        self.remaining = dict(state)
        self.source = source
        self.converted: dict[str, torch.Tensor] = {}
        self.origin: dict[str, str] = {}

    def take(self, ours: str, theirs: str) -> None:
        if theirs not in self.remaining:
            raise CheckpointError(
                f"{self.source}: expected key {theirs!r} is missing (wrong preset, --hidden or --layers?)"
            )
        value = self.remaining.pop(theirs)
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{self.source}: {theirs} is not a tensor")
        self.converted[ours] = value.detach()
        self.origin[ours] = theirs

    def finish(self, config: NetworkConfig, preset: str) -> Checkpoint:
        """The checkpoint, after checking nothing is left over, every shape fits the preset and every
        delay lies where the authors' code keeps it."""
        if self.remaining:
            keys = sorted(self.remaining)
            raise CheckpointError(f"{self.source}: unexpected keys {keys[:6]}{'...' if len(keys) > 6 else ''} "
                                  "(wrong preset, --hidden or --layers?)")
        self._check_delays(config)
        checkpoint = Checkpoint(config, self.converted, {}, package_versions(), preset, None, source=self.source)
        try:
            checkpoint.build_model()
        except CheckpointError as error:
            message = str(error)
            for ours, theirs in sorted(self.origin.items(), key=lambda item: -len(item[0])):
                message = message.replace(ours, theirs)
            raise CheckpointError(f"{message} (preset {preset!r})") from None
        return checkpoint


    def _check_delays(self, config: NetworkConfig) -> None:
        """DCLS positions within ``[-K//2, K//2]`` (its clamp) and recurrent delays ``>= 0`` (DelRec's;
        a delay above the Loihi 2 limit is the export's to refuse)."""
        half = config.kernel_size // 2
        high: float  # the kernel's half width, or no bound
        for ours, value in self.converted.items():
            if ours.endswith(".dcls.P"):
                low, high, what = -half, half, f"positions of a {config.kernel_size}-tap kernel"
            elif ours.endswith(".recurrent_delays"):
                low, high, what = 0, float("inf"), "recurrent delays"
            else:
                continue
            outside = (value < low) | (value > high) | ~torch.isfinite(value)
            if outside.any():
                index = [int(i) for i in torch.nonzero(outside)[0]]
                raise CheckpointError(f"{self.source}: {self.origin[ours]}{index} = {float(value[tuple(index)]):g}; "
                                      f"{what} lie in [{low}, {high}]")


def _config(preset: str, hidden: int | None, layers: int | None, **changes: Any) -> NetworkConfig:
    try:
        network = get_preset(preset).network.resized(hidden, layers)
    except ValueError as error:
        raise CheckpointError(f"preset {preset!r}: {error}") from None
    return dataclasses.replace(network, **changes)


def _snn_delays_layout(state: dict[str, Any], config: NetworkConfig, preset: str, source: str) -> int:
    """Module stride of a hidden block in the authors' ``nn.Sequential`` (``snn_delays.py``
    ``SnnDelays.build_model``), after checking that the state is that model under the preset's recipe.

    A hidden block is ``Dcls1d, [BatchNorm1d], LIFNode, Dropout`` (stride 4, or 3 without
    BatchNorm), the readout ``Dcls1d, LIFNode``: the ``Dcls1d`` modules (keys ``model.<i>.P``)
    sit at ``0, s, 2s, ...``. The authors' other options leave traces that delaydeploy does not
    model, refused by name: ``stateful_synapse`` (a ``SynapseFilter`` after each dropout, stride
    + 1), ``spiking_neuron_type = 'plif'`` or a learnable ``SynapseFilter`` (a ``w``),
    ``bias = True`` (a ``Dcls1d`` ``bias``) and ``model_type = 'snn'`` (no ``P`` at all).
    """
    has_norm = any(key.endswith("running_mean") for key in state)
    if has_norm != config.batchnorm:
        raise CheckpointError(
            f"{source}: BatchNorm is {'present' if has_norm else 'absent'} but preset {preset!r} expects it "
            f"{'present' if config.batchnorm else 'absent'}"
        )
    stride = 4 if has_norm else 3
    indices = sorted(int(match.group(1)) for key in state if (match := re.fullmatch(r"model\.(\d+)\.P", key)))
    if not indices:
        raise CheckpointError(f"{source}: no Dcls1d positions model.<i>.P: not a state_dict of the authors' "
                              "SnnDelays (their delay-free model_type = 'snn' is not importable)")
    places = ", ".join(f"model.{index}" for index in indices)
    gaps = {after - before for before, after in zip(indices, indices[1:])}
    if indices[0] != 0 or gaps - {stride}:
        why = (": stateful_synapse = True (a SynapseFilter after each dropout), which delaydeploy does not model"
               if indices[0] == 0 and gaps == {stride + 1} else "")
        raise CheckpointError(f"{source}: Dcls1d layers at {places}; the authors' blocks "
                              f"{'with' if has_norm else 'without'} BatchNorm put them at 0, {stride}, "
                              f"{2 * stride}, ...{why}")
    if len(indices) != len(config.hidden_sizes) + 1:
        raise CheckpointError(f"{source}: Dcls1d layers at {places} are {len(indices) - 1} hidden layers and the "
                              f"readout, the configuration has {len(config.hidden_sizes)} hidden layers "
                              f"(layers={len(indices) - 1}, --layers {len(indices) - 1}?)")
    traces = ((int(match.group(1)), match.group(2), key) for key in state
              if (match := re.fullmatch(r"model\.(\d+)\.(w|bias)", key)))
    for index, name, key in sorted(traces):
        if name == "w":
            raise CheckpointError(f"{source}: {key}: a learned time constant (spiking_neuron_type = 'plif' or a "
                                  f"learnable SynapseFilter); preset {preset!r} has a fixed tau of "
                                  f"{config.tau:g} steps")
        if index in indices and not config.bias:
            raise CheckpointError(f"{source}: {key}: a Dcls1d bias (the authors' bias = True); preset {preset!r} "
                                  "has none")
    return stride


def import_snn_delays(state: dict[str, Any], preset: str, *, hidden: int | None = None, layers: int | None = None,
                      source: str = "<state_dict>") -> Checkpoint:
    """Convert an official SNN-delays ``state_dict`` to a delaydeploy checkpoint.

    The layout is checked by ``_snn_delays_layout``; the recipe (tau, threshold, K, readout,
    decision) is the preset's, and the imported model keeps the official time semantics.
    """
    network = get_preset(preset).network
    if network.delay_stages is not None or network.recurrent_layers is not None or network.delays != "learned":
        raise CheckpointError(f"preset {preset!r} is not an all-DCLS feedforward recipe; choose shd, ssc or gsc")
    conversion = _Conversion(state, source)
    config = _config(preset, hidden, layers, semantics="official")
    stride = _snn_delays_layout(state, config, preset, source)
    stages = [(f"blocks.{layer}.synapses", layer * stride) for layer in range(len(config.hidden_sizes))]
    stages.append(("readout", len(config.hidden_sizes) * stride))
    for ours, index in stages:
        for name in ("weight", "P", "SIG"):
            conversion.take(f"{ours}.dcls.{name}", f"model.{index}.{name}")
        if config.bias:
            conversion.take(f"{ours}.dcls.bias", f"model.{index}.bias")
    if config.batchnorm:
        for layer in range(len(config.hidden_sizes)):
            for name in _BN_KEYS:
                conversion.take(f"blocks.{layer}.norm.{name}", f"model.{layer * stride + 1}.{name}")
    return conversion.finish(config, preset)


_RECURRENT_KEYS = ("recurrent_weights", "recurrent_delays")


def _delrec_offsets(preset: str, batchnorm: bool) -> tuple[int, int | None, int]:
    """``(stride, BatchNorm offset or None, neuron offset)`` of a hidden block in the authors' ``layers``.

    ``src/SHD/snn.py``: synapses, [BatchNorm], LIF, spike recorder, dropout. ``src/SSC/snn.py``:
    synapses, dropout, LIF, spike recorder (its optional BatchNorm of the spikes is refused).
    """
    if preset in ("delrec_shd", "delrec_shd_equiparam"):
        return 4 + int(batchnorm), 1 if batchnorm else None, 1 + int(batchnorm)
    if preset == "delrec_ssc":
        return 4, None, 2
    raise CheckpointError(f"preset {preset!r} has no DelRec layout; choose delrec_shd, delrec_shd_equiparam or "
                          "delrec_ssc")


def _check_delrec_shd_recipe(state: dict[str, Any], preset: str, source: str) -> None:
    """Refuse, by name, a state of the authors' other SHD recipe: ``delrec_shd`` is
    ``configs/perf_SHD.py`` (BatchNorm, bias, tau 1.05, DCLS right padding (K-1)//2),
    ``delrec_shd_equiparam`` is ``configs/equiparam_SHD.py`` (``use_batch_norm = False``,
    ``bias = False``, ``tau = 2``, DCLS ``right_padding = 0``). Tau and DCLS timing are not in the
    state_dict, only the BatchNorm statistics tell the recipes apart."""
    norms = sorted(key for key in state if key.endswith(".running_mean"))
    if preset == "delrec_shd" and not norms:
        first = next(iter(sorted(key for key in state if key.startswith("layers."))), "layers.0.weight")
        raise CheckpointError(f"{source}: no BatchNorm (no layers.<i>.running_mean; first key {first!r}): the "
                              "authors' configs/equiparam_SHD.py recipe (no BatchNorm, no bias, tau 2, DCLS without "
                              "right padding), not delrec_shd's configs/perf_SHD.py (BatchNorm, bias, tau 1.05, "
                              "DCLS right padding (K-1)//2); import it with --preset shd_equiparam "
                              "(preset delrec_shd_equiparam)")
    if preset == "delrec_shd_equiparam" and norms:
        raise CheckpointError(f"{source}: {norms[0]}: BatchNorm, the authors' configs/perf_SHD.py recipe (BatchNorm, "
                              "bias, tau 1.05, DCLS right padding (K-1)//2), not configs/equiparam_SHD.py (no "
                              "BatchNorm, no bias, tau 2, no right padding); import it with --preset shd "
                              "(preset delrec_shd)")


def import_delrec(state: dict[str, Any], preset: str, *, hidden: int | None = None, layers: int | None = None,
                  source: str = "<state_dict>") -> Checkpoint:
    """Convert an official DelRec ``state_dict`` to a delaydeploy checkpoint (sigma = 0).

    Which synaptic stages are DCLS (a ``P`` or a 3-D ``weight``) and which neurons are recurrent
    (any ``recurrent_*`` key) is read from the keys: the authors' model classes share one layout
    per model file and differ only there (``perf_SSC.py`` trains one without feedforward delays).
    The SSC readout is a bare synaptic stage whose per-step output the authors sum over time
    and take the argmax of: the ``delrec_ssc`` preset's readout without leak (``readout_tau = 1``,
    its membrane is that output) and ``decision = "summed_output"`` make readout, loss and
    predictions the authors'. A ``delrec_shd`` state with DCLS stages gets the official semantics
    (each DCLS stage (K-1)//2 steps longer, K the preset's 25 = ``max_feedforward_delay`` of
    ``configs/perf_SHD.py``; the state_dict does not hold K), its Linear-only states keep the
    streaming model without tail, which is the same timing. ``delrec_shd_equiparam`` states
    (``configs/equiparam_SHD.py``: K = 25, no right padding) are always streaming without tail.
    """
    network = get_preset(preset).network
    stride, norm_offset, neuron_offset = _delrec_offsets(preset, network.batchnorm)
    if preset == "delrec_ssc":
        norms = sorted(key for key in state if key.endswith("running_mean"))
        if norms:
            raise CheckpointError(f"{source}: {norms[0]}: the authors' SSC model normalises the spikes after the "
                                  "LIF (use_batch_norm = True), which delaydeploy does not model")
    count = len(network.hidden_sizes) if layers is None else layers

    def is_dcls(index: int) -> bool:
        weight = state.get(f"layers.{index}.weight")
        return f"layers.{index}.P" in state or (isinstance(weight, torch.Tensor) and weight.dim() == 3)

    def is_recurrent(index: int) -> bool:
        return any(f"layers.{index}.{name}" in state for name in (*_RECURRENT_KEYS, "p_spread"))

    synapse_indices = [layer * stride for layer in range(count)] + [count * stride]
    delay_stages = tuple(is_dcls(i) for i in synapse_indices)
    if preset in ("delrec_shd", "delrec_shd_equiparam"):
        _check_delrec_shd_recipe(state, preset, source)
    # src/SHD/snn.py's dcls_module pads (K-1)//2 steps on the right under configs/perf_SHD.py: each DCLS
    # stage lengthens the sequence, delaydeploy's official semantics; it pads none under
    # configs/equiparam_SHD.py, and src/SSC/snn.py's pads none: streaming, no tail.
    timing = ({"semantics": "official"} if preset == "delrec_shd" and any(delay_stages)
              else {"semantics": "streaming", "tail_steps": 0})
    config = _config(preset, hidden, layers, delay_stages=delay_stages,
                     recurrent_layers=tuple(is_recurrent(layer * stride + neuron_offset) for layer in range(count)),
                     **timing)
    conversion = _Conversion(state, source)

    def synapses(ours: str, index: int, stage: int) -> None:
        if config.stage_has_delays[stage]:
            for name in ("weight", "P"):
                conversion.take(f"{ours}.dcls.{name}", f"layers.{index}.{name}")
            conversion.converted[f"{ours}.dcls.SIG"] = torch.zeros_like(conversion.converted[f"{ours}.dcls.P"])
            prefix = f"{ours}.dcls"
        else:
            conversion.take(f"{ours}.weight", f"layers.{index}.weight")
            prefix = ours
        if config.bias:
            conversion.take(f"{prefix}.bias", f"layers.{index}.bias")

    for layer in range(count):
        base = layer * stride
        ours = f"blocks.{layer}"
        synapses(f"{ours}.synapses", base, layer)
        if norm_offset is not None:
            for name in _BN_KEYS:
                conversion.take(f"{ours}.norm.{name}", f"layers.{base + norm_offset}.{name}")
        neuron_index = base + neuron_offset
        if config.layer_is_recurrent[layer]:
            for name in _RECURRENT_KEYS:
                conversion.take(f"{ours}.neuron.{name}", f"layers.{neuron_index}.{name}")
            conversion.converted[f"{ours}.neuron.sigma"] = torch.zeros(())
            spread = f"layers.{neuron_index}.p_spread"  # the learned spread widths: moot at sigma = 0
            if config.recurrent_spread != "learned":
                conversion.remaining.pop(spread, None)
            elif spread in conversion.remaining:
                conversion.take(f"{ours}.neuron.spread_logits", spread)
            else:
                conversion.converted[f"{ours}.neuron.spread_logits"] = torch.zeros(config.hidden_sizes[layer])
    synapses("readout", count * stride, count)
    return conversion.finish(config, preset)


IMPORTERS = {"snn-delays": import_snn_delays, "delrec": import_delrec}
IMPORT_PRESETS = {"snn-delays": ("shd", "ssc", "gsc"), "delrec": ("shd", "shd_equiparam", "ssc")}


def import_official(source: str, state: dict[str, Any], preset: str, *, hidden: int | None = None,
                    layers: int | None = None, origin: str = "<state_dict>") -> Checkpoint:
    """Import a state_dict of ``source`` (``snn-delays`` or ``delrec``) trained with ``preset`` (shd, ssc, gsc;
    DelRec: shd, shd_equiparam, ssc).

    DelRec's recipes are delaydeploy's ``delrec_shd``/``delrec_shd_equiparam``/``delrec_ssc`` presets.
    """
    if preset not in IMPORT_PRESETS[source]:
        raise CheckpointError(f"{source} has no {preset!r} recipe; choose one of {', '.join(IMPORT_PRESETS[source])}")
    name = f"delrec_{preset}" if source == "delrec" else preset
    return IMPORTERS[source](state, name, hidden=hidden, layers=layers, source=origin)
