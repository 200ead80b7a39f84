# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Bloch waves: dispersion, band gaps and the long-wave limit
#
# First-order homogenization holds while the wavelength is long against the cell.  The
# Floquet–Bloch eigenproblem on the unit cell, $u = e^{i k\cdot y} p(y)$ with $p$ periodic,
# shows where it fails: the branches bend, and stop bands (gaps) open where no wave propagates.
# Its long-wave limit is the homogenized wave speed.
#
# * a 1D layered medium (E 1 and 10, rho 1, layers 1/2 and 1/2) against Rytov's closed-form
#   dispersion relation;
# * a 2D phononic crystal for anti-plane shear waves (a disk of area fraction 0.3, ten times
#   stiffer and denser than the matrix) along $\Gamma$–X–M–$\Gamma$, its long-wave slope against
#   the homogenized speed from the cell solver.
#
# The k-points are spread over the MPI ranks (`mpirun -n 2 python3 demos/demo_bloch_waves.py`).

# %%
import json
import math
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.cell.bloch import (
    WavePhase,
    dispersion,
    homogenized_speeds,
    kpath,
    layered_cell,
)
from multiscale.mesh import circular_inclusion
from multiscale.output import on_rank0

comm = MPI.COMM_WORLD
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
shrink = bool(os.environ.get("CI"))

# %% [markdown]
# ## 1D layered medium and Rytov's relation
#
# $\cos ka = \cos\frac{\omega h_1}{c_1}\cos\frac{\omega h_2}{c_2}
# - \frac12\left(\frac{Z_1}{Z_2} + \frac{Z_2}{Z_1}\right)
# \sin\frac{\omega h_1}{c_1}\sin\frac{\omega h_2}{c_2}$, $Z = \rho c$, $c = \sqrt{E/\rho}$: every
# frequency whose right-hand side lies in $[-1, 1]$ propagates with $k = \arccos(\cdot)/a$.

# %%
E, RHO, H = (1.0, 10.0), 1.0, (0.5, 0.5)
layers = {f"layer{j}": WavePhase.scalar(e, RHO) for j, e in enumerate(E)}


def rytov(omega: np.ndarray) -> np.ndarray:
    c = [math.sqrt(e / RHO) for e in E]
    z = [RHO * speed for speed in c]
    p1, p2 = omega * H[0] / c[0], omega * H[1] / c[1]
    return np.cos(p1) * np.cos(p2) - 0.5 * (z[0] / z[1] + z[1] / z[0]) * np.sin(p1) * np.sin(p2)


path1 = kpath(["G", "X"], [1.0], 8 if shrink else 32)
layered = dispersion(lambda c: layered_cell(c, H, 1 / 32), layers, path1, nbands=4)
harmonic_speed = 1.0 / math.sqrt(RHO * (H[0] / E[0] + H[1] / E[1]))
if comm.rank == 0:
    print("1D layered: gaps", [f"[{lo:.6f}, {hi:.6f}]" for _, lo, hi in layered.gaps])
    print(
        f"  long-wave speed {layered.long_wave_speeds[0]:.7f}, sqrt(E_harm/rho) "
        f"{harmonic_speed:.7f}"
    )

# %% [markdown]
# ## 2D phononic crystal (anti-plane shear)

# %%
crystal = {"matrix": WavePhase.scalar(1.0, 1.0), "inclusion": WavePhase.scalar(10.0, 10.0)}
h = 0.1 if shrink else 0.05


def make_cell(c: MPI.Comm):
    return circular_inclusion(c, 0.3, h=h)


path2 = kpath(["G", "X", "M", "G"], [1.0, 1.0], 3 if shrink else 12)
phononic = dispersion(make_cell, crystal, path2, nbands=6)
homogenized = homogenized_speeds(make_cell(comm), crystal, phononic.direction, degree=2)
if comm.rank == 0:
    print("2D crystal: gaps", [f"[{lo:.4f}, {hi:.4f}]" for _, lo, hi in phononic.gaps])
    print(f"  long-wave speed {phononic.long_wave_speeds[0]:.7f}, homogenized {homogenized[0]:.7f}")

# %% [markdown]
# ## Dispersion diagrams, gaps shaded

# %%


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    w = np.linspace(1e-4, layered.frequencies.max(), 4000)
    rhs = rytov(w)
    inside = np.abs(rhs) <= 1
    ax1.plot(np.where(inside, np.arccos(np.clip(rhs, -1, 1)), np.nan), w, "k-", lw=1, label="Rytov")
    ax1.plot(layered.path.k[:, 0], layered.frequencies, "o", ms=3, color="C0")
    ax1.plot([], [], "o", ms=3, color="C0", label="FE Bloch (P2)")
    ax1.plot([0, 0.6], [0, 0.6 * harmonic_speed], "r--", label="homogenized $c$")
    for ax, res in ((ax1, layered), (ax2, phononic)):
        for _, lo, hi in res.gaps:
            ax.axhspan(lo, hi, color="0.85")
        ax.set_ylabel(r"$\omega$")
    ax1.set_xlabel(r"$k a$")
    ax1.set_title("1D layered medium")
    ax1.legend(loc="center right")
    ax2.plot(phononic.path.distance, phononic.frequencies, "C0.-", ms=3)
    k_small = phononic.path.distance[: len(phononic.path.k) // 3 + 1]
    ax2.plot(k_small, homogenized[0] * k_small, "r--", label="homogenized $c$")
    ax2.set_xticks([d for d, _ in phononic.path.labels], [n for _, n in phononic.path.labels])
    ax2.set_title("phononic crystal, anti-plane shear")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    results.mkdir(parents=True, exist_ok=True)
    fig.savefig(results / "bloch_dispersion.png", dpi=120)
    summary = {"layered": layered.to_dict(), "phononic": phononic.to_dict()}
    summary["phononic"]["homogenized_speeds"] = homogenized
    (results / "bloch_waves.json").write_text(
        json.dumps(summary, indent=1, default=lambda a: np.asarray(a).tolist())
    )
    print(f"wrote {results / 'bloch_dispersion.png'}")


on_rank0(comm, plot)
assert abs(layered.long_wave_speeds[0] / harmonic_speed - 1) < 1e-6
assert abs(phononic.long_wave_speeds[0] / homogenized[0] - 1) < 1e-6
