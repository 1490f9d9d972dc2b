"""``python -m benchmarks [NAME ...] [-o FILE]``: run the benchmarks, print or write one JSON object.

NAME is one of :data:`MODULES` (default: all). Each benchmark module exposes ``run() -> dict``;
its keys go to the top level of the output, next to ``machine`` (``python``, ``torch``,
``cpu_threads``, ``cuda``: the GPU's name or null, ``allocator``: the settings below); the
modules' docstrings name their keys. Each module runs in a fresh interpreter, so no benchmark
inherits another's thread pools, caches or allocator state (Lava's stock synapse ran twice
as fast after the training benchmark as on its own). Progress goes to stderr so stdout
stays machine-readable; ``-o`` writes the file only once every benchmark has finished.

glibc's allocator returns a freed block of a few MB to the system, or keeps it, depending on
the sizes it has seen so far, and a returned block costs a page fault per 4 KiB when it is
next used: one run of the same network measured 0 or 3,000 faults per call, 10-15 % of
its time. The interpreters therefore run with :data:`ALLOCATOR` (unless already set), which
keeps freed memory for reuse, as jemalloc or tcmalloc would; the output records it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from delaydeploy.cli import EXIT_USAGE
from delaydeploy.errors import DelayDeployError
from delaydeploy.fileio import atomic_path, check_output_file

MODULES = ("training_bench", "lava_bench", "nest_bench", "brian2_bench")
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}
EXIT_FAILED = 1


class BenchmarkFailed(Exception):
    """A benchmark's interpreter exited with an error (its traceback is on stderr)."""


def machine(environment: dict[str, str]) -> dict[str, object]:
    """What the numbers were measured on: versions, threads, GPU and allocator settings."""
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "allocator": {name: environment[name] for name in ALLOCATOR}}


def run_module(name: str, environment: dict[str, str]) -> dict[str, object]:
    """``benchmarks.<name>.run()`` in a fresh interpreter; its output goes to stderr, its result through a file."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        code = (f"import json, sys, benchmarks.{name} as module; "
                "open(sys.argv[1], 'w').write(json.dumps(module.run()))")
        completed = subprocess.run([sys.executable, "-c", code, str(result)], stdout=sys.stderr, env=environment)
        if completed.returncode != 0:
            raise BenchmarkFailed(f"benchmark {name} failed (exit code {completed.returncode}; see above)")
        return json.loads(result.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="run the speed benchmarks; print or write one JSON object")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(MODULES)} (default: all)")
    parser.add_argument("-o", "--output", help="write the JSON to this file instead of stdout")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(map(repr, unknown))} (choose from {', '.join(MODULES)})")
    environment = {**ALLOCATOR, **os.environ}
    try:
        if args.output is not None:
            check_output_file(args.output)  # before the benchmarks, not after
        results: dict[str, object] = {"machine": machine(environment)}
        for name in dict.fromkeys(args.names or MODULES):
            start = time.perf_counter()
            print(f"benchmark {name} ...", file=sys.stderr, flush=True)
            measured = run_module(name, environment)
            clash = sorted(results.keys() & measured.keys())
            if clash:
                raise BenchmarkFailed(f"benchmark {name}: key {', '.join(clash)} is already in the output")
            results.update(measured)
            print(f"benchmark {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        text = json.dumps(results, indent=2) + "\n"
        if args.output is None:
            sys.stdout.write(text)
            return 0
        with atomic_path(args.output) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    except DelayDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BenchmarkFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
