"""``multiscale hmm CONFIG``: an FE-HMM solve from a YAML or TOML file, with optional DNS and
homogenized references, and a JSON summary of the errors.

The configuration (see ``examples/hmm.yaml``)::

    dim: 2
    eps: 0.0625
    coefficient: {type: checkerboard, k1: 1, k2: 10}   # laminate, smooth_layers,
                                                       # smooth_periodic, random; optional
                                                       # slow: {amplitude, axis} for c(x) and
                                                       # beta > 0 for the monotone nonlinear law
    macro: {n: 16, f: 1.0, boundary_value: 0.0, quadrature_degree: 1}
    micro: {delta: 0.0625, n: 16, coupling: periodic, freeze_x: true, inner: 1.0, snap: true}
    dns: {n: 512}                  # optional: fine-scale reference
    homogenized: {n: 512}          # optional: homogenized reference (x-independent or
                                   # separable linear coefficients)
    output: results/hmm.json

Unknown, missing and null keys, wrong types and values out of range are errors naming the key
(:mod:`multiscale.config`); the output path is relative to the current directory.  The summary is
written by rank 0, atomically (:func:`multiscale.output.write_json`).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.cli.common import add_config_arguments
from multiscale.config import (
    Boolean,
    ConfigError,
    Field,
    Integer,
    Number,
    Section,
    Spec,
    Text,
    load,
)
from multiscale.output import write_json

__all__ = ["SCHEMA", "add_parser", "build_coefficient", "load_config", "run"]

log = logging.getLogger(__name__)

_TYPES = ("laminate", "checkerboard", "smooth_layers", "smooth_periodic", "random")


#: Parameters of each coefficient type (all optional, with the defaults of
#: :func:`build_coefficient`).
_PARAMETERS = {
    "laminate": {"k1": Number(positive=True), "k2": Number(positive=True)},
    "checkerboard": {
        "k1": Number(positive=True),
        "k2": Number(positive=True),
        "cell_n": Integer(min=2),
    },
    "smooth_layers": {"amplitude": Number(min=0.0, below=1.0), "mean": Number(positive=True)},
    "smooth_periodic": {"amplitude": Number(min=0.0, below=1.0), "cell_n": Integer(min=2)},
    "random": {
        "seed": Integer(min=0),
        "sigma": Number(min=0.0),
        "correlation_length": Number(positive=True),
        "modes": Integer(min=1),
    },
}
_REQUIRED = {"laminate": ("k1", "k2"), "checkerboard": ("k1", "k2")}


@dataclass(frozen=True)
class CoefficientSpec(Spec):
    """A ``coefficient`` section: ``type``, that type's parameters, optional ``slow`` and
    ``beta``."""

    what = "a mapping with 'type' and its parameters"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong_type(value, where)
        kind = Text(tuple(_PARAMETERS)).check(value.get("type"), f"{where}.type")
        fields = {name: Field(spec) for name, spec in _PARAMETERS[kind].items()}
        fields.update(
            {
                "type": Field(Text(tuple(_PARAMETERS))),
                "beta": Field(Number(min=0.0), default=0.0),
                "slow": Field(
                    Section(
                        {
                            "amplitude": Field(Number(min=0.0, below=1.0), default=0.5),
                            "axis": Field(Integer(min=0, max=2), default=0),
                        }
                    )
                ),
            }
        )
        for name in _REQUIRED.get(kind, ()):
            fields[name] = Field(fields[name].spec, required=True)
        return Section(fields).check(value, where)


#: The schema of the ``multiscale hmm`` file (see the module docstring).
SCHEMA = Section(
    {
        "dim": Field(Integer(min=1, max=3), default=2),
        "eps": Field(Number(positive=True), required=True),
        "coefficient": Field(CoefficientSpec(), required=True),
        "macro": Field(
            Section(
                {
                    "n": Field(Integer(min=1), default=16),
                    "f": Field(Number(), default=1.0),
                    "boundary_value": Field(Number(), default=0.0),
                    "quadrature_degree": Field(Integer(min=1), default=1),
                }
            ),
            default=dict,
        ),
        "micro": Field(
            Section(
                {
                    "delta": Field(Number(positive=True)),
                    "n": Field(Integer(min=2), default=16),
                    "coupling": Field(Text(("periodic", "dirichlet")), default="periodic"),
                    "freeze_x": Field(Boolean(), default=True),
                    "inner": Field(Number(positive=True, max=1.0), default=1.0),
                    "snap": Field(Boolean(), default=False),
                    "quadrature_degree": Field(Integer(min=0), default=4),
                }
            ),
            default=dict,
        ),
        "dns": Field(Section({"n": Field(Integer(min=2), required=True)})),
        "homogenized": Field(Section({"n": Field(Integer(min=2), required=True)})),
        "output": Field(Text()),
    }
)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked configuration of ``path`` (YAML or TOML), defaults filled in; raises
    ``FileNotFoundError`` or :class:`~multiscale.config.ConfigError` naming the key."""
    data = load(path, SCHEMA)
    if data["coefficient"]["type"] == "checkerboard" and data["dim"] != 2:
        raise ConfigError(f"{path}: coefficient.type: the checkerboard is two-dimensional")
    if data["coefficient"].get("slow") and data["coefficient"]["slow"]["axis"] >= data["dim"]:
        raise ConfigError(f"{path}: coefficient.slow.axis: must be below dim = {data['dim']}")
    return data


def build_coefficient(spec: dict[str, Any], dim: int) -> tuple[Any, Any]:
    """The coefficient of a ``coefficient`` section and its homogenized tensor (a constant
    ``d x d`` matrix, a function of points, or ``None`` where not known)."""
    import ufl

    from multiscale import hmm

    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in _TYPES:
        raise ValueError(f"coefficient type must be one of {_TYPES}, got {kind!r}")
    slow = spec.pop("slow", None)
    beta = float(spec.pop("beta", 0.0))
    A_hom: Any = None
    if kind == "laminate":
        k1, k2 = float(spec.pop("k1")), float(spec.pop("k2"))
        coef = hmm.laminate(k1, k2, dim)
        A_hom = np.eye(dim) * 0.5 * (k1 + k2)
        A_hom[0, 0] = 2 * k1 * k2 / (k1 + k2)
    elif kind == "checkerboard":
        if dim != 2:
            raise ValueError("the checkerboard coefficient is two-dimensional")
        k1, k2 = float(spec.pop("k1")), float(spec.pop("k2"))
        coef = hmm.checkerboard(k1, k2)
        n_cell = int(spec.pop("cell_n", 64))
        A_hom = hmm.two_phase_cell_tensor(
            MPI.COMM_SELF, 2, n_cell, hmm.checkerboard_phase(), k1, k2
        )
    elif kind == "smooth_layers":
        amp, mean = float(spec.pop("amplitude", 0.9)), float(spec.pop("mean", 2.0))
        coef = hmm.smooth_layers(dim, amp, mean)
        A_hom = hmm.smooth_layers_tensor(dim, amp, mean)
    elif kind == "smooth_periodic":
        coef = hmm.smooth_periodic(dim, float(spec.pop("amplitude", 0.5)))
        n_cell = int(spec.pop("cell_n", 64))
        cell = hmm.SamplingProblem(MPI.COMM_SELF, coef, hmm.MicroSettings(1.0, 1.0, n=n_cell))
        A_hom = cell.effective_tensor(np.zeros(dim))
        cell.destroy()
    else:
        coef = hmm.RandomStationary(
            dim,
            seed=int(spec.pop("seed", 0)),
            sigma=float(spec.pop("sigma", 0.5)),
            correlation_length=float(spec.pop("correlation_length", 0.25)),
            modes=int(spec.pop("modes", 24)),
        )
    if spec:
        raise ValueError(f"unknown key(s) {sorted(spec)} for coefficient type {kind!r}")
    if slow is not None:
        amp = float(slow.get("amplitude", 0.5))
        axis = int(slow.get("axis", 0))
        if not 0.0 <= amp < 1.0 or not 0 <= axis < dim:
            raise ValueError("slow: need 0 <= amplitude < 1 and a valid axis")

        def c(x):
            return 1.0 + amp * ufl.sin(2.0 * math.pi * x[axis])

        coef = hmm.separable(c, coef)
        if A_hom is not None:
            B = np.asarray(A_hom)
            A_hom = lambda pts: (1.0 + amp * np.sin(2 * np.pi * pts[:, axis]))[:, None, None] * B  # noqa: E731
    if beta > 0.0:
        coef = hmm.MonotoneFlux(coef, beta)
        A_hom = None
    return coef, A_hom


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "hmm",
        help="FE-HMM for -div(a(x, x/eps) grad u) = f, with DNS and homogenized references",
        description="Solve an elliptic multiscale problem with the heterogeneous multiscale "
        "method (YAML or TOML configuration) and write a JSON summary.",
    )
    return add_config_arguments(p)


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from multiscale import hmm
    from multiscale.mesh import unit_mesh

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    dim, eps = cfg["dim"], cfg["eps"]
    coef, A_hom = build_coefficient(dict(cfg["coefficient"]), dim)
    macro, micro = cfg["macro"], dict(cfg["micro"])
    try:
        settings = hmm.MicroSettings(eps=eps, delta=micro.pop("delta", eps), **micro)
    except ValueError as err:
        raise ConfigError(f"{args.config}: micro: {err}") from None
    n_macro, f, bv = macro["n"], macro["f"], macro["boundary_value"]
    solver = hmm.HMMProblem(
        unit_mesh(comm, dim, n_macro),
        coef,
        settings,
        f=f,
        boundary_value=bv,
        quadrature_degree=macro["quadrature_degree"],
    )
    t_hmm = time.perf_counter()
    u_H = solver.solve()
    t_hmm = comm.allreduce(time.perf_counter() - t_hmm, op=MPI.MAX)
    summary: dict[str, Any] = {
        "coefficient": coef.name,
        "dim": dim,
        "H": 1.0 / n_macro,
        "eps": eps,
        "micro": settings.to_dict(),
        "hmm_time_s": t_hmm,
        "statistics": solver.statistics(),
    }
    if solver.tensors is not None:
        summary["mean_effective_tensor"] = (
            comm.allreduce(solver.tensors.sum(axis=0), op=MPI.SUM)
            / comm.allreduce(len(solver.tensors), op=MPI.SUM)
        ).tolist()
    dns_cfg = cfg.get("dns")
    if dns_cfg:
        dns = hmm.DNSProblem(comm, coef, eps, int(dns_cfg["n"]), f=f, boundary_value=bv)
        u_eps = dns.solve()
        err = hmm.compare(u_H, n_macro, u_eps)
        summary["dns"] = {"n": dns.n, "time_s": dns.seconds, "iterations": dns.iterations}
        dns.destroy()
        summary["error_vs_dns"] = {
            "L2": err["L2"],
            "L2_relative": err["L2"] / err["L2_ref"],
            "H1": err["H1"],
        }
        log.info("error vs DNS: L2 %.3e (relative %.3e)", err["L2"], err["L2"] / err["L2_ref"])
    hom_cfg = cfg.get("homogenized")
    if hom_cfg:
        if A_hom is None:
            log.warning("no homogenized tensor is known for %s: skipping that reference", coef.name)
        else:
            n_ref = int(hom_cfg["n"])
            ref = hmm.MacroProblem(
                unit_mesh(comm, dim, n_ref), f, boundary_value=bv, quadrature_degree=2
            )
            u0 = ref.solve_homogenized(A_hom)
            err = hmm.compare(u_H, n_macro, u0)
            summary["error_vs_homogenized"] = {
                "n": n_ref,
                "L2": err["L2"],
                "L2_relative": err["L2"] / err["L2_ref"],
                "H1": err["H1"],
                "H1_relative": err["H1"] / err["H1_ref"],
            }
            log.info("error vs homogenized: L2 %.3e, H1 %.3e", err["L2"], err["H1"])
    summary["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    solver.destroy()
    out = args.json or (Path(cfg["output"]) if cfg.get("output") else None)
    if out is not None:
        write_json(out, summary, comm)
    return 0
