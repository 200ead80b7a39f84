# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Memory from a viscoelastic microstructure
#
# A periodic fibre cell: a generalized Maxwell matrix (two branches, relaxation times 0.1 and
# 1) around an elastic fibre (30 % area).  Eliminating the micro scale leaves a homogenized law
# with memory, :math:`\bar\sigma(t) = \int_0^t \bar G(t - s)\,\dot{\bar\varepsilon}(s)\,ds`:
#
# 1. the composite's relaxation (shear and dilatation ramp-and-hold responses of the RVE) and
#    its Prony series with non-negative weights (NNLS on a dense log grid): the fitted
#    `GeneralizedMaxwell` is the Markovian embedding of the memory;
# 2. storage and loss moduli :math:`G'(\omega)`, :math:`G''(\omega)` of the fit in closed form,
#    the RVE's steady harmonic response at a few frequencies, and the laminate values of the
#    phases' complex moduli (across: harmonic mean, along: arithmetic mean);
# 3. FE² with the viscoelastic RVE against the macro solid with the fitted law, under a
#    time-dependent dilatation (loading, then unloading), with the bound the fit error implies;
# 4. the dissipation of every step (>= 0, second law).
#
# Run it with `mpirun -n 2 python3 demos/demo_viscoelastic_memory.py`: the relaxation RVE is
# distributed, FE² spreads its macro points.

# %%
import math
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.cell.relaxation import (
    composite_relaxation,
    drive_rve,
    fit_generalized_maxwell,
    harmonic_modulus,
    log_grid,
    ramp_hold_strain,
)
from multiscale.cell.rve import RVEProblem
from multiscale.fe2 import DisplacementBC, DNSProblem, FE2Problem, tiled_inclusions
from multiscale.mesh import circular_inclusion
from multiscale.mesh.macro import rectangle
from multiscale.output import write_json_file
from multiscale.physics import GeneralizedMaxwell, IsotropicElasticity

comm = MPI.COMM_WORLD
CI = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "viscoelastic_memory"
summary: dict = {}


def say(*args):
    if comm.rank == 0:
        print(*args, flush=True)


PHI = 0.3
MATRIX = (1.0, 0.2, ((0.5, 0.6, 0.1), (0.2, 0.4, 1.0)))  # kappa, mu, (kappa_i, mu_i, tau_i)
FIBRE = IsotropicElasticity.from_young(10.0, 0.25)


def matrix(dt: float) -> GeneralizedMaxwell:
    return GeneralizedMaxwell(MATRIX[0], MATRIX[1], MATRIX[2], dt)


def cell(c: MPI.Comm):
    return circular_inclusion(c, PHI, h=0.1)


# %% [markdown]
# ## 1. Relaxation of the composite and its Prony fit
#
# Ramp over one step :math:`\Delta t`, then hold; the fit uses the exact ramp response of each
# exponential, so the step is not approximated.

# %%
dt = 0.05 if CI else 0.02
n_relax = 60 if CI else 250
with RVEProblem(cell(comm), {"matrix": matrix(dt), "inclusion": FIBRE}) as rve:
    data = composite_relaxation(rve, dt, n_relax)
taus = log_grid(5e-3, data.times[-1], 20)  # no time beyond the observed window
fitted, residual = fit_generalized_maxwell(data, taus, 2, dt)
summary["fit"] = {
    "branches": [(b.kappa, b.mu, b.tau) for b in fitted.branches],
    "equilibrium": (fitted.kappa, fitted.mu),
    "relative_residual_shear": residual["shear"] / data.shear.min(),
    "relative_residual_dilatation": residual["dilatation"] / data.dilatation.min(),
}
say(
    f"Prony fit: {len(fitted.branches)} relaxation times "
    f"{[round(b.tau, 3) for b in fitted.branches]}, max relative residual "
    f"{summary['fit']['relative_residual_shear']:.1e} (shear), "
    f"{summary['fit']['relative_residual_dilatation']:.1e} (dilatation)"
)

# %% [markdown]
# ## 2. Storage and loss moduli
#
# The fit in closed form, :math:`\mu^*(\omega) = \mu_\infty + \sum_j \mu_j
# \frac{i\omega\tau_j}{1 + i\omega\tau_j}`; the RVE driven by :math:`\bar\varepsilon_{12} =
# \tfrac{\gamma_0}{2}\sin\omega t` for eight slowest fitted relaxation times (transients
# decay to :math:`e^{-8}`), then the last period is fitted by :math:`\sin, \cos`.
# For comparison the laminate values of the phases' complex shear moduli (harmonic and
# arithmetic means).

# %%
omegas = np.logspace(-2, 2, 81)
mu_fit = fitted.complex_moduli(omegas)[1]
_, mu_m = matrix(1.0).complex_moduli(omegas)
mu_f = FIBRE.mu
laminate_across = 1.0 / ((1 - PHI) / mu_m + PHI / mu_f)
laminate_along = (1 - PHI) * mu_m + PHI * mu_f
shear = np.array([[0.0, 0.5], [0.5, 0.0]])
tau_max = max(b.tau for b in fitted.branches)
probe = []
for omega in [2.0 * math.pi] if CI else [0.5 * math.pi, 2.0 * math.pi, 8.0 * math.pi]:
    steps = 16 if CI else 32
    periods = max(3, math.ceil(8.0 * tau_max * omega / (2.0 * math.pi)) + 1)
    dt_h = 2.0 * math.pi / (omega * steps)
    with RVEProblem(cell(comm), {"matrix": matrix(dt_h), "inclusion": FIBRE}) as rve:
        S = harmonic_modulus(rve, shear, omega, steps, periods)
    mu_c = complex(fitted.complex_moduli(omega)[1])
    probe.append((omega, S[0, 1], mu_c))
    say(
        f"omega {omega:6.3f}: RVE mu* = {S[0, 1]:.5f}, Prony fit {mu_c:.5f} "
        f"(relative difference {abs(S[0, 1] - mu_c) / abs(mu_c):.1e}, "
        f"time discretization ~ (omega dt)^2/4 = {(omega * dt_h) ** 2 / 4:.1e})"
    )
summary["harmonic"] = [
    {"omega": w, "rve": [s.real, s.imag], "fit": [f.real, f.imag]} for w, s, f in probe
]

# %% [markdown]
# ## 3. FE² against the fitted macro law
#
# Unit square, rollers, :math:`u = a(t)\,x`: :math:`a` ramps up over four steps, then decreases
# slowly (unloading while the matrix still relaxes).  The reactions sum to
# :math:`4\,a\,K_d` in both; their difference is bounded by :math:`4\,r_d\sum_m|\Delta a_m|`,
# :math:`r_d` the fit residual of the dilatation response.

# %%
amp = 1e-3
n_unload = 6 if CI else 26
factors = np.concatenate([np.linspace(0.25, 1.0, 4), np.linspace(0.97, 0.4, n_unload)])
bcs = [
    DisplacementBC("right", amp, component=0),
    DisplacementBC("left", 0.0, component=0),
    DisplacementBC("bottom", 0.0, component=1),
    DisplacementBC("top", amp, component=1),
]


def reaction_sum(result) -> np.ndarray:
    return np.array([s.reactions["right"][0] + s.reactions["top"][1] for s in result.steps])


with FE2Problem(
    rectangle(comm, (1.0, 1.0), (1, 1)),
    cell,
    {"matrix": matrix(dt), "inclusion": FIBRE},
    bcs=bcs,
    max_cuts=0,
) as fe2:
    r_fe2 = reaction_sum(fe2.solve(factors))
domain = tiled_inclusions(comm, 1, PHI, h_cell=0.25)
with DNSProblem(domain, {"matrix": fitted, "inclusion": fitted}, bcs=bcs, max_cuts=0) as macro:
    r_fit = reaction_sum(macro.solve(factors))
bound = 4.0 * residual["dilatation"] * amp * np.sum(np.abs(np.diff(np.r_[0.0, factors])))
diff = float(np.max(np.abs(r_fe2 - r_fit)))
summary["fe2"] = {"max_difference": diff, "bound": bound, "max_reaction": float(r_fe2.max())}
say(f"FE² vs Prony macro law: max |difference| {diff:.2e} <= bound {bound:.2e}")

# %% [markdown]
# ## 4. Dissipation
#
# The dissipation of each step of the shear relaxation (volume average, from the exact update
# in closed form) is positive while the matrix relaxes and decays with it.

# %%
with RVEProblem(cell(comm), {"matrix": matrix(dt), "inclusion": FIBRE}) as rve:
    run = drive_rve(rve, ramp_hold_strain(shear, amp, n_relax), dt)
summary["dissipation"] = {
    "min_step": float(run.dissipation[1:].min()),
    "total": float(run.dissipation.sum()),
}
say(f"dissipation per step >= {run.dissipation[1:].min():.2e}, total {run.dissipation.sum():.3e}")

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
        fig, ax = plt.subplots(1, 3, figsize=(15, 4))
        t_fine = np.logspace(-3, 2, 200)
        k_t, mu_t = fitted.relaxation(t_fine)
        ax[0].semilogx(data.times, data.shear, "o", ms=3, label="RVE, shear ramp response")
        ax[0].semilogx(data.times, data.dilatation, "s", ms=3, label="RVE, dilatation")
        ax[0].semilogx(t_fine, mu_t, "k-", lw=0.8, label="Prony fit: mu(t)")
        ax[0].semilogx(t_fine, k_t + mu_t / 3.0, "k--", lw=0.8, label="Prony fit: K_d(t)")
        ax[0].set_xlabel("t")
        ax[0].set_title("relaxation of the composite")
        ax[0].legend()
        ax[1].loglog(omegas, mu_fit.real, "C0-", label="G' (fit)")
        ax[1].loglog(omegas, mu_fit.imag, "C1-", label="G'' (fit)")
        for z, style in ((laminate_across, ":"), (laminate_along, "--")):
            ax[1].loglog(omegas, z.real, "C0" + style, lw=0.8)
            ax[1].loglog(omegas, np.abs(z.imag), "C1" + style, lw=0.8)
        for w, s, _ in probe:
            ax[1].loglog([w], [s.real], "C0o")
            ax[1].loglog([w], [s.imag], "C1o")
        ax[1].set_xlabel("omega")
        ax[1].set_title("storage / loss (dots: RVE; dotted/dashed: laminate means)")
        ax[1].legend()
        t_macro = dt * np.arange(1, len(factors) + 1)
        ax[2].plot(t_macro, r_fe2, "o", label="FE² (viscoelastic RVE)")
        ax[2].plot(t_macro, r_fit, "-", label="macro law (Prony fit)")
        ax[2].plot(t_macro, r_fe2[3] * factors / factors[3], ":", label="elastic scaling")
        ax[2].set_xlabel("t")
        ax[2].set_ylabel("R_x(right) + R_y(top)")
        ax[2].legend()
        fig.tight_layout()
        fig.savefig(results / "memory.png", dpi=120)
    print(f"wrote {results}")
