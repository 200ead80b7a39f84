r"""Adaptive certified cell problems: SOLVE -> ESTIMATE -> MARK -> REFINE.

Each step runs :func:`~multiscale.cell.certify.certify` (primal and dual periodic solves, the
two-sided bounds :math:`A_{lo} \preceq A \preceq A_{up}` and the Prager–Synge indicators
:math:`\eta_K^2`), stops when the guaranteed relative error
:math:`\|A_{up} - A_{lo}\|_2/\|A_{up}\|_2 \le \mathrm{tol}`, and otherwise marks the smallest set
of cells with :math:`\sum_{K\in\mathcal M}\eta_K^2 \ge \theta\sum_K\eta_K^2` (Dörfler,
:func:`~multiscale.mesh.refine.dorfler_mark`) and refines them periodically
(:func:`~multiscale.mesh.refine.refine_periodic`).  Every step is collective on
``cell.comm``; the stopping test uses reduced values only, so all ranks stop together.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import NonPeriodicMeshError
from multiscale.mesh.refine import dorfler_mark, refine_periodic
from multiscale.nonlinear import unique_prefix
from multiscale.physics.base import Material

from .certify import CertificationError, CertifiedResult, certify

__all__ = ["AdaptiveResult", "AdaptiveStep", "adapt"]

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class AdaptiveStep:
    """One mesh of the loop: global primal dofs and cells, bounds and estimate."""

    ndofs: int
    ncells: int
    lower: np.ndarray | None
    upper: np.ndarray
    error_estimate: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "ndofs": self.ndofs,
            "ncells": self.ncells,
            "lower_bound": None if self.lower is None else self.lower.tolist(),
            "upper_bound": self.upper.tolist(),
            "error_estimate": self.error_estimate,
        }


@dataclass(slots=True, frozen=True)
class AdaptiveResult:
    """The history of :func:`adapt`, the last certified result and the last mesh."""

    steps: tuple[AdaptiveStep, ...]
    final: CertifiedResult
    cell: CellMesh
    converged: bool
    tol: float

    def to_dict(self) -> dict[str, Any]:
        out = self.final.to_dict()
        out["tol"] = self.tol
        out["converged"] = self.converged
        out["refinements"] = len(self.steps) - 1
        out["steps"] = [s.to_dict() for s in self.steps]
        return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(
    tol: float, theta: float, max_refinements: int, max_ndofs: int | None, on_limit: str
) -> None:
    if not (_is_number(tol) and tol > 0):
        raise ValueError(f"adapt: tol must be a positive number, got {tol!r}")
    if not (_is_number(theta) and 0 < theta <= 1):
        raise ValueError(f"adapt: theta must lie in (0, 1], got {theta!r}")
    if max_ndofs is not None and not (
        isinstance(max_ndofs, int) and not isinstance(max_ndofs, bool) and max_ndofs >= 1
    ):
        raise ValueError(f"adapt: max_ndofs must be None or an integer >= 1, got {max_ndofs!r}")
    if isinstance(max_refinements, bool) or not isinstance(max_refinements, int):
        raise ValueError(f"adapt: max_refinements must be an integer, got {max_refinements!r}")
    if max_refinements < 0:
        raise ValueError(f"adapt: max_refinements must be >= 0, got {max_refinements}")
    if on_limit not in ("raise", "warn"):
        raise ValueError(f"adapt: on_limit must be 'raise' or 'warn', got {on_limit!r}")


def adapt(
    cell: CellMesh,
    materials: Mapping[str | int, Material],
    tol: float,
    *,
    degree: int = 1,
    theta: float = 0.5,
    max_refinements: int = 30,
    max_ndofs: int | None = None,
    on_limit: str = "raise",
    petsc_options_prefix: str | None = None,
    petsc_options: Mapping[str, Any] | None = None,
    enrich: bool | str = False,
) -> AdaptiveResult:
    """Refine ``cell`` adaptively until ``error_estimate <= tol``.

    Stops early after ``max_refinements`` refinements or once the primal problem has at least
    ``max_ndofs`` dofs; then raises :class:`RuntimeError` (``on_limit="raise"``) or warns with
    :class:`RuntimeWarning` and returns the history with ``converged=False`` (``"warn"``).
    ``enrich`` is passed to :func:`~multiscale.cell.certify.certify` on every mesh (singular
    functions of the interior phase junctions; their cutoff radii follow each mesh).
    Collective on ``cell.comm``.
    """
    _check(tol, theta, max_refinements, max_ndofs, on_limit)
    prefix = petsc_options_prefix or unique_prefix("adapt")
    steps: list[AdaptiveStep] = []
    result = None
    reason = ""
    for n in range(max_refinements + 1):
        try:
            current = certify(
                cell,
                materials,
                degree=degree,
                petsc_options_prefix=f"{prefix}{n}_",
                petsc_options=petsc_options,
                enrich=enrich,
            )
        except CertificationError as err:  # raised on every rank together
            if result is None:
                raise
            reason = f"; refinement {n} stopped: {err}"
            break
        result, certified = current, cell
        steps.append(_step(cell, result))
        log.info("adapt step %d: %d dofs, estimate %.3e", n, result.ndofs, result.error_estimate)
        if result.error_estimate <= tol:
            return AdaptiveResult(tuple(steps), result, certified, True, float(tol))
        if n == max_refinements or (max_ndofs is not None and result.ndofs >= max_ndofs):
            break
        try:  # raised on every rank together; the certified steps so far stay valid
            cell = refine_periodic(cell, dorfler_mark(result.indicators, theta, cell.comm))
        except (RuntimeError, NonPeriodicMeshError) as err:
            reason = f"; refinement {n + 1} failed: {err}"
            break
    message = (
        f"adapt: error estimate {result.error_estimate:.3e} > tol {tol:.3e} after "
        f"{len(steps) - 1} refinements ({result.ndofs} dofs){reason}"
    )
    if on_limit == "raise":
        raise RuntimeError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    return AdaptiveResult(tuple(steps), result, certified, False, float(tol))


def _step(cell: CellMesh, result: CertifiedResult) -> AdaptiveStep:
    ncells = cell.mesh.topology.index_map(cell.dim).size_global
    return AdaptiveStep(
        result.ndofs, ncells, result.lower, result.upper.tensor, result.error_estimate
    )
