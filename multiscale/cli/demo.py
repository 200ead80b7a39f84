"""``multiscale demo``: list or run the demos shipped in ``demos/``."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

__all__ = ["add_parser", "demo_dir", "list_demos", "run"]


def demo_dir() -> Path:
    """The ``demos/`` folder of the source tree this package was installed from."""
    return Path(__file__).resolve().parents[2] / "demos"


def list_demos() -> list[str]:
    return sorted(p.stem for p in demo_dir().glob("demo_*.py"))


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="list or run a demo (run it under mpirun for parallel)")
    p.add_argument("name", nargs="?", help="demo name (without .py); omitted: list them")
    p.add_argument("demo_args", nargs=argparse.REMAINDER, help="arguments passed to the demo")
    return p


def run(args: argparse.Namespace, comm) -> int:
    names = list_demos()
    if args.name is None:
        if comm.rank == 0:
            print("\n".join(names))
        return 0
    name = args.name.removesuffix(".py")
    if name not in names and f"demo_{name}" in names:
        name = f"demo_{name}"
    if name not in names:
        raise ValueError(f"no demo named {args.name!r}; available: {', '.join(names)}")
    path = demo_dir() / f"{name}.py"
    sys.argv = [str(path), *args.demo_args]
    runpy.run_path(str(path), run_name="__main__")
    return 0
