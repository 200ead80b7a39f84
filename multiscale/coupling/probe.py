"""Values of distributed finite-element functions at given points, identical on every rank.

A :class:`PointProbe` is built once for a mesh and a set of physical points :math:`x_1, \\dots,
x_m` (the same on every rank).  Each rank searches its *owned* cells with a bounding-box tree
(:func:`dolfinx.geometry.bb_tree`, :func:`~dolfinx.geometry.compute_collisions_points`,
:func:`~dolfinx.geometry.compute_colliding_cells`); a point found by several ranks (on a facet
between two partitions) is given to the lowest of them, so that

.. math::
    u(x_i) = \\sum_r [\\,r = \\mathrm{owner}(i)\\,]\\; u|_{K_r(x_i)}(x_i)

is one ``MPI_Allreduce`` and every rank gets all values.  :meth:`PointProbe.eval` uses
:meth:`dolfinx.fem.Function.eval`, whose signature is the same on dolfinx 0.9 and 0.11, so two
functions on unrelated meshes (a coarse macro mesh and a fine DNS mesh, say) are compared by
probing both at the same points: no interpolation between non-matching distributed meshes.
"""

from __future__ import annotations

import dolfinx
import dolfinx.geometry
import numpy as np
from mpi4py import MPI

__all__ = ["PointProbe", "grid_points"]


def grid_points(
    lower: np.ndarray | list[float], upper: np.ndarray | list[float], m: int | list[int]
) -> np.ndarray:
    """Centres of the :math:`m_1 \\times \\dots \\times m_d` regular grid of the box
    ``[lower, upper]``: :math:`x_{k} = a + (k + \\tfrac12)(b - a)/m`, shape ``(prod m, d)``.

    Choose ``m`` coprime with the number of periods of a microstructure in the box, so that the
    points fall at many different positions inside the periods (sampling only at period centres,
    where a symmetric corrector vanishes, would hide the oscillation).
    """
    a = np.asarray(lower, dtype=float).ravel()
    b = np.asarray(upper, dtype=float).ravel()
    d = a.size
    if b.size != d or d not in (1, 2, 3) or np.any(b <= a) or not np.all(np.isfinite(b - a)):
        raise ValueError(f"grid_points needs lower < upper in 1-3 dimensions, got {a}, {b}")
    counts = np.broadcast_to(np.asarray(m, dtype=int), (d,))
    if np.any(counts < 1):
        raise ValueError(f"grid_points needs at least one point per direction, got m={m!r}")
    axes = [a[i] + (np.arange(counts[i]) + 0.5) * (b[i] - a[i]) / counts[i] for i in range(d)]
    return np.stack([c.ravel() for c in np.meshgrid(*axes, indexing="ij")], axis=1)


class PointProbe:
    """Evaluate functions on ``mesh`` at ``points`` (shape ``(m, gdim)``, identical on all ranks).

    Collective on ``mesh.comm``.  Raises ``ValueError`` if some point lies in no cell of the mesh.
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, points: np.ndarray) -> None:
        self.mesh = mesh
        self.comm: MPI.Comm = mesh.comm
        gdim = mesh.geometry.dim
        pts = np.asarray(points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != gdim or not np.all(np.isfinite(pts)):
            raise ValueError(f"points must be a finite array of shape (m, {gdim}), got {pts.shape}")
        self.points = pts
        x = np.zeros((len(pts), 3), dtype=mesh.geometry.x.dtype)
        x[:, :gdim] = pts
        tdim = mesh.topology.dim
        owned = np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)
        tree = dolfinx.geometry.bb_tree(mesh, tdim, entities=owned)
        candidates = dolfinx.geometry.compute_collisions_points(tree, x)
        colliding = dolfinx.geometry.compute_colliding_cells(mesh, candidates, x)
        offsets = np.asarray(colliding.offsets)
        found = offsets[1:] > offsets[:-1]
        first = np.asarray(colliding.array)[offsets[:-1][found]]
        rank, size = self.comm.rank, self.comm.size
        owner = np.empty(len(pts), dtype=np.int64)
        self.comm.Allreduce(np.where(found, rank, size).astype(np.int64), owner, op=MPI.MIN)
        missing = np.flatnonzero(owner == size)
        if missing.size:
            raise ValueError(
                f"{missing.size} of {len(pts)} points lie outside the mesh, e.g. "
                f"{pts[missing[0]].tolist()}"
            )
        mine = owner[found] == rank
        self._rows = np.flatnonzero(found)[mine]
        self._cells = first[mine].astype(np.int32)
        self._x = x[self._rows]

    @property
    def n_points(self) -> int:
        return len(self.points)

    def eval(self, f: dolfinx.fem.Function) -> np.ndarray:
        """Values of ``f`` at all points, shape ``(m, value_size)``, on every rank.  Collective;
        ``f`` must live on the probe's mesh."""
        if f.function_space.mesh is not self.mesh:
            raise ValueError("the function lives on another mesh than the probe's")
        value_size = int(np.prod(f.ufl_shape)) if f.ufl_shape else 1
        local = np.zeros((self.n_points, value_size))
        if len(self._rows):
            values = f.eval(self._x, self._cells)
            local[self._rows] = np.real(np.asarray(values).reshape(len(self._rows), value_size))
        values = np.empty_like(local)
        self.comm.Allreduce(local, values, op=MPI.SUM)
        return values
