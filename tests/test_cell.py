"""Cell problems against independent references: closed forms, bounds and rank independence."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.bounds import (
    dykhne_checkerboard,
    hashin_shtrikman_conductivity,
    hashin_shtrikman_elastic,
    laminate_conductivity,
    laminate_stiffness,
    reuss_bound,
    voigt_bound,
)
from multiscale.cell import CellProblem, homogenize
from multiscale.mesh import (
    checkerboard,
    circular_inclusion,
    laminate,
    spherical_inclusion,
)
from multiscale.physics import (
    AnisotropicConductivity,
    AnisotropicElasticity,
    Conductivity,
    IsotropicElasticity,
)
from multiscale.tensors import bulk_shear_from_stiffness, energy_order, is_spd

log = logging.getLogger(__name__)

BCS = ("periodic", "kubc", "subc")
HM_TOL = 1e-10


def _check_common(result, tol=HM_TOL):
    """Symmetry, positive definiteness and Hill–Mandel of every result."""
    C = result.tensor
    assert np.abs(C - C.T).max() <= 1e-8 * np.abs(C).max()
    assert is_spd(C)
    assert result.hill_mandel_residual < tol, result.hill_mandel


# -- homogeneous cells: the phase tensor back, exactly --------------------------------------------
@pytest.fixture(scope="module")
def disk2d():
    return circular_inclusion(MPI.COMM_WORLD, 0.3, h=0.1)


@pytest.fixture(scope="module")
def sphere3d():
    return spherical_inclusion(MPI.COMM_WORLD, 0.2, h=0.25)


@pytest.mark.mpi
@pytest.mark.parametrize("bc", BCS)
def test_homogeneous_cell_returns_phase_tensor(disk2d, sphere3d, bc):
    K2 = np.array([[2.0, 0.3], [0.3, 1.0]])
    C3 = IsotropicElasticity.from_young(3.0, 0.25).tensor(3)
    C3[0, 1] += 0.2  # make it anisotropic but SPD
    C3[1, 0] += 0.2
    cases = [
        (disk2d, AnisotropicConductivity(K2), K2),
        (disk2d, IsotropicElasticity.from_young(2.0, 0.3), None),
        (sphere3d, Conductivity(4.0), 4.0 * np.eye(3)),
        (sphere3d, AnisotropicElasticity(C3), C3),
    ]
    for cell, law, expected in cases:
        expected = law.tensor(cell.dim) if expected is None else expected
        result = homogenize(cell, {name: law for name in cell.phases}, bc)
        np.testing.assert_allclose(result.tensor, expected, rtol=1e-10, atol=1e-10)
        _check_common(result)


# -- laminates -----------------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("dim", [2, 3])
def test_laminate_conductivity_harmonic_and_arithmetic_means(dim):
    fractions = (0.3, 0.7)
    cell = laminate(MPI.COMM_WORLD, dim, fractions, h=0.2 if dim == 3 else 0.1)
    k = {"phase0": 1.0, "phase1": 10.0}
    result = homogenize(cell, {n: Conductivity(v) for n, v in k.items()}, "periodic")
    k_normal, k_parallel = laminate_conductivity(fractions, [1.0, 10.0])
    expected = np.diag([k_normal] + [k_parallel] * (dim - 1))
    np.testing.assert_allclose(result.tensor, expected, rtol=1e-8, atol=1e-8)
    _check_common(result)


@pytest.mark.mpi
@pytest.mark.parametrize("dim", [2, 3])
def test_laminate_elastic_closed_form(dim):
    fractions = (0.4, 0.6)
    cell = laminate(MPI.COMM_WORLD, dim, fractions, h=0.2 if dim == 3 else 0.1)
    laws = [IsotropicElasticity.from_young(1.0, 0.2), IsotropicElasticity.from_young(20.0, 0.35)]
    result = homogenize(cell, {"phase0": laws[0], "phase1": laws[1]}, "periodic")
    expected = laminate_stiffness(fractions, [law.tensor(dim) for law in laws], 0, dim)
    np.testing.assert_allclose(result.tensor, expected, rtol=1e-8, atol=1e-8 * expected.max())
    _check_common(result)


# -- checkerboard: Dykhne–Keller ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.mpi
def test_checkerboard_converges_to_sqrt_k1_k2():
    k1, k2 = 1.0, 10.0
    exact = dykhne_checkerboard(k1, k2)
    errors, hs = [], [0.1, 0.05, 0.025, 0.0125]
    for h in hs:
        cell = checkerboard(MPI.COMM_WORLD, 2, h=h)
        result = homogenize(cell, {"phase0": Conductivity(k1), "phase1": Conductivity(k2)})
        A = result.tensor
        _check_common(result)
        # Square symmetry, up to the asymmetry of an unstructured mesh (far below the error).
        assert abs(A[0, 0] - A[1, 1]) < 1e-4 * exact
        assert abs(A[0, 1]) < 1e-4 * exact
        errors.append(abs(A[0, 0] - exact) / exact)
    rates = np.log(np.array(errors[:-1]) / errors[1:]) / np.log(2.0)
    log.info("checkerboard relative errors %s, rates %s", errors, rates)
    if MPI.COMM_WORLD.rank == 0:
        print(f"\ncheckerboard h={hs} rel. errors={errors} observed rates={rates}")
    assert all(e0 > e1 for e0, e1 in itertools.pairwise(errors))
    assert errors[-1] < 0.04
    # The four-phase junctions carry a gradient singularity |x|^(alpha - 1) with alpha < 1 for any
    # contrast, which limits the rate of the effective coefficient below the smooth O(h^2)
    # (observed about 0.8 for contrast 10 on quasi-uniform meshes).
    assert rates.min() > 0.6


# -- inclusions: bounds and the ordering of the boundary conditions ------------------------------
def _ordering(results):
    sub, per, kub = (results[bc].tensor for bc in ("subc", "periodic", "kubc"))
    scale = np.abs(per).max()
    assert energy_order(sub, per) > -1e-10 * scale, "C_SUBC <= C_PBC violated"
    assert energy_order(per, kub) > -1e-10 * scale, "C_PBC <= C_KUBC violated"
    return energy_order(sub, kub)


@pytest.mark.mpi
def test_disk_conductivity_within_bounds_and_bc_order(disk2d):
    k = [1.0, 10.0]
    problem = CellProblem(disk2d, {"matrix": Conductivity(k[0]), "inclusion": Conductivity(k[1])})
    results = {bc: problem.solve(bc) for bc in BCS}
    fr = problem.volume_fractions
    f = [fr["matrix"], fr["inclusion"]]
    lo, hi = hashin_shtrikman_conductivity(f, k, 2)
    A = results["periodic"].tensor
    assert abs(A[0, 0] - A[1, 1]) < 1e-6 * A[0, 0]  # square symmetry: isotropic in 2D
    assert lo < A[0, 0] < hi
    assert reuss_bound(f, k) < lo and hi < voigt_bound(f, k)
    for r in results.values():
        _check_common(r)
    gap = _ordering(results)
    log.info("disk conductivity KUBC-SUBC gap (min eigenvalue): %.4e", gap)


@pytest.mark.mpi
@pytest.mark.parametrize("shape", ["disk2d", "sphere3d"])
def test_inclusion_elasticity_within_bounds_and_bc_order(shape, request):
    cell = request.getfixturevalue(shape)
    laws = {
        "matrix": IsotropicElasticity.from_young(1.0, 0.3),
        "inclusion": IsotropicElasticity.from_young(10.0, 0.3),
    }
    problem = CellProblem(cell, laws)
    results = {bc: problem.solve(bc) for bc in BCS}
    f = [problem.volume_fractions["matrix"], problem.volume_fractions["inclusion"]]
    dim = cell.dim
    kappa, mu = zip(
        *(bulk_shear_from_stiffness(law.tensor(dim), dim) for law in laws.values()), strict=True
    )
    hs = hashin_shtrikman_elastic(f, kappa, mu, dim)
    CV = voigt_bound(f, [law.tensor(dim) for law in laws.values()])
    CR = reuss_bound(f, [law.tensor(dim) for law in laws.values()])
    for bc, r in results.items():
        _check_common(r)
        C = r.tensor
        assert energy_order(CR, C) > -1e-10 and energy_order(C, CV) > -1e-10, bc
    # The bulk response of a cell with square/cubic symmetry lies within the HS bulk bounds.
    C = results["periodic"].tensor
    kappa_eff = C[:dim, :dim].sum() / dim**2
    assert hs["bulk_lower"] < kappa_eff < hs["bulk_upper"]
    gap = _ordering(results)
    log.info("%s KUBC-SUBC gap: %.4e", shape, gap)


# -- rank independence -----------------------------------------------------------------------------
@pytest.mark.mpi
def test_results_independent_of_rank_count():
    """The distributed result equals the serial one on every rank (each rank solves alone)."""
    world = MPI.COMM_WORLD
    laws = {
        "matrix": IsotropicElasticity.from_young(1.0, 0.3),
        "inclusion": IsotropicElasticity.from_young(10.0, 0.3),
    }
    distributed = {bc: homogenize(circular_inclusion(world, 0.3, h=0.1), laws, bc) for bc in BCS}
    serial = {bc: homogenize(circular_inclusion(MPI.COMM_SELF, 0.3, h=0.1), laws, bc) for bc in BCS}
    for bc in BCS:
        np.testing.assert_allclose(
            distributed[bc].tensor, serial[bc].tensor, rtol=1e-8, atol=1e-12, err_msg=bc
        )


# -- bad input -------------------------------------------------------------------------------------
def test_missing_phase_material_is_an_error(disk2d):
    with pytest.raises(ValueError, match="no material given for phase"):
        CellProblem(disk2d, {"matrix": Conductivity(1.0)})


def test_unknown_phase_name_is_an_error(disk2d):
    with pytest.raises(KeyError, match="no phase named"):
        CellProblem(disk2d, {"matrix": Conductivity(1.0), "fibre": Conductivity(2.0)})


def test_mixed_laws_are_an_error(disk2d):
    with pytest.raises(ValueError, match="one kind of law"):
        CellProblem(
            disk2d,
            {"matrix": Conductivity(1.0), "inclusion": IsotropicElasticity.from_young(1, 0.3)},
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conductivity(-1.0),
        lambda: Conductivity(float("nan")),
        lambda: IsotropicElasticity.from_young(-1.0, 0.3),
        lambda: IsotropicElasticity.from_young(1.0, 0.5),
        lambda: AnisotropicConductivity(np.array([[1.0, 2.0], [2.0, 1.0]])),
    ],
)
def test_bad_material_parameters_are_errors(make):
    with pytest.raises(ValueError):
        make()


def test_unknown_bc_is_an_error(disk2d):
    problem = CellProblem(disk2d, {"matrix": Conductivity(1.0), "inclusion": Conductivity(2.0)})
    with pytest.raises(ValueError, match="unknown boundary condition"):
        problem.solve("dirichlet")


# -- the energy form of the tensor: quadratic in the algebraic error -------------------------------
@pytest.mark.mpi
def test_energy_tensor_error_is_quadratic_in_the_algebraic_error():
    """An inexact iterative solve (CG + GAMG stopped early) against the exact discrete solution
    (MUMPS LU on the same mesh): the tensor in energy form is off by the square of the
    algebraic error, so at a relative residual r it is within about r**2 of the exact discrete
    tensor (measured 0.5-0.9 r**2 on 1 and 3 ranks), while the mean fluxes of the same solves
    are off by about r/20."""
    cell = spherical_inclusion(MPI.COMM_WORLD, 0.2, h=0.1)
    laws = {
        "matrix": IsotropicElasticity.from_young(1.0, 0.3),
        "inclusion": IsotropicElasticity.from_young(10.0, 0.3),
    }
    exact = CellProblem(cell, laws, petsc_options={"ksp_type": "preonly", "pc_type": "lu"})
    C = exact.solve().tensor
    scale = np.abs(C).max()
    cg = {"ksp_type": "cg", "pc_type": "gamg", "mg_levels_ksp_max_it": 2}
    errors, flux_errors = [], []
    for rtol in (1e-3, 1e-4):
        result = CellProblem(cell, laws, petsc_options={**cg, "ksp_rtol": rtol}).solve()
        errors.append(np.abs(result.tensor - C).max() / scale)
        flux_errors.append(np.abs(result.mean_flux - C).max() / scale)
        assert errors[-1] < 2.0 * rtol**2, (rtol, errors[-1])
        assert errors[-1] < 0.1 * flux_errors[-1], (rtol, errors[-1], flux_errors[-1])
    # ten times smaller residual, about a hundred times smaller energy error
    assert errors[1] < errors[0] / 30.0, errors


def test_tensor_rtol_sets_the_iterative_tolerance(sphere3d):
    from multiscale.cell import default_petsc_options

    big = default_petsc_options(3, 100_000, "strain", tensor_rtol=1e-8)
    assert big["ksp_type"] == "cg" and big["ksp_rtol"] == pytest.approx(np.sqrt(1e-8 / 3))
    assert default_petsc_options(3, 100_000, "strain")["ksp_rtol"] == 1e-9
    with pytest.raises(ValueError, match="tensor_rtol"):
        CellProblem(
            sphere3d, {"matrix": Conductivity(1.0), "inclusion": Conductivity(2.0)}, tensor_rtol=0.0
        )


@pytest.mark.mpi
@pytest.mark.parametrize("physics", ["elasticity", "conductivity"])
def test_large_cell_default_multigrid_meets_the_tensor_accuracy(physics):
    """The default solver of large 3D cells (CG with BoomerAMG where PETSc has hypre, else
    GAMG), forced on a small cell, against MUMPS LU on the same mesh: at ``tensor_rtol`` 1e-8
    the tensor is within 1e-8 of the direct solve's."""
    from multiscale.cell import default_petsc_options

    cell = spherical_inclusion(MPI.COMM_WORLD, 0.2, h=0.1)
    if physics == "elasticity":
        laws = {
            "matrix": IsotropicElasticity.from_young(1.0, 0.3),
            "inclusion": IsotropicElasticity.from_young(10.0, 0.3),
        }
        kind = "strain"
    else:
        laws = {"matrix": Conductivity(1.0), "inclusion": Conductivity(10.0)}
        kind = "scalar"
    direct = CellProblem(cell, laws, petsc_options={"ksp_type": "preonly", "pc_type": "lu"})
    C = direct.solve().tensor
    options = default_petsc_options(3, 10**6, kind, tensor_rtol=1e-8)
    result = CellProblem(cell, laws, petsc_options=options).solve()
    assert result.solver["options"]["pc_type"] == options["pc_type"]
    assert min(result.solver["iterations"]) > 1  # iterative indeed
    assert np.abs(result.tensor - C).max() < 1e-8 * np.abs(C).max()
