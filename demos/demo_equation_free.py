# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Temporal multiscale: projective integration, gap-tooth, memory
#
# Five experiments of `multiscale.equation_free`:
#
# 1. coarse projective integration of a stiff linear fast–slow system, with and without
#    projection, and its error against the projective step (forward Euler and Runge–Kutta 2);
# 2. a coarse steady state by matrix-free Newton–Krylov on the coarse time-stepper;
# 3. the gap-tooth scheme for $u_t = (a(x/\varepsilon)u_x)_x$, $a(y) = 1.1 + \sin 2\pi y$: the
#    coefficient the teeth realize against the buffer size, the tooth size and $\varepsilon$,
#    and patch dynamics against the homogenized decay $e^{-a^*(2\pi)^2 t}$;
# 4. Mori–Zwanzig: the generalized Langevin equation with the exact memory kernel against the
#    full system and the Markovian approximation;
# 5. random walkers as a stochastic micro simulator: projective integration of the diffusion
#    equation against the particle number, and a Boltzmann steady state by Newton–Krylov with
#    common random numbers.
#
# Run it with `mpirun -n 2 python3 demos/demo_equation_free.py`; the teeth are spread over the
# ranks.

# %%
import math
import os
from pathlib import Path

import numpy as np
import scipy.linalg
from mpi4py import MPI

from multiscale.equation_free import (
    CoarseNewtonKrylov,
    FastSlowReaction,
    GapTooth,
    GapToothSettings,
    LinearBath,
    LinearSystem,
    MicroCoarseStepper,
    ProjectiveSettings,
    RandomWalkers,
    WalkerSettings,
    projective_integrate,
    sine_homogenized,
)
from multiscale.output import write_json_file

comm = MPI.COMM_WORLD
CI = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "equation_free"
summary: dict = {}


def say(*args):
    if comm.rank == 0:
        print(*args, flush=True)


# %% [markdown]
# ## 1. Projective integration of $x' = -x$, $y' = -(y - x)/\varepsilon$
#
# $\varepsilon = 10^{-3}$: explicit Euler needs $\delta t < 2\varepsilon$.  Projective forward
# Euler takes $k + 1 = 4$ inner steps of $0.9\varepsilon$ and extrapolates over $\Delta = 0.05$,
# 25 times the explicit limit.

# %%
eps = 1e-3
A = np.array([[-1.0, 0.0], [1.0 / eps, -1.0 / eps]])
linear = LinearSystem(A)
u0 = np.array([1.0, 0.0])
stepper = MicroCoarseStepper(linear, linear.lift, linear.restrict, 0.9 * eps)
pfe = ProjectiveSettings(dt=0.9 * eps, k=3, Delta=0.05)
t_p, U_p = projective_integrate(stepper, u0, pfe, 40)
fine_steps = round(t_p[-1] / (0.9 * eps))
t_f = 0.9 * eps * np.arange(fine_steps + 1)
u = u0.copy()
U_f = [u]
for _ in range(fine_steps):
    u = linear.advance(u, 0.9 * eps)
    U_f.append(u)
U_f = np.array(U_f)
exact = np.array([scipy.linalg.expm(t * A) @ u0 for t in t_p])
summary["projective"] = {
    "max_error_pfe": float(np.abs(U_p - exact).max()),
    "micro_steps_projective": 4 * 40,
    "micro_steps_full": fine_steps,
}
say(
    f"PFE, Delta = 0.05: max error {summary['projective']['max_error_pfe']:.2e} with 160 inner "
    f"steps (the micro simulator alone: {fine_steps})"
)

errors = {}
for scheme in ("pfe", "prk2"):
    rows = []
    for H in (0.4, 0.2, 0.1, 0.05, 0.025):
        s = ProjectiveSettings(dt=0.9 * eps, k=3, Delta=H - 4 * 0.9 * eps, scheme=scheme)
        n = round(2.0 / s.H)
        t, U = projective_integrate(stepper, u0, s, n)
        rows.append((s.H, abs(U[-1, 0] - math.exp(-t[-1]))))
    errors[scheme] = rows
summary["error_vs_step"] = errors
for scheme, rows in errors.items():
    say(f"{scheme}: " + ", ".join(f"H={h:.3f}: {e:.1e}" for h, e in rows))

# %% [markdown]
# ## 2. A coarse steady state by Newton–Krylov
#
# The fast–slow reaction system has the steady state $x^*$ in closed form; the coarse
# time-stepper lifts $y = 0$ and heals it for 60 constrained steps.

# %%
react = FastSlowReaction(n=8, eps=eps)
coarse = MicroCoarseStepper(react, react.lift, react.restrict, 0.5 * eps, healing=60)
with CoarseNewtonKrylov(
    lambda U: coarse(U, 20), react.n, comm, petsc_options={"snes_atol": 1e-13}
) as nk:
    res = nk.solve(np.ones(react.n))
summary["newton_krylov"] = {
    "iterations": res.outcome.iterations,
    "evaluations": res.evaluations,
    "error": float(np.abs(res.U - react.x_star).max()),
}
say(
    f"Newton–Krylov: {res.outcome.iterations} iterations, {res.evaluations} coarse "
    f"evaluations, |U - x*| = {summary['newton_krylov']['error']:.1e}"
)

# %% [markdown]
# ## 3. Gap-tooth
#
# The coefficient the teeth realize (slope of the inner average for $z^2/2$ data after 7
# healing steps of $\varepsilon^2/2$) against the buffer, the tooth size and $\varepsilon$, with
# 32 cells per period.  Its limit is the P1 harmonic mean $a^*_h$ (0.46175 for 32 cells per
# period; $a^* = 0.458258$).

# %%
EPS = 0.005
cells = np.arange(33) / 32
abar = 1.1 + (np.cos(2 * np.pi * cells[:-1]) - np.cos(2 * np.pi * cells[1:])) * 32 / (2 * np.pi)
a_h = float(1.0 / np.mean(1.0 / abar))


def coefficient(**kw) -> float:
    with GapTooth(comm, GapToothSettings(n_teeth=3, **kw)) as gt:
        return gt.effective_coefficient(8)


buffers = [0, 1, 2, 4, 8] if CI else [0, 1, 2, 4, 8, 12, 16]
by_buffer = [(b, coefficient(eps=EPS, tooth=2 * EPS, buffer=b * EPS)) for b in buffers]
teeth = [0.5, 1, 1.5, 2, 4]
by_tooth = [(h, coefficient(eps=EPS, tooth=h * EPS, buffer=16 * EPS)) for h in teeth]
epss = [0.01, 0.005, 0.0025] if CI else [0.01, 0.005, 0.0025, 0.00125]
by_eps = [(e, coefficient(eps=e, tooth=0.01, buffer=0.02, dt=0.5 * e**2)) for e in epss]
summary["gaptooth"] = {
    "a_star": sine_homogenized,
    "a_star_h": a_h,
    "buffer": by_buffer,
    "tooth": by_tooth,
    "eps": by_eps,
}
say("buffer/eps  a_GT       |a_GT - a*_h|")
for b, a in by_buffer:
    say(f"{b:9d}  {a:.6f}  {abs(a - a_h):.2e}")
say("tooth/eps (buffer 16 eps): " + ", ".join(f"{h}: {abs(a - a_h):.1e}" for h, a in by_tooth))
say("eps (h = 0.01, buffer 0.02): " + ", ".join(f"{e}: {abs(a - a_h):.1e}" for e, a in by_eps))

# %% [markdown]
# Patch dynamics (projective forward Euler over coarse steps of $10^{-3}$, 20 teeth) for
# $u_0 = \sin 2\pi x$ on the periodic unit interval, against $e^{-a^*(2\pi)^2 t}$.

# %%
coarse_err = []
t_end_steps = 20 if CI else 50
for b in [0, 2, 4, 8] if CI else [0, 2, 4, 8, 16]:
    with GapTooth(comm, GapToothSettings(eps=EPS, tooth=2 * EPS, buffer=b * EPS)) as gt:
        U0 = gt.box_average(lambda x: np.sin(2 * np.pi * x))
        ps = ProjectiveSettings(dt=gt.dt, k=7, Delta=1e-3 - 8 * gt.dt, anchor="lift")
        t_gt, U_gt = projective_integrate(gt, U0, ps, t_end_steps)
    ref = np.exp(-sine_homogenized * (2 * np.pi) ** 2 * t_gt[-1]) * U0
    coarse_err.append((b, float(np.abs(U_gt[-1] - ref).max())))
summary["patch_dynamics_error_vs_buffer"] = coarse_err
say(
    f"patch dynamics, t = {t_gt[-1]:.3f}: "
    + ", ".join(f"buffer {b} eps: {e:.1e}" for b, e in coarse_err)
)

# %% [markdown]
# ## 4. Mori–Zwanzig
#
# $x' = -x + y$, $y' = c x - g y$: the GLE with $K(t) = c e^{-gt}$ (trapezoidal convolution
# quadrature) against the full system and the Markovian $x' = (-1 + c/g)x + F(t)$, for
# comparable ($g = 1$) and separated ($g = 100$, $c/g$ fixed) time scales.

# %%
mz = {}
t_mz = np.linspace(0.0, 5.0, 401)
for g, c in ((1.0, -1.0), (100.0, -100.0)):
    bath = LinearBath(1.0, 1.0, c, g)
    M = np.array([[-1.0, 1.0], [c, -g]])
    full = (scipy.linalg.expm(t_mz[:, None, None] * M) @ np.array([1.0, 0.5]))[:, 0]
    _, gle = bath.gle(5.0, 2000, 1.0, 0.5)  # resolves the kernel: g dt = 0.25 for g = 100
    gle = gle[::5]
    markov = bath.markovian(t_mz, 1.0, 0.5)
    mz[g] = (full, gle, markov)
    summary.setdefault("mori_zwanzig", {})[str(g)] = {
        "gle_error": float(np.abs(gle - full).max()),
        "markov_error": float(np.abs(markov - full).max()),
    }
    say(
        f"g = {g}: GLE error {np.abs(gle - full).max():.1e}, Markovian error "
        f"{np.abs(markov - full).max():.1e}"
    )

# %% [markdown]
# ## 5. Random walkers
#
# Walkers $X \leftarrow X + \sqrt{2D\delta t}\,\xi$ on the periodic unit interval
# ($D = 0.05$, 16 coarse nodes, lifting by inverse-CDF sampling, cloud-in-cell restriction),
# projective forward Euler with $\delta t = 0.01$, $k = 2$, $\Delta = 0.04$ from
# $1 + \tfrac12\cos 2\pi x$ to $t = 0.35$: the error against
# $1 + \tfrac12 e^{-D(2\pi)^2 t}\cos 2\pi x$ falls as $N^{-1/2}$ down to the error of the
# coarse scheme.  Then walkers in $V = 0.1\cos 2\pi x$ ($D = 0.1$): Newton–Krylov with common
# random numbers finds the Boltzmann density $e^{-V/D}/Z$ within the particle noise; with fresh
# random numbers for every evaluation (not in the CI size) it does not converge.

# %%
x16 = np.arange(16) / 16
heat = ProjectiveSettings(dt=0.01, k=2, Delta=0.04)
walker_runs = {}
for N in [10_000, 40_000, 160_000] if CI else [10_000, 40_000, 160_000, 640_000]:
    walkers = RandomWalkers(WalkerSettings(N, 16, 0.05, seed=1), comm)
    w_stepper = MicroCoarseStepper(walkers, walkers.lift, walkers.restrict, heat.dt)
    t_w, U_w = projective_integrate(w_stepper, 1 + 0.5 * np.cos(2 * np.pi * x16), heat, 5)
    exact_w = 1 + 0.5 * np.exp(-0.05 * (2 * np.pi) ** 2 * t_w[-1]) * np.cos(2 * np.pi * x16)
    walker_runs[N] = (U_w[-1], float(np.abs(U_w[-1] - exact_w).max()))
summary["walkers_error_vs_N"] = {str(N): e for N, (_, e) in walker_runs.items()}
say("walkers: " + ", ".join(f"N = {N}: {e:.1e}" for N, (_, e) in walker_runs.items()))

x8 = np.arange(8) / 8
boltzmann = np.exp(-np.cos(2 * np.pi * x8)) / np.i0(1.0)  # nodal values (the tests restrict it)
steady = {}
for crn in (True,) if CI else (True, False):
    n_fp = 5_000 if CI else 20_000
    fp_settings = WalkerSettings(n_fp, 8, 0.1, v0=0.1, seed=7, common_random_numbers=crn)
    fp = RandomWalkers(fp_settings, comm)
    phi_fp = MicroCoarseStepper(fp, fp.lift, fp.restrict, 0.002)
    opts = {"snes_max_it": 8, "snes_rtol": 1e-8, "snes_atol": 1e-10, "ksp_rtol": 1e-6}
    with CoarseNewtonKrylov(lambda U, f=phi_fp: f(U, 50), 8, comm, petsc_options=opts) as nk:
        res = nk.solve(np.ones(8))
    steady[crn] = res.U
    summary.setdefault("walkers_newton_krylov", {})["crn" if crn else "fresh_seeds"] = {
        "converged": res.outcome.converged,
        "residual": res.outcome.residuals[-1],
    }
    say(f"Newton–Krylov, common random numbers {crn}: {res.outcome.residuals[-1]:.1e} residual")

# %%
if comm.rank == 0:
    write_json_file(results / "summary.json", summary)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        ax[0].plot(t_f, U_f[:, 1], "-", lw=0.8, label="micro simulator, y")
        ax[0].plot(t_p, U_p[:, 1], "o", ms=3, label="projective, y")
        ax[0].plot(t_p, exact[:, 0], "k--", lw=0.8, label="exact x")
        ax[0].set_xlabel("t")
        ax[0].legend()
        ax[0].set_title("with and without projection")
        for scheme, rows in errors.items():
            h, e = np.array(rows).T
            ax[1].loglog(h, e, "o-", label=scheme)
        ax[1].set_xlabel("coarse step H")
        ax[1].set_ylabel("error at t = 2")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(results / "projective.png", dpi=120)
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        b, a = np.array(by_buffer).T
        ax[0].semilogy(b, np.abs(a - a_h) + 1e-16, "o-", label="|a_GT - a*_h|")
        b, e = np.array(coarse_err).T
        ax[0].semilogy(b, e, "s-", label="patch dynamics error vs exp decay")
        ax[0].set_xlabel("buffer / eps")
        ax[0].legend()
        for g, (full, gle, markov) in mz.items():
            ax[1].plot(t_mz, full, "k-", lw=0.8)
            ax[1].plot(t_mz, gle, "--", label=f"GLE, g = {g:g}")
            ax[1].plot(t_mz, markov, ":", label=f"Markovian, g = {g:g}")
        ax[1].set_xlabel("t")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(results / "gaptooth_memory.png", dpi=120)
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        ax[0].plot(x16, exact_w, "k-", lw=0.8, label="exact")
        for N, (U_end, _) in walker_runs.items():
            ax[0].plot(x16, U_end, "o", ms=3, label=f"N = {N}")
        ax[0].set_xlabel("x")
        ax[0].set_title(f"walkers, projective, t = {t_w[-1]:.2f}")
        ax[0].legend()
        xf = np.linspace(0.0, 1.0, 200)
        ax[1].plot(xf, np.exp(-np.cos(2 * np.pi * xf)) / np.i0(1.0), "k-", lw=0.8)
        ax[1].plot(x8, steady[True], "o", label="Newton–Krylov, common random numbers")
        if False in steady:
            ax[1].plot(x8, steady[False], "x", label="fresh random numbers")
        ax[1].set_xlabel("x")
        ax[1].set_title("Boltzmann steady state")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(results / "walkers.png", dpi=120)
    print(f"wrote {results}")
