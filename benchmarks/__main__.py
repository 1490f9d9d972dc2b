"""``python -m benchmarks [NAME ...]``: run the benchmarks and print one JSON object on stdout.

Each benchmark module exposes ``run() -> dict``; its keys go to the top level of the output
(they are unique across modules). Each module runs in a fresh interpreter, so no benchmark
inherits another's thread pools, caches or allocator state (Lava's stock synapse ran twice
as fast after the training benchmark as on its own). Progress goes to stderr so stdout
stays machine-readable.

glibc's allocator returns a freed block of a few MB to the system, or keeps it, depending on
the sizes it has seen so far, and a returned block costs a page fault per 4 KiB when it is
next used: one run of the same network measured 0 or 3,000 faults per call, 10-15 % of
its time. The interpreters therefore run with :data:`ALLOCATOR` (unless already set), which
keeps freed memory for reuse, as jemalloc or tcmalloc would; the output records it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import torch

MODULES = ("training_bench", "lava_bench")
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}


def main(names: list[str]) -> None:
    environment = {**ALLOCATOR, **os.environ}
    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "allocator": {name: environment[name] for name in ALLOCATOR}},
    }
    for name in names or MODULES:
        start = time.perf_counter()
        print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        code = f"import json, benchmarks.{name} as module; print(json.dumps(module.run()))"
        completed = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True,
                                   env=environment)
        results.update(json.loads(completed.stdout.strip().splitlines()[-1]))
        print(f"benchmark {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
