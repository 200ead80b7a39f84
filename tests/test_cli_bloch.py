"""``multiscale bloch``: the example's JSON against Rytov's relation (solved here with brentq) and
the harmonic-mean speed; bad input ends with exit status 2 and one line naming the key."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_config_is_one_line, shared_dir
from mpi4py import MPI
from scipy.optimize import brentq

from multiscale.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bloch_layered.yaml"


def _rytov_gap() -> tuple[float, float]:
    """The first gap of E 1 | 10, rho 1, layers 1/2: the first two roots of
    cos w/2 cos(w/(2 sqrt10)) - (1/2)(Z1/Z2 + Z2/Z1) sin sin = -1 (k a = pi)."""
    z = math.sqrt(10.0)

    def f(w: float) -> float:
        p1, p2 = w / 2, w / (2 * z)
        return math.cos(p1) * math.cos(p2) - 0.5 * (1 / z + z) * math.sin(p1) * math.sin(p2) + 1

    grid = np.linspace(0.1, 8.0, 8000)
    vals = np.array([f(w) for w in grid])
    idx = np.nonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))[0][:2]
    low, high = (brentq(f, grid[j], grid[j + 1], xtol=1e-14) for j in idx)
    return low, high


@pytest.mark.mpi
def test_bloch_example_matches_rytov(tmp_path):
    out = shared_dir(tmp_path) / "bloch.json"
    assert main(["-q", "bloch", str(EXAMPLE), "--json", str(out)]) == 0
    MPI.COMM_WORLD.barrier()
    data = json.loads(out.read_text())
    assert len(data["k"]) == 17 and len(data["frequencies"]) == 17
    assert all(len(f) == 4 for f in data["frequencies"])
    low, high = _rytov_gap()
    (g_low, g_high), *_ = data["gaps"]
    assert abs(g_low / low - 1) < 1e-4 and abs(g_high / high - 1) < 1e-4
    speed = 1.0 / math.sqrt(0.5 / 1.0 + 0.5 / 10.0)  # sqrt(E_harm / rho)
    assert abs(data["long_wave_speed"] / speed - 1) < 1e-7
    assert abs(data["homogenized_speeds"][0] / speed - 1) < 1e-12
    assert abs(data["long_wave_speed"] - 1.348400) < 1e-6


BAD = [
    (
        "missing density",
        "E: 10.0, rho: 1.0}",
        "E: 10.0}",
        "cell.layers[1]: the key 'rho' is required",
    ),
    ("unknown k-point", "points: [G, X]", "points: [G, K]", "path.points: unknown k-point 'K'"),
    (
        "negative thickness",
        "thickness: 0.5, E: 1.0",
        "thickness: -0.5, E: 1.0",
        "cell.layers[0].thickness: must be positive",
    ),
]


@pytest.mark.mpi
@pytest.mark.parametrize(("label", "old", "new", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bloch_bad_input(tmp_path, capsys, label, old, new, expected):
    assert_bad_config_is_one_line("bloch", EXAMPLE, tmp_path, capsys, (old, new), expected)
