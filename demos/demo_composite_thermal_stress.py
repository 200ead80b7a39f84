# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Thermal stress in a composite part, from a micrograph
#
# A unidirectional glass/epoxy composite is bonded to an aluminium layer and cooled from its
# cure temperature by $\Delta T = -100$ K.  The two layers shrink differently and the strip
# bends.  Its constants come from a picture of the composite's cross-section:
#
# 1. **Micro.** A synthetic micrograph: random non-overlapping fibres (area fraction 0.45),
#    wrapped around the edges so the picture is one period, drawn as a noisy greyscale PNG on
#    rank 0, read back and thresholded by the package (`load_phase_image`, grey-value
#    tolerance), meshed with one quadrilateral per pixel (`image_cell`).
# 2. **Homogenization.** The thermoelastic cell problem (`CoupledCellProblem` with
#    `ThermoElastic` phases, plane strain transverse section) gives the transverse stiffness
#    $C^*$ and the thermal stress coefficient $\beta^*$ ($\Sigma = C^*E - \beta^*\Delta T$), so
#    $\alpha^* = (C^*)^{-1}\beta^*$; the conductivity cell problem gives $k^*$.  Checks:
#    Levin's exact relation, the Hashin–Shtrikman bounds on the bulk modulus and on $k^*$, and
#    three pixel resolutions of the same fibres.
# 3. **Macro.** The strip in plane strain, $\operatorname{div}\,C(\varepsilon(u) -
#    \alpha\Delta T) = 0$ (`ThermalStressProblem`), with $C^*, \alpha^*$ in the composite
#    layer; its curvature against the layered-strip (Timoshenko) formula.
# 4. **Reference.** The same strip with every fibre resolved: the micrograph tiled over the
#    composite layer, one pixel per element (DNS), for two fibre sizes relative to the strip;
#    the curvature of the homogenized strip must be approached as the fibres get smaller.
#
# Runs under `mpirun -n 2 python3 demo_composite_thermal_stress.py`; the picture is drawn and
# read on rank 0, every mesh is distributed.

# %%
import itertools
import os
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.bounds import hashin_shtrikman_conductivity, hashin_shtrikman_elastic
from multiscale.cell import CellProblem
from multiscale.cell.coupled import homogenize_coupled
from multiscale.coupling.thermal_stress import (
    AnisotropicThermoElastic,
    Support,
    ThermalStressProblem,
    fit_curvature,
    laminated_strip_curvature,
)
from multiscale.mesh import (
    PhaseImage,
    image_cell,
    label_grid_cell,
    load_phase_image,
    random_sequential_addition,
    rasterize,
)
from multiscale.output import on_rank0, write_json_file
from multiscale.physics import Conductivity
from multiscale.physics.coupled import ThermoElastic
from multiscale.tensors import bulk_shear_from_stiffness, lame_from_young

comm = MPI.COMM_WORLD
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
shrink = bool(os.environ.get("CI"))
N = 128  # pixels per edge of the micrograph
DNS_PIXELS = 32 if shrink else 64  # the resolution of the picture the DNS tiles
PERIODS = (1,) if shrink else (1, 2)  # micrograph periods through the composite layer (DNS)
DT = -100.0  # K
t_start = time.perf_counter()

# %% [markdown]
# ## Materials
#
# Room-temperature handbook values (e.g. Daniel & Ishai, *Engineering Mechanics of Composite
# Materials*, 2006, table 2.1; ASM handbook for 6061 aluminium); stiffnesses in GPa, so
# stresses come out in GPa.
#
# | phase | $E$ (GPa) | $\nu$ | $\alpha$ (1e-6/K) | $k$ (W/m K) |
# |---|---|---|---|---|
# | E-glass fibre | 72 | 0.22 | 5.0 | 1.2 |
# | epoxy | 3.5 | 0.35 | 60 | 0.20 |
# | aluminium 6061 | 69 | 0.33 | 23.6 | - |


# %%
def thermoelastic(E: float, nu: float, alpha: float) -> ThermoElastic:
    return ThermoElastic(*lame_from_young(E, nu), alpha)


fibre, epoxy = thermoelastic(72.0, 0.22, 5.0e-6), thermoelastic(3.5, 0.35, 60e-6)
aluminium = thermoelastic(69.0, 0.33, 23.6e-6)
K_FIBRE, K_EPOXY = 1.2, 0.20
laws = {"epoxy": epoxy, "fibre": fibre}

# %% [markdown]
# ## The micrograph
#
# Random sequential addition of fibres (radius 0.11 periods, 10 % polydispersity) to the area
# fraction 0.45; grey 70 for the epoxy, 190 for the glass, plus Gaussian noise (standard
# deviation 15 grey levels, clipped at 45) as in a real picture.  The reader maps every grey
# value within 50 of 70 or 190 to its phase.

# %%
layout = random_sequential_addition((1.0, 1.0), 0.45, 0.11, gap=0.015, polydispersity=0.1, seed=11)
RESOLUTIONS = (N // 4, N // 2, N)  # the same fibres pictured at three resolutions


def png_of(n: int) -> Path:
    return results / f"composite_micrograph_{n}px.png"


def draw() -> None:
    from PIL import Image

    results.mkdir(parents=True, exist_ok=True)
    for n in RESOLUTIONS:
        grey = np.where(rasterize(layout, n), 190.0, 70.0).T[::-1]  # [x, y] -> rows from the top
        noise = np.clip(np.random.default_rng(n).normal(0.0, 15.0, grey.shape), -45.0, 45.0)
        Image.fromarray(np.rint(grey + noise).astype(np.uint8), mode="L").save(png_of(n))


on_rank0(comm, draw)
GREYS = {70: "epoxy", 190: "fibre"}


def read(n: int) -> PhaseImage:
    """The picture of ``n`` pixels per edge as the package reads it, checked against the drawing:
    the grey-value tolerance recovers the drawn phases pixel by pixel in spite of the noise."""
    pix = load_phase_image(comm, png_of(n), phases=GREYS, tol=50.0, size=(1.0, 1.0))
    assert np.array_equal(pix.labels == pix.phases["fibre"], rasterize(layout, n))
    return pix


png = png_of(N)
image = read(N)
phi = image.fractions["fibre"]
if comm.rank == 0:
    print(f"{png}: {N}x{N} pixels, {layout.count} fibres, fibre fraction {phi:.4f}")

# %% [markdown]
# ## Effective constants at three resolutions
#
# The same fibres pictured with $N/4$, $N/2$ and $N$ pixels per edge.  In plane
# strain the in-plane thermal stress of a phase is $\beta = (3\lambda + 2\mu)\alpha$ and the
# effective constants are
# $C^*$, $\beta^* = -\langle\sigma\rangle$ at $E = 0, \Delta T = 1$, and $\alpha^* =
# (C^*)^{-1}\beta^*$, the stress-free strain per kelvin of the composite (in the transverse
# plane, with $\varepsilon_{zz} = 0$).


# %%
def homogenize(n: int) -> dict:
    pix = read(n)
    cell = image_cell(comm, pix)
    result = homogenize_coupled(cell, laws)
    eff = ThermoElastic.effective(result)
    conductivity = {"epoxy": Conductivity(K_EPOXY), "fibre": Conductivity(K_FIBRE)}
    k_star = CellProblem(cell, conductivity).solve().tensor
    return {
        "pixels": pix.shape[0],
        "image": pix,
        "fractions": cell.volume_fractions(),
        "C": eff["C"],
        "beta": eff["beta"],
        "alpha": eff["alpha"],
        "k": k_star,
        "bulk": bulk_shear_from_stiffness(eff["C"], 2)[0],
        "hill_mandel": result.hill_mandel_residual,
    }


levels = [homogenize(n) for n in RESOLUTIONS]
fine = levels[-1]
coarse = next(lev for lev in levels if lev["pixels"] == DNS_PIXELS)  # the DNS's pixels
if comm.rank == 0:
    with np.printoptions(precision=4, suppress=False):
        for lev in levels:
            print(
                f"{lev['pixels']:4d} px: C* (GPa) = {lev['C'][[0, 1, 0], [0, 1, 1]]} ..., "
                f"alpha* (1e-6/K) = {1e6 * lev['alpha']}, k* = {np.diag(lev['k'])}"
            )

# %% [markdown]
# ## Checks of the effective constants
#
# **Levin's relation** (Levin 1967; Rosen & Hashin 1970, *Int. J. Eng. Sci.* 8, 157): for two
# isotropic phases a uniform strain field exists that makes the two thermal loads equal, so the
# thermal coefficient follows from the effective bulk modulus alone.  In the transverse plane,
# with the 2D bulk modulus $\kappa = \lambda + \mu$ and $\bar\beta^* = (\beta^*_{11} +
# \beta^*_{22})/2$,
#
# $$\bar\beta^* = \langle\beta\rangle + \frac{\beta_f - \beta_m}{\kappa_f - \kappa_m}
#   \left(\kappa^* - \langle\kappa\rangle\right), \qquad \kappa^* = \tfrac14 C^*_{iijj},$$
#
# exact for the discrete $C^*$ of a mesh too (the uniform-strain argument holds in the finite
# element space), so it must hold to rounding.  Since $\bar\beta^*$ is affine in $\kappa^*$, the
# **Hashin–Shtrikman bulk bounds** bound it as well.  The conductivity must lie within its
# Hashin–Shtrikman bounds.


# %%
def kappa2d(law: ThermoElastic) -> float:
    return law.lmbda + law.mu


def levin_beta(fractions: dict, bulk: float) -> float:
    """Mean in-plane thermal stress coefficient of Levin's relation (2D bulk moduli)."""
    f_f, f_m = fractions["fibre"], fractions["epoxy"]
    mean_beta = f_f * fibre.beta + f_m * epoxy.beta
    mean_kappa = f_f * kappa2d(fibre) + f_m * kappa2d(epoxy)
    slope = (fibre.beta - epoxy.beta) / (kappa2d(fibre) - kappa2d(epoxy))
    return mean_beta + slope * (bulk - mean_kappa)


checks = {}
for lev in levels:
    fr = lev["fractions"]
    f = [fr["epoxy"], fr["fibre"]]
    hs = hashin_shtrikman_elastic(f, [kappa2d(epoxy), kappa2d(fibre)], [epoxy.mu, fibre.mu], 2)
    hs_k = hashin_shtrikman_conductivity(f, [K_EPOXY, K_FIBRE], 2)
    beta_mean = 0.5 * (lev["beta"][0] + lev["beta"][1])
    beta_bounds = sorted(levin_beta(fr, hs[k]) for k in ("bulk_lower", "bulk_upper"))
    checks[lev["pixels"]] = {
        "levin_residual": abs(beta_mean / levin_beta(fr, lev["bulk"]) - 1),
        "bulk": lev["bulk"],
        "bulk_bounds": [hs["bulk_lower"], hs["bulk_upper"]],
        "beta_mean": beta_mean,
        "beta_bounds": beta_bounds,
        "k_eigenvalues": np.linalg.eigvalsh(lev["k"]).tolist(),
        "k_bounds": list(hs_k),
    }


def scalars(lev: dict) -> dict[str, float]:
    """The isotropic parts: 2D bulk modulus, mean in-plane alpha*, mean k*."""
    return {
        "bulk": lev["bulk"],
        "alpha": 0.5 * (lev["alpha"][0] + lev["alpha"][1]),
        "k": 0.5 * float(np.trace(lev["k"])),
    }


q = [scalars(lev) for lev in levels]
# relative changes per halving of the pixel size
change = {k: [abs(q[i + 1][k] / q[i][k] - 1) for i in range(2)] for k in q[0]}
if comm.rank == 0:
    for n, c in checks.items():
        print(
            f"{n:4d} px: Levin residual {c['levin_residual']:.1e}; kappa* = {c['bulk']:.4f} in "
            f"HS [{c['bulk_bounds'][0]:.4f}, {c['bulk_bounds'][1]:.4f}] GPa; k* eigenvalues "
            f"{np.round(c['k_eigenvalues'], 4)} in HS [{c['k_bounds'][0]:.4f}, "
            f"{c['k_bounds'][1]:.4f}]"
        )
    for k, (d1, d2) in change.items():
        print(
            f"{k}: relative change {d1:.4f} ({levels[0]['pixels']} -> {levels[1]['pixels']} px), "
            f"{d2:.4f} ({levels[1]['pixels']} -> {levels[2]['pixels']} px), ratio "
            f"{d1 / d2:.2f}"
        )

# %% [markdown]
# ## The strip: homogenized and fully resolved
#
# Aluminium below ($0 < y < H/2$), composite above ($H/2 < y < H$), $H = 1$, length $6H$,
# free, held by two pins against rigid motions ($u = 0$ at the origin, $u_y = 0$ at
# $(6H, 0)$).  (A symmetry plane would not do: the small RVE is slightly anisotropic, with a
# normal-shear coupling that a mirror plane does not respect.)
# The fibres run along $z$, out of the plane.  Far from its end the strip carries
# $\sigma_{yy} = \sigma_{xy} = 0$ and bends with the curvature $\kappa = w''$ of the
# layered-strip formula (Timoshenko's bimetal formula with the plane-strain axial moduli
# $E' = 1/S_{11}$ and free strains $\alpha' = (S\beta)_1$, $S = C^{-1}$), which the homogenized
# finite element solution ($Q_2$) must reproduce; the curvature is fitted to the deflection
# of the bottom edge over $2H \le x \le 4H$.
#
# The DNS tiles the micrograph (at 64 pixels, 32 under CI, and the strip uses the constants of that
# picture, so that both sides see the same pixels) over the composite layer, $m$ periods through
# its thickness, and pixelates
# the aluminium alike: one $Q_1$ element per pixel, the phase laws themselves.  The
# homogenized strip, whose constants come from the same pixels, is its limit as
# $\varepsilon = H/(2m) \to 0$.

# %%
H, LENGTH = 1.0, 6.0
FIT = (2.0, 4.0)
TAGS = {"epoxy": 1, "fibre": 2, "aluminium": 3}
composite = AnisotropicThermoElastic(coarse["C"], coarse["beta"])
supports = [
    Support(lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0), (0, 1)),
    Support(lambda x: np.isclose(x[0], LENGTH) & np.isclose(x[1], 0.0), (1,)),
]


def strip_labels(nx: int, ny: int) -> np.ndarray:
    labels = np.full((nx, ny), TAGS["aluminium"], dtype=np.int32)
    return labels


def solve_strip(labels: np.ndarray, materials: dict, degree: int) -> ThermalStressProblem:
    mesh = label_grid_cell(comm, labels, (LENGTH, H), TAGS)
    problem = ThermalStressProblem(
        mesh.mesh,
        {TAGS[name]: law for name, law in materials.items()},
        cell_tags=mesh.cell_tags,
        supports=supports,
        degree=degree,
    )
    problem.solve(DT)
    return problem


# homogenized: 8 Q2 elements through each layer
n_layer = 8
labels = strip_labels(int(LENGTH / H) * 2 * n_layer, 2 * n_layer)
labels[:, n_layer:] = TAGS["epoxy"]  # the composite layer (its law is the homogenized one)
hom = solve_strip(labels, {"aluminium": aluminium, "epoxy": composite}, degree=2)
kappa_hom, fit_hom = fit_curvature(hom.u, 0.0, FIT)
_, kappa_formula = laminated_strip_curvature([H / 2, H / 2], [aluminium, composite], DT)

# DNS: m micrograph periods through the composite layer
n_pix = coarse["pixels"]
micro_labels = coarse["image"].labels
dns = []
for m in PERIODS:
    nx, ny = int(LENGTH / H) * 2 * m * n_pix, 2 * m * n_pix
    labels = strip_labels(nx, ny)
    labels[:, m * n_pix :] = np.tile(micro_labels, (nx // n_pix, m))
    problem = solve_strip(labels, {"aluminium": aluminium, **laws}, degree=1)
    kappa, fit = fit_curvature(problem.u, 0.0, FIT)
    dns.append(
        {
            "m": m,
            "period": H / (2 * m),
            "kappa": kappa,
            "fit_residual": fit,
            "dofs": problem.ndofs,
            "seconds": problem.seconds,
            "problem": problem,
        }
    )
    if comm.rank == 0:
        print(
            f"DNS m={m} (period {H / (2 * m):.3f} H): {problem.ndofs} dofs, "
            f"{problem.seconds:.1f} s, curvature {kappa:.6e} (homogenized "
            f"{kappa_hom:.6e}, relative difference {kappa / kappa_hom - 1:+.4f})"
        )
errors = [abs(d["kappa"] / kappa_hom - 1) for d in dns]
if comm.rank == 0:
    print(
        f"homogenized strip: curvature {kappa_hom:.6e} 1/H, layered-strip formula "
        f"{kappa_formula:.6e} (relative difference {kappa_hom / kappa_formula - 1:.1e})"
    )

# %% [markdown]
# ## Plots
#
# The micrograph as read and its phases; $\sigma_{xx}$ of the DNS (finest) and of the
# homogenized strip on one colour scale; $\sigma_{xx}$ through the thickness, averaged over the
# fitted stretch (the macro stress is the DNS stress averaged over the periods); the
# deflection of the bottom edge.

# %%


def gather_stress(problem: ThermalStressProblem) -> tuple[np.ndarray, np.ndarray] | None:
    mid, s = problem.cell_stress()
    mids, ss = comm.gather(mid, root=0), comm.gather(s, root=0)
    if comm.rank != 0:
        return None
    return np.concatenate(mids), np.concatenate(ss)


def gather_deflection(problem: ThermalStressProblem) -> tuple[np.ndarray, np.ndarray] | None:
    V = problem.V
    n = V.dofmap.index_map.size_local
    X = V.tabulate_dof_coordinates()[:n]
    w = problem.u.x.array.reshape(-1, 2)[:n, 1]
    on = np.isclose(X[:, 1], 0.0)
    xs, ws = comm.gather(X[on, 0], root=0), comm.gather(w[on], root=0)
    if comm.rank != 0:
        return None
    x, w = np.concatenate(xs), np.concatenate(ws)
    order = np.argsort(x)
    return x[order], w[order]


fields = {"dns": gather_stress(dns[-1]["problem"]), "hom": gather_stress(hom)}
bottoms = {"dns": gather_deflection(dns[-1]["problem"]), "hom": gather_deflection(hom)}


def grid(mid: np.ndarray, values: np.ndarray, nx: int, ny: int) -> np.ndarray:
    out = np.full((ny, nx), np.nan)
    ix = np.clip((mid[:, 0] / LENGTH * nx).astype(int), 0, nx - 1)
    iy = np.clip((mid[:, 1] / H * ny).astype(int), 0, ny - 1)
    out[iy, ix] = values
    return out


def profile(mid: np.ndarray, values: np.ndarray, ny: int) -> tuple[np.ndarray, np.ndarray]:
    inside = (mid[:, 0] >= FIT[0]) & (mid[:, 0] <= FIT[1])
    iy = np.clip((mid[inside, 1] / H * ny).astype(int), 0, ny - 1)
    sums = np.bincount(iy, weights=values[inside], minlength=ny)
    counts = np.bincount(iy, minlength=ny)
    return (np.arange(ny) + 0.5) * H / ny, sums / counts


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), constrained_layout=True)
    axes[0].imshow(np.asarray(Image.open(png)), cmap="gray", vmin=0, vmax=255)
    axes[0].set_title(f"micrograph {N}x{N} px (noisy greys)")
    axes[1].imshow(image.labels.T[::-1], cmap="viridis", extent=(0, 1, 0, 1))
    axes[1].set_title(f"phases as read: fibre fraction {phi:.3f}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(results / "composite_micrograph_phases.png", dpi=120)
    plt.close(fig)

    m = dns[-1]["m"]
    nx_d, ny_d = int(LENGTH / H) * 2 * m * n_pix, 2 * m * n_pix
    nx_h, ny_h = int(LENGTH / H) * 2 * n_layer, 2 * n_layer
    mid_d, s_d = fields["dns"]
    mid_h, s_h = fields["hom"]
    mpa = 1e3  # GPa -> MPa
    img_d = grid(mid_d, mpa * s_d[:, 0], nx_d, ny_d)
    img_h = grid(mid_h, mpa * s_h[:, 0], nx_h, ny_h)
    lim = np.nanpercentile(np.abs(img_d), 99)
    fig = plt.figure(figsize=(13, 8), constrained_layout=True)
    sub = fig.subplots(3, 2, gridspec_kw={"height_ratios": [1, 1, 1.6]})
    gs = sub[0, 0].get_gridspec()
    for row in sub[:2]:
        for ax in row:
            ax.remove()
    ax_d = fig.add_subplot(gs[0, :])
    ax_h = fig.add_subplot(gs[1, :])
    extent = (0, LENGTH, 0, H)
    for ax, img, title in (
        (ax_d, img_d, f"DNS, {m} micrograph period(s) through the composite: "),
        (ax_h, img_h, "homogenized composite (C*, alpha*), Q2: "),
    ):
        im = ax.imshow(
            img[::-1],
            extent=extent,
            cmap="RdBu_r",
            vmin=-lim,
            vmax=lim,
            aspect="equal",
            interpolation="nearest",
        )
        ax.set_title(title + r"$\sigma_{xx}$ (MPa), $\Delta T = -100$ K")
        ax.set_ylabel("y / H")
    ax_h.set_xlabel("x / H")
    fig.colorbar(im, ax=[ax_d, ax_h], shrink=0.8)
    y_d, p_d = profile(mid_d, mpa * s_d[:, 0], ny_d)
    y_h, p_h = profile(mid_h, mpa * s_h[:, 0], ny_h)
    sub[2, 0].plot(
        p_d, y_d, "k-", lw=0.8, label=f"DNS (m = {m}), mean over {FIT[0]} < x < {FIT[1]}"
    )
    sub[2, 0].plot(p_h, y_h, "ro", ms=4, label="homogenized")
    sub[2, 0].axhline(H / 2, color="gray", ls=":")
    sub[2, 0].set_xlabel(r"$\sigma_{xx}$ (MPa)")
    sub[2, 0].set_ylabel("y / H")
    sub[2, 0].legend(fontsize=8)
    x_d, w_d = bottoms["dns"]
    x_h, w_h = bottoms["hom"]
    sub[2, 1].plot(x_h, 1e3 * w_h, "r-", label=f"homogenized, w'' = {kappa_hom:.3e}")
    sub[2, 1].plot(x_d, 1e3 * w_d, "k--", label=f"DNS m = {m}, w'' = {dns[-1]['kappa']:.3e}")
    # the formula's parabola through the two pins (it ignores the ends' boundary layers)
    xs = np.linspace(0.0, LENGTH, 100)
    sub[2, 1].plot(xs, 1e3 * 0.5 * kappa_formula * xs * (xs - LENGTH), "b:", label="formula")
    sub[2, 1].axvspan(*FIT, color="0.9", label="fitted stretch")
    sub[2, 1].set_xlabel("x / H")
    sub[2, 1].set_ylabel(r"deflection of the bottom edge ($10^{-3}$ H)")
    sub[2, 1].legend(fontsize=8)
    fig.savefig(results / "composite_thermal_stress.png", dpi=110)
    plt.close(fig)

    summary = {
        "micrograph": str(png),
        "pixels": N,
        "fibres": layout.count,
        "fibre_fraction": phi,
        "delta_T": DT,
        "effective": {
            str(lev["pixels"]): {
                "C_GPa": lev["C"],
                "beta_GPa_per_K": lev["beta"],
                "alpha_per_K": lev["alpha"],
                "conductivity": lev["k"],
                "bulk_2d_GPa": lev["bulk"],
                "hill_mandel": lev["hill_mandel"],
            }
            for lev in levels
        },
        "checks": {str(k): v for k, v in checks.items()},
        "resolution_change": change,
        "strip": {
            "curvature_homogenized": kappa_hom,
            "curvature_formula": kappa_formula,
            "homogenized_dofs": hom.ndofs,
            "dns": [{k: v for k, v in d.items() if k != "problem"} for d in dns],
            "dns_relative_differences": errors,
        },
        "seconds": time.perf_counter() - t_start,
    }
    write_json_file(results / "composite_thermal_stress.json", summary)
    print(f"wrote {results / 'composite_thermal_stress.png'} and the JSON summary")


on_rank0(comm, plot)

# %% [markdown]
# ## Checks against the references

# %%
for c in checks.values():
    assert c["levin_residual"] < 1e-10, c
    assert c["bulk_bounds"][0] < c["bulk"] < c["bulk_bounds"][1], c
    assert c["beta_bounds"][0] < c["beta_mean"] < c["beta_bounds"][1], c
    assert c["k_bounds"][0] < min(c["k_eigenvalues"]) <= max(c["k_eigenvalues"]) < c["k_bounds"][1]
assert max(lev["hill_mandel"] for lev in levels) < 1e-10
# the composite is nearly transversely isotropic and expands more than aluminium in plane strain
assert abs(fine["alpha"][0] / fine["alpha"][1] - 1) < 0.1
assert fine["alpha"][0] > (1 + 0.33) * aluminium.alpha
# pixel resolution: the staircase interfaces converge slowly (about 2 % per halving of the
# pixel here, measured); the last halving changes no constant by more than 3 %
assert max(d2 for _, d2 in change.values()) < 0.03, change
# the homogenized strip is the layered-strip closed form (Q2 holds the interior solution)
assert abs(kappa_hom / kappa_formula - 1) < 2e-3
# the DNS approaches it as the fibres get smaller
assert all(b < a for a, b in itertools.pairwise(errors)), errors
assert errors[-1] < (0.05 if shrink else 0.03), errors
