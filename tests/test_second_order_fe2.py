"""Second-order FE² with a cell at every macro point (:mod:`multiscale.fe2.strain_gradient`).

Linear laminated beam, through the Newton path and the micro pool: the closed-form size effect
EI/EI_hom = 1 + 12 D/(<E> p^3 N^2) for the excess and the perturbative readings, EI_hom for first
order.  J2 laminated strip bent by its ends: the work of the bending moment against the strip
with every layer resolved (the DNS, with the same end conditions), elastic then plastic.
"""

from __future__ import annotations

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from multiscale.fe2.dns import DNSProblem
from multiscale.fe2.second_order import (
    STACKINGS,
    layered_strip,
    pure_bending_ends,
    strip_conditions,
)
from multiscale.fe2.strain_gradient import SecondOrderFE2Problem
from multiscale.mesh.macro import tag_box_sides
from multiscale.mesh.tiled import TiledMesh
from multiscale.physics import IsotropicElasticity, J2Plasticity

MODULI = {"stiff": 10.0, "soft": 1.0}


def closed_form_ratio(stacking: str, periods: int) -> float:
    """EI/EI_hom from the layer moduli: D = int over a period (p = 1) of (E - <E>) z^2 dz, the
    layers' thickness fractions integrated exactly (piecewise z^3/3)."""
    fractions = np.array([f for f, _ in STACKINGS[stacking]])
    E = np.array([MODULI[name] for _, name in STACKINGS[stacking]])
    z = np.concatenate([[0.0], np.cumsum(fractions)]) - 0.5
    mean = float(fractions @ E)
    D = float(np.sum((E - mean) * (z[1:] ** 3 - z[:-1] ** 3) / 3.0))
    return 1.0 + 12.0 * D / (mean * periods**2)


def _strip_mesh(comm: MPI.Comm, box: np.ndarray, nx: int, ny: int):
    mesh = dolfinx.mesh.create_rectangle(comm, list(box), [nx, ny], dolfinx.mesh.CellType.triangle)
    return tag_box_sides(mesh, box[0], box[1])


def _cell(stacking: str):
    return lambda comm: layered_strip(comm, stacking, 1, period=1.0, length=1.0, nx=2)


def test_closed_form_ratio_constant():
    """The issue's constants 1 +- 0.613636/N^2."""
    assert closed_form_ratio("edges", 1) == pytest.approx(1.613636, abs=1e-6)
    assert closed_form_ratio("centre", 1) == pytest.approx(1 - 0.613636, abs=1e-6)


@pytest.mark.mpi
@pytest.mark.parametrize("stacking", sorted(STACKINGS))
def test_laminated_beam_size_effect_through_the_newton_path(stacking):
    """u and grad u of pure bending at both ends (N = 2 periods, Poisson's ratio 0): the
    load conjugate P = 2 Pi at load factor 1 gives EI = P/(kappa^2 L): first order EI_hom =
    <E> H^3/12, the excess reading and the perturbative work W_2 = Pi_2 the closed form
    (measured 1e-13)."""
    comm, periods, L, kappa = MPI.COMM_WORLD, 2, 1.0, 0.01
    H = float(periods)
    box = np.array([[0.0, -H / 2], [L, H / 2]])
    laws = {name: IsotropicElasticity.from_young(E, 0.0) for name, E in MODULI.items()}
    EI_hom = 5.5 * H**3 / 12
    expected = {1: EI_hom, 2: closed_form_ratio(stacking, periods) * EI_hom}
    for order, higher_order in ((1, "perturbative"), (2, "excess"), (2, "perturbative")):
        with SecondOrderFE2Problem(
            _strip_mesh(comm, box, 4, 4),
            _cell(stacking),
            laws,
            order=order,
            higher_order=higher_order,
            dirichlet=lambda W: pure_bending_ends(W, L, kappa),
        ) as problem:
            assert problem.micro.linear
            step = problem.solve([1.0]).steps[-1]
        q = step.quantities
        if higher_order == "excess" or order == 1:
            assert q["load_conjugate"] / (kappa**2 * L) == pytest.approx(expected[order], rel=1e-10)
        # the work of the stresses the step integrated: 2 W = P for a linear problem
        assert 2 * q["work"] / (kappa**2 * L) == pytest.approx(
            q["load_conjugate"] / (kappa**2 * L), rel=1e-10
        )
        if higher_order == "perturbative" and order == 2:
            assert 2 * q["work_second_order"] / (kappa**2 * L) == pytest.approx(
                expected[2], rel=1e-10
            )


J2_LAWS = {
    "stiff": J2Plasticity.from_young(10.0, 0.3, sigma_y=0.05, H=1.0),
    "soft": J2Plasticity.from_young(1.0, 0.3, sigma_y=0.004, H=0.1),
}
FACTORS = [0.15, 0.4, 0.7, 1.0]  # the first step elastic


def _trapezoid(values: list[float]) -> np.ndarray:
    """The work sum_n (P_n + P_{n-1})/2 (lambda_n - lambda_{n-1}) after each step."""
    P = np.concatenate([[0.0], values])
    return np.cumsum(0.5 * (P[1:] + P[:-1]) * np.diff([0.0, *FACTORS]))


@pytest.fixture(scope="module")
def j2_strip():
    """The J2 laminated strip, stiff layers at the period edges, N = 2 periods, L = 2 H, bent
    by its ends to an outer-fibre strain of 0.02 (0.003 after the first step; the soft
    layers yield at 0.004, the stiff ones at 0.005): the resolved strip (P2) and second-order
    FE², the works after each step."""
    comm, periods = MPI.COMM_WORLD, 2
    H, L = float(periods), 2.0 * periods
    kappa = 0.04 / H
    box = np.array([[0.0, -H / 2], [L, H / 2]])
    strip = layered_strip(comm, "edges", periods, period=1.0, length=L, nx=16 * periods)
    dns = DNSProblem(
        TiledMesh(strip, tag_box_sides(strip.mesh, box[0], box[1]), periods),
        J2_LAWS,
        bcs=[],
        dirichlet=lambda V: strip_conditions(V, box, "bending", kappa),
        degree=2,
    )
    W_dns = _trapezoid([s.quantities["load_conjugate"] for s in dns.solve(FACTORS).steps])
    dns.destroy()
    with SecondOrderFE2Problem(
        _strip_mesh(comm, box, 4 * periods, 2 * periods),
        _cell("edges"),
        J2_LAWS,
        dirichlet=lambda W: strip_conditions(W.sub(0), box, "bending", kappa),
    ) as problem:
        steps = problem.solve(FACTORS).steps
    return W_dns, steps


@pytest.mark.mpi
def test_j2_strip_second_order_against_the_resolved_strip(j2_strip):
    """Elastic first step: the perturbative second-order work equals the resolved strip's to
    1e-8 (the linear laminate is exact, measured 7e-12) while first order is 13.3 % low (the
    closed-form size effect).  Plastic steps: second order stays closer to the resolved strip
    than first order (measured -3.4 %, -3.6 %, -2.6 % against -9.1 %, -5.8 %, -4.3 %; the size
    effect fades as the layers yield) and within 4 %."""
    W_dns, steps = j2_strip
    W1 = np.array([s.quantities["work"] for s in steps])
    W2 = np.array([s.quantities["work_second_order"] for s in steps])
    assert W2[0] == pytest.approx(W_dns[0], rel=1e-8)
    assert W1[0] / W_dns[0] == pytest.approx(1.0 / closed_form_ratio("edges", 2), rel=1e-8)
    assert steps[-1].quantities["max_mean_p"] > 1e-3  # the cells have yielded
    e1, e2 = np.abs(W1 / W_dns - 1.0), np.abs(W2 / W_dns - 1.0)
    assert np.all(e2 < e1), (e1, e2)
    assert np.all(e2 < 0.04), e2


@pytest.mark.mpi
def test_j2_strip_first_order_work_matches_its_load_conjugate(j2_strip):
    """The first-order work accumulated from the cells' stresses (trapezoidal in the load)
    against the trapezoidal work of the macro load conjugate: the same to the Newton tolerance
    (measured 1.6e-12)."""
    _, steps = j2_strip
    W1 = np.array([s.quantities["work"] for s in steps])
    WP = _trapezoid([s.quantities["load_conjugate"] for s in steps])
    assert W1 == pytest.approx(WP, rel=1e-8)
