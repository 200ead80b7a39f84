"""The environment: both ways in install the same package lists; the CLI answers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {
    "python3-dolfinx",
    "python3-dolfinx-mpc",
    "python3-gmsh",
    "python3-petsc4py",
    "python3-slepc4py",
    "python3-mpi4py",
    "openmpi-bin",
    "python3-scipy",
    "python3-pytest",
    "python3-matplotlib",
    "python3-yaml",
    "libopenblas0-pthread",
}


def _packages(flavour: str) -> set[str]:
    lines = (ROOT / "env" / f"{flavour}.txt").read_text().splitlines()
    return {w for line in lines if not line.lstrip().startswith("#") for w in line.split()}


@pytest.mark.parametrize("flavour", ["trixie", "sid"])
def test_package_lists_hold_the_stack(flavour):
    assert REQUIRED <= _packages(flavour)
    assert {"python3-rich", "python3-tqdm"} & _packages(flavour)


def test_flavours_install_the_same_packages():
    assert _packages("trixie") == _packages("sid")


def test_dockerfile_and_env_run_read_the_same_lists():
    docker = (ROOT / "Dockerfile").read_text()
    env_run = (ROOT / "scripts" / "env-run").read_text()
    assert "COPY env/ /opt/multiscale/env/" in docker
    assert re.search(r"/opt/multiscale/env/\$\{FLAVOUR\}\.txt", docker)
    assert re.search(r"ARG BASE=debian:trixie-slim", docker)
    assert "list=$repo/env/$flavour.txt" in env_run
    # Both strip comments the same way and install every listed package.
    assert "grep -v '^[[:space:]]*#'" in docker and "grep -v '^[[:space:]]*#'" in env_run


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nscripts/test\n" in readme
    assert "exec scripts/test" in ci
    assert "mpirun -n" in (ROOT / "scripts" / "test").read_text()


@pytest.mark.serial_only
def test_console_script_help_lists_subcommands():
    for cmd in (["multiscale", "--help"], [sys.executable, "-m", "multiscale.cli", "--help"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        for command in ("mesh", "homogenize", "demo"):
            assert command in proc.stdout


@pytest.mark.serial_only
def test_env_run_passes_exit_status_through():
    proc = subprocess.run([str(ROOT / "scripts" / "env-run"), "sh", "-c", "exit 7"])
    assert proc.returncode == 7
