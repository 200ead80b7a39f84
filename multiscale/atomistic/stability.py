r"""Stability of a Cauchy–Born crystal: continuum, convexity and phonon criteria along a path.

For a homogeneous deformation :math:`F` with the closed-form tangent :math:`\mathbb A`
(:meth:`CauchyBorn.tangent <multiscale.atomistic.cauchy_born.CauchyBorn.tangent>`):

* **strong ellipticity** (Legendre–Hadamard):
  :math:`\min_{|n|=|m|=1} m\cdot Q(n)\,m > 0`, :math:`Q(n)_{ik} = \mathbb A_{iJkL}n_Jn_L` the
  acoustic tensor; the minimum over directions is taken on a grid (angles in 2D, a Fibonacci
  half-sphere in 3D) and refined by a local search from the best point;
* **convexity along the path** :math:`F(\lambda) = I + (\lambda - \lambda_0)G`:
  :math:`d^2W/d\lambda^2 = \mathbb A[G, G] > 0` (the full Hessian of a frame-indifferent
  :math:`W` is singular at zero stress, in the rotations, so convexity in every direction of
  :math:`F` is no criterion; :func:`hessian_eigenvalues` gives it for reference);
* **phonons** (Bravais lattices): the dynamical matrix of the affinely deformed lattice (unit
  mass, reference wave vector :math:`k`)

  .. math::
      D(k) = \sum_b K_b\,(1 - \cos k\cdot R_b)

  must be positive definite for all :math:`k \ne 0` in the Brillouin zone.  The criterion value
  is :math:`\min_k \lambda_{min}(D(k))/g(k)` with :math:`g(k) = \sum_b(1 - \cos k\cdot R_b) > 0`,
  which has the same sign and a finite long-wave limit
  :math:`\min_n \lambda_{min}(\sum_b K_b (n\cdot R_b)^2)/\sum_b (n\cdot R_b)^2`, included as
  :math:`k \to 0` (there it is the acoustic tensor, :math:`D(k) \approx \Omega_0\,Q(k)`);
  :math:`k` runs over a grid of fractional coordinates
  :math:`\xi \in (-\tfrac12, \tfrac12]^d` of the reciprocal basis (zone-boundary points
  included) and is refined by a Nelder–Mead search from the best one.

Along a path the critical :math:`\lambda` of each criterion is its first sign change on a grid of
:math:`\lambda`, refined by Brent's method (:func:`analyse_path`); the first to fail is reported
with its wave vector (phonons) or direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from .cauchy_born import CauchyBorn

__all__ = [
    "CRITERIA",
    "Instability",
    "LoadingPath",
    "PathStability",
    "analyse_path",
    "dispersion",
    "dynamical_matrix",
    "ellipticity",
    "hessian_eigenvalues",
    "path_convexity",
    "phonon",
]

#: The criteria, in the order reported (ties go to the first).
CRITERIA = ("convexity", "ellipticity", "phonon")
PATH_KINDS = ("uniaxial", "biaxial", "isotropic", "shear", "general")


@dataclass(frozen=True, eq=False)
class LoadingPath:
    """:math:`F(\\lambda) = I + (\\lambda - \\lambda_0)G`: ``uniaxial``
    (:math:`G = e_1\\otimes e_1`), ``biaxial`` (:math:`e_1\\otimes e_1 + e_2\\otimes e_2`),
    ``isotropic`` (:math:`I`), all with :math:`\\lambda_0 = 1` (:math:`\\lambda` is the stretch);
    ``shear`` (:math:`e_1\\otimes e_2`) and ``general`` (the given ``G``) with
    :math:`\\lambda_0 = 0`."""

    kind: str
    dim: int
    G: np.ndarray | None = None

    def __post_init__(self) -> None:
        d = int(self.dim)
        if self.kind not in PATH_KINDS:
            raise ValueError(f"path type must be one of {list(PATH_KINDS)}, got {self.kind!r}")
        if d not in (1, 2, 3):
            raise ValueError(f"dim must be 1, 2 or 3, got {self.dim!r}")
        if self.kind == "shear" and d < 2:
            raise ValueError("path type 'shear' needs a lattice of dimension 2 or 3")
        if (self.kind == "general") != (self.G is not None):
            raise ValueError("path: G is given for, and only for, path type 'general'")
        G = self._direction(d) if self.G is None else np.asarray(self.G, dtype=float)
        if G.shape != (d, d) or not np.all(np.isfinite(G)) or not np.any(G):
            raise ValueError(f"path.G: expected a non-zero finite {d}x{d} matrix")
        object.__setattr__(self, "G", G)

    def _direction(self, d: int) -> np.ndarray:
        G = np.zeros((d, d))
        if self.kind == "uniaxial":
            G[0, 0] = 1.0
        elif self.kind == "biaxial":
            G[[0, min(1, d - 1)], [0, min(1, d - 1)]] = 1.0
        elif self.kind == "isotropic":
            G = np.eye(d)
        else:
            G[0, 1] = 1.0
        return G

    @property
    def start(self) -> float:
        """:math:`\\lambda_0`: 1 for the stretches, 0 for shear and general paths."""
        return 1.0 if self.kind in ("uniaxial", "biaxial", "isotropic") else 0.0

    def F(self, lam: float | np.ndarray) -> np.ndarray:
        """:math:`F(\\lambda)`, shape ``(..., d, d)`` for an array of :math:`\\lambda`."""
        t = np.asarray(lam, dtype=float)[..., None, None] - self.start
        return np.eye(self.dim) + t * self.G


# -- criteria at one F -----------------------------------------------------------------------------
def path_convexity(law: CauchyBorn, path: LoadingPath, lam: float) -> float:
    """:math:`d^2W/d\\lambda^2 = \\mathbb A[G, G]` at :math:`F(\\lambda)`."""
    A = law.tangent(path.F(lam))
    return float(np.einsum("iJkL,iJ,kL->", A, path.G, path.G))


def hessian_eigenvalues(law: CauchyBorn, F: np.ndarray) -> np.ndarray:
    """Eigenvalues of :math:`\\mathbb A` as a symmetric :math:`d^2\\times d^2` matrix."""
    d = law.dim
    return np.linalg.eigvalsh(law.tangent(F).reshape(d * d, d * d))


def _directions(d: int, n: int) -> np.ndarray:
    """About ``n`` unit vectors covering the directions up to sign."""
    if d == 1:
        return np.ones((1, 1))
    if d == 2:
        t = np.pi * np.arange(n) / n
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    i = np.arange(2 * n) + 0.5
    z = 1.0 - i / n  # Fibonacci sphere, keep z >= 0
    phi = np.pi * (1.0 + 5.0**0.5) * i
    rho = np.sqrt(np.clip(1.0 - z**2, 0.0, None))
    v = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)
    return v[z >= 0.0]


def _unit(d: int, x: np.ndarray) -> np.ndarray:
    """A unit vector from its angle(s)."""
    if d == 2:
        return np.array([math.cos(x[0]), math.sin(x[0])])
    return np.array(
        [math.sin(x[0]) * math.cos(x[1]), math.sin(x[0]) * math.sin(x[1]), math.cos(x[0])]
    )


def _angles(n: np.ndarray) -> np.ndarray:
    if len(n) == 2:
        return np.array([math.atan2(n[1], n[0])])
    return np.array([math.acos(np.clip(n[2], -1, 1)), math.atan2(n[1], n[0])])


def _min_over_directions(
    matrix: Callable[[np.ndarray], np.ndarray], d: int, ndir: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """:math:`\\min_n \\lambda_{min}(M(n))` for ``matrix(n)`` of shape ``(N, d, d)`` given
    ``(N, d)`` unit vectors: a grid, then a local search; returns the value, ``n`` and the
    eigenvector ``m``."""
    N = _directions(d, ndir)
    w = np.linalg.eigvalsh(matrix(N))[:, 0]
    best = N[int(np.argmin(w))]
    if d > 1:

        def f(x: np.ndarray) -> float:
            return float(np.linalg.eigvalsh(matrix(_unit(d, x)[None]))[0, 0])

        x0 = _angles(best)
        simplex = x0 + np.pi / ndir * np.vstack([np.zeros(d - 1), np.eye(d - 1)])
        res = optimize.minimize(
            f,
            x0,
            method="Nelder-Mead",
            options={"xatol": 1e-12, "fatol": 0.0, "initial_simplex": simplex},
        )
        if res.fun < float(w.min()):
            best = _unit(d, res.x)
    vals, vecs = np.linalg.eigh(matrix(best[None])[0])
    return float(vals[0]), best, vecs[:, 0]


def ellipticity(
    law: CauchyBorn, F: np.ndarray, ndir: int = 180
) -> tuple[float, np.ndarray, np.ndarray]:
    """:math:`\\min_{n, m} m\\cdot Q(n) m` with the minimizing ``n`` and ``m``."""
    A = law.tangent(F)
    return _min_over_directions(lambda n: np.einsum("iJkL,NJ,NL->Nik", A, n, n), law.dim, ndir)


def dynamical_matrix(law: CauchyBorn, F: np.ndarray, k: np.ndarray) -> np.ndarray:
    """:math:`D(k) = \\sum_b K_b (1 - \\cos k\\cdot R_b)` for reference wave vectors ``k`` of
    shape ``(N, d)``; shape ``(N, d, d)`` (Bravais lattices)."""
    if law.bonds.n_basis != 1:
        raise ValueError("the phonon criterion is implemented for Bravais lattices (no basis)")
    K = law.bond_stiffness(F)
    return np.einsum("Nb,bik->Nik", _one_minus_cos(np.asarray(k) @ law.bonds.vectors.T), K)


def _one_minus_cos(x: np.ndarray) -> np.ndarray:
    """:math:`1 - \\cos x = 2\\sin^2(x/2)`, without cancellation at small :math:`x`."""
    return 2.0 * np.sin(0.5 * x) ** 2


def dispersion(law: CauchyBorn, F: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Squared frequencies :math:`\\omega^2(k)` (eigenvalues of :math:`D(k)`, unit mass),
    shape ``(N, d)``."""
    return np.linalg.eigvalsh(dynamical_matrix(law, F, k))


def _reciprocal(law: CauchyBorn) -> np.ndarray:
    """Reciprocal basis (rows) of the Bravais lattice spanned by the bonds."""
    R = law.bonds.vectors[law.bonds.half()]
    d = law.dim
    # a primitive basis: the nearest bonds that span the space
    order = np.argsort(np.linalg.norm(R, axis=1), kind="stable")
    basis: list[np.ndarray] = []
    for b in order:
        trial = np.array([*basis, R[b]])
        if np.linalg.matrix_rank(trial, tol=1e-9 * np.linalg.norm(R[b])) == len(trial):
            basis.append(R[b])
        if len(basis) == d:
            break
    if len(basis) < d:
        raise ValueError("the bonds do not span the space: no Brillouin zone")
    return 2.0 * np.pi * np.linalg.inv(np.array(basis)).T


def phonon(
    law: CauchyBorn, F: np.ndarray, nk: int = 24, ndir: int = 90
) -> tuple[float, np.ndarray, np.ndarray]:
    """:math:`\\min_k \\lambda_{min}(D(k))/g(k)` (see the module docstring) with the minimizing
    reference wave vector ``k`` (zero for the long-wave limit) and the direction of ``k``."""
    d = law.dim
    B = _reciprocal(law)
    K = law.bond_stiffness(F)
    R = law.bonds.vectors

    def f(xi: np.ndarray) -> np.ndarray:
        c = _one_minus_cos(np.atleast_2d(xi) @ B @ R.T)
        g = c.sum(axis=1)
        D = np.einsum("Nb,bik->Nik", c, K)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(g > 0.0, np.linalg.eigvalsh(D)[:, 0] / g, np.inf)

    j = np.arange(-nk // 2 + 1, nk // 2 + 1) / nk
    xi = np.stack([g.ravel() for g in np.meshgrid(*[j] * d, indexing="ij")], axis=1)
    xi = xi[np.any(xi != 0.0, axis=1)]
    vals = f(xi)
    i = int(np.argmin(vals))
    best, value = xi[i], float(vals[i])
    res = optimize.minimize(
        lambda x: float(f(x)[0]),
        best,
        method="Nelder-Mead",
        options={
            "xatol": 1e-12,
            "fatol": 0.0,
            "initial_simplex": best + 0.5 / nk * np.vstack([np.zeros(d), np.eye(d)]),
        },
    )
    if res.fun < value and np.any(np.abs(res.x) > 1e-9):
        best, value = res.x, float(res.fun)
    k = best @ B

    def long_wave(n: np.ndarray) -> np.ndarray:
        w = (n @ R.T) ** 2
        return np.einsum("Nb,bik->Nik", w, K) / w.sum(axis=1)[:, None, None]

    v0, n0, _ = _min_over_directions(long_wave, d, ndir)
    if v0 < value:
        return v0, np.zeros(d), n0
    return value, k, k / np.linalg.norm(k)


# -- along a path ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instability:
    """Where a criterion first fails along a path: ``criterion``, the load ``lam``, the
    reference wave vector (phonons; zero for a long-wave mode; ``None`` otherwise), the
    direction (phonons: of :math:`k`; ellipticity: :math:`n`) and the eigenvector ``mode``
    (ellipticity: :math:`m`)."""

    criterion: str
    lam: float
    wave_vector: tuple[float, ...] | None = None
    direction: tuple[float, ...] | None = None
    mode: tuple[float, ...] | None = None
    fractional_wave_vector: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "lambda": self.lam,
            "wave_vector": None if self.wave_vector is None else list(self.wave_vector),
            "fractional_wave_vector": None
            if self.fractional_wave_vector is None
            else list(self.fractional_wave_vector),
            "direction": None if self.direction is None else list(self.direction),
            "mode": None if self.mode is None else list(self.mode),
        }


@dataclass
class PathStability:
    """The critical load of each criterion (``None``: stable over the whole range) and the
    values of the criteria on the :math:`\\lambda` grid."""

    lams: np.ndarray
    values: dict[str, np.ndarray]
    critical: dict[str, Instability | None] = field(default_factory=dict)

    @property
    def first(self) -> Instability | None:
        """The criterion that fails first (the smallest :math:`\\lambda`)."""
        found = [c for c in (self.critical.get(n) for n in CRITERIA) if c is not None]
        return min(found, key=lambda c: c.lam) if found else None


def _first_root(fn: Callable[[float], float], lams: np.ndarray, values: np.ndarray) -> float | None:
    if values[0] <= 0.0:
        return float(lams[0])
    bad = np.flatnonzero(values <= 0.0)
    if bad.size == 0:
        return None
    i = int(bad[0])
    if values[i] == 0.0:
        return float(lams[i])
    return float(optimize.brentq(fn, lams[i - 1], lams[i], xtol=1e-14, rtol=1e-15))


def analyse_path(
    law: CauchyBorn,
    path: LoadingPath,
    lam_range: tuple[float, float],
    *,
    points: int = 41,
    nk: int = 24,
    ndir: int = 90,
    criteria: tuple[str, ...] = CRITERIA,
) -> PathStability:
    """Evaluate ``criteria`` at ``points`` values of :math:`\\lambda` in ``lam_range`` and find
    where each first becomes non-positive (Brent's method between the grid points).  The
    phonon criterion needs a Bravais lattice and is skipped for a lattice with a basis."""
    lo, hi = (float(v) for v in lam_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"path range must be two finite numbers, increasing, got {lam_range!r}")
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points!r}")
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown criteria {sorted(unknown)}; expected some of {CRITERIA}")
    if law.bonds.n_basis > 1:
        criteria = tuple(c for c in criteria if c != "phonon")
    lams = np.linspace(lo, hi, int(points))
    fns: dict[str, Callable[[float], float]] = {
        "convexity": lambda t: path_convexity(law, path, t),
        "ellipticity": lambda t: ellipticity(law, path.F(t), ndir)[0],
        "phonon": lambda t: phonon(law, path.F(t), nk, ndir)[0],
    }
    out = PathStability(lams, {})
    for name in criteria:
        values = np.array([fns[name](t) for t in lams])
        out.values[name] = values
        lam_c = _first_root(fns[name], lams, values)
        out.critical[name] = None if lam_c is None else _describe(law, path, name, lam_c, nk, ndir)
    return out


def _describe(
    law: CauchyBorn, path: LoadingPath, name: str, lam: float, nk: int, ndir: int
) -> Instability:
    F = path.F(lam)
    if name == "ellipticity":
        _, n, m = ellipticity(law, F, ndir)
        return Instability(name, lam, direction=tuple(n), mode=tuple(m))
    if name == "phonon":
        _, k, n = phonon(law, F, nk, ndir)
        frac = np.linalg.solve(_reciprocal(law).T, k)
        return Instability(
            name, lam, wave_vector=tuple(k), direction=tuple(n), fractional_wave_vector=tuple(frac)
        )
    return Instability(name, lam)
