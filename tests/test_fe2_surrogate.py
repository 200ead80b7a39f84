"""Hierarchical FE²: the surrogate against closed forms, its tangent, objectivity, symmetry, and
the online error control in a macro solve.

References (independent of the surrogate):

* the compressible Neo-Hookean law in closed form (numpy):
  :math:`P = \\mu F + (\\lambda\\ln J - \\mu)F^{-T}`,
  :math:`\\partial P_{iJ}/\\partial F_{kL} = \\mu\\delta_{ik}\\delta_{JL}
  + \\lambda F^{-1}_{Ji}F^{-1}_{Lk} - (\\lambda\\ln J - \\mu)F^{-1}_{Jk}F^{-1}_{Li}`;
  a database made of it must be reproduced to the fit accuracy (measured at degree 5 on a box
  of 35 % stretch, 129 samples: P within 1.4e-3, dP/dF within 7e-3 of their largest entries;
  degree 6: 4.5e-4 and 1.5e-3), and the error estimate must bound the true stress error (it
  exceeds it by a factor 1.8 or more there);
* central finite differences of the surrogate's own :math:`\\bar P(\\bar F)` for its tangent;
* :math:`\\bar P(QF) = Q\\bar P(F)` for rotations (objectivity), :math:`S(R_Qx) = R_QS(x)` for
  the cube's rotations with ``symmetry="cubic"``;
* in a macro solve, a homogeneous RVE (both phases of the same Neo-Hookean law) homogenizes to
  that law, so a block in uniaxial tension with sliding supports has the closed-form reaction
  :math:`P_{yy}(\\mathrm{diag}(a, \\lambda, a))` with :math:`P_{xx} = 0` fixing :math:`a`.  The
  design box covers only the first half of the load: the second step leaves it, its points are
  solved by the RVE, added to the database and the surrogate is refitted.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from multiscale.fe2 import DisplacementBC, FE2Problem
from multiscale.fe2.surrogate import (
    RVEDatabase,
    Surrogate,
    SurrogateOptions,
    design,
    green_lagrange,
    mandel,
    strain_box,
    symmetry_group,
    tube_design,
    unmandel,
)
from multiscale.mesh import spherical_inclusion
from multiscale.mesh.macro import box
from multiscale.physics import J2Plasticity, NeoHookean

MU, LAM = 1.0, 2.0


def neo_hookean(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form P and dP/dF of the compressible Neo-Hookean law (n, 3, 3)."""
    Finv = np.linalg.inv(F)
    lnJ = np.log(np.linalg.det(F))
    FinvT = Finv.swapaxes(-1, -2)
    P = MU * F + (LAM * lnJ - MU)[:, None, None] * FinvT
    eye = np.eye(3)
    A = (
        MU * np.einsum("ik,JL->iJkL", eye, eye)[None]
        + LAM * np.einsum("nJi,nLk->niJkL", Finv, Finv)
        - (LAM * lnJ - MU)[:, None, None, None, None] * np.einsum("nJk,nLi->niJkL", Finv, Finv)
    )
    return P, A


LOWER = (-0.15, -0.05, -0.15, -0.05, -0.05, -0.05)
UPPER = (0.05, 0.35, 0.05, 0.05, 0.05, 0.05)


def closed_form_surrogate(degree: int = 6, symmetry: str | None = None) -> Surrogate:
    x = design(LOWER, UPPER, 128, seed=1)
    U = _stretch(x)
    P, A = neo_hookean(U)
    db = RVEDatabase.from_responses(U, P, A)
    return Surrogate(db, SurrogateOptions(degree=degree, symmetry=symmetry))


def _stretch(x: np.ndarray) -> np.ndarray:
    from multiscale.fe2.surrogate import right_stretch

    return right_stretch(unmandel(x, 3))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.normal(size=(3, 3)))
    Q = Q * np.sign(np.diag(R))
    return Q if np.linalg.det(Q) > 0 else -Q


def test_surrogate_reproduces_neo_hookean_and_its_tangent():
    sur = closed_form_surrogate(degree=5)
    rng = np.random.default_rng(3)
    x = design(LOWER, UPPER, 64, seed=7)[1:]  # other points than the design's
    x = 0.9 * x  # well inside the box
    # rotated deformation gradients with these strains: F = Q U
    Q = np.array([random_rotation(rng) for _ in x])
    F = Q @ _stretch(x)
    P, A, eta, inside = sur.respond(F)
    P_ref, A_ref = neo_hookean(F)
    assert inside.all()
    scale = np.abs(P_ref).max()
    assert np.abs(P - P_ref).max() < 3e-3 * scale
    assert np.abs(A - A_ref).max() < 1.5e-2 * np.abs(A_ref).max()
    # the error estimate is conservative here: above the true stress error of the fit
    S_err = np.abs(sur.stress(mandel(green_lagrange(F)))[0] - mandel(_pk2_ref(F))).max(axis=1)
    assert np.all(eta * sur.fine.sigma0 >= S_err)


def _pk2_ref(F: np.ndarray) -> np.ndarray:
    P, _ = neo_hookean(F)
    return np.linalg.inv(F) @ P


def test_tangent_is_the_derivative_of_the_surrogate_stress():
    sur = closed_form_surrogate(degree=5)
    rng = np.random.default_rng(5)
    F = np.eye(3) + 0.1 * rng.uniform(-1, 1, size=(4, 3, 3)) + np.diag([0, 0.15, 0])
    _, A, _, _ = sur.respond(F)
    h = 1e-6
    fd = np.empty_like(A)
    for k in range(3):
        for m in range(3):
            dF = np.zeros((3, 3))
            dF[k, m] = h
            Pp, *_ = sur.respond(F + dF)
            Pm, *_ = sur.respond(F - dF)
            fd[:, :, :, k, m] = (Pp - Pm) / (2 * h)
    assert np.abs(A - fd).max() < 1e-6 * np.abs(A).max()
    # a potential's tangent has major symmetry
    np.testing.assert_allclose(A, A.transpose(0, 3, 4, 1, 2), atol=1e-10 * np.abs(A).max())


def test_objectivity_and_cubic_symmetry():
    rng = np.random.default_rng(11)
    F = np.eye(3) + 0.05 * rng.uniform(-1, 1, size=(5, 3, 3)) + np.diag([-0.05, 0.2, -0.05])
    sur = closed_form_surrogate(degree=4)
    P, A, _, _ = sur.respond(F)
    for _ in range(3):
        Q = random_rotation(rng)
        PQ, AQ, _, _ = sur.respond(Q @ F)
        np.testing.assert_allclose(PQ, Q @ P, atol=1e-12 * np.abs(P).max())
        np.testing.assert_allclose(
            AQ, np.einsum("ia,kb,najbl->nijkl", Q, Q, A), atol=1e-11 * np.abs(A).max()
        )
    # cubic symmetry imposed on data from one side of the box only: the fit is invariant
    x = design((0, 0, 0, 0, 0, 0), (0.1, 0.2, 0.05, 0.04, 0.03, 0.02), 32)
    U = _stretch(x)
    db = RVEDatabase.from_responses(U, *neo_hookean(U))
    cubic = Surrogate(db, SurrogateOptions(degree=4, symmetry="cubic"))
    group = symmetry_group("cubic", 3)
    assert len(group) == 24
    E = green_lagrange(F)
    S = unmandel(cubic.stress(mandel(E), tangent=False)[0], 3)
    for Q in group:
        SQ = unmandel(cubic.stress(mandel(Q @ E @ Q.T), tangent=False)[0], 3)
        np.testing.assert_allclose(SQ, Q @ S @ Q.T, atol=1e-11 * np.abs(S).max())


def test_database_file_box_and_refusals(tmp_path, comm):
    x = design(LOWER, UPPER, 16)
    U = _stretch(x)
    db = RVEDatabase.from_responses(U, *neo_hookean(U))
    path = tmp_path / f"db{comm.rank}.npz"
    db.save(path)
    back = RVEDatabase.load(path)
    for name in ("strain", "stress", "tangent", "online"):
        np.testing.assert_array_equal(getattr(back, name), getattr(db, name))
    # the design includes the reference state and fills the box it was asked for
    lo, hi = strain_box(U, margin=0.0)
    assert np.all(lo >= np.array(LOWER) - 1e-12) and np.all(hi <= np.array(UPPER) + 1e-12)
    np.testing.assert_allclose(x[0], 0.0)
    sur = Surrogate(db, SurrogateOptions(degree=3))
    far = np.diag([1.0, 1.6, 1.0])[None]
    assert not sur.respond(far)[3][0]
    # history-dependent phases are refused in one line
    with pytest.raises(ValueError, match="history-free"):
        FE2Problem(
            box(comm, (1.0, 1.0, 1.0), (1, 1, 1)),
            lambda c: spherical_inclusion(c, 0.2, h=0.5),
            {
                "matrix": J2Plasticity.from_young(1.0, 0.3, 0.01),
                "inclusion": J2Plasticity.from_young(1.0, 0.3, 0.01),
            },
            bcs=[DisplacementBC("top", 0.01, component=1)],
            surrogate={"lower": LOWER, "upper": UPPER, "samples": 4, "degree": 2},
        )


def uniaxial_reaction(stretch: float) -> float:
    """P_yy of diag(a, stretch, a) with P_xx = 0 (closed form, with a root find)."""
    a = brentq(lambda a: MU * a * a + LAM * np.log(a * a * stretch) - MU, 0.5, 1.5, xtol=1e-14)
    J = a * a * stretch
    return MU * stretch + (LAM * np.log(J) - MU) / stretch


@pytest.mark.mpi
def test_macro_solve_with_online_enrichment(comm, tmp_path):
    law = NeoHookean(lmbda=LAM, mu=MU)
    stretch = 0.2
    lam1 = 1 + 0.55 * stretch  # the design covers the first half of the load only
    lower = (-0.06, -0.01, -0.06, -0.01, -0.01, -0.01)
    upper = (0.01, (lam1**2 - 1) / 2, 0.01, 0.01, 0.01, 0.01)
    path = comm.bcast(str(tmp_path / "db.npz"), root=0)
    problem = FE2Problem(
        box(comm, (1.0, 1.0, 1.0), (1, 1, 1)),
        lambda c: spherical_inclusion(c, 0.2, h=0.5),
        {"matrix": law, "inclusion": law},
        bcs=[
            DisplacementBC("left", 0.0, component=0),
            DisplacementBC("bottom", 0.0, component=1),
            DisplacementBC("back", 0.0, component=2),
            DisplacementBC("top", stretch, component=1),
        ],
        surrogate=SurrogateOptions(
            database=path, lower=lower, upper=upper, samples=32, degree=5, tol=2e-3
        ),
    )
    with problem:
        result = problem.solve([0.5, 1.0])
        stats = result.micro["surrogate"]
        for step, (_, reaction) in zip(result.steps, result.curve(), strict=True):
            reference = uniaxial_reaction(1 + step.factor * stretch)
            assert abs(reaction - reference) < 1e-4 * abs(reference), (reaction, reference)
        # the first step is inside the design and served by the surrogate, the second leaves
        # it: its points are solved by the RVE and enrich the database (on every rank alike)
        assert result.steps[0].quantities["rve_solves"] == 0
        assert result.steps[1].quantities["rve_solves"] > 0
        assert stats["served"] > 0 and stats["online_samples"] > 0 and stats["refits"] >= 1
        assert stats["offline_solves"] == 33 and 0 < stats["avoided_fraction"] < 1
        db = RVEDatabase.load(path)
        assert len(db) == stats["database_size"] and db.online.sum() == stats["online_samples"]
        sizes = comm.allgather(len(problem.micro.surrogate.db))
        coefs = comm.allgather(problem.micro.surrogate.fine.coef)
        assert len(set(sizes)) == 1 and all(np.array_equal(c, coefs[0]) for c in coefs)
    comm.Barrier()


def test_config_section(tmp_path):
    from multiscale.config import ConfigError
    from multiscale.fe2.config import FE2Config

    data = {
        "macro": {
            "mesh": {"type": "box", "lengths": [1, 1, 1], "n": [1, 1, 1]},
            "bcs": [{"boundary": "top", "component": 1, "value": 0.1}],
        },
        "micro": {
            "mesh": {"type": "spherical_inclusion", "vf": 0.2},
            "materials": {"matrix": {"law": "neo_hookean", "E": 1.0, "nu": 0.3}},
            "surrogate": {"lower": list(LOWER), "upper": list(UPPER), "symmetry": "cubic"},
        },
        "output": {"directory": str(tmp_path / "out")},
    }
    options = FE2Config.from_dict(data, base=tmp_path).surrogate()
    assert options.lower == LOWER and options.upper == UPPER and options.symmetry == "cubic"
    assert options.database == str(tmp_path / "out" / "surrogate.npz")
    data["micro"]["surrogate"] = {"lower": list(LOWER), "database": "db.npz"}
    with pytest.raises(ConfigError, match="both lower and upper"):
        FE2Config.from_dict(data, base=tmp_path)
    data["micro"]["surrogate"] = {"database": "db.npz", "tol": -1.0}
    with pytest.raises(ConfigError, match="tol"):
        FE2Config.from_dict(data, base=tmp_path)
    path = [[0.0] * 6, [-0.05, 0.2, -0.05, 0.0, 0.0, 0.0]]
    data["micro"]["surrogate"] = {"path": path, "radius": [0.02, 0.02, 0.02, 0.01, 0.01, 0.01]}
    options = FE2Config.from_dict(data, base=tmp_path).surrogate()
    assert options.path == tuple(map(tuple, path)) and options.radius[3] == 0.01
    np.testing.assert_array_equal(
        options.strains(), tube_design(np.array(path), options.samples, options.radius)
    )
    data["micro"]["surrogate"] = {"path": path, "lower": list(LOWER), "upper": list(UPPER)}
    with pytest.raises(ConfigError, match="not both"):
        FE2Config.from_dict(data, base=tmp_path)
    data["micro"]["surrogate"] = {"path": path, "radius": -0.1}
    with pytest.raises(ConfigError, match="radius"):
        FE2Config.from_dict(data, base=tmp_path)


def test_tube_design_samples_around_the_path():
    """The tube design: the reference state first, then every sample within the radius of a
    point of the (piecewise linear) path in each tensor component, spread along all of it."""
    lam = np.linspace(1.0, 1.3, 7)
    path = np.column_stack(
        [0.5 * (lam**-0.8 - 1), 0.5 * (lam**2 - 1), 0.5 * (lam**-0.8 - 1), *np.zeros((3, 7))]
    )
    radius = np.array([0.02, 0.02, 0.02, 0.01, 0.01, 0.01])
    x = tube_design(path, 64, radius, seed=3)
    assert x.shape == (65, 6) and np.all(x[0] == 0.0)
    comps = unmandel(x[1:], 3)[:, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    # the nearest point of the densely resampled path, component by component within radius
    t = np.linspace(0.0, 1.0, 4001)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    dense = np.column_stack([np.interp(t * arc[-1], arc, path[:, a]) for a in range(6)])
    excess = np.abs(comps[:, None, :] - dense[None, :, :]) - radius
    assert np.all(np.min(np.max(excess, axis=2), axis=1) <= 1e-4)
    assert comps[:, 1].min() < 0.05 and comps[:, 1].max() > 0.3  # along the whole path
    options = SurrogateOptions(path=tuple(map(tuple, path)), radius=tuple(radius), samples=64)
    np.testing.assert_array_equal(options.strains(), tube_design(path, 64, radius))
    with pytest.raises(ValueError, match="zero length"):
        tube_design(np.zeros((2, 6)), 4, 0.01)
