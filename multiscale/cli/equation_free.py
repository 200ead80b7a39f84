r"""``multiscale equation-free CONFIG``: coarse projective integration of a micro simulator
against closed-form solutions, as JSON.

The configuration (see ``examples/equation_free_gaptooth.yaml`` and
``examples/equation_free_fast_slow.yaml``) names a ``problem`` and holds its section::

    problem: gap_tooth        # fast_slow, gap_tooth or walkers
    gap_tooth: {eps: 0.005, teeth: 10, tooth: 0.01, buffer: 0.04, cells_per_eps: 32,
                steps: 8, coarse_step: 0.001, t_end: 0.01, scheme: pfe}
    output: results/equation_free.json

* ``fast_slow``: :math:`u' = A u` with inner forward Euler, identity lifting and restriction;
  :math:`A = [[-\lambda_s, c], [0, -1/\varepsilon]]` (``epsilon``, ``slow`` :math:`\lambda_s`,
  ``coupling`` :math:`c`) or a given 2x2 ``A``; scheme ``pfe``/``prk2``, inner step ``dt``,
  ``k`` (a burst has ``k + 1`` inner steps), projective step ``Delta``, ``t_end``, ``u0``.
  Reports the error against :math:`e^{At}u_0` (matrix exponential) and the scheme's analytic
  amplification factors for the slow and the fast eigenvalue.
* ``gap_tooth``: patch dynamics (projective integration anchored at the lifted state) for
  :math:`u_t = (a(x/\varepsilon)u_x)_x`, :math:`a(y) = 1.1 + \sin 2\pi y` on :math:`[0, 1)`,
  :math:`u_0 = \sin 2\pi m x`; ``steps`` micro steps per burst, coarse step ``coarse_step``.
  Reports the error against :math:`e^{-a^*(2\pi m)^2 t}U_0`, :math:`a^* = \sqrt{1.1^2 - 1}`,
  and against the coarse scheme with the fine grid's coefficient :math:`a^*_h` (the harmonic
  mean of the P1 cell means of :math:`a`).  Teeth are spread over the ranks by the micro pool.
* ``walkers``: random walkers for :math:`\rho_t = D\rho_{xx}`, :math:`\rho_0 = 1 + A\cos 2\pi x`;
  reports the nodal density error against :math:`1 + A e^{-D(2\pi)^2 t}\cos 2\pi x`.

The JSON holds ``problem``, ``parameters``, ``scheme`` (dt, k, Delta, H, M, name, anchor),
``times``, ``coarse`` (the final coarse state), ``coarse_trajectory``, ``coarse_error`` (the
largest error over the nodes at ``t_end``), ``coarse_error_max`` (over all times) and the
problem's own entries.  Bad input ends with one line naming the key (exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.cli.common import add_config_arguments
from multiscale.config import (
    ConfigError,
    Field,
    Integer,
    ListOf,
    Number,
    Section,
    Text,
    load,
)
from multiscale.output import write_json

__all__ = ["PROBLEMS", "SCHEMA", "add_parser", "load_config", "run"]

log = logging.getLogger(__name__)

#: The problems and the section each one reads.
PROBLEMS = ("fast_slow", "gap_tooth", "walkers")
_SCHEME = Text(("pfe", "prk2"))


def _fast_slow_rule(data: dict[str, Any]) -> str | None:
    if ("epsilon" in data) == ("A" in data):
        return "give exactly one of 'epsilon' and 'A'"
    return None


_FAST_SLOW = Section(
    {
        "epsilon": Field(Number(positive=True)),
        "slow": Field(Number(positive=True), default=1.0),
        "coupling": Field(Number(), default=1.0),
        "A": Field(ListOf(ListOf(Number(), length=2), length=2)),
        "u0": Field(ListOf(Number(), length=2), default=lambda: [1.0, 1.0]),
        "scheme": Field(_SCHEME, default="pfe"),
        "dt": Field(Number(positive=True), required=True),
        "k": Field(Integer(min=0, max=100000), required=True),
        "Delta": Field(Number(min=0.0), required=True),
        "t_end": Field(Number(positive=True), required=True),
    },
    extra=_fast_slow_rule,
)

_GAP_TOOTH = Section(
    {
        "eps": Field(Number(positive=True), required=True),
        "teeth": Field(Integer(min=3, max=10000), required=True),
        "tooth": Field(Number(positive=True), required=True),
        "buffer": Field(Number(min=0.0), required=True),
        "cells_per_eps": Field(Integer(min=1, max=4096), default=32),
        "dt": Field(Number(positive=True)),
        "steps": Field(Integer(min=1, max=100000), default=8),
        "coarse_step": Field(Number(positive=True), required=True),
        "t_end": Field(Number(positive=True), required=True),
        "scheme": Field(_SCHEME, default="pfe"),
        "mode": Field(Integer(min=1, max=1000), default=1),
    }
)

_WALKERS = Section(
    {
        "N": Field(Integer(min=1), required=True),
        "D": Field(Number(positive=True), required=True),
        "nodes": Field(Integer(min=3, max=100000), required=True),
        "amplitude": Field(Number(min=0.0, below=1.0), default=0.5),
        "blocks": Field(Integer(min=1, max=100000), default=16),
        "seed": Field(Integer(min=0), default=0),
        "scheme": Field(_SCHEME, default="pfe"),
        "dt": Field(Number(positive=True), required=True),
        "k": Field(Integer(min=0, max=100000), required=True),
        "Delta": Field(Number(min=0.0), required=True),
        "t_end": Field(Number(positive=True), required=True),
    }
)


def _one_problem_rule(data: dict[str, Any]) -> str | None:
    given = [p for p in PROBLEMS if p in data]
    if given != [data["problem"]]:
        return f"give the section {data['problem']!r} of the problem (and no other), got {given}"
    return None


#: The schema of the ``multiscale equation-free`` file (see the module docstring).
SCHEMA = Section(
    {
        "problem": Field(Text(PROBLEMS), required=True),
        "fast_slow": Field(_FAST_SLOW),
        "gap_tooth": Field(_GAP_TOOTH),
        "walkers": Field(_WALKERS),
        "output": Field(Text()),
    },
    extra=_one_problem_rule,
)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked configuration of ``path`` (YAML or TOML), defaults filled in."""
    return load(path, SCHEMA)


# -- helpers --------------------------------------------------------------------------------------
def _settings(p: dict[str, Any], where: str, dt: float, k: int, Delta: float, anchor: str) -> Any:
    from multiscale.equation_free import ProjectiveSettings

    try:
        return ProjectiveSettings(dt=dt, k=k, Delta=Delta, scheme=p["scheme"], anchor=anchor)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def _coarse_steps(t_end: float, H: float, where: str) -> int:
    n = round(t_end / H)
    if n < 1 or abs(n * H - t_end) > 1e-9 * t_end:
        raise ConfigError(
            f"{where}.t_end: must be a positive multiple of the coarse step H = {H:.10g}, "
            f"got {t_end!r}"
        )
    return n


def _scheme_info(s: Any) -> dict[str, Any]:
    return {
        "name": s.scheme,
        "anchor": s.anchor,
        "dt": s.dt,
        "k": s.k,
        "Delta": s.Delta,
        "H": s.H,
        "M": s.M,
    }


def _trajectory(s: Any, t: np.ndarray, U: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    """The entries every problem reports: its scheme, times, coarse states and errors."""
    err = np.abs(U - exact).max(axis=1)
    return {
        "scheme": _scheme_info(s),
        "times": t.tolist(),
        "coarse": U[-1].tolist(),
        "coarse_trajectory": U.tolist(),
        "exact": exact[-1].tolist(),
        "coarse_error": float(err[-1]),
        "coarse_error_max": float(err.max()),
        "coarse_error_history": err.tolist(),
    }


def _complex(z: complex) -> dict[str, float]:
    z = complex(z)
    return {"real": z.real, "imag": z.imag, "abs": abs(z)}


# -- the problems ---------------------------------------------------------------------------------
def _fast_slow_matrix(p: dict[str, Any]) -> np.ndarray:
    if "A" in p:
        return np.array(p["A"], dtype=float)
    return np.array([[-p["slow"], p["coupling"]], [0.0, -1.0 / p["epsilon"]]])


def run_fast_slow(p: dict[str, Any], comm: MPI.Comm) -> dict[str, Any]:
    """Projective integration of the linear fast–slow system against :math:`e^{At}u_0`."""
    from scipy.linalg import expm

    from multiscale.equation_free import (
        LinearSystem,
        MicroCoarseStepper,
        amplification_factor,
        projective_integrate,
    )

    A = _fast_slow_matrix(p)
    s = _settings(p, "fast_slow", p["dt"], p["k"], p["Delta"], "burst")
    n = _coarse_steps(p["t_end"], s.H, "fast_slow")
    system = LinearSystem(A)
    stepper = MicroCoarseStepper(system, system.lift, system.restrict, s.dt)
    u0 = np.array(p["u0"], dtype=float)
    t, U = projective_integrate(stepper, u0, s, n)
    exact = np.array([expm(A * ti) @ u0 for ti in t])
    lam = np.linalg.eigvals(A)
    slow, fast = sorted(lam, key=abs)
    sigma = amplification_factor(np.array([slow, fast]), s)
    return {
        **_trajectory(s, t, U, exact),
        "eigenvalues": {"slow": _complex(slow), "fast": _complex(fast)},
        "amplification_factor": {"slow": _complex(sigma[0]), "fast": _complex(sigma[1])},
        "exact_factor_slow": math.exp(float(np.real(slow)) * s.H),
        "fast_explicit_limit_dt": float(2.0 / abs(fast)),
        "micro_steps": stepper.micro_steps,
    }


def _p1_harmonic_mean(cells: int, points: int = 8) -> float:
    """:math:`a^*_h` of :math:`a(y) = 1.1 + \\sin 2\\pi y` on ``cells`` P1 cells per period:
    the harmonic mean of the cell means of :math:`a` (Gauss–Legendre per cell)."""
    from multiscale.equation_free import sine_coefficient

    x, w = np.polynomial.legendre.leggauss(points)
    left = np.arange(cells)[:, None] / cells
    y = left + 0.5 * (x[None, :] + 1.0) / cells
    means = 0.5 * (sine_coefficient(y) * w).sum(axis=1)
    return float(1.0 / np.mean(1.0 / means))


def _gap_tooth_settings(p: dict[str, Any]) -> Any:
    from multiscale.equation_free import GapToothSettings

    try:
        return GapToothSettings(
            n_teeth=p["teeth"],
            eps=p["eps"],
            tooth=p["tooth"],
            buffer=p["buffer"],
            cells_per_eps=p["cells_per_eps"],
            dt=p.get("dt"),
        )
    except ValueError as err:
        raise ConfigError(f"gap_tooth: {err}") from None


def run_gap_tooth(p: dict[str, Any], comm: MPI.Comm) -> dict[str, Any]:
    """Patch dynamics on the periodic sine coefficient against the homogenized solution."""
    from multiscale.equation_free import GapTooth, projective_integrate, sine_homogenized

    gs = _gap_tooth_settings(p)
    Delta = p["coarse_step"] - p["steps"] * gs.inner_dt
    if Delta < -1e-12 * p["coarse_step"]:
        raise ConfigError(
            f"gap_tooth.coarse_step: must be at least steps * dt = "
            f"{p['steps'] * gs.inner_dt:.6g}, got {p['coarse_step']!r}"
        )
    s = _settings(p, "gap_tooth", gs.inner_dt, p["steps"] - 1, max(Delta, 0.0), "lift")
    n = _coarse_steps(p["t_end"], s.H, "gap_tooth")
    m = p["mode"]
    with GapTooth(comm, gs) as gt:
        U0 = gt.box_average(lambda x: np.sin(2.0 * np.pi * m * x))
        t, U = projective_integrate(gt, U0, s, n)
        micro_steps = comm.allreduce(gt.micro_steps, op=MPI.SUM)
    a_h = _p1_harmonic_mean(gs.cells_per_eps)
    rate = (2.0 * np.pi * m) ** 2
    exact = np.exp(-sine_homogenized * rate * t)[:, None] * U0
    q = -s.H * a_h * 4.0 * math.sin(math.pi * m * gs.H) ** 2 / gs.H**2
    g = 1.0 + q + (s.weight() * q * q if s.scheme == "prk2" else 0.0)
    discrete = g ** np.arange(n + 1)[:, None] * U0
    return {
        **_trajectory(s, t, U, exact),
        "initial": U0.tolist(),
        "centres": gs.centres.tolist(),
        "a_star": sine_homogenized,
        "a_star_h": a_h,
        "coarse_amplification_a_star_h": g,
        "coarse_error_discrete": float(np.abs(U[-1] - discrete[-1]).max()),
        "coarse_error_discrete_max": float(np.abs(U - discrete).max()),
        "micro_steps": micro_steps,
        "ranks": comm.size,
    }


def run_walkers(p: dict[str, Any], comm: MPI.Comm) -> dict[str, Any]:
    """Projective integration of random walkers against the heat-equation density."""
    from multiscale.equation_free import (
        MicroCoarseStepper,
        RandomWalkers,
        WalkerSettings,
        projective_integrate,
    )

    try:
        ws = WalkerSettings(
            n_particles=p["N"], n_cells=p["nodes"], D=p["D"], blocks=p["blocks"], seed=p["seed"]
        )
    except ValueError as err:
        raise ConfigError(f"walkers: {err}") from None
    s = _settings(p, "walkers", p["dt"], p["k"], p["Delta"], "burst")
    n = _coarse_steps(p["t_end"], s.H, "walkers")
    sim = RandomWalkers(ws, comm)
    stepper = MicroCoarseStepper(sim, sim.lift, sim.restrict, s.dt)
    x = np.arange(ws.n_cells) * ws.h
    A = p["amplitude"]
    t, U = projective_integrate(stepper, 1.0 + A * np.cos(2.0 * np.pi * x), s, n)
    decay = np.exp(-p["D"] * (2.0 * np.pi) ** 2 * t)
    exact = 1.0 + A * np.outer(decay, np.cos(2.0 * np.pi * x))
    return {
        **_trajectory(s, t, U, exact),
        "nodes": x.tolist(),
        "coarse_error_rms": float(np.sqrt(np.mean((U[-1] - exact[-1]) ** 2))),
        "mass": float(ws.h * U[-1].sum()),
        "noise_scale": float(math.sqrt(2.0 / 3.0 * ws.n_cells / ws.n_particles)),
        "micro_steps": stepper.micro_steps,
    }


_RUNNERS: dict[str, Callable[[dict[str, Any], MPI.Comm], dict[str, Any]]] = {
    "fast_slow": run_fast_slow,
    "gap_tooth": run_gap_tooth,
    "walkers": run_walkers,
}


# -- the command ----------------------------------------------------------------------------------
def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "equation-free",
        help="coarse projective integration (fast-slow, gap-tooth, random walkers) vs closed forms",
        description="Equation-free coarse projective integration of a micro simulator (a "
        "linear fast-slow system, gap-tooth patches of a periodic medium, random walkers), "
        "with the error against the closed-form solution (YAML or TOML configuration); JSON.",
    )
    return add_config_arguments(p)


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    t0 = time.perf_counter()
    cfg = load_config(args.config)
    problem = cfg["problem"]
    params = cfg[problem]
    result = _RUNNERS[problem](params, comm)
    summary = {"problem": problem, "parameters": params, **result}
    summary["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    log.info(
        "%s: %d coarse steps to t = %.6g, coarse error %.3e",
        problem,
        len(result["times"]) - 1,
        result["times"][-1],
        result["coarse_error"],
    )
    out = args.json or (Path(cfg["output"]) if cfg.get("output") else None)
    if out is not None:
        write_json(out, summary, comm)
    return 0
