# ---
# jupytext:
#   formats: py:percent
#   text_representation:
#     extension: .py
#     format_name: percent
# ---

# %% [markdown]
# # FE² at finite strain: a 3D block of a particle-reinforced rubber
#
# A block of a soft Neo-Hookean matrix with stiff Neo-Hookean spherical particles (volume
# fraction 0.2) is stretched by 30 % in y, with sliding supports on the planes x = 0, y = 0,
# z = 0.  Every macro Gauss point carries a 3D RVE solved at finite strain for the macro
# deformation gradient F; the macro Newton uses the consistent tangent dP/dF assembled from the
# RVEs (9 extra right-hand sides each, solved with the factorization of the converged micro
# Jacobian).
#
# Global equilibrium gives two checks: the reaction on the top face (undeformed area 1) equals
# the volume mean of the nominal stress P_yy over the block, and the lateral normal stresses,
# which act on free or sliding faces of a block deforming almost homogeneously, vanish.  (The
# coarse sphere mesh is not exactly cubic-symmetric, so the RVEs couple shear and stretch a
# little, which is why the points differ slightly.)

# %%
import logging
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.fe2 import DisplacementBC, FE2Problem
from multiscale.mesh import spherical_inclusion
from multiscale.mesh.macro import box
from multiscale.output import write_json
from multiscale.physics import NeoHookean

comm = MPI.COMM_WORLD
ci = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "fe2_block3d"
if not logging.getLogger().handlers:
    logging.basicConfig(
        level=logging.INFO if comm.rank == 0 else logging.WARNING, format="%(message)s"
    )

# %%
materials = {
    "matrix": NeoHookean.from_young(E=1.0, nu=0.45),
    "inclusion": NeoHookean.from_young(E=20.0, nu=0.3),
}
h = 0.4 if ci else 0.2
n = (1, 1, 1) if ci else (2, 2, 2)
factors = [0.5, 1.0] if ci else list(np.linspace(0.0, 1.0, 5)[1:])
stretch = 0.3

macro = box(comm, (1.0, 1.0, 1.0), n)
problem = FE2Problem(
    macro,
    lambda c: spherical_inclusion(c, 0.2, h=h),
    materials,
    bcs=[
        DisplacementBC("left", 0.0, component=0),
        DisplacementBC("bottom", 0.0, component=1),
        DisplacementBC("back", 0.0, component=2),
        DisplacementBC("top", stretch, component=1),
    ],
)
result = problem.solve(factors)

# %% [markdown]
# The macro stress: the volume mean of the RVE nominal stress against the reaction.

# %%
d = problem.dim
P = problem.rule.values(problem.flux).reshape(-1, d, d)
P_mean = comm.allreduce(P.sum(axis=0), op=MPI.SUM) / comm.allreduce(len(P), op=MPI.SUM)
spread = comm.allreduce(float(np.abs(P - P_mean).max()) if len(P) else 0.0, op=MPI.MAX)
curve = result.curve()  # load factor, reaction on "top" (y)
write_json(results / "summary.json", result.to_dict(), comm)
if comm.rank == 0:
    print(f"\n{'stretch':>8} {'P_yy = reaction':>16} {'Newton its':>10}")
    for s, (_, reaction) in zip(result.steps, curve, strict=True):
        print(f"{1 + s.factor * stretch:8.3f} {reaction:16.6f} {s.iterations:10d}")
    with np.printoptions(precision=6, suppress=True):
        print(f"\nmean first Piola stress of the RVEs:\n{P_mean}\nspread over points {spread:.1e}")
assert abs(curve[-1, 1] - P_mean[1, 1]) < 1e-6 * abs(P_mean[1, 1]), "reaction != P_yy"
assert abs(P_mean[0, 0]) < 1e-6 * abs(P_mean[1, 1]), "lateral stress should vanish"
assert all(s.quantities["max_hill_mandel"] < 1e-10 for s in result.steps)
problem.destroy()
