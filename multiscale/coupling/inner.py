"""Inner variables of the phase laws at the points of a quadrature rule.

A law with inner variables (:class:`~multiscale.physics.base.InnerMaterial`: the sub-lattice
shifts of a Cauchy–Born crystal with a basis) is in equilibrium in them at every point:
:math:`\\xi^*(g)` minimizes :math:`W(g, \\xi)`.  :class:`InnerVariables` holds their values in
quadrature spaces of the rule (one function per name and shape, shared by the phases, whose
cells are disjoint) and :meth:`InnerVariables.relax` sets them to :math:`\\xi^*(g)` for the
current gradient at every owned point of every such phase: one compiled evaluation of
:math:`g` per phase and one call of the law's vectorized ``relax``, warm started from the values
held.  A solver calls it before every assembly (its Newton hook), so the residual and the UFL
Jacobian of ``flux(g, inner=...)`` are those of the relaxed law.

The update is local to each rank: cell integrals run over the owned cells, whose quadrature
values are owned, so no ghost update (and no collective) is needed and a failure on one rank
cannot leave the others waiting.
"""

from __future__ import annotations

from collections.abc import Mapping

import dolfinx
import numpy as np
import ufl

from multiscale.physics.base import inner_shapes

from .quadrature import QuadratureRule

__all__ = ["InnerVariables"]


class InnerVariables:
    """The inner variables of the ``laws`` (phase tag -> law) whose cells ``cell_tags``
    marks, at the points of ``rule``, for the gradient ``gradient`` (the UFL :math:`g` the laws
    receive).  Collective on the mesh communicator (it compiles the evaluation of :math:`g`
    when some law has inner variables).

    ``of(tag)``: the coefficients to pass as ``flux(g, inner=...)`` (``None``: the phase has
    none); ``active``: whether any phase has some.
    """

    def __init__(
        self,
        rule: QuadratureRule,
        laws: Mapping[int, object],
        cell_tags: dolfinx.mesh.MeshTags,
        gradient: ufl.core.expr.Expr,
    ) -> None:
        self.rule = rule
        mesh = rule.mesh
        d = mesh.geometry.dim
        nowned = mesh.topology.index_map(mesh.topology.dim).size_local
        self.functions: dict[tuple[str, tuple[int, ...]], dolfinx.fem.Function] = {}
        self._phases: list[tuple[int, object, np.ndarray, dict[str, dolfinx.fem.Function]]] = []
        for tag, law in laws.items():
            shapes = inner_shapes(law, d)
            if not shapes:
                continue
            coefficients = {}
            for name, shape in shapes.items():
                key = (name, tuple(int(s) for s in shape))
                if key not in self.functions:
                    self.functions[key] = rule.function(key[1], name)
                coefficients[name] = self.functions[key]
            cells = cell_tags.find(tag)
            cells = np.sort(cells[cells < nowned]).astype(np.int32)
            self._phases.append((tag, law, cells, coefficients))
        self._g = rule.expression(gradient) if self._phases else None

    @property
    def active(self) -> bool:
        return bool(self._phases)

    def of(self, tag: int) -> dict[str, dolfinx.fem.Function] | None:
        """The inner-variable coefficients of the phase ``tag`` (``None``: it has none)."""
        for t, _, _, coefficients in self._phases:
            if t == tag:
                return coefficients
        return None

    def relax(self) -> None:
        """Set the inner variables of every owned point to their equilibrium for the current
        gradient (the laws' ``relax``, from the values held); raises what a law raises, on this
        rank only (local: see the module docstring)."""
        for _, law, cells, coefficients in self._phases:
            if len(cells) == 0:
                continue
            g = self.rule.evaluate(self._g, cells)
            g = g.reshape(-1, *g.shape[2:])
            slots, held = {}, {}
            for name, f in coefficients.items():
                bs = f.function_space.dofmap.index_map_bs
                dofs = f.function_space.dofmap.list[cells].ravel()
                slots[name] = (f, bs, dofs)
                held[name] = f.x.array.reshape(-1, bs)[dofs].reshape(len(g), *f.ufl_shape)
            new = law.relax(g, held)  # type: ignore[attr-defined]
            for name, (f, bs, dofs) in slots.items():
                f.x.array.reshape(-1, bs)[dofs] = np.asarray(new[name]).reshape(-1, bs)
