"""Shared pytest set-up: runs serially and under ``mpirun -n N python -m mpi4py -m pytest``.

After every test all ranks collect garbage and free the parallel PETSc objects it released
together (:func:`multiscale.nonlinear.free_garbage`), then meet at a barrier.  On ranks other
than 0 the terminal report is silenced; their failures are still written to stderr, prefixed
with the rank.

A watchdog outside the interpreter (``faulthandler``) ends a test that runs longer than
``MULTISCALE_TEST_WATCHDOG`` seconds (default 660): it prints the Python stack of every thread
and exits the process, so that ``mpirun`` ends the job.  pytest-timeout (600 s, see
``pyproject.toml``) cannot do this for a rank stuck in a collective inside PETSc, which holds
the interpreter lock: without the watchdog a deadlock would stall the run until CI gives up,
with nothing printed.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile

import pytest
from mpi4py import MPI

import multiscale  # noqa: F401  (before NumPy: one BLAS thread per rank, see multiscale.threads)
from multiscale.nonlinear import free_garbage

WATCHDOG_SECONDS = float(os.environ.get("MULTISCALE_TEST_WATCHDOG", "660"))
_watchdog_fd: list[int] = []  # a copy of the real stderr, taken while capture is suspended


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Arm the watchdog for the test's set-up, call and teardown."""
    armed = WATCHDOG_SECONDS > 0 and bool(_watchdog_fd)
    if armed:
        faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=_watchdog_fd[0])
    try:
        yield
    finally:
        if armed:
            faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if outcome.get_result().failed:
        item._multiscale_failed = True  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _collect_and_sync(request: pytest.FixtureRequest):
    """After each test: collect garbage on all ranks and agree on the outcome.

    The allreduce doubles as the barrier.  A test that failed on some ranks but not on others
    leaves the ranks at different collectives, which would hang the run, so it is aborted here
    with a message instead.
    """
    yield
    world = MPI.COMM_WORLD
    free_garbage(world)
    failed = world.allreduce(int(getattr(request.node, "_multiscale_failed", False)), op=MPI.SUM)
    if 0 < failed < world.size:
        sys.stderr.write(
            f"[rank {world.rank}] {request.node.nodeid} failed on {failed} of {world.size} "
            "ranks: aborting the run rather than letting the other ranks wait forever\n"
        )
        sys.stderr.flush()
        world.Abort(1)


@pytest.fixture(autouse=True)
def _reset_cli_logging():
    """Undo what ``multiscale.cli.main`` does to logging (its own stderr handler, no
    propagation), so that tests after a CLI test still capture the package's log records."""
    yield
    import logging

    logger = logging.getLogger("multiscale")
    for handler in list(logger.handlers):
        if getattr(handler, "_multiscale_cli", False):
            logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def comm() -> MPI.Comm:
    return MPI.COMM_WORLD


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Under MPI, give each rank a base temporary directory of its own, so that the ranks do not
    clean up each other's folders; tests that need one path on all ranks broadcast rank 0's."""
    world = MPI.COMM_WORLD
    if world.size > 1 and config.option.basetemp is None:
        tag = world.bcast(os.getpid(), root=0)
        parent = os.path.join(tempfile.gettempdir(), f"pytest-multiscale-{tag}")
        os.makedirs(parent, exist_ok=True)
        config.option.basetemp = os.path.join(parent, f"rank{world.rank}")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _watchdog_fd:
        _watchdog_fd.append(os.dup(sys.__stderr__.fileno()))
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
