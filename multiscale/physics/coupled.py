r"""Multi-field (coupled) linear laws: thermoelasticity and piezoelectricity.

A multi-field law acts on several fields at once.  It declares them as :class:`Field` objects
(name, value shape, generalized gradient) and, for eigenstrain-type loads, the names of scalar
macro *parameters* (a temperature change :math:`\theta`, say).  Given the generalized gradients
:math:`g_f` of all fields and the parameter values it returns one flux per field,

.. math::
    q_f = \sum_h \mathbb M_{fh}\, g_h + p_f\,\theta ,

linear in :math:`(g, \theta)`.  The cell problem (:mod:`multiscale.cell.coupled`) enforces the
balance :math:`\sum_f \int_Y q_f \cdot g_f(v_f)\,dy = 0` for all test fields, i.e.
:math:`\operatorname{div} q_f = 0` for each field.  For a law with a potential (electric
enthalpy, free energy) :math:`\mathbb M` is symmetric; it need not be definite.

Conventions (as in :mod:`multiscale.tensors`): a ``"sym_grad"`` gradient of a vector field is a
strain, written in Voigt order 11, 22, 12 (2D) or 11, 22, 33, 23, 13, 12 (3D) with engineering
shears, its flux (a stress) without factors; a ``"grad"`` of a scalar is a vector of ``d``
components.  In 2D every law is the in-plane part of a plane-strain, in-plane-field state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import ufl

from multiscale.tensors import (
    isotropic_stiffness,
    voigt_index,
    voigt_size,
    voigt_to_strain,
    voigt_to_stress,
)

from .base import check_lame, has_state, lame_from_young

__all__ = [
    "Field",
    "MultiFieldLaw",
    "Piezoelectric",
    "PoledPiezoelectric",
    "SingleField",
    "ThermoElastic",
    "as_multifield",
    "fields_of",
    "pack_fluxes",
    "packed_gradient",
    "split_fields",
    "unpack_gradient",
]

Shape = Literal["scalar", "vector"]
Gradient = Literal["grad", "sym_grad"]


@dataclass(slots=True, frozen=True)
class Field:
    """One unknown field of a multi-field law.

    ``shape`` is ``"scalar"`` (value shape ``()``) or ``"vector"`` (value shape ``(d,)``);
    ``gradient`` is ``"grad"`` (:math:`\\nabla u`) or ``"sym_grad"`` (:math:`\\varepsilon(u) =
    \\mathrm{sym}\\,\\nabla u`, vector fields only).
    """

    name: str
    shape: Shape
    gradient: Gradient

    def __post_init__(self) -> None:
        if self.shape not in ("scalar", "vector"):
            raise ValueError(f"field {self.name!r}: shape must be 'scalar' or 'vector'")
        if self.gradient not in ("grad", "sym_grad"):
            raise ValueError(f"field {self.name!r}: gradient must be 'grad' or 'sym_grad'")
        if self.gradient == "sym_grad" and self.shape != "vector":
            raise ValueError(f"field {self.name!r}: a symmetric gradient needs a vector field")

    def value_size(self, dim: int) -> int:
        """Number of components of the field: 1 or ``dim``."""
        return 1 if self.shape == "scalar" else dim

    def gradient_size(self, dim: int) -> int:
        """Number of independent gradient components (Voigt size for ``"sym_grad"``)."""
        if self.gradient == "sym_grad":
            return voigt_size(dim)
        return dim * self.value_size(dim)

    def gradient_of(self, u: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """:math:`\\nabla u` or :math:`\\mathrm{sym}\\,\\nabla u` as UFL."""
        return ufl.sym(ufl.grad(u)) if self.gradient == "sym_grad" else ufl.grad(u)

    def unit_gradients(self, dim: int) -> list[np.ndarray]:
        """Tensors of the unit gradient vectors: :math:`e_j` for ``"grad"`` of a scalar (row-major
        unit matrices for a vector), the strains of the unit Voigt vectors (engineering shears,
        :math:`E_{ij} = E_{ji} = 1/2`) for ``"sym_grad"``.  The same tensors, contracted with a
        flux, pick its Voigt component."""
        if self.gradient == "sym_grad":
            return [voigt_to_strain(e) for e in np.eye(voigt_size(dim))]
        shape = (dim,) if self.shape == "scalar" else (dim, dim)
        n = int(np.prod(shape))
        return [np.eye(n)[k].reshape(shape) for k in range(n)]

    def unit_fluxes(self, dim: int) -> list[np.ndarray]:
        """Tensors that, contracted with a gradient, pick its Voigt component with engineering
        shears (:math:`T_{ij} = T_{ji} = 1`); equal to :meth:`unit_gradients` for ``"grad"``."""
        if self.gradient == "sym_grad":
            return [voigt_to_stress(e) for e in np.eye(voigt_size(dim))]
        return self.unit_gradients(dim)


@runtime_checkable
class MultiFieldLaw(Protocol):
    """A linear law of several fields: ``fluxes(g, params)`` maps the generalized gradients
    ``g[name]`` and the macro parameters ``params[name]`` (UFL scalars or floats) to the fluxes
    ``{name: q}`` (UFL, each of the shape of its gradient)."""

    fields: ClassVar[tuple[Field, ...]]
    parameters: ClassVar[tuple[str, ...]]

    def fluxes(self, g: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(slots=True, frozen=True)
class SingleField:
    """A single-field linear law (a conductivity, ``kind == "scalar"``, or a small-strain
    elastic law, ``kind == "strain"``) seen as a :class:`MultiFieldLaw` of one field ``u``
    without parameters: ``fluxes({"u": g}, {}) == {"u": law.flux(g)}``.  Every conductivity
    and elasticity law of :mod:`multiscale.physics` is thereby an instance of the multi-field
    interface (:func:`as_multifield`).  A law with internal variables, or one that declares
    ``linear = False``, is refused; a user's law that declares nothing (a ``kind`` and a
    ``flux`` only, as in ``demos/demo_custom_law.py``) is taken as linear, and UFL refuses the
    bilinear form of a flux that is not linear in the gradient."""

    law: Any
    parameters: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        kind = getattr(self.law, "kind", None)
        if kind not in ("scalar", "strain"):
            raise ValueError(
                f"{type(self.law).__name__} is not a conductivity or small-strain law "
                f"(kind {kind!r})"
            )
        if has_state(self.law) or getattr(self.law, "linear", True) is False:
            raise ValueError(f"{type(self.law).__name__} is not linear: cell problems are linear")

    @property
    def fields(self) -> tuple[Field, ...]:
        if self.law.kind == "scalar":
            return (Field("u", "scalar", "grad"),)
        return (Field("u", "vector", "sym_grad"),)

    def fluxes(self, g: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return {"u": self.law.flux(g["u"])}


def as_multifield(law: Any) -> Any:
    """``law`` if it is a :class:`MultiFieldLaw`, else its :class:`SingleField` view."""
    return law if isinstance(law, MultiFieldLaw) else SingleField(law)


def fields_of(materials: dict) -> tuple[tuple[Field, ...], tuple[str, ...]]:
    """The common fields and parameters of the phase laws; a one-line ``ValueError`` when a law
    is not a multi-field law or the laws declare different fields or parameters."""
    if not materials:
        raise ValueError("no materials given: map each phase tag or name to a multi-field law")
    bad = [k for k, m in materials.items() if not isinstance(m, MultiFieldLaw)]
    if bad:
        raise ValueError(f"phase(s) {bad} have no multi-field law (.fields, .parameters, .fluxes)")
    signatures = {(tuple(m.fields), tuple(m.parameters)) for m in materials.values()}
    if len(signatures) != 1:
        names = sorted({tuple(f.name for f in s[0]) + s[1] for s in signatures})
        raise ValueError(f"all phases of a coupled cell must share fields and parameters: {names}")
    return signatures.pop()


def split_fields(w: Any, fields: tuple[Field, ...], dim: int) -> dict[str, Any]:
    """The fields of ``w``, a function of one Lagrange space holding all ``fields`` one after
    the other (a scalar takes one component, a vector ``dim``); ``w`` itself for one field."""
    if len(fields) == 1:
        return {fields[0].name: w}
    out, k = {}, 0
    for f in fields:
        if f.shape == "scalar":
            out[f.name], k = w[k], k + 1
        else:
            out[f.name], k = ufl.as_vector([w[k + i] for i in range(dim)]), k + dim
    return out


def packed_gradient(w: Any, fields: tuple[Field, ...], dim: int) -> Any:
    r"""The generalized gradient of all ``fields`` of ``w`` (see :func:`split_fields`) as one
    UFL vector, in the order of :class:`~multiscale.cell.coupled.CoupledResult`: a strain in
    Voigt order with engineering shears, a gradient by components (row-major for a vector).
    Its dot product with the fluxes packed alike (:func:`pack_fluxes`: stresses without
    factors) is :math:`\sum_f q_f : g_f`."""
    parts = split_fields(w, fields, dim)
    return _pack({f.name: f.gradient_of(parts[f.name]) for f in fields}, fields, dim, 2)


def pack_fluxes(q: dict[str, Any], fields: tuple[Field, ...], dim: int) -> Any:
    """The fluxes ``q[name]`` of all ``fields`` as one UFL vector in the order of
    :func:`packed_gradient`: a stress in Voigt order without factors, a flux by components."""
    return _pack(q, fields, dim, 1)


def unpack_gradient(g: Any, fields: tuple[Field, ...], dim: int) -> dict[str, Any]:
    """The inverse of :func:`packed_gradient`'s packing: the generalized gradient of each field
    (a strain tensor, a vector or a matrix) from the packed UFL vector ``g``."""
    out, k = {}, 0
    for f in fields:
        if f.gradient == "sym_grad":
            E: list[list[Any]] = [[None] * dim for _ in range(dim)]
            for a, (i, j) in enumerate(voigt_index(dim)):
                E[i][j] = E[j][i] = g[k + a] if i == j else 0.5 * g[k + a]
            out[f.name] = ufl.as_matrix(E)
        elif f.shape == "scalar":
            out[f.name] = ufl.as_vector([g[k + i] for i in range(dim)])
        else:
            out[f.name] = ufl.as_matrix(
                [[g[k + i * dim + j] for j in range(dim)] for i in range(dim)]
            )
        k += f.gradient_size(dim)
    return out


def _pack(tensors: dict[str, Any], fields: tuple[Field, ...], dim: int, shear: float) -> Any:
    """The tensors of the fields in one UFL vector: symmetric ones in Voigt order, the shears
    times ``shear`` (2: engineering strains, 1: stresses), others by components."""
    out: list[Any] = []
    for f in fields:
        t = tensors[f.name]
        if f.gradient == "sym_grad":
            out += [t[i, j] if i == j else shear * t[i, j] for i, j in voigt_index(dim)]
        elif len(t.ufl_shape) == 1:
            out += [t[i] for i in range(dim)]
        else:
            out += [t[i, j] for i in range(dim) for j in range(dim)]
    return ufl.as_vector(out)


def _voigt_to_ufl(g: Any, dim: int) -> list[Any]:
    """Voigt vector (engineering shears) of the symmetric UFL tensor ``g``."""
    return [g[i, j] if i == j else 2 * g[i, j] for i, j in voigt_index(dim)]


def _ufl_from_voigt(s: list[Any], dim: int) -> Any:
    """Symmetric UFL tensor of the Voigt stress vector ``s`` (no shear factor)."""
    S: list[list[Any]] = [[None] * dim for _ in range(dim)]
    for a, (i, j) in enumerate(voigt_index(dim)):
        S[i][j] = S[j][i] = s[a]
    return ufl.as_matrix(S)


def _matrix(x: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    a = np.array(x, dtype=float)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")
    a.setflags(write=False)
    return a


def _spd(a: np.ndarray, name: str) -> None:
    if not np.allclose(a, a.T, rtol=1e-12, atol=1e-14 * np.abs(a).max()):
        raise ValueError(f"{name} must be symmetric")
    if np.linalg.eigvalsh(a).min() <= 0.0:
        raise ValueError(f"{name} must be positive definite")


@dataclass(slots=True, frozen=True)
class ThermoElastic:
    r"""Isotropic linear thermoelasticity, field ``u``, parameter ``theta``:

    .. math::
        \sigma = \lambda\,\mathrm{tr}(\varepsilon)\,I + 2\mu\,\varepsilon - \beta\,\theta\,I,
        \qquad \beta = (3\lambda + 2\mu)\,\alpha = 3K\alpha ,

    the stress of the elastic strain :math:`\varepsilon - \alpha\theta I_3`.  In 2D (plane
    strain, :math:`\varepsilon_{33} = 0`) the in-plane stress is
    :math:`\lambda(\mathrm{tr}\,\varepsilon - 3\alpha\theta)\delta_{ij} +
    2\mu(\varepsilon_{ij} - \alpha\theta\delta_{ij})`, so the in-plane thermal coefficient is the
    same :math:`\beta = (3\lambda + 2\mu)\alpha`; the apparent in-plane expansion at zero
    in-plane stress is then :math:`C^{-1}\{\beta\} = (1+\nu)\alpha` per direction.
    """

    lmbda: float
    mu: float
    alpha: float
    fields: ClassVar[tuple[Field, ...]] = (Field("u", "vector", "sym_grad"),)
    parameters: ClassVar[tuple[str, ...]] = ("theta",)
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        lmbda, mu = check_lame(self.lmbda, self.mu)
        alpha = float(self.alpha)
        if not np.isfinite(alpha):
            raise ValueError(f"thermal expansion alpha must be finite, got {self.alpha!r}")
        object.__setattr__(self, "lmbda", lmbda)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "alpha", alpha)

    @property
    def beta(self) -> float:
        """Thermal stress coefficient :math:`\\beta = (3\\lambda + 2\\mu)\\alpha`."""
        return (3.0 * self.lmbda + 2.0 * self.mu) * self.alpha

    def fluxes(self, g: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        eps = g["u"]
        identity = ufl.Identity(eps.ufl_shape[0])
        sigma = self.lmbda * ufl.tr(eps) * identity + 2.0 * self.mu * eps
        return {"u": sigma - self.beta * params["theta"] * identity}

    def stiffness(self, dim: int) -> np.ndarray:
        """Voigt stiffness (plane strain in 2D)."""
        return isotropic_stiffness(dim, lmbda=self.lmbda, mu=self.mu)

    def beta_voigt(self, dim: int) -> np.ndarray:
        """:math:`\\beta I` as a Voigt stress vector."""
        return self.beta * np.array([1.0 if i == j else 0.0 for i, j in voigt_index(dim)])

    @staticmethod
    def effective(result: Any) -> dict[str, np.ndarray]:
        r"""``C`` (:math:`C^*`), ``beta`` (:math:`\beta^* = -\langle\sigma\rangle` at zero macro
        strain and :math:`\theta = 1`, Voigt, so that :math:`\Sigma = C^*E - \beta^*\theta`) and
        ``alpha`` (:math:`\alpha^* = (C^*)^{-1}\beta^*`, engineering shears; in 2D the
        plane-strain apparent expansion) of a :class:`~multiscale.cell.coupled.CoupledResult`."""
        C = result.block("u", "u")
        beta = -result.parameter_flux("theta", "u")
        return {"C": C, "beta": beta, "alpha": np.linalg.solve(C, beta)}


@dataclass(slots=True, frozen=True)
class Piezoelectric:
    r"""Linear piezoelectricity, fields ``u`` (displacement) and ``phi`` (electric potential):

    .. math::
        \{\sigma\} = C\{\varepsilon\} - e^T E, \qquad D = e\{\varepsilon\} + \kappa E,
        \qquad E = -\nabla\phi ,

    with the Voigt stiffness ``C`` at constant field (``nv x nv``), the piezoelectric stress
    matrix ``e`` (``d x nv``, :math:`D_i = e_{iJ}\varepsilon_J`) and the permittivity ``kappa``
    at constant strain (``d x d``).  The fluxes are the derivatives of the electric enthalpy
    :math:`H = \tfrac12\varepsilon C\varepsilon + \nabla\phi\cdot e\varepsilon -
    \tfrac12\nabla\phi\cdot\kappa\nabla\phi` with respect to :math:`(\varepsilon, \nabla\phi)`:
    :math:`q_u = \sigma`, :math:`q_\phi = D`; the coupled operator is symmetric indefinite.
    """

    C: np.ndarray = field(repr=True)
    e: np.ndarray = field(repr=True)
    kappa: np.ndarray = field(repr=True)
    fields: ClassVar[tuple[Field, ...]] = (
        Field("u", "vector", "sym_grad"),
        Field("phi", "scalar", "grad"),
    )
    parameters: ClassVar[tuple[str, ...]] = ()
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        C = np.asarray(self.C, dtype=float)
        if C.shape not in ((3, 3), (6, 6)):
            raise ValueError(f"Voigt stiffness C must be 3x3 (2D) or 6x6 (3D), got {C.shape}")
        nv = C.shape[0]
        dim = 2 if nv == 3 else 3
        C = _matrix(C, (nv, nv), "stiffness C")
        _spd(C, "stiffness C")
        kappa = _matrix(self.kappa, (dim, dim), "permittivity kappa")
        _spd(kappa, "permittivity kappa")
        object.__setattr__(self, "C", C)
        object.__setattr__(self, "e", _matrix(self.e, (dim, nv), "piezoelectric matrix e"))
        object.__setattr__(self, "kappa", kappa)

    @property
    def dim(self) -> int:
        return 2 if self.C.shape[0] == 3 else 3

    def fluxes(self, g: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        d, nv = self.dim, self.C.shape[0]
        eps, gphi = _voigt_to_ufl(g["u"], d), g["phi"]
        C, e, k = self.C, self.e, self.kappa
        s = [
            sum(float(C[a, b]) * eps[b] for b in range(nv))
            + sum(float(e[i, a]) * gphi[i] for i in range(d))
            for a in range(nv)
        ]
        D = [
            sum(float(e[i, b]) * eps[b] for b in range(nv))
            - sum(float(k[i, j]) * gphi[j] for j in range(d))
            for i in range(d)
        ]
        return {"u": _ufl_from_voigt(s, d), "phi": ufl.as_vector(D)}

    def matrix(self) -> np.ndarray:
        """The generalized matrix :math:`\\mathbb M = [[C, e^T], [e, -\\kappa]]` mapping
        :math:`(\\{\\varepsilon\\}, \\nabla\\phi)` to :math:`(\\{\\sigma\\}, D)`."""
        return np.block([[self.C, self.e.T], [self.e, -self.kappa]])

    @staticmethod
    def effective(result: Any) -> dict[str, np.ndarray]:
        """``C`` (:math:`C^*`), ``e`` (:math:`e^*`, the mean :math:`D` per unit strain) and
        ``kappa`` (:math:`\\kappa^* = -\\partial\\langle D\\rangle/\\partial\\nabla\\phi`) of a
        :class:`~multiscale.cell.coupled.CoupledResult`."""
        return {
            "C": result.block("u", "u"),
            "e": result.block("phi", "u"),
            "kappa": -result.block("phi", "phi"),
        }


@dataclass(slots=True, frozen=True)
class PoledPiezoelectric:
    r"""A transversely isotropic piezoelectric phase, poled along the last axis (crystal class
    :math:`6mm`: poled ceramics such as PZT), by its ten independent constants: the stiffness
    at constant field ``c11 c12 c13 c33 c44`` (:math:`c_{66} = (c_{11} - c_{12})/2`), the
    piezoelectric stress constants ``e31 e33 e15`` and the permittivity at constant strain
    ``kappa11 kappa33``.  In 3D the poling axis is :math:`x_3`:

    .. math::
        D_3 = e_{31}(\varepsilon_{11} + \varepsilon_{22}) + e_{33}\varepsilon_{33}
        + \kappa_{33}E_3, \qquad D_1 = e_{15}\gamma_{13} + \kappa_{11}E_1, \quad
        D_2 = e_{15}\gamma_{23} + \kappa_{11}E_2 .

    In 2D (plane strain) the plane is :math:`x_1`-:math:`x_3` of the crystal, written
    :math:`x_1`-:math:`x_2`: the poling axis is :math:`x_2`, the Voigt stiffness
    :math:`[[c_{11}, c_{13}, 0], [c_{13}, c_{33}, 0], [0, 0, c_{44}]]`.
    :meth:`isotropic` gives a dielectric without piezoelectricity (a polymer matrix).  The
    constants are checked once, in 3D (the 2D matrices are principal submatrices): a stiffness
    or a permittivity that is not positive definite is a ``ValueError``.
    """

    c11: float
    c12: float
    c13: float
    c33: float
    c44: float
    e31: float
    e33: float
    e15: float
    kappa11: float
    kappa33: float

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not np.isfinite(value):
                raise ValueError(f"piezoelectric constant {name} must be a finite number")
        self.law(3)  # positive definite C and kappa

    @classmethod
    def isotropic(cls, E: float, nu: float, kappa: float) -> PoledPiezoelectric:
        """An isotropic dielectric (Young's modulus, Poisson's ratio, permittivity), ``e = 0``."""
        lam, mu = lame_from_young(E, nu)
        return cls(lam + 2 * mu, lam, lam, lam + 2 * mu, mu, 0.0, 0.0, 0.0, kappa, kappa)

    def law(self, dim: int) -> Piezoelectric:
        """The :class:`Piezoelectric` law in ``dim`` = 2 (plane strain) or 3 dimensions."""
        if dim == 2:
            C = [[self.c11, self.c13, 0.0], [self.c13, self.c33, 0.0], [0.0, 0.0, self.c44]]
            e = [[0.0, 0.0, self.e15], [self.e31, self.e33, 0.0]]
            return Piezoelectric(np.array(C), np.array(e), np.diag([self.kappa11, self.kappa33]))
        if dim != 3:
            raise ValueError(f"a piezoelectric law is 2D or 3D, got dim = {dim}")
        C = np.zeros((6, 6))
        C[:3, :3] = [
            [self.c11, self.c12, self.c13],
            [self.c12, self.c11, self.c13],
            [self.c13, self.c13, self.c33],
        ]
        C[3, 3] = C[4, 4] = self.c44
        C[5, 5] = 0.5 * (self.c11 - self.c12)
        e = np.zeros((3, 6))
        e[0, 4] = e[1, 3] = self.e15
        e[2, :3] = [self.e31, self.e31, self.e33]
        kappa = np.diag([self.kappa11, self.kappa11, self.kappa33])
        return Piezoelectric(C, e, kappa)
