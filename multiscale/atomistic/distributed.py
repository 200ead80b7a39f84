r"""Atomistic statics distributed over the ranks of a communicator by atom ownership.

The energy, forces and Hessian are those of :class:`~.statics.PairModel` and the minimization
that of :class:`~.statics.AtomisticProblem` (Newton, Dirichlet atoms eliminated, the package's
:class:`~multiscale.nonlinear.LoadStepper`, the same predictor); only where the work is done
differs.

**Ownership.**  The atoms are split by recursive coordinate bisection (:func:`partition`): the
set is cut across its longest extent at the quantile that gives each half its share of the
ranks, and so on, so each rank owns a compact block of :math:`\approx n/p` atoms.  They are
renumbered rank by rank (the PETSc layout: rank :math:`r` owns the atoms
:math:`[s_r, s_{r+1})` and their :math:`d` coordinates).  Every rank holds the reference
positions (an :class:`~.statics.AtomSet`, the same on every rank, which is checked), but
searches neighbours only among its own atoms and those within the cut-off of their bounding box
(through the period for a periodic set).

**Bonds.**  A bond :math:`b = (i, j, L_b)` is evaluated once, by the owner of the lower of its
two new numbers; the other atom, where another rank owns it, is a *ghost*.  Each rank's bonds
form a local :class:`~.statics.PairModel` (:meth:`~.statics.PairModel.from_bonds`) over its
owned and ghost atoms, with the shells of the whole set, so the vectorized bond energy, forces
and stiffness blocks :math:`K_b` are those of the serial model.  At each Newton iterate the
ghost positions come from their owners by a forward scatter of a ghosted PETSc Vec; the forces
of the local bonds on ghost atoms go back to their owners by the reverse scatter of another
(``ADD_VALUES``), and the blocks :math:`\pm K_b` are added into an MPIAIJ matrix over the free
coordinates, preallocated from the bond graph (rows of ghost atoms travel in PETSc's
assembly).  The energy is the sum over ranks of the local bond energies.

**Solves.**  MUMPS :math:`LDL^T` by default (parallel); CG with GAMG
(``{"ksp_type": "cg", "pc_type": "gamg"}``) uses the block size :math:`d` and the rigid-body
modes of the free atoms set on the matrix.  A failure on one rank (atoms run into each other,
a position that is not finite) is agreed by all ranks in the Newton solver's collective check
(:func:`~multiscale.nonlinear.agree`), so the step fails, or is cut, on every rank with the same
cause.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.errors import CollectiveError
from multiscale.nonlinear import (
    LoadStepper,
    NewtonOutcome,
    NewtonSolver,
    PETScOwner,
    StepRecord,
    agree,
)

from .lattice import SHELL_TOL, _distinct
from .potentials import PairPotential
from .statics import (
    DEFAULTS,
    AtomSet,
    PairModel,
    StaticsResult,
    fixed_mask,
    neighbour_pairs,
)

__all__ = [
    "DistributedAtomisticProblem",
    "DistributedPairModel",
    "partition",
]


def partition(X: np.ndarray, parts: int) -> np.ndarray:
    """The part (``0 .. parts-1``) of each point of ``X`` (shape ``(n, d)``) by recursive
    coordinate bisection: a set shared by :math:`p` parts is cut across its longest extent,
    :math:`\\lfloor p/2\\rfloor / p` of the points (rounded) below the cut, found by a stable
    sort, so the result depends on ``X`` alone (the same on every rank)."""
    X = np.asarray(X, dtype=float)
    owner = np.zeros(len(X), dtype=np.int64)
    stack = [(np.arange(len(X)), 0, int(parts))]
    while stack:
        idx, first, p = stack.pop()
        if p == 1 or len(idx) == 0:
            owner[idx] = first
            continue
        left = p // 2
        Y = X[idx]
        axis = int(np.argmax(Y.max(axis=0) - Y.min(axis=0)))
        order = np.argsort(Y[:, axis], kind="stable")
        k = round(len(idx) * left / p)
        stack.append((idx[order[:k]], first, left))
        stack.append((idx[order[k:]], first + left, p - left))
    return owner


def _near_box(X: np.ndarray, lo: np.ndarray, hi: np.ndarray, pad: float, box) -> np.ndarray:
    """Mask of the points of ``X`` within ``pad`` of the box ``[lo, hi]`` in every coordinate
    (through the period ``box`` where given)."""
    if box is None:
        return np.all((X >= lo - pad) & (X <= hi + pad), axis=1)
    width = hi - lo + 2 * pad
    offset = np.mod(X - (lo - pad), box)
    return np.all((offset <= width) | (width >= box), axis=1)


class DistributedPairModel:
    """The :class:`~.statics.PairModel` of ``atoms`` (the same on every rank of ``comm``) with
    the bonds up to ``cutoff`` and the pair ``potential`` (one, or one per shell), distributed
    by atom ownership (see the module docstring).  ``modify(model, ids)`` may change the local
    model (e.g. :func:`~.qc.soften_bonds`; ``ids``: the numbers in ``atoms`` of its atoms), as
    for :class:`~.qc.QCModel`.

    Attributes: ``owner`` (rank of each atom), ``order`` (the atoms in the new numbering:
    ``order[k]`` is the atom numbered ``k``), ``ranges`` (each rank's first new number and the
    total), ``local`` (the local :class:`~.statics.PairModel`: owned atoms first, then ghosts),
    ``ids`` (the numbers in ``atoms`` of its atoms), ``new`` (their new numbers),
    ``n_owned``.  Collective on ``comm``.
    """

    def __init__(
        self,
        atoms: AtomSet,
        potential: PairPotential | Sequence[PairPotential],
        cutoff: float,
        *,
        comm: MPI.Comm = MPI.COMM_WORLD,
        modify: Callable[[PairModel, np.ndarray], PairModel] | None = None,
    ) -> None:
        self.comm, self.atoms, self.cutoff = comm, atoms, float(cutoff)
        X, box, d = atoms.positions, atoms.box, atoms.dim
        checksum = zlib.crc32(X.tobytes()) ^ (0 if box is None else zlib.crc32(box.tobytes()))
        if len(set(comm.allgather(checksum))) > 1:
            raise CollectiveError("the reference atom set differs between the ranks")
        self.owner = partition(X, comm.size)
        self.order = np.argsort(self.owner, kind="stable")
        counts = np.bincount(self.owner, minlength=comm.size)
        self.ranges = np.concatenate([[0], np.cumsum(counts)])
        start, stop = int(self.ranges[comm.rank]), int(self.ranges[comm.rank + 1])
        self.n_owned = stop - start
        number = np.empty(atoms.n, dtype=np.int64)
        number[self.order] = np.arange(atoms.n)
        self.number = number  # new number of each atom

        # neighbours among the owned atoms and those within the cut-off of their box
        error: str | None = None
        try:
            mine = self.order[start:stop]
            if len(mine):
                lo, hi = X[mine].min(axis=0), X[mine].max(axis=0)
                pad = self.cutoff * (1 + SHELL_TOL) * (1 + 1e-12)
                cand = np.flatnonzero(_near_box(X, lo, hi, pad, box))
                ci, cj, image = neighbour_pairs(AtomSet(X[cand], box), self.cutoff)
            else:
                cand = np.zeros(0, dtype=np.int64)
                ci = cj = np.zeros(0, dtype=np.int64)
                image = np.zeros((0, d))
        except ValueError as err:
            error = str(err)
        error = agree(comm, error)
        if error is not None:
            raise CollectiveError(error)
        gi, gj = number[cand[ci]], number[cand[cj]]
        owned_i = (gi >= start) & (gi < stop)
        owned_j = (gj >= start) & (gj < stop)
        #: every bond touching an owned atom, in new numbers (the graph of the matrix rows)
        self.touching = np.stack([gi, gj])[:, owned_i | owned_j]
        evaluated = np.where(gi < gj, owned_i, owned_j)
        gi, gj, image = gi[evaluated], gj[evaluated], image[evaluated]
        partners = np.concatenate([gi, gj])
        ghosts = np.unique(partners[(partners < start) | (partners >= stop)])
        self.new = np.concatenate([np.arange(start, stop), ghosts])
        self.ids = self.order[self.new]
        li, lj = self._local(gi, ghosts, start), self._local(gj, ghosts, start)
        local_atoms = AtomSet(X[self.ids], box)
        R = X[self.ids][lj] - X[self.ids][li] + image
        lengths = np.linalg.norm(R, axis=1)
        scale = comm.allreduce(float(lengths.min()) if len(lengths) else np.inf, op=MPI.MIN)
        if not np.isfinite(scale):
            raise CollectiveError(f"no two atoms are closer than the cutoff {cutoff:g}")
        every = np.concatenate(comm.allgather(_distinct(lengths, scale)))
        radii = _distinct(every, scale)
        self.n_bonds = int(comm.allreduce(len(li), op=MPI.SUM))
        error = None
        try:
            local = PairModel.from_bonds(local_atoms, li, lj, image, potential, radii)
            self.local = modify(local, self.ids) if modify is not None else local
        except ValueError as err:
            error = str(err)
        error = agree(comm, error)
        if error is not None:
            raise CollectiveError(error)

    def _local(self, g: np.ndarray, ghosts: np.ndarray, start: int) -> np.ndarray:
        """Local numbers of the new numbers ``g`` (owned first, then ``ghosts``)."""
        owned = (g >= start) & (g < start + self.n_owned)
        return np.where(owned, g - start, self.n_owned + np.searchsorted(ghosts, g))

    @property
    def dim(self) -> int:
        return self.atoms.dim

    @property
    def radii(self) -> np.ndarray:
        return self.local.radii

    def energy(self, x_local: np.ndarray, F: np.ndarray | None = None) -> float:
        """:math:`E = \\sum_b\\phi_b` at the local positions ``x_local`` (owned and ghost
        atoms; collective)."""
        return float(self.comm.allreduce(float(self.local.energy(x_local, F)), op=MPI.SUM))

    def gather(self, owned: np.ndarray) -> np.ndarray:
        """The rows ``owned`` (one per owned atom) of every rank, as one ``(n, ...)`` array in
        the numbering of :attr:`atoms`, on every rank (collective)."""
        owned = np.ascontiguousarray(owned, dtype=float)
        shape = owned.shape[1:]
        width = int(np.prod(shape)) if shape else 1
        out = np.empty((self.atoms.n, *shape))
        counts = np.diff(self.ranges) * width
        flat = np.empty(self.atoms.n * width)
        self.comm.Allgatherv(owned.ravel(), [flat, counts, self.ranges[:-1] * width, MPI.DOUBLE])
        out[self.order] = flat.reshape(self.atoms.n, *shape)
        return out


class _DistributedAssembly:
    """The :class:`~multiscale.nonlinear.Assembly` of the gradient of :math:`E` over the free
    coordinates and its Hessian, distributed (see the module docstring)."""

    def __init__(self, problem: DistributedAtomisticProblem) -> None:
        self.problem = p = problem
        model = p.model
        self.comm = model.comm
        d, n_own = model.dim, model.n_owned
        # free numbering of the coordinates, owned blocks contiguous per rank
        free_atom = ~p.fixed_mask[model.order]  # in new numbers
        first_free = np.concatenate([[0], np.cumsum(free_atom)])
        self.atom_free = np.where(free_atom, first_free[:-1], -1)  # free number per new number
        lo, hi = model.ranges[model.comm.rank], model.ranges[model.comm.rank + 1]
        self.m = int(free_atom[lo:hi].sum()) * d
        self.M = int(free_atom.sum()) * d
        self.start = int(first_free[lo]) * d
        owned_free = free_atom[lo:hi]
        #: positions in the owned flat coordinates of the free ones
        self.owned_free = np.flatnonzero(np.repeat(owned_free, d))
        self.d = d
        # the Hessian: the d x d blocks (+K_b at (i, i), (j, j), -K_b at (i, j), (j, i)) of the
        # local bonds in free atom numbers, their pattern found once at the level of atoms
        fa = self.atom_free[model.new]  # free atom number of each local atom, -1 if fixed
        i, j = model.local.i, model.local.j
        ra = np.concatenate([fa[i], fa[j], fa[i], fa[j]])
        ca = np.concatenate([fa[i], fa[j], fa[j], fa[i]])
        self.keep = (ra >= 0) & (ca >= 0)
        Ma = self.M // d
        own = np.arange(self.start // d, (self.start + self.m) // d)
        keys = np.concatenate([ra[self.keep] * Ma + ca[self.keep], own * (Ma + 1)])
        blocks, block_of = np.unique(keys, return_inverse=True)
        brow, bcol = blocks // Ma, blocks % Ma
        rows, first, per_row = np.unique(brow, return_index=True, return_counts=True)
        row = np.searchsorted(rows, brow)
        t = np.arange(len(blocks)) - first[row]  # place of the block in its atom row
        k, c = np.arange(d)[:, None], np.arange(d)[None, :]
        # CSR position of entry (k, c) of each block: the rows of an atom row are d long runs
        pos = (d * d * first[row])[:, None, None] + k * (per_row[row] * d)[:, None, None]
        pos = pos + (t * d)[:, None, None] + c
        self.slot = pos[block_of[: int(self.keep.sum())]].ravel()
        self.nnz = len(blocks) * d * d
        self.indices = np.empty(self.nnz, dtype=PETSc.IntType)
        self.indices[pos.ravel()] = np.broadcast_to(bcol[:, None, None] * d + c, pos.shape).ravel()
        self.rowmap = (rows[:, None] * d + np.arange(d)).ravel().astype(PETSc.IntType)
        lengths = np.repeat(per_row * d, d)
        self.indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(PETSc.IntType)
        self.sign = np.array([1.0, 1.0, -1.0, -1.0])
        # ghosted vectors of all coordinates (positions forward, forces reverse)
        ghost_dofs = (model.new[n_own:, None] * d + np.arange(d)).ravel().astype(PETSc.IntType)
        size = (n_own * d, model.atoms.n * d)
        self.xg = PETSc.Vec().createGhost(ghost_dofs, size=size, comm=self.comm)
        self.fg = PETSc.Vec().createGhost(ghost_dofs, size=size, comm=self.comm)

    def _preallocation(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-zeros per owned free row in the diagonal and off-diagonal blocks, from the bond
        graph (every bond touching an owned atom)."""
        model, d = self.problem.model, self.d
        lo, hi = model.ranges[model.comm.rank], model.ranges[model.comm.rank + 1]
        a, b = model.touching
        a, b = np.concatenate([a, b]), np.concatenate([b, a])
        keep = (a >= lo) & (a < hi) & (self.atom_free[a] >= 0) & (self.atom_free[b] >= 0)
        a, b = a[keep], b[keep]
        inside = (b >= lo) & (b < hi)
        n_own = hi - lo
        d_atoms = 1 + np.bincount(a[inside] - lo, minlength=n_own)
        o_atoms = np.bincount(a[~inside] - lo, minlength=n_own)
        free = self.atom_free[lo:hi] >= 0
        d_nnz = np.repeat(d * d_atoms[free], d).astype(PETSc.IntType)
        o_nnz = np.repeat(d * o_atoms[free], d).astype(PETSc.IntType)
        return d_nnz, o_nnz

    def create_matrix(self) -> PETSc.Mat:
        d_nnz, o_nnz = self._preallocation()
        A = PETSc.Mat().createAIJ(
            ((self.m, self.M), (self.m, self.M)), bsize=self.d, nnz=(d_nnz, o_nnz), comm=self.comm
        )
        A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        A.setNearNullSpace(self._rigid_modes(A))
        self.jacobian(A, at=self.problem.x)
        return A

    def _rigid_modes(self, A: PETSc.Mat) -> PETSc.NullSpace:
        """Translations and infinitesimal rotations of the free atoms (for GAMG)."""
        p, d = self.problem, self.d
        X = p.model.atoms.positions[p.model.ids[: p.model.n_owned]]
        X = X - p.model.atoms.positions.mean(axis=0)
        modes = [np.tile(np.eye(d)[k], (len(X), 1)) for k in range(d)]
        for a, b in ((0, 1), (1, 2), (0, 2))[: d * (d - 1) // 2]:
            m = np.zeros_like(X)
            m[:, a], m[:, b] = -X[:, b], X[:, a]
            modes.append(m)
        vecs: list[PETSc.Vec] = []
        for m in modes:  # Gram-Schmidt
            v = A.createVecRight()
            v.setArray(m.ravel()[self.owned_free])
            for w in vecs:
                v.axpy(-v.dot(w), w)
            v.scale(1.0 / v.norm())
            vecs.append(v)
        ns = PETSc.NullSpace().create(vectors=vecs, comm=self.comm)
        for v in vecs:
            v.destroy()
        return ns

    def create_vector(self) -> PETSc.Vec:
        return PETSc.Vec().createMPI((self.m, self.M), comm=self.comm)

    def scatter_positions(self) -> None:
        """The ghost rows of :attr:`problem.x` from their owners (collective)."""
        p = self.problem
        n_own = p.model.n_owned
        with self.xg.localForm() as loc:
            loc.array[: n_own * self.d] = p.x[:n_own].ravel()
        self.xg.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        with self.xg.localForm() as loc:
            p.x[n_own:] = loc.array_r[n_own * self.d :].reshape(-1, self.d)

    def sum_to_owners(self, values: np.ndarray) -> np.ndarray:
        """The rows ``values`` of the local atoms (owned and ghost) summed onto their owners:
        the owned rows, flat (collective)."""
        with self.fg.localForm() as loc:
            loc.array[:] = values.ravel()
        self.fg.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        return self.fg.getArray(readonly=True).copy()

    def set_iterate(self, x: PETSc.Vec) -> None:
        p = self.problem
        p.x[: p.model.n_owned].reshape(-1)[self.owned_free] = x.getArray(readonly=True)
        self.scatter_positions()
        p.check_admissible()

    def residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        p = self.problem
        f = self.sum_to_owners(p.model.local.forces(p.x, p.F))
        b.setArray(-f[self.owned_free])

    def hessian_times(self, v: np.ndarray) -> np.ndarray:
        """:math:`\\partial^2E/\\partial x^2\\,v` for the rows ``v`` of the local atoms, at the
        current positions: the owned rows, flat (collective)."""
        p = self.problem
        loc = p.model.local
        K = loc.bond_stiffness(p.x, p.F)
        w = np.einsum("bkl,bl->bk", K, v[loc.i] - v[loc.j])
        n, d = len(p.x), self.d
        out = np.stack(
            [np.bincount(loc.i, w[:, k], n) - np.bincount(loc.j, w[:, k], n) for k in range(d)],
            axis=1,
        )
        return self.sum_to_owners(out)

    def jacobian(self, A: PETSc.Mat, at: np.ndarray | None = None) -> None:
        p = self.problem
        K = p.model.local.bond_stiffness(p.x if at is None else at, p.F)
        coo = (self.sign[:, None, None, None] * K[None]).reshape(-1, self.d, self.d)[self.keep]
        data = np.bincount(self.slot, coo.ravel(), self.nnz)
        A.zeroEntries()
        A.setValuesIJV(self.indptr, self.indices, data, PETSc.InsertMode.ADD_VALUES, self.rowmap)
        A.assemble()

    def destroy(self) -> None:
        self.xg.destroy()
        self.fg.destroy()


class DistributedAtomisticProblem(PETScOwner):
    """:class:`~.statics.AtomisticProblem` on a :class:`DistributedPairModel`: minimize the
    energy with the atoms ``fixed`` (indices or a mask in the numbering of ``model.atoms``)
    held at :math:`X + t\\,\\bar u` (``displacement``: :math:`\\bar u`, ``(n_fixed, d)`` or
    ``(n, d)``) and the period deformed by :math:`\\bar F(t) = I + t(\\bar F - I)`
    (``macro_F``), over the load factors of :meth:`solve`.  The arguments are those of
    :class:`~.statics.AtomisticProblem`, the same on every rank.  :attr:`x` holds the
    positions of the local atoms (owned, then ghosts); :meth:`positions` gathers all of them.
    Collective on ``model.comm``; frees its PETSc objects in :meth:`destroy`.
    """

    def __init__(
        self,
        model: DistributedPairModel,
        *,
        fixed: Sequence[int] | np.ndarray = (),
        displacement: np.ndarray | None = None,
        macro_F: np.ndarray | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
        regrow_after: int = 2,
        min_bond_ratio: float = 0.5,
    ) -> None:
        self.comm: MPI.Comm = model.comm
        self.model = model
        n, d = model.atoms.n, model.dim
        mask = fixed_mask(fixed, n)
        self.fixed_mask = mask
        if mask.all():
            raise ValueError("every atom is fixed: nothing to minimize")
        if model.atoms.box is None:
            macro_F = None
        self._F1 = np.eye(d) if macro_F is None else np.asarray(macro_F, dtype=float)
        if self._F1.shape != (d, d):
            raise ValueError(f"macro_F: expected a {d} x {d} matrix")
        U = np.zeros((n, d))
        if displacement is not None:
            u = np.asarray(displacement, dtype=float).reshape(-1, d)
            if len(u) == n:
                U[mask] = u[mask]
            elif len(u) == mask.sum():
                U[mask] = u
            else:
                raise ValueError(f"displacement: expected {int(mask.sum())} or {n} rows of {d}")
        ids = model.ids
        self._local_fixed = mask[ids]
        self._u1 = U[ids]
        self.X = model.atoms.positions[ids]
        self.min_bond_ratio = float(min_bond_ratio)
        loc = model.local
        self._reference_lengths = np.linalg.norm(loc.bond_vectors(self.X), axis=1)
        self.x = self.X.copy()
        self.factor = 0.0
        self.F = np.eye(d)
        self.assembly = self._own(_DistributedAssembly(self))
        self.newton = self._own(
            NewtonSolver(
                self.assembly,
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

    # -- state ----------------------------------------------------------------------------------
    @property
    def n_owned(self) -> int:
        return self.model.n_owned

    def positions(self) -> np.ndarray:
        """All positions, ``(n, d)`` in the numbering of ``model.atoms``, on every rank
        (collective)."""
        return self.model.gather(self.x[: self.n_owned])

    def displacements(self) -> np.ndarray:
        """:math:`x - X` of all atoms (collective)."""
        return self.positions() - self.model.atoms.positions

    def energy(self) -> float:
        """:math:`E` at the current positions (collective)."""
        return self.model.energy(self.x, self.F)

    def owned_forces(self) -> np.ndarray:
        """:math:`-\\partial E/\\partial x` of the owned atoms, ``(n_owned, d)`` (collective;
        the fixed atoms carry the reactions)."""
        f = self.assembly.sum_to_owners(self.model.local.forces(self.x, self.F))
        return f.reshape(-1, self.model.dim)

    def forces(self) -> np.ndarray:
        """:math:`-\\partial E/\\partial x` of all atoms on every rank (collective)."""
        return self.model.gather(self.owned_forces())

    def max_free_force(self) -> float:
        """:math:`\\max |f|` over the free coordinates (collective)."""
        f = self.owned_forces().ravel()[self.assembly.owned_free]
        return float(self.comm.allreduce(float(np.abs(f).max(initial=0.0)), op=MPI.MAX))

    def check_admissible(self) -> None:
        """``ValueError`` (on this rank) when a local position is not finite or a local bond
        is shorter than ``min_bond_ratio`` of its reference length; the Newton solver agrees
        it on every rank (see :meth:`~.statics.AtomisticProblem.check_admissible`)."""
        loc = self.model.local
        if not np.all(np.isfinite(self.x)):
            raise ValueError("an atom position is not finite")
        if loc.n_bonds == 0:
            return
        ratio = np.linalg.norm(loc.bond_vectors(self.x, self.F), axis=1) / self._reference_lengths
        b = int(np.argmin(ratio))
        if ratio[b] < self.min_bond_ratio:
            i, j = self.model.ids[loc.i[b]], self.model.ids[loc.j[b]]
            raise ValueError(
                f"bond {i}-{j} compressed to {ratio[b]:.3g} of its reference length "
                f"(< {self.min_bond_ratio:g})"
            )

    # -- the Steppable protocol ------------------------------------------------------------------
    def set_load(self, factor: float) -> None:
        """Fixed atoms (owned and ghost) at :math:`X + t\\bar u`, period deformed by
        :math:`\\bar F(t)`."""
        t = float(factor)
        d = self.model.dim
        self.factor = t
        self.F = np.eye(d) + t * (self._F1 - np.eye(d))
        fx = self._local_fixed
        self.x[fx] = self.X[fx] + t * self._u1[fx]

    def attempt(self) -> NewtonOutcome:
        """Newton from the committed state moved by its linear response to the load increment
        (:meth:`~.statics.AtomisticProblem.predict`)."""
        self.newton.x.setArray(self.predict())
        return self.newton.solve()

    def predict(self) -> np.ndarray:
        """The owned free coordinates of :meth:`~.statics.AtomisticProblem.predict`: the
        committed state moved affinely with the period plus
        :math:`-K_{ff}^{-1}K_{fc}\\,\\Delta g` (collective)."""
        x0, F0 = self._committed
        guess = x0 @ (self.F @ np.linalg.inv(F0)).T  # ghosts too: the map is affine
        a = self.assembly
        dg = np.where(self._local_fixed[:, None], self.x - guess, 0.0)
        start = guess[: self.n_owned].reshape(-1)[a.owned_free]
        moved = bool(self.comm.allreduce(bool(np.any(dg)), op=MPI.LOR))
        if not moved:
            return start
        current = self.x.copy()
        self.x[:] = guess
        try:
            rhs = -a.hessian_times(dg)[a.owned_free]
            step = self._solve_free(rhs)
        finally:
            self.x[:] = current
        return start + step if step is not None else start

    def _solve_free(self, rhs: np.ndarray) -> np.ndarray | None:
        """:math:`K_{ff}^{-1}` ``rhs`` with the Hessian at the current positions (collective);
        ``None`` where the solve fails on any rank."""
        A, ksp = self.newton.A, self.newton.snes.getKSP()
        self.assembly.jacobian(A)
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
