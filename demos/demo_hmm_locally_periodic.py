# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # FE-HMM for a locally periodic conductivity, beside the DNS
#
# $-\nabla\cdot a(x, x/\varepsilon)\nabla u = 1$ on the unit square, $u = 0$ on the boundary, with
# $a(x, y) = c(x)\,b(y)$, $c(x) = 1 + \tfrac12\sin 2\pi x_1$ and the smooth periodic
# $b(y) = 1 + \alpha\sin 2\pi y_1 \sin 2\pi y_2 + \tfrac\alpha2\cos 2\pi y_1$.  FE-HMM uses a
# coarse P1 mesh ($H$) with one sampling domain $K_\delta(x_K)$ ($\delta = \varepsilon$,
# periodic coupling) per macro element; the DNS resolves $\varepsilon$ with 8 cells per period.
# The homogenized solution uses $A^{hom}(x) = c(x) B^{hom}$, $B^{hom}$ from a fine cell problem.

# %%
import math
import os
from pathlib import Path

import numpy as np
import ufl
from mpi4py import MPI

from multiscale.hmm import (
    DNSProblem,
    HMMProblem,
    MacroProblem,
    MicroSettings,
    SamplingProblem,
    compare,
    separable,
    smooth_periodic,
)
from multiscale.mesh import unit_mesh

comm = MPI.COMM_WORLD
ci = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
eps = 1 / 8 if ci else 1 / 32
H = 8 if ci else 32
n_dns = round(8 / eps)

fast = smooth_periodic(2, 0.5)
coef = separable(lambda x: 1 + 0.5 * ufl.sin(2 * math.pi * x[0]), fast)

# %%
hmm = HMMProblem(unit_mesh(comm, 2, H), coef, MicroSettings(eps, eps, n=8))
u_H = hmm.solve()
stats = hmm.statistics()
dns = DNSProblem(comm, coef, eps, n_dns)
u_eps = dns.solve()
cell = SamplingProblem(MPI.COMM_SELF, fast, MicroSettings(1.0, 1.0, n=64))
B = cell.effective_tensor(np.zeros(2))
cell.destroy()
ref = MacroProblem(unit_mesh(comm, 2, n_dns), quadrature_degree=2)
u_0 = ref.solve_homogenized(lambda p: (1 + 0.5 * np.sin(2 * np.pi * p[:, 0]))[:, None, None] * B)
e_dns, e_hom = compare(u_H, H, u_eps), compare(u_H, H, u_0)
if comm.rank == 0:
    print(f"H = 1/{H}, eps = delta = 1/{round(1 / eps)}, DNS {dns.ndofs} dofs")
    print(
        f"micro solves {stats['pool']['solves_total']}, HMM {stats['timings_s']}, "
        f"DNS {dns.seconds:.2f} s"
    )
    print(
        f"relative L2 error vs DNS {e_dns['L2'] / e_dns['L2_ref']:.3e}, "
        f"vs homogenized {e_hom['L2'] / e_hom['L2_ref']:.3e}"
    )
hmm.destroy()


# %% [markdown]
# The two solutions side by side (the DNS shows the $\varepsilon$-ripples that HMM averages out).


# %%
def _gather(u):
    V = u.function_space
    n = V.dofmap.index_map.size_local
    xy = np.concatenate(comm.gather(V.tabulate_dof_coordinates()[:n, :2], root=0) or [[]])
    vals = comm.gather(u.x.array[:n].copy(), root=0)
    return (xy, np.concatenate(vals)) if comm.rank == 0 else (None, None)


pieces = [_gather(u_H), _gather(u_eps)]
if comm.rank == 0:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), constrained_layout=True)
    vmax = max(p[1].max() for p in pieces)
    for ax, (xy, v), title in zip(
        axes, pieces, (f"FE-HMM, H = 1/{H}", f"DNS, eps = 1/{round(1 / eps)}"), strict=True
    ):
        im = ax.tricontourf(xy[:, 0], xy[:, 1], v, levels=30, vmin=0, vmax=vmax)
        ax.set_title(title)
        ax.set_aspect("equal")
    fig.colorbar(im, ax=axes, shrink=0.8)
    results.mkdir(parents=True, exist_ok=True)
    fig.savefig(results / "hmm_locally_periodic.png", dpi=110)
    print(f"wrote {results / 'hmm_locally_periodic.png'}")
