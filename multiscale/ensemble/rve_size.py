r"""Size of the representative volume element from an SVE ensemble (Kanit et al. 2003).

**Integral range.**  For a stationary ergodic medium the variance of the mean of a property
:math:`Z` over a window of volume :math:`V` decays, for :math:`V` much larger than the integral
range :math:`A_3`, as

.. math:: D_Z^2(V) = D_Z^2 \frac{A_3}{V}, \qquad D_Z^2 = p(1-p)(Z_1 - Z_2)^2 ,

where :math:`D_Z^2` is the *point variance* of the two-phase field (:math:`p` the fraction of
phase 2; :func:`point_variance`).  For apparent moduli (not additive) Kanit et al. fit the
generalization :math:`D_Z^2(V) = D_Z^2 (A_3/V)^\alpha`; :func:`fit_integral_range` does both
(least squares on :math:`\log D_Z^2(V)` against :math:`\log V`, slope :math:`-\alpha` free or
fixed to :math:`-1`).

**Statistical RVE size.**  With :math:`n` realizations of volume :math:`V`, the relative error
of the estimated mean at about 95% confidence is
:math:`\varepsilon_{rel} = 2 D_Z(V)/(\bar Z\sqrt n)`.
The RVE for a precision :math:`\varepsilon_{rel}` and :math:`n` realizations is the smallest
:math:`V` with :math:`\varepsilon_{rel}(V) \le \varepsilon_{rel}`:

.. math:: V_{RVE} = A_3 \left(\frac{4 D_Z^2}{\varepsilon_{rel}^2 \bar Z^2 n}\right)^{1/\alpha},
   \qquad L_{RVE} = V_{RVE}^{1/d}

(:func:`statistical_rve_size`).  Window volumes here are in units :math:`u^d`.

**Boundary-condition RVE size.**  The relative gap :math:`\gamma(L) = (\bar Z_{KUBC} -
\bar Z_{SUBC})/\bar Z_{PBC}` of the ensemble means vanishes as :math:`L \to \infty`; fitting
:math:`\gamma = c L^{-\beta}` gives the size :math:`L_\gamma = (c/\gamma_{tol})^{1/\beta}` at which
it falls below a tolerance (:func:`bc_gap_size`).

**Scatter exponent.**  Since :math:`D_Z \propto V^{-\alpha/2}`, the coefficient of variation
falls as :math:`L^{-\alpha d/2}`, i.e. :math:`L^{-d/2}` for :math:`\alpha = 1`
(:func:`cv_exponent`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multiscale.ensemble.sve import EnsembleResult

__all__ = [
    "BCGapSize",
    "IntegralRangeFit",
    "PowerLawFit",
    "RVESizeReport",
    "bc_gap_size",
    "cv_exponent",
    "fit_integral_range",
    "integral_range_formula",
    "loglog_fit",
    "plot_bc_convergence",
    "point_variance",
    "rve_size_report",
    "rve_volume_formula",
    "statistical_rve_size",
]


def point_variance(p: float | np.ndarray, z1: float, z2: float) -> float | np.ndarray:
    r""":math:`D_Z^2 = p(1-p)(Z_1 - Z_2)^2`, the variance of the two-phase field :math:`Z(x)`
    (``p`` a number or an array of fractions, e.g. one per bootstrap resample)."""
    pa = np.asarray(p, dtype=float)
    if not np.all((pa >= 0.0) & (pa <= 1.0)):
        raise ValueError(f"the fraction p must lie in [0, 1], got {p!r}")
    d2 = pa * (1.0 - pa) * (z1 - z2) ** 2
    return float(d2) if d2.ndim == 0 else d2


@dataclass(slots=True, frozen=True)
class PowerLawFit:
    r"""Least-squares fit :math:`y = c\,x^{s}` in log-log: ``slope`` :math:`s`, ``prefactor``
    :math:`c`, and the standard error of the slope (NaN with two points)."""

    slope: float
    prefactor: float
    slope_stderr: float

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.prefactor * np.power(x, self.slope)


def loglog_fit(x: Sequence[float] | np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Least-squares line :math:`\log y = s \log x + \log c` through every row of ``y``.

    ``y`` has shape ``(..., m)`` for ``m`` abscissae ``x``; returns ``(s, log c)`` of shape
    ``(...)``: :math:`s = \sum_j (\ell_j - \bar\ell)\log y_j / \sum_j (\ell_j - \bar\ell)^2`
    with :math:`\ell = \log x`, :math:`\log c = \overline{\log y} - s\bar\ell`.  A row with a
    non-positive or non-finite entry gives NaN (no power law through it).  The one formula of
    every power-law fit here, for a single point estimate and for a batch of bootstrap
    resamples alike.
    """
    lx = np.log(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float)
    ok = np.all((y > 0) & np.isfinite(y), axis=-1)
    ly = np.log(np.where((y > 0) & np.isfinite(y), y, 1.0))
    dx = lx - lx.mean()
    slope = (ly @ dx) / float(dx @ dx)
    logc = ly.mean(axis=-1) - slope * lx.mean()
    return np.where(ok, slope, np.nan), np.where(ok, logc, np.nan)


def _power_law(x: Sequence[float], y: Sequence[float], what: str) -> PowerLawFit:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"{what}: need at least two (x, y) pairs of one length")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(x * y)):
        raise ValueError(f"{what}: a power-law fit needs positive finite data, got {y.tolist()}")
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        raise ValueError(f"{what}: all abscissae are equal")
    slope, logc = (float(v) for v in loglog_fit(x, y))
    stderr = math.nan
    if x.size > 2:
        resid = ly - (slope * lx + logc)
        s2 = float(resid @ resid) / (x.size - 2)
        stderr = math.sqrt(s2 / float(np.sum((lx - lx.mean()) ** 2)))
    return PowerLawFit(slope, float(math.exp(logc)), stderr)


def cv_exponent(sizes: Sequence[float], cv: Sequence[float]) -> PowerLawFit:
    r"""Fit :math:`\mathrm{CV}(L) = c L^{s}`; :math:`s \approx -d/2` for a short-range medium."""
    return _power_law(sizes, cv, "cv_exponent")


@dataclass(slots=True, frozen=True)
class IntegralRangeFit:
    r""":math:`D_Z^2(V) = D_Z^2 (A_3/V)^\alpha`: ``integral_range`` :math:`A_3`, ``exponent``
    :math:`\alpha`, ``point_variance`` :math:`D_Z^2` (volumes in units :math:`u^d`)."""

    integral_range: float
    exponent: float
    point_variance: float
    exponent_stderr: float = math.nan

    def __post_init__(self) -> None:
        if not (self.integral_range > 0 and self.exponent > 0 and self.point_variance > 0):
            raise ValueError(
                "the integral range, the exponent and the point variance must be positive, got "
                f"A={self.integral_range!r}, alpha={self.exponent!r}, D2={self.point_variance!r}"
            )

    def variance(self, volume: float | np.ndarray) -> float | np.ndarray:
        r""":math:`D_Z^2(V)`."""
        return self.point_variance * np.power(
            self.integral_range / np.asarray(volume), self.exponent
        )

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__slots__}


def fit_integral_range(
    volumes: Sequence[float],
    variances: Sequence[float],
    point_var: float,
    *,
    free_exponent: bool = True,
) -> IntegralRangeFit:
    r"""Fit :math:`D_Z^2(V) = D_Z^2 (A_3/V)^\alpha` to ensemble variances (log-log least squares).

    With ``free_exponent=False``, :math:`\alpha = 1` and :math:`\log A_3` is the mean of
    :math:`\log(V D_Z^2(V)/D_Z^2)`.
    """
    if not point_var > 0:
        raise ValueError(f"the point variance must be positive, got {point_var!r}")
    v = np.asarray(volumes, dtype=float)
    d2 = np.asarray(variances, dtype=float)
    if free_exponent:
        fit = _power_law(v, d2, "fit_integral_range")  # validates, and gives the stderr
        A, alpha = (float(a) for a in integral_range_formula(v, d2, point_var, True))
        if not alpha > 0:
            raise ValueError(
                f"the variance does not decrease with the volume (fitted exponent {alpha:.3g}); "
                "the windows are too small or too few realizations"
            )
        return IntegralRangeFit(A, alpha, point_var, fit.slope_stderr)
    if v.shape != d2.shape or v.size < 1 or np.any(v <= 0) or np.any(d2 <= 0):
        raise ValueError("need positive volumes and variances of one length")
    A, _ = integral_range_formula(v, d2, point_var, False)
    return IntegralRangeFit(float(A), 1.0, point_var, 0.0)


def integral_range_formula(
    volumes: Sequence[float] | np.ndarray,
    variances: np.ndarray,
    point_var: float | np.ndarray,
    free_exponent: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    r"""``(A_3, alpha)`` of :math:`D_Z^2(V) = D_Z^2 (A_3/V)^\alpha` for every row of
    ``variances`` (shape ``(..., m)``, ``point_var`` a number or of shape ``(...)``).

    Free exponent: the log-log line :math:`\log D_Z^2(V) = -\alpha\log V + \log c`
    (:func:`loglog_fit`) gives :math:`A_3 = (c/D_Z^2)^{1/\alpha}`, NaN where
    :math:`\alpha \le 0` (the variance does not fall).  Fixed :math:`\alpha = 1`:
    :math:`\log A_3 = \overline{\log(V D_Z^2(V)/D_Z^2)}`.  Used by :func:`fit_integral_range`
    and by the bootstrap.
    """
    v = np.asarray(volumes, dtype=float)
    d2 = np.asarray(variances, dtype=float)
    pv = np.asarray(point_var, dtype=float)
    if free_exponent:
        slope, logc = loglog_fit(v, d2)
        alpha = -slope
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            A = np.where(
                alpha > 0, np.exp((logc - np.log(pv)) / np.where(alpha > 0, alpha, 1)), np.nan
            )
        return A, alpha
    ok = np.all((d2 > 0) & np.isfinite(d2), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logA = np.mean(np.log(v * np.where(d2 > 0, d2, 1.0)), axis=-1) - np.log(pv)
    return np.where(ok, np.exp(logA), np.nan), np.ones_like(logA)


def rve_volume_formula(
    integral_range: float | np.ndarray,
    exponent: float | np.ndarray,
    point_var: float | np.ndarray,
    mean: float | np.ndarray,
    eps_rel: float,
    n: int,
) -> np.ndarray:
    r""":math:`V_{RVE} = A_3 (D_Z^2/t)^{1/\alpha}` with :math:`t = (\varepsilon_{rel}|\bar Z|
    \sqrt n/2)^2` (elementwise; NaN where an input is NaN): the one formula behind
    :func:`statistical_rve_size` and its bootstrap interval."""
    target = (eps_rel * np.abs(np.asarray(mean, dtype=float)) * math.sqrt(int(n)) / 2.0) ** 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(integral_range) * np.power(
            np.asarray(point_var) / target, 1.0 / np.asarray(exponent)
        )


def statistical_rve_size(
    fit: IntegralRangeFit, mean: float, eps_rel: float, n: int, dim: int
) -> tuple[float, float]:
    r"""``(V_RVE, L_RVE)``: the smallest volume with :math:`2 D_Z(V)/(\bar Z\sqrt n) \le
    \varepsilon_{rel}` (see the module documentation), and :math:`L = V^{1/d}`."""
    if not 0.0 < eps_rel:
        raise ValueError(f"eps_rel must be positive, got {eps_rel!r}")
    if int(n) < 1:
        raise ValueError(f"the number of realizations must be >= 1, got {n!r}")
    if mean == 0 or not math.isfinite(mean):
        raise ValueError(f"the mean property must be finite and non-zero, got {mean!r}")
    volume = float(
        rve_volume_formula(
            fit.integral_range, fit.exponent, fit.point_variance, mean, eps_rel, int(n)
        )
    )
    return volume, float(volume ** (1.0 / dim))


@dataclass(slots=True, frozen=True)
class BCGapSize:
    r"""Relative KUBC–SUBC gap of the means against :math:`L`, its fit :math:`c L^{-\beta}`, the
    size where the fit reaches ``tol`` and the first measured size where the gap is below it."""

    sizes: tuple[float, ...]
    gaps: tuple[float, ...]
    fit: PowerLawFit
    tol: float
    size: float
    first_measured: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "relative_gap": list(self.gaps),
            "gap_exponent": self.fit.slope,
            "gap_prefactor": self.fit.prefactor,
            "tol": self.tol,
            "size": self.size,
            "first_measured_size": self.first_measured,
        }


def bc_gap_size(sizes: Sequence[float], gaps: Sequence[float], tol: float) -> BCGapSize:
    r"""Size :math:`L_\gamma = (c/\gamma_{tol})^{-1/s}` at which the power-law fit
    :math:`\gamma = c L^{s}` (:math:`s < 0`) of the relative BC gap reaches ``tol``."""
    if not tol > 0:
        raise ValueError(f"the gap tolerance must be positive, got {tol!r}")
    fit = _power_law(sizes, gaps, "bc_gap_size")
    if fit.slope >= 0:
        raise ValueError(
            f"the KUBC-SUBC gap does not decrease with the size (fitted exponent {fit.slope:.3g})"
        )
    size = (tol / fit.prefactor) ** (1.0 / fit.slope)
    below = [float(s) for s, g in zip(sizes, gaps, strict=True) if g <= tol]
    return BCGapSize(
        tuple(float(s) for s in sizes),
        tuple(float(g) for g in gaps),
        fit,
        float(tol),
        float(size),
        below[0] if below else None,
    )


@dataclass(slots=True, frozen=True)
class RVESizeReport:
    """Everything :func:`rve_size_report` derives from an ensemble (JSON via :meth:`to_dict`)."""

    bc: str
    eps_rel: float
    n: int
    cv_fit: dict[str, PowerLawFit]
    integral_range: IntegralRangeFit
    rve_volume: float
    rve_size: float
    gap: BCGapSize | None
    mean_at_largest: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bc": self.bc,
            "eps_rel": self.eps_rel,
            "realizations": self.n,
            "cv_exponent": {bc: f.slope for bc, f in self.cv_fit.items()},
            "cv_exponent_stderr": {bc: f.slope_stderr for bc, f in self.cv_fit.items()},
            "integral_range": self.integral_range.to_dict(),
            "rve_volume": self.rve_volume,
            "rve_size": self.rve_size,
            "bc_gap": None if self.gap is None else self.gap.to_dict(),
            "mean_at_largest_size": dict(self.mean_at_largest),
        }


def rve_size_report(
    result: EnsembleResult,
    *,
    eps_rel: float = 0.01,
    n: int = 1,
    gap_tol: float = 0.01,
    bc: str = "periodic",
    free_exponent: bool = True,
) -> RVESizeReport:
    r"""Scatter exponents, integral range, statistical RVE size (of ``bc``) and the BC-gap size.

    The point variance uses the mean realized fraction of the largest windows and the phase
    values :meth:`PhaseLaw.phase_values`; the window volumes are :math:`L^d` (units :math:`u^d`).
    The BC-gap size needs ``"subc"``, ``"periodic"`` and ``"kubc"`` in the ensemble (else
    ``gap`` is None).
    """
    c = result.config
    if bc not in c.bcs:
        raise ValueError(f"boundary condition {bc!r} is not in the ensemble ({c.bcs})")
    dim = c.microstructure.dim
    sizes = result.sizes
    cv_fit = {b: cv_exponent(sizes, result.series(b, "cv")) for b in c.bcs}
    z1, z2 = c.laws.phase_values(dim)
    p = float(result.volume_fraction_series()[-1])
    fit = fit_integral_range(
        sizes**dim,
        result.series(bc, "std") ** 2,
        point_variance(p, z1, z2),
        free_exponent=free_exponent,
    )
    mean = float(result.series(bc, "mean")[-1])
    volume, size = statistical_rve_size(fit, mean, eps_rel, n, dim)
    gap = None
    if all(b in c.bcs for b in ("subc", "periodic", "kubc")):
        rel = (result.series("kubc") - result.series("subc")) / result.series("periodic")
        gap = bc_gap_size(sizes, rel, gap_tol)
    return RVESizeReport(
        bc=bc,
        eps_rel=float(eps_rel),
        n=int(n),
        cv_fit=cv_fit,
        integral_range=fit,
        rve_volume=volume,
        rve_size=size,
        gap=gap,
        mean_at_largest={b: float(result.series(b)[-1]) for b in c.bcs},
    )


def plot_bc_convergence(
    result: EnsembleResult,
    path: str,
    *,
    bounds: tuple[float, float] | None = None,
    title: str | None = None,
) -> None:
    """Mean ± standard deviation of the scalar property of each BC against :math:`L` (with the
    optional bounds as horizontal lines), saved to ``path``.  Not collective: call on one rank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result.config
    style = {
        "subc": ("tab:blue", "v", "SUBC"),
        "periodic": ("k", "o", "PBC"),
        "kubc": ("tab:red", "^", "KUBC"),
    }
    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    L = result.sizes
    for bc in c.bcs:
        colour, marker, label = style[bc]
        mean, std = result.series(bc, "mean"), result.series(bc, "std")
        ax.errorbar(L, mean, yerr=std, color=colour, marker=marker, capsize=3, label=label)
    if bounds is not None:
        ax.axhline(bounds[0], color="tab:blue", ls="--", lw=0.8, label="HS lower")
        ax.axhline(bounds[1], color="tab:red", ls="--", lw=0.8, label="HS upper")
    ax.set_xscale("log")
    ax.set_xlabel(f"window size L / {c.microstructure.unit}")
    ax.set_ylabel(f"apparent {c.laws.property_label}")
    ax.set_title(title or f"{c.microstructure.kind}, vf {c.microstructure.volume_fraction:g}")
    ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
