r"""Ensembles of statistical volume elements (SVEs): apparent tensors under KUBC, SUBC and PBC.

A window of size :math:`L` (in units :math:`u` of the inclusion diameter or of the correlation
length) cut from a random medium is a *statistical volume element*: its apparent tensor
:math:`Z_{bc}(\omega; L)` depends on the realization :math:`\omega` and on the boundary
condition.  For every realization the apparent tensors are ordered in the energy sense (Huet 1990;
Hazanov & Huet 1994),

.. math:: C^{SUBC}(\omega) \preceq C^{PBC}(\omega) \preceq C^{KUBC}(\omega),

and as :math:`L \to \infty` all three converge to the effective tensor while their scatter
vanishes.  :func:`run_ensemble` computes, for each size :math:`L_m` and realization
:math:`i = 0 \dots n-1`, the three apparent tensors of one microstructure drawn with the seed
:func:`realization_seed` ``(seed, m, i)``; the realizations are independent tasks distributed over
the ranks by :class:`~multiscale.coupling.pool.MicroPool` (each solved on ``COMM_SELF`` with
groups of one), and the results are gathered on every rank in task order, so the statistics do
not depend on the number of ranks.

The physics comes from the registry (:mod:`multiscale.physics.registry`): its cell solver, its
macro quantities and its scalar property.  For a scalar property :math:`Z` (the mean conductivity
:math:`\operatorname{tr}A/d`, the bulk modulus of the isotropic projection of :math:`C`, the
mean thermal expansion :math:`\operatorname{tr}\alpha^*/d`) the statistics per size and
boundary condition are the sample mean :math:`\bar Z`, the standard deviation :math:`D_Z` (with
:math:`n-1`), the coefficient of variation :math:`D_Z/\bar Z` and the Student-:math:`t`
confidence interval :math:`\bar Z \pm t_{n-1, (1+c)/2}\, D_Z/\sqrt n` (:func:`describe`).

References
----------
Huet, C. (1990). Application of variational concepts to size effects in elastic heterogeneous
    bodies. J. Mech. Phys. Solids 38, 813-841.
Kanit, T., Forest, S., Galliet, I., Mounoury, V. & Jeulin, D. (2003). Determination of the size of
    the representative volume element for random composites: statistical and numerical approach.
    Int. J. Solids Struct. 40, 3647-3679.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI
from scipy import stats

from multiscale.cell import certify
from multiscale.coupling.pool import MicroPool
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.random import (
    random_inclusion_cell,
    random_sequential_addition,
    thresholded_gaussian_field,
    voxel_cell,
)
from multiscale.physics import registry
from multiscale.physics.registry import Physics
from multiscale.progress import Progress
from multiscale.tensors import energy_order

__all__ = [
    "BCS_ORDER",
    "MICROSTRUCTURES",
    "EnsembleConfig",
    "EnsembleResult",
    "Microstructure",
    "PhaseLaw",
    "Realization",
    "Statistics",
    "build_realization",
    "cv_from_moments",
    "describe",
    "realization_seed",
    "run_ensemble",
    "sample_cv",
    "solve_realization",
]

_log = logging.getLogger(__name__)

#: The boundary conditions of an ensemble, from the softest to the stiffest.
BCS_ORDER: tuple[str, ...] = ("subc", "periodic", "kubc")

#: Microstructure kinds: RSA disks (2D), RSA spheres (3D), level-cut Gaussian field (2D or 3D).
MICROSTRUCTURES: tuple[str, ...] = ("disks", "spheres", "gaussian")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Microstructure:
    r"""How to draw one realization of the random medium in a window of size :math:`L u`.

    Attributes
    ----------
    kind:
        ``"disks"`` / ``"spheres"`` (random sequential addition, unit :math:`u` = mean diameter) or
        ``"gaussian"`` (level-cut Gaussian field, unit :math:`u` = correlation length
        :math:`\ell`).
    volume_fraction:
        Target inclusion fraction :math:`\phi`.
    dim:
        2 or 3 (fixed by ``kind`` for disks and spheres).
    resolution:
        Elements per unit: mesh size :math:`h = u/\text{resolution}` (RSA) or pixels per
        :math:`\ell` (Gaussian).
    gap:
        Minimum gap between inclusions, in units of the diameter (RSA).
    polydispersity:
        Relative half-width of the uniform radius distribution (RSA).
    fraction_tol:
        Largest accepted :math:`|\phi_h - \phi|` of a meshed realization.
    match_fraction:
        Re-mesh RSA cells once with radii scaled to remove the polygonal volume deficit.
    """

    kind: str = "disks"
    volume_fraction: float = 0.3
    dim: int = 2
    resolution: float = 8.0
    gap: float = 0.05
    polydispersity: float = 0.0
    fraction_tol: float = 0.01
    match_fraction: bool = True

    def __post_init__(self) -> None:
        if self.kind not in MICROSTRUCTURES:
            raise ValueError(f"unknown microstructure {self.kind!r}; expected {MICROSTRUCTURES}")
        dim = {"disks": 2, "spheres": 3}.get(self.kind, self.dim)
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim!r}")
        object.__setattr__(self, "dim", int(dim))
        if not 0.0 < self.volume_fraction < 1.0:
            raise ValueError(f"volume_fraction must lie in (0, 1), got {self.volume_fraction!r}")
        if not (math.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f"resolution must be positive, got {self.resolution!r}")
        if not (0.0 <= self.gap < 1.0):
            raise ValueError(f"gap (in diameters) must lie in [0, 1), got {self.gap!r}")
        if not 0.0 <= self.polydispersity < 1.0:
            raise ValueError(f"polydispersity must lie in [0, 1), got {self.polydispersity!r}")
        if not self.fraction_tol > 0:
            raise ValueError(f"fraction_tol must be positive, got {self.fraction_tol!r}")

    @property
    def unit(self) -> str:
        """What one length unit is."""
        return "correlation length" if self.kind == "gaussian" else "inclusion diameter"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True, frozen=True)
class PhaseLaw:
    """Phase laws of a two-phase medium of a registered physics
    (:mod:`multiscale.physics.registry`): ``matrix`` and ``inclusion`` map the physics' material
    keys to numbers, e.g. ``{"k": ...}`` (conductivity), ``{"E": ..., "nu": ...}``
    (elasticity), ``{"E": ..., "nu": ..., "alpha": ...}`` (thermoelastic).  The physics must
    have a scalar property (:attr:`~multiscale.physics.Physics.property_name`)."""

    physics: str
    matrix: Mapping[str, float]
    inclusion: Mapping[str, float]

    def __post_init__(self) -> None:
        spec = registry.get(self.physics)
        if not spec.has_property:
            ensembles = [n for n in registry.names() if registry.get(n).has_property]
            raise ValueError(
                f"physics {self.physics!r} has no scalar property for ensembles; use one of "
                f"{ensembles}"
            )
        for name in ("matrix", "inclusion"):
            law = getattr(self, name)
            if not isinstance(law, Mapping):
                raise ValueError(f"{self.physics}: the {name} law must be a mapping of keys")
            try:
                spec.law(law)  # validates the keys and the values
            except ValueError as err:
                raise ValueError(f"the {name} law: {err}") from None
            object.__setattr__(self, name, {k: float(v) for k, v in law.items()})

    @property
    def spec(self) -> Physics:
        """The registered :class:`~multiscale.physics.Physics`."""
        return registry.get(self.physics)

    def materials(self) -> dict[str, Any]:
        """``{"matrix": law, "inclusion": law}`` of the physics."""
        return self.spec.materials({"matrix": self.matrix, "inclusion": self.inclusion})

    @property
    def property_name(self) -> str:
        """The scalar property :func:`scalar_property` extracts."""
        return str(self.spec.property_name)

    @property
    def property_label(self) -> str:
        """A label of the scalar property (plots, tables)."""
        return str(self.spec.property_label or self.spec.property_name)

    def phase_values(self, dim: int) -> tuple[float, float]:
        """:math:`(Z_{matrix}, Z_{inclusion})`: the property of homogeneous cells of each phase
        (conductivities, bulk moduli, expansion coefficients)."""
        m = self.materials()
        return self.spec.phase_value(m["matrix"], dim), self.spec.phase_value(m["inclusion"], dim)

    def scalar_property(self, tensor: Any, dim: int) -> float:
        r"""The physics' scalar property of a result, its effective quantities or its main
        tensor: :math:`\operatorname{tr}A/d` (conductivity), the bulk modulus :math:`\kappa`
        of the isotropic projection of the Voigt stiffness (elasticity; 2D: the area bulk
        modulus), :math:`\operatorname{tr}\alpha^*/d` (thermoelastic)."""
        return self.spec.scalar_property(tensor, dim)

    def to_dict(self) -> dict[str, Any]:
        return {
            "physics": self.physics,
            "matrix": dict(self.matrix),
            "inclusion": dict(self.inclusion),
        }


@dataclass(slots=True, frozen=True)
class EnsembleConfig:
    """An SVE study: window sizes (in units), realizations per size, laws, microstructure.

    Attributes
    ----------
    microstructure, laws:
        What to draw and with which phase laws.
    sizes:
        Window edge lengths :math:`L_m` in units (increasing, positive).
    realizations:
        Realizations :math:`n \\ge 2` per size (one number for all sizes, or one per size).
    seed:
        Base seed; realization ``i`` of size ``m`` uses :func:`realization_seed`.
    bcs:
        Boundary conditions to solve (a subset of :data:`BCS_ORDER`).
    confidence:
        Level of the confidence intervals.
    error_estimate:
        ``"auto"`` (default), ``"on"`` or ``"off"``: give each periodic solve its
        :func:`~multiscale.cell.certify` error estimate.  ``auto`` does so where it costs one
        more solve of the same size and is a guaranteed bound (2D conductivity: the dual);
        ``on`` also for elasticity and 3D (a degree-elevated solve).
    """

    microstructure: Microstructure
    laws: PhaseLaw
    sizes: tuple[float, ...]
    realizations: tuple[int, ...] | int = 10
    seed: int = 0
    bcs: tuple[str, ...] = BCS_ORDER
    confidence: float = 0.95
    error_estimate: str = "auto"

    def __post_init__(self) -> None:
        if self.error_estimate not in ("auto", "on", "off"):
            raise ValueError(
                f"error_estimate must be 'auto', 'on' or 'off', got {self.error_estimate!r}"
            )
        sizes = tuple(float(s) for s in np.atleast_1d(np.asarray(self.sizes, dtype=float)))
        if not sizes or any(not (math.isfinite(s) and s > 0) for s in sizes):
            raise ValueError(f"sizes must be positive numbers, got {self.sizes!r}")
        if any(b <= a for a, b in itertools.pairwise(sizes)):
            raise ValueError(f"sizes must be strictly increasing, got {list(sizes)}")
        object.__setattr__(self, "sizes", sizes)
        n = self.realizations
        counts = (int(n),) * len(sizes) if np.isscalar(n) else tuple(int(v) for v in n)
        if len(counts) != len(sizes) or any(c < 2 for c in counts):
            raise ValueError(
                f"realizations must be an integer >= 2 or one per size ({len(sizes)}), got {n!r}"
            )
        object.__setattr__(self, "realizations", counts)
        bcs = tuple(self.bcs)
        if not bcs or any(b not in BCS_ORDER for b in bcs) or len(set(bcs)) != len(bcs):
            raise ValueError(f"bcs must be distinct entries of {BCS_ORDER}, got {self.bcs!r}")
        object.__setattr__(self, "bcs", tuple(b for b in BCS_ORDER if b in bcs))
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence!r}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if self.error_estimate == "on" and "periodic" in bcs and not self.laws.spec.certify:
            raise ValueError(
                f"error_estimate='on': {self.laws.physics} has no periodic error estimate; "
                "use 'auto' or 'off'"
            )

    def tasks(self) -> list[tuple[int, int]]:
        """``(size index, realization index)`` of every realization, largest windows first (the
        order of :meth:`MicroPool.map_tasks`, which balances better with the big ones first)."""
        return [
            (m, i) for m in reversed(range(len(self.sizes))) for i in range(self.realizations[m])
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "microstructure": self.microstructure.to_dict(),
            "laws": self.laws.to_dict(),
            "sizes": list(self.sizes),
            "realizations": list(self.realizations),
            "seed": self.seed,
            "bcs": list(self.bcs),
            "confidence": self.confidence,
            "error_estimate": self.error_estimate,
        }

    @property
    def estimates(self) -> bool:
        """Whether the periodic solves carry an error estimate."""
        if "periodic" not in self.bcs or self.error_estimate == "off":
            return False
        spec = self.laws.spec
        guaranteed = self.microstructure.dim in spec.estimate_auto_dims
        return spec.certify and (self.error_estimate == "on" or guaranteed)


def realization_seed(seed: int, size_index: int, realization: int) -> np.random.SeedSequence:
    """Independent seed of realization ``realization`` of size ``size_index`` (no rank in it)."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(int(size_index), int(realization)))


# --------------------------------------------------------------------------------------------
# One realization
# --------------------------------------------------------------------------------------------


def build_realization(
    comm: MPI.Comm, micro: Microstructure, size: float, seed: int | np.random.SeedSequence
) -> CellMesh:
    """Mesh of one realization of ``micro`` in the window :math:`[0, L]^d` (units of
    :attr:`Microstructure.unit`), checked against ``fraction_tol``.  Collective on ``comm``."""
    L = float(size)
    box = (L,) * micro.dim
    if micro.kind == "gaussian":
        pixels = max(2, round(L * micro.resolution))
        image = thresholded_gaussian_field(pixels, box, 1.0, micro.volume_fraction, seed=seed)
        cell = voxel_cell(comm, image)
    else:
        layout = random_sequential_addition(
            box,
            micro.volume_fraction,
            0.5,
            gap=micro.gap,
            polydispersity=micro.polydispersity,
            seed=seed,
        )
        cell = random_inclusion_cell(
            comm, layout, h=1.0 / micro.resolution, match_fraction=micro.match_fraction
        )
    achieved = cell.volume_fractions()["inclusion"]
    if abs(achieved - micro.volume_fraction) > micro.fraction_tol:
        raise ValueError(
            f"realized volume fraction {achieved:.5f} of a window of size {L:g} misses the target "
            f"{micro.volume_fraction:g} by more than fraction_tol={micro.fraction_tol:g}; refine "
            "the mesh (resolution) or the grid, or enlarge the window"
        )
    return cell


@dataclass(slots=True, frozen=True)
class Realization:
    """Apparent tensors of one realization (identical on every rank after gathering).

    ``order`` holds :func:`~multiscale.tensors.energy_order` of consecutive boundary conditions
    (``"subc<=periodic"``, ``"periodic<=kubc"``), relative to the spectral radius of the larger
    tensor; :math:`\\ge 0` up to round-off when the energy ordering holds.  ``tensors`` hold
    the main tensor of the physics (``"effective_tensor"``), ``effective`` its other macro
    quantities per boundary condition (empty for single-tensor physics; thermoelastic:
    ``C``, ``beta``, ``alpha``).
    """

    size_index: int
    index: int
    size: float
    seed: int
    volume_fraction: float
    tensors: dict[str, np.ndarray]
    properties: dict[str, float]
    order: dict[str, float]
    hill_mandel: float
    ndofs: int
    seconds: float
    error_estimate: float | None = None
    effective: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def solve_realization(
    config: EnsembleConfig, size_index: int, index: int, comm: MPI.Comm
) -> Realization:
    """Build and solve realization ``index`` of size ``size_index`` on ``comm`` (collective)."""
    t0 = time.perf_counter()
    ss = realization_seed(config.seed, size_index, index)
    size = config.sizes[size_index]
    micro = config.microstructure
    cell = build_realization(comm, micro, size, ss)
    prefix = f"multiscale_sve_{size_index}_{index}_"
    physics = config.laws.spec
    materials = config.laws.materials()
    problem = physics.cell_problem(cell, materials, petsc_options_prefix=prefix)
    tensors, properties, effective, hill, estimate = {}, {}, {}, 0.0, None
    for bc in config.bcs:
        if bc == "periodic" and config.estimates:
            certified = certify(cell, materials, petsc_options_prefix=f"{prefix}certify_")
            result, estimate = certified.upper, certified.error_estimate
        else:
            result = problem.solve(bc)
        eff = physics.effective(result)
        tensors[bc] = np.asarray(eff["effective_tensor"])
        properties[bc] = physics.scalar_property(eff, micro.dim)
        extra = {k: np.asarray(v) for k, v in eff.items() if k != "effective_tensor"}
        if extra:
            effective[bc] = extra
        hill = max(hill, result.hill_mandel_residual)
    order = {}
    for lo, hi in zip(config.bcs, config.bcs[1:], strict=False):
        scale = float(np.max(np.abs(np.linalg.eigvalsh(tensors[hi]))))
        order[f"{lo}<={hi}"] = energy_order(tensors[lo], tensors[hi]) / scale
    return Realization(
        size_index=size_index,
        index=index,
        size=size,
        seed=int(ss.generate_state(1, np.uint64)[0]),
        volume_fraction=cell.volume_fractions()["inclusion"],
        tensors=tensors,
        properties=properties,
        order=order,
        hill_mandel=hill,
        ndofs=int(getattr(problem, "ndofs", result.ndofs)),
        seconds=comm.allreduce(time.perf_counter() - t0, op=MPI.MAX),
        error_estimate=estimate,
        effective=effective,
    )


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Statistics:
    r"""Sample statistics of :math:`n` values: mean, standard deviation (:math:`n-1`), coefficient
    of variation, and the Student-:math:`t` confidence interval of the mean at ``confidence``."""

    n: int
    mean: float
    std: float
    cv: float
    ci_low: float
    ci_high: float
    confidence: float

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"statistics need at least 2 values, got {self.n}")

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__slots__}


def cv_from_moments(mean: np.ndarray | float, var: np.ndarray | float) -> np.ndarray:
    r"""Coefficient of variation :math:`\sqrt{s^2}/|\bar x|` elementwise (:math:`+\infty` where
    :math:`\bar x = 0`): the one formula of the CV, for one sample (:func:`sample_cv`,
    :func:`describe`) and for batches of bootstrap or jackknife moments
    (:mod:`~multiscale.ensemble.uncertainty`)."""
    mean = np.abs(np.asarray(mean, dtype=float))
    std = np.sqrt(np.asarray(var, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean > 0, std / np.where(mean > 0, mean, 1.0), np.inf)


def sample_cv(values: np.ndarray) -> np.ndarray:
    r"""Coefficient of variation along the last axis: :func:`cv_from_moments` of the sample
    mean and of :math:`s^2 = \sum_i (x_i - \bar x)^2/(n-1)`."""
    x = np.asarray(values, dtype=float)
    return cv_from_moments(x.mean(axis=-1), x.var(axis=-1, ddof=1))


def describe(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Statistics:
    r"""Statistics of ``values``: :math:`\bar x`, :math:`s = \sqrt{\sum(x_i-\bar x)^2/(n-1)}`,
    :math:`s/\bar x`, :math:`\bar x \pm t_{n-1,(1+c)/2}\,s/\sqrt n`."""
    x = np.asarray(values, dtype=float).reshape(-1)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"need at least 2 finite values, got {x.tolist()}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    mean = float(x.mean())
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 * (1.0 + confidence), x.size - 1)) * std / math.sqrt(x.size)
    cv = float(sample_cv(x))
    return Statistics(x.size, mean, std, cv, mean - half, mean + half, float(confidence))


@dataclass(slots=True)
class EnsembleResult:
    """All realizations of an :class:`EnsembleConfig` and their statistics per size and BC.

    ``realizations[m]`` lists the realizations of size ``config.sizes[m]`` in index order;
    ``statistics[m][bc]`` describes the scalar property, ``mean_tensor[m][bc]`` is the sample mean
    of the tensors.  Identical on every rank.
    """

    config: EnsembleConfig
    realizations: list[list[Realization]]
    statistics: list[dict[str, Statistics]] = field(default_factory=list)
    mean_tensor: list[dict[str, np.ndarray]] = field(default_factory=list)
    wall_time: float = 0.0
    ranks: int = 1

    def __post_init__(self) -> None:
        if len(self.realizations) != len(self.config.sizes):
            raise ValueError("one list of realizations per size is needed")
        c = self.config
        self.statistics = [
            {bc: describe([r.properties[bc] for r in reals], c.confidence) for bc in c.bcs}
            for reals in self.realizations
        ]
        self.mean_tensor = [
            {bc: np.mean([r.tensors[bc] for r in reals], axis=0) for bc in c.bcs}
            for reals in self.realizations
        ]

    @property
    def sizes(self) -> np.ndarray:
        return np.asarray(self.config.sizes)

    def series(self, bc: str, what: str = "mean") -> np.ndarray:
        """One statistic (``mean``, ``std``, ``cv``, ...) of one BC against the sizes."""
        return np.array([getattr(s[bc], what) for s in self.statistics])

    def volume_fraction_series(self) -> np.ndarray:
        """Mean realized volume fraction per size."""
        return np.array(
            [np.mean([r.volume_fraction for r in reals]) for reals in self.realizations]
        )

    def worst_order(self) -> float:
        """The most negative relative energy-order margin over all realizations (>= -1e-10
        when :math:`C^{SUBC} \\preceq C^{PBC} \\preceq C^{KUBC}` holds everywhere)."""
        margins = [v for reals in self.realizations for r in reals for v in r.order.values()]
        return float(min(margins)) if margins else math.inf

    def table(self) -> str:
        """A plain-text table of the statistics (one row per size)."""
        c = self.config
        head = f"{'L':>7} {'n':>4} " + " ".join(
            f"{bc + ' mean':>13} {'std':>9} {'CV':>8}" for bc in c.bcs
        )
        lines = [head]
        for m, size in enumerate(c.sizes):
            row = f"{size:7.3g} {c.realizations[m]:4d} "
            row += " ".join(
                f"{s.mean:13.6g} {s.std:9.3g} {s.cv:8.3g}"
                for s in (self.statistics[m][bc] for bc in c.bcs)
            )
            lines.append(row)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary: per size the statistics and the per-realization values."""
        out = []
        for m, reals in enumerate(self.realizations):
            out.append(
                {
                    "size": self.config.sizes[m],
                    "statistics": {bc: s.to_dict() for bc, s in self.statistics[m].items()},
                    "mean_tensor": {bc: t.tolist() for bc, t in self.mean_tensor[m].items()},
                    "max_error_estimate": _max_estimate(reals),
                    "realizations": [
                        {
                            "index": r.index,
                            "seed": r.seed,
                            "volume_fraction": r.volume_fraction,
                            "properties": r.properties,
                            "tensors": {bc: t.tolist() for bc, t in r.tensors.items()},
                            "energy_order": r.order,
                            "hill_mandel": r.hill_mandel,
                            "error_estimate": r.error_estimate,
                            "ndofs": r.ndofs,
                            "seconds": r.seconds,
                            **(
                                {
                                    "effective": {
                                        bc: {k: v.tolist() for k, v in eff.items()}
                                        for bc, eff in r.effective.items()
                                    }
                                }
                                if r.effective
                                else {}
                            ),
                        }
                        for r in reals
                    ],
                }
            )
        return {
            "config": self.config.to_dict(),
            "sizes": out,
            "worst_energy_order": self.worst_order(),
            "wall_time_s": self.wall_time,
            "ranks": self.ranks,
        }


def _max_estimate(realizations: Sequence[Realization]) -> float | None:
    """The largest error estimate of the periodic tensors of ``realizations`` (``None``
    without estimates)."""
    values = [r.error_estimate for r in realizations if r.error_estimate is not None]
    return max(values) if values else None


def run_ensemble(
    comm: MPI.Comm,
    config: EnsembleConfig,
    *,
    group_size: int = 1,
    previous: EnsembleResult | None = None,
) -> EnsembleResult:
    """Solve every realization of ``config``, distributed over the ranks of ``comm``.

    With ``previous`` (an ensemble of the same study with fewer realizations per size, e.g. the
    last batch of a precision-driven study), its realizations are kept and only the new ones
    are solved; since a realization depends on its seed only, the result equals a fresh run.

    The tasks of :meth:`EnsembleConfig.tasks` go through :meth:`MicroPool.map_tasks`: with
    ``group_size = 1`` each realization is meshed and solved on ``COMM_SELF`` of one rank, with
    larger groups on a sub-communicator of ``group_size`` ranks.  Every realization depends on its
    seed only, so the result is the same on any number of ranks.  Collective; the result is
    returned on every rank.
    """
    t0 = time.perf_counter()
    known: dict[tuple[int, int], Realization] = {}
    if previous is not None:
        a, b = previous.config.to_dict(), config.to_dict()
        a.pop("realizations"), b.pop("realizations")
        if a != b:
            raise ValueError("previous: an ensemble of another study cannot be extended")
        known = {
            (r.size_index, r.index): r
            for reals in previous.realizations
            for r in reals
            if r.index < config.realizations[r.size_index]
        }
    tasks = [t for t in config.tasks() if t not in known]
    pool = MicroPool(comm, group_size=group_size)
    share = len(pool.own_tasks(len(tasks)))
    progress = Progress(share, f"realizations on rank 0 (of {len(tasks)} in all)", comm)

    def on_done(t: int, r: Realization) -> None:
        if pool.micro_comm.rank == 0:
            size = config.sizes[r.size_index]
            progress.advance(f"L = {size:g}, PBC {r.properties.get('periodic', np.nan):.5g}")

    try:
        done = pool.map_tasks(
            lambda t, micro_comm: solve_realization(config, *tasks[t], micro_comm),
            len(tasks),
            on_done=on_done,
        )
        progress.close()
        pool.log_statistics("SVE realizations")
    finally:
        pool.destroy()
    realizations: list[list[Realization]] = [[] for _ in config.sizes]
    for r in sorted([*known.values(), *done], key=lambda r: (r.size_index, r.index)):
        realizations[r.size_index].append(r)
    wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    if previous is not None:
        wall += previous.wall_time
    result = EnsembleResult(config, realizations, wall_time=wall, ranks=comm.size)
    _log.debug("SVE ensemble (%d realizations, %.1f s):\n%s", len(tasks), wall, result.table())
    return result
