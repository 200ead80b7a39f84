"""``multiscale bases CONFIG``: MsFEM, MsFEM with oversampling, GMsFEM, LOD and (for a periodic
coefficient) FE-HMM on one problem, each against the fully resolved fine solution, with their
offline and online times, as JSON.

The problem is :math:`-\\nabla\\cdot(a\\nabla u) = f` on :math:`(0,1)^d` (:math:`d` = 1, 2 or 3),
:math:`u = 0` on the boundary, P1 on a uniform fine mesh nested in the uniform coarse mesh
(intervals, triangles or tetrahedra; :mod:`multiscale.bases`).  The configuration (see
``examples/bases.yaml``, ``examples/bases_channels.toml`` and ``examples/bases_image.yaml``)::

    mesh: {dim: 2, coarse_cells: 8, fine_cells: 64}   # per side: H = 1/8, h = 1/64
                                           # (fine_cells a multiple of coarse_cells)
    coefficient: {type: oscillatory, eps: 0.125}
        # oscillatory: Hou-Wu (2D) or 1/(2 - cos 2 pi x/eps) (1D), period eps (not 3D);
        # channels: {contrast, channels: 2, width: 1, margin: 2} (2D; width and margin in
        #   fine cells): channel_field, `channels` strips crossing every coarse neighbourhood;
        # inclusions: {contrast, size: 0.25} (2D): a square of side size*H in every coarse cell
        # image: {path: rock.png, values: {0: 1.0, 255: 1e4}, dataset: ..., axes: image}
        #   a cell-wise field: the image (PNG, TIFF, .npy/.npz, HDF5 `dataset`; 2D or 3D, as
        #   the mesh) stretched over the domain, each pixel value (a number or #rrggbb) mapped
        #   to its coefficient (every value in the image needs one; without `values`, the
        #   pixel values are the coefficient); axes: image (row 0 at the top) or xyz
        # random: {correlation_length: 0.1, sigma: 1.0, mean_log: 0.0, pixels: 64, seed: 0}
        #   the log-normal field exp(mean_log + sigma X), X Gaussian of unit variance and
        #   Gaussian covariance (lognormal_field) on `pixels` cells per side (default
        #   fine_cells), the same on every rank for a given seed
    source: 1.0                            # f
    fine_solver: amg                       # amg (CG + BoomerAMG) or direct (MUMPS Cholesky,
                                           # for high contrast)
    methods:                               # at least one; each with its parameters
      fine: {}                             # the reference itself: its norms and solve time
      msfem: {}
      msfem_oversampling: {layers: 1}      # oversampling layers of coarse elements
      gmsfem: {basis: 2, eigenpairs: 3}    # basis functions per coarse vertex, eigenpairs
                                           # computed (> basis; the first left out is Lambda*)
      lod: {layers: 2}                     # patch layers k
      hmm: {periods: 1, micro_cells: 8, coupling: periodic, cell_cells: 8}
                                           # FE-HMM on the coarse mesh (oscillatory only):
                                           # sampling domains of periods*eps with micro_cells
                                           # cells per side; cell_cells: the unit-cell mesh of
                                           # the homogenized reference (defaults: the fine
                                           # mesh's cells per period, eps * fine_cells, times
                                           # periods for micro_cells, so that the fine
                                           # solutions tend to that reference as eps -> 0)
    output: results/bases.json

The summary holds the problem (``mesh``, ``coefficient``, ``H``, ``h``, ``ranks``),
``fine_dofs`` (the interior fine dofs), ``assembly_s`` (the set-up every method shares and
none counts: the nested meshes with the fine dof table, the fine matrix and load, the element
matrices; split in ``assembly_parts_s`` as ``meshes``, ``fine_system`` and ``elements``, the
last two without the form compilation) and ``methods``, for each method:

* ``dofs``: the coarse unknowns (the interior fine dofs for ``fine``);
* ``errors``: relative, :math:`\\|u_h - u_H\\|_a/\\|u_h\\|_a` as ``energy`` and
  :math:`\\|u_h - u_H\\|_{L^2}/\\|u_h\\|_{L^2}` as ``L2`` (broken norms for the non-conforming
  oversampled MsFEM; GMsFEM adds the :math:`\\kappa`-weighted ``weighted_L2`` and
  ``lambda_star``, :math:`\\Lambda^* = \\min_i\\lambda_{i,L+1}`);
* ``offline_s``: local problems, coarse matrix and coarse solver set-up;
* ``online_s``: the coarse solve and the prolongation :math:`Pu_H`; ``iterations`` of the
  coarse solver.

The ``hmm`` entry (:mod:`multiscale.hmm`: one sampling domain
:math:`x_q + \\delta Y`, :math:`\\delta` = ``periods`` :math:`\\cdot\\,\\varepsilon`, at the
midpoint of every coarse element, snapped to the period lattice, with periodic or Dirichlet
coupling; the P1 macro problem on the coarse mesh) has the same
``errors`` (its macro solution :math:`u_H`, a coarse P1 function, is exactly a fine P1 function
on the nested fine mesh), ``offline_s`` (the micro problems) and ``online_s`` (the macro solve),
and ``homogenized``: the tensor ``A_hom`` of the unit-cell problem (``cell_cells`` per side)
and the relative ``L2`` and ``energy`` (:math:`A^{hom}`-weighted) errors of :math:`u_H` against
the homogenized solution :math:`u_0` on the fine mesh, with ``fine_L2``, the
:math:`L^2` distance :math:`\\|u_h - u_0\\|/\\|u_h\\|` of the fine solution from it (the
homogenization error, :math:`O(\\varepsilon)`).  HMM needs the period: it is refused for the
other coefficients.

The ``fine`` entry has errors 0, no offline phase, ``online_s`` its solve (CG + AMG set-up and
iterations, or the factorization) and the norms ``energy_norm`` (:math:`\\|u_h\\|_a`) and
``L2_norm``.  Times are wall seconds, the maximum over the ranks.  Unknown, missing and null
keys, wrong types and values out of range are errors naming the key
(:mod:`multiscale.config`); rank 0 writes the summary (:func:`multiscale.output.write_json`).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.cli.common import add_config_arguments
from multiscale.config import (
    ConfigError,
    Field,
    Integer,
    Number,
    Section,
    Spec,
    Table,
    Text,
    load,
)
from multiscale.output import write_json

__all__ = [
    "METHODS",
    "SCHEMA",
    "add_parser",
    "build_coefficient",
    "compare_methods",
    "load_config",
    "max_seconds",
    "periodic_coefficient",
    "run",
]

log = logging.getLogger(__name__)

#: The methods a configuration may list, in the order they run.
METHODS: tuple[str, ...] = ("fine", "msfem", "msfem_oversampling", "gmsfem", "lod", "hmm")

_COEFFICIENTS: dict[str, dict[str, Field]] = {
    "oscillatory": {"eps": Field(Number(positive=True), required=True)},
    "channels": {
        "contrast": Field(Number(positive=True), required=True),
        "channels": Field(Integer(min=1, max=100), default=2),
        "width": Field(Integer(min=1), default=1),
        "margin": Field(Integer(min=0), default=2),
    },
    "inclusions": {
        "contrast": Field(Number(positive=True), required=True),
        "size": Field(Number(positive=True, below=1.0), default=0.25),
    },
    "image": {
        "path": Field(Text(), required=True),
        "values": Field(Table(Number(positive=True), min_length=1)),
        "dataset": Field(Text()),
        "axes": Field(Text(("image", "xyz")), default="image"),
    },
    "random": {
        "correlation_length": Field(Number(positive=True), required=True),
        "sigma": Field(Number(min=0.0, max=10.0), default=1.0),
        "mean_log": Field(Number(), default=0.0),
        "pixels": Field(Integer(min=2)),
        "seed": Field(Integer(min=0), default=0),
    },
}

#: The coefficients that are two-dimensional only.
_PLANAR = ("channels", "inclusions")


@dataclass(frozen=True)
class CoefficientSpec(Spec):
    """A ``coefficient`` section: ``type`` and the parameters of that type."""

    what = "a mapping with 'type' and its parameters"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong_type(value, where)
        if "type" not in value:
            raise self.fail(where, "the key 'type' is required")
        kind = Text(tuple(_COEFFICIENTS)).check(value["type"], f"{where}.type")
        fields = {"type": Field(Text(tuple(_COEFFICIENTS))), **_COEFFICIENTS[kind]}
        return Section(fields).check(value, where)


def _methods_rule(data: dict[str, Any]) -> str | None:
    if not data:
        return f"give at least one method of {list(METHODS)}"
    gm = data.get("gmsfem")
    if gm is not None and gm["basis"] >= gm["eigenpairs"]:
        return (
            f"gmsfem.basis ({gm['basis']}) must be below gmsfem.eigenpairs "
            f"({gm['eigenpairs']}): the first eigenvalue left out is reported"
        )
    return None


#: The coupling conditions of the HMM sampling domains (:data:`multiscale.hmm.COUPLINGS`).
COUPLINGS = ("periodic", "dirichlet")

_LAYERS = Section({"layers": Field(Integer(min=0, max=50), default=1)})

#: The schema of the ``multiscale bases`` file (see the module docstring).
SCHEMA = Section(
    {
        "mesh": Field(
            Section(
                {
                    "dim": Field(Integer(min=1, max=3), default=2),
                    "coarse_cells": Field(Integer(min=2), required=True),
                    "fine_cells": Field(Integer(min=1), required=True),
                }
            ),
            required=True,
        ),
        "coefficient": Field(CoefficientSpec(), required=True),
        "source": Field(Number(), default=1.0),
        "fine_solver": Field(Text(("amg", "direct")), default="amg"),
        "methods": Field(
            Section(
                {
                    "fine": Field(Section({})),
                    "msfem": Field(Section({})),
                    "msfem_oversampling": Field(_LAYERS),
                    "gmsfem": Field(
                        Section(
                            {
                                "basis": Field(Integer(min=1, max=50), default=2),
                                "eigenpairs": Field(Integer(min=2, max=51), default=3),
                            }
                        )
                    ),
                    "lod": Field(Section({"layers": Field(Integer(min=0, max=50), default=2)})),
                    "hmm": Field(
                        Section(
                            {
                                "periods": Field(Integer(min=1, max=16), default=1),
                                "micro_cells": Field(Integer(min=2, max=256)),
                                "coupling": Field(Text(COUPLINGS), default="periodic"),
                                "cell_cells": Field(Integer(min=2, max=1024)),
                            }
                        )
                    ),
                },
                extra=_methods_rule,
            ),
            required=True,
        ),
        "output": Field(Text()),
    }
)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked configuration of ``path`` (YAML or TOML), defaults filled in; raises
    ``FileNotFoundError`` or :class:`~multiscale.config.ConfigError` naming the key.  Beyond
    the schema: the fine mesh must refine the coarse one, the high-contrast fields are 2D, a
    channel must fit its coarse row (``width < H/(channels+1)``), an inclusion must be at least
    a fine cell (``size * H >= h``) and the source must not be 0 (the errors are relative to
    the fine solution)."""
    data = load(path, SCHEMA)
    mesh, coef = data["mesh"], data["coefficient"]
    n_c, n_f = mesh["coarse_cells"], mesh["fine_cells"]
    if n_f % n_c:
        raise ConfigError(
            f"{path}: mesh.fine_cells: must be a multiple of mesh.coarse_cells = {n_c} "
            f"(the fine mesh refines the coarse one), got {n_f}"
        )
    if coef["type"] in _PLANAR and mesh["dim"] != 2:
        raise ConfigError(f"{path}: coefficient.type: {coef['type']!r} is two-dimensional")
    if coef["type"] == "oscillatory" and mesh["dim"] == 3:
        raise ConfigError(
            f"{path}: coefficient.type: 'oscillatory' is defined in 1D and 2D; in 3D give an "
            "image (a voxel array) or a random field"
        )
    if coef["type"] == "image":
        _check_image(coef, mesh, path)
    if coef["type"] == "channels":
        ratio = n_f // n_c
        if not coef["width"] * (coef["channels"] + 1) < ratio:
            raise ConfigError(
                f"{path}: coefficient.width: {coef['width']} fine cells do not fit "
                f"{coef['channels']} channels in a coarse row of {ratio} fine cells "
                "(need width * (channels + 1) < fine_cells / coarse_cells)"
            )
        if not 2 * coef["margin"] < n_f:
            raise ConfigError(f"{path}: coefficient.margin: must be below fine_cells / 2")
    if coef["type"] == "inclusions" and coef["size"] * (n_f // n_c) < 1:
        raise ConfigError(
            f"{path}: coefficient.size: an inclusion of {coef['size']} * H is smaller than a "
            f"fine cell ({n_f // n_c} per coarse cell; need size * fine_cells / coarse_cells >= 1)"
        )
    if data["source"] == 0:
        raise ConfigError(f"{path}: source: must not be 0 (the fine solution would vanish)")
    if "hmm" in data["methods"] and coef["type"] != "oscillatory":
        raise ConfigError(
            f"{path}: methods.hmm: HMM needs a periodic coefficient (coefficient.type: "
            f"oscillatory); {coef['type']!r} has no period"
        )
    return data


def _pixel_values(values: dict[str, float] | None, where: str) -> dict[float, float] | None:
    """The ``values`` table with its keys read as pixel values (numbers or ``#rrggbb``)."""
    from multiscale.cli.homogenize import _pixel_value

    if values is None:
        return None
    out: dict[float, float] = {}
    for key, value in values.items():
        try:
            out[_pixel_value(key, f"{where}.{key}")] = value
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return out


def _check_image(coef: dict[str, Any], mesh: dict[str, Any], path: str | Path) -> None:
    """Read the image of an ``image`` coefficient (on every rank) and check it against the
    mesh and the ``values`` mapping; warn when the pixels do not nest in the fine cells."""
    from multiscale.bases import image_field

    where = f"{path}: coefficient"
    try:
        field = image_field(
            coef["path"],
            _pixel_values(coef.get("values"), f"{where}.values"),
            dataset=coef.get("dataset"),
            axes=coef["axes"],
        )
    except ConfigError:
        raise
    except OSError as err:
        raise ConfigError(f"{where}.path: {err}") from None
    except ValueError as err:
        key = "values" if "pixel value" in str(err) or "coefficient values" in str(err) else "path"
        raise ConfigError(f"{where}.{key}: {err}") from None
    shape = field.values.shape
    if len(shape) != mesh["dim"]:
        raise ConfigError(
            f"{where}.path: a {len(shape)}D image of shape {shape} on a {mesh['dim']}D mesh "
            "(mesh.dim)"
        )
    if any(mesh["fine_cells"] % n for n in shape):
        log.warning(
            "the image's %s pixels do not divide the %d fine cells per side: each fine cell "
            "takes the pixel of its centroid",
            "x".join(map(str, shape)),
            mesh["fine_cells"],
        )


def build_coefficient(spec: dict[str, Any], dim: int, coarse_cells: int, fine_cells: int) -> Any:
    """The coefficient :math:`a` of a checked ``coefficient`` section, a
    :data:`~multiscale.bases.fine.Coefficient` (a function of the fine mesh).

    ``oscillatory``: in 2D the coefficient of Hou & Wu (1997),

    .. math::
        a = \\frac{2 + 1.8\\sin(2\\pi x/\\varepsilon)}{2 + 1.8\\cos(2\\pi y/\\varepsilon)}
          + \\frac{2 + \\sin(2\\pi y/\\varepsilon)}{2 + 1.8\\sin(2\\pi x/\\varepsilon)},

    in 1D :math:`a = (2 - \\cos 2\\pi x/\\varepsilon)^{-1}` (whose solution with :math:`f = 1`
    is known in closed form, :math:`a u' = C - x`).  ``channels`` and ``inclusions``: the
    high-contrast fields :func:`~multiscale.bases.channel_field` (width and margin in fine
    cells) and :func:`~multiscale.bases.inclusion_field`.  ``image``:
    :func:`~multiscale.bases.image_field`; ``random``: :func:`~multiscale.bases.lognormal_field`
    (``pixels`` per side, default ``fine_cells``)."""
    import ufl

    from multiscale.bases import (
        channel_field,
        hou_wu,
        image_field,
        inclusion_field,
        lognormal_field,
    )

    kind = spec["type"]
    if kind == "image":
        return image_field(
            spec["path"],
            _pixel_values(spec.get("values"), "coefficient.values"),
            dataset=spec.get("dataset"),
            axes=spec["axes"],
        )
    if kind == "random":
        return lognormal_field(
            spec.get("pixels", fine_cells),
            spec["correlation_length"],
            sigma=spec["sigma"],
            mean_log=spec["mean_log"],
            seed=spec["seed"],
            dim=dim,
        )
    if kind == "oscillatory":
        if dim == 1:
            omega = 2 * np.pi / spec["eps"]
            return lambda mesh: 1 / (2 - ufl.cos(omega * ufl.SpatialCoordinate(mesh)[0]))
        return hou_wu(spec["eps"])
    h = 1.0 / fine_cells
    if kind == "channels":
        return channel_field(
            coarse_cells,
            spec["channels"],
            spec["contrast"],
            width=spec["width"] * h,
            margin=spec["margin"] * h,
        )
    return inclusion_field(coarse_cells, spec["contrast"], size=spec["size"])


def max_seconds(comm: MPI.Comm, start: float) -> float:
    """Wall seconds since ``start``, the maximum over the ranks (collective)."""
    return float(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))


def _space_builder(name: str, params: dict[str, Any]) -> Callable[[Any], tuple[Any, dict]]:
    """A function of the fine problem that builds the method's coarse space (the offline
    phase) and returns it with the method's extra summary entries."""
    from multiscale.bases import (
        GMsFEMParameters,
        LODParameters,
        MsFEMParameters,
        gmsfem_basis,
        gmsfem_space,
        lod_space,
        msfem_space,
    )

    if name == "msfem":
        return lambda fine: (msfem_space(fine), {})
    if name == "msfem_oversampling":
        layers = params["layers"]
        return lambda fine: (msfem_space(fine, MsFEMParameters(layers)), {"layers": layers})
    if name == "lod":
        layers = params["layers"]
        return lambda fine: (lod_space(fine, LODParameters(layers)), {"layers": layers})

    def gmsfem(fine: Any) -> tuple[Any, dict]:
        basis = gmsfem_basis(fine, GMsFEMParameters(n_eigen=params["eigenpairs"]))
        extra = {
            "basis": params["basis"],
            "eigenpairs": params["eigenpairs"],
            "lambda_star": float(basis.lambda_star(params["basis"]).min()),
        }
        return gmsfem_space(fine, basis, params["basis"]), extra

    return gmsfem


def periodic_coefficient(dim: int) -> Any:
    """The ``oscillatory`` coefficient as a function of the fast variable alone, for the HMM
    (:class:`multiscale.hmm.Coefficient`, period 1 in :math:`y`): Hou–Wu
    (:func:`~multiscale.bases.hou_wu_cell`) in 2D, :math:`(2 - \\cos 2\\pi y)^{-1}` in 1D."""
    import ufl

    from multiscale.bases import hou_wu_cell
    from multiscale.hmm import Coefficient

    if dim == 1:
        return Coefficient(
            lambda x, y: 1 / (2 - ufl.cos(2 * np.pi * y[0])), 1, name="1/(2-cos)", x_dependent=False
        )
    return Coefficient(lambda x, y: hou_wu_cell(y), 2, name="hou_wu", x_dependent=False)


def _fine_vector(space: Any, values: np.ndarray, n_fine: int, comm: MPI.Comm) -> np.ndarray:
    """A P1 function on the fine mesh (``values`` on this rank's dofs of ``space``, a P1 space
    on that mesh) as the global dof vector on every rank."""
    imap = space.dofmap.index_map
    return np.concatenate(comm.allgather(values[: imap.size_local].copy()))[:n_fine]


def _p1_norms(space: Any, w: np.ndarray, tensor: np.ndarray) -> tuple[float, float]:
    """:math:`\\|w\\|_{L^2}` and :math:`(\\int A\\nabla w\\cdot\\nabla w)^{1/2}` of the fine P1
    function with global dof vector ``w``, :math:`A` the constant ``tensor`` (collective)."""
    import dolfinx
    import ufl

    fn = dolfinx.fem.Function(space)
    imap = space.dofmap.index_map
    fn.x.array[:] = w[imap.local_to_global(np.arange(imap.size_local + imap.num_ghosts))]
    a = ufl.as_matrix(tensor.tolist()) if tensor.ndim == 2 else float(tensor)
    grad = ufl.grad(fn)
    forms = (fn * fn * ufl.dx, ufl.inner(a * grad, grad) * ufl.dx)
    sums = [dolfinx.fem.assemble_scalar(dolfinx.fem.form(f)) for f in forms]
    l2, energy = space.mesh.comm.allreduce(np.array(sums), op=MPI.SUM)
    return float(np.sqrt(l2)), float(np.sqrt(energy))


def _run_hmm(
    cfg: dict[str, Any], comm: MPI.Comm, fine: Any, u: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """FE-HMM on the coarse mesh of ``fine.meshes`` (the ``hmm`` entry, without ``errors``)
    and its macro solution as a fine dof vector (collective)."""
    import dolfinx
    from scipy.spatial import cKDTree

    from multiscale import hmm

    mesh_cfg, params = cfg["mesh"], cfg["methods"]["hmm"]
    dim, n_c, eps = mesh_cfg["dim"], mesh_cfg["coarse_cells"], cfg["coefficient"]["eps"]
    nm = fine.meshes
    coef = periodic_coefficient(dim)
    per_period = max(2, round(eps * mesh_cfg["fine_cells"]))  # the fine mesh's, per side
    micro_cells = params.get("micro_cells") or per_period * params["periods"]
    cell_cells = params.get("cell_cells") or per_period
    if dim == 1:
        macro_mesh = dolfinx.mesh.create_unit_interval(comm, n_c)
    else:  # the triangles of unit_square_pair's coarse mesh
        macro_mesh = dolfinx.mesh.create_unit_square(
            comm, n_c, n_c, dolfinx.mesh.CellType.triangle, diagonal=dolfinx.mesh.DiagonalType.right
        )
    settings = hmm.MicroSettings(
        delta=params["periods"] * eps,
        eps=eps,
        n=micro_cells,
        coupling=params["coupling"],
        snap=True,  # the coefficient does not depend on x: only the period lattice matters
    )
    comm.Barrier()
    t0 = time.perf_counter()
    problem = hmm.HMMProblem(macro_mesh, coef, settings, f=cfg["source"])
    problem.effective_tensors()
    offline = max_seconds(comm, t0)
    t0 = time.perf_counter()
    u_macro = problem.solve()
    online = max_seconds(comm, t0)
    # the macro P1 function at the coarse vertices, then on the fine dofs (exact: nested)
    space = u_macro.function_space
    n_own = space.dofmap.index_map.size_local
    x = np.concatenate(comm.allgather(space.tabulate_dof_coordinates()[:n_own, :dim]))
    vals = np.concatenate(comm.allgather(u_macro.x.array[:n_own].copy()))
    dist, at = cKDTree(x).query(nm.vertices)
    if dist.max() > 1e-10:
        raise RuntimeError("the HMM macro mesh does not match the coarse mesh")
    u_vertices = vals[at]
    u_hmm = np.zeros(nm.n_fine)
    for k, el in enumerate(fine.elements):
        u_hmm[el.dofs] = el.lam @ u_vertices[nm.cells[k]]
    stats = problem.statistics()
    problem.destroy()
    # the homogenized reference: A_hom from the unit cell, u_0 on the fine mesh
    unit_cell = hmm.MicroSettings(1.0, 1.0, n=cell_cells)
    cell = hmm.SamplingProblem(MPI.COMM_SELF, coef, unit_cell)
    a_hom = comm.bcast(cell.effective_tensor(np.zeros(dim)) if comm.rank == 0 else None, root=0)
    cell.destroy()
    homogenized = hmm.MacroProblem(nm.fine, cfg["source"])
    u0_fn = homogenized.solve_homogenized(a_hom)
    v0 = homogenized.V
    if not np.array_equal(v0.tabulate_dof_coordinates(), nm.space.tabulate_dof_coordinates()):
        raise RuntimeError("the homogenized solution's P1 space is numbered differently")
    u0 = _fine_vector(v0, u0_fn.x.array, nm.n_fine, comm)
    norm_l2, norm_a = _p1_norms(nm.space, u0, a_hom)
    err_l2, err_a = _p1_norms(nm.space, u_hmm - u0, a_hom)
    fine_l2 = _p1_norms(nm.space, u - u0, a_hom)[0] / _p1_norms(nm.space, u, a_hom)[0]
    entry = {
        "dofs": int(nm.n_coarse),  # the interior vertices of the coarse mesh
        "offline_s": offline,
        "online_s": online,
        "iterations": 1,
        "periods": params["periods"],
        "micro_cells": micro_cells,
        "coupling": params["coupling"],
        "micro_problems": int(stats["quadrature_points"]),
        "micro_dofs": int(stats["micro_dofs"]),
        "homogenized": {
            "A_hom": np.asarray(a_hom).tolist(),
            "cell_cells": cell_cells,
            "errors": {"L2": err_l2 / norm_l2, "energy": err_a / norm_a},
            "fine_L2": fine_l2,
        },
    }
    return entry, u_hmm


def compare_methods(cfg: dict[str, Any], comm: MPI.Comm) -> dict[str, Any]:
    """Run the methods of a checked configuration on ``comm`` (collective) and return the
    summary (see the module docstring); identical on every rank."""
    from multiscale.bases import (
        FineProblem,
        NestedMeshes,
        gmsfem_errors,
        unit_cube_pair,
        unit_interval_pair,
        unit_square_pair,
    )
    from multiscale.nonlinear import direct_solver_options

    mesh, coef = cfg["mesh"], cfg["coefficient"]
    dim, n_c, n_f = mesh["dim"], mesh["coarse_cells"], mesh["fine_cells"]
    pair = {1: unit_interval_pair, 2: unit_square_pair, 3: unit_cube_pair}[dim]
    a = build_coefficient(coef, dim, n_c, n_f)
    if coef["type"] == "oscillatory" and coef["eps"] * n_f < 4:
        log.warning(
            "the fine mesh resolves eps = %g with %.1f cells per period (fewer than 4): the "
            "fine reference does not resolve the coefficient",
            coef["eps"],
            coef["eps"] * n_f,
        )
    options = direct_solver_options(symmetric=True) if cfg["fine_solver"] == "direct" else None
    t0 = time.perf_counter()
    meshes = NestedMeshes(*pair(comm, n_c, n_f // n_c))
    meshes_s = max_seconds(comm, t0)
    t0 = time.perf_counter()
    fine = FineProblem(meshes, a, cfg["source"], petsc_options=options)
    assembly = meshes_s + max_seconds(comm, t0)
    parts = {
        "meshes": meshes_s,
        "fine_system": float(comm.allreduce(fine.timings["system"], op=MPI.MAX)),
        "elements": float(comm.allreduce(fine.timings["elements"], op=MPI.MAX)),
    }
    n_dofs = int((~meshes.on_boundary).sum())
    t0 = time.perf_counter()
    u = fine.solve()
    fine_s = max_seconds(comm, t0)
    energy, l2 = fine.broken_norms(fine.restrict(u))
    log.info("fine: %d dofs, assembly %.2f s, solve %.2f s", n_dofs, assembly, fine_s)
    methods: dict[str, Any] = {}
    for name in METHODS:
        params = cfg["methods"].get(name)
        if params is None:
            continue
        if name == "fine":
            methods[name] = {
                "dofs": n_dofs,
                "errors": {"energy": 0.0, "L2": 0.0},
                "offline_s": 0.0,
                "online_s": fine_s,
                "energy_norm": energy,
                "L2_norm": l2,
            }
            continue
        if name == "hmm":
            entry, u_hmm = _run_hmm(cfg, comm, fine, u)
            ref = fine.restrict(u)
            diff = [r - w for r, w in zip(ref, fine.restrict(u_hmm), strict=True)]
            (e_a, e_m), (n_a, n_m) = fine.broken_norms(diff), fine.broken_norms(ref)
            errors = {"energy": e_a / n_a, "L2": e_m / n_m}
            methods[name] = {"errors": errors, **entry}
            log.info(
                "hmm: %d macro dofs, energy error %.4e, L2 error %.4e (vs homogenized %.4e), "
                "offline %.3f s, online %.4f s",
                entry["dofs"],
                errors["energy"],
                errors["L2"],
                entry["homogenized"]["errors"]["L2"],
                entry["offline_s"],
                entry["online_s"],
            )
            continue
        comm.Barrier()
        t0 = time.perf_counter()
        space, extra = _space_builder(name, params)(fine)
        space.ksp.setUp()
        offline = max_seconds(comm, t0)
        t0 = time.perf_counter()
        sol = space.solve()
        online = max_seconds(comm, t0)
        errors = gmsfem_errors(space, sol, u) if name == "gmsfem" else space.errors(sol, u)
        methods[name] = {
            "dofs": int(space.A_H.getSize()[0]),
            "errors": errors,
            "offline_s": offline,
            "online_s": online,
            "iterations": int(sol.iterations),
            **extra,
        }
        space.destroy()
        log.info(
            "%s: %d coarse dofs, energy error %.4e, L2 error %.4e, offline %.3f s, online %.4f s",
            name,
            methods[name]["dofs"],
            errors["energy"],
            errors["L2"],
            offline,
            online,
        )
    fine.destroy()
    return {
        "mesh": dict(mesh),
        "H": 1.0 / n_c,
        "h": 1.0 / n_f,
        "coefficient": dict(coef),
        "source": cfg["source"],
        "fine_solver": cfg["fine_solver"],
        "ranks": comm.size,
        "fine_dofs": n_dofs,
        "assembly_s": assembly,
        "assembly_parts_s": parts,
        "methods": methods,
    }


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bases",
        help="MsFEM, MsFEM with oversampling, GMsFEM, LOD and HMM against the fine solution",
        description="Build multiscale coarse spaces (MsFEM, oversampled MsFEM, GMsFEM, LOD; "
        "and FE-HMM for a periodic coefficient) "
        "for -div(a grad u) = f on the unit interval, square or cube (YAML or TOML configuration), "
        "and write their errors against the fine solution and their offline and online times "
        "as a JSON summary.",
    )
    return add_config_arguments(p)


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    t0 = time.perf_counter()
    cfg = load_config(args.config)
    summary = compare_methods(cfg, comm)
    summary["wall_time_s"] = max_seconds(comm, t0)
    out = args.json or (Path(cfg["output"]) if cfg.get("output") else None)
    if out is not None:
        write_json(out, summary, comm)
    return 0
