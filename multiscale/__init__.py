"""multiscale: multiscale simulation on FEniCSx.

Periodic homogenization, RVE boundary conditions (periodic, KUBC, SUBC), concurrent FE² and HMM
coupling and multiscale bases, each verified against an independent reference.  The data flow of
the package follows its folders: mesh -> physics -> cell/RVE solver -> coupler -> output.
"""

from importlib.metadata import PackageNotFoundError, version

from multiscale.threads import limit_threads_under_mpi

limit_threads_under_mpi()  # before NumPy's BLAS loads, where this module is imported first

try:
    __version__ = version("multiscale")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
