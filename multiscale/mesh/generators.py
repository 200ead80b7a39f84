r"""Periodic unit-cell meshes built with gmsh's OpenCASCADE kernel.

Every generator builds, on rank 0 of ``comm``, the box :math:`Y = \prod_i [0, \ell_i]` split into
phases by ``occ.fragment`` (so phase interfaces are conforming), declares opposite faces periodic
with ``gmsh.model.mesh.setPeriodic`` (the face :math:`x_i = \ell_i` is the image of the face
:math:`x_i = 0` under the translation by :math:`\ell_i e_i`, so both carry the same nodes),
meshes it with first-order simplices of characteristic length :math:`h` (``Mesh.MeshSizeMax``),
optionally writes it as text MSH 4.1, and distributes it on ``comm`` as a :class:`CellMesh` whose
phases are the model's physical groups.

Inclusions (disks, spheres) that cross the boundary of the box are wrapped periodically: every
translate :math:`c + \sum_i s_i \ell_i e_i`, :math:`s \in \{-1, 0, 1\}^d`, of an inclusion that
meets the box is clipped to the box and added, so the geometry itself is periodic.  Inclusions
(with their translates) must not overlap or touch each other or be tangent to a face.

The realized volume fraction of a curved inclusion is that of its inscribed polygon/polyhedron:
for a disk of radius :math:`r` meshed with chords of length :math:`\approx h` the relative area
deficit is about :math:`(h/r)^2/6`, so it decreases as :math:`O(h^2)`.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Sequence

import gmsh
import numpy as np
from mpi4py import MPI

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.io import model_to_cell_mesh, write_msh

__all__ = [
    "checkerboard",
    "circular_inclusion",
    "cylindrical_fibre",
    "inclusions_2d",
    "inclusions_3d",
    "laminate",
    "spherical_inclusion",
]

_log = logging.getLogger(__name__)

#: Physical-group tags of the two-phase inclusion cells.
MATRIX, INCLUSION = 1, 2

#: Relative gap (to the longest box edge) below which inclusions count as touching.
_TOUCH = 1e-6


# --------------------------------------------------------------------------------------------
# Public generators
# --------------------------------------------------------------------------------------------


def inclusions_2d(
    comm: MPI.Comm,
    centers: Sequence[Sequence[float]] | np.ndarray,
    radii: float | Sequence[float],
    *,
    size: Sequence[float] = (1.0, 1.0),
    h: float = 0.05,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
    grading: tuple[float, float] | None = None,
) -> CellMesh:
    r"""Rectangle :math:`[0, \ell_1] \times [0, \ell_2]` with circular inclusions, periodic.

    Phases ``"matrix"`` (tag 1) and ``"inclusion"`` (tag 2).  The disks
    :math:`|x - c_k| < r_k` are taken modulo the cell: centres are wrapped into the cell and disks
    crossing its boundary reappear on the opposite side.

    Parameters
    ----------
    comm:
        Communicator to distribute the mesh on.
    centers:
        Disk centres, shape ``(n, 2)``.
    radii:
        One radius for all disks, or one per disk.
    size:
        Cell edge lengths :math:`(\ell_1, \ell_2)`.
    h:
        Characteristic element size.
    path:
        If given, rank 0 also writes the mesh there (text MSH 4.1).
    verbose:
        Let gmsh print.
    grading:
        ``(h_min, radius)``: grade the mesh toward the disk boundaries (size :math:`h_{min}` on
        them, :math:`h` from distance ``radius`` on, see :func:`_grade`), as near-contacts need.

    Raises
    ------
    ValueError
        Bad sizes or radii, overlapping or touching disks (or a disk touching its own periodic
        copy), a disk tangent to the boundary.
    """
    return _inclusions(
        comm, 2, centers, radii, size, h, path, verbose, "inclusions_2d", grading=grading
    )


def inclusions_3d(
    comm: MPI.Comm,
    centers: Sequence[Sequence[float]] | np.ndarray,
    radii: float | Sequence[float],
    *,
    size: Sequence[float] = (1.0, 1.0, 1.0),
    h: float = 0.1,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
) -> CellMesh:
    r"""Box :math:`\prod_i [0, \ell_i]` with spherical inclusions, periodic (see
    :func:`inclusions_2d`; centres have shape ``(n, 3)``)."""
    return _inclusions(comm, 3, centers, radii, size, h, path, verbose, "inclusions_3d")


def circular_inclusion(
    comm: MPI.Comm,
    volume_fraction: float,
    *,
    h: float = 0.05,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
    grading: tuple[float, float] | None = None,
) -> CellMesh:
    r"""Unit square with one centred disk of area fraction :math:`\phi`.

    The radius is :math:`r = \sqrt{\phi / \pi}`; the disk must fit strictly inside the square,
    :math:`0 < \phi < \pi/4`.  Phases ``"matrix"`` and ``"inclusion"``; ``grading`` as in
    :func:`inclusions_2d`.
    """
    phi = _fraction(volume_fraction, math.pi / 4, "a disk in the unit square")
    r = math.sqrt(phi / math.pi)
    return inclusions_2d(comm, [[0.5, 0.5]], r, h=h, path=path, verbose=verbose, grading=grading)


def spherical_inclusion(
    comm: MPI.Comm,
    volume_fraction: float,
    *,
    h: float = 0.15,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
) -> CellMesh:
    r"""Unit cube with one centred sphere of volume fraction :math:`\phi`.

    The radius is :math:`r = (3\phi / 4\pi)^{1/3}`; the sphere must fit strictly inside the cube,
    :math:`0 < \phi < \pi/6`.  Phases ``"matrix"`` and ``"inclusion"``.
    """
    phi = _fraction(volume_fraction, math.pi / 6, "a sphere in the unit cube")
    r = (3.0 * phi / (4.0 * math.pi)) ** (1.0 / 3.0)
    return inclusions_3d(comm, [[0.5, 0.5, 0.5]], r, h=h, path=path, verbose=verbose)


def cylindrical_fibre(
    comm: MPI.Comm,
    volume_fraction: float,
    *,
    h: float = 0.15,
    path: str | os.PathLike | None = None,
    axis: int = 2,
    verbose: bool = False,
) -> CellMesh:
    r"""Unit cube crossed by a centred circular fibre along ``axis`` (0, 1 or 2), periodic.

    The fibre is the cylinder :math:`\{x : |x - x_c|_\perp < r\}` with :math:`x_c` the cube's
    centre, :math:`|\cdot|_\perp` the distance orthogonal to :math:`e_{\text{axis}}` and
    :math:`r = \sqrt{\phi/\pi}`, :math:`0 < \phi < \pi/4`.  Phases ``"matrix"`` and
    ``"inclusion"``.
    """
    phi = _fraction(volume_fraction, math.pi / 4, "a fibre in the unit cube")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    r = math.sqrt(phi / math.pi)
    lo, hi = np.zeros(3), np.ones(3)
    _check_h(h, hi - lo)

    def build() -> None:
        occ = gmsh.model.occ
        box = _add_box(lo, hi)
        start = np.full(3, 0.5)
        start[axis] = -0.1
        direction = np.zeros(3)
        direction[axis] = 1.2
        fibre = occ.addCylinder(*start, *direction, r)
        clipped, _ = occ.intersect([(3, fibre)], [(3, _add_box(lo, hi))])
        _, fmap = occ.fragment([(3, box)], clipped)
        _finish_two_phase(fmap, 3, lo, hi, path)

    return _distribute(comm, build, lo, hi, h, verbose, f"cylindrical fibre (phi={phi:g})")


def laminate(
    comm: MPI.Comm,
    dim: int,
    fractions: Sequence[float],
    *,
    phases: Sequence[int] | None = None,
    h: float = 0.05,
    size: Sequence[float] | None = None,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
) -> CellMesh:
    r"""Layered cell with layers normal to :math:`x_1`, periodic.

    Layer :math:`k` is :math:`\{\ell_1 t_{k} < x_1 < \ell_1 t_{k+1}\}`, :math:`t_k =
    \sum_{j<k} f_j`, and consists of material ``phases[k]`` (physical group ``"phase<p>"``, tag
    :math:`p + 1`).  Layer interfaces are conforming planes/lines.

    Parameters
    ----------
    comm:
        Communicator to distribute the mesh on.
    dim:
        2 (rectangle) or 3 (box).
    fractions:
        Thickness fractions :math:`f_k > 0` of the layers, summing to 1.
    phases:
        Material index :math:`p \ge 0` of each layer; default alternating ``0, 1, 0, ...``.
    h:
        Characteristic element size.
    size:
        Cell edge lengths; default the unit square/cube.
    path:
        If given, rank 0 also writes the mesh there.
    verbose:
        Let gmsh print.
    """
    if dim not in (2, 3):
        raise ValueError(f"laminate: dim must be 2 or 3, got {dim!r}")
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if f.size == 0 or not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise ValueError(f"laminate: fractions must be positive numbers, got {list(fractions)}")
    if abs(f.sum() - 1.0) > 1e-10:
        raise ValueError(f"laminate: fractions must sum to 1, they sum to {f.sum():.15g}")
    if phases is None:
        phases = [k % 2 for k in range(f.size)]
    phase_of = [int(p) for p in phases]
    if len(phase_of) != f.size or any(p < 0 for p in phase_of):
        raise ValueError(
            f"laminate: need one phase index >= 0 per layer ({f.size} layers), got {list(phases)}"
        )
    lo, hi = _box_corners(dim, size)
    _check_h(h, hi - lo)
    cuts = lo[0] + (hi[0] - lo[0]) * np.concatenate([[0.0], np.cumsum(f)])
    cuts[-1] = hi[0]

    def build() -> None:
        layers = []
        for k in range(f.size):
            a, b = lo.copy(), hi.copy()
            a[0], b[0] = cuts[k], cuts[k + 1]
            layers.append((dim, _add_box(a, b)))
        _, fmap = gmsh.model.occ.fragment(layers[:1], layers[1:])
        groups: dict[int, list[int]] = {}
        for k, children in enumerate(fmap):
            groups.setdefault(phase_of[k], []).extend(t for d, t in children if d == dim)
        _finish({f"phase{p}": (p + 1, groups[p]) for p in sorted(groups)}, dim, lo, hi, path)

    return _distribute(comm, build, lo, hi, h, verbose, f"{dim}D laminate {f.tolist()}")


def checkerboard(
    comm: MPI.Comm,
    n: int = 2,
    *,
    h: float = 0.05,
    size: Sequence[float] = (1.0, 1.0),
    offset: Sequence[float] = (0.0, 0.0),
    path: str | os.PathLike | None = None,
    verbose: bool = False,
    grading: tuple[float, float] | None = None,
) -> CellMesh:
    r"""2D :math:`n \times n` checkerboard, periodic for even :math:`n`.

    Square :math:`(i, j)`, :math:`0 \le i, j < n`, is
    :math:`[(i + o_1)\ell_1/n, (i + 1 + o_1)\ell_1/n] \times [(j + o_2)\ell_2/n,
    (j + 1 + o_2)\ell_2/n]` (modulo the cell) and belongs to ``"phase<(i+j) mod 2>"`` (tags 1
    and 2); interfaces follow the square edges.  The ``offset`` :math:`o \in [0, 1)^2` shifts the
    pattern by a fraction of a square: with :math:`o = (\tfrac12, \tfrac12)` every four-phase
    junction lies inside the cell, none on its boundary, so a mesh refined toward the junctions
    keeps coarse periodic faces.

    ``grading=(h_min, radius)`` grades the mesh toward the four-phase junctions (the grid points
    :math:`((i + o_1)\ell_1/n, (j + o_2)\ell_2/n)`, box corners and edge points included when
    they are junctions, so periodic images too), where the gradient of the solution is
    singular: see :func:`_grade`.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2 or n % 2:
        raise ValueError(f"checkerboard: n must be an even integer >= 2 (periodicity), got {n!r}")
    lo, hi = _box_corners(2, size)
    _check_h(h, hi - lo)
    _check_grading(grading, h)
    shift = np.asarray(offset, dtype=np.float64).reshape(-1)
    if shift.shape != (2,) or not np.all((shift >= 0.0) & (shift < 1.0)):
        raise ValueError(f"checkerboard: offset must be two fractions in [0, 1), got {offset!r}")
    step = (hi - lo) / n
    lines = [lo[a] + np.mod((np.arange(n) + shift[a]) * step[a], hi[a] - lo[a]) for a in (0, 1)]
    cuts = [np.unique(np.concatenate([lines[a], [lo[a], hi[a]]])) for a in (0, 1)]

    def square(a: int, x: float) -> int:
        return int(np.floor((x - lo[a]) / step[a] - shift[a])) % n

    def build() -> None:
        pieces, colour = [], []
        for (x0, x1), (y0, y1) in itertools.product(*map(itertools.pairwise, cuts)):
            pieces.append((2, _add_box(np.array([x0, y0]), np.array([x1, y1]))))
            colour.append((square(0, 0.5 * (x0 + x1)) + square(1, 0.5 * (y0 + y1))) % 2)
        _, fmap = gmsh.model.occ.fragment(pieces[:1], pieces[1:])
        groups: dict[int, list[int]] = {0: [], 1: []}
        for k, children in enumerate(fmap):
            groups[colour[k]].extend(t for d, t in children if d == 2)
        junctions = [
            t for _, t in gmsh.model.occ.getEntities(0) if _is_junction(_point_of(t), lines, lo, hi)
        ]
        _finish(
            {f"phase{p}": (p + 1, groups[p]) for p in (0, 1)},
            2,
            lo,
            hi,
            path,
            grade=_grader("PointsList", junctions, h, grading),
        )

    return _distribute(comm, build, lo, hi, h, verbose, f"{n}x{n} checkerboard")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _point_of(tag: int) -> np.ndarray:
    """The (x, y) of an OCC point: the centre of its bounding box, which OCC enlarges by its
    tolerance."""
    box = np.array(gmsh.model.occ.getBoundingBox(0, tag)).reshape(2, 3)
    return box.mean(axis=0)[:2]


def _is_junction(x: np.ndarray, lines: list[np.ndarray], lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether the point ``x`` is a crossing of the checkerboard's grid lines (a box corner or
    edge point counts when a line lies on the box face: the periodic images of a line at
    ``lo``)."""
    eps = 1e-6 * float((hi - lo).max())

    def on_line(a: int) -> bool:
        d = np.abs(x[a] - lines[a])
        period = np.abs(np.abs(x[a] - lines[a]) - (hi[a] - lo[a]))  # a line at lo, x at hi
        return bool(np.min(np.minimum(d, period)) <= eps)

    return on_line(0) and on_line(1)


def _fraction(value: float, upper: float, what: str) -> float:
    phi = float(value)
    if not 0.0 < phi < upper:
        raise ValueError(
            f"volume fraction of {what} must lie in (0, {upper:.6g}) so that it fits inside the "
            f"cell without touching the boundary, got {value!r}"
        )
    return phi


def _box_corners(dim: int, size: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    hi = np.ones(dim) if size is None else np.asarray(size, dtype=np.float64).reshape(-1)
    if hi.shape != (dim,) or not np.all(np.isfinite(hi)) or np.any(hi <= 0):
        raise ValueError(f"size must be {dim} positive edge lengths, got {size!r}")
    return np.zeros(dim), hi


def _check_h(h: float, lengths: np.ndarray) -> None:
    if not (isinstance(h, int | float | np.floating) and math.isfinite(h) and h > 0):
        raise ValueError(f"mesh size h must be a positive number, got {h!r}")
    if h > lengths.max():
        raise ValueError(f"mesh size h={h:g} is larger than the cell ({lengths.tolist()})")
    estimate = float(np.prod(lengths)) / h ** len(lengths) * (2.3 if len(lengths) == 2 else 6.0)
    if estimate > 2e6:
        _log.warning("h=%g gives about %.2g cells: this mesh is large", h, estimate)


def _mesh_options(h: float) -> dict[str, float]:
    return {
        "Mesh.MeshSizeMax": float(h),
        "Mesh.MeshSizeMin": 0.0,
        "Mesh.MeshSizeFactor": 1.0,
        "Mesh.MeshSizeFromCurvature": 0.0,
        "Mesh.ElementOrder": 1.0,
        "Mesh.RecombineAll": 0.0,
        "Mesh.SubdivisionAlgorithm": 0.0,
        "Mesh.SaveAll": 0.0,
        "Mesh.MshFileVersion": 4.1,
        "Mesh.Binary": 0.0,
    }


def _distribute(
    comm: MPI.Comm,
    build: Callable[[], None],
    lo: np.ndarray,
    hi: np.ndarray,
    h: float,
    verbose: bool,
    what: str,
) -> CellMesh:
    cell = model_to_cell_mesh(
        comm,
        build,
        gdim=lo.size,
        box=np.stack([lo, hi]),
        verbose=verbose,
        options=_mesh_options(h),
        source=what,
    )
    num_cells = cell.mesh.topology.index_map(cell.mesh.topology.dim).size_global
    _log.debug("%s: %d cells at h=%g", what, num_cells, h)
    return cell


def _add_box(lo: np.ndarray, hi: np.ndarray) -> int:
    """OCC rectangle (2D) or box (3D) with corners ``lo`` and ``hi``."""
    d = hi - lo
    if lo.size == 2:
        return gmsh.model.occ.addRectangle(lo[0], lo[1], 0.0, d[0], d[1])
    return gmsh.model.occ.addBox(lo[0], lo[1], lo[2], d[0], d[1], d[2])


def _inclusions(
    comm: MPI.Comm,
    dim: int,
    centers: Sequence[Sequence[float]] | np.ndarray,
    radii: float | Sequence[float],
    size: Sequence[float],
    h: float,
    path: str | os.PathLike | None,
    verbose: bool,
    name: str,
    grading: tuple[float, float] | None = None,
) -> CellMesh:
    lo, hi = _box_corners(dim, size)
    lengths = hi - lo
    _check_h(h, lengths)
    _check_grading(grading, h)
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim == 1 and c.size == dim:
        c = c.reshape(1, dim)
    if c.ndim != 2 or c.shape[1] != dim or c.shape[0] == 0 or not np.all(np.isfinite(c)):
        raise ValueError(f"{name}: centers must have shape (n, {dim}) with n >= 1, got {centers!r}")
    r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (c.shape[0],)).copy()
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"{name}: radii must be positive, got {radii!r}")
    images = _periodic_images(c, r, lo, hi, name)
    shape = "disk" if dim == 2 else "sphere"
    phi = sum(math.pi * rk**2 if dim == 2 else 4 / 3 * math.pi * rk**3 for rk in r)
    _log.debug(
        "%s: %d %ss, %d pieces after wrapping, exact volume fraction %.6g",
        name,
        c.shape[0],
        shape,
        len(images),
        phi / float(np.prod(lengths)),
    )
    margin = _TOUCH * float(lengths.max())

    def build() -> None:
        occ = gmsh.model.occ
        box = _add_box(lo, hi)
        pieces = []
        for _, x, rad in images:
            t = occ.addDisk(x[0], x[1], 0.0, rad, rad) if dim == 2 else occ.addSphere(*x, rad)
            if np.all(x - rad > lo + margin) and np.all(x + rad < hi - margin):
                pieces.append((dim, t))
            else:
                clipped, _ = occ.intersect([(dim, t)], [(dim, _add_box(lo, hi))])
                pieces.extend(clipped)
        _, fmap = occ.fragment([(dim, box)], pieces)
        _finish_two_phase(fmap, dim, lo, hi, path, h=h, grading=grading)

    return _distribute(comm, build, lo, hi, h, verbose, f"{name} ({c.shape[0]} {shape}s)")


def _periodic_images(
    centers: np.ndarray, radii: np.ndarray, lo: np.ndarray, hi: np.ndarray, name: str
) -> list[tuple[int, np.ndarray, float]]:
    r"""All translates ``(k, centre, radius)`` of the balls that meet the open box; checked.

    Centres are first wrapped into the box; the translates by :math:`s_i \ell_i`,
    :math:`s \in \{-1,0,1\}^d`, whose distance to the box is below the radius are kept.  A
    translate at distance equal to its radius (tangent to a face) or two kept translates closer
    than the sum of their radii (overlapping or touching) are errors.
    """
    lengths = hi - lo
    dim = lengths.size
    margin = _TOUCH * float(lengths.max())
    images: list[tuple[int, np.ndarray, float]] = []
    for k, (ck, rk) in enumerate(zip(centers, radii, strict=True)):
        base = lo + np.mod(ck - lo, lengths)
        for s in itertools.product((-1, 0, 1), repeat=dim):
            x = base + np.array(s) * lengths
            gap = np.maximum(lo - x, 0.0) + np.maximum(x - hi, 0.0)
            dist = float(np.linalg.norm(gap))
            if dist < rk - margin:
                images.append((k, x, float(rk)))
            elif dist <= rk + margin:
                raise ValueError(
                    f"{name}: inclusion {k} (centre {ck.tolist()}, radius {rk:g}) is tangent to "
                    "the cell boundary (or its periodic copy is); move it or change its radius "
                    "so that it either crosses the boundary or stays clear of it"
                )
    for (ka, xa, ra), (kb, xb, rb) in itertools.combinations(images, 2):
        if np.linalg.norm(xa - xb) < ra + rb + margin:
            what = (
                f"inclusion {ka} overlaps or touches its own periodic copy (radius {ra:g} too "
                f"large for the cell {lengths.tolist()})"
                if ka == kb
                else f"inclusions {ka} and {kb} overlap or touch (possibly across the periodic "
                "boundary)"
            )
            raise ValueError(f"{name}: {what}; inclusions must be disjoint")
    return images


def _finish_two_phase(
    fmap: list,
    dim: int,
    lo: np.ndarray,
    hi: np.ndarray,
    path: str | os.PathLike | None,
    *,
    h: float = 0.0,
    grading: tuple[float, float] | None = None,
) -> None:
    """Phases from ``fragment([box], pieces)``: children of the pieces are the inclusion.

    With ``grading`` (2D only) the mesh is graded toward the inclusion boundary curves that do
    not lie on the box boundary."""
    inclusion = sorted({t for children in fmap[1:] for d, t in children if d == dim})
    matrix = sorted({t for d, t in fmap[0] if d == dim} - set(inclusion))
    grade = None
    if grading is not None:
        gmsh.model.occ.synchronize()
        curves = gmsh.model.getBoundary([(dim, t) for t in inclusion], False, False, False)
        tags = sorted({abs(t) for _, t in curves if not _on_box_boundary(dim - 1, abs(t), lo, hi)})
        grade = _grader("CurvesList", tags, h, grading)
    groups = {"matrix": (MATRIX, matrix), "inclusion": (INCLUSION, inclusion)}
    _finish(groups, dim, lo, hi, path, grade=grade)


def _finish(
    groups: dict[str, tuple[int, list[int]]],
    dim: int,
    lo: np.ndarray,
    hi: np.ndarray,
    path: str | os.PathLike | None,
    *,
    grade: Callable[[], None] | None = None,
) -> None:
    """Synchronize, make periodic, add the phase groups, grade (``grade()`` sets a background
    size field), mesh and optionally write."""
    gmsh.model.occ.synchronize()
    _set_periodic(dim, lo, hi)
    if grade is not None:
        grade()
    for name, (tag, entities) in groups.items():
        if not entities:
            raise RuntimeError(f"phase {name!r} has no geometric entity after fragmenting")
        gmsh.model.addPhysicalGroup(dim, sorted(entities), tag=tag, name=name)
    gmsh.model.mesh.generate(dim)
    if path is not None:
        write_msh(path)


def _set_periodic(dim: int, lo: np.ndarray, hi: np.ndarray) -> None:
    r"""Declare each face entity on :math:`x_i = \ell_i` the translate of one on :math:`x_i = 0`.

    Entities of dimension ``dim - 1`` lying in a thin slab around each face are paired by their
    centre of mass (shifted by :math:`\ell_i e_i`) and their size.
    """
    lengths = hi - lo
    eps = 1e-6 * float(lengths.max())
    lo3, hi3 = np.zeros(3), np.zeros(3)
    lo3[:dim], hi3[:dim] = lo, hi

    def on_plane(i: int, value: float) -> list[int]:
        a, b = lo3 - eps, hi3 + eps
        a[i], b[i] = value - eps, value + eps
        return [t for _, t in gmsh.model.getEntitiesInBoundingBox(*a, *b, dim - 1)]

    def signature(tag: int) -> np.ndarray:
        com = gmsh.model.occ.getCenterOfMass(dim - 1, tag)
        return np.array([*com, gmsh.model.occ.getMass(dim - 1, tag)])

    for i in range(dim):
        masters = on_plane(i, lo3[i])
        slaves = on_plane(i, hi3[i])
        if not masters or len(masters) != len(slaves):
            raise RuntimeError(
                f"periodic faces in direction {i}: {len(masters)} entities on x_{i} = {lo[i]:g} "
                f"but {len(slaves)} on x_{i} = {hi[i]:g}; the geometry is not periodic"
            )
        shift = np.zeros(4)
        shift[i] = lengths[i]
        master_sig = np.array([signature(t) for t in masters])
        paired = []
        for t in slaves:
            err = np.abs(master_sig - (signature(t) - shift)).max(axis=1)
            j = int(np.argmin(err))
            if err[j] > 1e-5 * float(lengths.max()):
                raise RuntimeError(
                    f"periodic faces in direction {i}: entity {t} on x_{i} = {hi[i]:g} has no "
                    "translated copy on the opposite face; the geometry is not periodic"
                )
            paired.append(masters[j])
        if len(set(paired)) != len(paired):
            raise RuntimeError(f"periodic faces in direction {i}: ambiguous pairing of entities")
        affine = np.eye(4)
        affine[:3, 3] = shift[:3]
        gmsh.model.mesh.setPeriodic(dim - 1, slaves, paired, affine.reshape(-1).tolist())


def _check_grading(grading: tuple[float, float] | None, h: float) -> None:
    if grading is None:
        return
    try:
        h_min, radius = (float(v) for v in grading)
    except (TypeError, ValueError):
        raise ValueError(f"grading must be a pair (h_min, radius), got {grading!r}") from None
    if not (math.isfinite(h_min) and 0 < h_min <= h and math.isfinite(radius) and radius > 0):
        raise ValueError(f"grading needs 0 < h_min <= h={h:g} and radius > 0, got {grading!r}")


def _grader(
    kind: str, entities: list[int], h: float, grading: tuple[float, float] | None
) -> Callable[[], None] | None:
    """A ``grade()`` for :func:`_finish`, or None without ``grading``: see :func:`_grade`."""
    if grading is None:
        return None
    if not entities:
        raise RuntimeError("grading: no geometric entity to grade toward")
    return lambda: _grade(kind, entities, h, float(grading[0]), float(grading[1]))


def _grade(kind: str, entities: list[int], h: float, h_min: float, radius: float) -> None:
    r"""Background size field :math:`h(x) = h_{min} + (h - h_{min})\min(1, d(x)/\rho)`.

    :math:`d` is the distance to the entities (gmsh ``Distance`` field on ``kind`` =
    ``"PointsList"`` or ``"CurvesList"``, curves sampled every :math:`h_{min}/2`) and
    :math:`\rho` the ``radius`` (gmsh ``Threshold`` field, linear in between).  Periodic faces
    keep the copies declared by ``setPeriodic``.
    """
    field = gmsh.model.mesh.field
    dist = field.add("Distance")
    field.setNumbers(dist, kind, entities)
    if kind == "CurvesList":
        field.setNumber(dist, "Sampling", max(100, int(4.0 * math.pi / h_min)))
    thr = field.add("Threshold")
    field.setNumber(thr, "InField", dist)
    field.setNumber(thr, "SizeMin", h_min)
    field.setNumber(thr, "SizeMax", h)
    field.setNumber(thr, "DistMin", 0.0)
    field.setNumber(thr, "DistMax", radius)
    field.setAsBackgroundMesh(thr)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)


def _on_box_boundary(dim: int, tag: int, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether the entity lies in one face plane of the box (bounding box test)."""
    box = np.array(gmsh.model.getBoundingBox(dim, tag)).reshape(2, 3)[:, : lo.size]
    eps = 1e-6 * float((hi - lo).max())
    flat = np.abs(box[1] - box[0]) <= eps
    on_face = (np.abs(box[0] - lo) <= eps) | (np.abs(box[0] - hi) <= eps)
    return bool(np.any(flat & on_face))
