"""Bloch waves against independent references.

* 1D layered medium (E 1 and 10, rho 1, layers 1/2 and 1/2): Rytov's closed-form dispersion
  relation, solved here with brentq, gives the band edges and every band; the long-wave speed is
  sqrt(E_harm/rho).
* 2D homogeneous cell: the free-space dispersion omega = c|k + G| folded into the Brillouin zone
  (scalar; elastic with the S and P speeds).
* 2D phononic crystal: the long-wave slopes against the speeds of the homogenized medium, from the
  effective tensor of the package's cell solver.
* The k-points distributed over 2 ranks give what one rank gives.
"""

from __future__ import annotations

import itertools
import math

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI
from scipy.optimize import brentq

from multiscale.cell import homogenize
from multiscale.cell.bloch import (
    BlochSolver,
    WavePhase,
    dispersion,
    find_gaps,
    kpath,
    layered_cell,
)
from multiscale.mesh import CellMesh, circular_inclusion
from multiscale.tensors import stiffness_to_tensor

# -- 1D: Rytov ------------------------------------------------------------------------------
E1, E2, RHO, H1, H2 = 1.0, 10.0, 1.0, 0.5, 0.5
LAYERS = {"layer0": WavePhase.scalar(E1, RHO), "layer1": WavePhase.scalar(E2, RHO)}
GAP = (3.41040, 5.67849)  # the numbers: 5 decimals, truncated (3.4104051, 5.6784902)
SPEED = 1.348400


def rytov(omega: np.ndarray | float) -> np.ndarray | float:
    """Right-hand side of cos(k a) = cos(w h1/c1) cos(w h2/c2)
    - 1/2 (Z1/Z2 + Z2/Z1) sin(w h1/c1) sin(w h2/c2), Z = rho c, c = sqrt(E/rho)."""
    c1, c2 = math.sqrt(E1 / RHO), math.sqrt(E2 / RHO)
    z1, z2 = RHO * c1, RHO * c2
    p1, p2 = omega * H1 / c1, omega * H2 / c2
    return np.cos(p1) * np.cos(p2) - 0.5 * (z1 / z2 + z2 / z1) * np.sin(p1) * np.sin(p2)


def rytov_roots(target: float, count: int, omega_max: float = 60.0) -> np.ndarray:
    """The first ``count`` roots omega > 0 of rytov(omega) = target, bracketed on a fine grid."""
    w = np.linspace(1e-6, omega_max, 120001)
    g = rytov(w) - target
    sign_change = np.nonzero(np.sign(g[:-1]) != np.sign(g[1:]))[0]
    roots = [brentq(lambda x: rytov(x) - target, w[j], w[j + 1], xtol=1e-14) for j in sign_change]
    assert len(roots) >= count
    return np.array(roots[:count])


def test_rytov_reference_numbers():
    """The reference itself: the first gap (the roots of rytov = -1 at k a = pi) and the
    harmonic-mean speed are the issue's numbers (roots 3.41040509, 5.67849023)."""
    low, high = rytov_roots(-1.0, 2)
    assert 0 <= low - GAP[0] < 1e-5 and 0 <= high - GAP[1] < 1e-5
    assert abs(1.0 / math.sqrt(RHO * (H1 / E1 + H2 / E2)) - SPEED) < 5e-7


def _gap_edges(degree: int, h: float) -> np.ndarray:
    """FE frequencies of bands 1 and 2 at k a = pi (the gap edges of a 1D crystal)."""
    with BlochSolver(
        layered_cell(MPI.COMM_SELF, [H1, H2], h), LAYERS, degree=degree, nbands=2
    ) as solver:
        return solver.solve([math.pi])


@pytest.mark.parametrize(("degree", "sizes"), [(1, [1 / 32, 1 / 64]), (2, [1 / 8, 1 / 16, 1 / 32])])
def test_layered_gap_edges_converge_at_rate_2p(degree, sizes):
    """Errors of the gap edges against Rytov fall as h^(2p) (eigenvalue rate; measured P1:
    2.00, P2: 3.96-3.99)."""
    exact = rytov_roots(-1.0, 2)
    errors = np.array([np.abs(_gap_edges(degree, h) / exact - 1.0) for h in sizes])
    rates = np.log2(errors[:-1] / errors[1:])
    assert np.all(np.abs(rates - 2 * degree) < 0.15), rates


@pytest.mark.mpi
def test_layered_gap_and_long_wave_speed():
    """P2, h = 1/32 along Gamma-X, 3 bands: the first gap (edges at k a = pi, rytov = -1) and
    the second (at k = 0, rytov = +1) to 1e-4 of Rytov (measured 2.1e-6, 4.4e-6 for the first),
    and the long-wave speed sqrt(E_harm/rho): in 1D the discrete cell
    problem is exact (piecewise constant flux), so only the O(delta^4) extrapolation and the
    eigensolver tolerance remain (measured 3e-9)."""
    path = kpath(["G", "X"], [1.0], 8)
    result = dispersion(lambda c: layered_cell(c, [H1, H2], 1 / 32), LAYERS, path, nbands=3)
    exact = [rytov_roots(-1.0, 2), rytov_roots(1.0, 2)]  # omega = 0 is no bracketed root
    assert [g[0] for g in result.gaps] == [0, 1]
    for (_, low, high), edges in zip(result.gaps, exact, strict=True):
        assert abs(low / edges[0] - 1) < 1e-4 and abs(high / edges[1] - 1) < 1e-4
    harmonic = 1.0 / (H1 / E1 + H2 / E2)
    assert abs(result.long_wave_speeds[0] / math.sqrt(harmonic / RHO) - 1) < 1e-7
    assert abs(result.long_wave_speeds[0] - SPEED) < 1e-6


def test_layered_every_band_against_rytov():
    """Six bands at k a = pi/4, pi/2, 3pi/4, pi (P2, h = 1/64) against the bracketed roots of
    Rytov's relation: 1e-4 relative (measured at most 2.0e-5, on band 6)."""
    cell = layered_cell(MPI.COMM_SELF, [H1, H2], 1 / 64)
    with BlochSolver(cell, LAYERS, degree=2, nbands=6) as solver:
        for ka in np.pi * np.array([0.25, 0.5, 0.75, 1.0]):
            omega = solver.solve([ka])
            exact = rytov_roots(math.cos(ka), 6)
            np.testing.assert_allclose(omega, exact, rtol=1e-4)
            assert np.abs(rytov(omega) - math.cos(ka)).max() < 1e-3  # the relation itself


# -- 2D: free space ----------------------------------------------------------------------------
def square_cell(comm: MPI.Comm, n: int) -> CellMesh:
    """The unit square, one phase, n x n crossed triangles (periodic by construction)."""
    mesh = dolfinx.mesh.create_unit_square(comm, n, n, diagonal=dolfinx.mesh.DiagonalType.crossed)
    imap = mesh.topology.index_map(2)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    tags = dolfinx.mesh.meshtags(mesh, 2, cells, np.ones_like(cells))
    return CellMesh(mesh, tags, {"solid": 1}, np.array([[0.0, 0.0], [1.0, 1.0]]))


def free_space(k: np.ndarray, speeds: list[float], count: int) -> np.ndarray:
    """omega = c |k + G| over the reciprocal lattice G = 2 pi Z^2, all speeds, lowest first."""
    G = 2 * np.pi * np.array(list(itertools.product(range(-3, 4), repeat=2)), dtype=float)
    q = np.linalg.norm(k + G, axis=1)
    return np.sort(np.concatenate([c * q for c in speeds]))[:count]


ELASTIC = WavePhase.elastic(1.0, 0.3, 1.0)
FREE_CASES = {
    "scalar": ({"solid": WavePhase.scalar(2.0, 0.5)}, [2.0]),
    "elastic": (
        {"solid": ELASTIC},
        [math.sqrt(ELASTIC.law.mu), math.sqrt(ELASTIC.law.lmbda + 2 * ELASTIC.law.mu)],
    ),
}


@pytest.mark.parametrize("case", sorted(FREE_CASES))
def test_homogeneous_cell_free_space_dispersion(case):
    """Six bands at X, M and an interior k on the crossed 4x4 and 8x8 P2 meshes: the largest
    relative error against c|k + G| falls at the eigenvalue rate h^(2p) = h^4 (asserted > 3.5;
    measured 3.80 scalar, 3.82 elastic) and is below 1e-3 on the 8x8 mesh (measured 8.5e-4
    scalar, 9.3e-4 elastic, on the sixth band: the error grows like omega^(2p+2) h^(2p)); the
    long-wave speeds are the phase speeds to 1e-7 (the discrete cell problem of a homogeneous
    cell is exact)."""
    phases, speeds = FREE_CASES[case]
    ks = np.pi * np.array([[1.0, 0.0], [1.0, 1.0], [0.4, 0.15]])
    errors = []
    for n in (4, 8):
        with BlochSolver(square_cell(MPI.COMM_SELF, n), phases, nbands=6) as solver:
            err = [np.abs(solver.solve(k) / free_space(k, speeds, 6) - 1).max() for k in ks]
            errors.append(max(err))
            small = solver.long_wave_points([1.0, 0.0])
            omega = np.array([solver.solve(k) for k in small])
            got = np.sort(solver.acoustic_speeds(omega, small))
            np.testing.assert_allclose(got, sorted(speeds)[: solver.ncomp], rtol=1e-7)
    assert errors[1] < 1e-3, errors
    assert math.log2(errors[0] / errors[1]) > 3.5, errors


# -- 2D: phononic crystal against homogenization ---------------------------------------------
CRYSTALS = {
    "scalar": {"matrix": WavePhase.scalar(1.0, 1.0), "inclusion": WavePhase.scalar(10.0, 3.0)},
    "elastic": {
        "matrix": WavePhase.elastic(1.0, 0.3, 1.0),
        "inclusion": WavePhase.elastic(10.0, 0.25, 3.0),
    },
}


def _homogenized(cell: CellMesh, phases: dict[str, WavePhase], normals: list) -> list:
    """Speeds of the homogenized medium along each normal: the acoustic tensor of the periodic
    effective tensor of the cell solver (same mesh and degree) over the mean density."""
    laws = {name: p.law for name, p in phases.items()}
    tensor = homogenize(cell, laws, "periodic", degree=2).tensor
    fractions = cell.volume_fractions()
    rho = sum(fractions[name] * p.density for name, p in phases.items())
    out = []
    for n in normals:
        if tensor.shape == (2, 2):
            out.append(np.array([math.sqrt(n @ tensor @ n / rho)]))
            continue
        gamma = np.einsum("ijkl,j,l->ik", stiffness_to_tensor(tensor), n, n) / rho
        out.append(np.sqrt(np.sort(np.linalg.eigvalsh(gamma))))
    return out


@pytest.mark.mpi
@pytest.mark.parametrize("case", sorted(CRYSTALS))
def test_phononic_crystal_long_waves_are_homogenized(case):
    """Disk of area fraction 0.3 (E 10, rho 3) in a matrix (E 1, rho 1), P2 on the h = 0.1 gmsh
    cell: the acoustic slopes along Gamma-X and Gamma-M equal the homogenized speeds to 1e-6
    relative (measured 1e-9 to 5e-9).  Why so tight: on the same FE space, the k^2 term of the
    discrete Bloch eigenvalue is exactly the discrete periodic cell problem, so the difference is
    only the O(delta^4) of the two-point extrapolation plus the eigensolver tolerance, not a
    discretization error."""
    phases = CRYSTALS[case]
    got = [
        dispersion(
            lambda c: circular_inclusion(c, 0.3, h=0.1),
            phases,
            kpath(["G", corner], [1.0, 1.0], 1),
            nbands=2,
        ).long_wave_speeds
        for corner in ("X", "M")
    ]
    normals = [np.array([1.0, 0.0]), np.array([1.0, 1.0]) / math.sqrt(2.0)]
    expected = _homogenized(circular_inclusion(MPI.COMM_SELF, 0.3, h=0.1), phases, normals)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6)


# -- ranks -------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_distributed_k_points_match_one_rank():
    """k-points spread over the ranks by the micro pool give the frequencies of the same path
    solved on one rank, to the eigensolver tolerance (1e-9 relative)."""
    cases = [
        (lambda c: layered_cell(c, [H1, H2], 1 / 16), LAYERS, kpath(["G", "X"], [1.0], 5)),
        (
            lambda c: square_cell(c, 4),
            {"solid": ELASTIC},
            kpath(["G", "X", "M", "G"], [1.0, 1.0], 2),
        ),
    ]
    for make_cell, phases, path in cases:
        spread = dispersion(make_cell, phases, path, comm=MPI.COMM_WORLD, nbands=4)
        alone = dispersion(make_cell, phases, path, comm=MPI.COMM_SELF, nbands=4)
        scale = alone.frequencies.max()
        np.testing.assert_allclose(spread.frequencies, alone.frequencies, atol=1e-9 * scale)
        np.testing.assert_allclose(spread.long_wave_speeds, alone.long_wave_speeds, rtol=1e-9)
        assert len(spread.gaps) == len(alone.gaps)


def test_find_gaps_needs_a_complete_gap():
    """Band 0 overlapping band 1 over the path is no gap; touching bands are none either."""
    f = np.array([[0.0, 2.0, 3.0, 4.0], [1.9, 1.8, 3.0, 3.5], [1.0, 2.5, 3.5, 5.0]])
    assert find_gaps(f) == [(1, 2.5, 3.0)]
