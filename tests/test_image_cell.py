r"""Image-based cells (``multiscale.mesh.image``) against independent references.

* laminates of pixel rows: the interfaces lie on element edges, so the effective conductivity
  is the arithmetic mean :math:`\sum_i f_i k_i` along the layers and the harmonic mean
  :math:`(\sum_i f_i/k_i)^{-1}` across them to round-off, and the plane-strain stiffness is
  Backus' closed form (written out here, not taken from :mod:`multiscale.bounds`);
* a checkerboard: :math:`A^{SUBC} \preceq A^{PBC} \preceq A^{KUBC}` and Reuss/Voigt, fractions
  exactly 1/2;
* a pixelized disk: within the Hashin–Shtrikman bounds and close to the Rayleigh–Perrins
  formula for a square array of cylinders (Perrins, McKenzie & McPhedran 1979), evaluated at the
  pixel fraction.  That formula agrees with a conforming P2 solution of the smooth disk
  (h = 0.01) to 2e-6.  The pixelization error is first order: measured relative errors
  1.41 %, 0.72 %, 0.37 %, 0.17 % at 32, 64, 128, 256 pixels across the cell (k = 1 | 10,
  fraction 0.3); the test asserts < 0.5 % at 128 pixels and the halving from 64 to 128.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.cli import main
from multiscale.mesh import (
    NonPeriodicImageError,
    check_periodic,
    image_cell,
    load_phase_image,
    read_image,
    segment_image,
)
from multiscale.physics import Conductivity, IsotropicElasticity
from multiscale.tensors import energy_order

ROWS = np.array([255] * 2 + [0] * 4 + [128] * 4 + [255] * 6, dtype=np.uint8)  # 16 rows
NAMES = {0: "a", 128: "b", 255: "c"}
K = {"a": 1.0, "b": 5.0, "c": 20.0}
F = {"a": 4 / 16, "b": 4 / 16, "c": 8 / 16}
MESHES = Path(__file__).resolve().parents[1] / "meshes"


def _shared(tmp_path: Path) -> Path:
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))


def _write(path: Path, array: np.ndarray) -> Path:
    """Rank 0 writes ``array`` as PNG (Pillow) or .npy; every rank gets the path."""
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        if path.suffix == ".png":
            from PIL import Image

            Image.fromarray(array).save(path)
        else:
            np.save(path, array)
    comm.barrier()
    return path


def _stripes(width: int = 5) -> np.ndarray:
    """Rows of ROWS, constant along each row: layers normal to y."""
    return np.repeat(ROWS[:, None], width, axis=1)


def _disk(n: int, fraction: float = 0.3) -> np.ndarray:
    c = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(c, c, indexing="ij")
    return ((x - 0.5) ** 2 + (y - 0.5) ** 2 < fraction / math.pi).astype(np.uint8)


def _cut_disk(n: int = 24) -> np.ndarray:
    """Image rows/columns: a disk of radius 7 pixels centred 2 pixels from the left edge, as
    cropped from a larger picture (not periodic)."""
    c = np.arange(n) + 0.5
    r, col = np.meshgrid(c, c, indexing="ij")
    return (((col - 2) ** 2 + (r - 12) ** 2 < 49) * 255).astype(np.uint8)


def _perrins(f: float, k: float) -> float:
    """Rayleigh's formula for a square array of cylinders of conductivity k in a unit matrix,
    with the coefficients of Perrins, McKenzie & McPhedran (1979)."""
    t = (1 + k) / (1 - k)
    return 1 - 2 * f / (t + f - 0.305827 * f**4 * t / (t**2 - 1.402958 * f**8) - 0.013362 * f**8)


# -- laminates: exact -----------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_laminate_arithmetic_and_harmonic_means(tmp_path, suffix):
    comm = MPI.COMM_WORLD
    path = _write(_shared(tmp_path) / f"stripes{suffix}", _stripes())
    cell = image_cell(comm, path, phases=NAMES, pixel_size=(0.5, 0.25))
    check_periodic(cell)
    np.testing.assert_allclose(cell.lengths, [2.5, 4.0])
    assert cell.volume_fractions() == pytest.approx(F, abs=1e-14)
    A = CellProblem(cell, {n: Conductivity(k) for n, k in K.items()}).solve().tensor
    arithmetic = sum(F[n] * K[n] for n in K)
    harmonic = 1 / sum(F[n] / K[n] for n in K)
    np.testing.assert_allclose(A, np.diag([arithmetic, harmonic]), rtol=1e-10, atol=1e-10)


@pytest.mark.mpi
def test_voxel_laminate_3d_slices(tmp_path):
    """A stack [k, r, c] whose slices are uniform: layers normal to z."""
    comm = MPI.COMM_WORLD
    stack = np.repeat(np.repeat(ROWS[::2, None, None], 3, axis=1), 4, axis=2)  # 8 slices
    path = _write(_shared(tmp_path) / "stack.npy", stack)
    cell = image_cell(comm, path, phases=NAMES)
    f = {n: np.mean(ROWS[::2] == v) for v, n in NAMES.items()}
    assert cell.volume_fractions() == pytest.approx(f, abs=1e-14)
    A = CellProblem(cell, {n: Conductivity(k) for n, k in K.items()}).solve().tensor
    arithmetic = sum(f[n] * K[n] for n in K)
    harmonic = 1 / sum(f[n] / K[n] for n in K)
    np.testing.assert_allclose(
        A, np.diag([arithmetic, arithmetic, harmonic]), rtol=1e-10, atol=1e-10
    )


@pytest.mark.mpi
def test_laminate_plane_strain_stiffness():
    r"""Backus: layers normal to :math:`y`, plane strain, per layer :math:`C_{11} = C_{22} =
    \lambda + 2\mu`, :math:`C_{12} = \lambda`, :math:`C_{33} = \mu` (Voigt 11, 22, 12)."""
    comm = MPI.COMM_WORLD
    laws = {
        "a": IsotropicElasticity.from_young(1.0, 0.3),
        "b": IsotropicElasticity.from_young(4.0, 0.2),
        "c": IsotropicElasticity.from_young(10.0, 0.35),
    }
    cell = image_cell(comm, _stripes(3), phases=NAMES)
    C = CellProblem(cell, laws).solve().tensor

    def avg(g):
        return sum(F[n] * g(law.lmbda, law.mu) for n, law in laws.items())

    inv22 = avg(lambda lam, mu: 1 / (lam + 2 * mu))
    r = avg(lambda lam, mu: lam / (lam + 2 * mu))
    c11 = avg(lambda lam, mu: lam + 2 * mu - lam**2 / (lam + 2 * mu)) + r**2 / inv22
    expected = np.array(
        [
            [c11, r / inv22, 0.0],
            [r / inv22, 1 / inv22, 0.0],
            [0.0, 0.0, 1 / avg(lambda la, m: 1 / m)],
        ]
    )
    np.testing.assert_allclose(C, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


# -- checkerboard and disk: bounds and references ---------------------------------------------
@pytest.mark.mpi
def test_checkerboard_between_apparent_bounds():
    comm = MPI.COMM_WORLD
    board = np.kron(np.array([[0, 1], [1, 0]], dtype=np.uint8), np.ones((8, 8), np.uint8))
    cell = image_cell(comm, board)  # blocks meet the image edges: still periodic
    assert set(cell.phases) == {"phase0", "phase1"}
    assert cell.volume_fractions() == pytest.approx({"phase0": 0.5, "phase1": 0.5}, abs=1e-14)
    k = {"phase0": 1.0, "phase1": 10.0}
    problem = CellProblem(cell, {n: Conductivity(v) for n, v in k.items()})
    sub, per, kub = (problem.solve(bc).tensor for bc in ("subc", "periodic", "kubc"))
    scale = per[0, 0]
    assert energy_order(sub, per) > -1e-10 * scale
    assert energy_order(per, kub) > -1e-10 * scale
    assert energy_order(sub, kub) > 1e-3 * scale  # a real gap
    reuss, voigt = 1 / (0.5 / 1 + 0.5 / 10), 0.5 * (1 + 10)
    assert reuss < sub[0, 0] and kub[0, 0] < voigt
    # Dykhne's sqrt(k1 k2) for the continuum checkerboard: conforming elements minimize the
    # energy over a subspace, so they bound it from above (8.9 % above at 8 pixels per block:
    # the corner singularities converge slowly)
    assert math.sqrt(10.0) < per[0, 0] < 1.1 * math.sqrt(10.0)


@pytest.mark.mpi
def test_disk_image_hashin_shtrikman_and_rayleigh():
    comm = MPI.COMM_WORLD
    k = 10.0
    laws = {"phase0": Conductivity(1.0), "phase1": Conductivity(k)}
    errors = []
    for n in (64, 128):
        image = segment_image(_disk(n), axes="xyz", size=(1.0, 1.0))
        f = image.fractions["phase1"]
        A = CellProblem(image_cell(comm, image), laws).solve().tensor
        assert A[0, 0] == pytest.approx(A[1, 1], rel=1e-10)  # square symmetry
        lo = 1 + f / (1 / (k - 1) + (1 - f) / 2)  # HS, 2D, matrix 1 < inclusion k
        hi = k + (1 - f) / (1 / (1 - k) + f / (2 * k))
        assert lo < A[0, 0] < hi
        errors.append(A[0, 0] / _perrins(f, k) - 1)
    assert 0 < errors[1] < 5e-3, errors
    assert 1.6 < errors[0] / errors[1] < 2.4, errors  # first order in the pixel size


# -- periodicity ------------------------------------------------------------------------------
@pytest.mark.mpi
def test_non_periodic_image_one_line_error(tmp_path):
    comm = MPI.COMM_WORLD
    path = _write(_shared(tmp_path) / "cut.png", _cut_disk())
    with pytest.raises(NonPeriodicImageError) as err:
        image_cell(comm, path)
    message = str(err.value)
    assert "\n" not in message
    assert "faces left (x = 0) and right (x = 24) differ in" in message, message
    assert "% of their pixels" in message and "KUBC/SUBC" in message
    cell = image_cell(comm, path, check="none")  # KUBC needs no periodicity
    laws = {"phase0": Conductivity(1.0), "phase1": Conductivity(10.0)}
    A = CellProblem(cell, laws).solve("kubc").tensor
    assert 1.0 < A[1, 1] < 10.0


@pytest.mark.mpi
def test_one_pixel_thick_image():
    """A 1 x 6 image: no neighbouring layers along y, so m_y = m_y^in = 0 (periodic).  With one
    element per pixel every node lies on the boundary: KUBC fixes them all (the arithmetic mean in
    both directions) and the periodic problem has no interior node to fix its constant (a
    one-line error); with two subdivisions, layers normal to x give the harmonic mean along x and
    the arithmetic mean along y."""
    comm = MPI.COMM_WORLD
    row = np.array([[0, 0, 255, 255, 255, 0]], dtype=np.uint8)  # one row: 6 columns along x
    image = segment_image(row, phases={0: "m", 255: "i"})
    assert image.shape == (6, 1)
    assert image.periodicity() == [(0.0, 1.0), (0.0, 0.0)]
    image.check_periodic()
    k = {"m": 1.0, "i": 10.0}
    laws = {n: Conductivity(v) for n, v in k.items()}
    arithmetic = 0.5 * (k["m"] + k["i"])
    harmonic = 1 / (0.5 / k["m"] + 0.5 / k["i"])
    problem = CellProblem(image_cell(comm, image), laws)
    np.testing.assert_allclose(
        problem.solve("kubc").tensor, arithmetic * np.eye(2), rtol=1e-10, atol=1e-10
    )
    with pytest.raises(ValueError, match="no interior node") as err:
        problem.solve()
    assert "\n" not in str(err.value)
    A = CellProblem(image_cell(comm, image, subdivisions=2), laws).solve().tensor
    np.testing.assert_allclose(A, np.diag([harmonic, arithmetic]), rtol=1e-10, atol=1e-10)


# -- errors on every rank ------------------------------------------------------------------------
@pytest.mark.mpi
def test_corrupt_array_file_one_line_error_on_every_rank(tmp_path):
    """A truncated .npz (zipfile.BadZipFile) or .npy: a one-line OSError on every rank, not a
    hang of the ranks that wait for rank 0."""
    comm = MPI.COMM_WORLD
    work = _shared(tmp_path)
    if comm.rank == 0:
        np.savez(work / "full.npz", a=_stripes())
        data = (work / "full.npz").read_bytes()
        (work / "cut.npz").write_bytes(data[: len(data) // 2])
        np.save(work / "full.npy", _stripes())
        data = (work / "full.npy").read_bytes()
        (work / "cut.npy").write_bytes(data[: len(data) // 2])
    comm.barrier()
    for name, what in (("cut.npz", "BadZipFile: File is not a zip file"), ("cut.npy", "")):
        with pytest.raises(OSError, match="cannot read array") as err:
            load_phase_image(comm, work / name, phases=NAMES)
        message = str(err.value)
        assert "\n" not in message and f"'{work / name}'" in message, message
        assert what in message, message
        with pytest.raises(OSError, match="cannot read array"):
            image_cell(comm, work / name)


@pytest.mark.mpi
def test_unexpected_errors_raised_on_every_rank():
    """Errors other than OSError/ValueError on rank 0 (here TypeErrors from bad arguments) are
    raised on every rank as a ValueError naming their type."""
    comm = MPI.COMM_WORLD
    with pytest.raises(ValueError, match=r"^TypeError: "):
        load_phase_image(comm, _stripes(), coarsen=None)
    with pytest.raises(ValueError, match=r"^TypeError: "):
        image_cell(comm, _stripes(), phases={None: "a"})


@pytest.mark.mpi
def test_phase_image_used_as_it_is():
    comm = MPI.COMM_WORLD
    image = segment_image(_stripes(), phases=NAMES, pixel_size=0.5)
    assert load_phase_image(comm, image) is image
    cell = image_cell(comm, image)
    np.testing.assert_allclose(cell.lengths, [2.5, 8.0])
    assert cell.volume_fractions() == pytest.approx(F, abs=1e-14)
    with pytest.raises(ValueError, match=r"^phases, coarsen cannot be applied to a PhaseImage"):
        image_cell(comm, image, phases=NAMES, coarsen=2)
    with pytest.raises(ValueError, match=r"^tol cannot be applied to a PhaseImage"):
        load_phase_image(comm, image, tol=1.0)


# -- reading and segmentation (no mesh) --------------------------------------------------------
@pytest.mark.serial_only
def test_read_formats_and_segmentation(tmp_path):
    from PIL import Image

    grey = np.array([[0, 255, 255], [0, 0, 255]], dtype=np.uint8)
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), grey)
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    assert read_image(tmp_path / "colour.png")[0, 0] == 0xFF0000
    frames = [Image.fromarray(grey * (i % 2)) for i in range(3)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    assert read_image(tmp_path / "stack.tif").shape == (3, 2, 3)
    np.savez(tmp_path / "two.npz", a=grey, b=grey)
    with pytest.raises(ValueError, match="holds 2 arrays"):
        read_image(tmp_path / "two.npz")
    np.testing.assert_array_equal(read_image(tmp_path / "two.npz", dataset="b"), grey)
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(OSError, match="cannot read image"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(OSError, match="no image file"):
        read_image(tmp_path / "none.png")
    # a corrupt archive: a bad CRC (zipfile.BadZipFile), a damaged compressed stream (zlib)
    np.savez(tmp_path / "one.npz", a=np.arange(64).reshape(8, 8))
    data = bytearray((tmp_path / "one.npz").read_bytes())
    data[100:140] = b"x" * 40
    (tmp_path / "crc.npz").write_bytes(bytes(data))
    np.savez_compressed(tmp_path / "packed.npz", a=np.arange(2500).reshape(50, 50) % 7)
    data = bytearray((tmp_path / "packed.npz").read_bytes())
    data[200:260] = bytes(60)
    (tmp_path / "zlib.npz").write_bytes(bytes(data))
    for name in ("crc.npz", "zlib.npz"):
        with pytest.raises(OSError, match=rf"^cannot read array '.*{name}': \S") as err:
            read_image(tmp_path / name)
        assert "\n" not in str(err.value)

    # orientation: row 0 is the top (y max), column 0 the left (x = 0)
    seg = segment_image(grey, phases={0: "m", 255: "i"})
    assert seg.labels.shape == (3, 2) and seg.labels[0, 1] == seg.phases["m"]
    assert seg.labels[2, 1] == seg.phases["i"] and seg.labels[1, 0] == seg.phases["m"]
    # greyscale noise within the tolerance, automatic names
    rng = np.random.default_rng(0)
    noisy = np.clip(np.repeat(grey, 4, axis=0).astype(int) + rng.integers(-3, 4, (8, 3)), 0, 255)
    seg = segment_image(noisy, tol=10)
    assert list(seg.phases) == ["phase0", "phase1"]
    assert seg.fractions == {"phase0": 0.5, "phase1": 0.5}
    with pytest.raises(ValueError, match="match no phase"):
        segment_image(noisy, phases={0: "m", 255: "i"}, tol=1)
    with pytest.raises(ValueError, match=r"phase value\(s\) 7 \('f'\) of the mapping do not"):
        segment_image(grey, phases={0: "m", 255: "i", 7: "f"})
    with pytest.raises(ValueError, match="single phase"):
        segment_image(np.zeros((4, 4)))
    # coarsening: majority of each 2x2 block
    fine = np.zeros((4, 4))
    fine[:2, :2] = 1
    fine[0, 3] = 1  # one stray pixel does not win its block
    seg = segment_image(fine, axes="xyz", coarsen=2)
    np.testing.assert_array_equal(seg.labels, [[2, 1], [1, 1]])


@pytest.mark.serial_only
def test_read_hdf5(tmp_path):
    import h5py  # python3-h5py is in both environments (env/*.txt)

    grey = np.array([[0, 1, 1], [0, 0, 2]], dtype=np.uint16)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("scan/labels", data=grey)
        f.create_dataset("scan/raw", data=grey * 7)
    with pytest.raises(ValueError, match="holds 2 arrays"):
        read_image(tmp_path / "a.h5")
    np.testing.assert_array_equal(read_image(tmp_path / "a.h5", dataset="/scan/labels"), grey)


# -- the command line ---------------------------------------------------------------------------
def _cli(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["-q", *argv])
    return status, capsys.readouterr().err


@pytest.mark.mpi
def test_cli_homogenize_image(tmp_path, capsys):
    comm = MPI.COMM_WORLD
    work = _shared(tmp_path)
    png = _write(work / "stripes.png", _stripes())
    if comm.rank == 0:
        (work / "phases.yaml").write_text("0: a\n128: b\n")
    comm.barrier()
    out = work / "out.json"
    argv = ["homogenize", str(png), "--physics", "conductivity", "--phases"]
    argv += [str(work / "phases.yaml"), "--phase", "255=c", "--json", str(out)]
    argv += [f"--material={n}:k={k}" for n, k in K.items()]
    status, err = _cli(argv, capsys)
    assert status == 0, err
    data = json.loads(out.read_text())
    assert data["image"]["pixel_fractions"] == F
    assert data["image"]["pixels"] == data["image"]["elements"] == [5, 16]
    A = np.array(data["effective_tensor"])
    arithmetic = sum(F[n] * K[n] for n in K)
    harmonic = 1 / sum(F[n] / K[n] for n in K)
    np.testing.assert_allclose(A, np.diag([arithmetic, harmonic]), rtol=1e-10, atol=1e-10)


BAD = [
    ("unreadable", "junk.png", [], "cannot read image"),
    ("one phase", "flat.npy", [], "has a single phase (phase0, values [3.0]): nothing to"),
    ("unknown label", "stripes.npy", ["--phase", "0=a", "--phase", "128=b", "--phase", "255=c",
                                      "--phase", "7=d"], "phase value(s) 7 ('d') of the mapping"),
    ("unmapped value", "stripes.npy", ["--phase", "0=a", "--phase", "255=c"],
     "pixel value(s) 128 (20 pixels) match no phase"),
    ("non-periodic", "cut.npy", [],
     "faces left (x = 0) and right (x = 24) differ in 58.3 % of their pixels"),
    ("bad phase spec", "stripes.npy", ["--phase", "zero=a"], "'zero' is not a pixel value"),
    ("truncated npz", "cut.npz", [], "cannot read array"),
]  # fmt: skip


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--coarsen", "2"], "--coarsen applies to images"),
        (["--value-tol", "0", "--dataset", "a", "--pixel-size", "1", "2"], "--value-tol/--datas"
         "et/--pixel-size apply to images"),
        (["--phase", "0=a", "--coarsen", "1"], "--phase/--coarsen apply to images"),
    ],
)  # fmt: skip
def test_cli_image_options_with_a_mesh_file(tmp_path, capsys, extra, named):
    """Image options with a .msh cell are an error naming them (even at their defaults)."""
    out = _shared(tmp_path) / "mesh.json"
    mesh = MESHES / "inclusion2d_vf0.3.msh"
    argv = ["homogenize", str(mesh), "--physics", "conductivity", "--json", str(out)]
    argv += ["--material=matrix:k=1", "--material=inclusion:k=10", *extra]
    status, err = _cli(argv, capsys)
    assert status == 2, err
    if MPI.COMM_WORLD.rank == 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert f"{named}; {mesh} is a mesh file" in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.mpi
@pytest.mark.parametrize(("label", "name", "extra", "expected"), BAD, ids=[b[0] for b in BAD])
def test_cli_bad_image_one_line(tmp_path, capsys, label, name, extra, expected):
    comm = MPI.COMM_WORLD
    work = _shared(tmp_path)
    if comm.rank == 0:
        (work / "junk.png").write_text("this is not a PNG\n")
        np.save(work / "flat.npy", np.full((4, 4), 3, np.uint8))
        np.save(work / "stripes.npy", _stripes())
        np.save(work / "cut.npy", _cut_disk())
        np.savez(work / "whole.npz", a=_stripes())
        (work / "cut.npz").write_bytes((work / "whole.npz").read_bytes()[:100])
    comm.barrier()
    out = work / "bad.json"
    argv = ["homogenize", str(work / name), "--physics", "conductivity", "--json", str(out)]
    argv += [f"--material=phase{i}:k=1" for i in range(2)] if not extra else []
    argv += [f"--material={n}:k={k}" for n, k in K.items()] if extra else []
    status, err = _cli([*argv, *extra], capsys)
    assert status == 2, (label, err)
    if comm.rank == 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (label, err)
        assert expected in lines[0], (label, expected, lines[0])
    assert not out.exists()
