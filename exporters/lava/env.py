"""Lava, where it is installed: import it safely, and say clearly what to install where it is not.

Lava 0.10.0 (archived) installs only on Python 3.10 with numpy < 2, so it is an extra
(``pip install 'delaydeploy[lava]'``): everything that does not run Lava works without it.

Lava 0.10.0 calls ``multiprocessing.set_start_method('fork')`` while it is being imported,
which raises once anything has fixed the start method (tqdm does, when it creates its lock).
Lava needs ``fork`` (Linux's default), so this module performs that first import with the
start method forced to what Lava asks for. Import it before any ``lava`` module.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys

from delaydeploy.errors import DelayDeployError


def lava_installed() -> bool:
    """Whether Lava (lava-nc) can be imported here."""
    return importlib.util.find_spec("lava") is not None and importlib.util.find_spec("lava.magma") is not None


def lava_missing() -> str | None:
    """What to install for Lava, where it is missing; None where it is installed."""
    if lava_installed():
        return None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (f"pip install 'delaydeploy[lava]' on Python 3.10 (lava-nc 0.10.0 installs on no other version; "
            f"this is Python {version})")


def require_lava(what: str) -> None:
    """Raise :class:`DelayDeployError` naming the extra and the Python that ``what`` needs, if Lava is missing."""
    missing = lava_missing()
    if missing is not None:
        raise DelayDeployError(f"{what} needs Lava: {missing}")


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


if lava_installed():
    _import_lava_runtime()
