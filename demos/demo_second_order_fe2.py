# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Second-order FE² with yielding layers: a J2 laminated strip bent by its ends
#
# The laminated beam of `demo_strain_gradient_beam.py` (layers parallel to the axis, $E = 10$ and
# $1$, stiff phase at the period edges, $N$ periods through the height) now yields: both phases
# follow J2 plasticity with linear hardening (the soft one from a strain of 0.004, the stiff one
# from 0.005).  The strip $[0, 2H]\times[-H/2, H/2]$ is bent by its ends: $u_x = \kappa x y$ on
# $x = 0, L$, the faces free.  Three models:
#
# * the **resolved strip** (DNS): every layer meshed, P2, the same end conditions;
# * **first-order FE²**: a cell at every macro quadrature point driven by the macro strain;
# * **second-order FE²** (`SecondOrderFE2Problem`): the cells also see the strain gradient.  The
#   excess double stress $q - J(C_t)g$ is read as the perturbation it is: the macro Newton
#   iteration is first-order FE², and at every converged step a second set of cells, with
#   histories of their own, is driven by the full generalized strain of that solution and adds up
#   the second-order work $W_2$.
#
# The beam's response is the work of the end moment, $W(\kappa)$, and the moment
# $M = dW/d(\kappa L)$ between steps.  Runs under `mpirun`; `CI` shrinks it to $N = 2$.

# %%
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.fe2.strain_gradient import laminate_bending
from multiscale.output import on_rank0, write_json_file
from multiscale.physics import J2Plasticity

comm = MPI.COMM_WORLD
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
shrink = bool(os.environ.get("CI"))
PERIODS = [2] if shrink else [2, 4]
FACTORS = np.array([0.15, 0.4, 0.7, 1.0]) if shrink else np.linspace(0.125, 1.0, 8)
LAWS = {
    "stiff": J2Plasticity.from_young(10.0, 0.3, sigma_y=0.05, H=1.0),
    "soft": J2Plasticity.from_young(1.0, 0.3, sigma_y=0.004, H=0.1),
}

# %% [markdown]
# ## The three models for each number of periods
#
# `laminate_bending` runs the resolved strip (P2, 16 elements per period along the axis) and one
# perturbative `SecondOrderFE2Problem` ($4N \times 2N$ P2 triangles, a one-period cell at every
# quadrature point) whose first- and second-order works are both recorded; the outer-fibre
# strain is 0.02 at the last step.

# %%
runs = {n: laminate_bending(comm, LAWS, n, FACTORS, outer_strain=0.02) for n in PERIODS}
elapsed = sum(sum(r.seconds.values()) for r in runs.values())
works = {
    n: {
        "dns": r.works["dns"].tolist(),
        "first": r.works["first_order"].tolist(),
        "second": r.works["second_order"].tolist(),
        "mean_p": r.max_mean_p.tolist(),
        "kappa_L": r.rotations.tolist(),
    }
    for n, r in runs.items()
}
if comm.rank == 0:
    for n, r in runs.items():
        e = r.errors()
        print(
            f"N = {n}: work error first order {e['first_order'].round(4)}, "
            f"second order {e['second_order'].round(4)}"
        )


# %%
def plot() -> None:
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for n, w in works.items():
        theta = np.concatenate([[0.0], w["kappa_L"]])
        mid = 0.5 * (theta[1:] + theta[:-1])
        for key, style in (("dns", "kx-"), ("first", "s--"), ("second", "o-")):
            W = np.concatenate([[0.0], w[key]])
            ax.plot(mid, np.diff(W) / np.diff(theta), style, mfc="none", label=f"{key}, N = {n}")
            if key != "dns":
                bx.plot(
                    w["kappa_L"], np.array(w[key]) / w["dns"] - 1.0, style, label=f"{key}, N = {n}"
                )
    ax.set(xlabel="end rotation kappa L", ylabel="end moment M", title="J2 laminated strip")
    ax.legend(fontsize=7)
    bx.axhline(0.0, color="k", lw=0.5)
    bx.set(xlabel="end rotation kappa L", ylabel="W / W_DNS - 1", title="work against the DNS")
    bx.legend(fontsize=7)
    fig.tight_layout()
    results.mkdir(parents=True, exist_ok=True)
    fig.savefig(results / "second_order_fe2.png", dpi=120)
    write_json_file(results / "second_order_fe2.json", {"works": works, "seconds": elapsed})


on_rank0(comm, plot)

# %% [markdown]
# ## What it shows
#
# While the layers are elastic the second-order work equals the resolved strip's (the linear
# laminate is exact) and first order is low by the closed-form size effect, $1/(1 +
# 0.613636/N^2) - 1$: 13.3 % at $N = 2$, 3.7 % at $N = 4$.  Once the layers yield the size effect
# fades, and second order stays the closer model at every step: at $N = 2$ 2.6–3.6 % off against
# 4.3–9.1 % for first order, at $N = 4$ (outside CI) within 1.9 % against 2.1–3.8 %.

# %%
for n, w in works.items():
    e1 = np.abs(np.array(w["first"]) / w["dns"] - 1.0)
    e2 = np.abs(np.array(w["second"]) / w["dns"] - 1.0)
    assert e2[0] < 1e-8 and abs(e1[0] - (1.0 - 1.0 / (1.0 + 0.6136364 / n**2))) < 1e-5, (e1, e2)
    assert np.all(e2 < e1) and np.all(e2 < 0.04), (e1, e2)
    assert w["mean_p"][-1] > 1e-3
if comm.rank == 0:
    print(f"verified in {elapsed:.1f} s")
