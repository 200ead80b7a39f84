# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Cell problems of the default fibre composite
#
# The default microstructure shipped in `meshes/fibre2d_vf0.5.msh` is the transverse section of
# a unidirectional fibre composite: a unit square with one centred circular fibre of area
# fraction 0.5, meshed periodically with gmsh.  This demo computes its effective conductivity
# $A^{hom}$ and plane-strain stiffness $C^{hom}$ (Voigt notation 11, 22, 12) under the three
# classical RVE boundary conditions and checks the ordering
# $C^{SUBC} \le C^{PBC} \le C^{KUBC}$ and the Hill–Mandel condition.
#
# Run it with `mpirun -n 2 python3 demos/demo_cell_problems.py` (or
# `multiscale demo cell_problems`).

# %%
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.mesh import check_periodic, circular_inclusion, read_cell_mesh
from multiscale.output import write_json_file
from multiscale.physics import Conductivity, IsotropicElasticity
from multiscale.tensors import energy_order

comm = MPI.COMM_WORLD
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
mesh_file = Path(__file__).resolve().parents[1] / "meshes" / "fibre2d_vf0.5.msh"

# %% [markdown]
# The shipped mesh is read with its phase names; under CI a coarser cell is generated instead.

# %%
if os.environ.get("CI"):
    cell = circular_inclusion(comm, 0.5, h=0.1)
else:
    cell = read_cell_mesh(mesh_file, comm)
check_periodic(cell)

# %% [markdown]
# Phase laws: matrix and fibre, contrast 10 for both physics.

# %%
laws = {
    "conductivity": {"matrix": Conductivity(1.0), "inclusion": Conductivity(10.0)},
    "elasticity": {
        "matrix": IsotropicElasticity.from_young(1.0, 0.3),
        "inclusion": IsotropicElasticity.from_young(10.0, 0.3),
    },
}
summary = {}
for physics, materials in laws.items():
    problem = CellProblem(cell, materials)
    out = {bc: problem.solve(bc) for bc in ("subc", "periodic", "kubc")}
    summary[physics] = {bc: r.to_dict() for bc, r in out.items()}
    gaps = (
        energy_order(out["subc"].tensor, out["periodic"].tensor),
        energy_order(out["periodic"].tensor, out["kubc"].tensor),
    )
    if comm.rank == 0:
        print(f"\n{physics}: {problem.ndofs} dofs, fractions {problem.volume_fractions}")
        for bc, r in out.items():
            with np.printoptions(precision=5, suppress=True):
                print(f"  {bc:8s} Hill-Mandel {r.hill_mandel_residual:.1e}\n{r.tensor}")
        print(f"  min eig(C_PBC - C_SUBC) = {gaps[0]:.3e}, min eig(C_KUBC - C_PBC) = {gaps[1]:.3e}")
    assert min(gaps) > -1e-10, "the boundary-condition ordering is violated"

# %%
if comm.rank == 0:
    write_json_file(results / "cell_problems.json", summary)
    print(f"\nwrote {results / 'cell_problems.json'}")
