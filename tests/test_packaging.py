"""What a user installs: a wheel and an sdist built from the repository, one top-level package
(``delaydeploy``) with the files it needs, and the README's quickstart run verbatim in a fresh
virtual environment outside the repository, where only that wheel was installed.

The fresh environment uses Python 3.11 and ``torch==2.13.0``: the one torch build this machine
keeps on disk for the CPU (any other is a download of several GB), installed before the wheel so
that the wheel's ``torch>=2.1`` is already met. The rest comes from the package index, as for a
user. The tutorial, which needs Lava and NEST, runs in ``test_tutorial.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
FRESH_PYTHON = "3.11"
CPU_TORCH = "torch==2.13.0"


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **options)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """``python -m build``: the sdist, then the wheel built from that sdist (so both are checked)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPOSITORY)], timeout=900)
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_the_wheel_installs_delaydeploy_alone_with_its_data_files(dist):
    with zipfile.ZipFile(_one(dist, "delaydeploy-*.whl")) as wheel:
        names = wheel.namelist()
        top_level = next(name for name in names if name.endswith(".dist-info/top_level.txt"))
        assert wheel.read(top_level).decode().split() == ["delaydeploy"]
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"delaydeploy"}
    for needed in ("delaydeploy/exporters/pynn/run.py", "delaydeploy/exporters/lava/processes.py",
                   "delaydeploy/exporters/nir.py", "delaydeploy/csrc/delayed_product.c",
                   "delaydeploy/csrc/delayed_product_body.h", "delaydeploy/csrc/ring_synapses.c",
                   "delaydeploy/datasets/fsdd.py"):
        assert needed in names, needed
    assert not [name for name in names if name.startswith(("exporters/", "tests/", "docs/"))]


def test_the_sdist_holds_the_repository_layout(dist):
    with tarfile.open(_one(dist, "delaydeploy-*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE", "exporters/pynn/run.py", "delaydeploy/csrc/ring_synapses.c",
            "delaydeploy/__init__.py"} <= names


def _fresh_python() -> str:
    """The path of a Python ``FRESH_PYTHON`` (pyenv's, where pyenv pins another version here)."""
    environment = dict(os.environ)
    if shutil.which("pyenv"):
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        environment["PYENV_VERSION"] = ":".join(versions)
    command = f"python{FRESH_PYTHON}"
    done = _run([command, "-c", "import sys; print(sys.executable)"], env=environment, cwd="/")
    return done.stdout.strip()


def _quickstart(readme: str) -> tuple[list[str], list[str]]:
    """The README's quickstart: its shell commands and its Python blocks, verbatim."""
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    shell = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    python = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(shell) == 1 and python, "the quickstart has one shell block and Python blocks"
    commands = [line.split("  #")[0].strip() for line in shell[0].splitlines() if line.strip()]
    return commands, python


def test_the_readme_quickstart_runs_verbatim_where_only_the_wheel_is_installed(dist, tmp_path):
    environment_dir = tmp_path / "venv"
    _run([_fresh_python(), "-m", "venv", str(environment_dir)], timeout=300)
    python = environment_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", CPU_TORCH], timeout=1200)
    _run([str(python), "-m", "pip", "install", "--quiet", str(_one(dist, "delaydeploy-*.whl"))], timeout=1200)
    work = tmp_path / "work"
    work.mkdir()
    environment = {**os.environ, "PATH": f"{environment_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
                   "MPLBACKEND": "Agg"}
    environment.pop("PYTHONPATH", None)
    located = _run([str(python), "-c", "import delaydeploy, importlib.util as u; print(delaydeploy.__file__); "
                                       "print(u.find_spec('exporters'))"], cwd=work, env=environment)
    assert located.stdout.split() == [str(next((environment_dir / "lib").glob("python*/site-packages"))
                                          / "delaydeploy" / "__init__.py"), "None"]
    commands, blocks = _quickstart((REPOSITORY / "README.md").read_text())
    for command in commands:
        done = _run(["bash", "-c", command], cwd=work, env=environment, timeout=900)
        if command.startswith("delaydeploy verify") or command.startswith("delaydeploy compare"):
            assert "verified: 0 spike mismatches" in done.stdout, done.stdout
    for block in blocks:
        done = _run([str(python), "-c", block], cwd=work, env=environment, timeout=900)
    assert "NIR file agrees spike for spike: True" in done.stdout
