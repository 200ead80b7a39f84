"""The macro solid shared by FE² and its DNS reference: displacement problems on a
:class:`~multiscale.mesh.macro.MacroMesh` driven by a load factor.

Find :math:`u` with

.. math::
    \\int_\\Omega q(u) : \\nabla v\\,dx = \\lambda \\int_{\\Gamma_N} \\bar t\\cdot v\\,ds
    \\quad\\forall v, \\qquad u_c = \\lambda\\,\\bar u_c \\text{ on } \\Gamma_{D},

for the load factors :math:`\\lambda` of a list, where :math:`q` is the stress (Cauchy at small
strain, first Piola at finite strain) that a subclass defines: the RVEs of FE², or the phase
laws of the DNS.  :class:`SolidProblem` owns the space, the loaded boundaries, the compiled forms
and a :class:`~multiscale.nonlinear.NewtonSolver`, and is a
:class:`~multiscale.nonlinear.SteppedProblem` (driven by a
:class:`~multiscale.nonlinear.LoadStepper`); a subclass adds its constitutive part in
:meth:`SolidProblem._init_constitutive`, its pointwise work in :meth:`~SolidProblem.on_iterate`
and its history in :meth:`~SolidProblem.commit` and :meth:`~SolidProblem.rollback`.

A :class:`DisplacementBC` prescribes :math:`u_c = \\lambda\\,\\bar u_c` on a named boundary, a
:class:`Traction` the traction :math:`\\lambda\\,\\bar t`; conditions of any other form (values
varying along the boundary, on part of a boundary, on a subspace of a mixed space) are dolfinx
Dirichlet conditions given at load factor 1 and scaled by :class:`ScaledConditions`.  The
reaction on a displacement boundary is the internal-force vector :math:`\\int_\\Omega q :
\\nabla\\phi_i\\,dx` summed over the boundary's dofs, per component (the components a
condition does not constrain are reported as zero).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.mesh.macro import MacroMesh
from multiscale.nonlinear import FormAssembly, SteppedProblem, StepRecord

__all__ = [
    "ComponentsBC",
    "DisplacementBC",
    "LoadedBoundaries",
    "ScaledConditions",
    "SolidProblem",
    "SolidResult",
    "Traction",
    "default_macro_options",
]

log = logging.getLogger(__name__)


def default_macro_options() -> dict[str, Any]:
    """Newton with full steps, residual tolerances ``snes_rtol 1e-9``, ``snes_atol 1e-11``, at
    most 20 iterations; MUMPS for the macro linear systems."""
    return {"snes_rtol": 1.0e-9, "snes_atol": 1.0e-11, "snes_max_it": 20}


@dataclass(slots=True, frozen=True)
class DisplacementBC:
    """:math:`u_c = \\lambda\\,` ``value`` on the boundary named ``boundary`` (component
    ``component``; all components when ``None``, ``value`` then a vector or a number for
    all)."""

    boundary: str
    value: float | tuple[float, ...] = 0.0
    component: int | None = None

    def __post_init__(self) -> None:
        v = np.atleast_1d(np.asarray(self.value, dtype=float))
        if not np.all(np.isfinite(v)):
            raise ValueError(f"displacement on {self.boundary!r} is not finite: {self.value!r}")
        if self.component is None and v.size == 1:
            object.__setattr__(self, "value", float(v[0]))
        elif self.component is None:
            object.__setattr__(self, "value", tuple(float(a) for a in v))
        else:
            if v.size != 1:
                raise ValueError(f"component {self.component} needs a scalar value")
            object.__setattr__(self, "value", float(v[0]))
            if int(self.component) < 0:
                raise ValueError(f"component must be >= 0, got {self.component}")


@dataclass(slots=True, frozen=True)
class ComponentsBC:
    r""":math:`w_c = \lambda\,` ``value[i]`` on ``boundary`` for the components
    ``c = components[i]`` of a space of several components (the fields of a multi-field
    problem, one after the other), its reactions recorded under ``label``."""

    boundary: str
    value: tuple[float, ...]
    components: tuple[int, ...]
    label: str


@dataclass(slots=True, frozen=True)
class Traction:
    """Traction :math:`\\lambda\\,\\bar t` on the boundary named ``boundary``."""

    boundary: str
    value: tuple[float, ...]

    def __post_init__(self) -> None:
        v = np.asarray(self.value, dtype=float).ravel()
        if not np.all(np.isfinite(v)):
            raise ValueError(f"traction on {self.boundary!r} is not finite: {self.value!r}")
        object.__setattr__(self, "value", tuple(float(a) for a in v))


def _component(V: dolfinx.fem.FunctionSpace, k: int) -> dolfinx.fem.FunctionSpace:
    """The component ``k`` of the vector space ``V``; ``V`` itself for one component (a bar:
    dolfinx has no sub-space of a blocked element of block size 1)."""
    return V if V.dofmap.index_map_bs == 1 else V.sub(k)


class LoadedBoundaries:
    """Dirichlet conditions of ``specs`` on ``V`` (vector Lagrange) whose values are the load
    factor times the values of the specs, and the reactions on them.

    ``labels`` name the conditions in reaction records: the boundary name, with ``[c]``
    appended where one boundary carries several conditions (a :class:`ComponentsBC` names
    itself).  A reaction lists every component of ``V``, zero where the condition does not
    constrain it.  Collective on the mesh communicator.  ``bcs`` is the list to pass to
    assembly.
    """

    def __init__(
        self,
        V: dolfinx.fem.FunctionSpace,
        macro: MacroMesh,
        specs: Sequence[DisplacementBC | ComponentsBC],
    ) -> None:
        mesh = V.mesh
        self.comm: MPI.Comm = mesh.comm
        d = self.dim = V.dofmap.index_map_bs  # the components (the dimension for displacements)
        self.specs = list(specs)
        names = [s.boundary for s in self.specs]
        self.labels = [
            s.label
            if isinstance(s, ComponentsBC)
            else s.boundary
            if names.count(s.boundary) == 1
            else f"{s.boundary}[{s.component}]"
            for s in self.specs
        ]
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"two conditions on one boundary and component: {self.labels}")
        self.bcs: list[dolfinx.fem.DirichletBC] = []
        self._values: list[tuple[Any, np.ndarray]] = []
        self._reaction_dofs: list[list[np.ndarray]] = []
        self._masks: list[np.ndarray] = []
        nowned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        fdim = mesh.topology.dim - 1
        for spec in self.specs:
            facets = macro.facets(spec.boundary)
            if self.comm.allreduce(len(facets), op=MPI.SUM) == 0:
                raise ValueError(f"boundary {spec.boundary!r} has no facets")
            if isinstance(spec, ComponentsBC):
                c, full = self._components(V, spec, facets)
            elif d == 1:
                # a bar: the value is a Function (dolfinx 0.9 and 0.11 differ in the rank of a
                # Constant they accept on a space of one component)
                if spec.component not in (None, 0):
                    raise ValueError(
                        f"component {spec.component} of the condition on {spec.boundary!r} is "
                        "out of range for a 1D problem"
                    )
                full = np.broadcast_to(np.asarray(spec.value, dtype=float), (1,)).copy()
                c = dolfinx.fem.Function(V)
                dofs = dolfinx.fem.locate_dofs_topological(V, fdim, facets)
                self.bcs.append(dolfinx.fem.dirichletbc(c, dofs))
                self._masks.append(np.ones(1))
            elif spec.component is None:
                full = np.broadcast_to(np.asarray(spec.value, dtype=float), (d,)).copy()
                c = dolfinx.fem.Constant(mesh, np.zeros(d))
                dofs = dolfinx.fem.locate_dofs_topological(V, fdim, facets)
                self.bcs.append(dolfinx.fem.dirichletbc(c, dofs, V))
                self._masks.append(np.ones(d))
            else:
                if not 0 <= spec.component < d:
                    raise ValueError(
                        f"component {spec.component} of the condition on {spec.boundary!r} is "
                        f"out of range for a {d}D problem"
                    )
                one = ComponentsBC(spec.boundary, (float(spec.value),), (spec.component,), "")
                c, full = self._components(V, one, facets)
            self._values.append((c, full))
            per_component = []
            for k in range(d):
                dk = np.asarray(dolfinx.fem.locate_dofs_topological(_component(V, k), fdim, facets))
                per_component.append(dk[dk < nowned])
            self._reaction_dofs.append(per_component)

    def _components(
        self, V: dolfinx.fem.FunctionSpace, spec: ComponentsBC, facets: np.ndarray
    ) -> tuple[list[dolfinx.fem.Constant], np.ndarray]:
        """One condition per component of ``spec`` (a constant each), and its mask."""
        d, fdim = self.dim, V.mesh.topology.dim - 1
        if not all(0 <= k < d for k in spec.components) or len(spec.value) != len(spec.components):
            raise ValueError(f"condition {spec.label!r}: components {spec.components} of {d}")
        constants = []
        for k in spec.components:
            c = dolfinx.fem.Constant(V.mesh, 0.0)
            Vk = V.sub(k)
            dofs = dolfinx.fem.locate_dofs_topological(Vk, fdim, facets)
            self.bcs.append(dolfinx.fem.dirichletbc(c, dofs, Vk))
            constants.append(c)
        self._masks.append(np.isin(np.arange(d), spec.components).astype(float))
        return constants, np.asarray(spec.value, dtype=float)

    def set_factor(self, factor: float) -> None:
        """Boundary values at load factor ``factor``."""
        for c, full in self._values:
            if isinstance(c, list):  # one constant per component (_components)
                for ck, value in zip(c, full, strict=True):
                    ck.value = float(factor) * value
            elif isinstance(c, dolfinx.fem.Function):
                c.x.array[:] = float(factor) * full[0]
            else:
                c.value = float(factor) * full

    def reactions(self, internal: PETSc.Vec) -> dict[str, list[float]]:
        """Per condition (by label), the sum of the assembled internal-force vector
        ``internal`` over the condition's boundary dofs, per constrained component (the others
        zero), reduced over ranks."""
        arr = internal.getArray()
        local = np.array([[arr[dk].sum() for dk in dofs] for dofs in self._reaction_dofs])
        total = self.comm.allreduce(local.reshape(len(self.specs), self.dim), op=MPI.SUM)
        return {
            label: (row * mask).tolist()
            for label, row, mask in zip(self.labels, total, self._masks, strict=True)
        }


class ScaledConditions:
    """Dirichlet conditions ``bcs`` whose values at load factor 1 are Functions (or zero
    constants), scaled by the load factor: :meth:`set_factor` makes every value
    :math:`\\lambda` times its value at factor 1.  ``bcs`` is the list to pass to assembly."""

    def __init__(self, bcs: Sequence[dolfinx.fem.DirichletBC]) -> None:
        self.bcs = list(bcs)
        self._values: list[tuple[Any, np.ndarray]] = []
        for bc in self.bcs:
            g = bc.g
            if hasattr(g, "x"):  # a Function: scale its values
                self._values.append((g, g.x.array.copy()))
            elif np.any(np.asarray(g.value) != 0.0):
                raise ValueError(
                    "a scaled Dirichlet condition needs its value as a Function (a non-zero "
                    "constant has no value at load factor 0)"
                )

    def set_factor(self, factor: float) -> None:
        """Boundary values at load factor ``factor``."""
        for g, full in self._values:
            g.x.array[:] = float(factor) * full


@dataclass(slots=True)
class SolidResult:
    """The converged steps (:class:`~multiscale.nonlinear.StepRecord`), the failed attempts,
    timings and problem facts of a run; ``status`` is ``"ok"``, ``"running"`` or
    ``"failed"`` (with ``error``)."""

    steps: list[StepRecord] = field(default_factory=list)
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    load_boundary: str = ""
    load_component: int = 0
    status: str = "running"
    error: str | None = None

    def curve(self, boundary: str | None = None, component: int | None = None) -> np.ndarray:
        """Columns: load factor and reaction on ``boundary`` (default: the loading one)."""
        b = boundary or self.load_boundary
        c = self.load_component if component is None else component
        return np.array([[s.factor, s.reactions[b][c]] for s in self.steps])

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            **({"error": self.error} if self.error else {}),
            "info": self.info,
            "load_boundary": {"name": self.load_boundary, "component": self.load_component},
            "steps": [s.to_dict() for s in self.steps],
            "failed_attempts": self.failed_attempts,
            "timings_s": self.timings,
        }


class SolidProblem(SteppedProblem):
    """A displacement problem on a macro mesh whose stress a subclass defines.

    Parameters
    ----------
    macro:
        The macro mesh with named boundaries.
    bcs, tractions:
        Boundary conditions at load factor 1.
    dirichlet:
        Called with the displacement space: further Dirichlet conditions at load factor 1,
        scaled by :class:`ScaledConditions` (at least one displacement condition in all).
    degree:
        Lagrange degree of the displacement.
    petsc_options_prefix, petsc_options:
        Prefix (default ``multiscale_<role>_<n>_``) and overrides of the Newton options
        (:func:`~multiscale.nonlinear.newton_options` with the subclass's ``defaults``).
    max_cuts, regrow_after:
        Of the :class:`~multiscale.nonlinear.LoadStepper`.

    Subclasses define :meth:`_init_constitutive` (returning the internal-force form and its
    Jacobian) and may override :meth:`on_iterate`, :meth:`commit`, :meth:`rollback` and
    :meth:`record`.  Collective on ``macro.mesh.comm``.
    """

    role = "solid"
    newton_name = "Newton"
    result_type: type[SolidResult] = SolidResult

    def __init__(
        self,
        macro: MacroMesh,
        *,
        bcs: Sequence[DisplacementBC],
        tractions: Sequence[Traction] = (),
        dirichlet: Callable[[dolfinx.fem.FunctionSpace], Sequence[Any]] | None = None,
        degree: int = 1,
        petsc_options_prefix: str | None = None,
        petsc_options: dict[str, Any] | None = None,
        defaults: dict[str, Any] | None = None,
        symmetric: bool = False,
        max_cuts: int = 6,
        regrow_after: int = 2,
    ) -> None:
        if not bcs and dirichlet is None:
            raise ValueError(f"the {self.role} problem needs at least one displacement condition")
        self.macro = macro
        self.comm: MPI.Comm = macro.mesh.comm
        self.dim = macro.mesh.geometry.dim
        self.degree = int(degree)
        self.result = self.result_type()
        self.on_step: Callable[[StepRecord], None] | None = None
        self._init_space()
        self._init_loads(bcs, tractions)
        self.scaled = ScaledConditions(dirichlet(self.V) if dirichlet is not None else [])
        internal, jacobian = self._init_constitutive()
        self._init_forms(internal, jacobian)
        self._init_solver(
            petsc_options_prefix, petsc_options, defaults, symmetric, max_cuts, regrow_after
        )

    # -- construction, in steps -------------------------------------------------------------------
    def _init_space(self) -> None:
        mesh, d = self.macro.mesh, self.dim
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", self.degree, (d,)))
        self.u = dolfinx.fem.Function(self.V, name="displacement")
        self.v = ufl.TestFunction(self.V)
        self.du = ufl.TrialFunction(self.V)

    def _init_loads(
        self, bcs: Sequence[DisplacementBC | ComponentsBC], tractions: Sequence[Traction]
    ) -> None:
        self.bc_specs = list(bcs)
        self.loads = LoadedBoundaries(self.V, self.macro, self.bc_specs)
        #: the condition whose reaction makes the load–displacement curve: the first one with a
        #: non-zero value, and its largest component
        k = next((i for i, b in enumerate(self.bc_specs) if np.any(np.asarray(b.value) != 0)), 0)
        if self.bc_specs:
            spec = self.bc_specs[k]
            self.result.load_boundary = self.loads.labels[k]
            if isinstance(spec, ComponentsBC):
                component = spec.components[int(np.argmax(np.abs(spec.value)))]
            elif spec.component is not None:
                component = spec.component
            else:
                component = int(np.argmax(np.abs(np.broadcast_to(spec.value, (self.dim,)))))
            self.result.load_component = component
        self._load = dolfinx.fem.Constant(self.macro.mesh, 0.0)
        ds = ufl.Measure("ds", domain=self.macro.mesh, subdomain_data=self.macro.facet_tags)
        self._external = 0
        for t in tractions:
            n = self.v.ufl_shape[0]  # the components of the unknown (all fields of a subclass)
            if len(t.value) != n:
                raise ValueError(f"traction on {t.boundary!r} needs {n} components")
            if t.boundary not in self.macro.boundaries:
                raise ValueError(
                    f"unknown boundary {t.boundary!r}; the mesh has {sorted(self.macro.boundaries)}"
                )
            tv = ufl.as_vector(list(t.value))
            self._external += (
                self._load * ufl.dot(tv, self.v) * ds(self.macro.boundaries[t.boundary])
            )

    def _init_constitutive(self) -> tuple[ufl.Form, ufl.Form]:
        """The internal-force form :math:`\\int q(u):\\nabla v` and its Jacobian."""
        raise NotImplementedError

    def _init_forms(self, internal: ufl.Form, jacobian: ufl.Form) -> None:
        self._F_internal = dolfinx.fem.form(internal)
        residual = internal - self._external if self._external != 0 else internal
        self._F = dolfinx.fem.form(residual)
        self._J = dolfinx.fem.form(jacobian)

    def _init_solver(
        self,
        prefix: str | None,
        petsc_options: dict[str, Any] | None,
        defaults: dict[str, Any] | None,
        symmetric: bool,
        max_cuts: int,
        regrow_after: int,
    ) -> None:
        self._init_stepping(
            FormAssembly(self._F, self._J, self.u, self.loads.bcs + self.scaled.bcs),
            petsc_options_prefix=prefix,
            petsc_options=petsc_options,
            defaults=defaults,
            symmetric=symmetric,
            max_cuts=max_cuts,
            regrow_after=regrow_after,
            on_step=self._on_step,
        )
        self._internal = self._own(self.newton.b.duplicate())
        self.result.steps = self.stepper.steps
        self.result.failed_attempts = self.stepper.failed_attempts

    # -- the Steppable protocol -------------------------------------------------------------------
    def set_load(self, factor: float) -> None:
        """Boundary values and tractions at load factor ``factor``."""
        self.factor = float(factor)
        self._load.value = self.factor
        self.loads.set_factor(self.factor)
        self.scaled.set_factor(self.factor)

    def record(self, step: StepRecord) -> None:
        """The reactions of the committed state and the force conjugate to the load factor
        (``quantities["load_conjugate"]``, see :meth:`load_conjugate`)."""
        step.reactions, step.quantities["load_conjugate"] = self._measure()

    # -- results ----------------------------------------------------------------------------------
    def reactions(self) -> dict[str, list[float]]:
        """Reaction force on each displacement boundary at the current state (by label)."""
        return self.loads.reactions(self._assemble_internal())

    def load_conjugate(self) -> float:
        """:math:`P = \\langle R(u), \\hat g\\rangle`: the internal-force vector :math:`R`
        at the current state against :math:`\\hat g`, the values of every Dirichlet condition at
        load factor 1 on their dofs (zero elsewhere); the rate of the work of the reactions per
        unit load factor, :math:`dW/d\\lambda`.  For a bar stretched by :math:`\\bar u` it is
        the force times :math:`\\bar u`; for a beam bent by end rotations the moment times the
        rotation; for a linear problem :math:`P(\\lambda) = 2\\Pi(1)\\lambda`.  Collective."""
        return self._measure()[1]

    def _assemble_internal(self) -> PETSc.Vec:
        r = self._internal
        with r.localForm() as r_local:
            r_local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(r, self._F_internal)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        return r

    def _measure(self) -> tuple[dict[str, list[float]], float]:
        """The reactions and the load conjugate from one assembly (collective)."""
        r = self._assemble_internal()
        return self.loads.reactions(r), float(r.dot(self._load_lifting()))

    def _load_lifting(self) -> PETSc.Vec:
        """:math:`\\hat g`: the Dirichlet values at load factor 1 on their dofs (built once)."""
        if getattr(self, "_lifting", None) is None:
            g = self._own(self._internal.duplicate())
            with g.localForm() as g_local:
                g_local.set(0.0)
            factor = getattr(self, "factor", 0.0)
            self.loads.set_factor(1.0)
            self.scaled.set_factor(1.0)
            dolfinx.fem.petsc.set_bc(g, self.loads.bcs + self.scaled.bcs)
            self.loads.set_factor(factor)
            self.scaled.set_factor(factor)
            self._lifting = g
        return self._lifting

    def restore(self, stepper_state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint (collective): ``u`` already holds the committed
        displacement (read by the caller); it becomes the committed one, the load is that of
        the committed factor, and the next :meth:`solve` resumes the load stepper from
        ``stepper_state`` (:meth:`LoadStepper.export_state
        <multiscale.nonlinear.LoadStepper.export_state>`), records included."""
        self.u.x.scatter_forward()
        self.u.x.petsc_vec.copy(self._committed)
        self.stepper.import_state(stepper_state)
        self.set_load(self.stepper.factor)

    def _on_step(self, step: StepRecord) -> None:
        if self.on_step is not None:
            self.on_step(step)

    def solve(self, factors: Sequence[float]) -> SolidResult:
        """Follow the load factors ``factors`` (e.g. ``np.linspace(0, 1, 11)[1:]``), cutting a
        failing step in half up to ``max_cuts`` times (collective).  Returns :attr:`result`,
        extended by each call; a :class:`~multiscale.nonlinear.LoadStepError` (on every rank)
        when a step cannot be completed, with :attr:`result` holding what was done and the
        error."""
        t0 = time.perf_counter()
        self.result.status = "running"
        try:
            self.stepper.run(factors)
        except Exception as err:
            self.result.status, self.result.error = "failed", str(err)
            raise
        seconds = self.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        self.result.timings["solve"] = self.result.timings.get("solve", 0.0) + seconds
        self.result.status = "ok"
        return self.result
