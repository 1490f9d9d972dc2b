"""Training-set augmentations, chosen by a preset's ``augmentation`` options (:func:`augment`).

``{"kind": "tripled", "shift_max": ..., "thin_p": ...}`` — the DelRec SHD recipe
(``configs/perf_SHD.py``, ``use_augmentations``; Queant et al. 2025): every sample three times
per epoch. Item ``k`` is sample ``k``; item ``n + k`` is sample ``k`` with each channel moved
in time by its own random whole number of steps in ``[-shift_max, shift_max]`` (zeros moved
in, length kept); item ``2n + k`` is sample ``k`` blended with a random other sample of its
class: the two are aligned on their centres of spike mass, each count is thinned binomially
(each spike kept with probability ``thin_p``) and they are added. A sample alone in its class
is shifted instead.

``{"kind": "warp", "channel_shift": ..., "stretch": ...}`` — for speech through the cochlea
encoder, against speaker differences: every sample, each time it is drawn, has its whole
spectrum moved by a random whole number of channels in ``[-channel_shift, channel_shift]``
(on ERB-spaced channels a shift is a change of vocal-tract length) and its time axis
stretched by a random factor in ``[1 - stretch, 1 + stretch]`` (speaking rate).

Draws are new at every access and come from torch's global generator, which training seeds.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import torch
from torch.utils.data import Dataset


def shift_channels(x: torch.Tensor, shift_max: int) -> torch.Tensor:
    """``x [T, C]`` with channel ``c`` moved by ``s_c`` steps (later for ``s_c > 0``), ``s_c``
    uniform in ``[-shift_max, shift_max]``; steps moved in are zero, steps moved out are lost."""
    steps, channels = x.shape
    shifts = torch.randint(-shift_max, shift_max + 1, (channels,))
    source = torch.arange(steps)[:, None] - shifts[None, :]  # out[t, c] = x[t - s_c, c]
    inside = (source >= 0) & (source < steps)
    return torch.where(inside, x.gather(0, source.clamp(0, steps - 1)), torch.zeros((), dtype=x.dtype))


def centre_of_mass(x: torch.Tensor) -> float:
    """Mean step of the spikes of ``x [T, C]`` (the middle step when there are none)."""
    mass = x.sum(dim=1)
    total = float(mass.sum())
    if total <= 0:
        return (x.shape[0] - 1) / 2
    return float((torch.arange(x.shape[0], dtype=x.dtype) * mass).sum()) / total


def blend(x: torch.Tensor, partner: torch.Tensor, thin_p: float) -> torch.Tensor:
    """``x`` and ``partner`` (``[T, C]`` counts) aligned on their centres of mass (the one whose
    centre comes first is padded at the front by the rounded lag), each thinned binomially with
    keep probability ``thin_p``, added; as long as the longer of the two aligned."""
    lag = round(centre_of_mass(x) - centre_of_mass(partner))  # half to even, as DelRec's round()
    x_lead, partner_lead = max(0, -lag), max(0, lag)
    steps = max(x.shape[0] + x_lead, partner.shape[0] + partner_lead)
    total = x.new_zeros(steps, x.shape[1])
    for counts, lead in ((x, x_lead), (partner, partner_lead)):
        kept = counts.clamp_min(0).round()
        total[lead:lead + counts.shape[0]] += torch.binomial(kept, torch.full_like(kept, thin_p))
    return total


class TripledAugmentation(Dataset):
    """``base`` three times over: as is, channels shifted, blended within the class (module doc)."""

    def __init__(self, base: Dataset, shift_max: int, thin_p: float) -> None:
        if isinstance(shift_max, bool) or not isinstance(shift_max, int) or shift_max < 0:
            raise ValueError(f"augmentation shift_max = {shift_max!r} must be an integer >= 0")
        if isinstance(thin_p, bool) or not isinstance(thin_p, (int, float)) or not 0 <= thin_p <= 1:
            raise ValueError(f"augmentation thin_p = {thin_p!r} must be a probability in [0, 1]")
        assert isinstance(base, Sized)  # every dataset here has a length; torch's Dataset type declares none
        self.base, self.shift_max, self.thin_p = base, shift_max, float(thin_p)
        labels = [int(base[k][1]) for k in range(len(base))]
        self._members: dict[int, list[int]] = {}
        for position, label in enumerate(labels):
            self._members.setdefault(label, []).append(position)

    def __len__(self) -> int:
        return 3 * len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        samples = len(self.base)
        if not 0 <= index < 3 * samples:
            raise IndexError(f"augmented item {index} of {3 * samples}")
        kind, position = divmod(index, samples)
        x, label = self.base[position]
        if kind == 0:
            return x, label
        others = [member for member in self._members[int(label)] if member != position]
        if kind == 1 or not others:
            return shift_channels(x, self.shift_max), label
        partner = others[int(torch.randint(len(others), ()))]
        return blend(x, self.base[partner][0], self.thin_p), label


def warp(x: torch.Tensor, channel_shift: int, stretch: float) -> torch.Tensor:
    """``x [T, C]`` with channel ``c`` moved to ``c + s`` (``s`` uniform in ``[-channel_shift,
    channel_shift]``; channels moved in are zero) and ``round(T * r)`` frames, frame ``t``
    being frame ``floor(t / r)`` (``r`` uniform in ``[1 - stretch, 1 + stretch]``)."""
    steps, channels = x.shape
    shift = max(-channels, min(channels, int(torch.randint(-channel_shift, channel_shift + 1, ()))))
    moved = torch.zeros_like(x)
    if shift >= 0:
        moved[:, shift:] = x[:, : channels - shift]
    else:
        moved[:, :shift] = x[:, -shift:]
    rate = 1.0 + stretch * (2.0 * float(torch.rand(())) - 1.0)
    frames = (torch.arange(max(1, round(steps * rate))) / rate).long().clamp(max=steps - 1)
    return moved[frames]


class WarpAugmentation(Dataset):
    """``base`` with every sample warped anew at each access (:func:`warp`; module doc)."""

    def __init__(self, base: Dataset, channel_shift: int, stretch: float) -> None:
        if isinstance(channel_shift, bool) or not isinstance(channel_shift, int) or channel_shift < 0:
            raise ValueError(f"augmentation channel_shift = {channel_shift!r} must be an integer >= 0")
        if isinstance(stretch, bool) or not isinstance(stretch, (int, float)) or not 0 <= stretch < 1:
            raise ValueError(f"augmentation stretch = {stretch!r} must be a fraction in [0, 1)")
        self.base, self.channel_shift, self.stretch = base, channel_shift, float(stretch)

    def __len__(self) -> int:
        assert isinstance(self.base, Sized)  # every dataset here has a length; torch's Dataset type declares none
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, label = self.base[index]
        return warp(x, self.channel_shift, self.stretch), label


#: The augmentations a preset or ``train_preset(augmentation=...)`` can name.
AUGMENTATIONS: dict[str, type[TripledAugmentation] | type[WarpAugmentation]] = {
    "tripled": TripledAugmentation, "warp": WarpAugmentation}


def augment(dataset: Dataset, options: dict[str, Any]) -> Dataset:
    """``dataset`` augmented as ``options`` say: ``kind`` (one of :data:`AUGMENTATIONS`) and its options."""
    options = dict(options)
    kind = options.pop("kind", None)
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augmentation kind = {kind!r}; expected one of {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[kind](dataset, **options)
