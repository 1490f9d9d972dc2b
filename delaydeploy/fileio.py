"""Atomic file and directory writes: a failed command never leaves half-written output.

Output paths are checked before anything is written (commands call the checks up front, so
that a bad ``-o`` fails before hours of training, not after): a file is never written over a
directory, and a directory is only replaced when it is empty or one this tool wrote (it holds
the given marker file), so that ``-o`` pointed at the wrong folder cannot delete its
contents. Outputs get the usual permissions (``0666``/``0777`` less the umask), not the
private ones of temporary files: bundles are meant to be handed on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from delaydeploy.errors import DelayDeployError


def _check_parent(target: Path) -> None:
    """The nearest existing ancestor of ``target`` must be a writable directory."""
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DelayDeployError(f"{target}: cannot write here, {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DelayDeployError(f"{target}: cannot write here, {ancestor} is not writable")


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` as a file to write: refused if it is a directory or its folder cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise DelayDeployError(f"{target}: is a directory; give a file name")
    _check_parent(target)
    return target


def check_output_directory(path: str | os.PathLike, marker: str) -> Path:
    """``path`` as a directory to (re)write: missing, empty, or holding ``marker`` (ours)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise DelayDeployError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise DelayDeployError(f"{target}: exists and holds files that are not ours (no {marker}); "
                               "refusing to replace it: choose a new path or remove it")
    _check_parent(target)
    return target


def _usual_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DelayDeployError(f"{target}: cannot create its folder ({error.strerror})") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it onto ``path`` on success.

    The temporary file sits in the same directory so the final rename is atomic.
    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    target = check_output_file(path)
    _make_parent(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _usual_mode(0o666))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; move it onto ``path`` on success.

    ``path`` must pass :func:`check_output_directory` with ``marker``, a file the finished
    directory holds. An existing directory is replaced only once the new one is complete.
    """
    target = check_output_directory(path, marker)
    _make_parent(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, _usual_mode(0o777))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
