"""A multi-field law defined only here (coupled diffusion of two scalars, Soret/Dufour-like
cross terms) runs through the one cell solver (:class:`~multiscale.cell.CellProblem`), the
physics registry, an ensemble and both couplers (FE²: :class:`CoupledFE2Problem`, HMM:
:class:`CoupledHMMProblem`) without any change to the package; checked against the laminate's
closed form, the matrix-valued harmonic and arithmetic means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
import ufl
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.cell.coupled import CoupledResult
from multiscale.coupling import FieldBC
from multiscale.ensemble import EnsembleConfig, Microstructure, PhaseLaw, run_ensemble
from multiscale.fe2.coupled import CoupledFE2Problem
from multiscale.hmm import CoupledHMMProblem, MicroSettings, layered_laws
from multiscale.mesh.generators import laminate
from multiscale.mesh.macro import rectangle
from multiscale.physics import Physics, registry
from multiscale.physics.coupled import Field
from multiscale.physics.plasticity import J2Plasticity

COMM = MPI.COMM_WORLD


@dataclass(frozen=True, slots=True)
class CoupledDiffusion:
    """Fluxes of two scalars T, c: ``q_T = k grad T + s grad c``, ``q_c = s grad T + D grad c``
    (symmetric, positive definite for ``k D > s^2``)."""

    k: float
    s: float
    D: float
    fields: ClassVar[tuple[Field, ...]] = (
        Field("T", "scalar", "grad"),
        Field("c", "scalar", "grad"),
    )
    parameters: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not (self.k > 0 and self.D > 0 and self.k * self.D > self.s**2):
            raise ValueError(f"coupled diffusion needs k, D > 0 and k D > s^2, got {self}")

    def matrix(self) -> np.ndarray:
        return np.array([[self.k, self.s], [self.s, self.D]])

    def fluxes(self, g: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return {
            "T": self.k * g["T"] + self.s * g["c"],
            "c": self.s * g["T"] + self.D * g["c"],
        }


PHASES = (CoupledDiffusion(1.0, 0.5, 2.0), CoupledDiffusion(10.0, -1.0, 0.5))
FRACTIONS = np.array([0.3, 0.7])


def _laminate_exact(fractions: np.ndarray = FRACTIONS) -> np.ndarray:
    """The generalized tensor in the component order (T,x T,y c,x c,y): across the layers
    (x) the harmonic mean of the 2 x 2 field matrices, along them (y) the arithmetic mean."""
    M = [p.matrix() for p in PHASES]
    across = np.linalg.inv(sum(f * np.linalg.inv(m) for f, m in zip(fractions, M, strict=True)))
    along = sum(f * m for f, m in zip(fractions, M, strict=True))
    exact = np.zeros((4, 4))
    for a in range(2):
        for b in range(2):
            exact[2 * a, 2 * b] = across[a, b]
            exact[2 * a + 1, 2 * b + 1] = along[a, b]
    return exact


@pytest.mark.mpi
def test_two_field_law_on_the_laminate():
    """Periodic: the closed form to 1e-10 (the exact fields are piecewise affine); KUBC keeps
    the exact along-layer block and SUBC the exact across-layer block, the other blocks lie in
    the energy order SUBC <= PBC <= KUBC; Hill-Mandel below 1e-10."""
    cell = laminate(COMM, 2, FRACTIONS, h=0.1)
    laws = {"phase0": PHASES[0], "phase1": PHASES[1]}
    problem = CellProblem(cell, laws)
    exact = _laminate_exact()
    results = {bc: problem.solve(bc) for bc in ("periodic", "kubc", "subc")}
    for bc, result in results.items():
        assert isinstance(result, CoupledResult) and result.fields == ("T", "c")
        assert result.hill_mandel_residual < 1e-10, bc
    scale = np.abs(exact).max()
    assert np.abs(results["periodic"].tensor - exact).max() < 1e-10 * scale
    along, across = [1, 3], [0, 2]
    kubc, subc = results["kubc"].tensor, results["subc"].tensor
    assert np.abs(kubc[np.ix_(along, along)] - exact[np.ix_(along, along)]).max() < 1e-10 * scale
    assert (
        np.abs(subc[np.ix_(across, across)] - exact[np.ix_(across, across)]).max() < 1e-10 * scale
    )
    sym = {bc: 0.5 * (r.tensor + r.tensor.T) for bc, r in results.items()}
    assert np.linalg.eigvalsh(sym["periodic"] - sym["subc"]).min() > -1e-10 * scale
    assert np.linalg.eigvalsh(sym["kubc"] - sym["periodic"]).min() > -1e-10 * scale


PHYSICS = Physics(
    name="coupled_diffusion",
    description="two coupled scalar diffusions (defined in tests/test_cell_multifield.py)",
    keys=(("k", "s", "D"),),
    make=lambda v: CoupledDiffusion(v["k"], v["s"], v["D"]),
    cell_problem=CellProblem,
    property_name="k_mean",
    property_label="mean diffusivity of T",
    property_of=lambda eff, dim: float(np.trace(eff["effective_tensor"][:dim, :dim])) / dim,
    phase_property=lambda law, dim: float(law.k),
)


@pytest.fixture
def coupled_diffusion():
    with registry.registered(PHYSICS) as physics:
        yield physics


@pytest.mark.mpi
def test_two_field_law_through_an_ensemble(coupled_diffusion):
    """Random disks, phases with the same matrix M: every realization returns M (per gradient
    direction) under every condition, to rounding (a homogeneous medium); with different phases
    the energy order SUBC <= PBC <= KUBC holds realization by realization."""
    micro = Microstructure("disks", 0.3, resolution=4.0, fraction_tol=5e-3)
    same = PhaseLaw(
        "coupled_diffusion", {"k": 2.0, "s": 0.5, "D": 1.0}, {"k": 2.0, "s": 0.5, "D": 1.0}
    )
    result = run_ensemble(COMM, EnsembleConfig(micro, same, (1.5,), 2, seed=3))
    M = np.kron(np.array([[2.0, 0.5], [0.5, 1.0]]), np.eye(2))
    for reals in result.realizations:
        for r in reals:
            for bc, A in r.tensors.items():
                assert np.abs(A - M).max() < 1e-10, (bc, A)
    mixed = PhaseLaw(
        "coupled_diffusion", {"k": 1.0, "s": 0.2, "D": 1.0}, {"k": 8.0, "s": -1.0, "D": 3.0}
    )
    result = run_ensemble(COMM, EnsembleConfig(micro, mixed, (1.5,), 2, seed=4))
    assert result.worst_order() >= -1e-10


@pytest.mark.mpi
@pytest.mark.parametrize("method", ["fe2", "hmm"])
def test_two_field_law_through_the_couplers(method):
    """A macro square with T = 0, 1 and c = 0, 1/2 on its left and right sides (no flux
    across the others): the macro gradients are uniform, (1, 0) and (1/2, 0), and the
    reactions on the right side are the fluxes of the laminate's across-layer block, for an RVE
    laminate (FE², fractions 0.3/0.7) and for layered sampling domains (HMM, equal layers),
    to 1e-10."""
    bcs = [FieldBC("T", "left", 0.0), FieldBC("T", "right", 1.0)]
    bcs += [FieldBC("c", "left", 0.0), FieldBC("c", "right", 0.5)]
    macro = rectangle(COMM, (1.0, 1.0), (3, 3))
    if method == "fe2":
        fractions = FRACTIONS
        laws = {"phase0": PHASES[0], "phase1": PHASES[1]}
        rve = lambda c: laminate(c, 2, fractions, h=0.1)  # noqa: E731
        problem = CoupledFE2Problem(macro, rve, laws, bcs=bcs)
    else:
        fractions = np.array([0.5, 0.5])
        micro = MicroSettings(delta=0.01, eps=0.01, n=8, snap=True)
        problem = CoupledHMMProblem(macro, layered_laws(*PHASES, 2), micro, bcs=bcs)
    exact = _laminate_exact(fractions) @ np.array([1.0, 0.0, 0.5, 0.0])
    with problem:
        reactions = problem.solve([1.0]).steps[-1].reactions
    assert reactions["right:T"][0] == pytest.approx(exact[0], rel=1e-10)
    assert reactions["right:c"][1] == pytest.approx(exact[2], rel=1e-10)
    assert reactions["left:T"][0] == pytest.approx(-exact[0], rel=1e-10)


@dataclass(frozen=True)
class UserConductivity:
    """A user's law written as ``demos/demo_custom_law.py`` writes one: a ``kind`` and a
    ``flux``, no ``linear`` declared."""

    K: tuple[tuple[float, float], tuple[float, float]]
    kind: ClassVar[str] = "scalar"

    def flux(self, g: Any) -> Any:
        return ufl.dot(ufl.as_matrix(self.K), g)


@dataclass(frozen=True)
class DeclaredNonlinear(UserConductivity):
    linear: ClassVar[bool] = False


@pytest.mark.mpi
def test_user_law_without_declarations_and_refused_laws():
    """A law that declares nothing is taken as linear: a homogeneous cell of an anisotropic K
    returns K to rounding.  A law with internal variables (J2 plasticity) or one declaring
    ``linear = False`` is refused with one line."""
    cell = laminate(MPI.COMM_WORLD, 2, (0.3, 0.7), h=0.1)
    K = ((2.0, 0.5), (0.5, 1.0))
    law = UserConductivity(K)
    A = CellProblem(cell, {"phase0": law, "phase1": law}).solve().tensor
    assert np.abs(A - np.array(K)).max() < 1e-12 * 2.0
    plastic = J2Plasticity(lmbda=1.0, mu=1.0, sigma_y=0.01)
    with pytest.raises(ValueError, match="J2Plasticity is not linear"):
        CellProblem(cell, {"phase0": plastic, "phase1": plastic})
    with pytest.raises(ValueError, match="DeclaredNonlinear is not linear"):
        CellProblem(cell, {"phase0": DeclaredNonlinear(K), "phase1": law})
