r"""Macro thermal stress: linear elasticity with a thermal eigenstrain on a macro mesh.

Given phase (or homogenized) laws :math:`\{\sigma\} = C\{\varepsilon\} - \beta\,\theta` (Voigt,
engineering shears; :math:`\beta = C\alpha`, :math:`\theta = \Delta T` a uniform temperature
change) on the regions of a mesh, find :math:`u` with

.. math::
    \int_\Omega \sigma(\varepsilon(u), \theta) : \varepsilon(v)\,dx = 0 \quad \forall v,
    \qquad u_c = 0 \text{ on the supports},

i.e. :math:`\operatorname{div}\big(C(\varepsilon(u) - \alpha\,\Delta T)\big) = 0` with traction-free
remaining boundaries.  In 2D every law is plane strain (the in-plane part, as in
:mod:`multiscale.physics.coupled`).  The same problem serves the homogenized part (one
anisotropic law :class:`AnisotropicThermoElastic` per region, from a
:class:`~multiscale.cell.coupled.CoupledResult`) and its fully resolved reference (the
:class:`~multiscale.physics.coupled.ThermoElastic` phase laws on the cell tags of a fine mesh).

Closed forms for the checks: a free homogeneous body has :math:`\varepsilon = \alpha\Delta T`,
:math:`\sigma = 0`; a clamped one :math:`\sigma = -\beta\Delta T`; the interior of a long
layered strip (Saint-Venant: far from its ends) carries :math:`\sigma_{yy} = \sigma_{xy} = 0`
and the axial strain :math:`\varepsilon_{xx} = a - \kappa y` of beam theory, exact in plane
elasticity for any layer anisotropy (:func:`laminated_strip_curvature`), which for two layers is
Timoshenko's bimetal formula (:func:`timoshenko_bimetal_curvature`).

References
----------
Timoshenko, S. (1925). Analysis of bi-metal thermostats. J. Opt. Soc. Am. 11, 233-255.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.hmm.macro import linear_solve, linear_solver_options
from multiscale.nonlinear import unique_prefix
from multiscale.physics.coupled import Field, ThermoElastic
from multiscale.tensors import voigt_index, voigt_size

__all__ = [
    "AnisotropicThermoElastic",
    "Support",
    "ThermalStressProblem",
    "fit_curvature",
    "laminated_strip_curvature",
    "strip_constants",
    "timoshenko_bimetal_curvature",
]

#: A law of the problem: ``fluxes({"u": eps}, {"theta": T})``, ``stiffness(dim)``,
#: ``beta_voigt(dim)`` (:class:`~multiscale.physics.coupled.ThermoElastic` or
#: :class:`AnisotropicThermoElastic`).
Law = Any


@dataclass(slots=True, frozen=True)
class AnisotropicThermoElastic:
    r"""Anisotropic linear thermoelasticity :math:`\{\sigma\} = C\{\varepsilon\} - \beta\theta`
    (Voigt 11, 22, 12 in 2D, 11, 22, 33, 23, 13, 12 in 3D; engineering shears), field ``u``,
    parameter ``theta``: the homogenized law of a thermoelastic composite.

    :math:`\alpha = C^{-1}\beta` is the free (stress-free) thermal strain per unit
    :math:`\theta`, in 2D the plane-strain apparent one.  A
    :class:`~multiscale.physics.coupled.MultiFieldLaw`, so it also serves as a phase law of
    :class:`~multiscale.cell.coupled.CoupledCellProblem`.
    """

    C: np.ndarray
    beta: np.ndarray
    fields: ClassVar[tuple[Field, ...]] = (Field("u", "vector", "sym_grad"),)
    parameters: ClassVar[tuple[str, ...]] = ("theta",)
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        C = np.array(self.C, dtype=float)
        if C.shape not in ((3, 3), (6, 6)):
            raise ValueError(f"Voigt stiffness C must be 3x3 (2D) or 6x6 (3D), got {C.shape}")
        if not np.all(np.isfinite(C)):
            raise ValueError("stiffness C has non-finite entries")
        if not np.allclose(C, C.T, rtol=1e-8, atol=1e-12 * np.abs(C).max()):
            raise ValueError("stiffness C must be symmetric")
        C = 0.5 * (C + C.T)
        if np.linalg.eigvalsh(C).min() <= 0.0:
            raise ValueError("stiffness C must be positive definite")
        beta = np.array(self.beta, dtype=float).reshape(-1)
        if beta.shape != (C.shape[0],) or not np.all(np.isfinite(beta)):
            raise ValueError(f"beta must be {C.shape[0]} finite Voigt stresses, got {self.beta!r}")
        C.setflags(write=False)
        beta.setflags(write=False)
        object.__setattr__(self, "C", C)
        object.__setattr__(self, "beta", beta)

    @classmethod
    def from_result(cls, result: Any) -> AnisotropicThermoElastic:
        """The homogenized law of a thermoelastic
        :class:`~multiscale.cell.coupled.CoupledResult` (:math:`C^*`, :math:`\\beta^*`)."""
        eff = ThermoElastic.effective(result)
        return cls(eff["C"], eff["beta"])

    @property
    def dim(self) -> int:
        return 2 if self.C.shape[0] == 3 else 3

    @property
    def alpha(self) -> np.ndarray:
        """Free thermal strain per unit temperature, :math:`C^{-1}\\beta` (Voigt)."""
        return np.linalg.solve(self.C, self.beta)

    def stiffness(self, dim: int) -> np.ndarray:
        self._check(dim)
        return self.C.copy()

    def beta_voigt(self, dim: int) -> np.ndarray:
        self._check(dim)
        return self.beta.copy()

    def _check(self, dim: int) -> None:
        if dim != self.dim:
            raise ValueError(f"a {self.dim}D law asked for {dim}D constants")

    def fluxes(self, g: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        eps = g["u"]
        d = eps.ufl_shape[0]
        self._check(d)
        index = voigt_index(d)
        e = [eps[i, j] if i == j else 2 * eps[i, j] for i, j in index]
        theta = params["theta"]
        s = [
            sum(float(self.C[a, b]) * e[b] for b in range(len(index))) - float(self.beta[a]) * theta
            for a in range(len(index))
        ]
        S: list[list[Any]] = [[None] * d for _ in range(d)]
        for a, (i, j) in enumerate(index):
            S[i][j] = S[j][i] = s[a]
        return {"u": ufl.as_matrix(S)}


@dataclass(slots=True, frozen=True)
class Support:
    """:math:`u_c = 0` for the components ``components`` at the mesh vertices and on the facets
    (all of whose vertices are) where ``where(x)`` is true (``x`` of shape ``(3, n)``): an edge of
    the domain (a symmetry plane, a clamp) or a single point (a rigid-body pin)."""

    where: Callable[[np.ndarray], np.ndarray]
    components: tuple[int, ...] = (0, 1)

    def __post_init__(self) -> None:
        comps = tuple(int(c) for c in self.components)
        if not comps or min(comps) < 0 or len(set(comps)) != len(comps):
            raise ValueError(f"components must be distinct non-negative integers: {comps}")
        object.__setattr__(self, "components", comps)


class ThermalStressProblem:
    r"""The macro thermal-stress problem (module documentation) on ``mesh``.

    Parameters
    ----------
    mesh:
        The mesh (2D plane strain or 3D), distributed on its communicator.
    materials:
        Cell tag -> law; with ``cell_tags=None`` a single law for the whole mesh under any key.
    cell_tags:
        The region of every cell (tags of ``materials``).
    supports:
        :class:`Support` conditions; they must remove the rigid motions.
    degree:
        Lagrange degree of :math:`u`.
    petsc_options:
        Overrides of the MUMPS LU default (:func:`~multiscale.hmm.macro.linear_solver_options`).

    :meth:`solve` is collective on ``mesh.comm``.
    """

    def __init__(
        self,
        mesh: dolfinx.mesh.Mesh,
        materials: Mapping[int, Law],
        *,
        cell_tags: dolfinx.mesh.MeshTags | None = None,
        supports: Sequence[Support] = (),
        degree: int = 1,
        petsc_options: Mapping[str, Any] | None = None,
        petsc_options_prefix: str | None = None,
    ) -> None:
        self.mesh, self.materials, self.cell_tags = mesh, dict(materials), cell_tags
        self.supports, self.degree = tuple(supports), int(degree)
        self.petsc_options, self.petsc_options_prefix = petsc_options, petsc_options_prefix
        self.seconds = 0.0
        mesh = self.mesh
        self.dim = d = mesh.geometry.dim
        if not self.materials:
            raise ValueError("no materials given")
        if self.cell_tags is None and len(self.materials) != 1:
            raise ValueError("several materials need cell_tags to place them")
        if self.cell_tags is not None:
            local = np.unique(self.cell_tags.values)
            present = np.unique(np.concatenate(mesh.comm.allgather(local)))
            missing = sorted(set(present.tolist()) - {int(t) for t in self.materials})
            if missing:
                raise ValueError(
                    f"cell tags {missing} have no law; laws are given for {sorted(self.materials)}"
                )
        if not self.supports:
            raise ValueError("give supports that remove the rigid motions")
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(self.degree), (d,)))
        self.u = dolfinx.fem.Function(self.V, name="u")
        self.theta = dolfinx.fem.Constant(mesh, 0.0)
        self.dx = ufl.Measure("dx", domain=mesh, subdomain_data=self.cell_tags)
        self._regions = (
            [(self.dx, next(iter(self.materials.values())))]
            if self.cell_tags is None
            else [(self.dx(int(t)), law) for t, law in self.materials.items()]
        )
        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)

        def eps(z: Any) -> Any:
            return ufl.sym(ufl.grad(z))

        self.a = dolfinx.fem.form(
            sum(ufl.inner(self._sigma(law, eps(w), 0.0), eps(v)) * m for m, law in self._regions)
        )
        zero = ufl.as_matrix([[0.0] * d for _ in range(d)])
        self.L = dolfinx.fem.form(
            -sum(
                ufl.inner(self._sigma(law, zero, self.theta), eps(v)) * m
                for m, law in self._regions
            )
        )
        self.bcs = [bc for s in self.supports for bc in self._dirichlet(s)]
        self.prefix = self.petsc_options_prefix or unique_prefix("thermal_stress")
        self.options = linear_solver_options() | dict(self.petsc_options or {})
        self.ndofs = self.V.dofmap.index_map.size_global * d

    @staticmethod
    def _sigma(law: Law, eps: Any, theta: Any) -> Any:
        return law.fluxes({"u": eps}, {"theta": theta})["u"]

    def stress(self) -> list[tuple[Any, Any]]:
        """``(measure, sigma)`` per region: the UFL stress of :attr:`u` at :attr:`theta`."""
        eps = ufl.sym(ufl.grad(self.u))
        return [(m, self._sigma(law, eps, self.theta)) for m, law in self._regions]

    def _dirichlet(self, support: Support) -> list[dolfinx.fem.DirichletBC]:
        mesh, d = self.mesh, self.dim
        if max(support.components) >= d:
            raise ValueError(f"support components {support.components} in a {d}D problem")
        fdim = d - 1
        mesh.topology.create_connectivity(fdim, d)
        mesh.topology.create_connectivity(0, d)
        vertices = dolfinx.mesh.locate_entities(mesh, 0, support.where)
        facets = dolfinx.mesh.locate_entities(mesh, fdim, support.where)
        found = mesh.comm.allreduce(len(vertices), op=MPI.SUM)
        if found == 0:
            raise ValueError("a support matches no vertex of the mesh")
        bcs = []
        for c in support.components:
            sub = self.V.sub(c)
            dofs = np.union1d(
                dolfinx.fem.locate_dofs_topological(sub, 0, vertices),
                dolfinx.fem.locate_dofs_topological(sub, fdim, facets),
            ).astype(np.int32)
            bcs.append(dolfinx.fem.dirichletbc(np.float64(0.0), dofs, sub))
        return bcs

    def solve(self, delta_T: float) -> dolfinx.fem.Function:
        """:attr:`u` for the uniform temperature change ``delta_T`` (collective)."""
        value = float(delta_T)
        if not np.isfinite(value):
            raise ValueError(f"temperature change must be finite, got {delta_T!r}")
        self.theta.value = value
        t0 = time.perf_counter()
        linear_solve(
            self.a,
            self.L,
            self.bcs,
            self.u,
            petsc_options_prefix=self.prefix,
            petsc_options=self.options,
            what="thermal stress solve",
        )
        self.seconds = self.mesh.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        return self.u

    # -- post-processing ------------------------------------------------------------------------
    def mean_stress(self) -> np.ndarray:
        """:math:`|\\Omega|^{-1}\\int_\\Omega \\sigma\\,dx` as a Voigt vector (collective)."""
        index = voigt_index(self.dim)
        vals = np.array(
            [
                sum(
                    dolfinx.fem.assemble_scalar(dolfinx.fem.form(s[i, j] * m))
                    for m, s in self.stress()
                )
                for i, j in index
            ]
            + [dolfinx.fem.assemble_scalar(dolfinx.fem.form(1.0 * self.dx))]
        )
        vals = self.mesh.comm.allreduce(vals, op=MPI.SUM)
        return vals[:-1] / vals[-1]

    def cell_stress(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell midpoints ``(n_owned, dim)`` and the cell means of the stress
        ``(n_owned, voigt_size)`` of this rank's owned cells (for plots)."""
        d, nv = self.dim, voigt_size(self.dim)
        W = dolfinx.fem.functionspace(self.mesh, ("DG", 0, (nv,)))
        w = ufl.TestFunction(W)
        index = voigt_index(d)
        rhs = sum(
            sum(s[i, j] * w[a] for a, (i, j) in enumerate(index)) * m for m, s in self.stress()
        )
        b = dolfinx.fem.assemble_vector(dolfinx.fem.form(rhs))
        vol = dolfinx.fem.assemble_vector(dolfinx.fem.form(w[0] * self.dx))
        n = W.dofmap.index_map.size_local
        means = b.array.reshape(-1, nv)[:n] / vol.array.reshape(-1, nv)[:n, :1]
        cells = np.arange(n, dtype=np.int32)
        mid = dolfinx.mesh.compute_midpoints(self.mesh, d, cells)[:, :d]
        return mid, means


def fit_curvature(
    u: dolfinx.fem.Function, y: float, x_range: tuple[float, float], *, tol: float = 1e-9
) -> tuple[float, float]:
    r"""Curvature :math:`\kappa = w''` of the deflection :math:`w(x) = u_2(x, y)` along the line
    ``y``: the least-squares fit :math:`w \approx c_0 + c_1 x + \kappa x^2/2` to the nodal values
    with :math:`x` in ``x_range``.  Returns ``(kappa, rms residual / max |w|)``.  Collective."""
    V = u.function_space
    comm = V.mesh.comm
    n = V.dofmap.index_map.size_local
    X = V.tabulate_dof_coordinates()[:n]
    bs = V.dofmap.index_map_bs
    values = u.x.array.reshape(-1, bs)[:n, 1]
    pick = (
        (np.abs(X[:, 1] - y) < tol) & (X[:, 0] >= x_range[0] - tol) & (X[:, 0] <= x_range[1] + tol)
    )
    xs = np.concatenate(comm.allgather(X[pick, 0]))
    ws = np.concatenate(comm.allgather(values[pick]))
    if xs.size < 4:
        raise ValueError(f"only {xs.size} nodes on the line y = {y} in {x_range}")
    A = np.stack([np.ones_like(xs), xs, 0.5 * xs**2], axis=1)
    coef, *_ = np.linalg.lstsq(A, ws, rcond=None)
    rms = float(np.sqrt(np.mean((A @ coef - ws) ** 2)))
    return float(coef[2]), rms / max(float(np.abs(ws).max()), 1e-300)


def strip_constants(law: Law, dim: int = 2) -> tuple[float, float]:
    r"""Axial modulus and free axial thermal strain per unit temperature of a layer of a strip
    along :math:`x_1` with :math:`\sigma_{22} = \sigma_{12} = 0` (plane strain in 2D):
    :math:`E' = 1/S_{11}`, :math:`\alpha' = (S\beta)_1`, :math:`S = C^{-1}` (Voigt)."""
    S = np.linalg.inv(law.stiffness(dim))
    return 1.0 / float(S[0, 0]), float((S @ law.beta_voigt(dim))[0])


def laminated_strip_curvature(
    thicknesses: Sequence[float], laws: Sequence[Law], delta_T: float, dim: int = 2
) -> tuple[float, float]:
    r"""Axial strain :math:`a` at :math:`y = 0` and curvature :math:`\kappa = w''` of a free
    layered strip (layers bottom to top from :math:`y = 0`) under :math:`\Delta T`.

    With :math:`\varepsilon_{xx} = a - \kappa y` and :math:`\sigma_{xx} = E'_i(\varepsilon_{xx}
    - \alpha'_i\Delta T)` in layer :math:`i` (:func:`strip_constants`), zero axial force and
    moment, :math:`\sum_i\int_{y_i}^{y_{i+1}} \sigma_{xx}\,(1, y)\,dy = 0`, are two linear
    equations for :math:`(a, -\kappa)`.  Exact in plane elasticity far from the ends."""
    h = np.asarray(thicknesses, dtype=float)
    if h.ndim != 1 or len(h) != len(laws) or np.any(h <= 0):
        raise ValueError("one positive thickness per law")
    y = np.concatenate([[0.0], np.cumsum(h)])
    E, al = np.array([strip_constants(law, dim) for law in laws]).T
    m0 = y[1:] - y[:-1]
    m1 = (y[1:] ** 2 - y[:-1] ** 2) / 2
    m2 = (y[1:] ** 3 - y[:-1] ** 3) / 3
    M = np.array([[E @ m0, E @ m1], [E @ m1, E @ m2]])
    rhs = float(delta_T) * np.array([(E * al) @ m0, (E * al) @ m1])
    a, b = np.linalg.solve(M, rhs)
    return float(a), float(-b)


def timoshenko_bimetal_curvature(
    h1: float, h2: float, E1: float, E2: float, alpha1: float, alpha2: float, delta_T: float
) -> float:
    r"""Timoshenko's (1925) bimetal curvature, layer 1 below layer 2, as :math:`w''`:

    .. math:: \kappa = -\frac{6(\alpha_2-\alpha_1)\Delta T\,(1+m)^2}
        {h\,[3(1+m)^2 + (1+mn)(m^2 + 1/(mn))]},
        \qquad m = h_1/h_2,\ n = E_1/E_2,\ h = h_1 + h_2

    (positive :math:`w''`: bent towards :math:`+y`, when the lower layer expands more)."""
    m, n, h = h1 / h2, E1 / E2, h1 + h2
    return (
        -6.0
        * (alpha2 - alpha1)
        * delta_T
        * (1 + m) ** 2
        / (h * (3 * (1 + m) ** 2 + (1 + m * n) * (m**2 + 1 / (m * n))))
    )
