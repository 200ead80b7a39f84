# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Effective properties of a microstructure image
#
# A microstructure often comes as a picture: a micrograph segmented into phases, a tomography
# stack, the output of a generator.  Here we draw random non-overlapping disks (area fraction
# 0.3, wrapped around the edges so the picture is one period) into a black-and-white PNG with
# matplotlib, read it back as a user would, name the phases by their grey value
# (0 = matrix, 255 = inclusion) and solve the cell problems on one quadrilateral per pixel:
#
# * the conductivity (contrast 10) with periodic, KUBC and SUBC boundary conditions, which
#   order as $A^{SUBC} \preceq A^{PBC} \preceq A^{KUBC}$ inside the Hashin–Shtrikman bounds of
#   the pixel fraction;
# * the plane-strain stiffness (periodic);
# * the pixelization error: the same disks drawn at 1/4 and 1/2 of the resolution, against a
#   conforming mesh of the exact disks (P2), to which the pixel results converge at first
#   order in the pixel size.
#
# The image is drawn and read on rank 0; the pixel mesh is distributed over the ranks
# (`mpirun -n 2 python3 demo_image_microstructure.py`).

# %%
import os
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.bounds import hashin_shtrikman_conductivity
from multiscale.cell import CellProblem
from multiscale.mesh import (
    image_cell,
    load_phase_image,
    random_inclusion_cell,
    random_sequential_addition,
    rasterize,
    segment_image,
)
from multiscale.output import on_rank0, write_json_file
from multiscale.physics import Conductivity, IsotropicElasticity

comm = MPI.COMM_WORLD
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
shrink = bool(os.environ.get("CI"))
N = 128 if shrink else 512  # pixels along each edge of the unit cell
H_REF = 0.02 if shrink else 0.008  # mesh size of the conforming reference
K_M, K_I = 1.0, 10.0

# %% [markdown]
# ## The picture
#
# Pixel $(r, c)$ of the PNG (row from the top) is the square
# $[c, c+1] \times [N-1-r, N-r]/N$ of the unit cell.

# %%
layout = random_sequential_addition((1.0, 1.0), 0.3, 0.08, gap=0.02, seed=7)
png = results / "image_microstructure_input.png"


def draw() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results.mkdir(parents=True, exist_ok=True)
    picture = rasterize(layout, N).T[::-1]  # [x, y] -> image rows and columns
    plt.imsave(png, picture, cmap="gray", vmin=0, vmax=1)


on_rank0(comm, draw)

# %% [markdown]
# ## Reading it: phases, fractions, periodicity

# %%
phases = {0: "matrix", 255: "inclusion"}
image = load_phase_image(comm, png, phases=phases, size=(1.0, 1.0))
fractions = image.fractions
# image_cell checks periodicity: the disks wrap around, so the seams look like the inside
cell = image_cell(comm, image)
mesh_fractions = cell.volume_fractions()
assert all(abs(mesh_fractions[k] - v) < 1e-12 for k, v in fractions.items())
f = [fractions["matrix"], fractions["inclusion"]]
if comm.rank == 0:
    print(f"{png}: {image.shape[0]}x{image.shape[1]} pixels, pixel fractions {fractions}")
    print(f"disks: {layout.count}, exact area fraction {layout.volume_fraction:.4f}")

# %% [markdown]
# ## Conductivity under the three boundary conditions, and the stiffness

# %%
conductivity = {"matrix": Conductivity(K_M), "inclusion": Conductivity(K_I)}
problem = CellProblem(cell, conductivity)
A = {bc: problem.solve(bc).tensor for bc in ("subc", "periodic", "kubc")}
elastic = {
    "matrix": IsotropicElasticity.from_young(1.0, 0.35),
    "inclusion": IsotropicElasticity.from_young(10.0, 0.25),
}
C = CellProblem(cell, elastic).solve().tensor
hs = hashin_shtrikman_conductivity(f, [K_M, K_I], 2)
if comm.rank == 0:
    with np.printoptions(precision=5, suppress=True):
        for bc, tensor in A.items():
            print(f"{bc:>8} A =\n{tensor}")
        print(f"periodic C (plane strain, Voigt 11 22 12) =\n{C}")
    print(f"Hashin-Shtrikman bounds: [{hs[0]:.4f}, {hs[1]:.4f}]")

# %% [markdown]
# ## Pixelization error
#
# The disks drawn at 1/4 and 1/2 of the resolution (passed as arrays this time), and the
# conforming mesh of the exact disks (`random_inclusion_cell` with the radii matched to the exact
# fraction, P2 elements).

# %%
levels = [N // 4, N // 2, N]
a_pixel = []
for n in levels:
    if n == N:
        tensor = A["periodic"]
    else:
        picture = rasterize(layout, n).astype(np.uint8) * 255
        coarse = segment_image(picture, phases=phases, axes="xyz", size=(1.0, 1.0))
        tensor = CellProblem(image_cell(comm, coarse), conductivity).solve().tensor
    a_pixel.append(float(np.trace(tensor)) / 2)
reference_cell = random_inclusion_cell(comm, layout, h=H_REF, match_fraction=True)
reference = CellProblem(reference_cell, conductivity, degree=2).solve().tensor
a_ref = float(np.trace(reference)) / 2
errors = [a / a_ref - 1 for a in a_pixel]
if comm.rank == 0:
    print(f"conforming reference (P2, h = {H_REF}): mean conductivity {a_ref:.5f}")
    for n, a, e in zip(levels, a_pixel, errors, strict=True):
        print(f"{n:4d} pixels per edge: {a:.5f} (relative error {e:+.4f})")

# %% [markdown]
# The figure: the picture as read, and the pixel results against the reference.

# %%


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    ax0.imshow(image.labels.T[::-1], cmap="gray", extent=(0, 1, 0, 1))
    ax0.set_title(f"the PNG as read: {N}x{N} pixels, inclusions {f[1]:.3f}")
    ax0.set_xlabel("x")
    ax0.set_ylabel("y")
    n = np.array(levels)
    ax1.semilogx(n, a_pixel, "ko-", label="pixel mesh, periodic")
    ax1.axhline(a_ref, color="g", label="conforming mesh (P2)")
    ax1.plot([N], [np.trace(A["kubc"]) / 2], "r^", label="pixel mesh, KUBC")
    ax1.plot([N], [np.trace(A["subc"]) / 2], "bv", label="pixel mesh, SUBC")
    ax1.axhline(hs[0], color="b", ls="--", label=f"HS lower (upper: {hs[1]:.3f})")
    ax1.set_xlabel("pixels per edge")
    ax1.set_ylabel(r"$\mathrm{tr}\,A/2$")
    ax1.set_title("mean conductivity, contrast 10")
    ax1.legend(fontsize=8)
    ax2.loglog(n, np.abs(errors), "ko-", label="pixel mesh, periodic")
    ax2.loglog(n, abs(errors[0]) * n[0] / n, "k:", label="slope -1")
    ax2.set_xlabel("pixels per edge")
    ax2.set_ylabel("relative error against the conforming mesh")
    ax2.legend(fontsize=8)
    fig.savefig(results / "image_microstructure.png", dpi=120)
    plt.close(fig)
    summary = {
        "image": str(png),
        "pixels": N,
        "pixel_fractions": fractions,
        "conductivity": {bc: t.tolist() for bc, t in A.items()},
        "stiffness_periodic": C.tolist(),
        "hashin_shtrikman": list(hs),
        "pixel_convergence": {"pixels": n.tolist(), "mean_conductivity": a_pixel},
        "conforming_reference": a_ref,
    }
    write_json_file(results / "image_microstructure.json", summary)
    print(
        f"wrote {results / 'image_microstructure.png'} and {results / 'image_microstructure.json'}"
    )


on_rank0(comm, plot)

# %% [markdown]
# ## Checks against the references

# %%
scale = float(A["periodic"][0, 0])
assert np.linalg.eigvalsh(A["periodic"] - A["subc"]).min() > -1e-10 * scale
assert np.linalg.eigvalsh(A["kubc"] - A["periodic"]).min() > -1e-10 * scale
assert hs[0] < np.linalg.eigvalsh(A["periodic"]).min() <= np.linalg.eigvalsh(A["periodic"]).max()
assert np.linalg.eigvalsh(A["periodic"]).max() < hs[1]
assert abs(f[1] - layout.volume_fraction) < 0.01
assert np.all(np.linalg.eigvalsh(C) > 0)
# first order in the pixel size: the error roughly halves with each refinement
assert abs(errors[-1]) < (0.02 if shrink else 0.005), errors
assert abs(errors[-1]) < abs(errors[0]), errors
