r"""The quasicontinuum (QC) method: atoms where they matter, Cauchy–Born elements elsewhere.

*Kinematics.*  The representative atoms (repatoms) are the nodes of a coarse triangulation of
the reference lattice (1D: intervals, 2D: triangles by :class:`scipy.spatial.Delaunay` on the
repatoms); every other atom follows them by linear interpolation, :math:`x = T\,x_r` with the
sparse matrix :math:`T` of barycentric coordinates (a repatom's row is a unit row).
:meth:`CoarseMesh.graded` builds the mesh: every site within ``refined`` of the defect centre,
a boundary layer of every site (the Dirichlet atoms), and outside, the sites of the sublattice
of spacing :math:`s = H` (``coarse_size``) or, graded, :math:`s = 2^k` growing with the distance.

*Blending function.*  Each repatom carries :math:`\beta_a \in [0, 1]`: 0 in the atomistic
(nonlocal) region :math:`|X_a - c| \le R`, 1 in the continuum (local) region, and for the
blended method the smooth ramp :math:`\beta = \mathrm{smoothstep}((|X - c| - R)/w)` over a
blending width :math:`w`.  Atoms that are not repatoms have :math:`\beta = 1`.

*Energy-based QC* (QCE, and the blended BQCE with a ramp):

.. math::
    E(x_r) = \sum_b c_b\,\phi_b(|r_b(T x_r)|) + \sum_e w_e\,W(F_e), \qquad
    c_b = \tfrac12\big[(1-\beta_i) + (1-\beta_j)\big], \qquad
    w_e = V_e\,\frac{1}{d+1}\sum_{a \in e}\beta_a,

i.e. the site energies :math:`E_a = \frac12\sum_{b \ni a}\phi_b` of the nonlocal repatoms (each
bond's energy split half-half) plus Cauchy–Born :math:`W` (:class:`~.cauchy_born.CauchyBorn`) on
the elements, each element's volume :math:`V_e` shared equally among its :math:`d + 1` nodes and
the share of nonlocal nodes removed (for QCE this is the nodal-volume form of the
Tadmor–Ortiz–Phillips/Shenoy partition: a fully refined lattice element gives each atom the
volume :math:`\Omega_0`).  :math:`F_e = \sum_a x_a\otimes\nabla N_a` is constant on a P1 element.
Under a uniform :math:`F` the exact forces vanish; QCE has nonzero *ghost forces* at the
interface (the site energies of nonlocal atoms see local atoms whose energy is counted by
:math:`W`, not by bonds).

*Ghost-force correction* (after Shenoy et al. 1999): the dead load
:math:`g(t) = f^{QCF}(x^{aff}(t)) - f^{QCE}(x^{aff}(t))` at the affine state of the load factor
:math:`t` (:math:`x^{aff} = X + t(\bar F - I)(X - c)`) is added to the QCE forces; the Jacobian
stays the symmetric QCE Hessian and the patch test is passed exactly.

*Force-based QC* (QCF): the force on a nonlocal repatom is the full atomistic force on its
atom (all bonds, at the interpolated positions), that on a local repatom
:math:`-\partial/\partial x_a \sum_e V_e W(F_e)`; no energy has these forces, the Jacobian is
non-symmetric (LU), the patch test is passed.

All variants are solved by :class:`QCProblem` with the package's Newton solver and load stepper,
Dirichlet repatoms (the boundary layer) eliminated, as :class:`~.statics.AtomisticProblem` does.

*Over the ranks* of a communicator (``QCModel(..., comm=comm)``): each rank sums the energy,
the forces and the Jacobian of a contiguous share of the cluster bonds and of the elements (all
these are sums over bonds and elements, so the shares add up); the free repatom coordinates are
an MPI vector in contiguous blocks of repatoms, the residual comes to its owners by a reduce-
scatter and the Jacobian is an MPIAIJ matrix (rows added across ranks, preallocated from the
whole pattern), factorized by MUMPS in parallel.  What stays on every rank: the coarse mesh and
its interpolation (built from the whole atom set), the cluster's neighbour list and the repatom
positions (gathered at each iterate; their number is that of the mesh nodes, not of the atoms).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc
from scipy import sparse
from scipy.spatial import Delaunay, cKDTree

from multiscale.nonlinear import LoadStepper, NewtonOutcome, NewtonSolver, PETScOwner, StepRecord

from .cauchy_born import CauchyBorn
from .lattice import Lattice
from .potentials import PairPotential
from .statics import AtomSet, PairModel, StaticsResult

__all__ = [
    "METHODS",
    "CoarseMesh",
    "MeshSpec",
    "QCModel",
    "QCProblem",
    "soften_bonds",
]

#: The QC variants of :class:`QCProblem`.
METHODS = ("qce", "qce_corrected", "qcf", "blended")

#: Tolerance of the barycentric point location (relative).
_BARY_TOL = 1e-9


def _smoothstep(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


@dataclass(frozen=True)
class MeshSpec:
    """Parameters of :meth:`CoarseMesh.graded` (lengths absolute, sizes in lattice spacings).

    ``centre``: the defect centre :math:`c`; ``radius``: the atomistic radius :math:`R`;
    ``padding``: width of fully refined local sites beyond the atomistic (and blending) region
    (at least the cut-off, so nonlocal atoms have repatom neighbours); ``layer``: thickness of
    the boundary layer of fully resolved (Dirichlet) sites; ``coarse_size``: a uniform
    sublattice spacing :math:`H` outside, or ``None`` for the graded one, :math:`s = 2^k \\le
    1 + (\\rho - R_m)/(g\\,a)` with ``growth`` :math:`g`, capped at ``max_size``;
    ``blend_width``: :math:`w` of the blended method (0: the sharp QCE interface)."""

    centre: tuple[float, ...]
    radius: float
    padding: float
    layer: float
    coarse_size: int | None = None
    growth: float = 2.0
    max_size: int = 64
    blend_width: float = 0.0

    def __post_init__(self) -> None:
        for name in ("radius", "padding", "layer", "growth"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0 or (name == "growth" and v == 0):
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
        if self.coarse_size is not None and int(self.coarse_size) < 1:
            raise ValueError(f"coarse_size must be a positive integer, got {self.coarse_size!r}")
        if int(self.max_size) < 1 or float(self.blend_width) < 0:
            raise ValueError("max_size must be >= 1 and blend_width >= 0")

    @property
    def refined(self) -> float:
        """:math:`R_m = R + w + \\text{padding}`: every site within it is a repatom."""
        return float(self.radius + self.blend_width + self.padding)

    def beta(self, dist: np.ndarray) -> np.ndarray:
        """:math:`\\beta(\\rho)`: 0 inside :math:`R`, 1 beyond :math:`R + w` (smoothstep)."""
        if self.blend_width == 0.0:
            return (dist > self.radius * (1 + 1e-12)).astype(float)
        return _smoothstep((dist - self.radius) / self.blend_width)


# -- the coarse mesh -------------------------------------------------------------------------------
class CoarseMesh:
    """Repatoms ``repatoms`` (indices into ``atoms``), P1 ``elements`` (rows of repatom numbers,
    ``(m, d + 1)``) and the blending values ``beta`` of the repatoms.

    Attributes: ``X`` (repatom reference positions), ``volumes`` :math:`V_e`, ``grads``
    :math:`\\nabla N_a` (``(m, d + 1, d)``)."""

    def __init__(
        self, atoms: AtomSet, repatoms: np.ndarray, elements: np.ndarray, beta: np.ndarray
    ) -> None:
        self.atoms = atoms
        self.repatoms = np.asarray(repatoms, dtype=int)
        self.X = atoms.positions[self.repatoms]
        self.beta = np.asarray(beta, dtype=float)
        d = atoms.dim
        Xe = self.X[np.asarray(elements, dtype=int)]
        Dm = np.swapaxes(Xe[:, 1:] - Xe[:, :1], 1, 2)  # columns X_a - X_0
        det = np.linalg.det(Dm)
        flat = np.abs(det) <= 1e-10 * np.abs(det).max()
        self.elements = np.asarray(elements, dtype=int)[~flat]
        Dm, det = Dm[~flat], det[~flat]
        self.volumes = np.abs(det) / math.factorial(d)
        inv = np.linalg.inv(Dm)  # rows: gradients of N_1..N_d
        self.grads = np.concatenate([-inv.sum(axis=1, keepdims=True), inv], axis=1)
        self._tree = cKDTree(Xe[~flat].mean(axis=1))
        self._Xe = Xe[~flat]
        self._number = np.full(atoms.n, -1)
        self._number[self.repatoms] = np.arange(len(self.repatoms))

    @property
    def dim(self) -> int:
        return self.atoms.dim

    @property
    def n(self) -> int:
        """Number of repatoms."""
        return len(self.repatoms)

    @classmethod
    def graded(cls, atoms: AtomSet, lattice: Lattice, spec: MeshSpec) -> CoarseMesh:
        """The mesh of :class:`MeshSpec` on ``atoms`` (a block of the Bravais ``lattice``)."""
        if lattice.n_basis != 1:
            raise ValueError("CoarseMesh.graded: Bravais lattices only (no basis)")
        X, a = atoms.positions, lattice.a
        c = np.asarray(spec.centre, dtype=float)
        origin = X[atoms.nearest(c)]
        n = np.rint((X - origin) @ np.linalg.inv(lattice.primitive)).astype(np.int64)
        dist = np.linalg.norm(X - c, axis=1)
        lo, hi = X.min(axis=0), X.max(axis=0)
        edge = np.minimum(X - lo, hi - X).min(axis=1)
        Rm = spec.refined
        if spec.coarse_size is not None:
            s = np.full(atoms.n, int(spec.coarse_size))
        else:
            ratio = 1.0 + np.maximum(dist - Rm, 0.0) / (spec.growth * a)
            k = np.floor(np.log2(ratio)).astype(np.int64)
            s = np.minimum(2**k, int(spec.max_size))
        on_sublattice = np.all(n % s[:, None] == 0, axis=1)
        tol = 1e-9 * a
        pick = (dist <= Rm + tol) | (edge <= spec.layer + tol) | on_sublattice
        rep = np.flatnonzero(pick)
        elements = _triangulate(X[rep])
        return cls(atoms, rep, elements, spec.beta(dist[rep]))

    def locate(self, points: np.ndarray) -> sparse.csr_matrix:
        """:math:`T`: the rows of barycentric coordinates of ``points`` (``(q, d)``) over the
        repatoms; ``ValueError`` for a point outside the mesh."""
        P = np.atleast_2d(np.asarray(points, dtype=float))
        q, d = P.shape
        if q == 0:
            return sparse.csr_matrix((0, self.n))
        elem = np.full(q, -1)
        bary = np.zeros((q, d + 1))
        k = min(32, len(self.elements))
        _, cand = self._tree.query(P, k=k)
        cand = cand.reshape(q, k)
        for col in range(k):
            self._try(P, cand[:, col], elem, bary)
        rest = np.flatnonzero(elem < 0)
        for chunk in np.array_split(rest, max(1, len(rest) // 32)):
            self._search_all(P, chunk, elem, bary)  # rare: every element for the rest
        if np.any(elem < 0):
            raise ValueError(f"{int(np.sum(elem < 0))} atom(s) lie outside the coarse mesh")
        bary = np.where(np.abs(bary) < _BARY_TOL, 0.0, bary)
        bary /= bary.sum(axis=1, keepdims=True)
        rows = np.repeat(np.arange(q), d + 1)
        T = sparse.csr_matrix(
            (bary.ravel(), (rows, self.elements[elem].ravel())), shape=(q, self.n)
        )
        T.eliminate_zeros()
        return T

    def _try(self, P: np.ndarray, cand: np.ndarray, elem: np.ndarray, bary: np.ndarray) -> None:
        """Barycentric coordinates of ``P`` in the candidate elements; keep those inside."""
        idx = np.arange(len(P))
        todo = elem < 0
        if not np.any(todo):
            return
        e = cand[todo]
        lam = np.einsum("qai,qi->qa", self.grads[e], P[todo] - self._Xe[e, 0])
        lam[:, 0] += 1.0
        inside = lam.min(axis=1) >= -_BARY_TOL
        hit = idx[todo][inside]
        elem[hit] = e[inside]
        bary[hit] = lam[inside]

    def _search_all(
        self, P: np.ndarray, chunk: np.ndarray, elem: np.ndarray, bary: np.ndarray
    ) -> None:
        """Barycentric coordinates of the points ``chunk`` in every element; the first one
        that holds each point."""
        if len(chunk) == 0:
            return
        diff = P[chunk][:, None, :] - self._Xe[None, :, 0]
        lam = np.einsum("eai,qei->qea", self.grads, diff)
        lam[..., 0] += 1.0
        inside = lam.min(axis=2) >= -_BARY_TOL
        found = inside.any(axis=1)
        first = np.argmax(inside, axis=1)
        elem[chunk[found]] = first[found]
        bary[chunk[found]] = lam[np.flatnonzero(found), first[found]]

    def interpolation(self, atoms: np.ndarray | None = None) -> sparse.csr_matrix:
        """:math:`T` for the atoms ``atoms`` (indices; all by default): repatoms exact."""
        ids = np.arange(self.atoms.n) if atoms is None else np.asarray(atoms, dtype=int)
        own = self._number[ids]
        rep, other = np.flatnonzero(own >= 0), np.flatnonzero(own < 0)
        T = self.locate(self.atoms.positions[ids[other]]).tocoo()
        rows = np.concatenate([rep, other[T.row]])
        cols = np.concatenate([own[rep], T.col])
        vals = np.concatenate([np.ones(len(rep)), T.data])
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(ids), self.n))

    def deformation_gradients(self, xr: np.ndarray, elements: np.ndarray) -> np.ndarray:
        """:math:`F_e = \\sum_a x_a\\otimes\\nabla N_a` of ``elements`` (indices)."""
        return np.einsum("eai,eaJ->eiJ", xr[self.elements[elements]], self.grads[elements])


def _triangulate(X: np.ndarray) -> np.ndarray:
    """P1 elements on the points ``X``: consecutive pairs in 1D, Delaunay in 2D."""
    if X.shape[1] == 1:
        order = np.argsort(X[:, 0])
        return np.stack([order[:-1], order[1:]], axis=1)
    if X.shape[1] == 2:
        return Delaunay(X).simplices
    raise ValueError("QC meshes: 1D and 2D only")


def soften_bonds(
    model: PairModel, ids: np.ndarray, pairs: Sequence[tuple[int, int]], potential: PairPotential
) -> PairModel:
    """``model`` with the bonds joining the atom pairs ``pairs`` (numbers of the whole atom set;
    ``ids``: the whole-set number of each atom of ``model``) given ``potential`` (a soft bond)."""
    gi, gj = np.asarray(ids)[model.i], np.asarray(ids)[model.j]
    key = np.minimum(gi, gj) * (int(np.max(ids)) + 1) + np.maximum(gi, gj)
    want = [min(p) * (int(np.max(ids)) + 1) + max(p) for p in pairs]
    mask = np.isin(key, want)
    return model.with_potential(mask, potential) if np.any(mask) else model


def _share(items: np.ndarray, rank: int, parts: int) -> np.ndarray:
    """The contiguous share of ``items`` of ``rank`` among ``parts``."""
    n = len(items)
    return items[n * rank // parts : n * (rank + 1) // parts]


def _bond_share(model: PairModel, bonds: np.ndarray) -> PairModel:
    """``model`` with the bonds ``bonds`` (indices) only, each with its potential."""
    new = object.__new__(PairModel)
    new.__dict__.update(model.__dict__)
    new.i, new.j, new.image = model.i[bonds], model.j[bonds], model.image[bonds]
    new.shell = model.shell[bonds]
    place = np.full(model.n_bonds, -1)
    place[bonds] = np.arange(len(bonds))
    new.groups = [(pot, place[idx][place[idx] >= 0]) for pot, idx in model.groups]
    new._pattern = None
    return new


# -- the QC model ----------------------------------------------------------------------------------
class QCModel:
    """Energies, forces and Jacobians of the QC variants on ``mesh`` with the pair ``potential``
    (one, or one per shell) up to ``cutoff`` and the Cauchy–Born ``law`` of the same lattice
    (see the module docstring).  ``modify(model, ids)`` may change the pair model of the
    cluster (e.g. :func:`soften_bonds`); ``ids`` are the cluster atoms' numbers in the set.

    Only the *cluster* (nonlocal repatoms and their neighbours) is ever summed atom by atom.
    With ``comm`` of more than one rank, :attr:`pairs` and the element lists hold this rank's
    contiguous share only, so :meth:`energy`, :meth:`gradient`, :meth:`hessian`,
    :meth:`qcf_residual` and :meth:`qcf_jacobian` return its share of the sums (their sum over
    the ranks is the whole; :class:`QCProblem` adds them up); :attr:`all_pairs` is the whole
    cluster.
    """

    def __init__(
        self,
        mesh: CoarseMesh,
        potential: PairPotential | Sequence[PairPotential],
        cutoff: float,
        law: CauchyBorn,
        modify: Callable[[PairModel, np.ndarray], PairModel] | None = None,
        *,
        comm: MPI.Comm = MPI.COMM_SELF,
    ) -> None:
        self.mesh, self.law, self.cutoff = mesh, law, float(cutoff)
        self.comm = comm
        self.d = mesh.dim
        self.nonlocal_ids = np.flatnonzero(mesh.beta < 1.0)
        tree = cKDTree(mesh.atoms.positions)
        hits = tree.query_ball_point(mesh.X[self.nonlocal_ids], self.cutoff * (1 + 1e-6))
        near = np.concatenate([np.asarray(h, dtype=int) for h in hits] + [np.zeros(0, int)])
        self.cluster = np.union1d(near, mesh.repatoms[self.nonlocal_ids])
        pm = PairModel(AtomSet(mesh.atoms.positions[self.cluster]), potential, self.cutoff)
        self.pairs = modify(pm, self.cluster) if modify is not None else pm
        self.T = mesh.interpolation(self.cluster)
        w = np.zeros(len(self.cluster))
        rep_num = mesh._number[self.cluster]
        w[rep_num >= 0] = 1.0 - mesh.beta[rep_num[rep_num >= 0]]
        self.bond_weight = 0.5 * (w[self.pairs.i] + w[self.pairs.j])
        self._lengths = np.linalg.norm(self.pairs.bond_vectors(self.pairs.atoms.positions), axis=1)
        self.nonlocal_rows = np.flatnonzero(rep_num >= 0)[w[rep_num >= 0] > 0.0]
        self.nonlocal_rep = rep_num[self.nonlocal_rows]
        beta_e = mesh.beta[mesh.elements].mean(axis=1)
        self.element_weight = mesh.volumes * beta_e
        self.energy_elements = np.flatnonzero(self.element_weight > 0.0)
        local = mesh.beta >= 1.0
        self.local_rep = np.flatnonzero(local)
        self.force_elements = np.flatnonzero(local[mesh.elements].any(axis=1))
        #: the whole cluster (the Jacobian pattern); :attr:`pairs` holds this rank's share
        self.all_pairs = self.pairs
        if comm.size > 1:
            r, p = comm.rank, comm.size
            nb = self.pairs.n_bonds
            bonds = np.arange(nb * r // p, nb * (r + 1) // p)
            self.pairs = _bond_share(self.pairs, bonds)
            self.bond_weight = self.bond_weight[bonds]
            self._lengths = self._lengths[bonds]
            self.energy_elements = _share(self.energy_elements, r, p)
            self.force_elements = _share(self.force_elements, r, p)

    # -- pieces ----------------------------------------------------------------------------------
    def cluster_positions(self, xr: np.ndarray) -> np.ndarray:
        """:math:`x = T x_r` of the cluster atoms."""
        return np.asarray(self.T @ xr)

    def _elements(
        self, xr: np.ndarray, elements: np.ndarray, weights: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """:math:`\\sum_e w_e W(F_e)`, its gradient ``(n_r, d)`` and the element stiffnesses
        :math:`w_e\\,\\mathbb A_{iJkL}\\nabla N_{aJ}\\nabla N_{bL}` ``(m, d+1, d, d+1, d)``."""
        F = self.mesh.deformation_gradients(xr, elements)
        G = self.mesh.grads[elements]
        E = float(np.dot(weights, self.law.energy_density(F)))
        fe = weights[:, None, None] * np.einsum("eiJ,eaJ->eai", self.law.stress(F), G)
        g = self._scatter(fe, elements)
        A = self.law.tangent(F)
        K = weights[:, None, None, None, None] * np.einsum("eiJkL,eaJ,ebL->eaibk", A, G, G)
        return E, g, K

    def _scatter(self, fe: np.ndarray, elements: np.ndarray) -> np.ndarray:
        nodes = self.mesh.elements[elements].ravel()
        cols = [np.bincount(nodes, fe[..., k].ravel(), self.mesh.n) for k in range(self.d)]
        return np.stack(cols, axis=1)

    def _element_matrix(self, K: np.ndarray, elements: np.ndarray) -> sparse.csr_matrix:
        d, nodes = self.d, self.mesh.elements[elements]
        dof = (nodes[:, :, None] * d + np.arange(d)).reshape(len(nodes), -1)
        m = dof.shape[1]
        rows = np.broadcast_to(dof[:, :, None], (len(nodes), m, m))
        cols = np.broadcast_to(dof[:, None, :], (len(nodes), m, m))
        size = self.mesh.n * d
        return sparse.csr_matrix(
            (K.reshape(len(nodes), m, m).ravel(), (rows.ravel(), cols.ravel())), (size, size)
        )

    def _bond_matrix(self, K: np.ndarray, pairs: PairModel | None = None) -> sparse.csr_matrix:
        """:math:`\\sum_b` the blocks :math:`\\pm K_b` over the cluster atoms."""
        d, p = self.d, self.pairs if pairs is None else pairs
        a = np.arange(d)
        blocks = [(p.i, p.i, 1.0), (p.j, p.j, 1.0), (p.i, p.j, -1.0), (p.j, p.i, -1.0)]
        rows, cols, vals = [], [], []
        for r, c, s in blocks:
            rows.append(np.broadcast_to(r[:, None, None] * d + a[:, None], K.shape).ravel())
            cols.append(np.broadcast_to(c[:, None, None] * d + a[None, :], K.shape).ravel())
            vals.append((s * K).ravel())
        size = len(self.cluster) * d
        return sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), (size, size)
        )

    def _expand(self) -> sparse.csr_matrix:
        """:math:`T \\otimes I_d`: coordinates of the cluster from those of the repatoms."""
        return sparse.kron(self.T, sparse.identity(self.d), format="csr")

    # -- energy-based QC (QCE, blended) ------------------------------------------------------------
    def energy(self, xr: np.ndarray) -> float:
        """:math:`E(x_r)` of the energy-based variants."""
        x = self.cluster_positions(xr)
        r = np.linalg.norm(self.pairs.bond_vectors(x), axis=1)
        bonds = float(np.dot(self.bond_weight, self.pairs._each(r, "phi")))
        e = self.energy_elements
        F = self.mesh.deformation_gradients(xr, e)
        return bonds + float(np.dot(self.element_weight[e], self.law.energy_density(F)))

    def gradient(self, xr: np.ndarray) -> np.ndarray:
        """:math:`\\partial E/\\partial x_r`, shape ``(n_r, d)``."""
        x = self.cluster_positions(xr)
        gb = self.bond_weight[:, None] * self.pairs.bond_forces(x)
        n = len(self.cluster)
        f = np.stack(
            [
                np.bincount(self.pairs.i, gb[:, k], n) - np.bincount(self.pairs.j, gb[:, k], n)
                for k in range(self.d)
            ],
            axis=1,
        )
        e = self.energy_elements
        _, g, _ = self._elements(xr, e, self.element_weight[e])
        return g - np.asarray(self.T.T @ f)

    def hessian(self, xr: np.ndarray) -> sparse.csr_matrix:
        """:math:`\\partial^2 E/\\partial x_r^2` (symmetric), ``n_r d`` square."""
        x = self.cluster_positions(xr)
        K = self.bond_weight[:, None, None] * self.pairs.bond_stiffness(x)
        Tx = self._expand()
        e = self.energy_elements
        _, _, Ke = self._elements(xr, e, self.element_weight[e])
        return (Tx.T @ self._bond_matrix(K) @ Tx + self._element_matrix(Ke, e)).tocsr()

    # -- force-based QC ----------------------------------------------------------------------------
    def qcf_residual(self, xr: np.ndarray) -> np.ndarray:
        """:math:`-f^{QCF}`, shape ``(n_r, d)``: minus the atomistic force on each nonlocal
        repatom, the Cauchy–Born gradient :math:`\\partial_a\\sum_e V_e W(F_e)` on the local
        ones."""
        e = self.force_elements
        _, g, _ = self._elements(xr, e, self.mesh.volumes[e])
        out = np.zeros((self.mesh.n, self.d))
        out[self.local_rep] = g[self.local_rep]
        f = self.pairs.forces(self.cluster_positions(xr))
        out[self.nonlocal_rep] = -f[self.nonlocal_rows]
        return out

    def qcf_jacobian(self, xr: np.ndarray) -> sparse.csr_matrix:
        """:math:`\\partial(-f^{QCF})/\\partial x_r` (non-symmetric)."""
        d = self.d
        e = self.force_elements
        _, _, Ke = self._elements(xr, e, self.mesh.volumes[e])
        local = self._element_matrix(Ke, e)
        H = self.pairs.hessian(self.cluster_positions(xr))
        atom_rows = (self.nonlocal_rows[:, None] * d + np.arange(d)).ravel()
        rep_rows = (self.nonlocal_rep[:, None] * d + np.arange(d)).ravel()
        Hn = (H[atom_rows] @ self._expand()).tocoo()
        mask = np.zeros(self.mesh.n * d, dtype=bool)
        mask[(self.local_rep[:, None] * d + np.arange(d)).ravel()] = True
        loc = local.tocoo()
        keep = mask[loc.row]
        shape = local.shape
        nonloc = sparse.csr_matrix((Hn.data, (rep_rows[Hn.row], Hn.col)), shape)
        return (
            sparse.csr_matrix((loc.data[keep], (loc.row[keep], loc.col[keep])), shape) + nonloc
        ).tocsr()

    # -- patterns, checks --------------------------------------------------------------------------
    def pattern(self) -> sparse.csr_matrix:
        """The structural pattern containing every Jacobian of every variant (all ones)."""
        d = self.d
        B = abs(self._bond_matrix(np.ones((self.all_pairs.n_bonds, d, d)), self.all_pairs))
        B.data[:] = 1.0
        Tx = abs(self._expand())
        e = np.arange(len(self.mesh.elements))
        Ke = np.ones((len(e), d + 1, d, d + 1, d))
        P = Tx.T @ B @ Tx + self._element_matrix(Ke, e)
        P.data[:] = 1.0
        return P.tocsr()

    def check(self, xr: np.ndarray, min_bond_ratio: float = 0.5) -> None:
        """``ValueError`` for a non-finite position, an element with :math:`\\det F_e \\le 0`
        (local elements) or a cluster bond shorter than ``min_bond_ratio`` of its length."""
        if not np.all(np.isfinite(xr)):
            raise ValueError("a repatom position is not finite")
        used = np.union1d(self.energy_elements, self.force_elements)
        det = np.linalg.det(self.mesh.deformation_gradients(xr, used))
        if det.size and det.min() <= 0.0:
            raise ValueError(f"an element is inverted (det F = {det.min():.3g})")
        x = self.cluster_positions(xr)
        ratio = np.linalg.norm(self.pairs.bond_vectors(x), axis=1) / self._lengths
        if ratio.size and ratio.min() < min_bond_ratio:
            raise ValueError(f"a bond is compressed to {ratio.min():.3g} of its length")


# -- the solver ------------------------------------------------------------------------------------
class _QCAssembly:
    """The :class:`~multiscale.nonlinear.Assembly` of a :class:`QCProblem` over the free repatom
    coordinates, on the communicator of its model: each rank owns a contiguous block of the
    free repatoms (see the module docstring)."""

    def __init__(self, problem: QCProblem) -> None:
        self.problem = problem
        self.comm = comm = problem.comm
        free, d = problem.free_dofs, problem.model.d
        P = problem.model.pattern()[free][:, free].tocsr()
        P.sort_indices()
        self.size = len(free)
        atoms = self.size // d
        r, p = comm.rank, comm.size
        self.lo, self.hi = d * (atoms * r // p), d * (atoms * (r + 1) // p)
        self.counts = np.array([d * (atoms * (q + 1) // p - atoms * q // p) for q in range(p)])
        rows = P[self.lo : self.hi]
        self.indptr = rows.indptr.astype(PETSc.IntType)
        self.indices = rows.indices.astype(PETSc.IntType)
        inside = (rows.indices >= self.lo) & (rows.indices < self.hi)
        per_row = np.repeat(np.arange(self.hi - self.lo), np.diff(rows.indptr))
        self.d_nnz = np.bincount(per_row[inside], minlength=self.hi - self.lo)
        self.o_nnz = np.bincount(per_row[~inside], minlength=self.hi - self.lo)

    def create_matrix(self) -> PETSc.Mat:
        m, M = self.hi - self.lo, self.size
        if self.comm.size == 1:
            A = PETSc.Mat().createAIJ(
                (M, M), csr=(self.indptr, self.indices, np.zeros(len(self.indices))), comm=self.comm
            )
        else:
            nnz = (self.d_nnz.astype(PETSc.IntType), self.o_nnz.astype(PETSc.IntType))
            A = PETSc.Mat().createAIJ(((m, M), (m, M)), nnz=nnz, comm=self.comm)
            rowmap = np.arange(self.lo, self.hi, dtype=PETSc.IntType)
            zeros = np.zeros(len(self.indices))
            A.setValuesIJV(self.indptr, self.indices, zeros, PETSc.InsertMode.INSERT, rowmap)
        A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
        A.assemble()
        return A

    def create_vector(self) -> PETSc.Vec:
        if self.comm.size == 1:
            return PETSc.Vec().createSeq(self.size, comm=self.comm)
        return PETSc.Vec().createMPI((self.hi - self.lo, self.size), comm=self.comm)

    def gather(self, owned: np.ndarray) -> np.ndarray:
        """The free coordinates of every rank from the ``owned`` ones (collective)."""
        if self.comm.size == 1:
            return np.asarray(owned)
        full = np.empty(self.size)
        displs = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.comm.Allgatherv(
            np.ascontiguousarray(owned, float), [full, self.counts, displs, MPI.DOUBLE]
        )
        return full

    def set_iterate(self, x: PETSc.Vec) -> None:
        self.problem.set_free(self.gather(x.getArray(readonly=True)))
        self.problem.model.check(self.problem.xr)

    def residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        r = self.problem.share_of_residual().ravel()[self.problem.free_dofs]
        if self.comm.size > 1:
            out = np.empty(self.hi - self.lo)
            self.comm.Reduce_scatter(r, out, recvcounts=self.counts, op=MPI.SUM)
            r = out
        b.setArray(r)

    def jacobian(self, A: PETSc.Mat) -> None:
        free = self.problem.free_dofs
        J = self.problem.share_of_jacobian()[free][:, free].tocsr()
        J.sort_indices()
        A.zeroEntries()
        if self.comm.size == 1:
            A.setValuesCSR(J.indptr.astype(PETSc.IntType), J.indices.astype(PETSc.IntType), J.data)
        else:  # this rank's share, added into the rows of their owners
            rows = np.flatnonzero(np.diff(J.indptr))
            J = J[rows]
            A.setValuesIJV(
                J.indptr.astype(PETSc.IntType),
                J.indices.astype(PETSc.IntType),
                J.data,
                PETSc.InsertMode.ADD_VALUES,
                rows.astype(PETSc.IntType),
            )
        A.assemble()


#: Newton options of :class:`QCProblem` on top of :func:`~multiscale.nonlinear.newton_options`.
DEFAULTS: dict[str, Any] = {"snes_atol": 1e-10}


class QCProblem(PETScOwner):
    """Solve the QC variant ``method`` (one of :data:`METHODS`) of ``model``: the repatoms of
    the boundary layer (``fixed``: a mask or indices over the repatoms; default: those within
    ``layer`` of the block's faces, i.e. the mesh's boundary layer) follow the affine field
    :math:`t(\\bar F - I)(X - c)` of ``macro_F`` about ``centre`` over the load factors of
    :meth:`solve`.  Newton (non-symmetric LU for ``"qcf"``, :math:`LDL^T` otherwise) from the
    committed state moved by the affine increment.  Collective on the communicator of
    ``model`` (``COMM_SELF`` by default; over the ranks: see the module docstring); every rank
    holds the repatom positions :attr:`xr`.  Frees its PETSc objects in :meth:`destroy`."""

    def __init__(
        self,
        model: QCModel,
        method: str,
        *,
        macro_F: np.ndarray,
        centre: Sequence[float],
        fixed: np.ndarray,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.comm: MPI.Comm = model.comm
        self.model, self.method = model, method
        mesh, d = model.mesh, model.d
        self.X = mesh.X
        self.U = (self.X - np.asarray(centre, float)) @ (np.asarray(macro_F) - np.eye(d)).T
        mask = np.zeros(mesh.n, dtype=bool)
        mask[np.asarray(fixed)] = True
        self.fixed = np.flatnonzero(mask)
        self.free_dofs = np.flatnonzero(np.repeat(~mask, d))
        if len(self.free_dofs) == 0:
            raise ValueError("every repatom is fixed: nothing to solve")
        self.xr = self.X.copy()
        self.factor = 0.0
        self._ghost = np.zeros_like(self.X)
        self.newton = self._own(
            NewtonSolver(
                _QCAssembly(self),
                petsc_options=petsc_options,
                defaults=DEFAULTS,
                symmetric=method != "qcf",
                role="qc",
                name=f"QC ({method}) Newton",
            )
        )
        self._committed = (self.xr.copy(), 0.0)
        self.stepper = LoadStepper(self, max_cuts=max_cuts, label="qc")

    # -- state -----------------------------------------------------------------------------------
    def set_free(self, values: np.ndarray) -> None:
        self.xr.reshape(-1)[self.free_dofs] = values

    def affine(self, factor: float | None = None) -> np.ndarray:
        """:math:`x^{aff}(t) = X + t\\,(\\bar F - I)(X - c)` of the repatoms."""
        return self.X + (self.factor if factor is None else float(factor)) * self.U

    def _sum(self, share: np.ndarray) -> np.ndarray:
        if self.comm.size == 1:
            return share
        out = np.ascontiguousarray(share, dtype=float).copy()
        self.comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
        return out

    def share_of_residual(self, xr: np.ndarray | None = None) -> np.ndarray:
        """This rank's share of :meth:`residual` (its bonds and elements)."""
        x = self.xr if xr is None else xr
        if self.method == "qcf":
            return self.model.qcf_residual(x)
        g = self.model.gradient(x)
        return g - self._ghost if self.method == "qce_corrected" else g

    def residual(self, xr: np.ndarray | None = None) -> np.ndarray:
        """:math:`-f` of the method at ``xr`` (default: the current state), ``(n_r, d)``
        (collective)."""
        return self._sum(self.share_of_residual(xr))

    def share_of_jacobian(self) -> sparse.csr_matrix:
        """This rank's share of the Jacobian of :meth:`residual` (all repatom coordinates)."""
        if self.method == "qcf":
            return self.model.qcf_jacobian(self.xr)
        return self.model.hessian(self.xr)

    def _share_of_ghost_forces(self, factor: float) -> np.ndarray:
        x = self.affine(factor)
        return self.model.qcf_residual(x) - self.model.gradient(x)

    def ghost_forces(self, factor: float) -> np.ndarray:
        """:math:`f^{QCE} - f^{QCF}` at the affine state of ``factor``, ``(n_r, d)``: the
        ghost forces of the energy-based coupling (zero for an exact coupling; collective)."""
        return self._sum(self._share_of_ghost_forces(factor))

    def energy(self) -> float:
        """:math:`E(x_r)` of the energy-based variants (without the dead load; collective)."""
        e = float(self.model.energy(self.xr))
        return float(self.comm.allreduce(e, op=MPI.SUM)) if self.comm.size > 1 else e

    def max_free_force(self) -> float:
        return float(np.abs(self.residual().ravel()[self.free_dofs]).max())

    # -- the Steppable protocol ------------------------------------------------------------------
    def set_load(self, factor: float) -> None:
        self.factor = float(factor)
        self.xr[self.fixed] = self.affine()[self.fixed]
        if self.method == "qce_corrected":
            self._ghost = -self._share_of_ghost_forces(self.factor)

    def attempt(self) -> NewtonOutcome:
        x0, t0 = self._committed
        guess = x0 + (self.factor - t0) * self.U
        a = self.newton.assembly
        self.newton.x.setArray(guess.reshape(-1)[self.free_dofs][a.lo : a.hi])
        return self.newton.solve()

    def commit(self) -> None:
        self._committed = (self.xr.copy(), self.factor)

    def rollback(self) -> None:
        self.xr[:] = self._committed[0]

    def record(self, step: StepRecord) -> None:
        q = {"max_force": self.max_free_force()}
        if self.method != "qcf":
            q["energy"] = self.energy()
        step.quantities = q

    def solve(self, factors: Sequence[float] = (1.0,)) -> StaticsResult:
        """Follow the load factors (cutting failed steps)."""
        self.stepper.run(factors)
        return StaticsResult(self.stepper.steps, self.stepper.failed_attempts)
