"""High-contrast coefficients: a background of 1 with channels and inclusions of value
:math:`\\eta` (the contrast), as cell-wise (DG0) fields on the fine mesh.

A :class:`HighContrastField` is a union of axis-parallel rectangles
:math:`R_r = [x_0, x_1]\\times[y_0, y_1]` (boxes in 3D); on each fine cell

.. math::
    \\kappa|_T = \\begin{cases} \\eta & \\text{centroid of } T \\in \\bigcup_r R_r\\\\
    1 & \\text{otherwise,}\\end{cases}

so the field is resolved exactly when the rectangle sides are fine grid lines.  It is a
:data:`~multiscale.bases.fine.Coefficient` (call it with the fine mesh).  Generators:

* :func:`channel_field` — on :math:`[0,1]^2` with ``n_coarse`` coarse cells per side
  (:math:`H = 1/n`): horizontal strips of width ``width`` from :math:`x = \\text{margin}` to
  :math:`1 - \\text{margin}` (not touching the Dirichlet boundary), ``m`` of them in every
  *even* coarse row :math:`[jH, (j+1)H]` (:math:`j = 0, 2, \\dots`), centred at
  :math:`y = jH + kH/(m+1)`, :math:`k = 1..m`.  The neighbourhood :math:`\\omega_z` of an
  interior coarse vertex spans two coarse rows, exactly one of them even, so **each interior
  neighbourhood is crossed by exactly** :math:`m` **channels** (each cut into one connected
  piece by :math:`\\omega_z`).
* :func:`inclusion_field` — one square inclusion of side ``size`` (times :math:`H`) centred in
  every coarse square cell (isolated high-conductivity islands).

:func:`hou_wu` is the smooth oscillatory coefficient of Hou & Wu (1997), a UFL expression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dolfinx
import numpy as np
import ufl

__all__ = ["HighContrastField", "channel_field", "hou_wu", "inclusion_field"]


@dataclass(frozen=True, slots=True)
class HighContrastField:
    """``boxes``: rows :math:`(x_0, x_1, y_0, y_1[, z_0, z_1])` of the high-conductivity set;
    ``contrast``: :math:`\\eta` (its value; the background is 1)."""

    boxes: tuple[tuple[float, ...], ...]
    contrast: float

    def __post_init__(self) -> None:
        if not self.contrast > 0:
            raise ValueError(f"contrast must be > 0, got {self.contrast}")
        if any(len(b) not in (2, 4, 6) for b in self.boxes):
            raise ValueError("each box needs (x0, x1[, y0, y1[, z0, z1]])")

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Whether each point of ``x`` (n, d) lies in the high-conductivity set."""
        hit = np.zeros(len(x), dtype=bool)
        if not self.boxes:
            return hit
        b = np.asarray(self.boxes, dtype=float)
        d = b.shape[1] // 2
        lo, hi = b[:, 0::2], b[:, 1::2]
        xs = x[:, None, :d]
        return np.all((xs >= lo) & (xs <= hi), axis=2).any(axis=1)

    def values(self, x: np.ndarray) -> np.ndarray:
        """:math:`\\kappa` at the points ``x`` (n, d)."""
        return np.where(self.inside(x), self.contrast, 1.0)

    def __call__(self, mesh: dolfinx.mesh.Mesh) -> dolfinx.fem.Function:
        """The DG0 field on ``mesh`` (owned and ghost cells, by their centroids)."""
        tdim = mesh.topology.dim
        space = dolfinx.fem.functionspace(mesh, ("DG", 0))
        kappa = dolfinx.fem.Function(space)
        imap = mesh.topology.index_map(tdim)
        cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
        mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, :tdim]
        kappa.x.array[space.dofmap.list[cells, 0]] = self.values(mid)
        return kappa


def channel_field(
    n_coarse: int,
    channels: int,
    contrast: float,
    *,
    width: float,
    margin: float,
) -> HighContrastField:
    """``channels`` (:math:`m \\ge 1`) horizontal strips crossing every interior coarse
    neighbourhood of the uniform ``n_coarse`` x ``n_coarse`` coarse mesh of :math:`[0,1]^2`
    (see the module docstring); ``width`` and ``margin`` absolute (choose fine grid multiples,
    ``width < H/(m+1)``)."""
    if channels < 1 or n_coarse < 2:
        raise ValueError("need channels >= 1 and n_coarse >= 2")
    big_h = 1.0 / n_coarse
    if not 0 < width < big_h / (channels + 1) or not 0 <= margin < 0.5:
        raise ValueError("need 0 < width < H/(channels+1) and 0 <= margin < 1/2")
    rows = np.arange(0, n_coarse, 2)
    centres = (rows[:, None] + np.arange(1, channels + 1)[None, :] / (channels + 1)) * big_h
    boxes = tuple(
        (margin, 1.0 - margin, float(c) - width / 2, float(c) + width / 2) for c in centres.ravel()
    )
    return HighContrastField(boxes, float(contrast))


def inclusion_field(n_coarse: int, contrast: float, *, size: float = 0.25) -> HighContrastField:
    """A square inclusion of side ``size * H`` at the centre of every coarse square of the
    uniform ``n_coarse`` x ``n_coarse`` mesh of :math:`[0,1]^2`."""
    if not 0 < size < 1:
        raise ValueError(f"size must lie in (0, 1), got {size}")
    big_h = 1.0 / n_coarse
    c = (np.arange(n_coarse) + 0.5) * big_h
    r = size * big_h / 2
    boxes = tuple((float(x) - r, float(x) + r, float(y) - r, float(y) + r) for x in c for y in c)
    return HighContrastField(boxes, float(contrast))


def hou_wu(eps: float) -> Callable[[dolfinx.mesh.Mesh], ufl.core.expr.Expr]:
    """The coefficient of Hou & Wu (1997) with period :math:`\\varepsilon`,

    .. math::
        a = \\frac{2 + 1.8\\sin(2\\pi x/\\varepsilon)}{2 + 1.8\\cos(2\\pi y/\\varepsilon)}
          + \\frac{2 + \\sin(2\\pi y/\\varepsilon)}{2 + 1.8\\sin(2\\pi x/\\varepsilon)},

    as a :data:`~multiscale.bases.fine.Coefficient` (a UFL expression of the mesh's
    coordinates, compiled into the forms)."""
    if not eps > 0.0:
        raise ValueError(f"the period eps must be positive, got {eps!r}")
    omega = 2.0 * np.pi / eps

    def a(mesh: dolfinx.mesh.Mesh) -> ufl.core.expr.Expr:
        x = ufl.SpatialCoordinate(mesh)
        s = ufl.sin(omega * x[0])
        return (2 + 1.8 * s) / (2 + 1.8 * ufl.cos(omega * x[1])) + (2 + ufl.sin(omega * x[1])) / (
            2 + 1.8 * s
        )

    return a
