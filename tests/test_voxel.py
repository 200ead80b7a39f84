r"""The matrix-free voxel cell solver (:mod:`multiscale.cell.voxel`) against independent references.

* a homogeneous cell gives back its phase's stiffness/conductivity to round-off;
* laminates of voxel layers (interfaces on element faces, so :math:`Q_1` represents the exact
  piecewise affine solution): the conductivity is the arithmetic mean along the layers and the
  harmonic mean across, the stiffness Backus' closed form, written out here (measured: 1e-15
  relative, three phases of different Poisson ratios, 2 CG iterations);
* random label arrays against :class:`~multiscale.cell.CellProblem` on the same voxel mesh
  (:func:`~multiscale.mesh.label_grid_cell`): the same discrete :math:`Q_1` problem, assembled,
  with dolfinx_mpc's periodic constraint and a direct solver, so the tensors agree to the
  solvers' tolerance, non-cubic voxels included (measured: 1.5e-12 at 8^3, 2.3e-12 at 12^3 with
  three phases, relative to the largest entry);
* the CG iteration count of a sphere at 16^3 and 32^3 voxels is the same to within a few
  (the FFT preconditioner is spectrally equivalent independently of the grid; measured 27-28,
  27 and, at 48^3, 26-27 per load case; unpreconditioned CG 51 at 8^3 and 126-130 at 16^3);
* every rank returns the rank-0 result; bad input raises one clear ``ValueError``.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.cell.voxel import VoxelCellProblem
from multiscale.mesh import label_grid_cell
from multiscale.physics import Conductivity, IsotropicElasticity

STEEL = IsotropicElasticity.from_young(1.0, 0.2)
STIFF = IsotropicElasticity.from_young(20.0, 0.35)
SOFT = IsotropicElasticity.from_young(3.0, 0.45)


def _backus(fractions, stiffnesses, normal_rows, tangent_rows):
    """Laminate of Voigt stiffnesses (engineering shears) with continuous tangential strains and
    normal stresses: Backus (1962) averaging, written out independently of the package."""
    n, t = list(normal_rows), list(tangent_rows)
    avg = lambda terms: sum(f * a for f, a in zip(fractions, terms, strict=True))  # noqa: E731
    inv_nn = [np.linalg.inv(C[np.ix_(n, n)]) for C in stiffnesses]
    Cnn = np.linalg.inv(avg(inv_nn))
    Cnt = Cnn @ avg([i @ C[np.ix_(n, t)] for i, C in zip(inv_nn, stiffnesses, strict=True)])
    Ctt = (
        avg(
            [
                C[np.ix_(t, t)] - C[np.ix_(t, n)] @ i @ C[np.ix_(n, t)]
                for i, C in zip(inv_nn, stiffnesses, strict=True)
            ]
        )
        + avg([C[np.ix_(t, n)] @ i for i, C in zip(inv_nn, stiffnesses, strict=True)]) @ Cnt
    )
    size = len(n) + len(t)
    out = np.zeros((size, size))
    out[np.ix_(n, n)], out[np.ix_(n, t)] = Cnn, Cnt
    out[np.ix_(t, n)], out[np.ix_(t, t)] = Cnt.T, Ctt
    return out


def _layers(shape, axis, pattern):
    """Labels constant on the planes normal to ``axis``, ``pattern`` along it."""
    pattern = np.asarray(pattern)
    index = [np.newaxis] * len(shape)
    index[axis] = slice(None)
    return np.broadcast_to(pattern[tuple(index)], shape).astype(np.int32).copy()


# -- homogeneous cells -----------------------------------------------------------------------
@pytest.mark.parametrize("dim", [2, 3])
def test_homogeneous_cell_returns_its_law(dim):
    labels = np.full((5, 4, 6)[:dim], 3, dtype=np.int64)
    for law in (STIFF, Conductivity(2.5)):
        r = VoxelCellProblem(labels, {3: law}, size=(1.0, 0.7, 1.3)[:dim], comm=MPI.COMM_SELF)
        result = r.solve()
        scale = np.abs(law.tensor(dim)).max()
        np.testing.assert_allclose(result.tensor, law.tensor(dim), rtol=0, atol=1e-12 * scale)
        assert result.hill_mandel_residual < 1e-12


# -- laminates -------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [2, 3])
def test_laminate_conductivity_means(dim):
    pattern = [0, 0, 1, 2, 2, 2, 1, 0]
    k = {0: 1.0, 1: 10.0, 2: 4.0}
    f = {p: pattern.count(p) / len(pattern) for p in k}
    across = 1.0 / sum(f[p] / k[p] for p in k)
    along = sum(f[p] * k[p] for p in k)
    for axis in range(dim):
        labels = _layers(tuple(len(pattern) if a == axis else 4 for a in range(dim)), axis, pattern)
        r = VoxelCellProblem(labels, {p: Conductivity(v) for p, v in k.items()}, rtol=1e-12)
        result = r.solve()
        expected = np.full(dim, along)
        expected[axis] = across
        np.testing.assert_allclose(result.tensor, np.diag(expected), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dim", [2, 3])
def test_laminate_stiffness_backus(dim):
    pattern = [0, 1, 1, 2, 0, 2, 2, 1, 1, 1]
    laws = {0: STEEL, 1: STIFF, 2: SOFT}
    fractions = [pattern.count(p) / len(pattern) for p in laws]
    stiffnesses = [law.tensor(dim) for law in laws.values()]
    # Voigt rows of the normal stresses (continuous) for a layer normal along each axis
    normal = {3: {0: [0, 4, 5], 1: [1, 3, 5], 2: [2, 3, 4]}, 2: {0: [0, 2], 1: [1, 2]}}[dim]
    for axis in range(dim):
        shape = tuple(len(pattern) if a == axis else 3 for a in range(dim))
        labels = _layers(shape, axis, pattern)
        r = VoxelCellProblem(labels, laws, size=(2.0, 1.0, 0.5)[:dim], rtol=1e-12)
        result = r.solve()
        tangent = [i for i in range(len(stiffnesses[0])) if i not in normal[axis]]
        expected = _backus(fractions, stiffnesses, normal[axis], tangent)
        np.testing.assert_allclose(result.tensor, expected, rtol=0, atol=1e-9 * expected.max())
        assert result.solver["asymmetry"] < 1e-10


# -- the same discrete problem as CellProblem on the voxel mesh -------------------------------
def _random_labels(shape, phases, seed):
    return np.random.default_rng(seed).integers(0, phases, size=shape).astype(np.int32)


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("shape", "laws"),
    [
        ((8, 8, 8), {0: STEEL, 1: IsotropicElasticity.from_young(10.0, 0.3)}),
        ((7, 6, 5), {0: STEEL, 1: STIFF, 2: SOFT}),
        ((12, 10), {0: STEEL, 1: STIFF, 2: SOFT}),
        ((6, 7, 8), {0: Conductivity(1.0), 1: Conductivity(10.0)}),
        ((16, 12), {0: Conductivity(1.0), 1: Conductivity(30.0), 2: Conductivity(0.2)}),
    ],
)
def test_agrees_with_assembled_cell_problem(shape, laws):
    comm = MPI.COMM_WORLD
    labels = _random_labels(shape, len(laws), seed=sum(shape))
    size = (1.0, 1.3, 0.8)[: len(shape)]
    names = {f"phase{p}": p for p in laws}
    cell = label_grid_cell(comm, labels, size, names)
    direct = CellProblem(cell, {f"phase{p}": law for p, law in laws.items()}, tensor_rtol=1e-12)
    reference = direct.solve("periodic").tensor
    result = VoxelCellProblem(labels, laws, size=size, phases=names, comm=comm).solve()
    scale = np.abs(reference).max()
    assert np.abs(result.tensor - reference).max() < 1e-8 * scale
    assert result.solver["asymmetry"] < 1e-9
    assert result.hill_mandel_residual < 1e-9
    np.testing.assert_allclose(
        list(result.volume_fractions.values()),
        [np.count_nonzero(labels == p) / labels.size for p in laws],
    )


# -- grid independence of the iteration count ------------------------------------------------
def _sphere(n, fraction=0.2):
    c = (np.arange(n) + 0.5) / n - 0.5
    r2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    return (r2 < (3 * fraction / (4 * np.pi)) ** (2 / 3)).astype(np.int8)


@pytest.mark.slow
def test_iterations_independent_of_the_grid():
    laws = {0: STEEL, 1: IsotropicElasticity.from_young(10.0, 0.3)}
    iterations = {}
    for n in (16, 32):
        result = VoxelCellProblem(_sphere(n), laws, comm=MPI.COMM_SELF, rtol=1e-8).solve()
        iterations[n] = result.solver["iterations"]
    assert max(iterations[32]) <= max(iterations[16]) + 3, iterations
    assert min(iterations[32]) >= min(iterations[16]) - 3, iterations
    # without the preconditioner CG needs many more (51 at 8^3, 126-130 at 16^3: ~ n)
    plain = VoxelCellProblem(
        _sphere(16), laws, comm=MPI.COMM_SELF, rtol=1e-8, petsc_options={"pc_type": "none"}
    ).solve()
    assert min(plain.solver["iterations"]) > 3 * max(iterations[16]), plain.solver["iterations"]


# -- parallel runs and bad input -------------------------------------------------------------
@pytest.mark.mpi
def test_every_rank_returns_the_serial_tensor():
    labels = _random_labels((6, 6, 6), 2, seed=3)
    laws = {0: SOFT, 1: STIFF}
    result = VoxelCellProblem(labels, laws, comm=MPI.COMM_WORLD).solve()
    serial = VoxelCellProblem(labels, laws, comm=MPI.COMM_SELF).solve()
    np.testing.assert_array_equal(result.tensor, serial.tensor)
    tensors = MPI.COMM_WORLD.allgather(result.tensor)
    for t in tensors:
        np.testing.assert_array_equal(t, tensors[0])


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("labels", "materials", "match"),
    [
        (np.zeros((4, 4, 4)), {0: STEEL}, "must be integers"),
        (
            np.arange(64).reshape(4, 4, 4) % 3,
            {0: STEEL, 1: STIFF},
            r"labels \[2\] have no material",
        ),
        (np.zeros(8, dtype=int), {0: STEEL}, "2D or 3D"),
        (np.eye(4, dtype=int), {0: STEEL, 1: Conductivity(1.0)}, "of one kind"),
        (np.eye(4, dtype=int), {"a": STEEL, 1: STIFF}, "not a label"),
    ],
)
def test_bad_input_is_one_clear_error(labels, materials, match):
    with pytest.raises(ValueError, match=match):
        VoxelCellProblem(labels, materials, comm=MPI.COMM_WORLD)


def test_non_positive_moduli_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        VoxelCellProblem(np.eye(3, dtype=int), {0: STEEL, 1: Conductivity(-1.0)})
    with pytest.raises(ValueError, match="size must be positive"):
        VoxelCellProblem(np.eye(3, dtype=int), {0: STEEL, 1: STIFF}, size=(1.0, -1.0))
