"""Second-order (strain-gradient) homogenization: the cell tangent against closed forms, the
first-order solver and direct solves; the laminated beam's size effect against the exact beam
formula and a resolved simulation; a particle-reinforced strip in bending between constrained
ends and in simple shear with clamped ends (no closed form) against the strip with every particle
resolved."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.cell.second_order import (
    SecondOrderCellProblem,
    SecondOrderRVE,
    gradient_components,
    gradient_from_vector,
)
from multiscale.coupling.pool import MicroPool
from multiscale.fe2.second_order import (
    STACKINGS,
    SecondOrderMicroModel,
    bending_stiffness,
    dns_bending_stiffness,
    dns_strip,
    dns_strip_bending,
    inclusion_strip,
    layered_strip,
    macro_strip,
    macro_strip_bending,
)
from multiscale.mesh import circular_inclusion
from multiscale.physics import IsotropicElasticity, J2Plasticity
from multiscale.tensors import voigt_to_strain

MODULI = {"stiff": 10.0, "soft": 1.0}


def _laws(moduli: dict[str, float], nu: float = 0.0) -> dict[str, IsotropicElasticity]:
    return {name: IsotropicElasticity.from_young(E, nu) for name, E in moduli.items()}


@pytest.fixture(scope="module")
def inclusion_cell():
    cell = circular_inclusion(MPI.COMM_WORLD, 0.3, h=0.1)
    laws = {
        "matrix": IsotropicElasticity.from_young(1.0, 0.3),
        "inclusion": IsotropicElasticity.from_young(10.0, 0.2),
    }
    problem = SecondOrderCellProblem(cell, laws, degree=2)
    return cell, laws, problem, problem.solve()


@pytest.mark.mpi
def test_homogeneous_cell_closed_form():
    """A homogeneous 2 x 1 cell: D is the uniaxial plane-strain modulus times the moment of
    inertia on the two bending modes and zero elsewhere (the periodic fluctuation absorbs the
    pure squares), B = 0, Hill–Mandel to round-off."""
    E, nu = 3.0, 0.3
    cell = layered_strip(MPI.COMM_WORLD, "edges", 1, length=2.0, nx=4, per_layer=2)
    law = IsotropicElasticity.from_young(E, nu)
    result = SecondOrderCellProblem(cell, {"stiff": law, "soft": law}).solve()
    J = np.diag([2.0**2 / 12, 1.0**2 / 12])
    np.testing.assert_allclose(result.inertia, J, rtol=1e-14)
    E_uniaxial = E / (1 - nu**2)  # plane strain, free transverse contraction
    expected = np.zeros((6, 6))
    comps = gradient_components(2)
    expected[comps.index((0, 0, 1)), comps.index((0, 0, 1))] = E_uniaxial * J[1, 1]
    expected[comps.index((1, 0, 1)), comps.index((1, 0, 1))] = E_uniaxial * J[0, 0]
    np.testing.assert_allclose(result.D, expected, atol=1e-10 * E)
    assert np.abs(result.B).max() < 1e-10 * E
    assert result.hill_mandel.max() < 1e-10
    assert result.fluctuation_mean < 1e-12


@pytest.mark.mpi
def test_first_order_block_equals_cell_problem(inclusion_cell):
    """C of the second-order cell equals C_hom of the first-order CellProblem (an independent
    solver: P2, its own forms and averages) on the same mesh."""
    cell, laws, _, result = inclusion_cell
    C_hom = CellProblem(cell, laws, degree=2).solve().tensor
    np.testing.assert_allclose(result.C, C_hom, atol=1e-10 * np.abs(C_hom).max())


@pytest.mark.mpi
def test_centrosymmetric_cell_has_no_coupling(inclusion_cell):
    """B = 0 for a centro-symmetric cell, up to the asymmetry of the unstructured mesh; exactly
    for the layer-aligned (point-symmetric) laminate mesh."""
    _, _, _, result = inclusion_cell
    scale = np.abs(result.C).max() * np.sqrt(result.inertia.max())
    assert np.abs(result.B).max() < 2e-3 * scale
    strip = layered_strip(MPI.COMM_WORLD, "centre", 1, nx=4, per_layer=2)
    laminate = SecondOrderCellProblem(strip, _laws(MODULI, 0.25)).solve()
    assert np.abs(laminate.B).max() < 1e-12 * 10.0


@pytest.mark.mpi
def test_tangent_predicts_combined_loads_and_hill_mandel(inclusion_cell):
    """A direct solve under a combined (E, G) equals the tangent's prediction (the linear
    'finite difference' check), the tangent is symmetric (B measured from the stresses equals
    B measured from the double stresses), and Hill–Mandel holds for every load."""
    _, _, problem, result = inclusion_cell
    rng = np.random.default_rng(7)
    e_voigt, g = rng.normal(size=3), rng.normal(size=6)
    sigma, q, hill = problem.response(voigt_to_strain(e_voigt), gradient_from_vector(g, 2))
    scale = np.abs(result.tangent()).max() * (np.abs(e_voigt).max() + np.abs(g).max())
    np.testing.assert_allclose(sigma, result.C @ e_voigt + result.B @ g, atol=1e-10 * scale)
    np.testing.assert_allclose(q, result.B.T @ e_voigt + result.D @ g, atol=1e-10 * scale)
    assert result.symmetry_defect < 1e-10
    np.testing.assert_allclose(result.D, result.D.T, atol=1e-10 * np.abs(result.D).max())
    assert hill < 1e-10
    assert result.hill_mandel.max() < 1e-10


@pytest.mark.mpi
def test_homogeneous_beam_has_no_size_effect():
    """A homogeneous cell (Poisson's ratio 0) gives EI = EI_hom for every height: the excess
    higher-order tangent D - J(C) carries no spurious size effect (D alone would give
    1 + 1/N^2)."""
    law = IsotropicElasticity.from_young(4.0, 0.0)
    cell = layered_strip(MPI.COMM_WORLD, "edges", 1, nx=4, per_layer=1)
    tangent = SecondOrderCellProblem(cell, {"stiff": law, "soft": law}).solve()
    for periods in (1, 2):
        EI = bending_stiffness(MPI.COMM_WORLD, tangent, height=periods, ny=2 * periods).EI
        assert EI / (4.0 * periods**3 / 12) == pytest.approx(1.0, rel=1e-10)


def closed_form_ratio(stacking: str, periods: int) -> float:
    """EI/EI_hom = 1 + 12 D/(<E> p^3 N^2), D = int over a period of (E - <E>) z^2 dz by the
    midpoint rule on a fine grid (p = 1), from the layer moduli."""
    z = (np.arange(400_000) + 0.5) / 400_000 - 0.5
    bounds = np.cumsum([f for f, _ in STACKINGS[stacking]])
    E = np.array([MODULI[STACKINGS[stacking][k][1]] for k in range(3)])[
        np.searchsorted(bounds, z + 0.5, side="right")
    ]
    mean = E.mean()
    D = np.mean((E - mean) * z**2)
    return 1.0 + 12.0 * D / (mean * periods**2)


def test_closed_form_constant():
    """The issue's constants: 1 +- 0.613636/N^2."""
    assert closed_form_ratio("edges", 1) == pytest.approx(1.613636, abs=2e-6)
    assert closed_form_ratio("centre", 1) == pytest.approx(1 - 0.613636, abs=2e-6)


@pytest.fixture(scope="module", params=sorted(STACKINGS))
def laminate_tangent(request):
    strip = layered_strip(MPI.COMM_WORLD, request.param, 1, nx=4, per_layer=2)
    return request.param, SecondOrderCellProblem(strip, _laws(MODULI)).solve()


@pytest.mark.mpi
def test_laminate_bending_modulus(laminate_tangent):
    """The cell alone: for the pure-bending gradient (G_112 = kappa, G_211 = -kappa) the excess
    higher-order energy g.D~.g is D/p (per unit period, p = 1) and the full one g.D.g is
    <E y^2> = <E> p^2/12 + D/p; the fluctuation vanishes (Hill–Mandel to round-off)."""
    stacking, tangent = laminate_tangent
    comps = gradient_components(2)
    g = np.zeros(6)
    g[comps.index((0, 0, 1))], g[comps.index((1, 0, 0))] = 1.0, -1.0
    D_per_period = (closed_form_ratio(stacking, 1) - 1.0) * 5.5 / 12.0
    assert g @ tangent.excess @ g == pytest.approx(D_per_period, rel=1e-10)
    assert g @ tangent.D @ g == pytest.approx(5.5 / 12.0 + D_per_period, rel=1e-10)
    assert tangent.hill_mandel.max() < 1e-10


@pytest.mark.mpi
@pytest.mark.parametrize("periods", [1, 2, 4, 8])
def test_laminated_beam_size_effect(laminate_tangent, periods):
    """Second-order FE² within 2 % of the closed form for N >= 2 (measured: round-off, the
    pure-bending field lies in the discrete spaces and w = 0 in the layered cell), with the
    higher-order traction free or kinematic on the faces; first-order equal to EI_hom; the
    resolved beam equal to the closed form."""
    stacking, tangent = laminate_tangent
    comm = MPI.COMM_WORLD
    H = float(periods)
    EI_hom = np.mean([MODULI[n] for n in ("stiff", "soft")]) * H**3 / 12  # <E> = 5.5
    exact = closed_form_ratio(stacking, periods)
    for lateral in ("free", "kinematic"):
        second = bending_stiffness(
            comm, tangent, height=H, length=2.0, nx=6, ny=2 * periods, lateral=lateral
        )
        assert second.EI / EI_hom == pytest.approx(exact, rel=1e-8)
        assert second.constraint_residual < 1e-9
    first = bending_stiffness(comm, tangent, height=H, length=2.0, order=1, nx=6, ny=2 * periods)
    assert first.EI / EI_hom == pytest.approx(1.0, rel=1e-10)
    dns = dns_bending_stiffness(comm, stacking, periods, MODULI, length=2.0, nx=4)
    assert dns / EI_hom == pytest.approx(exact, rel=1e-8)


# -- particle-reinforced strip: no closed form, against the resolved strip ----------------------

PARTICLES = {"matrix": (1.0, 0.3), "inclusion": (20.0, 0.3)}
PHI, H_CELL = 0.35, 0.15  # area fraction of the particle, element size / cell size
MARGIN, WINDOW = 3, 2  # cells between each end and the window, cells in the window


@pytest.fixture(scope="module")
def particle_tangent():
    laws = {name: IsotropicElasticity.from_young(*p) for name, p in PARTICLES.items()}
    cell = circular_inclusion(MPI.COMM_WORLD, PHI, h=H_CELL)
    return laws, SecondOrderCellProblem(cell, laws).solve()


def _strip(tangent, periods: int, **kw) -> float:
    length = 2 * MARGIN + WINDOW
    kw.setdefault("nx", 2 * length)
    kw.setdefault("ny", 2 * periods)
    return macro_strip_bending(
        MPI.COMM_WORLD,
        tangent,
        height=float(periods),
        length=float(length),
        window=(float(MARGIN), float(WINDOW)),
        **kw,
    ).EI


def _bulk_ratio(tangent, periods: int) -> float:
    """The second-order continuum in uniform pure bending (curvature 1, free faces):
    u = (x y, -(x^2 + nu' y^2)/2), nu' = C12/C22, so g = (G_{x,xy}, G_{y,xx}, G_{y,yy}) =
    (1, -1, -nu') and EI/EI_hom = 1 + 12 g.D~.g/(E' H^2), E' = C11 - C12^2/C22."""
    C = tangent.C
    comps = gradient_components(2)
    g = np.zeros(6)
    g[comps.index((0, 0, 1))], g[comps.index((1, 0, 0))] = 1.0, -1.0
    g[comps.index((1, 1, 1))] = -C[0, 1] / C[1, 1]
    E_beam = C[0, 0] - C[0, 1] ** 2 / C[1, 1]
    return 1.0 + 12.0 * (g @ tangent.excess @ g) / (E_beam * periods**2)


@pytest.mark.mpi
def test_particle_strip_macro_solves(particle_tangent):
    """The macro strip against the closed forms of its own continuum: first order gives
    E' H^3/12; the perturbative second order gives the bulk formula of _bulk_ratio on two
    meshes (measured 1e-10: the pure-bending field lies in P2/P1).  Solving with D~ itself
    is ill posed: D~ of the stiff-particle cell is negative definite (every eigenvalue < 0), the
    energy C k^2 + D~ k^4 of short waves turns negative, and the result follows the mesh
    (measured 0.918 at h = 1/2 cell, 0.79 at h = 1/4, N = 2); its positive part is zero, so
    clipping the negative eigenvalues is no remedy (it gives first order back)."""
    _, tangent = particle_tangent
    C = tangent.C
    E_beam = C[0, 0] - C[0, 1] ** 2 / C[1, 1]
    for periods in (2, 4):
        first = _strip(tangent, periods, order=1)
        assert first == pytest.approx(E_beam * periods**3 / 12, rel=1e-8)
        for refine in (1, 2):
            second = _strip(
                tangent,
                periods,
                higher_order="perturbative",
                nx=2 * refine * (2 * MARGIN + WINDOW),
                ny=2 * refine * periods,
            )
            assert second / first == pytest.approx(_bulk_ratio(tangent, periods), rel=1e-8)
    assert np.linalg.eigvalsh(tangent.excess).max() < 0.0
    # its positive part is zero: clipping the negative eigenvalues gives back first order
    psd = _strip(tangent, 2, higher_order="excess_psd")
    assert psd == pytest.approx(_strip(tangent, 2, order=1), rel=1e-7)
    coarse, fine = (_strip(tangent, 2, ny=4 * r, nx=16 * r) for r in (1, 2))
    assert abs(fine / coarse - 1.0) > 0.05


@pytest.mark.mpi
def test_particle_strip_window_reads_the_interior(particle_tangent):
    """The DNS window lies in the interior: 2 more cells of margin at each end change EI by
    less than 1e-3 (measured 7e-5 at N = 4)."""
    laws, _ = particle_tangent
    comm = MPI.COMM_WORLD
    EI = [
        dns_strip_bending(
            comm,
            inclusion_strip(comm, 2, 2 * margin + WINDOW, PHI, h_cell=H_CELL),
            laws,
            window=(float(margin), float(WINDOW)),
        ).EI
        for margin in (MARGIN, MARGIN + 2)
    ]
    assert EI[1] == pytest.approx(EI[0], rel=1e-3)


#: |model/DNS - 1| measured with H_CELL = 0.15 (DNS/first-order 0.886, 0.953, 0.978;
#: second-order/first-order 0.919, 0.980, 0.995): second order 3.7 %, 2.8 %, 1.75 %, first
#: order 12.8 %, 4.9 %, 2.27 %; the bounds (second above, first below) the test holds them to.
STRIP_ERRORS = {2: (0.045, 0.11), 4: (0.035, 0.04), 8: (0.022, 0.02)}


@pytest.mark.mpi
@pytest.mark.parametrize("periods", sorted(STRIP_ERRORS))
def test_particle_strip_size_effect(particle_tangent, periods):
    """The resolved strip (every particle meshed as in the cell) is softer than first-order
    homogenization says: first order errs by 12.8 %, 4.9 %, 2.3 % at N = 2, 4, 8 cells through
    the thickness, second-order FE² (perturbative, see macro_strip_bending) by 3.7 %, 2.8 %,
    1.75 %, always on the same side and closer (DNS < second < first).  Second order adds the
    bulk O(eps^2) term, 1 - 0.32/N^2; the DNS effect is mostly a free-surface layer, an O(1/N)
    softening that no periodic cell sees (the DNS deficit times N is 0.23, 0.19, 0.18, 0.19 at
    N = 2..16; a fit a/N + b/N^2 gives a = 0.16, b = 0.14, so the DNS does not confirm the
    bulk coefficient 0.32, and the gain over first order shrinks with N)."""
    laws, tangent = particle_tangent
    comm = MPI.COMM_WORLD
    length = 2 * MARGIN + WINDOW
    strip = inclusion_strip(comm, periods, length, PHI, h_cell=H_CELL)
    dns = dns_strip_bending(comm, strip, laws, window=(float(MARGIN), float(WINDOW))).EI
    first = _strip(tangent, periods, order=1)
    second = _strip(tangent, periods, higher_order="perturbative")
    second_bound, first_bound = STRIP_ERRORS[periods]
    assert dns < second < first
    assert abs(second / dns - 1.0) < second_bound
    assert abs(first / dns - 1.0) > first_bound


# -- the particle strip in simple shear with clamped ends: all boundary layer ----------------


def _shear_strip(tangent, periods: int, **kw) -> float:
    margin = periods + 1  # the clamped ends perturb the DNS over about the strip's height
    length = 2 * margin + WINDOW
    kw.setdefault("nx", 2 * length)
    kw.setdefault("ny", 2 * periods)
    return macro_strip(
        MPI.COMM_WORLD,
        tangent,
        loading="shear",
        height=float(periods),
        length=float(length),
        window=(float(margin), float(WINDOW)),
        **kw,
    ).stiffness


@pytest.mark.mpi
def test_shear_strip_macro_is_affine(particle_tangent):
    """Simple shear with every boundary clamped to u = (gamma y, 0): the macro strip's modulus
    is C33 of the cell (the first-order closed form) for first order, for the perturbative
    second order and for D~ solved directly: the clamped affine field has G = 0 and lies in
    the discrete space, so the strain-gradient continuum adds nothing (measured 1e-9)."""
    _, tangent = particle_tangent
    C33 = tangent.C[2, 2]
    for periods in (2, 4):
        assert _shear_strip(tangent, periods, order=1) == pytest.approx(C33, rel=1e-8)
        perturbative = _shear_strip(tangent, periods, higher_order="perturbative")
        assert perturbative == pytest.approx(C33, rel=1e-8)
        assert _shear_strip(tangent, periods) == pytest.approx(C33, rel=1e-7)


#: DNS modulus / first-order modulus - 1 measured with H_CELL = 0.15 and a margin of N + 1
#: cells (a margin of N + 5 changes it by 3e-4 at N = 8, 1.5e-5 at N = 4).
SHEAR_EXCESS = {2: 0.0302, 4: 0.0141, 8: 0.0063}


@pytest.fixture(scope="module")
def shear_dns(particle_tangent):
    laws, _ = particle_tangent
    comm = MPI.COMM_WORLD
    out = {}
    for periods in sorted(SHEAR_EXCESS):
        margin = periods + 1
        strip = inclusion_strip(comm, periods, 2 * margin + WINDOW, PHI, h_cell=H_CELL)
        window = (float(margin), float(WINDOW))
        out[periods] = dns_strip(comm, strip, laws, loading="shear", window=window).stiffness
    return out


@pytest.mark.mpi
def test_shear_strip_size_effect(particle_tangent, shear_dns):
    """The resolved strip (every particle meshed) in simple shear between clamped faces and
    clamped ends is stiffer than homogenization says, by 3.0 %, 1.4 %, 0.63 % at N = 2, 4, 8:
    the clamped faces forbid the fluctuation in the cells they cut through, a boundary layer
    of fixed thickness whose share of the height falls like 1/N (measured rates 1.10 and 1.16;
    with N = 16, 0.27 %).  First and second order (which coincide here, see
    test_shear_strip_macro_is_affine) both err by exactly that: a periodic cell cannot see a
    boundary layer, and in simple shear there is no strain gradient for the second-order
    terms to act on."""
    _, tangent = particle_tangent
    C33 = tangent.C[2, 2]
    periods = sorted(SHEAR_EXCESS)
    excess = np.array([shear_dns[n] / C33 - 1.0 for n in periods])
    np.testing.assert_allclose(excess, [SHEAR_EXCESS[n] for n in periods], rtol=0.05)
    rates = -np.diff(np.log(excess)) / np.diff(np.log(periods))
    assert np.all((rates > 0.9) & (rates < 1.3)), rates
    assert np.all(excess > 0.0)
    for n, e in zip(periods, excess, strict=True):  # both orders err by e / (1 + e)
        second = _shear_strip(tangent, n, higher_order="perturbative")
        assert abs(second / shear_dns[n] - 1.0) == pytest.approx(e / (1.0 + e), rel=1e-6)


# -- nonlinear phases: the second-order RVE (J2 plasticity) -----------------------------------

J2_MATRIX = J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=0.1)
ELASTIC_INCLUSION = IsotropicElasticity.from_young(10.0, 0.2)
#: a generalized load direction e = ({E}, g) that yields the matrix (scaled along the path)
PLASTIC_DIRECTION = np.array([0.02, -0.006, 0.008, 0.01, 0.03, -0.004, -0.03, 0.005, 0.002])


@pytest.fixture(scope="module")
def j2_rve(inclusion_cell):
    """The inclusion cell of inclusion_cell with a J2 matrix, and the linear cell's tangent
    with the matrix's elastic constants."""
    cell, _, _, _ = inclusion_cell
    rve = SecondOrderRVE(cell, {"matrix": J2_MATRIX, "inclusion": ELASTIC_INCLUSION})
    elastic = {
        "matrix": IsotropicElasticity(J2_MATRIX.lmbda, J2_MATRIX.mu),
        "inclusion": ELASTIC_INCLUSION,
    }
    linear = SecondOrderCellProblem(cell, elastic, degree=2).solve()
    return rve, linear


def _load(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return voigt_to_strain(e[:3]), e[3:]


def _generalized_stress(response) -> np.ndarray:
    return np.concatenate([response.stress, response.double_stress])


@pytest.mark.mpi
def test_nonlinear_rve_elastic_range_is_the_linear_cell(j2_rve):
    """Below the yield stress the J2 second-order RVE is the linear second-order cell (an
    independent solver: its own forms, one factorization, unit loads): the consistent 9x9
    tangent equals [[C, B], [B^T, D]] and the response of a small combined load equals the
    tangent's prediction, to 1e-10 (measured 2e-15), with no plastic strain and Hill–Mandel to
    round-off."""
    rve, linear = j2_rve
    K_lin = linear.tangent()
    scale = np.abs(K_lin).max()
    response, _, _ = rve.solve(np.zeros((2, 2)), np.zeros(6))
    np.testing.assert_allclose(response.tangent, K_lin, atol=1e-10 * scale)
    e = 5e-3 * PLASTIC_DIRECTION  # the matrix stays elastic
    response, _, _ = rve.solve(*_load(e))
    atol = 1e-10 * scale * np.abs(e).max()
    np.testing.assert_allclose(_generalized_stress(response), K_lin @ e, atol=atol)
    np.testing.assert_allclose(response.tangent, K_lin, atol=1e-10 * scale)
    assert response.mean_state["p"] == 0.0
    assert response.hill_mandel < 1e-10


@pytest.mark.mpi
def test_nonlinear_rve_plastic_path(j2_rve):
    """Along a plastic path of (E, G) (committing the state after each step): the second-order
    Hill–Mandel condition <sigma:eps> = Sigma:E + Q:G holds at every step (it is the
    equilibrium of the periodic fluctuation, so it holds for the increments too); the
    consistent 9x9 tangent equals central finite differences of (Sigma, q) from the same
    committed state to 1e-6 (measured 4e-10) and has left the elastic one; solve never changes
    the committed state it is given, so re-solving the step reproduces it (the rollback of a
    cut macro step)."""
    rve, linear = j2_rve
    state, previous, guess = None, None, None
    mean_p = []
    for a in (0.25, 0.5, 0.75, 1.0, 1.25):
        response, new_state, guess = rve.solve(*_load(a * PLASTIC_DIRECTION), state, guess)
        assert response.hill_mandel < 1e-10
        mean_p.append(response.mean_state["p"])
        previous, state = state, new_state
    assert np.all(np.diff(mean_p) > 0.0) and mean_p[0] > 0.0, mean_p
    e = 1.25 * PLASTIC_DIRECTION
    kept = previous.copy()
    response, again, fluctuation = rve.solve(*_load(e), previous)
    np.testing.assert_array_equal(previous, kept)
    np.testing.assert_allclose(again, state, atol=1e-12 * np.abs(state).max())
    K = response.tangent
    h = 1e-6
    fd = np.zeros_like(K)
    for m in range(K.shape[1]):
        step = h * np.eye(K.shape[1])[m]
        plus = rve.solve(*_load(e + step), previous, fluctuation, tangent=None)[0]
        minus = rve.solve(*_load(e - step), previous, fluctuation, tangent=None)[0]
        fd[:, m] = (_generalized_stress(plus) - _generalized_stress(minus)) / (2 * h)
    scale = np.abs(K).max()
    np.testing.assert_allclose(K, fd, atol=1e-6 * scale)
    np.testing.assert_allclose(K, K.T, atol=1e-10 * scale)
    assert np.abs(K - linear.tangent()).max() > 0.1 * scale


def _uniaxial_radial_return(e: float, law: J2Plasticity) -> tuple[float, float, float]:
    """sigma_xx, sigma_yy and p of the 3D radial return from the virgin state under the plane
    uniaxial strain diag(e, 0, 0): s_tr = 2 mu e (2, -1, -1)/3, q_tr = 2 mu |e|,
    dp = <q_tr - sigma_y>/(3 mu + H), sigma = K e I + (1 - 3 mu dp/q_tr) s_tr."""
    mu, K = law.mu, law.lmbda + 2.0 * law.mu / 3.0
    q_tr = 2.0 * mu * abs(e)
    dp = max(q_tr - law.sigma_y, 0.0) / (3.0 * mu + law.H)
    factor = 1.0 - 3.0 * mu * dp / q_tr
    return K * e + factor * 4.0 * mu * e / 3.0, K * e - factor * 2.0 * mu * e / 3.0, dp


@pytest.mark.mpi
def test_homogeneous_j2_cell_is_the_radial_return():
    """A homogeneous J2 cell under G = 0 and the uniaxial strain diag(e, 0): Sigma is the
    closed-form radial return (to 1e-10), q = 0 (uniform stress about the cell centre), the
    mean plastic strain is dp; a second, larger step from the committed state gives the
    closed form again (a proportional path: the return is exact)."""
    law = J2Plasticity.from_young(2.0, 0.3, sigma_y=0.02, H=0.2)
    cell = layered_strip(MPI.COMM_WORLD, "edges", 1, length=2.0, nx=4, per_layer=2)
    rve = SecondOrderRVE(cell, {"stiff": law, "soft": law})
    state = None
    for e in (0.02, 0.035):
        response, state, _ = rve.solve(np.diag([e, 0.0]), np.zeros(6), state)
        sxx, syy, dp = _uniaxial_radial_return(e, law)
        assert dp > 0.0
        np.testing.assert_allclose(response.stress, [sxx, syy, 0.0], atol=1e-10 * abs(sxx))
        assert np.abs(response.double_stress).max() < 1e-10 * abs(sxx)
        assert response.mean_state["p"] == pytest.approx(dp, rel=1e-10)
        assert response.hill_mandel < 1e-10


@pytest.mark.mpi
def test_second_order_micro_model_in_the_pool():
    """Six macro points spread over the ranks of a MicroPool, each with its own J2 cell and
    history, along two plastic steps (commit after the first; the second evaluated, rolled
    back and evaluated again): every point's (Sigma, q) and 9x9 tangent equal those of a
    SecondOrderRVE solved directly on this rank along the same path (to 1e-8: the pool starts
    Newton from the predictor), so 1, 2 and 3 ranks give the same responses."""
    comm = MPI.COMM_WORLD
    n_total = 6
    mine = np.array_split(np.arange(n_total), comm.size)[comm.rank]
    loads = [(0.4 + 0.15 * k) * np.roll(PLASTIC_DIRECTION, k) for k in range(n_total)]
    laws = {"matrix": J2_MATRIX, "inclusion": ELASTIC_INCLUSION}

    def make_cell(c):
        return circular_inclusion(c, 0.3, h=0.15)

    pool = MicroPool(comm)
    try:
        model = SecondOrderMicroModel(pool, make_cell, laws, len(mine))
        first = model.evaluate(np.array([loads[k] for k in mine]).reshape(len(mine), 9))
        assert not first.failures
        model.commit()
        second_e = np.array([1.6 * loads[k] for k in mine]).reshape(len(mine), 9)
        model.evaluate(second_e)
        model.rollback()
        second = model.evaluate(second_e)
        model.destroy()
    finally:
        pool.destroy()
    reference = SecondOrderRVE(make_cell(MPI.COMM_SELF), laws)
    for row, k in enumerate(mine):
        state = None
        for factor, got in ((1.0, first), (1.6, second)):
            e = factor * loads[k]
            response, state, _ = reference.solve(*_load(e), state)
            expected = _generalized_stress(response)
            value = np.concatenate([got.stress[row], got.double_stress[row]])
            np.testing.assert_allclose(value, expected, atol=1e-8 * np.abs(expected).max())
            K = response.tangent
            np.testing.assert_allclose(got.tangent[row], K, atol=1e-8 * np.abs(K).max())
            assert got.mean_p[row] == pytest.approx(response.mean_state["p"], rel=1e-8)
            assert got.hill_mandel[row] < 1e-10
    reference.destroy()
    assert comm.allreduce(len(mine)) == n_total
