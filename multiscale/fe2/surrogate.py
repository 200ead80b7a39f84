"""Hierarchical FE²: an offline database of RVE responses, a hyperelastic surrogate fitted to it,
and online error control.

For history-free (hyperelastic) micro phases the homogenized response is a function of the macro
deformation alone, :math:`\\bar P = \\bar P(\\bar F)`, derived from an effective stored energy.
Instead of solving an RVE at every macro quadrature point and Newton iterate, the response is
learnt once (offline) and evaluated in closed form online.

**Objectivity by construction.**  The surrogate is an effective potential of the Green–Lagrange
strain :math:`E = \\tfrac12(F^TF - I)`, written in Mandel components
:math:`x = (E_{11}, E_{22}, E_{33}, \\sqrt2E_{23}, \\sqrt2E_{13}, \\sqrt2E_{12})` (2D:
:math:`(E_{11}, E_{22}, \\sqrt2E_{12})`), so that rotations act orthogonally on :math:`x`:

.. math::
    W(x) = \\sigma_0\\,s_0 \\sum_{2\\le|\\alpha|\\le p} c_\\alpha\\, z^\\alpha,\\quad z = x/s_0,
    \\qquad S = \\frac{\\partial W}{\\partial x},\\qquad
    \\mathbb D = \\frac{\\partial^2 W}{\\partial x\\,\\partial x},

with :math:`s_0, \\sigma_0` the strain and stress scales of the database.  The macro law is then
:math:`\\bar P = F S` and the consistent tangent

.. math::
    \\frac{\\partial \\bar P_{iJ}}{\\partial F_{kL}} = \\delta_{ik} S_{JL}
        + F_{iM}\\, \\mathbb D_{MJNL}\\, F_{kN},

exact derivatives of the surrogate (symmetric, as the tangent of a potential must be).  Any
:math:`F` with the same :math:`C = F^TF` gives the same :math:`S`, so
:math:`\\bar P(QF) = Q\\bar P(F)` for every rotation :math:`Q`.  Monomials start at degree 2: the
reference configuration is stress free.

**Fit.**  The coefficients solve a linear least-squares problem on the stresses *and* the
tangents of the database (6 + 21 equations per sample in 3D, the RVE's consistent tangent being
its exact derivative), with the stresses scaled by :math:`\\sigma_0` and the tangents by
:math:`\\sigma_0/s_0`.  **Material symmetry** (``symmetry="cubic"``: a sphere in a cube, a
square fibre arrangement) is imposed by augmenting the data with their images under the
rotations of the cube, :math:`x \\mapsto R_Q x`, :math:`S \\mapsto R_Q S`,
:math:`\\mathbb D\\mapsto R_Q \\mathbb D R_Q^T`: the space of polynomials of degree :math:`\\le p`
is invariant under the group, so the least-squares solution on group-invariant data is itself
invariant (:math:`W(R_Qx) = W(x)`).  Only use it when the RVE has the symmetry.

**Design of experiments.**  The offline samples are a scrambled Sobol sequence
(:mod:`scipy.stats.qmc`) over a box of Green–Lagrange strain components, the region the macro
problem will visit (from the load range or a probe; :func:`strain_box`), plus the reference
state.  At a sample :math:`E` the RVE is solved at the right stretch :math:`U = \\sqrt{I + 2E}`
(any :math:`F` with the same :math:`C` would do) through the package's RVE solver, and
:math:`S = U^{-1}\\bar P`, :math:`\\mathbb D` from the consistent tangent (the inverse of the
formula above).  Samples are distributed over the rank groups
(:meth:`~multiscale.coupling.pool.MicroPool.map_tasks`) and every rank holds the whole database.

**Online error control.**  Two fits share the data: degree :math:`p` (used) and :math:`p - 1`
(the embedded companion, as in embedded Runge–Kutta pairs).  Their disagreement

.. math::
    \\eta(x) = \\frac{\\|S_p(x) - S_{p-1}(x)\\|_\\infty}{\\sigma_0}

estimates the error of the lower-order fit and bounds the used one conservatively where the
expansion converges.  A macro point whose strain lies outside the sampled box (widened by
``margin``) or whose :math:`\\eta` exceeds ``tol`` is solved by the real RVE on the rank that owns
it (its history -- the last fluctuation and its sensitivity -- warm-starts the micro Newton), gets
the RVE's exact response, and its sample is added to the database.  Between load steps (at
:meth:`SurrogateMicroModel.commit`) the new samples of all ranks are allgathered in rank order and
every rank refits the same model; the database file, if named, is rewritten atomically.

**What the surrogate can and cannot represent.**  It represents any history-free micro response
(hyperelastic phases: Neo-Hookean, linear elastic at finite strain), including anisotropy (without
``symmetry``).  It does not represent history: plasticity (``j2``), damage or viscosity make the
response depend on the strain path, not on :math:`E` alone; :class:`SurrogateMicroModel` refuses
micro phases with internal variables (a one-line error).  Monotonic proportional loading of a
J2 RVE could be tabulated along the path, but that is a different surrogate and is not offered.
Small-strain linear phases need none (FE² already solves their RVE once).  Micro instabilities
(buckling of the cell, loss of ellipticity) are outside the smooth potential's reach.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from mpi4py import MPI

from multiscale.coupling.pool import MicroPool
from multiscale.output import atomic_write
from multiscale.physics.base import has_state
from multiscale.tensors import mandel_weights, voigt_index

from .micro import CellSource, MicroEvaluation, MicroModel

__all__ = [
    "PotentialFit",
    "RVEDatabase",
    "Surrogate",
    "SurrogateMicroModel",
    "SurrogateOptions",
    "build_database",
    "design",
    "first_piola",
    "green_lagrange",
    "mandel",
    "strain_box",
    "symmetry_group",
    "tube_design",
    "uniaxial_path",
    "unmandel",
]

log = logging.getLogger(__name__)

_SQ2 = np.sqrt(2.0)


# -- Mandel components ------------------------------------------------------------------------
def _pairs(d: int) -> list[tuple[int, int]]:
    """Index pairs of the Mandel components, in the package's Voigt order
    (:func:`~multiscale.tensors.voigt_index`: the diagonal, then 23, 13, 12)."""
    return voigt_index(d)


def _weights(d: int) -> np.ndarray:
    return mandel_weights(d)


def mandel(T: np.ndarray) -> np.ndarray:
    """Mandel components (..., m) of symmetric tensors (..., d, d)."""
    d = T.shape[-1]
    return np.stack([T[..., i, j] for i, j in _pairs(d)], axis=-1) * _weights(d)


def unmandel(x: np.ndarray, d: int) -> np.ndarray:
    """Symmetric tensors (..., d, d) from Mandel components (..., m)."""
    T = np.zeros((*x.shape[:-1], d, d))
    for a, ((i, j), w) in enumerate(zip(_pairs(d), _weights(d), strict=True)):
        T[..., i, j] = T[..., j, i] = x[..., a] / w
    return T


def _mandel4(D: np.ndarray) -> np.ndarray:
    """Mandel matrix (..., m, m) of a fourth-order tensor (..., d, d, d, d), symmetrized."""
    d = D.shape[-1]
    pairs, w = _pairs(d), _weights(d)
    Ds = 0.25 * (D + D.swapaxes(-4, -3) + D.swapaxes(-2, -1) + D.swapaxes(-4, -3).swapaxes(-2, -1))
    M = np.stack([np.stack([Ds[..., i, j, k, m] for k, m in pairs], -1) for i, j in pairs], -2)
    M = M * w[:, None] * w[None, :]
    return 0.5 * (M + M.swapaxes(-1, -2))


def _unmandel4(M: np.ndarray, d: int) -> np.ndarray:
    """Fourth-order tensors (..., d, d, d, d) with minor symmetries from Mandel matrices."""
    index = np.zeros((d, d), dtype=int)
    for a, (i, j) in enumerate(_pairs(d)):
        index[i, j] = index[j, i] = a
    w = _weights(d)[index]  # (d, d)
    scale = w[:, :, None, None] * w[None, None, :, :]
    return M[..., index[:, :, None, None], index[None, None, :, :]] / scale


def _rotation_matrix(Q: np.ndarray) -> np.ndarray:
    """:math:`R_Q` with ``mandel(Q T Q^T) = R_Q @ mandel(T)``."""
    d = Q.shape[0]
    m = len(_pairs(d))
    R = np.zeros((m, m))
    for b in range(m):
        e = np.zeros(m)
        e[b] = 1.0
        R[:, b] = mandel(Q @ unmandel(e, d) @ Q.T)
    return R


def symmetry_group(name: str | None, d: int) -> list[np.ndarray]:
    """Rotations of a material symmetry: ``None`` (the identity) or ``"cubic"`` (the 24
    rotations of the cube; in 2D the 4 of the square)."""
    if name is None or name == "none":
        return [np.eye(d)]
    if name != "cubic":
        raise ValueError(f"unknown symmetry {name!r}; expected 'cubic' or None")
    group = []
    for perm in itertools.permutations(range(d)):
        for signs in itertools.product((1.0, -1.0), repeat=d):
            Q = np.zeros((d, d))
            Q[np.arange(d), perm] = signs
            if np.linalg.det(Q) > 0:
                group.append(Q)
    return group


# -- kinematics ---------------------------------------------------------------------------------
def green_lagrange(F: np.ndarray) -> np.ndarray:
    """:math:`E = \\tfrac12(F^TF - I)` of deformation gradients (..., d, d)."""
    d = F.shape[-1]
    return 0.5 * (np.einsum("...ki,...kj->...ij", F, F) - np.eye(d))


def first_piola(F: np.ndarray, S: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:math:`P = FS` and :math:`\\partial P_{iJ}/\\partial F_{kL} = \\delta_{ik}S_{JL}
    + F_{iM}\\mathbb D_{MJNL}F_{kN}` from :math:`S` (n, d, d) and :math:`\\mathbb D =
    \\partial S/\\partial E` (n, d, d, d, d)."""
    d = F.shape[-1]
    P = F @ S
    A = np.einsum("ik,nJL->niJkL", np.eye(d), S) + np.einsum("niM,nkN,nMJNL->niJkL", F, F, D)
    return P, A


def _pk2(F: np.ndarray, P: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`first_piola`: :math:`S = F^{-1}P` and
    :math:`\\mathbb D_{MJNL} = F^{-1}_{Mi}F^{-1}_{Nk}(A_{iJkL} - \\delta_{ik}S_{JL})`."""
    d = F.shape[-1]
    Finv = np.linalg.inv(F)
    S = Finv @ P
    S = 0.5 * (S + S.swapaxes(-1, -2))
    B = A - np.einsum("ik,nJL->niJkL", np.eye(d), S)
    D = np.einsum("nMi,nNk,niJkL->nMJNL", Finv, Finv, B)
    return S, D


def right_stretch(E: np.ndarray) -> np.ndarray:
    """:math:`U = \\sqrt{I + 2E}` of symmetric strains (n, d, d) (eigen-decomposition)."""
    d = E.shape[-1]
    lam, V = np.linalg.eigh(np.eye(d) + 2.0 * E)
    if np.any(lam <= 0.0):
        raise ValueError("a Green–Lagrange strain with I + 2E not positive definite")
    return np.einsum("nik,nk,njk->nij", V, np.sqrt(lam), V)


# -- design of experiments ------------------------------------------------------------------------
def strain_box(
    F: np.ndarray, margin: float = 0.1, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds (lower, upper) of the Green–Lagrange tensor components
    :math:`(E_{11}, E_{22}, E_{33}, E_{23}, E_{13}, E_{12})` (2D: :math:`E_{11}, E_{22},
    E_{12}`) of deformation gradients ``F`` (n, d, d) -- the points a probe met -- and of the
    reference state, widened by ``margin`` times the range and at least ``floor`` each side."""
    F = np.asarray(F, dtype=float)
    d = F.shape[-1]
    E = np.concatenate([green_lagrange(F), np.zeros((1, d, d))])
    comps = mandel(E) / _weights(d)
    lo, hi = comps.min(axis=0), comps.max(axis=0)
    pad = np.maximum(margin * (hi - lo), floor)
    return lo - pad, hi + pad


def design(lower: Sequence[float], upper: Sequence[float], n: int, seed: int = 0) -> np.ndarray:
    """``n`` scrambled-Sobol strains in the box of tensor components (see :func:`strain_box`),
    preceded by the reference state: Mandel components (n + 1, m)."""
    from scipy.stats import qmc

    lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    m = len(lo)
    d = {3: 2, 6: 3}.get(m)
    if d is None or hi.shape != lo.shape or np.any(hi < lo):
        raise ValueError("the strain box needs lower <= upper, 3 (2D) or 6 (3D) components")
    u = qmc.Sobol(m, scramble=True, seed=seed).random(int(n))
    comps = np.vstack([np.zeros(m), qmc.scale(u, lo, hi) if np.all(hi > lo) else lo + u * 0])
    return comps * _weights(d)


def tube_design(
    path: np.ndarray, n: int, radius: float | Sequence[float], seed: int = 0
) -> np.ndarray:
    """``n`` scrambled-Sobol strains in a tube around a strain path, preceded by the reference
    state: Mandel components (n + 1, m).

    ``path`` (k, m): Green–Lagrange tensor components (as :func:`design`) of points the macro
    problem is expected to visit, in order (a probe's Gauss-point strains, or a load path in
    closed form); ``radius``: half-width of the tube in each tensor component (a scalar or m
    values).  A sample is :math:`E(t) + r\\odot(2u - 1)` with :math:`E(t)` the point at the
    fraction :math:`t` of the path's length (piecewise linear) and :math:`(t, u)` a Sobol point
    in :math:`[0, 1]^{1+m}`.  The box of :func:`design` around a path that moves mostly along one
    direction is mostly empty; the tube puts the same samples where the path is (sampling
    where the macro problem will go)."""
    from scipy.stats import qmc

    path = np.atleast_2d(np.asarray(path, dtype=float))
    m = path.shape[1]
    d = {3: 2, 6: 3}.get(m)
    if d is None or len(path) < 2:
        raise ValueError("the path needs two or more points of 3 (2D) or 6 (3D) components")
    r = np.broadcast_to(np.asarray(radius, dtype=float), (m,))
    if np.any(r < 0.0):
        raise ValueError("the tube radius must be non-negative")
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0.0:
        raise ValueError("the path has zero length")
    u = qmc.Sobol(1 + m, scramble=True, seed=seed).random(int(n))
    along = np.column_stack([np.interp(u[:, 0] * arc[-1], arc, path[:, a]) for a in range(m)])
    comps = np.vstack([np.zeros(m), along + r * (2.0 * u[:, 1:] - 1.0)])
    return comps * _weights(d)


def uniaxial_path(stretch: float, nu: float, n: int = 12, overshoot: float = 1.1) -> np.ndarray:
    """Green–Lagrange tensor components :math:`(E_{11}, E_{22}, E_{33}, E_{23}, E_{13},
    E_{12})` (rows, as :func:`tube_design` takes them) along uniaxial stretch in y,

    .. math::
        E_{22} = \\tfrac12(\\lambda^2 - 1),\\qquad
        E_{11} = E_{33} = \\tfrac12(\\lambda^{-2\\nu} - 1),\\qquad
        1 \\le \\lambda \\le 1 + \\text{overshoot}\\cdot\\text{stretch},

    at ``n`` equally spaced stretches: the path of a block pulled in y with free lateral faces
    and a lateral contraction of Poisson ratio ``nu`` (given, not probed from the RVE: the
    tube's radius must cover the actual one).  ``overshoot`` > 1 covers the macro Newton
    iterates beyond the last load step."""
    if n < 2 or stretch <= 0.0:
        raise ValueError("the uniaxial path needs n >= 2 points and a positive stretch")
    lam = np.linspace(1.0, 1.0 + overshoot * stretch, n)
    axial, lateral = 0.5 * (lam**2 - 1.0), 0.5 * (lam ** (-2.0 * nu) - 1.0)
    zero = np.zeros_like(lam)
    return np.column_stack([lateral, axial, lateral, zero, zero, zero])


# -- the database ----------------------------------------------------------------------------------
@dataclass
class RVEDatabase:
    """RVE responses in Mandel components: ``strain`` :math:`x` (n, m), ``stress`` :math:`S`
    (n, m), ``tangent`` :math:`\\partial S/\\partial x` (n, m, m); ``online`` marks samples
    added during a run (the others come from the design)."""

    dim: int
    strain: np.ndarray
    stress: np.ndarray
    tangent: np.ndarray
    online: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        m = len(_pairs(self.dim))
        self.strain = np.asarray(self.strain, dtype=float).reshape(-1, m)
        self.stress = np.asarray(self.stress, dtype=float).reshape(-1, m)
        self.tangent = np.asarray(self.tangent, dtype=float).reshape(-1, m, m)
        if len(self.online) != len(self.strain):
            self.online = np.zeros(len(self.strain), dtype=bool)
        self.online = np.asarray(self.online, dtype=bool)

    def __len__(self) -> int:
        return len(self.strain)

    @classmethod
    def from_responses(
        cls, F: np.ndarray, P: np.ndarray, A: np.ndarray, online: bool = False
    ) -> RVEDatabase:
        """Samples from RVE responses: deformation gradients, :math:`\\bar P` and
        :math:`\\partial\\bar P/\\partial\\bar F` (n, d, d[, d, d])."""
        F = np.asarray(F, dtype=float)
        d = F.shape[-1]
        S, D = _pk2(F, np.asarray(P, dtype=float), np.asarray(A, dtype=float))
        n = len(F)
        return cls(d, mandel(green_lagrange(F)), mandel(S), _mandel4(D), np.full(n, bool(online)))

    def extend(self, other: RVEDatabase) -> None:
        self.strain = np.vstack([self.strain, other.strain])
        self.stress = np.vstack([self.stress, other.stress])
        self.tangent = np.concatenate([self.tangent, other.tangent])
        self.online = np.concatenate([self.online, other.online])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the database to ``path`` (``.npz``) from this process, atomically (a temporary
        file in the same folder renamed over the target)."""
        arrays = {
            "dim": self.dim,
            "strain": self.strain,
            "stress": self.stress,
            "tangent": self.tangent,
            "online": self.online,
        }
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RVEDatabase:
        with np.load(Path(path)) as data:
            return cls(
                int(data["dim"]), data["strain"], data["stress"], data["tangent"], data["online"]
            )


# -- the potential -------------------------------------------------------------------------------
def _exponents(m: int, degree: int, lowest: int = 2) -> np.ndarray:
    """Exponents (n_terms, m) of the monomials of total degree ``lowest .. degree``."""
    rows = [
        a
        for total in range(lowest, degree + 1)
        for a in itertools.product(range(total + 1), repeat=m)
        if sum(a) == total
    ]
    return np.array(rows, dtype=int).reshape(-1, m)


class PotentialFit:
    """A polynomial potential :math:`W(x)` of degree ``degree`` (see the module) with its
    gradient and Hessian, vectorized over points."""

    def __init__(self, m: int, degree: int, strain_scale: float, stress_scale: float) -> None:
        if degree < 2:
            raise ValueError(f"the potential needs degree >= 2, got {degree}")
        self.m, self.degree = m, int(degree)
        self.alpha = _exponents(m, self.degree)
        self.s0, self.sigma0 = float(strain_scale), float(stress_scale)
        self.coef = np.zeros(len(self.alpha))

    def _factors(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:math:`z_k^{a}`, :math:`a z_k^{a-1}`, :math:`a(a-1) z_k^{a-2}` at the exponents:
        three arrays (n, terms, m)."""
        p = self.degree
        e = np.arange(p + 1)
        pw = z[:, :, None] ** e  # (n, m, p+1)
        d1 = np.zeros_like(pw)
        d1[:, :, 1:] = e[1:] * pw[:, :, :-1]
        d2 = np.zeros_like(pw)
        d2[:, :, 2:] = (e[2:] * (e[2:] - 1)) * pw[:, :, :-2]
        k = np.arange(self.m)[None, :]
        return pw[:, k, self.alpha], d1[:, k, self.alpha], d2[:, k, self.alpha]

    def bases(self, x: np.ndarray, hessian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Gradient (n, m, terms) and Hessian (n, m, m, terms) of the monomials in :math:`z`."""
        z = np.atleast_2d(x) / self.s0
        P0, P1, P2 = self._factors(z)
        n, t, m = P0.shape
        # products of the factors before and after each variable (no division: z may be 0)
        pre = np.ones((n, t, m + 1))
        suf = np.ones((n, t, m + 1))
        for k in range(m):
            pre[:, :, k + 1] = pre[:, :, k] * P0[:, :, k]
            suf[:, :, m - 1 - k] = suf[:, :, m - k] * P0[:, :, m - 1 - k]
        grad = np.empty((n, m, t))
        for j in range(m):
            grad[:, j] = pre[:, :, j] * P1[:, :, j] * suf[:, :, j + 1]
        if not hessian:
            return grad, None
        hess = np.empty((n, m, m, t))
        for i in range(m):
            hess[:, i, i] = pre[:, :, i] * P2[:, :, i] * suf[:, :, i + 1]
            left = pre[:, :, i] * P1[:, :, i]
            for j in range(i + 1, m):
                hess[:, i, j] = hess[:, j, i] = left * P1[:, :, j] * suf[:, :, j + 1]
                left = left * P0[:, :, j]
        return grad, hess

    def fit(self, db: RVEDatabase, group: Sequence[np.ndarray], tangent_weight: float) -> float:
        """Least-squares fit on the stresses and tangents of ``db`` and their images under the
        rotation matrices ``group`` (Mandel); returns the relative residual of the stresses."""
        x, S, D = _augment(db, group)
        grad, hess = self.bases(x)
        m = self.m
        iu = np.triu_indices(m)
        rows = [grad.reshape(-1, grad.shape[-1])]
        rhs = [(S / self.sigma0).ravel()]
        if tangent_weight > 0:
            rows.append(tangent_weight * hess[:, iu[0], iu[1]].reshape(-1, hess.shape[-1]))
            rhs.append(tangent_weight * (D[:, iu[0], iu[1]] * self.s0 / self.sigma0).ravel())
        A, b = np.vstack(rows), np.concatenate(rhs)
        norms = np.linalg.norm(A, axis=0)
        norms[norms == 0] = 1.0
        # complete orthogonal factorization (rank revealing, also for fewer equations than terms)
        c, *_ = scipy.linalg.lstsq(A / norms, b, lapack_driver="gelsy", check_finite=False)
        self.coef = c / norms
        fitted = grad @ self.coef
        return float(np.abs(fitted - S / self.sigma0).max())

    def __call__(self, x: np.ndarray, tangent: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """:math:`S` (n, m) and :math:`\\partial S/\\partial x` (n, m, m) at Mandel strains."""
        grad, hess = self.bases(x, hessian=tangent)
        S = self.sigma0 * (grad @ self.coef)
        D = None if hess is None else (self.sigma0 / self.s0) * (hess @ self.coef)
        return S, D


def _augment(db: RVEDatabase, group: Sequence[np.ndarray]):
    """The samples and their images under the Mandel rotations ``group``."""
    xs, Ss, Ds = [], [], []
    for R in group:
        xs.append(db.strain @ R.T)
        Ss.append(db.stress @ R.T)
        Ds.append(np.einsum("ab,nbc,dc->nad", R, db.tangent, R))
    return np.vstack(xs), np.vstack(Ss), np.concatenate(Ds)


@dataclass(frozen=True)
class SurrogateOptions:
    """Settings of the hierarchical surrogate.

    ``database``: an ``.npz`` file to read the offline samples from (if it exists) and to write
    the database to after the offline phase and every enrichment (``None``: in memory);
    ``lower``/``upper``: the design box of Green–Lagrange tensor components (see
    :func:`strain_box`; needed when the database is built); ``samples``: Sobol points of the
    design; ``seed``; ``degree``: of the potential :math:`p` (its companion has :math:`p - 1`);
    ``tol``: the error-estimate threshold (relative to the stress scale) above which a point is
    solved by the RVE; ``margin``: relative widening of the sampled box before a point counts as
    outside; ``symmetry``: ``None`` or ``"cubic"``; ``tangent_weight``: of the tangent equations
    in the fit; ``enrich``: add the RVE solves of the online phase to the database and refit;
    ``path``/``radius``: instead of the box, a tube of half-width ``radius`` around the strain
    path ``path`` (rows of tensor components as ``lower``; see :func:`tube_design`).
    """

    database: str | os.PathLike | None = None
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None
    samples: int = 128
    seed: int = 0
    degree: int = 6
    tol: float = 2e-3
    margin: float = 0.0
    symmetry: str | None = None
    tangent_weight: float = 1.0
    enrich: bool = True
    path: tuple[tuple[float, ...], ...] | None = None
    radius: float | tuple[float, ...] = 0.0

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> SurrogateOptions:
        spec = dict(spec)
        for key in ("lower", "upper"):
            if spec.get(key) is not None:
                spec[key] = tuple(float(v) for v in spec[key])
        if spec.get("path") is not None:
            spec["path"] = tuple(tuple(float(v) for v in row) for row in spec["path"])
        if isinstance(spec.get("radius"), list | tuple):
            spec["radius"] = tuple(float(v) for v in spec["radius"])
        return cls(**spec)

    def strains(self) -> np.ndarray:
        """The offline design: :func:`tube_design` around ``path`` if given, else
        :func:`design` over the box ``lower``/``upper``."""
        if self.path is not None:
            return tube_design(np.array(self.path), self.samples, self.radius, self.seed)
        if self.lower is None or self.upper is None:
            raise ValueError("building the surrogate database needs lower/upper or a path")
        return design(self.lower, self.upper, self.samples, self.seed)


class Surrogate:
    """The fitted pair (degree :math:`p` and :math:`p-1`), the sampled box and the error
    estimate over a :class:`RVEDatabase`; identical on every rank that fits the same data."""

    def __init__(self, db: RVEDatabase, options: SurrogateOptions) -> None:
        self.db, self.options = db, options
        self.group = [_rotation_matrix(Q) for Q in symmetry_group(options.symmetry, db.dim)]
        self.fit()

    def fit(self) -> None:
        db, o = self.db, self.options
        if len(db) < 2:
            raise ValueError("the surrogate needs at least two samples in its database")
        m = db.strain.shape[1]
        x, _, _ = _augment(db, self.group)
        s0 = float(np.abs(x).max()) or 1.0
        sigma0 = float(np.abs(db.stress).max()) or 1.0
        self.fine = PotentialFit(m, o.degree, s0, sigma0)
        self.coarse = PotentialFit(m, max(o.degree - 1, 2), s0, sigma0)
        self.residual = self.fine.fit(db, self.group, o.tangent_weight)
        self.coarse.fit(db, self.group, o.tangent_weight)
        lo, hi = x.min(axis=0), x.max(axis=0)
        pad = o.margin * (hi - lo)
        self.lower, self.upper = lo - pad, hi + pad
        log.debug(
            "surrogate fitted on %d samples (x%d by symmetry): degree %d, residual %.2e",
            len(db),
            len(self.group),
            o.degree,
            self.residual,
        )

    def stress(self, x: np.ndarray, tangent: bool = True):
        """:math:`S` and :math:`\\partial S/\\partial x` of the used (degree :math:`p`) fit."""
        return self.fine(x, tangent)

    def estimate(self, x: np.ndarray) -> np.ndarray:
        """The error estimate :math:`\\eta` (see the module) at Mandel strains (n, m)."""
        S1, _ = self.fine(x, tangent=False)
        S0, _ = self.coarse(x, tangent=False)
        return np.abs(S1 - S0).max(axis=1) / self.fine.sigma0

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Whether the strains lie in the sampled box (widened by the margin)."""
        return np.all((x >= self.lower) & (x <= self.upper), axis=1)

    def respond(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:math:`\\bar P`, :math:`\\partial\\bar P/\\partial\\bar F` (vectorized), the error
        estimate and the inside flags at deformation gradients (n, d, d)."""
        d = self.db.dim
        x = mandel(green_lagrange(F))
        S, D = self.stress(x)
        P, A = first_piola(F, unmandel(S, d), _unmandel4(D, d))
        return P, A, self.estimate(x), self.inside(x)


# -- the offline phase ---------------------------------------------------------------------------
def _rve_response(
    rve: Any,
    F: np.ndarray,
    start: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    max_halvings: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:math:`\\bar P`, the consistent :math:`\\partial\\bar P/\\partial\\bar F`, the fluctuation
    and its sensitivity of ``rve`` (history-free) at ``F``.  Newton starts from the first-order
    predictor of ``start`` (a solved ``(F0, fluctuation, sensitivity)``; ``None``: the reference
    state); should it fail, the straight path from there is followed in 2, 4, ... increments,
    and then the path from the reference state."""
    from multiscale.coupling.pool import MicroSolveError

    d = F.shape[0]
    origins = [start] if start is not None else []
    origins.append((np.eye(d), None, None))
    for o, (G0, fluct0, sens0) in enumerate(origins):
        for level in range(max_halvings + 1):
            n = 2**level
            fluct, sens, G_last = fluct0, sens0, G0
            try:
                for k in range(1, n + 1):
                    G = G0 + (k / n) * (F - G0)
                    guess = None if fluct is None else rve.predict(fluct, sens, G - G_last)
                    response, _, fluct = rve.solve(
                        G, None, guess, fallback=fluct, tangent="consistent"
                    )
                    sens, G_last = response.sensitivity, G
                return response.flux, response.tangent, fluct, sens
            except MicroSolveError:
                if o == len(origins) - 1 and level == max_halvings:
                    raise
                log.debug("offline RVE solve at F = %s: %d increments", F.tolist(), 2 * n)
    raise AssertionError("unreachable")


def build_database(pool: MicroPool, rve: Any, strains: np.ndarray) -> RVEDatabase:
    """Solve ``rve`` (on ``pool.micro_comm``, history-free, finite strain) at the Mandel strains
    (n, m) -- sample ``t`` on group ``t mod n_groups``, its Newton started from the predictor of
    the nearest sample the group has solved when that is nearer than the reference state --
    and return the database on every rank (collective on ``pool.comm``)."""
    d = rve.dim
    U = right_stretch(unmandel(np.asarray(strains, dtype=float), d))
    solved: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def task(t: int, comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray]:
        start = None
        if solved:
            dist = [np.linalg.norm(U[t] - s[0]) for s in solved]
            k = int(np.argmin(dist))
            if dist[k] < np.linalg.norm(U[t] - np.eye(d)):
                start = solved[k]
        P, A, fluct, sens = _rve_response(rve, U[t], start)
        if sens is not None:
            solved.append((U[t], fluct, sens))
        return P, A

    results = pool.map_tasks(task, len(U))
    P = np.array([r[0] for r in results])
    A = np.array([r[1] for r in results])
    return RVEDatabase.from_responses(U, P, A)


# -- the micro model -----------------------------------------------------------------------------
class SurrogateMicroModel(MicroModel):
    """:class:`MicroModel` whose points get the surrogate's response unless the error control
    sends them to the RVE (see the module); same interface (:meth:`evaluate`, :meth:`commit`,
    :meth:`rollback`).  Collective construction on ``pool.comm`` (the offline phase, or reading
    the database).  Needs history-free finite-strain phases, ``group_size`` 1 and no dynamic
    balancing."""

    def __init__(
        self,
        pool: MicroPool,
        cell: CellSource,
        materials: Mapping[str | int, Any],
        n_points: int,
        options: SurrogateOptions,
        *,
        predictor: bool = True,
        **rve_options: Any,
    ) -> None:
        if pool.group_size != 1 or pool.balancing:
            raise ValueError("the FE² surrogate needs micro.group_size 1 and no balancing")
        stateful = sorted(str(name) for name, law in materials.items() if has_state(law))
        if stateful:
            raise ValueError(
                f"the FE² surrogate needs history-free micro phases: {stateful} carry internal "
                "variables (their response depends on the strain path, not on E alone)"
            )
        super().__init__(pool, cell, materials, n_points, predictor=predictor, **rve_options)
        if self.kind != "deformation":
            raise ValueError(
                "the FE² surrogate is for finite-strain (hyperelastic) RVEs; small-strain "
                "linear phases are solved once anyway"
            )
        if self.rve.tangent_kind != "consistent":
            raise ValueError("the FE² surrogate needs the consistent micro tangent")
        self.options = options
        comm = pool.comm
        path = None if options.database is None else Path(options.database)
        self.offline_solves = 0
        if path is not None and path.exists():
            db = RVEDatabase.load(path)
            if db.dim != self.dim:
                raise ValueError(f"the database {path} is {db.dim}D, the RVE {self.dim}D")
            log.info("surrogate: read %d samples from %s", len(db), path)
        else:
            strains = options.strains()
            db = build_database(pool, self.rve, strains)
            self.offline_solves = len(db)
            self._save(db)
        self.surrogate = Surrogate(db, options)
        self._pending: list[RVEDatabase] = []
        self.served = 0  # point evaluations answered by the surrogate on this rank
        self.sent = 0  # point evaluations sent to the RVE by the error control, this rank
        self.refits = 0
        if comm.rank == 0:
            log.info(
                "surrogate: %d samples, degree %d, fit residual %.2e of the stress scale %.3g",
                len(db),
                options.degree,
                self.surrogate.residual,
                self.surrogate.fine.sigma0,
            )

    def _save(self, db: RVEDatabase) -> None:
        if self.options.database is None:
            return
        from multiscale.output import on_rank0

        on_rank0(self.pool.comm, lambda: db.save(self.options.database))

    def evaluate(self, G: np.ndarray) -> MicroEvaluation:
        """Responses at this rank's deformation gradients ``G`` (n, d, d): the surrogate's,
        vectorized; the RVE's at the points the error control rejects (their samples wait for
        :meth:`commit`).  Not collective."""
        d, n = self.dim, len(G)
        seconds = {"newton": 0.0, "tangent": 0.0, "averages": 0.0}
        flux = np.full((n, d, d), np.nan)
        tangent = np.full((n, d, d, d, d), np.nan)
        finite = np.all(np.isfinite(G.reshape(n, -1)), axis=1) & (np.linalg.det(G) > 0)
        eta = np.full(n, np.inf)
        inside = np.zeros(n, dtype=bool)
        if finite.any():
            P, A, eta[finite], inside[finite] = self.surrogate.respond(G[finite])
            flux[finite], tangent[finite] = P, A
        rve = ~(inside & (eta <= self.options.tol))  # includes non-finite: the RVE fails them
        idx = np.flatnonzero(rve)
        if len(idx):
            log.debug(
                "surrogate: %d of %d points to the RVE (%d outside, max estimate %.2e)",
                len(idx),
                n,
                int(np.sum(~inside)),
                float(np.max(eta, initial=0.0)),
            )
        self.served += int(n - len(idx))
        self.sent += len(idx)
        hill, iterations = np.zeros(n), np.zeros(n, dtype=int)
        failures = []
        if len(idx):
            trial = self.trial

            def solve(key: int, x: np.ndarray) -> np.ndarray:
                i = int(idx[key])
                Gk = x.reshape(d, d)
                sens = trial["sensitivity"][i] if self.predictor else None
                response, _, fluct = self._solve_point(
                    Gk,
                    self.committed["state"][i],
                    trial["fluctuation"][i],
                    sens,
                    trial["G"][i],
                    seconds,
                )
                trial["fluctuation"][i] = fluct
                trial["G"][i] = Gk
                if self.predictor:
                    trial["sensitivity"][i] = response.sensitivity
                return self._response_row(response)

            out, failures = self.pool.run(solve, G[idx].reshape(len(idx), d * d))
            if out.shape[1] == 0:
                out = np.full((len(idx), d * d + d**4 + 3), np.nan)
            ev = self._evaluation(out, [], seconds)
            ok = ~np.isnan(out[:, 0])
            self.rve_solves += int(ok.sum())
            flux[idx], tangent[idx] = ev.flux, ev.tangent
            hill[idx], iterations[idx] = ev.hill_mandel, ev.iterations
            failures = [type(f)(int(idx[f.key]), f.group, f.message) for f in failures]
            if self.options.enrich and ok.any():
                self._pending.append(
                    RVEDatabase.from_responses(G[idx][ok], ev.flux[ok], ev.tangent[ok], True)
                )
        return MicroEvaluation(
            flux=flux,
            tangent=tangent,
            hill_mandel=hill,
            iterations=iterations,
            mean_p=np.zeros(n),
            failures=failures,
            seconds=seconds,
        )

    def commit(self) -> None:
        """Commit the RVE histories, then add every rank's new samples (allgathered, in rank
        order) to the database and refit on every rank (collective on ``pool.comm``)."""
        super().commit()
        self.enrich()

    def enrich(self) -> int:
        """Add the pending samples of all ranks and refit when there are any (collective);
        returns the number added."""
        d = self.dim
        m = len(_pairs(d))
        mine = self._pending
        self._pending = []
        local = (
            np.vstack(
                [np.hstack([p.strain, p.stress, p.tangent.reshape(len(p), -1)]) for p in mine]
            )
            if mine
            else np.zeros((0, 2 * m + m * m))
        )
        rows = self.pool.comm.allgather(local)
        new = np.vstack(rows)
        if not len(new):
            return 0
        db = self.surrogate.db
        db.extend(
            RVEDatabase(
                d, new[:, :m], new[:, m : 2 * m], new[:, 2 * m :], np.ones(len(new), dtype=bool)
            )
        )
        self.surrogate.fit()
        self.refits += 1
        self._save(db)
        if self.pool.comm.rank == 0:
            log.info(
                "surrogate: %d online samples added (%d in all), refitted: residual %.2e",
                len(new),
                len(db),
                self.surrogate.residual,
            )
        return len(new)

    def statistics(self) -> dict[str, Any]:
        """Point evaluations served by the surrogate and sent to the RVE, summed over the ranks
        (collective)."""
        comm = self.pool.comm
        served = comm.allreduce(self.served, op=MPI.SUM)
        sent = comm.allreduce(self.sent, op=MPI.SUM)
        db = self.surrogate.db
        return {
            "evaluations": served + sent,
            "served": served,
            "rve_solves_online": sent,
            "avoided_fraction": served / (served + sent) if served + sent else 0.0,
            "offline_solves": self.offline_solves,
            "database_size": len(db),
            "online_samples": int(db.online.sum()),
            "refits": self.refits,
            "fit_residual": self.surrogate.residual,
            "degree": self.options.degree,
            "tol": self.options.tol,
            "symmetry": self.options.symmetry,
        }
