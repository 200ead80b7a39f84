r"""Certified cell problems: two-sided bounds of the effective conductivity and error indicators.

**Upper bound (primal).**  The periodic cell problem of :class:`~multiscale.cell.CellProblem`
minimizes :math:`\langle (G + \nabla\chi)\cdot K (G + \nabla\chi)\rangle` over periodic
:math:`\chi`; a conforming Lagrange space restricts the minimization, so on every mesh
:math:`G\cdot A_{up} G \ge G\cdot A G`, i.e. :math:`A_{up} \succeq A` (Loewner order).

**Lower bound (dual, 2D).**  The complementary energy principle reads

.. math::
    Q\cdot A^{-1} Q = \min\{\langle q\cdot K^{-1} q\rangle :
    q \text{ periodic}, \operatorname{div} q = 0, \langle q\rangle = Q\}.

In 2D every such flux is :math:`q = Q + R\nabla\psi` with :math:`\psi` periodic in
:math:`H^1` and :math:`R` the rotation by :math:`90^\circ`.  Writing :math:`Q = R R^T Q`,

.. math::
    q\cdot K^{-1} q = (R^T Q + \nabla\psi)\cdot K^* (R^T Q + \nabla\psi), \qquad
    K^* = R^T K^{-1} R \;(= K / \det K \text{ for symmetric } K),

so the dual is itself a periodic cell problem with the phase laws :math:`K^*` and the macro
gradient :math:`G^* = R^T Q`: if :math:`A^*` is its effective tensor, the dual compliance is
:math:`B = R A^* R^T`.  A periodic Lagrange space for :math:`\psi` gives exactly divergence-free,
periodic fluxes, so the discrete dual is conforming: :math:`B_h \succeq A^{-1}` and
:math:`A_{lo} = B_h^{-1} \preceq A`.  Hence :math:`A_{lo} \preceq A \preceq A_{up}` and

.. math::
    \frac{\|A_{up} - A\|_2}{\|A_{up}\|_2} \le \frac{\|A_{up} - A_{lo}\|_2}{\|A_{up}\|_2}
    =: \texttt{error\_estimate}.

**Lower bound (dual, 3D).**  In 3D every periodic divergence-free flux of mean :math:`Q` is
:math:`q = Q + \operatorname{curl} a` with a periodic vector potential :math:`a`.  For
:math:`a_h` in the periodic vector Lagrange space :math:`V_h` (degree :math:`p`, the constraint
of the elasticity cell problem), :math:`\operatorname{curl} a_h` is divergence free across
element faces (:math:`a_h` is continuous), periodic and of zero mean, so *every* choice of the
three potentials :math:`a_i` gives admissible fluxes :math:`q_i = e_i + \operatorname{curl} a_i`
and

.. math::
    B_{ij} = \langle q_i\cdot K^{-1} q_j\rangle, \qquad
    Q\cdot B Q = \Big\langle \big(\textstyle\sum_i Q_i q_i\big)\cdot K^{-1}
    \big(\textstyle\sum_i Q_i q_i\big)\Big\rangle \ge Q\cdot A^{-1} Q,

i.e. :math:`B \succeq A^{-1}` and :math:`A_{lo} = B^{-1} \preceq A`, read from the fields
whatever the solver's accuracy.  The potentials minimize the complementary energy plus a gauge
term,

.. math::
    \int_Y K^{-1}\operatorname{curl} a_i\cdot\operatorname{curl} b
    + \alpha \int_Y \operatorname{div} a_i \operatorname{div} b
    = -\int_Y K^{-1} e_i\cdot\operatorname{curl} b \quad \forall b \in V_h,
    \qquad \alpha = \langle \operatorname{tr} K^{-1}\rangle / 3,

with one value of :math:`a_h` pinned (the constant vectors, the kernel left by curl and div on
the torus).  The grad-div term removes the gradients from the kernel of the curl (continuous
minimizer: the Coulomb gauge :math:`\operatorname{div} a = 0`, where :math:`a \in H^1` since
:math:`\operatorname{curl} a \in L^2`, so nodal elements converge); it only selects the
potential and never enters :math:`B`.  The three unit loads share one factorization.  The
periodicity of each discrete potential is checked through
:math:`\langle\operatorname{curl} a_i\rangle = |Y|^{-1}\int_{\partial Y} n\times a_i = 0`.

**Indicators (Prager–Synge).**  For the unit loads :math:`e_j`, the primal total gradient
:math:`g_j = e_j + \nabla\chi_j` and the dual flux :math:`q_j` of mean :math:`A_{up} e_j`
(a linear combination of the unit dual solutions),

.. math::
    \eta_K^2 = \sum_j \int_K (K g_j - q_j)\cdot K^{-1} (K g_j - q_j), \qquad
    \sum_K \eta_K^2 = |Y| \sum_j e_j\cdot A_{up}(B_h - A_{up}^{-1}) A_{up} e_j,

the hypercircle identity (:math:`\int_Y g_j\cdot q_j = |Y|\, e_j\cdot A_{up} e_j` since
:math:`q_j` is divergence free and :math:`\nabla\chi_j` periodic), in 2D and 3D alike.

**Singular enrichment (2D, isotropic phases).**  With ``enrich=True`` or ``"auto"`` (off by
default) the primal and the dual space are enriched by the singular functions of the interior phase
junctions whose exponent is below 1 (:mod:`multiscale.cell.enrich`): still conforming, so the
bounds keep their guarantee; the tensors are the energies of the enriched fields and the
indicators use their gradients.  ``enrichment`` of the result lists the junctions and exponents.

**Estimate only (elasticity).**  Without a divergence-free stress space the package gives no
guaranteed lower bound; :func:`certify` then returns the degree-elevated estimate
:math:`\|A_{p+1} - A_p\|_2 / \|A_p\|_2` with the indicators
:math:`\eta_K^2 = \sum_j \int_K (g^{p+1}_j - g^p_j)\cdot \mathbb{C}(g^{p+1}_j - g^p_j)`,
``lower = None`` and ``guaranteed = False``.  It is an estimate, not a bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.mesh.cell import CellMesh
from multiscale.nonlinear import direct_solver_options, unique_prefix
from multiscale.physics.base import Material, generalized_gradient, kind_of
from multiscale.physics.diffusion import AnisotropicConductivity, Conductivity

from .constraints import build_constraint
from .enrich import Junction, enriched_correctors, find_junctions
from .linear import ConstrainedLinearSolver
from .result import HomogenizationResult
from .solver import CellProblem

__all__ = ["CertificationError", "CertifiedResult", "certify", "dual_laws", "global_sum"]

#: Rotation by 90 degrees in the plane.
ROTATION = np.array([[0.0, -1.0], [1.0, 0.0]])

#: Largest Hill–Mandel residual of a solve that is trusted as conforming.  A periodic solve
#: gives 1e-14; the periodic constraint of dolfinx_mpc was measured to degrade on cells far
#: below 1e-5 (residual 2e-8 at h_min = 1.9e-6 on a corner-graded checkerboard, and primal
#: below dual one refinement later), where the bounds no longer hold.
HILL_MANDEL_LIMIT = 1.0e-10


class CertificationError(RuntimeError):
    """A solve is not accurate enough for its result to be a bound (raised on all ranks)."""


@dataclass(slots=True, frozen=True)
class CertifiedResult:
    """Bounds, error estimate and indicators of one cell on one mesh.

    Attributes
    ----------
    upper:
        The primal periodic result; its tensor is :math:`A_{up} \\succeq A` when
        ``guaranteed``.
    lower:
        :math:`A_{lo} = B_h^{-1} \\preceq A` (``d x d``), or ``None`` without a guaranteed bound.
    error_estimate:
        :math:`\\|A_{up} - A_{lo}\\|_2 / \\|A_{up}\\|_2`, a guaranteed bound of the relative
        spectral-norm error of :math:`A_{up}` when ``guaranteed``; otherwise the degree-elevated
        estimate.
    indicators:
        :math:`\\eta_K^2` of the owned cells of this rank (additive: their global sum is the
        squared estimator).
    guaranteed:
        Whether ``lower``/``error_estimate`` are certified bounds.
    dual_compliance:
        :math:`B_h` (``None`` without a dual).
    enrichment:
        The junctions whose singular functions enrich the primal space (empty without).
    """

    upper: HomogenizationResult
    lower: np.ndarray | None
    error_estimate: float
    indicators: np.ndarray
    guaranteed: bool
    dual_compliance: np.ndarray | None = None
    enrichment: tuple[Junction, ...] = ()

    @property
    def ndofs(self) -> int:
        """Global dofs of the primal problem."""
        return self.upper.ndofs

    def to_dict(self) -> dict[str, Any]:
        """The primal summary plus ``lower_bound``, ``upper_bound`` and ``error_estimate``."""
        out = self.upper.to_dict()
        out["lower_bound"] = None if self.lower is None else self.lower.tolist()
        out["upper_bound"] = self.upper.tensor.tolist() if self.guaranteed else None
        out["error_estimate"] = float(self.error_estimate)
        out["guaranteed"] = self.guaranteed
        out["enrichment"] = [j.to_dict() for j in self.enrichment]
        return out


def dual_laws(materials: Mapping[str | int, Material]) -> dict[str | int, Material]:
    """The 2D dual phase laws :math:`K^* = R^T K^{-1} R` (:math:`1/k` for isotropic phases)."""
    out: dict[str | int, Material] = {}
    for phase, law in materials.items():
        if isinstance(law, Conductivity):
            out[phase] = Conductivity(1.0 / law.k)
        elif isinstance(law, AnisotropicConductivity) and law.K.shape == (2, 2):
            out[phase] = AnisotropicConductivity(ROTATION.T @ np.linalg.inv(law.K) @ ROTATION)
        else:
            raise ValueError(f"phase {phase!r}: no 2D dual law for {type(law).__name__}")
    return out


def certify(
    cell: CellMesh,
    materials: Mapping[str | int, Material],
    *,
    degree: int = 1,
    petsc_options_prefix: str | None = None,
    petsc_options: Mapping[str, Any] | None = None,
    enrich: bool | str = False,
) -> CertifiedResult:
    """Bounds and indicators of the periodic cell problem (see the module docstring).

    Conductivity gets the guaranteed primal/dual bounds (2D: stream function, 3D: vector
    potential); elasticity the degree-elevated estimate.  ``enrich`` (2D conductivity):
    ``"auto"`` adds the singular functions of the interior junctions when every phase is
    isotropic, ``True`` demands isotropic phases (``ValueError`` otherwise), ``False`` never
    enriches.  Collective on ``cell.mesh.comm``.
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise ValueError(f"certify: degree must be an integer >= 1, got {degree!r}")
    if enrich not in ("auto", True, False):
        raise ValueError(f"certify: enrich must be 'auto', True or False, got {enrich!r}")
    prefix = petsc_options_prefix or unique_prefix("certify")
    kind = kind_of(dict(materials))
    if kind == "scalar" and cell.dim == 2:
        return _certify_dual(cell, materials, degree, prefix, petsc_options, enrich)
    if kind == "scalar" and cell.dim == 3:
        return _certify_dual_3d(cell, materials, degree, prefix, petsc_options)
    return _certify_elevated(cell, materials, degree, prefix, petsc_options)


def _solve(cell, materials, degree, prefix, options) -> tuple[HomogenizationResult, list, Any]:
    problem = CellProblem(
        cell, materials, degree=degree, petsc_options_prefix=prefix, petsc_options=options
    )
    result, fields = problem.correctors()
    return result, fields, problem


def _junctions(cell: CellMesh, materials, enrich: bool | str) -> list[Junction]:
    """The junctions to enrich (the same on every rank)."""
    if enrich is False:
        return []
    laws = cell.by_tag(materials)
    if not all(isinstance(law, Conductivity) for law in laws.values()):
        if enrich is True:
            raise ValueError("certify: enrich=True needs isotropic conductivities")
        return []
    return find_junctions(cell, {tag: law.k for tag, law in laws.items()})


def _solve_enriched(cell, materials, junctions, degree, prefix, options):
    """Like :func:`_solve` but in the enriched space; the fields are the gradients of the
    fluctuations (UFL)."""
    problem = CellProblem(
        cell, materials, degree=degree, petsc_options_prefix=prefix, petsc_options=options
    )
    if not junctions:
        result, fields = problem.correctors()
        return result, [ufl.grad(f) for f in fields], problem
    laws = cell.by_tag(materials)
    local = [j.with_conductivities({t: law.k for t, law in laws.items()}) for j in junctions]
    result, enriched = enriched_correctors(problem, local)
    return result, enriched.gradients, problem


def _certify_dual(cell, materials, degree, prefix, options, enrich="auto") -> CertifiedResult:
    laws = dual_laws(materials)  # bad laws fail before any solve
    junctions = _junctions(cell, materials, enrich)
    upper, chi, primal = _solve_enriched(
        cell, materials, junctions, degree, f"{prefix}primal_", options
    )
    _check_conforming(upper, "primal")
    dual, psi, _ = _solve_enriched(cell, laws, junctions, degree, f"{prefix}dual_", options)
    _check_conforming(dual, "dual")
    A_up = upper.tensor
    B = ROTATION @ dual.tensor @ ROTATION.T
    B = 0.5 * (B + B.T)
    lower = np.linalg.inv(B)
    lower = 0.5 * (lower + lower.T)
    estimate = float(np.linalg.norm(A_up - lower, 2) / np.linalg.norm(A_up, 2))
    # Singular gradients would drive UFL's degree estimate up: cap it (indicators mark only).
    eta2 = _hypercircle_indicators(
        primal, chi, psi, A_up, quadrature_degree=2 * degree + 2 if junctions else None
    )
    return CertifiedResult(upper, lower, estimate, eta2, True, B, tuple(junctions))


def _certify_dual_3d(cell, materials, degree, prefix, options) -> CertifiedResult:
    upper, chi, primal = _solve(cell, materials, degree, f"{prefix}primal_", options)
    _check_conforming(upper, "primal")
    B, fluxes = _vector_potential_dual(primal, degree, f"{prefix}dual_", options)
    lower = np.linalg.inv(B)
    lower = 0.5 * (lower + lower.T)
    A_up = upper.tensor
    estimate = float(np.linalg.norm(A_up - lower, 2) / np.linalg.norm(A_up, 2))
    eta2 = _prager_synge(primal, chi, fluxes, A_up)
    return CertifiedResult(upper, lower, estimate, eta2, True, B)


def _vector_potential_dual(
    primal: CellProblem, degree: int, prefix: str, options: Mapping[str, Any] | None
) -> tuple[np.ndarray, list]:
    """:math:`B_{ij} = \\langle q_i\\cdot K^{-1}q_j\\rangle` of the unit dual fluxes
    :math:`q_i = e_i + \\operatorname{curl} a_i` (UFL expressions, returned for the indicators)
    from the periodic vector-potential problem of the module docstring (MUMPS LU, one
    factorization for the three loads).  Raises :class:`CertificationError` unless
    :math:`\\langle\\operatorname{curl} a_i\\rangle` vanishes (a periodic potential)."""
    cell = primal.cell
    mesh, dim = cell.mesh, 3
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (dim,)))
    mpc, bcs = build_constraint(V, cell.box, "periodic")  # periodic, one node pinned
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell.cell_tags)
    compliance = {
        tag: ufl.as_matrix(np.linalg.inv(law.tensor(dim)).tolist())
        for tag, law in primal.materials.items()
    }
    volumes = {cell.tag(name): vol for name, vol in cell.phase_volumes().items()}
    alpha = sum(
        volumes.get(tag, 0.0) * np.trace(np.linalg.inv(law.tensor(dim))) / dim
        for tag, law in primal.materials.items()
    ) / float(sum(volumes.values()))
    a_h, b_h = ufl.TrialFunction(mpc.function_space), ufl.TestFunction(mpc.function_space)
    load = dolfinx.fem.Constant(mesh, np.zeros(dim))
    bilinear = alpha * ufl.div(a_h) * ufl.div(b_h) * dx
    linear_form = 0
    for tag, S in compliance.items():
        bilinear += ufl.inner(S * ufl.curl(a_h), ufl.curl(b_h)) * dx(tag)
        linear_form += -ufl.inner(S * load, ufl.curl(b_h)) * dx(tag)
    solver_options = direct_solver_options()
    solver_options.update(options or {})
    potentials = []
    with ConstrainedLinearSolver(
        dolfinx.fem.form(bilinear),
        mpc,
        bcs,
        petsc_options_prefix=prefix,
        petsc_options=solver_options,
        name="dual cell solver",
    ) as solver:
        L = dolfinx.fem.form(linear_form)
        for i in range(dim):
            load.value[...] = np.eye(dim)[i]
            a_i = dolfinx.fem.Function(mpc.function_space)
            solver.solve(L, a_i, case=f"unit flux {i}")
            potentials.append(a_i)
    fluxes = [ufl.unit_vector(i, dim) + ufl.curl(a_i) for i, a_i in enumerate(potentials)]
    # One DG0 form: B_ij (9 components) and <curl a_i>_j (9 components).
    W = dolfinx.fem.functionspace(mesh, ("DG", 0, (2 * dim * dim,)))
    w = ufl.TestFunction(W)
    n2 = dim * dim
    form = (
        sum(
            w[n2 + dim * i + j] * ufl.curl(potentials[i])[j] for i in range(dim) for j in range(dim)
        )
        * dx
    )
    for tag, S in compliance.items():
        form += sum(
            w[dim * i + j] * ufl.inner(S * fluxes[i], fluxes[j])
            for i in range(dim)
            for j in range(dim)
        ) * dx(tag)
    values = dolfinx.fem.assemble_vector(dolfinx.fem.form(form))
    owned = values.array[: W.dofmap.index_map.size_local * 2 * n2].reshape(-1, 2 * n2)
    totals = mesh.comm.allreduce(owned.sum(axis=0), op=MPI.SUM) / cell.volume
    B = totals[:n2].reshape(dim, dim)
    mean_curl = float(np.abs(totals[n2:]).max())
    if mean_curl > HILL_MANDEL_LIMIT:
        raise CertificationError(
            f"dual cell solve: mean curl of the vector potential {mean_curl:.1e} > "
            f"{HILL_MANDEL_LIMIT:.0e}: the potential is not periodic, no certified bound"
        )
    return 0.5 * (B + B.T), fluxes


def _prager_synge(primal: CellProblem, chi: list, fluxes: list, A_up: np.ndarray) -> np.ndarray:
    """:math:`\\eta_K^2` of the module docstring from the unit dual fluxes ``fluxes``: the
    flux of mean :math:`A_{up}e_j` is :math:`\\sum_i (A_{up})_{ij} q_i`."""
    dim = primal.dim
    M = dolfinx.fem.Constant(primal.cell.mesh, np.asarray(A_up, dtype=float))
    terms = []
    for j in range(dim):
        g = ufl.unit_vector(j, dim) + ufl.grad(chi[j])
        q = sum(M[i, j] * fluxes[i] for i in range(dim))
        for tag, law in primal.materials.items():
            Kinv = ufl.as_matrix(np.linalg.inv(law.tensor(dim)).tolist())
            e = law.flux(g) - q
            terms.append((tag, ufl.inner(Kinv * e, e)))
    return _cellwise(primal.cell, terms)


def _check_conforming(result: HomogenizationResult, name: str) -> None:
    """Raise :class:`CertificationError` when the Hill–Mandel residual (reduced, so the same
    on every rank) shows that the discrete solution is not a conforming periodic one."""
    if result.hill_mandel_residual > HILL_MANDEL_LIMIT:
        raise CertificationError(
            f"{name} cell solve has Hill-Mandel residual {result.hill_mandel_residual:.1e} > "
            f"{HILL_MANDEL_LIMIT:.0e} ({result.ndofs} dofs): periodic constraint or solver "
            "inaccurate, no certified bound"
        )


def _hypercircle_indicators(
    primal: CellProblem,
    chi: list,
    psi: list,
    A_up: np.ndarray,
    quadrature_degree: int | None = None,
) -> np.ndarray:
    """:math:`\\eta_K^2` in one DG0 form: the dual flux of mean :math:`Q_j = A_{up} e_j` is
    :math:`R(M_{:,j} + \\sum_i M_{ij}\\nabla\\psi_i)` with :math:`M = R^T A_{up}`.
    ``chi`` and ``psi`` are the gradients of the primal and dual fluctuations (UFL)."""
    mesh = primal.cell.mesh
    M = dolfinx.fem.Constant(mesh, ROTATION.T @ A_up)
    R = ufl.as_matrix(ROTATION.tolist())
    terms = []
    for j in range(2):
        g = ufl.unit_vector(j, 2) + chi[j]
        q = R * (ufl.as_vector([M[0, j], M[1, j]]) + sum(M[i, j] * psi[i] for i in range(2)))
        for tag, law in primal.materials.items():
            Kinv = ufl.as_matrix(np.linalg.inv(law.tensor(2)).tolist())
            e = law.flux(g) - q
            terms.append((tag, ufl.inner(Kinv * e, e)))
    return _cellwise(primal.cell, terms, quadrature_degree)


def _cellwise(cell: CellMesh, terms: list, quadrature_degree: int | None = None) -> np.ndarray:
    """Integrals of ``terms`` (phase tag, density) over each owned cell, through one DG0 form
    (the cell ``c`` holds :math:`\\int_c` as the coefficient of its indicator function)."""
    mesh = cell.mesh
    metadata = {} if quadrature_degree is None else {"quadrature_degree": quadrature_degree}
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell.cell_tags, metadata=metadata)
    D = dolfinx.fem.functionspace(mesh, ("DG", 0))
    v = ufl.TestFunction(D)
    form = dolfinx.fem.form(sum(density * v * dx(tag) for tag, density in terms))
    values = dolfinx.fem.assemble_vector(form)
    nlocal = mesh.topology.index_map(mesh.topology.dim).size_local
    dofs = D.dofmap.list[:nlocal, 0]
    return np.array(values.array[dofs])


def _certify_elevated(cell, materials, degree, prefix, options) -> CertifiedResult:
    upper, low_fields, primal = _solve(cell, materials, degree, f"{prefix}p_", options)
    fine, high_fields, _ = _solve(cell, materials, degree + 1, f"{prefix}p1_", options)
    A_p, A_q = upper.tensor, fine.tensor
    estimate = float(np.linalg.norm(A_q - A_p, 2) / np.linalg.norm(A_p, 2))
    kind = primal.kind
    terms = []
    for lo, hi in zip(low_fields, high_fields, strict=True):
        d = generalized_gradient(kind, hi) - generalized_gradient(kind, lo)
        for tag, law in primal.materials.items():
            terms.append((tag, ufl.inner(law.flux(d), d)))
    eta2 = _cellwise(primal.cell, terms)
    return CertifiedResult(upper, None, estimate, eta2, False, None)


def global_sum(values: np.ndarray, comm: MPI.Comm) -> float:
    """Sum of per-owned-cell values over all ranks."""
    return float(comm.allreduce(float(np.sum(values)), op=MPI.SUM))
