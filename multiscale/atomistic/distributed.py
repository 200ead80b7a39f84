r"""Atomistic statics distributed over the ranks of a communicator by atom ownership.

The energy, forces and Hessian are those of :class:`~.statics.PairModel` and the minimization
that of :class:`~.statics.AtomisticProblem` (Newton, Dirichlet atoms eliminated, the package's
:class:`~multiscale.nonlinear.LoadStepper`, the same predictor); only where the work is done
differs.

**Input.**  No rank needs the whole set: each gives its :class:`LocalAtoms`, positions with
global numbers :math:`0 \dots n-1` in any distribution (what it read, or its slab of a lattice
block from :meth:`LocalAtoms.block`, which generates only that slab); a whole
:class:`~.statics.AtomSet` given on every rank is cut into contiguous shares.

**Ownership.**  The atoms are split by recursive coordinate bisection
(:func:`partition_distributed`): the set is cut across its longest extent at the quantile that
gives each half its share of the ranks, and so on, so each rank owns a compact block of
:math:`\approx n/p` atoms.  The extents and counts come from reductions, the quantile from a
distributed selection (weighted median of the ranks' medians), ties broken by the global
number, so the parts are those of the serial :func:`partition` of the whole set; then one
all-to-all sends each row to its owner.  The owned atoms are renumbered rank by rank in the
order of their global numbers (the PETSc layout: rank :math:`r` owns the atoms
:math:`[s_r, s_{r+1})` and their :math:`d` coordinates).  A second all-to-all brings each rank
the *halo*, the atoms of the others within the cut-off of its block's bounding box (through
the period for a periodic set), and it searches neighbours only among its own atoms and the
halo.  Per-atom data given with the atoms (the fixed atoms, their displacements) follow the
same two exchanges (:meth:`DistributedPairModel.to_owned`, :meth:`~DistributedPairModel.
to_local`); results are gathered on one rank only when asked (:meth:`~DistributedPairModel.
gather`).  No rank holds more than its owned atoms, their halo and its own input
(:attr:`DistributedPairModel.held`).

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
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.errors import CollectiveError
from multiscale.nonlinear import (
    LoadStepper,
    NewtonSolver,
    agree,
)

from .lattice import SHELL_TOL, Lattice, _distinct, block_slab
from .potentials import PairPotential
from .statics import (
    DEFAULTS,
    AtomSet,
    LatticeStatics,
    PairModel,
    fixed_mask,
    neighbour_pairs,
)

__all__ = [
    "DistributedAtomisticProblem",
    "DistributedPairModel",
    "LocalAtoms",
    "partition",
    "partition_distributed",
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


def _count_below(c: np.ndarray, g: np.ndarray, key: tuple[float, int], side: str) -> int:
    """Number of the pairs ``(c, g)`` (sorted lexicographically) below ``key`` (``side``
    ``"right"``: below or equal)."""
    a = int(np.searchsorted(c, key[0], "left"))
    b = int(np.searchsorted(c, key[0], "right"))
    return a + int(np.searchsorted(g[a:b], key[1], side))


def _select(comm: MPI.Comm, c: np.ndarray, g: np.ndarray, k: int) -> tuple[float, int]:
    """The ``k``-th smallest (from 0) of the pairs ``(c, g)`` spread over the ranks of
    ``comm``, ordered by ``c`` and then by the distinct integers ``g`` (collective).

    Each round, every rank proposes the median of its remaining candidates, weighted by their
    number; the weighted median of the proposals is counted against all candidates and at
    least a quarter of them is discarded, so :math:`O(\\log n)` rounds of two collectives over
    :math:`p` numbers find it, the points never moving."""
    order = np.lexsort((g, c))
    c, g = c[order], g[order]
    lo, hi = 0, len(c)
    while True:
        w = hi - lo
        mid = lo + w // 2
        proposal = (float(c[mid]), int(g[mid]), w) if w > 0 else (0.0, 0, 0)
        props = [p for p in comm.allgather(proposal) if p[2] > 0]
        props.sort(key=lambda p: (p[0], p[1]))
        weights = np.cumsum([p[2] for p in props])
        pick = props[int(np.searchsorted(weights, 0.5 * weights[-1]))]
        key = (pick[0], pick[1])
        below = min(max(_count_below(c, g, key, "left"), lo), hi)
        total = comm.allreduce(below - lo, op=MPI.SUM)
        if total == k:
            return key
        if total < k:
            upto = min(max(_count_below(c, g, key, "right"), lo), hi)
            k -= total + 1  # the pivot is one of the candidates
            lo = upto
        else:
            hi = below


def partition_distributed(
    comm: MPI.Comm, X: np.ndarray, ids: np.ndarray, parts: int | None = None
) -> np.ndarray:
    """The part of each of this rank's points ``X`` (``(m, d)``; global numbers ``ids``) in
    the recursive coordinate bisection of the points of every rank of ``comm`` (collective).

    The cuts are those of :func:`partition`, ties along the cut axis broken by the global
    number: for ``ids`` the rows of the whole set, the parts equal those of
    :func:`partition` of the whole set.  The extents and counts of each group come from
    reductions and its quantile from the selection :func:`_select`; no point moves."""
    parts = comm.size if parts is None else int(parts)
    X = np.asarray(X, dtype=float)
    ids = np.asarray(ids, dtype=np.int64)
    owner = np.zeros(len(X), dtype=np.int64)
    stack = [(np.arange(len(X)), 0, parts)]  # the same sequence of groups on every rank
    while stack:
        idx, first, p = stack.pop()
        total = comm.allreduce(len(idx), op=MPI.SUM) if p > 1 else 0
        if p == 1 or total == 0:
            owner[idx] = first
            continue
        left = p // 2
        Y = X[idx]
        lo = Y.min(axis=0) if len(Y) else np.full(X.shape[1], np.inf)
        hi = Y.max(axis=0) if len(Y) else np.full(X.shape[1], -np.inf)
        comm.Allreduce(MPI.IN_PLACE, lo, op=MPI.MIN)
        comm.Allreduce(MPI.IN_PLACE, hi, op=MPI.MAX)
        axis = int(np.argmax(hi - lo))
        k = round(total * left / p)
        c, g = Y[:, axis], ids[idx]
        if k == 0:
            below = np.zeros(len(idx), dtype=bool)
        elif k == total:
            below = np.ones(len(idx), dtype=bool)
        else:
            kc, kg = _select(comm, c, g, k)
            below = (c < kc) | ((c == kc) & (g < kg))
        stack.append((idx[below], first, left))
        stack.append((idx[~below], first + left, p - left))
    return owner


def _mpi_type(dtype: np.dtype) -> MPI.Datatype:
    return MPI.DOUBLE if np.dtype(dtype).kind == "f" else MPI.INT64_T


class _Exchange:
    """A fixed plan of rows sent between the ranks of ``comm``: this rank sends the rows
    ``index`` of its arrays, the first ``counts[0]`` to rank 0, the next ``counts[1]`` to
    rank 1, ... (one MPI all-to-all per call; a row may go to several ranks)."""

    def __init__(self, comm: MPI.Comm, index: np.ndarray, counts: np.ndarray) -> None:
        self.comm = comm
        self.index = np.asarray(index, dtype=np.int64)
        self.send = np.asarray(counts, dtype=np.int64)
        self.recv = np.asarray(comm.alltoall([int(v) for v in self.send]), dtype=np.int64)

    @classmethod
    def to_ranks(cls, comm: MPI.Comm, dest: np.ndarray) -> _Exchange:
        """Each row to the rank ``dest`` of it."""
        dest = np.asarray(dest, dtype=np.int64)
        return cls(comm, np.argsort(dest, kind="stable"), np.bincount(dest, minlength=comm.size))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """The rows received (rank by rank) for the rows ``values`` of this rank."""
        values = np.asarray(values)
        kind = "f" if values.dtype.kind == "f" else "i"
        dtype = np.float64 if kind == "f" else np.int64
        out_dtype = values.dtype if values.dtype.kind in "fiub" else dtype
        data = np.ascontiguousarray(values[self.index], dtype=dtype)
        shape = values.shape[1:]
        width = int(np.prod(shape)) if shape else 1
        out = np.empty((int(self.recv.sum()), *shape), dtype=dtype)
        sd = np.concatenate([[0], np.cumsum(self.send)[:-1]]) * width
        rd = np.concatenate([[0], np.cumsum(self.recv)[:-1]]) * width
        mtype = _mpi_type(dtype)
        self.comm.Alltoallv(
            [data.reshape(-1), self.send * width, sd, mtype],
            [out.reshape(-1), self.recv * width, rd, mtype],
        )
        return out.astype(out_dtype, copy=False)


@dataclass(frozen=True, eq=False)
class LocalAtoms:
    """This rank's part of a reference set of atoms distributed in any way over the ranks:
    ``positions`` (``(m, d)``, ``m`` may be 0), their global numbers ``ids`` (together over
    the ranks, each of ``0 .. n-1`` once) and the orthogonal ``box`` of a periodic set (the
    same on every rank; ``None``: free surfaces).  What each rank read, or generated with
    :meth:`block`; :meth:`of` cuts a whole :class:`~.statics.AtomSet` into such parts."""

    positions: np.ndarray
    ids: np.ndarray
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        X = np.asarray(self.positions, dtype=float)
        ids = np.asarray(self.ids, dtype=np.int64).ravel()
        if X.ndim != 2 or X.shape[1] not in (1, 2, 3) or not np.isfinite(X).all():
            raise ValueError(f"positions: expected a finite (m, d) array, got {X.shape}")
        if ids.shape != (len(X),):
            raise ValueError(f"ids: expected {len(X)} global numbers, got {ids.shape}")
        object.__setattr__(self, "positions", X)
        object.__setattr__(self, "ids", ids)
        if self.box is not None:
            object.__setattr__(self, "box", np.asarray(self.box, dtype=float).ravel())

    @property
    def dim(self) -> int:
        return int(self.positions.shape[1])

    @property
    def m(self) -> int:
        """The number of atoms on this rank."""
        return len(self.ids)

    @classmethod
    def of(cls, atoms: AtomSet, comm: MPI.Comm = MPI.COMM_WORLD) -> LocalAtoms:
        """The contiguous share of the rows of ``atoms`` (the whole set, on every rank) of
        this rank of ``comm``, numbered by their rows."""
        n, r, p = atoms.n, comm.rank, comm.size
        lo, hi = n * r // p, n * (r + 1) // p
        return cls(atoms.positions[lo:hi], np.arange(lo, hi), atoms.box)

    @classmethod
    def block(
        cls,
        lattice: Lattice,
        lo: Sequence[float],
        hi: Sequence[float],
        comm: MPI.Comm = MPI.COMM_WORLD,
        *,
        exclude: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> LocalAtoms:
        """This rank's slab of the sites of ``lattice`` in the closed box ``[lo, hi]``
        (:func:`~.lattice.block_slab`), less those where ``exclude(X)`` is true (a vacancy,
        a void), numbered consecutively rank by rank (collective: one prefix sum).  No rank
        generates the sites of another."""
        X = block_slab(lattice, lo, hi, comm.rank, comm.size)
        if exclude is not None:
            X = X[~np.asarray(exclude(X), dtype=bool)]
        first = comm.exscan(len(X), op=MPI.SUM) if comm.size > 1 else 0
        first = int(first or 0)
        return cls(X, np.arange(first, first + len(X)))


def _near_box(X: np.ndarray, lo: np.ndarray, hi: np.ndarray, pad: float, box) -> np.ndarray:
    """Mask of the points of ``X`` within ``pad`` of the box ``[lo, hi]`` in every coordinate
    (through the period ``box`` where given)."""
    if box is None:
        return np.all((X >= lo - pad) & (X <= hi + pad), axis=1)
    width = hi - lo + 2 * pad
    offset = np.mod(X - (lo - pad), box)
    return np.all((offset <= width) | (width >= box), axis=1)


class DistributedPairModel:
    """The :class:`~.statics.PairModel` of a reference set with the bonds up to ``cutoff``
    and the pair ``potential`` (one, or one per shell), distributed over the ranks of ``comm``
    by atom ownership (see the module docstring).

    ``atoms``: this rank's :class:`LocalAtoms` (any distribution; no rank needs the whole
    set), or the whole :class:`~.statics.AtomSet`, the same on every rank (checked), which
    each rank then takes its share of (:meth:`LocalAtoms.of`; the global numbers are its
    rows).  The atoms are redistributed to their owners in the recursive coordinate bisection
    (:func:`partition_distributed`: one all-to-all of the rows), each rank receives the atoms
    of the others within the cut-off of its block (a second all-to-all) and searches bonds
    only among those.  ``modify(model, ids)`` may change the local model (e.g.
    :func:`~.qc.soften_bonds`; ``ids``: the global numbers of its atoms), as for
    :class:`~.qc.QCModel`.

    Attributes: ``n`` (atoms in all), ``ranges`` (each rank's first new number and the total:
    rank :math:`r` owns :math:`[s_r, s_{r+1})`), ``local`` (the local
    :class:`~.statics.PairModel`: owned atoms first, in increasing global number, then
    ghosts), ``ids`` (the global numbers of its atoms), ``new`` (their new numbers),
    ``reference`` (their reference positions), ``n_owned``, ``held`` (the most atom rows this
    rank held at once in each phase: ``"input"``, ``"owned"``, ``"halo"``: the atoms of
    others within the cut-off of its block).  Collective on ``comm``.
    """

    def __init__(
        self,
        atoms: AtomSet | LocalAtoms,
        potential: PairPotential | Sequence[PairPotential],
        cutoff: float,
        *,
        comm: MPI.Comm = MPI.COMM_WORLD,
        modify: Callable[[PairModel, np.ndarray], PairModel] | None = None,
    ) -> None:
        self.comm, self.cutoff = comm, float(cutoff)
        #: the whole set where it was given (the numbering of ``fixed``/``displacement``)
        self.atoms: AtomSet | None = atoms if isinstance(atoms, AtomSet) else None
        if isinstance(atoms, AtomSet):
            box = atoms.box
            checksum = zlib.crc32(atoms.positions.tobytes()) ^ (
                0 if box is None else zlib.crc32(box.tobytes())
            )
            if len(set(comm.allgather(checksum))) > 1:
                raise CollectiveError("the reference atom set differs between the ranks")
            atoms = LocalAtoms.of(atoms, comm)
        self.input = atoms
        box = atoms.box
        dims = set(comm.allgather(atoms.dim))
        boxes = comm.allgather(None if box is None else box.tobytes())
        if len(dims) > 1 or len(set(boxes)) > 1:
            raise CollectiveError("the ranks give atoms of different dimensions or periods")
        d = atoms.dim
        self.box = box
        self.n = int(comm.allreduce(atoms.m, op=MPI.SUM))
        top = comm.allreduce(int(atoms.ids.max(initial=-1)), op=MPI.MAX)
        low = comm.allreduce(int(atoms.ids.min(initial=self.n)), op=MPI.MIN)
        if self.n == 0 or low < 0 or top >= self.n:
            raise CollectiveError(f"the global numbers of the atoms must be 0 .. {self.n - 1}")

        # ownership: recursive coordinate bisection, the rows sent to their owners
        owner = partition_distributed(comm, atoms.positions, atoms.ids)
        self._to_owner = _Exchange.to_ranks(comm, owner)
        gid = self._to_owner(atoms.ids)
        self._sort = np.argsort(gid, kind="stable")
        Xo = self._to_owner(atoms.positions)[self._sort]
        gid = gid[self._sort]
        counts = np.asarray(comm.allgather(len(gid)), dtype=np.int64)
        self.ranges = np.concatenate([[0], np.cumsum(counts)])
        start, stop = int(self.ranges[comm.rank]), int(self.ranges[comm.rank + 1])
        self.n_owned = stop - start

        # the halo: the atoms of the others within the cut-off of this rank's block
        pad = self.cutoff * (1 + SHELL_TOL) * (1 + 1e-12)
        mine = (Xo.min(axis=0), Xo.max(axis=0)) if len(Xo) else None
        blocks = comm.allgather(mine)
        send, sizes = [], np.zeros(comm.size, dtype=np.int64)
        for q, blk in enumerate(blocks):
            if q == comm.rank or blk is None or not len(Xo):
                continue
            rows = np.flatnonzero(_near_box(Xo, blk[0], blk[1], pad, box))
            send.append(rows)
            sizes[q] = len(rows)
        index = np.concatenate(send) if send else np.zeros(0, dtype=np.int64)
        self._halo = _Exchange(comm, index, sizes)
        Xh = self._halo(Xo)
        hid = self._halo(gid)
        hnew = self._halo(np.arange(start, stop))
        self.held = {
            "input": self.n if self.atoms is not None else atoms.m,
            "owned": self.n_owned,
            "halo": len(hid),
        }

        # bonds among the owned and halo atoms
        Xc = np.concatenate([Xo, Xh])
        cnew = np.concatenate([np.arange(start, stop), hnew])
        error: str | None = None
        try:
            if len(Xo):
                ci, cj, image = neighbour_pairs(AtomSet(Xc, box), self.cutoff)
            else:
                ci = cj = np.zeros(0, dtype=np.int64)
                image = np.zeros((0, d))
        except ValueError as err:
            error = str(err)
        error = agree(comm, error)
        if error is not None:
            raise CollectiveError(error)
        gi, gj = cnew[ci], cnew[cj]
        owned_i = (gi >= start) & (gi < stop)
        owned_j = (gj >= start) & (gj < stop)
        #: every bond touching an owned atom: (owned local number, number among owned + halo)
        touch = owned_i | owned_j
        self.touching = np.stack(
            [np.where(owned_i, ci, cj)[touch], np.where(owned_i, cj, ci)[touch]]
        )
        evaluated = np.where(gi < gj, owned_i, owned_j)
        gi, gj, image = gi[evaluated], gj[evaluated], image[evaluated]
        partners = np.concatenate([gi, gj])
        ghosts = np.unique(partners[(partners < start) | (partners >= stop)])
        self.new = np.concatenate([np.arange(start, stop), ghosts])
        #: place of each ghost among the halo atoms
        self._ghost_in_halo = np.argsort(hnew, kind="stable")[
            np.searchsorted(np.sort(hnew), ghosts)
        ]
        self.ids = np.concatenate([gid, hid[self._ghost_in_halo]])
        self.reference = np.concatenate([Xo, Xh[self._ghost_in_halo]])
        li, lj = self._local(gi, ghosts, start), self._local(gj, ghosts, start)
        if comm.allreduce(self.n_owned == 0, op=MPI.LOR):
            raise CollectiveError(f"{self.n} atoms on {comm.size} ranks: a rank owns none")
        local_atoms = AtomSet(self.reference, box)
        R = self.reference[lj] - self.reference[li] + image
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
        return self.input.dim

    @property
    def radii(self) -> np.ndarray:
        return self.local.radii

    # -- per-atom data ---------------------------------------------------------------------------
    @property
    def n_input(self) -> int:
        """Rows of the per-atom data this rank gives (:meth:`to_owned`): the whole set's
        :math:`n` for an :class:`~.statics.AtomSet`, else its :class:`LocalAtoms`."""
        return self.n if self.atoms is not None else self.input.m

    def to_owned(self, values: np.ndarray) -> np.ndarray:
        """The rows of the owned atoms of per-atom data given with the atoms: one row per atom
        of this rank's :class:`LocalAtoms` (sent to the owners as the positions were), or, for
        a whole :class:`~.statics.AtomSet`, one row per atom of the set (collective)."""
        values = np.asarray(values)
        if len(values) != self.n_input:
            raise ValueError(f"expected {self.n_input} rows of per-atom data, got {len(values)}")
        if self.atoms is not None:
            return values[self.ids[: self.n_owned]]
        return self._to_owner(values)[self._sort]

    def halo(self, owned: np.ndarray) -> np.ndarray:
        """The rows of the halo atoms (those of the others within the cut-off of this rank's
        block, :attr:`touching`) from the rows ``owned`` of their owners (collective)."""
        return self._halo(np.asarray(owned))

    def to_local(self, owned: np.ndarray) -> np.ndarray:
        """The rows of the local atoms (owned, then ghosts) from the rows ``owned`` of every
        rank's owned atoms (collective)."""
        owned = np.asarray(owned)
        return np.concatenate([owned, self.halo(owned)[self._ghost_in_halo]])

    def gather(self, owned: np.ndarray, root: int | None = 0) -> np.ndarray | None:
        """The rows ``owned`` (one per owned atom) of every rank as one ``(n, ...)`` array in
        the global numbering, on the rank ``root`` only (``None`` elsewhere); ``root=None``:
        on every rank.  The one place the whole set is put together, and only when asked
        (collective)."""
        owned = np.ascontiguousarray(owned, dtype=float)
        shape = owned.shape[1:]
        width = int(np.prod(shape)) if shape else 1
        counts = np.diff(self.ranges) * width
        displs = self.ranges[:-1] * width
        gid = self.ids[: self.n_owned].astype(np.int64)
        if root is None:
            flat = np.empty(self.n * width)
            ids = np.empty(self.n, dtype=np.int64)
            self.comm.Allgatherv(owned.ravel(), [flat, counts, displs, MPI.DOUBLE])
            self.comm.Allgatherv(gid, [ids, np.diff(self.ranges), self.ranges[:-1], MPI.INT64_T])
        else:
            mine = self.comm.rank == root
            flat = np.empty(self.n * width) if mine else None
            ids = np.empty(self.n, dtype=np.int64) if mine else None
            self.comm.Gatherv(owned.ravel(), [flat, counts, displs, MPI.DOUBLE], root=root)
            self.comm.Gatherv(
                gid, [ids, np.diff(self.ranges), self.ranges[:-1], MPI.INT64_T], root=root
            )
            if not mine:
                return None
        out = np.empty((self.n, *shape))
        out[ids] = flat.reshape(self.n, *shape)
        return out

    def energy(self, x_local: np.ndarray, F: np.ndarray | None = None) -> float:
        """:math:`E = \\sum_b\\phi_b` at the local positions ``x_local`` (owned and ghost
        atoms; collective)."""
        e = float(self.local.energy(x_local, F)) if self.local.n_bonds else 0.0
        return float(self.comm.allreduce(e, op=MPI.SUM))


class _DistributedAssembly:
    """The :class:`~multiscale.nonlinear.Assembly` of the gradient of :math:`E` over the free
    coordinates and its Hessian, distributed (see the module docstring)."""

    def __init__(self, problem: DistributedAtomisticProblem) -> None:
        self.problem = p = problem
        model = p.model
        self.comm = model.comm
        d, n_own = model.dim, model.n_owned
        # free numbering of the coordinates, owned blocks contiguous per rank
        owned_free = ~p.owned_fixed
        n_free = int(owned_free.sum())
        first = int(self.comm.exscan(n_free, op=MPI.SUM) or 0) if self.comm.size > 1 else 0
        self.m = n_free * d
        self.M = int(self.comm.allreduce(n_free, op=MPI.SUM)) * d
        self.start = first * d
        own_number = np.where(owned_free, first + np.cumsum(owned_free) - 1, -1)
        #: free atom number of the owned and the halo atoms (-1: fixed)
        self.halo_free = np.concatenate([own_number, model.halo(own_number)])
        #: positions in the owned flat coordinates of the free ones
        self.owned_free = np.flatnonzero(np.repeat(owned_free, d))
        self.d = d
        # the Hessian: the d x d blocks (+K_b at (i, i), (j, j), -K_b at (i, j), (j, i)) of the
        # local bonds in free atom numbers, their pattern found once at the level of atoms
        fa = model.to_local(own_number)  # free atom number of each local atom, -1 if fixed
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
        size = (n_own * d, model.n * d)
        self.xg = PETSc.Vec().createGhost(ghost_dofs, size=size, comm=self.comm)
        self.fg = PETSc.Vec().createGhost(ghost_dofs, size=size, comm=self.comm)

    def _preallocation(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-zeros per owned free row in the diagonal and off-diagonal blocks, from the bond
        graph (every bond touching an owned atom)."""
        model, d = self.problem.model, self.d
        n_own = model.n_owned
        a, b = model.touching  # owned local number, number among owned + halo
        both = b < n_own  # both owned: the bond appears once, for both rows
        a, b = np.concatenate([a, b[both]]), np.concatenate([b, a[both]])
        keep = (self.halo_free[a] >= 0) & (self.halo_free[b] >= 0)
        a, b = a[keep], b[keep]
        inside = b < n_own
        d_atoms = 1 + np.bincount(a[inside], minlength=n_own)
        o_atoms = np.bincount(a[~inside], minlength=n_own)
        free = self.halo_free[:n_own] >= 0
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
        X = p.model.reference[: p.model.n_owned]
        X = X - self.comm.allreduce(X.sum(axis=0), op=MPI.SUM) / p.model.n
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


class DistributedAtomisticProblem(LatticeStatics):
    """:class:`~.statics.AtomisticProblem` on a :class:`DistributedPairModel`: minimize the
    energy with the atoms ``fixed`` held at :math:`X + t\\,\\bar u` (``displacement``:
    :math:`\\bar u`) and the period deformed by :math:`\\bar F(t) = I + t(\\bar F - I)`
    (``macro_F``), over the load factors of :meth:`solve`.

    ``fixed`` and ``displacement`` are given as the atoms were (:meth:`DistributedPairModel.
    to_owned`): for a model of :class:`LocalAtoms`, a mask or indices over this rank's atoms
    and their rows (``(m, d)``, or one row per fixed atom of this rank); for a whole
    :class:`~.statics.AtomSet`, the same on every rank over the whole set, as for
    :class:`~.statics.AtomisticProblem`.  Either may also be a function of the reference
    positions (``(k, d)`` rows to a mask, or to :math:`\\bar u`), then evaluated on the owned
    atoms only.  :attr:`x` holds the positions of the local atoms (owned, then ghosts);
    :meth:`positions` gathers them on one rank when asked.  Collective on ``model.comm``;
    frees its PETSc objects in :meth:`destroy`.
    """

    def __init__(
        self,
        model: DistributedPairModel,
        *,
        fixed: Sequence[int] | np.ndarray | Callable[[np.ndarray], np.ndarray] = (),
        displacement: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
        macro_F: np.ndarray | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
        regrow_after: int = 2,
        min_bond_ratio: float = 0.5,
    ) -> None:
        self.comm: MPI.Comm = model.comm
        self.model = model
        d, n_own = model.dim, model.n_owned
        X_own = model.reference[:n_own]
        if callable(fixed):
            owned_fixed = np.asarray(fixed(X_own), dtype=bool).reshape(n_own)
            mask = None
        else:
            mask = fixed_mask(fixed, model.n_input)
            owned_fixed = model.to_owned(mask)
        if self.comm.allreduce(bool(np.all(owned_fixed)), op=MPI.LAND):
            raise ValueError("every atom is fixed: nothing to minimize")
        if model.box is None:
            macro_F = None
        self._F1 = np.eye(d) if macro_F is None else np.asarray(macro_F, dtype=float)
        if self._F1.shape != (d, d):
            raise ValueError(f"macro_F: expected a {d} x {d} matrix")
        U_own = np.zeros((n_own, d))
        if callable(displacement):
            U_own[owned_fixed] = np.asarray(displacement(X_own), float).reshape(n_own, d)[
                owned_fixed
            ]
        elif displacement is not None:
            if mask is None:
                raise ValueError("displacement: give a function of X with a function fixed")
            u = np.asarray(displacement, dtype=float).reshape(-1, d)
            if len(u) == len(mask):
                full = u
            elif len(u) == mask.sum():
                full = np.zeros((len(mask), d))
                full[mask] = u
            else:
                raise ValueError(
                    f"displacement: expected {int(mask.sum())} or {len(mask)} rows of {d}"
                )
            U_own = np.where(owned_fixed[:, None], model.to_owned(full), 0.0)
        self.owned_fixed = owned_fixed
        self._local_fixed = model.to_local(owned_fixed)
        self._u1 = model.to_local(U_own)
        self.X = model.reference
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

    def positions(self, root: int | None = 0) -> np.ndarray | None:
        """All positions, ``(n, d)`` in the global numbering, on the rank ``root`` (``None``
        elsewhere; ``root=None``: on every rank).  Collective."""
        return self.model.gather(self.x[: self.n_owned], root)

    def displacements(self, root: int | None = 0) -> np.ndarray | None:
        """:math:`x - X` of all atoms on ``root`` (as :meth:`positions`; collective)."""
        return self.model.gather(self.x[: self.n_owned] - self.X[: self.n_owned], root)

    def energy(self) -> float:
        """:math:`E` at the current positions (collective)."""
        return self.model.energy(self.x, self.F)

    def owned_forces(self) -> np.ndarray:
        """:math:`-\\partial E/\\partial x` of the owned atoms, ``(n_owned, d)`` (collective;
        the fixed atoms carry the reactions)."""
        f = self.assembly.sum_to_owners(self.model.local.forces(self.x, self.F))
        return f.reshape(-1, self.model.dim)

    def forces(self, root: int | None = 0) -> np.ndarray | None:
        """:math:`-\\partial E/\\partial x` of all atoms on ``root`` (as :meth:`positions`;
        collective)."""
        return self.model.gather(self.owned_forces(), root)

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
        self._set_period(factor)
        fx = self._local_fixed
        self.x[fx] = self.X[fx] + self.factor * self._u1[fx]

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
            step = self._solve_jacobian(rhs)
        finally:
            self.x[:] = current
        return start + step if step is not None else start
