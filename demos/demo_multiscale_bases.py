# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Multiscale bases: the MsFEM resonance, GMsFEM at high contrast and the LOD decay
#
# **Resonance.** $-\nabla\cdot a(x)\nabla u = 1$ on the unit square, $u = 0$ on the boundary,
# with the coefficient of Hou & Wu,
# $a = \frac{2 + 1.8\sin 2\pi x/\varepsilon}{2 + 1.8\cos 2\pi y/\varepsilon}
# + \frac{2 + \sin 2\pi y/\varepsilon}{2 + 1.8\sin 2\pi x/\varepsilon}$.  At a fixed coarse
# mesh size $H$ and $\varepsilon = H/r$ (fine mesh $h = \varepsilon/8$), the energy error of
# MsFEM against the fully resolved solution grows as $H/\varepsilon \to 1$ (the resonance error
# $\sim\sqrt{\varepsilon/H}$); with one layer of oversampling it stays near the $O(H)$ level.
#
# **LOD.** $-(A u')' = 1$ on $(0, 1)$, $A = (2 - \cos 2\pi x/\varepsilon)^{-1}$, whose solution
# is known in closed form ($u' = (C - x)(2 - \cos 2\pi x/\varepsilon)$): the energy error of the
# LOD is $O(H)$ with no pre-asymptotic regime, and the localization error
# $\|u_k - u_{ideal}\|_a$ decays exponentially in the patch layers $k$.
#
# **GMsFEM.** $-\nabla\cdot\kappa\nabla u = 1$ with $\kappa = \eta$ in $m = 2$ thin channels
# crossing every coarse neighbourhood and 1 elsewhere: with $L = m$ spectral basis functions per
# coarse vertex the energy error does not depend on the contrast $\eta$; with one it does, and
# the error falls as functions are added, with the first excluded eigenvalue $\Lambda^*$.

# %%
import os
from pathlib import Path

import numpy as np
import ufl
from mpi4py import MPI

from multiscale.bases import (
    FineProblem,
    GMsFEMParameters,
    LODParameters,
    MsFEMParameters,
    NestedMeshes,
    channel_field,
    gmsfem_basis,
    gmsfem_errors,
    gmsfem_space,
    hou_wu,
    lod_space,
    msfem_space,
    unit_interval_pair,
    unit_square_pair,
)

comm = MPI.COMM_WORLD
ci = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))


def oscillating_1d(eps):
    return lambda mesh: 1 / (2 - ufl.cos(2 * np.pi / eps * ufl.SpatialCoordinate(mesh)[0]))


def closed_form_energy_error(eps, x, w):
    """Relative energy error of the piecewise linear w against the closed-form solution."""
    om = 2 * np.pi / eps
    s, c = np.sin(om) / om, (np.cos(om) - 1) / om**2
    big_c = (1 - s - c) / (2 - s)
    order = np.argsort(x)
    x, w = x[order], w[order]
    gx, gw = np.polynomial.legendre.leggauss(8)
    half = np.diff(x)[:, None] / 2
    xq = (x[1:] + x[:-1])[:, None] / 2 + half * gx
    du, inv_a = (big_c - xq) * (2 - np.cos(om * xq)), 1 / (2 - np.cos(om * xq))
    err = np.sum(half * gw * (du - (np.diff(w) / np.diff(x))[:, None]) ** 2 * inv_a)
    return float(np.sqrt(err / np.sum(half * gw * du**2 * inv_a)))


# %% [markdown]
# ## The resonance curve

# %%
n_coarse = 4 if ci else 8
ratios = [1.0, 2.0] if ci else [1.0, 1.25, 1.5, 2.0, 3.0, 4.0]
per_eps = 4 if ci else 8
resonance = []
for r in ratios:
    eps = 1 / (n_coarse * r)
    m = round(per_eps * r)
    fine = FineProblem(NestedMeshes(*unit_square_pair(comm, n_coarse, m)), hou_wu(eps))
    u = fine.solve()
    row = [r]
    for layers in (0, 1):
        space = msfem_space(fine, MsFEMParameters(layers))
        row.append(space.errors(space.solve(), u)["energy"])
        space.destroy()
    resonance.append(row)
    fine.destroy()
resonance = np.array(resonance)

# %% [markdown]
# ## LOD: error against the closed form vs H, localization error vs k

# %%
eps_1d = 1 / 64 if ci else 1 / 320
n_1d = 2048 if ci else 2**16
hs_1d = [4, 8] if ci else [4, 8, 16, 32]
lod_h = []
for nc in hs_1d:
    fine = FineProblem(
        NestedMeshes(*unit_interval_pair(comm, nc, n_1d // nc)), oscillating_1d(eps_1d)
    )
    space = lod_space(fine, LODParameters(3))
    sol = space.solve()
    lod_h.append((1 / nc, closed_form_energy_error(eps_1d, fine.meshes.x[:, 0], sol.u_fine)))
    space.destroy()
    fine_err = closed_form_energy_error(eps_1d, fine.meshes.x[:, 0], fine.solve())
    fine.destroy()
lod_h = np.array(lod_h)

nc_k = 8 if ci else 16
layers = [1, 2, 3] if ci else [1, 2, 3, 4, 5]
fine = FineProblem(
    NestedMeshes(*unit_interval_pair(comm, nc_k, 4096 // nc_k)), oscillating_1d(1 / 64)
)
ideal = lod_space(fine, LODParameters(nc_k)).solve()
norm = fine.broken_norms(fine.restrict(ideal.u_fine))[0]
lod_k = []
for k in layers:
    sol = lod_space(fine, LODParameters(k)).solve()
    lod_k.append(fine.broken_norms(fine.restrict(sol.u_fine - ideal.u_fine))[0] / norm)
fine.destroy()

# %% [markdown]
# ## GMsFEM: contrast and basis count

# %%
gm_m, gm_nc, gm_ratio = 2, 5, 8 if ci else 12
contrasts = [1e2, 1e4, 1e6] if ci else [1e2, 1e3, 1e4, 1e5, 1e6]
counts = [1, 2, 3, 4] if ci else [1, 2, 3, 4, 5, 6]
gm_h = 1 / (gm_nc * gm_ratio)
gm_contrast, gm_count = [], []
for eta in contrasts:
    fine = FineProblem(
        NestedMeshes(*unit_square_pair(comm, gm_nc, gm_ratio)),
        channel_field(gm_nc, gm_m, eta, width=gm_h, margin=2 * gm_h),
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "cholesky",
            "pc_factor_mat_solver_type": "mumps",
        },
    )
    u = fine.solve()
    basis = gmsfem_basis(fine, GMsFEMParameters(n_eigen=max(counts) + 1))
    row = [eta]
    for n in counts if eta == contrasts[-1] else (1, gm_m, gm_m + 1):
        space = gmsfem_space(fine, basis, n)
        err = gmsfem_errors(space, space.solve(), u)
        space.destroy()
        if eta == contrasts[-1]:
            lam = float(basis.lambda_star(n).min())
            gm_count.append((n, err["energy"], err["weighted_L2"], lam))
        if n in (1, gm_m, gm_m + 1):
            row.append(err["energy"])
    gap = float((basis.eigenvalues[:, gm_m] / basis.eigenvalues[:, gm_m - 1]).min())
    gm_contrast.append((*row, gap))
    fine.destroy()
gm_contrast, gm_count = np.array(gm_contrast), np.array(gm_count)

# %%
if comm.rank == 0:
    lines = [
        f"## MsFEM resonance, H = 1/{n_coarse}, h = eps/{per_eps}",
        "| H/eps | MsFEM | MsFEM + oversampling (1 layer) |",
        "|---|---|---|",
        *(f"| {r:.2f} | {a:.4f} | {b:.4f} |" for r, a, b in resonance),
        "",
        f"## LOD (k = 3) vs closed form, eps = 1/{round(1 / eps_1d)}, h = 1/{n_1d}",
        "| H | energy error | rate |",
        "|---|---|---|",
    ]
    for i, (h, e) in enumerate(lod_h):
        rate = np.log(lod_h[i - 1, 1] / e) / np.log(lod_h[i - 1, 0] / h) if i else np.nan
        lines.append(f"| 1/{round(1 / h)} | {e:.4e} | {rate:.2f} |")
    lines += [
        f"fine-scale FE error (the floor): {fine_err:.2e}",
        "",
        f"## LOD localization error, H = 1/{nc_k}, eps = 1/64",
        *(f"k = {k}: {e:.3e}" for k, e in zip(layers, lod_k, strict=True)),
        "",
        f"## GMsFEM, {gm_m} channels per neighbourhood, H = 1/{gm_nc}, h = 1/{gm_nc * gm_ratio}",
        "| contrast | L=1 | L=m | L=m+1 | min_i lambda_(m+1)/lambda_m |",
        "|---|---|---|---|---|",
        *(
            f"| {r[0]:.0e} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.3g} |"
            for r in gm_contrast
        ),
        "",
        f"## GMsFEM error vs basis functions per vertex, contrast {contrasts[-1]:.0e}",
        "| L | energy | weighted L2 | Lambda* |",
        "|---|---|---|---|",
        *(f"| {int(n)} | {a:.4f} | {w:.4f} | {lam:.4g} |" for n, a, w, lam in gm_count),
    ]
    print("\n".join(lines))
    results.mkdir(parents=True, exist_ok=True)
    (results / "multiscale_bases.md").write_text("\n".join(lines) + "\n")

    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(23, 4), constrained_layout=True)
    ax = axes[0]
    ax.plot(resonance[:, 0], resonance[:, 1], "o-", label="MsFEM")
    ax.plot(resonance[:, 0], resonance[:, 2], "s-", label="MsFEM, oversampling")
    ax.set(xlabel=r"$H/\varepsilon$", ylabel="relative energy error", title="resonance")
    ax.legend()
    ax = axes[1]
    ax.loglog(lod_h[:, 0], lod_h[:, 1], "o-", label="LOD, k = 3")
    ax.loglog(lod_h[:, 0], lod_h[0, 1] * lod_h[:, 0] / lod_h[0, 0], "k--", label="O(H)")
    ax.set(xlabel="H", ylabel="energy error vs closed form", title="LOD, 1D")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(lod_h[:, 0], [f"1/{round(1 / h)}" for h in lod_h[:, 0]])
    ax.legend()
    ax = axes[2]
    ax.semilogy(layers, lod_k, "o-")
    ax.set(xlabel="patch layers k", ylabel=r"$\|u_k - u_{ideal}\|_a / \|u\|_a$", title="decay")
    ax = axes[3]
    for j, label in enumerate(["L = 1", f"L = m = {gm_m}", f"L = m + 1 = {gm_m + 1}"]):
        ax.loglog(gm_contrast[:, 0], gm_contrast[:, j + 1], "o-", label=label)
    ax.set(xlabel=r"contrast $\eta$", ylabel="relative energy error", title="GMsFEM, channels")
    ax.legend()
    ax = axes[4]
    ax.semilogy(gm_count[:, 0], gm_count[:, 1], "o-", label="energy")
    ax.semilogy(gm_count[:, 0], gm_count[:, 2], "s-", label=r"$\kappa$-weighted $L^2$")
    ax.set(
        xlabel="basis functions per vertex L",
        ylabel="relative error",
        title=f"GMsFEM, {gm_m} channels, contrast {contrasts[-1]:.0e}",
    )
    ax.set_xticks(gm_count[:, 0])
    twin = ax.twinx()
    twin.semilogy(gm_count[:, 0], gm_count[:, 3], "k^--", label=r"$\Lambda^*$")
    twin.set_ylabel(r"$\Lambda^* = \min_i \lambda_{i,L+1}$")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="center right")
    fig.savefig(results / "multiscale_bases.png", dpi=120)

# %% [markdown]
# ## Verification
#
# The resonance: plain MsFEM is worst at $H = \varepsilon$ and oversampling lowers it there.
# LOD: energy rate at least 1 against the closed form, the localization error falling by at
# least 4 per layer.  GMsFEM: the eigenvalue gap $\lambda_{m+1}/\lambda_m$ opens with the
# contrast; with $m + 1$ functions per vertex the error is independent of the contrast within
# a factor 2, with one it is not; the energy and weighted $L^2$ errors fall and $\Lambda^*$
# grows as functions are added.

# %%
assert resonance[0, 1] == resonance[:, 1].max()
assert resonance[0, 2] < resonance[0, 1]
assert np.all(np.diff(np.log(lod_h[:, 1])) / np.diff(np.log(lod_h[:, 0])) >= 0.9)
assert np.all(np.array(lod_k[:-1]) / np.array(lod_k[1:]) >= 4.0)
assert np.all(gm_contrast[contrasts.index(1e4) :, 4] > 10.0)
assert gm_contrast[:, 3].max() < 2.0 * gm_contrast[:, 3].min()
assert gm_contrast[-1, 1] > 1.5 * gm_contrast[0, 1]
assert np.all(np.diff(gm_count[:, 1]) < 0) and np.all(np.diff(gm_count[:, 2]) < 0)
assert np.all(np.diff(gm_count[:, 3]) > 0)
