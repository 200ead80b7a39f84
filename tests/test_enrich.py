r"""Singular-function enrichment (:mod:`multiscale.cell.enrich`) against independent references.

* Kellogg exponents of the checkerboard junction against the closed form
  :math:`\frac{2}{\pi}\arccos\frac{c-1}{c+1}` (c = 10, 100, 1000: 1e-10, measured 4e-16); a
  straight two-phase interface and a homogeneous medium give no exponent below 1; the dual
  laws :math:`1/k` give the same exponents.
* the modes solve the local problem: pointwise continuity of :math:`s` and of the normal flux
  :math:`k r^{-1}\partial_\theta s` across every sector edge, and a vanishing finite-difference
  Laplacian inside the sectors (r < R_1).
* :math:`S_{mn} = a(s_m, s_n)` (radial quadrature and closed forms) against two independent
  double integrals (tensor Gauss-Legendre): :math:`\int k|\nabla s|^2` from the Cartesian
  gradient (substitution :math:`v = (r/R_2)^{2\lambda}`, which removes the singularity) and
  Green's formula :math:`-\int s F`.
* the composite rule of the cut cells: :math:`\int F = 0` (divergence theorem, compact support)
  and :math:`-\int s F = S` on the coarse h = 1/4 mesh.
* the certified bounds keep bracketing :math:`\sqrt{c}` with the enrichment and are tighter
  than without; the enriched Hill–Mandel residual is round-off; 1 and 2 ranks agree.
"""

from __future__ import annotations

import math

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cell.certify import certify
from multiscale.cell.enrich import (
    _ModeExpressions,
    annulus_measure,
    energy_matrix,
    evaluate,
    find_junctions,
    singular_modes,
)
from multiscale.mesh.generators import checkerboard
from multiscale.physics import Conductivity

COMM = MPI.COMM_WORLD
QUARTERS = [math.pi / 2] * 4


def _alpha(c: float) -> float:
    return 2 / math.pi * math.acos((c - 1) / (c + 1))


@pytest.mark.parametrize("c", [10.0, 100.0, 1000.0])
def test_checkerboard_exponent_closed_form(c):
    modes = singular_modes(QUARTERS, [1.0, c, 1.0, c])
    assert len(modes) == 1
    assert abs(modes[0].exponent - _alpha(c)) < 1e-10
    dual = singular_modes(QUARTERS, [1.0, 1 / c, 1.0, 1 / c])
    assert abs(dual[0].exponent - _alpha(c)) < 1e-10
    # Beyond 1: 2 - alpha, the double 2 and 2 + alpha.
    high = [m.exponent for m in singular_modes(QUARTERS, [1.0, c, 1.0, c], max_exponent=2.5)]
    np.testing.assert_allclose(high, [_alpha(c), 2 - _alpha(c), 2, 2, 2 + _alpha(c)], atol=1e-9)


def test_no_singularity_without_a_corner():
    assert singular_modes([math.pi, math.pi], [1.0, 10.0]) == []
    assert singular_modes([2 * math.pi], [3.0]) == []
    assert singular_modes(QUARTERS, [2.0] * 4) == []


def _junction(c: float):
    cell = checkerboard(COMM, 2, h=0.25, offset=(0.5, 0.5))
    return cell, find_junctions(cell, {1: 1.0, 2: c})


def test_junctions_of_the_offset_checkerboard():
    _, junctions = _junction(100.0)
    points = sorted(tuple(j.point) for j in junctions)
    assert points == [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]
    for j in junctions:
        assert len(j.sectors) == 4
        np.testing.assert_allclose([s.width for s in j.sectors], QUARTERS, atol=1e-12)
        assert j.r_outer == pytest.approx(0.9 * 0.25)  # the distance to the cell boundary


@pytest.mark.parametrize("c", [10.0, 1000.0])
def test_modes_satisfy_the_interface_conditions(c):
    _, junctions = _junction(c)
    j = junctions[0]
    mode = j.modes[0]
    r = 0.5 * j.r_inner
    eps = 1e-9
    for i, sector in enumerate(j.sectors):
        edge = sector.start
        k_before = j.sectors[i - 1].k
        theta = np.array([edge - eps, edge + eps])
        pts = j.point[:, None] + r * np.array([np.cos(theta), np.sin(theta)])
        s, grad, _ = evaluate(mode, j, pts)
        normal = np.array([-math.sin(edge), math.cos(edge)])
        flux = np.array([k_before, sector.k]) * (normal @ grad)
        assert abs(s[0] - s[1]) < 1e-6 * np.abs(s).max()
        assert abs(flux[0] - flux[1]) < 1e-6 * np.abs(flux).max() + 1e-12
        # Harmonic inside the sector: 5-point Laplacian at its bisector.
        mid = edge + 0.5 * sector.width
        p = j.point + r * np.array([math.cos(mid), math.sin(mid)])
        hfd = 1e-3 * r
        stencil = p[:, None] + hfd * np.array([[0, 1, -1, 0, 0], [0, 0, 0, 1, -1]])
        v, g, source = evaluate(mode, j, stencil)
        lap = (v[1:].sum() - 4 * v[0]) / hfd**2
        assert abs(lap) < 1e-4 * np.linalg.norm(g[:, 0]) / r
        assert source[0] == 0.0


def _gauss(a: float, b: float, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (b - a) * (x + 1) + a, 0.5 * (b - a) * w


@pytest.mark.parametrize("c", [10.0, 1000.0])
def test_energy_matrix_against_double_integrals(c):
    """Tensor Gauss-Legendre in (radius, angle) per sector, the radial interval split at the
    kinks of the cutoff (every piece smooth)."""
    _, junctions = _junction(c)
    j = junctions[0]
    mode = j.modes[0]
    lam, r1, r2 = mode.exponent, j.r_inner, j.r_outer
    S = energy_matrix(j)[0, 0]
    direct = green = 0.0
    v1 = (r1 / r2) ** (2 * lam)
    for s in j.sectors:
        t, wt = _gauss(s.start, s.start + s.width, 64)
        # k |grad s|^2 r dr dtheta, r = R2 v^(1/(2 lam)), r^(2 lam - 1) dr = R2^(2 lam) dv/(2 lam);
        # below R1 the weighted density is independent of r: points closer than 1e-8 (which
        # round to the junction) are evaluated at 1e-8.
        for a, b in ((0.0, v1), (v1, 1.0)):
            v, wv = _gauss(a, b)
            V, T = np.meshgrid(v, t, indexing="ij")
            r = np.maximum(r2 * V.ravel() ** (1 / (2 * lam)), 1e-8)
            pts = j.point[:, None] + r * np.array([np.cos(T.ravel()), np.sin(T.ravel())])
            _, grad, _ = evaluate(mode, j, pts)
            dens = s.k * (grad**2).sum(axis=0) * r ** (2 - 2 * lam) * r2 ** (2 * lam) / (2 * lam)
            direct += np.outer(wv, wt).ravel() @ dens
        rr, wr = _gauss(r1, r2)
        R, T = np.meshgrid(rr, t, indexing="ij")
        pts = j.point[:, None] + R.ravel() * np.array([np.cos(T.ravel()), np.sin(T.ravel())])
        value, _, source = evaluate(mode, j, pts)
        green += np.outer(wr, wt).ravel() @ (-value * source * R.ravel())
    assert direct == pytest.approx(S, rel=1e-9)
    assert green == pytest.approx(S, rel=1e-9)


@pytest.mark.mpi
def test_composite_rule_on_the_coarse_cells():
    cell, junctions = _junction(1000.0)
    dxa = annulus_measure(cell, junctions)
    for j in junctions:
        e = _ModeExpressions(cell.mesh, j, j.modes[0])

        def total(expr):
            form = dolfinx.fem.form(sum(expr * d for d in dxa))
            return COMM.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

        scale = total(abs(e.source))
        assert abs(total(e.source)) < 1e-9 * scale
        assert -total(e.value * e.source) == pytest.approx(energy_matrix(j)[0, 0], rel=1e-8)


def _laws(c: float) -> dict:
    return {"phase0": Conductivity(1.0), "phase1": Conductivity(c)}


@pytest.mark.mpi
@pytest.mark.parametrize("c", [100.0, 1000.0])
def test_enriched_bounds_bracket_and_tighten(c):
    cell = checkerboard(COMM, 2, h=0.0625, offset=(0.5, 0.5))
    plain = certify(cell, _laws(c), enrich=False)
    rich = certify(cell, _laws(c), enrich=True)
    exact = math.sqrt(c)
    for result in (plain, rich):
        assert np.linalg.eigvalsh(result.lower).max() <= exact * (1 + 1e-12)
        assert np.linalg.eigvalsh(result.upper.tensor).min() >= exact * (1 - 1e-12)
    assert rich.error_estimate < plain.error_estimate
    assert rich.upper.hill_mandel_residual < 1e-10
    info = rich.to_dict()["enrichment"]
    assert len(info) == 4
    assert all(abs(e["exponents"][0] - _alpha(c)) < 1e-10 for e in info)
    assert plain.to_dict()["enrichment"] == []


def test_enrich_refuses_anisotropic_phases():
    from multiscale.physics import AnisotropicConductivity

    cell = checkerboard(COMM, 2, h=0.25, offset=(0.5, 0.5))
    laws = {"phase0": AnisotropicConductivity(np.eye(2)), "phase1": Conductivity(10.0)}
    with pytest.raises(ValueError, match="isotropic"):
        certify(cell, laws, enrich=True)
    assert certify(cell, laws, enrich="auto").enrichment == ()
    with pytest.raises(ValueError, match="enrich"):
        certify(cell, _laws(10.0), enrich="yes")


@pytest.mark.mpi
def test_ranks_agree():
    """The enriched bounds of the distributed cell against the same cell solved by each rank
    alone (``COMM_SELF``): the junctions, the Schur complement and the integrals over the
    annuli are collective and must not depend on the partition."""
    laws = _laws(100.0)
    result = certify(checkerboard(COMM, 2, h=0.0625, offset=(0.5, 0.5)), laws, enrich=True)
    alone = certify(checkerboard(MPI.COMM_SELF, 2, h=0.0625, offset=(0.5, 0.5)), laws, enrich=True)
    assert len(result.enrichment) == len(alone.enrichment) == 4
    assert result.error_estimate == pytest.approx(alone.error_estimate, rel=1e-10)
    np.testing.assert_allclose(result.upper.tensor, alone.upper.tensor, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.lower, alone.lower, rtol=1e-10, atol=1e-12)
