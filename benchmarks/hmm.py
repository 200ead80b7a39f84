"""FE-HMM cost: micro solves per second, one macro iteration split into micro and macro parts,
and HMM time over DNS time at eps = 1/64 and 1/128 in 2D.

    python3 benchmarks/hmm.py --json results/bench_hmm.json [--macro-n 32] [--per-period 8]
    mpirun -n 2 python3 benchmarks/hmm.py --json results/bench_hmm_np2.json

The HMM uses H = 1/macro_n with one sampling domain per element (delta = eps, periodic coupling,
``per_period`` micro cells per period); the DNS resolves eps with ``per_period`` cells per period
(conjugate gradients with algebraic multigrid, rtol 1e-10).  Its cost grows like eps^-2, while
that of HMM does not depend on eps.  The nonlinear timing is one macro Newton iteration of the
monotone law (1 + |g|^2) a g (one load step; each residual evaluation solves every micro problem,
warm-started from its last fluctuation).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mpi4py import MPI

from multiscale.hmm import DNSProblem, HMMProblem, MicroSettings, MonotoneFlux, smooth_periodic
from multiscale.mesh import unit_mesh
from multiscale.output import write_json_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--macro-n", type=int, default=32)
    p.add_argument("--per-period", type=int, default=8)
    p.add_argument("--inv-eps", type=int, nargs="+", default=[64, 128])
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    coef = smooth_periodic(2, 0.5)
    out: dict = {"ranks": comm.size, "macro_n": args.macro_n, "per_period": args.per_period}
    ratio, hmm_t, dns_t = {}, {}, {}
    dns_opts = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-10}
    for k in args.inv_eps:
        eps = 1.0 / k
        t0 = time.perf_counter()
        hmm = HMMProblem(
            unit_mesh(comm, 2, args.macro_n), coef, MicroSettings(eps, eps, n=args.per_period)
        )
        hmm.solve()
        t_hmm = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        stats = hmm.statistics()
        hmm.destroy()
        t0 = time.perf_counter()
        dns = DNSProblem(comm, coef, eps, args.per_period * k, petsc_options=dns_opts)
        dns.solve()
        t_dns = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        ratio[str(k)], hmm_t[str(k)], dns_t[str(k)] = t_hmm / t_dns, t_hmm, t_dns
        out.setdefault("dns_dofs", {})[str(k)] = dns.ndofs
        if comm.rank == 0:
            print(
                f"1/eps = {k}: HMM {t_hmm:.2f} s, DNS {t_dns:.2f} s ({dns.ndofs} dofs), "
                f"ratio {t_hmm / t_dns:.3f}",
                flush=True,
            )
    solves = stats["pool"]["solves_per_rank"]
    secs = stats["pool"]["seconds_per_rank"]
    out["micro_solves_per_s_per_rank"] = sum(solves) / max(sum(secs), 1e-300)
    out["micro_dofs"] = stats["micro_dofs"]
    out["quadrature_points"] = stats["quadrature_points"]
    out["linear_macro_iteration_s"] = stats["timings_s"]
    out["hmm_time_s"], out["dns_time_s"], out["hmm_over_dns_time"] = hmm_t, dns_t, ratio
    # one macro Newton iteration of the nonlinear problem
    eps = 1.0 / args.inv_eps[0]
    hmm = HMMProblem(
        unit_mesh(comm, 2, args.macro_n),
        MonotoneFlux(coef, 1.0),
        MicroSettings(eps, eps, n=args.per_period),
    )
    hmm.solve()
    st = hmm.statistics()
    iters = max(st["macro_iterations"], 1)
    evals = st["pool"]["solves_total"] / st["quadrature_points"]
    out["nonlinear"] = {
        "macro_newton_iterations": st["macro_iterations"],
        "residual_evaluations": evals,
        "residual_history": st["residual_history"],
        "micro_s_per_residual_evaluation": st["timings_s"]["micro"] / evals,
        "macro_s_per_iteration": st["timings_s"]["macro"] / iters,
        "micro_newton_iterations_mean": st["micro_newton_iterations"]
        / max(st["pool"]["solves_total"], 1),
    }
    hmm.destroy()
    if comm.rank == 0:
        write_json_file(args.json, out)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
