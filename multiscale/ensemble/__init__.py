"""Random media: SVE ensembles, their statistics and the size of the RVE.

* :mod:`~multiscale.ensemble.sve`: apparent tensors of many realizations under KUBC, SUBC and
  PBC, distributed over MPI ranks, with their statistics;
* :mod:`~multiscale.ensemble.rve_size`: integral-range fit, statistical (Kanit et al. 2003) and
  boundary-condition RVE sizes, the convergence plot;
* :mod:`~multiscale.ensemble.uncertainty`: stratified bootstrap (BCa or percentile) intervals of
  the CVs, the CV exponent, the integral range and the RVE size, with warnings;
* :mod:`~multiscale.ensemble.study`: the whole study, optionally with realizations added in
  batches until a precision target is met.
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
    integral_range_formula,
    loglog_fit,
    plot_bc_convergence,
    point_variance,
    rve_size_report,
    rve_volume_formula,
    statistical_rve_size,
)
from multiscale.ensemble.study import PrecisionTarget, RVEStudy, run_rve_study
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
    cv_from_moments,
    describe,
    realization_seed,
    run_ensemble,
    sample_cv,
    solve_realization,
)
from multiscale.ensemble.uncertainty import (
    BootstrapOptions,
    CVUncertainty,
    StudyUncertainty,
    cv_uncertainty,
    discretization_error,
    resample_indices,
    study_uncertainty,
)

__all__ = [
    "BCS_ORDER",
    "MICROSTRUCTURES",
    "BCGapSize",
    "BootstrapOptions",
    "CVUncertainty",
    "EnsembleConfig",
    "EnsembleResult",
    "IntegralRangeFit",
    "Microstructure",
    "PhaseLaw",
    "PowerLawFit",
    "PrecisionTarget",
    "RVESizeReport",
    "RVEStudy",
    "Realization",
    "Statistics",
    "StudyUncertainty",
    "bc_gap_size",
    "build_realization",
    "cv_exponent",
    "cv_from_moments",
    "cv_uncertainty",
    "describe",
    "discretization_error",
    "fit_integral_range",
    "integral_range_formula",
    "loglog_fit",
    "plot_bc_convergence",
    "point_variance",
    "realization_seed",
    "resample_indices",
    "run_ensemble",
    "run_rve_study",
    "rve_size_report",
    "rve_volume_formula",
    "sample_cv",
    "solve_realization",
    "statistical_rve_size",
    "study_uncertainty",
]
