"""``python -m benchmarks [NAME ...]``: run the benchmarks and print one JSON object on stdout.

Each benchmark module exposes ``run() -> dict``; its keys go to the top level of the output
(they are unique across modules). Each module runs in a fresh interpreter, so no benchmark
inherits another's thread pools, caches or allocator state (Lava's stock synapse ran twice
as fast after the training benchmark as on its own). Progress goes to stderr so stdout
stays machine-readable.
"""

from __future__ import annotations

import json
import platform
import subprocess
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
        code = f"import json, benchmarks.{name} as module; print(json.dumps(module.run()))"
        completed = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True)
        results.update(json.loads(completed.stdout.strip().splitlines()[-1]))
        print(f"benchmark {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
