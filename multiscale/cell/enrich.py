r"""Singular-function enrichment of 2D periodic conductivity cell problems.

At a point where three or more phases meet (or two along a kinked interface) the periodic
corrector behaves like :math:`r^\lambda \Phi(\theta)` with :math:`0 < \lambda < 1`
(Kellogg's problem); on the checkerboard of contrast :math:`c`,
:math:`\lambda = \frac{2}{\pi}\arccos\frac{c-1}{c+1}` (0.040 at :math:`c = 1000`), and mesh
refinement alone gains :math:`2^{2\lambda}` per halving.  The *singular function method*
(Fix, Gulati & Wakoff 1973; Strang & Fix, ch. 8) adds the singular modes to the Lagrange space,

.. math::
    V_h^+ = V_h \oplus \operatorname{span}\{s_m\}, \qquad
    s_m = \chi(r)\, r^{\lambda_m}\Phi_m(\theta),

with :math:`\chi = 1` for :math:`r < R_1`, :math:`\chi = 0` for :math:`r > R_2` (a
:math:`C^{M}` polynomial blend, :math:`\chi' = -t^M(1-t)^M/(B(M+1, M+1)(R_2 - R_1))`,
:math:`t = (r - R_1)/(R_2 - R_1)`, :math:`M = 8`).  The support lies inside the cell (interior
junctions only: a junction on the cell boundary is not enriched), so :math:`s_m` is periodic
and in :math:`H^1`: :math:`V_h^+` is still a conforming subspace, and the primal (dual)
energy stays an upper (lower) bound.  Only anisotropic phases are never enriched.

**Modes.**  On the sector :math:`i` (angle :math:`t \in [0, \omega_i]` from its first edge,
conductivity :math:`k_i`), :math:`\Phi = a_i\cos\lambda t + b_i\sin\lambda t`; the state
:math:`y = (\Phi, k\Phi'/\lambda)` is carried across the sector by

.. math::
    T_i(\lambda) = \begin{pmatrix} \cos\lambda\omega_i & \sin(\lambda\omega_i)/k_i \\
    -k_i\sin\lambda\omega_i & \cos\lambda\omega_i \end{pmatrix}, \qquad \det T_i = 1,

continuity of :math:`\Phi` and of the flux :math:`k\Phi'` across the sector edges is built in,
and periodicity in :math:`\theta` asks :math:`(T(\lambda) - I) y_0 = 0` for
:math:`T = T_n\cdots T_1`: the exponents are the roots of
:math:`\det(T - I) = 2 - \operatorname{tr} T` in :math:`(0, \lambda_{max})`, each with the
multiplicity :math:`\dim\ker(T - I)`.  A simple root is a sign change of
:math:`\operatorname{tr}T - 2`; a double one (:math:`T = I`, the checkerboard) is a tangency
of the trace but a sign change of the entries of :math:`T - I`; both are bracketed on a grid
and refined by Brent's method.

**Integration without singular quadrature.**  Each :math:`s_m` solves the local problem:
:math:`\operatorname{div}(k\nabla s_m) = 0` in every sector for :math:`r < R_1` and the flux
:math:`k r^{-1}\partial_\theta s_m` is continuous across the sector edges for every
:math:`r` (:math:`\chi` is radial).  Hence, as a distribution,

.. math::
    \operatorname{div}(k\nabla s_m) = F_m := k_i\big(\chi'' r^{\lambda} +
    (2\lambda + 1)\chi' r^{\lambda - 1}\big)\Phi_m(\theta)
    \quad (R_1 < r < R_2),

a smooth function supported in the annulus, and Green's formula (no boundary term: the support
is inside the cell; none at :math:`r = 0`, where :math:`r\,\partial_r s = O(r^\lambda)`) gives,
for every :math:`H^1` function :math:`w`,

.. math::
    a(s_m, w) = \int_Y k\nabla s_m\cdot\nabla w = -\int_Y F_m\, w .

So :math:`B_{im} = a(\phi_i, s_m)`, the loads :math:`a(G\cdot y, s_m)` and the mean flux
:math:`\langle k\nabla s_m\rangle_i = -|Y|^{-1}\int_Y y_i F_m` are integrals of smooth
functions; they are assembled on the cells meeting the annulus: cells wider than an eighth
of the annulus with a composite rule (the reference triangle cut into :math:`4^3` triangles,
Gauss of degree 10 on each: the cutoff circles cut cells, where :math:`F_m` is only
:math:`C^{M-2}`), smaller ones with Gauss of degree 10.  Checked: :math:`\int F_m = 0` to
1e-9 and :math:`-\int s_m F_m = S_{mm}` to 1e-8 on the coarse h = 1/4 checkerboard.  Only

.. math::
    S_{mn} = a(s_m, s_n) = \sum_i k_i\Big[\int_0^{R_2} g_m' g_n'\, r\,dr
    \int_0^{\omega_i}\Phi_m\Phi_n\,dt + \int_0^{R_2} \frac{g_m g_n}{r}\,dr
    \int_0^{\omega_i}\Phi_m'\Phi_n'\,dt\Big], \qquad g = \chi r^\lambda,

has the singular integrand: in closed form on :math:`[0, R_1]`
(:math:`\lambda_m\lambda_n R_1^\sigma/\sigma` and :math:`R_1^\sigma/\sigma`,
:math:`\sigma = \lambda_m + \lambda_n`), by adaptive quadrature on :math:`[R_1, R_2]`, and by
Gauss–Legendre in angle.

**Galerkin by a Schur complement.**  With the FE operator :math:`A` (already factorized for the
unit loads), :math:`Z = A^{-1}B` (one solve per singular function) and
:math:`H = S - B^TZ`, the enriched solution of the load :math:`e_j` is

.. math::
    c_j = H^{-1}\big(g_j - B^T u^0_j\big), \qquad u_j = u^0_j - Z c_j,

:math:`u^0_j = A^{-1}f_j` the plain FE corrector.  The tensor is the energy of the enriched
fields, :math:`A_{ij} = a(y_i + u_i + c_i\cdot s,\ y_j + u_j + c_j\cdot s)/|Y|`, expanded
into the FE energy, the cross terms :math:`-\int F_m (y_j + u_j)` and :math:`c_i^TSc_j`.

**Junctions.**  A vertex of the mesh is a junction when the cells around it (gathered from all
ranks) cover the full angle :math:`2\pi` (an interior vertex) and form three or more phase
sectors, or two sectors that are not half-planes.  The sectors must be exact up to
:math:`R_2`: every cell with a vertex outside the closed sector of its phase limits
:math:`R_2` to 0.9 times its distance; :math:`R_2` also stays below 0.9 times the distance to
the cell boundary and 0.45 times the distance to the nearest other junction (disjoint
supports), and :math:`R_1 = R_2/10`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import basix
import dolfinx
import numpy as np
import ufl
from mpi4py import MPI
from scipy import integrate, optimize, special

from multiscale.mesh.cell import CellMesh

__all__ = [
    "Junction",
    "Sector",
    "SingularMode",
    "cutoff",
    "energy_matrix",
    "find_junctions",
    "singular_modes",
    "transfer_matrix",
]

#: Smoothness order of the cutoff blend (:math:`\chi \in C^M`).
CUTOFF_ORDER = 8
#: Refinement level of the composite rule on the cells meeting an annulus (4**L triangles).
SUBDIVISION_LEVEL = 3
#: Gauss degree on each sub-triangle of the composite rule.
SUB_DEGREE = 10
_ANGLE_TOL = 1.0e-9
#: :math:`R_1 / R_2`: a wide blend, since the FE part has to cancel :math:`(1 - \chi) s_m`,
#: nearly constant in the sectors of high conductivity (measured on the checkerboard of
#: contrast 1000 at h = 1/16: upper bound +300 % of sqrt(c) with 0.1, +500 % with 0.5).
INNER_RATIO = 0.1


@dataclass(slots=True, frozen=True)
class Sector:
    """A phase sector of a junction: first edge at the angle ``start``, opening ``width``,
    phase ``tag`` of isotropic conductivity ``k``."""

    start: float
    width: float
    tag: int
    k: float


@dataclass(slots=True, frozen=True)
class SingularMode:
    r"""One singular function :math:`r^\lambda\Phi(\theta)`: on sector ``i``,
    :math:`\Phi = a_i\cos\lambda t + b_i\sin\lambda t` (:math:`t` from the sector's first
    edge), normalized to :math:`\max|\Phi| = 1`."""

    exponent: float
    a: np.ndarray
    b: np.ndarray


@dataclass(slots=True, frozen=True)
class Junction:
    """An interior phase junction, its sectors, cutoff radii and singular modes."""

    point: np.ndarray
    sectors: tuple[Sector, ...]
    r_inner: float
    r_outer: float
    modes: tuple[SingularMode, ...] = ()

    @property
    def exponents(self) -> list[float]:
        return [m.exponent for m in self.modes]

    def with_conductivities(self, k: Mapping[int, float], max_exponent: float = 1.0) -> Junction:
        """The same geometry with the phase conductivities ``k`` (tag -> k) and their modes."""
        sectors = tuple(Sector(s.start, s.width, s.tag, float(k[s.tag])) for s in self.sectors)
        modes = singular_modes(
            [s.width for s in sectors], [s.k for s in sectors], max_exponent=max_exponent
        )
        return Junction(self.point, sectors, self.r_inner, self.r_outer, tuple(modes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "point": [float(v) for v in self.point],
            "exponents": self.exponents,
            "sectors": len(self.sectors),
            "radii": [self.r_inner, self.r_outer],
        }


# -- Kellogg's problem ------------------------------------------------------------------------
def transfer_matrix(lam: float, widths: Sequence[float], ks: Sequence[float]) -> np.ndarray:
    r""":math:`T(\lambda) = T_n\cdots T_1` of the module docstring."""
    T = np.eye(2)
    for w, k in zip(widths, ks, strict=True):
        c, s = math.cos(lam * w), math.sin(lam * w)
        T = np.array([[c, s / k], [-k * s, c]]) @ T
    return T


def singular_modes(
    widths: Sequence[float],
    ks: Sequence[float],
    *,
    max_exponent: float = 1.0,
    samples: int = 4000,
) -> list[SingularMode]:
    r"""The modes with exponents in :math:`(0, \lambda_{max})` (each repeated by its
    multiplicity :math:`\dim\ker(T - I)`), sorted by exponent."""
    if abs(sum(widths) - 2 * math.pi) > 1e-8:
        raise ValueError(f"sector widths sum to {sum(widths)}, not 2 pi")
    ks = [float(k) for k in ks]
    grid = np.linspace(0.0, max_exponent, samples + 1)[1:]
    Ts = np.broadcast_to(np.eye(2), (len(grid), 2, 2))
    for w, k in zip(widths, ks, strict=True):
        c, s = np.cos(grid * w), np.sin(grid * w)
        Ti = np.stack([np.stack([c, s / k], axis=-1), np.stack([-k * s, c], axis=-1)], axis=-2)
        Ts = Ti @ Ts
    scale = 1.0 + np.abs(Ts).max(axis=(1, 2))
    functions = {
        "trace": lambda lam: np.trace(transfer_matrix(lam, widths, ks)) - 2.0,
        "t12": lambda lam: transfer_matrix(lam, widths, ks)[0, 1],
        "t21": lambda lam: transfer_matrix(lam, widths, ks)[1, 0],
    }
    values = {
        "trace": Ts[:, 0, 0] + Ts[:, 1, 1] - 2.0,
        "t12": Ts[:, 0, 1],
        "t21": Ts[:, 1, 0],
    }
    roots: list[float] = []
    for name, f in functions.items():
        v = values[name]
        for i in np.nonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)[0]:
            lam = optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-15, rtol=4 * np.finfo(float).eps)
            T = transfer_matrix(lam, widths, ks)
            if np.abs(T - np.eye(2)).max() > 1e-6 * scale[i] and name != "trace":
                continue  # an entry vanishes but T != I: no root
            if all(abs(lam - r) > 1e-9 * max(1.0, lam) for r in roots):
                roots.append(float(lam))
    modes: list[SingularMode] = []
    for lam in sorted(roots):
        if lam >= max_exponent - 1e-9:
            continue
        T = transfer_matrix(lam, widths, ks)
        _, sv, vt = np.linalg.svd(T - np.eye(2))
        null = vt[sv <= 1e-7 * (1.0 + np.abs(T).max())]
        if len(null) == 0:
            null = vt[-1:]
        for y0 in null:
            modes.append(_mode(lam, y0, widths, ks))
    return modes


def _mode(lam: float, y0: np.ndarray, widths: Sequence[float], ks: Sequence[float]) -> SingularMode:
    a, b, y = [], [], np.array(y0, dtype=float)
    for w, k in zip(widths, ks, strict=True):
        a.append(y[0])
        b.append(y[1] / k)
        c, s = math.cos(lam * w), math.sin(lam * w)
        y = np.array([[c, s / k], [-k * s, c]]) @ y
    a, b = np.array(a), np.array(b)
    t = [np.linspace(0, w, 65) for w in widths]
    peak = max(
        np.abs(ai * np.cos(lam * ti) + bi * np.sin(lam * ti)).max()
        for ai, bi, ti in zip(a, b, t, strict=True)
    )
    return SingularMode(float(lam), a / peak, b / peak)


# -- the cutoff and the singular functions (numpy) -------------------------------------------
def _blend_polynomials(order: int = CUTOFF_ORDER) -> tuple[np.polynomial.Polynomial, ...]:
    r""":math:`\psi(t)` with :math:`\psi' = t^M(1-t)^M/B(M+1, M+1)`, :math:`\psi(0) = 0`,
    :math:`\psi(1) = 1`, and its first two derivatives."""
    P = np.polynomial.Polynomial
    d1 = P([0.0, 1.0]) ** order * P([1.0, -1.0]) ** order / special.beta(order + 1, order + 1)
    psi = d1.integ()
    return psi, d1, d1.deriv()


_PSI = _blend_polynomials()


def cutoff(r: np.ndarray, r1: float, r2: float, derivative: int = 0) -> np.ndarray:
    r""":math:`\chi(r)` (``derivative`` 0, 1, 2) of the module docstring."""
    r = np.asarray(r, dtype=float)
    t = np.clip((r - r1) / (r2 - r1), 0.0, 1.0)
    inside = (r > r1) & (r < r2)
    if derivative == 0:
        return np.where(r <= r1, 1.0, np.where(r >= r2, 0.0, 1.0 - _PSI[0](t)))
    return np.where(inside, -_PSI[derivative](t) / (r2 - r1) ** derivative, 0.0)


def _phi(mode: SingularMode, junction: Junction, theta: np.ndarray, derivative: int = 0):
    """:math:`\\Phi` (or :math:`\\Phi'`) and the sector index at the absolute angles ``theta``."""
    lam = mode.exponent
    out = np.zeros_like(theta, dtype=float)
    index = np.full(theta.shape, -1)
    for i, s in enumerate(junction.sectors):
        t = np.mod(theta - s.start, 2 * np.pi)
        inside = (t <= s.width) & (index < 0)
        a, b = mode.a[i], mode.b[i]
        if derivative == 0:
            v = a * np.cos(lam * t) + b * np.sin(lam * t)
        else:
            v = lam * (-a * np.sin(lam * t) + b * np.cos(lam * t))
        out = np.where(inside, v, out)
        index = np.where(inside, i, index)
    return out, index


def energy_matrix(junction: Junction, conductivities: bool = True) -> np.ndarray:
    r""":math:`S_{mn} = a(s_m, s_n)` of the module docstring (semi-analytic)."""
    r1, r2 = junction.r_inner, junction.r_outer
    modes = junction.modes
    n = len(modes)
    S = np.zeros((n, n))
    xg, wg = np.polynomial.legendre.leggauss(64)

    def g(r, lam, d=0):
        if d == 0:
            return cutoff(r, r1, r2) * r**lam
        return cutoff(r, r1, r2, 1) * r**lam + lam * cutoff(r, r1, r2) * r ** (lam - 1)

    def annulus(f) -> float:  # int_{r1}^{r2} f dr, where the integrand is smooth
        return integrate.quad(f, r1, r2, epsabs=0, epsrel=1e-13, limit=200)[0]

    for m in range(n):
        for p in range(m, n):
            lm, ln = modes[m].exponent, modes[p].exponent
            sig = lm + ln
            I1 = lm * ln * r1**sig / sig + annulus(
                lambda r, a=lm, b=ln: g(r, a, 1) * g(r, b, 1) * r
            )
            I2 = r1**sig / sig + annulus(lambda r, a=lm, b=ln: g(r, a) * g(r, b) / r)
            total = 0.0
            for i, s in enumerate(junction.sectors):
                t = 0.5 * s.width * (xg + 1.0)
                w = 0.5 * s.width * wg
                A, B = modes[m], modes[p]
                Pm = A.a[i] * np.cos(lm * t) + A.b[i] * np.sin(lm * t)
                Pn = B.a[i] * np.cos(ln * t) + B.b[i] * np.sin(ln * t)
                dPm = lm * (-A.a[i] * np.sin(lm * t) + A.b[i] * np.cos(lm * t))
                dPn = ln * (-B.a[i] * np.sin(ln * t) + B.b[i] * np.cos(ln * t))
                k = s.k if conductivities else 1.0
                total += k * (I1 * w @ (Pm * Pn) + I2 * w @ (dPm * dPn))
            S[m, p] = S[p, m] = total
    return S


def evaluate(
    mode: SingularMode, junction: Junction, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Value :math:`s`, gradient :math:`\nabla s` (shape ``(2, n)``) and source
    :math:`F = k\Delta s` of a singular function at ``points`` (shape ``(2, n)``)."""
    d = np.asarray(points, dtype=float) - junction.point[:, None]
    r = np.hypot(d[0], d[1])
    theta = np.arctan2(d[1], d[0])
    lam, r1, r2 = mode.exponent, junction.r_inner, junction.r_outer
    phi, idx = _phi(mode, junction, theta)
    dphi, _ = _phi(mode, junction, theta, 1)
    k = np.array([s.k for s in junction.sectors])[idx]
    chi, chi1, chi2 = (cutoff(r, r1, r2, j) for j in range(3))
    g = chi * r**lam
    dg = chi1 * r**lam + lam * chi * r ** (lam - 1)
    er, et = d / r, np.array([-d[1], d[0]]) / r
    grad = dg * phi * er + g / r * dphi * et
    source = k * (chi2 * r**lam + (2 * lam + 1) * chi1 * r ** (lam - 1)) * phi
    return g * phi, grad, source


# -- junction detection -------------------------------------------------------------------------
def _cell_data(cell: CellMesh) -> tuple[np.ndarray, np.ndarray, int]:
    """Vertex coordinates ``(ncells, 3, 2)`` and phase tags of the local (owned and ghost)
    cells, and the number of owned cells."""
    mesh = cell.mesh
    imap = mesh.topology.index_map(2)
    nc = imap.size_local + imap.num_ghosts
    nodes = mesh.geometry.dofmap[:nc, :3]
    P = mesh.geometry.x[nodes][:, :, :2]
    tags = np.full(nc, -1, dtype=np.int64)
    tags[cell.cell_tags.indices] = cell.cell_tags.values
    return P, tags, imap.size_local


def _wedges(P: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """Rows ``[x, y, start, width, tag]``: the angle of each cell at each of its vertices."""
    rows = []
    for k in range(3):
        p = P[:, k]
        e1, e2 = P[:, (k + 1) % 3] - p, P[:, (k + 2) % 3] - p
        a1, a2 = np.arctan2(e1[:, 1], e1[:, 0]), np.arctan2(e2[:, 1], e2[:, 0])
        d = np.mod(a2 - a1, 2 * np.pi)
        ccw = d < np.pi
        start = np.mod(np.where(ccw, a1, a2), 2 * np.pi)
        width = np.where(ccw, d, 2 * np.pi - d)
        rows.append(np.column_stack([p, start, width, tags.astype(float)]))
    return np.vstack(rows)


def _candidate_wedges(wedges: np.ndarray) -> np.ndarray:
    """The wedges at vertices that meet two phases locally or that this rank does not see
    all around (partition or cell boundary)."""
    _, vertex, counts = np.unique(wedges[:, :2], axis=0, return_inverse=True, return_counts=True)
    vertex = vertex.ravel()
    total = np.bincount(vertex, weights=wedges[:, 3])
    tag_lo = np.full(len(counts), np.inf)
    tag_hi = np.full(len(counts), -np.inf)
    np.minimum.at(tag_lo, vertex, wedges[:, 4])
    np.maximum.at(tag_hi, vertex, wedges[:, 4])
    keep = (tag_lo < tag_hi) | (total < 2 * np.pi - 1e-8)
    return wedges[keep[vertex]]


def _sectors(wedges: np.ndarray) -> list[tuple[float, float, int]]:
    """Merge the wedges around one vertex (sorted by start) into phase sectors."""
    order = np.argsort(wedges[:, 2])
    merged: list[list[float]] = []
    for _x, _y, start, width, tag in wedges[order]:
        if merged and merged[-1][2] == tag:
            merged[-1][1] += width
        else:
            merged.append([start, width, tag])
    if len(merged) > 1 and merged[0][2] == merged[-1][2]:
        last = merged.pop()
        merged[0] = [last[0], last[1] + merged[0][1], merged[0][2]]
    return [(float(np.mod(s, 2 * np.pi)), float(w), int(t)) for s, w, t in merged]


def _point_triangle_distance(p: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Distance from ``p`` to each triangle of ``P`` (``(n, 3, 2)``), 0 inside."""
    dist = np.full(len(P), np.inf)
    sides = []
    for k in range(3):
        a, b = P[:, k], P[:, (k + 1) % 3]
        e = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, e) / np.einsum("ij,ij->i", e, e), 0.0, 1.0)
        dist = np.minimum(dist, np.linalg.norm(p - (a + t[:, None] * e), axis=1))
        sides.append(e[:, 0] * (p[1] - a[:, 1]) - e[:, 1] * (p[0] - a[:, 0]))
    sides = np.array(sides)
    inside = np.all(sides >= 0, axis=0) | np.all(sides <= 0, axis=0)
    return np.where(inside, 0.0, dist)


def _exact_radius(p: np.ndarray, sectors, P: np.ndarray, tags: np.ndarray) -> float:
    """Distance to the nearest cell with a vertex outside the closed sectors of its phase."""
    d = P - p
    r = np.hypot(d[..., 0], d[..., 1])
    theta = np.arctan2(d[..., 1], d[..., 0])
    ok = r < 1e-12 * (1.0 + np.abs(p).max())
    for start, width, tag in sectors:
        t = np.mod(theta - start + _ANGLE_TOL, 2 * np.pi)
        ok |= (t <= width + 2 * _ANGLE_TOL) & (tags[:, None] == tag)
    bad = ~np.all(ok, axis=1)
    if not np.any(bad):
        return np.inf
    return float(_point_triangle_distance(p, P[bad]).min())


def find_junctions(
    cell: CellMesh,
    conductivities: Mapping[int, float],
    *,
    max_exponent: float = 1.0,
) -> list[Junction]:
    r"""The interior junctions of ``cell`` with singular exponents below ``max_exponent`` for
    the isotropic phase conductivities ``conductivities`` (tag -> k), with their cutoff radii
    and modes (see the module docstring).  Collective; the same list on every rank."""
    if cell.dim != 2:
        raise ValueError("singular enrichment is implemented for 2D cells only")
    comm = cell.comm
    P, tags, nowned = _cell_data(cell)
    local = _candidate_wedges(_wedges(P, tags))
    wedges = np.vstack(comm.allgather(local))
    wedges = np.unique(wedges, axis=0)  # a ghost cell is seen by several ranks
    points, vertex = np.unique(wedges[:, :2], axis=0, return_inverse=True)
    vertex = vertex.ravel()
    found = []
    for v, p in enumerate(points):
        mine = wedges[vertex == v]
        if abs(mine[:, 3].sum() - 2 * np.pi) > 1e-8:
            continue  # on the cell boundary (or not all around): not enriched
        sectors = _sectors(mine)
        if len(sectors) < 2 or (len(sectors) == 2 and abs(sectors[0][1] - np.pi) < 1e-8):
            continue
        found.append((p, sectors))
    lo, hi = np.asarray(cell.box[0], float), np.asarray(cell.box[1], float)
    junctions = []
    for j, (p, sectors) in enumerate(found):
        exact = comm.allreduce(_exact_radius(p, sectors, P[:nowned], tags[:nowned]), op=MPI.MIN)
        others = [np.linalg.norm(q - p) for i, (q, _) in enumerate(found) if i != j]
        boundary = float(min((p - lo).min(), (hi - p).min()))
        r2 = min(0.9 * exact, 0.9 * boundary, 0.45 * min(others, default=np.inf))
        sec = tuple(Sector(s, w, t, float(conductivities[t])) for s, w, t in sectors)
        widths, ks = [s.width for s in sec], [s.k for s in sec]
        modes = singular_modes(widths, ks, max_exponent=max_exponent)
        if modes and r2 > 0:
            junctions.append(Junction(np.array(p), sec, INNER_RATIO * r2, r2, tuple(modes)))
    return junctions


# -- UFL: the source F_m and the gradient of s_m ------------------------------------------------
def _horner(poly: np.polynomial.Polynomial, t: Any) -> Any:
    out = 0.0
    for c in poly.coef[::-1]:
        out = out * t + float(c)
    return out


class _ModeExpressions:
    """UFL expressions of one singular function with its parameters in one
    :class:`dolfinx.fem.Constant` (so every mode of a junction with ``n`` sectors shares one
    compiled form)."""

    def __init__(self, mesh: dolfinx.mesh.Mesh, junction: Junction, mode: SingularMode) -> None:
        ns = len(junction.sectors)
        values = [*junction.point, mode.exponent, junction.r_inner, junction.r_outer]
        for i, s in enumerate(junction.sectors):
            values += [math.cos(s.start), math.sin(s.start), s.width, s.k, mode.a[i], mode.b[i]]
        self.constant = dolfinx.fem.Constant(mesh, np.array(values, dtype=float))
        c = self.constant
        x = ufl.SpatialCoordinate(mesh)
        d = ufl.as_vector([x[0] - c[0], x[1] - c[1]])
        lam, r1, r2 = c[2], c[3], c[4]
        r = ufl.sqrt(d[0] ** 2 + d[1] ** 2)
        phi, dphi, k = 0, 0, 0
        for i in range(ns):
            cs, sn, w, ki, a, b = (c[5 + 6 * i + j] for j in range(6))
            t = ufl.atan2(cs * d[1] - sn * d[0], cs * d[0] + sn * d[1])
            t = ufl.conditional(ufl.lt(t, 0.0), t + 2 * math.pi, t)
            inside = ufl.le(t, w)
            phi += ufl.conditional(inside, a * ufl.cos(lam * t) + b * ufl.sin(lam * t), 0.0)
            dphi += ufl.conditional(
                inside, lam * (-a * ufl.sin(lam * t) + b * ufl.cos(lam * t)), 0.0
            )
            k += ufl.conditional(inside, ki, 0.0)
        width = r2 - r1
        tt = (r - r1) / width
        annulus = ufl.And(ufl.gt(r, r1), ufl.lt(r, r2))
        chi = ufl.conditional(
            ufl.le(r, r1), 1.0, ufl.conditional(annulus, 1.0 - _horner(_PSI[0], tt), 0.0)
        )
        chi1 = ufl.conditional(annulus, -_horner(_PSI[1], tt) / width, 0.0)
        chi2 = ufl.conditional(annulus, -_horner(_PSI[2], tt) / width**2, 0.0)
        #: s itself.
        self.value = chi * r**lam * phi
        #: F = div(k grad s), zero outside the annulus.
        self.source = k * (chi2 * r**lam + (2 * lam + 1) * chi1 * r ** (lam - 1)) * phi
        radial = (chi1 * r**lam + lam * chi * r ** (lam - 1)) * phi / r
        angular = chi * r ** (lam - 2) * dphi
        #: grad s (for the indicators only: evaluated at ordinary quadrature points).
        self.gradient = radial * d + angular * ufl.as_vector([-d[1], d[0]])


def composite_rule(level: int = SUBDIVISION_LEVEL, degree: int = SUB_DEGREE):
    """Points and weights on the reference triangle: ``4**level`` sub-triangles with a Gauss
    rule of ``degree`` on each."""
    gp, gw = basix.make_quadrature(basix.CellType.triangle, degree)
    n = 2**level
    points, weights = [], []
    for i in range(n):
        for j in range(n - i):
            tris = [((i, j), (i + 1, j), (i, j + 1))]
            if i + j < n - 1:
                tris.append(((i + 1, j), (i + 1, j + 1), (i, j + 1)))
            for v0, v1, v2 in tris:
                a, b, c = (np.array(v, dtype=float) / n for v in (v0, v1, v2))
                points.append(a + np.outer(gp[:, 0], b - a) + np.outer(gp[:, 1], c - a))
                weights.append(gw / n**2)
    return np.vstack(points), np.concatenate(weights)


def annulus_measure(cell: CellMesh, junctions: Sequence[Junction]) -> Any:
    """``dx`` over the local cells meeting any cutoff annulus: :func:`composite_rule` on the
    cells larger than an eighth of the annulus width, one Gauss rule of degree
    ``SUB_DEGREE`` on the smaller ones (a sum of two measures)."""
    P, _, _ = _cell_data(cell)
    marked = np.zeros(len(P), dtype=np.int32)
    diameter = np.max(
        [np.linalg.norm(P[:, i] - P[:, (i + 1) % 3], axis=1) for i in range(3)], axis=0
    )
    for j in junctions:
        near = _point_triangle_distance(j.point, P) < j.r_outer
        far = np.linalg.norm(P - j.point, axis=2).max(axis=1) > j.r_inner
        small = diameter < (j.r_outer - j.r_inner) / 8
        marked = np.maximum(marked, np.where(near & far, np.where(small, 1, 2), 0))
    cells = np.nonzero(marked)[0].astype(np.int32)
    tags = dolfinx.mesh.meshtags(cell.mesh, 2, cells, marked[cells])
    pts, wts = composite_rule()
    metadata = {"quadrature_rule": "custom", "quadrature_points": pts, "quadrature_weights": wts}
    fine = ufl.Measure("dx", domain=cell.mesh, subdomain_data=tags, metadata=metadata)(2)
    plain = {"quadrature_degree": SUB_DEGREE}
    return ufl.Measure("dx", domain=cell.mesh, subdomain_data=tags, metadata=plain)(1), fine


# -- the enriched periodic solve ----------------------------------------------------------------
@dataclass(slots=True)
class EnrichedFields:
    """The enriched correctors: per unit load the FE part ``fe[j]``, the singular coefficients
    ``coefficients[j]`` and the gradient of the whole fluctuation (UFL, for indicators)."""

    fe: list[dolfinx.fem.Function]
    coefficients: np.ndarray
    gradients: list[Any]
    junctions: tuple[Junction, ...]


def enriched_correctors(problem: Any, junctions: Sequence[Junction]):
    """The periodic solve of ``problem`` (a scalar 2D :class:`~multiscale.cell.CellProblem`) in
    :math:`V_h \\oplus \\operatorname{span}\\{s_m\\}` by the Schur complement of the module
    docstring, on the one factorization.  Returns the :class:`HomogenizationResult` (tensor in
    energy form, mean fluxes and Hill–Mandel residuals of the enriched fields) and the
    :class:`EnrichedFields`.  Collective."""
    from .result import HomogenizationResult
    from .solver import _Timer

    cell, comm = problem.cell, problem.comm
    timings: dict[str, float] = {}
    setup = problem._setup("periodic", timings)
    W = setup.mpc.function_space
    owned = W.dofmap.index_map.size_local
    mesh = cell.mesh
    modes = [(j, m) for j in junctions for m in j.modes]
    with problem._linear_solver(setup) as linear:
        cases = problem._load_cases(setup, linear, timings, keep=True)
        with _Timer(timings, "enrichment"):
            dxa = annulus_measure(cell, junctions)
            v = ufl.TestFunction(W)
            exprs = [_ModeExpressions(mesh, j, m) for j, m in modes]
            b, Z = [], []
            for e in exprs:
                form = dolfinx.fem.form(sum(-e.source * v * d for d in dxa))  # a(s_m, v)
                vec = dolfinx.fem.assemble_vector(form)
                vec.scatter_reverse(dolfinx.la.InsertMode.add)
                b.append(-vec.array[:owned].copy())  # int F_m phi_i
                z = dolfinx.fem.Function(W)
                linear.solve(form, z, case="singular function")
                Z.append(z)
        iterations = list(linear.iterations)
        for key, seconds in linear.timings.items():
            timings[key] = timings.get(key, 0.0) + seconds
    dim = 2
    with _Timer(timings, "enrichment"):
        X = []
        for i in range(dim):
            xi = dolfinx.fem.Function(W)
            xi.interpolate(lambda x, i=i: x[i])
            X.append(xi)

        def dot(m: int, w: dolfinx.fem.Function) -> float:  # int F_m w
            return float(comm.allreduce(float(b[m] @ w.x.array[:owned]), op=MPI.SUM))

        n = len(modes)
        S = np.zeros((n, n))
        offset = 0
        for j in junctions:
            size = len(j.modes)
            S[offset : offset + size, offset : offset + size] = energy_matrix(j)
            offset += size
        H = S + np.array([[dot(m, Z[p]) for p in range(n)] for m in range(n)])
        H = 0.5 * (H + H.T)
        fe = cases.fields
        C = np.zeros((dim, n))
        for jl in range(dim):
            rhs = np.array([dot(m, X[jl]) + dot(m, fe[jl]) for m in range(n)])
            C[jl] = np.linalg.solve(H, rhs)
            for m in range(n):
                fe[jl].x.array[:] -= C[jl, m] * Z[m].x.array
        # Energy of the enriched fields: FE part + cross terms + c^T S c.
        total = [X[i].x.array + fe[i].x.array for i in range(dim)]
        cross = np.array(
            [
                [
                    float(comm.allreduce(float(b[m] @ total[i][:owned]), op=MPI.SUM))
                    for m in range(n)
                ]
                for i in range(dim)
            ]
        )  # int F_m (y_i + u_i) = -a(s_m, y_i + u_i)
        moments = np.array([[dot(m, X[i]) for m in range(n)] for i in range(dim)])
        g = [ufl.unit_vector(i, dim) + ufl.grad(fe[i]) for i in range(dim)]
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell.cell_tags)
        energy = np.zeros((dim, dim))
        mean_q = np.zeros((dim, dim))
        for i in range(dim):
            for jl in range(dim):
                e_form = sum(
                    ufl.inner(law.flux(g[jl]), g[i]) * dx(t) for t, law in problem.materials.items()
                )
                q_form = sum(
                    ufl.inner(law.flux(g[jl]), ufl.unit_vector(i, dim)) * dx(t)
                    for t, law in problem.materials.items()
                )
                fe_energy, fe_flux = (
                    comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(f)), op=MPI.SUM)
                    for f in (e_form, q_form)
                )
                energy[i, jl] = fe_energy - C[jl] @ cross[i] - C[i] @ cross[jl] + C[i] @ S @ C[jl]
                mean_q[i, jl] = fe_flux - C[jl] @ moments[i]
        energy /= cell.volume
        mean_q /= cell.volume
        hill = np.abs(np.diag(energy) - np.diag(mean_q)) / np.abs(np.diag(mean_q))
        gradients = [
            ufl.grad(fe[i]) + sum(float(C[i, m]) * exprs[m].gradient for m in range(n))
            for i in range(dim)
        ]
    timings = {k: comm.allreduce(t, op=MPI.MAX) for k, t in timings.items()}
    result = HomogenizationResult(
        tensor=0.5 * (energy + energy.T),
        notation="matrix",
        bc="periodic",
        physics="conductivity",
        dim=dim,
        ndofs=problem.ndofs + n,
        volume_fractions=dict(problem.volume_fractions),
        mean_flux=mean_q,
        mean_gradient=np.eye(dim),
        hill_mandel=hill,
        timings=timings,
        solver={"prefix": setup.prefix, "options": setup.options, "iterations": iterations},
    )
    return result, EnrichedFields(fe, C, gradients, tuple(junctions))
