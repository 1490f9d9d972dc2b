"""Compiled CPU kernels: the C sources in ``delaydeploy/csrc``, built on first use, loaded with ctypes.

The kernels are short portable C with no Python or torch headers, so any C compiler builds
them in well under a second and there is no binary wheel to match to the machine (on x86-64
the code picks its AVX2 or baseline version when loaded). They are built with OpenMP where
the compiler has it: the library then shares torch's OpenMP runtime (``libgomp.so.1``,
already loaded by torch) and its threads, so it follows ``torch.set_num_threads`` and does
not fight torch's idle workers for the cores; without OpenMP they run on one thread. The shared library is cached per
source, compiler and platform in ``$DELAYDEPLOY_CACHE`` (default
``$XDG_CACHE_HOME/delaydeploy`` or ``~/.cache/delaydeploy``); processes that build at the
same time each write a temporary file and rename it into place. Without a working compiler
(``$CC``, default ``cc``) :func:`delayed_product` warns once and returns ``None``, and the
caller keeps its pure-torch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch

SOURCE = Path(__file__).parent / "csrc" / "delayed_product.c"
FLAGS = ("-O3", "-shared", "-fPIC")
THREADED = ("-fopenmp",)
SUFFIXES = {torch.float32: "f32", torch.float64: "f64"}


def cache_dir() -> Path:
    """Where built libraries go: ``$DELAYDEPLOY_CACHE``, else the user's cache folder."""
    if os.environ.get("DELAYDEPLOY_CACHE"):
        return Path(os.environ["DELAYDEPLOY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "delaydeploy"


def build(source: Path, compiler: str, flags: tuple[str, ...] = FLAGS) -> Path:
    """The shared library of ``source``, compiled now unless cached; raises on failure.

    The cache key covers every C source and header beside ``source``, the command and the platform.
    """
    command = [*shlex.split(compiler), *flags]
    key = hashlib.sha256(repr((command, platform.machine(), platform.system())).encode())
    for path in sorted(source.parent.glob("*.[ch]")):
        key.update(path.name.encode() + path.read_bytes())
    target = cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{source.stem}-", suffix=".so")
    os.close(handle)
    try:
        subprocess.run([*command, "-o", temporary, str(source)], check=True, capture_output=True, text=True,
                       timeout=300)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    compiler = os.environ.get("CC", "cc")
    try:
        try:
            path = build(SOURCE, compiler, FLAGS + THREADED)
        except subprocess.CalledProcessError:  # no OpenMP (e.g. Apple clang): one thread
            path = build(SOURCE, compiler)
        library = ctypes.CDLL(str(path))
    except subprocess.CalledProcessError as error:
        reason = (error.stderr or "").strip().splitlines()[-1:] or [f"exit code {error.returncode}"]
        _warn_fallback(f"{compiler!r} failed on {SOURCE}: {reason[0]}")
        return None
    except (OSError, subprocess.SubprocessError) as error:
        _warn_fallback(f"cannot build {SOURCE} with {compiler!r}: {error}")
        return None
    for suffix in SUFFIXES.values():
        for name, counts in (("delayed_product", 5), ("delayed_correlation", 4)):
            kernel = getattr(library, f"{name}_{suffix}")
            kernel.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * counts
            kernel.restype = ctypes.c_int
    return library


def _warn_fallback(reason: str) -> None:
    warnings.warn(f"{reason}; rounded-delay products fall back to the slower pure-torch path", RuntimeWarning,
                  stacklevel=3)


def delayed_product(dtype: torch.dtype) -> Callable[..., int] | None:
    """The compiled delayed product for ``dtype``, or ``None`` (no kernel for it, or no compiler).

    It takes ``(x, weights, delays, out, steps, batch, inputs, outputs, advance)``: pointers
    to contiguous ``x[steps, batch, inputs]``, ``weights[outputs, inputs]``, int64
    ``delays[outputs, inputs]`` (``>= 0``) and ``out[steps, batch, outputs]``, and fills
    ``out[t] = sum W x[t - D]`` (``advance`` 0) or ``sum W x[t + D]`` (1, the input gradient's
    form). It returns 0, or -1 when out of memory (see ``csrc/delayed_product.c``), and
    releases the GIL. Its working memory is kept per thread between calls (a 512 x 512 layer
    of 160 steps: about 6 MB per thread), so that calls do not pay for fresh pages.
    """
    return _kernel("delayed_product", dtype)


def delayed_correlation(dtype: torch.dtype) -> Callable[..., int] | None:
    """The compiled weight gradient of the delayed product for ``dtype``, or ``None``.

    It takes ``(x, grad, delays, grad_weights, steps, batch, inputs, outputs)``: pointers to
    contiguous ``x[steps, batch, inputs]``, ``grad[steps, batch, outputs]``, int64
    ``delays[outputs, inputs]`` and ``grad_weights[outputs, inputs]``, which it fills with
    ``sum_{t, b} grad[t, b, o] x[t - D[o, i], b, i]``; it returns 0, or -1 when out of memory.
    """
    return _kernel("delayed_correlation", dtype)


def _kernel(name: str, dtype: torch.dtype) -> Callable[..., int] | None:
    library = _library() if dtype in SUFFIXES else None
    return None if library is None else getattr(library, f"{name}_{SUFFIXES[dtype]}")
