"""The physics registry: the CLI and the ensembles run any registered physics unchanged.

References, all independent of the code under test:

* Levin's exact relation for two isotropic thermoelastic phases, written here from the phase
  constants with NumPy: :math:`\\beta^* = \\langle\\beta\\rangle + (C^* - \\langle C\\rangle)
  (C_1 - C_2)^{-1}(\\beta_1 - \\beta_2)`, exact (to rounding) for the discrete :math:`C^*` of
  one mesh under periodic, kinematic and static uniform conditions, and its scalar form for the
  mean expansion with each realization's own apparent bulk compliance;
* the textbook plane-strain stiffness and thermal stress of a homogeneous cell;
* the energy ordering :math:`C^{SUBC} \\preceq C^{PBC} \\preceq C^{KUBC}` (Huet 1990);
* for a physics registered here only (an orthotropic conductivity ``k1, k2``): the laminate's
  harmonic/arithmetic means and, on random disks with equal ``k1`` in both phases, the exact
  uniform-gradient solution along x and Wiener's bounds along y;
* bad input through ``multiscale homogenize``: one line, exit status 2.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import test_coupled_cell as coupled
from cli_checks import shared_dir
from mpi4py import MPI

from multiscale.cli import main
from multiscale.ensemble import EnsembleConfig, Microstructure, PhaseLaw, run_ensemble
from multiscale.physics import AnisotropicConductivity, Physics, registry

#: Lame constants and expansion of the two phases (those of tests/test_coupled_cell.py).
MATRIX = {"lambda": 1.2, "mu": 0.6, "alpha": 4e-2}
INCLUSION = {"lambda": 8.0, "mu": 6.0, "alpha": 5e-3}
EXACT = 1e-10

log = logging.getLogger(__name__)


def _spec(law: dict) -> str:
    return ",".join(f"{k}={v!r}" for k, v in law.items())


def _stiffness(lam: float, mu: float) -> np.ndarray:
    """Plane-strain Voigt stiffness (engineering shear)."""
    return np.array([[lam + 2 * mu, lam, 0.0], [lam, lam + 2 * mu, 0.0], [0.0, 0.0, mu]])


def _beta(law: dict) -> np.ndarray:
    """Thermal stress coefficient beta = (3 lambda + 2 mu) alpha, as a Voigt vector."""
    return (3 * law["lambda"] + 2 * law["mu"]) * law["alpha"] * np.array([1.0, 1.0, 0.0])


def _levin(C_star: np.ndarray, phi: float) -> np.ndarray:
    """Levin's beta* of the two phases at inclusion fraction ``phi``."""
    Cm = _stiffness(MATRIX["lambda"], MATRIX["mu"])
    Ci = _stiffness(INCLUSION["lambda"], INCLUSION["mu"])
    bm, bi = _beta(MATRIX), _beta(INCLUSION)
    C_avg, b_avg = (1 - phi) * Cm + phi * Ci, (1 - phi) * bm + phi * bi
    return b_avg + (C_star - C_avg) @ np.linalg.solve(Cm - Ci, bm - bi)


def _levin_mean_expansion(C_star: np.ndarray, phi: float) -> float:
    """Scalar Levin: tr(alpha*)/2 = c + (<b> - <kappa> db/dkappa) (1/2) 1.(C*)^-1 1, with the
    2D (area) bulk moduli kappa = lambda + mu and b = (3 lambda + 2 mu) alpha."""
    kappa = [law["lambda"] + law["mu"] for law in (MATRIX, INCLUSION)]
    b = [(3 * law["lambda"] + 2 * law["mu"]) * law["alpha"] for law in (MATRIX, INCLUSION)]
    slope = (b[0] - b[1]) / (kappa[0] - kappa[1])
    b_avg = (1 - phi) * b[0] + phi * b[1]
    k_avg = (1 - phi) * kappa[0] + phi * kappa[1]
    one = np.array([1.0, 1.0, 0.0])
    return slope / 2 + (b_avg - k_avg * slope) * float(one @ np.linalg.solve(C_star, one)) / 2


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


def _mesh(tmp_path, name: str, *args: str) -> str:
    path = shared_dir(tmp_path) / name
    assert main(["-q", "mesh", *args, "--out", str(path)]) == 0
    MPI.COMM_WORLD.barrier()
    return str(path)


def _homogenize(cell: str, out, *argv: str) -> dict:
    status = main(["-q", "homogenize", cell, *argv, "--json", str(out)])
    MPI.COMM_WORLD.barrier()
    assert status == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def disk_cell(tmp_path_factory) -> str:
    return _mesh(tmp_path_factory.mktemp("disk"), "disk.msh", "inclusion2d", "--h", "0.1")


# -- thermoelasticity through the CLI --------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("bc", ["periodic", "kubc", "subc"])
def test_thermoelastic_cli_satisfies_levin(disk_cell, tmp_path, bc):
    """``homogenize --physics thermoelastic`` writes C*, beta*, alpha*; beta* satisfies Levin's
    relation with the C* that ``--physics elasticity`` computes on the same mesh, to rounding,
    and differs from the volume average by far more."""
    out = shared_dir(tmp_path) / "te.json"
    laws = ["--material", f"matrix:{_spec(MATRIX)}", "--material", f"inclusion:{_spec(INCLUSION)}"]
    data = _homogenize(disk_cell, out, "--physics", "thermoelastic", "--bc", bc, *laws)
    elastic = [
        "--material",
        f"matrix:lambda={MATRIX['lambda']},mu={MATRIX['mu']}",
        "--material",
        f"inclusion:lambda={INCLUSION['lambda']},mu={INCLUSION['mu']}",
    ]
    ref = _homogenize(
        disk_cell, out, "--physics", "elasticity", "--bc", bc, "--no-estimate", *elastic
    )
    C_elastic = np.array(ref["effective_tensor"])
    C, eff = np.array(data["effective_tensor"]), data["effective"]
    beta, alpha = np.array(eff["beta"]), np.array(eff["alpha"])
    phi = data["volume_fractions"]["inclusion"]
    assert data["bc"] == bc and set(eff) == {"C", "beta", "alpha"}
    assert _rel(C, C_elastic) < EXACT and _rel(eff["C"], C) == 0.0
    err = _rel(beta, _levin(C_elastic, phi))
    log.info("%s: Levin relative error %.2e, C vs elasticity CLI %.2e", bc, err, _rel(C, C_elastic))
    assert err < EXACT
    assert _rel(C @ alpha, beta) < 1e-12
    assert abs(alpha[:2].mean() / _levin_mean_expansion(C_elastic, phi) - 1) < EXACT
    b_avg = (1 - phi) * _beta(MATRIX) + phi * _beta(INCLUSION)
    assert _rel(beta, b_avg) > 1e-2
    assert data["hill_mandel_residual"] < 1e-10


@pytest.mark.mpi
@pytest.mark.parametrize("bc", ["periodic", "kubc", "subc"])
def test_thermoelastic_cli_homogeneous_cell(disk_cell, tmp_path, bc):
    """One law in both phases (given as E, nu, alpha): the textbook plane-strain constants,
    C = C(lambda, mu), beta = (3 lambda + 2 mu) alpha, alpha* = (1 + nu) alpha, to 1e-12."""
    E, nu, a = 3.0, 0.25, 1e-2
    law = f"E={E},nu={nu},alpha={a}"
    out = shared_dir(tmp_path) / "hom.json"
    data = _homogenize(
        disk_cell, out, "--physics", "thermoelastic", "--bc", bc,
        "--material", f"matrix:{law}", "--material", f"inclusion:{law}",
    )  # fmt: skip
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    log.info(
        "%s homogeneous: C %.1e, alpha %.1e",
        bc,
        _rel(data["effective_tensor"], _stiffness(lam, mu)),
        _rel(data["effective"]["alpha"], (1 + nu) * a * np.array([1.0, 1.0, 0.0])),
    )
    assert _rel(data["effective_tensor"], _stiffness(lam, mu)) < 1e-12
    beta = _beta({"lambda": lam, "mu": mu, "alpha": a})
    assert _rel(data["effective"]["beta"], beta) < 1e-12
    assert _rel(data["effective"]["alpha"], (1 + nu) * a * np.array([1.0, 1.0, 0.0])) < 1e-12


# -- piezoelectricity through the CLI ------------------------------------------------------------
PZT4 = {  # Berlincourt's PZT-4, the constants of tests/test_coupled_cell.py
    "c11": coupled.C11, "c12": coupled.C12, "c13": coupled.C13, "c33": coupled.C33,
    "c44": coupled.C44, "e31": coupled.E31, "e33": coupled.E33, "e15": coupled.E15,
    "kappa11": coupled.K11, "kappa33": coupled.K33,
}  # fmt: skip
POLYMER = {"E": 0.35, "nu": 0.35, "kappa": 0.35}  # polymer_2d() of tests/test_coupled_cell.py


def _piezo_blocks(data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """C*, e*, kappa* of the JSON, the blocks of its generalized matrix [[C, e^T], [e, -kappa]]
    (the "effective_tensor"; its upper right block is e^T to rounding)."""
    eff = data["effective"]
    assert set(eff) == {"C", "e", "kappa"}
    C, e, kappa = np.array(eff["C"]), np.array(eff["e"]), np.array(eff["kappa"])
    M, nv = np.array(data["effective_tensor"]), len(C)
    assert _rel(M[:nv, :nv], C) == 0.0 and _rel(M[nv:, :nv], e) == 0.0
    assert _rel(-M[nv:, nv:], kappa) == 0.0 and _rel(M[:nv, nv:], e.T) < 1e-12
    return C, e, kappa


@pytest.mark.mpi
def test_piezoelectric_cli_laminate_closed_form(tmp_path):
    """PZT-4 poled along x2 in layers normal to x1 with a polymer (fractions 0.3/0.7): C*, e*
    and kappa* from ``homogenize --physics piezoelectric`` equal the exact layered-medium
    formula of the coupled law (the partial inversion of tests/test_coupled_cell.py, on the
    matrices written out there) to rounding, far from the phase average of e (the transverse
    coupling e*_21 is -0.089 where 0.3 e31 is -1.56, the shear coupling e*_15 1e-3 where
    0.3 e15 is 3.8)."""
    cell = _mesh(tmp_path, "lam.msh", "laminate", "--fractions", "0.3", "0.7", "--h", "0.1")
    out = shared_dir(tmp_path) / "piezo.json"
    data = _homogenize(
        cell, out, "--physics", "piezoelectric",
        "--material", f"phase0:{_spec(PZT4)}", "--material", f"phase1:{_spec(POLYMER)}",
    )  # fmt: skip
    C, e, kappa = _piezo_blocks(data)
    fractions = [0.3, 0.7]
    Ms = [coupled.pzt_2d(poling=1).matrix(), coupled.polymer_2d().matrix()]
    N = coupled.normal_components(2, ["strain", "scalar"])
    M_star, _ = coupled.laminate_closed_form(fractions, Ms, [np.zeros(5)] * 2, N)
    errors = (
        _rel(C, M_star[:3, :3]),
        _rel(e, M_star[3:, :3]),
        _rel(kappa, -M_star[3:, 3:]),
    )
    log.info("piezoelectric laminate through the CLI: C %.1e, e %.1e, kappa %.1e", *errors)
    assert max(errors) < EXACT
    assert data["hill_mandel_residual"] < 1e-10
    e_avg = 0.3 * coupled.pzt_2d(poling=1).e
    assert _rel(e, e_avg) > 0.5


@pytest.mark.mpi
@pytest.mark.parametrize("bc", ["periodic", "kubc", "subc"])
def test_piezoelectric_cli_homogeneous_3d_cell(tmp_path, bc):
    """One PZT-4 law in both phases of a 3D cell: the 6x6 stiffness (c66 = (c11 - c12)/2), the
    3x6 piezoelectric matrix and the permittivity as written out in tests/test_coupled_cell.py,
    to 1e-12, under every boundary condition."""
    cell = _mesh(tmp_path, "cube.msh", "laminate", "--dim", "3", "--h", "0.5")
    out = shared_dir(tmp_path) / f"hom_{bc}.json"
    law = _spec(PZT4)
    data = _homogenize(
        cell, out, "--physics", "piezoelectric", "--bc", bc,
        "--material", f"phase0:{law}", "--material", f"phase1:{law}",
    )  # fmt: skip
    C, e, kappa = _piezo_blocks(data)
    ref = coupled.pzt_3d()
    errors = (_rel(C, ref.C), _rel(e, ref.e), _rel(kappa, ref.kappa))
    log.info("%s homogeneous PZT-4 cube: C %.1e, e %.1e, kappa %.1e", bc, *errors)
    assert max(errors) < 1e-12


# -- thermoelastic ensemble ------------------------------------------------------------------------
def _thermo_config() -> EnsembleConfig:
    micro = Microstructure("disks", 0.3, resolution=4.0, fraction_tol=5e-3)
    laws = PhaseLaw("thermoelastic", MATRIX, INCLUSION)
    return EnsembleConfig(micro, laws, (1.5, 2.0), 3, seed=5)


@pytest.fixture(scope="module")
def thermo_ensemble():
    return run_ensemble(MPI.COMM_WORLD, _thermo_config())


@pytest.mark.mpi
def test_thermoelastic_ensemble_levin_and_order(thermo_ensemble):
    """Every realization and condition: the property tr(alpha*)/2 obeys Levin's scalar relation
    with its own apparent bulk compliance and beta* the tensor one (to rounding); the apparent
    stiffnesses are ordered SUBC <= PBC <= KUBC (eigenvalues of the differences)."""
    assert thermo_ensemble.config.laws.property_name == "alpha"
    count, worst = 0, 0.0
    for reals in thermo_ensemble.realizations:
        for r in reals:
            phi = r.volume_fraction
            assert abs(phi - 0.3) <= 5e-3
            for bc, C in r.tensors.items():
                expected = _levin_mean_expansion(C, phi)
                worst = max(worst, abs(r.properties[bc] / expected - 1))
                assert abs(r.properties[bc] / expected - 1) < EXACT, (bc, r.properties[bc])
                assert _rel(r.effective[bc]["beta"], _levin(C, phi)) < EXACT
                count += 1
            sym = {bc: 0.5 * (C + C.T) for bc, C in r.tensors.items()}
            scale = np.abs(sym["kubc"]).max()
            assert np.linalg.eigvalsh(sym["periodic"] - sym["subc"]).min() >= -1e-10 * scale
            assert np.linalg.eigvalsh(sym["kubc"] - sym["periodic"]).min() >= -1e-10 * scale
            assert r.hill_mandel < 1e-10
    assert count == 2 * 3 * 3
    log.info("ensemble: worst scalar Levin error %.2e, worst energy order %.2e\n%s",
             worst, thermo_ensemble.worst_order(), thermo_ensemble.table())  # fmt: skip
    assert thermo_ensemble.worst_order() >= -1e-10
    # the phase values of the property: (1 + nu) alpha per phase in plane strain
    expected = [(1 + law["lambda"] / (2 * (law["lambda"] + law["mu"]))) * law["alpha"]
                for law in (MATRIX, INCLUSION)]  # fmt: skip
    np.testing.assert_allclose(thermo_ensemble.config.laws.phase_values(2), expected, rtol=1e-14)
    json.dumps(thermo_ensemble.to_dict())


@pytest.mark.mpi
def test_thermoelastic_ensemble_rank_independent(thermo_ensemble):
    """The distributed ensemble equals the one each rank computes alone."""
    alone = run_ensemble(MPI.COMM_SELF, _thermo_config())
    for ra, rb in zip(thermo_ensemble.realizations, alone.realizations, strict=True):
        for a, b in zip(ra, rb, strict=True):
            assert a.seed == b.seed
            for bc in a.tensors:
                np.testing.assert_allclose(a.tensors[bc], b.tensors[bc], rtol=1e-10, atol=0)
                assert a.properties[bc] == pytest.approx(b.properties[bc], rel=1e-10)
    for sa, sb in zip(thermo_ensemble.statistics, alone.statistics, strict=True):
        for bc in sa:
            assert sa[bc].mean == pytest.approx(sb[bc].mean, rel=1e-10)


# -- a physics defined only here -------------------------------------------------------------------
def _orthotropic_cell(cell, materials, **kw):
    from multiscale.cell import CellProblem

    return CellProblem(cell, materials, **kw)


ORTHO = Physics(
    name="ortho_conductivity",
    description="2D orthotropic conductivity diag(k1, k2) (defined in tests/test_registry.py)",
    keys=(("k1", "k2"),),
    make=lambda v: AnisotropicConductivity(np.diag([v["k1"], v["k2"]])),
    cell_problem=_orthotropic_cell,
    property_name="k_mean",
    property_label="mean conductivity",
    property_of=lambda eff, dim: float(np.trace(eff["effective_tensor"])) / dim,
    phase_property=lambda law, dim: float(np.trace(law.tensor(dim))) / dim,
)


@pytest.fixture
def ortho():
    with registry.registered(ORTHO) as physics:
        yield physics


@pytest.mark.mpi
def test_new_physics_through_the_cli_laminate(ortho, tmp_path):
    """Layers normal to x of fractions 0.3/0.7.  Periodic: A*_xx is the harmonic mean of k1,
    A*_yy the arithmetic mean of k2, A*_xy = 0 (the exact field is piecewise affine, so P1 holds
    it: to rounding).  The uniform gradient along y also satisfies KUBC and the uniform flux
    along x SUBC, so KUBC keeps the exact A*_yy and SUBC the exact A*_xx; the other diagonal
    entry lies strictly between the harmonic and the arithmetic (Wiener) means."""
    assert "ortho_conductivity" in registry.names()
    cell = _mesh(tmp_path, "lam.msh", "laminate", "--fractions", "0.3", "0.7", "--h", "0.1")
    f = np.array([0.3, 0.7])
    k1, k2 = np.array([1.0, 20.0]), np.array([4.0, 0.5])
    harmonic, arithmetic = 1.0 / np.sum(f / [k1, k2], axis=1), np.sum(f * [k1, k2], axis=1)
    exact = np.diag([harmonic[0], arithmetic[1]])
    A = {}
    for bc in ("periodic", "kubc", "subc"):
        out = shared_dir(tmp_path) / f"{bc}.json"
        data = _homogenize(
            cell, out, "--physics", "ortho_conductivity", "--bc", bc,
            "--material", "phase0:k1=1,k2=4", "--material", "phase1:k1=20,k2=0.5",
        )  # fmt: skip
        assert "effective" not in data  # one tensor: the JSON of the existing physics
        A[bc] = np.array(data["effective_tensor"])
        assert abs(A[bc][0, 1]) < 1e-12 * exact.max() and abs(A[bc][1, 0]) < 1e-12 * exact.max()
    assert _rel(A["periodic"], exact) < 1e-10, A["periodic"]
    assert abs(A["kubc"][1, 1] / arithmetic[1] - 1) < 1e-10
    assert harmonic[0] * 1.01 < A["kubc"][0, 0] < arithmetic[0]
    assert abs(A["subc"][0, 0] / harmonic[0] - 1) < 1e-10
    assert harmonic[1] < A["subc"][1, 1] < arithmetic[1] / 1.01


@pytest.mark.mpi
def test_new_physics_through_an_ensemble(ortho):
    """Random disks whose phases share k1 = 2: the uniform gradient along x is exact (its flux
    (2, 0) is divergence free and admissible for every condition), so A*_xx = 2, A*_xy = 0 to
    rounding; A*_yy lies within Wiener's bounds of the realized fraction and follows the energy
    ordering; the property is tr(A*)/2."""
    micro = Microstructure("disks", 0.3, resolution=4.0, fraction_tol=5e-3)
    laws = PhaseLaw("ortho_conductivity", {"k1": 2.0, "k2": 1.0}, {"k1": 2.0, "k2": 10.0})
    assert laws.phase_values(2) == (1.5, 6.0)
    result = run_ensemble(MPI.COMM_WORLD, EnsembleConfig(micro, laws, (1.5, 2.0), 2, seed=2))
    for reals in result.realizations:
        for r in reals:
            phi = r.volume_fraction
            lo, hi = 1.0 / ((1 - phi) / 1.0 + phi / 10.0), (1 - phi) * 1.0 + phi * 10.0
            yy = {}
            for bc, A in r.tensors.items():
                assert abs(A[0, 0] - 2.0) < 1e-10 and abs(A[0, 1]) < 1e-10, (bc, A)
                assert lo < A[1, 1] < hi
                assert r.properties[bc] == pytest.approx((A[0, 0] + A[1, 1]) / 2, rel=1e-14)
                yy[bc] = A[1, 1]
            assert yy["subc"] <= yy["periodic"] * (1 + 1e-10)
            assert yy["periodic"] <= yy["kubc"] * (1 + 1e-10)
            assert r.error_estimate is None  # no certified estimate for this physics


# -- registry and bad input ------------------------------------------------------------------------
def test_registry_contents_and_errors():
    assert registry.names()[:4] == ("conductivity", "elasticity", "stokes", "thermoelastic")
    with pytest.raises(ValueError, match="unknown physics 'nope'; known: conductivity"):
        registry.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("conductivity"))
    te = registry.get("thermoelastic")
    with pytest.raises(ValueError, match="shear modulus mu"):
        te.law({"lambda": 1.0, "mu": -1.0, "alpha": 0.0})
    with pytest.raises(ValueError, match="keys must be E,nu,alpha or lambda,mu,alpha"):
        te.law({"E": 1.0, "nu": 0.3})
    with pytest.raises(ValueError, match="no scalar property"):
        PhaseLaw("stokes", {"mu": 1.0}, {"mu": 1.0})
    with pytest.raises(ValueError, match="the inclusion law: thermoelastic: alpha='x'"):
        PhaseLaw("thermoelastic", MATRIX, {**INCLUSION, "alpha": "x"})
    with pytest.raises(ValueError, match="no periodic error estimate"):
        EnsembleConfig(
            Microstructure("disks", 0.3),
            PhaseLaw("thermoelastic", MATRIX, INCLUSION),
            (2.0,),
            2,
            error_estimate="on",
        )


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--physics", "nope", "--material", "matrix:k=1"], "unknown physics 'nope'; known:"),
        (
            ["--physics", "thermoelastic", "--material", "matrix:E=1,nu=0.3"],
            "keys must be E,nu,alpha or lambda,mu,alpha, got E,nu",
        ),
        (
            ["--physics", "thermoelastic", "--material", "matrix:E=1,nu=0.3,alpha=1,k=2"],
            "got E,alpha,k,nu",
        ),
        (
            ["--physics", "thermoelastic", "--material", "matrix:E=-1,nu=0.3,alpha=1"],
            "Young's modulus E must be a finite positive number",
        ),
        (
            ["--physics", "thermoelastic", "--material", "matrix:lambda=1,mu=-2,alpha=1"],
            "shear modulus mu",
        ),
        (
            ["--physics", "piezoelectric", "--material", "matrix:E=1,nu=0.3"],
            "keys must be c11,c12,c13,c33,c44,e31,e33,e15,kappa11,kappa33 or E,nu,kappa, got E,nu",
        ),
        (
            ["--physics", "piezoelectric", "--material", "matrix:E=1,nu=0.3,kappa=-2"],
            "permittivity kappa must be positive definite",
        ),
        (
            ["--physics", "piezoelectric", "--material", "matrix:E=1,nu=0.6,kappa=2"],
            "Poisson's ratio nu must lie in (-1, 0.5), got 0.6",
        ),
        (["--physics", "conductivity", "--material", "matrix:k=-1"], "conductivity k must be"),
        (["--physics", "conductivity", "--material", "matrix:E=1"], "keys must be k, got E"),
    ],
)
def test_bad_input_is_one_line(disk_cell, tmp_path, capsys, argv, message):
    out = shared_dir(tmp_path) / "bad.json"
    capsys.readouterr()
    status = main(["-q", "homogenize", disk_cell, *argv, "--json", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err
    if MPI.COMM_WORLD.rank == 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists()
