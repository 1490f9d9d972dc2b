"""Import spikingjelly (pinned 0.0.0.0.14) quietly and without lava-dl's slayer.

spikingjelly imports ``lava.lib.dl.slayer`` whenever lava-dl is installed (it is, for the
netx target), only for its own Lava backend, which delaydeploy never uses; that import costs
seconds and prints warnings. It also scripts functions with ``torch.jit`` at import time,
which recent torch versions warn about. Import this module before any spikingjelly module;
afterwards slayer imports normally (netx needs it).
"""

from __future__ import annotations

import sys
import warnings


def _import_spikingjelly() -> None:
    slayer = "lava.lib.dl.slayer"
    hidden = slayer not in sys.modules
    if hidden:
        # ``import lava.lib.dl.slayer`` raises ImportError, which spikingjelly catches (typeshed's
        # sys.modules leaves out the None that blocks an import)
        sys.modules[slayer] = None  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            import spikingjelly.activation_based.layer  # noqa: F401
            import spikingjelly.activation_based.neuron  # noqa: F401
            import spikingjelly.activation_based.surrogate  # noqa: F401
    finally:
        if hidden:
            del sys.modules[slayer]


_import_spikingjelly()
