r"""Floquet–Bloch waves in a periodic cell: dispersion diagrams, band gaps, long-wave speeds.

**Problem.**  Time-harmonic waves :math:`u(y)\,e^{-i\omega t}` in a periodic medium with phase
laws :math:`q` (modulus :math:`E`/:math:`\mu` for scalar waves, Hooke's law for in-plane
elastic waves) and density :math:`\rho`:

.. math::
    -\nabla\cdot q(g(u)) = \rho\,\omega^2 u, \qquad g(u) = \nabla u \ \text{(scalar)}, \quad
    g(u) = \operatorname{sym}\nabla u \ \text{(elastic)}.

By Floquet–Bloch, :math:`u(y) = e^{i k\cdot y} p(y)` with :math:`p` periodic on the cell
:math:`Y` and :math:`k` in the Brillouin zone.  Then :math:`g(u) = e^{i k\cdot y} g_k(p)` with

.. math::
    g_k(p) = \nabla p + i\,p\,k \ \text{(scalar)}, \qquad
    g_k(p) = \operatorname{sym}(\nabla p + i\,p\otimes k) \ \text{(elastic)},

and the weak form on periodic :math:`p, \hat p` is the Hermitian generalized eigenproblem

.. math::
    a_k(p, \hat p) = \int_Y q(g_k(p)) : \overline{g_k(\hat p)}\,dy
    = \omega^2 \int_Y \rho\, p\cdot\overline{\hat p}\,dy = \omega^2 m(p, \hat p).

**Real form.**  PETSc here has real scalars, so :math:`p = p_r + i p_i` and the test function
:math:`\hat p = \hat p_r + i \hat p_i`; the real part of the sesquilinear forms is a real
symmetric bilinear form on the doubled periodic space :math:`(p_r, p_i)`.  With the real and
imaginary parts of the Bloch gradient,

.. math::
    g_r = \nabla p_r - p_i\,k, \qquad g_i = \nabla p_i + p_r\,k \quad\text{(scalar;
    elastic: } g_r = \operatorname{sym}(\nabla p_r - p_i\otimes k),\
    g_i = \operatorname{sym}(\nabla p_i + p_r\otimes k)),

:math:`\operatorname{Re} a_k = \int_Y q(g_r):\hat g_r + q(g_i):\hat g_i` and
:math:`\operatorname{Re} m = \int_Y \rho\,(p_r\cdot\hat p_r + p_i\cdot\hat p_i)`.  Expanded (scalar
case, :math:`K_0(p,\hat p) = \int E\nabla p\cdot\nabla\hat p`), the block system reads

.. math::
    \begin{pmatrix} K_0 + K_2 & C \\ -C & K_0 + K_2 \end{pmatrix}
    \begin{pmatrix} p_r \\ p_i \end{pmatrix}
    = \omega^2 \begin{pmatrix} M & 0 \\ 0 & M \end{pmatrix}
    \begin{pmatrix} p_r \\ p_i \end{pmatrix},
    \quad
    K_2 = \int E\,|k|^2 p\,\hat p,\quad
    C(p, \hat p) = \int E\,(\hat p\,k\cdot\nabla p - p\,k\cdot\nabla\hat p),

:math:`C` skew (:math:`C^T = -C`), so the block operator is symmetric.  Every eigenpair
:math:`(\omega^2, p)` of the Hermitian problem gives two real ones, :math:`(p_r, p_i)` and
:math:`(-p_i, p_r)` (that is :math:`i p`): each eigenvalue appears twice and is kept once.

**Solution.**  The forms are compiled once with :math:`k` a :class:`dolfinx.fem.Constant`; the
mass matrix is assembled once, the stiffness re-assembled in place for every :math:`k`, so the
symbolic factorizations are reused (one per solver, then numeric ones only: checked with the
PETSc log).  SLEPc
solves the generalized Hermitian problem (GHEP) by Krylov–Schur with shift-and-invert about a
small negative shift :math:`\sigma` (the operator :math:`A - \sigma B` is positive definite even at
:math:`k = 0`, where :math:`\omega = 0` is an eigenvalue), with a MUMPS factorization.  The periodic
constraint (dolfinx_mpc) gives the slave rows the diagonal 1 in :math:`A` and 0 in :math:`B`: their
eigenvalues are infinite, never near the shift.

**Band gaps and long waves.**  A gap lies between bands :math:`n` and :math:`n+1` when
:math:`\max_k \omega_n < \min_k \omega_{n+1}` over the path.  The acoustic branches
:math:`\omega = c\,|k| + O(|k|^3)` give the long-wave speeds
:math:`c = \lim_{k\to 0}\omega/|k|`, estimated from two small wave numbers :math:`\delta, 2\delta`
along a direction :math:`n` by Richardson extrapolation,
:math:`c \approx (4 c(\delta) - c(2\delta))/3` (the ratio is even in :math:`|k|`).  They are
compared with the homogenized speeds: the square roots of the eigenvalues of the acoustic tensor
:math:`\Gamma_{ik} = C^{hom}_{ijkl}n_j n_l/\langle\rho\rangle` (scalar:
:math:`n\cdot A^{hom} n/\langle\rho\rangle`) of the effective tensor from
:mod:`multiscale.cell`.

**Distribution.**  The k-points are independent tasks of
:meth:`multiscale.coupling.pool.MicroPool.map_tasks`: each rank builds the cell and one
:class:`BlochSolver` on ``MPI.COMM_SELF`` and solves its share of the k-points; the result is the
same on any number of ranks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc
from slepc4py import SLEPc

from multiscale.coupling.pool import MicroPool
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_periodic
from multiscale.nonlinear import PETScOwner, unique_prefix
from multiscale.petsc_options import prefixed_options
from multiscale.physics.base import Material, check_positive, kind_of
from multiscale.physics.diffusion import Conductivity
from multiscale.physics.elasticity import IsotropicElasticity
from multiscale.tensors import stiffness_to_tensor

from .constraints import periodic_map

__all__ = [
    "BlochSolver",
    "Dispersion",
    "KPath",
    "WavePhase",
    "default_bloch_options",
    "dispersion",
    "find_gaps",
    "homogenized_speeds",
    "kpath",
    "layered_cell",
    "periodic_constraint",
    "symmetry_points",
]


# -- parameters -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WavePhase:
    """A phase of the wave problem: its law (:class:`~multiscale.physics.Conductivity` as the
    modulus of scalar waves, an elastic law for in-plane elastic waves) and its density."""

    law: Material
    density: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "density", check_positive("density rho", self.density))

    @classmethod
    def scalar(cls, modulus: float, density: float) -> WavePhase:
        """Scalar (anti-plane shear, acoustic, longitudinal 1D) waves: modulus and density."""
        return cls(Conductivity(modulus), density)

    @classmethod
    def elastic(cls, E: float, nu: float, density: float) -> WavePhase:
        """Isotropic elastic phase (plane strain in 2D) from Young's modulus and Poisson's
        ratio."""
        return cls(IsotropicElasticity.from_young(E, nu), density)


def default_bloch_options() -> dict[str, Any]:
    """Krylov–Schur, shift-and-invert with a MUMPS :math:`LDL^T` factorization (3-4 times faster
    than MUMPS LU on the positive definite :math:`A - \\sigma B`), tight tolerance; the
    ``inertia_`` options are those of the :math:`LDL^T` factorization of the inertia check."""
    return {
        "eps_type": "krylovschur",
        "eps_tol": 1.0e-12,
        "eps_max_it": 500,
        "st_type": "sinvert",
        "st_ksp_type": "preonly",
        "st_pc_type": "cholesky",
        "st_pc_factor_mat_solver_type": "mumps",
        "inertia_mat_mumps_icntl_24": 1,  # MUMPS reports the inertia only with this
    }


# -- cells and paths ------------------------------------------------------------------------
def layered_cell(comm: MPI.Comm, thicknesses: Sequence[float], h: float) -> CellMesh:
    """The 1D cell :math:`[0, \\sum_j t_j]` of layers of thickness :math:`t_j` (phases
    ``layer0``, ``layer1``, ... with tags 1, 2, ...), each meshed by
    :math:`\\max(1, \\lceil t_j/h\\rceil)` equal intervals."""
    t = np.array([check_positive(f"thickness of layer {j}", v) for j, v in enumerate(thicknesses)])
    h = check_positive("mesh size h", h)
    if len(t) == 0:
        raise ValueError("a layered cell needs at least one layer")
    n = np.maximum(1, np.ceil(t / h - 1e-9)).astype(int)
    breaks_s = np.concatenate([[0.0], np.cumsum(n)]) / n.sum()
    breaks_y = np.concatenate([[0.0], np.cumsum(t)])
    mesh = dolfinx.mesh.create_interval(comm, int(n.sum()), [0.0, 1.0])
    x = mesh.geometry.x
    x[:, 0] = np.interp(x[:, 0], breaks_s, breaks_y)
    tdim = mesh.topology.dim
    ncells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    cells = np.arange(ncells, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, 0]
    tags = np.searchsorted(breaks_y[1:-1], mid).astype(np.int32) + 1
    cell_tags = dolfinx.mesh.meshtags(mesh, tdim, cells, tags)
    phases = {f"layer{j}": j + 1 for j in range(len(t))}
    return CellMesh(mesh, cell_tags, phases, np.array([[0.0], [float(breaks_y[-1])]]))


def symmetry_points(lengths: Sequence[float]) -> dict[str, np.ndarray]:
    """High-symmetry points of the Brillouin zone of a box cell of edge lengths
    :math:`\\ell_i`: 1D ``G`` (:math:`\\Gamma`), ``X`` (:math:`\\pi/\\ell`); 2D ``G``, ``X``
    :math:`(\\pi/\\ell_1, 0)`, ``Y`` :math:`(0, \\pi/\\ell_2)`, ``M`` :math:`(\\pi/\\ell_1,
    \\pi/\\ell_2)`; 3D also ``Z``, ``R``."""
    b = math.pi / np.asarray(lengths, dtype=float)
    d = len(b)
    e = np.eye(d) * b
    pts = {"G": np.zeros(d), "Gamma": np.zeros(d), "X": e[0]}
    if d >= 2:
        pts.update(Y=e[1], M=e[0] + e[1])
    if d == 3:
        pts.update(Z=e[2], R=b.copy())
    return pts


@dataclass(frozen=True)
class KPath:
    """Wave vectors along a broken line: ``k`` ``(n, d)``, the arc length ``distance`` ``(n,)``
    and the corners ``labels`` (arc length, name)."""

    k: np.ndarray
    distance: np.ndarray
    labels: tuple[tuple[float, str], ...]


def kpath(
    corners: Sequence[str | Sequence[float]], lengths: Sequence[float], per_segment: int
) -> KPath:
    """The path through ``corners`` (names of :func:`symmetry_points` or explicit vectors),
    ``per_segment`` intervals per segment, corners included once."""
    if len(corners) < 2:
        raise ValueError("a k-path needs at least two points")
    if per_segment < 1:
        raise ValueError(f"points per segment must be at least 1, got {per_segment}")
    named = symmetry_points(lengths)
    d = len(lengths)
    pts, names = [], []
    for c in corners:
        if isinstance(c, str):
            if c not in named:
                raise ValueError(f"unknown k-point {c!r}; known: {sorted(named)}")
            pts.append(named[c])
            names.append("Γ" if c in ("G", "Gamma") else c)
        else:
            v = np.asarray(c, dtype=float)
            if v.shape != (d,):
                raise ValueError(f"k-point {list(c)} must have {d} components")
            pts.append(v)
            names.append(f"({', '.join(f'{x:.3g}' for x in v)})")
    s = np.linspace(0.0, 1.0, per_segment + 1)
    ks = [pts[0][None, :]]
    for a, b in itertools.pairwise(pts):
        ks.append(a + np.outer(s[1:], b - a))
    k = np.vstack(ks)
    dist = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(k, axis=0), axis=1))])
    labels = tuple((float(dist[j * per_segment]), n) for j, n in enumerate(names))
    return KPath(k, dist, labels)


def periodic_constraint(
    V: dolfinx.fem.FunctionSpace, box: np.ndarray
) -> dolfinx_mpc.MultiPointConstraint:
    """Periodicity on the box only (no pinned dof, unlike the cell problem's constraint): every
    dof with a coordinate on an upper face is the slave of its image with all upper coordinates
    moved to the lower faces at once (see :mod:`multiscale.cell.constraints`)."""
    on_upper, to_lower = periodic_map(box)
    mpc = dolfinx_mpc.MultiPointConstraint(V)
    mpc.create_periodic_constraint_geometrical(V, on_upper, to_lower, [])
    mpc.finalize()
    return mpc


# -- the eigenproblem -----------------------------------------------------------------------
class BlochSolver(PETScOwner):
    """The lowest ``nbands`` Bloch frequencies of a cell at given wave vectors.

    Parameters
    ----------
    cell:
        The periodic cell (1D from :func:`layered_cell`, 2D/3D from :mod:`multiscale.mesh`).
    phases:
        Phase name or tag -> :class:`WavePhase` (all scalar or all elastic).
    degree:
        Lagrange degree.
    nbands:
        Number of bands returned by :meth:`solve`.
    shift:
        Shift :math:`\\sigma < 0` of shift-and-invert (default
        :math:`-10^{-2}\\min_p(c_p^2)\\,(\\pi/\\ell_{max})^2` with :math:`c_p^2` the smallest
        eigenvalue of the phase tensor over the density).
    petsc_options_prefix, petsc_options:
        Options prefix of the EPS (default ``multiscale_bloch_<n>_``) and overrides of
        :func:`default_bloch_options` under it.

    Collective on ``cell.comm`` (``MPI.COMM_SELF`` in :func:`dispersion`).
    """

    def __init__(
        self,
        cell: CellMesh,
        phases: Mapping[str | int, WavePhase],
        *,
        degree: int = 2,
        nbands: int = 6,
        shift: float | None = None,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        if nbands < 1:
            raise ValueError(f"the number of bands must be at least 1, got {nbands}")
        self.cell, self.nbands = cell, int(nbands)
        self.dim = cell.dim
        self.phases: dict[int, WavePhase] = cell.by_tag(phases)
        self.kind = kind_of({t: p.law for t, p in self.phases.items()})
        if self.kind not in ("scalar", "strain"):
            raise ValueError(f"Bloch waves need scalar or small-strain laws, not {self.kind!r}")
        if self.dim >= 2:
            check_periodic(cell)
        self.shift = self._default_shift() if shift is None else float(shift)
        self.prefix = petsc_options_prefix or unique_prefix("bloch")
        self.options = default_bloch_options() | dict(petsc_options or {})
        self.ncomp = 1 if self.kind == "scalar" else self.dim
        mesh = cell.mesh
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (2 * self.ncomp,)))
        self.mpc = periodic_constraint(self.V, cell.box)
        self.k = dolfinx.fem.Constant(mesh, np.zeros(self.dim))
        a, m = self._forms()
        self._a, self._m = dolfinx.fem.form(a), dolfinx.fem.form(m)
        self.A = self._own(dolfinx_mpc.assemble_matrix(self._a, self.mpc, bcs=[], diagval=1.0))
        self.B = self._own(dolfinx_mpc.assemble_matrix(self._m, self.mpc, bcs=[], diagval=0.0))
        self.eps = self._own(self._make_eps())
        self._T = self._own(self.A.duplicate(copy=True))
        self._inertia = self._own(self._make_inertia_pc())

    def _default_shift(self) -> float:
        c2 = min(
            float(np.linalg.eigvalsh(p.law.tensor(self.dim)).min()) / p.density
            for p in self.phases.values()
        )
        return -1e-2 * c2 * (math.pi / float(self.cell.lengths.max())) ** 2

    def _parts(self, w: Any) -> tuple[Any, Any]:
        n = self.ncomp
        if n == 1:
            return w[0], w[1]
        return ufl.as_vector([w[i] for i in range(n)]), ufl.as_vector([w[n + i] for i in range(n)])

    def _bloch_gradient(self, w: Any) -> tuple[Any, Any]:
        """Real and imaginary parts :math:`(g_r, g_i)` of :math:`g_k(p_r + i p_i)`."""
        pr, pi = self._parts(w)
        k = self.k
        if self.kind == "scalar":
            return ufl.grad(pr) - pi * k, ufl.grad(pi) + pr * k
        return (
            ufl.sym(ufl.grad(pr) - ufl.outer(pi, k)),
            ufl.sym(ufl.grad(pi) + ufl.outer(pr, k)),
        )

    def _forms(self) -> tuple[ufl.Form, ufl.Form]:
        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        dx = ufl.Measure("dx", domain=self.cell.mesh, subdomain_data=self.cell.cell_tags)
        gw, gv = self._bloch_gradient(w), self._bloch_gradient(v)
        a = sum(
            (ufl.inner(p.law.flux(gw[0]), gv[0]) + ufl.inner(p.law.flux(gw[1]), gv[1])) * dx(t)
            for t, p in self.phases.items()
        )
        m = sum(p.density * ufl.inner(w, v) * dx(t) for t, p in self.phases.items())
        return a, m

    def _make_eps(self) -> SLEPc.EPS:
        eps = SLEPc.EPS().create(self.cell.comm)
        eps.setOptionsPrefix(self.prefix)
        eps.setOperators(self.A, self.B)
        eps.setProblemType(SLEPc.EPS.ProblemType.GHEP)
        eps.setDimensions(2 * self.nbands + 2)
        eps.setTarget(self.shift)
        eps.setWhichEigenpairs(SLEPc.EPS.Which.TARGET_REAL)
        st = eps.getST()
        st.setShift(self.shift)
        st.setMatStructure(PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        with prefixed_options(self.prefix, self.options):
            eps.setFromOptions()
        return eps

    def _make_inertia_pc(self) -> PETSc.PC:
        pc = PETSc.PC().create(self.cell.comm)
        pc.setOptionsPrefix(f"{self.prefix}inertia_")
        pc.setType(PETSc.PC.Type.CHOLESKY)
        pc.setFactorSolverType("mumps")
        pc.setOperators(self._T)
        with prefixed_options(self.prefix, self.options):
            pc.setFromOptions()
        return pc

    def eigenvalues(self, k: Sequence[float]) -> np.ndarray:
        """The lowest ``nbands`` eigenvalues :math:`\\omega^2` at ``k`` (each once).

        Krylov methods can miss copies of a multiple eigenvalue (every eigenvalue is at least
        double here, and symmetric cells have more), so the result is verified by Sylvester's
        law of inertia: the number of negative pivots of :math:`A - \\tau B` (an
        :math:`LDL^T` factorization) is the number of eigenvalues below :math:`\\tau`, taken
        between the last eigenvalue kept and the next one found.  On a mismatch the solve is
        repeated with the eigenvectors found so far as deflation space (up to three times)."""
        self.k.value[...] = np.asarray(k, dtype=float)
        self.A.zeroEntries()
        dolfinx_mpc.assemble_matrix(self._a, self.mpc, bcs=[], diagval=1.0, A=self.A)
        where = f"at k = {[float(x) for x in np.atleast_1d(k)]}"
        lam = self._solve_complete(where)
        lam = lam[: 2 * self.nbands]
        scale = max(float(np.abs(lam).max()), abs(self.shift))
        if np.abs(lam[0::2] - lam[1::2]).max() > 1e-6 * scale:
            raise RuntimeError(f"the eigenvalues {where} are not paired: {lam}")
        return lam[0::2]

    def _solve_complete(self, where: str) -> np.ndarray:
        """All eigenvalues up to the ``2 nbands``-th, sorted (see :meth:`eigenvalues`)."""
        vals: list[float] = []
        vecs: list[PETSc.Vec] = []
        try:
            for _ in range(4):
                self.eps.setDeflationSpace(vecs)
                self.eps.setOperators(self.A, self.B)
                self.eps.solve()
                for j in range(self.eps.getConverged()):
                    v = self.A.createVecRight()
                    vals.append(self.eps.getEigenpair(j, v).real)
                    vecs.append(v)
                lam = np.sort(vals)
                if self._complete(lam):
                    return lam
        finally:
            self.eps.setDeflationSpace([])
            for v in vecs:
                v.destroy()
        raise RuntimeError(f"SLEPc ({self.prefix!r}) missed eigenvalues {where}")

    def _complete(self, lam: np.ndarray) -> bool:
        """Whether ``lam`` holds every eigenvalue up to the ``2 nbands``-th (inertia count)."""
        need = 2 * self.nbands
        if len(lam) <= need:
            return False
        last = lam[need - 1]
        above = lam[lam > last + 1e-8 * max(abs(last), abs(self.shift))]
        if len(above) == 0:
            return False
        tau = 0.5 * (last + above[0])
        return self._count_below(tau) == int(np.sum(lam < tau))

    def _count_below(self, tau: float) -> int:
        """Negative eigenvalues of :math:`A - \\tau B` (Sylvester), from MUMPS' inertia."""
        self.A.copy(self._T, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        self._T.axpy(-tau, self.B, structure=PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        self._inertia.setOperators(self._T)
        with prefixed_options(self.prefix, self.options):  # the factor reads its own options
            self._inertia.setUp()
        negative, _, _ = self._inertia.getFactorMatrix().getInertia()
        return int(negative)

    def solve(self, k: Sequence[float]) -> np.ndarray:
        """The lowest ``nbands`` angular frequencies :math:`\\omega \\ge 0` at ``k``."""
        return np.sqrt(np.maximum(self.eigenvalues(k), 0.0))

    def long_wave_points(self, direction: Sequence[float]) -> np.ndarray:
        """The two wave vectors :math:`\\delta n, 2\\delta n` of :meth:`long_wave_speeds`
        (:math:`\\delta = 10^{-2}\\pi/\\ell_{max}`)."""
        n = np.asarray(direction, dtype=float)
        n = n / np.linalg.norm(n)
        delta = 1e-2 * math.pi / float(self.cell.lengths.max())
        return np.array([delta * n, 2 * delta * n])

    def acoustic_speeds(self, omega: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Richardson estimate :math:`(4c(\\delta) - c(2\\delta))/3` of the ``ncomp`` acoustic
        speeds from the frequencies ``omega`` ``(2, nbands)`` at the two ``k`` of
        :meth:`long_wave_points`."""
        if self.nbands < self.ncomp:
            raise ValueError(f"long-wave speeds need at least {self.ncomp} bands")
        c = omega[:, : self.ncomp] / np.linalg.norm(k, axis=1)[:, None]
        return (4.0 * c[0] - c[1]) / 3.0


# -- results ------------------------------------------------------------------------------
def find_gaps(frequencies: np.ndarray, rtol: float = 1e-6) -> list[tuple[int, float, float]]:
    """Complete band gaps ``(n, low, high)``: :math:`\\max_k \\omega_n < \\min_k
    \\omega_{n+1}` (bands numbered from 0), wider than ``rtol`` times the upper edge (bands
    that touch at a degenerate point differ by round-off only)."""
    f = np.asarray(frequencies, dtype=float)
    gaps = []
    for n in range(f.shape[1] - 1):
        low, high = float(f[:, n].max()), float(f[:, n + 1].min())
        if high - low > rtol * high:
            gaps.append((n, low, high))
    return gaps


@dataclass(frozen=True)
class Dispersion:
    """Bloch frequencies along a path: ``frequencies[j, n]`` is :math:`\\omega_n(k_j)`;
    ``long_wave_speeds`` the acoustic speeds along ``direction`` (ascending)."""

    path: KPath
    frequencies: np.ndarray
    long_wave_speeds: np.ndarray
    direction: np.ndarray

    @property
    def gaps(self) -> list[tuple[int, float, float]]:
        return find_gaps(self.frequencies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.path.k,
            "distance": self.path.distance,
            "labels": [list(lab) for lab in self.path.labels],
            "frequencies": self.frequencies,
            "gaps": [[lo, hi] for _, lo, hi in self.gaps],
            "gap_bands": [n for n, _, _ in self.gaps],
            "long_wave_speed": float(self.long_wave_speeds[0]),
            "long_wave_speeds": self.long_wave_speeds,
            "long_wave_direction": self.direction,
        }


def dispersion(
    make_cell: Callable[[MPI.Comm], CellMesh],
    phases: Mapping[str | int, WavePhase],
    path: KPath,
    *,
    comm: MPI.Comm = MPI.COMM_WORLD,
    direction: Sequence[float] | None = None,
    **solver_args: Any,
) -> Dispersion:
    """Bloch frequencies along ``path`` and the long-wave speeds along ``direction`` (default:
    the first segment of the path), the k-points distributed over the ranks of ``comm``.

    ``make_cell(micro_comm)`` builds the cell on each rank's own communicator; ``solver_args``
    go to :class:`BlochSolver`.  Collective on ``comm``; the result is the same on every rank
    and for any number of ranks.
    """
    if direction is None:
        nonzero = [k for k in path.k[1:] - path.k[0] if np.linalg.norm(k) > 0]
        if not nonzero:
            raise ValueError("the k-path has no length: give a direction for the long waves")
        direction = nonzero[0]
    pool = MicroPool(comm)
    solver = BlochSolver(make_cell(pool.micro_comm), phases, **solver_args)
    try:
        small = solver.long_wave_points(direction)
        ks = np.vstack([path.k, small])
        omega = np.array(pool.map_tasks(lambda t, _: solver.solve(ks[t]), len(ks)))
        speeds = np.sort(solver.acoustic_speeds(omega[-2:], small))
    finally:
        solver.destroy()
        pool.destroy()
    n = np.asarray(direction, dtype=float)
    return Dispersion(path, omega[:-2], speeds, n / np.linalg.norm(n))


def homogenized_speeds(
    cell: CellMesh,
    phases: Mapping[str | int, WavePhase],
    direction: Sequence[float],
    **cell_args: Any,
) -> np.ndarray:
    """Long-wave speeds of the homogenized medium along ``direction`` (ascending):
    :math:`\\sqrt{\\operatorname{eig}\\Gamma}`, :math:`\\Gamma_{ik} = C^{hom}_{ijkl}n_j n_l /
    \\langle\\rho\\rangle` with the periodic effective tensor of :func:`multiscale.cell.homogenize`
    (2D/3D), or :math:`\\sqrt{E_{harm}/\\langle\\rho\\rangle}` with the harmonic mean modulus in
    1D (the exact 1D cell solution).  Collective on ``cell.comm``."""
    by_tag = cell.by_tag(phases)
    fractions = {cell.phases[name]: f for name, f in cell.volume_fractions().items()}
    rho = sum(fractions[t] * p.density for t, p in by_tag.items())
    n = np.asarray(direction, dtype=float)
    n = n / np.linalg.norm(n)
    if cell.dim == 1:
        harm = 1.0 / sum(fractions[t] / float(p.law.tensor(1)[0, 0]) for t, p in by_tag.items())
        return np.array([math.sqrt(harm / rho)])
    from multiscale.cell.solver import homogenize

    laws = {t: p.law for t, p in by_tag.items()}
    tensor = homogenize(cell, laws, "periodic", **cell_args).tensor
    if kind_of(laws) == "scalar":
        return np.array([math.sqrt(float(n @ tensor @ n) / rho)])
    C = stiffness_to_tensor(tensor)
    gamma = np.einsum("ijkl,j,l->ik", C, n, n) / rho
    return np.sqrt(np.sort(np.linalg.eigvalsh(gamma)))
