"""Training-set augmentations: DelRec's SHD recipe against a step-by-step version of its
definition, and the spectral and temporal warp of the FSDD preset."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.data import Dataset

from delaydeploy import training
from delaydeploy.config import get_preset
from delaydeploy.datasets.augment import TripledAugmentation, augment, blend, centre_of_mass, shift_channels, warp


class Samples(Dataset):
    """Given ``[T_k, C]`` count tensors and labels."""

    def __init__(self, frames: list[torch.Tensor], labels: list[int]) -> None:
        self.frames, self.labels = frames, labels

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.frames[index], self.labels[index]


def _counts(steps: int, channels: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((steps, channels), 0.7), generator=generator)


def _shifted_one_channel_at_a_time(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Channel ``c`` delayed by ``shifts[c]`` steps (advanced if negative), a step at a time."""
    out = torch.zeros_like(x)
    for c, shift in enumerate(shifts.tolist()):
        for t in range(x.shape[0]):
            if 0 <= t - shift < x.shape[0]:
                out[t, c] = x[t - shift, c]
    return out


def _aligned_sum(x: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Unthinned blend: the one whose centre of mass comes first padded at the front by the rounded lag."""
    def com(frames: torch.Tensor) -> float:
        weights = [float(frames[t].sum()) for t in range(frames.shape[0])]
        return sum(t * w for t, w in enumerate(weights)) / sum(weights)

    lag = round(com(x) - com(partner))
    x_lead, partner_lead = max(0, -lag), max(0, lag)
    steps = max(len(x) + x_lead, len(partner) + partner_lead)
    total = torch.zeros(steps, x.shape[1])
    total[x_lead:x_lead + len(x)] += x
    total[partner_lead:partner_lead + len(partner)] += partner
    return total


def test_channels_move_by_their_own_draws_within_the_range():
    x = _counts(30, 12, seed=1)
    torch.manual_seed(5)
    shifted = shift_channels(x, 8)
    torch.manual_seed(5)
    shifts = torch.randint(-8, 9, (12,))  # the same draw
    assert torch.equal(shifted, _shifted_one_channel_at_a_time(x, shifts))
    assert shifts.min() < 0 < shifts.max()  # both directions were exercised
    assert torch.equal(shift_channels(x, 0), x)
    far = shift_channels(x, 1000)
    assert far.shape == x.shape and far.sum() <= x.sum()


def test_blend_aligns_the_centres_of_mass_and_thins_binomially():
    early = torch.zeros(20, 3)
    early[2:5] = 2.0
    late = torch.zeros(16, 3)
    late[9:12] = 1.0  # centre 10 against 3: the early one (20 steps) moves 7 later, to 27
    for x, partner in ((early, late), (late, early)):
        whole = blend(x, partner, 1.0)
        assert torch.equal(whole, _aligned_sum(x, partner))
        assert whole.shape[0] == 27 and centre_of_mass(whole) == pytest.approx(10.0)
    assert torch.equal(blend(early, late, 0.0), torch.zeros(27, 3))
    torch.manual_seed(0)
    many = torch.full((400, 50), 4.0)
    thinned = blend(many, many, 0.5)
    assert torch.all(thinned <= 8) and thinned.sum() / (2 * many.sum()) == pytest.approx(0.5, abs=0.01)
    assert torch.equal(thinned, thinned.round())  # whole spike counts


def test_centre_of_mass_of_a_silent_sample_is_its_middle():
    assert centre_of_mass(torch.zeros(9, 4)) == 4.0


def test_items_are_the_samples_then_shifted_then_blended_within_their_class():
    frames = [_counts(10 + k, 6, seed=k) for k in range(5)]
    labels = [0, 1, 0, 2, 0]  # sample 3 is alone in its class
    base = Samples(frames, labels)
    augmented = TripledAugmentation(base, shift_max=3, thin_p=1.0)
    assert len(augmented) == 15
    for k in range(5):
        x, label = augmented[k]
        assert torch.equal(x, frames[k]) and label == labels[k]
        x, label = augmented[5 + k]
        assert label == labels[k] and x.shape == frames[k].shape and x.sum() <= frames[k].sum()
    for k in (0, 2, 4):
        x, label = augmented[10 + k]
        partners = [p for p in (0, 2, 4) if p != k and torch.equal(x, _aligned_sum(frames[k], frames[p]))]
        assert label == 0 and len(partners) == 1
    alone, label = augmented[13]  # no partner: shifted instead
    assert label == 2 and alone.shape == frames[3].shape
    with pytest.raises(IndexError):
        augmented[15]


def test_draws_change_between_accesses_and_follow_the_seed():
    base = Samples([_counts(40, 8, seed=k) for k in range(4)], [0, 0, 1, 1])
    augmented = TripledAugmentation(base, shift_max=10, thin_p=0.5)
    torch.manual_seed(3)
    first = [augmented[k][0] for k in range(4, 12)]
    second = [augmented[k][0] for k in range(4, 12)]
    torch.manual_seed(3)
    again = [augmented[k][0] for k in range(4, 12)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("options, words", [
    ({"shift_max": -1, "thin_p": 0.5}, "shift_max = -1 must be an integer >= 0"),
    ({"shift_max": 2.5, "thin_p": 0.5}, "shift_max = 2.5 must be an integer >= 0"),
    ({"shift_max": 5, "thin_p": 1.5}, "thin_p = 1.5 must be a probability in [0, 1]"),
])
def test_bad_options_are_refused(options, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        TripledAugmentation(Samples([torch.zeros(3, 2)], [0]), **options)


def test_delrec_shd_trains_on_its_augmented_split_and_records_it(monkeypatch, tmp_path):
    """configs/perf_SHD.py: use_augmentations, shift_max 100, thin_p 0.5; the other presets have none."""
    assert get_preset("delrec_shd").augmentation == {"kind": "tripled", "shift_max": 100, "thin_p": 0.5}
    assert all(not get_preset(name).augmentation for name in ("delrec_shd_equiparam", "delrec_ssc", "shd", "ssc"))
    options = {"kind": "tripled", "shift_max": 2, "thin_p": 0.5}
    preset = dataclasses.replace(get_preset("synthetic"), augmentation=options)
    monkeypatch.setattr("delaydeploy.config.get_preset", lambda name: preset)
    seen = []

    def fake_train(model, train_set, test_set, config, **_):
        seen.append((len(train_set), len(test_set)))
        return []

    monkeypatch.setattr(training, "train", fake_train)
    output = tmp_path / "augmented.pt"
    training.train_preset("synthetic", output=str(output), epochs=1, max_samples=16, progress=False)
    assert seen == [(48, 16)]
    from delaydeploy.checkpoint import load_checkpoint
    assert load_checkpoint(output).metrics["augmentation"] == options
    warp_options = {"kind": "warp", "channel_shift": 1, "stretch": 0.1}  # train_preset's override of the preset's
    training.train_preset("synthetic", output=str(output), epochs=1, max_samples=16, progress=False,
                          augmentation=warp_options)
    assert seen[-1] == (16, 16) and load_checkpoint(output).metrics["augmentation"] == warp_options


def test_warp_moves_the_whole_spectrum_by_one_shift_within_its_bound():
    x = _counts(30, 20, seed=1)
    torch.manual_seed(0)
    seen = set()
    for _ in range(100):
        y = warp(x, channel_shift=3, stretch=0.0)
        matches = [shift for shift in range(-3, 4) if torch.equal(y, _moved(x, shift))]
        assert len(matches) == 1
        seen.update(matches)
    assert seen == set(range(-3, 4))


def _moved(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Channel ``c`` of ``x`` at ``c + shift``, zeros moved in, one channel at a time."""
    out = torch.zeros_like(x)
    for c in range(x.shape[1]):
        if 0 <= c + shift < x.shape[1]:
            out[:, c + shift] = x[:, c]
    return out


def test_warp_stretches_time_by_repeating_or_dropping_frames_in_order():
    x = _counts(50, 8, seed=2)
    torch.manual_seed(1)
    lengths = set()
    for _ in range(100):
        y = warp(x, channel_shift=0, stretch=0.2)
        assert 40 <= y.shape[0] <= 60
        lengths.add(y.shape[0])
        source = 0  # frame t of y is frame floor(t / r) of x: in order, starting at 0, steps of 0, 1 or 2
        for row in y:
            step = next(step for step in (0, 1, 2) if torch.equal(row, x[min(source + step, 49)]))
            source += step
        assert source >= 45
    assert min(lengths) < 45 and max(lengths) > 55


def test_warp_without_shift_or_stretch_is_the_identity_and_labels_are_kept():
    base = Samples([_counts(12, 5, seed=k) for k in range(3)], [4, 5, 6])
    augmented = augment(base, {"kind": "warp", "channel_shift": 0, "stretch": 0.0})
    assert len(augmented) == 3
    for k in range(3):
        x, label = augmented[k]
        assert torch.equal(x, base[k][0]) and label == 4 + k


@pytest.mark.parametrize("options, words", [
    ({"kind": "warp", "channel_shift": -2, "stretch": 0.1}, "channel_shift = -2 must be an integer >= 0"),
    ({"kind": "warp", "channel_shift": 2, "stretch": 1.0}, "stretch = 1.0 must be a fraction in [0, 1)"),
    ({"kind": "mixup"}, "augmentation kind = 'mixup'; expected one of tripled, warp"),
    ({"shift_max": 2, "thin_p": 0.5}, "augmentation kind = None"),
])
def test_bad_augmentation_options_are_refused(options, words):
    pattern = words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=pattern):
        augment(Samples([torch.zeros(3, 2)], [0]), options)
