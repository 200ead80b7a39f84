"""Coefficients of the multiscale bases from images and random fields, against closed forms.

References: the closed-form integrals of a layered coefficient (the fine P1 space holds
:math:`1`, :math:`x` and :math:`y` exactly, so :math:`\\int a`, :math:`\\int a y` and
:math:`\\int a|\\nabla x|^2` come out of the assembled matrices to round-off), the same
layers written as an analytic UFL expression, the closed-form solution of the 1D problem with a
piecewise-constant coefficient (MsFEM is nodally exact in 1D), and the same random field on one
rank.
"""

from __future__ import annotations

import numpy as np
import pytest
import ufl
from cli_checks import shared_dir
from mpi4py import MPI
from test_bases import piecewise_exact

from multiscale.bases import (
    FineProblem,
    MsFEMParameters,
    NestedMeshes,
    image_field,
    lognormal_field,
    msfem_space,
    pixel_field,
    unit_interval_pair,
    unit_square_pair,
)

pytestmark = pytest.mark.mpi

#: the stripes, top to bottom (image rows), and the coefficient of each label
STRIPES = np.array([255, 255, 128, 0, 0, 128, 0, 0], dtype=np.uint8)
VALUES = {0: 1.0, 128: 30.0, 255: 1000.0}


def layer_values() -> np.ndarray:
    """:math:`a` on the layers :math:`[j/8, (j+1)/8]` from the bottom (:math:`y = 0`) up."""
    return np.array([VALUES[int(v)] for v in STRIPES[::-1]])


def layered_ufl(mesh):
    """The same layers as a UFL expression of :math:`y` (interfaces at fine grid lines)."""
    y = ufl.SpatialCoordinate(mesh)[1]
    a = layer_values()
    expr = a[0]
    for j in range(1, len(a)):
        expr = ufl.conditional(ufl.gt(y, j / len(a)), a[j], expr)
    return expr


def integrals(fine: FineProblem, weights: list) -> float:
    """:math:`\\sum_K u^T M_a^K v` (or the stiffness) for the fine vectors in ``weights``."""
    u, v, which = weights
    mats = fine.coefficient_mass() if which == "mass" else [e.stiffness for e in fine.elements]
    return sum(float(u[e.dofs] @ (m @ v[e.dofs])) for e, m in zip(fine.elements, mats, strict=True))


def test_image_stripes_equal_layered(comm, tmp_path):
    """A PNG of 8 horizontal stripes (3 grey levels, 5 pixels wide) over a 32 x 32 fine mesh:
    the assembled fine matrix equals that of the analytic layered coefficient, and
    :math:`\\int a`, :math:`\\int a\\,y`, :math:`\\int a|\\nabla x|^2` their closed forms."""
    from PIL import Image

    path = shared_dir(tmp_path) / "stripes.png"
    if comm.rank == 0:
        Image.fromarray(np.repeat(STRIPES[:, None], 5, axis=1)).save(path)
    comm.barrier()
    meshes = NestedMeshes(*unit_square_pair(comm, 4, 8))
    img = FineProblem(meshes, image_field(path, VALUES))
    ref = FineProblem(meshes, layered_ufl)
    diff = img.A.copy()
    diff.axpy(-1.0, ref.A)
    rel = diff.norm() / ref.A.norm()
    a = layer_values()
    t = np.linspace(0, 1, len(a) + 1)
    x, y, one = meshes.x[:, 0], meshes.x[:, 1], np.ones(meshes.n_fine)
    exact = {
        "int a": float(np.sum(a * np.diff(t))),
        "int a y": float(np.sum(a * np.diff(t**2) / 2)),
        "int a |grad x|^2": float(np.sum(a * np.diff(t))),
    }
    found = {
        "int a": integrals(img, [one, one, "mass"]),
        "int a y": integrals(img, [one, y, "mass"]),
        "int a |grad x|^2": integrals(img, [x, x, "stiffness"]),
    }
    if comm.rank == 0:
        print(f"\nimage vs layers: |A_img - A_ufl|/|A_ufl| = {rel:.1e}; {found} vs {exact}")
    assert rel < 1e-13
    for key, value in exact.items():
        assert abs(found[key] / value - 1) < 1e-12, key
    # the stripes are not symmetric about y = 1/2: int a y would differ if the image were read
    # upside down (the conductive stripes at the top) or as vertical stripes (int a / 2)
    assert exact["int a y"] / exact["int a"] > 0.7


def test_pixel_field_1d_msfem_nodally_exact(comm):
    """A 1D array of 64 values (contrast 1e3) as a cell-wise coefficient: MsFEM at the coarse
    nodes equals the closed-form solution of :math:`-(a u')' = 1`."""
    values = np.exp(np.random.default_rng(5).uniform(0.0, np.log(1e3), 64))
    fine = FineProblem(NestedMeshes(*unit_interval_pair(comm, 8, 32)), pixel_field(values))
    sol = msfem_space(fine, MsFEMParameters(0)).solve()
    exact = piecewise_exact(values, fine.meshes.vertices[:, 0])
    err = np.abs(sol.u_H - exact).max() / np.abs(exact).max()
    if comm.rank == 0:
        print(f"\n1D pixel field, MsFEM nodal error vs closed form: {err:.1e}")
    assert err < 1e-10


def test_lognormal_field_rank_independent(comm):
    """A log-normal field (32 x 32 pixels, sigma = 1, seed 11) over a 32 x 32 fine mesh: the
    fine integral of :math:`a` is the pixel mean, and the MsFEM coarse solution on ``comm``
    equals the one on a single rank."""
    field = lognormal_field(32, 0.1, sigma=1.0, seed=11)
    par = FineProblem(NestedMeshes(*unit_square_pair(comm, 4, 8)), field)
    ser = FineProblem(NestedMeshes(*unit_square_pair(MPI.COMM_SELF, 4, 8)), field)
    one = np.ones(par.meshes.n_fine)
    mean = integrals(par, [one, one, "mass"])
    a, b = (msfem_space(f, MsFEMParameters(1)).solve().u_H for f in (par, ser))
    diff = float(np.abs(a - b).max() / np.abs(b).max())
    contrast = field.values.max() / field.values.min()
    if comm.rank == 0:
        print(f"\nlog-normal field, contrast {contrast:.0f}: {comm.size} ranks vs 1: {diff:.1e}")
    assert abs(mean / field.values.mean() - 1) < 1e-12
    assert diff < 1e-10
    assert contrast > 20  # a genuinely heterogeneous field


def test_bad_fields():
    with pytest.raises(ValueError, match=r"pixel value\(s\) 7 have no coefficient"):
        pixel_field(np.array([[0, 7], [0, 0]]), {0: 1.0})
    with pytest.raises(ValueError, match="positive and finite"):
        pixel_field(np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="box must be"):
        pixel_field(np.ones((2, 2)), box=(0, 1))
    with pytest.raises(OSError, match="no image file"):
        image_field("/nonexistent/stripes.png", {0: 1.0})
