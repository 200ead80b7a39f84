"""Random media: SVE ensembles, their statistics and the size of the RVE.

* :mod:`~multiscale.ensemble.sve`: apparent tensors of many realizations under KUBC, SUBC and
  PBC, distributed over MPI ranks, with their statistics;
* :mod:`~multiscale.ensemble.rve_size`: integral-range fit, statistical (Kanit et al. 2003) and
  boundary-condition RVE sizes, the convergence plot.
"""

from __future__ import annotations

from multiscale.ensemble.rve_size import (
    BCGapSize,
    IntegralRangeFit,
    PowerLawFit,
    RVESizeReport,
    bc_gap_size,
    cv_exponent,
    fit_integral_range,
    plot_bc_convergence,
    point_variance,
    rve_size_report,
    statistical_rve_size,
)
from multiscale.ensemble.sve import (
    BCS_ORDER,
    MICROSTRUCTURES,
    EnsembleConfig,
    EnsembleResult,
    Microstructure,
    PhaseLaw,
    Realization,
    Statistics,
    build_realization,
    describe,
    realization_seed,
    run_ensemble,
    solve_realization,
)

__all__ = [
    "BCS_ORDER",
    "MICROSTRUCTURES",
    "BCGapSize",
    "EnsembleConfig",
    "EnsembleResult",
    "IntegralRangeFit",
    "Microstructure",
    "PhaseLaw",
    "PowerLawFit",
    "RVESizeReport",
    "Realization",
    "Statistics",
    "bc_gap_size",
    "build_realization",
    "cv_exponent",
    "describe",
    "fit_integral_range",
    "plot_bc_convergence",
    "point_variance",
    "realization_seed",
    "run_ensemble",
    "rve_size_report",
    "solve_realization",
    "statistical_rve_size",
]
