"""``python -m benchmarks [NAME ...]``: run the benchmarks and print one JSON object on stdout.

Each benchmark module exposes ``run() -> dict``; its keys go to the top level of the output
(they are unique across modules). Progress goes to stderr so stdout stays machine-readable.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time

import torch

MODULES = ("training_bench", "lava_bench")


def main(names: list[str]) -> None:
    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
    }
    for name in names or MODULES:
        start = time.perf_counter()
        print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        results.update(importlib.import_module(f"benchmarks.{name}").run())
        print(f"benchmark {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
