"""FE² of multi-field laws (:class:`CoupledFE2Problem`): a macro problem in every field of the
micro law, against closed forms.

The RVEs are laminates, whose effective constants are exact (the layered-medium formula of
``test_coupled_cell.laminate_closed_form``, from first principles), and the macro states are
uniform, so P1 holds them exactly:

* a piezoelectric plate between two electrodes, mechanically free (rollers): zero stress, the
  strain :math:`\\varepsilon = -C^{*-1}e^{*T}\\nabla\\phi` and the charge :math:`D^*_y` on each
  electrode, at two load factors; the same plate clamped: zero strain, the stress
  :math:`e^{*T}\\nabla\\phi` at every Gauss point and the charge :math:`-\\kappa^*_{yy}V`;
* a 3D piezoelectric laminate cube poled across the electrodes (9 generalized gradients);
* thermoelastic layers heated, free: :math:`u = \\alpha^*\\theta x` (a parameter, not a field);
* bad input: unknown fields, components and parameters, one line each.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import test_coupled_cell as coupled
from mpi4py import MPI

from multiscale.coupling.solid import Traction
from multiscale.fe2.coupled import CoupledFE2Problem, FieldBC
from multiscale.mesh import laminate
from multiscale.mesh.macro import box, rectangle
from multiscale.physics.coupled import PoledPiezoelectric, ThermoElastic

log = logging.getLogger(__name__)

EXACT = 1e-10
FRACTIONS = [0.4, 0.6]
PIEZO_2D = {"phase0": coupled.polymer_2d(), "phase1": coupled.pzt_2d(1)}
VOLTAGE = 2.0


def layers_2d(comm: MPI.Comm):
    return laminate(comm, 2, FRACTIONS, h=0.1)


def closed_form(laws: dict, dim: int, kinds: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Exact (M*, p*) of the laminate of ``laws`` (layers normal to x1)."""
    N = coupled.normal_components(dim, kinds)
    Ms = [m.matrix() if hasattr(m, "matrix") else m.stiffness(dim) for m in laws.values()]
    ps = [np.zeros(len(M)) if not hasattr(m, "beta_voigt") else -m.beta_voigt(dim)
          for m, M in zip(laws.values(), Ms, strict=True)]  # fmt: skip
    return coupled.laminate_closed_form(FRACTIONS, Ms, ps, N)


def nodal(problem: CoupledFE2Problem) -> tuple[np.ndarray, np.ndarray]:
    d = problem.dim
    return problem.V.tabulate_dof_coordinates()[:, :d], problem.u.x.array.reshape(-1, d + 1)


def max_all(comm: MPI.Comm, a: np.ndarray) -> float:
    return comm.allreduce(float(np.abs(a).max(initial=0.0)), op=MPI.MAX)


@pytest.mark.mpi
def test_free_piezoelectric_plate_between_electrodes(comm):
    M, _ = closed_form(PIEZO_2D, 2, ["strain", "scalar"])
    C, eT = M[:3, :3], M[:3, 3:]
    grad_phi = np.array([0.0, VOLTAGE])
    eps = -np.linalg.solve(C, eT @ grad_phi)
    D = M[3:, :3] @ eps + M[3:, 3:] @ grad_phi
    bcs = [
        FieldBC("phi", "bottom", 0.0),
        FieldBC("phi", "top", VOLTAGE),
        FieldBC("u", "left", 0.0, component=0),
        FieldBC("u", "bottom", 0.0, component=1),
    ]
    problem = CoupledFE2Problem(rectangle(comm, (1.0, 1.0), (3, 3)), layers_2d, PIEZO_2D, bcs=bcs)
    for factor in (0.5, 1.0):
        result = problem.solve([factor])
        x, w = nodal(problem)
        exact = (
            factor
            * np.c_[
                eps[0] * x[:, 0] + 0.5 * eps[2] * x[:, 1],
                eps[1] * x[:, 1] + 0.5 * eps[2] * x[:, 0],
                VOLTAGE * x[:, 1],
            ]
        )
        err = max_all(comm, w - exact) / (factor * max(np.abs(eps).max(), VOLTAGE))
        assert err < EXACT
        charge = result.steps[-1].reactions
        assert charge["top:phi"][2] == pytest.approx(factor * D[1], rel=EXACT)
        assert charge["bottom:phi"][2] == pytest.approx(-factor * D[1], rel=EXACT)
        assert charge["top:phi"][:2] == [0.0, 0.0]
    # the field strains the plate across and along the layers
    assert abs(eps[0]) > 0.1 * abs(eps[1]) > 0.0 and D[0] == 0.0
    assert result.info["fields"] == ["u", "phi"]
    assert result.load_boundary == "top:phi" and result.load_component == 2
    problem.destroy()


@pytest.mark.mpi
def test_clamped_piezoelectric_plate_carries_the_stress_of_the_field(comm):
    M, _ = closed_form(PIEZO_2D, 2, ["strain", "scalar"])
    grad_phi = np.array([0.0, VOLTAGE])
    sigma, D = M[:3, 3:] @ grad_phi, M[3:, 3:] @ grad_phi
    bcs = [FieldBC("u", side, (0.0, 0.0)) for side in ("left", "right", "bottom", "top")]
    bcs += [FieldBC("phi", "bottom", 0.0), FieldBC("phi", "top", VOLTAGE)]
    with CoupledFE2Problem(
        rectangle(comm, (2.0, 1.0), (4, 2)), layers_2d, PIEZO_2D, bcs=bcs
    ) as problem:
        result = problem.solve([1.0])
        x, w = nodal(problem)
        assert max_all(comm, w[:, :2]) < EXACT * VOLTAGE
        assert max_all(comm, w[:, 2] - VOLTAGE * x[:, 1]) < EXACT * VOLTAGE
        flux = problem.flux.x.array.reshape(-1, 5)
        expected = np.concatenate([sigma, D])
        assert max_all(comm, flux - expected) < EXACT * np.abs(expected).max()
        # the charge on the electrode of width 2: -kappa*_yy V per unit width
        charge = result.steps[-1].reactions["top:phi"][2]
        assert charge == pytest.approx(2.0 * D[1], rel=EXACT)
    assert abs(sigma[1]) > 1.0  # the clamps hold a stress the field would relieve


@pytest.mark.mpi
def test_piezoelectric_laminate_cube(comm):
    """3D: a PZT/polymer laminate (layers normal to x1) poled along x3, electrodes on the z
    faces, rollers: the free state of the closed form, in all 9 generalized gradients."""
    laws = {
        "phase0": PoledPiezoelectric.isotropic(0.35, 0.35, 0.35).law(3),
        "phase1": coupled.pzt_3d(),
    }
    M, _ = closed_form(laws, 3, ["strain", "scalar"])
    grad_phi = np.array([0.0, 0.0, VOLTAGE])
    eps = -np.linalg.solve(M[:6, :6], M[:6, 6:] @ grad_phi)
    assert np.abs(eps[3:]).max() < 1e-14 * np.abs(eps).max()  # no shear
    bcs = [
        FieldBC("phi", "back", 0.0),
        FieldBC("phi", "front", VOLTAGE),
        FieldBC("u", "left", 0.0, component=0),
        FieldBC("u", "bottom", 0.0, component=1),
        FieldBC("u", "back", 0.0, component=2),
    ]
    with CoupledFE2Problem(
        box(comm, (1.0, 1.0, 1.0), (2, 2, 2)),
        lambda c: laminate(c, 3, FRACTIONS, h=0.25),
        laws,
        bcs=bcs,
    ) as problem:
        problem.solve([1.0])
        x, w = nodal(problem)
        exact = np.c_[eps[0] * x[:, 0], eps[1] * x[:, 1], eps[2] * x[:, 2], VOLTAGE * x[:, 2]]
        err = max_all(comm, w - exact) / max(np.abs(eps).max(), VOLTAGE)
    log.info("piezoelectric laminate cube: relative error %.1e", err)
    assert err < EXACT


@pytest.mark.mpi
def test_heated_thermoelastic_layers_expand_freely(comm):
    laws = {"phase0": ThermoElastic(1.0, 0.5, 3e-2), "phase1": ThermoElastic(20.0, 12.0, 1e-3)}
    C, p = closed_form(laws, 2, ["strain"])
    alpha = np.linalg.solve(C, -p)
    theta = 40.0
    bcs = [FieldBC("u", "left", 0.0, component=0), FieldBC("u", "bottom", 0.0, component=1)]
    with CoupledFE2Problem(
        rectangle(comm, (1.0, 1.0), (2, 2)),
        layers_2d,
        laws,
        bcs=bcs,
        parameters={"theta": theta},
    ) as problem:
        problem.solve([1.0])
        x = problem.V.tabulate_dof_coordinates()[:, :2]
        w = problem.u.x.array.reshape(-1, 2)
        err = max_all(comm, w - theta * alpha[:2] * x) / (theta * np.abs(alpha).max())
    assert err < EXACT


def test_bad_conditions_and_parameters_are_one_line_errors(comm):
    macro = rectangle(comm, (1.0, 1.0), (1, 1))
    phi = [FieldBC("phi", "top", 1.0)]
    with pytest.raises(ValueError, match=r"unknown field 'T'; the laws have \['u', 'phi'\]"):
        CoupledFE2Problem(macro, layers_2d, PIEZO_2D, bcs=[FieldBC("T", "top", 1.0)])
    with pytest.raises(ValueError, match="component 2 of field 'u' on 'top' is out of range"):
        CoupledFE2Problem(macro, layers_2d, PIEZO_2D, bcs=[FieldBC("u", "top", 0.0, 2)])
    with pytest.raises(ValueError, match=r"unknown macro parameter\(s\) \['theta'\]"):
        CoupledFE2Problem(macro, layers_2d, PIEZO_2D, bcs=phi, parameters={"theta": 1.0})
    with pytest.raises(ValueError, match="phi on 'top' is not finite"):
        CoupledFE2Problem(macro, layers_2d, PIEZO_2D, bcs=[FieldBC("phi", "top", np.nan)])
    with pytest.raises(ValueError, match="traction on 'right' needs 3 components"):
        CoupledFE2Problem(
            macro, layers_2d, PIEZO_2D, bcs=phi, tractions=[Traction("right", (1.0, 0.0))]
        )
    with pytest.raises(ValueError, match="needs at least one displacement condition"):
        CoupledFE2Problem(macro, layers_2d, PIEZO_2D, bcs=[])
