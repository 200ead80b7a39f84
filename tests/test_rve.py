"""Nonlinear RVE problems against independent references.

* homogeneous cells: the RVE response must be the phase law itself, checked against numpy
  implementations written here (3D radial return of J2 plasticity with plane-strain embedding,
  the closed-form Neo-Hookean stress and its analytical derivative);
* heterogeneous cells: the consistent tangent against central finite differences of the RVE
  stress (after plastic loading for J2), the Taylor tangent visibly different;
* every solve: Hill–Mandel residual below 1e-10 and mean strain equal to the macro strain;
* bad input: clear errors.

The cells live on ``COMM_WORLD``, so under ``mpirun -n 2`` every RVE is distributed.
"""

from __future__ import annotations

import logging
import weakref

import dolfinx
import numpy as np
import pytest
import ufl
from mpi4py import MPI

from multiscale.cell.rve import RVEProblem, macro_directions
from multiscale.coupling import MicroSolveError
from multiscale.mesh import circular_inclusion, spherical_inclusion
from multiscale.physics import IsotropicElasticity, J2Plasticity, NeoHookean

log = logging.getLogger(__name__)

HM_TOL = 1e-10
# matrix and fibre of the heterogeneous cells: Young's moduli in the ratio 1 : 10
J2_MATRIX = J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=0.1)
J2_FIBRE = J2Plasticity.from_young(10.0, 0.25, sigma_y=0.02, H=0.5)
NH_MATRIX = NeoHookean.from_young(1.0, 0.3)
NH_FIBRE = NeoHookean.from_young(10.0, 0.25)


@pytest.fixture(scope="module")
def disk():
    return circular_inclusion(MPI.COMM_WORLD, 0.3, h=0.1)


@pytest.fixture(scope="module")
def sphere():
    return spherical_inclusion(MPI.COMM_WORLD, 0.2, h=0.3)


# -- independent numpy references ----------------------------------------------------------------
def embed3(E: np.ndarray) -> np.ndarray:
    """Plane-strain embedding of a 2x2 strain (3x3 unchanged)."""
    out = np.zeros((3, 3))
    d = E.shape[0]
    out[:d, :d] = E
    return out


def radial_return(eps, eps_p, p, law: J2Plasticity):
    """One backward-Euler step of 3D von Mises plasticity with linear isotropic hardening.

    Returns ``(sigma, eps_p_new, p_new)``.  The stress is computed as Hooke's law of the elastic
    strain ``eps - eps_p_new`` (not through the scaled trial deviator of the library).
    """
    lam, mu, sy, H = law.lmbda, law.mu, law.sigma_y, law.H
    eps = embed3(np.asarray(eps, dtype=float))
    ee_tr = eps - eps_p
    s_tr = 2.0 * mu * (ee_tr - np.trace(ee_tr) / 3.0 * np.eye(3))
    q_tr = np.sqrt(1.5 * np.sum(s_tr * s_tr))
    f_tr = q_tr - (sy + H * p)
    eps_p_new, p_new = eps_p.copy(), p
    if f_tr > 0.0:
        dp = f_tr / (3.0 * mu + H)
        eps_p_new = eps_p + dp * 1.5 * s_tr / q_tr
        p_new = p + dp
    ee = eps - eps_p_new
    sigma = lam * np.trace(ee) * np.eye(3) + 2.0 * mu * ee
    return sigma, eps_p_new, p_new


def von_mises(sigma: np.ndarray) -> float:
    s = sigma - np.trace(sigma) / 3.0 * np.eye(3)
    return float(np.sqrt(1.5 * np.sum(s * s)))


def neo_hookean_P(F: np.ndarray, law: NeoHookean) -> np.ndarray:
    """P = mu F + (lambda ln J - mu) F^-T (plane deformation in 2D: F33 = 1)."""
    J = np.linalg.det(F)
    return law.mu * F + (law.lmbda * np.log(J) - law.mu) * np.linalg.inv(F).T


def neo_hookean_A(F: np.ndarray, law: NeoHookean) -> np.ndarray:
    """dP_ij/dF_kl = mu d_ik d_jl + lambda Fi_ji Fi_lk - (lambda ln J - mu) Fi_jk Fi_li."""
    d = F.shape[0]
    Fi = np.linalg.inv(F)
    eye = np.eye(d)
    c = law.lmbda * np.log(np.linalg.det(F)) - law.mu
    return (
        law.mu * np.einsum("ik,jl->ijkl", eye, eye)
        + law.lmbda * np.einsum("ji,lk->ijkl", Fi, Fi)
        - c * np.einsum("jk,li->ijkl", Fi, Fi)
    )


def finite_difference(fun, G: np.ndarray, kind: str, h: float) -> np.ndarray:
    """Central differences of ``fun(G)`` (d x d) along the unit macro directions, as (d,d,d,d)."""
    d = G.shape[0]
    D = np.zeros((d, d, d, d))
    for T, slots in macro_directions(kind, d):
        col = (fun(G + h * T) - fun(G - h * T)) / (2.0 * h)
        for k, m in slots:
            D[:, :, k, m] = col
    return D


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


# -- every RVE solve goes through here: Hill–Mandel and mean strain checked ----------------------
_mean_forms: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mean_fluctuation_gradient(rve: RVEProblem) -> np.ndarray:
    """<grad u~> of the current fluctuation, assembled independently of the RVE solver."""
    if rve not in _mean_forms:
        mesh = rve.cell.mesh
        T = dolfinx.fem.Constant(mesh, np.zeros((rve.dim, rve.dim)))
        form = dolfinx.fem.form(ufl.inner(ufl.grad(rve.u), T) * ufl.dx(domain=mesh))
        _mean_forms[rve] = (T, form)
    T, form = _mean_forms[rve]
    d = rve.dim
    out = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            T.value[...] = 0.0
            T.value[i, j] = 1.0
            out[i, j] = dolfinx.fem.assemble_scalar(form)
    return rve.comm.allreduce(out, op=MPI.SUM) / rve.cell.volume


def solve(rve: RVEProblem, G, state=None, guess=None, tangent="default"):
    """``rve.solve`` plus the checks of every solve: Hill–Mandel residual < 1e-10 and the mean
    strain (deformation gradient) of the solution equal to the macro one."""
    G = np.asarray(G, dtype=float)
    response, new_state, fluct = rve.solve(G, state, guess, tangent=tangent)
    assert response.hill_mandel < HM_TOL, response.hill_mandel
    grad = mean_fluctuation_gradient(rve)
    if rve.kind == "strain":
        mean = 0.5 * (G + G.T) + 0.5 * (grad + grad.T)
        macro = 0.5 * (G + G.T)
    else:
        mean = G + grad
        macro = G
    assert np.abs(mean - macro).max() <= 1e-12 * np.abs(macro).max(), (mean, macro)
    return response, new_state, fluct


def packed_fields(rve: RVEProblem, state: np.ndarray) -> dict[str, np.ndarray]:
    """The internal variables of a packed state, one row per micro quadrature point."""
    rve.load_state(state)
    return {name: f.x.array.copy() for name, f in rve.state.items()}


def max_p_per_phase(rve: RVEProblem, state: np.ndarray) -> dict[str, float]:
    """Largest equivalent plastic strain of each phase (over all ranks)."""
    rve.load_state(state)
    f = rve.state["p"]
    out = {}
    for name, tag in rve.cell.phases.items():
        dofs = f.function_space.dofmap.list[rve.cell.cell_tags.find(tag)]
        local = float(f.x.array[dofs].max()) if dofs.size else 0.0
        out[name] = rve.comm.allreduce(local, op=MPI.MAX)
    return out


# -- 1. homogeneous J2 cell = numpy radial return ------------------------------------------------
J2_PATH_2D = [
    np.array([[0.020, 0.004], [0.004, -0.006]]),  # elastic -> plastic
    np.array([[0.026, 0.010], [0.010, -0.004]]),  # further plastic loading, rotated direction
    np.array([[0.022, 0.008], [0.008, -0.005]]),  # elastic unloading
]


def _j2_path(rve: RVEProblem, law: J2Plasticity, path: list[np.ndarray]) -> None:
    state = guess = None
    eps_p, p = np.zeros((3, 3)), 0.0
    phases = []
    for E in path:
        response, state, guess = solve(rve, E, state, guess)
        sigma, eps_p_new, p_new = radial_return(E, eps_p, p, law)
        d = E.shape[0]
        assert rel(response.flux, sigma[:d, :d]) < 1e-10, (response.flux, sigma)
        assert abs(response.mean_state["p"] - p_new) <= 1e-10 * max(p_new, 1e-300)
        fields = packed_fields(rve, state)
        np.testing.assert_allclose(fields["p"], p_new, rtol=1e-10, atol=0)
        np.testing.assert_allclose(
            fields["eps_p"].reshape(-1, 3, 3),
            np.broadcast_to(eps_p_new, (fields["p"].size, 3, 3)),
            rtol=0,
            atol=1e-10 * np.abs(eps_p_new).max(),
        )
        plastic = p_new > p
        if plastic:  # the numpy reference itself: back on the (hardened) yield surface
            assert von_mises(sigma) == pytest.approx(law.sigma_y + law.H * p_new, rel=1e-12)
            # algorithmic tangent of the numpy return map, by central differences
            D_fd = finite_difference(
                lambda G, ep=eps_p, pp=p, d=d: radial_return(G, ep, pp, law)[0][:d, :d],
                E,
                "strain",
                1e-7,
            )
            assert rel(response.tangent, D_fd) < 1e-6
        phases.append("plastic" if plastic else "elastic")
        eps_p, p = eps_p_new, p_new
    assert phases == ["plastic", "plastic", "elastic"], phases


@pytest.mark.mpi
def test_homogeneous_j2_cell_is_the_radial_return(disk, sphere):
    law = J2Plasticity.from_young(2.0, 0.3, sigma_y=0.02, H=0.2)
    rve = RVEProblem(disk, {"matrix": law, "inclusion": law})
    _j2_path(rve, law, J2_PATH_2D)
    rve.destroy()

    path3 = [
        np.array([[0.020, 0.004, 0.0], [0.004, -0.006, 0.002], [0.0, 0.002, 0.003]]),
        np.array([[0.026, 0.010, 0.003], [0.010, -0.004, 0.0], [0.003, 0.0, 0.001]]),
        np.array([[0.022, 0.008, 0.002], [0.008, -0.005, 0.0], [0.002, 0.0, 0.001]]),
    ]
    rve3 = RVEProblem(sphere, {"matrix": law, "inclusion": law})
    _j2_path(rve3, law, path3)
    rve3.destroy()


# -- 2. homogeneous Neo-Hookean cell = closed form -----------------------------------------------
@pytest.mark.mpi
def test_homogeneous_neo_hookean_cell_is_the_closed_form(disk, sphere):
    law = NeoHookean.from_young(3.0, 0.35)
    F2 = np.array([[1.15, 0.25], [-0.1, 0.9]])
    F3 = np.array([[1.15, 0.25, 0.05], [-0.1, 0.9, 0.1], [0.02, -0.05, 1.08]])
    for cell, F in ((disk, F2), (sphere, F3)):
        rve = RVEProblem(cell, {"matrix": law, "inclusion": law})
        response, _, _ = solve(rve, F)
        assert rel(response.flux, neo_hookean_P(F, law)) < 1e-10
        A = neo_hookean_A(F, law)
        assert rel(response.tangent, A) < 1e-10
        A_fd = finite_difference(lambda G: neo_hookean_P(G, law), F, "deformation", 1e-6)
        assert rel(response.tangent, A_fd) < 1e-6
        assert rel(A, A_fd) < 1e-8  # the analytical reference against its own differences
        rve.destroy()


# -- 3. heterogeneous cells: consistent tangent = finite differences -----------------------------
def _fd_tangent(rve, G, state, guess, h):
    def flux(Gp):
        return solve(rve, Gp, state, guess, tangent=None)[0].flux

    return finite_difference(flux, G, rve.kind, h)


@pytest.mark.mpi
def test_j2_consistent_tangent_after_plastic_loading(disk):
    mats = {"matrix": J2_MATRIX, "inclusion": J2_FIBRE}
    rve = RVEProblem(disk, mats)
    taylor = RVEProblem(disk, mats, tangent="taylor")
    E1 = np.array([[0.02, 0.005], [0.005, -0.01]])
    _, state1, fluct1 = solve(rve, E1)  # plastic loading, then commit
    E2 = E1 + np.array([[0.003, 0.001], [0.001, -0.001]])  # a further, non-proportional increment
    response, state2, fluct2 = solve(rve, E2, state1, fluct1)
    # both phases have yielded, and the increment is plastic as well
    p1, p2 = max_p_per_phase(rve, state1), max_p_per_phase(rve, state2)
    assert min(p1.values()) > 0.0, p1
    assert all(p2[name] > p1[name] for name in p1), (p1, p2)
    D_fd = _fd_tangent(rve, E2, state1, fluct2, 1e-7)
    err = rel(response.tangent, D_fd)
    D_taylor = solve(taylor, E2, state1, fluct1)[0].tangent
    err_taylor = rel(D_taylor, D_fd)
    log.info("J2 2D: consistent vs FD %.2e, Taylor vs FD %.2e", err, err_taylor)
    assert err < 1e-6
    assert err_taylor > 1e-2
    rve.destroy()
    taylor.destroy()


@pytest.mark.mpi
def test_neo_hookean_consistent_tangent(disk, sphere):
    F2 = np.array([[1.1, 0.2], [0.05, 0.95]])
    F3 = np.eye(3) + np.array([[0.1, 0.05, 0.0], [0.02, -0.05, 0.03], [0.0, 0.01, 0.04]])
    for cell, F in ((disk, F2), (sphere, F3)):
        mats = {"matrix": NH_MATRIX, "inclusion": NH_FIBRE}
        rve = RVEProblem(cell, mats)
        taylor = RVEProblem(cell, mats, tangent="taylor")
        response, _, fluct = solve(rve, F)
        D_fd = _fd_tangent(rve, F, None, fluct, 1e-6)
        err = rel(response.tangent, D_fd)
        err_taylor = rel(solve(taylor, F)[0].tangent, D_fd)
        log.info("NeoHookean %dD: consistent vs FD %.2e, Taylor %.2e", cell.dim, err, err_taylor)
        assert err < 1e-6
        assert err_taylor > 1e-2
        rve.destroy()
        taylor.destroy()


# -- 5. bad input ------------------------------------------------------------------------------
@pytest.mark.mpi
def test_bad_input(disk):
    rve = RVEProblem(disk, {"matrix": J2_MATRIX, "inclusion": J2_FIBRE})
    E = np.array([[0.01, np.nan], [np.nan, 0.0]])
    with pytest.raises(ValueError, match="strain has non-finite"):
        rve.solve(E)
    with pytest.raises(ValueError, match="2x2"):
        rve.solve(np.zeros((3, 3)))
    rve.destroy()

    nh = RVEProblem(disk, {"matrix": NH_MATRIX, "inclusion": NH_FIBRE})
    with pytest.raises(ValueError, match="det F > 0"):
        nh.solve(np.array([[1.0, 0.0], [0.0, -0.5]]))
    with pytest.raises(ValueError, match="det F > 0"):
        nh.solve(np.array([[1.0, 2.0], [0.5, 1.0]]))  # det F = 0
    nh.destroy()

    with pytest.raises(ValueError, match="mu"):
        J2Plasticity(lmbda=1.0, mu=-1.0, sigma_y=0.01)
    with pytest.raises(ValueError, match="Young"):
        J2Plasticity.from_young(-1.0, 0.3, sigma_y=0.01)
    with pytest.raises(ValueError, match="hardening modulus H"):
        J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=-0.1)
    with pytest.raises(ValueError, match="sigma_y"):
        J2Plasticity.from_young(1.0, 0.3, sigma_y=0.0)
    with pytest.raises(ValueError, match="mu"):
        NeoHookean(lmbda=1.0, mu=0.0)
    with pytest.raises(ValueError, match=r"no material given for phase\(s\) \['inclusion'\]"):
        RVEProblem(disk, {"matrix": J2_MATRIX})
    with pytest.raises(ValueError, match="one kind"):
        RVEProblem(disk, {"matrix": J2_MATRIX, "inclusion": NH_FIBRE})

    # a plastic increment needs several Newton iterations: one is not enough
    one_step = RVEProblem(
        disk, {"matrix": J2_MATRIX, "inclusion": J2_FIBRE}, petsc_options={"snes_max_it": 1}
    )
    with pytest.raises(MicroSolveError, match="did not converge"):
        one_step.solve(np.array([[0.02, 0.005], [0.005, -0.01]]))
    one_step.destroy()


@pytest.mark.mpi
def test_mixed_history_and_elastic_phases(disk):
    """A J2 matrix with a linear-elastic fibre (no internal variables): state only where the law
    has one, tangent still consistent."""
    fibre = IsotropicElasticity.from_young(10.0, 0.25)
    rve = RVEProblem(disk, {"matrix": J2_MATRIX, "inclusion": fibre})
    E = np.array([[0.015, -0.004], [-0.004, 0.005]])
    response, state, fluct = solve(rve, E)
    fields = packed_fields(rve, state)
    assert fields["p"].max() > 0.0
    D_fd = _fd_tangent(rve, E, None, fluct, 1e-7)
    assert rel(response.tangent, D_fd) < 1e-6
    rve.destroy()


@pytest.mark.mpi
def test_zero_load_from_a_nonzero_guess(disk):
    """Unloading to a zero macro load (FE² at load factor 0, Newton started from the previous
    fluctuation): the zero fluctuation is recognised as converged, not iterated on round-off."""
    nh = RVEProblem(disk, {"matrix": NH_MATRIX, "inclusion": NH_FIBRE})
    _, _, fluct = solve(nh, np.array([[1.05, 0.02], [0.0, 0.98]]))
    response, _, fluct0 = solve(nh, np.eye(2), None, fluct)
    assert np.abs(response.flux).max() < 1e-12
    assert response.iterations <= 5
    # then again from that (round-off) fluctuation, with round-off in F
    response, _, _ = solve(
        nh, np.eye(2) + 1e-17 * np.array([[1.0, -1.0], [0.5, 0.0]]), None, fluct0
    )
    assert np.abs(response.flux).max() < 1e-12
    assert response.iterations <= 3
    nh.destroy()

    elastic = RVEProblem(
        disk,
        {
            "matrix": IsotropicElasticity.from_young(1.0, 0.3),
            "inclusion": IsotropicElasticity.from_young(10.0, 0.25),
        },
    )
    _, _, fluct = solve(elastic, np.array([[0.01, 0.002], [0.002, 0.0]]))
    response, _, _ = elastic.solve(np.zeros((2, 2)), None, fluct)  # HM undefined at zero work
    assert np.abs(response.flux).max() < 1e-14
    assert response.iterations <= 3
    elastic.destroy()
