"""FE-HMM of multi-field laws (:class:`CoupledHMMProblem`), against closed forms.

The coefficients are layers of two multi-field laws across :math:`y_1`, of equal fractions,
scaled by a slow :math:`c(x)` (:func:`layered_laws`): the micro problems on one period
(periodic coupling, the lattice-snapped sampling mesh resolving the layers) give
:math:`\\mathbb M(x_q) = c(x_q)\\,\\mathbb M^*` and :math:`p(x_q) = c(x_q)\\,p^*` with the exact
laminate constants (the layered-medium formula of ``test_coupled_cell.laminate_closed_form``):

* per point, piezoelectric and thermoelastic layers, to 1e-10; a homogeneous law with Dirichlet
  coupling reproduces its constants;
* a clamped piezoelectric plate between electrodes whose slow scaling jumps from 1 to 3 halfway
  across: the electric displacement is continuous, so :math:`c\\,\\kappa^*_{yy}\\phi'` is
  uniform, the potential piecewise linear, the stress :math:`e^{*T}_{:,y}D_y/\\kappa^*_{yy}`
  uniform and the displacement zero; P1 holds this exactly, and the charge on the electrode is
  :math:`\\kappa^*_{yy}V/\\int_0^1 c^{-1}`;
* the same plate with every layer resolved (:class:`CoupledDNSProblem`) converges to it at
  order 1 in eps;
* thermoelastic layers heated, free: the expansion :math:`\\alpha^* = C^{*-1}\\beta^*` does not
  depend on :math:`c(x)`, so :math:`u = \\alpha^*\\theta x` and zero stress;
* bad input, one line each.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import test_coupled_cell as coupled
import ufl
from mpi4py import MPI

from multiscale.coupling.multifield import FieldBC
from multiscale.hmm import (
    CoupledDNSProblem,
    CoupledHMMProblem,
    MicroSettings,
    MultiFieldCoefficient,
    SampledLinearModel,
    layered_laws,
    smooth_layers,
)
from multiscale.mesh.macro import rectangle
from multiscale.physics.coupled import ThermoElastic

log = logging.getLogger(__name__)

EXACT = 1e-10
POLYMER, PZT = coupled.polymer_2d(), coupled.pzt_2d(1)
HEATED = (ThermoElastic(1.0, 0.5, 3e-2), ThermoElastic(20.0, 12.0, 1e-3))
VOLTAGE = 2.0
EPS = 0.01


def settings(coupling: str = "periodic") -> MicroSettings:
    return MicroSettings(delta=EPS, eps=EPS, n=8, coupling=coupling, snap=True)


def exact_laminate(laws: tuple, kinds: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(M*, p*) of equal layers of ``laws`` across y1."""
    Ms = [m.matrix() if hasattr(m, "matrix") else m.stiffness(2) for m in laws]
    ps = [-m.beta_voigt(2) if hasattr(m, "beta_voigt") else np.zeros(len(M))
          for m, M in zip(laws, Ms, strict=True)]  # fmt: skip
    return coupled.laminate_closed_form([0.5, 0.5], Ms, ps, coupled.normal_components(2, kinds))


def slow(x):
    return 1.0 + x[0] + 2.0 * x[1]


def max_all(comm: MPI.Comm, a: np.ndarray) -> float:
    return comm.allreduce(float(np.abs(a).max(initial=0.0)), op=MPI.MAX)


@pytest.mark.mpi
@pytest.mark.parametrize(
    "laws, kinds", [((POLYMER, PZT), ["strain", "scalar"]), (HEATED, ["strain"])]
)
def test_sampled_tensors_are_the_scaled_laminate_at_every_point(comm, laws, kinds):
    M, p = exact_laminate(laws, kinds)
    points = np.random.default_rng(comm.rank).uniform(0.0, 1.0, size=(3, 2))
    with SampledLinearModel(comm, layered_laws(*laws, 2, slow=slow), settings()) as model:
        model.sample(points)
        c = slow(points.T)
        err_M = max_all(comm, model.tensors - c[:, None, None] * M) / np.abs(M).max()
        err_p = max_all(comm, model.parameter_tensors[..., 0] - c[:, None] * p) if p.any() else 0
        assert model.info()["micro_solves"] == 3 * comm.size
    assert err_M < EXACT
    assert err_p < EXACT * max(np.abs(p).max(), 1e-300)
    assert np.abs(M[:3, 3:]).max() > 0.1 if len(M) > 3 else p[0] < 0  # coupled, not trivial


@pytest.mark.mpi
def test_homogeneous_law_with_dirichlet_coupling_reproduces_its_constants(comm):
    law = HEATED[1]
    with SampledLinearModel(comm, layered_laws(law, law, 2), settings("dirichlet")) as model:
        model.sample(np.array([[0.3, 0.7]]))
        err_M = max_all(comm, model.tensors - law.stiffness(2))
        err_p = max_all(comm, model.parameter_tensors[..., 0] + law.beta_voigt(2))
    assert err_M < EXACT * law.stiffness(2).max() and err_p < EXACT * law.beta


@pytest.mark.mpi
@pytest.mark.parametrize("coupling", ["periodic", "dirichlet"])
def test_sampling_problems_shared_by_all_ranks(comm, coupling):
    """One micro group of every rank (the sampling problem distributed, MUMPS): the same
    tensors as the closed form (periodic) or the law (dirichlet, homogeneous)."""
    laws = (POLYMER, PZT) if coupling == "periodic" else (PZT, PZT)
    M = exact_laminate(laws, ["strain", "scalar"])[0] if coupling == "periodic" else PZT.matrix()
    points = np.array([[0.2, 0.4], [0.9, 0.1]]) + 0.01 * comm.rank
    coefficient = layered_laws(*laws, 2, slow=slow)
    with SampledLinearModel(comm, coefficient, settings(coupling), group_size=comm.size) as model:
        model.sample(points)
        c = slow(points.T)
        err = max_all(comm, model.tensors - c[:, None, None] * M) / np.abs(M).max()
        assert model.info()["micro_solves"] == 2 * comm.size
    assert err < EXACT


def jump(x):
    return ufl.conditional(ufl.lt(x[1], 0.5), 1.0, 3.0)


@pytest.mark.mpi
def test_clamped_plate_with_a_jump_in_the_slow_scale(comm):
    M, _ = exact_laminate((POLYMER, PZT), ["strain", "scalar"])
    K = M[4, 4]
    D_y = K * VOLTAGE / (0.5 / 1.0 + 0.5 / 3.0)
    sigma = M[:3, 4] * D_y / K
    bcs = [FieldBC("u", side, (0.0, 0.0)) for side in ("left", "right", "bottom", "top")]
    bcs += [FieldBC("phi", "bottom", 0.0), FieldBC("phi", "top", VOLTAGE)]
    coefficient = layered_laws(POLYMER, PZT, 2, slow=jump)
    with CoupledHMMProblem(
        rectangle(comm, (2.0, 1.0), (4, 2)), coefficient, settings(), bcs=bcs
    ) as problem:
        result = problem.solve([1.0])
        x = problem.V.tabulate_dof_coordinates()[:, :2]
        w = problem.u.x.array.reshape(-1, 3)
        y = x[:, 1]
        phi = np.where(y < 0.5, D_y / K * y, D_y / K * 0.5 + D_y / (3.0 * K) * (y - 0.5))
        assert max_all(comm, w[:, :2]) < EXACT * VOLTAGE
        assert max_all(comm, w[:, 2] - phi) < EXACT * VOLTAGE
        stress = problem.flux.x.array.reshape(-1, 5)[:, :3]
        assert max_all(comm, stress - sigma) < EXACT * np.abs(sigma).max()
        charge = result.steps[-1].reactions["top:phi"][2]
        info = result.info
    assert charge == pytest.approx(2.0 * D_y, rel=EXACT)
    assert info["micro_solves"] == info["macro_gauss_points"]  # one sampling problem a point
    assert abs(sigma[1]) > 1.0  # the clamps hold a stress


@pytest.mark.mpi
def test_resolved_plate_converges_to_hmm_at_order_one_in_eps(comm):
    """The same clamped plate with every layer resolved (:class:`CoupledDNSProblem`, 4 cells a
    layer): the charge on the electrode tends to the homogenized one (which HMM gives exactly,
    above) like eps, the width of the boundary layers at the clamped sides.  Measured: relative
    errors 1.84e-3, 8.82e-4, 4.30e-4 (rates 1.06, 1.03) for eps = 1/4, 1/8, 1/16."""
    M, _ = exact_laminate((POLYMER, PZT), ["strain", "scalar"])
    homogenized = 2.0 * M[4, 4] * VOLTAGE / (0.5 / 1.0 + 0.5 / 3.0)
    bcs = [FieldBC("u", side, (0.0, 0.0)) for side in ("left", "right", "bottom", "top")]
    bcs += [FieldBC("phi", "bottom", 0.0), FieldBC("phi", "top", VOLTAGE)]
    coefficient = layered_laws(POLYMER, PZT, 2, slow=jump)
    errors = []
    for k in (4, 8, 16):
        macro = rectangle(comm, (2.0, 1.0), (8 * k, 4 * k))
        with CoupledDNSProblem(macro, coefficient, 1.0 / k, bcs=bcs, quadrature_degree=1) as dns:
            charge = dns.solve([1.0]).steps[-1].reactions["top:phi"][2]
        errors.append(abs(charge - homogenized) / abs(homogenized))
    rates = np.log2(np.array(errors[:-1]) / errors[1:])
    log.info("coupled DNS charge errors %s, rates %s", errors, rates)
    assert np.all((rates > 0.9) & (rates < 1.2))
    assert errors[-1] < 5e-4


@pytest.mark.mpi
def test_heated_layers_expand_freely_whatever_the_slow_scale(comm):
    C, p = exact_laminate(HEATED, ["strain"])
    alpha = np.linalg.solve(C, -p)
    theta = 40.0
    bcs = [FieldBC("u", "left", 0.0, component=0), FieldBC("u", "bottom", 0.0, component=1)]
    with CoupledHMMProblem(
        rectangle(comm, (1.0, 1.0), (2, 2)),
        layered_laws(*HEATED, 2, slow=slow),
        settings(),
        bcs=bcs,
        parameters={"theta": theta},
    ) as problem:
        problem.solve([1.0])
        x = problem.V.tabulate_dof_coordinates()[:, :2]
        w = problem.u.x.array.reshape(-1, 2)
        err = max_all(comm, w - theta * alpha[:2] * x) / (theta * np.abs(alpha).max())
        stress = max_all(comm, problem.flux.x.array) / (theta * np.abs(p).max())
    assert err < EXACT and stress < EXACT


def test_bad_input_is_one_line_errors(comm):
    macro = rectangle(comm, (1.0, 1.0), (1, 1))
    phi = [FieldBC("phi", "top", 1.0)]
    with pytest.raises(ValueError, match="needs a linear MultiFieldCoefficient"):
        CoupledHMMProblem(macro, smooth_layers(2), settings(), bcs=phi)
    with pytest.raises(ValueError, match=r"unknown macro parameter\(s\) \['theta'\]"):
        CoupledHMMProblem(
            macro, layered_laws(POLYMER, PZT, 2), settings(), bcs=phi, parameters={"theta": 1}
        )
    with pytest.raises(ValueError, match="all phases of a coupled cell must share fields"):
        layered_laws(POLYMER, HEATED[0], 2)
    with pytest.raises(ValueError, match="component of u on 'left' must be an index"):
        FieldBC("u", "left", 0.0, component=-1)
    with pytest.raises(ValueError, match="phi on 'top' is not a number: 'high'"):
        FieldBC("phi", "top", "high")
    two_of_three = MultiFieldCoefficient((POLYMER, PZT), lambda x, y: [1.0], 2)
    with pytest.raises(ValueError, match="weights returned 1 values for 2 laws"):
        CoupledHMMProblem(macro, two_of_three, settings(), bcs=phi)
