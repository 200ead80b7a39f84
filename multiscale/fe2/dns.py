"""Direct numerical simulation (DNS): the reference FE² is measured against.

The macro domain is tiled with copies of the cell (:func:`~multiscale.mesh.tiled.tiled_inclusions`:
:math:`n \\times n` fibre cells of size :math:`\\varepsilon = L/n`, meshed like the RVE).
:class:`DNSProblem`, a :class:`~multiscale.coupling.solid.SolidProblem` like FE² itself, then
solves with the micro laws themselves

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

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.coupling.inner import InnerVariables
from multiscale.coupling.probe import PointProbe
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.coupling.solid import DisplacementBC, SolidProblem, Traction
from multiscale.mesh.tiled import TiledMesh
from multiscale.nonlinear import StepRecord
from multiscale.physics.base import (
    Material,
    generalized_gradient,
    has_state,
    is_symmetric,
    kind_of,
)

from .solver import default_macro_options

__all__ = ["DNSProblem", "displacement_error"]

log = logging.getLogger(__name__)


class DNSProblem(SolidProblem):
    """The fully resolved problem on a :class:`~multiscale.mesh.tiled.TiledMesh`.

    Parameters
    ----------
    domain:
        The tiled mesh (phases and named sides).
    materials:
        Phase name or tag -> law (all of kind ``"strain"`` or all ``"deformation"``); laws with
        internal variables (:class:`~multiscale.physics.base.HistoryMaterial`) keep them per
        quadrature point, committed after each converged step.
    bcs, tractions, dirichlet:
        As for :class:`~multiscale.coupling.solid.SolidProblem`, at load factor 1.
    degree, quadrature_degree:
        Lagrange degree (default 1, as the RVEs) and quadrature degree (default
        ``max(1, 2 (degree - 1))``, the RVE's).
    petsc_options_prefix, petsc_options:
        Prefix (default ``multiscale_dns_<n>_``) and overrides of
        :func:`~multiscale.fe2.solver.default_macro_options`.
    max_cuts:
        How often a load step may be halved.

    Collective on ``domain.mesh.comm``; frees its PETSc objects in :meth:`destroy`.
    """

    role = "dns"
    newton_name = "DNS Newton"

    def __init__(
        self,
        domain: TiledMesh,
        materials: Mapping[str | int, Material],
        *,
        bcs: Sequence[DisplacementBC],
        tractions: Sequence[Traction] = (),
        dirichlet: Callable[[dolfinx.fem.FunctionSpace], Sequence[Any]] | None = None,
        degree: int = 1,
        quadrature_degree: int | None = None,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
    ) -> None:
        self.domain = domain
        self.laws: dict[int, Material] = domain.cell.by_tag(materials)
        self.kind = kind_of(self.laws)
        if self.kind not in ("strain", "deformation"):
            raise ValueError(f"the DNS solves mechanics, got laws of kind {self.kind!r}")
        qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * (degree - 1))
        self.rule = QuadratureRule(domain.mesh, int(qdeg))
        super().__init__(
            domain.macro,
            bcs=bcs,
            tractions=tractions,
            dirichlet=dirichlet,
            degree=degree,
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=dict(petsc_options or {}),
            defaults=default_macro_options(),
            symmetric=all(is_symmetric(law) for law in self.laws.values()),
            max_cuts=max_cuts,
        )
        mesh = domain.mesh
        self.result.info = {
            "n": domain.n,
            "dofs": self.V.dofmap.index_map.size_global * self.dim,
            "cells": mesh.topology.index_map(self.dim).size_global,
            "quadrature_degree": self.rule.degree,
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

    def _init_constitutive(self) -> tuple[ufl.Form, ufl.Form]:
        """The phase laws with their internal variables (shared by name between phases, whose
        cells are disjoint), and the UFL Jacobian: the consistent tangent of the return map."""
        d = self.dim
        g = generalized_gradient(self.kind, self.u)
        self.state: dict[str, dolfinx.fem.Function] = {}
        for law in self.laws.values():
            if has_state(law):
                for name, shape in law.state_shapes(d).items():
                    if name not in self.state:
                        self.state[name] = self.rule.function(tuple(shape), name)
                    elif self.state[name].ufl_shape != tuple(shape):
                        raise ValueError(f"internal variable {name!r} declared with two shapes")
        dx = ufl.Measure(
            "dx",
            domain=self.domain.mesh,
            subdomain_data=self.domain.cell.cell_tags,
            metadata={"quadrature_degree": self.rule.degree, "quadrature_rule": "default"},
        )
        nowned = self.domain.mesh.topology.index_map(d).size_local
        internal = 0
        self._updates: list[tuple[np.ndarray, dict[str, dolfinx.fem.Expression]]] = []
        # inner variables (relaxed Cauchy-Born shifts): equilibrated at every iterate
        self.inner = InnerVariables(self.rule, self.laws, self.domain.cell.cell_tags, g)
        for tag, law in self.laws.items():
            extra = {"inner": self.inner.of(tag)} if self.inner.of(tag) is not None else {}
            q = law.flux(g, self.state, **extra) if has_state(law) else law.flux(g, **extra)
            internal += ufl.inner(q, ufl.grad(self.v)) * dx(tag)
            if has_state(law):
                cells = self.domain.cell.cell_tags.find(tag)
                cells = np.sort(cells[cells < nowned]).astype(np.int32)
                new = law.updated_state(g, self.state)
                self._updates.append((cells, {k: self.rule.expression(e) for k, e in new.items()}))
        self._max_p = 0.0
        self._det_F = self.rule.expression(ufl.det(g)) if self.kind == "deformation" else None
        self.rule.coordinates()  # collective once: failure messages name the point later
        return internal, ufl.derivative(internal, self.u, self.du)

    def on_iterate(self, x) -> None:
        """Finite strain: an iterate with :math:`\\det F \\le 0` at a quadrature point fails
        (on every rank), so the load step is cut instead of the laws being evaluated where
        they are not defined.  Then the inner variables of the laws that have some are
        equilibrated at the iterate (:class:`~multiscale.coupling.inner.InnerVariables`)."""
        if self._det_F is not None:
            J = self.rule.evaluate(self._det_F).ravel()
            if J.size and not J.min() > 0.0:
                k = int(np.nanargmin(J)) if np.any(np.isfinite(J)) else 0
                x_k = self.rule.coordinates().reshape(-1, self.dim)[k]
                raise ValueError(
                    f"det F = {J[k]:.3g} <= 0 at the quadrature point {np.round(x_k, 6).tolist()}"
                )
        self.inner.relax()

    def commit(self) -> None:
        """Accept the step: keep the reactions of the converged state, then write its updated
        internal variables (the flux of the updated state is that of a further step with no
        strain increment: the same for a rate-independent return map, a relaxed one for a
        time-dependent law)."""
        super().commit()
        # measured before the internal variables move on (the stress is evaluated from them)
        self._measured = self._measure() if self._updates else None
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
        self._max_p = max_p

    def record(self, step: StepRecord) -> None:
        super().record(step)
        if getattr(self, "_measured", None) is not None:
            step.reactions, step.quantities["load_conjugate"] = self._measured
        step.quantities["max_p"] = self.comm.allreduce(self._max_p, op=MPI.MAX)
        log.debug(
            "DNS step %d: factor %.4g, %d Newton its, max p %.3g, %.2f s",
            len(self.stepper.steps) + 1,
            step.factor,
            step.iterations,
            step.quantities["max_p"],
            step.seconds,
        )


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
