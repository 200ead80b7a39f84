"""One BLAS/OpenMP thread per MPI rank unless the user says otherwise (multiscale.threads).

Under ``mpirun -n 2`` and ``-n 3`` the test process itself must run OpenBLAS with one thread
(asked from the library that NumPy loaded), and the rules are checked on launcher environments
of Open MPI, MPICH/Hydra, PMIx and Slurm.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import numpy as np
import pytest

from multiscale.threads import THREAD_VARIABLES, launched_ranks, limit_threads_under_mpi


def _openblas_threads() -> int | None:
    """Threads of the OpenBLAS that NumPy uses (``None`` if NumPy's BLAS is not OpenBLAS)."""
    np.dot(np.ones((64, 64)), np.ones((64, 64)))  # make sure the BLAS is loaded
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas") or ""):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            return int(lib.openblas_get_num_threads())
        except (OSError, AttributeError):
            continue
    return None


@pytest.mark.mpi
def test_this_process_runs_one_blas_thread_under_mpi(comm):
    if comm.size == 1:
        pytest.skip("run under mpirun: the serial process keeps every core")
    assert launched_ranks() == comm.size
    for key in THREAD_VARIABLES:
        assert os.environ[key] == "1", key
    threads = _openblas_threads()
    if threads is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    assert threads == 1


@pytest.mark.parametrize(
    ("environ", "ranks"),
    [
        ({"OMPI_COMM_WORLD_SIZE": "4"}, 4),
        ({"PMI_SIZE": "2"}, 2),
        ({"PMIX_SIZE": "3"}, 3),
        ({"SLURM_STEP_NUM_TASKS": "8"}, 8),
        ({"SLURM_NTASKS": "8"}, 1),  # an allocation, not a launched step: not ranks
        ({}, 1),
    ],
)
def test_launcher_environments(environ, ranks):
    env = dict(environ)
    assert launched_ranks(env) == ranks
    assert limit_threads_under_mpi(env) is (ranks > 1)
    expected = {k: "1" for k in THREAD_VARIABLES} if ranks > 1 else {}
    assert {k: env[k] for k in THREAD_VARIABLES if k in env} == expected


def test_a_users_setting_is_kept():
    env = {"OMPI_COMM_WORLD_SIZE": "2", "OMP_NUM_THREADS": "4"}
    limit_threads_under_mpi(env)
    assert env["OMP_NUM_THREADS"] == "4" and env["OPENBLAS_NUM_THREADS"] == "1"
