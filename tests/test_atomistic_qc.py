"""The quasicontinuum method against the full atomistic solution (:class:`AtomisticProblem`).

* kinematics: the interpolation :math:`x = T x_r` reproduces an affine field exactly;
* consistency: the QCE gradient and Hessian and the QCF Jacobian are the central differences of
  the energy and of the residual; the QCF Jacobian is not symmetric, the QCE one is;
* the patch test under a uniform :math:`F` (a perfect lattice, boundary layer affine): QCE has
  ghost forces, nonzero at the interface only, and its solution leaves the affine state; the
  ghost-force-corrected QCE and QCF have zero forces (below :math:`10^{-10}` of a bond force) and
  stay affine; the blended (BQCE) ghost forces are smaller and fall with the blending width;
* a chain with LJ nearest and harmonic next-nearest neighbours, a soft bond in the middle and
  the ends displaced: errors against the full atomistic solution fall as the atomistic radius
  grows (exponentially: the defect's layer in the exact solution decays geometrically); they do
  not depend on the coarse element size H (the exact solution is affine away from the defect,
  which P1 elements reproduce); uncorrected QCE keeps an error at its interface;
* the triangular NN LJ lattice with a vacancy cluster (7 sites) under tension: errors near the
  defect fall as the atomistic radius grows;
* QC over the ranks (``QCModel(..., comm=COMM_WORLD)``) and the full atomistic reference by
  :class:`DistributedAtomisticProblem`, each rank given its share of the atoms: 1, 2 and 3
  ranks give the serial displacements to solver tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI
from scipy.spatial import ConvexHull

from multiscale.atomistic import (
    AtomisticProblem,
    AtomSet,
    CauchyBorn,
    CoarseMesh,
    DistributedAtomisticProblem,
    DistributedPairModel,
    Harmonic,
    Lattice,
    LennardJones,
    MeshSpec,
    PairModel,
    QCModel,
    QCProblem,
    soften_bonds,
)
from multiscale.atomistic.distributed import LocalAtoms

LJ = LennardJones(1.0, 1.0)
CHAIN_POTS = (LJ, Harmonic(10.0, 2 * LJ.r_eq))
SOFT = LennardJones(0.5, 1.0)
N_CHAIN = 129


# -- set-ups ---------------------------------------------------------------------------------------
class Chain:
    """The NN LJ + NNN harmonic chain, the soft bond (m, m + 1), the ends displaced by the
    uniform stretch ``F`` about the bond's centre (3 atoms held at each end)."""

    def __init__(self, F: float | np.ndarray = 1.02, defect: bool = True) -> None:
        self.law = CauchyBorn.relaxed(Lattice.of("chain"), CHAIN_POTS, shells=2)
        a = self.a = float(self.law.bonds.radii[0])
        self.lattice = Lattice.of("chain").with_constant(a)
        self.atoms = AtomSet.block(self.lattice, (0.0,), ((N_CHAIN - 1) * a,))
        m = N_CHAIN // 2
        self.bond = [(m, m + 1)] if defect else []
        self.centre = ((m + 0.5) * a,)
        self.rc = 2.05 * a
        self.F = np.asarray(F, dtype=float).reshape(1, 1)
        self.X = self.atoms.positions
        self.full = self.modify(PairModel(self.atoms, CHAIN_POTS, self.rc), np.arange(N_CHAIN))

    def modify(self, model: PairModel, ids: np.ndarray) -> PairModel:
        return soften_bonds(model, ids, self.bond, SOFT) if self.bond else model

    def affine(self, X: np.ndarray) -> np.ndarray:
        return X + (X - np.asarray(self.centre)) @ (self.F - np.eye(len(self.F))).T

    def layer(self, X: np.ndarray) -> np.ndarray:
        lo, hi = self.X.min(axis=0), self.X.max(axis=0)
        return np.minimum(X - lo, hi - X).min(axis=1) <= self.rc

    def atomistic(self) -> tuple[np.ndarray, float]:
        with AtomisticProblem(
            self.full, fixed=self.layer(self.X), displacement=self.affine(self.X) - self.X
        ) as p:
            p.solve([1.0])
            return p.x.copy(), p.energy()

    def mesh(self, radius: float, H: int | None = 8, blend: float = 0.0) -> CoarseMesh:
        spec = MeshSpec(
            self.centre,
            radius,
            padding=self.rc,
            layer=self.rc,
            coarse_size=H,
            growth=1.0,
            blend_width=blend,
        )
        return CoarseMesh.graded(self.atoms, self.lattice, spec)

    def model(self, mesh: CoarseMesh, comm: MPI.Comm = MPI.COMM_SELF) -> QCModel:
        pots = CHAIN_POTS if self.law.dim == 1 else LJ
        return QCModel(mesh, pots, self.rc, self.law, modify=self.modify, comm=comm)

    def qc(self, mesh: CoarseMesh, method: str, comm: MPI.Comm = MPI.COMM_SELF) -> QCProblem:
        return QCProblem(
            self.model(mesh, comm),
            method,
            macro_F=self.F,
            centre=self.centre,
            fixed=self.layer(mesh.X),
        )

    def solve(self, mesh: CoarseMesh, method: str, comm: MPI.Comm = MPI.COMM_SELF) -> np.ndarray:
        with self.qc(mesh, method, comm) as p:
            p.solve([1.0])
            return np.asarray(mesh.interpolation() @ p.xr)

    def distributed_atomistic(self, comm: MPI.Comm) -> np.ndarray:
        """The full atomistic solution by :class:`DistributedAtomisticProblem` on ``comm``:
        each rank gives its share of the atoms, the positions are gathered on every rank."""
        model = DistributedPairModel(
            LocalAtoms.of(self.atoms, comm),
            CHAIN_POTS if self.law.dim == 1 else LJ,
            self.rc,
            comm=comm,
            modify=self.modify,
        )
        with DistributedAtomisticProblem(
            model, fixed=self.layer, displacement=lambda X: self.affine(X) - X
        ) as p:
            p.solve([1.0])
            return p.positions(root=None)


class Vacancy(Chain):
    """The triangular NN LJ lattice, a block of about 40 x 36 spacings without the 7 sites of a
    hexagonal vacancy cluster, stretched by 2 % along x by its outer layer (2 spacings)."""

    def __init__(self, F: np.ndarray | None = None, defect: bool = True) -> None:
        self.law = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=1)
        a = self.a = float(self.law.bonds.radii[0])
        self.lattice = Lattice.of("triangular").with_constant(a)
        block = AtomSet.block(self.lattice, (0.0, 0.0), (40 * a, 36 * a))
        c = block.positions[block.nearest((20 * a, 18 * a))]
        hole = np.flatnonzero(np.linalg.norm(block.positions - c, axis=1) < 1.01 * a)
        self.atoms = block.without(hole) if defect else block
        self.bond = []
        self.centre = tuple(c)
        self.rc = 1.5 * a
        self.F = np.array([[1.02, 0.0], [0.0, 1.0]]) if F is None else F
        self.X = self.atoms.positions
        self.full = PairModel(self.atoms, LJ, self.rc)

    def layer(self, X: np.ndarray) -> np.ndarray:
        lo, hi = self.X.min(axis=0), self.X.max(axis=0)
        return np.minimum(X - lo, hi - X).min(axis=1) <= 2 * self.a * (1 + 1e-9)

    def mesh(self, radius: float, H: int | None = None, blend: float = 0.0) -> CoarseMesh:
        spec = MeshSpec(
            self.centre,
            radius,
            padding=self.rc,
            layer=2 * self.a,
            coarse_size=H,
            growth=1.0,
            blend_width=blend,
        )
        return CoarseMesh.graded(self.atoms, self.lattice, spec)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain()


@pytest.fixture(scope="module")
def chain_reference(chain) -> tuple[np.ndarray, float]:
    return chain.atomistic()


@pytest.fixture(scope="module")
def vacancy() -> Vacancy:
    return Vacancy()


@pytest.fixture(scope="module")
def vacancy_reference(vacancy) -> tuple[np.ndarray, float]:
    return vacancy.atomistic()


# -- kinematics and consistency --------------------------------------------------------------------
@pytest.mark.parametrize("setup", [Chain, Vacancy])
def test_interpolation_reproduces_affine_fields(setup):
    s = setup()
    mesh = s.mesh(3 * s.a, H=None if setup is Vacancy else 8)
    G = np.array([[1.1]]) if setup is Chain else np.array([[1.05, 0.2], [-0.1, 0.93]])
    T = mesh.interpolation()
    assert np.allclose(T.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    assert T.min() >= 0.0
    assert np.abs(T @ (mesh.X @ G.T) - s.X @ G.T).max() < 1e-12 * np.abs(s.X).max()
    hull = np.ptp(s.X) if setup is Chain else ConvexHull(s.X).volume
    assert mesh.volumes.sum() == pytest.approx(hull, rel=1e-12)


def _perturbed(s: Chain, mesh: CoarseMesh) -> np.ndarray:
    rng = np.random.default_rng(3)
    return s.affine(mesh.X) + 0.02 * s.a * rng.standard_normal(mesh.X.shape)


@pytest.mark.parametrize("setup", [Chain, Vacancy])
def test_gradient_hessian_and_qcf_jacobian_against_differences(setup):
    s = setup()
    mesh = s.mesh(2 * s.a, H=4 if setup is Chain else None)
    model = s.model(mesh)
    xr = _perturbed(s, mesh)
    h = 1e-6 * s.a
    rng = np.random.default_rng(4)
    v = rng.standard_normal(xr.shape)
    dE = (model.energy(xr + h * v) - model.energy(xr - h * v)) / (2 * h)
    g = model.gradient(xr)
    assert dE == pytest.approx(np.sum(g * v), rel=1e-6)
    for residual, jac in (
        (model.gradient, model.hessian),
        (model.qcf_residual, model.qcf_jacobian),
    ):
        fd = (residual(xr + h * v) - residual(xr - h * v)).ravel() / (2 * h)
        Jv = jac(xr) @ v.ravel()
        assert np.abs(fd - Jv).max() < 1e-6 * np.abs(Jv).max()
    H, J = model.hessian(xr), model.qcf_jacobian(xr)
    assert abs(H - H.T).max() < 1e-12 * abs(H).max()
    asym = abs(J - J.T).max() / abs(J).max()
    if setup is Chain:
        assert asym > 1e-3  # QCF is not conservative
    else:
        # NN bonds on a fully refined ring: Cauchy-Born on a lattice triangle is exactly its
        # three half-bonds, so QCF is the gradient of an energy here (symmetric Jacobian)
        assert asym < 1e-12


# -- the patch test --------------------------------------------------------------------------------
def _bond_force(s: Chain) -> float:
    r = s.a * np.linalg.norm(s.F, 2)
    return float(abs(LJ.dphi(np.array([r]))[0]))


@pytest.mark.parametrize("setup", [Chain, Vacancy])
def test_patch_test_ghost_forces(setup):
    """Uniform F on a perfect lattice: the exact forces vanish."""
    F = np.array([[1.03]]) if setup is Chain else np.array([[1.02, 0.01], [0.0, 0.99]])
    s = setup(F=F, defect=False)
    R = 4 * s.a
    mesh = s.mesh(R, H=4 if setup is Chain else None)
    f0 = _bond_force(s)
    with s.qc(mesh, "qce") as p:
        ghost = np.abs(p.ghost_forces(1.0)).max(axis=1)
        free = ~s.layer(mesh.X)
        dist = np.linalg.norm(mesh.X - np.asarray(s.centre), axis=1)
        at_interface = np.abs(dist - R) <= 2 * s.rc
        qce = np.abs(p.residual(p.affine(1.0))).max(axis=1)
    assert np.allclose(qce[free], ghost[free], rtol=0, atol=1e-10 * f0)  # QCF forces are zero there
    assert ghost[free & at_interface].max() > 1e-2 * f0
    assert ghost[free & ~at_interface].max() < 1e-12 * f0
    for method in ("qce_corrected", "qcf"):
        with s.qc(mesh, method) as p:
            p.set_load(1.0)
            assert np.abs(p.residual(p.affine(1.0))[free]).max() < 1e-10 * f0
    # solved: QCE leaves the affine state, corrected QCE and QCF stay there
    T = mesh.interpolation()
    exact = s.affine(s.X)
    moved = {
        m: np.abs(s.solve(mesh, m) - exact).max() / s.a for m in ("qce", "qce_corrected", "qcf")
    }
    assert moved["qce"] > 1e-4
    assert moved["qce_corrected"] < 1e-10 and moved["qcf"] < 1e-10
    assert T.shape[0] == s.atoms.n


def test_blended_ghost_forces_fall_with_the_width():
    """BQCE does not pass the patch test; its ghost forces shrink as the blend widens."""
    s = Chain(F=1.03, defect=False)
    ghosts = []
    for w in (2, 4, 8, 16):
        with s.qc(s.mesh(4 * s.a, H=4, blend=w * s.a), "blended") as p:
            free = ~s.layer(p.X)
            ghosts.append(np.abs(p.ghost_forces(1.0)[free]).max() / _bond_force(s))
    with s.qc(s.mesh(4 * s.a, H=4), "qce") as p:
        qce = np.abs(p.ghost_forces(1.0)[~s.layer(p.X)]).max() / _bond_force(s)
    assert ghosts[0] < qce
    assert np.all(np.diff(ghosts) < 0) and ghosts[-1] > 0.0
    rate = np.log(ghosts[-2] / ghosts[-1]) / np.log(2)
    assert rate > 1.5  # about 2: the ghost force is a second difference of the blend


# -- benchmarks against the full atomistic solution ------------------------------------------------
def test_chain_errors_against_atomistic(chain, chain_reference):
    xa, _ = chain_reference
    Ea = float(chain.full.energy(xa))
    a = chain.a
    errors: dict[str, list[float]] = {}
    for method in ("qce", "qce_corrected", "qcf"):
        for R in (1, 2, 3, 4):
            x = chain.solve(chain.mesh(R * a, H=8), method)
            err = np.abs(x - xa).max() / a
            dE = float(chain.full.energy(x)) - Ea
            assert dE >= -1e-12 * abs(Ea)  # the atomistic solution is the minimum
            errors.setdefault(method, []).append(err)
            if method == "qce" and R == 4:
                where = chain.X[np.argmax(np.abs(x - xa)[:, 0]), 0] - chain.centre[0]
                assert abs(abs(where) - R * a) <= chain.rc  # at the interface
    for method in ("qce_corrected", "qcf"):
        e = np.array(errors[method])
        assert np.all(np.diff(e) < 0), (method, e)
    assert errors["qcf"][-1] < 1e-4 and errors["qce_corrected"][-1] < 1e-4
    assert errors["qce"][-1] > 10 * errors["qcf"][-1]  # QCE's ghost forces leave an error


def test_chain_blended_error_falls_with_the_width(chain, chain_reference):
    """The blended error is set by its ghost forces, i.e. by the blending width, not by R."""
    xa, _ = chain_reference
    errs = []
    for w in (2, 4, 8, 16):
        x = chain.solve(chain.mesh(2 * chain.a, H=8, blend=w * chain.a), "blended")
        errs.append(np.abs(x - xa).max() / chain.a)
    assert np.all(np.diff(errs) < 0), errs


def test_chain_error_independent_of_coarse_size(chain, chain_reference):
    """Away from the defect the exact chain is affine: P1 elements of any size reproduce it."""
    xa, _ = chain_reference
    errs = [
        np.abs(chain.solve(chain.mesh(3 * chain.a, H=H), "qcf") - xa).max() for H in (2, 4, 8, 16)
    ]
    assert np.ptp(errs) < 1e-9 * chain.a


def test_vacancy_errors_fall_with_the_atomistic_radius(vacancy, vacancy_reference):
    xa, _ = vacancy_reference
    X, a = vacancy.X, vacancy.a
    near = np.linalg.norm(X - np.asarray(vacancy.centre), axis=1) < 6 * a
    defect = np.linalg.norm(xa - vacancy.affine(X), axis=1)[near].max()
    for method in ("qce_corrected", "qcf"):
        rel = []
        for R in (3, 6, 9):
            x = vacancy.solve(vacancy.mesh(R * a), method)
            rel.append(np.linalg.norm(x - xa, axis=1)[near].max() / defect)
        assert np.all(np.diff(rel) < 0), (method, rel)
        assert rel[-1] < 5e-3, (method, rel)


@pytest.mark.mpi
def test_ranks_agree(vacancy):
    """QC over the ranks (the bonds and elements shared, MPI vector and matrix, MUMPS) and the
    full atomistic reference by :class:`DistributedAtomisticProblem`: on 1, 2 and 3 ranks the
    displacements of the serial solves to solver tolerance, and the QC errors near the defect
    against the distributed reference fall with the atomistic radius."""
    comm = MPI.COMM_WORLD
    a = vacancy.a
    xa = vacancy.distributed_atomistic(comm)
    with AtomisticProblem(
        vacancy.full,
        fixed=vacancy.layer(vacancy.X),
        displacement=vacancy.affine(vacancy.X) - vacancy.X,
    ) as p:
        p.solve([1.0])
        assert np.abs(xa - p.x).max() < 1e-10 * a
    near = np.linalg.norm(vacancy.X - np.asarray(vacancy.centre), axis=1) < 6 * a
    defect = np.linalg.norm(xa - vacancy.affine(vacancy.X), axis=1)[near].max()
    for method in ("qce_corrected", "qcf"):
        rel = []
        for R in (3, 6):
            mesh = vacancy.mesh(R * a)
            with vacancy.qc(mesh, method, comm) as p:
                result = p.solve([0.5, 1.0])
                xr = p.xr.copy()
                force = p.max_free_force()
            assert result.steps[-1].quantities["max_force"] == force < 1e-10
            with vacancy.qc(mesh, method) as q:  # serial, on every rank
                q.solve([0.5, 1.0])
                assert np.abs(xr - q.xr).max() < 1e-10 * a
            x = mesh.interpolation() @ xr
            rel.append(np.linalg.norm(x - xa, axis=1)[near].max() / defect)
        assert rel[1] < rel[0] < 0.2, (method, rel)
    assert len({round(v, 12) for v in comm.allgather(float(rel[-1]))}) == 1


def test_bad_input(chain):
    mesh = chain.mesh(2 * chain.a)
    with pytest.raises(ValueError, match="method must be one of"):
        QCProblem(chain.model(mesh), "qcx", macro_F=chain.F, centre=chain.centre, fixed=[0])
    with pytest.raises(ValueError, match="radius"):
        MeshSpec((0.0,), -1.0, padding=1.0, layer=1.0)
    with pytest.raises(ValueError, match="nothing to solve"):
        QCProblem(
            chain.model(mesh),
            "qce",
            macro_F=chain.F,
            centre=chain.centre,
            fixed=np.arange(mesh.n),
        )
