r"""Random two-phase microstructures: random sequential addition of inclusions, level-cut fields.

Two families, both periodic so that every realization can be solved with periodic boundary
conditions as well as with KUBC/SUBC:

* **Random sequential addition (RSA)** of non-overlapping disks (2D) or spheres (3D) in the box
  :math:`Y = \prod_i [0, L_i]` (:func:`random_sequential_addition`).  Inclusion :math:`k`, of
  radius :math:`r_k`, is placed at a uniformly random centre :math:`c_k` accepted only if, for
  every inclusion :math:`j` already placed,

  .. math:: |c_k - c_j|_Y \ge r_k + r_j + g ,

  where :math:`|x|_Y = |x - L \odot \mathrm{round}(x \oslash L)|` is the periodic (minimum image)
  distance and :math:`g` the minimum gap.  Inclusions crossing a face are wrapped around
  (:func:`random_inclusion_cell` meshes them with :func:`~multiscale.mesh.inclusions_2d` /
  :func:`~multiscale.mesh.inclusions_3d`, which clip every periodic translate to the box), so the
  mesh stays periodic.  To keep the clipped pieces meshable, the inclusion surface must also stay
  a distance :math:`g_f` (``face_gap``) away from being tangent to a face, an edge or a corner:
  with :math:`\delta_i = \min(c_i, L_i - c_i)` and every non-empty set of axes :math:`S`,
  :math:`\big|\,(\sum_{i \in S} \delta_i^2)^{1/2} - r_k\big| \ge g_f`.
  The number of inclusions is chosen so that :math:`\sum_k |B_{r_k}| / |Y|` is the closest to
  the target fraction :math:`\phi`; with ``exact_fraction`` all radii are then scaled by the
  common factor :math:`s = (\phi |Y| / \sum_k |B_{r_k}|)^{1/d}`, so the geometric fraction is
  exactly :math:`\phi`.  Polydisperse radii are uniform in
  :math:`[\bar r(1 - \delta), \bar r(1 + \delta)]` and placed largest first.  RSA of equal disks
  jams near :math:`\phi \approx 0.547` (spheres: :math:`0.38`), lower with a gap; beyond that
  placement fails with an error naming the fraction achieved.
* **Level-cut Gaussian random fields** on a pixel/voxel grid (:func:`gaussian_random_field`,
  :func:`thresholded_gaussian_field`): a stationary, periodic Gaussian field :math:`X` of zero mean,
  unit variance and covariance

  .. math:: \rho(r) = \exp\!\left(-\frac{|r|^2}{2\ell^2}\right)

  (periodized; :math:`\ell` the correlation length) is sampled by filtering white noise in Fourier
  space with :math:`\hat w(k) = \exp(-\ell^2 |k|^2 / 4)`, and the inclusion phase is
  :math:`\{X > t\}` with :math:`t = \Phi^{-1}(1 - \phi)` (or, with ``exact_fraction``, the
  empirical quantile of the sample).  :func:`voxel_cell` meshes the grid with one
  quadrilateral/hexahedron per pixel/voxel (optionally subdivided) on a structured, periodic mesh.

Everything is reproducible from a seed: the random numbers come from
:func:`numpy.random.default_rng` of the seed (an ``int`` or a :class:`numpy.random.SeedSequence`),
and the geometry is computed without communication, identically on every rank that calls with
the same seed; the gmsh model is built from rank 0's copy.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import dolfinx
import numpy as np
from mpi4py import MPI
from scipy.special import ndtri

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.generators import INCLUSION, MATRIX, inclusions_2d, inclusions_3d

__all__ = [
    "InclusionLayout",
    "PixelMicrostructure",
    "gaussian_random_field",
    "label_grid_cell",
    "random_inclusion_cell",
    "random_sequential_addition",
    "thresholded_gaussian_field",
    "voxel_cell",
]

_log = logging.getLogger(__name__)

Seed = int | np.random.SeedSequence | None

#: Candidate centres drawn at once per RSA attempt batch (fixed, so results do not depend on it).
_BATCH = 64


def _ball_volume(r: np.ndarray | float, dim: int) -> np.ndarray | float:
    return np.pi * np.square(r) if dim == 2 else 4.0 / 3.0 * np.pi * np.power(r, 3)


def _lengths(size: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    lengths = np.asarray(size, dtype=np.float64).reshape(-1)
    if lengths.size not in (2, 3) or not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
        raise ValueError(f"{name}: size must be 2 or 3 positive edge lengths, got {size!r}")
    return lengths


def _seed_int(seed: Seed) -> int | None:
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1, np.uint64)[0])
    return None if seed is None else int(seed)


# --------------------------------------------------------------------------------------------
# Random sequential addition
# --------------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class InclusionLayout:
    r"""Centres and radii of disjoint disks/spheres in the periodic box :math:`[0, L]`.

    Attributes
    ----------
    centers:
        Shape ``(n, d)``, each in :math:`[0, L_i)`.
    radii:
        Shape ``(n,)``.
    size:
        Box edge lengths :math:`L`, shape ``(d,)``.
    target_fraction:
        The volume fraction that was asked for.
    gap:
        Minimum surface-to-surface distance between inclusions (periodic).
    seed:
        The integer seed the layout was drawn from (``None`` if unseeded).
    """

    centers: np.ndarray
    radii: np.ndarray
    size: np.ndarray
    target_fraction: float
    gap: float
    seed: int | None = None

    def __post_init__(self) -> None:
        c = np.asarray(self.centers, dtype=np.float64)
        r = np.asarray(self.radii, dtype=np.float64).reshape(-1)
        size = _lengths(self.size, "InclusionLayout")
        if c.ndim != 2 or c.shape != (r.size, size.size):
            raise ValueError(
                f"InclusionLayout: centers must have shape (n, {size.size}) matching {r.size} "
                f"radii, got {c.shape}"
            )
        if np.any(r <= 0) or not np.all(np.isfinite(r)):
            raise ValueError("InclusionLayout: radii must be positive")
        object.__setattr__(self, "centers", c)
        object.__setattr__(self, "radii", r)
        object.__setattr__(self, "size", size)

    @property
    def dim(self) -> int:
        return int(self.size.size)

    @property
    def count(self) -> int:
        """Number of inclusions :math:`n`."""
        return int(self.radii.size)

    @property
    def volume_fraction(self) -> float:
        r"""Exact geometric fraction :math:`\sum_k |B_{r_k}| / |Y|` (wrapped pieces included)."""
        return float(np.sum(_ball_volume(self.radii, self.dim)) / np.prod(self.size))

    def min_gap(self) -> float:
        """Smallest periodic surface-to-surface distance between two inclusions (inf if n < 2)."""
        if self.count < 2:
            return math.inf
        d = self.centers[:, None, :] - self.centers[None, :, :]
        d -= self.size * np.round(d / self.size)
        dist = np.linalg.norm(d, axis=-1) - self.radii[:, None] - self.radii[None, :]
        iu = np.triu_indices(self.count, 1)
        return float(dist[iu].min())


def random_sequential_addition(
    size: Sequence[float],
    volume_fraction: float,
    radius: float,
    *,
    gap: float | None = None,
    face_gap: float | None = None,
    polydispersity: float = 0.0,
    exact_fraction: bool = True,
    max_attempts: int = 20_000,
    seed: Seed = None,
) -> InclusionLayout:
    r"""Non-overlapping random disks (2D) or spheres (3D) by random sequential addition.

    See the module documentation for the algorithm.  Not collective; the result depends on the
    arguments and ``seed`` only.

    Parameters
    ----------
    size:
        Box edge lengths :math:`L` (2 or 3 values; the dimension).
    volume_fraction:
        Target inclusion volume fraction :math:`\phi \in (0, 1)`.
    radius:
        Mean radius :math:`\bar r`.
    gap:
        Minimum surface-to-surface distance :math:`g \ge 0`; default :math:`0.1 \bar r`.
    face_gap:
        Minimum distance :math:`g_f \ge 0` from tangency to a face, edge or corner; default
        :math:`g/2`.
    polydispersity:
        :math:`\delta \in [0, 1)`: radii uniform in :math:`[\bar r(1-\delta), \bar r(1+\delta)]`.
    exact_fraction:
        Scale all radii by a common factor so that the geometric fraction is exactly
        :math:`\phi`.
    max_attempts:
        Random centres tried per inclusion before giving up.
    seed:
        Seed of :func:`numpy.random.default_rng`.

    Raises
    ------
    ValueError
        Bad arguments, an inclusion too large for the box (it would touch its own periodic
        copy), or a fraction RSA cannot reach (the message gives the fraction achieved).
    """
    name = "random_sequential_addition"
    lengths = _lengths(size, name)
    dim = lengths.size
    phi = float(volume_fraction)
    if not 0.0 < phi < 1.0:
        raise ValueError(f"{name}: volume_fraction must lie in (0, 1), got {volume_fraction!r}")
    rbar = float(radius)
    if not (math.isfinite(rbar) and rbar > 0):
        raise ValueError(f"{name}: radius must be positive, got {radius!r}")
    delta = float(polydispersity)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"{name}: polydispersity must lie in [0, 1), got {polydispersity!r}")
    g = 0.1 * rbar if gap is None else float(gap)
    gf = 0.5 * g if face_gap is None else float(face_gap)
    if not (math.isfinite(g) and g >= 0 and math.isfinite(gf) and gf >= 0):
        raise ValueError(f"{name}: gap and face_gap must be >= 0, got {gap!r}, {face_gap!r}")
    if int(max_attempts) < 1:
        raise ValueError(f"{name}: max_attempts must be >= 1, got {max_attempts!r}")
    rng = np.random.default_rng(seed)
    box_volume = float(np.prod(lengths))

    # Radii: draw until the total volume passes the target, keep the closer of n-1 and n.
    target = phi * box_volume
    radii: list[float] = []
    total = 0.0
    while True:
        r = rbar if delta == 0.0 else float(rng.uniform(rbar * (1 - delta), rbar * (1 + delta)))
        new = total + float(_ball_volume(r, dim))
        if new >= target:
            if not radii or abs(new - target) <= abs(total - target):
                radii.append(r)
                total = new
            break
        radii.append(r)
        total = new
        if len(radii) > 10_000_000:
            raise ValueError(f"{name}: more than 1e7 inclusions; the radius is too small")
    r_all = np.sort(np.array(radii))[::-1]
    if exact_fraction:
        r_all *= (target / total) ** (1.0 / dim)
    if 2.0 * r_all[0] + g >= lengths.min():
        raise ValueError(
            f"{name}: an inclusion of radius {r_all[0]:.4g} with gap {g:.4g} does not fit in the "
            f"box {lengths.tolist()} without touching its own periodic copy; enlarge the box"
        )

    subsets = [
        np.array(s) for k in range(1, dim + 1) for s in itertools.combinations(range(dim), k)
    ]
    centers = np.empty((r_all.size, dim))
    for k, rk in enumerate(r_all):
        placed = centers[:k]
        reach = r_all[:k] + rk + g
        attempts = 0
        while attempts < max_attempts:
            batch = min(_BATCH, max_attempts - attempts)
            cand = rng.random((batch, dim)) * lengths
            attempts += batch
            ok = np.ones(batch, dtype=bool)
            if gf > 0:
                dface = np.minimum(cand, lengths - cand)
                for s in subsets:
                    ok &= np.abs(np.linalg.norm(dface[:, s], axis=1) - rk) >= gf
            if k:
                d = cand[:, None, :] - placed[None, :, :]
                d -= lengths * np.round(d / lengths)
                ok &= np.all(np.einsum("bkd,bkd->bk", d, d) >= reach**2, axis=1)
            hits = np.flatnonzero(ok)
            if hits.size:
                centers[k] = cand[hits[0]]
                break
        else:
            achieved = float(np.sum(_ball_volume(r_all[:k], dim)) / box_volume)
            raise ValueError(
                f"{name}: could not place inclusion {k + 1} of {r_all.size} after {max_attempts} "
                f"attempts: achieved volume fraction {achieved:.4f} of the requested {phi:.4f}; "
                f"random sequential addition cannot reach it with gap {g:.3g} (equal "
                f"{'disks jam near 0.547' if dim == 2 else 'spheres jam near 0.38'} without a "
                "gap): lower the volume fraction or the gap"
            )
    layout = InclusionLayout(centers, r_all, lengths, phi, g, _seed_int(seed))
    _log.debug(
        "RSA: %d inclusions in %s, fraction %.6g (target %.6g), min gap %.3g",
        layout.count,
        lengths.tolist(),
        layout.volume_fraction,
        phi,
        layout.min_gap(),
    )
    return layout


def random_inclusion_cell(
    comm: MPI.Comm,
    layout: InclusionLayout,
    *,
    h: float,
    match_fraction: bool = False,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
) -> CellMesh:
    r"""Periodic gmsh cell of an :class:`InclusionLayout` (phases ``"matrix"``, ``"inclusion"``).

    Inclusions crossing the faces are wrapped around (see
    :func:`~multiscale.mesh.inclusions_2d`); the gmsh model is built on rank 0 of ``comm`` from
    rank 0's layout and distributed.  Collective.

    The mesh replaces every curved surface by an inscribed polygon/polyhedron, so its inclusion
    fraction :math:`\phi_h` falls short of the geometric :math:`\phi` by :math:`O(h^2/r^2)`.
    With ``match_fraction`` the cell is meshed a second time with all radii scaled by
    :math:`(\phi/\phi_h)^{1/d}`, which leaves an error of second order in the deficit.
    """
    build = inclusions_2d if layout.dim == 2 else inclusions_3d
    first = None if match_fraction else path
    cell = build(
        comm, layout.centers, layout.radii, size=layout.size, h=h, path=first, verbose=verbose
    )
    if match_fraction:
        achieved = cell.volume_fractions()["inclusion"]
        scale = (layout.volume_fraction / achieved) ** (1.0 / layout.dim)
        radii = layout.radii * scale
        cell = build(comm, layout.centers, radii, size=layout.size, h=h, path=path, verbose=verbose)
        _log.debug("fraction %.6g at h=%g: radii scaled by %.6g", achieved, h, scale)
    return cell


# --------------------------------------------------------------------------------------------
# Level-cut Gaussian random fields
# --------------------------------------------------------------------------------------------


def _grid_shape(shape: Sequence[int] | int, dim: int, name: str) -> tuple[int, ...]:
    s = (int(shape),) * dim if np.isscalar(shape) else tuple(int(n) for n in shape)
    if len(s) != dim or any(n < 2 for n in s):
        raise ValueError(f"{name}: shape must be {dim} integers >= 2, got {shape!r}")
    return s


def gaussian_random_field(
    shape: Sequence[int] | int,
    size: Sequence[float],
    correlation_length: float,
    *,
    seed: Seed = None,
) -> np.ndarray:
    r"""Periodic stationary Gaussian field on a grid: zero mean, unit variance, covariance
    :math:`\rho(r) = \exp(-|r|^2/2\ell^2)` (periodized).

    White noise :math:`\xi` on the grid is filtered in Fourier space,
    :math:`X = \mathcal F^{-1}[\hat w\,\mathcal F\xi] / \sigma` with
    :math:`\hat w(k) = \exp(-\ell^2|k|^2/4)` and :math:`\sigma^2 = N^{-1}\sum_k \hat w(k)^2`, so
    :math:`\mathrm{Var}\,X = 1` exactly and :math:`\mathrm{Cov}(X_0, X_r) =
    \sum_k \hat w^2 e^{ik\cdot r} / \sum_k \hat w^2`, the periodized and band-limited
    :math:`\rho`.  The value ``X[i, j, ...]`` belongs to the pixel centre
    :math:`((i + \frac12) L_1 / n_1, \dots)`.  Needs :math:`\ell` of at least about two pixels
    to resolve the covariance, and :math:`L \gg \ell` for the periodization to be negligible.
    """
    name = "gaussian_random_field"
    lengths = _lengths(size, name)
    dims = _grid_shape(shape, lengths.size, name)
    ell = float(correlation_length)
    if not (math.isfinite(ell) and ell > 0):
        raise ValueError(f"{name}: correlation_length must be positive, got {correlation_length!r}")
    spacing = lengths / np.array(dims)
    if ell < 1.0 * spacing.max():
        _log.warning("correlation length %g is below one pixel (%g)", ell, spacing.max())
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(dims)
    k2 = np.zeros(dims)
    for i, (n, d) in enumerate(zip(dims, spacing, strict=True)):
        k = 2.0 * np.pi * np.fft.fftfreq(n, d=d)
        k2 = k2 + (k**2).reshape([-1 if j == i else 1 for j in range(len(dims))])
    w = np.exp(-0.25 * ell**2 * k2)
    sigma = math.sqrt(float(np.sum(w**2)) / noise.size)
    return np.real(np.fft.ifftn(w * np.fft.fftn(noise))) / sigma


@dataclass(slots=True, frozen=True)
class PixelMicrostructure:
    r"""A two-phase pixel (2D) or voxel (3D) image of the periodic box :math:`[0, L]`.

    ``phase[i, j, ...]`` is True where pixel :math:`(i, j, \dots)` (centre
    :math:`((i + \frac12)L_1/n_1, \dots)`) belongs to the inclusion phase.
    """

    phase: np.ndarray
    size: np.ndarray
    target_fraction: float
    correlation_length: float = math.nan
    threshold: float = math.nan
    seed: int | None = None

    def __post_init__(self) -> None:
        phase = np.asarray(self.phase, dtype=bool)
        size = _lengths(self.size, "PixelMicrostructure")
        if phase.ndim != size.size:
            raise ValueError(
                f"PixelMicrostructure: a {phase.ndim}D image for a {size.size}D box {size}"
            )
        object.__setattr__(self, "phase", phase)
        object.__setattr__(self, "size", size)

    @property
    def dim(self) -> int:
        return int(self.size.size)

    @property
    def volume_fraction(self) -> float:
        """Fraction of inclusion pixels (the realized fraction of :func:`voxel_cell`)."""
        return float(self.phase.mean())


def thresholded_gaussian_field(
    shape: Sequence[int] | int,
    size: Sequence[float],
    correlation_length: float,
    volume_fraction: float,
    *,
    exact_fraction: bool = True,
    seed: Seed = None,
) -> PixelMicrostructure:
    r"""Level cut :math:`\{X > t\}` of :func:`gaussian_random_field`.

    The threshold is :math:`t = \Phi^{-1}(1-\phi)`, which gives the expected fraction
    :math:`\phi`; with ``exact_fraction`` it is instead the empirical quantile of the sample, so
    the realized pixel fraction is :math:`\mathrm{round}(\phi N)/N` (:math:`N` pixels).  Its
    two-point probability is :math:`S_2(r) = P(X_0 > t, X_r > t)`, the bivariate normal orthant
    probability with correlation :math:`\rho(r)`.
    """
    phi = float(volume_fraction)
    if not 0.0 < phi < 1.0:
        raise ValueError(f"volume_fraction must lie in (0, 1), got {volume_fraction!r}")
    x = gaussian_random_field(shape, size, correlation_length, seed=seed)
    if exact_fraction:
        n_in = round(phi * x.size)
        if n_in == 0 or n_in == x.size:
            raise ValueError(
                f"volume fraction {phi} on {x.size} pixels leaves one phase empty; refine the grid"
            )
        order = np.sort(x, axis=None)
        t = 0.5 * (order[x.size - n_in - 1] + order[x.size - n_in])
    else:
        t = float(ndtri(1.0 - phi))
    ell = float(correlation_length)
    return PixelMicrostructure(x > t, size, phi, ell, float(t), _seed_int(seed))


def voxel_cell(
    comm: MPI.Comm,
    image: PixelMicrostructure,
    *,
    subdivisions: int = 1,
    simplex: bool = False,
) -> CellMesh:
    r"""Structured periodic mesh of a pixel/voxel image: phases ``"matrix"`` and ``"inclusion"``.

    The box :math:`[0, L]` is split into :math:`s n_i` intervals along axis :math:`i`
    (:math:`s` = ``subdivisions``), one quadrilateral/hexahedron per sub-pixel (or, with
    ``simplex``, triangles/tetrahedra), each tagged with the phase of the pixel containing its
    midpoint.  The grid is uniform, so opposite faces carry translated nodes and the realized
    fraction equals the pixel fraction exactly.  The image used is rank 0's.  Collective.
    """
    phase = comm.bcast(image.phase if comm.rank == 0 else None, root=0)
    labels = np.where(phase, INCLUSION, MATRIX).astype(np.int32)
    phases = {"matrix": MATRIX, "inclusion": INCLUSION}
    return label_grid_cell(
        comm, labels, image.size, phases, subdivisions=subdivisions, simplex=simplex
    )


def label_grid_cell(
    comm: MPI.Comm,
    labels: np.ndarray,
    size: Sequence[float] | np.ndarray,
    phases: dict[str, int],
    *,
    subdivisions: int = 1,
    simplex: bool = False,
) -> CellMesh:
    r"""Structured periodic mesh of a grid of phase tags (any number of phases).

    ``labels[i, j(, k)]`` is the tag of the pixel/voxel
    :math:`\prod_a [i_a L_a / n_a, (i_a + 1) L_a / n_a]` of the box :math:`[0, L]`
    (:math:`L` = ``size``); the box is split into :math:`s n_a` intervals along axis :math:`a`
    (:math:`s` = ``subdivisions``), one quadrilateral/hexahedron (or, with ``simplex``,
    triangles/tetrahedra) per sub-pixel, tagged with the tag of the pixel containing its
    midpoint.  ``labels`` must be the same on every rank (it is not broadcast).  Collective.
    """
    if int(subdivisions) < 1:
        raise ValueError(f"subdivisions must be a positive integer, got {subdivisions!r}")
    labels = np.asarray(labels)
    lengths = _lengths(size, "label_grid_cell")
    if labels.ndim != lengths.size:
        raise ValueError(f"label_grid_cell: a {labels.ndim}D grid for a {lengths.size}D box")
    dims = np.array(labels.shape)
    n = [int(v) * int(subdivisions) for v in dims]
    dim = lengths.size
    corners = [np.zeros(dim), lengths]
    if dim == 2:
        ct = dolfinx.mesh.CellType.triangle if simplex else dolfinx.mesh.CellType.quadrilateral
        mesh = dolfinx.mesh.create_rectangle(comm, corners, n, ct)
    else:
        ct = dolfinx.mesh.CellType.tetrahedron if simplex else dolfinx.mesh.CellType.hexahedron
        mesh = dolfinx.mesh.create_box(comm, corners, n, ct)
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, :dim]
    idx = np.clip(np.floor(mid / lengths * dims).astype(np.int64), 0, dims - 1)
    values = labels[tuple(idx.T)].astype(np.int32)
    tags = dolfinx.mesh.meshtags(mesh, tdim, cells, values)
    box = np.stack([np.zeros(dim), lengths])
    return CellMesh(mesh, tags, dict(phases), box)
