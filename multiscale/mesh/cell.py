r"""The periodic unit cell as a distributed mesh with named phases.

A *cell* (unit cell, representative volume element) is the axis-aligned box

.. math::

    Y = [a_1, b_1] \times \dots \times [a_d, b_d] \subset \mathbb{R}^d, \qquad d = 2, 3,

partitioned into phases :math:`Y = \bigcup_p Y_p`, each the union of the mesh cells carrying the
phase's tag.  :class:`CellMesh` bundles the dolfinx mesh, the cell tags, the phase names and the
box; everything but the mesh and tags (which are distributed) is the same on every rank.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

T = TypeVar("T")

__all__ = ["CellMesh", "UnknownPhaseError"]


class UnknownPhaseError(KeyError, ValueError):
    """A phase name the cell does not have (bad input: a ``ValueError`` too)."""

    def __str__(self) -> str:  # the message, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


@dataclass(slots=True)
class CellMesh:
    """A box-shaped cell mesh whose cells are tagged by phase.

    Attributes
    ----------
    mesh:
        The distributed mesh of the box :math:`Y`.
    cell_tags:
        Phase tag of every (owned and ghost) cell of ``mesh``.
    phases:
        Phase name -> tag, e.g. ``{"matrix": 1, "inclusion": 2}``; identical on all ranks.
    box:
        Array of shape ``(2, gdim)``: ``box[0]`` is the lower corner :math:`a`, ``box[1]`` the
        upper corner :math:`b`; identical on all ranks.
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    phases: dict[str, int]
    box: np.ndarray

    @property
    def dim(self) -> int:
        """Dimension :math:`d` of the cell (geometric dimension of the mesh)."""
        return int(self.mesh.geometry.dim)

    @property
    def lengths(self) -> np.ndarray:
        r"""Edge lengths :math:`\ell_i = b_i - a_i` of the box, shape ``(d,)``."""
        return np.asarray(self.box[1] - self.box[0], dtype=np.float64)

    @property
    def volume(self) -> float:
        r"""Volume :math:`|Y| = \prod_i (b_i - a_i)` of the box (area in 2D)."""
        return float(np.prod(self.lengths))

    @property
    def comm(self) -> MPI.Comm:
        """Communicator of the mesh."""
        return self.mesh.comm

    def tag(self, name_or_number: str | int) -> int:
        """The tag of a phase given by name (``"matrix"``) or by tag number (checked).

        Raises
        ------
        UnknownPhaseError
            No phase of that name (a ``KeyError`` and a ``ValueError``); the message lists the
            phases.
        ValueError
            No phase with that tag number, or an argument that is neither a name nor an integer.
        """
        if isinstance(name_or_number, str):
            try:
                return self.phases[name_or_number]
            except KeyError:
                raise UnknownPhaseError(
                    f"no phase named {name_or_number!r} in this cell; available phases: "
                    f"{self._describe_phases()}"
                ) from None
        if isinstance(name_or_number, numbers.Integral) and not isinstance(name_or_number, bool):
            number = int(name_or_number)
            if number not in self.phases.values():
                raise ValueError(
                    f"no phase with tag {number} in this cell; available phases: "
                    f"{self._describe_phases()}"
                )
            return number
        raise ValueError(
            f"a phase is given by its name (str) or tag (int), not {name_or_number!r}; "
            f"available phases: {self._describe_phases()}"
        )

    def by_tag(self, values: Mapping[str | int, T]) -> dict[int, T]:
        """``values`` keyed by phase name or tag, re-keyed by tag: one entry for every phase.

        Raises ``ValueError`` when a phase is given twice (by name and by tag) or is missing,
        naming it; an unknown phase raises as in :meth:`tag`.
        """
        out: dict[int, T] = {}
        for key, value in values.items():
            tag = self.tag(key)
            if tag in out:
                raise ValueError(f"phase {key!r} (tag {tag}) given twice")
            out[tag] = value
        missing = sorted(set(self.phases.values()) - set(out))
        if missing:
            names = [n for n, t in self.phases.items() if t in missing]
            raise ValueError(f"no material given for phase(s) {names} (tags {missing})")
        return out

    def piecewise_constant(self, values: Mapping[str | int, float]) -> dolfinx.fem.Function:
        """A DG0 function with the value ``values[phase]`` on the cells of each phase (owned and
        ghost cells; every phase needs a value, see :meth:`by_tag`)."""
        by_tag = self.by_tag(values)
        f = dolfinx.fem.Function(dolfinx.fem.functionspace(self.mesh, ("DG", 0)))
        for tag, value in by_tag.items():
            f.x.array[self.cell_tags.find(tag)] = float(value)
        return f

    def phase_volumes(self) -> dict[str, float]:
        r"""Volume :math:`|Y_p| = \int_{Y_p} 1\,dx` of each phase, summed over all ranks.

        Collective on ``mesh.comm``.  The integral is assembled once as the vector of cell volumes
        :math:`(\int_K v_K\,dx)_K` for the piecewise-constant basis :math:`v_K` and summed per tag
        over the owned cells.
        """
        mesh = self.mesh
        tdim = mesh.topology.dim
        num_owned = mesh.topology.index_map(tdim).size_local
        V = dolfinx.fem.functionspace(mesh, ("DG", 0))
        v = ufl.TestFunction(V)
        vec = dolfinx.fem.assemble_vector(dolfinx.fem.form(v * ufl.dx))
        dofs = np.asarray(V.dofmap.list).reshape(-1)
        cell_volume = np.real(vec.array[dofs[:num_owned]])

        tagged = self.cell_tags.indices < num_owned
        indices = self.cell_tags.indices[tagged]
        values = self.cell_tags.values[tagged]
        local = np.array(
            [cell_volume[indices[values == t]].sum() for t in self.phases.values()],
            dtype=np.float64,
        )
        total = np.zeros_like(local)
        mesh.comm.Allreduce(local, total, op=MPI.SUM)
        return {name: float(vol) for name, vol in zip(self.phases, total, strict=True)}

    def volume_fractions(self) -> dict[str, float]:
        """Realized volume fraction :math:`|Y_p| / |Y|` of each phase (collective)."""
        return {name: vol / self.volume for name, vol in self.phase_volumes().items()}

    def check_tagged(self) -> None:
        """``ValueError`` unless every cell of the mesh carries a phase tag (collective)."""
        mesh, tags = self.mesh, self.cell_tags
        nlocal = mesh.topology.index_map(mesh.topology.dim).size_local
        tagged = np.zeros(nlocal, dtype=bool)
        tagged[tags.indices[tags.indices < nlocal]] = True
        n_untagged = mesh.comm.allreduce(int(nlocal - tagged.sum()), op=MPI.SUM)
        if n_untagged:
            raise ValueError(
                f"{n_untagged} cells of the cell mesh carry no phase tag; every cell must "
                f"belong to one of the phases {sorted(self.phases)}"
            )

    def _describe_phases(self) -> str:
        if not self.phases:
            return "(none)"
        return ", ".join(f"{name!r}={tag}" for name, tag in self.phases.items())
