"""``multiscale equation-free``: the examples' JSON against closed forms computed here, and bad
input ending with exit status 2 and one line naming the key.

* gap-tooth (patch dynamics, PFE anchored at the lifted state, u0 = sin 2 pi x): the teeth
  realize the P1 grid's a*_h = (mean_e 1/abar_e)^-1, abar_e = 1.1 + (cos 2 pi y_e -
  cos 2 pi y_{e+1})/(2 pi dy) (closed-form cell means), so U_n = g^n U_0 with
  g = 1 - H_c a*_h 4 sin^2(pi H)/H^2; against exp(-a* (2 pi)^2 t) U_0, a* = sqrt(1.1^2 - 1),
  the error is the coarse scheme's plus the fine grid's;
* fast-slow u' = A u, A = [[-1, 1], [0, -1/eps]]: the projective step is the matrix
  S^k ((M+1) S - M I), S = I + dt A, applied n times; the exact solution is written out by hand
  (upper-triangular A), and the amplification factors are s^k ((M+1) s - M);
* walkers: the mass is exact and the density error is at the particle noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_config_is_one_line, shared_dir
from mpi4py import MPI

from multiscale.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GAPTOOTH = EXAMPLES / "equation_free_gaptooth.yaml"
FAST_SLOW = EXAMPLES / "equation_free_fast_slow.yaml"
A_STAR = math.sqrt(1.1**2 - 1.0)


def _run(config: Path, out: Path) -> dict:
    assert main(["-q", "equation-free", str(config), "--json", str(out)]) == 0
    MPI.COMM_WORLD.barrier()
    return json.loads(out.read_text())


def _a_star_h(cells: int) -> float:
    y = np.arange(cells + 1) / cells
    abar = 1.1 + (np.cos(2 * np.pi * y[:-1]) - np.cos(2 * np.pi * y[1:])) * cells / (2 * np.pi)
    return float(1.0 / np.mean(1.0 / abar))


@pytest.mark.mpi
def test_gaptooth_example_against_homogenized_solution(tmp_path):
    data = _run(GAPTOOTH, shared_dir(tmp_path) / "gt.json")
    p, s = data["parameters"], data["scheme"]
    assert s["name"] == "pfe" and s["anchor"] == "lift"
    assert s["dt"] == pytest.approx(0.5 * p["eps"] ** 2, rel=1e-15)
    assert s["H"] == pytest.approx(p["coarse_step"], rel=1e-12) and s["k"] == p["steps"] - 1
    assert data["a_star"] == pytest.approx(A_STAR, rel=1e-15)
    a_h = _a_star_h(p["cells_per_eps"])
    assert data["a_star_h"] == pytest.approx(a_h, rel=1e-12)
    t = np.array(data["times"])
    n = round(p["t_end"] / p["coarse_step"])
    assert len(t) == n + 1 and np.allclose(t, s["H"] * np.arange(n + 1), rtol=1e-12)
    X = np.array(data["centres"])
    H, h = 1.0 / p["teeth"], p["tooth"]
    assert np.allclose(X, H * np.arange(p["teeth"]), atol=1e-15)
    U0, U = np.array(data["initial"]), np.array(data["coarse_trajectory"])
    # the inner-region average of sin 2 pi x (P1 restriction: to the fine grid's accuracy)
    box = np.sin(2 * np.pi * X) * math.sin(math.pi * h) / (math.pi * h)
    assert np.abs(U0 - box).max() < 1e-4
    g = 1.0 - s["H"] * a_h * 4 * math.sin(math.pi * H) ** 2 / H**2
    discrete = g ** np.arange(n + 1)[:, None] * U0
    err_discrete = np.abs(U - discrete).max()
    lam = A_STAR * (2 * np.pi) ** 2
    exact = np.exp(-lam * t)[:, None] * U0
    err = np.abs(U - exact).max(axis=1)
    g_star = 1.0 - s["H"] * A_STAR * 4 * math.sin(math.pi * H) ** 2 / H**2
    coarse = np.abs(g_star ** np.arange(n + 1) - np.exp(-lam * t)) * np.abs(U0).max()
    fine = (2 * np.pi) ** 2 * t * (a_h - A_STAR) * np.exp(-lam * t) * np.abs(U0).max() * 1.01
    print(f"discrete {err_discrete:.3e}, exact {err[-1]:.3e} (bound {coarse[-1] + fine[-1]:.3e})")
    assert err_discrete < 1e-7
    assert np.all(err <= coarse + fine + 1e-7)
    assert data["coarse_error"] == pytest.approx(err[-1], rel=1e-12)
    assert data["coarse"] == pytest.approx(U[-1].tolist(), abs=0)
    assert data["coarse_error_discrete_max"] == pytest.approx(err_discrete, rel=1e-6, abs=1e-15)


@pytest.mark.mpi
def test_fast_slow_example_amplification_and_exact_solution(tmp_path):
    data = _run(FAST_SLOW, shared_dir(tmp_path) / "fs.json")
    p, s = data["parameters"], data["scheme"]
    eps, dt, k, Delta = p["epsilon"], p["dt"], p["k"], p["Delta"]
    M = Delta / dt
    A = np.array([[-1.0, 1.0], [0.0, -1.0 / eps]])
    S = np.eye(2) + dt * A
    step = np.linalg.matrix_power(S, k) @ ((M + 1) * S - M * np.eye(2))
    t = np.array(data["times"])
    U = np.array(data["coarse_trajectory"])
    u0 = np.array(p["u0"])
    ref = np.array([np.linalg.matrix_power(step, i) @ u0 for i in range(len(t))])
    assert np.abs(U - ref).max() <= 1e-12 * np.abs(ref).max()
    for name, lam in (("slow", -1.0), ("fast", -1.0 / eps)):
        z = 1.0 + dt * lam
        sigma = data["amplification_factor"][name]
        assert sigma["real"] == pytest.approx(z**k * ((M + 1) * z - M), rel=1e-12, abs=1e-15)
    assert s["H"] > 10 * 2 * eps  # far beyond the fast explicit limit dt < 2 eps, and stable
    assert abs(data["amplification_factor"]["fast"]["real"]) < 1
    r = 1.0 / eps
    exact_end = np.array(
        [
            math.exp(-t[-1]) * u0[0] + (math.exp(-t[-1]) - math.exp(-r * t[-1])) / (r - 1) * u0[1],
            math.exp(-r * t[-1]) * u0[1],
        ]
    )
    err = np.abs(U[-1] - exact_end).max()
    print(f"fast-slow error at t_end {err:.3e}")
    assert data["coarse_error"] == pytest.approx(err, rel=1e-9)
    assert err < 0.01  # first order in H: the slow mode's local error is O(H^2)


@pytest.mark.mpi
def test_walkers_density_within_particle_noise(tmp_path):
    work = shared_dir(tmp_path)
    cfg = work / "walkers.toml"
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(
            'problem = "walkers"\n[walkers]\nN = 40000\nD = 0.05\nnodes = 16\n'
            "dt = 0.01\nk = 2\nDelta = 0.04\nt_end = 0.35\n"
        )
    MPI.COMM_WORLD.barrier()
    data = _run(cfg, work / "walkers.json")
    x = np.arange(16) / 16
    exact = 1.0 + 0.5 * math.exp(-0.05 * (2 * np.pi) ** 2 * 0.35) * np.cos(2 * np.pi * x)
    U = np.array(data["coarse"])
    rms = float(np.sqrt(np.mean((U - exact) ** 2)))
    print(f"walkers: rms error {rms:.3e}, noise scale {data['noise_scale']:.3e}")
    assert data["mass"] == pytest.approx(1.0, abs=1e-12)
    assert data["coarse_error_rms"] == pytest.approx(rms, rel=1e-9)
    assert rms < 0.15  # e sqrt(N) ~ 10 for this scheme (tests/test_equation_free_particles.py)


BAD = [
    ("unknown key", "  scheme: pfe\n", "  scheme: pfe\n  teeths: 4\n", "unknown key(s) ['teeths']"),
    ("negative eps", "eps: 0.005", "eps: -0.005", "gap_tooth.eps: must be positive"),
    ("wrong type", "teeth: 10 ", "teeth: ten ", "gap_tooth.teeth: expected an integer"),
    ("wrong section", "problem: gap_tooth", "problem: walkers", "give the section 'walkers'"),
    ("t_end", "t_end: 0.01", "t_end: 0.0105", "gap_tooth.t_end: must be a positive multiple"),
    ("bad scheme", "scheme: pfe", "scheme: rk4", "gap_tooth.scheme: must be one of"),
]


@pytest.mark.mpi
@pytest.mark.parametrize(("label", "old", "new", "expected"), BAD, ids=[b[0] for b in BAD])
def test_equation_free_bad_input(tmp_path, capsys, label, old, new, expected):
    assert_bad_config_is_one_line("equation-free", GAPTOOTH, tmp_path, capsys, (old, new), expected)
