"""Import Lava safely, whatever ran before it in the process.

Lava 0.10.0 calls ``multiprocessing.set_start_method('fork')`` while it is being imported,
which raises once anything has fixed the start method (tqdm does, when it creates its lock).
Lava needs ``fork`` (Linux's default), so this module performs that first import with the
start method forced to what Lava asks for. Import it before any ``lava`` module.
"""

from __future__ import annotations

import multiprocessing


def _import_lava_runtime() -> None:
    current = multiprocessing.get_start_method(allow_none=True)
    if current not in (None, "fork"):
        raise RuntimeError(f"Lava needs the 'fork' multiprocessing start method, this process uses {current!r}")
    original = multiprocessing.set_start_method
    multiprocessing.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401  (sets the method)
    finally:
        multiprocessing.set_start_method = original


_import_lava_runtime()
