r"""Bravais lattices with an optional basis, and their neighbour shells.

A lattice of dimension :math:`d` is the set of points

.. math::
    X_{n,\alpha} = a\,\Big(\sum_{i=1}^d n_i\,\hat a_i + s_\alpha\Big), \qquad n \in \mathbb Z^d,

with the primitive vectors :math:`\hat a_i` (rows of :attr:`Lattice.vectors`, for the lattice
constant :math:`a = 1`), the lattice constant :math:`a` and the basis positions :math:`s_\alpha`
(rows of :attr:`Lattice.basis`, :math:`s_0 = 0` for a Bravais lattice).  The primitive cell has
the volume :math:`V_c = a^d\,|\det \hat A|` (length in 1D, area in 2D) and every atom the
*atomic volume* :math:`\Omega_0 = V_c / n_{basis}`.

A *bond* :math:`b = (\alpha, \beta, R_b)` joins the atom :math:`\alpha` of a cell to the atom
:math:`\beta` of the cell :math:`n`: :math:`R_b = a(n\hat A + s_\beta - s_\alpha)`.
:meth:`Lattice.bonds` lists every bond of length at most a cut-off (or in the first ``shells``
distinct distances, the *neighbour shells*), both :math:`\pm R_b`, grouped by shell.

The 3D cubic lattices use the cubic lattice constant :math:`a` (the edge of the conventional
cube): fcc has the primitive vectors :math:`\tfrac a2(0,1,1), \tfrac a2(1,0,1), \tfrac a2(1,1,0)`
(:math:`\Omega_0 = a^3/4`, nearest neighbours at :math:`a/\sqrt2`), bcc
:math:`\tfrac a2(-1,1,1), \tfrac a2(1,-1,1), \tfrac a2(1,1,-1)` (:math:`\Omega_0 = a^3/2`, nearest
neighbours at :math:`a\sqrt3/2`).  The triangular lattice has a bond along :math:`x`:
:math:`\hat a_1 = (1, 0)`, :math:`\hat a_2 = (1/2, \sqrt3/2)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LATTICES", "Bonds", "Lattice", "block_slab"]

_SQ3 = math.sqrt(3.0)

#: Primitive vectors (rows, lattice constant 1) of the named Bravais lattices.
LATTICES: dict[str, tuple[tuple[float, ...], ...]] = {
    "chain": ((1.0,),),
    "square": ((1.0, 0.0), (0.0, 1.0)),
    "triangular": ((1.0, 0.0), (0.5, 0.5 * _SQ3)),
    "simple_cubic": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "fcc": ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)),
    "bcc": ((-0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.5, 0.5, -0.5)),
}

#: Relative tolerance with which two bond lengths belong to the same shell.
SHELL_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class Bonds:
    """The bonds of a lattice up to a cut-off, in the reference configuration.

    ``vectors[b]`` is :math:`R_b` (shape ``(nb, d)``), ``source[b]``/``target[b]`` the basis
    atoms :math:`\\alpha, \\beta` it joins, ``shell[b]`` its shell (0 for the nearest
    neighbours) and ``radii[s]`` the length of shell ``s``.  Every bond appears with its
    reverse :math:`(\\beta, \\alpha, -R_b)`.  ``cell_volume`` is :math:`V_c` and
    ``n_basis`` the number of basis atoms.
    """

    vectors: np.ndarray
    source: np.ndarray
    target: np.ndarray
    shell: np.ndarray
    radii: np.ndarray
    cell_volume: float
    n_basis: int = 1

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """:math:`|R_b|`."""
        return np.linalg.norm(self.vectors, axis=1)

    @property
    def atomic_volume(self) -> float:
        """:math:`\\Omega_0 = V_c / n_{basis}`."""
        return self.cell_volume / self.n_basis

    def half(self) -> np.ndarray:
        """Indices of one bond of every pair :math:`\\{(\\alpha,\\beta,R), (\\beta,\\alpha,-R)\\}`
        (``source < target``, or equal and the first non-zero component of :math:`R` positive):
        a sum over all bonds of a function even in the pair is twice the sum over these."""
        R = self.vectors
        first = R[np.arange(len(R)), np.argmax(np.abs(R) > 1e-12 * self.lengths[:, None], axis=1)]
        keep = (self.source < self.target) | ((self.source == self.target) & (first > 0))
        return np.flatnonzero(keep)

    def scaled(self, factor: float) -> Bonds:
        """The same bonds with all lengths multiplied by ``factor``."""
        f = float(factor)
        return Bonds(
            self.vectors * f,
            self.source,
            self.target,
            self.shell,
            self.radii * f,
            self.cell_volume * f**self.dim,
            self.n_basis,
        )


@dataclass(frozen=True, eq=False)
class Lattice:
    """A Bravais lattice with an optional basis (see the module docstring).

    ``vectors``: primitive vectors as rows, for the lattice constant 1; ``a``: the lattice
    constant; ``basis``: basis positions in units of ``a`` (Cartesian, rows, the first one
    the origin), ``None`` for a Bravais lattice.  Build a named one with :meth:`of`.
    """

    vectors: np.ndarray
    a: float = 1.0
    basis: np.ndarray | None = None
    name: str = "custom"
    _basis: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        A = np.atleast_2d(np.asarray(self.vectors, dtype=float))
        d = A.shape[0]
        if A.shape != (d, d) or d not in (1, 2, 3) or not np.all(np.isfinite(A)):
            raise ValueError(f"vectors: expected d x d finite rows (d = 1, 2, 3), got {A.shape}")
        if abs(np.linalg.det(A)) < 1e-12:
            raise ValueError("vectors: the primitive vectors are linearly dependent")
        a = float(self.a)
        if not math.isfinite(a) or a <= 0.0:
            raise ValueError(f"lattice constant a must be a finite positive number, got {self.a!r}")
        s = np.zeros((1, d)) if self.basis is None else np.atleast_2d(np.asarray(self.basis, float))
        if s.shape[1] != d or not np.all(np.isfinite(s)) or np.any(s[0] != 0.0):
            raise ValueError(f"basis: expected rows of {d} numbers, the first one the origin")
        object.__setattr__(self, "vectors", A)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "_basis", s)

    @classmethod
    def of(cls, name: str, a: float = 1.0, basis: np.ndarray | None = None) -> Lattice:
        """The named lattice (a key of :data:`LATTICES`) with lattice constant ``a``."""
        if name not in LATTICES:
            raise ValueError(f"lattice type must be one of {sorted(LATTICES)}, got {name!r}")
        return cls(np.array(LATTICES[name]), a, basis, name)

    def with_constant(self, a: float) -> Lattice:
        """The same lattice with the lattice constant ``a``."""
        return Lattice(self.vectors, a, self.basis, self.name)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def n_basis(self) -> int:
        return int(self._basis.shape[0])

    @property
    def positions(self) -> np.ndarray:
        """Basis positions :math:`a\\,s_\\alpha`, shape ``(n_basis, d)``."""
        return self.a * self._basis

    @property
    def primitive(self) -> np.ndarray:
        """Primitive vectors :math:`a\\hat a_i` as rows."""
        return self.a * self.vectors

    @property
    def cell_volume(self) -> float:
        """:math:`V_c = a^d |\\det\\hat A|`."""
        return float(abs(np.linalg.det(self.primitive)))

    @property
    def atomic_volume(self) -> float:
        """:math:`\\Omega_0 = V_c / n_{basis}`."""
        return self.cell_volume / self.n_basis

    @property
    def reciprocal(self) -> np.ndarray:
        """Reciprocal vectors :math:`b_j` as rows, :math:`a_i\\cdot b_j = 2\\pi\\delta_{ij}`."""
        return 2.0 * np.pi * np.linalg.inv(self.primitive).T

    def bonds(self, *, shells: int | None = None, cutoff: float | None = None) -> Bonds:
        """All bonds of length at most ``cutoff`` (absolute, with a relative tolerance
        :data:`SHELL_TOL`), or in the first ``shells`` neighbour shells (exactly one of the
        two)."""
        if (shells is None) == (cutoff is None):
            raise ValueError("give exactly one of shells (a number of shells) and cutoff")
        if shells is not None:
            if isinstance(shells, bool) or int(shells) != shells or shells < 1:
                raise ValueError(f"shells must be a positive integer, got {shells!r}")
            return self._first_shells(int(shells))
        rc = float(cutoff)
        if not math.isfinite(rc) or rc <= 0.0:
            raise ValueError(f"cutoff must be a finite positive number, got {cutoff!r}")
        R, src, tgt = self._candidates(rc)
        lengths = np.linalg.norm(R, axis=1)
        if not np.any(lengths <= rc * (1 + SHELL_TOL)):
            raise ValueError(
                f"cutoff {rc:g} is below the nearest-neighbour distance {lengths.min():.6g}"
            )
        return self._group(R, src, tgt, rc)

    def _first_shells(self, n: int) -> Bonds:
        rc = self.a * max(np.linalg.norm(self.vectors, axis=1))
        while True:
            R, _, _ = self._candidates(rc)
            radii = _distinct(np.linalg.norm(R, axis=1), self.a)
            if len(radii) >= n and radii[n - 1] <= rc:
                return self.bonds(cutoff=float(radii[n - 1]))
            rc *= 1.5

    def _candidates(self, rc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every bond :math:`a(n\\hat A + s_\\beta - s_\\alpha)` with ``|n_i|`` up to what a
        length ``rc`` can need, except the zero ones."""
        A, s = self.primitive, self.positions
        extent = rc + 2.0 * np.max(np.linalg.norm(s, axis=1))
        nmax = np.ceil(extent * np.linalg.norm(self.reciprocal, axis=1) / (2 * np.pi)).astype(int)
        grids = np.meshgrid(*[np.arange(-m, m + 1) for m in nmax], indexing="ij")
        n = np.stack([g.ravel() for g in grids], axis=1)
        T = n @ A
        nb = self.n_basis
        src, tgt = np.repeat(np.arange(nb), nb), np.tile(np.arange(nb), nb)
        R = (T[:, None, :] + (s[tgt] - s[src])[None]).reshape(-1, self.dim)
        src = np.tile(src, len(T))
        tgt = np.tile(tgt, len(T))
        keep = np.linalg.norm(R, axis=1) > 1e-12 * self.a
        return R[keep], src[keep], tgt[keep]

    def _group(self, R: np.ndarray, src: np.ndarray, tgt: np.ndarray, rc: float) -> Bonds:
        lengths = np.linalg.norm(R, axis=1)
        keep = lengths <= rc * (1 + SHELL_TOL)
        R, src, tgt, lengths = R[keep], src[keep], tgt[keep], lengths[keep]
        radii = _distinct(lengths, self.a)
        shell = np.argmin(np.abs(lengths[:, None] - radii[None, :]), axis=1)
        order = np.lexsort((src, shell))
        return Bonds(
            R[order], src[order], tgt[order], shell[order], radii, self.cell_volume, self.n_basis
        )


def _distinct(lengths: np.ndarray, scale: float) -> np.ndarray:
    """The distinct values of ``lengths`` (sorted), equal within ``SHELL_TOL * scale``."""
    v = np.sort(lengths)
    if v.size == 0:
        return v
    new = np.concatenate([[True], np.diff(v) > SHELL_TOL * scale])
    return v[new]


def block_slab(
    lattice: Lattice, lo: Sequence[float], hi: Sequence[float], part: int, parts: int
) -> np.ndarray:
    """The part ``part`` of ``parts`` of the sites of ``lattice`` (with its basis) in the closed
    box ``[lo, hi]``, without generating the others: the sites
    :math:`a(n\\hat A + s_\\alpha)` are ordered by their cell index :math:`n` (lexicographic,
    the first index slowest) and then by :math:`\\alpha`; the range of the first index
    :math:`n_1` that can reach the box is cut into ``parts`` contiguous ranges of (nearly)
    equal length and ``part`` gets the sites of its range, in that order.  The parts of
    ``0 .. parts-1`` concatenated are every site of the box once (a sum of the counts of the
    parts before one gives its first global number: :func:`~.distributed.LocalAtoms.block`).
    The sites of a part lie in the slab of the box between two lattice planes, so a part holds
    about ``1/parts`` of the sites when the box is long along :math:`\\hat a_1` and fewer
    (possibly none) near the corners of a skewed cell."""
    d = lattice.dim
    lo_, hi_ = np.asarray(lo, float), np.asarray(hi, float)
    if lo_.shape != (d,) or hi_.shape != lo_.shape or np.any(hi_ <= lo_):
        raise ValueError(f"block: need lo < hi with {d} components each")
    if not 0 <= int(part) < int(parts):
        raise ValueError(f"part must lie in [0, {parts}), got {part!r}")
    A, s = lattice.primitive, lattice.positions
    tol = 1e-9 * lattice.a
    corners = np.array(np.meshgrid(*zip(lo_, hi_, strict=True), indexing="ij")).reshape(d, -1).T
    pad = np.max(np.linalg.norm(s, axis=1)) + tol
    n = (corners[:, None, :] - s[None]).reshape(-1, d) @ np.linalg.inv(A)
    nlo = (np.floor(n.min(axis=0) - pad / lattice.a) - 1).astype(np.int64)
    nhi = (np.ceil(n.max(axis=0) + pad / lattice.a) + 1).astype(np.int64)
    edges = nlo[0] + (np.arange(int(parts) + 1) * (nhi[0] - nlo[0] + 1)) // int(parts)
    first = [np.arange(edges[int(part)], edges[int(part) + 1])]
    rest = [np.arange(a, b + 1) for a, b in zip(nlo[1:], nhi[1:], strict=True)]
    grids = np.meshgrid(*(first + rest), indexing="ij")
    T = np.stack([g.ravel() for g in grids], axis=1) @ A
    X = (T[:, None, :] + s[None]).reshape(-1, d)
    return X[np.all((X >= lo_ - tol) & (X <= hi_ + tol), axis=1)]
