"""``multiscale homogenize``: effective tensor of a cell mesh under one boundary condition.

The cell is a gmsh ``.msh`` file or an image (PNG/TIFF, ``.npy``/``.npz``, HDF5) whose pixel
values label the phases (:mod:`multiscale.mesh.image`): ``--phase VALUE=NAME`` or ``--phases
FILE`` name them, otherwise they are ``phase0``, ``phase1``, ... in the order of the values.

Periodic conductivity and elasticity results carry an ``error_estimate``
(:func:`multiscale.cell.certify`): for conductivity (2D and 3D) the guaranteed relative gap of
the primal/dual bounds, written with ``lower_bound``/``upper_bound``; for elasticity the
degree-elevated estimate.  ``--tol REL`` refines the mesh adaptively, keeping it periodic, until
the estimate is below ``REL`` (:func:`multiscale.cell.adapt`; the JSON adds ``refinements`` and
the history).  ``--enrich on`` (or ``auto``) adds to the primal and dual spaces of a 2D
conductivity cell the singular functions of its interior phase junctions
(:mod:`multiscale.cell.enrich`): at high contrast, where refinement gains almost nothing near
a junction, ``--tol 0.01 --degree 2 --enrich on`` reaches 1 %; the JSON lists the junctions
under ``enrichment``.
``--physics stokes`` computes the permeability of the pore space: the one ``--material
TAG:mu=...`` names the fluid phase, every other phase is solid
(:class:`multiscale.cell.StokesCellProblem`).
``--physics thermoelastic`` (keys ``E,nu,alpha`` or ``lambda,mu,alpha``) runs the coupled cell
problem (:class:`multiscale.cell.coupled.CoupledCellProblem`) under any ``--bc``; the JSON adds
``effective`` with ``C``, ``beta`` and ``alpha`` (:meth:`ThermoElastic.effective`).
``--physics piezoelectric`` takes a poled phase by ``c11,c12,c13,c33,c44,e31,e33,e15,kappa11,
kappa33`` or an isotropic dielectric by ``E,nu,kappa``
(:class:`~multiscale.physics.coupled.PoledPiezoelectric`); the JSON adds ``effective`` with
``C``, ``e`` and ``kappa`` (:meth:`Piezoelectric.effective`).

The physics, its material keys, cell solver and macro quantities come from the registry
(:mod:`multiscale.physics.registry`): a physics added there with ``register`` runs here
unchanged.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.output import write_json
from multiscale.physics import registry
from multiscale.physics.registry import Physics

__all__ = ["add_parser", "parse_material", "parse_phase", "read_phase_mapping", "run"]

log = logging.getLogger(__name__)


def parse_material(spec: str, physics: str | Physics) -> tuple[str | int, object]:
    """Parse ``TAG:key=value[,key=value]`` into ``(tag, material)``.

    ``TAG`` is a physical-group name or number; the keys are those of the registered
    ``physics`` (:mod:`multiscale.physics.registry`), e.g. ``k`` (conductivity), ``E`` and
    ``nu`` or ``lambda`` and ``mu`` (elasticity), ``mu`` (stokes), ``E``, ``nu`` and ``alpha``
    (thermoelastic).
    """
    spec_physics = registry.get(physics)
    tag, sep, rest = spec.partition(":")
    if not sep or not tag or not rest:
        raise ValueError(f"material {spec!r} is not of the form TAG:key=value[,key=value]")
    values: dict[str, float] = {}
    for item in rest.split(","):
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"material {spec!r}: {item!r} is not key=value")
        try:
            values[key.strip()] = float(val)
        except ValueError:
            raise ValueError(f"material {spec!r}: {val!r} is not a number") from None
    key_tag: str | int = int(tag) if tag.lstrip("-").isdigit() else tag
    try:
        return key_tag, spec_physics.law(values)
    except ValueError as err:
        raise ValueError(f"material {spec!r}: {err}") from None


def _pixel_value(text: str, where: str) -> float:
    """A pixel value: a number, or a colour ``#rrggbb`` (as :func:`~multiscale.mesh.read_image`
    reads colour images: the integer :math:`2^{16}R + 2^8G + B`)."""
    text = str(text).strip()
    if text.startswith("#") and len(text) == 7:
        try:
            return float(int(text[1:], 16))
        except ValueError:
            pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a pixel value (a number or #rrggbb)") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{where}: {text!r} is not a finite pixel value")
    return value


def parse_phase(spec: str) -> tuple[float, str]:
    """Parse ``VALUE=NAME`` (``VALUE`` a number or ``#rrggbb``) into ``(value, name)``."""
    value, sep, name = spec.partition("=")
    if not sep or not value.strip() or not name.strip():
        raise ValueError(f"phase {spec!r} is not of the form VALUE=NAME")
    return _pixel_value(value, f"phase {spec!r}"), name.strip()


def read_phase_mapping(path: Path) -> dict[float, str]:
    """``{value: name}`` from a YAML/TOML file holding that mapping, at the top or under
    ``phases`` (TOML keys are strings: ``"255" = "inclusion"``)."""
    from multiscale.config import read_config

    data = read_config(path)
    if set(data) == {"phases"}:
        data = data["phases"]
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a mapping of pixel values to phase names")
    out: dict[float, str] = {}
    for key, name in data.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: phase of value {key!r} must be a name, got {name!r}")
        out[_pixel_value(key, f"{path}: key {key!r}")] = name
    return out


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "homogenize",
        help="effective tensor (conductivity, stiffness, permeability, thermoelastic, ...) of a "
        "cell mesh or an image",
        description="Solve the cell problems of a periodic cell mesh (gmsh .msh with phase "
        "physical groups) or of an image whose pixel values label phases (PNG, TIFF, .npy, "
        ".npz, HDF5; one element per pixel) and print the effective (PBC) or apparent (KUBC, "
        "SUBC) tensor.",
    )
    p.add_argument(
        "mesh",
        type=Path,
        metavar="MESH",
        help="gmsh .msh file of a box cell, or an image (.png, .tif, .npy, .npz, .h5)",
    )
    p.add_argument(
        "--physics",
        required=True,
        metavar="NAME",
        help=f"the cell physics, one of {', '.join(registry.names())}",
    )
    p.add_argument("--bc", choices=("periodic", "kubc", "subc"), default="periodic")
    p.add_argument(
        "--material",
        action="append",
        required=True,
        metavar="TAG:key=value[,key=value]",
        help="law of one phase, e.g. matrix:k=1 or inclusion:E=10,nu=0.3 (repeat per phase); "
        "stokes: only the fluid phase, e.g. pore:mu=1; keys: "
        + "; ".join(f"{name}: {registry.get(name).keys_text()}" for name in registry.names()),
    )
    p.add_argument(
        "--degree",
        type=int,
        help="Lagrange degree (default 1; stokes: the velocity degree of Taylor-Hood, default 2)",
    )
    p.add_argument(
        "--tol",
        type=float,
        metavar="REL",
        help="refine the mesh adaptively (periodic conductivity/elasticity) until the "
        "estimated relative error of the tensor is below REL",
    )
    p.add_argument(
        "--max-refinements",
        type=int,
        default=30,
        help="adaptive refinements at most, with --tol (default 30)",
    )
    p.add_argument(
        "--no-estimate",
        action="store_true",
        help="skip the error estimate (a dual or a degree-elevated solve) of periodic results",
    )
    p.add_argument(
        "--enrich",
        choices=("off", "auto", "on"),
        default="off",
        help="singular functions of the interior phase junctions in the certified spaces (2D "
        "isotropic conductivity): on, auto (where every phase is isotropic) or off (default)",
    )
    p.add_argument("--json", type=Path, help="write the result as JSON to this file")
    img = p.add_argument_group("image cells (MESH an image)")
    img.add_argument(
        "--phase",
        action="append",
        metavar="VALUE=NAME",
        help="name the pixels of VALUE (a number or #rrggbb), e.g. 0=matrix (repeat per value); "
        "default: the distinct values, sorted, are phase0, phase1, ...",
    )
    img.add_argument(
        "--phases", type=Path, metavar="FILE", help="the VALUE: NAME mapping in a YAML/TOML file"
    )
    img.add_argument(
        "--value-tol",
        type=float,
        help="greyscale tolerance: a pixel within it of a phase value belongs to that phase "
        "(default 0)",
    )
    img.add_argument("--dataset", help="array name in an .npz or HDF5 file (default: the only)")
    img.add_argument(
        "--pixel-size",
        type=float,
        nargs="+",
        metavar="H",
        help="pixel edge length (one, or one per axis x y [z]; default 1)",
    )
    img.add_argument(
        "--coarsen",
        type=int,
        help="one element per C^d pixels (majority phase; default 1: one per pixel)",
    )
    return p


#: The options that apply to images only (``None`` when not given).
_IMAGE_OPTIONS = {
    "phase": "--phase",
    "phases": "--phases",
    "value_tol": "--value-tol",
    "dataset": "--dataset",
    "pixel_size": "--pixel-size",
    "coarsen": "--coarsen",
}


def _image_cell(args: argparse.Namespace, comm) -> tuple[object, dict]:
    """The cell of an image and the JSON block describing it."""
    from multiscale.mesh import image_cell, load_phase_image

    mapping: dict[float, str] | None = None
    if args.phases is not None:
        mapping = read_phase_mapping(args.phases)
    if args.phase:
        mapping = dict(mapping or {})
        for spec in args.phase:
            value, name = parse_phase(spec)
            mapping[value] = name
    coarsen = 1 if args.coarsen is None else args.coarsen
    image = load_phase_image(
        comm,
        args.mesh,
        phases=mapping,
        tol=0.0 if args.value_tol is None else args.value_tol,
        dataset=args.dataset,
        pixel_size=args.pixel_size,
        coarsen=coarsen,
    )
    # KUBC and SUBC need no periodic image
    cell = image_cell(comm, image, check="periodic" if args.bc == "periodic" else "none")
    info = {
        "path": str(args.mesh),
        "pixels": [n * coarsen for n in image.shape],
        "elements": list(image.shape),
        "size": image.size.tolist(),
        "pixel_size": (image.pixel_size / coarsen).tolist(),
        "coarsen": coarsen,
        "phases": {name: image.values[name] for name in image.phases},
        "pixel_fractions": image.fractions,
        "seam_mismatch": [seam for seam, _ in image.periodicity()],
    }
    return cell, info


def _check_options(args: argparse.Namespace, physics: Physics) -> None:
    """One-line errors for option combinations that do not apply."""
    if args.tol is not None:
        if not (0.0 < args.tol < 1.0):
            raise ValueError(f"--tol must lie in (0, 1), got {args.tol!r}")
        if args.bc != "periodic" or not physics.certify:
            certified = [n for n in registry.names() if registry.get(n).certify]
            raise ValueError(f"--tol applies to periodic {' and '.join(certified)} cells")
        if args.no_estimate:
            raise ValueError("--tol needs the error estimate; drop --no-estimate")
    if args.max_refinements < 0:
        raise ValueError(f"--max-refinements must be >= 0, got {args.max_refinements}")
    if args.enrich != "off" and not (
        physics.enrich and args.bc == "periodic" and not args.no_estimate
    ):
        enrichable = [n for n in registry.names() if registry.get(n).enrich]
        raise ValueError(
            f"--enrich applies to the certified periodic {' and '.join(enrichable)} cells"
        )
    if args.bc not in physics.bcs:
        if physics.bcs == ("periodic",):
            raise ValueError(f"--physics {physics.name} solves the periodic cell problem only")
        raise ValueError(f"--physics {physics.name} takes --bc {'/'.join(physics.bcs)}")
    try:
        physics.check_phase_count(len(args.material), "--material")
    except ValueError as err:
        raise ValueError(f"--physics {err}") from None
    low = physics.min_degree
    if args.degree is not None and args.degree < low:
        raise ValueError(f"--degree must be >= {low} for {physics.name}, got {args.degree}")


def _read_cell(args: argparse.Namespace, comm) -> tuple[object, dict | None]:
    from multiscale.mesh import IMAGE_SUFFIXES, check_periodic, read_cell_mesh

    if args.mesh.suffix.lower() in IMAGE_SUFFIXES:
        return _image_cell(args, comm)
    given = [flag for key, flag in _IMAGE_OPTIONS.items() if getattr(args, key) is not None]
    if given:
        raise ValueError(
            f"{'/'.join(given)} appl{'ies' if len(given) == 1 else 'y'} to images; "
            f"{args.mesh} is a mesh file"
        )
    cell = read_cell_mesh(args.mesh, comm)
    check_periodic(cell)
    return cell, None


def _solve(
    args: argparse.Namespace, physics: Physics, cell, materials: dict
) -> tuple[object, dict]:
    """The result of the requested computation and its JSON summary."""
    degree = args.degree or physics.degree
    if not (physics.certify and args.bc == "periodic" and not args.no_estimate):
        result = physics.cell_problem(cell, materials, degree=degree).solve(args.bc)
        summary = result.to_dict()
        effective = physics.effective(result)
        summary["effective_tensor"] = np.asarray(effective["effective_tensor"]).tolist()
        extra = {k: v for k, v in effective.items() if k != "effective_tensor"}
        if extra:
            summary["effective"] = {k: np.asarray(v).tolist() for k, v in extra.items()}
        return result, summary
    from multiscale.cell import adapt, certify

    enrich = {"off": False, "auto": "auto", "on": True}[args.enrich]
    if args.tol is None:
        certified = certify(cell, materials, degree=degree, enrich=enrich)
        return certified.upper, certified.to_dict()
    adaptive = adapt(
        cell,
        materials,
        args.tol,
        degree=degree,
        max_refinements=args.max_refinements,
        on_limit="warn",
        enrich=enrich,
    )
    return adaptive.final.upper, adaptive.to_dict()


def run(args: argparse.Namespace, comm) -> int:
    t0 = time.perf_counter()
    physics = registry.get(args.physics)
    _check_options(args, physics)
    materials = dict(parse_material(s, physics) for s in args.material)
    cell, image_info = _read_cell(args, comm)
    result, summary = _solve(args, physics, cell, materials)
    summary["mesh"] = str(args.mesh)
    if image_info is not None:
        summary["image"] = image_info
    summary["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    with np.printoptions(precision=6, suppress=True):
        log.info(
            "%s %s tensor (%s):\n%s",
            args.bc,
            getattr(result, "physics", physics.name),
            getattr(result, "notation", "voigt"),
            result.tensor,
        )
    log.info("volume fractions: %s", result.volume_fractions)
    log.info("Hill-Mandel residual: %.3e", result.hill_mandel_residual)
    if "error_estimate" in summary:
        log.info("error estimate (relative): %.3e", summary["error_estimate"])
    if args.json is not None:
        write_json(args.json, summary, comm)
    if summary.get("converged") is False:
        log.error("--tol %g not reached: estimate %.3e", args.tol, summary["error_estimate"])
        return 1
    return 0
