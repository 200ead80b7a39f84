"""multiscale: multiscale simulation on FEniCSx.

Periodic homogenization, RVE boundary conditions (periodic, KUBC, SUBC), concurrent FE² and HMM
coupling and multiscale bases, each verified against an independent reference.  The data flow of
the package follows its folders: mesh -> physics -> cell/RVE solver -> coupler -> output.
"""

from importlib.metadata import PackageNotFoundError, version

from multiscale.threads import limit_threads_under_mpi

limit_threads_under_mpi()  # before NumPy's BLAS loads, where this module is imported first


def _version() -> str:
    """The version in ``pyproject.toml`` of the source tree this package is imported from
    (``scripts/env-run`` imports it from the checkout without installing it), else that of the
    installed distribution."""
    import tomllib
    from pathlib import Path

    try:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
        return str(tomllib.loads(text)["project"]["version"])
    except (OSError, KeyError, ValueError):
        pass
    try:
        return version("multiscale")
    except PackageNotFoundError:
        return "0.0.0+unknown"


__version__ = _version()

__all__ = ["__version__"]
