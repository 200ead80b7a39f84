"""``multiscale fe2 CONFIG``: a TOML run writes its fields and summary; bad configs fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cli import main
from multiscale.fe2.config import FE2Config, build_law
from multiscale.physics import IsotropicElasticity, J2Plasticity, NeoHookean

CONFIG = """
[macro]
mesh = {{ type = "rectangle", lengths = [1.0, 1.0], n = [2, 2] }}
degree = 1
bcs = [
  {{ boundary = "bottom", value = [0.0, 0.0] }},
  {{ boundary = "top", component = 1, value = 0.02 }},
]

[micro]
mesh = {{ type = "circular_inclusion", vf = 0.4, h = 0.15 }}
materials.matrix = {{ law = "j2", E = 1.0, nu = 0.3, sigma_y = 0.01, H = 0.1 }}
materials.inclusion = {{ law = "elastic", E = 10.0, nu = 0.3 }}

[loading]
factors = [0.5, 1.0, 0.5]

[output]
directory = "{out}"
summary = "run.json"
probes = [[0.5, 0.5]]
"""


def _shared(tmp_path: Path) -> Path:
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))


@pytest.mark.mpi
def test_fe2_cli_writes_summary_and_fields(tmp_path):
    base = _shared(tmp_path)
    cfg = base / "run.toml"
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(CONFIG.format(out=base / "out"))
    MPI.COMM_WORLD.barrier()
    assert main(["fe2", str(cfg)]) == 0
    out = base / "out"
    data = json.loads((out / "run.json").read_text())
    assert data["status"] == "ok"
    steps = data["steps"]
    assert [round(s["factor"], 12) for s in steps] == [0.5, 1.0, 0.5]
    assert data["load_boundary"] == {"name": "top", "component": 1}
    reaction = [s["reactions"]["top"][1] for s in steps]
    # plastic loading then partial unloading: the unloading branch is stiffer (elastic) and
    # lies below the loading one at the same displacement
    assert reaction[2] < reaction[0]
    assert all(s["quantities"]["max_hill_mandel"] < 1e-10 for s in steps)
    assert all(len(s["residuals"]) == s["iterations"] + 1 for s in steps)
    # the clamped bottom balances the top at every step (no body force): global equilibrium
    for s in steps:
        np.testing.assert_allclose(
            np.add(s["reactions"]["top"], s["reactions"]["bottom"]), 0.0, atol=1e-9
        )
    micro = data["micro"]
    assert len(micro["solves_per_rank"]) == MPI.COMM_WORLD.size
    assert micro["solves_total"] >= 2 * data["info"]["macro_gauss_points"]
    assert sum(micro["points_per_rank"]) == data["info"]["macro_gauss_points"]
    assert (out / "macro.xdmf").is_file() and (out / "rve_0.xdmf").is_file()
    assert sorted(Path(f).name for f in data["files"]) == ["macro.xdmf", "rve_0.xdmf"]
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


@pytest.mark.mpi
def test_fe2_cli_rejects_bad_config(tmp_path, capsys):
    base = _shared(tmp_path)
    cfg = base / "bad.toml"
    bad = CONFIG.format(out=base / "out").replace('law = "j2", E = 1.0', 'law = "j2", E = -1.0')
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(bad)
    MPI.COMM_WORLD.barrier()
    capsys.readouterr()
    assert main(["fe2", str(cfg)]) == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert "micro.materials.matrix: Young's modulus E must be a finite positive" in err, err
    missing = base / "nope.yaml"
    assert main(["fe2", str(missing)]) == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert err.strip() == f"error: configuration file '{missing}' does not exist", err
    assert not (base / "out").exists()  # nothing was written


def test_config_validation():
    with pytest.raises(ValueError, match=r"macro: unknown key\(s\) \['colour'\]"):
        FE2Config.from_dict({"macro": {"mesh": "a.msh", "bcs": [{}], "colour": 1}, "micro": {}})
    with pytest.raises(ValueError, match="macro: the key 'bcs' is required"):
        FE2Config.from_dict({"macro": {"mesh": "a.msh"}, "micro": {"mesh": "c", "materials": {}}})
    with pytest.raises(ValueError, match="loading: give either steps or factors, not both"):
        FE2Config.from_dict(
            {
                "macro": {"mesh": "a.msh", "bcs": [{"boundary": "top"}]},
                "micro": {"mesh": "c.msh", "materials": {"m": {"law": "elastic", "E": 1, "nu": 0}}},
                "loading": {"steps": 2, "factors": [1.0]},
            }
        )


def test_build_law():
    assert isinstance(build_law("m", {"law": "elastic", "E": 1.0, "nu": 0.3}), IsotropicElasticity)
    j2 = build_law("m", {"law": "j2", "E": 2.0, "nu": 0.25, "sigma_y": 0.1, "H": 0.2})
    assert isinstance(j2, J2Plasticity) and j2.H == 0.2
    nh = build_law("m", {"law": "neo_hookean", "lambda": 1.0, "mu": 0.5})
    assert isinstance(nh, NeoHookean) and nh.mu == 0.5
    with pytest.raises(ValueError, match="missing the parameter 'sigma_y'"):
        build_law("m", {"law": "j2", "E": 1.0, "nu": 0.3})
    with pytest.raises(ValueError, match="unknown law"):
        build_law("m", {"law": "plastic"})
    with pytest.raises(ValueError, match="unknown parameter"):
        build_law("m", {"law": "elastic", "E": 1.0, "nu": 0.3, "G": 3.0})
    with pytest.raises(ValueError, match="Young"):
        build_law("m", {"law": "elastic", "E": -1.0, "nu": 0.3})


THERMAL = """
[macro]
mesh = {{ type = "rectangle", lengths = [2.0, 1.0], n = [3, 2] }}
bcs = [
  {{ boundary = "left", component = 0, value = 0.0 }},
  {{ boundary = "right", component = 0, value = 0.0 }},
  {{ boundary = "bottom", component = 1, value = 0.0 }},
]
parameters = {{ theta = 40.0 }}

[micro]
mesh = "{cell}"
materials.phase0 = {{ law = "thermoelastic", lambda = 1.0, mu = 0.5, alpha = 3e-2 }}
materials.phase1 = {{ law = "thermoelastic", E = {E1}, nu = {nu1}, alpha = 1e-3 }}

[loading]
factors = [0.5, 1.0]

[output]
directory = "{out}"
fields = false
"""


@pytest.mark.mpi
def test_fe2_cli_thermal_load_on_a_laminate(tmp_path, capsys):
    """Layers heated by theta = 40 between rollers at x = 0 and x = 2, y free: a uniform state
    with sigma_xx = -(beta1 - C12 beta2 / C22) theta, so the reaction on the right side is that
    times the height 1, at each load factor (laminate constants in closed form)."""
    import test_fe2_thermal as thermal

    from multiscale.mesh import laminate

    base = _shared(tmp_path)
    cell = base / "layers.msh"
    laminate(MPI.COMM_WORLD, 2, thermal.FRACTIONS, h=0.1, path=cell)
    law1 = thermal.LAWS[1]  # given by E, nu in the file: the same Lame constants
    E1 = law1.mu * (3 * law1.lmbda + 2 * law1.mu) / (law1.lmbda + law1.mu)
    nu1 = law1.lmbda / (2 * (law1.lmbda + law1.mu))
    cfg = base / "thermal.toml"
    text = THERMAL.format(cell=cell, out=base / "out", E1=repr(E1), nu1=repr(nu1))
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(text)
    MPI.COMM_WORLD.barrier()
    assert main(["fe2", str(cfg)]) == 0
    data = json.loads((base / "out" / "summary.json").read_text())
    C, beta = thermal.laminate_constants()
    sxx = -(beta[0] - C[0, 1] * beta[1] / C[1, 1]) * 40.0
    for step in data["steps"]:
        right, left = step["reactions"]["right"][0], step["reactions"]["left"][0]
        assert right == pytest.approx(step["factor"] * sxx, rel=1e-10)
        assert left == pytest.approx(-right, rel=1e-10)
    assert data["info"]["parameters"] == ["theta"]
    # a parameter the laws do not take: one line, exit status 2, nothing written
    bad = base / "bad.toml"
    if MPI.COMM_WORLD.rank == 0:
        bad.write_text(text.replace("theta = 40.0", "T = 40.0").replace("/out", "/bad_out"))
    MPI.COMM_WORLD.barrier()
    capsys.readouterr()
    assert main(["fe2", str(bad)]) == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert "unknown macro parameter(s) ['T']; the micro laws take ['theta']" in err, err
        assert "Traceback" not in err
    assert not (base / "bad_out").exists()
