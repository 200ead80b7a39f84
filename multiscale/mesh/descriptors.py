r"""Microstructure descriptors: realized volume fraction and two-point correlation function.

For a two-phase medium with inclusion indicator :math:`I(x) \in \{0, 1\}` in the periodic box
:math:`Y = [0, L]`,

* the volume fraction is :math:`\phi = \langle I \rangle = |Y|^{-1}\int_Y I\,dx`;
* the two-point correlation (probability) function is

  .. math:: S_2(r) = \langle I(x)\, I(x + r) \rangle_x ,

  with :math:`S_2(0) = \phi` and, for a medium without long-range order,
  :math:`S_2(r) \to \phi^2` as :math:`|r| \to \infty`.  On a periodic pixel image it is computed
  exactly (up to the pixelization) with the FFT, :math:`S_2 = N^{-1}\mathcal F^{-1}
  |\mathcal F I|^2`, and :func:`two_point_correlation` averages it over the lags of equal length
  (isotropic :math:`S_2(|r|)`).

:func:`rasterize` turns an :class:`~multiscale.mesh.random.InclusionLayout` into such an image
(pixel centres inside a periodic inclusion); :func:`realized_volume_fraction` is the fraction of
an actual cell mesh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.random import InclusionLayout, PixelMicrostructure

__all__ = [
    "TwoPointCorrelation",
    "rasterize",
    "realized_volume_fraction",
    "two_point_correlation",
    "two_point_correlation_map",
]


def realized_volume_fraction(cell: CellMesh, phase: str | int = "inclusion") -> float:
    r"""Volume fraction :math:`|Y_p|/|Y|` of one phase of a meshed cell (collective; reduced)."""
    tag = cell.tag(phase)
    name = next(n for n, t in cell.phases.items() if t == tag)
    return cell.volume_fractions()[name]


def rasterize(layout: InclusionLayout, shape: Sequence[int] | int) -> np.ndarray:
    r"""Boolean image of the inclusions: pixel :math:`(i, j, \dots)` is True iff its centre
    :math:`((i+\frac12)L_1/n_1, \dots)` lies in some inclusion (periodic distance)."""
    dim = layout.dim
    dims = (int(shape),) * dim if np.isscalar(shape) else tuple(int(n) for n in shape)
    if len(dims) != dim or any(n < 1 for n in dims):
        raise ValueError(f"shape must be {dim} positive integers, got {shape!r}")
    axes = [
        (np.arange(n) + 0.5) * (length / n) for n, length in zip(dims, layout.size, strict=True)
    ]
    image = np.zeros(dims, dtype=bool)
    spacing = layout.size / np.array(dims)
    for c, r in zip(layout.centers, layout.radii, strict=True):
        # Only the pixels in the (periodically wrapped) bounding box of the ball.
        index, offsets = [], []
        for i in range(dim):
            lo = int(np.floor((c[i] - r) / spacing[i] - 0.5))
            hi = int(np.ceil((c[i] + r) / spacing[i] - 0.5))
            k = np.arange(lo, hi + 1) if hi - lo + 1 < dims[i] else np.arange(dims[i])
            kk = np.mod(k, dims[i])
            d = axes[i][kk] - c[i]
            d -= layout.size[i] * np.round(d / layout.size[i])
            index.append(kk)
            offsets.append(d)
        grids = np.meshgrid(*offsets, indexing="ij")
        inside = sum(g**2 for g in grids) < r**2
        image[np.ix_(*index)] |= inside
    return image


def two_point_correlation_map(image: np.ndarray | PixelMicrostructure) -> np.ndarray:
    r""":math:`S_2` at every lag of the periodic grid: ``S[k] = mean_x I(x) I(x + k)``, shape of
    the image, lag 0 at index 0 (FFT, exact for the periodic image)."""
    a = np.asarray(image.phase if isinstance(image, PixelMicrostructure) else image, dtype=float)
    f = np.fft.fftn(a)
    return np.real(np.fft.ifftn(f * np.conj(f))) / a.size


@dataclass(slots=True, frozen=True)
class TwoPointCorrelation:
    r"""Isotropic two-point correlation :math:`S_2(r)` sampled at the bin centres ``r``.

    ``s2[0]`` is the lag-0 value :math:`\phi`; ``counts`` the number of grid lags per bin.
    """

    r: np.ndarray
    s2: np.ndarray
    counts: np.ndarray
    volume_fraction: float

    def __post_init__(self) -> None:
        if not (self.r.shape == self.s2.shape == self.counts.shape):
            raise ValueError("TwoPointCorrelation: r, s2 and counts must have one shape")


def two_point_correlation(
    image: np.ndarray | PixelMicrostructure,
    size: Sequence[float] | None = None,
    *,
    bin_width: float | None = None,
    r_max: float | None = None,
) -> TwoPointCorrelation:
    r"""Radially averaged :math:`S_2(|r|)` of a periodic two-phase image.

    Lags are taken with the minimum-image convention (:math:`|r_i| \le L_i/2`) and grouped in
    bins :math:`[(m - \frac12)w, (m + \frac12)w)` of width :math:`w` (default: the largest
    pixel edge), up to ``r_max`` (default :math:`\min_i L_i / 2`).  Bin ``0`` is the lag 0 only.

    Parameters
    ----------
    image:
        Boolean image or a :class:`PixelMicrostructure`.
    size:
        Box edge lengths (default: those of the microstructure, or one unit per pixel).
    """
    if isinstance(image, PixelMicrostructure):
        lengths = image.size if size is None else np.asarray(size, dtype=float)
        a = image.phase
    else:
        a = np.asarray(image)
        lengths = np.array(a.shape, float) if size is None else np.asarray(size, dtype=float)
    if lengths.shape != (a.ndim,) or np.any(lengths <= 0):
        raise ValueError(f"size must be {a.ndim} positive lengths, got {size!r}")
    spacing = lengths / np.array(a.shape)
    w = float(spacing.max()) if bin_width is None else float(bin_width)
    rmax = float(lengths.min() / 2) if r_max is None else float(r_max)
    if not (w > 0 and rmax > 0):
        raise ValueError(f"bin_width and r_max must be positive, got {bin_width!r}, {r_max!r}")
    s = two_point_correlation_map(a)
    lag = [np.fft.fftfreq(n, d=1.0 / n) * h for n, h in zip(a.shape, spacing, strict=True)]
    grids = np.meshgrid(*lag, indexing="ij")
    dist = np.sqrt(sum(g**2 for g in grids))
    m = np.rint(dist / w).astype(np.int64)
    keep = dist <= rmax + 0.5 * w
    nbins = int(m[keep].max()) + 1
    counts = np.bincount(m[keep], minlength=nbins)
    sums = np.bincount(m[keep], weights=s[keep], minlength=nbins)
    rsum = np.bincount(m[keep], weights=dist[keep], minlength=nbins)
    used = counts > 0
    return TwoPointCorrelation(
        r=rsum[used] / counts[used],
        s2=sums[used] / counts[used],
        counts=counts[used],
        volume_fraction=float(np.mean(a)),
    )
