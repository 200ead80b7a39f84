# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lattice stability: what the Cauchy–Born rule sees, and what it does not
#
# The Cauchy–Born rule turns a pair potential $\phi$ on a lattice into a hyperelastic law
# $W(F) = \frac{1}{2\Omega_0}\sum_b \phi(|F R_b|)$.  Its own stability criteria (convexity of
# $W$ along the path, strong ellipticity of $\partial^2 W/\partial F\partial F$) only see
# long-wave modes.  The phonon criterion, positivity of the dynamical matrix
# $D(k) = \sum_b K_b (1 - \cos k\cdot R_b)$ over the Brillouin zone, also sees short waves.
#
# 1. A chain with nearest-neighbour Lennard-Jones bonds and a next-nearest harmonic spring,
#    stretched: the zone-boundary phonon $k = \pi/a$ (period doubling) goes soft at the NN
#    inflection $\lambda = (13/7)^{1/6}$, while $W$ stays convex further.  Beyond it the chain,
#    relaxed with a two-atom cell, dimerizes and its energy falls below the Cauchy–Born one.
# 2. The triangular LJ lattice under isotropic stretch: convexity along the path is lost first,
#    at $(13/7)^{1/6}$, ellipticity and the phonons at $(19/10)^{1/6}$.
#
# Run it with `mpirun -n 2 python3 demos/demo_lattice_stability.py` (every rank computes the
# same NumPy numbers; rank 0 prints and plots).

# %%
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.atomistic import (
    CauchyBorn,
    Harmonic,
    Lattice,
    LennardJones,
    LoadingPath,
    analyse_path,
    dispersion,
)
from multiscale.output import write_json_file

comm = MPI.COMM_WORLD
results = Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "lattice_stability"
ci = bool(os.environ.get("CI"))
points, nk = (21, 16) if ci else (61, 48)
LAMBDA_C = (13 / 7) ** (1 / 6)

# %% [markdown]
# ## The chain with a next-nearest spring
#
# The spring's rest length $2\cdot 2^{1/6}\sigma$ keeps the relaxed constant at
# $a_0 = 2^{1/6}\sigma$.  At $k = \pi/a_0$ the NNN bonds move rigidly, so
# $\omega^2(\pi/a_0) = 4\phi''(\lambda a_0)$.

# %%
lj = LennardJones(1.0, 1.0)
a0 = 2 ** (1 / 6)
chain = CauchyBorn.relaxed(Lattice.of("chain"), (lj, Harmonic(1.0, 2 * a0)), shells=2)
path = LoadingPath("uniaxial", 1)
res = analyse_path(chain, path, (1.0, 1.25), points=points, nk=nk)
first = res.first
if comm.rank == 0:
    print(f"relaxed a0 = {chain.bonds.radii[0]:.12f} (2^(1/6) = {a0:.12f})")
    for name, c in res.critical.items():
        k_c = None if c is None else c.wave_vector
        extra = "" if k_c is None else f", k a0 = {k_c[0] * a0:.6f}"
        print(f"  {name:12s} lambda_c = {c.lam:.9f}{extra}")
    print(f"first: {first.criterion} at {first.lam:.9f} (closed form {LAMBDA_C:.9f})")
assert first.criterion == "phonon" and abs(first.lam - LAMBDA_C) < 1e-6

# %% [markdown]
# The chain with a two-atom cell: its inner relaxation finds the period-doubled state.

# %%
cell = Lattice(np.array([[2.0]]), a0, np.array([[0.0], [1.0]]))
chain2 = CauchyBorn((lj, Harmonic(1.0, 2 * a0)), cell.bonds(shells=2))
lams = np.linspace(1.0, 1.25, points)
W_cb = chain.energy_density(path.F(lams))
W_rel = np.array([chain2.relaxed_energy_density(path.F(t)) for t in lams])
if comm.rank == 0:
    gap = W_cb - W_rel
    print(f"largest energy gain of the dimerized chain: {gap.max():.4e} eps/sigma")
assert np.all(W_rel[lams < LAMBDA_C - 1e-3] > W_cb[lams < LAMBDA_C - 1e-3] - 1e-12)
assert W_rel[-1] < W_cb[-1] - 1e-4

# %% [markdown]
# ## The triangular lattice under isotropic stretch

# %%
tri = CauchyBorn.relaxed(Lattice.of("triangular"), lj, shells=2)
tri_res = analyse_path(tri, LoadingPath("isotropic", 2), (1.0, 1.2), points=points, nk=nk)
if comm.rank == 0:
    for name, c in tri_res.critical.items():
        print(f"triangular {name:12s} lambda_c = {c.lam:.9f}")
assert tri_res.first.criterion == "convexity"

# %% [markdown]
# ## Plots: dispersion going soft, W along the path with the instabilities marked

# %%
if comm.rank == 0:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results.mkdir(parents=True, exist_ok=True)
    k = np.linspace(1e-3, np.pi / a0, 200)[:, None]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for lam in (1.0, 1.06, LAMBDA_C, 1.13):
        w2 = dispersion(chain, np.array([[lam]]), k)[:, 0]
        ax[0].plot(k[:, 0] * a0 / np.pi, w2, label=f"$\\lambda$ = {lam:.4f}")
    ax[0].axhline(0.0, color="k", lw=0.5)
    ax[0].set(xlabel="$k a_0/\\pi$", ylabel="$\\omega^2$", title="chain: dispersion")
    ax[0].legend()
    ax[1].plot(lams, W_cb, label="Cauchy–Born")
    ax[1].plot(lams, W_rel, "--", label="two-atom cell, relaxed")
    colours = {"convexity": "C2", "ellipticity": "C3", "phonon": "C4"}
    for name, c in res.critical.items():
        if c is not None:
            ax[1].axvline(c.lam, color=colours[name], ls=":", label=f"{name} {c.lam:.4f}")
    ax[1].set(xlabel="stretch $\\lambda$", ylabel="$W$", title="chain: energy along the path")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(results / "chain.png", dpi=120)
    plt.close(fig)
    summary = {
        label: {n: (None if c is None else c.to_dict()) for n, c in r.critical.items()}
        for label, r in (("chain", res), ("triangular", tri_res))
    }
    write_json_file(results / "lattice_stability.json", summary)
    print(f"wrote {results / 'chain.png'} and lattice_stability.json")
