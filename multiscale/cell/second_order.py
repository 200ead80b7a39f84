r"""The second-order (strain-gradient) cell problem of Kouznetsova, Geers & Brekelmans: linear
(:class:`SecondOrderCellProblem`, the generalized tangent from unit loads) and nonlinear
(:class:`SecondOrderRVE`, history-dependent phases on the machinery of
:class:`~multiscale.cell.rve.RVEProblem`).

The cell :math:`Y` (a box, centre :math:`y_c`, :math:`y` measured from it) is driven by the macro
strain :math:`E` *and* the macro second gradient :math:`G_{ijk} = \partial_j\partial_k u_i`
(symmetric in :math:`j, k`):

.. math::
    u(y) = E\cdot y + \tfrac12\,G : (y\otimes y) + w(y), \qquad
    \varepsilon(u) = E + \operatorname{sym}(G\cdot y) + \varepsilon(w),

with the fluctuation :math:`w` periodic and of zero mean, :math:`\int_Y w\,dy = 0` (the
additional integral constraint of Kouznetsova et al. 2004; in small strain it only fixes the
constant mode, so it is enforced by pinning an interior node and subtracting the mean).  The
cell equilibrium :math:`\int_Y \sigma(\varepsilon(u)) : \varepsilon(v)\,dy = 0` for periodic
:math:`v` returns the macro stress and the double stress

.. math::
    \Sigma = \langle\sigma\rangle, \qquad
    Q_{ijk} = \tfrac12\langle\sigma_{ij}\,y_k + \sigma_{ik}\,y_j\rangle,

and, the phases being linear, the generalized tangent

.. math::
    \{\Sigma\} = C\{E\} + B\,g, \qquad q = B^T\{E\} + D\,g,

in Voigt form (:math:`\{E\}` with engineering shears) and with the six independent components
:math:`g = (G_{1\,11}, G_{1\,12}, G_{1\,22}, G_{2\,11}, G_{2\,12}, G_{2\,22})` of :math:`G` in 2D
and their conjugates :math:`q_{i\,jk} = Q_{ijk} + Q_{ikj}` (:math:`j < k`), :math:`q_{i\,jj} =
Q_{ijj}`, so that :math:`Q \,\vdots\, G = q\cdot g`.  The second-order Hill–Mandel condition

.. math::
    \langle\sigma : \varepsilon(u)\rangle = \Sigma : E + Q \,\vdots\, G

holds for every load; it is checked for each unit load.  All :math:`3 + 6` unit loads share one
compiled right-hand side, one operator and one factorization
(:class:`~multiscale.cell.linear.ConstrainedLinearSolver`).

The energy of the linear variation of the strain over the cell, :math:`\tfrac12\langle
\operatorname{sym}(G y) : C : \operatorname{sym}(G y)\rangle = \tfrac12\,g\cdot J(C)\,g`, is part of
:math:`D` and is also counted by a macro continuum that integrates :math:`\tfrac12\,\varepsilon :
C : \varepsilon` exactly; the macro strain-gradient continuum therefore takes the *excess*
:math:`\tilde D = D - J(C)` (:attr:`SecondOrderResult.excess`), which vanishes for a homogeneous
cell with Poisson's ratio 0 on the bending modes and carries the size effect of a laminate.

Periodic fluctuations absorb the "pure square" parts of :math:`G` (:math:`u_i = \tfrac12 G_{ijj}
y_j^2` is itself periodic): for a homogeneous cell only the two bending modes :math:`G_{1\,12}`
and :math:`G_{2\,12}` carry energy, with the closed form :math:`D_{1\,12,1\,12} = E' J_{22}`,
:math:`D_{2\,12,2\,12} = E' J_{11}` (:math:`E'` the uniaxial modulus of the plane problem,
:math:`J = \langle y\otimes y\rangle` the cell's moment of inertia per volume), every other entry
zero.  This is the known limitation of periodic second-order conditions for stretch gradients.
:math:`\tilde D` may also be negative on the bending modes: for a stiff inclusion at the cell
centre (as for a laminate with its stiff phase at the period's centre) it is negative definite,
which is physical (the composite bends more softly than its homogenized continuum) but makes a
macro energy with :math:`\tilde D` unbounded below at short wavelengths
(:func:`multiscale.fe2.second_order.higher_order_tangent` offers a perturbative use).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_fills_box, check_periodic
from multiscale.nonlinear import unique_prefix
from multiscale.physics.base import Material, kind_of
from multiscale.tensors import (
    strain_to_voigt,
    stress_to_voigt,
    voigt_index,
    voigt_to_strain,
    voigt_to_stress,
)

from .constraints import build_constraint
from .linear import ConstrainedLinearSolver
from .rve import TANGENTS, RVEProblem
from .solver import default_petsc_options

__all__ = [
    "SecondOrderCellProblem",
    "SecondOrderRVE",
    "SecondOrderResponse",
    "SecondOrderResult",
    "gradient_components",
    "gradient_from_vector",
    "inertia_correction",
]


def gradient_components(dim: int) -> list[tuple[int, int, int]]:
    """The independent components :math:`(i, j, k)`, :math:`j \\le k`, of a second gradient
    :math:`G_{ijk}` in ``dim`` dimensions, in the order of the vector :math:`g` (6 in 2D, 18 in
    3D)."""
    return [
        (i, j, k)
        for i in range(dim)
        for j, k in itertools.combinations_with_replacement(range(dim), 2)
    ]


def gradient_from_vector(g: np.ndarray, dim: int) -> np.ndarray:
    """The third-order array :math:`G_{ijk}` (symmetric in :math:`j, k`) of the vector ``g``."""
    G = np.zeros((dim, dim, dim))
    for value, (i, j, k) in zip(np.asarray(g, dtype=float), gradient_components(dim), strict=True):
        G[i, j, k] = G[i, k, j] = value
    return G


def _strain_moments(G: np.ndarray) -> list[np.ndarray]:
    """:math:`S_k = \\operatorname{sym}(G_{\\cdot\\cdot k})`: the strain of :math:`G` is
    :math:`\\sum_k S_k y_k`."""
    return [0.5 * (G[:, :, k] + G[:, :, k].T) for k in range(G.shape[0])]


def inertia_correction(C: np.ndarray, J: np.ndarray) -> np.ndarray:
    """:math:`J(C)_{ab} = \\langle\\{\\operatorname{sym}(G_a y)\\}\\cdot C\\,
    \\{\\operatorname{sym}(G_b y)\\}\\rangle = \\sum_{kl} J_{kl}\\,\\{S_k(G_a)\\}\\cdot C\\,
    \\{S_l(G_b)\\}` for the unit gradients :math:`G_a` and the moment of inertia per volume
    :math:`J = \\langle y\\otimes y\\rangle`: the part of the higher-order tangent that a macro
    continuum with stiffness :math:`C` already integrates.  ``C`` may be a stack of Voigt
    stiffnesses (``(..., n_s, n_s)``, one per macro point), and so is the result."""
    dim = J.shape[0]
    n = len(gradient_components(dim))
    S = np.array(
        [
            [strain_to_voigt(s) for s in _strain_moments(gradient_from_vector(e, dim))]
            for e in np.eye(n)
        ]
    )  # (n, dim, n_s): the Voigt strain of the unit gradient a per unit y_k
    return np.einsum("km,aki,...ij,bmj->...ab", J, S, np.asarray(C, dtype=float), S)


@dataclass(slots=True)
class SecondOrderResult:
    """The generalized tangent of a second-order cell.

    Attributes
    ----------
    C, B, D:
        Voigt stiffness (3x3 in 2D), coupling (3x6) and higher-order tangent (6x6):
        :math:`\\{\\Sigma\\} = C\\{E\\} + B g`, :math:`q = B^T\\{E\\} + D g` (measured: ``B`` is
        the stress response to the unit gradients, ``B^T`` the double-stress response to the
        unit strains; :attr:`symmetry_defect` compares them).
    inertia:
        :math:`J = \\langle y\\otimes y\\rangle` about the cell centre.
    hill_mandel:
        :math:`|\\langle\\sigma:\\varepsilon\\rangle - \\Sigma:E - Q\\vdots G|` for each
        unit load (strains, then gradients), relative to the energy
        :math:`\\langle\\sigma(\\bar\\varepsilon):\\bar\\varepsilon\\rangle` of the affine field
        :math:`\\bar\\varepsilon = E + \\operatorname{sym}(G y)` (positive even where the
        fluctuation absorbs the load).
    fluctuation_mean:
        :math:`\\max_a |\\langle w_a\\rangle|` after the zero-mean constraint.
    """

    C: np.ndarray
    B: np.ndarray
    D: np.ndarray
    inertia: np.ndarray
    hill_mandel: np.ndarray
    fluctuation_mean: float
    ndofs: int
    timings: dict[str, float] = field(default_factory=dict)
    B_from_double_stress: np.ndarray | None = None

    @property
    def excess(self) -> np.ndarray:
        """:math:`\\tilde D = D - J(C)`: the higher-order tangent of the macro continuum."""
        return self.D - inertia_correction(self.C, self.inertia)

    @property
    def symmetry_defect(self) -> float:
        """:math:`\\max|B - B'| / (\\max|C|\\,\\ell)`, :math:`B'` the coupling measured from the
        double stresses of the unit strains, :math:`\\ell^2 = \\max J`: zero when the
        generalized tangent has its major symmetry."""
        if self.B_from_double_stress is None:
            return 0.0
        scale = np.abs(self.C).max() * np.sqrt(np.abs(self.inertia).max())
        return float(np.abs(self.B - self.B_from_double_stress).max() / scale)

    def tangent(self) -> np.ndarray:
        """The full symmetric generalized tangent :math:`[[C, B], [B^T, D]]`."""
        return np.block([[self.C, self.B], [self.B.T, self.D]])


class SecondOrderCellProblem:
    """Linear second-order cell problem of one periodic microstructure (small strain; written
    for 2D and 3D, tested in 2D).

    Parameters
    ----------
    cell:
        The periodic cell mesh with its phase tags.
    materials:
        Phase name or tag -> linear elastic law (``flux`` of the strain).
    degree:
        Lagrange degree of the fluctuation.
    petsc_options_prefix, petsc_options:
        As for :class:`~multiscale.cell.solver.CellProblem`.

    Every method is collective on ``cell.mesh.comm``.
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, Material],
        *,
        degree: int = 2,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        if kind_of(dict(materials)) != "strain":
            raise ValueError("the second-order cell problem needs elastic (strain) laws")
        for law in materials.values():
            if not getattr(law, "linear", False):
                raise ValueError(
                    f"{type(law).__name__} is not linear: the second-order cell problem is "
                    "linear (nonlinear phases are not supported yet)"
                )
        cell.check_tagged()
        check_fills_box(cell)
        check_periodic(cell)
        self.cell = cell
        self.materials = cell.by_tag(materials)
        mesh = cell.mesh
        self.comm: MPI.Comm = mesh.comm
        self.dim = dim = mesh.geometry.dim
        self.volume = cell.volume
        self.prefix = petsc_options_prefix or unique_prefix("second_order_cell")
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (dim,)))
        self.ndofs = self.V.dofmap.index_map.size_global * dim
        options = default_petsc_options(dim, self.ndofs, "strain")
        options.update(petsc_options or {})
        self.options = options

        lo, hi = np.asarray(cell.box[0], dtype=float), np.asarray(cell.box[1], dtype=float)
        self.centre = 0.5 * (lo + hi)
        self.inertia = np.diag((hi - lo) ** 2 / 12.0)  # <y (x) y> of the box about its centre
        self._dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell.cell_tags)
        self._E = dolfinx.fem.Constant(mesh, np.zeros((dim, dim)))
        self._G = dolfinx.fem.Constant(mesh, np.zeros((dim, dim, dim)))
        x = ufl.SpatialCoordinate(mesh)
        self._y = ufl.as_vector([x[i] - float(self.centre[i]) for i in range(dim)])
        i, j, k = ufl.indices(3)
        Gy = ufl.as_tensor(self._G[i, j, k] * self._y[k], (i, j))
        self._eps_macro = self._E + ufl.sym(Gy)

        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._a = dolfinx.fem.form(self._work(ufl.sym(ufl.grad(w)), v))
        self._L = dolfinx.fem.form(-self._work(self._eps_macro, v))
        self.mpc, self.bcs = build_constraint(self.V, cell.box, "periodic")
        self.u = dolfinx.fem.Function(self.mpc.function_space)
        self._averages = self._average_form(self.u)
        self._weights = self._mean_weights()

    # -- forms -------------------------------------------------------------------------------
    def _work(self, eps: Any, v: Any) -> ufl.Form:
        return sum(
            ufl.inner(law.flux(eps), ufl.sym(ufl.grad(v))) * self._dx(t)
            for t, law in self.materials.items()
        )

    def _average_form(self, w: dolfinx.fem.Function) -> dolfinx.fem.Form:
        """One DG0 vector form whose owned entries, summed, give :math:`\\int\\{\\sigma\\}`
        (Voigt), :math:`\\int q`, :math:`\\int\\sigma:\\varepsilon` and the same for the affine
        field (:math:`w = 0`) for the current load:
        every average of a load case in one assembly."""
        dim = self.dim
        pairs = voigt_index(dim)
        comps = gradient_components(dim)
        n = len(pairs) + len(comps) + 2
        Z = dolfinx.fem.functionspace(self.cell.mesh, ("DG", 0, (n,)))
        z = ufl.TestFunction(Z)
        eps = self._eps_macro + ufl.sym(ufl.grad(w))
        y = self._y
        form = None
        for t, law in self.materials.items():
            s = law.flux(eps)
            terms = [s[a, b] for a, b in pairs]
            for a, b, c in comps:  # q_{i jk} = <s_ij y_k + s_ik y_j> (j < k), <s_ij y_j> (j = k)
                terms.append(s[a, b] * y[c] + s[a, c] * y[b] if b != c else s[a, b] * y[b])
            terms.append(ufl.inner(s, eps))
            terms.append(ufl.inner(law.flux(self._eps_macro), self._eps_macro))
            part = sum(z[m] * term for m, term in enumerate(terms)) * self._dx(t)
            form = part if form is None else form + part
        self._nav = (len(pairs), len(comps))
        return dolfinx.fem.form(form)

    def _mean_weights(self) -> np.ndarray:
        """:math:`\\int_Y \\phi_i` of the owned basis functions, per component."""
        W = self.u.function_space
        v = ufl.TestFunction(W)
        ones = ufl.inner(ufl.as_vector([1.0] * self.dim), v)
        weights = dolfinx.fem.assemble_vector(dolfinx.fem.form(ones * ufl.dx))
        weights.scatter_reverse(dolfinx.la.InsertMode.add)
        owned = W.dofmap.index_map.size_local * self.dim
        return weights.array[:owned].reshape(-1, self.dim).copy()

    def _subtract_mean(self) -> float:
        """Impose :math:`\\langle w\\rangle = 0` on the current fluctuation; return the mean
        left (round-off)."""
        values = self.u.x.array.reshape(-1, self.dim)
        nw = len(self._weights)
        mean = self.comm.allreduce((self._weights * values[:nw]).sum(axis=0), op=MPI.SUM)
        values -= mean / self.volume
        after = self.comm.allreduce((self._weights * values[:nw]).sum(axis=0), op=MPI.SUM)
        return float(np.abs(after).max() / self.volume)

    def _read_averages(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        ns, ng = self._nav
        n = ns + ng + 2
        values = dolfinx.fem.assemble_vector(self._averages)
        Z = self._averages.function_spaces[0]
        owned = values.array[: Z.dofmap.index_map.size_local * n]
        vals = self.comm.allreduce(owned.reshape(-1, n).sum(axis=0), op=MPI.SUM) / self.volume
        return vals[:ns], vals[ns : ns + ng], float(vals[-2]), float(vals[-1])

    # -- solve -------------------------------------------------------------------------------
    def _solve_case(
        self, linear: ConstrainedLinearSolver, E: np.ndarray, G: np.ndarray, case: str
    ) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        self._E.value[...] = E
        self._G.value[...] = G
        linear.solve(self._L, self.u, case=case)
        mean = self._subtract_mean()
        sigma, q, energy, affine = self._read_averages()
        work = float(sigma @ strain_to_voigt(E) + q @ self._g_vector(G))
        # relative to the energy of the affine field (w = 0), an upper bound of <s:e> that
        # stays positive when the fluctuation absorbs the load (the pure square gradients)
        hill = abs(energy - work) / affine if affine > 0.0 else abs(energy - work)
        return sigma, q, energy, hill, mean

    def _g_vector(self, G: np.ndarray) -> np.ndarray:
        return np.array([G[i, j, k] for i, j, k in gradient_components(self.dim)])

    def solve(self) -> SecondOrderResult:
        """The generalized tangent from the :math:`3 + 6` (2D) unit loads, one factorization."""
        dim = self.dim
        nE = len(voigt_index(dim))
        comps = gradient_components(dim)
        nG = len(comps)
        zero_E, zero_G = np.zeros((dim, dim)), np.zeros((dim, dim, dim))
        C, Bs = np.zeros((nE, nE)), np.zeros((nE, nG))
        Bq, D = np.zeros((nG, nE)), np.zeros((nG, nG))
        hill = np.zeros(nE + nG)
        mean = 0.0
        with ConstrainedLinearSolver(
            self._a,
            self.mpc,
            self.bcs,
            petsc_options_prefix=f"{self.prefix}periodic_",
            petsc_options=self.options,
            name="second-order cell solver",
        ) as linear:
            for a, e in enumerate(np.eye(nE)):
                s, q, _, hill[a], m = self._solve_case(
                    linear, voigt_to_strain(e), zero_G, f"unit strain {a}"
                )
                C[:, a], Bq[:, a], mean = s, q, max(mean, m)
            for b, e in enumerate(np.eye(nG)):
                s, q, _, hill[nE + b], m = self._solve_case(
                    linear, zero_E, gradient_from_vector(e, dim), f"unit gradient {comps[b]}"
                )
                Bs[:, b], D[:, b], mean = s, q, max(mean, m)
            timings = dict(linear.timings)
        timings = {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in timings.items()}
        return SecondOrderResult(
            C=C,
            B=Bs,
            D=D,
            inertia=self.inertia.copy(),
            hill_mandel=hill,
            fluctuation_mean=mean,
            ndofs=self.ndofs,
            timings=timings,
            B_from_double_stress=Bq.T.copy(),
        )

    def response(self, E: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """:math:`(\\{\\Sigma\\}, q, \\text{Hill–Mandel defect})` of one load :math:`(E, G)`
        (``E`` a symmetric tensor, ``G`` the third-order array or the vector :math:`g`),
        solved directly: the independent check of the tangent."""
        E = np.asarray(E, dtype=float)
        G = np.asarray(G, dtype=float)
        if G.ndim == 1:
            G = gradient_from_vector(G, self.dim)
        with ConstrainedLinearSolver(
            self._a,
            self.mpc,
            self.bcs,
            petsc_options_prefix=f"{self.prefix}response_",
            petsc_options=self.options,
            name="second-order cell solver",
        ) as linear:
            s, q, _, hill, _ = self._solve_case(linear, E, G, "combined load")
        return s, q, hill


# -- nonlinear phases: the second-order RVE on the first-order RVE's machinery -----------------


@dataclass(slots=True)
class SecondOrderResponse:
    """What one :meth:`SecondOrderRVE.solve` returns (reduced over the RVE's communicator).

    ``stress``: :math:`\\{\\Sigma\\}` (Voigt, 3 in 2D); ``double_stress``: :math:`q`, the
    conjugate of :math:`g` (6 in 2D, see :func:`gradient_components`); ``tangent``: the
    consistent (or Taylor) generalized tangent :math:`\\partial(\\{\\Sigma\\}, q)/
    \\partial(\\{E\\}, g)` (9x9 in 2D; ``None`` when not asked for), whose blocks are
    :meth:`blocks`; ``hill_mandel``: :math:`|\\langle\\sigma:\\varepsilon\\rangle -
    \\Sigma:E - Q\\vdots G|` relative to :math:`|\\Sigma:E + Q\\vdots G|`; ``iterations``,
    ``mean_state``, ``sensitivity`` (the owned parts of :math:`\\partial w/\\partial(\\{E\\},
    g)`, one row per generalized direction) and ``seconds`` as in
    :class:`~multiscale.cell.rve.RVEResponse`."""

    stress: np.ndarray
    double_stress: np.ndarray
    tangent: np.ndarray | None
    hill_mandel: float
    iterations: int
    mean_state: dict[str, float] = field(default_factory=dict)
    sensitivity: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:math:`(C, B, D)` of the tangent: :math:`\\delta\\{\\Sigma\\} = C\\,\\delta\\{E\\}
        + B\\,\\delta g`, :math:`\\delta q = B'\\,\\delta\\{E\\} + D\\,\\delta g` (:math:`B' =
        B^T` for the symmetric tangent of a symmetric law; the returned ``B`` is the upper
        block)."""
        if self.tangent is None:
            raise ValueError("no tangent was computed for this response")
        n = len(self.stress)
        return self.tangent[:n, :n], self.tangent[:n, n:], self.tangent[n:, n:]


class SecondOrderRVE(RVEProblem):
    """The second-order cell problem with nonlinear, history-dependent phases (small strain):
    :class:`~multiscale.cell.rve.RVEProblem` whose macro strain is the field
    :math:`E + \\operatorname{sym}(G y)` instead of the uniform :math:`E`.

    The micro balance, the Newton solve (the package's
    :class:`~multiscale.nonlinear.NewtonSolver` on the periodic constrained space), the
    internal variables at the quadrature points and the committed/updated state are
    :class:`~multiscale.cell.rve.RVEProblem`'s; this class changes the macro strain, the unit
    directions and the averages.  The :math:`3 + 6` (2D) generalized directions
    :math:`\\varepsilon_n(y)` (the unit Voigt strains, then the strains
    :math:`\\operatorname{sym}(G_a y)` of the unit gradients) give

    .. math::
        s_n = \\langle\\sigma : \\varepsilon_n\\rangle \\quad (s = (\\{\\Sigma\\}, q)),
        \\qquad
        K_{nm} = \\frac{\\partial s_n}{\\partial e_m}
        = \\langle\\varepsilon_n : \\mathbb C : (\\varepsilon_m
        + \\varepsilon(\\delta w_m))\\rangle,

    with :math:`\\mathbb C` the algorithmic tangent of the phase law and the sensitivities
    :math:`\\delta w_m` solved, all nine at once, with the factorization of the converged
    Jacobian (:meth:`~multiscale.cell.rve.RVEProblem._tangent_solves`: the right-hand sides
    :math:`b_m = -\\int_Y (\\mathbb C:\\varepsilon_m):\\nabla v`); for a symmetric law the
    correction is :math:`-b_n\\cdot\\delta w_m/|Y|`, otherwise it is integrated at the
    quadrature points.  :math:`s\\cdot e = \\Sigma:E + Q\\vdots G` and, the fluctuation being
    periodic and the micro stress in equilibrium, :math:`\\langle\\sigma:\\varepsilon\\rangle =
    s\\cdot e` (the second-order Hill–Mandel condition) in every state, elastic or plastic.

    The fluctuation's mean is not constrained beyond the pinned node of the periodic
    constraint: a constant fluctuation changes no strain, stress, :math:`\\Sigma` or :math:`Q`.
    The parameters are :class:`~multiscale.cell.rve.RVEProblem`'s (``degree`` 2 by default:
    the macro strain is linear in :math:`y`).
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, Material],
        *,
        degree: int = 2,
        petsc_options_prefix: str | None = None,
        **options: Any,
    ) -> None:
        if kind_of(dict(materials)) != "strain":
            raise ValueError("the second-order RVE needs small-strain (kind 'strain') laws")
        prefix = petsc_options_prefix or unique_prefix("second_order_rve")
        super().__init__(cell, materials, degree=degree, petsc_options_prefix=prefix, **options)

    # -- the hooks of RVEProblem ---------------------------------------------------------------
    def _init_spaces(self, degree: int, qdeg: int) -> None:
        super()._init_spaces(degree, qdeg)
        mesh, d = self.cell.mesh, self.dim
        lo, hi = (np.asarray(b, dtype=float) for b in self.cell.box)
        self.centre = 0.5 * (lo + hi)
        self.inertia = np.diag((hi - lo) ** 2 / 12.0)
        self._length = float(np.max(hi - lo))
        x = ufl.SpatialCoordinate(mesh)
        self._y = ufl.as_vector([x[i] - float(self.centre[i]) for i in range(d)])
        self._Ggrad = dolfinx.fem.Constant(mesh, np.zeros((d, d, d)))
        self._Tgrad = dolfinx.fem.Constant(mesh, np.zeros((d, d, d)))
        self.n_strain = len(voigt_index(d))
        self.n_gradient = len(gradient_components(d))
        zero2, zero3 = np.zeros((d, d)), np.zeros((d, d, d))
        self._generalized = [(voigt_to_strain(e), zero3) for e in np.eye(self.n_strain)] + [
            (zero2, gradient_from_vector(e, d)) for e in np.eye(self.n_gradient)
        ]
        self._directions = [(T, []) for T, _ in self._generalized]
        # the direction strains eps_n(y) at the quadrature points of each phase's owned cells
        y_expr = self.rule.expression(self._y)
        self._direction_points: dict[int, np.ndarray] = {}
        for tag, cells in self._cells.items():
            y = self.rule.evaluate(y_expr, cells)  # (cells, points, d)
            fields = []
            for T, Gn in self._generalized:
                S = _strain_moments(Gn)
                fields.append(T + sum(y[..., k, None, None] * S[k] for k in range(d)))
            self._direction_points[tag] = np.asarray(fields)  # (n, cells, points, d, d)
        self._load = np.zeros(len(self._generalized))
        self._double_stress = np.zeros(self.n_gradient)

    def _macro_strain(self) -> ufl.core.expr.Expr:
        i, j, k = ufl.indices(3)
        return self._G + ufl.sym(ufl.as_tensor(self._Ggrad[i, j, k] * self._y[k], (i, j)))

    def _direction_strain(self) -> ufl.core.expr.Expr:
        i, j, k = ufl.indices(3)
        return self._T + ufl.sym(ufl.as_tensor(self._Tgrad[i, j, k] * self._y[k], (i, j)))

    def _set_direction(self, n: int) -> None:
        T, Gn = self._generalized[n]
        self._T.value[...] = T
        self._Tgrad.value[...] = Gn

    def _set_macro(self, G: np.ndarray) -> None:
        super()._set_macro(G)
        # the displacement across the cell of the gradient part, (G l) l, joins that of E
        self._xscale += float(np.linalg.norm(self._Ggrad.value)) * self._length * self._scale

    def _averages(
        self, with_tangent: bool
    ) -> tuple[np.ndarray, float, np.ndarray, dict[int, np.ndarray]]:
        """:math:`\\Sigma` (d x d; :math:`q` is kept for :meth:`solve`), the Hill–Mandel defect,
        the generalized Taylor tangent :math:`\\langle\\varepsilon_n:\\mathbb C:
        \\varepsilon_m\\rangle` and the point values of :math:`\\mathbb C` per phase."""
        n = len(self._generalized)
        s = np.zeros(n)
        energy = 0.0
        taylor = np.zeros((n, n))
        C_points: dict[int, np.ndarray] = {}
        for tag, cells in self._cells.items():
            w, dirs = self._weights[tag], self._direction_points[tag]
            q = self.rule.evaluate(self._q_expr[tag], cells)
            g = self.rule.evaluate(self._g_expr, cells)
            s += np.einsum("cp,cpij,ncpij->n", w, q, dirs)
            energy += float(np.einsum("cp,cpij,cpij->", w, q, g))
            if with_tangent:
                C = C_points[tag] = self.rule.evaluate(self._C_expr[tag], cells)
                Cdirs = np.einsum("cpijkl,mcpkl->mcpij", C, dirs)
                taylor += np.einsum("cp,ncpij,mcpij->nm", w, dirs, Cdirs)
        packed = self._sum(np.concatenate([s, [energy], taylor.ravel()]))
        s, energy, taylor = packed[:n], float(packed[n]), packed[n + 1 :].reshape(n, n)
        work = float(s @ self._load)
        hill = abs(energy - work) / abs(work) if work != 0.0 else abs(energy)
        self._double_stress = s[self.n_strain :].copy()
        return voigt_to_stress(s[: self.n_strain]), hill, taylor, C_points

    def _consistent(
        self, taylor: np.ndarray, C_points: dict[int, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The generalized consistent tangent :math:`K = \\langle\\varepsilon_n:\\mathbb C:
        \\varepsilon_m\\rangle + \\langle\\varepsilon_n:\\mathbb C:\\varepsilon(\\delta w_m)
        \\rangle` and the sensitivities :math:`\\delta w_m` (owned parts)."""
        B, W = self._tangent_solves()
        n = len(self._generalized)
        if self.symmetric:
            return taylor - self._sum((B @ W.T).ravel()).reshape(n, n), W
        corr = np.zeros((n, n))
        for m in range(n):
            self.w.x.petsc_vec.getArray()[:] = W[m]
            self.w.x.scatter_forward()
            self.mpc.backsubstitution(self.w)
            for tag, cells in self._cells.items():
                gw = self.rule.evaluate(self._gw_expr, cells)
                Cgw = np.einsum("cpijkl,cpkl->cpij", C_points[tag], gw)
                corr[:, m] += np.einsum(
                    "cp,ncpij,cpij->n", self._weights[tag], self._direction_points[tag], Cgw
                )
        return taylor + self._sum(corr.ravel()).reshape(n, n), W

    # -- the second-order interface --------------------------------------------------------------
    def _gradient(self, G: np.ndarray) -> np.ndarray:
        d = self.dim
        G = np.asarray(G, dtype=float)
        if G.shape == (self.n_gradient,):
            G = gradient_from_vector(G, d)
        if G.shape != (d, d, d):
            raise ValueError(
                f"macro gradient must be a ({d}, {d}, {d}) array or {self.n_gradient} "
                f"components, got shape {G.shape}"
            )
        if not np.all(np.isfinite(G)):
            raise ValueError(f"macro gradient has non-finite entries: {G.tolist()}")
        return 0.5 * (G + G.transpose(0, 2, 1))

    def generalized_strain(self, E: np.ndarray, G: np.ndarray) -> np.ndarray:
        """:math:`e = (\\{E\\}, g)`: the Voigt strain (engineering shears) and the
        independent components of the gradient, the variables of :attr:`SecondOrderResponse.
        tangent`."""
        E = np.asarray(E, dtype=float)
        G = self._gradient(G)
        g = np.array([G[i, j, k] for i, j, k in gradient_components(self.dim)])
        return np.concatenate([strain_to_voigt(0.5 * (E + E.T)), g])

    def solve(  # type: ignore[override]
        self,
        E: np.ndarray,
        G: np.ndarray,
        state: np.ndarray | None = None,
        guess: np.ndarray | None = None,
        *,
        fallback: np.ndarray | None = None,
        tangent: str | None = "default",
    ) -> tuple[SecondOrderResponse, np.ndarray, np.ndarray]:
        """Solve the cell for the macro strain ``E`` (d x d) and second gradient ``G``
        (:math:`G_{ijk}`, or its :func:`gradient_components`), from the committed ``state``
        (``None``: zero), Newton starting at ``guess``.  As :meth:`RVEProblem.solve
        <multiscale.cell.rve.RVEProblem.solve>`: ``state`` is never changed, the updated state
        is returned for the caller to commit (or drop when the macro step is cut), with the
        owned part of the converged fluctuation."""
        if tangent not in (None, "default", *TANGENTS):
            raise ValueError(f"unknown tangent {tangent!r}; expected one of {TANGENTS} or None")
        self._load = self.generalized_strain(E, G)
        self._Ggrad.value[...] = self._gradient(G)
        response, new_state, fluctuation = super().solve(
            E, state, guess, fallback=fallback, tangent=tangent
        )
        return (
            SecondOrderResponse(
                stress=stress_to_voigt(response.flux),
                double_stress=self._double_stress.copy(),
                tangent=response.tangent,
                hill_mandel=response.hill_mandel,
                iterations=response.iterations,
                mean_state=response.mean_state,
                sensitivity=response.sensitivity,
                seconds=response.seconds,
            ),
            new_state,
            fluctuation,
        )

    def predict(  # type: ignore[override]
        self,
        fluctuation: np.ndarray,
        sensitivity: np.ndarray | None,
        dE: np.ndarray,
        dG: np.ndarray,
    ) -> np.ndarray:
        """First-order predictor of the fluctuation at :math:`(E + \\Delta E, G + \\Delta G)`
        from the one at :math:`(E, G)` and its sensitivity there."""
        if sensitivity is None or not len(sensitivity):
            return fluctuation
        return fluctuation + self.generalized_strain(dE, dG) @ sensitivity
