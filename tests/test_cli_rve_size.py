"""``multiscale rve-size``: YAML and TOML configurations, the JSON summary, input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cli import main
from multiscale.cli.rve_size import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rve_size.yaml"

TOML = """
sizes = [2.0, 4.0]
realizations = 3
seed = 4
[microstructure]
kind = "disks"
volume_fraction = 0.25
resolution = 4
fraction_tol = 0.005
[laws]
physics = "conductivity"
matrix = {k = 1.0}
inclusion = {k = 5.0}
[rve]
eps_rel = 0.05
gap_tol = 0.1
free_exponent = false
"""


def _shared(tmp_path: Path, name: str) -> Path:
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path / name), root=0))


def test_example_config_loads():
    config, criteria, output = load_config(EXAMPLE)
    assert config.sizes == (2.0, 4.0, 8.0, 16.0)
    assert config.realizations == (10, 10, 10, 10)
    assert criteria["eps_rel"] == 0.01 and output["json"].suffix == ".json"


@pytest.mark.mpi
def test_rve_size_toml_writes_json(tmp_path):
    cfg = _shared(tmp_path, "study.toml")
    out = _shared(tmp_path, "out/summary.json")
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(TOML)
    MPI.COMM_WORLD.Barrier()
    assert (
        main(["rve-size", str(cfg), "--json", str(out), "--plot", str(out.with_suffix(".png"))])
        == 0
    )
    data = json.loads(out.read_text())
    assert [s["size"] for s in data["sizes"]] == [2.0, 4.0]
    assert data["worst_energy_order"] >= -1e-10
    lo, hi = data["hashin_shtrikman"]
    for s in data["sizes"]:
        assert len(s["realizations"]) == 3
        assert lo <= s["statistics"]["periodic"]["mean"] <= hi
    # the integral range (exponent fixed to 1 by the config) and the RVE size, recomputed from
    # the realizations in the file: A3 = exp(mean log(V D^2(V) / (p (1-p) (z1-z2)^2)))
    props = [
        np.array([r["properties"]["periodic"] for r in s["realizations"]]) for s in data["sizes"]
    ]
    V = np.array([2.0, 4.0]) ** 2
    p = np.mean([r["volume_fraction"] for r in data["sizes"][-1]["realizations"]])
    d2 = p * (1 - p) * (5.0 - 1.0) ** 2
    A3 = np.exp(np.mean(np.log(V * np.array([np.var(z, ddof=1) for z in props]) / d2)))
    fit = data["rve"]["integral_range"]
    assert fit["integral_range"] == pytest.approx(A3, rel=1e-10)
    volume = A3 * d2 / (0.05 * np.mean(props[-1]) / 2) ** 2  # eps_rel 0.05, n = 1
    assert data["rve"]["rve_volume"] == pytest.approx(volume, rel=1e-10)
    assert data["rve"]["bc_gap"]["gap_exponent"] < 0
    assert out.with_suffix(".png").stat().st_size > 0
    assert not out.with_suffix(".json.tmp").exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "sizes: [2]\nlaws: {physics: conductivity, matrix: {k: 1}, inclusion: {k: 2}}\n",
            "the key 'microstructure' is required",
        ),
        (
            "microstructure: {kind: disks}\nlaws: {physics: conductivity, matrix: {k: 1}, "
            "inclusion: {k: 2}}\nsizes: [2]\ncolour: red\n",
            r"bad.yaml: unknown key\(s\) \['colour'\]; allowed: ",
        ),
        (
            "microstructure: {kind: disks, size: 3}\nlaws: {physics: conductivity, matrix: {k: 1}, "
            "inclusion: {k: 2}}\nsizes: [2]\n",
            r"microstructure: unknown key\(s\) \['size'\]",
        ),
    ],
)
def test_bad_config(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(path)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
