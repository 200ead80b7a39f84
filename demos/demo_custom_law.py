# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Adding a material law without touching the solvers
#
# A phase law is any object with a class attribute `kind` (`"scalar"` or `"strain"`) and a
# method `flux(g)` returning a UFL expression.  Here a user writes an *orthotropic conductivity
# rotated by an angle* $\theta$,
#
# $$ q = R(\theta)\,\mathrm{diag}(k_1, k_2)\,R(\theta)^T \nabla u, $$
#
# as a slotted dataclass validated in `__post_init__`, and uses it in the cell solver.  Two
# checks against closed forms: a homogeneous cell returns $R K R^T$, and a laminate of two
# rotated layers returns the exact rank-one laminate formula.

# %%
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import ufl
from mpi4py import MPI

from multiscale.bounds import laminate_tensor
from multiscale.cell import homogenize
from multiscale.mesh import laminate


@dataclass(slots=True, frozen=True)
class RotatedOrthotropicConductivity:
    k1: float
    k2: float
    theta: float
    kind: ClassVar[str] = "scalar"

    def __post_init__(self):
        if not (self.k1 > 0 and self.k2 > 0):
            raise ValueError("principal conductivities must be positive")

    def matrix(self) -> np.ndarray:
        c, s = np.cos(self.theta), np.sin(self.theta)
        R = np.array([[c, -s], [s, c]])
        return R @ np.diag([self.k1, self.k2]) @ R.T

    def flux(self, g):
        return ufl.dot(ufl.as_matrix(self.matrix().tolist()), g)


# %%
comm = MPI.COMM_WORLD
cell = laminate(comm, 2, (0.5, 0.5), h=0.1)
a = RotatedOrthotropicConductivity(1.0, 5.0, np.pi / 6)
b = RotatedOrthotropicConductivity(2.0, 20.0, -np.pi / 4)

homogeneous = homogenize(cell, {"phase0": a, "phase1": a}).tensor
layered = homogenize(cell, {"phase0": a, "phase1": b}).tensor
reference = laminate_tensor((0.5, 0.5), [a.matrix(), b.matrix()], np.array([1.0, 0.0]))
if comm.rank == 0:
    with np.printoptions(precision=8, suppress=True):
        print("homogeneous cell:\n", homogeneous, "\nR K R^T:\n", a.matrix())
        print("laminate of rotated layers:\n", layered, "\nclosed form:\n", reference)
assert np.allclose(homogeneous, a.matrix(), rtol=1e-10)
assert np.allclose(layered, reference, rtol=1e-8)
