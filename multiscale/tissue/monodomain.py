r"""The monodomain model of cardiac tissue, stepped by a first-order IMEX scheme.

The transmembrane potential :math:`v` and the recovery variable :math:`w` of an ionic model
(:mod:`multiscale.physics.ionic`) satisfy, in :math:`\Omega` with no flux through
:math:`\partial\Omega`,

.. math::
    \chi C_m\,\partial_t v = \nabla\cdot(\sigma\nabla v) - \chi\,I_{ion}(v, w) + I_{stim},
    \qquad \partial_t w = g(v, w),

with :math:`\chi` the membrane area per volume, :math:`C_m` the membrane capacitance and
:math:`\sigma` a conductivity tensor: a constant matrix (a homogenized one, say), a UFL
expression, or one conductivity law per phase of a resolved microstructure.

Time stepping (semi-implicit Euler, "SBDF1"): diffusion implicit, reaction explicit and
pointwise on the degrees of freedom (the ionic current interpolated in the finite element
space):

.. math::
    (\chi C_m M + \Delta t\,K)\,v^{n+1} = M\big(\chi C_m v^n + \Delta t\,(-\chi I_{ion}(v^n, w^n)
    + I_{stim}(t^n))\big), \qquad w^{n+1} = w^n + \Delta t\,g(v^n, w^n),

with :math:`K` the stiffness matrix of :math:`\sigma` and :math:`M` the lumped (row-sum, the
default for P1) or consistent mass matrix.  The operator :math:`\chi C_m M + \Delta t K` is
assembled and factorized once (MUMPS Cholesky by default) and reused by every step; a step costs
one right-hand side (a pointwise product, or one mass-matrix product), one pair of triangular
solves and NumPy operations on the dof arrays.  Both errors are :math:`O(\Delta t)` in time.

Activation times are recorded per dof as the first upward crossing of a threshold
:math:`v_{th}`, linearly interpolated in time between the two steps that bracket it:
:math:`t_a = t^n + \Delta t\,(v_{th} - v^n)/(v^{n+1} - v^n)` (:class:`ActivationTimes`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.mesh.cell import CellMesh
from multiscale.nonlinear import PETScOwner, unique_prefix
from multiscale.petsc_options import prefixed_options
from multiscale.physics.base import Material, check_positive
from multiscale.physics.ionic import IonicModel

__all__ = [
    "ActivationTimes",
    "MonodomainSolver",
    "Stimulus",
    "conduction_velocity",
    "default_petsc_options",
]

log = logging.getLogger(__name__)

Region = Callable[[np.ndarray], np.ndarray]


def default_petsc_options() -> dict[str, Any]:
    """Sparse direct Cholesky (MUMPS) of the symmetric positive definite operator, factorized
    once for the whole run."""
    return {
        "ksp_type": "preonly",
        "pc_type": "cholesky",
        "pc_factor_mat_solver_type": "mumps",
    }


@dataclass(slots=True, frozen=True)
class Stimulus:
    r"""A current :math:`I_{stim} = ` ``amplitude`` (per volume) in ``region`` during
    :math:`[t_0, t_0 + \tau)` (``start``, ``duration``).  ``region(x)`` takes points of shape
    ``(3, n)`` and returns ``n`` booleans; it is evaluated at the dof coordinates."""

    region: Region
    amplitude: float
    start: float = 0.0
    duration: float = 1.0

    def __post_init__(self) -> None:
        if not callable(self.region):
            raise ValueError("stimulus region must be a callable x -> mask")
        amp = float(self.amplitude)
        if not np.isfinite(amp):
            raise ValueError(f"stimulus amplitude must be finite, got {self.amplitude!r}")
        object.__setattr__(self, "amplitude", amp)
        start = float(self.start)
        if not (np.isfinite(start) and start >= 0.0):
            raise ValueError(f"stimulus start must be finite and >= 0, got {self.start!r}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "duration", check_positive("stimulus duration", self.duration))

    def active(self, t: float) -> bool:
        return self.start <= t < self.start + self.duration


class ActivationTimes:
    r"""First upward crossing time of ``threshold`` at every dof of ``V``: a
    :class:`dolfinx.fem.Function` (:attr:`times`), NaN where the potential has not crossed yet.

    :meth:`update` with the potentials at :math:`t^n` and :math:`t^{n+1}` sets
    :math:`t_a = t^n + (t^{n+1} - t^n)(v_{th} - v^n)/(v^{n+1} - v^n)` at the dofs not yet
    activated with :math:`v^n < v_{th} \le v^{n+1}`: exact for a potential linear in time.  The
    arrays are the local ones (owned and ghost dofs); ghosts stay consistent if the potentials'
    ghosts are."""

    def __init__(self, V: dolfinx.fem.FunctionSpace, threshold: float) -> None:
        self.threshold = float(threshold)
        if not np.isfinite(self.threshold):
            raise ValueError(f"activation threshold must be finite, got {threshold!r}")
        self.times = dolfinx.fem.Function(V, name="activation_time")
        self.times.x.array[:] = np.nan
        imap = V.dofmap.index_map
        self._owned = imap.size_local * V.dofmap.index_map_bs
        self.comm: MPI.Comm = V.mesh.comm

    def update(self, v_old: np.ndarray, v_new: np.ndarray, t_old: float, t_new: float) -> None:
        ta = self.times.x.array
        th = self.threshold
        hit = np.isnan(ta) & (v_old < th) & (v_new >= th)
        if hit.any():
            ta[hit] = t_old + (t_new - t_old) * (th - v_old[hit]) / (v_new[hit] - v_old[hit])

    def fraction(self) -> float:
        """Fraction of the dofs activated (collective)."""
        owned = self.times.x.array[: self._owned]
        counts = self.comm.allreduce(
            np.array([np.count_nonzero(~np.isnan(owned)), owned.size]), op=MPI.SUM
        )
        return float(counts[0]) / float(counts[1])


class MonodomainSolver(PETScOwner):
    r"""The monodomain equation on ``domain`` with the ionic ``model`` (see the module text).

    Parameters
    ----------
    domain:
        A :class:`dolfinx.mesh.Mesh`, or a :class:`~multiscale.mesh.CellMesh` when
        ``conductivity`` gives one law per phase.
    conductivity:
        :math:`\sigma`: a number (isotropic), a ``d x d`` matrix (a homogenized tensor), a UFL
        expression (scalar or tensor, a DG0 field for instance), or a mapping phase name/tag ->
        conductivity law (:class:`~multiscale.physics.Conductivity`,
        :class:`~multiscale.physics.AnisotropicConductivity`) on a ``CellMesh``.
    model:
        The ionic model (:class:`~multiscale.physics.ionic.IonicModel`).
    dt:
        Time step.
    chi, capacitance:
        :math:`\chi` and :math:`C_m`.
    stimuli:
        Applied currents (:class:`Stimulus`).
    threshold:
        Activation threshold (default: the model's).
    lumped:
        Row-sum lumped mass (P1 only, the default) or the consistent one.
    degree:
        Lagrange degree.
    petsc_options_prefix, petsc_options:
        Options prefix of the KSP (default ``multiscale_monodomain_<n>_``) and overrides of
        :func:`default_petsc_options`.

    Collective on the mesh's communicator; free with :meth:`destroy` or a ``with`` block.
    """

    def __init__(
        self,
        domain: dolfinx.mesh.Mesh | CellMesh,
        conductivity: float | np.ndarray | ufl.core.expr.Expr | Mapping[str | int, Material],
        model: IonicModel,
        *,
        dt: float,
        chi: float = 1.0,
        capacitance: float = 1.0,
        stimuli: Sequence[Stimulus] = (),
        threshold: float | None = None,
        lumped: bool = True,
        degree: int = 1,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        mesh = domain.mesh if isinstance(domain, CellMesh) else domain
        self.mesh = mesh
        self.comm: MPI.Comm = mesh.comm
        if not isinstance(model, IonicModel):
            raise ValueError(f"{type(model).__name__} is not an ionic model")
        self.model = model
        self.dt = check_positive("time step dt", dt)
        self.chi = check_positive("membrane area per volume chi", chi)
        self.capacitance = check_positive("membrane capacitance", capacitance)
        if lumped and degree != 1:
            raise ValueError(
                "a lumped mass needs degree 1 (row sums of P2 masses are not positive)"
            )
        self.lumped = bool(lumped)
        self.stimuli = tuple(stimuli)
        if not all(isinstance(s, Stimulus) for s in self.stimuli):
            raise ValueError("stimuli must be Stimulus objects")
        self.prefix = petsc_options_prefix or unique_prefix("monodomain")
        self.options = {**default_petsc_options(), **(petsc_options or {})}

        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree))
        imap = self.V.dofmap.index_map
        self.n_owned = imap.size_local
        self.ndofs = imap.size_global
        u, q = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        stiffness = self._stiffness_form(domain, conductivity, u, q)

        v_rest, w_rest = model.rest
        self.v = dolfinx.fem.Function(self.V, name="v")
        self.v.x.array[:] = v_rest
        self.w = np.full(self.v.x.array.shape, float(w_rest))
        self.t = 0.0
        self.steps = 0
        self.activation = ActivationTimes(
            self.V, model.threshold if threshold is None else threshold
        )
        # stimulus masks at the local dofs (owned and ghosts)
        x = self.V.tabulate_dof_coordinates().T
        self._stim_masks = [np.asarray(s.region(x), dtype=bool) for s in self.stimuli]

        ccm = self.chi * self.capacitance
        dt_c = dolfinx.fem.Constant(mesh, self.dt)
        t0 = time.perf_counter()
        if self.lumped:
            a = dolfinx.fem.form(dt_c * stiffness)
            mass = dolfinx.fem.petsc.assemble_vector(dolfinx.fem.form(q * ufl.dx))
            mass.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
            self._mass_diag = self._own(mass)
            self._m = mass.getArray(readonly=True).copy()  # owned lumped masses
            A = self._own(dolfinx.fem.petsc.assemble_matrix(a))
            A.assemble()
            scaled = self._own(mass.copy())
            scaled.scale(ccm)
            A.setDiagonal(scaled, addv=PETSc.InsertMode.ADD_VALUES)
            A.assemble()
            self._M = None
        else:
            a = dolfinx.fem.form(ccm * u * q * ufl.dx + dt_c * stiffness)
            A = self._own(dolfinx.fem.petsc.assemble_matrix(a))
            A.assemble()
            M = self._own(dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(u * q * ufl.dx)))
            M.assemble()
            self._M = M
        self.A = A
        self._b = self._own(A.createVecRight())
        self._r = self._own(A.createVecRight()) if self._M is not None else None
        self._x = self._own(A.createVecRight())
        ksp = self._own(PETSc.KSP().create(self.comm))
        ksp.setOptionsPrefix(self.prefix)
        ksp.setOperators(A)
        with prefixed_options(self.prefix, self.options):
            ksp.setFromOptions()
            A.setOptionsPrefix(self.prefix)
            A.setFromOptions()
            ksp.setUp()
        self.ksp = ksp
        self.setup_time = self.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        self.solve_time = 0.0

    # -- forms -----------------------------------------------------------------------------
    @staticmethod
    def _stiffness_form(domain, conductivity, u, q) -> ufl.Form:
        if isinstance(conductivity, Mapping):
            if not isinstance(domain, CellMesh):
                raise ValueError("per-phase conductivity laws need a CellMesh domain")
            laws = domain.by_tag(conductivity)
            domain.check_tagged()
            dx = ufl.Measure("dx", domain=domain.mesh, subdomain_data=domain.cell_tags)
            return sum(
                ufl.inner(law.flux(ufl.grad(u)), ufl.grad(q)) * dx(tag) for tag, law in laws.items()
            )
        mesh = domain.mesh if isinstance(domain, CellMesh) else domain
        dim = mesh.geometry.dim
        if isinstance(conductivity, ufl.core.expr.Expr):
            sigma = conductivity
        else:
            s = np.asarray(conductivity, dtype=float)
            if s.ndim == 0:
                check_positive("conductivity", float(s))
                s = float(s) * np.eye(dim)
            if s.shape != (dim, dim) or not np.all(np.isfinite(s)):
                raise ValueError(f"conductivity must be a finite {dim}x{dim} matrix, got {s.shape}")
            if not np.allclose(s, s.T) or np.linalg.eigvalsh(s).min() <= 0.0:
                raise ValueError("conductivity tensor must be symmetric positive definite")
            sigma = ufl.as_matrix(s.tolist())
        flux = sigma * ufl.grad(u) if len(sigma.ufl_shape) == 0 else ufl.dot(sigma, ufl.grad(u))
        return ufl.inner(flux, ufl.grad(q)) * ufl.dx

    # -- stepping --------------------------------------------------------------------------
    def stimulus(self, t: float) -> np.ndarray | float:
        """:math:`I_{stim}(t)` at the local dofs."""
        out: np.ndarray | float = 0.0
        for s, mask in zip(self.stimuli, self._stim_masks, strict=True):
            if s.active(t):
                out = out + s.amplitude * mask
        return out

    def step(self) -> None:
        """One time step :math:`t^n \\to t^{n+1}` (collective)."""
        v = self.v.x.array
        v_old = v.copy()
        w = self.w
        ccm = self.chi * self.capacitance
        rhs = ccm * v - self.dt * self.chi * self.model.current(v, w)
        rhs = rhs + self.dt * self.stimulus(self.t)
        g = self.model.rate(v, w)
        n = self.n_owned
        if self._M is None:
            self._b.array[:] = self._m * rhs[:n]
        else:
            self._r.array[:] = rhs[:n]
            self._M.mult(self._r, self._b)
        t0 = time.perf_counter()
        self.ksp.solve(self._b, self._x)
        self.solve_time += time.perf_counter() - t0
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(
                f"monodomain solver {self.prefix!r}: KSP failed at t = {self.t:.6g} "
                f"(reason {reason})"
            )
        v[:n] = self._x.array_r
        self.v.x.scatter_forward()
        w += self.dt * g
        t_old = self.t
        self.steps += 1
        self.t = self.steps * self.dt
        self.activation.update(v_old, v, t_old, self.t)

    def run(
        self,
        t_end: float,
        *,
        until_activated: bool = False,
        check_every: int = 10,
        callback: Callable[[MonodomainSolver], None] | None = None,
    ) -> float:
        """Step until :math:`t \\ge` ``t_end`` (or, with ``until_activated``, until every dof
        has been activated, checked every ``check_every`` steps); ``callback(self)`` after each
        step.  Returns the time reached.  Collective; a ``RuntimeError`` on every rank if the
        potential stops being finite (checked every ``check_every`` steps)."""
        t0 = time.perf_counter()
        n_end = int(np.ceil(t_end / self.dt - 1e-9))
        while self.steps < n_end:
            self.step()
            if callback is not None:
                callback(self)
            if self.steps % check_every == 0:
                owned = self.v.x.array[: self.n_owned]
                if not self.comm.allreduce(bool(np.isfinite(owned).all()), op=MPI.LAND):
                    raise RuntimeError(
                        f"monodomain solver {self.prefix!r}: the potential is not finite at "
                        f"t = {self.t:.6g} (is dt = {self.dt:g} too large for the ionic model?)"
                    )
                if until_activated and self.activation.fraction() == 1.0:
                    break
        wall = self.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        log.info(
            "monodomain %s: %d dofs, t = %.4g after %d steps in %.2f s",
            self.prefix,
            self.ndofs,
            self.t,
            self.steps,
            wall,
        )
        return self.t

    @property
    def activation_times(self) -> dolfinx.fem.Function:
        """Activation times (NaN where not activated)."""
        return self.activation.times


def conduction_velocity(distance: np.ndarray, times: np.ndarray) -> float:
    r"""Conduction velocity from activation times :math:`t_i` at distances :math:`s_i` along a
    line: the inverse slope of the least-squares line :math:`t = t_0 + s/c`.  Raises
    ``ValueError`` if a time is missing (NaN) or the slope is not positive."""
    s = np.asarray(distance, dtype=float).ravel()
    t = np.asarray(times, dtype=float).ravel()
    if s.size != t.size or s.size < 2:
        raise ValueError("conduction_velocity needs two or more (distance, time) pairs")
    if not np.all(np.isfinite(t)):
        raise ValueError("conduction_velocity: some points were never activated")
    slope = np.polyfit(s, t, 1)[0]
    if slope <= 0.0:
        raise ValueError(f"activation times do not increase along the line (slope {slope:.3g})")
    return float(1.0 / slope)
