"""The monodomain solver and the ionic models against independent references.

* the ionic models' resting states are fixed points, and an action potential of the solver on a
  uniform state (a 0-D cell) converges at first order in :math:`\\Delta t` to SciPy's
  ``solve_ivp`` (DOP853, tolerances 1e-12) of the same ODE;
* plane waves: the speed converges at first order under refinement of :math:`h` and
  :math:`\\Delta t` toward the Nagumo front speed :math:`\\sqrt{kD/2}(1 - 2a)`, and scales like
  :math:`\\sqrt\\sigma` (exact for the monodomain equation);
* activation times are exact for a potential linear in time;
* the corner-stimulated anisotropic slab gives the same activation times on 1 and 2 ranks.
"""

from __future__ import annotations

import itertools

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI
from scipy.integrate import solve_ivp

from multiscale.coupling.probe import PointProbe
from multiscale.physics.ionic import AlievPanfilov, IonicModel, MitchellSchaeffer
from multiscale.tissue import ActivationTimes, MonodomainSolver, Stimulus, conduction_velocity

AP = AlievPanfilov()
MS = MitchellSchaeffer()


def everywhere(x: np.ndarray) -> np.ndarray:
    return np.ones(x.shape[1], dtype=bool)


# -- ionic models ----------------------------------------------------------------------------
@pytest.mark.parametrize("model", [AP, MS], ids=["aliev_panfilov", "mitchell_schaeffer"])
def test_rest_is_a_fixed_point(model: IonicModel) -> None:
    v, w = (np.array([x]) for x in model.rest)
    assert model.current(v, w)[0] == 0.0
    assert model.rate(v, w)[0] == 0.0
    # and it is stable to a small subthreshold perturbation: the potential decays
    assert model.current(v + 0.05, w)[0] > 0.0


@pytest.mark.parametrize(
    "bad",
    [
        lambda: AlievPanfilov(a=0.6),
        lambda: AlievPanfilov(k=-1.0),
        lambda: AlievPanfilov(epsilon0=0.0),
        lambda: AlievPanfilov(mu2=float("nan")),
        lambda: MitchellSchaeffer(tau_in=10.0),
        lambda: MitchellSchaeffer(v_gate=1.5),
        lambda: MitchellSchaeffer(tau_close=-1.0),
    ],
)
def test_unphysical_parameters_are_refused(bad) -> None:
    with pytest.raises(ValueError) as err:
        bad()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("model", "amplitude", "duration", "t_end", "tol"),
    [(AP, 3.0, 0.2, 40.0, 0.03), (MS, 0.2, 2.0, 500.0, 0.08)],
    ids=["aliev_panfilov", "mitchell_schaeffer"],
)
def test_action_potential_against_solve_ivp(model, amplitude, duration, t_end, tol) -> None:
    """On a uniform state the diffusion vanishes and a step is the semi-implicit Euler step of
    the cell ODE: its error against DOP853 halves with the step (observed order in (0.85,
    1.2)).  Measured max |v - v_ref| over the action potential: 0.0238 then 0.0118 (order 1.01)
    for AP at dt = 0.02, 0.01; 0.073 then 0.038 (order 0.96) for MS at dt = 0.25, 0.125 ms."""

    def rhs(t: float, y: np.ndarray, s: float) -> list[float]:
        v, w = y
        return [-model.current(v, w) + s, model.rate(v, w)]

    kw = {"method": "DOP853", "rtol": 1e-12, "atol": 1e-12, "dense_output": True}
    on = solve_ivp(rhs, (0.0, duration), list(model.rest), args=(amplitude,), **kw)
    off = solve_ivp(rhs, (duration, t_end), on.y[:, -1], args=(0.0,), **kw)
    mesh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 1, 1)
    errors = []
    for n in (2000, 4000):
        stim = Stimulus(everywhere, amplitude=amplitude, duration=duration)
        history: list[tuple[float, np.ndarray]] = []

        def record(s: MonodomainSolver, history=history) -> None:
            history.append((s.t, s.v.x.array.copy()))

        with MonodomainSolver(mesh, 1.0, model, dt=t_end / n, stimuli=[stim]) as solver:
            solver.run(t_end, callback=record)
        ts = np.array([t for t, _ in history])
        vs = np.array([v for _, v in history])
        assert np.ptp(vs, axis=1).max() < 1e-12  # stays uniform
        ref = np.where(ts <= duration, on.sol(np.minimum(ts, duration))[0], off.sol(ts)[0])
        assert ref.max() > 0.9  # an action potential, not a subthreshold response
        errors.append(np.abs(vs[:, 0] - ref).max())
    order = np.log2(errors[0] / errors[1])
    assert 0.85 < order < 1.2, (errors, order)
    assert errors[0] < tol, errors


# -- plane waves -----------------------------------------------------------------------------
def _plane_wave_speed(comm: MPI.Comm, h: float, dt: float, sigma: float) -> float:
    length = 10.0
    strip = dolfinx.mesh.create_rectangle(
        comm,
        [[0.0, 0.0], [length, 2 * h]],
        [round(length / h), 2],
        dolfinx.mesh.CellType.quadrilateral,
    )
    stim = Stimulus(lambda x: x[0] < 0.5, amplitude=10.0, duration=0.2)
    with MonodomainSolver(strip, sigma, AP, dt=dt, stimuli=[stim]) as solver:
        solver.run(30.0, until_activated=True)
        xs = np.linspace(3.0, 8.0, 26)
        probe = PointProbe(strip, np.column_stack([xs, np.full_like(xs, h)]))
        return conduction_velocity(xs, probe.eval(solver.activation_times)[:, 0])


@pytest.mark.mpi
def test_plane_wave_converges_to_the_nagumo_front(comm) -> None:
    """Speeds 1.3759, 1.3859, 1.3909 at (h, dt) = (0.1, 0.02), (0.05, 0.01), (0.025, 0.005):
    order 1.02, Richardson limit 1.3957, 0.3 % below the Nagumo front speed 1.4 (the recovery
    variable is not exactly 0 through the upstroke)."""
    speeds = [
        _plane_wave_speed(comm, h, dt, 1.0) for h, dt in ((0.1, 0.02), (0.05, 0.01), (0.025, 0.005))
    ]
    d1, d2 = speeds[1] - speeds[0], speeds[2] - speeds[1]
    order = np.log2(d1 / d2)
    limit = speeds[2] + d2**2 / (d1 - d2)
    assert 0.8 < order < 1.3, speeds
    assert abs(limit / AP.nagumo_speed(1.0) - 1.0) < 5e-3, limit


@pytest.mark.mpi
def test_speed_scales_like_sqrt_sigma(comm) -> None:
    """:math:`v(x/\\sqrt\\sigma, t)` solves the monodomain equation with conductivity
    :math:`\\sigma`: quartering it halves the speed.  On one mesh the narrower front is resolved
    by half as many elements; measured ratio 1.99968 at h = 0.025, dt = 0.005."""
    fast = _plane_wave_speed(comm, 0.025, 0.005, 1.0)
    slow = _plane_wave_speed(comm, 0.025, 0.005, 0.25)
    assert abs(fast / slow / 2.0 - 1.0) < 2e-3, (fast, slow)


# -- activation times ------------------------------------------------------------------------
@pytest.mark.mpi
def test_activation_times_are_exact_for_a_linear_ramp(comm) -> None:
    """:math:`v = \\alpha(t - \\tau(x)) + v_{th}` crosses :math:`v_{th}` at :math:`\\tau(x)`;
    linear interpolation between the steps bracketing it is exact.  A later dip below and
    re-crossing does not move the recorded time."""
    mesh = dolfinx.mesh.create_unit_square(comm, 8, 8)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    x = V.tabulate_dof_coordinates()
    tau = 0.3 + 0.7 * x[:, 0] + 0.45 * x[:, 1] ** 2
    threshold, alpha = 0.5, 3.0
    recorder = ActivationTimes(V, threshold)
    times = np.concatenate([[0.0], np.cumsum(np.full(40, 0.0371))])
    for t0, t1 in itertools.pairwise(times):
        recorder.update(alpha * (t0 - tau) + threshold, alpha * (t1 - tau) + threshold, t0, t1)
    assert recorder.fraction() == 1.0
    np.testing.assert_allclose(recorder.times.x.array, tau, rtol=0, atol=1e-13)
    # a second excitation: down below the threshold and up again
    low, high = np.zeros_like(tau), np.ones_like(tau)
    recorder.update(high, low, 2.0, 2.1)
    recorder.update(low, high, 2.1, 2.2)
    np.testing.assert_allclose(recorder.times.x.array, tau, rtol=0, atol=1e-13)


@pytest.mark.mpi
def test_bad_solver_input(comm) -> None:
    mesh = dolfinx.mesh.create_unit_square(comm, 2, 2)
    with pytest.raises(ValueError, match="symmetric positive definite"):
        MonodomainSolver(mesh, np.array([[1.0, 0.0], [0.0, -1.0]]), AP, dt=0.1)
    with pytest.raises(ValueError, match="time step"):
        MonodomainSolver(mesh, 1.0, AP, dt=0.0)
    with pytest.raises(ValueError, match="lumped mass needs degree 1"):
        MonodomainSolver(mesh, 1.0, AP, dt=0.1, degree=2)
    with pytest.raises(ValueError, match="duration"):
        Stimulus(everywhere, 1.0, duration=-1.0)


# -- MPI -------------------------------------------------------------------------------------
def _corner_run(comm: MPI.Comm, lumped: bool) -> np.ndarray:
    sigma = np.array([[0.5, 0.1], [0.1, 0.1]])
    mesh = dolfinx.mesh.create_rectangle(
        comm, [[0.0, 0.0], [2.0, 1.0]], [40, 20], dolfinx.mesh.CellType.triangle
    )
    stim = Stimulus(lambda x: x[0] ** 2 + x[1] ** 2 < 0.6**2, amplitude=10.0, duration=0.2)
    with MonodomainSolver(mesh, sigma, AP, dt=0.02, stimuli=[stim], lumped=lumped) as solver:
        solver.run(10.0, until_activated=True)
        probe = PointProbe(mesh, np.array([[1.9, 0.1], [0.15, 0.9], [1.2, 0.6], [1.95, 0.95]]))
        return probe.eval(solver.activation_times)[:, 0]


@pytest.mark.mpi
@pytest.mark.parametrize("lumped", [True, False], ids=["lumped", "consistent"])
def test_ranks_agree(comm, lumped: bool) -> None:
    """The distributed run and one on this rank alone record the same activation times."""
    here = _corner_run(comm, lumped)
    alone = _corner_run(MPI.COMM_SELF, lumped)
    assert np.all(np.isfinite(here))
    np.testing.assert_allclose(here, alone, rtol=1e-9)
