"""Compiled CPU kernels: the C sources in ``delaydeploy/csrc``, built on first use, loaded with ctypes.

Two libraries: ``delayed_product.c`` (the rounded-delay product of training and the
reference, and its gradients) and ``ring_synapses.c`` (one step of the fast Lava ``DelayDense``
models). The kernels are short portable C with no Python or torch headers, so any C compiler builds
them in well under a second and there is no binary wheel to match to the machine (on x86-64
the product picks its AVX2 or baseline version when loaded). The product is built with OpenMP where
the compiler has it: the library then shares torch's OpenMP runtime (``libgomp.so.1``,
already loaded by torch) and its threads, so it follows ``torch.set_num_threads`` and does
not fight torch's idle workers for the cores; without OpenMP they run on one thread. The shared library is cached per
source, compiler and platform in ``$DELAYDEPLOY_CACHE`` (default
``$XDG_CACHE_HOME/delaydeploy`` or ``~/.cache/delaydeploy``); processes that build at the
same time each write a temporary file and rename it into place. Without a working compiler
(``$CC``, default ``cc``) :func:`delayed_product` and :func:`ring_step` warn once and
return ``None``, and the caller keeps its pure-torch (or scipy) path.
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
from collections.abc import Callable
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "delayed_product.c"
RING_SOURCE = Path(__file__).parent / "csrc" / "ring_synapses.c"
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


def _load(source: Path, flag_choices: tuple[tuple[str, ...], ...], fallback: str) -> ctypes.CDLL | None:
    """``source`` built with the first flags that compile and loaded, or ``None`` with a warning
    that ``fallback`` is used instead."""
    compiler = os.environ.get("CC", "cc")
    try:
        for flags in flag_choices[:-1]:
            try:
                return ctypes.CDLL(str(build(source, compiler, flags)))
            except subprocess.CalledProcessError:
                continue
        return ctypes.CDLL(str(build(source, compiler, flag_choices[-1])))
    except subprocess.CalledProcessError as error:
        reason = (error.stderr or "").strip().splitlines()[-1:] or [f"exit code {error.returncode}"]
        _warn_fallback(f"{compiler!r} failed on {source}: {reason[0]}", fallback)
    except (OSError, subprocess.SubprocessError) as error:
        _warn_fallback(f"cannot build {source} with {compiler!r}: {error}", fallback)
    return None


@functools.cache
def _library() -> ctypes.CDLL | None:
    library = _load(SOURCE, (FLAGS + THREADED, FLAGS),  # without OpenMP (e.g. Apple clang): one thread
                    "rounded-delay products fall back to the slower pure-torch path")
    if library is None:
        return None
    for suffix in SUFFIXES.values():
        for name, counts in (("delayed_product", 5), ("delayed_correlation", 4)):
            kernel = getattr(library, f"{name}_{suffix}")
            kernel.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * counts
            kernel.restype = ctypes.c_int
    return library


@functools.cache
def ring_step(integer: bool) -> Callable[..., None] | None:
    """The compiled step of ring-buffer delay synapses (``csrc/ring_synapses.c``), float64 or
    int64 (``integer``), or ``None`` without a compiler (the Lava models then use scipy).

    Float: ``(lanes, inputs, width, slots, head, x, indptr, columns, weights, scratch, buffer)``;
    integer: the same with ``shift`` before ``scratch`` and an int32 ``buffer``. Pointers are to
    contiguous arrays: ``x[lanes, inputs]`` and ``weights`` of the kernel's type, int64
    ``indptr``/``columns``, ``scratch[lanes, width]`` (zero) of the kernel's type.
    """
    library = _load(RING_SOURCE, (FLAGS,), "the fast Lava DelayDense models fall back to scipy's sparse product")
    if library is None:
        return None
    kernel = library.ring_step_i64 if integer else library.ring_step_f64
    shift = [ctypes.c_int64] if integer else []
    kernel.argtypes = [ctypes.c_int64] * 5 + [ctypes.c_void_p] * 4 + shift + [ctypes.c_void_p] * 2
    kernel.restype = None
    return kernel


def _warn_fallback(reason: str, fallback: str) -> None:
    warnings.warn(f"{reason}; {fallback}", RuntimeWarning, stacklevel=4)


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
