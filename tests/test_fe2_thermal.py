"""FE² with multi-field laws that carry a macro parameter: thermoelastic RVEs under a macro
temperature change, against closed forms.

* a laminate RVE (exact effective constants: the layered-medium formula of
  ``test_coupled_cell.laminate_closed_form``): free expansion under a uniform temperature change
  (the macro strain is :math:`\\alpha^*\\theta` and the stress zero, at every load step), and a
  bar held at its sides under a temperature that grows along it (:math:`u_x =
  \\beta^*_1 x^2/(2C^*_{11})`, :math:`\\sigma_{xx} = 0`, :math:`\\sigma_{yy} = (C^*_{12}
  \\beta^*_1/C^*_{11} - \\beta^*_2)\\,x`: P2 reproduces it);
* a disk RVE, macro body clamped: the stress is :math:`-\\beta^*\\theta` with :math:`\\beta^*`
  from Levin's exact relation and the RVE's own effective stiffness;
* bad input: unknown parameters, laws of more than the displacement, non-finite values.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import test_coupled_cell as coupled
from mpi4py import MPI

from multiscale.cell.rve import RVEProblem
from multiscale.fe2 import DisplacementBC, FE2Problem
from multiscale.mesh import circular_inclusion, laminate
from multiscale.mesh.macro import rectangle
from multiscale.physics import IsotropicElasticity
from multiscale.physics.coupled import ThermoElastic
from multiscale.tensors import tensor_to_stiffness

log = logging.getLogger(__name__)

FRACTIONS = [0.3, 0.7]
LAWS = [ThermoElastic(1.0, 0.5, 3e-2), ThermoElastic(20.0, 12.0, 1e-3)]
PHASES = {"phase0": LAWS[0], "phase1": LAWS[1]}
EXACT = 1e-10


def laminate_cell(comm: MPI.Comm):
    return laminate(comm, 2, FRACTIONS, h=0.1)


def laminate_constants() -> tuple[np.ndarray, np.ndarray]:
    """Exact C* (Voigt) and beta* (sigma = C* eps - beta* theta) of the laminate."""
    N = coupled.normal_components(2, ["strain"])
    Cs = [m.stiffness(2) for m in LAWS]
    C, p = coupled.laminate_closed_form(FRACTIONS, Cs, [-m.beta_voigt(2) for m in LAWS], N)
    return C, -p


def nodal(problem: FE2Problem) -> tuple[np.ndarray, np.ndarray]:
    """Owned and ghost dof coordinates (x, y) and the displacement at them."""
    x = problem.V.tabulate_dof_coordinates()[:, :2]
    return x, problem.u.x.array.reshape(-1, 2)


@pytest.mark.mpi
def test_laminate_free_expansion_at_every_step(comm):
    """Rollers on the left and bottom, theta = 40 at load factor 1 in two steps: u = alpha*
    theta x, zero stress.  The second step must solve the RVEs again (the temperature loads
    them), not reuse the committed responses of the first."""
    C, beta = laminate_constants()
    alpha = np.linalg.solve(C, beta)
    theta = 40.0
    bcs = [DisplacementBC("left", 0.0, component=0), DisplacementBC("bottom", 0.0, component=1)]
    problem = FE2Problem(
        rectangle(comm, (1.0, 1.0), (3, 2)),
        laminate_cell,
        PHASES,
        bcs=bcs,
        parameters={"theta": theta},
    )
    for factor in (0.5, 1.0):
        problem.solve([factor])
        x, u = nodal(problem)
        exact = factor * theta * alpha[:2] * x
        err = np.abs(u - exact).max() / (theta * np.abs(alpha).max())
        assert comm.allreduce(err, op=MPI.MAX) < EXACT
        stress = np.abs(problem.flux.x.array).max() / (theta * np.abs(beta).max())
        assert comm.allreduce(stress, op=MPI.MAX) < EXACT
    # the expansion is anisotropic (across the layers about ten times along them)
    assert alpha[0] > 5.0 * alpha[1] > 0.0 and alpha[2] == 0.0
    assert problem.result.info["parameters"] == ["theta"]
    problem.destroy()


@pytest.mark.mpi
def test_laminate_bar_under_a_temperature_gradient(comm):
    """theta(x) = 25 x, u_x = 0 on the left, u_y = 0 on the top and bottom, the right end free:
    u_x = beta1 theta' x^2 / (2 C11), u_y = 0, sigma_xx = 0 and sigma_yy = (C12 beta1 / C11 -
    beta2) theta, exact in P2 (and at every Gauss point)."""
    C, beta = laminate_constants()
    slope = 25.0
    bcs = [
        DisplacementBC("left", 0.0, component=0),
        DisplacementBC("bottom", 0.0, component=1),
        DisplacementBC("top", 0.0, component=1),
    ]
    problem = FE2Problem(
        rectangle(comm, (2.0, 1.0), (4, 2)),
        laminate_cell,
        PHASES,
        bcs=bcs,
        degree=2,
        parameters={"theta": lambda x: slope * x[0]},
    )
    problem.solve([1.0])
    x, u = nodal(problem)
    ux = beta[0] / C[0, 0] * slope * x[:, 0] ** 2 / 2
    scale = np.abs(ux).max()
    err = max(np.abs(u[:, 0] - ux).max(), np.abs(u[:, 1]).max()) / comm.allreduce(scale, MPI.MAX)
    assert comm.allreduce(err, op=MPI.MAX) < EXACT
    xq = problem.rule.coordinates().reshape(-1, 2)
    sigma = problem.flux.x.array.reshape(-1, 2, 2)[: len(xq)]
    syy = (C[0, 1] * beta[0] / C[0, 0] - beta[1]) * slope * xq[:, 0]
    ref = slope * 2.0 * np.abs(beta).max()
    err_s = max(np.abs(sigma[:, 1, 1] - syy).max(initial=0), np.abs(sigma[:, 0, 0]).max(initial=0))
    log.info("bar under a temperature gradient: displacement %.1e, stress %.1e", err, err_s / ref)
    assert comm.allreduce(err_s, op=MPI.MAX) < EXACT * ref
    problem.destroy()


@pytest.mark.mpi
def test_clamped_disk_composite_follows_levin(comm):
    """Clamped square, uniform theta = 10 on disk RVEs: every Gauss point carries sigma =
    -beta* theta, beta* from Levin's exact relation with the RVE's effective stiffness."""
    laws = coupled.LEVIN_LAWS
    theta = 10.0
    bcs = [DisplacementBC(side, (0.0, 0.0)) for side in ("left", "right", "bottom", "top")]
    problem = FE2Problem(
        rectangle(comm, (1.0, 1.0), (2, 2)),
        lambda c: circular_inclusion(c, 0.3, h=0.1),
        laws,
        bcs=bcs,
        parameters={"theta": theta},
    )
    problem.solve([1.0])
    C_star = tensor_to_stiffness(problem.micro.effective_tangent())
    cell = circular_inclusion(MPI.COMM_SELF, 0.3, h=0.1)
    beta = coupled.levin(cell, laws, C_star)
    sigma = problem.flux.x.array.reshape(-1, 2, 2)
    expected = -theta * np.array([[beta[0], beta[2]], [beta[2], beta[1]]])
    err = np.abs(sigma - expected).max() / (theta * np.abs(beta).max())
    log.info("clamped disk composite: stress against Levin %.1e", err)
    assert comm.allreduce(err, op=MPI.MAX) < EXACT
    # nontrivial: beta* is not the volume average of the phases' beta
    phi = cell.volume_fractions()
    b_avg = sum(phi[k] * m.beta_voigt(2) for k, m in laws.items())
    assert abs(beta[0] - b_avg[0]) > 1e-2 * abs(b_avg[0])
    problem.destroy()


def test_bad_parameters_are_one_line_errors(comm):
    macro = rectangle(comm, (1.0, 1.0), (1, 1))
    bcs = [DisplacementBC("left", (0.0, 0.0))]
    with pytest.raises(ValueError, match=r"unknown macro parameter\(s\) \['T'\]"):
        FE2Problem(macro, laminate_cell, PHASES, bcs=bcs, parameters={"T": 1.0})
    with pytest.raises(ValueError, match="non-finite"):
        FE2Problem(macro, laminate_cell, PHASES, bcs=bcs, parameters={"theta": np.nan})
    cell = laminate_cell(MPI.COMM_SELF)
    piezo = {"phase0": coupled.polymer_2d(), "phase1": coupled.pzt_2d(1)}
    with pytest.raises(ValueError, match=r"one field u \(sym_grad\), got fields \['u', 'phi'\]"):
        RVEProblem(cell, piezo)
    with RVEProblem(cell, PHASES) as rve:
        assert rve.parameters == ("theta",)
        with pytest.raises(ValueError, match=r"unknown macro parameter\(s\) \['T'\]"):
            rve.solve(np.zeros((2, 2)), parameters={"T": 1.0})
        with pytest.raises(ValueError, match="'theta' must be finite"):
            rve.solve(np.zeros((2, 2)), parameters={"theta": np.inf})


def test_mixed_single_and_multi_field_phases_are_refused():
    cell = laminate_cell(MPI.COMM_SELF)
    laws = {"phase0": LAWS[0], "phase1": IsotropicElasticity(20.0, 12.0)}
    with pytest.raises(ValueError, match=r"\['phase0'\] have multi-field laws and \['phase1'\]"):
        RVEProblem(cell, laws)
