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

from dataclasses import dataclass

import basix.ufl
import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.cell.second_order import SecondOrderResult, gradient_components
from multiscale.hmm.macro import linear_solve, linear_solver_options
from multiscale.mesh.cell import CellMesh
from multiscale.nonlinear import unique_prefix
from multiscale.physics.elasticity import IsotropicElasticity

__all__ = [
    "STACKINGS",
    "BendingResult",
    "bending_stiffness",
    "dns_bending_stiffness",
    "layer_moduli",
    "layered_strip",
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
    u, F, Lam = ufl.split(U)
    comps = gradient_components(2)
    g = ufl.as_vector([0.5 * (F[i, j].dx(k) + F[i, k].dx(j)) for i, j, k in comps])
    C = ufl.as_matrix(tangent.C.tolist())
    zeros = (0.0 * tangent.B, 0.0 * tangent.D) if order == 1 else (tangent.B, tangent.excess)
    B, D = (ufl.as_matrix(m.tolist()) for m in zeros)
    e = _voigt(ufl.sym(ufl.grad(u)))
    energy = (0.5 * ufl.dot(e, C * e) + ufl.dot(e, B * g) + 0.5 * ufl.dot(g, D * g)) * ufl.dx
    Pi = energy + ufl.inner(Lam, ufl.grad(u) - F) * ufl.dx
    dU, V = ufl.TrialFunction(W), ufl.TestFunction(W)
    a = dolfinx.fem.form(ufl.derivative(ufl.derivative(Pi, U, V), U, dU))
    L = dolfinx.fem.form(
        ufl.inner(dolfinx.fem.Constant(mesh, (0.0, 0.0)), ufl.split(V)[0]) * ufl.dx
    )

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
    mesh = strip.mesh
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (2,)))
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=strip.cell_tags)
    laws = {
        strip.phases[name]: IsotropicElasticity.from_young(E, 0.0) for name, E in moduli.items()
    }
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    eps = ufl.sym
    a = dolfinx.fem.form(
        sum(
            ufl.inner(law.flux(eps(ufl.grad(u))), eps(ufl.grad(v))) * dx(t)
            for t, law in laws.items()
        )
    )
    L = dolfinx.fem.form(ufl.inner(dolfinx.fem.Constant(mesh, (0.0, 0.0)), v) * ufl.dx)
    k = float(curvature)
    fdim = mesh.topology.dim - 1
    ends = dolfinx.mesh.locate_entities_boundary(
        mesh, fdim, lambda x: np.isclose(x[0], 0.0) | np.isclose(x[0], length)
    )
    Vx, _ = V.sub(0).collapse()
    ux = dolfinx.fem.Function(Vx)
    ux.interpolate(lambda x: k * x[0] * x[1])
    bcs = [
        dolfinx.fem.dirichletbc(
            ux, dolfinx.fem.locate_dofs_topological((V.sub(0), Vx), fdim, ends), V.sub(0)
        )
    ]
    Vy, _ = V.sub(1).collapse()
    origin = dolfinx.fem.locate_dofs_geometrical(
        (V.sub(1), Vy), lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0)
    )
    bcs.append(dolfinx.fem.dirichletbc(np.float64(0.0), origin[0], V.sub(1)))
    uh = dolfinx.fem.Function(V)
    linear_solve(
        a,
        L,
        bcs,
        uh,
        petsc_options_prefix=unique_prefix("layered_beam_dns"),
        petsc_options=linear_solver_options(),
        what="layered beam DNS",
    )
    e = eps(ufl.grad(uh))
    energy = sum(0.5 * ufl.inner(law.flux(e), e) * dx(t) for t, law in laws.items())
    total = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(energy)), op=MPI.SUM)
    return 2.0 * total / (k**2 * length)
