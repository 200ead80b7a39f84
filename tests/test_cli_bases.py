"""``multiscale bases``: the JSON errors against independent references, rank-count independence,
and bad input ending with exit status 2 and one line naming the key.

References computed here, not by the package:

* 1D, :math:`a = (2-\\cos\\omega x)^{-1}`, :math:`f = 1`: the closed-form solution
  (:math:`a u' = C - x`) gives :math:`\\|u\\|_a`, and MsFEM is nodally exact in 1D, so its
  error is the sum of the element bubbles :math:`w_K` (:math:`-(a w_K')' = 1` on :math:`K`,
  :math:`w_K = 0` on :math:`\\partial K`), also in closed form:
  :math:`w_K' = (c_K - x)(2 - \\cos\\omega x)` with :math:`\\int_K w_K' = 0`.
* Coarse mesh = fine mesh: every multiscale space is the fine space itself, so every error
  vanishes and the coarse unknowns are the :math:`(n-1)^2` interior vertices.
* HMM in 1D, in closed form: with periodic coupling the sampling-domain problem of P1 on
  :math:`n` cells has a piecewise constant corrector gradient, so
  :math:`A^{HMM}(x_q) = \\langle 1/\\bar a_i\\rangle^{-1}`, :math:`\\bar a_i` the mean of
  :math:`a` over micro cell :math:`i` of the sampling domain (of length :math:`\\delta`, its
  left end :math:`x_q - \\delta/2` snapped to the period lattice); the P1
  macro solution of :math:`-(A_K u')' = 1` with :math:`A_K` constant on each element is exact at
  the nodes (1D), so :math:`u_H` is the nodal interpolant of a piecewise quadratic known in
  closed form.
* HMM in 2D: :math:`A^{hom}` lies between the layered (mixed Voigt–Reuss) bounds,
  :math:`\\big\\langle\\langle a^{-1}\\rangle_{y_1}^{-1}\\big\\rangle_{y_2} \\le A^{hom}_{11}
  \\le \\big\\langle\\langle a\\rangle_{y_2}^{-1}\\big\\rangle_{y_1}^{-1}` (the flux and the
  potential principles with a flux that varies with :math:`y_2` only and a corrector that
  varies with :math:`y_1` only; the axes swapped for :math:`A^{hom}_{22}`), computed here by
  quadrature; the homogenization
  error :math:`\\|u_h - u_0\\|` halves with :math:`\\varepsilon` while the HMM macro solution
  does not depend on :math:`\\varepsilon` (periodic coupling, :math:`\\delta = \\varepsilon`,
  an :math:`x`-independent coefficient).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_config_is_one_line, shared_dir
from mpi4py import MPI

from multiscale.cli import main
from multiscale.cli.bases import compare_methods, load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "bases.yaml"
CHANNELS = EXAMPLES / "bases_channels.toml"
IMAGE = EXAMPLES / "bases_image.yaml"
DISKS = EXAMPLES / "disks_128.png"


def run_cli(config_text: str, tmp_path: Path, name: str) -> dict:
    """Write ``config_text`` (YAML) on rank 0, run ``multiscale -q bases`` on every rank, read
    the summary."""
    comm = MPI.COMM_WORLD
    work = shared_dir(tmp_path)
    cfg, out = work / f"{name}.yaml", work / f"{name}.json"
    if comm.rank == 0:
        cfg.write_text(config_text)
    comm.barrier()
    assert main(["-q", "bases", str(cfg), "--json", str(out)]) == 0
    comm.barrier()
    return json.loads(out.read_text())


def report(*lines: str) -> None:
    if MPI.COMM_WORLD.rank == 0:
        print("\n" + "\n".join(lines))


# -- 1D closed form -------------------------------------------------------------------------------
def _gauss(a: float, b: float, pieces: int, order: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre points and weights on ``[a, b]``."""
    gx, gw = np.polynomial.legendre.leggauss(order)
    t = np.linspace(a, b, pieces + 1)
    half = np.diff(t)[:, None] / 2
    x = (t[1:] + t[:-1])[:, None] / 2 + half * gx
    return x.ravel(), (half * gw).ravel()


def _flux_solution(omega: float, a: float, b: float, pieces: int) -> tuple[float, float]:
    """:math:`\\int_a^b a w'^2` and :math:`\\int_a^b w^2` of :math:`-(a w')' = 1`,
    :math:`w(a) = w(b) = 0`, :math:`a = (2-\\cos\\omega x)^{-1}`:
    :math:`w' = (c - x)(2 - \\cos\\omega x)`, :math:`c` from :math:`\\int_a^b w' = 0`, and
    :math:`w(x) = [2ct - t^2 - (c - t)\\sin(\\omega t)/\\omega
    + \\cos(\\omega t)/\\omega^2]_a^x`."""
    x, w = _gauss(a, b, pieces)
    weight = 2 - np.cos(omega * x)
    c = np.sum(w * x * weight) / np.sum(w * weight)

    def antiderivative(t: np.ndarray) -> np.ndarray:
        return 2 * c * t - t**2 - (c - t) * np.sin(omega * t) / omega + np.cos(omega * t) / omega**2

    values = antiderivative(x) - antiderivative(np.array(a))
    return float(np.sum(w * (c - x) ** 2 * weight)), float(np.sum(w * values**2))


ONE_D = """\
mesh: {dim: 1, coarse_cells: 8, fine_cells: 2048}
coefficient: {type: oscillatory, eps: 0.0625}
methods:
  fine: {}
  msfem: {}
  msfem_oversampling: {layers: 1}
"""


@pytest.mark.mpi
def test_bases_1d_against_closed_form(tmp_path):
    """H = 1/8 = 2 eps, h = eps/128: the fine solution's norms and the MsFEM errors (with and
    without oversampling, the same space in 1D) against the closed-form solution and bubbles."""
    data = run_cli(ONE_D, tmp_path, "one_d")
    omega, n_c = 2 * np.pi / 0.0625, 8
    energy2, l2sq = _flux_solution(omega, 0.0, 1.0, 4096)
    bubbles = np.array([_flux_solution(omega, k / n_c, (k + 1) / n_c, 512) for k in range(n_c)])
    ref_energy = np.sqrt(bubbles[:, 0].sum() / energy2)
    ref_l2 = np.sqrt(bubbles[:, 1].sum() / l2sq)
    fine = data["methods"]["fine"]
    rows = [
        f"fine: energy norm {fine['energy_norm']:.8f} (closed form {np.sqrt(energy2):.8f}), "
        f"L2 norm {fine['L2_norm']:.8f} (closed form {np.sqrt(l2sq):.8f})",
        f"MsFEM reference: energy {ref_energy:.6f}, L2 {ref_l2:.6f}",
    ]
    assert fine["dofs"] == 2047 and data["fine_dofs"] == 2047
    assert abs(fine["energy_norm"] / np.sqrt(energy2) - 1) < 1e-4
    assert abs(fine["L2_norm"] / np.sqrt(l2sq) - 1) < 1e-4
    for name in ("msfem", "msfem_oversampling"):
        entry = data["methods"][name]
        err = entry["errors"]
        rows.append(
            f"{name}: energy {err['energy']:.6f}, L2 {err['L2']:.6f} (differences "
            f"{err['energy'] / ref_energy - 1:.1e}, {err['L2'] / ref_l2 - 1:.1e})"
        )
        assert entry["dofs"] == n_c - 1
        assert abs(err["energy"] / ref_energy - 1) < 1e-4
        assert abs(err["L2"] / ref_l2 - 1) < 1e-4
    report(*rows)


# -- HMM -------------------------------------------------------------------------------------------
HMM_1D = """\
mesh: {{dim: 1, coarse_cells: 8, fine_cells: 8192}}
coefficient: {{type: oscillatory, eps: {eps}}}
methods:
  fine: {{}}
  hmm: {{micro_cells: 16}}
"""


def _exact_1d(omega: float) -> tuple:
    """:math:`u` and :math:`u'` of :math:`-(a u')' = 1`, :math:`u(0) = u(1) = 0`,
    :math:`a = (2 - \\cos\\omega x)^{-1}`: :math:`u' = (C - x)(2 - \\cos\\omega x)`."""
    x, w = _gauss(0.0, 1.0, 4096)
    weight = 2 - np.cos(omega * x)
    c = np.sum(w * x * weight) / np.sum(w * weight)

    def u(t: np.ndarray) -> np.ndarray:
        return (
            2 * c * t
            - t**2
            - (c - t) * np.sin(omega * t) / omega
            + (np.cos(omega * t) - 1) / omega**2
        )

    return u, lambda t: (c - t) * (2 - np.cos(omega * t))


def _hmm_1d_reference(eps: float, n_coarse: int, micro: int) -> tuple[float, float, float]:
    """The relative energy and L2 errors of 1D FE-HMM against the exact solution, and the L2
    distance of the exact solution from the homogenized one, :math:`u_0 = x(1-x)`, all by
    composite Gauss quadrature (see the module docstring)."""
    omega = 2 * np.pi / eps
    u, du = _exact_1d(omega)
    mids = (np.arange(n_coarse) + 0.5) / n_coarse
    a_k = []
    for xq in mids:  # A_HMM(x_q): harmonic mean of the micro-cell means of a
        lo = eps * np.round((xq - eps / 2) / eps)  # the sampling domain snapped to the lattice
        means = []
        for i in range(micro):
            y, wy = _gauss(lo + i * eps / micro, lo + (i + 1) * eps / micro, 1)
            means.append(np.sum(wy / (2 - np.cos(omega * y))) / (eps / micro))
        a_k.append(1 / np.mean(1 / np.array(means)))
    a_k = np.array(a_k)
    # -(A_K v')' = 1 with A_K piecewise constant: A_K v' = c - x, v(0) = v(1) = 0
    t = np.linspace(0, 1, n_coarse + 1)
    c = np.sum(np.diff(t**2) / 2 / a_k) / np.sum(np.diff(t) / a_k)
    nodes = np.concatenate([[0.0], np.cumsum((c * np.diff(t) - np.diff(t**2) / 2) / a_k)])
    x, w = _gauss(0.0, 1.0, 8192)
    u_h = np.interp(x, t, nodes)
    du_h = (np.diff(nodes) / np.diff(t))[np.minimum((x * n_coarse).astype(int), n_coarse - 1)]
    a = 1 / (2 - np.cos(omega * x))
    energy = np.sqrt(np.sum(w * a * (du(x) - du_h) ** 2) / np.sum(w * a * du(x) ** 2))
    l2 = np.sqrt(np.sum(w * (u(x) - u_h) ** 2) / np.sum(w * u(x) ** 2))
    homogenization = np.sqrt(np.sum(w * (u(x) - x * (1 - x)) ** 2) / np.sum(w * u(x) ** 2))
    return float(energy), float(l2), float(homogenization)


@pytest.mark.mpi
def test_bases_hmm_1d_closed_form(tmp_path):
    """HMM in 1D (H = 1/8, periodic sampling domains of one period, 16 micro cells) against
    the closed form, for eps = 1/16 and 1/64.  Bound: its L2 error against the fine solution
    is at most the homogenization error :math:`\\|u - u_0\\|` (:math:`O(\\varepsilon)`) plus
    :math:`\\|u_0 - u_H\\|` (:math:`H^2` for the interpolant of :math:`u_0 = x(1-x)`, whose
    relative L2 error is exactly :math:`H^2`, plus the micro error
    :math:`O((h/\\varepsilon)^2)`); the homogenized ``errors`` of the summary are that second
    term and are checked against :math:`H^2` and :math:`H` (energy)."""
    rows = []
    for eps in (0.0625, 0.015625):
        data = run_cli(HMM_1D.format(eps=eps), tmp_path, f"hmm_1d_{round(1 / eps)}")
        entry = data["methods"]["hmm"]
        energy, l2, hom = _hmm_1d_reference(eps, 8, 16)
        found = entry["errors"]
        rel = {  # differences in units of the relative norms
            "energy": found["energy"] - energy,
            "L2": found["L2"] - l2,
            "fine_L2": entry["homogenized"]["fine_L2"] - hom,
        }
        rows.append(
            f"eps = 1/{round(1 / eps)}: HMM energy {found['energy']:.5f} (closed form "
            f"{energy:.5f}), L2 {found['L2']:.5f} ({l2:.5f}); |u - u0| {hom:.5f}; vs u0: "
            f"L2 {entry['homogenized']['errors']['L2']:.5f}, energy "
            f"{entry['homogenized']['errors']['energy']:.5f}; differences "
            + ", ".join(f"{k} {v:.1e}" for k, v in rel.items())
        )
        report(rows[-1])
        assert entry["dofs"] == 7 and entry["micro_problems"] == 8
        # the fine P1 solution u_h (h <= eps/128) stands for the exact u: by the triangle
        # inequality the L2 differences are at most |u - u_h|/|u|, O((h/eps)^2); in the energy
        # norm u_H lies in V_h, so |u - u_H|^2 = |u - u_h|^2 + |u_h - u_H|^2 (Galerkin), and the
        # difference is |u - u_h|^2/(2 |u - u_H|), with |u - u_h|/|u| about 2 pi h/(eps sqrt 12)
        assert max(abs(v) for v in rel.values()) < 2e-4
        assert abs(entry["homogenized"]["A_hom"][0][0] - 0.5) < 1e-4  # 1/<2 - cos> = 1/2
        vs_u0 = entry["homogenized"]["errors"]
        assert abs(vs_u0["L2"] / (1 / 64) - 1) < 0.15  # H^2 and the micro error
        assert abs(vs_u0["energy"] / (1 / 8) - 1) < 0.05  # H
        assert found["L2"] <= hom + 1.05 * vs_u0["L2"]


HMM_2D = """\
mesh: {{dim: 2, coarse_cells: 8, fine_cells: {fine}}}
coefficient: {{type: oscillatory, eps: {eps}}}
fine_solver: direct
methods:
  fine: {{}}
  hmm: {{}}
"""


def _layered_bounds(axis: int, n: int = 400) -> tuple[float, float]:
    """The mixed Voigt–Reuss bounds of :math:`A^{hom}_{ii}` of the Hou–Wu coefficient (see
    the module docstring), by the midpoint rule on an ``n`` x ``n`` grid of the unit cell."""
    y1, y2 = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    s = np.sin(2 * np.pi * y1)
    a = (2 + 1.8 * s) / (2 + 1.8 * np.cos(2 * np.pi * y2)) + (2 + np.sin(2 * np.pi * y2)) / (
        2 + 1.8 * s
    )
    along, across = (1, 0) if axis == 0 else (0, 1)
    upper = 1 / np.mean(1 / np.mean(a, axis=along))  # potential varying along the axis only
    lower = np.mean(1 / np.mean(1 / a, axis=across))  # flux varying across the axis only
    return float(lower), float(upper)


@pytest.mark.mpi
def test_bases_hmm_2d_homogenization(tmp_path):
    """Hou–Wu, H = 1/8, eps = 1/8 and 1/16 (h = eps/8; sampling domains and unit cell with the
    fine mesh's 8 cells per period): A_hom within the layered bounds; the homogenization error
    |u_h - u_0|/|u_h| halves with eps (O(eps)); the HMM macro solution, the same for every eps
    (periodic coupling, delta = eps, x-independent a), is within 6 % (L2) of u_0 (the P1 error
    at H = 1/8, O(H^2)); so its L2 error against the fine solution is O(eps) + O(H^2): below
    the sum of the two, by the triangle inequality through u_0."""
    rows, fine_l2, hom_l2 = [], [], []
    for eps, fine in ((0.125, 64), (0.0625, 128)):
        data = run_cli(HMM_2D.format(eps=eps, fine=fine), tmp_path, f"hmm_2d_{fine}")
        entry = data["methods"]["hmm"]
        a_hom = np.array(entry["homogenized"]["A_hom"])
        bounds = [_layered_bounds(i) for i in (0, 1)]
        vs_u0 = entry["homogenized"]["errors"]
        fine_l2.append(entry["homogenized"]["fine_L2"])
        rows.append(
            f"eps = 1/{round(1 / eps)}: A_hom diag {np.round(np.diag(a_hom), 5)} (bounds "
            f"{np.round(bounds, 5).tolist()}), |A_12| {abs(a_hom[0, 1]):.1e}; HMM vs fine: "
            f"energy {entry['errors']['energy']:.4f}, L2 {entry['errors']['L2']:.4f}; vs u0: "
            f"L2 {vs_u0['L2']:.4f}, energy {vs_u0['energy']:.4f}; |u_h - u0| {fine_l2[-1]:.4f}"
        )
        report(rows[-1])
        for i, (lo, hi) in enumerate(bounds):
            assert lo <= a_hom[i, i] <= hi
        # 0 for the exact A_hom (a is invariant under y1 -> 1/2 - y1); the diagonals of the
        # structured cell mesh (8 cells per period, as the fine mesh) break the symmetry
        assert abs(a_hom[0, 1]) < 1e-2 * a_hom[0, 0]
        hom_l2.append(vs_u0["L2"])
        assert vs_u0["L2"] < 0.06  # the P1 macro error at H = 1/8 and the micro error
        # the triangle inequality through u_0 (norms relative to |u_h| and |u_0|, which
        # differ by the homogenization error)
        assert entry["errors"]["L2"] < 1.05 * (fine_l2[-1] + vs_u0["L2"])
    assert 1.6 < fine_l2[0] / fine_l2[1] < 2.4  # O(eps)
    assert abs(hom_l2[0] / hom_l2[1] - 1) < 0.02  # u_H does not depend on eps


# -- coarse mesh = fine mesh ----------------------------------------------------------------------
COARSE_IS_FINE = """\
mesh: {dim: 2, coarse_cells: 8, fine_cells: 8}
coefficient: {type: oscillatory, eps: 0.5}
methods:
  msfem: {}
  msfem_oversampling: {layers: 1}
  gmsfem: {basis: 1, eigenpairs: 2}
  lod: {layers: 1}
"""


@pytest.mark.mpi
def test_bases_coarse_equal_to_fine(tmp_path):
    data = run_cli(COARSE_IS_FINE, tmp_path, "coarse_fine")
    worst = {n: max(m["errors"].values()) for n, m in data["methods"].items()}
    report(f"coarse = fine: largest relative error per method {worst}")
    for name, entry in data["methods"].items():
        assert entry["dofs"] == 49, name
        assert worst[name] < 1e-9, name


# -- the example, on every rank count -------------------------------------------------------------
@pytest.mark.mpi
def test_bases_example_rank_independent(tmp_path):
    """The example on all ranks; on more than one, against the same run on rank 0 alone
    (``COMM_SELF``); the resonance case H = eps: oversampling and LOD below plain MsFEM."""
    comm = MPI.COMM_WORLD
    data = run_cli(EXAMPLE.read_text(), tmp_path, "bases")
    assert set(data["methods"]) == {"fine", "msfem", "msfem_oversampling", "gmsfem", "lod", "hmm"}
    assert data["ranks"] == comm.size
    if comm.size > 1:
        serial = compare_methods(load_config(EXAMPLE), MPI.COMM_SELF) if comm.rank == 0 else None
        serial = comm.bcast(serial, root=0)
        diffs = {}
        for name, entry in serial["methods"].items():
            mine = data["methods"][name]
            assert mine["dofs"] == entry["dofs"]
            pairs = [(mine["errors"][k], v) for k, v in entry["errors"].items() if v]
            if name == "fine":  # errors 0 by definition: compare the norms
                pairs = [(mine[k], entry[k]) for k in ("energy_norm", "L2_norm")]
            diffs[name] = max(abs(a / b - 1) for a, b in pairs)
        report(f"{comm.size} ranks vs 1: relative differences {diffs}")
        assert max(diffs.values()) < 1e-8
    e = {n: m["errors"]["energy"] for n, m in data["methods"].items()}
    assert e["msfem_oversampling"] < 0.8 * e["msfem"] and e["lod"] < 0.5 * e["msfem"]
    assert data["methods"]["gmsfem"]["dofs"] == 2 * 81  # 2 per vertex, boundary ones included


# -- coefficients from images and random fields ---------------------------------------------------
STRIPES_CONFIG = """\
mesh: {{dim: 2, coarse_cells: 4, fine_cells: 32}}
coefficient: {{type: image, path: {path}, values: {{0: 1.0, 128: 30.0, 255: 1000.0}}}}
fine_solver: direct
methods:
  fine: {{}}
  msfem: {{}}
  lod: {{layers: 1}}
"""


@pytest.mark.mpi
def test_bases_image_equals_layers(tmp_path):
    """An ``.npy`` of horizontal stripes through the CLI gives the fine norms and the MsFEM and
    LOD errors of the same layers written as an analytic UFL coefficient."""
    from test_bases_coefficients import STRIPES, layered_ufl

    from multiscale.bases import (
        FineProblem,
        LODParameters,
        NestedMeshes,
        lod_space,
        msfem_space,
        unit_square_pair,
    )
    from multiscale.nonlinear import direct_solver_options

    comm = MPI.COMM_WORLD
    path = shared_dir(tmp_path) / "stripes.npy"
    if comm.rank == 0:
        np.save(path, np.repeat(STRIPES[:, None], 3, axis=1))
    comm.barrier()
    data = run_cli(STRIPES_CONFIG.format(path=path), tmp_path, "stripes")
    fine = FineProblem(
        NestedMeshes(*unit_square_pair(comm, 4, 8)),
        layered_ufl,
        petsc_options=direct_solver_options(symmetric=True),
    )
    u = fine.solve()
    energy, l2 = fine.broken_norms(fine.restrict(u))
    ref = {"fine": {"energy_norm": energy, "L2_norm": l2}}
    for name, space in (("msfem", msfem_space(fine)), ("lod", lod_space(fine, LODParameters(1)))):
        ref[name] = space.errors(space.solve(), u)
        space.destroy()
    found = {"fine": {k: data["methods"]["fine"][k] for k in ref["fine"]}}
    found.update({n: data["methods"][n]["errors"] for n in ("msfem", "lod")})
    diffs = {n: max(abs(found[n][k] / v - 1) for k, v in ref[n].items()) for n in ref}
    report(f"image stripes via the CLI vs analytic layers: relative differences {diffs}")
    assert max(diffs.values()) < 1e-9


RANDOM_CONFIG = """\
mesh: {dim: 2, coarse_cells: 4, fine_cells: 32}
coefficient: {type: random, correlation_length: 0.08, sigma: 1.5, seed: 3}
fine_solver: direct
methods:
  fine: {}
  msfem_oversampling: {layers: 1}
  gmsfem: {basis: 2, eigenpairs: 3}
"""


@pytest.mark.mpi
def test_bases_random_rank_independent(tmp_path):
    """A log-normal random field with a fixed seed: the summary on ``comm`` equals the one of
    rank 0 alone."""
    comm = MPI.COMM_WORLD
    data = run_cli(RANDOM_CONFIG, tmp_path, "random")
    work = shared_dir(tmp_path)
    serial = None
    if comm.rank == 0:
        serial = compare_methods(load_config(work / "random.yaml"), MPI.COMM_SELF)
    serial = comm.bcast(serial, root=0)
    diffs = {}
    for name, entry in serial["methods"].items():
        mine = data["methods"][name]
        pairs = [(mine["errors"][k], v) for k, v in entry["errors"].items() if v]
        if name == "fine":
            pairs = [(mine[k], entry[k]) for k in ("energy_norm", "L2_norm")]
        diffs[name] = max(abs(a / b - 1) for a, b in pairs)
    report(f"random field, {comm.size} ranks vs 1: relative differences {diffs}")
    assert max(diffs.values()) < 1e-9


VOXELS_CONFIG = """\
mesh: {{dim: 3, coarse_cells: 4, fine_cells: 4}}
coefficient: {{type: image, path: {path}, axes: xyz}}
methods:
  msfem: {{}}
  msfem_oversampling: {{layers: 1}}
  gmsfem: {{basis: 1, eigenpairs: 2}}
  lod: {{layers: 1}}
"""


@pytest.mark.mpi
def test_bases_3d_voxels_coarse_equal_to_fine(tmp_path):
    """Tetrahedra: a 4 x 4 x 4 voxel array (values from 1 to 1e3, the pixel values themselves
    as the coefficient) on a coarse mesh equal to the fine one: every space is the fine space,
    every error vanishes, the unknowns are the 27 interior vertices."""
    comm = MPI.COMM_WORLD
    path = shared_dir(tmp_path) / "voxels.npy"
    if comm.rank == 0:
        np.save(path, 10.0 ** np.random.default_rng(2).uniform(0, 3, (4, 4, 4)))
    comm.barrier()
    data = run_cli(VOXELS_CONFIG.format(path=path), tmp_path, "voxels")
    worst = {n: max(m["errors"].values()) for n, m in data["methods"].items()}
    report(f"3D voxels, coarse = fine: largest relative error per method {worst}")
    for name, entry in data["methods"].items():
        assert entry["dofs"] == 27, name
        assert worst[name] < 1e-9, name


# -- bad input ------------------------------------------------------------------------------------
BAD = [
    (
        "unknown method",
        EXAMPLE,
        "  lod: {layers: 2}",
        "  lodd: {layers: 2}",
        "methods: unknown key(s) ['lodd']",
    ),
    (
        "fine mesh not nested",
        EXAMPLE,
        "fine_cells: 64",
        "fine_cells: 60",
        "mesh.fine_cells: must be a multiple of mesh.coarse_cells = 8",
    ),
    (
        "negative contrast (TOML)",
        CHANNELS,
        "contrast = 1e4",
        "contrast = -1e4",
        "coefficient.contrast: must be positive",
    ),
    (
        "inclusion smaller than a fine cell",
        EXAMPLE,
        "coefficient: {type: oscillatory, eps: 0.125}",
        "coefficient: {type: inclusions, contrast: 100, size: 0.1}",
        "coefficient.size: an inclusion of 0.1 * H is smaller than a fine cell",
    ),
    (
        "zero source",
        EXAMPLE,
        "source: 1.0",
        "source: 0",
        "source: must not be 0",
    ),
    (
        "one coarse cell",
        EXAMPLE,
        "coarse_cells: 8",
        "coarse_cells: 1",
        "mesh.coarse_cells: must be at least 2, got 1",
    ),
    (
        "missing image",
        IMAGE,
        "path: examples/disks_128.png",
        "path: /nonexistent/disks.png",
        "coefficient.path: no image file '/nonexistent/disks.png'",
    ),
    (
        "unmapped pixel value",
        IMAGE,
        "  path: examples/disks_128.png\n  values: {0: 1.0, 255: 1000.0}",
        f"  path: {DISKS}\n  values: {{0: 1.0}}",
        "coefficient.values: pixel value(s) 255 have no coefficient",
    ),
    (
        "2D image on a 1D mesh",
        IMAGE,
        "mesh: {dim: 2, coarse_cells: 8, fine_cells: 128}\ncoefficient:\n  type: image\n"
        "  path: examples/disks_128.png",
        f"mesh: {{dim: 1, coarse_cells: 8, fine_cells: 128}}\ncoefficient:\n  type: image\n"
        f"  path: {DISKS}",
        "coefficient.path: a 2D image of shape (128, 128) on a 1D mesh",
    ),
    (
        "bad colour key",
        IMAGE,
        "  path: examples/disks_128.png\n  values: {0: 1.0, 255: 1000.0}",
        f"  path: {DISKS}\n  values: {{0: 1.0, '#zz0000': 2.0}}",
        "coefficient.values.#zz0000: '#zz0000' is not a pixel value",
    ),
    (
        "oscillatory in 3D",
        EXAMPLE,
        "mesh: {dim: 2,",
        "mesh: {dim: 3,",
        "coefficient.type: 'oscillatory' is defined in 1D and 2D",
    ),
    (
        "HMM without a period",
        EXAMPLE,
        "coefficient: {type: oscillatory, eps: 0.125}",
        "coefficient: {type: channels, contrast: 10000.0, channels: 2, width: 1, margin: 2}",
        "methods.hmm: HMM needs a periodic coefficient (coefficient.type: oscillatory); "
        "'channels' has no period",
    ),
    (
        "negative correlation length",
        EXAMPLE,
        "coefficient: {type: oscillatory, eps: 0.125}",
        "coefficient: {type: random, correlation_length: -0.1}",
        "coefficient.correlation_length: must be positive",
    ),
]


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("label", "example", "old", "new", "expected"), BAD, ids=[b[0] for b in BAD]
)
def test_bases_bad_input(tmp_path, capsys, label, example, old, new, expected):
    assert_bad_config_is_one_line("bases", example, tmp_path, capsys, (old, new), expected)
