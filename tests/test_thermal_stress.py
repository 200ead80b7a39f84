"""Macro thermal stress (:mod:`multiscale.coupling.thermal_stress`) against closed forms.

* a free homogeneous body (anisotropic law with shear coupling) takes the strain
  :math:`\\alpha\\Delta T` exactly, stress-free;
* a clamped one carries :math:`\\sigma = -\\beta\\Delta T` exactly;
* the interior curvature of a plane-strain bimetal strip (isotropic layers) against Timoshenko's
  formula, to discretization accuracy, at its measured rate; the general layered-strip formula
  against Timoshenko's explicit one;
* 1 vs N ranks.
"""

from __future__ import annotations

import logging

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from multiscale.coupling.thermal_stress import (
    AnisotropicThermoElastic,
    Support,
    ThermalStressProblem,
    fit_curvature,
    laminated_strip_curvature,
    strip_constants,
    timoshenko_bimetal_curvature,
)
from multiscale.physics.coupled import ThermoElastic
from multiscale.tensors import lame_from_young, voigt_to_strain

log = logging.getLogger(__name__)

DT = -100.0
# an anisotropic law with normal-shear coupling (SPD), GPa and 1/K
C_ANISO = np.array([[12.0, 4.0, 1.5], [4.0, 9.0, -0.8], [1.5, -0.8, 3.5]])
ALPHA_ANISO = np.array([3e-5, 1.2e-5, 4e-6])  # engineering shear


def _law_aniso() -> AnisotropicThermoElastic:
    return AnisotropicThermoElastic(C_ANISO, C_ANISO @ ALPHA_ANISO)


def _iso(E: float, nu: float, alpha: float) -> ThermoElastic:
    lmbda, mu = lame_from_young(E, nu)
    return ThermoElastic(lmbda, mu, alpha)


@pytest.mark.mpi
def test_free_body_expands_stress_free(comm):
    law = _law_aniso()
    assert np.allclose(law.alpha, ALPHA_ANISO, rtol=1e-14)
    mesh = dolfinx.mesh.create_rectangle(
        comm, [np.zeros(2), np.array([2.0, 1.0])], [8, 5], dolfinx.mesh.CellType.triangle
    )
    pins = [
        Support(lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0), (0, 1)),
        Support(lambda x: np.isclose(x[0], 2.0) & np.isclose(x[1], 0.0), (1,)),
    ]
    problem = ThermalStressProblem(mesh, {0: law}, supports=pins)
    u = problem.solve(DT)
    E = voigt_to_strain(ALPHA_ANISO * DT)
    omega = -E[1, 0]  # the rotation that keeps u_y(2, 0) = 0
    X = problem.V.tabulate_dof_coordinates()[:, :2]
    exact = X @ E.T + omega * np.stack([-X[:, 1], X[:, 0]], axis=1)
    err = np.abs(u.x.array.reshape(-1, 2) - exact).max() / np.abs(exact).max()
    err = comm.allreduce(err, op=MPI.MAX)
    _, s = problem.cell_stress()
    stress = comm.allreduce(np.abs(s).max(initial=0.0), op=MPI.MAX)
    scale = np.abs(law.beta * DT).max()
    log.info("free body: displacement error %.2e, max |stress|/|beta dT| %.2e", err, stress / scale)
    assert err < 1e-11
    assert stress < 1e-10 * scale


@pytest.mark.mpi
def test_clamped_body_stress_is_minus_beta_dT(comm):
    law = _law_aniso()
    mesh = dolfinx.mesh.create_rectangle(
        comm, [np.zeros(2), np.array([1.0, 1.0])], [4, 4], dolfinx.mesh.CellType.quadrilateral
    )
    clamp = Support(
        lambda x: (
            np.isclose(x[0], 0) | np.isclose(x[0], 1) | np.isclose(x[1], 0) | np.isclose(x[1], 1)
        )
    )
    problem = ThermalStressProblem(mesh, {7: law}, supports=[clamp], degree=2)
    u = problem.solve(DT)
    umax = comm.allreduce(np.abs(u.x.array).max(initial=0.0), op=MPI.MAX)
    mean = problem.mean_stress()
    err = np.abs(mean + law.beta * DT).max() / np.abs(law.beta * DT).max()
    log.info("clamped body: |u| %.2e, mean stress error %.2e", umax, err)
    assert umax < 1e-14
    assert err < 1e-12


def bimetal(comm: MPI.Comm, n: int, degree: int = 1) -> tuple[float, float]:
    """FE and closed-form curvature of a steel/aluminium strip, half-length 8, layers 0.5 thick,
    symmetric about x = 0, ``n`` elements through each layer."""
    steel, alu = _iso(210.0, 0.3, 1.2e-5), _iso(70.0, 0.33, 2.3e-5)
    L, h = 8.0, 0.5
    mesh = dolfinx.mesh.create_rectangle(
        comm,
        [np.zeros(2), np.array([L, 2 * h])],
        [int(L / h) * n, 2 * n],
        dolfinx.mesh.CellType.quadrilateral,
    )
    tdim = mesh.topology.dim
    ncells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    cells = np.arange(ncells, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)
    tags = dolfinx.mesh.meshtags(mesh, tdim, cells, np.where(mid[:, 1] < h, 1, 2).astype(np.int32))
    supports = [
        Support(lambda x: np.isclose(x[0], 0.0), (0,)),  # symmetry plane
        Support(lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0), (1,)),
    ]
    problem = ThermalStressProblem(
        mesh, {1: steel, 2: alu}, cell_tags=tags, supports=supports, degree=degree
    )
    u = problem.solve(DT)
    kappa, _ = fit_curvature(u, 0.0, (0.0, L - 4.0))
    _, exact = laminated_strip_curvature([h, h], [steel, alu], DT)
    return kappa, exact


def test_strip_formula_is_timoshenko():
    steel, alu = _iso(210.0, 0.3, 1.2e-5), _iso(70.0, 0.33, 2.3e-5)
    (E1, a1), (E2, a2) = strip_constants(steel), strip_constants(alu)
    # plane strain: E' = E/(1 - nu^2), alpha' = (1 + nu) alpha
    assert np.isclose(E1, 210.0 / (1 - 0.09), rtol=1e-13)
    assert np.isclose(a2, 1.33 * 2.3e-5, rtol=1e-13)
    for h1, h2 in ((0.5, 0.5), (0.3, 0.9)):
        _, kappa = laminated_strip_curvature([h1, h2], [steel, alu], DT)
        ref = timoshenko_bimetal_curvature(h1, h2, E1, E2, a1, a2, DT)
        assert abs(kappa / ref - 1) < 1e-12
    # cooled, the aluminium (top) shrinks more: the strip bends towards +y
    assert kappa > 0


@pytest.mark.mpi
def test_bimetal_curvature_converges_to_timoshenko(comm):
    errors = []
    for n in (2, 4, 8):
        kappa, exact = bimetal(comm, n)
        errors.append(abs(kappa / exact - 1))
    rates = np.log2(np.array(errors[:-1]) / errors[1:])
    log.info("bimetal Q1: relative curvature errors %s, rates %s", errors, rates)
    assert errors[-1] < 4e-3
    assert np.all(rates > 1.9)
    # the interior solution (u_x bilinear-quadratic, u_y quadratic in x per layer) lies in Q2:
    # only the end's boundary layer, decayed over 4 strip thicknesses, is left
    kappa, exact = bimetal(comm, 2, degree=2)
    log.info("bimetal Q2, 2 elements per layer: relative error %.2e", abs(kappa / exact - 1))
    assert abs(kappa / exact - 1) < 1e-8


@pytest.mark.mpi
def test_rank_independence(comm):
    if comm.size == 1:
        pytest.skip("compares 1 rank with several")
    kappa, _ = bimetal(comm, 2)
    serial, _ = bimetal(MPI.COMM_SELF, 2)
    assert abs(kappa / serial - 1) < 1e-10


def test_bad_input():
    with pytest.raises(ValueError, match="positive definite"):
        AnisotropicThermoElastic(-np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match="beta"):
        AnisotropicThermoElastic(np.eye(3), np.zeros(2))
    with pytest.raises(ValueError, match="components"):
        Support(lambda x: x[0] < 0, ())
