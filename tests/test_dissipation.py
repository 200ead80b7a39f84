"""Dissipation of J2 plasticity (second law), against an independent numpy return map.

For linear isotropic hardening the energy dissipated per unit volume in a step is
D = sigma : d eps_p - d psi_p with the stored hardening energy psi_p = H p^2 / 2; on the yield
surface sigma : d eps_p = (sigma_y + H p_{n+1}) dp, so D = sigma_y dp + H dp^2 / 2.  The
reference below computes D from its own definition, sigma : d eps_p - H (p_{n+1}^2 - p_n^2)/2,
with the stress of Hooke's law of the elastic strain (not the formula the law implements).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cell.rve import RVEProblem
from multiscale.mesh import circular_inclusion
from multiscale.mesh.io import read_cell_mesh
from multiscale.physics import IsotropicElasticity, J2Plasticity

MESHES = Path(__file__).resolve().parents[1] / "meshes"
LAW = J2Plasticity.from_young(2.0, 0.3, sigma_y=0.02, H=0.2)

#: loading, rotated (non-proportional) loading, elastic unloading, reversed plastic loading
PATH = [
    np.array([[0.020, 0.004], [0.004, -0.006]]),
    np.array([[0.026, 0.010], [0.010, -0.004]]),
    np.array([[0.022, 0.008], [0.008, -0.005]]),
    np.array([[-0.010, -0.012], [-0.012, 0.012]]),
    np.array([[-0.016, -0.006], [-0.006, 0.016]]),
]


def _return_map(eps2: np.ndarray, eps_p: np.ndarray, p: float, law: J2Plasticity):
    """Radial return in 3D (plane-strain embedding): ``(sigma, eps_p_new, p_new)``."""
    eps = np.zeros((3, 3))
    eps[:2, :2] = eps2
    mu, K = law.mu, law.lmbda + 2.0 * law.mu / 3.0
    dev = lambda a: a - np.trace(a) / 3.0 * np.eye(3)  # noqa: E731
    s_tr = 2.0 * mu * dev(eps - eps_p)
    q_tr = np.sqrt(1.5 * np.sum(s_tr * s_tr))
    f = q_tr - (law.sigma_y + law.H * p)
    dp = max(f, 0.0) / (3.0 * mu + law.H)
    eps_p_new = eps_p + (1.5 * dp / q_tr * s_tr if dp > 0 else 0.0)
    ee = eps - eps_p_new
    sigma = K * np.trace(ee) * np.eye(3) + 2.0 * mu * dev(ee)
    return sigma, eps_p_new, p + dp


def _reference_dissipation(law: J2Plasticity) -> tuple[list[float], list[float]]:
    """Per step: D from its definition, and sigma_y dp + H dp^2/2."""
    eps_p, p = np.zeros((3, 3)), 0.0
    by_definition, closed_form = [], []
    for E in PATH:
        sigma, eps_p_new, p_new = _return_map(E, eps_p, p, law)
        dp = p_new - p
        work = float(np.sum(sigma * (eps_p_new - eps_p)))
        by_definition.append(work - 0.5 * law.H * (p_new**2 - p**2))
        closed_form.append(law.sigma_y * dp + 0.5 * law.H * dp**2)
        eps_p, p = eps_p_new, p_new
    return by_definition, closed_form


def _drive(rve: RVEProblem, on_step) -> list[float]:
    state = guess = None
    means = []
    for k, E in enumerate(PATH):
        response, state, guess = rve.solve(E, state, guess)
        assert response.hill_mandel < 1e-10
        means.append(response.mean_state["dissipation"])
        rve.load_state(state)
        on_step(k, response, rve.state["dissipation"].x.array.copy(), rve.state["p"].x.array)
    return means


def test_state_layout_keeps_eps_p_and_p_first():
    """The packed state keeps eps_p and p where they were (dissipation is appended)."""
    assert list(LAW.state_shapes(2)) == ["eps_p", "p", "dissipation"]
    assert LAW.state_shapes(3)["dissipation"] == ()


@pytest.mark.mpi
def test_homogeneous_cell_dissipation_is_the_return_map_one():
    """A homogeneous J2 cell on a non-proportional load-unload-reverse path: the mean
    dissipation of every step equals the reference (1e-10 relative), is the same at every
    point, >= 0, and exactly 0 in the elastic (unloading) step."""
    by_definition, closed_form = _reference_dissipation(LAW)
    np.testing.assert_allclose(by_definition, closed_form, rtol=1e-12, atol=1e-18)
    assert closed_form[2] == 0.0 and all(d > 0 for i, d in enumerate(closed_form) if i != 2)
    cell = circular_inclusion(MPI.COMM_WORLD, 0.3, h=0.1)
    rve = RVEProblem(cell, {"matrix": LAW, "inclusion": LAW})

    def check(k, _response, points, _p):
        np.testing.assert_allclose(points, closed_form[k], rtol=1e-10, atol=0)

    means = _drive(rve, check)
    rve.destroy()
    print("mean dissipation per step:", means, "reference:", closed_form)
    for m, ref in zip(means, closed_form, strict=True):
        assert abs(m - ref) <= 1e-10 * ref if ref > 0 else m == 0.0
    assert min(means) >= 0.0


@pytest.mark.mpi
def test_fibre_cell_dissipation_non_negative_everywhere():
    """J2 matrix and J2 fibre (or an elastic fibre) on meshes/fibre2d_vf0.5.msh: the
    dissipation is >= 0 at every micro point and step, > 0 where p grew, 0 where it did not."""
    cell = read_cell_mesh(MESHES / "fibre2d_vf0.5.msh", MPI.COMM_WORLD)
    matrix = J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=0.1)
    fibres = [J2Plasticity.from_young(10.0, 0.25, sigma_y=0.02, H=0.5)]
    fibres.append(IsotropicElasticity.from_young(10.0, 0.25))
    for fibre in fibres:
        rve = RVEProblem(cell, {"matrix": matrix, "inclusion": fibre})
        worst, best = [np.inf], [0.0]
        previous = [np.zeros(0)]

        def check(_k, response, points, p, worst=worst, best=best, previous=previous):
            grew = p > (previous[0] if previous[0].size else 0.0)
            previous[0] = p.copy()
            assert np.all(points >= 0.0)
            assert np.all(points[grew] > 0.0) and np.all(points[~grew] == 0.0)
            worst[0] = min(worst[0], float(points.min(initial=np.inf)))
            best[0] = max(best[0], float(points.max(initial=0.0)))
            assert response.mean_state["dissipation"] >= 0.0

        means = _drive(rve, check)
        rve.destroy()
        lo = MPI.COMM_WORLD.allreduce(worst[0], op=MPI.MIN)
        hi = MPI.COMM_WORLD.allreduce(best[0], op=MPI.MAX)
        print(f"{type(fibre).__name__} fibre: point dissipation in [{lo:.3e}, {hi:.3e}]", means)
        assert lo >= 0.0 and hi > 0.0
