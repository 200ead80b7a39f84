# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A fibre composite against the classical bounds
#
# Square arrays of circular fibres (the transverse plane of a unidirectional composite) at
# increasing fibre volume fraction $f$.  For each $f$ the periodic cell problems give the
# effective conductivity $A^{hom}$ (isotropic in the plane by square symmetry) and the plane-strain
# stiffness $C^{hom}$, from which the in-plane bulk modulus
# $\kappa = (C_{11} + C_{12})/2$ is read.  They are drawn with the Voigt–Reuss and the
# Hashin–Shtrikman bounds on the same figure: the numbers must lie between the HS bounds, close
# to the lower one for stiff fibres in a soft matrix (the fibres do not percolate).

# %%
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.bounds import (
    hashin_shtrikman_conductivity,
    hashin_shtrikman_elastic,
    reuss_bound,
    voigt_bound,
)
from multiscale.cell import CellProblem
from multiscale.mesh import circular_inclusion
from multiscale.physics import Conductivity, IsotropicElasticity
from multiscale.tensors import bulk_shear_from_stiffness

comm = MPI.COMM_WORLD
ci = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
fractions = [0.2, 0.5] if ci else [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
h = 0.08 if ci else 0.025

k_m, k_f = 1.0, 10.0
matrix, fibre = IsotropicElasticity.from_young(1.0, 0.35), IsotropicElasticity.from_young(20.0, 0.2)
kappa_ph, mu_ph = zip(
    *(bulk_shear_from_stiffness(m.tensor(2), 2) for m in (matrix, fibre)), strict=True
)

# %%
rows = []
for vf in fractions:
    cell = circular_inclusion(comm, vf, h=h)
    f = cell.volume_fractions()
    fr = [f["matrix"], f["inclusion"]]
    A = CellProblem(cell, {"matrix": Conductivity(k_m), "inclusion": Conductivity(k_f)}).solve()
    C = CellProblem(cell, {"matrix": matrix, "inclusion": fibre}).solve()
    kappa = 0.5 * (C.tensor[0, 0] + C.tensor[0, 1])
    hs_k = hashin_shtrikman_conductivity(fr, [k_m, k_f], 2)
    hs_e = hashin_shtrikman_elastic(fr, kappa_ph, mu_ph, 2)
    row = {
        "f": fr[1],
        "A11": A.tensor[0, 0],
        "A_HS": hs_k,
        "A_VR": (reuss_bound(fr, [k_m, k_f]), voigt_bound(fr, [k_m, k_f])),
        "kappa": kappa,
        "kappa_HS": (hs_e["bulk_lower"], hs_e["bulk_upper"]),
        "kappa_VR": (reuss_bound(fr, kappa_ph), voigt_bound(fr, kappa_ph)),
    }
    assert hs_k[0] <= row["A11"] <= hs_k[1], row
    assert hs_e["bulk_lower"] <= kappa <= hs_e["bulk_upper"], row
    rows.append(row)

if comm.rank == 0:
    print(f"{'f':>6} {'A11':>8} {'HS low':>8} {'HS up':>8} {'kappa':>8} {'HS low':>8} {'HS up':>8}")
    for r in rows:
        print(
            f"{r['f']:6.3f} {r['A11']:8.4f} {r['A_HS'][0]:8.4f} {r['A_HS'][1]:8.4f} "
            f"{r['kappa']:8.4f} {r['kappa_HS'][0]:8.4f} {r['kappa_HS'][1]:8.4f}"
        )

# %% [markdown]
# The figure: computed values as markers, HS bounds as solid lines, Voigt–Reuss dashed.

# %%
if comm.rank == 0:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    f = np.array([r["f"] for r in rows])
    for ax, key, label in ((axes[0], "A", "$A^{hom}_{11}$"), (axes[1], "kappa", r"$\kappa^{hom}$")):
        value = [r["A11" if key == "A" else "kappa"] for r in rows]
        hs = np.array([r[f"{key}_HS"] for r in rows])
        vr = np.array([r[f"{key}_VR"] for r in rows])
        ax.plot(f, hs[:, 0], "b-", label="HS lower")
        ax.plot(f, hs[:, 1], "r-", label="HS upper")
        ax.plot(f, vr[:, 0], "b--", label="Reuss")
        ax.plot(f, vr[:, 1], "r--", label="Voigt")
        ax.plot(f, value, "ko", label="periodic cell")
        ax.set_xlabel("fibre volume fraction")
        ax.set_ylabel(label)
        ax.legend()
    axes[0].set_title("conductivity, contrast 10")
    axes[1].set_title("in-plane bulk modulus (plane strain)")
    results.mkdir(parents=True, exist_ok=True)
    fig.savefig(results / "fibre_bounds.png", dpi=120)
    print(f"wrote {results / 'fibre_bounds.png'}")
