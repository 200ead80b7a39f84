"""Shared pytest set-up: runs serially and under ``mpirun -n N python -m mpi4py -m pytest``.

After every test all ranks collect garbage (so PETSc objects are destroyed collectively, in the
same order on every rank) and meet at a barrier.  On ranks other than 0 the terminal report is
silenced; their failures are still written to stderr, prefixed with the rank.
"""

from __future__ import annotations

import gc
import os
import sys

import pytest
from mpi4py import MPI


@pytest.fixture(autouse=True)
def _collect_and_sync():
    yield
    gc.collect()
    MPI.COMM_WORLD.barrier()


@pytest.fixture
def comm() -> MPI.Comm:
    return MPI.COMM_WORLD


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    rank = MPI.COMM_WORLD.rank
    if rank > 0:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    rank = MPI.COMM_WORLD.rank
    if rank > 0 and report.failed:
        sys.stderr.write(f"[rank {rank}] FAILED {report.nodeid} ({report.when})\n")
        sys.stderr.write(f"{report.longreprtext}\n")
        sys.stderr.flush()


def pytest_report_header(config: pytest.Config) -> list[str]:
    import dolfinx

    return [
        f"dolfinx {dolfinx.__version__}, MPI ranks {MPI.COMM_WORLD.size}, "
        f"flavour {os.environ.get('MULTISCALE_FLAVOUR', 'host')}"
    ]
