# ---
# jupytext:
#   formats: py:percent
#   text_representation:
#     extension: .py
#     format_name: percent
# ---

# %% [markdown]
# # FE²: a plate with a hole made of an elastoplastic fibre composite
#
# The transverse section of a unidirectional fibre composite (the default microstructure
# `meshes/fibre2d_vf0.5.msh`: fibre volume fraction 0.5) is loaded in plane strain.  The macro
# problem is a quarter of a square plate with a central hole, pulled at the top; symmetry holds
# x = 0 and y = 0.  At every macro Gauss point an RVE of the microstructure is solved with an
# elastoplastic J2 matrix (linear isotropic hardening) and elastic glass fibres; its homogenized
# stress and consistent tangent drive the macro Newton, and its internal variables (plastic
# strain at every micro Gauss point) are committed after each converged load step.
#
# Outputs (under `$MULTISCALE_RESULTS`, default `results/`, in `fe2_plate/`): `macro.xdmf`
# (displacement, stress, mean equivalent plastic strain of the RVEs) and `rve_0.xdmf` (the
# RVE next to the hole, where plasticity starts) for ParaView, `summary.json` (load–displacement
# curve, Newton residual histories, per-rank RVE counts and times) and the curve as a figure.
#
# Run it: `scripts/env-run mpirun -n 2 multiscale demo fe2_plate`.

# %%
import logging
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.fe2 import DisplacementBC, FE2Problem
from multiscale.fe2.config import step_summary
from multiscale.fe2.output import FE2Output
from multiscale.mesh import circular_inclusion
from multiscale.mesh.macro import plate_with_hole
from multiscale.output import write_json
from multiscale.physics import IsotropicElasticity, J2Plasticity
from multiscale.progress import Progress

comm = MPI.COMM_WORLD
ci = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "fe2_plate"
mesh_file = Path(__file__).resolve().parents[1] / "meshes" / "fibre2d_vf0.5.msh"
if not logging.getLogger().handlers:  # run as a script: show rank 0's progress
    logging.basicConfig(
        level=logging.INFO if comm.rank == 0 else logging.WARNING, format="%(message)s"
    )

# %% [markdown]
# Phase laws (GPa): an epoxy-like matrix that yields at 50 MPa with 10 % hardening, and glass
# fibres.  The contrast of elastic moduli is about 20.

# %%
materials = {
    "matrix": J2Plasticity.from_young(E=3.5, nu=0.35, sigma_y=0.05, H=0.35),
    "inclusion": IsotropicElasticity.from_young(E=72.0, nu=0.22),
}

# %% [markdown]
# The macro mesh is refined at the hole.  Under CI the plate, the RVE and the load history
# shrink so the demo runs in seconds.

# %%
if ci:
    macro = plate_with_hole(comm, radius=0.3, h=0.35, h_hole=0.25)
    cell = lambda c: circular_inclusion(c, 0.5, h=0.12)  # noqa: E731
    factors = [0.5, 1.0]
else:
    macro = plate_with_hole(comm, radius=0.3, h=0.15, h_hole=0.08)
    cell = mesh_file
    factors = list(np.linspace(0.0, 1.0, 7)[1:])

U_TOP = 0.015  # 1.5 % mean strain at load factor 1
problem = FE2Problem(
    macro,
    cell,
    materials,
    bcs=[
        DisplacementBC("left", 0.0, component=0),
        DisplacementBC("bottom", 0.0, component=1),
        DisplacementBC("top", U_TOP, component=1),
    ],
)
output = FE2Output(problem, results, probes=[(0.3, 0.02)])
progress = Progress(len(factors), "load factor", comm)


def on_step(step):
    output(step)
    progress.advance(step_summary(step, problem.result))


problem.on_step = on_step
result = problem.solve(factors)
output.close()
progress.close()

# %% [markdown]
# The load–displacement curve bends once the matrix yields around the hole; every RVE satisfies
# the Hill–Mandel condition to round-off.

# %%
summary = {**result.to_dict(), "probes": output.probe_points()}
summary["files"] = [str(p) for p in output.files()]
write_json(results / "summary.json", summary, comm)
curve = result.curve()  # load factor, reaction on "top"
if comm.rank == 0:
    print(f"\n{'factor':>8} {'u_top':>9} {'reaction':>10} {'its':>4} {'max <p>':>9} {'HM':>8}")
    for s, (_, reaction) in zip(result.steps, curve, strict=True):
        q = s.quantities
        print(
            f"{s.factor:8.3f} {s.factor * U_TOP:9.5f} {reaction:10.6f} {s.iterations:4d}"
            f" {q['max_mean_p']:9.2e} {q['max_hill_mandel']:8.1e}"
        )
    m, t = result.micro, result.timings
    print(
        f"\nRVE solves: {m['solves_total']} ({m['solves_per_rank']} per rank), "
        f"load imbalance {m['imbalance']:.3f}; micro Newton {t['micro_newton']:.1f} s,"
        f" tangents {t['micro_tangent']:.1f} s, macro assembly {t['macro_assembly']:.2f} s"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.r_[0.0, curve[:, 0] * U_TOP], np.r_[0.0, curve[:, 1]], "o-")
    ax.set_xlabel("top displacement")
    ax.set_ylabel("reaction force (quarter plate)")
    ax.set_title("FE² plate with a hole, J2 matrix + elastic fibres")
    fig.tight_layout()
    fig.savefig(results / "load_displacement.png", dpi=120)
    print(f"wrote {results / 'load_displacement.png'} and {results / 'summary.json'}")
assert all(s.quantities["max_hill_mandel"] < 1e-10 for s in result.steps), "Hill-Mandel violated"
problem.destroy()
