r"""Atomistic statics: energy minimization of a finite or periodic set of atoms.

An :class:`AtomSet` is a reference configuration :math:`X_1, \dots, X_n` (a block of a
:class:`~multiscale.atomistic.lattice.Lattice`, optionally with atoms removed, or a periodic
orthogonal box of it).  A :class:`PairModel` lists the bonds of the reference up to a cut-off
radius (a :class:`scipy.spatial.cKDTree`, periodic through its ``boxsize`` and the minimum image)
and groups them into neighbour shells by their reference length, each shell with its pair
potential (one for all, or one per shell, as for :class:`~.cauchy_born.CauchyBorn`).  A bond
:math:`b = (i, j, L_b)` joins the atom :math:`i` to the image of :math:`j` shifted by the
period vector :math:`L_b` (zero for a finite set); at the positions :math:`x` and the macroscopic
deformation :math:`\bar F` of the period (identity for a finite set) it has the vector
:math:`r_b = x_j - x_i + \bar F L_b`, and

.. math::
    E(x) = \sum_b \phi_b(|r_b|), \qquad
    f_i = -\frac{\partial E}{\partial x_i} = \sum_{b: i} \frac{\phi_b'}{r_b}\,r_b
    - \sum_{b: j} \frac{\phi_b'}{r_b}\,r_b,

.. math::
    \frac{\partial^2 E}{\partial x\,\partial x} = \sum_b
    \begin{pmatrix} K_b & -K_b \\ -K_b & K_b \end{pmatrix}_{(i, j)}, \qquad
    K_b = \phi_b''\,\hat r_b\otimes\hat r_b + \frac{\phi_b'}{r_b}(I - \hat r_b\otimes\hat r_b).

The bond list is that of the reference (Lagrangian, like the Cauchy–Born rule): bonds are
neither made nor broken by the deformation, so a :class:`~.potentials.Shifted` potential is the
way to let a bond fade out smoothly when it stretches.  The Hessian is assembled from the COO
blocks into a CSR pattern fixed once (NumPy only, no per-atom loops).

:class:`AtomisticProblem` minimizes :math:`E` over the free atoms with Newton's method (the
package's :class:`~multiscale.nonlinear.NewtonSolver`, PETSc SNES with a MUMPS :math:`LDL^T`
factorization) while *Dirichlet atoms* are held at :math:`X + t\,\bar u` and the period deforms
with :math:`\bar F(t) = I + t(\bar F - I)`, over load factors :math:`t` followed by the
package's :class:`~multiscale.nonlinear.LoadStepper` (a failed step is cut).  The Dirichlet atoms
are eliminated: the unknowns are the free coordinates only.  Newton finds a stationary point;
the solver reports the energy and the largest force there, whether it is a minimum or a saddle.
Serial: every rank solves the whole set on ``COMM_SELF``; :mod:`.distributed` solves a large
set distributed over the ranks of a communicator by atom ownership.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc
from scipy import sparse
from scipy.spatial import cKDTree

from multiscale.nonlinear import (
    LoadStepper,
    NewtonOutcome,
    NewtonSolver,
    PETScOwner,
    StepRecord,
    agree,
)

from .lattice import SHELL_TOL, Lattice, _distinct
from .potentials import PairPotential

__all__ = [
    "AtomSet",
    "AtomisticProblem",
    "LatticeStatics",
    "PairModel",
    "StaticsResult",
    "fixed_mask",
    "neighbour_pairs",
]


# -- reference configurations ---------------------------------------------------------------------
def _lattice_points(lattice: Lattice, lo: np.ndarray, hi: np.ndarray, tol: float) -> np.ndarray:
    """All atoms of ``lattice`` (with its basis) in the box ``[lo - tol, hi + tol]``."""
    d = lattice.dim
    A, s = lattice.primitive, lattice.positions
    corners = np.array(np.meshgrid(*zip(lo, hi, strict=True), indexing="ij")).reshape(d, -1).T
    pad = np.max(np.linalg.norm(s, axis=1)) + tol
    n = (corners[:, None, :] - s[None]).reshape(-1, d) @ np.linalg.inv(A)
    nlo = np.floor(n.min(axis=0) - pad / lattice.a) - 1
    nhi = np.ceil(n.max(axis=0) + pad / lattice.a) + 1
    grids = np.meshgrid(
        *[np.arange(a, b + 1) for a, b in zip(nlo, nhi, strict=True)], indexing="ij"
    )
    T = np.stack([g.ravel() for g in grids], axis=1) @ A
    X = (T[:, None, :] + s[None]).reshape(-1, d)
    inside = np.all((X >= lo - tol) & (X <= hi + tol), axis=1)
    X = X[inside]
    return X[np.lexsort(X.T[::-1])]


@dataclass(frozen=True, eq=False)
class AtomSet:
    """Reference positions ``positions`` (shape ``(n, d)``) and, for a periodic set, the
    lengths ``box`` of its orthogonal period (atoms in :math:`[0, \\text{box})`); ``None``
    for a finite set with free surfaces.  Build one with :meth:`block` or :meth:`periodic`."""

    positions: np.ndarray
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        X = np.atleast_2d(np.asarray(self.positions, dtype=float))
        if X.ndim != 2 or X.shape[1] not in (1, 2, 3) or len(X) == 0 or not np.isfinite(X).all():
            raise ValueError(f"positions: expected a finite (n, d) array, got {X.shape}")
        object.__setattr__(self, "positions", X)
        if self.box is not None:
            box = np.asarray(self.box, dtype=float).ravel()
            if box.shape != (X.shape[1],) or np.any(box <= 0) or not np.isfinite(box).all():
                raise ValueError(f"box: expected {X.shape[1]} positive lengths, got {self.box!r}")
            object.__setattr__(self, "box", box)

    @property
    def dim(self) -> int:
        return int(self.positions.shape[1])

    @property
    def n(self) -> int:
        return int(self.positions.shape[0])

    @classmethod
    def block(cls, lattice: Lattice, lo: Sequence[float], hi: Sequence[float]) -> AtomSet:
        """The atoms of ``lattice`` in the closed box ``[lo, hi]`` (free surfaces)."""
        lo_, hi_ = np.asarray(lo, float), np.asarray(hi, float)
        if lo_.shape != (lattice.dim,) or hi_.shape != lo_.shape or np.any(hi_ <= lo_):
            raise ValueError(f"block: need lo < hi with {lattice.dim} components each")
        return cls(_lattice_points(lattice, lo_, hi_, 1e-9 * lattice.a))

    @classmethod
    def periodic(cls, lattice: Lattice, box: Sequence[float]) -> AtomSet:
        """The atoms of ``lattice`` in the periodic box :math:`[0, \\text{box})`; every edge
        :math:`\\text{box}_k e_k` must be a lattice translation (``ValueError`` otherwise):
        e.g. ``(n a, m a)`` for the square lattice, ``(n a, m \\sqrt3 a)`` for the
        triangular one."""
        L = np.asarray(box, dtype=float).ravel()
        if L.shape != (lattice.dim,) or np.any(L <= 0):
            raise ValueError(f"box: expected {lattice.dim} positive lengths, got {box!r}")
        coords = np.diag(L) @ np.linalg.inv(lattice.primitive)
        if np.abs(coords - np.round(coords)).max() > 1e-9:
            raise ValueError(f"box {L.tolist()} is not a period of the {lattice.name} lattice")
        tol = 1e-9 * lattice.a
        X = _lattice_points(lattice, np.zeros_like(L), L, tol)
        X = X[np.all(X < L - tol, axis=1)]
        return cls(np.where(X < 0, 0.0, X), L)

    def without(self, indices: Sequence[int] | np.ndarray) -> AtomSet:
        """The same set with the atoms ``indices`` removed (a vacancy, a void)."""
        keep = np.ones(self.n, dtype=bool)
        keep[np.asarray(indices, dtype=int)] = False
        return AtomSet(self.positions[keep], self.box)

    def nearest(self, point: Sequence[float]) -> int:
        """Index of the atom nearest to ``point``."""
        return int(np.argmin(np.linalg.norm(self.positions - np.asarray(point, float), axis=1)))


def neighbour_pairs(atoms: AtomSet, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bonds of the reference up to ``cutoff`` (with the relative tolerance of the shells):
    indices ``i < j`` and the period vectors :math:`L_b` (minimum image; zero for a finite
    set), each pair once.  ``ValueError`` when the cut-off reaches half a period."""
    rc = float(cutoff)
    if not math.isfinite(rc) or rc <= 0.0:
        raise ValueError(f"cutoff must be a finite positive number, got {cutoff!r}")
    X, box = atoms.positions, atoms.box
    r = rc * (1 + SHELL_TOL)
    if box is None:
        ij = cKDTree(X).query_pairs(r, output_type="ndarray")
        return ij[:, 0], ij[:, 1], np.zeros((len(ij), atoms.dim))
    if rc >= 0.5 * box.min():
        raise ValueError(f"cutoff {rc:g} must be below half the smallest period {box.min():g}")
    Xw = np.mod(X, box)
    Xw[Xw >= box] = 0.0
    ij = cKDTree(Xw, boxsize=box).query_pairs(r, output_type="ndarray")
    i, j = ij[:, 0], ij[:, 1]
    D = X[j] - X[i]
    image = -box * np.round(D / box)
    return i, j, image


# -- the pair model --------------------------------------------------------------------------------
class PairModel:
    """Energy, forces and Hessian of ``atoms`` with bonds up to ``cutoff`` and the pair
    ``potential`` (one, or a sequence with one per neighbour shell of the reference, nearest
    first).  See the module docstring.

    Attributes: ``i, j, image`` (the bonds, :func:`neighbour_pairs`), ``shell`` (shell of each
    bond), ``radii`` (reference shell lengths), ``groups`` (potential, bond indices).
    """

    def __init__(
        self,
        atoms: AtomSet,
        potential: PairPotential | Sequence[PairPotential],
        cutoff: float,
    ) -> None:
        i, j, image = neighbour_pairs(atoms, cutoff)
        if len(i) == 0:
            raise ValueError(f"no two atoms are closer than the cutoff {cutoff:g}")
        self._set_bonds(atoms, i, j, image, potential)

    @classmethod
    def from_bonds(
        cls,
        atoms: AtomSet,
        i: np.ndarray,
        j: np.ndarray,
        image: np.ndarray,
        potential: PairPotential | Sequence[PairPotential],
        radii: np.ndarray | None = None,
    ) -> PairModel:
        """The model of the given bonds of ``atoms`` (a part of a larger set: its shells
        ``radii``, those of the bonds by default)."""
        model = object.__new__(cls)
        model._set_bonds(atoms, i, j, image, potential, radii)
        return model

    def _set_bonds(
        self,
        atoms: AtomSet,
        i: np.ndarray,
        j: np.ndarray,
        image: np.ndarray,
        potential: PairPotential | Sequence[PairPotential],
        radii: np.ndarray | None = None,
    ) -> None:
        self.atoms, self.i, self.j, self.image = atoms, i, j, image
        R = atoms.positions[self.j] - atoms.positions[self.i] + self.image
        lengths = np.linalg.norm(R, axis=1)
        if radii is None:
            radii = _distinct(lengths, float(lengths.min()))
        self.radii = np.asarray(radii, dtype=float)
        self.shell = np.argmin(np.abs(lengths[:, None] - self.radii[None, :]), axis=1)
        pots = tuple(potential) if isinstance(potential, list | tuple) else (potential,)
        if len(pots) not in (1, len(self.radii)) or not all(
            isinstance(p, PairPotential) for p in pots
        ):
            raise ValueError(
                f"potential: give one pair potential or one per shell ({len(self.radii)})"
            )
        if len(pots) == 1:
            self.groups = [(pots[0], np.arange(len(self.i)))]
        else:
            self.groups = [(p, np.flatnonzero(self.shell == s)) for s, p in enumerate(pots)]
        self._pattern: _Pattern | None = None

    @property
    def dim(self) -> int:
        return self.atoms.dim

    @property
    def n_bonds(self) -> int:
        return len(self.i)

    def with_potential(self, bonds: np.ndarray, potential: PairPotential) -> PairModel:
        """A copy whose bonds ``bonds`` (indices or a mask) have ``potential`` instead (a soft
        bond, an interface)."""
        idx = np.arange(self.n_bonds)[np.asarray(bonds)]
        new = object.__new__(PairModel)
        new.__dict__.update(self.__dict__)
        new.groups = [(p, np.setdiff1d(g, idx)) for p, g in self.groups] + [(potential, idx)]
        return new

    # -- bond quantities ------------------------------------------------------------------------
    def bond_vectors(self, x: np.ndarray, F: np.ndarray | None = None) -> np.ndarray:
        """:math:`r_b = x_j - x_i + \\bar F L_b` (``F``: the period's deformation)."""
        image = self.image if F is None else self.image @ np.asarray(F).T
        return x[self.j] - x[self.i] + image

    def _each(self, r: np.ndarray, what: str) -> np.ndarray:
        out = np.zeros(r.shape, dtype=np.result_type(r, float))
        for pot, idx in self.groups:
            if len(idx):
                out[idx] = getattr(pot, what)(r[idx])
        return out

    def energy(self, x: np.ndarray, F: np.ndarray | None = None) -> Any:
        """:math:`E(x) = \\sum_b\\phi_b(|r_b|)` (``x`` may be complex: complex-step
        derivatives)."""
        rv = self.bond_vectors(np.asarray(x), F)
        r = np.sqrt((rv * rv).sum(axis=1))
        return self._each(r, "phi").sum()

    def bond_forces(self, x: np.ndarray, F: np.ndarray | None = None) -> np.ndarray:
        """:math:`g_b = (\\phi_b'/r_b)\\,r_b`: the force of bond :math:`b` on its atom
        :math:`i` (minus that on :math:`j`)."""
        rv = self.bond_vectors(x, F)
        r = np.linalg.norm(rv, axis=1)
        return (self._each(r, "dphi") / r)[:, None] * rv

    def forces(self, x: np.ndarray, F: np.ndarray | None = None) -> np.ndarray:
        """:math:`f = -\\partial E/\\partial x`, shape ``(n, d)``."""
        g = self.bond_forces(x, F)
        n = self.atoms.n
        cols = [
            np.bincount(self.i, g[:, k], n) - np.bincount(self.j, g[:, k], n)
            for k in range(self.dim)
        ]
        return np.stack(cols, axis=1)

    def bond_stiffness(self, x: np.ndarray, F: np.ndarray | None = None) -> np.ndarray:
        """:math:`K_b`, shape ``(nb, d, d)``."""
        rv = self.bond_vectors(x, F)
        r = np.linalg.norm(rv, axis=1)
        nv = rv / r[:, None]
        d1 = self._each(r, "dphi") / r
        d2 = self._each(r, "d2phi")
        nn = nv[:, :, None] * nv[:, None, :]
        return (d2 - d1)[:, None, None] * nn + d1[:, None, None] * np.eye(self.dim)

    def hessian(self, x: np.ndarray, F: np.ndarray | None = None) -> sparse.csr_matrix:
        """:math:`\\partial^2E/\\partial x^2` as a SciPy CSR matrix (``n d`` square)."""
        if self._pattern is None:
            self._pattern = _Pattern(self.i, self.j, self.atoms.n, self.dim)
        p = self._pattern
        data = p.values(self.bond_stiffness(x, F))
        return sparse.csr_matrix((data, p.indices, p.indptr), shape=(p.size, p.size))


class _Pattern:
    """The CSR pattern of the Hessian over the degrees of freedom ``free`` (all by default):
    where each COO entry of the bond blocks goes, fixed once."""

    def __init__(
        self, i: np.ndarray, j: np.ndarray, n: int, d: int, free: np.ndarray | None = None
    ) -> None:
        a = np.arange(d)
        pairs = np.stack([np.stack([i, i]), np.stack([j, j]), np.stack([i, j]), np.stack([j, i])])
        # pairs[k, 0] atom of the row, pairs[k, 1] of the column, for the blocks +K, +K, -K, -K
        rows = pairs[:, 0, :, None, None] * d + a[None, None, :, None]
        cols = pairs[:, 1, :, None, None] * d + a[None, None, None, :]
        rows, cols = np.broadcast_arrays(rows, cols)
        self.sign = np.array([1.0, 1.0, -1.0, -1.0])
        dof = np.arange(n * d) if free is None else np.asarray(free)
        number = np.full(n * d, -1)
        number[dof] = np.arange(len(dof))
        r, c = number[rows.ravel()], number[cols.ravel()]
        self.keep = (r >= 0) & (c >= 0)
        m = self.size = len(dof)
        # the diagonal always present, so an unbonded degree of freedom stays in the pattern
        keys = np.concatenate([r[self.keep] * m + c[self.keep], np.arange(m) * (m + 1)])
        unique, self.slot = np.unique(keys, return_inverse=True)
        self.slot = self.slot.ravel()[: int(self.keep.sum())]
        self.nnz = len(unique)
        self.indices = (unique % m).astype(PETSc.IntType)
        self.indptr = np.searchsorted(unique // m, np.arange(m + 1)).astype(PETSc.IntType)

    def values(self, K: np.ndarray) -> np.ndarray:
        """CSR values of :math:`\\sum_b` (the blocks of :math:`K_b`) restricted to the pattern."""
        coo = (self.sign[:, None, None, None] * K[None]).ravel()[self.keep]
        return np.bincount(self.slot, coo, self.nnz)


#: Newton options of :class:`AtomisticProblem` on top of
#: :func:`~multiscale.nonlinear.newton_options`: the absolute force tolerance (in the units of the
#: potential, e.g. :math:`\epsilon/\sigma`) above the round-off of a sum over many bonds.
DEFAULTS: dict[str, Any] = {"snes_atol": 1e-10}


# -- the minimization problem ----------------------------------------------------------------------
@dataclass(frozen=True)
class StaticsResult:
    """What :meth:`AtomisticProblem.solve` did: the converged ``steps`` (one
    :class:`~multiscale.nonlinear.StepRecord` each, with ``quantities`` ``energy`` and
    ``max_force``) and the ``failed_attempts`` of the load stepper."""

    steps: list[StepRecord]
    failed_attempts: list[dict[str, Any]]


class _FreeAssembly:
    """The :class:`~multiscale.nonlinear.Assembly` of the gradient of :math:`E` over the free
    coordinates (the residual) and its Hessian (the Jacobian), on ``COMM_SELF``."""

    comm = MPI.COMM_SELF

    def __init__(self, problem: AtomisticProblem) -> None:
        self.problem = problem
        model, free = problem.model, problem.free_dofs
        self.pattern = _Pattern(model.i, model.j, model.atoms.n, model.dim, free)

    def create_matrix(self) -> PETSc.Mat:
        p = self.pattern
        A = PETSc.Mat().createAIJ(
            (p.size, p.size), csr=(p.indptr, p.indices, np.zeros(p.nnz)), comm=self.comm
        )
        A.assemble()
        return A

    def create_vector(self) -> PETSc.Vec:
        return PETSc.Vec().createSeq(self.pattern.size, comm=self.comm)

    def set_iterate(self, x: PETSc.Vec) -> None:
        self.problem.set_free(x.getArray(readonly=True))
        self.problem.check_admissible()

    def residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        p = self.problem
        b.setArray(-p.model.forces(p.x, p.F).ravel()[p.free_dofs])

    def jacobian(self, A: PETSc.Mat) -> None:
        p = self.problem
        data = self.pattern.values(p.model.bond_stiffness(p.x, p.F))
        A.zeroEntries()
        A.setValuesCSR(self.pattern.indptr, self.pattern.indices, data)
        A.assemble()


def fixed_mask(fixed: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """The boolean mask of the fixed atoms of a set of ``n``, from indices or a mask."""
    chosen = np.asarray(fixed)
    mask = np.zeros(n, dtype=bool)
    if chosen.dtype == bool:
        mask[:] = chosen
    else:
        mask[chosen.astype(int)] = True
    return mask


class LatticeStatics(PETScOwner):
    """What the serial and the distributed lattice statics share: the load path (period
    :math:`\bar F(t) = I + t(\bar F - I)`), Newton from the predicted state, the committed
    state and what a step records.  A subclass sets ``comm``, ``model``, ``x``, ``F``,
    ``_F1``, ``newton`` and ``stepper`` and implements ``set_load``, ``predict``, ``energy`` and
    ``max_free_force``."""

    comm: MPI.Comm
    newton: NewtonSolver
    stepper: LoadStepper
    x: np.ndarray
    F: np.ndarray
    _F1: np.ndarray

    def predict(self) -> np.ndarray:
        raise NotImplementedError

    def energy(self) -> float:
        raise NotImplementedError

    def max_free_force(self) -> float:
        raise NotImplementedError

    def _set_period(self, factor: float) -> None:
        t = float(factor)
        self.factor = t
        self.F = np.eye(len(self._F1)) + t * (self._F1 - np.eye(len(self._F1)))

    def attempt(self) -> NewtonOutcome:
        """Newton from the committed state, moved by its linear response to the load
        increment (:meth:`predict`)."""
        self.newton.x.setArray(self.predict())
        return self.newton.solve()

    def _solve_jacobian(self, rhs: np.ndarray) -> np.ndarray | None:
        """The Newton solver's matrix, assembled at the current positions, applied inverse to
        ``rhs`` with its own KSP (factorization); ``None`` where the solve fails on any rank
        (collective; a failed factor is not reused by the next solve)."""
        A, ksp = self.newton.A, self.newton.snes.getKSP()
        self.newton.assembly.jacobian(A)
        b, y = A.createVecs()
        b.setArray(rhs)
        error = None
        try:
            ksp.setOperators(A)
            ksp.solve(b, y)
            if ksp.getConvergedReason() <= 0:
                error = "linear solve failed"
        except PETSc.Error:
            error = "PETSc error"
        step = y.getArray().copy()
        if error is None and not np.all(np.isfinite(step)):
            error = "not finite"
        failed = agree(self.comm, error) is not None
        if failed:
            ksp.reset()
        b.destroy()
        y.destroy()
        return None if failed else step

    def commit(self) -> None:
        self._committed = (self.x.copy(), self.F.copy())

    def rollback(self) -> None:
        x0, _ = self._committed
        self.x[:] = x0

    def record(self, step: StepRecord) -> None:
        step.quantities = {"energy": self.energy(), "max_force": self.max_free_force()}

    def solve(self, factors: Sequence[float] = (1.0,)) -> StaticsResult:
        """Follow the load factors (cutting failed steps); a
        :class:`~multiscale.nonlinear.LoadStepError` on every rank when a step cannot be
        completed."""
        self.stepper.run(factors)
        return StaticsResult(self.stepper.steps, self.stepper.failed_attempts)


class AtomisticProblem(LatticeStatics):
    """Minimize the energy of ``model`` with the atoms ``fixed`` (indices or a mask) held at
    :math:`X + t\\,\\bar u` (``displacement``: :math:`\\bar u`, shape ``(n_fixed, d)`` or
    ``(n, d)``, of which the fixed rows are used; default zero) and the period deformed by
    :math:`\\bar F(t) = I + t(\\bar F - I)` (``macro_F``: :math:`\\bar F`, periodic sets; a finite
    set ignores it), over the load factors :math:`t` of :meth:`solve`.

    A periodic set needs at least one fixed atom (the energy is invariant under translation).
    ``petsc_options`` override :func:`~multiscale.nonlinear.newton_options` (symmetric);
    ``max_cuts``, ``regrow_after``: of the :class:`~multiscale.nonlinear.LoadStepper`;
    ``min_bond_ratio``: an iterate with a bond shorter than this fraction of its reference
    length is refused (:meth:`check_admissible`).  Runs on ``COMM_SELF``; frees its PETSc
    objects in :meth:`destroy`.
    """

    def __init__(
        self,
        model: PairModel,
        *,
        fixed: Sequence[int] | np.ndarray = (),
        displacement: np.ndarray | None = None,
        macro_F: np.ndarray | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
        regrow_after: int = 2,
        min_bond_ratio: float = 0.5,
    ) -> None:
        self.comm: MPI.Comm = MPI.COMM_SELF
        self.model = model
        n, d = model.atoms.n, model.dim
        mask = fixed_mask(fixed, n)
        self.fixed = np.flatnonzero(mask)
        if model.atoms.box is None and macro_F is not None:
            macro_F = None
        self._F1 = np.eye(d) if macro_F is None else np.asarray(macro_F, dtype=float)
        if self._F1.shape != (d, d):
            raise ValueError(f"macro_F: expected a {d} x {d} matrix")
        self._u1 = self._fixed_displacement(displacement)
        self.free_dofs = np.flatnonzero(np.repeat(~mask, d))
        if len(self.free_dofs) == 0:
            raise ValueError("every atom is fixed: nothing to minimize")
        self.X = model.atoms.positions
        self.min_bond_ratio = float(min_bond_ratio)
        self._reference_lengths = np.linalg.norm(model.bond_vectors(self.X), axis=1)
        self.x = self.X.copy()
        self.factor = 0.0
        self.F = np.eye(d)
        self.newton = self._own(
            NewtonSolver(
                _FreeAssembly(self),
                petsc_options=petsc_options,
                defaults=DEFAULTS,
                symmetric=True,
                role="atoms",
                name="atomistic Newton",
            )
        )
        self._committed = (self.x.copy(), self.F.copy())
        self.stepper = LoadStepper(
            self, max_cuts=max_cuts, regrow_after=regrow_after, label="atoms"
        )

    def _fixed_displacement(self, displacement: np.ndarray | None) -> np.ndarray:
        n, d = self.model.atoms.n, self.model.dim
        if displacement is None:
            return np.zeros((len(self.fixed), d))
        u = np.asarray(displacement, dtype=float).reshape(-1, d)
        if len(u) == n:
            return u[self.fixed]
        if len(u) != len(self.fixed):
            raise ValueError(f"displacement: expected {len(self.fixed)} or {n} rows of {d}")
        return u

    # -- state ----------------------------------------------------------------------------------
    def set_free(self, values: np.ndarray) -> None:
        """Put the free coordinates ``values`` into the positions :attr:`x`."""
        flat = self.x.reshape(-1)
        flat[self.free_dofs] = values

    def free_values(self) -> np.ndarray:
        return self.x.reshape(-1)[self.free_dofs].copy()

    @property
    def displacement(self) -> np.ndarray:
        """:math:`x - X`, shape ``(n, d)``."""
        return self.x - self.X

    def energy(self) -> float:
        """:math:`E` at the current positions."""
        return float(self.model.energy(self.x, self.F))

    def forces(self) -> np.ndarray:
        """:math:`-\\partial E/\\partial x` at the current positions (the fixed atoms carry the
        reactions)."""
        return self.model.forces(self.x, self.F)

    def check_admissible(self) -> None:
        """``ValueError`` when a position is not finite or a bond is shorter than
        ``min_bond_ratio`` times its reference length (atoms run into each other): the
        Newton solver then stops on this iterate, or backs off, as for :math:`\\det F \\le 0`
        in the continuum, and the load stepper cuts the step."""
        m = self.model
        if not np.all(np.isfinite(self.x)):
            raise ValueError("an atom position is not finite")
        ratio = np.linalg.norm(m.bond_vectors(self.x, self.F), axis=1) / self._reference_lengths
        b = int(np.argmin(ratio))
        if ratio[b] < self.min_bond_ratio:
            raise ValueError(
                f"bond {m.i[b]}-{m.j[b]} compressed to {ratio[b]:.3g} of its reference length "
                f"(< {self.min_bond_ratio:g})"
            )

    def max_free_force(self) -> float:
        """:math:`\\max |f|` over the free coordinates."""
        return float(np.abs(self.forces().ravel()[self.free_dofs]).max())

    # -- the Steppable protocol ------------------------------------------------------------------
    def set_load(self, factor: float) -> None:
        """Fixed atoms at :math:`X + t\\bar u`, period deformed by :math:`\\bar F(t)`."""
        self._set_period(factor)
        self.x[self.fixed] = self.X[self.fixed] + self.factor * self._u1

    def predict(self) -> np.ndarray:
        """The free coordinates of the committed state :math:`x_0` (period :math:`\\bar F_0`)
        moved affinely with the period, :math:`\\bar F\\bar F_0^{-1}x_0`, plus the linear
        response to the move :math:`\\Delta g` of the fixed atoms,
        :math:`\\Delta x_f = -K_{ff}^{-1}K_{fc}\\,\\Delta g` with the Hessian :math:`K` of the
        committed state so moved: a finite-element solver's lifting of the new boundary values,
        solved with the Newton solver's own matrix and factorization (MUMPS).  The guess without
        the response where :math:`K_{ff}` is singular."""
        x0, F0 = self._committed
        guess = x0 @ (self.F @ np.linalg.inv(F0)).T
        free = self.free_dofs
        dg = (self.x - guess).reshape(-1)
        dg[free] = 0.0
        start = guess.reshape(-1)[free]
        if not np.any(dg):
            return start
        rhs = -(self.model.hessian(guess, self.F)[free] @ dg)
        step = self._solve_free(guess, rhs)
        return start + step if step is not None else start

    def _solve_free(self, at: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
        """:math:`K_{ff}^{-1}` ``rhs`` with the Hessian at the positions ``at``; ``None`` where
        the factorization fails."""
        current = self.x.copy()
        self.x[:] = at
        try:
            return self._solve_jacobian(rhs)
        finally:
            self.x[:] = current
