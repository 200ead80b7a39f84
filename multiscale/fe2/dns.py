"""Direct numerical simulation (DNS): the reference FE² is measured against.

The macro domain :math:`\\Omega = [0, L]^2` is tiled with :math:`n \\times n` copies of the
fibre cell of size :math:`\\varepsilon = L/n`: a disk of area fraction :math:`\\phi` centred in
each copy (:func:`tiled_inclusions`).  Every copy is meshed with the same relative resolution
:math:`h = h_{cell}\\,\\varepsilon`, the resolution of the RVE :func:`circular_inclusion(phi,
h=h_cell) <multiscale.mesh.generators.circular_inclusion>` that FE² uses, so the DNS and the RVEs
see the same discrete microstructure.  :class:`DNSProblem` then solves, with the micro laws
themselves,

.. math::
    \\int_\\Omega q\\big(g(u^\\varepsilon), \\alpha_n\\big) : \\nabla v\\,dx
    = \\lambda \\int_{\\Gamma_N} \\bar t\\cdot v\\,ds \\quad \\forall v,
    \\qquad u^\\varepsilon = \\lambda\\,\\bar u \\text{ on } \\Gamma_D,

with :math:`g = \\varepsilon(u)` (small strain) or :math:`F = I + \\nabla u` (finite strain),
:math:`q` the law of the phase of each cell and :math:`\\alpha_n` the internal variables
committed at the last converged load step (stored in quadrature spaces, as in the RVE).  Newton
is PETSc SNES with the UFL Jacobian :math:`\\partial R/\\partial u`, the consistent tangent of the
return map.  Load factors are those given to :meth:`FE2Problem.solve
<multiscale.fe2.solver.FE2Problem.solve>`; a failed step is halved.

Homogenization theory: for linear phases :math:`\\|u^\\varepsilon - u_0\\|_{L^2} = O(\\varepsilon)`
(the first-order corrector :math:`\\varepsilon\\chi(x/\\varepsilon)\\nabla u_0` and the boundary
layers are both :math:`O(\\varepsilon)` in :math:`L^2`), where :math:`u_0` is the homogenized
solution FE² approximates; hence the FE²–DNS difference decreases like :math:`1/n` down to the
macro discretization error of FE².  :func:`displacement_error` measures it at common points with
:class:`~multiscale.coupling.probe.PointProbe` (version independent, reduced over ranks).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling.probe import PointProbe
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.generators import inclusions_2d
from multiscale.mesh.macro import MacroMesh, _tag_sides
from multiscale.petsc_options import prefixed_options
from multiscale.physics.base import Material, generalized_gradient, has_state, kind_of

from .boundary import (
    DisplacementBC,
    LoadedBoundaries,
    Traction,
    assemble_newton_jacobian,
    assemble_newton_residual,
)
from .solver import default_macro_options

__all__ = [
    "DNSProblem",
    "DNSResult",
    "DNSStep",
    "TiledMesh",
    "displacement_error",
    "tiled_inclusions",
]

log = logging.getLogger(__name__)

_instances = itertools.count()


# -- the tiled domain ---------------------------------------------------------------------------


@dataclass(slots=True)
class TiledMesh:
    """A domain tiled with ``n x n`` cells: the mesh with its phases (``cell``, whose box is
    the whole domain) and the same mesh with named sides ``left``/``right``/``bottom``/``top``
    (``macro``)."""

    cell: CellMesh
    macro: MacroMesh
    n: int

    def __post_init__(self) -> None:
        if self.cell.mesh is not self.macro.mesh:
            raise ValueError("the phases and the named boundaries must be on the same mesh")
        if int(self.n) < 1:
            raise ValueError(f"the number of cells per side must be >= 1, got {self.n!r}")

    @property
    def mesh(self) -> dolfinx.mesh.Mesh:
        return self.cell.mesh

    @property
    def period(self) -> float:
        """Cell size :math:`\\varepsilon = L/n`."""
        return float(self.cell.lengths[0]) / self.n


def tiled_inclusions(
    comm: MPI.Comm,
    n: int,
    volume_fraction: float,
    *,
    length: float = 1.0,
    h_cell: float = 0.1,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
) -> TiledMesh:
    """The square :math:`[0, L]^2` tiled with ``n x n`` cells of size :math:`\\varepsilon = L/n`,
    each with a centred disk of area fraction :math:`\\phi` (radius
    :math:`\\varepsilon\\sqrt{\\phi/\\pi}`), meshed with :math:`h = h_{cell}\\,\\varepsilon`.

    Phases ``"matrix"`` (1) and ``"inclusion"`` (2), as in
    :func:`~multiscale.mesh.generators.circular_inclusion` (the matching RVE is
    ``circular_inclusion(comm, phi, h=h_cell)``).  Built with the gmsh helpers of
    :mod:`multiscale.mesh.generators` on rank 0 and distributed on ``comm``.  Collective.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n (cells per side) must be a positive integer, got {n!r}")
    phi = float(volume_fraction)
    if not 0.0 < phi < math.pi / 4:
        raise ValueError(
            f"volume fraction of a disk in its cell must lie in (0, pi/4), got {volume_fraction!r}"
        )
    length = float(length)
    if not math.isfinite(length) or length <= 0.0:
        raise ValueError(f"length must be a finite positive number, got {length!r}")
    if not math.isfinite(h_cell) or not 0.0 < h_cell <= 0.5:
        raise ValueError(f"h_cell (element size / cell size) must lie in (0, 0.5], got {h_cell!r}")
    eps = length / n
    centres = [((i + 0.5) * eps, (j + 0.5) * eps) for i in range(n) for j in range(n)]
    radius = eps * math.sqrt(phi / math.pi)
    cell = inclusions_2d(
        comm, centres, radius, size=(length, length), h=h_cell * eps, path=path, verbose=verbose
    )
    macro = _tag_sides(cell.mesh, cell.box[0], cell.box[1])
    cells = cell.mesh.topology.index_map(2).size_global
    log.info("tiled %dx%d cells (phi=%g): %d triangles at h=%.4g", n, n, phi, cells, h_cell * eps)
    return TiledMesh(cell=cell, macro=macro, n=int(n))


# -- the fine-scale problem ---------------------------------------------------------------------


@dataclass(slots=True)
class DNSStep:
    """One converged load step (identical on all ranks): reaction force vector per
    displacement-boundary name, Newton iterations and residual norms, halvings, the maximum
    equivalent plastic strain (0 without plasticity) and the wall time."""

    factor: float
    reactions: dict[str, list[float]]
    newton_iterations: int
    residuals: list[float]
    cuts: int
    max_p: float
    seconds: float


@dataclass(slots=True)
class DNSResult:
    """Converged steps, the displacement (:class:`dolfinx.fem.Function`) and problem sizes."""

    u: dolfinx.fem.Function
    steps: list[DNSStep] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


class DNSProblem:
    """The fully resolved problem on a :class:`TiledMesh`.

    Parameters
    ----------
    domain:
        The tiled mesh (phases and named sides).
    materials:
        Phase name or tag -> law (all of kind ``"strain"`` or all ``"deformation"``); laws with
        internal variables (:class:`~multiscale.physics.base.HistoryMaterial`) keep them per
        quadrature point, committed after each converged step.
    bcs, tractions:
        As for :class:`~multiscale.fe2.solver.FE2Problem`, at load factor 1.
    degree, quadrature_degree:
        Lagrange degree (default 1, as the RVEs) and quadrature degree (default
        ``max(1, 2 (degree - 1))``, the RVE's).
    petsc_options:
        Overrides of :func:`~multiscale.fe2.solver.default_macro_options` (Newton, MUMPS LU)
        under the prefix ``multiscale_dns_<k>_``.
    max_cuts:
        How often a load step may be halved.

    Collective on ``domain.mesh.comm``; :meth:`destroy` frees the PETSc objects.
    """

    def __init__(
        self,
        domain: TiledMesh,
        materials: Mapping[str | int, Material],
        *,
        bcs: Sequence[DisplacementBC],
        tractions: Sequence[Traction] = (),
        degree: int = 1,
        quadrature_degree: int | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 4,
    ) -> None:
        if not bcs:
            raise ValueError("the DNS needs at least one displacement boundary condition")
        self.domain = domain
        mesh = domain.mesh
        self.comm: MPI.Comm = mesh.comm
        self.dim = d = mesh.geometry.dim
        self.max_cuts = int(max_cuts)
        laws: dict[int, Material] = domain.cell.by_tag(materials)
        self.kind = kind_of(laws)
        if self.kind not in ("strain", "deformation"):
            raise ValueError(f"the DNS solves mechanics, got laws of kind {self.kind!r}")
        qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * (degree - 1))
        self.rule = QuadratureRule(mesh, qdeg)
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (d,)))
        self.u = dolfinx.fem.Function(self.V, name="displacement")
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        g = generalized_gradient(self.kind, self.u)

        # internal variables, shared by name between phases (their cells are disjoint)
        self.state: dict[str, dolfinx.fem.Function] = {}
        for law in laws.values():
            if has_state(law):
                for name, shape in law.state_shapes(d).items():
                    if name not in self.state:
                        self.state[name] = self.rule.function(tuple(shape), name)
                    elif self.state[name].ufl_shape != tuple(shape):
                        raise ValueError(f"internal variable {name!r} declared with two shapes")
        dx = ufl.Measure(
            "dx",
            domain=mesh,
            subdomain_data=domain.cell.cell_tags,
            metadata={"quadrature_degree": qdeg, "quadrature_rule": "default"},
        )
        nowned = mesh.topology.index_map(d).size_local
        internal = 0
        self._updates: list[tuple[np.ndarray, dict[str, dolfinx.fem.Expression]]] = []
        for tag, law in laws.items():
            q = law.flux(g, self.state) if has_state(law) else law.flux(g)
            internal += ufl.inner(q, ufl.grad(v)) * dx(tag)
            if has_state(law):
                cells = domain.cell.cell_tags.find(tag)
                cells = np.sort(cells[cells < nowned]).astype(np.int32)
                new = law.updated_state(g, self.state)
                self._updates.append((cells, {k: self.rule.expression(e) for k, e in new.items()}))
        self._load = dolfinx.fem.Constant(mesh, 0.0)
        residual = internal
        ds = ufl.Measure("ds", domain=mesh, subdomain_data=domain.macro.facet_tags)
        for t in tractions:
            if len(t.value) != d:
                raise ValueError(f"traction on {t.boundary!r} needs {d} components")
            if t.boundary not in domain.macro.boundaries:
                raise ValueError(f"unknown boundary {t.boundary!r}")
            tv = ufl.as_vector(list(t.value))
            residual -= self._load * ufl.dot(tv, v) * ds(domain.macro.boundaries[t.boundary])
        self._F = dolfinx.fem.form(residual)
        self._F_internal = dolfinx.fem.form(internal)
        self._J = dolfinx.fem.form(ufl.derivative(residual, self.u, du))

        # Dirichlet conditions whose values follow the load factor, and their reactions
        self.bc_specs = list(bcs)
        self.loads = LoadedBoundaries(self.V, domain.macro, self.bc_specs)
        self.bcs = self.loads.bcs

        # PETSc objects
        self.prefix = f"multiscale_dns_{next(_instances)}_"
        options = default_macro_options()
        options.update(dict(petsc_options or {}))
        self.petsc_options = options
        self._A = dolfinx.fem.petsc.create_matrix(self._J)
        self._b = dolfinx.fem.petsc.assemble_vector(self._F)
        self._r = self._b.duplicate()
        self._x = self.u.x.petsc_vec.duplicate()
        self._committed = self.u.x.petsc_vec.duplicate()
        self.snes = PETSc.SNES().create(self.comm)
        self.snes.setOptionsPrefix(self.prefix)
        self.snes.setFunction(self._residual, self._b)
        self.snes.setJacobian(self._jacobian, self._A)
        with prefixed_options(self.prefix, options):
            self.snes.setFromOptions()
            self.snes.getKSP().setFromOptions()
        self._residuals: list[float] = []
        self.snes.setMonitor(lambda snes, it, fnorm: self._residuals.append(float(fnorm)))
        self.factor = 0.0
        self.result = DNSResult(u=self.u)
        self.result.info = {
            "n": domain.n,
            "dofs": self.V.dofmap.index_map.size_global * d,
            "cells": mesh.topology.index_map(d).size_global,
            "quadrature_degree": qdeg,
            "ranks": self.comm.size,
            "kinematics": "small strain" if self.kind == "strain" else "finite strain",
        }
        log.info(
            "DNS %dx%d: %d dofs, %d cells, %d rank(s)",
            domain.n,
            domain.n,
            self.result.info["dofs"],
            self.result.info["cells"],
            self.comm.size,
        )

    # -- SNES callbacks ---------------------------------------------------------------------------
    def _residual(self, snes: PETSc.SNES, x: PETSc.Vec, b: PETSc.Vec) -> None:
        x.copy(self.u.x.petsc_vec)
        self.u.x.scatter_forward()
        assemble_newton_residual(b, self._F, self._J, self.bcs, self.u, x)

    def _jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, A: PETSc.Mat, P: PETSc.Mat) -> None:
        assemble_newton_jacobian(A, self._J, self.bcs)

    # -- load stepping ----------------------------------------------------------------------------
    def set_load(self, factor: float) -> None:
        """Boundary values and tractions at load factor ``factor``."""
        self.factor = float(factor)
        self._load.value = self.factor
        self.loads.set_factor(self.factor)

    def reactions(self) -> dict[str, list[float]]:
        """Reaction force vector on each displacement boundary: the sum of the internal force
        :math:`\\int q : \\nabla\\phi_i\\,dx` over the boundary's dofs, per component."""
        r = self._r
        with r.localForm() as r_local:
            r_local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(r, self._F_internal)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        total = self.loads.reactions(r)
        return {spec.boundary: row.tolist() for spec, row in zip(self.bc_specs, total, strict=True)}

    def _commit_state(self) -> float:
        """Write the updated internal variables of the converged step; returns max ``p``."""
        new = [
            (cells, {k: self.rule.evaluate(e, cells) for k, e in exprs.items()})
            for cells, exprs in self._updates
        ]  # all evaluated from the old state before any is overwritten
        max_p = 0.0
        for cells, values in new:
            for name, val in values.items():
                f = self.state[name]
                bs = f.function_space.dofmap.index_map_bs
                dofs = f.function_space.dofmap.list[cells].ravel()
                f.x.array.reshape(-1, bs)[dofs] = val.reshape(-1, bs)
                if name == "p" and val.size:
                    max_p = max(max_p, float(val.max()))
        for f in self.state.values():
            f.x.scatter_forward()
        return self.comm.allreduce(max_p, op=MPI.MAX)

    def solve(self, factors: Sequence[float]) -> DNSResult:
        """Follow the load factors (the FE² ones), halving a failing step up to ``max_cuts``
        times.  Collective.  Returns :attr:`result` (extended by each call)."""
        factors = [float(f) for f in factors]
        if not factors or not np.all(np.isfinite(factors)):
            raise ValueError(f"load factors must be a non-empty list of finite numbers: {factors}")
        for target in factors:
            start, cuts = self.factor, 0
            step = target - start
            while abs(target - start) > 1e-12 * max(1.0, abs(target)):
                trial = start + (step if abs(step) < abs(target - start) else target - start)
                t0 = time.perf_counter()
                self.u.x.petsc_vec.copy(self._committed)
                self.set_load(trial)
                self._residuals = []
                self.u.x.petsc_vec.copy(self._x)
                self.snes.solve(None, self._x)
                reason = self.snes.getConvergedReason()
                if reason > 0:
                    self._x.copy(self.u.x.petsc_vec)
                    self.u.x.scatter_forward()
                    max_p = self._commit_state()
                    self._record(trial, cuts, max_p, time.perf_counter() - t0)
                    start = trial
                    continue
                self._committed.copy(self.u.x.petsc_vec)
                self.u.x.scatter_forward()
                self.factor = start
                cuts += 1
                if cuts > self.max_cuts:
                    raise RuntimeError(
                        f"DNS load step from factor {start:g} towards {target:g} failed after "
                        f"{self.max_cuts} cuts: SNES reason {reason}, residuals {self._residuals}"
                    )
                step = 0.5 * (trial - start)
                log.warning("DNS step to %.4g failed (reason %d); halving", trial, reason)
        return self.result

    def _record(self, factor: float, cuts: int, max_p: float, seconds: float) -> None:
        step = DNSStep(
            factor=factor,
            reactions=self.reactions(),
            newton_iterations=int(self.snes.getIterationNumber()),
            residuals=list(self._residuals),
            cuts=cuts,
            max_p=max_p,
            seconds=float(self.comm.allreduce(seconds, op=MPI.MAX)),
        )
        self.result.steps.append(step)
        log.info(
            "DNS step %d: factor %.4g, %d Newton its, max p %.3g, %.2f s",
            len(self.result.steps),
            factor,
            step.newton_iterations,
            max_p,
            step.seconds,
        )

    def destroy(self) -> None:
        """Free the PETSc objects (collective)."""
        for obj in (self.snes, self._A, self._b, self._r, self._x, self._committed):
            obj.destroy()


# -- comparison ---------------------------------------------------------------------------------


def displacement_error(
    reference: dolfinx.fem.Function, approximation: dolfinx.fem.Function, points: np.ndarray
) -> dict[str, float]:
    """Relative discrete :math:`L^2` and maximum errors of ``approximation`` at ``points``:

    .. math::
        e_2 = \\Big(\\frac{\\sum_i |u_a(x_i) - u_r(x_i)|^2}{\\sum_i |u_r(x_i)|^2}\\Big)^{1/2},
        \\qquad
        e_\\infty = \\frac{\\max_i |u_a(x_i) - u_r(x_i)|}{\\max_i |u_r(x_i)|}.

    The functions may live on unrelated meshes (of the same communicator); both are probed at the
    same points (identical on all ranks, inside both domains).  For a regular grid the first is
    the midpoint-rule approximation of the relative :math:`L^2(\\Omega)` error.  Collective;
    the values are the same on every rank.
    """
    ur = PointProbe(reference.function_space.mesh, points).eval(reference)
    ua = PointProbe(approximation.function_space.mesh, points).eval(approximation)
    if ur.shape != ua.shape:
        raise ValueError(f"value shapes differ: {ur.shape[1:]} and {ua.shape[1:]}")
    diff = np.linalg.norm(ua - ur, axis=1)
    size = np.linalg.norm(ur, axis=1)
    if not size.max() > 0.0:
        raise ValueError("the reference vanishes at all points: no relative error")
    return {
        "l2": float(np.sqrt(np.sum(diff**2) / np.sum(size**2))),
        "max": float(diff.max() / size.max()),
    }
