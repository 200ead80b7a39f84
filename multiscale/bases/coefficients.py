"""Coefficients of the multiscale bases: high-contrast fields, cell-wise fields from images or
voxel arrays, log-normal random fields, and the oscillatory coefficient of Hou & Wu.

Each is a :data:`~multiscale.bases.fine.Coefficient`, a function of the fine mesh returning a
UFL expression or a DG0 :class:`dolfinx.fem.Function` (call it with the fine mesh); any
function of the mesh that returns a UFL expression is one too.

**High contrast.**  A background of 1 with channels and inclusions of value :math:`\\eta`
(the contrast), as cell-wise (DG0) fields on the fine mesh.

A :class:`HighContrastField` is a union of axis-parallel rectangles
:math:`R_r = [x_0, x_1]\\times[y_0, y_1]` (boxes in 3D); on each fine cell

.. math::
    \\kappa|_T = \\begin{cases} \\eta & \\text{centroid of } T \\in \\bigcup_r R_r\\\\
    1 & \\text{otherwise,}\\end{cases}

so the field is resolved exactly when the rectangle sides are fine grid lines.  Generators:

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

**Images and voxel arrays.**  A :class:`PixelField` is an array of coefficient values, one per
pixel (voxel), stretched over the box :math:`B = \\prod_a [l_a, u_a]` (default the unit
square/cube, the domain of :func:`~multiscale.bases.unit_square_pair` and
:func:`~multiscale.bases.unit_cube_pair`): with :math:`n_a` pixels along axis :math:`a`,

.. math::
    a|_T = v_{i_1 \\dots i_d}, \\qquad
    i_a = \\Big\\lfloor n_a\\,\\frac{c_a(T) - l_a}{u_a - l_a}\\Big\\rfloor
    \\quad (c(T) \\text{ the centroid of the fine cell } T),

so the field is resolved exactly when every fine cell lies in one pixel (the fine cells per
side a multiple of the pixels).  :func:`pixel_field` maps an array of pixel values (phase
labels, grey levels) to coefficient values with a mapping ``{pixel value: coefficient}``;
:func:`image_field` reads the array from a file with :func:`multiscale.mesh.read_image`
(PNG, TIFF, ``.npy``/``.npz``, HDF5).  Images are oriented as they are displayed
(``axes="image"``: row :math:`r` from the top, :math:`a[r, c]` at
:math:`x \\in [c, c+1]/n_x`, :math:`y \\in [n_y - 1 - r, n_y - r]/n_y`; a 3D array
:math:`a[k, r, c]` a stack of such slices along :math:`z`), arrays indexed along
:math:`(x, y, z)` with ``axes="xyz"``.

**Random fields.**  :func:`lognormal_field` is the log-normal field
:math:`a = \\exp(\\mu + \\sigma X)` on a pixel grid over :math:`B`, :math:`X` the stationary
Gaussian field of unit variance and Gaussian covariance of correlation length :math:`\\ell`
from :func:`multiscale.mesh.gaussian_random_field`, drawn from ``seed`` (the same on every
rank, so the field does not depend on the partition).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dolfinx
import numpy as np
import ufl

__all__ = [
    "HighContrastField",
    "PixelField",
    "channel_field",
    "hou_wu",
    "hou_wu_cell",
    "image_field",
    "inclusion_field",
    "lognormal_field",
    "pixel_field",
]


def _cell_midpoints(mesh: dolfinx.mesh.Mesh) -> tuple[np.ndarray, np.ndarray]:
    """The local (owned and ghost) cells and their centroids (n, tdim)."""
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    return cells, dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, :tdim]


def _dg0(mesh: dolfinx.mesh.Mesh, cells: np.ndarray, values: np.ndarray) -> dolfinx.fem.Function:
    space = dolfinx.fem.functionspace(mesh, ("DG", 0))
    out = dolfinx.fem.Function(space)
    out.x.array[space.dofmap.list[cells, 0]] = values
    return out


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
        cells, mid = _cell_midpoints(mesh)
        return _dg0(mesh, cells, self.values(mid))


@dataclass(frozen=True, slots=True, eq=False)
class PixelField:
    """A cell-wise coefficient from an array of values (see the module docstring).

    ``values``: the coefficient of each pixel/voxel, indexed along :math:`(x, y[, z])`
    (positive and finite); ``box``: :math:`(l_1, u_1, \\dots, l_d, u_d)`, the box the array is
    stretched over (default the unit box)."""

    values: np.ndarray
    box: tuple[float, ...] | None = None
    _bounds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        v = np.array(self.values, dtype=float)
        if v.ndim not in (1, 2, 3) or v.size == 0:
            raise ValueError(f"PixelField: expected a 1D, 2D or 3D array, got shape {v.shape}")
        if not np.all(np.isfinite(v)) or v.min() <= 0.0:
            raise ValueError(
                f"PixelField: coefficient values must be positive and finite, got min "
                f"{np.nanmin(v):g}, max {np.nanmax(v):g}"
            )
        box = (0.0, 1.0) * v.ndim if self.box is None else tuple(float(b) for b in self.box)
        bounds = np.array(box).reshape(-1, 2) if len(box) == 2 * v.ndim else None
        if bounds is None or not np.all(bounds[:, 1] > bounds[:, 0]):
            raise ValueError(
                f"PixelField: box must be (l1, u1, ..., l{v.ndim}, u{v.ndim}) with u > l for a "
                f"{v.ndim}D array, got {box}"
            )
        v.setflags(write=False)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "_bounds", bounds)

    def pixel_index(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """The pixel of each point of ``x`` (n, d) (points on the box's faces and outside it
        go to the nearest pixel)."""
        lo, hi = self._bounds[:, 0], self._bounds[:, 1]
        n = np.array(self.values.shape)
        idx = np.floor((x[:, : len(n)] - lo) / (hi - lo) * n).astype(np.int64)
        return tuple(np.clip(idx, 0, n - 1).T)

    def __call__(self, mesh: dolfinx.mesh.Mesh) -> dolfinx.fem.Function:
        """The DG0 field on ``mesh`` (owned and ghost cells, by their centroids)."""
        if mesh.topology.dim != self.values.ndim:
            raise ValueError(
                f"PixelField: a {self.values.ndim}D array on a {mesh.topology.dim}D mesh"
            )
        cells, mid = _cell_midpoints(mesh)
        return _dg0(mesh, cells, self.values[self.pixel_index(mid)])


def _xyz(array: np.ndarray, axes: Literal["image", "xyz"]) -> np.ndarray:
    """An image array (``axes="image"``, see the module docstring) indexed along x, y, z."""
    if axes == "xyz" or array.ndim == 1:
        return array
    if axes != "image":
        raise ValueError(f"axes must be 'image' or 'xyz', got {axes!r}")
    if array.ndim == 2:  # a[r, c]: c along x, r downwards
        return array[::-1, :].T
    return array[:, ::-1, :].transpose(2, 1, 0)  # a[k, r, c]


def pixel_field(
    image: np.ndarray,
    values: Mapping[float, float] | None = None,
    *,
    axes: Literal["image", "xyz"] = "image",
    box: Sequence[float] | None = None,
) -> PixelField:
    """The :class:`PixelField` of an array of pixel values ``image``: each pixel's coefficient
    is ``values[pixel value]`` (every value that occurs must be mapped), or the pixel value
    itself without a mapping."""
    arr = np.asarray(image)
    if values is not None:
        keys = np.array(sorted(values), dtype=float)
        if keys.size == 0:
            raise ValueError("the mapping of pixel values to coefficients is empty")
        found = np.unique(arr)
        missing = found[~np.isin(found, keys)]
        if missing.size:
            shown = ", ".join(f"{m:g}" for m in missing[:8]) + (", ..." if missing.size > 8 else "")
            raise ValueError(
                f"pixel value(s) {shown} have no coefficient (mapped: "
                f"{', '.join(f'{k:g}' for k in keys)})"
            )
        table = np.array([float(values[k]) for k in sorted(values)])
        arr = table[np.searchsorted(keys, arr.astype(float))]
    return PixelField(_xyz(np.asarray(arr, dtype=float), axes), None if box is None else tuple(box))


def image_field(
    path: str | os.PathLike,
    values: Mapping[float, float] | None = None,
    *,
    dataset: str | None = None,
    axes: Literal["image", "xyz"] = "image",
    box: Sequence[float] | None = None,
) -> PixelField:
    """:func:`pixel_field` of the image or voxel array in ``path`` (read on every rank with
    :func:`multiscale.mesh.read_image`: PNG, TIFF, ``.npy``/``.npz``, HDF5 ``dataset``)."""
    from multiscale.mesh.image import read_image

    return pixel_field(read_image(path, dataset=dataset), values, axes=axes, box=box)


def lognormal_field(
    pixels: int | Sequence[int],
    correlation_length: float,
    *,
    sigma: float = 1.0,
    mean_log: float = 0.0,
    seed: int,
    dim: int = 2,
    box: Sequence[float] | None = None,
) -> PixelField:
    """The log-normal random field :math:`a = \\exp(\\mu + \\sigma X)` on ``pixels`` cells per
    side (or per axis) of ``box`` (default the unit box of dimension ``dim``), :math:`X` from
    :func:`multiscale.mesh.gaussian_random_field` with correlation length
    :math:`\\ell` = ``correlation_length`` (in the units of the box) and ``seed``.  Its
    contrast is about :math:`e^{2\\cdot 3\\sigma}`."""
    from multiscale.mesh.random import gaussian_random_field

    if not sigma >= 0.0 or not np.isfinite(mean_log):
        raise ValueError(f"need sigma >= 0 and a finite mean_log, got {sigma}, {mean_log}")
    shape = (int(pixels),) * dim if np.isscalar(pixels) else tuple(int(p) for p in pixels)
    bounds = (0.0, 1.0) * len(shape) if box is None else tuple(float(b) for b in box)
    if len(bounds) != 2 * len(shape):
        raise ValueError(f"box {bounds} does not match {len(shape)} axes")
    size = np.diff(np.reshape(bounds, (-1, 2)), axis=1).ravel()
    x = gaussian_random_field(shape, size, correlation_length, seed=seed)
    return PixelField(np.exp(mean_log + sigma * x), bounds)


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


def hou_wu_cell(y: Any) -> ufl.core.expr.Expr:
    """The coefficient of Hou & Wu in the fast variable :math:`y` (period 1),

    .. math::
        a(y) = \\frac{2 + 1.8\\sin 2\\pi y_1}{2 + 1.8\\cos 2\\pi y_2}
             + \\frac{2 + \\sin 2\\pi y_2}{2 + 1.8\\sin 2\\pi y_1},

    for a UFL vector ``y``: :func:`hou_wu` is :math:`a(x/\\varepsilon)`, and the cell and
    sampling-domain problems of the HMM evaluate it at their micro coordinates."""
    s = ufl.sin(2.0 * np.pi * y[0])
    return (2 + 1.8 * s) / (2 + 1.8 * ufl.cos(2.0 * np.pi * y[1])) + (
        2 + ufl.sin(2.0 * np.pi * y[1])
    ) / (2 + 1.8 * s)


def hou_wu(eps: float) -> Callable[[dolfinx.mesh.Mesh], ufl.core.expr.Expr]:
    """The coefficient of Hou & Wu (1997) with period :math:`\\varepsilon`,

    .. math::
        a = \\frac{2 + 1.8\\sin(2\\pi x/\\varepsilon)}{2 + 1.8\\cos(2\\pi y/\\varepsilon)}
          + \\frac{2 + \\sin(2\\pi y/\\varepsilon)}{2 + 1.8\\sin(2\\pi x/\\varepsilon)},

    as a :data:`~multiscale.bases.fine.Coefficient` (a UFL expression of the mesh's
    coordinates, compiled into the forms): :func:`hou_wu_cell` at :math:`x/\\varepsilon`."""
    if not eps > 0.0:
        raise ValueError(f"the period eps must be positive, got {eps!r}")

    def a(mesh: dolfinx.mesh.Mesh) -> ufl.core.expr.Expr:
        return hou_wu_cell(ufl.SpatialCoordinate(mesh) / eps)

    return a
