r"""Multiscale coefficients :math:`a(x, y)` of :math:`-\nabla\cdot a(x, x/\varepsilon)\nabla u = f`.

A coefficient is a function of the slow (macro) position :math:`x` and the fast variable
:math:`y = x/\varepsilon` that returns a UFL expression: a scalar (isotropic) or a
:math:`d\times d` matrix.  The same object serves the micro problems on the sampling domains
(:math:`x` frozen at a quadrature point or not, :math:`y` the scaled micro coordinate), the direct
numerical simulation on a fine mesh, and the homogenized reference, so all three see exactly the
same :math:`a`.

* :class:`Coefficient` -- any :math:`a(x, y)` given as a Python function of UFL expressions;
  factories for the cases used throughout: :func:`separable` :math:`c(x)\,b(y)`,
  :func:`laminate`, :func:`checkerboard`, :func:`smooth_layers`, :func:`smooth_periodic`;
* :class:`RandomStationary` -- a stationary log-normal random field in :math:`y` (random-phase
  spectral sum with a Gaussian covariance, drawn from a seed), optionally scaled by :math:`c(x)`;
* :class:`MonotoneFlux` -- the monotone nonlinear law
  :math:`q(x, y, g) = a(x, y)\,(1 + \beta|g|^2)\,g` built on a linear coefficient;
* :class:`MultiFieldCoefficient` -- linear multi-field laws
  (:class:`~multiscale.physics.coupled.MultiFieldLaw`: piezoelectricity, thermoelasticity, a
  user's law) weighted by functions of :math:`(x, y)`, with the factory :func:`layered_laws`.

Every coefficient has ``flux(x, y, g)`` (a UFL vector) and ``linear``; linear scalar ones also
``tensor(x, y)``.  A multi-field coefficient acts on the packed generalized gradient of all its
fields (:func:`~multiscale.physics.coupled.packed_gradient`) and returns the packed fluxes.

Positivity of a general UFL expression cannot be checked symbolically: the micro solver checks
the values it integrates and raises a clear error on a non-positive (scalar coefficients) or NaN
value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ufl

from multiscale.physics.coupled import (
    Field,
    as_multifield,
    fields_of,
    pack_fluxes,
    unpack_gradient,
)

__all__ = [
    "Coefficient",
    "MonotoneFlux",
    "MultiFieldCoefficient",
    "RandomStationary",
    "checkerboard",
    "laminate",
    "layered_laws",
    "separable",
    "smooth_layers",
    "smooth_layers_tensor",
    "smooth_periodic",
]

Expr = Any  # a UFL expression
SlowFunction = Callable[[Expr], Expr]


def _check_dim(dim: int) -> int:
    if int(dim) not in (1, 2, 3):
        raise ValueError(f"dimension must be 1, 2 or 3, got {dim!r}")
    return int(dim)


def _as_tensor(value: Expr, dim: int) -> Expr:
    """A scalar as :math:`a I`, a matrix as itself (shape checked)."""
    shape = ufl.shape(value)
    if shape == ():
        return value * ufl.Identity(dim)
    if shape != (dim, dim):
        raise ValueError(f"coefficient has shape {shape}; expected () or ({dim}, {dim})")
    return value


@dataclass(slots=True, frozen=True)
class Coefficient:
    r"""A linear coefficient :math:`a(x, y)`, scalar or matrix valued.

    Parameters
    ----------
    function:
        ``function(x, y)`` returning a UFL scalar or ``dim x dim`` matrix, where ``x`` and ``y``
        are UFL vectors of length ``dim``; must be 1-periodic in ``y`` for the periodic theory
        (locally periodic coefficients), but need not be (random or quasi-periodic media).
    dim:
        Space dimension :math:`d`.
    name:
        A label for logs and summaries.
    x_dependent:
        Whether ``function`` depends on ``x`` (only used to skip needless work and in reports).
    """

    function: Callable[[Expr, Expr], Expr]
    dim: int
    name: str = "a"
    x_dependent: bool = True
    linear: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError("coefficient function must be callable as function(x, y)")
        object.__setattr__(self, "dim", _check_dim(self.dim))

    def tensor(self, x: Expr, y: Expr) -> Expr:
        """:math:`a(x, y)` as a :math:`d\\times d` UFL matrix."""
        return _as_tensor(self.function(x, y), self.dim)

    def flux(self, x: Expr, y: Expr, g: Expr) -> Expr:
        """:math:`q = a(x, y)\\,g`."""
        return ufl.dot(self.tensor(x, y), g)


@dataclass(slots=True, frozen=True)
class MonotoneFlux:
    r"""The strongly monotone law :math:`q(x, y, g) = a(x, y)\,(1 + \beta |g|^2)\,g`.

    For symmetric positive definite :math:`a` and :math:`\beta \ge 0` the map :math:`g\mapsto q`
    is the gradient of the convex potential
    :math:`\tfrac12 a g\cdot g + \tfrac\beta4 (\ldots)` for scalar :math:`a` and strongly monotone
    in general, so micro and macro problems are well posed and Newton converges quadratically.
    """

    base: Coefficient
    beta: float
    linear: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.base, Coefficient | RandomStationary):
            raise TypeError("MonotoneFlux needs a linear coefficient as its base")
        beta = float(self.beta)
        if not math.isfinite(beta) or beta < 0.0:
            raise ValueError(f"beta must be finite and >= 0, got {self.beta!r}")
        object.__setattr__(self, "beta", beta)

    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def name(self) -> str:
        return f"monotone({self.base.name}, beta={self.beta:g})"

    @property
    def x_dependent(self) -> bool:
        return self.base.x_dependent

    def flux(self, x: Expr, y: Expr, g: Expr) -> Expr:
        return (1.0 + self.beta * ufl.inner(g, g)) * ufl.dot(self.base.tensor(x, y), g)


@dataclass(slots=True, frozen=True)
class RandomStationary:
    r"""A stationary log-normal random field :math:`a(x, y) = c(x)\,\exp(\mu + \sigma G(y))`.

    :math:`G(y) = \sqrt{2/N}\sum_{j=1}^N \cos(k_j\cdot y + \varphi_j)` with
    :math:`k_j \sim \mathcal N(0, \ell^{-2} I)` and :math:`\varphi_j \sim U(0, 2\pi)` drawn from
    ``seed``: a random-phase spectral sum whose covariance is
    :math:`E[G(y)G(y + r)] = \exp(-|r|^2/2\ell^2)`, Gaussian in the limit of many modes.  The
    correlation length :math:`\ell` is in units of :math:`\varepsilon`.  The field is defined on
    all of :math:`\mathbb R^d`, so the sampling domains, the DNS and repeated runs all see the
    same realization; it is sampled at the quadrature points of whatever mesh integrates it.
    """

    dim: int
    seed: int
    sigma: float = 0.5
    mean_log: float = 0.0
    correlation_length: float = 0.25
    modes: int = 24
    slow: SlowFunction | None = None
    name: str = "random"
    wave_vectors: np.ndarray = field(init=False, repr=False)
    phases: np.ndarray = field(init=False, repr=False)
    linear: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _check_dim(self.dim))
        for key in ("sigma", "mean_log", "correlation_length"):
            v = float(getattr(self, key))
            if not math.isfinite(v):
                raise ValueError(f"{key} must be finite, got {v!r}")
            object.__setattr__(self, key, v)
        if self.sigma < 0.0 or self.correlation_length <= 0.0:
            raise ValueError("need sigma >= 0 and correlation_length > 0")
        if int(self.modes) < 1:
            raise ValueError(f"modes must be >= 1, got {self.modes!r}")
        rng = np.random.default_rng(int(self.seed))
        k = rng.normal(0.0, 1.0 / self.correlation_length, size=(int(self.modes), self.dim))
        phi = rng.uniform(0.0, 2.0 * np.pi, size=int(self.modes))
        k.setflags(write=False)
        phi.setflags(write=False)
        object.__setattr__(self, "wave_vectors", k)
        object.__setattr__(self, "phases", phi)

    @property
    def x_dependent(self) -> bool:
        return self.slow is not None

    def gaussian(self, y: Expr) -> Expr:
        """The standard Gaussian field :math:`G(y)` as a UFL expression."""
        scale = math.sqrt(2.0 / len(self.phases))
        terms = [
            ufl.cos(sum(float(kj[i]) * y[i] for i in range(self.dim)) + float(p))
            for kj, p in zip(self.wave_vectors, self.phases, strict=True)
        ]
        return scale * sum(terms)

    def tensor(self, x: Expr, y: Expr) -> Expr:
        a = ufl.exp(self.mean_log + self.sigma * self.gaussian(y))
        if self.slow is not None:
            a = self.slow(x) * a
        return a * ufl.Identity(self.dim)

    def flux(self, x: Expr, y: Expr, g: Expr) -> Expr:
        return ufl.dot(self.tensor(x, y), g)


@dataclass(slots=True, frozen=True)
class MultiFieldCoefficient:
    r"""Linear multi-field phase laws weighted by functions of :math:`(x, y)`:

    .. math::
        q_f(x, y, g, \theta) = \sum_i w_i(x, y)\, q^{(i)}_f(g, \theta),

    where :math:`q^{(i)}` are the fluxes of the :class:`~multiscale.physics.coupled.MultiFieldLaw`
    ``laws[i]`` (all with the same fields and parameters; a conductivity or small-strain
    elastic law is the multi-field law of its one field) and ``weights(x, y)`` returns the UFL
    scalars :math:`w_i` (indicators of the phases, times a slow scaling, say).  The law stays
    linear in :math:`(g, \theta)`; its operator need not be definite (a piezoelectric enthalpy
    is not).

    ``flux(x, y, g, params)`` takes the packed generalized gradient ``g`` of all fields (Voigt
    strains with engineering shears, gradients by components) and the parameter values
    ``params`` (a UFL vector or sequence in the order of :attr:`parameters`; ``None``: zero) and
    returns the packed fluxes.
    """

    laws: tuple[Any, ...]
    weights: Callable[[Expr, Expr], Any]
    dim: int
    name: str = "multifield"
    x_dependent: bool = True
    linear: bool = field(default=True, init=False)
    fields: tuple[Field, ...] = field(init=False)
    parameters: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _check_dim(self.dim))
        laws = tuple(as_multifield(law) for law in self.laws)
        if not callable(self.weights):
            raise TypeError("weights must be callable as weights(x, y)")
        fields, parameters = fields_of(dict(enumerate(laws)))
        object.__setattr__(self, "laws", laws)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "parameters", parameters)

    @property
    def size(self) -> int:
        """Number of packed generalized gradient components."""
        return sum(f.gradient_size(self.dim) for f in self.fields)

    def flux(self, x: Expr, y: Expr, g: Expr, params: Any = None) -> Expr:
        d = self.dim
        w = list(self.weights(x, y))
        if len(w) != len(self.laws):
            raise ValueError(f"weights returned {len(w)} values for {len(self.laws)} laws")
        grads = unpack_gradient(g, self.fields, d)
        values = [0.0] * len(self.parameters) if params is None else list(params)
        theta = dict(zip(self.parameters, values, strict=True))
        total = 0
        for wi, law in zip(w, self.laws, strict=True):
            total = total + wi * pack_fluxes(law.fluxes(grads, theta), self.fields, d)
        return total


# -- factories ----------------------------------------------------------------------------------
def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v


def laminate(k1: float, k2: float, dim: int, normal: int = 0) -> Coefficient:
    r"""Layers of :math:`k_1` (:math:`\{y_n\} < 1/2`) and :math:`k_2` across axis ``normal``.

    :math:`A^{hom}` is the harmonic mean across the layers and the arithmetic mean along them.
    Sampling meshes must resolve the interfaces (an even number of cells per period).
    """
    k1, k2 = _positive("k1", k1), _positive("k2", k2)
    if not 0 <= int(normal) < int(dim):
        raise ValueError(f"normal axis {normal!r} out of range for dimension {dim}")

    def function(x: Expr, y: Expr) -> Expr:
        return ufl.conditional(ufl.gt(ufl.sin(2.0 * math.pi * y[normal]), 0.0), k1, k2)

    return Coefficient(function, dim, name=f"laminate({k1:g},{k2:g})", x_dependent=False)


def checkerboard(k1: float, k2: float) -> Coefficient:
    r"""The 2D checkerboard: :math:`k_1` where :math:`\sin 2\pi y_1 \sin 2\pi y_2 > 0`, else
    :math:`k_2`; :math:`A^{hom} = \sqrt{k_1 k_2}\,I` (Dykhne)."""
    k1, k2 = _positive("k1", k1), _positive("k2", k2)

    def function(x: Expr, y: Expr) -> Expr:
        s = ufl.sin(2.0 * math.pi * y[0]) * ufl.sin(2.0 * math.pi * y[1])
        return ufl.conditional(ufl.gt(s, 0.0), k1, k2)

    return Coefficient(function, 2, name=f"checkerboard({k1:g},{k2:g})", x_dependent=False)


def smooth_layers(dim: int, amplitude: float = 0.9, mean: float = 2.0) -> Coefficient:
    r""":math:`a(y) = 1/(m + \alpha\sin 2\pi y_1)`: smooth layers with the exact
    :math:`A^{hom} = \mathrm{diag}(1/m, 1/\sqrt{m^2 - \alpha^2}, \ldots)`."""
    mean = _positive("mean", mean)
    if not 0.0 <= float(amplitude) < mean:
        raise ValueError(f"need 0 <= amplitude < mean for a positive coefficient, got {amplitude}")

    def function(x: Expr, y: Expr) -> Expr:
        return 1.0 / (mean + amplitude * ufl.sin(2.0 * math.pi * y[0]))

    return Coefficient(function, dim, name="smooth_layers", x_dependent=False)


def smooth_layers_tensor(dim: int, amplitude: float = 0.9, mean: float = 2.0) -> np.ndarray:
    """The exact homogenized tensor of :func:`smooth_layers`."""
    A = np.eye(dim) / math.sqrt(mean**2 - amplitude**2)
    A[0, 0] = 1.0 / mean
    return A


def smooth_periodic(dim: int, amplitude: float = 0.8) -> Coefficient:
    r""":math:`a(y) = 1 + \alpha \prod_i \sin(2\pi y_i) + \tfrac\alpha2\cos(2\pi y_1)`: a smooth,
    genuinely :math:`d`-dimensional periodic coefficient (no closed-form :math:`A^{hom}`)."""
    if not 0.0 <= float(amplitude) < 2.0 / 3.0:
        raise ValueError(
            f"amplitude must lie in [0, 2/3) for a positive coefficient, got {amplitude}"
        )

    def function(x: Expr, y: Expr) -> Expr:
        s = 1.0
        for i in range(dim):
            s = s * ufl.sin(2.0 * math.pi * y[i])
        return 1.0 + amplitude * s + 0.5 * amplitude * ufl.cos(2.0 * math.pi * y[0])

    return Coefficient(function, dim, name="smooth_periodic", x_dependent=False)


def separable(slow: SlowFunction, fast: Coefficient) -> Coefficient:
    r"""The locally periodic :math:`a(x, y) = c(x)\,b(y)`, with :math:`A^{hom}(x) = c(x)B^{hom}`.

    ``slow(x)`` returns a positive UFL scalar; ``fast`` is an :math:`x`-independent coefficient.
    """
    if not callable(slow):
        raise TypeError("slow must be callable as slow(x)")

    def function(x: Expr, y: Expr) -> Expr:
        return slow(x) * fast.tensor(x, y)

    return Coefficient(function, fast.dim, name=f"c(x)*{fast.name}", x_dependent=True)


def layered_laws(
    law1: Any, law2: Any, dim: int, normal: int = 0, slow: SlowFunction | None = None
) -> MultiFieldCoefficient:
    r"""Layers of the multi-field law ``law1`` (:math:`\{y_n\} < 1/2`) and ``law2`` across axis
    ``normal``, as :func:`laminate`, scaled by ``slow(x)`` (a positive UFL scalar) if given.
    Their :math:`\mathbb M^*`, :math:`p^*` are those of the laminate of equal fractions
    (exact: the layered-medium formula), times :math:`c(x)`."""
    if not 0 <= int(normal) < int(dim):
        raise ValueError(f"normal axis {normal!r} out of range for dimension {dim}")
    if slow is not None and not callable(slow):
        raise TypeError("slow must be callable as slow(x)")

    def weights(x: Expr, y: Expr) -> list[Expr]:
        first = ufl.conditional(ufl.gt(ufl.sin(2.0 * math.pi * y[normal]), 0.0), 1.0, 0.0)
        c = 1.0 if slow is None else slow(x)
        return [c * first, c * (1.0 - first)]

    return MultiFieldCoefficient(
        (law1, law2), weights, dim, name="layered_laws", x_dependent=slow is not None
    )
