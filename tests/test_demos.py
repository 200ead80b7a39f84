"""Every demo runs, serially and under ``mpirun -n 2``, in its shrunken CI size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMOS = sorted((Path(__file__).resolve().parents[1] / "demos").glob("demo_*.py"))


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment without the MPI runtime variables of this (singleton) process, so that a
    child ``mpirun`` starts a job of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_COMM", "OMPI_MCA_orte", "PMIX_", "PRTE_", "OMPI_FILE"))
    }
    env["CI"] = "true"
    env["MPLBACKEND"] = "Agg"
    env["MULTISCALE_RESULTS"] = str(tmp_path)
    return env


@pytest.mark.serial_only
@pytest.mark.slow
@pytest.mark.parametrize("nranks", [1, 2])
@pytest.mark.parametrize("demo", DEMOS, ids=[d.stem for d in DEMOS])
def test_demo_runs(demo: Path, nranks: int, tmp_path: Path):
    cmd = [sys.executable, str(demo)]
    if nranks > 1:
        cmd = ["mpirun", "-n", str(nranks), "--oversubscribe", *cmd]
    proc = subprocess.run(
        cmd, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert proc.returncode == 0, f"{demo.name} failed:\n{proc.stdout}\n{proc.stderr}"
