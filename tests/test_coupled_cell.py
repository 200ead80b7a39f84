"""Coupled (multi-field) cell problems against independent references.

* homogeneous cells give back the phase constants (thermoelastic and piezoelectric, 2D and 3D);
* laminates against the exact layered-medium formula of a general linear coupled law, written
  here from first principles with NumPy (partial inversion, average, inversion back);
* Levin's exact relation for the thermal stress coefficient of a two-phase disk composite;
* Hill–Mandel of the coupled energy per load case, rank independence, bad input;
* static uniform conditions (SUBC) and mixed ones: homogeneous cells, the laminate columns where
  the periodic field is itself statically admissible, Levin's relation under SUBC, and the
  ordering of the apparent tensors (for piezoelectricity: of the internal energy, whose bounds
  need mixed conditions).

Piezoelectric constants are PZT-4 in consistent scaled units: stress in 1e10 Pa, electric field
in 1e10 V/m, D in C/m^2, so permittivities are in 1e-10 F/m and every entry is O(10).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.bounds import laminate_stiffness
from multiscale.cell import CellProblem
from multiscale.cell.coupled import CoupledCellProblem, homogenize_coupled
from multiscale.mesh import circular_inclusion, laminate, spherical_inclusion
from multiscale.physics import (
    AnisotropicConductivity,
    Conductivity,
    IsotropicElasticity,
    NeoHookean,
)
from multiscale.physics.coupled import Piezoelectric, ThermoElastic
from multiscale.tensors import energy_order, voigt_index

log = logging.getLogger(__name__)

HM_TOL = 1e-10
EXACT = 1e-10

# PZT-4 (Berlincourt), poled along x3: C11 C12 C13 C33 C44 C66, e31 e33 e15, kappa11 kappa33.
C11, C12, C13, C33, C44, C66 = 13.9, 7.78, 7.43, 11.5, 2.56, 3.06
E31, E33, E15 = -5.2, 15.1, 12.7
K11, K33 = 64.6, 56.2


def pzt_3d() -> Piezoelectric:
    C = np.zeros((6, 6))
    C[:3, :3] = [[C11, C12, C13], [C12, C11, C13], [C13, C13, C33]]
    C[3, 3] = C[4, 4] = C44
    C[5, 5] = C66
    e = np.zeros((3, 6))
    e[0, 4] = e[1, 3] = E15
    e[2, :3] = [E31, E31, E33]
    return Piezoelectric(C, e, np.diag([K11, K11, K33]))


def pzt_2d(poling: int, sign: float = 1.0) -> Piezoelectric:
    """PZT-4 in the plane strain x1-x2 plane, poled along x2 (``poling=1``) or x1 (``0``)."""
    if poling == 1:
        C = [[C11, C13, 0.0], [C13, C33, 0.0], [0.0, 0.0, C44]]
        e = [[0.0, 0.0, E15], [E31, E33, 0.0]]
        kappa = np.diag([K11, K33])
    else:
        C = [[C33, C13, 0.0], [C13, C11, 0.0], [0.0, 0.0, C44]]
        e = [[E33, E31, 0.0], [0.0, 0.0, E15]]
        kappa = np.diag([K33, K11])
    return Piezoelectric(np.array(C), sign * np.array(e), kappa)


def polymer_2d() -> Piezoelectric:
    """A soft dielectric without piezoelectricity (epoxy-like, same scaled units)."""
    C = IsotropicElasticity.from_young(0.35, 0.35).tensor(2)
    return Piezoelectric(C, np.zeros((2, 3)), np.diag([0.35, 0.35]))


# -- the closed form for laminates, from first principles ------------------------------------------
def normal_components(dim: int, kinds: list[str]) -> np.ndarray:
    """Indices of the generalized gradient that may jump across layers normal to x1 (their
    fluxes are continuous): strains 11, 12 (and 13); the normal derivative of a scalar."""
    out, k = [], 0
    for kind in kinds:
        if kind == "strain":
            out += [k + a for a, (i, j) in enumerate(voigt_index(dim)) if 0 in (i, j)]
            k += len(voigt_index(dim))
        else:
            out.append(k)
            k += dim
    return np.array(out)


def sweep(M: np.ndarray, N: np.ndarray) -> np.ndarray:
    """Partial inverse: the map (q_N, g_T) -> (g_N, q_T) of q = M g; its own inverse."""
    T = np.setdiff1d(np.arange(M.shape[0]), N)
    A_inv = np.linalg.inv(M[np.ix_(N, N)])
    H = np.empty_like(M)
    H[np.ix_(N, N)] = A_inv
    H[np.ix_(N, T)] = -A_inv @ M[np.ix_(N, T)]
    H[np.ix_(T, N)] = M[np.ix_(T, N)] @ A_inv
    H[np.ix_(T, T)] = M[np.ix_(T, T)] - M[np.ix_(T, N)] @ A_inv @ M[np.ix_(N, T)]
    return H


def laminate_closed_form(
    fractions: list[float], Ms: list[np.ndarray], ps: list[np.ndarray], N: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (M*, p*) of layers q = M_k g + p_k theta: the parameter theta is appended as a
    continuous 'gradient' with flux theta; the continuous quantities (q_N, g_T, theta) are
    uniform, so the partial inverses average."""
    n = Ms[0].shape[0]
    H = 0.0
    for f, M, p in zip(fractions, Ms, ps, strict=True):
        aug = np.zeros((n + 1, n + 1))
        aug[:n, :n], aug[:n, n], aug[n, n] = M, p, 1.0
        H = H + f * sweep(aug, N)
    star = sweep(H, N)
    return star[:n, :n], star[:n, n]


# -- homogeneous cells -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def disk2d():
    return circular_inclusion(MPI.COMM_WORLD, 0.3, h=0.1)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


@pytest.mark.mpi
def test_homogeneous_cells_reproduce_phase_constants(disk2d):
    th = ThermoElastic(lmbda=1.5, mu=0.8, alpha=2e-2)
    res = homogenize_coupled(disk2d, {name: th for name in disk2d.phases})
    eff = ThermoElastic.effective(res)
    nu = th.lmbda / (2 * (th.lmbda + th.mu))
    assert _rel(eff["C"], th.stiffness(2)) < EXACT
    assert _rel(eff["beta"], th.beta_voigt(2)) < EXACT
    # plane strain: the in-plane apparent expansion is (1 + nu) alpha, no shear
    assert _rel(eff["alpha"], (1 + nu) * th.alpha * np.array([1.0, 1.0, 0.0])) < EXACT
    assert res.hill_mandel_residual < HM_TOL

    pz = pzt_2d(1)
    res = homogenize_coupled(disk2d, {name: pz for name in disk2d.phases})
    eff = Piezoelectric.effective(res)
    for key in ("C", "e", "kappa"):
        assert _rel(eff[key], getattr(pz, key)) < EXACT, key
    assert res.hill_mandel_residual < HM_TOL

    cube = laminate(MPI.COMM_WORLD, 3, [0.5, 0.5], h=0.5)
    pz3 = pzt_3d()
    res = homogenize_coupled(cube, {name: pz3 for name in cube.phases})
    log.info("3D homogeneous PZT-4: %d dofs, error %.2e", res.ndofs, _rel(res.tensor, pz3.matrix()))
    assert _rel(res.tensor, pz3.matrix()) < EXACT
    assert res.hill_mandel_residual < HM_TOL
    # 3D: the free expansion is alpha in every direction, no shear
    res = homogenize_coupled(cube, {name: th for name in cube.phases})
    eff = ThermoElastic.effective(res)
    assert _rel(eff["C"], th.stiffness(3)) < EXACT
    assert _rel(eff["alpha"], th.alpha * np.array([1.0, 1, 1, 0, 0, 0])) < EXACT
    assert res.hill_mandel_residual < HM_TOL


# -- laminates -------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_piezoelectric_laminate_closed_form():
    fractions = [0.35, 0.65]
    cell = laminate(MPI.COMM_WORLD, 2, fractions, h=0.1)
    laws = [pzt_2d(1), pzt_2d(0, sign=-1.0)]
    res = homogenize_coupled(cell, {"phase0": laws[0], "phase1": laws[1]})
    N = normal_components(2, ["strain", "scalar"])
    M_star, _ = laminate_closed_form(fractions, [m.matrix() for m in laws], [np.zeros(5)] * 2, N)
    err = _rel(res.tensor, M_star)
    log.info("piezoelectric laminate: relative error %.2e, HM %.2e", err, res.hill_mandel_residual)
    assert err < EXACT
    assert res.hill_mandel_residual < HM_TOL
    eff = Piezoelectric.effective(res)
    # the laminate couples what no phase couples alone: compare with the phase-average guess
    assert _rel(eff["e"], 0.35 * laws[0].e + 0.65 * laws[1].e) > 1e-2


@pytest.mark.mpi
def test_piezoelectric_laminate_with_passive_phase():
    fractions = [0.6, 0.4]
    cell = laminate(MPI.COMM_WORLD, 2, fractions, h=0.1)
    laws = [polymer_2d(), pzt_2d(1)]
    res = homogenize_coupled(cell, {"phase0": laws[0], "phase1": laws[1]})
    N = normal_components(2, ["strain", "scalar"])
    M_star, _ = laminate_closed_form(fractions, [m.matrix() for m in laws], [np.zeros(5)] * 2, N)
    assert _rel(res.tensor, M_star) < EXACT
    assert res.hill_mandel_residual < HM_TOL


@pytest.mark.mpi
@pytest.mark.parametrize("degree", [1, 2])
def test_thermoelastic_laminate_closed_form(degree):
    fractions = [0.3, 0.7]
    cell = laminate(MPI.COMM_WORLD, 2, fractions, h=0.1 if degree == 1 else 0.2)
    laws = [ThermoElastic(1.0, 0.5, 3e-2), ThermoElastic(20.0, 12.0, 1e-3)]
    res = homogenize_coupled(cell, {"phase0": laws[0], "phase1": laws[1]}, degree=degree)
    N = normal_components(2, ["strain"])
    Cs = [m.stiffness(2) for m in laws]
    C_star, p_star = laminate_closed_form(fractions, Cs, [-m.beta_voigt(2) for m in laws], N)
    # the reference's elastic part agrees with the package's elastic laminate formula
    assert _rel(C_star, laminate_stiffness(fractions, Cs, 0, 2)) < 1e-13
    eff = ThermoElastic.effective(res)
    err_C, err_beta = _rel(eff["C"], C_star), _rel(eff["beta"], -p_star)
    log.info("thermoelastic laminate P%d: C error %.2e, beta error %.2e", degree, err_C, err_beta)
    assert err_C < EXACT and err_beta < EXACT
    assert _rel(eff["alpha"], np.linalg.solve(C_star, -p_star)) < EXACT
    assert res.hill_mandel_residual < HM_TOL


@pytest.mark.mpi
def test_single_field_laws_are_multifield_laws():
    """Every conductivity and small-strain elastic law is a multi-field law of one field
    (SingleField): the coupled solver gives the closed-form laminate tensors for them (arithmetic
    mean along the layers, harmonic across; the exact elastic laminate), and refuses a
    finite-strain law in one line."""
    fractions = [0.3, 0.7]
    cell = laminate(MPI.COMM_WORLD, 2, fractions, h=0.1)
    k = [1.0, 25.0]
    res = homogenize_coupled(cell, {"phase0": Conductivity(k[0]), "phase1": Conductivity(k[1])})
    assert res.fields == ("u",) and res.parameters == ()
    arithmetic = fractions[0] * k[0] + fractions[1] * k[1]
    harmonic = 1.0 / (fractions[0] / k[0] + fractions[1] / k[1])
    assert _rel(res.tensor, np.diag([harmonic, arithmetic])) < EXACT  # layers normal to x
    assert res.hill_mandel_residual < HM_TOL

    laws = [IsotropicElasticity(1.0, 0.5), IsotropicElasticity(20.0, 12.0)]
    res = homogenize_coupled(cell, {"phase0": laws[0], "phase1": laws[1]})
    C_star = laminate_stiffness(fractions, [m.tensor(2) for m in laws], 0, 2)
    assert _rel(res.tensor, C_star) < EXACT
    with pytest.raises(ValueError, match="is not a conductivity or small-strain law"):
        homogenize_coupled(cell, {"phase0": NeoHookean(1.0, 0.5), "phase1": NeoHookean(2.0, 1.0)})


# -- Levin's exact relation ------------------------------------------------------------------------
def elastic_and_thermoelastic(cell, laws: dict) -> tuple[np.ndarray, np.ndarray, object]:
    """C* from the elastic CellProblem and beta* (with the coupled result) on one mesh."""
    elastic = {k: IsotropicElasticity(m.lmbda, m.mu) for k, m in laws.items()}
    C_star = CellProblem(cell, elastic).solve().tensor
    res = homogenize_coupled(cell, laws)
    return C_star, ThermoElastic.effective(res)["beta"], res


def levin(cell, laws: dict, C_star: np.ndarray) -> np.ndarray:
    """beta* = <beta> + (C* - <C>) (C1 - C2)^{-1} (beta1 - beta2) (Voigt)."""
    d, phi = cell.dim, cell.volume_fractions()
    m, i = laws["matrix"], laws["inclusion"]
    C_avg = phi["matrix"] * m.stiffness(d) + phi["inclusion"] * i.stiffness(d)
    b_avg = phi["matrix"] * m.beta_voigt(d) + phi["inclusion"] * i.beta_voigt(d)
    dC, db = m.stiffness(d) - i.stiffness(d), m.beta_voigt(d) - i.beta_voigt(d)
    return b_avg + (C_star - C_avg) @ np.linalg.solve(dC, db)


LEVIN_LAWS = {"matrix": ThermoElastic(1.2, 0.6, 4e-2), "inclusion": ThermoElastic(8.0, 6.0, 5e-3)}


@pytest.mark.mpi
def test_levin_relation_on_disk_composite(disk2d):
    """The tensor form holds exactly for the discrete C*, beta* of one mesh (the uniform-strain
    argument works in the finite element space), so to rounding, not only to discretization."""
    C_star, beta_star, res = elastic_and_thermoelastic(disk2d, LEVIN_LAWS)
    err = _rel(beta_star, levin(disk2d, LEVIN_LAWS, C_star))
    log.info("Levin relation on the disk cell: relative error %.2e", err)
    assert err < EXACT
    # the coupled C* is the elastic one (same mesh, same space)
    assert _rel(ThermoElastic.effective(res)["C"], C_star) < 1e-10
    # nontrivial: beta* differs from the volume average by far more than the tolerance
    b_avg = sum(disk2d.volume_fractions()[k] * m.beta_voigt(2) for k, m in LEVIN_LAWS.items())
    assert _rel(beta_star, b_avg) > 1e-2
    assert res.hill_mandel_residual < HM_TOL


@pytest.mark.mpi
def test_kubc_apparent_tensors(disk2d):
    """KUBC: a homogeneous cell reproduces its constants and the mean gradients are the macro
    ones exactly; on the disk composite Levin's relation (exact for KUBC too: a uniform strain
    satisfies affine boundary data) links the KUBC thermal stress to the elastic KUBC stiffness,
    which lies above the periodic one."""
    th = ThermoElastic(lmbda=1.5, mu=0.8, alpha=2e-2)
    res = homogenize_coupled(disk2d, {name: th for name in disk2d.phases}, bc="kubc")
    eff = ThermoElastic.effective(res)
    assert res.bc == "kubc" and res.to_dict()["bc"] == "kubc"
    assert _rel(eff["C"], th.stiffness(2)) < EXACT
    assert _rel(eff["beta"], th.beta_voigt(2)) < EXACT

    elastic = {k: IsotropicElasticity(m.lmbda, m.mu) for k, m in LEVIN_LAWS.items()}
    C_kubc = CellProblem(disk2d, elastic).solve("kubc").tensor
    C_per = CellProblem(disk2d, elastic).solve("periodic").tensor
    res = homogenize_coupled(disk2d, LEVIN_LAWS, bc="kubc")
    eff = ThermoElastic.effective(res)
    n = res.tensor.shape[0]
    np.testing.assert_allclose(res.mean_gradient[:, :n], np.eye(n), atol=1e-12)
    np.testing.assert_allclose(res.mean_gradient[:, n:], 0.0, atol=1e-12)
    err = _rel(eff["beta"], levin(disk2d, LEVIN_LAWS, C_kubc))
    log.info("Levin relation under KUBC on the disk cell: relative error %.2e", err)
    assert err < EXACT
    assert _rel(eff["C"], C_kubc) < 1e-10
    gap = np.linalg.eigvalsh(0.5 * (C_kubc + C_kubc.T) - 0.5 * (C_per + C_per.T))
    assert gap.min() > 1e-4 * np.abs(C_per).max(), gap  # strictly stiffer than periodic
    assert res.hill_mandel_residual < HM_TOL


@pytest.mark.mpi
def test_levin_isotropic_form_on_sphere_composite():
    """3D: the tensor form exactly; the isotropic form alpha* = alpha1 + (alpha2 - alpha1)
    (1/K* - 1/K1)/(1/K2 - 1/K1), with K* = (C*11 + 2 C*12)/3 and beta* = 3 K* alpha*, needs
    the cubic symmetry of the cell, which the unstructured mesh breaks at discretization level:
    it holds to the measured cubic-symmetry defect of C*."""
    cell = spherical_inclusion(MPI.COMM_WORLD, 0.2, h=0.25)
    C_star, beta_star, res = elastic_and_thermoelastic(cell, LEVIN_LAWS)
    err_tensor = _rel(beta_star, levin(cell, LEVIN_LAWS, C_star))
    m, i = LEVIN_LAWS["matrix"], LEVIN_LAWS["inclusion"]
    K1, K2 = (law.lmbda + 2.0 * law.mu / 3.0 for law in (m, i))
    K_star = (C_star[0, 0] + 2.0 * C_star[0, 1]) / 3.0
    alpha = m.alpha + (i.alpha - m.alpha) * (1 / K_star - 1 / K1) / (1 / K2 - 1 / K1)
    err_iso = _rel(beta_star, 3.0 * K_star * alpha * np.array([1.0, 1, 1, 0, 0, 0]))
    diag, off = np.diag(C_star)[:3], C_star[[0, 0, 1], [1, 2, 2]]
    cubic_defect = (np.ptp(diag) + np.ptp(off)) / np.abs(C_star).max()
    log.info(
        "Levin on the sphere cell, %d dofs: tensor form %.2e, isotropic form %.2e, "
        "cubic-symmetry defect of C* %.2e",
        res.ndofs,
        err_tensor,
        err_iso,
        cubic_defect,
    )
    assert err_tensor < EXACT
    assert err_iso < max(cubic_defect, 1e-12)
    assert res.hill_mandel_residual < HM_TOL


# -- Hill–Mandel, symmetry and rank independence ---------------------------------------------------
@pytest.mark.mpi
def test_piezo_composite_hill_mandel_symmetry_and_rank_independence():
    laws = {"matrix": polymer_2d(), "inclusion": pzt_2d(1)}
    world = MPI.COMM_WORLD
    distributed = homogenize_coupled(circular_inclusion(world, 0.3, h=0.1), laws)
    serial = homogenize_coupled(circular_inclusion(MPI.COMM_SELF, 0.3, h=0.1), laws)
    log.info("piezo disk HM per case %s", distributed.hill_mandel)
    assert distributed.hill_mandel_residual < HM_TOL
    M = distributed.tensor
    # electric enthalpy: symmetric generalized matrix, positive C*, positive kappa*
    assert np.abs(M - M.T).max() < 1e-8 * np.abs(M).max()
    eff = Piezoelectric.effective(distributed)
    assert np.linalg.eigvalsh(eff["C"]).min() > 0 and np.linalg.eigvalsh(eff["kappa"]).min() > 0
    np.testing.assert_allclose(M, serial.tensor, rtol=1e-8, atol=1e-12 * np.abs(M).max())
    np.testing.assert_allclose(distributed.mean_gradient, np.eye(5), atol=1e-12)


def test_solver_reuse_and_result_dict(disk2d):
    laws = {"matrix": ThermoElastic(1.0, 1.0, 1e-2), "inclusion": ThermoElastic(5.0, 3.0, 0.0)}
    with CoupledCellProblem(disk2d, laws, petsc_options={"pc_type": "lu"}) as problem:
        first, second = problem.solve(), problem.solve()
        problem.destroy()  # idempotent with the with block
    np.testing.assert_array_equal(first.tensor, second.tensor)
    d = first.to_dict()
    assert d["fields"] == ["u"] and d["parameters"] == ["theta"]
    np.testing.assert_allclose(d["blocks"]["u,u"], first.block("u", "u"))
    np.testing.assert_allclose(d["parameter_fluxes"]["theta"]["u"], first.parameter_tensor[:, 0])


# -- bad input -------------------------------------------------------------------------------------
def test_mixed_fields_are_an_error(disk2d):
    laws = {"matrix": ThermoElastic(1.0, 1.0, 1e-2), "inclusion": pzt_2d(1)}
    with pytest.raises(ValueError, match="must share fields and parameters") as info:
        CoupledCellProblem(disk2d, laws)
    assert "\n" not in str(info.value)
    # an elastic law is the single-field law of u alone, not the piezoelectric (u, phi)
    with pytest.raises(ValueError, match="must share fields and parameters"):
        CoupledCellProblem(disk2d, {"matrix": IsotropicElasticity(1, 1), "inclusion": pzt_2d(1)})
    with pytest.raises(ValueError, match="is not a conductivity or small-strain law"):
        CoupledCellProblem(disk2d, {"matrix": object(), "inclusion": pzt_2d(1)})


@pytest.mark.parametrize(
    "make",
    [
        lambda: ThermoElastic(1.0, -1.0, 0.0),
        lambda: ThermoElastic(1.0, 1.0, float("nan")),
        lambda: Piezoelectric(np.eye(3), np.zeros((3, 3)), np.eye(2)),
        lambda: Piezoelectric(np.eye(3), np.zeros((2, 3)), -np.eye(2)),
        lambda: Piezoelectric(np.eye(4), np.zeros((2, 4)), np.eye(2)),
    ],
)
def test_bad_law_parameters_are_errors(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("degree", [0, 1.5, "2", True])
def test_bad_degree_is_an_error(disk2d, degree):
    with pytest.raises(ValueError, match="degree must be a positive integer"):
        CoupledCellProblem(disk2d, {name: pzt_2d(1) for name in disk2d.phases}, degree=degree)


@pytest.mark.parametrize(
    ("bc", "message"),
    [
        ("sbuc", "coupled cell problems take bc 'periodic', 'kubc', 'subc' or a mapping"),
        ({"u": "subc"}, r"a mixed bc names every field once: fields \['u', 'phi'\]"),
        ({"u": "periodic", "phi": "subc"}, "periodic conditions apply to all fields"),
        (("subc",), "bc must be a string or a mapping of field names"),
    ],
)
def test_bad_bc_is_a_one_line_error(disk2d, bc, message):
    with pytest.raises(ValueError, match=message) as info:
        CoupledCellProblem(disk2d, {name: pzt_2d(1) for name in disk2d.phases}, bc=bc)
    assert "\n" not in str(info.value)


# -- static (SUBC) and mixed uniform conditions ----------------------------------------------------
@pytest.mark.mpi
def test_subc_homogeneous_cells_reproduce_phase_constants(disk2d):
    """A uniform boundary flux is met by the uniform field, which the space contains: SUBC (and
    the mixed conditions) give the constants back to rounding, in 2D and 3D; the mean fluxes
    are the imposed ones (the divergence theorem) and the mean strain of the traction-free
    heated cell is the free expansion."""
    th, pz = ThermoElastic(lmbda=1.5, mu=0.8, alpha=2e-2), pzt_2d(1)
    nu = th.lmbda / (2 * (th.lmbda + th.mu))
    cube = laminate(MPI.COMM_WORLD, 3, [0.5, 0.5], h=0.5)
    cases = [
        (disk2d, th, "subc"),
        (disk2d, pz, "subc"),
        (disk2d, pz, {"u": "kubc", "phi": "subc"}),
        (disk2d, pz, {"u": "subc", "phi": "kubc"}),
        (cube, pzt_3d(), "subc"),
        (cube, th, "subc"),
    ]
    for cell, law, bc in cases:
        res = homogenize_coupled(cell, {name: law for name in cell.phases}, bc=bc)
        n = res.tensor.shape[0]
        if isinstance(law, ThermoElastic):
            eff, d = ThermoElastic.effective(res), cell.dim
            assert _rel(eff["C"], th.stiffness(d)) < EXACT
            assert _rel(eff["beta"], th.beta_voigt(d)) < EXACT
            free = th.alpha * (1 + nu if d == 2 else 1.0)  # plane strain in 2D
            expansion = free * np.array([1.0 if i == j else 0.0 for i, j in voigt_index(d)])
            assert _rel(res.mean_gradient[:, n], expansion) < EXACT
        else:
            assert _rel(res.tensor, law.matrix()) < EXACT, bc
        log.info(
            "homogeneous %s, %dD, bc %s: tensor error %.2e, HM %.2e",
            type(law).__name__,
            cell.dim,
            res.bc,
            _rel(res.tensor, th.stiffness(cell.dim) if law is th else law.matrix()),
            res.hill_mandel_residual,
        )
        if bc == "subc":
            assert res.bc == "subc" and res.to_dict()["bc"] == "subc"
            np.testing.assert_allclose(res.mean_flux[:, :n], np.eye(n), atol=1e-12)
            np.testing.assert_allclose(res.mean_flux[:, n:], 0.0, atol=1e-12)
        assert res.hill_mandel_residual < HM_TOL, bc


def _admissible_columns(fractions, Ms, ps, N, M_star, p_star):
    """The periodic laminate solution of each SUBC load (unit mean flux e_j, then the unit
    parameter at zero mean flux): its mean gradients and the spread over the layers of its
    tangential fluxes.  The layers carry uniform (q_N, g_T, theta) and (g_N, q_T) = H_k (q_N,
    g_T, theta), H_k the partial inverse; the field is the SUBC solution as well exactly when
    q_T is the same in every layer (then the flux is uniform, so it meets the uniform boundary
    flux on the faces across the layers too)."""
    n = Ms[0].shape[0]
    T = np.setdiff1d(np.arange(n), N)
    H = []
    for M, p in zip(Ms, ps, strict=True):
        aug = np.zeros((n + 1, n + 1))
        aug[:n, :n], aug[:n, n], aug[n, n] = M, p, 1.0
        H.append(sweep(aug, N))
    loads = [(e, 0.0) for e in np.eye(n)] + [(np.zeros(n), 1.0)] * int(np.any(p_star))
    mean_g, spread = [], []
    for Q, theta in loads:
        g = np.linalg.solve(M_star, Q - p_star * theta)
        x = np.zeros(n + 1)
        x[N], x[T], x[n] = Q[N], g[T], theta
        q_T = np.array([(Hk @ x)[T] for Hk in H])
        mean_g.append(g)
        spread.append(float(np.ptp(q_T, axis=0).max()))
    return np.array(mean_g).T, np.array(spread)


LAMINATES = {
    "thermoelastic": ([0.3, 0.7], [ThermoElastic(1.0, 0.5, 3e-2), ThermoElastic(20.0, 12.0, 1e-3)]),
    "polymer/PZT": ([0.6, 0.4], [polymer_2d(), pzt_2d(1)]),
    "PZT/PZT": ([0.35, 0.65], [pzt_2d(1), pzt_2d(0, sign=-1.0)]),
}


@pytest.mark.mpi
@pytest.mark.parametrize("name", list(LAMINATES))
def test_subc_laminate_equals_periodic_where_the_periodic_field_is_admissible(name):
    """Layers normal to x1 under SUBC.  The periodic laminate field has uniform normal fluxes
    but in general layer-wise tangential fluxes, which a uniform flux on the faces x2 = const
    forbids.  Where the closed form gives a uniform flux (the shear load of the thermoelastic
    laminate; the shear and the normal-D loads of polymer/PZT; no load of the crossed PZT
    laminate), that field is the SUBC solution, lies in the P1 space of the layer-conforming
    mesh, and the SUBC column of mean gradients equals the periodic one to rounding; every other
    column differs by far more (SUBC is the softer condition)."""
    fractions, laws = LAMINATES[name]
    cell = laminate(MPI.COMM_WORLD, 2, fractions, h=0.1)
    thermal = isinstance(laws[0], ThermoElastic)
    Ms = [m.stiffness(2) if thermal else m.matrix() for m in laws]
    ps = [-m.beta_voigt(2) if thermal else np.zeros(5) for m in laws]
    N = normal_components(2, ["strain"] if thermal else ["strain", "scalar"])
    M_star, p_star = laminate_closed_form(fractions, Ms, ps, N)
    mean_g, spread = _admissible_columns(fractions, Ms, ps, N, M_star, p_star)
    res = homogenize_coupled(cell, {"phase0": laws[0], "phase1": laws[1]}, bc="subc")
    diff = np.abs(res.mean_gradient - mean_g).max(axis=0) / np.abs(mean_g).max()
    admissible = spread < 1e-12 * np.abs(M_star).max()
    log.info(
        "%s laminate, SUBC: admissible columns %s, their error %.2e, other columns differ by "
        "at least %.2e; HM %.2e",
        name,
        np.flatnonzero(admissible).tolist(),
        diff[admissible].max(initial=0.0),
        diff[~admissible].min(initial=np.inf),
        res.hill_mandel_residual,
    )
    expected = {"thermoelastic": [2], "polymer/PZT": [2, 3], "PZT/PZT": []}[name]
    assert np.flatnonzero(admissible).tolist() == expected
    assert np.all(diff[admissible] < EXACT)
    assert np.all(diff[~admissible] > 1e-3)
    assert res.hill_mandel_residual < HM_TOL


@pytest.mark.mpi
def test_subc_conductivity_laminate_with_equal_tangential_rows_is_periodic():
    """Layers that differ only in the conductivity across them (k11 = 1, 25, k22 = 4 in both):
    every periodic load keeps the tangential flux uniform, so SUBC gives the whole periodic
    tensor, diag(harmonic mean of k11, k22), to rounding."""
    fractions = [0.3, 0.7]
    cell = laminate(MPI.COMM_WORLD, 2, fractions, h=0.1)
    laws = {"phase0": np.diag([1.0, 4.0]), "phase1": np.diag([25.0, 4.0])}
    res = homogenize_coupled(
        cell, {k: AnisotropicConductivity(K) for k, K in laws.items()}, bc="subc"
    )
    harmonic = 1.0 / (fractions[0] / 1.0 + fractions[1] / 25.0)
    assert _rel(res.tensor, np.diag([harmonic, 4.0])) < EXACT
    assert res.hill_mandel_residual < HM_TOL


@pytest.mark.mpi
def test_subc_levin_relation_on_disk_composite(disk2d):
    """Uniform traction is the other condition under which Levin's uniform field is admissible
    (a uniform stress whose strains S_k sigma + alpha_k theta agree in both phases), so his
    relation links the SUBC thermal stress beta* = C* alpha* (alpha* the mean strain of the
    traction-free heated cell) to the SUBC stiffness of the elastic CellProblem, to rounding."""
    elastic = {k: IsotropicElasticity(m.lmbda, m.mu) for k, m in LEVIN_LAWS.items()}
    C_subc = CellProblem(disk2d, elastic).solve("subc").tensor
    res = homogenize_coupled(disk2d, LEVIN_LAWS, bc="subc")
    eff = ThermoElastic.effective(res)
    n = res.tensor.shape[0]
    assert _rel(eff["C"], C_subc) < 1e-10  # the coupled and the elastic SUBC solver agree
    assert _rel(res.mean_gradient[:, n], eff["alpha"]) < EXACT  # alpha* is the free strain
    np.testing.assert_allclose(res.mean_flux, np.c_[np.eye(n), np.zeros(n)], atol=1e-12)
    err = _rel(eff["beta"], levin(disk2d, LEVIN_LAWS, C_subc))
    log.info("Levin relation under SUBC on the disk cell: relative error %.2e", err)
    assert err < EXACT
    # nontrivial: far from the volume average, and distinct from the periodic beta* (Levin's
    # relation with the periodic C*): beta* follows the bulk response, which the boundary
    # condition changes by only 7e-5 on this cell, still 1e11 times the rounding error above
    b_avg = sum(disk2d.volume_fractions()[k] * m.beta_voigt(2) for k, m in LEVIN_LAWS.items())
    assert _rel(eff["beta"], b_avg) > 1e-2
    beta_per = ThermoElastic.effective(homogenize_coupled(disk2d, LEVIN_LAWS))["beta"]
    log.info("SUBC vs periodic beta*: relative difference %.2e", _rel(eff["beta"], beta_per))
    assert _rel(eff["beta"], beta_per) > 1e-5
    assert res.hill_mandel_residual < HM_TOL


def internal_energy(M: np.ndarray, n_strain: int) -> np.ndarray:
    """The matrix of the piezoelectric internal energy U(E, D) = sweep of M = [[C, e^T], [e,
    -kappa]] in the potential's block, its grad(phi) rows negated: symmetric positive definite,
    [[C + e^T kappa^-1 e, -e^T kappa^-1], [-kappa^-1 e, kappa^-1]]."""
    n = M.shape[0]
    N = np.arange(n_strain, n)
    return np.diag([1.0] * n_strain + [-1.0] * (n - n_strain)) @ sweep(M, N)


@pytest.mark.mpi
def test_subc_periodic_kubc_ordering(disk2d):
    """Thermoelasticity (a convex energy): C*_SUBC <= C*_per <= C*_KUBC.  Piezoelectricity: the
    enthalpy is a saddle and the pure conditions are not ordered (this cell is a
    counterexample: kappa* grows from SUBC to KUBC, so -kappa* falls); the internal energy
    U(E, D), convex, is bounded by the mixed conditions, U[u: subc, phi: kubc] <= U[per] <=
    U[u: kubc, phi: subc]. Hill–Mandel holds for every condition; the SUBC result is the same on
    every rank count."""
    C = {}
    for bc in ("subc", "periodic", "kubc"):
        res = homogenize_coupled(disk2d, LEVIN_LAWS, bc=bc)
        assert res.hill_mandel_residual < HM_TOL, bc
        C[bc] = ThermoElastic.effective(res)["C"]
    scale = np.abs(C["periodic"]).max()
    gaps = energy_order(C["subc"], C["periodic"]), energy_order(C["periodic"], C["kubc"])
    log.info("thermoelastic disk: C* gaps SUBC-per %.3e, per-KUBC %.3e", *gaps)
    assert min(gaps) > 1e-3 * scale

    laws = {"matrix": polymer_2d(), "inclusion": pzt_2d(1)}
    conditions = {
        "lower": {"u": "subc", "phi": "kubc"},
        "subc": "subc",
        "periodic": "periodic",
        "kubc": "kubc",
        "upper": {"u": "kubc", "phi": "subc"},
    }
    M = {}
    for key, bc in conditions.items():
        res = homogenize_coupled(disk2d, laws, bc=bc)
        assert res.hill_mandel_residual < HM_TOL, key
        M[key] = res.tensor
    U = {k: internal_energy(m, 3) for k, m in M.items()}
    scale = np.abs(U["periodic"]).max()
    lower, upper = energy_order(U["lower"], U["periodic"]), energy_order(U["periodic"], U["upper"])
    pure = energy_order(M["subc"], M["periodic"]), energy_order(M["periodic"], M["kubc"])
    log.info(
        "piezo disk: U gaps lower-per %.3e, per-upper %.3e; pure M orders %.3e, %.3e",
        lower,
        upper,
        *pure,
    )
    assert lower > 1e-3 * scale and upper > 1e-3 * scale
    assert max(pure) < -1e-3 * np.abs(M["periodic"]).max()  # the pure conditions: no order
    serial = homogenize_coupled(circular_inclusion(MPI.COMM_SELF, 0.3, h=0.1), laws, bc="subc")
    np.testing.assert_allclose(
        M["subc"], serial.tensor, rtol=1e-8, atol=1e-12 * np.abs(M["subc"]).max()
    )
