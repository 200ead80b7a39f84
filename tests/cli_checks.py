"""Shared checks of the ``multiscale`` subcommands run in-process on every rank."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

from multiscale.cli import main


def shared_dir(tmp_path: Path) -> Path:
    """Rank 0's temporary folder, the same on every rank."""
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))


def assert_bad_config_is_one_line(
    command: str, example: Path, tmp_path: Path, capsys, edit: tuple[str, str], expected: str
) -> None:
    """``multiscale -q COMMAND CONFIG --json OUT`` on ``example`` with the text ``edit[0]``
    replaced by ``edit[1]``: exit status 2 on every rank, exactly one line ``error: ...``
    containing ``expected`` (rank 0), and no result file."""
    comm = MPI.COMM_WORLD
    old, new = edit
    work = shared_dir(tmp_path)
    cfg, out = work / f"bad{example.suffix}", work / "bad.json"
    text = example.read_text()
    assert old in text, old
    if comm.rank == 0:
        cfg.write_text(text.replace(old, new, 1))
    comm.barrier()
    capsys.readouterr()
    status = main(["-q", command, str(cfg), "--json", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err
    if comm.rank == 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert expected in lines[0], (expected, lines[0])
    assert not out.exists()
