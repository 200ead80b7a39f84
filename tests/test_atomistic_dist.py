"""Atomistic statics distributed by atom ownership against the serial solver and closed forms.

* the partition: every atom owned once, the ranks' shares within one atom of :math:`n/p`;
* the distributed energy, forces and Hessian (the MPIAIJ matrix over the free coordinates)
  equal those of the serial :class:`PairModel` at a perturbed state, finite and periodic, with
  three shells and a different potential on each;
* a block with a vacancy and a soft bond under an affine boundary displacement: the solution of
  the serial :class:`AtomisticProblem` (MUMPS, and CG with GAMG);
* a periodic crystal under :math:`\\bar F`, one atom pinned, from a perturbed state: the affine
  state, zero forces and :math:`E/n = W(\\bar F)\\,\\Omega_0` of the Cauchy–Born law;
* atoms driven into each other on one rank only: the same :class:`LoadStepError` on every rank;
* rank-local reference sets: the parallel bisection of rows dealt at random equals the serial
  :func:`partition`; the slabs of :func:`block_slab` are the block; a vacancy block generated
  slab by slab on the ranks (fixed atoms and displacements given per rank, as arrays or as
  functions of X) gives the serial solution, and no rank ever held more than its part.

Every test runs serially and under ``mpirun -n 2`` and ``-n 3``; the serial references run on
``COMM_SELF`` on every rank.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.atomistic import (
    AtomisticProblem,
    AtomSet,
    CauchyBorn,
    DistributedAtomisticProblem,
    DistributedPairModel,
    Lattice,
    LennardJones,
    Morse,
    PairModel,
    Shifted,
    soften_bonds,
)
from multiscale.atomistic.distributed import LocalAtoms, partition, partition_distributed
from multiscale.atomistic.lattice import block_slab
from multiscale.nonlinear import LoadStepError

LJ = LennardJones(1.0, 1.0)
F2 = np.array([[1.03, 0.02], [-0.01, 0.98]])


def _relaxed(shells: int) -> tuple[CauchyBorn, Lattice, float]:
    """The triangular LJ law, its lattice at the relaxed constant and a cut-off between the
    last shell and the next."""
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=shells)
    unit = Lattice.of("triangular")
    lat = unit.with_constant(law.bonds.radii[0] / unit.bonds(shells=1).radii[0])
    radii = lat.bonds(shells=shells + 1).radii
    return law, lat, 0.5 * (radii[-2] + radii[-1])


@pytest.mark.mpi
def test_partition_is_balanced(comm):
    _, lat, _ = _relaxed(1)
    X = AtomSet.block(lat, (0.0, 0.0), (30 * lat.a, 9 * lat.a)).positions
    for parts in (1, 2, 3, 5, 8):
        owner = partition(X, parts)
        counts = np.bincount(owner, minlength=parts)
        assert counts.sum() == len(X) and len(counts) == parts
        assert counts.max() - counts.min() <= 1 + parts // 2  # rounding at each level
        assert np.abs(counts - len(X) / parts).max() <= np.log2(parts) + 1
    model = DistributedPairModel(AtomSet(X), LJ, 1.5 * lat.a, comm=comm)
    counts = comm.allgather(model.n_owned)
    assert sum(counts) == len(X) and max(counts) - min(counts) <= 1 + comm.size // 2


def _cluster(periodic: bool):
    _, lat, _ = _relaxed(3)
    a = lat.a
    pots = (LJ, Morse(1.0, 3.0, a * np.sqrt(3)), Shifted(LJ, 2.2 * a))
    if periodic:
        atoms, F = AtomSet.periodic(lat, (8 * a, 5 * np.sqrt(3) * a)), F2
    else:
        atoms, F = AtomSet.block(lat, (0.0, 0.0), (9.5 * a, 7.0 * a)), np.eye(2)
    x = atoms.positions @ F.T
    x = x + 0.05 * a * np.random.default_rng(1).standard_normal(x.shape)
    return atoms, pots, 2.05 * a, x, (F if periodic else None)


@pytest.mark.mpi
@pytest.mark.parametrize("periodic", [False, True])
def test_energy_forces_hessian_equal_the_serial_model(comm, periodic):
    atoms, pots, rc, x, F = _cluster(periodic)
    serial = PairModel(atoms, pots, rc)
    model = DistributedPairModel(atoms, pots, rc, comm=comm)
    assert model.n_bonds == serial.n_bonds
    assert np.array_equal(model.radii, serial.radii)
    fixed = [0, atoms.n // 2]
    with DistributedAtomisticProblem(model, fixed=fixed, macro_F=F) as problem:
        problem.set_load(1.0)
        problem.x[:] = x[model.ids]
        E = problem.energy()
        f = problem.forces(root=None)
        A = problem.newton.A
        problem.assembly.jacobian(A)
        v = np.random.default_rng(3).standard_normal(atoms.n * 2)
        mask = np.zeros(atoms.n, dtype=bool)
        mask[fixed] = True
        free = np.flatnonzero(np.repeat(~mask, 2))
        # v in the distributed free numbering: owned free atoms in new order
        vd, y = A.createVecs()
        ids_owned = model.ids[: model.n_owned]
        owned_free = ~mask[ids_owned]
        vd.setArray(v.reshape(-1, 2)[ids_owned[owned_free]].ravel())
        A.mult(vd, y)
        Av = np.zeros((atoms.n, 2))
        Av[ids_owned[owned_free]] = y.getArray().reshape(-1, 2)
        Av = comm.allreduce(Av, op=MPI.SUM)
        vd.destroy()
        y.destroy()
    scale = np.abs(serial.forces(x, F)).max()
    assert E == pytest.approx(serial.energy(x, F), rel=1e-13)
    assert np.abs(f - serial.forces(x, F)).max() < 1e-13 * scale
    H = serial.hessian(x, F)[free][:, free]
    ref = H @ v[free]
    assert np.abs(Av.ravel()[free] - ref).max() < 1e-13 * np.abs(ref).max()


def _defect_block(soft: bool):
    """A 16 x 14 block of the triangular LJ lattice (two shells) without its central atom,
    optionally with a soft bond beside the vacancy; outer layers wider than the cut-off follow
    the affine map F2."""
    _, lat, rc = _relaxed(2)
    full = AtomSet.block(lat, (0.0, 0.0), (16 * lat.a, 14 * lat.a))
    atoms = full.without([full.nearest(full.positions.mean(axis=0))])
    X = atoms.positions
    lo, hi = X.min(axis=0), X.max(axis=0)
    fixed = np.minimum(X - lo, hi - X).min(axis=1) <= 1.01 * rc
    i = int(np.argmin(np.linalg.norm(X - X.mean(axis=0), axis=1)))  # beside the vacancy
    pair = (i, int(np.argsort(np.linalg.norm(X - X[i], axis=1))[1]))  # and a neighbour
    modify = None
    if soft:

        def modify(model, ids):
            return soften_bonds(model, ids, [pair], Morse(0.2, 2.0, lat.a))

    return atoms, rc, fixed, X @ (F2 - np.eye(2)).T, modify


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("soft", "options"),
    [
        (False, None),
        (True, None),
        (True, {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-13}),
    ],
)
def test_defect_equals_the_serial_solution(comm, soft, options):
    atoms, rc, fixed, U, modify = _defect_block(soft)
    serial = PairModel(atoms, LJ, rc)
    if modify is not None:
        serial = modify(serial, np.arange(atoms.n))
        assert len(serial.groups) == 2 and len(serial.groups[1][1]) == 1
    with AtomisticProblem(serial, fixed=fixed, displacement=U) as problem:
        problem.solve([0.5, 1.0])
        x_ref, E_ref = problem.x.copy(), problem.energy()
    model = DistributedPairModel(atoms, LJ, rc, comm=comm, modify=modify)
    with DistributedAtomisticProblem(
        model, fixed=fixed, displacement=U, petsc_options=options
    ) as problem:
        result = problem.solve([0.5, 1.0])
        x = problem.positions(root=None)
    a = serial.radii[0]
    assert np.abs(x - x_ref).max() < 1e-10 * a
    assert result.steps[-1].quantities["energy"] == pytest.approx(E_ref, rel=1e-12)
    assert result.steps[-1].quantities["max_force"] < 1e-10
    # the defect relaxes: the solution is not the affine map
    assert np.abs(x - (atoms.positions + U)).max() > 1e-3 * a


@pytest.mark.mpi
def test_periodic_crystal_is_cauchy_born(comm):
    law, lat, rc = _relaxed(2)
    atoms = AtomSet.periodic(lat, lat.a * np.array([10.0, 6 * np.sqrt(3)]))
    model = DistributedPairModel(atoms, LJ, rc, comm=comm)
    X = atoms.positions
    W = float(law.energy_density(F2)) * lat.atomic_volume
    kick = 0.02 * lat.a * np.random.default_rng(2).standard_normal(X.shape)
    kick[0] = 0.0
    with DistributedAtomisticProblem(model, fixed=[0], macro_F=F2) as problem:
        problem.x += kick[model.ids]
        problem.commit()
        result = problem.solve([0.5, 1.0])
        x = problem.positions(root=None)
    assert result.steps[-1].quantities["max_force"] < 1e-10
    assert np.abs((x - x[0]) - (X - X[0]) @ F2.T).max() < 1e-10 * lat.a
    assert result.steps[-1].quantities["energy"] / atoms.n == pytest.approx(W, rel=1e-12)


@pytest.mark.mpi
def test_collision_on_one_rank_fails_on_every_rank(comm):
    """A fixed atom driven 0.7 of a spacing into its fixed neighbour: the bond is compressed
    to 0.3 on the rank that owns it only; every rank raises the same LoadStepError naming it,
    and a smaller push is then solved."""
    atoms, rc, fixed, _, _ = _defect_block(False)
    X = atoms.positions
    i = int(np.argmin(X[:, 0] + 1e-3 * X[:, 1]))  # bottom-left corner
    j = int(np.argsort(np.linalg.norm(X - X[i], axis=1))[1])
    U = np.zeros_like(X)
    U[i] = 0.7 * (X[j] - X[i])
    model = DistributedPairModel(atoms, LJ, rc, comm=comm)
    with DistributedAtomisticProblem(model, fixed=fixed, displacement=U, max_cuts=0) as problem:
        with pytest.raises(LoadStepError) as info:
            problem.solve([1.0])
    message = str(info.value)
    assert len(set(comm.allgather(message))) == 1
    assert f"bond {min(i, j)}-{max(i, j)} compressed to 0.3 " in message
    assert message.count("rank ") == (comm.size > 1)  # agreed from the one owning rank
    with DistributedAtomisticProblem(model, fixed=fixed, displacement=0.5 * U) as problem:
        assert problem.solve([1.0]).steps[-1].quantities["max_force"] < 1e-10


# -- rank-local reference sets ---------------------------------------------------------------------
@pytest.mark.mpi
def test_distributed_partition_equals_the_serial_one(comm):
    """Rows dealt to the ranks at random: the parallel bisection (quantiles by selection, no
    point moved) gives every atom the part of the serial :func:`partition` of the whole set."""
    _, lat, _ = _relaxed(1)
    X = AtomSet.block(lat, (0.0, 0.0), (23 * lat.a, 11 * lat.a)).positions
    deal = np.random.default_rng(5).integers(0, comm.size, len(X))
    mine = np.flatnonzero(deal == comm.rank)
    for parts in (comm.size, 5):
        owner = partition_distributed(comm, X[mine], mine, parts)
        assert np.array_equal(owner, partition(X, parts)[mine])


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_block_slabs_are_the_block(parts):
    """The slabs of :func:`block_slab` together are the sites of ``AtomSet.block``, once."""
    _, lat, _ = _relaxed(1)
    lo, hi = (0.3, -0.2), (17.5 * lat.a, 9.0 * lat.a)
    ref = AtomSet.block(lat, lo, hi).positions
    X = np.concatenate([block_slab(lat, lo, hi, k, parts) for k in range(parts)])
    assert len(X) == len(ref)
    assert np.abs(X[np.lexsort(X.T[::-1])] - ref).max() < 1e-12 * lat.a


@pytest.mark.mpi
@pytest.mark.parametrize("given", ["arrays", "functions"])
def test_rank_local_set_equals_the_serial_solution(comm, given):
    """The vacancy block of :func:`_defect_block` generated slab by slab on the ranks
    (:meth:`LocalAtoms.block`), the outer layers held at the affine map: the serial solution
    of the whole set; no rank ever held more than a part of the set."""
    _, lat, rc = _relaxed(2)
    lo, hi = (0.0, 0.0), (16 * lat.a, 14 * lat.a)
    full = AtomSet.block(lat, lo, hi)
    c = full.positions[full.nearest(full.positions.mean(axis=0))]
    atoms = full.without([full.nearest(c)])
    X = atoms.positions
    lo_, hi_ = X.min(axis=0), X.max(axis=0)

    def layer(Y):
        return np.minimum(Y - lo_, hi_ - Y).min(axis=1) <= 1.01 * rc

    def u(Y):
        return Y @ (F2 - np.eye(2)).T

    with AtomisticProblem(PairModel(atoms, LJ, rc), fixed=layer(X), displacement=u(X)) as p:
        p.solve([0.5, 1.0])
        x_ref, E_ref = p.x.copy(), p.energy()

    local = LocalAtoms.block(
        lat, lo, hi, comm, exclude=lambda Y: np.linalg.norm(Y - c, axis=1) < 1e-6 * lat.a
    )
    model = DistributedPairModel(local, LJ, rc, comm=comm)
    assert model.n == atoms.n and model.n_bonds == PairModel(atoms, LJ, rc).n_bonds
    if given == "arrays":  # one row per atom this rank generated
        kwargs = {"fixed": layer(local.positions), "displacement": u(local.positions)}
    else:
        kwargs = {"fixed": layer, "displacement": u}
    with DistributedAtomisticProblem(model, **kwargs) as problem:
        result = problem.solve([0.5, 1.0])
        x = problem.positions()  # rank 0 only
        Xg = model.gather(model.reference[: model.n_owned])
    held = comm.allgather(model.held)
    assert result.steps[-1].quantities["energy"] == pytest.approx(E_ref, rel=1e-12)
    assert result.steps[-1].quantities["max_force"] < 1e-10
    if comm.size > 1:
        assert max(h["input"] for h in held) < atoms.n
        assert max(h["owned"] + h["halo"] for h in held) < atoms.n
        assert max(h["owned"] for h in held) <= atoms.n / comm.size + comm.size
    if comm.rank == 0:
        # the same sites in another numbering: match them by their reference positions
        order, ref_order = np.lexsort(Xg.T[::-1]), np.lexsort(X.T[::-1])
        assert np.abs(Xg[order] - X[ref_order]).max() < 1e-12 * lat.a
        assert np.abs(x[order] - x_ref[ref_order]).max() < 1e-10 * lat.a
    else:
        assert x is None
