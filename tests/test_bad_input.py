"""Every subcommand, fed bad input, ends with exit status 2 and one line naming the problem.

The sweep runs the command line in process (``multiscale.cli.main``) on each input and checks
the exit status, that stderr is exactly one ``error: ...`` line on rank 0 (no traceback), and
that the line says what is wrong (a substring that names the key, the value or the file).  No
result file may appear.  Under MPI every rank sees the same error (the CLI agrees on it), so the
sweep also runs on 2 and 3 ranks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mpi4py import MPI

from multiscale.cli import main

MESHES = Path(__file__).resolve().parents[1] / "meshes"
CELL = str(MESHES / "inclusion2d_vf0.3.msh")

FE2 = """\
macro:
  mesh: {type: rectangle, lengths: [1, 1], n: [1, 1]}
  bcs:
    - {boundary: bottom, value: [0, 0]}
    - {boundary: top, component: 1, value: 0.01}
micro:
  mesh: MESH
  materials:
    matrix: {law: j2, E: 1.0, nu: 0.3, sigma_y: 0.01, H: 0.1}
    inclusion: {law: elastic, E: 10.0, nu: 0.3}
loading: {steps: 1}
output: {directory: OUT}
"""

HMM = """\
dim: 2
eps: 0.25
coefficient: {type: laminate, k1: 1, k2: 4}
macro: {n: 4}
micro: {n: 4, snap: true}
output: OUT/hmm.json
"""

RVE = """\
microstructure: {kind: disks, volume_fraction: 0.3, resolution: 3}
laws: {physics: conductivity, matrix: {k: 1}, inclusion: {k: 10}}
sizes: [2, 3]
realizations: 2
output: {json: OUT/rve.json}
"""


def fe2(text: str) -> tuple[str, str]:
    return "fe2.yaml", text


def rve(text: str) -> tuple[str, str]:
    return "rve.yaml", text


def hmm(text: str) -> tuple[str, str]:
    return "hmm.yaml", text


#: (label, command line with {dir} for the work folder, files to write, expected message part)
CASES = [
    # multiscale mesh
    ("mesh: fraction >= 1", ["mesh", "sphere", "--vf", "1.2"], [],
     "volume fraction of a sphere in the unit cube must lie in (0, 0.523599)"),
    ("mesh: fractions not summing to 1",
     ["mesh", "laminate", "--fractions", "0.3", "0.3"], [],
     "fractions must sum to 1, they sum to 0.6"),
    ("mesh: negative size", ["mesh", "inclusion2d", "--h", "-0.1"], [],
     "mesh size h must be a positive number, got -0.1"),
    ("mesh: odd checkerboard", ["mesh", "checkerboard", "--n", "3"], [],
     "n must be an even integer >= 2"),
    # multiscale homogenize
    ("homogenize: no such mesh",
     ["homogenize", "{dir}/none.msh", "--physics", "conductivity", "--material", "matrix:k=1"],
     [], "no gmsh mesh file"),
    ("homogenize: not a mesh file",
     ["homogenize", "{dir}/junk.msh", "--physics", "conductivity", "--material", "matrix:k=1"],
     [("junk.msh", "this is not gmsh\n")], "junk.msh', line 1: syntax error"),
    ("homogenize: phase the mesh lacks",
     ["homogenize", CELL, "--physics", "conductivity", "--material", "matrix:k=1",
      "--material", "inclusion:k=2", "--material", "fibre:k=2"], [],
     "error: no phase named 'fibre' in this cell; available phases: 'matrix'=1"),
    ("homogenize: a phase without law",
     ["homogenize", CELL, "--physics", "conductivity", "--material", "matrix:k=1"], [],
     "no material given for phase(s) ['inclusion']"),
    ("homogenize: malformed material",
     ["homogenize", CELL, "--physics", "conductivity", "--material", "matrix:k"], [],
     "not key=value"),
    ("homogenize: negative conductivity",
     ["homogenize", CELL, "--physics", "conductivity", "--material", "matrix:k=-1",
      "--material", "inclusion:k=2"], [],
     "conductivity k must be a finite positive number, got -1.0"),
    ("homogenize: Poisson ratio 0.6",
     ["homogenize", CELL, "--physics", "elasticity", "--material", "matrix:E=1,nu=0.6",
      "--material", "inclusion:E=2,nu=0.3"], [], "Poisson's ratio nu must lie in (-1, 0.5)"),
    # multiscale fe2
    ("fe2: no such file", ["fe2", "{dir}/none.yaml"], [], "none.yaml' does not exist"),
    ("fe2: YAML syntax", ["fe2", "{dir}/fe2.yaml"], [fe2("macro: [1, 2\n")],
     "YAML syntax error at line"),
    ("fe2: TOML syntax", ["fe2", "{dir}/fe2.toml"], [("fe2.toml", "[macro\nmesh = 1\n")],
     "TOML syntax error at line 1"),
    ("fe2: empty file", ["fe2", "{dir}/fe2.yaml"], [fe2("")], "the file is empty"),
    ("fe2: not a mapping", ["fe2", "{dir}/fe2.yaml"], [fe2("- 1\n- 2\n")],
     "expected a mapping of keys to values"),
    ("fe2: null modulus", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("E: 10.0", "E: null"))], "micro.materials.inclusion.E: null"),
    ("fe2: unknown nested key", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("component: 1,", "component: 1, colour: red,"))],
     "macro.bcs[1]: unknown key(s) ['colour']"),
    ("fe2: missing key", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("  materials:", "  tangent: taylor\n  other:"))],
     "micro: unknown key(s) ['other']"),
    ("fe2: missing nested key", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("  mesh: MESH\n", ""))], "micro: the key 'mesh' is required"),
    ("fe2: missing section", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.split("micro:")[0])], "the key 'micro' is required"),
    ("fe2: wrong type", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("steps: 1", "steps: ten"))], "loading.steps: expected an integer"),
    ("fe2: unphysical Poisson ratio", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("nu: 0.3, sigma", "nu: 0.7, sigma"))],
     "micro.materials.matrix: Poisson's ratio"),
    ("fe2: unknown law", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("law: elastic", "law: rubber"))], "must be one of ['elastic'"),
    ("fe2: missing law parameter", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("sigma_y: 0.01, ", ""))], "missing ['sigma_y']"),
    ("fe2: unknown boundary", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("boundary: top", "boundary: roof"))], "unknown boundary 'roof'"),
    ("fe2: component out of range", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("component: 1", "component: 2"))], "out of range for a 2D problem"),
    ("fe2: RVE mesh missing", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("MESH", "nowhere.msh"))], "nowhere.msh'"),
    ("fe2: RVE phase missing", ["fe2", "{dir}/fe2.yaml"],
     [fe2(FE2.replace("inclusion: {law", "fibre: {law"))],
     "no phase named 'fibre' in this cell; available phases: 'matrix'=1, 'inclusion'=2"),
    # multiscale rve-size
    ("rve-size: no sizes", ["rve-size", "{dir}/rve.yaml"],
     [rve(RVE.replace("sizes: [2, 3]\n", ""))], "the key 'sizes' is required"),
    ("rve-size: decreasing sizes", ["rve-size", "{dir}/rve.yaml"],
     [rve(RVE.replace("[2, 3]", "[3, 2]"))], "sizes must be strictly increasing"),
    ("rve-size: one realization", ["rve-size", "{dir}/rve.yaml"],
     [rve(RVE.replace("realizations: 2", "realizations: 1"))],
     "realizations: must be at least 2, got 1"),
    ("rve-size: fraction above 1", ["rve-size", "{dir}/rve.yaml"],
     [rve(RVE.replace("volume_fraction: 0.3", "volume_fraction: 1.3"))],
     "microstructure.volume_fraction: must be below 1"),
    ("rve-size: unknown physics", ["rve-size", "{dir}/rve.yaml"],
     [rve(RVE.replace("physics: conductivity", "physics: optics"))],
     "laws.physics: must be one of ['conductivity', 'elasticity', 'thermoelastic'], got 'optics'"),
    # multiscale hmm
    ("hmm: null eps", ["hmm", "{dir}/hmm.yaml"], [hmm(HMM.replace("eps: 0.25", "eps: null"))],
     "eps: null is not allowed"),
    ("hmm: unknown coefficient", ["hmm", "{dir}/hmm.yaml"],
     [hmm(HMM.replace("type: laminate", "type: foam"))],
     "coefficient.type: must be one of ['laminate'"),
    ("hmm: missing conductivity", ["hmm", "{dir}/hmm.yaml"],
     [hmm(HMM.replace(", k2: 4", ""))], "coefficient: the key 'k2' is required"),
    ("hmm: parameter of another type", ["hmm", "{dir}/hmm.yaml"],
     [hmm(HMM.replace("k2: 4", "k2: 4, sigma: 1"))], "coefficient: unknown key(s) ['sigma']"),
    ("hmm: sampling domain below a period", ["hmm", "{dir}/hmm.yaml"],
     [hmm(HMM.replace("micro: {", "micro: {delta: 0.1, "))],
     "periodic coupling needs delta >= eps"),
    ("hmm: checkerboard in 3D", ["hmm", "{dir}/hmm.yaml"],
     [hmm(HMM.replace("dim: 2", "dim: 3").replace("laminate", "checkerboard"))],
     "the checkerboard is two-dimensional"),
    # multiscale demo
    ("demo: unknown name", ["demo", "no_such_demo"], [], "no demo named 'no_such_demo'"),
]  # fmt: skip


@pytest.mark.mpi
@pytest.mark.parametrize(("label", "argv", "files", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, label, argv, files, expected):
    comm = MPI.COMM_WORLD
    work = Path(comm.bcast(str(tmp_path), root=0))
    out = work / "out"
    if comm.rank == 0:
        for name, text in files:
            mesh = str(MESHES / "fibre2d_vf0.5.msh")
            (work / name).write_text(text.replace("MESH", mesh).replace("OUT", str(out)))
    comm.barrier()
    capsys.readouterr()
    status = main(["-q", *(a.replace("{dir}", str(work)) for a in argv)])
    err = capsys.readouterr().err
    assert status == 2, (label, err)
    if comm.rank == 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (label, err)
        assert expected in lines[0], (label, expected, lines[0])
    else:
        assert not err.strip(), err
    assert not out.exists() or not any(out.iterdir())  # no result file of a failed run
