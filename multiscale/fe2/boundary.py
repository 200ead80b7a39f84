"""Boundary conditions of macro problems (FE² and its DNS reference) driven by a load factor.

A :class:`DisplacementBC` prescribes :math:`u_c = \\lambda\\,\\bar u_c` on a named boundary, a
:class:`Traction` the traction :math:`\\lambda\\,\\bar t`.  :class:`LoadedBoundaries` turns the
displacement conditions into dolfinx Dirichlet conditions whose values follow the load factor,
and sums the internal-force residual over each boundary's dofs (the reactions).
:func:`assemble_newton_residual` and :func:`assemble_newton_jacobian` are the SNES callbacks'
assembly with those conditions: the residual at the iterate ``x`` carries ``x - g`` on the
constrained rows, so the first Newton step moves the boundary to its new values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dolfinx
import dolfinx.fem.petsc
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.mesh.macro import MacroMesh

__all__ = [
    "DisplacementBC",
    "LoadedBoundaries",
    "Traction",
    "assemble_newton_jacobian",
    "assemble_newton_residual",
]


@dataclass(slots=True, frozen=True)
class DisplacementBC:
    """:math:`u_c = \\lambda\\,` ``value`` on the boundary named ``boundary`` (component
    ``component``; all components when ``None``, ``value`` then a vector)."""

    boundary: str
    value: float | tuple[float, ...] = 0.0
    component: int | None = None

    def __post_init__(self) -> None:
        v = np.atleast_1d(np.asarray(self.value, dtype=float))
        if not np.all(np.isfinite(v)):
            raise ValueError(f"displacement on {self.boundary!r} is not finite: {self.value!r}")
        if self.component is None and v.size == 1:
            object.__setattr__(self, "value", float(v[0]))
        elif self.component is None:
            object.__setattr__(self, "value", tuple(float(a) for a in v))
        else:
            if v.size != 1:
                raise ValueError(f"component {self.component} needs a scalar value")
            object.__setattr__(self, "value", float(v[0]))
            if int(self.component) < 0:
                raise ValueError(f"component must be >= 0, got {self.component}")


@dataclass(slots=True, frozen=True)
class Traction:
    """Traction :math:`\\lambda\\,\\bar t` on the boundary named ``boundary``."""

    boundary: str
    value: tuple[float, ...]

    def __post_init__(self) -> None:
        v = np.asarray(self.value, dtype=float).ravel()
        if not np.all(np.isfinite(v)):
            raise ValueError(f"traction on {self.boundary!r} is not finite: {self.value!r}")
        object.__setattr__(self, "value", tuple(float(a) for a in v))


class LoadedBoundaries:
    """Dirichlet conditions of ``specs`` on ``V`` (vector Lagrange) whose values are the load
    factor times the values of the specs; and the reactions on them.

    Collective on the mesh communicator.  ``bcs`` is the list to pass to assembly.
    """

    def __init__(
        self, V: dolfinx.fem.FunctionSpace, macro: MacroMesh, specs: Sequence[DisplacementBC]
    ) -> None:
        mesh = V.mesh
        self.comm: MPI.Comm = mesh.comm
        d = mesh.geometry.dim
        self.dim = d
        self.specs = list(specs)
        self.bcs: list[dolfinx.fem.DirichletBC] = []
        self._values: list[tuple[dolfinx.fem.Constant, np.ndarray]] = []
        self._reaction_dofs: list[list[np.ndarray]] = []
        nowned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        fdim = d - 1
        for spec in self.specs:
            facets = macro.facets(spec.boundary)
            if self.comm.allreduce(len(facets), op=MPI.SUM) == 0:
                raise ValueError(f"boundary {spec.boundary!r} has no facets")
            if spec.component is None:
                full = np.broadcast_to(np.asarray(spec.value, dtype=float), (d,)).copy()
                c = dolfinx.fem.Constant(mesh, np.zeros(d))
                dofs = dolfinx.fem.locate_dofs_topological(V, fdim, facets)
                self.bcs.append(dolfinx.fem.dirichletbc(c, dofs, V))
            else:
                if not 0 <= spec.component < d:
                    raise ValueError(f"component {spec.component} out of range for {d}D")
                full = np.asarray(spec.value, dtype=float)
                c = dolfinx.fem.Constant(mesh, 0.0)
                Vc = V.sub(spec.component)
                dofs = dolfinx.fem.locate_dofs_topological(Vc, fdim, facets)
                self.bcs.append(dolfinx.fem.dirichletbc(c, dofs, Vc))
            self._values.append((c, full))
            per_component = []
            for k in range(d):
                dk = np.asarray(dolfinx.fem.locate_dofs_topological(V.sub(k), fdim, facets))
                per_component.append(dk[dk < nowned])
            self._reaction_dofs.append(per_component)

    def set_factor(self, factor: float) -> None:
        """Boundary values at load factor ``factor``."""
        for c, full in self._values:
            c.value = float(factor) * full

    def reactions(self, internal: PETSc.Vec) -> np.ndarray:
        """Per condition (rows) and component (columns), the sum of the assembled internal-force
        vector ``internal`` over the condition's boundary dofs, reduced over ranks."""
        arr = internal.getArray()
        local = np.array([[arr[dk].sum() for dk in dofs] for dofs in self._reaction_dofs])
        return self.comm.allreduce(local.reshape(len(self.specs), self.dim), op=MPI.SUM)


def assemble_newton_residual(
    b: PETSc.Vec,
    F: dolfinx.fem.Form,
    J: dolfinx.fem.Form,
    bcs: Sequence[dolfinx.fem.DirichletBC],
    u: dolfinx.fem.Function,
    x: PETSc.Vec,
) -> None:
    """:math:`b = F(u)` with the lifting of ``bcs`` relative to ``u`` (the iterate, ghosts
    updated) and ``x - g`` on the constrained rows."""
    with b.localForm() as b_local:
        b_local.set(0.0)
    dolfinx.fem.petsc.assemble_vector(b, F)
    dolfinx.fem.petsc.apply_lifting(b, [J], bcs=[list(bcs)], x0=[u.x.petsc_vec], alpha=-1.0)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, list(bcs), x, -1.0)


def assemble_newton_jacobian(
    A: PETSc.Mat, J: dolfinx.fem.Form, bcs: Sequence[dolfinx.fem.DirichletBC]
) -> None:
    """:math:`A = J` with identity rows on the constrained dofs."""
    A.zeroEntries()
    dolfinx.fem.petsc.assemble_matrix(A, J, bcs=list(bcs))
    A.assemble()
