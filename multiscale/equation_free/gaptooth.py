r"""The gap-tooth scheme with buffers, and patch dynamics, for

.. math::
    u_t = \big(a(x/\varepsilon)\,u_x\big)_x - r\,u \quad\text{on a periodic macro domain } [0, L).

**Teeth.**  Coarse points :math:`X_i = iH`, :math:`H = L/N`.  Tooth :math:`i` is the interval
:math:`X_i + [-h/2, h/2]` (the *inner* region, where the coarse variable
:math:`U_i = h^{-1}\int u` lives) inside :math:`X_i + [-w/2, w/2]`, :math:`w = h + 2\delta_b`,
the buffers of width :math:`\delta_b` shielding it from the artificial boundary.

**Lifting** (Samaey, Roose, Kevrekidis): the quadratic
:math:`p_i(z) = c_0 + c_1 z + c_2 z^2/2` whose averages over the inner regions of teeth
:math:`i-1, i, i+1` are :math:`U_{i-1}, U_i, U_{i+1}`:

.. math::
    c_1 = \frac{U_{i+1} - U_{i-1}}{2H}, \quad c_2 = \frac{U_{i+1} - 2U_i + U_{i-1}}{H^2}, \quad
    c_0 = U_i - c_1 \mathcal R(z) - \tfrac{c_2}{2}\mathcal R(z^2)

(the discrete restrictions of :math:`z` and :math:`z^2`, so :math:`\mathcal R\mathcal L = I` to
round-off) is the initial condition of the tooth, and :math:`p_i(\pm w/2)` are Dirichlet values
at the buffer edges, held during the burst.

**Micro solver.**  P1 elements on one interval mesh of :math:`[-w/2, w/2]` (cell size
:math:`\varepsilon/` ``cells_per_eps``, nodes on :math:`\pm h/2`), backward Euler with step
:math:`\delta t`:

.. math::
    \int (u^{m+1} - u^m) v + \delta t \int a\big((X + z)/\varepsilon\big)\,u^{m+1}_z v_z
    + r\,u^{m+1} v = 0,

one compiled form for all teeth (:math:`X` and the boundary values are
:class:`~dolfinx.fem.Constant` objects set per tooth); each tooth's matrix is assembled and
LU-factorized once and reused for every burst.  Teeth are spread over the ranks with
:meth:`~multiscale.coupling.MicroPool.map_tasks` (tooth :math:`i` on group :math:`i \bmod G`),
so the results do not depend on the number of ranks.

**Coarse stepper.**  :meth:`GapTooth.burst` returns the restrictions after each of ``steps``
micro steps; the slope of the last step, once the initial layer (the fine-scale corrector
forming on the time scale :math:`\varepsilon^2/a`) has healed, is
:math:`dU_i/dt \approx a^{GT} c_{2,i} + \dots`.  *Gap-tooth*: :math:`U \mapsto
\mathcal R(u(\text{burst}))`; *patch dynamics*: projective integration with
``anchor="lift"`` (:func:`~multiscale.equation_free.core.projective_integrate`), which for the
linear problem is explicit Euler on the three-point scheme
:math:`U_i' = a^{GT}(U_{i+1} - 2U_i + U_{i-1})/H^2 - rU_i` with the coefficient
:math:`a^{GT}` the teeth realize (:meth:`GapTooth.effective_coefficient`).  With buffers of a few
:math:`\sqrt{a\,t_{burst}}` and :math:`h` a multiple of :math:`\varepsilon`,
:math:`a^{GT} \to a^*` (the harmonic mean); without buffers the Dirichlet data act on the inner
region itself and :math:`a^{GT}` is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.compat import create_vector
from multiscale.coupling.pool import MicroPool
from multiscale.nonlinear import PETScOwner, direct_solver_options, unique_prefix
from multiscale.petsc_options import prefixed_options

__all__ = [
    "GapTooth",
    "GapToothSettings",
    "sine_coefficient",
    "sine_homogenized",
]


def sine_coefficient(y: Any) -> Any:
    """:math:`a(y) = 1.1 + \\sin 2\\pi y` (UFL or NumPy)."""
    sin = ufl.sin if isinstance(y, ufl.core.expr.Expr) else np.sin
    return 1.1 + sin(2.0 * math.pi * y)


#: :math:`a^* = (\int_0^1 a^{-1})^{-1} = \sqrt{1.1^2 - 1}` of :func:`sine_coefficient`.
sine_homogenized = math.sqrt(1.1**2 - 1.0)


@dataclass(frozen=True)
class GapToothSettings:
    """Teeth, buffers and micro discretization (module docstring).

    ``n_teeth`` :math:`N`, ``length`` :math:`L`, ``eps`` :math:`\\varepsilon`, ``tooth``
    :math:`h`, ``buffer`` :math:`\\delta_b`, ``cells_per_eps``, inner step ``dt`` (default
    :math:`\\varepsilon^2/2`), ``reaction`` :math:`r`, the ``coefficient`` :math:`a(y)` (UFL) and
    the ``quadrature_degree`` of the stiffness."""

    n_teeth: int = 20
    length: float = 1.0
    eps: float = 0.005
    tooth: float = 0.01
    buffer: float = 0.02
    cells_per_eps: int = 32
    dt: float | None = None
    reaction: float = 0.0
    coefficient: Callable[[Any], Any] = sine_coefficient
    quadrature_degree: int = 6

    def __post_init__(self) -> None:
        if self.n_teeth < 3 or min(self.length, self.eps, self.tooth) <= 0 or self.buffer < 0:
            raise ValueError(f"invalid gap-tooth settings {self}")
        for name in ("tooth", "buffer"):
            cells = getattr(self, name) / self.hz
            if abs(cells - round(cells)) > 1e-6:
                raise ValueError(
                    f"{name} = {getattr(self, name)} must be a multiple of the cell size "
                    f"{self.hz:g} (eps / cells_per_eps)"
                )

    @property
    def hz(self) -> float:
        return self.eps / self.cells_per_eps

    @property
    def H(self) -> float:
        return self.length / self.n_teeth

    @property
    def width(self) -> float:
        return self.tooth + 2.0 * self.buffer

    @property
    def inner_dt(self) -> float:
        return 0.5 * self.eps**2 if self.dt is None else float(self.dt)

    @property
    def centres(self) -> np.ndarray:
        return self.H * np.arange(self.n_teeth)


class GapTooth(PETScOwner):
    """The teeth of :class:`GapToothSettings` on ``comm``, distributed with a
    :class:`~multiscale.coupling.MicroPool` (``group_size`` ranks per tooth).

    A :class:`~multiscale.equation_free.core.CoarseStepper` (:attr:`dt`, :meth:`burst`).
    ``petsc_options`` override the tooth solver's LU options (prefix ``petsc_options_prefix``).
    Collective on ``comm``; frees its PETSc objects in :meth:`destroy`.
    """

    def __init__(
        self,
        comm: MPI.Comm,
        settings: GapToothSettings,
        *,
        group_size: int = 1,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = s = settings
        self.comm = comm
        self.pool = self._own(MicroPool(comm, group_size))
        self.dt = s.inner_dt
        self.micro_steps = 0
        self.prefix = petsc_options_prefix or unique_prefix("gaptooth")
        options = (
            direct_solver_options()
            if self.pool.micro_comm.size > 1
            else {
                "ksp_type": "preonly",
                "pc_type": "lu",
            }
        )
        self.petsc_options = {**options, **(petsc_options or {})}
        self._init_forms()
        self._init_teeth()

    # -- construction ---------------------------------------------------------------------------
    def _init_forms(self) -> None:
        s = self.settings
        w = s.width
        n = round(w / s.hz)
        self.mesh = mesh = dolfinx.mesh.create_interval(self.pool.micro_comm, n, [-w / 2, w / 2])
        self.V = V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
        z = ufl.SpatialCoordinate(mesh)[0]
        scalar = PETSc.ScalarType
        self.X = dolfinx.fem.Constant(mesh, scalar(0.0))
        self.g = [dolfinx.fem.Constant(mesh, scalar(0.0)) for _ in range(2)]
        self.u = dolfinx.fem.Function(V, name="u")
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        dx = ufl.dx(metadata={"quadrature_degree": s.quadrature_degree})
        a = s.coefficient((self.X + z) / s.eps)
        dt, r = s.inner_dt, s.reaction
        self._a = dolfinx.fem.form((u * v + dt * (a * u.dx(0) * v.dx(0) + r * u * v)) * dx)
        self._L = dolfinx.fem.form(self.u * v * dx)
        inner = ufl.conditional(ufl.lt(abs(z), s.tooth / 2), 1.0, 0.0) / s.tooth
        weights = dolfinx.fem.form(inner * v * ufl.dx(metadata={"quadrature_degree": 2}))
        ends = (-w / 2, w / 2)
        self.bcs = [
            dolfinx.fem.dirichletbc(
                g, dolfinx.fem.locate_dofs_geometrical(V, lambda x, e=e: np.isclose(x[0], e)), V
            )
            for g, e in zip(self.g, ends, strict=True)
        ]
        self.b = self._own(create_vector(self._L))
        self.w = self._own(create_vector(weights))
        dolfinx.fem.petsc.assemble_vector(self.w, weights)
        self.w.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        self.z = V.tabulate_dof_coordinates()[:, 0].copy()
        self.Rz = self._restrict_array(self.z)
        self.Rz2 = self._restrict_array(self.z**2)

    def _init_teeth(self) -> None:
        """Matrix and LU factorization of every tooth this group runs, made once."""
        self._ksp: dict[int, PETSc.KSP] = {}
        centres = self.settings.centres
        for t in self.pool.own_tasks(self.settings.n_teeth):
            self.X.value = centres[t]
            A = self._own(dolfinx.fem.petsc.assemble_matrix(self._a, bcs=self.bcs))
            A.assemble()
            ksp = self._own(PETSc.KSP().create(self.pool.micro_comm))
            ksp.setOptionsPrefix(self.prefix)
            ksp.setOperators(A)
            with prefixed_options(self.prefix, self.petsc_options):
                ksp.setFromOptions()
                ksp.setUp()  # a factorization reads its own options here
            self._ksp[t] = ksp

    # -- lifting, micro steps, restriction --------------------------------------------------------
    def _restrict_array(self, values: np.ndarray) -> float:
        self.u.x.array[:] = values
        return self.restrict()

    def restrict(self) -> float:
        """:math:`h^{-1}\\int_{inner} u` of the current tooth field (collective on the tooth's
        communicator)."""
        return float(self.u.x.petsc_vec.dot(self.w))

    def interpolation(self, U: np.ndarray) -> np.ndarray:
        """:math:`(c_0, c_1, c_2)` of every tooth, ``(N, 3)`` (module docstring)."""
        U = np.asarray(U, dtype=float)
        H = self.settings.H
        up, um = np.roll(U, -1), np.roll(U, 1)
        c1 = (up - um) / (2.0 * H)
        c2 = (up - 2.0 * U + um) / H**2
        c0 = U - c1 * self.Rz - 0.5 * c2 * self.Rz2
        return np.stack([c0, c1, c2], axis=1)

    def lift(self, t: int, c: np.ndarray) -> None:
        """Tooth ``t``: the quadratic ``c`` as initial field and as Dirichlet data."""
        self.X.value = self.settings.centres[t]
        half = self.settings.width / 2
        for g, zb in zip(self.g, (-half, half), strict=True):
            g.value = c[0] + c[1] * zb + 0.5 * c[2] * zb**2
        self.u.x.array[:] = c[0] + c[1] * self.z + 0.5 * c[2] * self.z**2

    def step(self, t: int) -> None:
        """One backward Euler step of tooth ``t`` (lifted by :meth:`lift`)."""
        b = self.b
        with b.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, self._L)
        dolfinx.fem.petsc.apply_lifting(b, [self._a], bcs=[self.bcs])
        b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs)
        self._ksp[t].solve(b, self.u.x.petsc_vec)
        self.u.x.scatter_forward()

    def tooth_burst(self, t: int, c: np.ndarray, steps: int) -> np.ndarray:
        """Restrictions of tooth ``t`` lifted with ``c`` after ``0..steps`` micro steps."""
        self.lift(t, c)
        out = [self.restrict()]
        for _ in range(int(steps)):
            self.step(t)
            out.append(self.restrict())
        return np.array(out)

    # -- the coarse stepper -----------------------------------------------------------------------
    def burst(self, U: np.ndarray, steps: int) -> np.ndarray:
        """Restrictions ``(steps + 1, N)`` of all teeth (collective on ``comm``)."""
        c = self.interpolation(U)
        res = self.pool.map_tasks(lambda t, _: self.tooth_burst(t, c[t], steps), len(c))
        self.micro_steps += int(steps) * len(c)
        return np.array(res).T

    def __call__(self, U: np.ndarray, steps: int) -> np.ndarray:
        """The gap-tooth step :math:`\\Phi(U)` over ``steps`` micro steps."""
        return self.burst(U, steps)[-1]

    def effective_coefficient(self, steps: int, gradient: float = 0.0) -> float:
        """:math:`a^{GT}`: the slope of the inner average over the last of ``steps`` micro steps
        of tooth 0 lifted with :math:`z^2/2 + ` ``gradient`` :math:`z` (:math:`c_2 = 1`;
        collective).  The exact homogenized evolution of these data has slope :math:`a^*`."""
        return self.tooth_slope(np.array([0.0, gradient, 1.0]), steps)

    def tooth_slope(self, c: np.ndarray, steps: int) -> float:
        """:math:`(\\mathcal R u_{steps} - \\mathcal R u_{steps-1})/\\delta t` of tooth 0 lifted
        with the quadratic ``c`` (collective; the same on every rank)."""
        res = self.pool.map_tasks(lambda t, _: self.tooth_burst(0, c, steps), 1)[0]
        return float((res[-1] - res[-2]) / self.dt)

    def box_average(self, f: Callable[[np.ndarray], np.ndarray], points: int = 64) -> np.ndarray:
        """Inner-region averages of ``f(x)`` around the coarse points (Gauss–Legendre): the
        coarse state of a given macro field."""
        s = self.settings
        xi, wq = np.polynomial.legendre.leggauss(points)
        x = s.centres[:, None] + 0.5 * s.tooth * xi[None, :]
        return 0.5 * (f(x) * wq).sum(axis=1)
