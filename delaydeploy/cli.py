"""The ``delaydeploy`` command line.

Every command that takes an ARTIFACT accepts a checkpoint, an IR file, a NIR file or a
deployment bundle. Problems with inputs are reported as one ``error:`` line with exit code 2;
``verify`` and ``compare`` exit 1 when the artifact (or the results) disagree with the reference.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from delaydeploy.config import PRESET_NAMES
from delaydeploy.errors import DelayDeployError

EXIT_MISMATCH = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process killed by it


def _load_input(path: str) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise DelayDeployError(f"{file}: no such input file")
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DelayDeployError(f"{file}: not a .npy array ({error})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise DelayDeployError(f"{file}: an .npz archive; give one array as .npy [T, B, C]")
    return array


def _inputs(args: argparse.Namespace, artifact) -> np.ndarray:
    """The ``--input`` array, or ``--samples`` random inputs of the artifact's kind."""
    from delaydeploy.verify import random_inputs

    if getattr(args, "input", None):
        return _load_input(args.input)
    if artifact.bundle is not None and args.samples is None:
        return artifact.bundle.inputs
    network = artifact.network
    samples = 4 if args.samples is None else args.samples
    return random_inputs(network.input_size, network.input_kind, samples, args.steps, args.seed)


def _write_simulation(path: str, simulation) -> None:
    from delaydeploy.fileio import atomic_path

    arrays = {"readout": simulation.readout.cpu().numpy(), "pred": simulation.prediction().cpu().numpy()}
    arrays.update({f"spikes_{i}": s.cpu().numpy() for i, s in enumerate(simulation.spikes)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    print(f"wrote {path}: " + ", ".join(f"{key} {tuple(value.shape)}" for key, value in arrays.items()))


def cmd_train(args: argparse.Namespace) -> int:
    from delaydeploy.training import train_preset

    train_preset(args.preset, output=args.output, data_dir=args.data_dir, epochs=args.epochs,
                 batch_size=args.batch_size, device=args.device, seed=args.seed, delays=args.delays,
                 hidden=args.hidden, layers=args.layers, sparsity=args.sparsity,
                 delay_granularity=args.delay_granularity, progress=not args.quiet, max_samples=args.max_samples,
                 test_speakers=args.test_speakers)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from delaydeploy.checkpoint import FORMAT, load_raw_state, save_checkpoint
    from delaydeploy.fileio import check_output_file
    from delaydeploy.importers import import_official

    check_output_file(args.output)
    state = load_raw_state(args.state)
    if not isinstance(state, dict):
        raise DelayDeployError(f"{args.state}: expected a state_dict (a dict of tensors)")
    if state.get("format") == FORMAT:
        raise DelayDeployError(f"{args.state}: already a delaydeploy checkpoint; use it directly, no import needed")
    checkpoint = import_official(args.source, state, args.preset, hidden=args.hidden, layers=args.layers,
                                 origin=str(args.state))
    save_checkpoint(checkpoint, args.output)
    print(f"imported {args.source} {args.state} as preset {args.preset} -> {args.output}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from delaydeploy.artifacts import load_artifact
    from delaydeploy.checkpoint import Checkpoint
    from delaydeploy.fileio import check_output_file
    from delaydeploy.lowering import lower
    from delaydeploy.reference import Simulation, simulate
    from delaydeploy.verify import check_input

    check_output_file(args.output)
    artifact = load_artifact(args.artifact)
    x = check_input(artifact, _load_input(args.input))
    semantics = args.semantics or artifact.semantics
    if args.continuous and artifact.checkpoint is None:
        raise DelayDeployError(f"{args.artifact}: --continuous needs a checkpoint")
    if args.continuous or (artifact.checkpoint is not None and semantics != artifact.semantics):
        # rebuilt in the asked semantics (official pads every stage); otherwise its lowering is the artifact's
        assert artifact.checkpoint is not None  # --continuous without one was refused above
        config = artifact.checkpoint.config
        config = dataclasses.replace(config, semantics=semantics,
                                     tail_steps=None if semantics == "official" else config.tail_steps)
        model = Checkpoint(config, artifact.checkpoint.state_dict, source=str(args.artifact)).build_model()
        if args.continuous:
            with torch.no_grad():
                out = model(torch.as_tensor(x, dtype=next(model.parameters()).dtype))
            simulation = Simulation(out.spikes, out.readout, config.decision)
        else:
            simulation = simulate(lower(model), x, semantics=semantics)
    else:
        network = artifact.network
        stages = [*network.layers, network.readout]
        if semantics == "official" and network.tail_steps and not any(stage.official_tail for stage in stages):
            raise DelayDeployError(f"{args.artifact}: the IR records no official padding (it was not lowered "
                                   "from an official-semantics model); --semantics official needs the checkpoint")
        simulation = simulate(network, x, semantics=semantics)
    _write_simulation(args.output, simulation)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from delaydeploy.artifacts import load_artifact
    from delaydeploy.fileio import check_output_file
    from delaydeploy.verify import native_backend, run_backend

    check_output_file(args.output)
    artifact = load_artifact(args.artifact)
    backend = args.backend or native_backend(artifact)
    simulation = run_backend(artifact, backend, _inputs(args, artifact), workers=args.workers, progress=True)
    _write_simulation(args.output, simulation)
    return 0


def _load_checked(args: argparse.Namespace):
    """``verify``'s artifact: a bundle's signature checked first where ``--trusted-key`` is given;
    ``(artifact, None)``, or ``(None, reason)`` where a bundle's derived file is not delaydeploy's."""
    from delaydeploy.artifacts import load_artifact
    from delaydeploy.errors import DerivedFileError
    from delaydeploy.signing import check_signature

    if args.trusted_key is not None:
        if not Path(args.artifact).is_dir():
            raise DelayDeployError(f"{args.artifact}: --trusted-key checks a signed bundle; this is no bundle folder")
        fingerprint = check_signature(args.artifact, args.trusted_key)
        print(f"{args.artifact}: signed by the trusted key {args.trusted_key} ({fingerprint}); no file changed since")
    try:
        artifact = load_artifact(args.artifact)
    except DerivedFileError as error:
        return None, str(error)
    if artifact.bundle is not None and artifact.bundle.signed_by is not None and args.trusted_key is None:
        print(f"{args.artifact}: signed by key {artifact.bundle.signed_by}; signature not checked "
              "(give --trusted-key PUB.pem)")
    return artifact, None


def _readout_tolerance(oracle: str, tolerance: float) -> float:
    """The readout tolerance against ``oracle``: ``tolerance`` for floats, 0 for the integer reference."""
    return 0.0 if oracle == "fixed-reference" else tolerance


def _print_comparison(label: str, result, tolerance: float) -> int:
    """``verify``'s summary of a :class:`delaydeploy.comparison.Comparison`; its exit code."""
    print(label)
    for name, count in result.spike_mismatches.items():
        print(f"  {name}: {count} spike mismatches")
    print(f"  readout: max |difference| {result.readout_max_error:.3g} (tolerance {tolerance:g})")
    if not result.ok:
        print(f"FAILED: {result.first_divergence}")
        return EXIT_MISMATCH
    print("verified: 0 spike mismatches, readout within tolerance")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from delaydeploy.comparison import compare
    from delaydeploy.verify import native_backend, oracle_backend, run_backend

    artifact, reason = _load_checked(args)
    if artifact is None:
        print(f"FAILED: {reason}")
        return EXIT_MISMATCH
    if args.data_dir is not None or args.preset is not None or args.split is not None:
        return _verify_split(args, artifact)
    x = _inputs(args, artifact)
    backend = args.backend or native_backend(artifact)
    oracle = oracle_backend(artifact, backend)
    names = [layer.name for layer in artifact.network.layers]
    tolerance = _readout_tolerance(oracle, args.tolerance)
    expected = run_backend(artifact, oracle, x)
    actual = run_backend(artifact, backend, x, workers=args.workers, progress=True)
    return _print_comparison(f"{args.artifact}: {backend} vs {oracle} on {x.shape[1]} samples x {x.shape[0]} steps",
                             compare(expected, actual, names, tolerance), tolerance)


def cmd_compare(args: argparse.Namespace) -> int:
    from delaydeploy.artifacts import load_artifact
    from delaydeploy.comparison import compare
    from delaydeploy.verify import oracle_backend, read_results, run_backend

    artifact = load_artifact(args.artifact)
    if args.input is None and artifact.bundle is None:
        raise DelayDeployError(f"{args.artifact}: a {artifact.kind} holds no test vectors; give the input with --input")
    if args.input:
        x = _load_input(args.input)
    else:
        assert artifact.bundle is not None  # refused above
        x = artifact.bundle.inputs
    oracle = oracle_backend(artifact)
    expected = run_backend(artifact, oracle, x)
    actual = read_results(args.results, artifact.network, expected, x.shape[0])
    tolerance = _readout_tolerance(oracle, args.tolerance)
    names = [layer.name for layer in artifact.network.layers]
    return _print_comparison(f"{args.results} vs {oracle} of {args.artifact} on {x.shape[1]} samples x "
                             f"{x.shape[0]} steps", compare(expected, actual, names, tolerance), tolerance)


def _verify_split(args: argparse.Namespace, artifact) -> int:
    """``verify --data-dir``: every sample of a dataset split, with a summary."""
    from delaydeploy.verify import native_backend, oracle_backend, split_of, verify_split

    if args.input is not None or args.samples is not None:
        raise DelayDeployError("--data-dir checks a dataset split: give it without --input or --samples")
    backend = args.backend or native_backend(artifact)
    split = args.split or "test"
    dataset = split_of(artifact, args.data_dir, split, preset=args.preset, test_speakers=args.test_speakers,
                       max_samples=args.max_samples)
    tolerance = _readout_tolerance(oracle_backend(artifact, backend), args.tolerance)
    result = verify_split(artifact, backend, dataset, batch_size=args.batch_size, workers=args.workers,
                          tolerance=tolerance, progress=not args.quiet)
    mismatches = sum(result.spike_mismatches.values())
    print(f"{args.artifact}: {backend} vs {oracle_backend(artifact, backend)} on every sample of the {split} "
          f"split: {result.samples} samples, {result.spikes_compared} neuron-steps compared, {mismatches} spike "
          f"mismatches ({', '.join(f'{k} {v}' for k, v in result.spike_mismatches.items())}), readout max "
          f"|difference| {result.readout_max_error:.3g} (tolerance {tolerance:g})")
    print(f"  accuracy: {backend} {100 * result.correct / max(result.samples, 1):.2f}%, oracle "
          f"{100 * result.oracle_correct / max(result.samples, 1):.2f}% ({result.samples} samples)")
    if not result.ok:
        print(f"FAILED: {result.first_divergence} (sample counted in the split)")
        return EXIT_MISMATCH
    print(f"verified: 0 spike mismatches on all {result.samples} samples, readout within tolerance")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from delaydeploy.artifacts import load_artifact
    from delaydeploy.export import export
    from delaydeploy.verify import check_input

    artifact = load_artifact(args.artifact)
    inputs = check_input(artifact, _inputs(args, artifact))
    path = export(artifact, args.target, args.output, inputs, sign_key=args.sign)
    print(f"exported {args.artifact} to {args.target}: {path}{' (signed)' if args.sign else ''}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from delaydeploy.artifacts import load_artifact
    from delaydeploy.inspect import describe

    print(describe(load_artifact(args.artifact)))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from delaydeploy.finetune import finetune_checkpoint

    finetune_checkpoint(args.model, args.output, target=args.target, data_dir=args.data_dir,
                        test_speakers=args.test_speakers, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, max_samples=args.max_samples, seed=args.seed,
                        progress=not args.quiet)
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from delaydeploy.adapt import adapt_checkpoint

    adapt_checkpoint(args.model, args.output, data_dir=args.data_dir, test_speakers=args.test_speakers,
                     samples=args.samples, seed=args.seed, max_samples=args.max_samples, progress=not args.quiet)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from delaydeploy.report import build_report, format_ladder

    report = build_report(args.model, args.output, data_dir=args.data_dir, lava_samples=args.lava_samples,
                          workers=args.workers, max_samples=args.max_samples, test_speakers=args.test_speakers,
                          progress=not args.quiet)
    print(format_ladder(report))
    print(f"wrote {args.output} (report.json, report.md, plots)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from delaydeploy.demo import run_demo

    return run_demo(Path(args.output), epochs=args.epochs, progress=not args.quiet)


def at_least(minimum: int):
    """argparse type: an integer ``>= minimum``."""

    def integer(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return integer


def finite_number(*, positive: bool):
    """argparse type: a finite float, ``> 0`` (``positive``) or ``>= 0``."""

    def number(text: str) -> float:
        value = float(text)
        if not np.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be a finite number {'> 0' if positive else '>= 0'}, got {text}")
        return value

    return number


# verify.BACKENDS, spelled out so that ``--help`` does not import torch (a test keeps them equal)
BACKENDS = ("reference", "torch", "nir", "lava-cpu", "nest", "brian2", "fixed-reference")


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--input", help="input array .npy, time first [T, B, C]")
    group.add_argument("--samples", type=at_least(1), help="number of random test inputs")
    parser.add_argument("--steps", type=at_least(1), default=50, help="time steps of random inputs (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random inputs")


def _add_workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=at_least(1),
                        help="Lava runs in parallel, each on a share of the samples (default: one per two cores)")


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def count_or_all(text: str) -> int | str:
    """A ``--lava-samples`` value: a count >= 0 or ``all``."""
    return "all" if text == "all" else at_least(0)(text)


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="dataset folder (not needed for synthetic)")
    parser.add_argument("--max-samples", type=at_least(1),
                        help="use at most this many samples of each split (quick runs)")
    parser.add_argument("--test-speakers", metavar="NAME[,NAME]",
                        help="FSDD: test on every recording of these speakers, train on the others "
                             "(default: the split the checkpoint was trained with; for train, the official split)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("delaydeploy")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delaydeploy",
        description="Train spiking networks with learned synaptic delays and deploy them, verified spike for "
                    "spike, to NIR, Lava, Loihi 2, and through PyNN to NEST and SpiNNaker.",
        epilog="ARTIFACT is a checkpoint (.pt), an IR file (.ddn), a NIR file (.nir) or a bundle folder. Bad input "
               "exits with code 2 and one 'error:' line; verify and compare exit 1 when they find a disagreement.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a delay network from a preset")
    train.add_argument("--preset", choices=PRESET_NAMES, default="synthetic")
    train.add_argument("-o", "--output", default="model.pt")
    train.add_argument("--epochs", type=at_least(1))
    train.add_argument("--batch-size", type=at_least(1))
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    train.add_argument("--seed", type=int)
    train.add_argument("--delays", choices=("learned", "fixed", "none"), help="ablation: delay mode")
    train.add_argument("--hidden", type=at_least(1), help="neurons per hidden layer, if not the preset's")
    train.add_argument("--layers", type=at_least(1), help="number of hidden layers, if not the preset's")
    train.add_argument("--sparsity", type=fraction, metavar="P",
                       help="prune this fraction of the feedforward synapses (a fixed seeded mask, the DCLS "
                            "authors' sparsity_p); 0.9 keeps about a tenth")
    train.add_argument("--delay-granularity", choices=("synaptic", "axonal", "dendritic"),
                       help="one learned delay per synapse (DCLS, the default), per presynaptic neuron (axonal) "
                            "or per postsynaptic neuron (dendritic)")
    _add_dataset_options(train)
    train.set_defaults(handler=cmd_train)

    imp = commands.add_parser("import", help="import an official checkpoint (raw state_dict)")
    imp.add_argument("source", choices=("snn-delays", "delrec"))
    imp.add_argument("state", help="the authors' state_dict file (.pt)")
    imp.add_argument("--preset", choices=("shd", "shd_equiparam", "ssc", "gsc"), required=True,
                     help="the recipe the model was trained with (DelRec: shd, shd_equiparam or ssc)")
    imp.add_argument("--hidden", type=at_least(1), help="hidden layer size, if not the preset's")
    imp.add_argument("--layers", type=at_least(1), help="number of hidden layers, if not the preset's")
    imp.add_argument("-o", "--output", required=True)
    imp.set_defaults(handler=cmd_import)

    run = commands.add_parser("run", help="run a model on an input with the reference simulator")
    run.add_argument("artifact")
    run.add_argument("--input", required=True, help="input array .npy [T, B, C]")
    run.add_argument("--semantics", choices=("official", "streaming"))
    run.add_argument("--continuous", action="store_true", help="continuous (Gaussian) delays, not rounded")
    run.add_argument("-o", "--output", required=True)
    run.set_defaults(handler=cmd_run)

    export = commands.add_parser("export", help="export to NIR, a Lava, Loihi 2 or PyNN bundle, or lava-dl netx")
    export.add_argument("artifact")
    export.add_argument("--target", choices=("nir", "lava", "loihi2", "netx", "pynn"), required=True)
    export.add_argument("-o", "--output", required=True)
    export.add_argument("--sign", metavar="KEY.pem",
                        help="sign the bundle with this elliptic-curve private key (the sign extra)")
    _add_input_options(export)
    export.set_defaults(handler=cmd_export)

    sim = commands.add_parser("simulate", help="simulate an artifact on a backend")
    sim.add_argument("artifact")
    sim.add_argument("--backend", choices=BACKENDS)
    sim.add_argument("-o", "--output", required=True)
    _add_workers_option(sim)
    _add_input_options(sim)
    sim.set_defaults(handler=cmd_simulate)

    verify = commands.add_parser("verify", help="check an artifact spike for spike against the reference")
    verify.add_argument("artifact")
    verify.add_argument("--backend", choices=BACKENDS)
    verify.add_argument("--tolerance", type=finite_number(positive=False), default=1e-9,
                        help="readout tolerance (float64)")
    verify.add_argument("--trusted-key", metavar="PUB.pem",
                        help="refuse the bundle unless this public key signed it and no file changed since")
    _add_workers_option(verify)
    _add_input_options(verify)
    whole = verify.add_argument_group("a whole dataset split (instead of --input/--samples)")
    whole.add_argument("--data-dir", help="dataset folder: check every sample of --split")
    whole.add_argument("--split", choices=("test", "train"), help="which split (default: test)")
    whole.add_argument("--preset", choices=PRESET_NAMES,
                       help="whose dataset and options (a checkpoint knows its own; IR, NIR and bundles need it)")
    whole.add_argument("--test-speakers", metavar="NAME[,NAME]", help="FSDD: the speakers of the test split")
    whole.add_argument("--max-samples", type=at_least(1), help="only this many samples (quick checks)")
    whole.add_argument("--batch-size", type=at_least(1),
                       help="samples per backend run (default 64; on lava-cpu 1024, one compiled Lava run each)")
    whole.add_argument("--quiet", action="store_true", help="no progress bar")
    verify.set_defaults(handler=cmd_verify)

    check = commands.add_parser("compare", help="check results produced elsewhere (a chip, another simulator) "
                                                "against the reference on a bundle's test vectors")
    check.add_argument("artifact", help="the bundle the results were produced from (or any ARTIFACT with --input)")
    check.add_argument("results", help=".npz with spikes_<l> [T + tail, B, N_l] and readout [T + tail, B, classes], "
                                       "as run.py writes it")
    check.add_argument("--input", help="the input the results were produced from (default: the test vectors')")
    check.add_argument("--tolerance", type=finite_number(positive=False), default=1e-9,
                       help="readout tolerance (float64; integer readouts are compared exactly)")
    check.set_defaults(handler=cmd_compare)

    inspect = commands.add_parser("inspect", help="describe an artifact")
    inspect.add_argument("artifact")
    inspect.set_defaults(handler=cmd_inspect)

    finetune = commands.add_parser("finetune", help="quantisation-aware fine-tuning of a checkpoint for Loihi 2")
    finetune.add_argument("model", help="a delaydeploy checkpoint (.pt)")
    finetune.add_argument("--target", choices=("loihi2",), default="loihi2")
    finetune.add_argument("--epochs", type=at_least(1), default=5)
    finetune.add_argument("--batch-size", type=at_least(1), help="default: the checkpoint's training batch size")
    finetune.add_argument("--lr", type=finite_number(positive=True), default=1e-4,
                          help="Adam learning rate (cosine schedule)")
    finetune.add_argument("--seed", type=int, default=0)
    _add_dataset_options(finetune)
    finetune.add_argument("-o", "--output", required=True)
    finetune.set_defaults(handler=cmd_finetune)

    adapt = commands.add_parser("adapt", help="adapt a checkpoint's BatchNorm statistics to unlabeled test data "
                                              "(a new speaker); export the result as it is")
    adapt.add_argument("model", help="a trained delaydeploy checkpoint (.pt) with BatchNorm")
    adapt.add_argument("--samples", type=at_least(1),
                       help="adapt on this many test samples, drawn with --seed (default: the whole test split)")
    adapt.add_argument("--seed", type=int, default=0)
    _add_dataset_options(adapt)
    adapt.add_argument("-o", "--output", required=True)
    adapt.set_defaults(handler=cmd_adapt)

    report = commands.add_parser("report", help="accuracy ladder, cost and plots of a checkpoint on its test set")
    report.add_argument("model", help="a delaydeploy checkpoint (.pt)")
    report.add_argument("--lava-samples", type=count_or_all, default=16,
                        help="test samples run on Lava (0: none, all: the whole test split)")
    _add_workers_option(report)
    _add_dataset_options(report)
    report.add_argument("-o", "--output", required=True, help="report directory")
    report.set_defaults(handler=cmd_report)

    demo = commands.add_parser("demo", help="the main job: train on the synthetic task, export, verify")
    demo.add_argument("-o", "--output", default="out/demo")
    demo.add_argument("--epochs", type=at_least(1))
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)  # --help and --version print and exit here
            return args.handler(args)
        finally:
            sys.stdout.flush()  # here, not at exit: a reader gone before the last buffered line is caught below
    except DelayDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``delaydeploy inspect m.pt | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
