"""Second-order (strain-gradient) homogenization: the cell tangent against closed forms, the
first-order solver and direct solves; the laminated beam's size effect against the exact beam
formula and a resolved simulation; a particle-reinforced strip in bending between constrained
ends (no closed form) against the strip with every particle resolved."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.cell.second_order import (
    SecondOrderCellProblem,
    gradient_components,
    gradient_from_vector,
)
from multiscale.fe2.second_order import (
    STACKINGS,
    bending_stiffness,
    dns_bending_stiffness,
    dns_strip_bending,
    inclusion_strip,
    layered_strip,
    macro_strip_bending,
)
from multiscale.mesh import circular_inclusion
from multiscale.physics import IsotropicElasticity
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
