r"""Matrix-free periodic cell problems on voxel images: Q1 elements, CG with an FFT preconditioner.

A label array ``labels[i, j(, k)]`` (indices along :math:`x, y(, z)`) is a periodic cell of
:math:`n_0 \times n_1 (\times n_2)` voxels of edges :math:`h_a = L_a / n_a`, each voxel one
trilinear (bilinear in 2D) Lagrange element :math:`Q_1` with the law of its phase.  The unknown
is the periodic fluctuation :math:`\tilde u` at the :math:`N = \prod_a n_a` grid nodes (node
:math:`n_a` is node 0); under the macro load :math:`E` (a strain, or a gradient for
conductivity) the total field is :math:`u = E x + \tilde u` and

.. math::

    K \tilde u = b, \qquad K = \sum_e P_e^T K_e P_e, \qquad
    b = -\sum_e P_e^T K_e\, \hat u^E, \qquad \hat u^E_k = E\, x_k,

with :math:`P_e` the gather of voxel :math:`e`'s :math:`2^d` corners and :math:`x_k` the corner
positions relative to the voxel's first corner (a constant is killed by :math:`K_e`'s rigid
modes, so one element vector :math:`\hat u^E` serves every voxel).  This is the *same* discrete
problem as the conforming :math:`Q_1` periodic cell problem of
:class:`~multiscale.cell.CellProblem` on the voxel mesh (:func:`~multiscale.mesh.image_cell`):
only the solver differs.

**Element matrices** come from UFL, assembled once on a one-voxel dolfinx mesh: for isotropic
elasticity :math:`K_e = \lambda_e K_\lambda + \mu_e K_\mu` with
:math:`K_\lambda = \int \mathrm{div}\,\phi\, \mathrm{div}\,\phi`,
:math:`K_\mu = \int 2\,\varepsilon(\phi) : \varepsilon(\phi)`, and :math:`K_e = k_e K_k`,
:math:`K_k = \int \nabla\phi \cdot \nabla \phi` for conductivity, together with the mean-gradient
matrix :math:`G = \int_e \varepsilon(\phi)` (Voigt rows) from which the voxel's integrated flux
:math:`\int_e \sigma = (\lambda_e\, m\, \mathrm{tr}\,G + 2 \mu_e G)\, u_e` follows.  dolfinx's
local dof order is mapped to the corner order from the dof coordinates.

**Operator.**  :math:`K u` is applied without a matrix: the :math:`2^d` corner values of every
voxel are gathered by periodic shifts of the nodal array, scaled by the voxel's
:math:`\lambda_e` and :math:`\mu_e`, multiplied by :math:`[K_\lambda\; K_\mu]` in one matrix
product over all voxels, and the element vectors are scatter-added back by the opposite shifts.

**Preconditioner** (Kabel, Merkert & Schneider 2014; Schneider, Merkert & Kabel 2017): the
exact inverse of the same :math:`Q_1` operator :math:`K^0` of a homogeneous reference medium.
On the periodic uniform grid :math:`K^0` is a block convolution, so the DFT diagonalizes it:
its symbol :math:`\hat K^0(\xi)` (a :math:`c \times c` Hermitian block per frequency,
:math:`c` the number of components) is the DFT of the responses of :math:`K^0` to unit
impulses, and

.. math:: M^{-1} r = \mathcal F^{-1}\big[\hat K^0(\xi)^{-1} \hat r(\xi)\big],

with the zero frequency (the translations, :math:`K`'s null space) set to zero.  The reference
medium is by default the arithmetic mean of the extreme moduli (Moulinec & Suquet 1998:
:math:`\lambda^0 = (\lambda_{min} + \lambda_{max})/2`, :math:`\mu^0 = (\mu_{min} +
\mu_{max})/2`; :math:`k^0 = (k_{min} + k_{max})/2`).  Preconditioned CG is invariant to a
scaling of :math:`K^0`, so for conductivity, and for elastic phases of one Poisson ratio, every
choice of that shape gives the same iterates; what matters is that :math:`K^0` is spectrally
equivalent to :math:`K` with the constants of the phase contrast, independent of the grid:
the iteration count depends on the contrast and the microstructure, not on :math:`N` (a sphere
of fraction 0.2, contrast 10: 27-28, 27 and 26-27 iterations per load case at :math:`16^3`,
:math:`32^3`, :math:`48^3` voxels, ``rtol`` 1e-8).  Measured on that :math:`32^3` sphere, the
reference hardly matters: 27 iterations with the arithmetic or geometric means, 26-27 with
the matrix or an intermediate phase.

**Solve**: PETSc CG (``KSPCG``, a Python shell matrix and ``PCPYTHON``) on one process, from a
zero initial guess, for each unit load of :func:`~multiscale.cell.unit_loads`, stopped at
:math:`\|b - K\tilde u\|_2 \le` ``rtol`` :math:`\max(\|b\|_2, \|f\|_2)` (unpreconditioned
norm), :math:`f` the unassembled voxel forces :math:`\kappa_e K_p \hat u^E`: :math:`b` itself
cancels to round-off where the load leaves :math:`u = E x` exact (a laminate loaded along its
layers, a homogeneous cell).  Column :math:`j` of the effective tensor is the mean flux of load
:math:`j`.  The asymmetry of the tensor measures the solver's error, and the tensor's error is
below ``rtol``: 7e-6, 4e-8, 1.4e-10, 2.6e-12 (max entry) at ``rtol`` 1e-4, 1e-6, 1e-8, 1e-10 on
:math:`32^3` voxels of 20 spheres, contrast 10, against a 1e-12 solve (12, 19, 26, 33
iterations).  The Hill–Mandel residual (the energy :math:`u^T K u / |Y|` against
:math:`\langle\sigma\rangle : \langle\varepsilon\rangle`) holds to round-off for every CG
iterate (:math:`\tilde u_k^T (b - K \tilde u_k) = 0`, Galerkin orthogonality from a zero
guess): it checks the flux matrices against the stiffness, not the convergence.  A Galerkin
initial guess from the previous load cases' solutions saved no iteration on the three cells
measured (one sphere, 20 spheres, random voxels), so it is not used.

**Parallel runs**: the grid solve is *not* distributed.  It runs on rank 0 of ``comm`` with
that process's threads (``workers`` FFT threads, the BLAS threads of the element products; under
``mpirun`` the package sets one BLAS thread per rank, :mod:`multiscale.threads`), while the
other ranks wait without spinning; the result is broadcast, so every rank returns the same
tensor.  A slab-decomposed distributed FFT with a halo exchange for the element gathers is the
scalable route and is not implemented.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.fft
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.cell.result import HomogenizationResult
from multiscale.cell.solver import unit_loads
from multiscale.nonlinear import unique_prefix
from multiscale.petsc_options import prefixed_options
from multiscale.physics import Conductivity, IsotropicElasticity
from multiscale.tensors import voigt_index

__all__ = ["VoxelCellProblem", "default_voxel_options", "voxel_element_matrices"]


def default_voxel_options(rtol: float = 1.0e-10) -> dict[str, Any]:
    """CG on the unpreconditioned residual, relative tolerance ``rtol``; unless ``ksp_atol`` is
    given, each load case sets the absolute one to ``rtol`` times its unassembled voxel forces
    (module docstring)."""
    return {
        "ksp_type": "cg",
        "ksp_norm_type": "unpreconditioned",
        "ksp_rtol": rtol,
        "ksp_atol": 0.0,
        "ksp_max_it": 2000,
    }


# --------------------------------------------------------------------------------------------
# Element matrices (UFL, one voxel)
# --------------------------------------------------------------------------------------------


def voxel_element_matrices(
    physics: str, h: Sequence[float]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    r"""The :math:`Q_1` element matrices of one voxel of edges ``h`` in corner order.

    Corner :math:`k = \sum_a o_a 2^a` sits at :math:`(o_0 h_0, o_1 h_1(, o_2 h_2))`,
    :math:`o_a \in \{0, 1\}`; the element dof of component :math:`i` at corner :math:`k` is
    :math:`k c + i` (:math:`c` = 1 for conductivity, :math:`d` for elasticity).

    Returns ``(parts, G, corners)``: the stiffness of unit moduli per part (``"lambda"``, ``"mu"``
    for elasticity, ``"k"`` for conductivity; :math:`n_e \times n_e`), the mean-gradient matrix
    :math:`G_{a,\cdot} = \int_e g_a(\phi)` (Voigt tensor components of the strain, or the
    gradient components; :math:`m \times n_e`) and the corner offsets :math:`o` (``(2^d, d)``).
    Assembled by dolfinx on a one-cell mesh of ``COMM_SELF`` (not collective).
    """
    import dolfinx
    import dolfinx.fem
    import dolfinx.fem.petsc
    import dolfinx.mesh
    import ufl

    h = np.asarray(h, dtype=float)
    dim = h.size
    if dim == 2:
        mesh = dolfinx.mesh.create_rectangle(
            MPI.COMM_SELF, [np.zeros(2), h], [1, 1], dolfinx.mesh.CellType.quadrilateral
        )
    else:
        mesh = dolfinx.mesh.create_box(
            MPI.COMM_SELF, [np.zeros(3), h], [1, 1, 1], dolfinx.mesh.CellType.hexahedron
        )
    elastic = physics == "elasticity"
    c = dim if elastic else 1
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (dim,) if elastic else ()))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    if elastic:
        pairs = voigt_index(dim)

        def grad_comps(w: Any) -> Any:
            e = ufl.sym(ufl.grad(w))
            return ufl.as_vector([e[i, j] for i, j in pairs])

        forms = {
            "lambda": ufl.div(u) * ufl.div(v) * ufl.dx,
            "mu": 2.0 * ufl.inner(ufl.sym(ufl.grad(u)), ufl.sym(ufl.grad(v))) * ufl.dx,
        }
        m = len(pairs)
    else:

        def grad_comps(w: Any) -> Any:
            return ufl.grad(w)

        forms = {"k": ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx}
        m = dim
    W = dolfinx.fem.functionspace(mesh, ("DG", 0, (m,)))
    s = ufl.TrialFunction(W)
    forms["G"] = ufl.inner(s, grad_comps(v)) * ufl.dx

    # dolfinx dof (node b, component i) = b * c + i  ->  corner k(b) * c + i
    xdofs = V.tabulate_dof_coordinates()[:, :dim]
    offsets = np.rint(xdofs / h).astype(np.int64)
    if offsets.shape != (2**dim, dim) or not np.allclose(offsets * h, xdofs, atol=1e-12 * h.max()):
        raise RuntimeError("unexpected dof layout of the one-voxel Q1 space")
    corner = offsets @ (2 ** np.arange(dim))
    if sorted(corner.tolist()) != list(range(2**dim)):
        raise RuntimeError("the one-voxel Q1 dofs are not the voxel's corners")
    perm = np.empty(c * 2**dim, dtype=np.int64)  # perm[corner dof] = dolfinx dof
    for b, k in enumerate(corner):
        perm[k * c : (k + 1) * c] = b * c + np.arange(c)
    corners = np.array(list(itertools.product((0, 1), repeat=dim)))[:, ::-1]  # k = sum o_a 2^a

    def dense(form: Any) -> np.ndarray:
        A = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(form))
        A.assemble()
        rows, cols = A.getSize()
        values = A.getValues(range(rows), range(cols))
        A.destroy()
        return np.asarray(values, dtype=float)

    parts = {}
    for name in forms:
        if name == "G":
            continue
        Ke = dense(forms[name])[np.ix_(perm, perm)]
        parts[name] = 0.5 * (Ke + Ke.T)  # symmetric to round-off already
    G = dense(forms["G"])[perm, :].T.copy()
    return parts, G, corners


# --------------------------------------------------------------------------------------------
# The grid operator and the FFT preconditioner
# --------------------------------------------------------------------------------------------


def _segments(n: int, s: int) -> list[tuple[slice, slice]]:
    """``(dst, src)`` slice pairs along one periodic axis with ``dst[i] = src[(i + s) % n]``."""
    s %= n
    if s == 0:
        return [(slice(None), slice(None))]
    return [(slice(0, n - s), slice(s, n)), (slice(n - s, n), slice(0, s))]


class _GridOperator:
    r""":math:`K u = \sum_e P_e^T \sum_p K_p (\kappa_{p,e} P_e u)` on a periodic voxel grid.

    ``coefficients`` has one row of voxel moduli per part (shape ``(P, *shape)``); the element
    matrices ``parts`` are in corner order (see :func:`voxel_element_matrices`).  One
    application: the corner values of every voxel gathered and scaled by each part's moduli
    (``(P n_e, N)``), one matrix product with :math:`[K_1 \dots K_P]` (``(n_e, P n_e)``), the
    element vectors scatter-added."""

    def __init__(
        self,
        shape: tuple[int, ...],
        ncomp: int,
        corners: np.ndarray,
        parts: list[np.ndarray],
        coefficients: np.ndarray,
    ) -> None:
        self.shape, self.c = shape, ncomp
        self.N = math.prod(shape)
        self.ne = ncomp * len(corners)
        self.nparts = len(parts)
        self.row = np.ascontiguousarray(np.hstack(parts))  # (ne, P * ne)
        self.coef = np.ascontiguousarray(coefficients, dtype=float).reshape(self.nparts, *shape)
        self.segments = [
            [
                (
                    tuple(p[0] for p in pairs),  # voxel x
                    tuple(p[1] for p in pairs),  # its corner node x + o_k
                )
                for pairs in itertools.product(
                    *(_segments(n, int(o)) for n, o in zip(shape, off, strict=True))
                )
            ]
            for off in corners
        ]
        self._ue = np.empty((self.nparts, len(corners), ncomp, *shape))
        self._f = np.empty((self.ne, self.N))

    def gather_scaled(self, u: np.ndarray) -> np.ndarray:
        r""":math:`\kappa_{p,e} P_e u` for every part and voxel, ``(P n_e, N)``: corner ``k`` of
        voxel ``x`` is node ``x + o_k``."""
        u = u.reshape(self.c, *self.shape)
        for p in range(self.nparts):
            coef = self.coef[p]
            for k, segs in enumerate(self.segments):
                dest = self._ue[p, k]
                for voxel, node in segs:
                    np.multiply(
                        u[(slice(None), *node)], coef[voxel], out=dest[(slice(None), *voxel)]
                    )
        return self._ue.reshape(self.nparts * self.ne, self.N)

    def scatter_add(self, f: np.ndarray, out: np.ndarray) -> None:
        """``out[x + o_k] += f[k, x]`` for element vectors ``f`` of shape ``(ne, N)``."""
        f = f.reshape(len(self.segments), self.c, *self.shape)
        for k, segs in enumerate(self.segments):
            for voxel, node in segs:
                out[(slice(None), *node)] += f[k][(slice(None), *voxel)]

    def assemble_affine(self, vectors: list[np.ndarray], out: np.ndarray) -> float:
        """``out += sum_e P_e^T sum_p kappa_{p,e} vectors[p]`` for element vectors of unit moduli
        that are the same in every voxel (corner by corner, without an ``(n_e, N)`` array);
        returns the norm of the unassembled voxel vectors."""
        square = 0.0
        for k, segs in enumerate(self.segments):
            block = slice(k * self.c, (k + 1) * self.c)
            values = sum(
                np.multiply.outer(v[block], coef)
                for v, coef in zip(vectors, self.coef, strict=True)
            )
            square += float(np.vdot(values, values))
            for voxel, node in segs:
                out[(slice(None), *node)] += values[(slice(None), *voxel)]
        return math.sqrt(square)

    def apply(self, u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        np.matmul(self.row, self.gather_scaled(u), out=self._f)
        if out is None:
            out = np.zeros((self.c, *self.shape))
        else:
            out = out.reshape(self.c, *self.shape)
            out[...] = 0.0
        self.scatter_add(self._f, out)
        return out


class _FourierInverse:
    """:math:`\\mathcal F^{-1} \\hat K^0(\\xi)^{-1} \\mathcal F` of the homogeneous reference
    operator on the periodic grid; zero at the zero frequency.

    The symbol is the DFT of the operator's responses to unit impulses, computed by the
    matrix-free operator itself on a :math:`3^d` grid (the :math:`Q_1` stencil reaches the
    neighbouring nodes only) and wrapped onto the full grid."""

    def __init__(
        self,
        shape: tuple[int, ...],
        ncomp: int,
        corners: np.ndarray,
        parts: list[np.ndarray],
        moduli: np.ndarray,
        workers: int,
    ) -> None:
        self.shape, self.c, self.workers = shape, ncomp, workers
        dim, c = len(shape), ncomp
        self.axes = tuple(range(1, dim + 1))
        small = (3,) * dim
        reference = _GridOperator(
            small, c, corners, parts, np.repeat(np.asarray(moduli, float)[:, None], 3**dim, axis=1)
        )
        response = np.zeros((c, c, *shape))
        for j in range(c):
            impulse = np.zeros((c, *small))
            impulse[(j,) + (1,) * dim] = 1.0
            r = reference.apply(impulse)
            for off in itertools.product((-1, 0, 1), repeat=dim):
                at = tuple(o % n for o, n in zip(off, shape, strict=True))
                response[(slice(None), j, *at)] += r[(slice(None), *(1 + o for o in off))]
        symbol = scipy.fft.rfftn(response, axes=tuple(a + 1 for a in self.axes), workers=workers)
        del response
        symbol = np.moveaxis(symbol, (0, 1), (-2, -1))  # (..., c, c)
        herm = np.abs(symbol - np.conj(np.swapaxes(symbol, -1, -2))).max()
        scale = np.abs(symbol).max()
        if herm > 1e-10 * scale:
            raise RuntimeError(f"reference symbol not Hermitian ({herm:.2e} of {scale:.2e})")
        zero = (0,) * dim
        symbol[zero] = scale * np.eye(c)
        # a Q1 reference with positive moduli is definite at every non-zero frequency
        floor = float(np.linalg.eigvalsh(symbol).min()) / scale
        if floor <= 1e-13:
            raise RuntimeError(f"reference symbol singular at a non-zero frequency ({floor:.1e})")
        self.lowest_relative_eigenvalue = floor
        inverse = np.linalg.inv(symbol)
        del symbol
        inverse[zero] = 0.0
        self.inverse = np.ascontiguousarray(np.moveaxis(inverse, (-2, -1), (0, 1)))  # (c, c, ...)

    def _forward(self, r: np.ndarray) -> np.ndarray:
        return scipy.fft.rfftn(r, axes=self.axes, workers=self.workers)

    def apply(self, r: np.ndarray, out: np.ndarray) -> None:
        rhat = self._forward(r.reshape(self.c, *self.shape))
        zhat = np.empty_like(rhat)
        tmp = np.empty_like(rhat[0])
        for i in range(self.c):
            np.multiply(self.inverse[i, 0], rhat[0], out=zhat[i])
            for j in range(1, self.c):
                np.multiply(self.inverse[i, j], rhat[j], out=tmp)
                zhat[i] += tmp
        out.reshape(self.c, *self.shape)[...] = scipy.fft.irfftn(
            zhat, s=self.shape, axes=self.axes, workers=self.workers
        )


class _ShellMat:
    def __init__(self, op: _GridOperator) -> None:
        self.op = op

    def mult(self, mat: PETSc.Mat, x: PETSc.Vec, y: PETSc.Vec) -> None:
        self.op.apply(x.array_r, out=y.array)


class _ShellPC:
    def __init__(self, inverse: _FourierInverse) -> None:
        self.inverse = inverse

    def apply(self, pc: PETSc.PC, x: PETSc.Vec, y: PETSc.Vec) -> None:
        self.inverse.apply(x.array_r, y.array)


# --------------------------------------------------------------------------------------------
# The cell problem
# --------------------------------------------------------------------------------------------


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class VoxelCellProblem:
    r"""Periodic :math:`Q_1` cell problem of a voxel image, solved matrix-free by CG with the
    FFT-diagonalized reference-medium preconditioner (see the module docstring for the method).

    Parameters
    ----------
    labels:
        Integer array ``(n0, n1)`` or ``(n0, n1, n2)``, index :math:`(i, j(, k))` along
        :math:`(x, y(, z))` (the ``axes="xyz"`` convention of :mod:`multiscale.mesh.image`);
        one period of the microstructure.  Rank 0's array is used.
    materials:
        Label (or phase name, with ``phases``) -> law: :class:`~multiscale.physics.
        IsotropicElasticity` (plane strain in 2D) or :class:`~multiscale.physics.Conductivity`,
        all of one kind; every label present needs one.
    size:
        Cell edge lengths :math:`L` (a number for a cube/square); voxel edges :math:`L_a/n_a`.
    phases:
        Optional phase name -> label, to key ``materials`` and the volume fractions by name.
    comm:
        Every rank of ``comm`` returns the result; the solve runs on rank 0 (module docstring).
    reference:
        The reference medium: ``"mean"`` (default, the arithmetic mean of the extreme moduli),
        ``"geometric"`` (:math:`\sqrt{\min \max}` of :math:`\mu` and of the bulk modulus, or of
        :math:`k`) or a law of the same kind.
    petsc_options_prefix, petsc_options:
        Prefix (default ``multiscale_voxel_<n>_``) and overrides of
        :func:`default_voxel_options`.
    rtol:
        CG's relative residual tolerance.
    workers:
        FFT threads (default: the cores this process may use).

    :meth:`solve` returns a :class:`~multiscale.cell.HomogenizationResult` (``bc="periodic"``,
    ``ndofs`` the :math:`cN` grid unknowns) whose ``timings`` split the wall seconds into
    ``element_matrices``, ``preconditioner`` (the reference symbol and its inverse) and ``solve``
    (the CG solves with their right-hand sides and averages), and whose ``solver`` holds the CG
    ``iterations`` and ``solve_s_per_load`` per load case, the final ``relative_residuals``, the
    tensor's ``asymmetry`` :math:`\max|C - C^T| / \max|C|`, the ``reference`` moduli and the
    PETSc ``options``.  ``ValueError`` (one line, on every rank) for labels that are not
    integers, labels without a law, laws other than isotropic elasticity/conductivity or of two
    kinds, non-positive moduli or cell size.
    """

    def __init__(
        self,
        labels: np.ndarray,
        materials: Mapping[int | str, Any],
        *,
        size: float | Sequence[float] = 1.0,
        phases: Mapping[str, int] | None = None,
        comm: MPI.Comm = MPI.COMM_WORLD,
        reference: str | Any = "mean",
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        rtol: float = 1.0e-10,
        workers: int | None = None,
    ) -> None:
        self.comm = comm
        self.prefix = petsc_options_prefix or unique_prefix("voxel")
        self.workers = int(workers) if workers else _workers()
        error = None
        if comm.rank == 0:
            try:
                self._check(labels, materials, size, phases, reference, rtol)
            except (ValueError, TypeError) as err:
                error = (type(err), str(err))
        error = comm.bcast(error, root=0)
        if error is not None:
            raise error[0](error[1])
        self.rtol = float(rtol)
        self._user_options = dict(petsc_options or {})
        self._options = {**default_voxel_options(self.rtol), **self._user_options}

    # -- input -------------------------------------------------------------------------------
    def _check(
        self,
        labels: Any,
        materials: Mapping[int | str, Any],
        size: Any,
        phases: Mapping[str, int] | None,
        reference: Any,
        rtol: float,
    ) -> None:
        lab = np.asarray(labels)
        if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
            raise ValueError(f"voxel labels must be integers, got dtype {lab.dtype}")
        if lab.ndim not in (2, 3) or min(lab.shape) < 2:
            raise ValueError(
                f"voxel labels must be a 2D or 3D array, >= 2 voxels an axis, got {lab.shape}"
            )
        if not 0.0 < float(rtol) < 1.0:
            raise ValueError(f"rtol must lie in (0, 1), got {rtol}")
        dim = lab.ndim
        L = np.broadcast_to(np.asarray(size, dtype=float), (dim,)).copy()
        if not np.all(np.isfinite(L)) or np.any(L <= 0.0):
            raise ValueError(f"cell size must be positive, got {size!r}")
        names = {int(t): str(n) for n, t in (phases or {}).items()}
        by_label: dict[int, Any] = {}
        for key, law in materials.items():
            if isinstance(key, str):
                if phases is None or key not in phases:
                    raise ValueError(f"material key {key!r} is not a label; name it in phases")
                label = int(phases[key])
            else:
                label = int(key)
            if label in by_label:
                raise ValueError(f"label {label} given two materials")
            by_label[label] = law
        present = np.unique(lab).astype(np.int64)
        missing = [int(t) for t in present if int(t) not in by_label]
        if missing:
            raise ValueError(f"voxel labels {missing} have no material")
        laws = [by_label[int(t)] for t in present]
        if all(isinstance(m, IsotropicElasticity) for m in laws):
            physics = "elasticity"
            moduli = np.array([[m.lmbda, m.mu] for m in laws])
            bad = (moduli[:, 1] <= 0) | (moduli[:, 0] + 2.0 * moduli[:, 1] / dim <= 0)
        elif all(isinstance(m, Conductivity) for m in laws):
            physics = "conductivity"
            moduli = np.array([[m.k] for m in laws])
            bad = moduli[:, 0] <= 0
        else:
            kinds = sorted({type(m).__name__ for m in laws})
            raise ValueError(
                "voxel cells take IsotropicElasticity or Conductivity laws of one kind, "
                f"got {kinds}"
            )
        if np.any(bad) or not np.all(np.isfinite(moduli)):
            raise ValueError(f"non-positive moduli for labels {present[bad].tolist()}")
        self.labels, self.dim, self.size, self.physics = lab, dim, L, physics
        self.present, self.moduli = present, moduli
        self.names = {int(t): names.get(int(t), str(int(t))) for t in present}
        self.reference = self._reference(reference)

    def _reference(self, reference: Any) -> np.ndarray:
        mod = self.moduli
        if isinstance(reference, IsotropicElasticity | Conductivity):
            ref = np.array(
                [reference.lmbda, reference.mu]
                if isinstance(reference, IsotropicElasticity)
                else [reference.k]
            )
            if ref.size != mod.shape[1]:
                raise ValueError("the reference medium must be a law of the cells' kind")
            return ref
        if reference == "mean":
            return 0.5 * (mod.min(axis=0) + mod.max(axis=0))
        if reference == "geometric":
            if self.physics == "conductivity":
                return np.sqrt(mod.min(axis=0) * mod.max(axis=0))
            bulk = mod[:, 0] + 2.0 * mod[:, 1] / self.dim
            mu0 = math.sqrt(mod[:, 1].min() * mod[:, 1].max())
            k0 = math.sqrt(bulk.min() * bulk.max())
            return np.array([k0 - 2.0 * mu0 / self.dim, mu0])
        raise ValueError(f"reference must be 'mean', 'geometric' or a law, got {reference!r}")

    # -- solve -------------------------------------------------------------------------------
    def solve(self) -> HomogenizationResult:
        """The effective tensor (collective on ``comm``; computed on rank 0, broadcast)."""
        outcome: Any = None
        if self.comm.rank == 0:
            try:
                outcome = ("ok", self._solve())
            except Exception as err:  # every rank raises it
                outcome = ("error", f"{type(err).__name__}: {err}")
        if self.comm.size > 1:  # wait without spinning in a blocking collective
            request = self.comm.Ibarrier()
            while not request.Test():
                time.sleep(0.01)
        outcome = self.comm.bcast(outcome, root=0)
        if outcome[0] == "error":
            raise RuntimeError(f"voxel cell solve failed on rank 0: {outcome[1]}")
        return outcome[1]

    def _solve(self) -> HomogenizationResult:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        grid = self._grid()
        timings["element_matrices"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        op = _GridOperator(grid.shape, grid.c, grid.corners, grid.Ks, grid.coef)
        precond = _FourierInverse(
            grid.shape, grid.c, grid.corners, grid.Ks, self.reference, self.workers
        )
        timings["preconditioner"] = time.perf_counter() - t0
        n = grid.c * op.N
        A = PETSc.Mat().createPython([n, n], context=_ShellMat(op), comm=PETSc.COMM_SELF)
        A.setUp()
        ksp = PETSc.KSP().create(PETSc.COMM_SELF)
        ksp.setOperators(A)
        ksp.setOptionsPrefix(self.prefix)
        pc = ksp.getPC()
        pc.setType(PETSc.PC.Type.PYTHON)  # the FFT preconditioner unless the options say else
        pc.setPythonContext(_ShellPC(precond))
        with prefixed_options(self.prefix, self._options):
            ksp.setFromOptions()
        ksp.setUp()
        b, x = A.createVecs()
        cases = []
        try:
            for E in unit_loads("strain" if grid.elastic else "scalar", self.dim):
                cases.append(self._load_case(E, grid, op, ksp, b, x))
        finally:
            for obj in (ksp, A, b, x):
                obj.destroy()
        timings["solve"] = float(sum(case["seconds"] for case in cases))
        return self._result(cases, grid, op, precond, timings)

    def _grid(self) -> SimpleNamespace:
        """The element matrices and the per-voxel coefficients of every matrix part."""
        dim, shape = self.dim, tuple(int(n) for n in self.labels.shape)
        elastic = self.physics == "elasticity"
        h = self.size / np.array(shape)
        parts, G, corners = voxel_element_matrices(self.physics, h)
        names = ["lambda", "mu"] if elastic else ["k"]
        index = np.searchsorted(self.present, self.labels)
        coef = np.stack([self.moduli[index, p] for p in range(len(names))])
        # flux matrices: int_e q = sum_p coef_p S_p u_e
        if elastic:
            ident = np.array([1.0 if i == j else 0.0 for i, j in voigt_index(dim)])
            S = [np.outer(ident, G[:dim].sum(axis=0)), 2.0 * G]
            engineering = np.array([1.0 if i == j else 2.0 for i, j in voigt_index(dim)])
        else:
            S, engineering = [G], np.ones(G.shape[0])
        return SimpleNamespace(
            shape=shape,
            elastic=elastic,
            c=dim if elastic else 1,
            h=h,
            G=G,
            corners=corners,
            names=names,
            Ks=[parts[name] for name in names],
            coef=coef,
            coef_sums=coef.reshape(len(names), -1).sum(axis=1),
            S=S,
            engineering=engineering,
            volume=float(np.prod(self.size)),
        )

    def _load_case(
        self,
        E: np.ndarray,
        grid: SimpleNamespace,
        op: _GridOperator,
        ksp: PETSc.KSP,
        b: PETSc.Vec,
        x: PETSc.Vec,
    ) -> dict[str, Any]:
        """Solve the unit load ``E``: its mean flux and gradient, Hill–Mandel residual,
        iterations, relative residual and seconds."""
        t0 = time.perf_counter()
        uE = np.concatenate([np.atleast_1d(E @ (o * grid.h)) for o in grid.corners])
        rhs = b.array.reshape(grid.c, *grid.shape)
        rhs[...] = 0.0
        fnorm = op.assemble_affine([-(K @ uE) for K in grid.Ks], rhs)
        if "ksp_atol" not in self._user_options:  # b cancels where u = E x is exact
            ksp.setTolerances(atol=ksp.getTolerances()[0] * fnorm)
        x.set(0.0)
        ksp.solve(b, x)
        reason = ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(
                f"CG did not converge (reason {reason}) after {ksp.getIterationNumber()} "
                f"iterations, residual {ksp.getResidualNorm():.3e}"
            )
        seconds = time.perf_counter() - t0
        u = x.array_r
        Ku = op.apply(u).ravel()
        scale = max(float(np.linalg.norm(b.array_r)), fnorm)
        energy = float(u @ Ku - 2.0 * (u @ b.array_r))
        energy += sum(cs * (uE @ K @ uE) for cs, K in zip(grid.coef_sums, grid.Ks, strict=True))
        # sum_e kappa_{p,e} u_e per part; sum_e u_e (each corner gather is a permutation)
        scaled = op.gather_scaled(u).sum(axis=1).reshape(len(grid.names), -1)
        ue_sum = np.tile(u.reshape(grid.c, -1).sum(axis=1), len(grid.corners))
        parts = zip(grid.S, scaled, grid.coef_sums, strict=True)
        q = sum(Sp @ (Up + cs * uE) for Sp, Up, cs in parts) / grid.volume
        g = grid.G @ (ue_sum + op.N * uE) / grid.volume * grid.engineering
        work = float(q @ g)
        return {
            "flux": q,
            "gradient": g,
            "hill_mandel": abs(energy / grid.volume - work) / abs(work),
            "iterations": int(ksp.getIterationNumber()),
            "residual": float(np.linalg.norm(b.array_r - Ku)) / scale,
            "seconds": seconds,
        }

    def _result(
        self,
        cases: list[dict[str, Any]],
        grid: SimpleNamespace,
        op: _GridOperator,
        precond: _FourierInverse,
        timings: dict[str, float],
    ) -> HomogenizationResult:
        C = np.column_stack([case["flux"] for case in cases])
        fractions = {
            self.names[int(t)]: float(np.count_nonzero(self.labels == t)) / op.N
            for t in self.present
        }
        return HomogenizationResult(
            tensor=C,
            notation="voigt" if grid.elastic else "matrix",
            bc="periodic",
            physics=self.physics,
            dim=self.dim,
            ndofs=grid.c * op.N,
            volume_fractions=fractions,
            mean_flux=C.copy(),
            mean_gradient=np.column_stack([case["gradient"] for case in cases]),
            hill_mandel=np.array([case["hill_mandel"] for case in cases]),
            timings=timings,
            solver={
                "method": "Q1 voxels, CG + FFT reference-medium preconditioner",
                "options": dict(self._options),
                "iterations": [case["iterations"] for case in cases],
                "solve_s_per_load": [case["seconds"] for case in cases],
                "relative_residuals": [case["residual"] for case in cases],
                "asymmetry": float(np.abs(C - C.T).max() / np.abs(C).max()),
                "reference": dict(zip(grid.names, self.reference.tolist(), strict=True)),
                "reference_lowest_relative_eigenvalue": precond.lowest_relative_eigenvalue,
                "fft_workers": self.workers,
                "grid": list(grid.shape),
            },
        )
