"""FE² checkpoint and restart on any rank count, against the uninterrupted run.

A small J2 problem (4 macro Gauss points, loading then unloading, so that the micro history
matters) runs uninterrupted: the reference.  Runs killed with SIGKILL (in the middle of
writing a checkpoint through the test hook ``MULTISCALE_CHECKPOINT_KILL``, or by a timer at a
seeded random moment) are restarted on another number of ranks; the load–displacement curve, the
step records and the committed micro state of every point (gathered by key from the final
checkpoints) must equal the reference's to ``RTOL`` (observed: about 1e-15).  Also: a half-written
checkpoint is ignored, a corrupted manifest is skipped with a warning, a restart without a
checkpoint or with another config is one error line and exit status 2.

The multi-rank runs are launched with ``mpirun --oversubscribe`` from a serial test, as in
``tests/test_collective.py``; the single-rank ones run in this process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cli import main
from multiscale.coupling.checkpoint import find_checkpoint
from multiscale.nonlinear import LoadStepper, NewtonOutcome

RTOL = 1e-10

CONFIG = """
[macro]
mesh = {{ type = "rectangle", lengths = [1.0, 1.0], n = [1, 1] }}
bcs = [
  {{ boundary = "bottom", value = [0.0, 0.0] }},
  {{ boundary = "top", component = 1, value = 0.02 }},
]
[micro]
mesh = {{ type = "circular_inclusion", vf = 0.4, h = 0.2 }}
materials.matrix = {{ law = "j2", E = 1.0, nu = 0.3, sigma_y = 0.01, H = 0.1 }}
materials.inclusion = {{ law = "elastic", E = 10.0, nu = 0.3 }}
[loading]
factors = {factors}
[output]
fields = false
checkpoint = {{ every = 2 }}
"""
FACTORS = "[0.25, 0.5, 0.75, 1.0, 0.5, 0.25]"

pytestmark = pytest.mark.serial_only


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_COMM", "OMPI_MCA_orte", "PMIX_", "PRTE_", "OMPI_FILE"))
    }
    env.pop("MULTISCALE_CHECKPOINT_KILL", None)
    env.update(extra)
    return env


def _command(nranks: int, args: list[str]) -> list[str]:
    code = "import sys; from multiscale.cli import main; sys.exit(main(sys.argv[1:]))"
    return ["mpirun", "-n", str(nranks), "--oversubscribe", sys.executable, "-c", code, *args]


def _mpirun(nranks: int, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(nranks, ["-q", *args]),
        env=_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _config(base: Path, factors: str = FACTORS) -> Path:
    path = base / "plastic.toml"
    path.write_text(CONFIG.format(factors=factors))
    return path


def _fe2(cfg: Path, out: Path, *extra: str) -> list[str]:
    return ["fe2", str(cfg), "--output", str(out), *extra]


def _records(out: Path) -> np.ndarray:
    """Per step: factor, reaction, max <p>, Newton its, cuts, RVE solves (the Hill–Mandel
    residual is roundoff, about 1e-15, and only checked to be small)."""
    data = json.loads((out / "summary.json").read_text())
    assert data["status"] == "ok", data.get("error")
    assert all(s["quantities"]["max_hill_mandel"] < 1e-10 for s in data["steps"])
    return np.array(
        [
            [
                s["factor"],
                s["reactions"]["top"][1],
                s["quantities"]["max_mean_p"],
                s["iterations"],
                s["cuts"],
                s["quantities"]["rve_solves"],
            ]
            for s in data["steps"]
        ]
    )


def _micro_state(out: Path) -> dict[str, np.ndarray]:
    """The committed micro state of the newest checkpoint, gathered by point key."""
    checkpoint = find_checkpoint(out / "checkpoint", MPI.COMM_SELF)
    parts = [np.load(f) for f in sorted(checkpoint.path.glob("micro-*.npz"))]
    keys = np.concatenate([p["__keys__"] for p in parts])
    order = np.argsort(keys)
    names = [n for n in parts[0].files if n.startswith(("committed_", "response_"))]
    return {n: np.concatenate([p[n] for p in parts])[order] for n in names}


def _assert_same_run(out: Path, ref: Path) -> float:
    """Curve, records and final micro state equal to ``RTOL``; returns the largest relative
    difference."""
    a, b = _records(ref), _records(out)
    assert a.shape == b.shape
    worst = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))
    np.testing.assert_allclose(b, a, rtol=RTOL, atol=1e-300)
    ma, mb = _micro_state(ref), _micro_state(out)
    assert sorted(ma) == sorted(mb) and "committed_state" in ma
    for name, value in ma.items():
        if name.endswith("hill_mandel"):  # roundoff
            assert np.max(np.abs(mb[name])) < 1e-10
            continue
        scale = max(float(np.max(np.abs(value))), 1e-300)
        diff = float(np.max(np.abs(mb[name] - value))) / scale
        assert diff <= RTOL, (name, diff)
        worst = max(worst, diff)
    ref_data = json.loads((ref / "summary.json").read_text())
    data = json.loads((out / "summary.json").read_text())
    assert data["micro"]["solves_total"] == ref_data["micro"]["solves_total"]
    assert data["info"]["macro_iterations"] == ref_data["info"]["macro_iterations"]
    return worst


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """The uninterrupted run (on 1 rank, in this process: the answer does not depend on the
    rank count, and every compared run below ran on another one): (config, output)."""
    base = tmp_path_factory.mktemp("reference")
    cfg = _config(base)
    assert main(["-q", *_fe2(cfg, base / "ref")]) == 0
    return cfg, base / "ref"


def test_kill_while_writing_on_2_ranks_restart_on_1_and_3(reference, tmp_path, capsys):
    cfg, ref = reference
    killed = tmp_path / "killed"
    # rank 1 dies with its part of checkpoint 4 written, before the manifest and the rename
    proc = _mpirun(2, _fe2(cfg, killed), tmp_path, MULTISCALE_CHECKPOINT_KILL="4:parts:1")
    assert proc.returncode != 0
    names = sorted(p.name for p in (killed / "checkpoint").iterdir())
    assert names == [".tmp-4", "latest", "step-2"], names
    for nranks in (1, 3):
        out = tmp_path / f"on{nranks}"
        shutil.copytree(killed, out)
        args = _fe2(cfg, out, "--restart", str(out / "checkpoint"))
        if nranks == 1:
            assert main(["-q", *args]) == 0
        else:
            proc = _mpirun(nranks, args, tmp_path)
            assert proc.returncode == 0, proc.stderr
        data = json.loads((out / "summary.json").read_text())
        assert data["restart"]["step"] == 2 and data["restart"]["ranks"] == 2
        assert not list((out / "checkpoint").glob(".tmp-*"))  # the half-written one is gone
        worst = _assert_same_run(out, ref)
        print(f"2 -> {nranks} ranks: largest relative difference {worst:.2e}")


def test_restart_from_1_rank_on_2(reference, tmp_path):
    cfg, ref = reference
    assert sorted(p.name for p in (ref / "checkpoint").glob("step-*")) == ["step-4", "step-6"]
    out = tmp_path / "on2"
    (out / "checkpoint").mkdir(parents=True)
    shutil.copytree(ref / "checkpoint" / "step-4", out / "checkpoint" / "step-4")
    proc = _mpirun(2, _fe2(cfg, out, "--restart", str(out)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["restart"]["ranks"] == 1
    worst = _assert_same_run(out, ref)
    print(f"1 -> 2 ranks: largest relative difference {worst:.2e}")


def _kill_session(sid: int) -> None:
    """SIGKILL every process of the session ``sid`` (mpirun and its ranks, which Open MPI puts
    in process groups of their own but leaves in the session)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_kill_at_a_random_moment(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "timer"
    delay = random.Random(14).uniform(0.0, 3.0)
    proc = subprocess.Popen(
        _command(2, ["-q", *_fe2(cfg, out)]),
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint" / "latest").exists() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(delay)
    finally:
        _kill_session(proc.pid)
        proc.wait(timeout=60)
    # every complete checkpoint left is readable; restart from the newest on 1 rank
    for path in (out / "checkpoint").glob("step-*"):
        assert (path / "manifest.json").is_file()
    assert main(["-q", *_fe2(cfg, out, "--restart", str(out / "checkpoint"))]) == 0
    worst = _assert_same_run(out, ref)
    data = json.loads((out / "summary.json").read_text())
    print(f"killed after {delay:.2f} s, restart from step {data['restart']['step']}: {worst:.2e}")


def test_bad_restarts_are_one_line_errors(reference, tmp_path, capsys):
    cfg, ref = reference
    empty = tmp_path / "empty"
    (empty / ".tmp-3").mkdir(parents=True)  # a half-written checkpoint only
    assert main(["fe2", str(cfg), "--output", str(tmp_path / "o"), "--restart", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: no complete checkpoint in {empty}", err
    other = _config(tmp_path, "[0.3, 0.6, 1.0]")
    assert main(["fe2", str(other), "--output", str(tmp_path / "o"), "--restart", str(ref)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is of another configuration" in err[0], err
    assert not (tmp_path / "o").exists()


def test_corrupted_manifest_is_skipped_with_a_warning(reference, tmp_path, caplog):
    _, ref = reference
    out = tmp_path / "corrupt"
    shutil.copytree(ref, out)
    (out / "checkpoint" / "step-6" / "manifest.json").write_text('{"format": 1, "ste')
    checkpoint = find_checkpoint(out, MPI.COMM_SELF)
    assert checkpoint.step == 4
    assert "ignoring checkpoint" in caplog.text and "unreadable manifest" in caplog.text
    (out / "checkpoint" / "step-4" / "micro-0.npz").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="no complete checkpoint"):
        find_checkpoint(out, MPI.COMM_SELF)
    assert "micro-0.npz is missing or has the wrong size" in caplog.text


def test_micro_state_of_another_law_is_a_one_line_error(reference, tmp_path, capsys):
    """A checkpoint whose micro state rows have another width (another cell or law, or a law
    whose state grew) is refused with one line, not a broadcasting error."""
    cfg, ref = reference
    out = tmp_path / "other_law"
    shutil.copytree(ref, out / "ref")
    step = out / "ref" / "checkpoint" / "step-6"
    for part in step.glob("micro-*.npz"):
        data = dict(np.load(part))
        data["committed_state"] = data["committed_state"][:, :-1]
        with part.open("wb") as f:
            np.savez(f, **data)
    manifest = json.loads((step / "manifest.json").read_text())
    manifest["files"] = {name: (step / name).stat().st_size for name in manifest["files"]}
    (step / "manifest.json").write_text(json.dumps(manifest))
    status = main(
        ["-q", "fe2", str(cfg), "--output", str(out / "o"), "--restart", str(out / "ref")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "written for another cell or material law" in err[0], err


# -- the load stepper alone -----------------------------------------------------------------------
class Flaky:
    """A Steppable that fails every step longer than 0.3 (cuts, then regrowth)."""

    comm = MPI.COMM_SELF

    def __init__(self) -> None:
        self.committed = self.load = 0.0

    def set_load(self, factor: float) -> None:
        self.load = factor

    def attempt(self) -> NewtonOutcome:
        ok = abs(self.load - self.committed) <= 0.3
        return NewtonOutcome(ok, 2 if ok else -5, 1, [1.0, 0.0], None if ok else "too long")

    def commit(self) -> None:
        self.committed = self.load

    def rollback(self) -> None:
        pass

    def record(self, step) -> None:
        step.seconds = 0.0


class Stop(Exception):
    """The process dies right after a checkpoint."""


def _interrupted(factors: list[float], stop: int) -> dict:
    """The exported state after ``stop`` converged steps, through JSON."""
    saved: dict = {}
    stepper: LoadStepper

    def on_step(step) -> None:
        if len(stepper.steps) == stop:
            saved.update(json.loads(json.dumps(stepper.export_state())))
            raise Stop

    stepper = LoadStepper(Flaky(), regrow_after=2, on_step=on_step)
    with pytest.raises(Stop):
        stepper.run(factors)
    return saved


def test_load_stepper_resumes_on_the_same_step_sizes():
    factors = [1.0, 2.5, 1.8]
    full = LoadStepper(Flaky(), regrow_after=2)
    full.run(factors)
    reference = [(s.factor, s.cuts) for s in full.steps]
    assert any(c for _, c in reference)  # the path has cuts and regrowth
    for stop in range(1, len(reference)):
        saved = _interrupted(factors, stop)
        problem = Flaky()
        problem.committed = saved["factor"]
        resumed = LoadStepper(problem, regrow_after=2)
        resumed.import_state(saved)
        resumed.run(factors)
        assert [(s.factor, s.cuts) for s in resumed.steps] == reference
        assert len(resumed.failed_attempts) == len(full.failed_attempts)
    with pytest.raises(ValueError, match="not those of the resumed run"):
        resumed.import_state(saved)
        resumed.run([1.0, 2.0])
