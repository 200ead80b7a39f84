# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # FE-HMM error table: macro, micro and resonance errors against DNS and homogenization
#
# $-\nabla\cdot a(x/\varepsilon)\nabla u = 1$ on the unit square with the smooth periodic
# $a(y) = 1 + \tfrac12\sin 2\pi y_1\sin 2\pi y_2 + \tfrac14\cos 2\pi y_1$.  Each row is one FE-HMM
# run ($H$, $\delta$, $\varepsilon$, coupling, micro cells per period $\varepsilon/h$) with its
# relative $L^2$ error against the DNS ($\varepsilon/h_{DNS} = 8$) and against the homogenized
# solution $u_0$ ($A^{hom}$ from a fine periodic cell problem, solved on a fine mesh).  Read:
# the macro error falls like $H^2$ (first block), the micro error like $(h/\varepsilon)^2$
# (second), Dirichlet coupling adds a resonance error $\sim\varepsilon/\delta$ that periodic
# coupling with $\delta = k\varepsilon$ does not have (third), and the error against the DNS
# contains the homogenization error $O(\varepsilon)$ (fourth).

# %%
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.hmm import (
    DNSProblem,
    HMMProblem,
    MacroProblem,
    MicroSettings,
    SamplingProblem,
    compare,
    smooth_periodic,
)
from multiscale.mesh import unit_mesh

comm = MPI.COMM_WORLD
ci = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
coef = smooth_periodic(2, 0.5)
cell = SamplingProblem(MPI.COMM_SELF, coef, MicroSettings(1.0, 1.0, n=32 if ci else 128))
A_hom = cell.effective_tensor(np.zeros(2))
cell.destroy()

e0 = 1 / 8 if ci else 1 / 16
Hs = [4, 8] if ci else [4, 8, 16, 32]
H0 = Hs[-1]
rows_spec = (
    [(H, e0, 1, "periodic", 8) for H in Hs]
    + [(H0, e0, 1, "periodic", m) for m in (2, 4)]
    + [(H0, e0, k, c, 8) for k in ([2] if ci else [2, 4]) for c in ("dirichlet", "periodic")]
    + [(H0, e, 1, "periodic", 8) for e in ([1 / 4] if ci else [1 / 8, 1 / 32])]
)
n_ref = 64 if ci else 256
u_0 = MacroProblem(unit_mesh(comm, 2, n_ref)).solve_homogenized(A_hom)
dns_cache = {}

# %%
rows = []
for H, eps, k, coupling, m in rows_spec:
    if eps not in dns_cache:
        dns_cache[eps] = DNSProblem(comm, coef, eps, round(8 / eps)).solve()
    hmm = HMMProblem(
        unit_mesh(comm, 2, H), coef, MicroSettings(k * eps, eps, n=k * m, coupling=coupling)
    )
    u_H = hmm.solve()
    ed, eh = compare(u_H, H, dns_cache[eps]), compare(u_H, H, u_0)
    rows.append((H, k * eps, eps, coupling, m, ed["L2"] / ed["L2_ref"], eh["L2"] / eh["L2_ref"]))
    hmm.destroy()

if comm.rank == 0:
    print("| H | delta | eps | coupling | eps/h | L2 error vs DNS | L2 error vs homogenized |")
    print("|---|---|---|---|---|---|---|")
    for H, d, e, c, m, ed, eh in rows:
        print(f"| 1/{H} | 1/{round(1 / d)} | 1/{round(1 / e)} | {c} | {m} | {ed:.3e} | {eh:.3e} |")
    results.mkdir(parents=True, exist_ok=True)
    (results / "hmm_errors.md").write_text("\n".join(" ".join(map(str, r)) for r in rows) + "\n")
