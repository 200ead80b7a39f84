"""Fields at the quadrature points of a macro mesh: where FE² and HMM exchange data with the
micro problems.

A :class:`QuadratureRule` fixes the points :math:`\\xi_q` and weights :math:`w_q` of one basix
rule on the reference cell.  Macro quantities (strain, gradient) are *evaluated* at those points
on the owned cells with one compiled :class:`dolfinx.fem.Expression`; micro results (stress,
flux, tangent) are *assigned* to functions of a quadrature space built on the same rule, and the
macro forms integrate them with the matching measure :attr:`QuadratureRule.dx`.  Everything is
vectorized over cells and points: no Python loop per point.

Arrays of point values have shape ``(n_owned_cells, n_points, *value_shape)``, the same on
dolfinx 0.9 and 0.11 (which differ in the layout :meth:`dolfinx.fem.Expression.eval` returns).
"""

from __future__ import annotations

from typing import Any

import basix
import basix.ufl
import dolfinx
import numpy as np
import ufl
from ufl.algorithms.apply_algebra_lowering import apply_algebra_lowering
from ufl.algorithms.apply_derivatives import apply_derivatives

__all__ = ["QuadratureRule"]


class QuadratureRule:
    """The default basix rule of ``degree`` on the cells of ``mesh``.

    Attributes: ``points`` (reference coordinates), ``weights``, ``cells`` (owned cell indices),
    ``dx`` (the measure whose rule matches), ``n_points`` (per cell), ``n_local`` (owned points).
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, degree: int) -> None:
        self.mesh = mesh
        self.degree = int(degree)
        cell_type = mesh.topology.cell_type
        basix_cell = getattr(basix.CellType, cell_type.name)
        self.points, self.weights = basix.make_quadrature(basix_cell, self.degree)
        self.n_points = len(self.weights)
        tdim = mesh.topology.dim
        self.cells = np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)
        self.n_local = len(self.cells) * self.n_points
        self.dx = ufl.Measure(
            "dx",
            domain=mesh,
            metadata={"quadrature_degree": self.degree, "quadrature_rule": "default"},
        )
        self._spaces: dict[tuple[int, ...], dolfinx.fem.FunctionSpace] = {}
        self._coordinates: np.ndarray | None = None

    # -- spaces and functions ---------------------------------------------------------------------
    def space(self, shape: tuple[int, ...] = ()) -> dolfinx.fem.FunctionSpace:
        """The quadrature space of value ``shape`` on this rule (one per shape, cached)."""
        shape = tuple(int(s) for s in shape)
        if shape not in self._spaces:
            element = basix.ufl.quadrature_element(
                self.mesh.topology.cell_name(), value_shape=shape, degree=self.degree
            )
            self._spaces[shape] = dolfinx.fem.functionspace(self.mesh, element)
        return self._spaces[shape]

    def function(
        self, shape: tuple[int, ...] = (), name: str | None = None
    ) -> dolfinx.fem.Function:
        f = dolfinx.fem.Function(self.space(shape))
        if name:
            f.name = name
        return f

    def expression(self, expr: ufl.core.expr.Expr) -> dolfinx.fem.Expression:
        """Compile ``expr`` for evaluation at this rule's points (do it once, reuse it).
        Collective on the mesh communicator (the JIT compilation is).

        An expression without a domain (a constant tensor, such as the tangent of a linear law)
        is tied to the mesh by a factor :math:`\\det J / \\det J = 1`, since FFCx compiles
        expressions per cell."""
        expr = apply_algebra_lowering(expr)
        expr = apply_derivatives(expr)
        if not ufl.domain.extract_domains(expr):
            detJ = ufl.JacobianDeterminant(self.mesh)
            expr = expr * (detJ / detJ)
        return dolfinx.fem.Expression(expr, self.points)

    def evaluate(
        self, expr: dolfinx.fem.Expression | Any, cells: np.ndarray | None = None
    ) -> np.ndarray:
        """Values of ``expr`` (compiled or UFL) at the points of ``cells`` (default: all owned
        cells), shape ``(n_cells, n_points, *value_shape)``."""
        if not isinstance(expr, dolfinx.fem.Expression):
            expr = self.expression(expr)
        cells = self.cells if cells is None else cells
        shape = tuple(expr.ufl_expression.ufl_shape)
        if len(cells) == 0:
            return np.zeros((0, self.n_points, *shape))
        values = expr.eval(self.mesh, cells)
        return np.asarray(values).reshape(len(cells), self.n_points, *shape)

    def assign(self, f: dolfinx.fem.Function, values: np.ndarray) -> None:
        """Set the quadrature function ``f`` from point values of the owned cells (any shape
        whose size is ``n_local * value_size``), then update the ghosts."""
        bs = f.function_space.dofmap.index_map_bs
        dofs = f.function_space.dofmap.list[self.cells]
        f.x.array.reshape(-1, bs)[dofs.ravel()] = np.reshape(values, (-1, bs))
        f.x.scatter_forward()

    def values(self, f: dolfinx.fem.Function) -> np.ndarray:
        """The owned point values of a quadrature function, ``(n_cells, n_points, *shape)``."""
        bs = f.function_space.dofmap.index_map_bs
        dofs = f.function_space.dofmap.list[self.cells]
        shape = tuple(f.ufl_shape)
        return f.x.array.reshape(-1, bs)[dofs.ravel()].reshape(
            len(self.cells), self.n_points, *shape
        )

    # -- geometry ---------------------------------------------------------------------------------
    def coordinates(self) -> np.ndarray:
        """Physical coordinates of the owned points, ``(n_cells, n_points, gdim)``.

        Computed at the first call, which is collective (it compiles an expression, and the
        compilation is collective on the mesh communicator), and cached: later calls are local,
        so an error path on one rank may ask for them."""
        if self._coordinates is None:
            self._coordinates = self.evaluate(ufl.SpatialCoordinate(self.mesh))
        return self._coordinates

    def jacobian_weights(self, cells: np.ndarray | None = None) -> np.ndarray:
        """:math:`w_q |\\det J|` at the points of ``cells`` (default: owned), ``(n_cells,
        n_points)``: the volume each point stands for, so that
        :math:`\\int f\\,dx \\approx \\sum_q f_q\\,w_q |\\det J_q|`."""
        detJ = self.evaluate(abs(ufl.JacobianDeterminant(self.mesh)), cells)
        return detJ.reshape(detJ.shape[0], self.n_points) * self.weights[None, :]
