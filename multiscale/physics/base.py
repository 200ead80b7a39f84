"""The interface between a constitutive law and the cell and RVE solvers.

A *material* is the law of one phase.  It says which kind of field it acts on and returns the flux
as a UFL expression of the field's generalized gradient:

=================  ===========================  ===================================
``kind``           generalized gradient ``g``    flux
=================  ===========================  ===================================
``"scalar"``       :math:`\\nabla u`             heat / electric flux :math:`q(g)`
``"strain"``       :math:`\\varepsilon(u)`        Cauchy stress :math:`\\sigma(\\varepsilon)`
``"deformation"`` :math:`F = I + \\nabla u`     first Piola stress :math:`P(F)`
=================  ===========================  ===================================

A law with internal variables (plasticity, damage) additionally declares them with
``state_shapes(dim)``, takes their *committed* values as UFL coefficients in
``flux(g, state)`` and returns their updated values with ``updated_state(g, state)``; the RVE
solver stores them in quadrature spaces, one value per micro quadrature point, and commits them
only when the macro step converges (:class:`HistoryMaterial`).  A law with *inner variables*
:math:`\\xi` that minimize its energy at every point, :math:`W(g) = \\min_\\xi W(g, \\xi)` (the
sub-lattice shifts of a Cauchy–Born crystal with a basis), declares them with
``inner_shapes(dim)``, takes their current values as coefficients in ``flux(g, inner=...)`` and
equilibrates them with ``relax(g_values, values)`` (NumPy, all points at once), which the solvers
that carry them call before every assembly (:class:`InnerMaterial`,
:class:`multiscale.coupling.inner.InnerVariables`).  A law whose flux is linear in
``g`` and has no state sets ``linear = True``; FE² then solves its RVE once and reuses the
effective tensor.  A law whose tangent :math:`\\partial q/\\partial g` has major symmetry (a
potential exists: elasticity, hyperelasticity, associative plasticity with its algorithmic
tangent) sets ``symmetric = True``, and the Newton solvers factorize by Cholesky.

The solvers only ever call :meth:`Material.flux` (and, for the SUBC and tangent computations, let
UFL differentiate it), so a new law is a new small class: no solver changes.  Sign convention:
the flux enters the weak form as :math:`\\int_Y q(g(u)) \\cdot g(v)\\,dx`, i.e. ``flux`` is the
*positive* conductivity times gradient (Fourier's law with the minus sign moved into the balance).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import ufl

from multiscale import tensors

__all__ = [
    "HistoryMaterial",
    "InnerMaterial",
    "Kind",
    "Material",
    "check_lame",
    "check_positive",
    "generalized_gradient",
    "has_inner",
    "has_state",
    "inner_shapes",
    "is_linear",
    "is_symmetric",
    "kind_of",
    "lame_from_young",
]

Kind = Literal["scalar", "strain", "deformation"]


@runtime_checkable
class Material(Protocol):
    """The law of one phase: ``flux(g)`` returns a UFL expression.

    ``g`` is a rank-1 UFL expression (``kind == "scalar"``) or a symmetric rank-2 one
    (``kind == "strain"``) of geometric dimension ``d``; the result has the same shape.
    """

    kind: ClassVar[Kind]

    def flux(self, g: ufl.core.expr.Expr) -> ufl.core.expr.Expr: ...


@runtime_checkable
class HistoryMaterial(Protocol):
    """A law with internal variables :math:`\\alpha` stored per quadrature point.

    ``state_shapes(dim)`` names them with their value shapes; ``flux(g, state)`` is the flux for
    the gradient ``g`` given the committed values ``state[name]`` (UFL coefficients) and is
    differentiated by UFL to give the algorithmic (consistent) tangent;
    ``updated_state(g, state)`` returns the values after the increment, as UFL expressions.
    Initial values are zero.
    """

    kind: ClassVar[Kind]

    def state_shapes(self, dim: int) -> dict[str, tuple[int, ...]]: ...

    def flux(self, g: ufl.core.expr.Expr, state: dict) -> ufl.core.expr.Expr: ...

    def updated_state(
        self, g: ufl.core.expr.Expr, state: dict
    ) -> dict[str, ufl.core.expr.Expr]: ...


@runtime_checkable
class InnerMaterial(Protocol):
    """A law with inner variables :math:`\\xi` in equilibrium at every point,
    :math:`\\partial W/\\partial\\xi(g, \\xi^*(g)) = 0` (no history: a function of ``g``).

    ``inner_shapes(dim)`` names them with their value shapes (empty: none for this law);
    ``flux(g, inner=values)`` is the flux for the gradient ``g`` given their current values
    (UFL coefficients), written so that it is the equilibrium flux, and its UFL derivative the
    condensed tangent, where the values are :math:`\\xi^*(g)`; ``relax(g, values)`` returns
    :math:`\\xi^*` at ``n`` points (``g``: NumPy ``(n, d, d)``, ``values[name]``: the values
    held, ``(n, *shape)``, the start).  Initial values are zero.
    """

    kind: ClassVar[Kind]

    def inner_shapes(self, dim: int) -> dict[str, tuple[int, ...]]: ...

    def flux(self, g: ufl.core.expr.Expr, inner: dict | None = None) -> ufl.core.expr.Expr: ...

    def relax(self, g: Any, values: dict[str, Any]) -> dict[str, Any]: ...


def inner_shapes(law: object, dim: int) -> dict[str, tuple[int, ...]]:
    """The inner variables ``law`` declares in ``dim`` dimensions (see
    :class:`InnerMaterial`); empty for a law without."""
    shapes = getattr(law, "inner_shapes", None)
    return dict(shapes(dim)) if callable(shapes) else {}


def has_inner(law: object, dim: int) -> bool:
    """Whether ``law`` carries inner variables in ``dim`` dimensions."""
    return bool(inner_shapes(law, dim))


def has_state(law: object) -> bool:
    """Whether ``law`` carries internal variables (see :class:`HistoryMaterial`)."""
    return callable(getattr(law, "state_shapes", None))


def is_linear(law: object) -> bool:
    """Whether ``law`` declares a flux linear in the gradient and no state."""
    return bool(getattr(law, "linear", False)) and not has_state(law)


def is_symmetric(law: object) -> bool:
    """Whether ``law`` declares a symmetric (algorithmic) tangent, :math:`\\mathbb C_{ijkl} =
    \\mathbb C_{klij}`: its Jacobians may then be factorized by Cholesky.  Laws that do not
    say so are treated as unsymmetric."""
    return bool(getattr(law, "symmetric", False))


def generalized_gradient(kind: Kind, u: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """:math:`\\nabla u` for ``"scalar"``, :math:`\\varepsilon(u) = \\mathrm{sym}\\,\\nabla u` for
    ``"strain"``, :math:`F = I + \\nabla u` for ``"deformation"``."""
    if kind == "scalar":
        return ufl.grad(u)
    if kind == "strain":
        return ufl.sym(ufl.grad(u))
    if kind == "deformation":
        return ufl.Identity(u.ufl_shape[0]) + ufl.grad(u)
    raise ValueError(
        f"unknown material kind {kind!r}; expected 'scalar', 'strain' or 'deformation'"
    )


def kind_of(materials: dict) -> Kind:
    """The common ``kind`` of all materials of a cell; a clear error when they differ."""
    if not materials:
        raise ValueError("no materials given: map each phase tag or name to a material")
    kinds = {getattr(m, "kind", None) for m in materials.values()}
    if None in kinds:
        bad = [k for k, m in materials.items() if getattr(m, "kind", None) is None]
        raise TypeError(f"phase(s) {bad} have no material law (an object with .kind and .flux)")
    if len(kinds) != 1:
        raise ValueError(f"all phases of a cell must share one kind of law, got {sorted(kinds)}")
    return kinds.pop()


def check_lame(lmbda: float, mu: float) -> tuple[float, float]:
    """``(lmbda, mu)`` as floats; ``ValueError`` unless :math:`\\mu > 0` and the bulk modulus
    :math:`3\\lambda + 2\\mu > 0` (finite)."""
    lam, m = float(lmbda), check_positive("shear modulus mu", mu)
    if not math.isfinite(lam) or 3.0 * lam + 2.0 * m <= 0.0:
        raise ValueError(
            f"Lame constants lambda={lmbda!r}, mu={mu!r} give a non-positive "
            "bulk modulus 3*lambda + 2*mu"
        )
    return lam, m


def lame_from_young(E: float, nu: float) -> tuple[float, float]:
    """:math:`\\lambda = E\\nu/((1+\\nu)(1-2\\nu))`, :math:`\\mu = E/(2(1+\\nu))`, with errors
    naming Young's modulus and Poisson's ratio (see :func:`multiscale.tensors.lame_from_young`)."""
    E = check_positive("Young's modulus E", E)
    nu = float(nu)
    if not (-1.0 < nu < 0.5):
        raise ValueError(f"Poisson's ratio nu must lie in (-1, 0.5), got {nu!r}")
    return tensors.lame_from_young(E, nu)


def check_positive(name: str, value: float) -> float:
    """Return ``float(value)``; ``ValueError`` naming ``name`` unless finite and > 0."""
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v
