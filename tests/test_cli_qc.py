"""``multiscale qc``: the example chain against the full atomistic chain and the closed-form
QCE ghost force, and bad input ending with exit status 2 and one line naming the key.

Closed form: a chain with nearest and next-nearest bonds under a uniform stretch lambda, with
the energy-based coupling, has the ghost forces +-phi_2'(2 lambda a)/2 on the repatoms next to
the interface (the next-nearest bonds that cross it are counted half by the atoms and not at
all by the Cauchy-Born elements); for the harmonic spring phi_2' = k (2 lambda a - r0).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_bad_config_is_one_line, shared_dir
from mpi4py import MPI

from multiscale.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "qc_chain.yaml"


@pytest.mark.mpi
def test_qc_chain_example(tmp_path):
    out = shared_dir(tmp_path) / "qc.json"
    assert main(["-q", "qc", str(EXAMPLE), "--json", str(out)]) == 0
    MPI.COMM_WORLD.barrier()
    data = json.loads(out.read_text())
    a = data["lattice_constant"]
    assert a == pytest.approx(2 ** (1 / 6), rel=1e-12)
    k, r0, lam = 10.0, 2.244924096618746, 1.02
    assert data["max_ghost_force"] == pytest.approx(0.5 * k * (2 * lam * a - r0), rel=1e-10)
    assert abs(data["max_ghost_force_distance"] - 4.5) < 1.0  # at the interface, R = 4
    assert data["max_force"] < 1e-10
    assert data["energy"] is None  # QCF has no energy
    assert data["error_near_defect"] < 1e-4
    assert 0.0 <= data["energy_error"] < 1e-6
    assert data["atoms"] == 129 and data["repatoms"] < data["atoms"] / 3


BAD = [
    ("bad method", "method: qcf", "method: qcx", "method: must be one of"),
    ("coarse size and growth", "coarse_size: 8", "coarse_size: 8\n  growth: 2.0", "mesh: give"),
    ("region size of a 2D block", "size: [128]", "size: [128, 40]", "region.size"),
]


@pytest.mark.mpi
@pytest.mark.parametrize(("label", "old", "new", "expected"), BAD, ids=[b[0] for b in BAD])
def test_qc_bad_input(tmp_path, capsys, label, old, new, expected):
    assert_bad_config_is_one_line("qc", EXAMPLE, tmp_path, capsys, (old, new), expected)
