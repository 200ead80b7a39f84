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

Strips without a closed form (:func:`macro_strip`, :func:`dns_strip`, the particle strip of
:func:`inclusion_strip`): bending between constrained end sections, or simple shear with every
boundary clamped to the affine shear (:func:`strip_conditions`), the stiffness read off an
interior window.  Nonlinear phases: :class:`SecondOrderMicroModel` runs the cells of
:class:`~multiscale.cell.second_order.SecondOrderRVE` (one per macro point, with its history) in
the :class:`~multiscale.coupling.pool.MicroPool`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import basix.ufl
import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.cell.second_order import (
    SecondOrderResponse,
    SecondOrderResult,
    SecondOrderRVE,
    gradient_components,
)
from multiscale.coupling.pool import MicroFailure, MicroPool
from multiscale.fe2.micro import MicroModel
from multiscale.hmm.macro import linear_solve, linear_solver_options
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.generators import inclusions_2d
from multiscale.nonlinear import unique_prefix
from multiscale.physics.base import Material
from multiscale.physics.elasticity import IsotropicElasticity
from multiscale.tensors import voigt_to_strain

__all__ = [
    "HIGHER_ORDER",
    "STACKINGS",
    "STRIP_LOADINGS",
    "BendingResult",
    "SecondOrderEvaluation",
    "SecondOrderMicroModel",
    "StripBending",
    "StripStiffness",
    "bending_stiffness",
    "closed_form_ratio",
    "dns_bending_stiffness",
    "dns_strip",
    "dns_strip_bending",
    "hann_window",
    "higher_order_tangent",
    "inclusion_strip",
    "layer_moduli",
    "layered_strip",
    "macro_strip",
    "macro_strip_bending",
    "pure_bending_ends",
    "strip_conditions",
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


def closed_form_ratio(stacking: str, moduli: Mapping[str, float], periods: int) -> float:
    """The exact :math:`EI/EI_{hom} = 1 + 12\\mathcal D/(\\langle E\\rangle p^3 N^2)` of the
    laminated beam of ``periods`` periods, :math:`\\mathcal D = \\sum_l (E_l - \\langle
    E\\rangle)(\\zeta_{l,1}^3 - \\zeta_{l,0}^3)/3` integrated exactly over the layers
    :math:`[\\zeta_{l,0}, \\zeta_{l,1}]` of one period (centred, :math:`p = 1`)."""
    layers = layer_moduli(stacking)
    if periods < 1:
        raise ValueError(f"periods must be >= 1, got {periods!r}")
    bounds = np.concatenate([[0.0], np.cumsum([f for f, _ in layers])]) - 0.5
    E = np.array([float(moduli[name]) for _, name in layers])
    mean = float(np.dot(E, np.diff(bounds)))
    D = float(np.dot(E - mean, (bounds[1:] ** 3 - bounds[:-1] ** 3) / 3.0))
    return 1.0 + 12.0 * D / (mean * periods**2)


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


def pure_bending_ends(
    W: dolfinx.fem.FunctionSpace, length: float, curvature: float
) -> list[dolfinx.fem.DirichletBC]:
    """On the ends :math:`x = 0, L` of a strip of the mixed space ``W`` of
    :func:`_mixed_strip`: :math:`u` and :math:`F = \\nabla u` of pure bending about
    :math:`y = 0`, :math:`u = (\\kappa x y, -\\tfrac12\\kappa x^2)` (values as Functions)."""
    k = float(curvature)
    mesh = W.mesh
    fdim = mesh.topology.dim - 1
    ends = dolfinx.mesh.locate_entities_boundary(
        mesh, fdim, lambda x: np.isclose(x[0], 0.0) | np.isclose(x[0], length)
    )

    def exact_u(x):
        return np.vstack([k * x[0] * x[1], -0.5 * k * x[0] ** 2])

    def exact_F(x):  # rows (F00, F01, F10, F11) of grad u
        return np.vstack([k * x[1], k * x[0], -k * x[0], np.zeros_like(x[0])])

    bcs = []
    for sub, value in ((0, exact_u), (1, exact_F)):
        Vs, _ = W.sub(sub).collapse()
        f = dolfinx.fem.Function(Vs)
        f.interpolate(value)
        dofs = dolfinx.fem.locate_dofs_topological((W.sub(sub), Vs), fdim, ends)
        bcs.append(dolfinx.fem.dirichletbc(f, dofs, W.sub(sub)))
    return bcs


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
    faces = dolfinx.mesh.locate_entities_boundary(
        mesh, fdim, lambda x: np.isclose(np.abs(x[1]), height / 2)
    )
    bcs = pure_bending_ends(W, length, k)
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
    _, parts = _resolved_strip(strip, materials, "bending", k, degree, "layered beam DNS")
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


#: The loadings of a strip between constrained ends (see :func:`strip_conditions`).
STRIP_LOADINGS = ("bending", "shear")


@dataclass(slots=True, frozen=True)
class StripStiffness:
    """Stiffness of a strip (per unit out-of-plane width) read off the window :math:`\\psi` of
    :func:`hann_window`, :math:`W` the energy density: in bending :math:`EI = 2\\int\\psi\\,W
    \\,dx/\\kappa^2`, in simple shear the effective shear modulus :math:`G = 2\\int\\psi\\,W
    \\,dx/(\\gamma^2 H)` (:attr:`EI` is :attr:`stiffness` under either name);
    ``min_eigenvalue`` of the higher-order tangent used (macro only)."""

    stiffness: float
    ndofs: int
    min_eigenvalue: float = float("nan")
    loading: str = "bending"

    @property
    def EI(self) -> float:
        return self.stiffness


#: The bending result under its first name.
StripBending = StripStiffness


def _check_loading(loading: str) -> str:
    if loading not in STRIP_LOADINGS:
        raise ValueError(f"loading must be one of {STRIP_LOADINGS}, got {loading!r}")
    return loading


def strip_conditions(
    V: dolfinx.fem.FunctionSpace,
    box: np.ndarray,
    loading: str,
    amplitude: float,
) -> list[dolfinx.fem.DirichletBC]:
    r"""The constrained ends of the strip ``box`` :math:`= [0, L]\times[y_l, y_h]`,
    :math:`y_0 = (y_l + y_h)/2`, on the displacement space ``V`` (or the displacement
    subspace of a mixed space):

    * ``"bending"`` (curvature :math:`\kappa` = ``amplitude``): :math:`u_x = \kappa x
      (y - y_0)` on the ends :math:`x = 0, L` (the end sections rotate rigidly by
      :math:`\kappa L` relative to each other, free to slide vertically and to contract),
      :math:`u_y = 0` at :math:`(0, y_0)`; the faces free;
    * ``"shear"`` (shear :math:`\gamma` = ``amplitude``): the whole boundary clamped to simple
      shear, :math:`u = (\gamma (y - y_0), 0)`: the top face displaced by :math:`\gamma H`
      relative to the bottom one, both faces and both end sections held (no fluctuation can
      develop there: the boundary layer of a clamped grip).
    """
    mesh = V.mesh
    fdim = mesh.topology.dim - 1
    (x_lo, y_lo), (x_hi, y_hi) = np.asarray(box, dtype=float)
    y0 = 0.5 * (y_lo + y_hi)
    a = float(amplitude)
    if _check_loading(loading) == "bending":
        marker = lambda x: np.isclose(x[0], x_lo) | np.isclose(x[0], x_hi)  # noqa: E731
        values = {0: lambda x: a * x[0] * (x[1] - y0)}
    else:
        marker = lambda x: np.full(x.shape[1], True)  # noqa: E731
        values = {0: lambda x: a * (x[1] - y0), 1: lambda x: np.zeros_like(x[0])}
    facets = dolfinx.mesh.locate_entities_boundary(mesh, fdim, marker)
    bcs = []
    for comp, value in values.items():
        Vc, _ = V.sub(comp).collapse()
        f = dolfinx.fem.Function(Vc)
        f.interpolate(value)
        dofs = dolfinx.fem.locate_dofs_topological((V.sub(comp), Vc), fdim, facets)
        bcs.append(dolfinx.fem.dirichletbc(f, dofs, V.sub(comp)))
    if loading == "bending":
        Vy, _ = V.sub(1).collapse()
        pin = dolfinx.fem.locate_dofs_geometrical(
            (V.sub(1), Vy), lambda x: np.isclose(x[0], x_lo) & np.isclose(x[1], y0)
        )
        bcs.append(dolfinx.fem.dirichletbc(np.float64(0.0), pin[0], V.sub(1)))
    return bcs


def _stiffness_scale(loading: str, amplitude: float, height: float) -> float:
    """The factor from the windowed energy :math:`\\int\\psi W` to the stiffness:
    :math:`2/\\kappa^2` in bending, :math:`2/(\\gamma^2 H)` in shear."""
    scale = 2.0 / float(amplitude) ** 2
    return scale / height if loading == "shear" else scale


def _resolved_strip(
    strip: CellMesh,
    materials: Mapping[str | int, Material],
    loading: str,
    amplitude: float,
    degree: int,
    what: str,
) -> tuple[dolfinx.fem.Function, list[tuple[Any, Any]]]:
    r"""The resolved strip (plain linear elasticity, the phases as cell tags) under the end
    conditions of :func:`strip_conditions` on its box: its displacement and its energy density
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
        strip_conditions(V, strip.box, loading, amplitude),
        uh,
        petsc_options_prefix=unique_prefix(what.replace(" ", "_")),
        petsc_options=linear_solver_options(),
        what=what,
    )
    e = eps(uh)
    return uh, [(0.5 * ufl.inner(law.flux(e), e), dx(t)) for t, law in laws.items()]


def macro_strip(
    comm: MPI.Comm,
    tangent: SecondOrderResult,
    *,
    loading: str,
    height: float,
    length: float,
    window: tuple[float, float],
    amplitude: float = 1.0,
    order: int = 2,
    higher_order: str = "excess",
    nx: int = 8,
    ny: int = 4,
) -> StripStiffness:
    """The stiffness of the strain-gradient strip :math:`[0, L]\\times[-H/2, H/2]` between
    constrained ends (:func:`strip_conditions`: ``loading`` ``"bending"`` of curvature
    ``amplitude`` or simple ``"shear"`` of shear ``amplitude``), every other condition natural
    (zero traction and double traction; the independent gradient :math:`F` is free on the
    whole boundary), read off the window ``(start, width)`` with :func:`hann_window`.  The mixed
    formulation of :func:`bending_stiffness`; ``order=1`` drops :math:`B` and the higher-order
    tangent, ``higher_order`` chooses it (:func:`higher_order_tangent`).

    ``higher_order="perturbative"`` solves the first-order problem (:math:`F = \\nabla u_0`
    still enforced) and evaluates the second-order energy density at :math:`u_0`: the
    first-order perturbation in :math:`(B, \\tilde D)` of the stationary energy, the asymptotic
    reading of the :math:`O(\\varepsilon^2)` terms, well posed whatever the sign of
    :math:`\\tilde D`; solving with :math:`\\tilde D` itself is not when :math:`\\tilde D` has
    negative eigenvalues (the energy :math:`C k^2 + \\tilde D k^4` of a wave of number
    :math:`k` turns negative below the cell scale, and the result follows the mesh).  In simple
    shear the clamped affine field :math:`u = (\\gamma y, 0)` lies in the discrete space and has
    :math:`G = 0`, so every order and every choice of the higher-order tangent returns the
    first-order modulus :math:`C_{33}`."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    _check_loading(loading)
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
    box = np.array([[0.0, -height / 2], [length, height / 2]])
    linear_solve(
        a,
        L,
        strip_conditions(W.sub(0), box, loading, amplitude),
        U,
        petsc_options_prefix=unique_prefix("strain_gradient_strip"),
        petsc_options=linear_solver_options(),
        what="strain-gradient strip",
    )
    x = ufl.SpatialCoordinate(mesh)
    form = dolfinx.fem.form(hann_window(x[0], *window) * density * ufl.dx)
    total = comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)
    return StripStiffness(
        stiffness=_stiffness_scale(loading, amplitude, height) * total,
        ndofs=W.dofmap.index_map.size_global * W.dofmap.index_map_bs,
        min_eigenvalue=float(np.linalg.eigvalsh(0.5 * (Dm + Dm.T)).min()),
        loading=loading,
    )


def dns_strip(
    comm: MPI.Comm,
    strip: CellMesh,
    materials: Mapping[str | int, Material],
    *,
    loading: str,
    window: tuple[float, float],
    amplitude: float = 1.0,
    degree: int = 2,
) -> StripStiffness:
    """The stiffness of the resolved strip ``strip`` (its box :math:`[0, L]\\times[0, H]`,
    every inclusion meshed) under the end conditions of :func:`macro_strip` (about the
    mid-height :math:`y_0 = H/2`), plain linear elasticity, read off the same window."""
    (x_lo, y_lo), (x_hi, y_hi) = np.asarray(strip.box, dtype=float)
    if abs(x_lo) > 1e-12:
        raise ValueError("the strip must start at x = 0")
    window = _check_window(window, x_hi - x_lo)
    what = f"particle strip {_check_loading(loading)} DNS"
    uh, parts = _resolved_strip(strip, materials, loading, amplitude, degree, what)
    weight = hann_window(ufl.SpatialCoordinate(strip.mesh)[0], *window)
    form = dolfinx.fem.form(sum(weight * density * dx for density, dx in parts))
    total = comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)
    return StripStiffness(
        stiffness=_stiffness_scale(loading, amplitude, y_hi - y_lo) * total,
        ndofs=uh.function_space.dofmap.index_map.size_global * 2,
        loading=loading,
    )


def macro_strip_bending(
    comm: MPI.Comm, tangent: SecondOrderResult, *, curvature: float = 1.0, **kwargs: Any
) -> StripStiffness:
    """:math:`EI` of the strain-gradient strip in bending: :func:`macro_strip` with
    ``loading="bending"`` and ``amplitude=curvature``."""
    return macro_strip(comm, tangent, loading="bending", amplitude=curvature, **kwargs)


def dns_strip_bending(
    comm: MPI.Comm,
    strip: CellMesh,
    materials: Mapping[str | int, Material],
    *,
    curvature: float = 1.0,
    **kwargs: Any,
) -> StripStiffness:
    """:math:`EI` of the resolved strip in bending: :func:`dns_strip` with
    ``loading="bending"`` and ``amplitude=curvature``."""
    return dns_strip(comm, strip, materials, loading="bending", amplitude=curvature, **kwargs)


# -- nonlinear second-order cells in the micro pool -----------------------------------------------


@dataclass(slots=True)
class SecondOrderEvaluation:
    """Responses of this rank's points: ``stress`` (n, 3), ``double_stress`` (n, 6),
    ``tangent`` (n, 9, 9) (2D), ``hill_mandel``, ``iterations``, ``mean_p`` per point, the
    group's failures and the micro time split."""

    stress: np.ndarray
    double_stress: np.ndarray
    tangent: np.ndarray
    hill_mandel: np.ndarray
    iterations: np.ndarray
    mean_p: np.ndarray
    failures: list[MicroFailure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class SecondOrderMicroModel(MicroModel):
    """The second-order cells (:class:`~multiscale.cell.second_order.SecondOrderRVE`) of this
    rank's macro points in a :class:`~multiscale.coupling.pool.MicroPool`: the histories,
    :meth:`commit`, :meth:`rollback` and the first-order predictor of
    :class:`~multiscale.fe2.micro.MicroModel`, with the generalized strain :math:`e =
    (\\{E\\}, g)` (9 components in 2D) of each point as its input and
    (:math:`\\{\\Sigma\\}`, :math:`q`, the 9x9 consistent tangent) as its output.  Linear
    phases: one cell solve, the generalized tangent cached.  The static assignment of the pool
    (dynamic load balancing moves histories in rows of the first-order layout and is not
    offered here)."""

    _rve_class = SecondOrderRVE
    _rve_prefix = "multiscale_fe2_second_order_rve_"

    def __init__(self, pool: MicroPool, *args: Any, **kwargs: Any) -> None:
        """The arguments of :class:`~multiscale.fe2.micro.MicroModel`."""
        if pool.balancing:
            raise ValueError("SecondOrderMicroModel keeps the pool's static assignment")
        super().__init__(pool, *args, **kwargs)

    @property
    def n_general(self) -> int:
        """The number of generalized strain components (9 in 2D)."""
        return self.rve.n_directions

    def _init_history(self) -> None:
        super()._init_history()
        n = len(self.committed["G"])
        self.committed["G"] = np.zeros((n, self.n_general))  # the last generalized strain
        self.trial["G"] = self.committed["G"].copy()

    def effective_tangent(self) -> np.ndarray:
        """The generalized tangent of linear phases, from one cell solve (cached)."""
        if self._linear_tangent is None:
            response, _, _ = self.rve.solve(
                np.zeros((self.dim, self.dim)), np.zeros(self.rve.n_gradient), tangent="consistent"
            )
            self._linear_tangent = response.tangent
            self.rve_solves += 1
        return self._linear_tangent

    def evaluate(self, e: np.ndarray) -> SecondOrderEvaluation:  # type: ignore[override]
        """Responses for this rank's points; ``e`` has shape (n_local, 9) (2D): the Voigt
        strain (engineering shears) and :math:`g` of each point.  Collective on the micro
        communicator only (the caller agrees on the failures)."""
        e = np.asarray(e, dtype=float).reshape(-1, self.n_general)
        n, m = len(e), self.n_general
        if self.linear:
            K = self.effective_tangent()
            s = e @ K.T
            ns = self.rve.n_strain
            return SecondOrderEvaluation(
                stress=s[:, :ns],
                double_stress=s[:, ns:],
                tangent=np.broadcast_to(K, (n, m, m)),
                hill_mandel=np.zeros(n),
                iterations=np.zeros(n, dtype=int),
                mean_p=np.zeros(n),
            )
        seconds = {"newton": 0.0, "tangent": 0.0, "averages": 0.0}
        out, failures = self._solve_rows(e, seconds, m + m * m + 3)
        return self._evaluation(out, failures, seconds)

    def _point_input(self, x: np.ndarray) -> np.ndarray:
        """The RVE's input from a row of the pool: the generalized strain itself."""
        return x

    def _solve_point(
        self,
        ek: np.ndarray,
        state: np.ndarray,
        last: np.ndarray,
        sens: np.ndarray | None,
        e_last: np.ndarray,
        seconds: dict[str, float],
    ) -> tuple[SecondOrderResponse, np.ndarray, np.ndarray]:
        ns = self.rve.n_strain
        de = ek - e_last
        guess = self.rve.predict(last, sens, voigt_to_strain(de[:ns]), de[ns:])
        response, new_state, fluct = self.rve.solve(
            voigt_to_strain(ek[:ns]), ek[ns:], state, guess, fallback=last
        )
        for name in seconds:
            seconds[name] += response.seconds[name]
        return response, new_state, fluct

    @staticmethod
    def _response_row(response: Any) -> np.ndarray:
        return np.concatenate(
            [
                response.stress,
                response.double_stress,
                response.tangent.ravel(),
                [response.hill_mandel, response.iterations, response.mean_state.get("p", 0.0)],
            ]
        )

    def _work(self, rows: np.ndarray) -> np.ndarray:
        m = self.n_general
        return rows[:, m + m * m + 1]

    def _evaluation(  # type: ignore[override]
        self, out: np.ndarray, failures: list, seconds: dict[str, float]
    ) -> SecondOrderEvaluation:
        m, ns, n = self.n_general, self.rve.n_strain, len(out)
        return SecondOrderEvaluation(
            stress=out[:, :ns],
            double_stress=out[:, ns:m],
            tangent=out[:, m : m + m * m].reshape(n, m, m),
            hill_mandel=out[:, m + m * m],
            iterations=np.nan_to_num(out[:, m + m * m + 1]).astype(int),
            mean_p=out[:, m + m * m + 2],
            failures=failures,
            seconds=seconds,
        )
