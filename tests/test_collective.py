"""Failures that happen on one rank only become failures every rank sees: never a hang.

Run serially and under ``mpirun -n 2`` and ``-n 3`` (the CI does all three).  Each test injects
an error on the *last* rank alone and checks that every rank leaves the solve in the same way,
with the same message: a failed Newton iterate, a cut load step, one error on all ranks, or,
from the command line, exit status 2 (every rank failed) or an abort of the whole job (one rank
failed alone).  Also: a finite-strain trial that inverts the macro deformation (det F <= 0) is
cut, and the run then converges where smaller steps are admissible.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dolfinx
import numpy as np
import pytest
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.fe2 import DisplacementBC, FE2Problem, Traction
from multiscale.fe2.dns import DNSProblem
from multiscale.mesh import circular_inclusion
from multiscale.mesh.macro import rectangle
from multiscale.mesh.tiled import tiled_inclusions
from multiscale.nonlinear import FormAssembly, LoadStepError, NewtonSolver, free_garbage
from multiscale.physics import IsotropicElasticity, J2Plasticity, NeoHookean

LAST = MPI.COMM_WORLD.size - 1
PLASTIC = {
    "matrix": J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=0.1),
    "inclusion": IsotropicElasticity.from_young(10.0, 0.25),
}
HYPERELASTIC = {
    "matrix": NeoHookean.from_young(1.0, 0.3),
    "inclusion": NeoHookean.from_young(10.0, 0.25),
}


def same_on_all_ranks(comm: MPI.Comm, value) -> None:
    values = comm.allgather(value)
    assert all(v == values[0] for v in values), values


class Injected(RuntimeError):
    """The error planted on one rank."""


# -- the Newton solver ---------------------------------------------------------------------------
def poisson_newton(comm: MPI.Comm, on_iterate, **kwargs) -> NewtonSolver:
    """-div((1 + u^2) grad u) = 1 on the unit square, u = 0 on the boundary."""
    mesh = dolfinx.mesh.create_unit_square(comm, 8, 8)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    u, v, du = dolfinx.fem.Function(V), ufl.TestFunction(V), ufl.TrialFunction(V)
    F = (1 + u**2) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - v * ufl.dx
    mesh.topology.create_connectivity(1, 2)
    dofs = dolfinx.fem.locate_dofs_topological(
        V, 1, dolfinx.mesh.exterior_facet_indices(mesh.topology)
    )
    bc = dolfinx.fem.dirichletbc(0.0, dofs, V)
    assembly = FormAssembly(
        dolfinx.fem.form(F), dolfinx.fem.form(ufl.derivative(F, u, du)), u, [bc]
    )
    return NewtonSolver(assembly, on_iterate=on_iterate, name="test Newton", **kwargs)


@pytest.mark.mpi
def test_newton_fails_on_every_rank_when_one_rank_raises(comm):
    calls = {"n": 0}

    def on_iterate(x):
        calls["n"] += 1
        if comm.rank == LAST and calls["n"] == 2:
            raise Injected("planted in the second iterate")

    with poisson_newton(comm, on_iterate) as newton:
        newton.x.set(0.0)
        outcome = newton.solve()
        assert not outcome.converged
        assert outcome.iterations <= 1 and len(outcome.residuals) == 1  # one good residual
        assert "planted in the second iterate" in outcome.cause
        if comm.size > 1:
            assert outcome.cause.startswith(f"rank {LAST}: ")
        same_on_all_ranks(comm, (outcome.reason, outcome.iterations, outcome.cause))

        # the same solver, without the failure, converges (quadratically: 4 iterations)
        calls["n"] = -1000
        newton.x.set(0.0)
        outcome = newton.solve()
        assert outcome.converged and outcome.cause is None
        assert outcome.residuals[-1] < 1e-9 * outcome.residuals[0]
        assert outcome.iterations <= 5
    newton.destroy()  # idempotent after the with block


@pytest.mark.mpi
@pytest.mark.parametrize("symmetric", [False, True], ids=["LU", "Cholesky"])
def test_newton_recovers_after_a_failed_factorization(comm, symmetric):
    """A singular Jacobian makes the factorization fail (a failed linear solve, or a PETSc error
    raised by MUMPS inside the solve); PETSc keeps the failed factor, so without a reset every
    later solve fails too.  The next solve with a good Jacobian must factorize afresh and
    converge (so that a cut load step can succeed)."""
    with poisson_newton(comm, lambda x: None, symmetric=symmetric) as newton:
        jacobian = newton.assembly.jacobian
        singular = {"on": True}

        def maybe_singular(A):
            jacobian(A)
            if singular["on"]:
                A.zeroEntries()

        newton.assembly.jacobian = maybe_singular
        newton.x.set(0.0)
        outcome = newton.solve()
        assert not outcome.converged
        assert "DIVERGED_LINEAR_SOLVE" in outcome.cause or "PETSc error" in outcome.cause
        if "DIVERGED_LINEAR_SOLVE" in outcome.cause:  # MUMPS's own word: a singular matrix
            assert "MUMPS INFOG(1) = -" in outcome.cause, outcome.cause
        same_on_all_ranks(comm, (outcome.reason, outcome.cause))

        singular["on"] = False
        newton.x.set(0.0)
        outcome = newton.solve()
        assert outcome.converged, outcome.cause
        assert outcome.residuals[-1] < 1e-9 * outcome.residuals[0]


@pytest.mark.mpi
def test_newton_factorization_options_reach_mumps_and_leave_with_the_solver(comm):
    """SNES factorizes inside ``solve``, after ``setFromOptions``: options MUMPS reads there
    (its workspace headroom ICNTL(14), by default 100 %) must still be in the database then, and
    must be gone once the solver is destroyed."""
    with poisson_newton(comm, lambda x: None, petsc_options={"mat_mumps_icntl_14": 37}) as newton:
        newton.x.set(0.0)
        assert newton.solve().converged
        F = newton.snes.getKSP().getPC().getFactorMatrix()
        assert F.getMumpsIcntl(14) == 37
        key = f"{newton.prefix}mat_mumps_icntl_14"
        assert PETSc.Options().hasName(key)
        newton.set_options({"snes_linesearch_type": "bt"})  # a retry keeps them too
        newton.x.set(0.0)
        assert newton.solve().converged
        assert newton.snes.getKSP().getPC().getFactorMatrix().getMumpsIcntl(14) == 37
    assert not PETSc.Options().hasName(key)
    with poisson_newton(comm, lambda x: None) as newton:  # the package default
        newton.x.set(0.0)
        assert newton.solve().converged
        assert newton.snes.getKSP().getPC().getFactorMatrix().getMumpsIcntl(14) == 100


class SaddleAssembly:
    """R(x) = K x - 1 for a random saddle-point matrix K = [[A, B^T], [B, 0]] with an
    indefinite A: LU must pivot, and MUMPS delays pivots it did not plan for."""

    def __init__(self, comm: MPI.Comm, n: int = 1000) -> None:
        import scipy.sparse as sp

        A = sp.random(n, n, density=0.02, random_state=1)
        B = sp.random(n // 2, n, density=0.02, random_state=2)
        self.K = sp.bmat([[A + A.T + 1e-8 * sp.eye(n), B.T], [B, None]]).tocsr()
        self.comm = comm

    def create_matrix(self) -> PETSc.Mat:
        M = PETSc.Mat().createAIJ(self.K.shape, comm=self.comm)
        M.setPreallocationNNZ(int(np.diff(self.K.indptr).max()))
        M.setUp()
        return M

    def create_vector(self) -> PETSc.Vec:
        v = PETSc.Vec().createMPI(self.K.shape[0], comm=self.comm)
        v.set(0.0)
        return v

    def set_iterate(self, x: PETSc.Vec) -> None:
        pass

    def residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        r0, r1 = b.getOwnershipRange()
        full = np.concatenate(self.comm.allgather(x.array_r.copy()))
        b.array[:] = self.K[r0:r1] @ full - 1.0

    def jacobian(self, A: PETSc.Mat) -> None:
        r0, r1 = A.getOwnershipRange()
        rows = self.K[r0:r1]
        for k in range(r1 - r0):
            lo, hi = rows.indptr[k], rows.indptr[k + 1]
            A.setValues([r0 + k], rows.indices[lo:hi], rows.data[lo:hi])
        A.assemble()


@pytest.mark.mpi
def test_newton_repeats_a_factorization_short_of_workspace(comm):
    """Without workspace headroom (ICNTL(14) = 0) MUMPS runs out of workspace on the delayed
    pivots of a saddle-point Jacobian (INFOG(1) = -9).  That is not a Newton failure: the solve
    is repeated from the same start with headroom, and converges."""
    with NewtonSolver(
        SaddleAssembly(comm), petsc_options={"mat_mumps_icntl_14": 0}, name="saddle Newton"
    ) as newton:
        newton.x.set(0.0)
        outcome = newton.solve()
        assert outcome.converged, outcome.cause
        assert outcome.residuals[-1] < 1e-9 * outcome.residuals[0]
        assert newton.petsc_options["mat_mumps_icntl_14"] == 100  # it was repeated
        assert newton.snes.getKSP().getPC().getFactorMatrix().getMumpsIcntl(14) == 100


# -- FE²: an RVE that fails on one rank ------------------------------------------------------------
def fe2_problem(comm: MPI.Comm, **kwargs) -> FE2Problem:
    return FE2Problem(
        rectangle(comm, (1.0, 1.0), (2, 2)),
        lambda c: circular_inclusion(c, 0.3, h=0.15),
        PLASTIC,
        bcs=[DisplacementBC("top", 0.02, 1), DisplacementBC("bottom", (0.0, 0.0))],
        **kwargs,
    )


def plant(problem: FE2Problem, failures: int | None) -> dict:
    """Make the RVE solve raise on the last rank: ``failures`` times, or always (``None``)."""
    count = {"n": 0}
    solve = problem.micro.rve.solve

    def failing(G, *args, **kwargs):
        count["n"] += 1
        if problem.comm.rank == LAST and (failures is None or count["n"] <= failures):
            raise Injected(f"planted in RVE solve {count['n']}")
        return solve(G, *args, **kwargs)

    problem.micro.rve.solve = failing
    return count


@pytest.mark.mpi
def test_fe2_rve_failure_on_one_rank_cuts_the_step_everywhere(comm):
    problem = fe2_problem(comm)
    plant(problem, failures=1)
    result = problem.solve([1.0])
    attempts = result.failed_attempts
    assert len(attempts) == 1 and attempts[0]["to"] == 1.0
    assert "Injected: planted in RVE solve 1" in attempts[0]["cause"]
    assert "RVE at the Gauss point" in attempts[0]["cause"]
    assert [s.factor for s in result.steps][-1] == pytest.approx(1.0)
    assert result.steps[0].cuts == 1
    same_on_all_ranks(comm, [(a["from"], a["to"], a["cause"]) for a in attempts])
    same_on_all_ranks(comm, [s.factor for s in result.steps])
    reaction = result.curve()[-1, 1]

    # the same run without the failure reaches the same state through the same sub-steps
    reference = fe2_problem(comm)
    ref = reference.solve([s.factor for s in result.steps])
    assert reaction == pytest.approx(ref.curve()[-1, 1], rel=1e-9)
    problem.destroy()
    reference.destroy()


@pytest.mark.mpi
def test_fe2_persistent_failure_on_one_rank_is_one_error_on_all(comm):
    problem = fe2_problem(comm, max_cuts=2)
    plant(problem, failures=None)
    with pytest.raises(LoadStepError) as info:
        problem.solve([1.0])
    message = str(info.value)
    assert message.startswith("load step from factor 0 towards 1 failed after 2 cuts")
    assert "Injected: planted in RVE solve" in message
    same_on_all_ranks(comm, message)
    assert problem.result.status == "failed" and problem.result.error == message
    assert [a["to"] for a in problem.result.failed_attempts] == [1.0, 0.5, 0.25]
    assert not problem.result.steps
    problem.destroy()


# -- det F <= 0: cut and retried -----------------------------------------------------------------
@pytest.mark.mpi
def test_fe2_inverted_trial_is_cut_then_converges(comm):
    """A compressive traction 3 on the top of a soft Neo-Hookean block: the first Newton iterate
    of the full step (the linear response) inverts the macro deformation; the step is cut, and
    the halved steps converge to the full load, where the bottom carries the whole force."""
    problem = FE2Problem(
        rectangle(comm, (1.0, 1.0), (1, 1)),
        lambda c: circular_inclusion(c, 0.3, h=0.2),
        HYPERELASTIC,
        bcs=[DisplacementBC("bottom", (0.0, 0.0))],
        tractions=[Traction("top", (0.0, -3.0))],
    )
    result = problem.solve([1.0])
    first = result.failed_attempts[0]
    assert (first["from"], first["to"]) == (0.0, 1.0)
    assert "det F > 0" in first["cause"]
    assert result.steps[-1].factor == pytest.approx(1.0)
    # global equilibrium: the reaction of the clamped bottom balances the applied force
    assert result.steps[-1].reactions["bottom"][1] == pytest.approx(3.0, rel=1e-9)
    assert abs(result.steps[-1].reactions["bottom"][0]) < 1e-9
    same_on_all_ranks(comm, [a["cause"] for a in result.failed_attempts])
    problem.destroy()


@pytest.mark.mpi
def test_dns_inverted_trial_is_cut_then_converges(comm):
    """The same on the fully resolved Neo-Hookean microstructure (det F checked at every
    quadrature point of every iterate), at the traction 0.5 that inverts the soft matrix in the
    first iterate of the full step."""
    tiled = tiled_inclusions(comm, 2, 0.3, h_cell=0.25)
    problem = DNSProblem(
        tiled,
        HYPERELASTIC,
        bcs=[DisplacementBC("bottom", (0.0, 0.0))],
        tractions=[Traction("top", (0.0, -0.5))],
    )
    result = problem.solve([1.0])
    assert result.failed_attempts and "det F" in result.failed_attempts[0]["cause"]
    assert result.steps[-1].factor == pytest.approx(1.0)
    assert result.steps[-1].reactions["bottom"][1] == pytest.approx(0.5, rel=1e-9)
    same_on_all_ranks(comm, [a["cause"] for a in result.failed_attempts])
    problem.destroy()


# -- the command line ----------------------------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import sys
    from mpi4py import MPI
    import multiscale.cli.homogenize as homogenize
    from multiscale.cli import main

    def run(args, comm):
        if {where}:
            raise {error}
        comm.barrier()  # the other ranks wait here for the failed one
        return 0

    homogenize.run = run
    sys.exit(main(["homogenize", "cell.msh", "--physics", "conductivity",
                   "--material", "matrix:k=1"]))
    """
)


def _launch(tmp_path: Path, nranks: int, where: str, error: str) -> subprocess.CompletedProcess:
    script = tmp_path / "fail.py"
    script.write_text(SCRIPT.format(where=where, error=error))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_COMM", "OMPI_MCA_orte", "PMIX_", "PRTE_", "OMPI_FILE"))
    }
    env["MULTISCALE_ERROR_TIMEOUT"] = "3"
    cmd = ["mpirun", "-n", str(nranks), "--oversubscribe", sys.executable, str(script)]
    return subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.serial_only
@pytest.mark.parametrize("nranks", [2, 3])
def test_cli_error_on_every_rank_is_one_line_and_status_2(tmp_path, nranks):
    proc = _launch(tmp_path, nranks, "True", 'ValueError("the mesh has no phase fibre")')
    lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert proc.returncode == 2, proc.stderr
    assert lines == ["error: the mesh has no phase fibre"], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.serial_only
@pytest.mark.parametrize("nranks", [2, 3])
def test_cli_error_on_one_rank_aborts_the_job(tmp_path, nranks):
    last = nranks - 1
    proc = _launch(tmp_path, nranks, f"comm.rank == {last}", 'ZeroDivisionError("planted")')
    assert proc.returncode != 0
    assert f"[rank {last}] error: ZeroDivisionError: planted" in proc.stderr, proc.stderr
    assert "aborting" in proc.stderr


def test_cli_internal_error_shows_its_type_and_no_traceback(tmp_path, capsys, monkeypatch):
    import multiscale.cli.homogenize as homogenize
    from multiscale.cli import main

    def run(args, comm):
        raise ZeroDivisionError("planted")

    if MPI.COMM_WORLD.size > 1:
        pytest.skip("the abort path is tested with mpirun above")
    monkeypatch.setattr(homogenize, "run", run)
    argv = ["homogenize", "c.msh", "--physics", "conductivity", "--material", "a:k=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: ZeroDivisionError: planted"
    assert main(["-vv", *argv]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.mpi
def test_garbage_collected_on_one_rank_only_is_not_a_collective():
    """A solver dropped without ``destroy()`` lives in a reference cycle (its SNES holds its
    callbacks) until the garbage collector, which runs at a moment of its own on each rank,
    reaches it.  Its finaliser must not free the MUMPS factor there (a collective): here rank 0
    collects alone and then meets the others in an allreduce and a new factorization; a
    collective finaliser would deadlock (the watchdog of conftest.py ends the run)."""
    comm = MPI.COMM_WORLD
    first = poisson_newton(comm, None)
    assert first.solve().converged
    del first
    if comm.rank == 0:
        gc.collect()
    assert comm.allreduce(1) == comm.size
    with poisson_newton(comm, None) as second:
        outcome = second.solve()
    same_on_all_ranks(comm, (outcome.converged, outcome.iterations))
    assert outcome.converged and outcome.iterations >= 3
    free_garbage(comm)  # what the dropped solver held, freed together
