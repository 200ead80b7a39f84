"""One BLAS/OpenMP thread per MPI rank by default.

Under ``mpirun`` every rank is a process of its own, and each would start as many OpenBLAS (or
OpenMP, MKL) threads as the machine has cores: with ranks not bound to cores (``--bind-to
none``, ``--oversubscribe``) two ranks on two cores then run four threads and are slower than
one rank.  When the process was started by an MPI launcher with more than one rank, the thread
counts default to 1; a value the user has set is kept (``OMP_NUM_THREADS=4 mpirun ...``).  The
BLAS library reads them when it is loaded, which is why :mod:`multiscale` sets them at import;
where NumPy was imported first and OpenBLAS is already loaded, its thread count is set through
OpenBLAS's own ``openblas_set_num_threads`` as well.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["THREAD_VARIABLES", "launched_ranks", "limit_threads_under_mpi"]

#: The thread-count variables of OpenMP, OpenBLAS, MKL, BLIS and Apple's Accelerate.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)

#: What Open MPI, MPICH/Hydra, PMIx launchers and ``srun`` set to the number of ranks.
_SIZE_VARIABLES = (
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_SIZE",
    "MPI_LOCALNRANKS",
    "SLURM_STEP_NUM_TASKS",
)


def launched_ranks(environ: dict[str, str] | None = None) -> int:
    """The number of ranks an MPI launcher started, from its environment (1 if none)."""
    env = os.environ if environ is None else environ
    for key in _SIZE_VARIABLES:
        value = env.get(key, "")
        if value.isdigit():
            return int(value)
    return 1


def limit_threads_under_mpi(environ: dict[str, str] | None = None) -> bool:
    """Set the unset thread-count variables to 1 when more than one rank was launched; returns
    whether it did."""
    env = os.environ if environ is None else environ
    if launched_ranks(env) <= 1:
        return False
    user_set = "OPENBLAS_NUM_THREADS" in env or "OMP_NUM_THREADS" in env
    for key in THREAD_VARIABLES:
        env.setdefault(key, "1")
    if environ is None and not user_set:
        _limit_loaded_openblas(1)
    return True


def _limit_loaded_openblas(threads: int) -> None:
    """Set the thread count of every OpenBLAS already loaded into this process (none is
    loaded by this)."""
    paths: set[str] = set()
    try:
        with open("/proc/self/maps") as maps:  # Linux: the files mapped into this process
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].startswith("/") and "openblas" in fields[5]:
                    paths.add(fields[5])
    except OSError:
        return
    for path in sorted(paths):
        try:
            ctypes.CDLL(path, mode=os.RTLD_NOLOAD).openblas_set_num_threads(int(threads))
        except (OSError, AttributeError):
            continue
