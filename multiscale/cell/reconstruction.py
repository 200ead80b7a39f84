"""Two-scale reconstruction: the first-order expansion of a periodic medium on a fine mesh.

For :math:`-\\nabla\\cdot(a(x/\\varepsilon)\\nabla u_\\varepsilon) = f` with a cell of period
:math:`\\varepsilon`, the homogenized solution :math:`u_0` and the periodic, zero-mean cell
correctors :math:`\\chi_j` (:math:`-\\nabla_y\\cdot a(e_j + \\nabla_y\\chi_j) = 0`) give

.. math::

    u_1 = u_0 + \\varepsilon\\,\\chi_j(x/\\varepsilon)\\,\\partial_j u_0, \\qquad
    \\nabla u_1 = (I + \\nabla_y\\chi)\\nabla u_0
      + \\varepsilon\\,\\chi_j\\,\\nabla\\partial_j u_0,

and the reconstructed flux :math:`a(x/\\varepsilon)(I + \\nabla_y\\chi)\\nabla u_0`.  The classical
estimates (Bensoussan, Lions and Papanicolaou; Allaire, *Shape optimization by the
homogenization method*, ch. 1): :math:`\\|u_\\varepsilon - u_0\\|_{L^2} = O(\\varepsilon)`;
:math:`\\|u_\\varepsilon - u_1\\|_{H^1(\\omega)} = O(\\varepsilon)` on a subdomain :math:`\\omega`
away from the boundary, but only :math:`O(\\varepsilon^{1/2})` on the whole domain: :math:`u_1`
misses the Dirichlet data by :math:`\\varepsilon\\chi\\cdot\\nabla u_0`, and the boundary layer
that corrects it lives in a strip of width :math:`O(\\varepsilon)`.

The correctors come from :meth:`~multiscale.cell.CellProblem.correctors` on a cell mesh that
every rank holds whole (``MPI.COMM_SELF``); :class:`TwoScaleReconstruction` samples them at the
interpolation points of a fine space (which must resolve :math:`\\varepsilon`) of a fine mesh on
any communicator, so :math:`u_1` and its gradient are UFL expressions there, exact in
:math:`u_0` and accurate to the fine space's interpolation of :math:`\\chi(x/\\varepsilon)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import dolfinx
import dolfinx.geometry
import numpy as np
import ufl

__all__ = ["TwoScaleReconstruction", "evaluate_in_cell", "locate_in_cell"]


def locate_in_cell(mesh: dolfinx.mesh.Mesh, points: np.ndarray) -> np.ndarray:
    """For each of ``points`` (n, 3) one cell of ``mesh`` (held whole by this process) that
    contains it (a point on a shared facet takes the first found)."""
    tree = dolfinx.geometry.bb_tree(mesh, mesh.topology.dim)
    candidates = dolfinx.geometry.compute_collisions_points(tree, points)
    colliding = dolfinx.geometry.compute_colliding_cells(mesh, candidates, points)
    offsets = np.asarray(colliding.offsets)
    missing = np.flatnonzero(np.diff(offsets) == 0)
    if len(missing):
        raise ValueError(f"point {points[missing[0]].tolist()} lies outside the cell mesh")
    return np.asarray(colliding.array)[offsets[:-1]].astype(np.int32)


def evaluate_in_cell(
    f: dolfinx.fem.Function, points: np.ndarray, cells: np.ndarray | None = None
) -> np.ndarray:
    """Values of ``f`` (on a mesh held whole by this process) at ``points`` (n, 3) inside its
    mesh, in ``cells`` (default: located): (n, value size)."""
    if cells is None:
        cells = locate_in_cell(f.function_space.mesh, points)
    return np.asarray(f.eval(points, cells)).reshape(len(points), -1)


class TwoScaleReconstruction:
    """:math:`u_1 = u_0 + \\varepsilon\\chi_j(x/\\varepsilon)\\partial_j u_0` on a fine mesh.

    Parameters
    ----------
    correctors:
        The zero-mean periodic correctors :math:`\\chi_j` of a scalar cell problem, one per unit
        gradient :math:`e_j` (from :meth:`CellProblem.correctors`), on a cell mesh held whole
        by every rank (``MPI.COMM_SELF``), whose box is a square/cube of side :math:`\\ell`.
    box:
        The cell's box (2, d): corners of the period.
    space:
        A scalar Lagrange space on the fine mesh; :math:`\\chi(x/\\varepsilon)` is interpolated
        into the vector space of the same element (it must resolve :math:`\\varepsilon`).
    eps:
        The period :math:`\\varepsilon` on the fine mesh; the cell box is mapped onto
        :math:`origin + \\varepsilon\\,[0, 1]^d` and repeated.
    origin:
        A corner of one period on the fine mesh (default the origin).

    The cell's correctors have the units of its box (:math:`\\chi_j \\sim \\ell`), so the
    expansion uses :math:`(\\varepsilon/\\ell)\\,\\chi_j(y)` with
    :math:`y = box_0 + \\ell\\,\\{(x - origin)/\\varepsilon\\}`.  Collective on the fine mesh's
    communicator only through what the caller assembles; the sampling is local.
    """

    def __init__(
        self,
        correctors: Sequence[dolfinx.fem.Function],
        box: np.ndarray,
        space: dolfinx.fem.FunctionSpace,
        eps: float,
        origin: Sequence[float] | None = None,
    ) -> None:
        self._check(correctors, box, space, eps)
        self.eps = float(eps)
        self.box = np.asarray(box, dtype=float)
        self.ell = float(self.box[1, 0] - self.box[0, 0])
        mesh = space.mesh
        self.dim = mesh.geometry.dim
        self.origin = np.zeros(self.dim) if origin is None else np.asarray(origin, dtype=float)
        element = space.ufl_element()
        vector = dolfinx.fem.functionspace(
            mesh, ("Lagrange", element.embedded_superdegree, (self.dim,))
        )
        #: :math:`\chi(x/\varepsilon)` interpolated on the fine mesh (vector, one per gradient)
        self.chi = dolfinx.fem.Function(vector, name="chi")
        self.chi.interpolate(lambda x: self._sample(correctors, x))
        self.chi.x.scatter_forward()

    @staticmethod
    def _check(correctors, box, space, eps) -> None:
        box = np.asarray(box, dtype=float)
        d = space.mesh.geometry.dim
        if len(correctors) != d:
            raise ValueError(
                f"expected {d} correctors (one per unit gradient), got {len(correctors)}"
            )
        if any(c.function_space.mesh.comm.size != 1 for c in correctors):
            raise ValueError(
                "the correctors must live on a cell mesh that every rank holds whole "
                "(build the cell on MPI.COMM_SELF)"
            )
        if any(c.ufl_shape != () for c in correctors):
            raise ValueError("two-scale reconstruction is implemented for scalar cell problems")
        lengths = box[1, :d] - box[0, :d]
        if not np.allclose(lengths, lengths[0], rtol=1e-12):
            raise ValueError(f"the cell box must be a square/cube, got sides {lengths.tolist()}")
        if not np.isfinite(eps) or eps <= 0.0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")

    def cell_coordinates(self, x: np.ndarray) -> np.ndarray:
        """:math:`y = box_0 + \\ell\\,\\{(x - origin)/\\varepsilon\\}` for points ``x`` (3, n):
        (n, 3), the fractional part kept inside the box against round-off."""
        d = self.dim
        t = (x[:d].T - self.origin) / self.eps
        frac = np.clip(t - np.floor(t), 0.0, 1.0)
        y = np.zeros((x.shape[1], 3))
        y[:, :d] = self.box[0, :d] + self.ell * frac
        return y

    def _sample(self, correctors: Sequence[dolfinx.fem.Function], x: np.ndarray) -> np.ndarray:
        y = self.cell_coordinates(x)
        cells = locate_in_cell(correctors[0].function_space.mesh, y)
        out = np.empty((self.dim, x.shape[1]))
        for j, chi in enumerate(correctors):
            out[j] = evaluate_in_cell(chi, y, cells)[:, 0]
        return out

    def field(self, u0: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """:math:`u_1 = u_0 + (\\varepsilon/\\ell)\\,\\chi\\cdot\\nabla u_0`."""
        return u0 + (self.eps / self.ell) * ufl.dot(self.chi, ufl.grad(u0))

    def gradient(self, u0: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """:math:`\\nabla u_1 = (I + \\nabla_y\\chi)\\nabla u_0 + (\\varepsilon/\\ell)\\,\\chi_j
        \\nabla\\partial_j u_0` (UFL differentiates the interpolated :math:`\\chi(x/\\varepsilon)`,
        whose gradient is :math:`(\\ell/\\varepsilon)\\nabla_y\\chi`)."""
        return ufl.grad(self.field(u0))
