r"""Bootstrap confidence intervals of an RVE-size study, and the warnings they call for.

The RVE-size study (:mod:`~multiscale.ensemble.rve_size`) derives from :math:`n_m` realizations
:math:`Z_{m,1}, \dots, Z_{m,n_m}` of each window size :math:`L_m` the coefficient of variation
:math:`\mathrm{CV}_m = s_m/|\bar Z_m|`, the exponent :math:`s` of the fit
:math:`\mathrm{CV}_m = c L_m^{s}`, the integral range :math:`A_3` and the RVE size.  With a few
realizations per size these are noisy (8 realizations gave a CV exponent of -0.02 where theory
says -1), so each comes here with a confidence interval.

**Stratified bootstrap.**  The realizations are independent within and across sizes, so the
resampling keeps the sizes apart: resample :math:`b = 1 \dots B` draws, for every size
:math:`m`, :math:`n_m` indices :math:`I^{(b)}_{m,j}` uniformly with replacement from
:math:`\{1, \dots, n_m\}` (one ``numpy.random.Generator`` seeded with ``seed``; all :math:`B`
index rows of a size in one call), and takes the resampled realizations
:math:`Z^{(b)}_{m,j} = Z_{m, I^{(b)}_{m,j}}` together with everything that belongs to them (the
other boundary conditions, the realized volume fraction).  Every quantity :math:`\theta` is then
recomputed from each resample with the *same* vectorized formula as its point estimate
(:func:`~multiscale.ensemble.sve.sample_cv`, :func:`~multiscale.ensemble.rve_size.loglog_fit`,
:func:`~multiscale.ensemble.rve_size.integral_range_formula`,
:func:`~multiscale.ensemble.rve_size.rve_volume_formula`), giving :math:`\theta^{(1)}, \dots,
\theta^{(B)}` as one array operation, with no loop over resamples or realizations.

**Intervals.**  At confidence :math:`c` the percentile interval is

.. math:: \left[\hat q_{(1-c)/2},\; \hat q_{(1+c)/2}\right]

with :math:`\hat q_\beta` the :math:`\beta`-quantile of the resampled :math:`\theta^{(b)}`
(``numpy.quantile``, linear interpolation).  The default, BCa (bias-corrected and accelerated,
Efron 1987), moves the two quantile levels by the median bias :math:`z_0` of the resamples and
the acceleration :math:`a` from the jackknife (leave one realization out,
:func:`jackknife_moments`); see :func:`confidence_interval`.  On synthetic samples with 30
realizations per size its 95% intervals cover the true CV exponent in 92-96% and the true CVs in
89-94% of 200 experiments (``tests/test_ensemble_uncertainty.py``), the percentile ones the CVs
in 88-90%.  A resample on which the quantity is undefined
(a zero CV, a variance that does not fall with the volume: :math:`\alpha \le 0`) is left out and
the fraction left out is reported (``invalid``); the interval is then conditional on the others,
and a warning says so when that fraction exceeds :math:`(1-c)/2` (enough to move an end).

**Warnings** (plain sentences, in the report and its JSON):

* the exponent is not determined by the data: its interval is wider than
  ``max_exponent_width`` or contains 0;
* a size has fewer than ``min_realizations`` realizations: no CV interval for it (a bootstrap of
  a standard deviation from 3 values has only 10 distinct resamples);
* a discretization-error estimate :math:`e_h` (one realization solved at two resolutions,
  :math:`e_h = |Z_h - Z_{h/2}|`) is not below the scatter :math:`s_m` of a size: the scatter
  there is not statistical.

References
----------
Efron, B. (1987). Better bootstrap confidence intervals. J. Amer. Statist. Assoc. 82, 171-185.
Efron, B. & Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall, ch. 14.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI
from scipy import stats

from multiscale.ensemble.rve_size import (
    integral_range_formula,
    loglog_fit,
    point_variance,
    rve_volume_formula,
)
from multiscale.ensemble.sve import EnsembleResult, cv_from_moments, solve_realization

__all__ = [
    "METHODS",
    "BootstrapOptions",
    "CVUncertainty",
    "StudyUncertainty",
    "bootstrap_moments",
    "confidence_interval",
    "cv_statistics",
    "cv_uncertainty",
    "discretization_error",
    "discretization_warnings",
    "jackknife_moments",
    "point_moments",
    "resample_indices",
    "study_uncertainty",
]


#: Interval kinds: bias-corrected and accelerated, or plain percentile.
METHODS: tuple[str, ...] = ("bca", "percentile")


@dataclass(slots=True, frozen=True)
class BootstrapOptions:
    """How to bootstrap: ``resamples`` :math:`B`, the generator's ``seed``, the fewest
    realizations of a size with a CV interval, the widest exponent interval that counts as
    determined, and the interval ``method`` (``"bca"`` or ``"percentile"``)."""

    resamples: int = 2000
    seed: int = 0
    min_realizations: int = 5
    max_exponent_width: float = 1.0
    method: str = "bca"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if int(self.resamples) < 100:
            raise ValueError(f"resamples must be at least 100, got {self.resamples!r}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if int(self.min_realizations) < 2:
            raise ValueError(f"min_realizations must be at least 2, got {self.min_realizations!r}")
        if not self.max_exponent_width > 0:
            raise ValueError(
                f"max_exponent_width must be positive, got {self.max_exponent_width!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def resample_indices(counts: Sequence[int], resamples: int, seed: int) -> list[np.ndarray]:
    r"""Bootstrap indices: for size :math:`m` an integer array of shape ``(resamples, n_m)``
    drawn uniformly from :math:`\{0, \dots, n_m - 1\}` by ``numpy.random.default_rng(seed)``
    (the sizes one after the other, so the draw depends on ``counts`` and ``seed`` only)."""
    rng = np.random.default_rng(int(seed))
    return [rng.integers(0, int(n), size=(int(resamples), int(n))) for n in counts]


def _columns(samples: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each size's values as an ``(n_m, q)`` array (a 1-D sample is one column)."""
    out = [np.asarray(z, dtype=float) for z in samples]
    return [z[:, None] if z.ndim == 1 else z for z in out]


def point_moments(samples: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    r"""Sample mean and variance (:math:`n-1`) of every size and column: shape ``(M, q)``."""
    cols = _columns(samples)
    return (
        np.stack([z.mean(axis=0) for z in cols]),
        np.stack([z.var(axis=0, ddof=1) for z in cols]),
    )


def bootstrap_moments(
    samples: Sequence[np.ndarray], indices: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and variance of the resampled realizations :math:`Z_{m, I^{(b)}_{m,\cdot}}`: shape
    ``(B, M, q)`` (one fancy-indexing gather per size, ``(B, n_m, q)``, no loop over resamples)."""
    cols = _columns(samples)
    draws = [z[idx] for z, idx in zip(cols, indices, strict=True)]
    return (
        np.stack([d.mean(axis=1) for d in draws], axis=1),
        np.stack([d.var(axis=1, ddof=1) for d in draws], axis=1),
    )


def jackknife_moments(samples: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    r"""Leave-one-out moments for the BCa acceleration: row :math:`(m, j)` (``N = sum n_m``
    rows) has the moments of size :math:`m` without realization :math:`j` and the full-sample
    moments of the other sizes; shape ``(N, M, q)``."""
    cols = _columns(samples)
    mean, var = point_moments(cols)
    rows_m, rows_v = [], []
    for m, z in enumerate(cols):
        n = z.shape[0]
        keep = ~np.eye(n, dtype=bool)
        loo = np.broadcast_to(z, (n, *z.shape))[keep].reshape(n, n - 1, z.shape[1])
        bm = np.repeat(mean[None], n, axis=0)
        bv = np.repeat(var[None], n, axis=0)
        bm[:, m] = loo.mean(axis=1)
        bv[:, m] = loo.var(axis=1, ddof=1) if n > 2 else np.nan
        rows_m.append(bm)
        rows_v.append(bv)
    return np.concatenate(rows_m), np.concatenate(rows_v)


def confidence_interval(
    estimate: np.ndarray | float,
    boot: np.ndarray,
    confidence: float,
    jack: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""``(low, high, invalid)`` of a quantity from its point ``estimate`` and resamples
    ``boot`` (axis 0), over the finite resamples; ``invalid`` is the fraction of the others.

    Without ``jack``: the percentile interval :math:`[\hat q_{(1-c)/2}, \hat q_{(1+c)/2}]`.
    With the jackknife values :math:`\theta_{(i)}` (axis 0): the BCa interval (Efron 1987),
    :math:`[\hat q_{\beta_1}, \hat q_{\beta_2}]` with

    .. math:: \beta_{1,2} = \Phi\Big(z_0 + \frac{z_0 + z_{(1 \mp c)/2}}
              {1 - a (z_0 + z_{(1 \mp c)/2})}\Big),\quad
              z_0 = \Phi^{-1}\big(\#\{\theta^{(b)} < \hat\theta\}/B\big),\quad
              a = \frac{\sum_i (\bar\theta - \theta_{(i)})^3}
                       {6 \big(\sum_i (\bar\theta - \theta_{(i)})^2\big)^{3/2}}

    (a resample equal to :math:`\hat\theta` counts one half in :math:`z_0`).
    """
    x = np.asarray(boot, dtype=float)
    finite = np.isfinite(x)
    count = finite.sum(axis=0)
    invalid = 1.0 - count / x.shape[0]
    xs = np.where(finite, x, np.nan)
    lo_p, hi_p = 0.5 * (1.0 - confidence), 0.5 * (1.0 + confidence)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives NaN
        if jack is None:
            lo, hi = np.nanquantile(xs, [lo_p, hi_p], axis=0)
            return lo, hi, invalid
        est = np.asarray(estimate, dtype=float)
        below = np.where(finite, x < est, False).sum(axis=0) + 0.5 * (x == est).sum(axis=0)
        z0 = stats.norm.ppf(np.clip(below / np.maximum(count, 1), 1e-6, 1 - 1e-6))
        j = np.where(np.isfinite(jack), jack, np.nan)
        d = np.nanmean(j, axis=0) - j
        num = np.nansum(d**3, axis=0)
        den = 6.0 * np.nansum(d**2, axis=0) ** 1.5
        a = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        zq = stats.norm.ppf([lo_p, hi_p]).reshape((2,) + (1,) * np.ndim(est))
        beta = stats.norm.cdf(z0 + (z0 + zq) / (1.0 - a * (z0 + zq)))
        lo = _nanquantile_each(xs, beta[0])
        hi = _nanquantile_each(xs, beta[1])
    ok = np.isfinite(est) & (count > 0)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), invalid


def _nanquantile_each(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantile ``q[k]`` of column ``k`` of ``x`` (axis 0), over its non-NaN entries (linear
    interpolation, as ``numpy.nanquantile``), vectorized over the columns."""
    xs = np.sort(x, axis=0)  # NaNs last
    count = np.sum(~np.isnan(x), axis=0)
    pos = np.clip(np.nan_to_num(q, nan=0.5), 0.0, 1.0) * np.maximum(count - 1, 0)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, np.maximum(count - 1, 0))
    w = pos - i0
    take = lambda i: np.take_along_axis(xs, np.asarray(i)[None], axis=0)[0]  # noqa: E731
    return np.where(count > 0, (1 - w) * take(i0) + w * take(i1), np.nan)


def cv_statistics(
    sizes: Sequence[float], mean: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""CVs (shape ``(..., M, q)``) and CV exponents (``(..., q)``) from per-size moments of any
    batch shape: :func:`cv_from_moments`, a zero CV to NaN (all draws equal: no power law), and
    :func:`loglog_fit` of each column against the sizes."""
    cv = cv_from_moments(mean, var)
    cv = np.where(cv > 0, cv, np.nan)
    slope, _ = loglog_fit(sizes, np.moveaxis(cv, -2, -1))
    return cv, slope


def _pair(lo: float, hi: float) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in (lo, hi)]


@dataclass(slots=True)
class CVUncertainty:
    """The CV per size and its exponent, with bootstrap intervals (``None`` where a size has
    too few realizations), the fraction of resamples without an exponent, and the warnings."""

    sizes: tuple[float, ...]
    counts: tuple[int, ...]
    cv: np.ndarray
    cv_interval: list[list[float | None] | None]
    exponent: float
    exponent_interval: list[float | None]
    exponent_invalid: float
    confidence: float
    warnings: list[str] = field(default_factory=list)


def cv_uncertainty(
    sizes: Sequence[float],
    samples: Sequence[np.ndarray],
    *,
    confidence: float = 0.95,
    options: BootstrapOptions | None = None,
    indices: Sequence[np.ndarray] | None = None,
    label: str = "",
) -> CVUncertainty:
    r"""Point estimates and bootstrap intervals (``options.method``) of :math:`\mathrm{CV}_m`
    and of the exponent :math:`s` of :math:`\mathrm{CV} = c L^s` from the values
    ``samples[m]`` of size ``sizes[m]`` (``indices`` from :func:`resample_indices`, drawn here
    when not given).

    The point estimates use the same formulas as the resamples (:func:`cv_statistics`:
    :func:`~multiscale.ensemble.sve.cv_from_moments` and
    :func:`~multiscale.ensemble.rve_size.loglog_fit`); warnings as in the module
    documentation.
    """
    opts = options or BootstrapOptions()
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    counts = tuple(len(z) for z in samples)
    if len(counts) != len(sizes) or len(counts) < 2 or min(counts) < 2:
        raise ValueError(
            f"need one sample of at least 2 values per size and at least 2 sizes, got {counts}"
        )
    if indices is None:
        indices = resample_indices(counts, opts.resamples, opts.seed)
    cv, slope = (v[..., 0] for v in cv_statistics(sizes, *point_moments(samples)))
    cv_b, slope_b = (v[..., 0] for v in cv_statistics(sizes, *bootstrap_moments(samples, indices)))
    cv_j = slope_j = None
    if opts.method == "bca":
        cv_j, slope_j = (v[..., 0] for v in cv_statistics(sizes, *jackknife_moments(samples)))
    lo, hi, _ = confidence_interval(cv, cv_b, confidence, cv_j)
    elo, ehi, invalid = confidence_interval(slope, slope_b, confidence, slope_j)
    slope = float(slope)
    tag = f" of {label}" if label else ""
    warns: list[str] = []
    cv_int: list[list[float | None] | None] = []
    for m, n in enumerate(counts):
        if n < opts.min_realizations:
            cv_int.append(None)
            warns.append(
                f"size {sizes[m]:g}: {n} realization(s) are too few for a CV interval "
                f"(at least {opts.min_realizations})"
            )
        else:
            cv_int.append(_pair(lo[m], hi[m]))
    e_int = _pair(float(elo), float(ehi))
    pct = round(100 * confidence)
    if float(invalid) > 0.5 * (1.0 - confidence):  # enough to move an end of the interval
        warns.append(
            f"{100 * float(invalid):.1f}% of the resamples have a zero CV{tag} and no exponent; "
            "the exponent interval is that of the others"
        )
    if None in e_int:
        warns.append(f"the CV exponent{tag} has no interval: no resample gives a power law")
    else:
        a, b = e_int
        why = []
        if b - a > opts.max_exponent_width:
            why.append(f"wider than {opts.max_exponent_width:g}")
        if a <= 0.0 <= b:
            why.append("contains 0")
        if why:
            warns.append(
                f"the data do not determine the CV exponent{tag}: fitted {slope:.3g}, {pct}% "
                f"interval [{a:.3g}, {b:.3g}] ({' and '.join(why)}); add realizations or sizes"
            )
    return CVUncertainty(
        tuple(float(s) for s in sizes),
        counts,
        cv,
        cv_int,
        slope,
        e_int,
        float(invalid),
        float(confidence),
        warns,
    )


def discretization_warnings(
    sizes: Sequence[float], std: Mapping[str, Sequence[float]], error: Mapping[str, float]
) -> list[str]:
    r"""Warnings for the sizes where the standard deviation :math:`s_m` of a boundary condition
    is not above the discretization-error estimate :math:`e_h` of that condition."""
    out = []
    for bc, e in error.items():
        low = [f"{L:g}" for L, s in zip(sizes, std[bc], strict=True) if not s > e]
        if low:
            out.append(
                f"{bc}: the scatter (standard deviation) at size(s) {', '.join(low)} is not above "
                f"the discretization error {e:.3g} (one realization at two resolutions): refine "
                "the mesh before reading it as statistical"
            )
    return out


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(slots=True)
class StudyUncertainty:
    r"""Point estimates and bootstrap intervals of an RVE-size study (see the module
    documentation), the fraction of resamples without a value, and the warnings.

    ``cv[bc]`` and ``exponent[bc]`` are :class:`CVUncertainty` of every boundary condition;
    ``integral_range``, ``integral_exponent``, ``rve_volume`` and ``rve_size`` are
    ``(estimate, [low, high])`` of the condition ``bc`` (``None`` bounds where undefined)."""

    bc: str
    confidence: float
    options: BootstrapOptions
    counts: tuple[int, ...]
    cv: dict[str, CVUncertainty]
    integral_range: tuple[float, list[float | None]]
    integral_exponent: tuple[float, list[float | None]]
    rve_volume: tuple[float, list[float | None]]
    rve_size: tuple[float, list[float | None]]
    invalid: dict[str, float]
    discretization: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "bc": self.bc,
            "confidence": self.confidence,
            "bootstrap": self.options.to_dict(),
            "realizations_used": list(self.counts),
            "cv": {b: [float(v) for v in u.cv] for b, u in self.cv.items()},
            "cv_interval": {b: u.cv_interval for b, u in self.cv.items()},
            "exponent": {b: u.exponent for b, u in self.cv.items()},
            "exponent_interval": {b: u.exponent_interval for b, u in self.cv.items()},
            "integral_range": num(self.integral_range[0]),
            "integral_range_interval": self.integral_range[1],
            "integral_exponent": num(self.integral_exponent[0]),
            "integral_exponent_interval": self.integral_exponent[1],
            "rve_volume": num(self.rve_volume[0]),
            "rve_volume_interval": self.rve_volume[1],
            "rve_size": num(self.rve_size[0]),
            "rve_size_interval": self.rve_size[1],
            "invalid_fraction": dict(self.invalid),
            "discretization": self.discretization,
            "warnings": list(self.warnings),
        }


def study_uncertainty(
    result: EnsembleResult,
    *,
    eps_rel: float = 0.01,
    n: int = 1,
    bc: str = "periodic",
    free_exponent: bool = True,
    options: BootstrapOptions | None = None,
    discretization: dict[str, Any] | None = None,
    gap_tol: float | None = None,
) -> StudyUncertainty:
    r"""Bootstrap intervals of the CVs and CV exponents (every BC), of the integral range, its
    exponent and the statistical RVE volume and size (of ``bc``) of an ensemble.

    The same index arrays (:func:`resample_indices`) resample every column of a realization:
    the properties under every BC and the realized volume fraction (which sets the point
    variance :math:`p(1-p)(Z_1-Z_2)^2` from the largest windows).  The estimates use the
    formulas of :func:`~multiscale.ensemble.rve_size.rve_size_report`
    (:func:`~multiscale.ensemble.rve_size.integral_range_formula`,
    :func:`~multiscale.ensemble.rve_size.rve_volume_formula`) on the point, bootstrap and
    jackknife moments alike.  ``discretization`` (from :func:`discretization_error`) adds its
    warnings.  Deterministic: the same numbers on every rank.  ``gap_tol`` (the BC-gap
    criterion of the report, which has no interval) is accepted and ignored, so that the
    ``rve`` criteria can be passed as they are.
    """
    opts = options or BootstrapOptions()
    c = result.config
    if bc not in c.bcs:
        raise ValueError(f"boundary condition {bc!r} is not in the ensemble ({c.bcs})")
    dim = c.microstructure.dim
    sizes = np.asarray(c.sizes)
    samples = [
        np.array([[r.properties[b] for b in c.bcs] + [r.volume_fraction] for r in reals])
        for reals in result.realizations
    ]
    counts = tuple(len(z) for z in samples)
    indices = resample_indices(counts, opts.resamples, opts.seed)
    cv = {
        b: cv_uncertainty(
            sizes,
            [z[:, k] for z in samples],
            confidence=c.confidence,
            options=opts,
            indices=indices,
            label=b,
        )
        for k, b in enumerate(c.bcs)
    }
    warns = [w for u in cv.values() for w in u.warnings]
    z1, z2 = c.laws.phase_values(dim)
    k = c.bcs.index(bc)

    def rve(mean: np.ndarray, var: np.ndarray) -> dict[str, np.ndarray]:
        pv = point_variance(mean[..., -1, -1], z1, z2)
        A, alpha = integral_range_formula(sizes**dim, var[..., k], pv, free_exponent)
        volume = rve_volume_formula(A, alpha, pv, mean[..., -1, k], eps_rel, n)
        return {"A": A, "alpha": alpha, "V": volume, "L": np.power(volume, 1.0 / dim)}

    point = rve(*point_moments(samples))
    boot = rve(*bootstrap_moments(samples, indices))
    jack = rve(*jackknife_moments(samples)) if opts.method == "bca" else None
    out: dict[str, tuple[float, list[float | None]]] = {}
    invalid: dict[str, Any] = {"exponent": {b: u.exponent_invalid for b, u in cv.items()}}
    for key in ("A", "alpha", "V", "L"):
        est = float(point[key])
        use_jack = jack[key] if jack is not None and math.isfinite(est) else None
        lo, hi, bad = confidence_interval(est, boot[key], c.confidence, use_jack)
        out[key] = (est, _pair(float(lo), float(hi)))
        invalid[key] = float(bad)
    if invalid["A"] > 0.5 * (1.0 - c.confidence):
        warns.append(
            f"{100 * invalid['A']:.1f}% of the resamples have a variance of {bc} that does not "
            "fall with the window volume (no integral range, no RVE size); their intervals are "
            "those of the others"
        )
    if discretization is not None:
        warns += discretization_warnings(
            c.sizes, {b: result.series(b, "std") for b in c.bcs}, discretization["error"]
        )
    return StudyUncertainty(
        bc=bc,
        confidence=float(c.confidence),
        options=opts,
        counts=counts,
        cv=cv,
        integral_range=out["A"],
        integral_exponent=out["alpha"],
        rve_volume=out["V"],
        rve_size=out["L"],
        invalid={
            "exponent": invalid["exponent"],
            "integral_range": invalid["A"],
            "rve_size": invalid["V"],
        },
        discretization=discretization,
        warnings=_dedupe(warns),
    )


def discretization_error(
    comm: MPI.Comm, result: EnsembleResult, *, size_index: int = 0, factor: float = 2.0
) -> dict[str, Any]:
    r"""Discretization-error estimate :math:`e_h = |Z_h - Z_{h/f}|` of every BC from realization
    0 of size ``size_index`` (already in ``result`` at mesh size :math:`h`), solved again with
    ``factor`` :math:`f \ge 1.1` times the resolution (checked by
    :func:`~multiscale.ensemble.study.check_study`): the same disks (the RSA layout depends on the
    seed only), a finer mesh.  One extra solve, collective on ``comm``.  Not for Gaussian
    fields, whose finer grid draws another field."""
    from multiscale.ensemble.study import check_study  # the one copy of the checks

    c = result.config
    check_study(c, discretization={"size_index": size_index, "factor": factor})
    micro = dataclasses.replace(c.microstructure, resolution=c.microstructure.resolution * factor)
    fine_config = dataclasses.replace(c, microstructure=micro)
    coarse = result.realizations[size_index][0]
    fine = solve_realization(fine_config, size_index, 0, comm)
    return {
        "size": c.sizes[size_index],
        "factor": float(factor),
        "resolution": [c.microstructure.resolution, micro.resolution],
        "values": {b: [coarse.properties[b], fine.properties[b]] for b in c.bcs},
        "error": {b: abs(coarse.properties[b] - fine.properties[b]) for b in c.bcs},
    }
