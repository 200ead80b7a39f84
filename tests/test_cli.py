"""The command line: help, version, ``homogenize`` with JSON output, and clear input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from multiscale import __version__
from multiscale.bounds import hashin_shtrikman_elastic
from multiscale.cli import main
from multiscale.cli.homogenize import parse_material

MESHES = Path(__file__).resolve().parents[1] / "meshes"


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("mesh", "homogenize", "demo"):
        assert command in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def _shared_path(tmp_path: Path, name: str) -> Path:
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path / name), root=0))


@pytest.mark.mpi
def test_homogenize_writes_json(tmp_path):
    out = _shared_path(tmp_path, "result.json")
    rc = main(
        [
            "homogenize",
            str(MESHES / "inclusion2d_vf0.3.msh"),
            "--physics",
            "elasticity",
            "--bc",
            "periodic",
            "--material",
            "matrix:E=1,nu=0.3",
            "--material",
            "inclusion:lambda=5.769230769230769,mu=3.846153846153846",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    MPI.COMM_WORLD.barrier()
    data = json.loads(out.read_text())
    assert data["notation"] == "voigt" and data["bc"] == "periodic" and data["dim"] == 2
    assert data["hill_mandel_residual"] < 1e-10
    f = data["volume_fractions"]["inclusion"]
    assert abs(f - 0.3) < 0.01
    # the square array of disks lies inside the Hashin–Shtrikman bounds of its realized fraction
    # (2D bulk modulus lambda + mu: C11 + C12 = 2 kappa), and the inclusion's E 10 came through
    C = np.array(data["effective_tensor"])
    kappa = [1 / (2 * 1.3 * 0.4), 5.769230769230769 + 3.846153846153846]  # E/(2(1+nu)(1-2nu))
    mu = [1 / 2.6, 3.846153846153846]
    hs = hashin_shtrikman_elastic([1 - f, f], kappa, mu, 2)
    assert hs["bulk_lower"] < 0.5 * (C[0, 0] + C[0, 1]) < hs["bulk_upper"], (C, hs)
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize(
    ("spec", "physics", "match"),
    [
        ("matrix", "conductivity", "TAG:key=value"),
        ("matrix:k=-1", "conductivity", "positive"),
        ("matrix:E=1", "elasticity", "E,nu or lambda,mu"),
        ("matrix:k=abc", "conductivity", "not a number"),
        ("1:E=1,nu=0.7", "elasticity", "Poisson"),
    ],
)
def test_bad_material_specs(spec, physics, match):
    with pytest.raises(ValueError, match=match):
        parse_material(spec, physics)


def test_material_tag_by_number():
    tag, law = parse_material("2:k=3", "conductivity")
    assert tag == 2 and law.k == 3.0
