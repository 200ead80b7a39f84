"""FE² against independent references.

* linear phases: FE² equals a plain dolfinx macro solve with the effective stiffness of the cell
  solver (cached single RVE solve, and the per-point path of a law that does not declare itself
  linear);
* the Taylor tangent: the same answer as the consistent one (a laminate in closed form, and
  Neo-Hookean RVEs), with linear instead of quadratic convergence;
* J2 plasticity: quadratic macro Newton with the consistent tangent; Hill–Mandel at every
  step; step cutting equal to a run with the small steps and history rolled back; residual
  state after unloading;
* Neo-Hookean finite strain: loading and unloading back to zero is elastic;
* MPI: the macro result does not depend on the distribution of macro points or on RVE groups.

Macro meshes are 2x2 crossed rectangles (16 Gauss points) and the RVE a coarse disk cell.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import pytest
import ufl
from mpi4py import MPI
from newton_rates import assert_quadratic

from multiscale.bounds import laminate_stiffness
from multiscale.cell import CellProblem
from multiscale.compat import DOLFINX_VERSION
from multiscale.fe2 import DisplacementBC, FE2Problem, Traction
from multiscale.mesh import circular_inclusion, laminate
from multiscale.mesh.macro import MacroMesh, rectangle
from multiscale.physics import AnisotropicElasticity, IsotropicElasticity, J2Plasticity, NeoHookean

log = logging.getLogger(__name__)

HM_TOL = 1e-10
STRETCH = 0.03  # prescribed u_x on the right side at load factor 1 (unit square)
BCS = [
    DisplacementBC("right", STRETCH, component=0),  # the loading boundary: StepRecord.reaction
    DisplacementBC("left", 0.0, component=0),
    DisplacementBC("bottom", 0.0, component=1),
]
TRACTIONS = [Traction("top", (0.002, 0.0))]  # a shear load: the macro state is not homogeneous
ELASTIC = {
    "matrix": IsotropicElasticity.from_young(1.0, 0.3),
    "inclusion": IsotropicElasticity.from_young(10.0, 0.25),
}
PLASTIC = {
    "matrix": J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=0.1),
    "inclusion": IsotropicElasticity.from_young(10.0, 0.25),
}
HYPERELASTIC = {
    "matrix": NeoHookean.from_young(1.0, 0.3),
    "inclusion": NeoHookean.from_young(10.0, 0.25),
}


def cell(comm: MPI.Comm):
    return circular_inclusion(comm, 0.3, h=0.1)


def make_problem(
    comm: MPI.Comm, materials, n=(2, 2), bcs=BCS, macro: MacroMesh | None = None, **kwargs
) -> FE2Problem:
    """An FE² problem on the unit square; pass ``macro`` to compare two runs dof by dof (two
    meshes built one after the other may be partitioned differently: SCOTCH on dolfinx 0.11)."""
    macro = macro if macro is not None else rectangle(comm, (1.0, 1.0), n)
    kwargs.setdefault("tractions", TRACTIONS)
    return FE2Problem(macro, cell, materials, bcs=bcs, **kwargs)


def reaction(step) -> float:
    """x reaction on the loading boundary ``right`` (the first condition of BCS)."""
    return step.reactions["right"][0]


def reactions(step) -> np.ndarray:
    """All reaction components of a step, in the order of BCS."""
    return np.array([step.reactions[b.boundary] for b in BCS]).ravel()


def check_steps(result) -> None:
    """Every converged step: Hill–Mandel at every RVE (the largest residual over all points)."""
    assert result.steps
    for step in result.steps:
        assert step.quantities["max_hill_mandel"] < HM_TOL, (step.factor, step.quantities)


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def owned(u: dolfinx.fem.Function) -> np.ndarray:
    imap = u.function_space.dofmap.index_map
    return u.x.array[: imap.size_local * u.function_space.dofmap.index_map_bs].copy()


def global_rel(comm: MPI.Comm, a: np.ndarray, b: np.ndarray) -> float:
    num = comm.allreduce(float(np.sum((a - b) ** 2)), op=MPI.SUM)
    den = comm.allreduce(float(np.sum(b**2)), op=MPI.SUM)
    return math.sqrt(num / den)


# -- 6. linear phases: FE² = macro solve with C_hom ---------------------------------------------
@dataclass(frozen=True)
class NotDeclaredLinear:
    """Isotropic Hooke's law that does not say it is linear: FE² solves an RVE per point."""

    law: IsotropicElasticity
    kind: ClassVar[str] = "strain"

    def flux(self, g):
        return self.law.flux(g)


def reference_linear_solve(problem: FE2Problem, C_hom: np.ndarray) -> dolfinx.fem.Function:
    """Plain dolfinx LinearProblem with the homogenized law and the same loads at factor 1."""
    mesh = problem.macro.mesh
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    law = AnisotropicElasticity(C_hom)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(law.flux(ufl.sym(ufl.grad(u))), ufl.sym(ufl.grad(v))) * ufl.dx
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=problem.macro.facet_tags)
    L = ufl.inner(dolfinx.fem.Constant(mesh, np.zeros(2)), v) * ufl.dx
    for t in TRACTIONS:
        tag = problem.macro.boundaries[t.boundary]
        L += ufl.inner(dolfinx.fem.Constant(mesh, np.asarray(t.value)), v) * ds(tag)
    bcs = []
    for spec in BCS:
        Vc = V.sub(spec.component)
        dofs = dolfinx.fem.locate_dofs_topological(Vc, 1, problem.macro.facets(spec.boundary))
        bcs.append(dolfinx.fem.dirichletbc(dolfinx.fem.Constant(mesh, spec.value), dofs, Vc))
    uh = dolfinx.fem.Function(V)
    options = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
    kwargs = {"petsc_options_prefix": "test_fe2_reference_"} if DOLFINX_VERSION >= (0, 10) else {}
    lp = dolfinx.fem.petsc.LinearProblem(a, L, bcs=bcs, u=uh, petsc_options=options, **kwargs)
    lp.solve()
    return uh


@pytest.mark.mpi
def test_linear_phases_equal_homogenized_macro_solve(comm):
    C_hom = CellProblem(cell(comm), ELASTIC).solve("periodic").tensor
    macro = rectangle(comm, (1.0, 1.0), (3, 3))
    problem = make_problem(comm, ELASTIC, macro=macro)
    result = problem.solve([1.0])
    reference = reference_linear_solve(problem, C_hom)
    err = global_rel(comm, owned(problem.u), owned(reference))
    log.info("linear FE² vs C_hom macro solve: %.2e", err)
    assert err < 1e-9
    assert problem.micro.linear
    assert problem.micro.rve_solves == 1  # on every rank: one RVE solve, then cached
    assert result.micro["solves_total"] == comm.size
    u_cached = owned(problem.u)
    problem.destroy()

    # the same phases through a law without `linear = True`: one RVE solve per point and iteration
    wrapped = {name: NotDeclaredLinear(law) for name, law in ELASTIC.items()}
    problem = make_problem(comm, wrapped, macro=macro)
    result = problem.solve([1.0])
    assert not problem.micro.linear
    n_points = result.info["macro_gauss_points"]
    assert result.micro["solves_total"] >= 2 * n_points  # residual evaluated twice at least
    err = global_rel(comm, owned(problem.u), u_cached)
    log.info("per-point path vs cached: %.2e", err)
    assert err < 1e-8
    check_steps(result)
    problem.destroy()


# -- 7. quadratic macro Newton; 8. Hill–Mandel; 11. history ---------------------------------------
MAX_IT = 10  # macro Newton iterations allowed to both tangents
LOAD_UNLOAD = [0.5, 1.0, 0.0]


@pytest.fixture(scope="module")
def j2_cycle():
    """Consistent-tangent J2 run: two plastic loading steps, then unloading to zero."""
    problem = make_problem(
        MPI.COMM_WORLD, PLASTIC, tractions=(), petsc_options={"snes_max_it": MAX_IT}
    )
    result = problem.solve(LOAD_UNLOAD)
    u = owned(problem.u)
    problem.destroy()
    return result, u


@pytest.mark.mpi
def test_macro_newton_quadratic_with_consistent_tangent(comm, j2_cycle):
    result, _ = j2_cycle
    loading = result.steps[:2]
    for step in loading:
        K = assert_quadratic(step.residuals)
        log.info(
            "consistent, factor %.2f: residuals %s, r_k+1 r_0 / r_k^2 = %s",
            step.factor,
            ", ".join(f"{r:.2e}" for r in step.residuals),
            ", ".join(f"{k:.2f}" for k in K),
        )
        assert step.quantities["max_mean_p"] > 0.0  # a plastic step
        assert step.cuts == 0
    assert loading[1].quantities["max_mean_p"] > loading[0].quantities["max_mean_p"]


# -- the Taylor tangent changes how Newton converges, never the converged answer ------------------
LAMINATE = {  # layers normal to e1: 0.63 of E = 1, 0.37 of E = 10, nu = 0.3 (plane strain)
    "phase0": IsotropicElasticity.from_young(1.0, 0.3),
    "phase1": IsotropicElasticity.from_young(10.0, 0.3),
}


def laminate_cell(comm: MPI.Comm):
    return laminate(comm, 2, [0.63, 0.37], h=0.1)


@pytest.mark.mpi
@pytest.mark.parametrize("tangent", ["consistent", "taylor"])
@pytest.mark.parametrize("declared_linear", [True, False])
def test_laminate_reaction_is_the_closed_form_for_both_tangents(comm, tangent, declared_linear):
    """Uniform macro strain E11 = 0.01, E22 = 0 on a laminate RVE: the reaction on the right
    side is C11_hom * 0.01, C_hom the exact laminate stiffness (Backus), whatever the tangent,
    through the cached linear path and the per-point path (a law not declared linear)."""
    E11 = 0.01
    C = [law.tensor(2) for law in LAMINATE.values()]
    C11 = laminate_stiffness([0.63, 0.37], C, 0, 2)[0, 0]
    voigt = 0.63 * C[0][0, 0] + 0.37 * C[1][0, 0]
    assert abs(C11 * E11 - 0.0202) < 1e-4 and abs(voigt * E11 - 0.0583) < 1e-4  # the issue's
    laws = LAMINATE if declared_linear else {k: NotDeclaredLinear(v) for k, v in LAMINATE.items()}
    bcs = [
        DisplacementBC("right", E11, component=0),
        DisplacementBC("left", 0.0, component=0),
        DisplacementBC("bottom", 0.0, component=1),
        DisplacementBC("top", 0.0, component=1),
    ]
    problem = FE2Problem(
        rectangle(comm, (1.0, 1.0), (1, 1)),
        laminate_cell,
        laws,
        bcs=bcs,
        tangent=tangent,
        petsc_options={"snes_max_it": 80},
    )
    result = problem.solve([1.0])
    step = result.steps[-1]
    log.info(
        "laminate, %s tangent, %s: reaction %.10f (closed form %.10f, Voigt %.4f), %d its",
        tangent,
        "linear" if declared_linear else "per point",
        step.reactions["right"][0],
        C11 * E11,
        voigt * E11,
        step.iterations,
    )
    assert step.reactions["right"][0] == pytest.approx(C11 * E11, rel=1e-8)
    # the uniform state solves the macro problem of any homogeneous orthotropic tangent, so one
    # Newton step reaches it whatever the tangent (the convergence rates are tested below)
    assert step.iterations == 1
    problem.destroy()


@pytest.mark.mpi
def test_taylor_tangent_converges_linearly_to_the_consistent_answer(comm):
    """Neo-Hookean RVEs: the Taylor tangent needs many more macro Newton iterations, with a
    residual ratio that stays away from zero (linear convergence), and ends at the answer of
    the consistent tangent."""
    runs = {}
    for tangent in ("consistent", "taylor"):
        problem = make_problem(
            comm,
            HYPERELASTIC,
            n=(1, 1),
            tractions=(),
            tangent=tangent,
            petsc_options={"snes_max_it": 60},
            max_cuts=0,
        )
        runs[tangent] = problem.solve([0.5]).steps[0]
        problem.destroy()
    c, t = runs["consistent"], runs["taylor"]
    ratios = np.array(t.residuals[2:]) / np.array(t.residuals[1:-1])
    log.info(
        "Neo-Hookean: consistent %d its, Taylor %d its (ratios %.2f..%.2f), reactions %.12f %.12f",
        c.iterations,
        t.iterations,
        ratios.min(),
        ratios.max(),
        reaction(c),
        reaction(t),
    )
    assert c.iterations <= 5
    assert t.iterations >= 3 * c.iterations
    assert np.all((ratios > 0.2) & (ratios < 0.9)), ratios
    assert reaction(t) == pytest.approx(reaction(c), rel=1e-7)


@pytest.mark.mpi
def test_hill_mandel_at_every_step(j2_cycle):
    result, _ = j2_cycle
    check_steps(result)
    hm = [s.quantities["max_hill_mandel"] for s in result.steps]
    log.info("max Hill-Mandel residual per step: %s", ", ".join(f"{h:.1e}" for h in hm))
    assert len(hm) == len(LOAD_UNLOAD)
    assert max(hm) > 0.0  # computed from real RVE solves, not the linear shortcut


@pytest.mark.mpi
def test_unloading_leaves_plastic_state_j2_but_not_neo_hookean(comm, j2_cycle):
    result, u = j2_cycle
    peak, end = result.steps[1], result.steps[2]
    assert (peak.factor, end.factor) == (1.0, 0.0)
    log.info("J2: reaction at peak %.4e, after unloading %.4e", reaction(peak), reaction(end))
    assert reaction(peak) > 0.0
    assert abs(reaction(end)) > 0.05 * reaction(peak)  # residual stress at zero displacement
    assert reaction(end) < 0.0  # the stretched, yielded body pulled back to its original length
    mean_p = [s.quantities["max_mean_p"] for s in result.steps]
    assert mean_p[1] > 0.0 and all(b >= a for a, b in itertools.pairwise(mean_p))
    residual_u = math.sqrt(comm.allreduce(float(np.sum(u**2)), op=MPI.SUM))
    assert residual_u > 1e-3 * STRETCH  # and a residual (plastic) deformation

    problem = make_problem(comm, HYPERELASTIC, tractions=())
    result = problem.solve([0.5, 1.0, 0.0])
    check_steps(result)
    steps = result.steps
    log.info(
        "Neo-Hookean: reactions %s", ", ".join(f"{s.factor}: {reaction(s):.3e}" for s in steps)
    )
    assert reaction(steps[1]) > 0.0
    assert np.abs(reactions(steps[2])).max() < 1e-8 * reaction(steps[1])  # elastic: back to zero
    u_end = comm.allreduce(float(np.abs(problem.u.x.array).max()), op=MPI.MAX)
    assert u_end < 1e-8 * STRETCH
    problem.destroy()


# -- 9. rank independence ------------------------------------------------------------------------
@pytest.mark.mpi
def test_rank_independence(comm):
    if comm.size != 2:
        pytest.skip("compares 2 ranks with 1 rank and group_size 2 with 1: run on 2 ranks")
    runs = {}
    for label, c, group in (("world", comm, 1), ("self", MPI.COMM_SELF, 1), ("group2", comm, 2)):
        problem = make_problem(c, PLASTIC, group_size=group)
        result = problem.solve([0.5, 1.0])
        check_steps(result)
        runs[label] = [(reactions(s), s.quantities["max_mean_p"]) for s in result.steps]
        problem.destroy()
    for label in ("world", "group2"):
        errors = [
            rel(r, r_ref) for (r, _), (r_ref, _) in zip(runs[label], runs["self"], strict=True)
        ]
        log.info("%s vs COMM_SELF: reactions differ by %s", label, errors)
        assert max(errors) < 1e-8, (label, runs[label], runs["self"])
        for (_, p), (_, p_ref) in zip(runs[label], runs["self"], strict=True):
            assert p == pytest.approx(p_ref, rel=1e-8)


# -- 10. step cutting ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.mpi
def test_step_cutting_equals_small_steps(comm):
    # a micro Newton limited to 4 iterations fails on the full step and on its half, converges
    # on quarters, and the step grows back after two converged sub-steps
    limited = {"petsc_options": {"snes_max_it": 4}}
    macro = rectangle(comm, (1.0, 1.0), (2, 2))
    cut = make_problem(comm, PLASTIC, rve_options=limited, tractions=(), macro=macro)
    result = cut.solve([1.0])
    check_steps(result)
    factors = [s.factor for s in result.steps]
    log.info("cut run: factors %s, failed attempts %s", factors, result.failed_attempts)
    assert result.failed_attempts
    assert all("RVE Newton" in a["cause"] for a in result.failed_attempts)
    assert result.failed_attempts[0]["from"] == 0.0 and result.failed_attempts[0]["to"] == 1.0
    assert result.steps[0].cuts >= 1
    assert factors[-1] == pytest.approx(1.0, abs=1e-12) and len(factors) >= 2
    steps = np.diff([0.0, *factors])
    assert steps.max() > steps.min()  # regrown after the cuts

    fine = make_problem(comm, PLASTIC, tractions=(), macro=macro)
    reference = fine.solve(factors)
    assert not reference.failed_attempts
    for a, b in zip(result.steps, reference.steps, strict=True):
        assert a.factor == b.factor
        assert rel(reactions(a), reactions(b)) < 1e-8
    assert global_rel(comm, owned(cut.u), owned(fine.u)) < 1e-8
    # the committed micro history (plastic strain of every micro point) is that of the fine run
    ref_state = fine.micro.state_committed
    scale = comm.allreduce(float(np.abs(ref_state).max()), op=MPI.MAX)
    diff = comm.allreduce(float(np.abs(cut.micro.state_committed - ref_state).max()), op=MPI.MAX)
    assert scale > 0.0
    assert diff <= 1e-8 * scale
    cut.destroy()
    fine.destroy()


@pytest.mark.mpi
def test_too_many_cuts_raise_and_roll_back(comm):
    problem = make_problem(
        comm, PLASTIC, rve_options={"petsc_options": {"snes_max_it": 3}}, max_cuts=1
    )
    with pytest.raises(RuntimeError, match=r"after 1 cuts.*RVE Newton .* did not converge"):
        problem.solve([1.0])
    attempts = problem.result.failed_attempts
    assert [a["to"] for a in attempts] == [1.0, 0.5]
    assert not problem.result.steps
    # rolled back: no history, no displacement
    micro = problem.micro
    assert not np.any(micro.committed["state"]) and not np.any(micro.trial["state"])
    assert not np.any(micro.trial["fluctuation"]) and not np.any(micro.trial["sensitivity"])
    assert not np.any(problem.u.x.array)
    problem.destroy()

    # a macro Newton that may not iterate enough: the cause is named as well
    problem = make_problem(comm, PLASTIC, petsc_options={"snes_max_it": 1}, max_cuts=1)
    with pytest.raises(
        RuntimeError, match=r"after 1 cuts.*macro Newton \(.*\) did not converge: DIVERGED_MAX_IT"
    ):
        problem.solve([1.0])
    assert len(problem.result.failed_attempts) == 2
    problem.destroy()
