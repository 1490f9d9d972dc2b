"""Spoken digits from a speaker the network never heard: leave-one-speaker-out on FSDD.

On FSDD's official split the same five speakers are in training and test, and every model
scores near 100 %. Here each fold tests on every recording of one speaker (500) and trains
on the others (2,000), for:

* the ``fsdd`` preset with learned delays (DCLS), reported with rounded delays and as Loihi 2
  integers, before and after ``finetune --target loihi2``;
* the same network adapted to the test speaker without its labels (``delaydeploy adapt``:
  BatchNorm statistics measured on its recordings), rounded and as Loihi 2 integers, before and
  after fine-tuning; and adapted on a tenth of them only, tested on the other nine tenths;
* the same network with fixed random delays, and without delays;
* two non-spiking baselines on 40-band log-mel frames of the same audio: a GRU (one layer of
  128) and a small convolutional network (three dilated 1-D convolutions over time, averaged
  over the recording) that normalises each recording's bands itself (cepstral mean and variance
  normalisation, the usual remedy for a new voice's or microphone's spectral colour).

``--warp CHANNELS,STRETCH`` trains the spiking models on warped samples (the ``warp``
augmentation of :mod:`delaydeploy.datasets.augment`: spectrum moved by up to ``CHANNELS`` ERB
channels, time stretched by up to ``STRETCH``), against speaker differences; the baselines
are never augmented. ``--hidden N`` gives the spiking models N neurons per hidden layer instead
of the preset's 128.

It writes a table (mean, spread and each fold), ``results.json`` and ``speakers.png`` into
``--output``; every accuracy says on how many recordings it rests.

    python examples/fsdd_speakers.py --data-dir ../shared/data/fsdd/recordings -o fsdd_speakers
        [--speakers george,lucas] [--models learned,fixed,none,gru,cnn] [--warp 8,0.15] [--hidden 256]
        [--epochs N] [--quick]

``--models`` trains a subset (the table has their rows only); ``--quick`` (the test suite's)
trains one epoch on a few samples per fold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from delaydeploy.adapt import adapt_checkpoint
from delaydeploy.cli import EXIT_USAGE, at_least
from delaydeploy.datasets.audio import amplitude_to_db, mel_filterbank, power_spectrogram, read_wav
from delaydeploy.datasets.augment import augment
from delaydeploy.datasets.fsdd import fsdd_speakers, fsdd_split_files, parse_speakers
from delaydeploy.errors import DelayDeployError
from delaydeploy.fileio import atomic_directory, check_output_directory
from delaydeploy.finetune import finetune_checkpoint
from delaydeploy.training import train_preset

MODELS = {
    "learned": "learned delays, rounded",
    "learned_loihi2": "learned delays, Loihi 2 integers",
    "learned_finetuned_rounded": "learned delays after finetune, rounded",
    "learned_loihi2_finetuned": "learned delays after finetune, Loihi 2 integers",
    "learned_adapted": "learned delays, adapted to the speaker (BatchNorm), rounded",
    "learned_adapted_loihi2": "learned delays, adapted, Loihi 2 integers",
    "learned_adapted_loihi2_finetuned": "learned delays, adapted, after finetune, Loihi 2 integers",
    "learned_adapted_tenth": "learned delays, adapted on 10% of the speaker, rounded, on the other 90%",
    "fixed": "fixed random delays, rounded",
    "none": "no delays",
    "gru": "GRU on log-mel (non-spiking)",
    "cnn": "CNN on normalised log-mel (non-spiking)",
}
TRAINED = ("learned", "fixed", "none", "gru", "cnn")  # what --models names; "learned" gives every learned_* row
RESULTS_FILE = "results.json"
MEL_BANDS, N_FFT, HOP = 40, 256, 80  # 32 ms windows every 10 ms at 8 kHz


# -- the non-spiking baselines -----------------------------------------------------------------------

def log_mel(path: Path) -> torch.Tensor:
    """40-band log-mel frames ``[T, 40]`` (32 ms windows, 10 ms hop) of one 8 kHz recording."""
    samples, rate = read_wav(path)
    power = power_spectrogram(torch.as_tensor(samples, dtype=torch.float32), N_FFT, HOP)
    bank = mel_filterbank(N_FFT // 2 + 1, 20.0, rate / 2, MEL_BANDS, rate).float()
    return amplitude_to_db(power.transpose(-1, -2) @ bank)


class GRUClassifier(torch.nn.Module):
    def __init__(self, features: int = MEL_BANDS, hidden: int = 128, classes: int = 10):
        super().__init__()
        self.gru = torch.nn.GRU(features, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, hidden = self.gru(packed)
        return self.out(hidden[-1])


class CNNClassifier(torch.nn.Module):
    """Each recording's bands normalised over its own frames, three 1-D convolutions over time
    (kernel 5, dilations 1, 2, 4: 29 frames of context) with BatchNorm and ReLU, the recording's
    frames averaged, dropout, a linear readout. Frames past a recording's end are zero at every
    layer, so a batch's padding does not reach into the recording."""

    def __init__(self, features: int = MEL_BANDS, channels: tuple[int, ...] = (64, 128, 128), classes: int = 10,
                 dropout: float = 0.3):
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Conv1d(before, after, 5, padding=2 * 2 ** index, dilation=2 ** index),
                                torch.nn.BatchNorm1d(after), torch.nn.ReLU())
            for index, (before, after) in enumerate(zip((features, *channels), channels)))
        self.dropout = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(channels[-1], classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(x.dtype)[:, None]  # [B, 1, T]
        frames = valid.sum(-1)
        x = x.transpose(1, 2)  # [B, bands, T]
        mean = (x * valid).sum(-1, keepdim=True) / frames[..., None]
        std = (((x - mean) * valid).square().sum(-1, keepdim=True) / frames[..., None]).sqrt()
        hidden = (x - mean) / (std + 1e-3) * valid
        for block in self.blocks:
            hidden = block(hidden) * valid
        return self.out(self.dropout(hidden.sum(-1) / frames))


BASELINES = {"gru": GRUClassifier, "cnn": CNNClassifier}


def _batch(features: list[torch.Tensor], mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    padded = torch.nn.utils.rnn.pad_sequence([(f - mean) / std for f in features], batch_first=True)
    return padded, torch.tensor([len(f) for f in features])


def log_mel_split(files: list[tuple[Path, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The log-mel frames of every ``(wav path, digit)`` of ``files``, and their digits."""
    return [log_mel(path) for path, _ in files], torch.tensor([label for _, label in files])


def baseline_accuracy(kind: str, train: tuple[list[torch.Tensor], torch.Tensor],
                      test: tuple[list[torch.Tensor], torch.Tensor], epochs: int, seed: int = 0) -> float:
    """Test accuracy of the baseline ``kind`` (of :data:`BASELINES`) trained with Adam on ``train``
    (:func:`log_mel_split`; features normalised with the training statistics)."""
    (train_x, train_y), (test_x, test_y) = train, test
    stacked = torch.cat(train_x)
    mean, std = stacked.mean(0), stacked.std(0) + 1e-6
    torch.manual_seed(seed)
    model = BASELINES[kind]()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_x))
        for start in range(0, len(order), 64):
            chosen = order[start:start + 64].tolist()
            x, lengths = _batch([train_x[i] for i in chosen], mean, std)
            loss = torch.nn.functional.cross_entropy(model(x, lengths), train_y[chosen])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        x, lengths = _batch(test_x, mean, std)
        predictions = model(x, lengths).argmax(-1)
    return float((predictions == test_y).double().mean())


# -- the folds -----------------------------------------------------------------------------------------

def run_fold(data_dir: Path, speaker: str, folder: Path, *, models: Sequence[str], augmentation: dict,
             hidden: int | None, epochs: int | None, finetune_epochs: int, baseline_epochs: dict[str, int],
             max_samples: int | None) -> dict:
    """The ``models`` (of :data:`TRAINED`) trained without ``speaker`` and tested on all of its recordings."""
    recordings = len(fsdd_split_files(data_dir, "test", (speaker,)))
    fold: dict = {"test_recordings": min(recordings, max_samples or recordings), "seconds": {}}
    for mode in [mode for mode in ("learned", "fixed", "none") if mode in models]:
        start = time.perf_counter()
        checkpoint = folder / f"{speaker}_{mode}.pt"
        outcome = train_preset("fsdd", output=str(checkpoint), data_dir=str(data_dir), epochs=epochs, delays=mode,
                               hidden=hidden, progress=False, max_samples=max_samples, test_speakers=speaker,
                               augmentation=augmentation)
        fold[mode] = outcome.test_accuracy_rounded
        fold["seconds"][mode] = round(time.perf_counter() - start, 1)
        if mode == "learned":
            start = time.perf_counter()
            tuned = finetune_checkpoint(checkpoint, folder / f"{speaker}_finetuned.pt", data_dir=str(data_dir),
                                        epochs=finetune_epochs, max_samples=max_samples, progress=False)
            fold["learned_loihi2"] = tuned.accuracy["loihi2_before"]
            fold["learned_loihi2_finetuned"] = tuned.accuracy["loihi2_after"]
            fold["learned_finetuned_rounded"] = tuned.accuracy["rounded_after"]
            fold["seconds"]["finetune"] = round(time.perf_counter() - start, 1)
            start = time.perf_counter()
            adapted = folder / f"{speaker}_adapted.pt"
            fold["learned_adapted"] = adapt_checkpoint(checkpoint, adapted, data_dir=str(data_dir),
                                                       max_samples=max_samples, progress=False).accuracy_after
            tuned = finetune_checkpoint(adapted, folder / f"{speaker}_adapted_finetuned.pt", data_dir=str(data_dir),
                                        epochs=finetune_epochs, max_samples=max_samples, progress=False)
            fold["learned_adapted_loihi2"] = tuned.accuracy["loihi2_before"]
            fold["learned_adapted_loihi2_finetuned"] = tuned.accuracy["loihi2_after"]
            fold["learned_adapted_tenth"] = adapt_checkpoint(
                checkpoint, folder / f"{speaker}_adapted_tenth.pt", data_dir=str(data_dir),
                samples=max(1, round(fold["test_recordings"] / 10)), max_samples=max_samples,
                progress=False).accuracy_after_unused
            fold["seconds"]["adapt_and_finetune"] = round(time.perf_counter() - start, 1)
    baselines = [kind for kind in BASELINES if kind in models]
    if not baselines:
        return fold
    start = time.perf_counter()
    train, test = (fsdd_split_files(data_dir, split, (speaker,)) for split in ("train", "test"))
    if max_samples is not None:
        train, test = train[::max(1, len(train) // max_samples)], test[: fold["test_recordings"]]
    train, test = log_mel_split(train), log_mel_split(test)  # once for every baseline
    fold["seconds"]["log_mel"] = round(time.perf_counter() - start, 1)
    for kind in baselines:
        start = time.perf_counter()
        fold[kind] = baseline_accuracy(kind, train, test, baseline_epochs[kind])
        fold["seconds"][kind] = round(time.perf_counter() - start, 1)
    return fold


def measured(folds: dict[str, dict]) -> list[str]:
    """The rows of :data:`MODELS` that every fold has."""
    return [model for model in MODELS if all(model in fold for fold in folds.values())]


def summarise(folds: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (over folds), minimum and maximum of every model measured."""
    summary = {}
    for model in measured(folds):
        values = [fold[model] for fold in folds.values()]
        summary[model] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                          "min": min(values), "max": max(values)}
    return summary


def table(folds: dict[str, dict], summary: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per model, mean +- std over folds, then each fold."""
    speakers = list(folds)
    samples = ", ".join(f"{speaker} {folds[speaker]['test_recordings']}" for speaker in speakers)
    lines = [f"Leave-one-speaker-out on FSDD ({len(speakers)} folds; test recordings per fold: {samples}).", "",
             "| model | mean ± std over folds | " + " | ".join(f"test: {s}" for s in speakers) + " |",
             "|---|---:|" + "---:|" * len(speakers)]
    for model in summary:
        label = MODELS[model]
        cells = " | ".join(f"{100 * folds[s][model]:.1f}%" for s in speakers)
        lines.append(f"| {label} | {100 * summary[model]['mean']:.1f} ± {100 * summary[model]['std']:.1f}% | {cells} |")
    return "\n".join(lines)


def plot(folds: dict[str, dict], summary: dict[str, dict[str, float]], path: Path) -> None:
    """Bars of the mean per model with each fold as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4))
    for index, model in enumerate(summary):
        ax.bar(index, 100 * summary[model]["mean"], yerr=100 * summary[model]["std"], capsize=4, color="tab:blue",
               alpha=0.7)
        for offset, speaker in enumerate(folds):
            ax.plot(index - 0.25 + 0.5 * offset / max(len(folds) - 1, 1), 100 * folds[speaker][model], "o",
                    color=f"C{offset + 1}", markersize=4, label=speaker if index == 0 else None)
    ax.set_xticks(range(len(summary)), [textwrap.fill(MODELS[model], 18) for model in summary], fontsize=7)
    ax.set_ylabel("accuracy on the unheard speaker (%)")
    ax.set_ylim(0, 105)
    ax.legend(title="test speaker", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"FSDD leave-one-speaker-out ({len(folds)} folds; bars: mean ± std)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(output: Path, settings: dict, folds: dict[str, dict]) -> str:
    """Write ``results.json``, ``table.md`` and ``speakers.png`` of the folds so far; returns the table."""
    summary = summarise(folds)
    text = table(folds, summary)
    with atomic_directory(output, RESULTS_FILE) as tmp:
        (tmp / RESULTS_FILE).write_text(json.dumps({"settings": settings, "folds": folds, "summary": summary},
                                                   indent=2) + "\n")
        (tmp / "table.md").write_text(text + "\n")
        plot(folds, summary, tmp / "speakers.png")
    return text


def model_list(text: str) -> list[str]:
    """``--models``: known names, comma-separated, at least one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRAINED]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected some of {', '.join(TRAINED)}")
    return [name for name in TRAINED if name in names]


def warp_options(text: str) -> dict:
    """``--warp CHANNELS,STRETCH`` as the ``warp`` augmentation's options."""
    try:
        channels, stretch = text.split(",")
        options = {"kind": "warp", "channel_shift": int(channels), "stretch": float(stretch)}
        augment([], options)  # the augmentation's own checks
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CHANNELS,STRETCH such as 8,0.15 ({error})") from None
    return options


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="the FSDD recordings folder")
    parser.add_argument("-o", "--output", default="fsdd_speakers", help="folder for the table, JSON and plot")
    parser.add_argument("--speakers", help="held-out speakers, comma-separated (default: every speaker found)")
    parser.add_argument("--models", default=",".join(TRAINED), type=model_list,
                        help=f"comma-separated, of {', '.join(TRAINED)} (default: all; learned includes "
                             "adaptation and fine-tuning)")
    parser.add_argument("--warp", type=warp_options, default={}, metavar="CHANNELS,STRETCH",
                        help="train the spiking models on warped samples (e.g. 8,0.15; default: none)")
    parser.add_argument("--hidden", type=at_least(1), help="neurons per hidden layer of the spiking models "
                                                            "(default: the preset's 128)")
    parser.add_argument("--epochs", type=at_least(1), help="training epochs per model (default: the preset's)")
    parser.add_argument("--finetune-epochs", type=at_least(1), default=5)
    parser.add_argument("--gru-epochs", type=at_least(1), default=15)
    parser.add_argument("--cnn-epochs", type=at_least(1), default=30)
    parser.add_argument("--quick", action="store_true", help="one epoch on a few samples per fold (tests)")
    args = parser.parse_args(argv)
    try:
        check_output_directory(args.output, RESULTS_FILE)
        data_dir = Path(args.data_dir)
        speakers = parse_speakers(args.speakers) or tuple(fsdd_speakers(data_dir))
        epochs, max_samples = (1, 16) if args.quick else (args.epochs, None)
        finetune_epochs = 1 if args.quick else args.finetune_epochs
        baseline_epochs = (dict.fromkeys(BASELINES, 1) if args.quick
                           else {"gru": args.gru_epochs, "cnn": args.cnn_epochs})
        settings = {"models": args.models, "epochs": epochs or "preset", "finetune_epochs": finetune_epochs,
                    "baseline_epochs": baseline_epochs,
                    "max_samples": max_samples, "augmentation": args.warp, "hidden": args.hidden or "preset"}
        folds: dict[str, dict] = {}
        with tempfile.TemporaryDirectory(prefix="fsdd-speakers-") as scratch:
            for speaker in tqdm(speakers, desc="folds", unit="speaker"):
                folds[speaker] = run_fold(data_dir, speaker, Path(scratch), models=args.models,
                                          augmentation=args.warp, hidden=args.hidden, epochs=epochs,
                                          finetune_epochs=finetune_epochs, baseline_epochs=baseline_epochs,
                                          max_samples=max_samples)
                text = write_results(Path(args.output), settings, folds)  # after every fold: a long run keeps its folds
        print(text)
        print(f"wrote {args.output} ({RESULTS_FILE}, table.md, speakers.png)")
    except DelayDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
