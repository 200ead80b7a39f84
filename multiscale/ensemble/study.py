r"""An RVE-size study that knows its uncertainty: ensemble, report, bootstrap intervals, and
optionally realizations added in batches until a precision target is met.

**Precision target.**  With ``precision = PrecisionTarget(target, of)`` the study starts with
the configured realizations and, after each round, measures

* ``of="mean"``: for every size :math:`m` the relative half-width of the Student-:math:`t`
  interval of the mean of the condition ``bc``,
  :math:`t_{n_m-1,(1+c)/2}\, s_m/(\sqrt{n_m}\,|\bar Z_m|)`; a size that misses ``target``
  gets ``batch`` more realizations;
* ``of="exponent"``: the relative half-width :math:`(s_+ - s_-)/(2|\hat s|)` of the bootstrap
  interval of the CV exponent of ``bc``; while it misses ``target`` every size gets ``batch``
  more;

until the target is met or every size that still misses it has ``max_realizations``.  The new
realizations are drawn with the seeds :func:`~multiscale.ensemble.sve.realization_seed` of
their indices, so the ensemble is the one a single run with the final counts gives.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.ensemble.rve_size import RVESizeReport, rve_size_report
from multiscale.ensemble.sve import EnsembleConfig, EnsembleResult, run_ensemble
from multiscale.ensemble.uncertainty import (
    BootstrapOptions,
    StudyUncertainty,
    cv_uncertainty,
    discretization_error,
    study_uncertainty,
)

__all__ = ["PRECISION_OF", "PrecisionTarget", "RVEStudy", "check_study", "run_rve_study"]

_log = logging.getLogger(__name__)

#: What a precision target may be set on.
PRECISION_OF: tuple[str, ...] = ("mean", "exponent")

#: The smallest refinement ``factor`` of a discretization estimate (the schema's limit).
MIN_REFINEMENT: float = 1.1


@dataclass(slots=True, frozen=True)
class PrecisionTarget:
    """Relative half-width ``target`` wanted for the mean (every size) or the CV exponent,
    realizations added ``batch`` at a time up to ``max_realizations`` per size."""

    target: float
    of: str = "mean"
    batch: int = 4
    max_realizations: int = 64

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target) and self.target > 0):
            raise ValueError(f"precision target must be positive, got {self.target!r}")
        if self.of not in PRECISION_OF:
            raise ValueError(f"precision 'of' must be one of {PRECISION_OF}, got {self.of!r}")
        if int(self.batch) < 1:
            raise ValueError(f"precision batch must be at least 1, got {self.batch!r}")
        if int(self.max_realizations) < 2:
            raise ValueError(
                f"precision max_realizations must be at least 2, got {self.max_realizations!r}"
            )

    def achieved(self, result: EnsembleResult, bc: str, options: BootstrapOptions) -> np.ndarray:
        """Relative half-width reached: per size (``mean``, from the Student-:math:`t`
        intervals of ``result.statistics``) or one value (``exponent``, from the bootstrap
        interval of :func:`~multiscale.ensemble.uncertainty.cv_uncertainty` of ``bc`` alone,
        the same draw as in :func:`~multiscale.ensemble.uncertainty.study_uncertainty`)."""
        if self.of == "mean":
            s = [st[bc] for st in result.statistics]
            return np.array([0.5 * (x.ci_high - x.ci_low) / abs(x.mean) for x in s])
        c = result.config
        u = cv_uncertainty(
            c.sizes,
            [np.array([r.properties[bc] for r in reals]) for reals in result.realizations],
            confidence=c.confidence,
            options=options,
            label=bc,
        )
        lo, hi = u.exponent_interval
        if lo is None or hi is None or not u.exponent:
            return np.array([math.inf])
        return np.array([0.5 * (hi - lo) / abs(u.exponent)])

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class RVEStudy:
    """What :func:`run_rve_study` returns: the ensemble, the report (``None`` with
    ``report_error`` when the fits fail), the intervals and the precision record."""

    result: EnsembleResult
    report: RVESizeReport | None
    report_error: str | None
    uncertainty: StudyUncertainty
    precision: dict[str, Any] | None

    @property
    def warnings(self) -> list[str]:
        return list(self.uncertainty.warnings)

    def to_dict(self) -> dict[str, Any]:
        """The JSON additions: ``uncertainty``, ``warnings``, ``realizations_used``,
        ``precision``."""
        return {
            "uncertainty": self.uncertainty.to_dict(),
            "warnings": self.warnings,
            "realizations_used": list(self.result.config.realizations),
            "precision": self.precision,
        }


def check_study(
    config: EnsembleConfig,
    precision: PrecisionTarget | None = None,
    discretization: dict[str, Any] | None = None,
) -> None:
    """The cross-checks of a precision target and a discretization estimate against the
    ensemble (the one copy, for :func:`run_rve_study` and the ``rve-size`` configuration);
    raises ``ValueError`` with a one-line message naming the key."""
    for key, value in (("precision", precision), ("discretization", discretization)):
        if value is not None and len(config.sizes) < 2:
            raise ValueError(
                f"{key}: needs an RVE-size study of at least two window sizes, got "
                f"{len(config.sizes)}; add sizes or leave it out"
            )
    if precision is not None and precision.max_realizations < max(config.realizations):
        raise ValueError(
            f"precision.max_realizations: {precision.max_realizations} is below the "
            f"initial realizations {max(config.realizations)}"
        )
    if discretization is not None:
        if config.microstructure.kind == "gaussian":
            raise ValueError(
                "discretization: not available for gaussian fields (a finer grid draws "
                "another field); leave it out"
            )
        index = discretization.get("size_index", 0)
        if not 0 <= index < len(config.sizes):
            raise ValueError(
                f"discretization.size_index: {index} is not below the number "
                f"of sizes {len(config.sizes)}"
            )
        factor = discretization.get("factor", 2.0)
        if not factor >= MIN_REFINEMENT:
            raise ValueError(
                f"discretization.factor: must be at least {MIN_REFINEMENT:g}, got {factor!r}"
            )


def run_rve_study(
    comm: MPI.Comm,
    config: EnsembleConfig,
    criteria: dict[str, Any] | None = None,
    *,
    options: BootstrapOptions | None = None,
    precision: PrecisionTarget | None = None,
    discretization: dict[str, Any] | None = None,
) -> RVEStudy:
    """Run the ensemble (in batches for a ``precision`` target), the report of ``criteria``
    (:func:`~multiscale.ensemble.rve_size.rve_size_report` keywords) and the bootstrap
    intervals; ``discretization`` (``{"size_index": i, "factor": f}``) adds the
    discretization-error estimate (both checked by :func:`check_study`).  Collective on
    ``comm``; the same result on every rank; each round is logged (one rank prints: the
    :class:`~multiscale.log.RankFilter` of :func:`~multiscale.log.setup_logging`)."""
    criteria = dict(criteria or {})
    bc = criteria.get("bc", "periodic")
    opts = options or BootstrapOptions()
    if len(config.sizes) < 2:
        raise ValueError("an RVE-size study needs at least two window sizes")
    if bc not in config.bcs:
        raise ValueError(f"boundary condition {bc!r} is not in the ensemble ({config.bcs})")
    check_study(config, precision, discretization)
    result = run_ensemble(comm, config)
    record = None
    rounds = 1
    if precision is not None:
        while True:
            got = precision.achieved(result, bc, opts)
            missing = got > precision.target
            counts = np.array(result.config.realizations)
            if not missing.any():
                break
            grow = missing if precision.of == "mean" else np.ones_like(counts, dtype=bool)
            new = np.where(
                grow, np.minimum(counts + precision.batch, precision.max_realizations), counts
            )
            if np.array_equal(new, counts):
                break
            _log.info(
                "precision %s: relative half-width %s > %g; realizations %s -> %s",
                precision.of,
                np.array2string(got, precision=3),
                precision.target,
                counts.tolist(),
                new.tolist(),
            )
            config = dataclasses.replace(config, realizations=tuple(int(v) for v in new))
            result = run_ensemble(comm, config, previous=result)
            rounds += 1
        record = {
            **precision.to_dict(),
            "achieved": [float(v) for v in got],
            "met": bool(np.all(got <= precision.target)),
            "rounds": rounds,
            "realizations_used": list(result.config.realizations),
        }
    disc = None
    if discretization is not None:
        disc = discretization_error(comm, result, **discretization)
    unc = study_uncertainty(result, options=opts, discretization=disc, **criteria)
    if record is not None and not record["met"]:
        unc.warnings.append(
            f"precision target {record['target']:g} on the {record['of']} not met with at most "
            f"{record['max_realizations']} realizations per size (reached "
            f"{max(record['achieved']):.3g})"
        )
    report, error = None, None
    try:
        report = rve_size_report(result, **criteria)
    except ValueError as err:  # too few or too small windows to fit: say so, keep the data
        error = str(err)
    return RVEStudy(result, report, error, unc, record)
