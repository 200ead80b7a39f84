# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # How large must a random RVE be?
#
# Random non-overlapping disks (random sequential addition, minimum gap 0.05 diameters) at area
# fraction 0.3 in a matrix ten times less conducting.  For windows of edge $L$ (in disk
# diameters) we draw $n$ realizations, solve each with SUBC, periodic (PBC) and KUBC boundary
# conditions and look at the mean conductivity $Z = \operatorname{tr}A/2$:
#
# * for every realization $A^{SUBC} \preceq A^{PBC} \preceq A^{KUBC}$;
# * the three means converge towards each other, inside the Hashin–Shtrikman bounds;
# * the coefficient of variation falls as $L^{-d/2} = L^{-1}$;
# * the variance fits $D_Z^2(V) = D_Z^2 (A_3/V)^\alpha$ (Kanit et al. 2003), which gives the
#   window size for a relative precision $\varepsilon_{rel}$ with $n$ realizations, and the gap
#   fit gives the size where KUBC and SUBC agree to a tolerance.
#
# Realizations are spread over the MPI ranks (`mpirun -n 4 python3 demo_rve_size.py`); the
# result does not depend on the number of ranks.

# %%
import os
from pathlib import Path

from mpi4py import MPI

from multiscale.bounds import hashin_shtrikman_conductivity
from multiscale.ensemble import (
    EnsembleConfig,
    Microstructure,
    PhaseLaw,
    plot_bc_convergence,
    run_ensemble,
    rve_size_report,
)
from multiscale.output import write_json_file

comm = MPI.COMM_WORLD
ci = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results"))
sizes = (2.0, 4.0) if ci else (2.0, 4.0, 8.0, 16.0)
n = 3 if ci else 20
resolution = 4.0 if ci else 8.0

micro = Microstructure("disks", 0.3, resolution=resolution, gap=0.05, fraction_tol=2e-3)
laws = PhaseLaw("conductivity", {"k": 1.0}, {"k": 10.0})
config = EnsembleConfig(micro, laws, sizes, n, seed=2024)
result = run_ensemble(comm, config)

# %% [markdown]
# Every realization respects the energy ordering; the means lie within the HS bounds of the
# realized fraction.

# %%
assert result.worst_order() >= -1e-10, result.worst_order()
p = float(result.volume_fraction_series()[-1])
hs = hashin_shtrikman_conductivity([1 - p, p], [1.0, 10.0], 2)
assert hs[0] <= result.series("periodic")[-1] <= hs[1]
report = rve_size_report(result, eps_rel=0.01, n=1, gap_tol=0.05, free_exponent=not ci)

if comm.rank == 0:
    print(f"random disks, vf {p:.4f}, contrast 10, {comm.size} rank(s), {result.wall_time:.1f} s")
    print(result.table())
    print(f"Hashin-Shtrikman bounds: [{hs[0]:.4f}, {hs[1]:.4f}]")
    for bc, fit in report.cv_fit.items():
        print(f"CV exponent {bc:>8}: {fit.slope:+.3f} (expected -d/2 = -1)")
    ir = report.integral_range
    print(
        f"integral range A3 = {ir.integral_range:.3g} D^2, exponent alpha = {ir.exponent:.3f}, "
        f"point variance {ir.point_variance:.3g}"
    )
    print(
        f"statistical RVE (eps_rel 1%, n = 1, PBC): V = {report.rve_volume:.3g} D^2, "
        f"L = {report.rve_size:.3g} D"
    )
    if report.gap is not None:
        print(
            f"KUBC-SUBC gap {list(map(lambda g: round(g, 4), report.gap.gaps))}, exponent "
            f"{report.gap.fit.slope:.3f}: below {report.gap.tol:g} at L = {report.gap.size:.3g} D"
        )

# %% [markdown]
# The figure: mean ± one standard deviation of the three boundary conditions against $L$.

# %%
if comm.rank == 0:
    results.mkdir(parents=True, exist_ok=True)
    plot_bc_convergence(result, str(results / "rve_size.png"), bounds=hs)
    summary = {**result.to_dict(), "rve": report.to_dict(), "hashin_shtrikman": list(hs)}
    write_json_file(results / "rve_size.json", summary)
    print(f"wrote {results / 'rve_size.png'} and {results / 'rve_size.json'}")
