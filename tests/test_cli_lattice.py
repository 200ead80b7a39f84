"""``multiscale lattice``: the example configuration against the closed forms of LJ 12-6 on the
triangular lattice, and bad input ending with exit status 2 and one line naming the key.

Closed forms (two hexagonal shells of 6 bonds at 1 and sqrt3 lattice constants, sigma = 1):
relaxed constant a0^6 = 2 S12/S6 with S_k = 1 + 3^(-k/2); isotropic stretch loses convexity at
(13/7)^(1/6) and strong ellipticity at (19/10)^(1/6) (see tests/test_atomistic.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_checks import assert_bad_config_is_one_line, shared_dir
from mpi4py import MPI

from multiscale.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lattice_lj_triangular.yaml"


@pytest.mark.mpi
def test_lattice_example_matches_closed_forms(tmp_path):
    out = shared_dir(tmp_path) / "lattice.json"
    assert main(["-q", "lattice", str(EXAMPLE), "--json", str(out)]) == 0
    MPI.COMM_WORLD.barrier()
    data = json.loads(out.read_text())
    S12, S6 = 1 + 3.0**-6, 1 + 3.0**-3
    assert data["lattice_constant"] == pytest.approx((2 * S12 / S6) ** (1 / 6), rel=1e-12)
    assert data["atomic_volume"] == pytest.approx(
        math.sqrt(3) / 2 * data["lattice_constant"] ** 2, rel=1e-12
    )
    lam_c = (13 / 7) ** (1 / 6)
    assert abs(data["critical_stretch"] - lam_c) < 1e-6
    first = data["first_instability"]
    assert first["criterion"] == "convexity" and abs(first["lambda"] - lam_c) < 1e-6
    assert first["wave_vector"] is None
    crit = data["criteria"]
    assert abs(crit["ellipticity"]["lambda"] - (19 / 10) ** (1 / 6)) < 1e-6
    assert abs(crit["phonon"]["lambda"] - (19 / 10) ** (1 / 6)) < 1e-6
    assert len(crit["phonon"]["wave_vector"]) == 2


@pytest.mark.mpi
def test_lattice_morse_chain_general_path(tmp_path):
    """NN chain of a Morse potential (given lattice constant, general path F = 1 + lambda G):
    the stretch of the inflection of phi, r = r0 + ln 2 / alpha, closes the path; all three
    criteria fail there (1D)."""
    work = shared_dir(tmp_path)
    cfg, out = work / "chain.toml", work / "chain.json"
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(
            'shells = 1\n[lattice]\ntype = "chain"\nconstant = 1.0\n'
            '[potential]\ntype = "morse"\nD = 1.0\nalpha = 2.0\nr0 = 1.0\n'
            '[path]\ntype = "general"\nG = [[1.0]]\nrange = [0.0, 0.6]\npoints = 13\n'
        )
    MPI.COMM_WORLD.barrier()
    assert main(["-q", "lattice", str(cfg), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["lattice_constant"] == 1.0
    assert abs(data["critical_stretch"] - math.log(2.0) / 2.0) < 1e-9


BAD = [
    ("unknown key", "shells: 2\n", "shells: 2\nneighbors: 3\n", "unknown key(s) ['neighbors']"),
    ("negative sigma", "sigma: 1.0", "sigma: -1.0", "potential.sigma: must be positive"),
    ("missing epsilon", "  epsilon: 1.0\n", "", "potential: the key 'epsilon' is required"),
    ("both shells and cutoff", "shells: 2\n", "shells: 2\ncutoff: 2.0\n", "exactly one of"),
    ("bad lattice", "type: triangular", "type: hexagonal", "lattice.type: must be one of"),
    ("decreasing range", "range: [1.0, 1.2]", "range: [1.2, 1.0]", "path: range"),
    ("G for isotropic", "points: 21", "points: 21\n  G: [[1, 0], [0, 1]]", "G: give it"),
    ("G of the wrong size", "type: isotropic", "type: general\n  G: [[1.0]]", "path.G"),
]


@pytest.mark.mpi
@pytest.mark.parametrize(("label", "old", "new", "expected"), BAD, ids=[b[0] for b in BAD])
def test_lattice_bad_input(tmp_path, capsys, label, old, new, expected):
    assert_bad_config_is_one_line("lattice", EXAMPLE, tmp_path, capsys, (old, new), expected)
