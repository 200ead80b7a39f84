# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The quasicontinuum method: ghost forces, their correction, and errors near the interface
#
# Representative atoms (repatoms) are the nodes of a coarse mesh; the other atoms follow them
# by linear interpolation, $x = T x_r$.  Near the defect every atom is a repatom and its
# energy is summed bond by bond; far away Cauchy–Born $W(F_e)$ on the elements stands in for
# the atoms.  The energy-based coupling (QCE) is not exact for a uniform deformation: the
# repatoms at the interface feel *ghost forces*.  A dead-load correction (Shenoy et al.) or the
# force-based coupling (QCF) removes them; an energy blend over a width $w$ (BQCE) shrinks them.
#
# 1. A chain, Lennard-Jones nearest neighbours and a harmonic next-nearest spring, stretched
#    uniformly: the ghost-force profile at the interface, for QCE and the blend.
# 2. The same chain with a soft bond, against the full atomistic chain: the error profile, and
#    the error as the atomistic radius $R$ grows.
# 3. The triangular Lennard-Jones lattice with a vacancy cluster under tension: the ghost-force
#    map of QCE and the error of QCF near the defect as $R$ grows.
#
# Run it with `mpirun -n 2 python3 demos/demo_quasicontinuum.py` (every rank solves the same
# problem on `COMM_SELF`; rank 0 prints and plots).

# %%
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.atomistic import (
    AtomisticProblem,
    AtomSet,
    CauchyBorn,
    CoarseMesh,
    Harmonic,
    Lattice,
    LennardJones,
    MeshSpec,
    PairModel,
    QCModel,
    QCProblem,
    soften_bonds,
)
from multiscale.output import write_json_file

comm = MPI.COMM_WORLD
results = Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "quasicontinuum"
ci = bool(os.environ.get("CI"))
n_chain, radii_1d = (129, (1, 2, 3, 4)) if ci else (257, (1, 2, 3, 4, 5, 6))
size_2d, radii_2d = ((30, 28), (3, 5, 7)) if ci else ((60, 56), (3, 5, 7, 9, 12))

LJ = LennardJones()
POTS = (LJ, Harmonic(10.0, 2 * LJ.r_eq))
law1 = CauchyBorn.relaxed(Lattice.of("chain"), POTS, shells=2)
a1 = float(law1.bonds.radii[0])
chain = Lattice.of("chain").with_constant(a1)
atoms1 = AtomSet.block(chain, (0.0,), ((n_chain - 1) * a1,))
m = n_chain // 2
c1 = ((m + 0.5) * a1,)
rc1 = 2.05 * a1


def soft(model, ids):
    return soften_bonds(model, ids, [(m, m + 1)], LennardJones(0.5, 1.0))


def edge(X, atoms, width):
    lo, hi = atoms.positions.min(0), atoms.positions.max(0)
    return np.minimum(X - lo, hi - X).min(axis=1) <= width * (1 + 1e-9)


def chain_qc(R, method, F, blend=0.0, modify=None):
    spec = MeshSpec(c1, R * a1, padding=rc1, layer=rc1, coarse_size=8, blend_width=blend * a1)
    mesh = CoarseMesh.graded(atoms1, chain, spec)
    model = QCModel(mesh, POTS, rc1, law1, modify=modify)
    return mesh, QCProblem(model, method, macro_F=F, centre=c1, fixed=edge(mesh.X, atoms1, rc1))


# %% [markdown]
# ## Ghost forces in the chain
#
# Under $x = \lambda X$ every exact force vanishes.  QCE leaves $\pm\frac12\phi_2'(2\lambda a)$
# on the repatoms whose next-nearest bonds cross the interface; the blend spreads and shrinks
# them.

# %%
F1 = np.array([[1.03]])
profiles = {}
for label, method, blend in (("QCE", "qce", 0.0), ("BQCE w = 8", "blended", 8.0)):
    mesh, p = chain_qc(6, method, F1, blend)
    with p:
        g = p.ghost_forces(1.0)[:, 0]
        g[p.fixed] = 0.0
    order = np.argsort(mesh.X[:, 0])
    profiles[label] = ((mesh.X[order, 0] - c1[0]) / a1, g[order])
half_phi2 = 0.5 * 10.0 * (2 * 1.03 * a1 - 2 * LJ.r_eq)
if comm.rank == 0:
    print(
        f"QCE ghost force max {np.abs(profiles['QCE'][1]).max():.6f}, "
        f"phi_2'(2 lambda a)/2 = {half_phi2:.6f}; "
        f"blended (w = 8) max {np.abs(profiles['BQCE w = 8'][1]).max():.6f}"
    )

# %% [markdown]
# ## The chain with a soft bond, against the full atomistic chain

# %%
F2 = np.array([[1.02]])
X1 = atoms1.positions
full1 = soft(PairModel(atoms1, POTS, rc1), np.arange(n_chain))
with AtomisticProblem(full1, fixed=edge(X1, atoms1, rc1), displacement=(X1 - c1) * 0.02) as ap:
    ap.solve([1.0])
    xa1 = ap.x.copy()
errors_1d = {}
profiles_err = {}
for method in ("qce", "qce_corrected", "qcf"):
    errs = []
    for R in radii_1d:
        mesh, p = chain_qc(R, method, F2, modify=soft)
        with p:
            p.solve([1.0])
            x = mesh.interpolation() @ p.xr
        e = np.abs(x - xa1)[:, 0] / a1
        errs.append(float(e.max()))
        if R == 4:
            profiles_err[method] = e
    errors_1d[method] = errs
if comm.rank == 0:
    for method, errs in errors_1d.items():
        print(method, "max error / a vs R:", " ".join(f"{e:.2e}" for e in errs))

# %% [markdown]
# ## A vacancy cluster in the triangular lattice under tension

# %%
law2 = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=1)
a2 = float(law2.bonds.radii[0])
tri = Lattice.of("triangular").with_constant(a2)
block = AtomSet.block(tri, (0.0, 0.0), (size_2d[0] * a2, size_2d[1] * a2))
c2 = block.positions[block.nearest(0.5 * block.positions.max(0))]
atoms2 = block.without(np.flatnonzero(np.linalg.norm(block.positions - c2, axis=1) < 1.01 * a2))
X2, rc2 = atoms2.positions, 1.5 * a2
F3 = np.array([[1.02, 0.0], [0.0, 1.0]])
U2 = (X2 - c2) @ (F3 - np.eye(2)).T
with AtomisticProblem(
    PairModel(atoms2, LJ, rc2), fixed=edge(X2, atoms2, 2 * a2), displacement=U2
) as ap:
    ap.solve([1.0])
    xa2 = ap.x.copy()
near = np.linalg.norm(X2 - c2, axis=1) < 6 * a2
defect = np.linalg.norm(xa2 - X2 - U2, axis=1)[near].max()


def vacancy_qc(R, method):
    spec = MeshSpec(tuple(c2), R * a2, padding=rc2, layer=2 * a2, growth=1.0)
    mesh = CoarseMesh.graded(atoms2, tri, spec)
    model = QCModel(mesh, LJ, rc2, law2)
    fixed = edge(mesh.X, atoms2, 2 * a2)
    return mesh, QCProblem(model, method, macro_F=F3, centre=tuple(c2), fixed=fixed)


mesh_map, p = vacancy_qc(radii_2d[1], "qce")
with p:
    ghost_map = np.linalg.norm(p.ghost_forces(1.0), axis=1)
    ghost_map[p.fixed] = 0.0
errors_2d = []
for R in radii_2d:
    mesh, p = vacancy_qc(R, "qcf")
    with p:
        p.solve([1.0])
        x = mesh.interpolation() @ p.xr
    errors_2d.append(float(np.linalg.norm(x - xa2, axis=1)[near].max() / defect))
rates = np.log(np.array(errors_2d[:-1]) / errors_2d[1:]) / np.log(
    np.array(radii_2d[1:]) / radii_2d[:-1]
)
if comm.rank == 0:
    print(
        "QCF error near the vacancy / defect displacement vs R:",
        " ".join(f"{e:.2e}" for e in errors_2d),
        "rates",
        np.round(rates, 2),
    )

# %%
if comm.rank == 0:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    for label, (s, g) in profiles.items():
        ax[0, 0].plot(s, g, "o-", ms=3, label=label)
    ax[0, 0].set(
        xlim=(-16, 16), xlabel="(X - c)/a", ylabel="ghost force", title="chain, x = 1.03 X"
    )
    ax[0, 0].legend()
    for method, e in profiles_err.items():
        ax[0, 1].semilogy((X1[:, 0] - c1[0]) / a1, np.maximum(e, 1e-12), label=method)
    ax[0, 1].axvline(-4, color="k", lw=0.5)
    ax[0, 1].axvline(4, color="k", lw=0.5)
    ax[0, 1].set(
        xlim=(-20, 20),
        xlabel="(X - c)/a",
        ylabel="|x - x_atoms| / a",
        title="soft bond, R = 4: error at the interface",
    )
    ax[0, 1].legend()
    for method, errs in errors_1d.items():
        ax[1, 0].semilogy(radii_1d, errs, "o-", label=f"chain {method}")
    ax[1, 0].loglog(radii_2d, errors_2d, "s-", label="vacancy QCF (relative)")
    ax[1, 0].set(xlabel="atomistic radius R / a", ylabel="error", title="error vs R")
    ax[1, 0].legend()
    tpc = ax[1, 1].tripcolor(
        mesh_map.X[:, 0], mesh_map.X[:, 1], mesh_map.elements, ghost_map, shading="gouraud"
    )
    ax[1, 1].triplot(mesh_map.X[:, 0], mesh_map.X[:, 1], mesh_map.elements, lw=0.2, color="k")
    ax[1, 1].set(aspect="equal", title=f"QCE ghost forces, vacancy, R = {radii_2d[1]}")
    fig.colorbar(tpc, ax=ax[1, 1])
    fig.tight_layout()
    fig.savefig(results / "quasicontinuum.png", dpi=120)
    plt.close(fig)
    summary = {
        "chain_ghost_force_qce": float(np.abs(profiles["QCE"][1]).max()),
        "chain_ghost_force_closed_form": half_phi2,
        "chain_ghost_force_blended_w8": float(np.abs(profiles["BQCE w = 8"][1]).max()),
        "chain_radii": list(radii_1d),
        "chain_errors": errors_1d,
        "vacancy_radii": list(radii_2d),
        "vacancy_errors_relative": errors_2d,
        "vacancy_rates": rates.tolist(),
    }
    write_json_file(results / "quasicontinuum.json", summary)
    print(f"wrote {results / 'quasicontinuum.png'} and quasicontinuum.json")
