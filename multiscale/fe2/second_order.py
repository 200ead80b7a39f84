r"""Second-order FE²: the macro strain-gradient continuum of a second-order cell, and the laminated
beam whose size effect it captures.

The macro problem (2D, small strain) minimizes

.. math::
    \Pi(u, F, \Lambda) = \int_\Omega \tfrac12\{\varepsilon(u)\}\cdot C\{\varepsilon(u)\}
    + \{\varepsilon(u)\}\cdot B\,g(F) + \tfrac12\,g(F)\cdot\tilde D\,g(F)
    + \Lambda : (\nabla u - F)\,dx,

a C0 mixed formulation: the displacement :math:`u` (P2), an independent displacement gradient
:math:`F` (P1) whose symmetrized gradient :math:`g(F)_{i\,jk} = \tfrac12(\partial_k F_{ij} +
\partial_j F_{ik})` stands for the second gradient :math:`G`, and a Lagrange multiplier
:math:`\Lambda` (P1) enforcing :math:`F = \nabla u`.  :math:`C, B, \tilde D` are the tangent
blocks of :class:`~multiscale.cell.second_order.SecondOrderResult` (:math:`\tilde D` the excess
higher-order tangent).  For linear phases second-order FE² is this macro solve with the cell
tangent computed once (as linear first-order FE² caches its one cell solve); first-order FE² is
the same solve with :math:`B = \tilde D = 0`.

The laminated beam: layers parallel to the axis :math:`x`, :math:`N` symmetric periods of
thickness :math:`p` through the height :math:`H = Np`, plane strain with Poisson's ratio 0 (each
layer in uniaxial stress, where the beam formula is exact).  In pure bending of curvature
:math:`\kappa`, :math:`u = (\kappa x y, -\tfrac12\kappa x^2)`, the bending stiffness is

.. math::
    EI = \int_{-H/2}^{H/2} E(y)\,y^2\,dy = \langle E\rangle\frac{H^3}{12} + N\,\mathcal D,
    \qquad \mathcal D = \int_{\text{period}} (E - \langle E\rangle)\,\zeta^2\,d\zeta,

so :math:`EI/EI_{hom} = 1 + 12\mathcal D/(\langle E\rangle p^3 N^2)`.  :func:`bending_stiffness`
computes it from the macro solution (:math:`EI = 2\Pi/(\kappa^2 L)`, the energy per length of
the beam), :func:`dns_bending_stiffness` from the resolved layered beam.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import basix.ufl
import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.cell.second_order import SecondOrderResult, gradient_components
from multiscale.hmm.macro import linear_solve, linear_solver_options
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.generators import inclusions_2d
from multiscale.nonlinear import unique_prefix
from multiscale.physics.base import Material
from multiscale.physics.elasticity import IsotropicElasticity

__all__ = [
    "HIGHER_ORDER",
    "STACKINGS",
    "BendingResult",
    "StripBending",
    "bending_stiffness",
    "dns_bending_stiffness",
    "dns_strip_bending",
    "hann_window",
    "higher_order_tangent",
    "inclusion_strip",
    "layer_moduli",
    "layered_strip",
    "macro_strip_bending",
]

#: Layer sequences of one symmetric period (thickness fractions, phase): stiff phase at the
#: period edges or at its centre.
STACKINGS: dict[str, list[tuple[float, str]]] = {
    "edges": [(0.25, "stiff"), (0.5, "soft"), (0.25, "stiff")],
    "centre": [(0.25, "soft"), (0.5, "stiff"), (0.25, "soft")],
}


def layer_moduli(stacking: str) -> list[tuple[float, str]]:
    """The layers of one period of ``stacking`` (``"edges"`` or ``"centre"``)."""
    if stacking not in STACKINGS:
        raise ValueError(f"unknown stacking {stacking!r}; expected one of {sorted(STACKINGS)}")
    return STACKINGS[stacking]


def layered_strip(
    comm: MPI.Comm,
    stacking: str,
    periods: int,
    *,
    period: float = 1.0,
    length: float = 1.0,
    nx: int = 4,
    per_layer: int = 2,
) -> CellMesh:
    """A structured triangle mesh of :math:`[0, L]\\times[-Np/2, Np/2]` whose element rows follow
    the layers (``per_layer`` rows per quarter period), cells tagged ``stiff`` (1) and ``soft``
    (2).  With ``periods = 1`` and ``length = period`` it is the periodic cell of the laminate
    (centred at the origin in :math:`y`, layers normal to :math:`y`); with more periods the
    resolved beam."""
    layers = layer_moduli(stacking)
    if periods < 1:
        raise ValueError(f"periods must be >= 1, got {periods!r}")
    height = periods * period
    ny = 4 * per_layer * periods  # the layer fractions are multiples of 1/4
    mesh = dolfinx.mesh.create_rectangle(
        comm,
        [np.array([0.0, -height / 2]), np.array([length, height / 2])],
        [nx, ny],
        dolfinx.mesh.CellType.triangle,
    )
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    y = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, 1]
    zeta = np.mod(y + height / 2, period) / period  # position in the period, in [0, 1)
    bounds = np.cumsum([f for f, _ in layers])
    which = np.searchsorted(bounds, zeta, side="right")
    phases = {"stiff": 1, "soft": 2}
    values = np.array([phases[layers[k][1]] for k in which], dtype=np.int32)
    tags = dolfinx.mesh.meshtags(mesh, tdim, cells, values)
    box = np.array([[0.0, -height / 2], [length, height / 2]])
    return CellMesh(mesh, tags, phases, box)


@dataclass(slots=True, frozen=True)
class BendingResult:
    """Bending stiffness :math:`EI` (per unit out-of-plane width) and the energy it came
    from."""

    EI: float
    energy: float
    constraint_residual: float


def _voigt(e: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    return ufl.as_vector([e[0, 0], e[1, 1], 2 * e[0, 1]])


def _mixed_strip(
    comm: MPI.Comm, length: float, height: float, nx: int, ny: int
) -> tuple[dolfinx.mesh.Mesh, dolfinx.fem.FunctionSpace, dolfinx.fem.Function, Any]:
    r"""The strip :math:`[0, L]\times[-H/2, H/2]` of ``nx`` by ``ny`` triangle pairs, the mixed
    space of the C0 strain-gradient continuum (:math:`u` in P2, the independent gradient
    :math:`F` in P1, the multiplier of :math:`F = \nabla u` in P1), its unknown and the
    second-gradient components :math:`g_{i\,jk} = \operatorname{sym}_{jk}\partial_k F_{ij}`."""
    mesh = dolfinx.mesh.create_rectangle(
        comm,
        [np.array([0.0, -height / 2]), np.array([length, height / 2])],
        [nx, ny],
        dolfinx.mesh.CellType.triangle,
    )
    cell = mesh.basix_cell()
    Pu = basix.ufl.element("Lagrange", cell, 2, shape=(2,))
    PF = basix.ufl.element("Lagrange", cell, 1, shape=(2, 2))
    W = dolfinx.fem.functionspace(mesh, basix.ufl.mixed_element([Pu, PF, PF]))
    U = dolfinx.fem.Function(W)
    F = ufl.split(U)[1]
    comps = gradient_components(2)
    g = ufl.as_vector([0.5 * (F[i, j].dx(k) + F[i, k].dx(j)) for i, j, k in comps])
    return mesh, W, U, g


def _quadratic_forms(Pi: ufl.Form, U: dolfinx.fem.Function) -> tuple[Any, Any]:
    """The compiled Hessian of the quadratic functional ``Pi`` in ``U`` and a zero right-hand
    side (the loading is all in the Dirichlet data)."""
    W = U.function_space
    dU, V = ufl.TrialFunction(W), ufl.TestFunction(W)
    a = dolfinx.fem.form(ufl.derivative(ufl.derivative(Pi, U, V), U, dU))
    zero = dolfinx.fem.Constant(W.mesh, (0.0, 0.0))
    return a, dolfinx.fem.form(ufl.inner(zero, ufl.split(V)[0]) * ufl.dx)


def bending_stiffness(
    comm: MPI.Comm,
    tangent: SecondOrderResult,
    *,
    height: float,
    length: float = 1.0,
    curvature: float = 1.0,
    order: int = 2,
    nx: int = 4,
    ny: int = 4,
    lateral: str = "free",
) -> BendingResult:
    """:math:`EI` of the strain-gradient beam :math:`[0, L]\\times[-H/2, H/2]` with the cell
    tangent ``tangent`` (``order=2``) or its first-order part alone (``order=1``).

    Pure bending is imposed at the ends :math:`x = 0, L` (:math:`u` and :math:`F` of the pure
    bending field).  ``lateral="free"`` leaves the faces :math:`y = \\pm H/2` free (the natural
    conditions: zero traction and zero higher-order traction); ``"kinematic"`` prescribes there
    the normal derivative :math:`F n = \\partial u/\\partial n` of the pure-bending field.  For
    the symmetric layered cells both reproduce the pure-bending field, which lies in the P2/P1
    spaces, to round-off (measured in the tests), so :math:`EI` is exact up to the cell
    tangent.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if lateral not in ("kinematic", "free"):
        raise ValueError(f"lateral must be 'kinematic' or 'free', got {lateral!r}")
    mesh, W, U, g = _mixed_strip(comm, length, height, nx, ny)
    u, F, Lam = ufl.split(U)
    C = ufl.as_matrix(tangent.C.tolist())
    zeros = (0.0 * tangent.B, 0.0 * tangent.D) if order == 1 else (tangent.B, tangent.excess)
    B, D = (ufl.as_matrix(m.tolist()) for m in zeros)
    e = _voigt(ufl.sym(ufl.grad(u)))
    energy = (0.5 * ufl.dot(e, C * e) + ufl.dot(e, B * g) + 0.5 * ufl.dot(g, D * g)) * ufl.dx
    Pi = energy + ufl.inner(Lam, ufl.grad(u) - F) * ufl.dx
    a, L = _quadratic_forms(Pi, U)

    k = float(curvature)
    fdim = mesh.topology.dim - 1
    ends = dolfinx.mesh.locate_entities_boundary(
        mesh, fdim, lambda x: np.isclose(x[0], 0.0) | np.isclose(x[0], length)
    )
    faces = dolfinx.mesh.locate_entities_boundary(
        mesh, fdim, lambda x: np.isclose(np.abs(x[1]), height / 2)
    )

    def exact_u(x):
        return np.vstack([k * x[0] * x[1], -0.5 * k * x[0] ** 2])

    def exact_F(x):  # rows (F00, F01, F10, F11) of grad u
        return np.vstack([k * x[1], k * x[0], -k * x[0], np.zeros_like(x[0])])

    bcs = []
    for sub, value, facets in ((0, exact_u, ends), (1, exact_F, ends)):
        Vs, _ = W.sub(sub).collapse()
        f = dolfinx.fem.Function(Vs)
        f.interpolate(value)
        dofs = dolfinx.fem.locate_dofs_topological((W.sub(sub), Vs), fdim, facets)
        bcs.append(dolfinx.fem.dirichletbc(f, dofs, W.sub(sub)))
    if lateral == "kinematic":  # F n = (F01, F11) on y = +-H/2
        for comp, value in ((1, lambda x: k * x[0]), (3, lambda x: np.zeros_like(x[0]))):
            Vs, _ = W.sub(1).sub(comp).collapse()
            f = dolfinx.fem.Function(Vs)
            f.interpolate(value)
            dofs = dolfinx.fem.locate_dofs_topological((W.sub(1).sub(comp), Vs), fdim, faces)
            bcs.append(dolfinx.fem.dirichletbc(f, dofs, W.sub(1).sub(comp)))
    linear_solve(
        a,
        L,
        bcs,
        U,
        petsc_options_prefix=unique_prefix("strain_gradient_beam"),
        petsc_options=linear_solver_options(),
        what="strain-gradient beam",
    )
    total = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(energy)), op=MPI.SUM)
    mismatch = ufl.inner(ufl.grad(u) - F, ufl.grad(u) - F) * ufl.dx
    res = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(mismatch)), op=MPI.SUM)
    scale = k**2 * length * (length**2 + height**2)
    return BendingResult(
        EI=2.0 * total / (k**2 * length),
        energy=float(total),
        constraint_residual=float(np.sqrt(res / scale)),
    )


def dns_bending_stiffness(
    comm: MPI.Comm,
    stacking: str,
    periods: int,
    moduli: dict[str, float],
    *,
    period: float = 1.0,
    length: float = 1.0,
    curvature: float = 1.0,
    nx: int = 4,
    per_layer: int = 2,
    degree: int = 2,
) -> float:
    """:math:`EI` of the resolved layered beam (plain linear elasticity, plane strain, Poisson's
    ratio 0, the layers as cell tags): :math:`u_x = \\kappa x y` on the ends, :math:`u_y` pinned
    at the origin, the faces free; :math:`EI = 2\\Pi/(\\kappa^2 L)`."""
    strip = layered_strip(
        comm, stacking, periods, period=period, length=length, nx=nx, per_layer=per_layer
    )
    materials = {name: IsotropicElasticity.from_young(E, 0.0) for name, E in moduli.items()}
    k = float(curvature)
    _, parts = _resolved_bending(strip, materials, length, 0.0, k, degree, "layered beam DNS")
    energy = dolfinx.fem.form(sum(density * dx for density, dx in parts))
    total = comm.allreduce(dolfinx.fem.assemble_scalar(energy), op=MPI.SUM)
    return 2.0 * total / (k**2 * length)


# -- a strip without a closed form: particle-reinforced, in bending between constrained ends --

#: How the macro continuum takes the higher-order tangent: ``"excess"`` :math:`\tilde D = D -
#: J(C)`; ``"excess_psd"`` its positive semi-definite part (the negative eigenvalues, which the
#: periodic fluctuation creates on the stretch-gradient modes, set to zero); ``"full"`` :math:`D`;
#: ``"perturbative"`` :math:`\tilde D` as a first-order perturbation of the first-order solution
#: (see :func:`macro_strip_bending`).
HIGHER_ORDER = ("excess", "excess_psd", "full", "perturbative")


def higher_order_tangent(tangent: SecondOrderResult, higher_order: str = "excess") -> np.ndarray:
    """The higher-order tangent of the macro continuum (see :data:`HIGHER_ORDER`).

    The positive part :math:`\\tilde D_+ = \\sum_k \\max(\\lambda_k, 0)\\,d_k d_k^T` of
    :math:`\\tilde D = \\sum_k \\lambda_k d_k d_k^T` keeps the macro energy convex in :math:`g`
    (the strain-gradient continuum is then elliptic); it differs from :math:`\\tilde D` only on
    the modes that the periodic fluctuation absorbs, where the cell carries no information."""
    if higher_order not in HIGHER_ORDER:
        raise ValueError(f"higher_order must be one of {HIGHER_ORDER}, got {higher_order!r}")
    if higher_order == "full":
        return tangent.D.copy()
    excess = 0.5 * (tangent.excess + tangent.excess.T)
    if higher_order in ("excess", "perturbative"):
        return excess
    lam, vec = np.linalg.eigh(excess)
    return (vec * np.maximum(lam, 0.0)) @ vec.T


def inclusion_strip(
    comm: MPI.Comm,
    through: int,
    along: int,
    volume_fraction: float,
    *,
    h_cell: float = 0.15,
) -> CellMesh:
    """The resolved strip :math:`[0, L]\\times[0, H]` of ``along`` x ``through`` unit cells
    (:math:`L` = ``along``, :math:`H` = ``through``), each with a centred disk of area fraction
    :math:`\\phi` (the cell of :func:`~multiscale.mesh.generators.circular_inclusion`),
    meshed with :math:`h` = ``h_cell``.  Phases ``"matrix"`` (1) and ``"inclusion"`` (2).
    Collective."""
    for name, n in (("through", through), ("along", along)):
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"{name} (cells) must be a positive integer, got {n!r}")
    radius = float(np.sqrt(volume_fraction / np.pi))
    centres = [(i + 0.5, j + 0.5) for i in range(along) for j in range(through)]
    return inclusions_2d(comm, centres, radius, size=(float(along), float(through)), h=h_cell)


def _check_window(window: tuple[float, float], length: float) -> tuple[float, float]:
    start, width = (float(v) for v in window)
    if not (width > 0.0 and start >= 0.0 and start + width <= length):
        raise ValueError(f"window (start, width) = {window!r} must lie inside [0, {length}]")
    return start, width


def hann_window(x: ufl.core.expr.Expr, start: float, width: float) -> ufl.core.expr.Expr:
    """:math:`\\psi(x) = (1 - \\cos(2\\pi(x - a)/w))/w` on :math:`[a, a + w]`, zero outside:
    :math:`\\int\\psi = 1`, :math:`C^1`, and for a width of an integer number :math:`m \\ge 2`
    of periods its Fourier transform vanishes at every harmonic of the period, so
    :math:`\\int\\psi f = \\langle f\\rangle` for a periodic :math:`f`: the cell average of the
    interior field, read off a mesh whose element edges need not follow the cells."""
    inside = ufl.And(ufl.gt(x, start), ufl.lt(x, start + width))
    value = (1.0 - ufl.cos(2.0 * np.pi * (x - start) / width)) / width
    return ufl.conditional(inside, value, 0.0)


@dataclass(slots=True, frozen=True)
class StripBending:
    """Bending stiffness :math:`EI = 2\\int\\psi\\,W\\,dx/\\kappa^2` of a strip (per unit
    out-of-plane width), :math:`W` the energy density, :math:`\\psi` the window of
    :func:`hann_window`; ``min_eigenvalue`` of the higher-order tangent used (macro only)."""

    EI: float
    ndofs: int
    min_eigenvalue: float = float("nan")


def _end_conditions(
    V: dolfinx.fem.FunctionSpace, length: float, y0: float, curvature: float
) -> list[dolfinx.fem.DirichletBC]:
    """:math:`u_x = \\kappa x (y - y_0)` on the ends :math:`x = 0, L` (the end sections rotate
    rigidly by :math:`\\kappa L` relative to each other, free to slide vertically and to
    contract), :math:`u_y = 0` at :math:`(0, y_0)`."""
    mesh = V.mesh
    fdim = mesh.topology.dim - 1
    ends = dolfinx.mesh.locate_entities_boundary(
        mesh, fdim, lambda x: np.isclose(x[0], 0.0) | np.isclose(x[0], length)
    )
    Vx, _ = V.sub(0).collapse()
    ux = dolfinx.fem.Function(Vx)
    ux.interpolate(lambda x: curvature * x[0] * (x[1] - y0))
    dofs = dolfinx.fem.locate_dofs_topological((V.sub(0), Vx), fdim, ends)
    bcs = [dolfinx.fem.dirichletbc(ux, dofs, V.sub(0))]
    Vy, _ = V.sub(1).collapse()
    pin = dolfinx.fem.locate_dofs_geometrical(
        (V.sub(1), Vy), lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], y0)
    )
    bcs.append(dolfinx.fem.dirichletbc(np.float64(0.0), pin[0], V.sub(1)))
    return bcs


def _resolved_bending(
    strip: CellMesh,
    materials: Mapping[str | int, Material],
    length: float,
    y0: float,
    curvature: float,
    degree: int,
    what: str,
) -> tuple[dolfinx.fem.Function, list[tuple[Any, Any]]]:
    r"""The resolved strip (plain linear elasticity, the phases as cell tags) under the end
    conditions of :func:`_end_conditions`: its displacement and its energy density
    :math:`\frac12\sigma:\varepsilon` as ``(density, measure)`` per phase (to integrate, with
    a weight or without)."""
    mesh = strip.mesh
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (2,)))
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=strip.cell_tags)
    laws = strip.by_tag(materials)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)

    def eps(w: Any) -> Any:
        return ufl.sym(ufl.grad(w))

    a = dolfinx.fem.form(
        sum(ufl.inner(law.flux(eps(u)), eps(v)) * dx(t) for t, law in laws.items())
    )
    L = dolfinx.fem.form(ufl.inner(dolfinx.fem.Constant(mesh, (0.0, 0.0)), v) * ufl.dx)
    uh = dolfinx.fem.Function(V)
    linear_solve(
        a,
        L,
        _end_conditions(V, length, y0, curvature),
        uh,
        petsc_options_prefix=unique_prefix(what.replace(" ", "_")),
        petsc_options=linear_solver_options(),
        what=what,
    )
    e = eps(uh)
    return uh, [(0.5 * ufl.inner(law.flux(e), e), dx(t)) for t, law in laws.items()]


def macro_strip_bending(
    comm: MPI.Comm,
    tangent: SecondOrderResult,
    *,
    height: float,
    length: float,
    window: tuple[float, float],
    curvature: float = 1.0,
    order: int = 2,
    higher_order: str = "excess",
    nx: int = 8,
    ny: int = 4,
) -> StripBending:
    """:math:`EI` of the strain-gradient strip :math:`[0, L]\\times[-H/2, H/2]` in bending
    between constrained ends (:func:`_end_conditions`: :math:`u_x = \\kappa x y` on
    :math:`x = 0, L`), every other condition natural (zero traction and double traction), read
    off the window ``(start, width)`` with :func:`hann_window`.  The mixed formulation of
    :func:`bending_stiffness`; ``order=1`` drops :math:`B` and the higher-order tangent,
    ``higher_order`` chooses it (:func:`higher_order_tangent`).

    ``higher_order="perturbative"`` solves the first-order problem (:math:`F = \\nabla u_0`
    still enforced) and evaluates the second-order energy density at :math:`u_0`: the
    first-order perturbation in :math:`(B, \\tilde D)` of the stationary energy, the asymptotic
    reading of the :math:`O(\\varepsilon^2)` terms, well posed whatever the sign of
    :math:`\\tilde D`; solving with :math:`\\tilde D` itself is not when :math:`\\tilde D` has
    negative eigenvalues (the energy :math:`C k^2 + \\tilde D k^4` of a wave of number
    :math:`k` turns negative below the cell scale, and the result follows the mesh)."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    window = _check_window(window, length)
    mesh, W, U, g = _mixed_strip(comm, length, height, nx, ny)
    u, F, Lam = ufl.split(U)
    Dm = higher_order_tangent(tangent, higher_order)
    Bm = tangent.B if order == 2 else 0.0 * tangent.B
    Dm = Dm if order == 2 else 0.0 * Dm
    C, B, D = (ufl.as_matrix(m.tolist()) for m in (tangent.C, Bm, Dm))
    e = _voigt(ufl.sym(ufl.grad(u)))
    first = 0.5 * ufl.dot(e, C * e)
    density = first + ufl.dot(e, B * g) + 0.5 * ufl.dot(g, D * g)
    solved = first if higher_order == "perturbative" else density
    Pi = (solved + ufl.inner(Lam, ufl.grad(u) - F)) * ufl.dx
    a, L = _quadratic_forms(Pi, U)
    k = float(curvature)
    bcs = _end_conditions(W.sub(0), length, 0.0, k)
    linear_solve(
        a,
        L,
        bcs,
        U,
        petsc_options_prefix=unique_prefix("strain_gradient_strip"),
        petsc_options=linear_solver_options(),
        what="strain-gradient strip",
    )
    x = ufl.SpatialCoordinate(mesh)
    form = dolfinx.fem.form(hann_window(x[0], *window) * density * ufl.dx)
    total = comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)
    return StripBending(
        EI=2.0 * total / k**2,
        ndofs=W.dofmap.index_map.size_global * W.dofmap.index_map_bs,
        min_eigenvalue=float(np.linalg.eigvalsh(0.5 * (Dm + Dm.T)).min()),
    )


def dns_strip_bending(
    comm: MPI.Comm,
    strip: CellMesh,
    materials: dict[str | int, Material],
    *,
    window: tuple[float, float],
    curvature: float = 1.0,
    degree: int = 2,
) -> StripBending:
    """:math:`EI` of the resolved strip ``strip`` (its box :math:`[0, L]\\times[0, H]`, every
    inclusion meshed) under the end conditions of :func:`macro_strip_bending` (about the
    mid-height :math:`y_0 = H/2`), plain linear elasticity, read off the same window."""
    (x_lo, y_lo), (x_hi, y_hi) = np.asarray(strip.box, dtype=float)
    if abs(x_lo) > 1e-12:
        raise ValueError("the strip must start at x = 0")
    length, y0 = x_hi - x_lo, 0.5 * (y_lo + y_hi)
    window = _check_window(window, length)
    k = float(curvature)
    uh, parts = _resolved_bending(strip, materials, length, y0, k, degree, "particle strip DNS")
    weight = hann_window(ufl.SpatialCoordinate(strip.mesh)[0], *window)
    form = dolfinx.fem.form(sum(weight * density * dx for density, dx in parts))
    total = comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)
    return StripBending(
        EI=2.0 * total / k**2,
        ndofs=uh.function_space.dofmap.index_map.size_global * 2,
    )
