#!/usr/bin/env python3
"""Run every command of the README's code blocks, as written, in a fresh clone.

    scripts/readme_check.py [--worktree] [--keep] [--timeout S] [--only TEXT]

The README's ``bash`` code blocks hold commands a user types (one per line, ``\\`` continues a
line, ``#`` starts a comment) and its ``python`` blocks hold scripts; blocks in other languages
(``sh`` for Docker, conda and cluster commands that cannot run on this machine, ``text``) are not
run.  Each command runs with ``bash`` in a fresh ``git clone`` of this checkout's HEAD (or, with
``--worktree``, a copy of the working tree with its uncommitted changes), from the clone's root,
with ``CI=true`` (demos shrink) and ``MPLBACKEND=Agg``.  ``scripts/test`` is skipped: it is the
command that runs this check.  For each command: its exit status must be 0, every file it names
after ``--out``, ``--json`` or ``--plot`` (and every ``results/...`` path a python block names)
must exist afterwards, and at the end the clone must hold no new file outside ``results/``
(``git status``).  Prints a table and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {"scripts/test": "it is the test command that runs this check"}
OUTPUT_FLAGS = ("--out", "--json", "--plot")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def bash_commands(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blanks dropped."""
    commands, current = [], ""
    for line in body.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        commands.append(current.strip())
        current = ""
    return commands


def named_outputs(command: str) -> list[str]:
    """Files a command line says it writes (after --out/--json/--plot, or ``results/...``)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return []
    out = []
    for flag, value in itertools.pairwise(words):
        if flag in OUTPUT_FLAGS:
            out.append(value)
    out += [w.split("=", 1)[1] for w in words if w.split("=", 1)[0] in OUTPUT_FLAGS and "=" in w]
    return out


def python_outputs(code: str) -> list[str]:
    return re.findall(r"[\"'](results/[^\"']+\.\w+)[\"']", code)


def make_clone(worktree: bool, where: Path) -> Path:
    clone = where / "clone"
    if worktree:
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout.split(b"\0")  # fmt: skip
        for name in filter(None, files):
            src = REPO / name.decode()
            if src.is_file():
                dst = clone / name.decode()
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        git = ["git", "-c", "user.name=readme-check", "-c", "user.email=readme-check@localhost"]
        subprocess.run([*git, "init", "-q"], cwd=clone, check=True)
        subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "working tree"], cwd=clone, check=True)
    else:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    if (REPO.parent / "shared").is_dir() and not (where / "shared").exists():
        (where / "shared").symlink_to(REPO.parent / "shared")
    return clone


def env_run_elsewhere(clone: Path, tmp: Path, env: dict[str, str]) -> tuple[str, str, float, str]:
    """``scripts/env-run`` started from a folder outside the checkout, on a script and files
    there: it must run in that folder, read the input and write the output where asked."""
    work = tmp / "elsewhere"
    work.mkdir()
    (work / "input.txt").write_text("21\n")
    (work / "double.py").write_text(
        "import os, sys\n"
        "import multiscale\n"
        "value = int(open(sys.argv[1]).read())\n"
        "open(sys.argv[2], 'w').write(f'{2 * value} {os.getcwd()}')\n"
    )
    label = f"(cd {work} && {clone}/scripts/env-run python3 double.py input.txt out/result.txt)"
    (work / "out").mkdir()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(clone / "scripts" / "env-run"), "python3", "double.py", "input.txt", "out/result.txt"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    result = work / "out" / "result.txt"
    expected = f"42 {work.resolve()}"
    ok = proc.returncode == 0 and result.is_file() and result.read_text() == expected
    note = "" if ok else f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
    return (label, "ok" if ok else "FAILED", seconds, note)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worktree", action="store_true", help="copy uncommitted changes too")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is shown)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    parser.add_argument("--only", help="run only the commands containing this text")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="readme_check_"))
    clone = make_clone(args.worktree, tmp)
    readme = (clone / "README.md").read_text()
    jobs: list[tuple[str, list[str], list[str]]] = []  # (label, argv, outputs)
    scripts = 0
    for lang, body in code_blocks(readme):
        if lang == "bash":
            for command in bash_commands(body):
                jobs.append((command, ["bash", "-c", command], named_outputs(command)))
        elif lang == "python":
            scripts += 1
            path = clone / f".readme_block_{scripts}.py"
            path.write_text(body)
            argv = ["scripts/env-run", "python3", path.name]
            jobs.append((f"python block {scripts}", argv, python_outputs(body)))
    env = dict(os.environ, CI="true", MPLBACKEND="Agg")
    rows, failed = [], 0
    for label, argv, outputs in jobs:
        if args.only and args.only not in label:
            continue
        if label in SKIP:
            rows.append((label, "skipped", 0.0, SKIP[label]))
            continue
        print(f"$ {label}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(argv, cwd=clone, env=env, timeout=args.timeout, check=False)
            status = proc.returncode
        except subprocess.TimeoutExpired:
            status = "timeout"
        seconds = time.perf_counter() - t0
        missing = [o for o in outputs if not (clone / o).exists()]
        ok = status == 0 and not missing
        failed += not ok
        note = f"missing {missing}" if missing else (f"exit {status}" if status != 0 else "")
        rows.append((label, "ok" if ok else "FAILED", seconds, note))
    if not args.only:
        rows.append(env_run_elsewhere(clone, tmp, env))
        failed += rows[-1][1] != "ok"
    for p in clone.glob(".readme_block_*.py"):
        p.unlink()
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=clone, capture_output=True, text=True, check=False,
    ).stdout.split("\n")  # fmt: skip
    stray = [line[3:] for line in untracked if line.strip() and not line[3:].startswith("results/")]
    print("\nREADME commands (fresh clone, CI=true):")
    for label, result, seconds, note in rows:
        print(f"  {result:8s} {seconds:7.1f} s  {label[:90]}{'  (' + note + ')' if note else ''}")
    if stray:
        failed += 1
        print(f"  FAILED: files left in the clone outside results/: {stray[:10]}")
    if args.keep:
        print(f"clone kept at {clone}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
