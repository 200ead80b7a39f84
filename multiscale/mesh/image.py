r"""Image-based microstructures: a pixel/voxel image whose values label phases, as a cell mesh.

A 2D image (PNG, TIFF) or a 2D/3D array (NumPy ``.npy``/``.npz``, HDF5) is read with
:func:`read_image`, its pixel values are mapped to phase names with :func:`segment_image`, and
:func:`image_cell` meshes it with one quadrilateral/hexahedron per pixel/voxel (after an
optional block coarsening by a factor :math:`c`), tagged with the pixel's phase, on the box

.. math:: Y = [0, n_1 h_1] \times \dots \times [0, n_d h_d],

:math:`n_a` pixels of edge :math:`h_a` along axis :math:`a`.  The interfaces follow the pixel
edges exactly, so the mesh fraction of phase :math:`p` *is* its pixel fraction
:math:`\phi_p = \#\{\text{pixels of } p\} / \prod_a n_a`.

**Orientation** (``axes="image"``, the default): a 2D array ``a[r, c]`` is an image as it is
displayed, row :math:`r` from the top and column :math:`c` from the left, so pixel
:math:`(r, c)` covers :math:`x \in [c h_1, (c+1) h_1]`, :math:`y \in [(n_2-1-r) h_2, (n_2-r)
h_2]`; a 3D array ``a[k, r, c]`` is a stack of such slices, slice :math:`k` at
:math:`z \in [k h_3, (k+1) h_3]`.  With ``axes="xyz"`` the array index :math:`(i, j, k)` runs
along :math:`(x, y, z)` (the convention of :class:`~multiscale.mesh.PixelMicrostructure`).

**Phases.**  A mapping ``{value: name}`` names the phases (several values may share a name);
without one, the distinct values, sorted, are the phases ``phase0``, ``phase1``, ...  With a
tolerance :math:`\tau > 0` (greyscale noise) a pixel of value :math:`v` belongs to the mapped
value :math:`w` with :math:`|v - w| \le \tau`; automatically, sorted values closer than
:math:`\tau` to their neighbour are merged into one phase.  Colour images whose channels differ
are read as the integer :math:`2^{16} R + 2^8 G + B`.

**Periodicity.**  The periodic cell problem assumes the image is one period of the
microstructure: its last layer of pixels along each axis is followed by its first.  The check
compares the two boundary layers of each axis, :math:`m_a = \#\{\text{pixels of layer } 0
\ne \text{layer } n_a - 1\} / \#\text{layer}`, with the largest such mismatch between two
neighbouring layers inside the image, :math:`m_a^{in} = \max_{0 \le l < n_a - 1} \#\{l \ne
l+1\} / \#\text{layer}`: a periodic image wraps around with a seam that looks like its inside
(:math:`m_a \le m_a^{in}`: an interface lying exactly on the seam is allowed when an interface
as long lies inside), a crop of a larger picture does not.  KUBC and SUBC need no periodicity
(``check="none"``).
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import pickle
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from mpi4py import MPI

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.random import label_grid_cell

__all__ = [
    "IMAGE_SUFFIXES",
    "NonPeriodicImageError",
    "PhaseImage",
    "image_cell",
    "load_phase_image",
    "read_image",
    "segment_image",
]

_log = logging.getLogger(__name__)

#: File suffixes :func:`read_image` reads (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".tif",
    ".tiff",
    ".npy",
    ".npz",
    ".h5",
    ".hdf5",
    ".he5",
)
_AXIS = "xyz"
#: Names of the two faces of each axis in image terms (axes="image").
_IMAGE_FACES = (("left", "right"), ("bottom", "top"), ("first slice", "last slice"))


class NonPeriodicImageError(ValueError):
    """The image's opposite boundary layers do not match: it is not one period."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _pil_array(path: Path) -> tuple[np.ndarray, bool]:
    """The pixels of a PNG/TIFF and whether it had several frames (a stack)."""
    try:
        from PIL import Image, ImageSequence
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise OSError(f"reading {path.name!r} needs Pillow (python3-pil)") from None
    try:
        with Image.open(path) as img:
            frames = [
                np.asarray(frame.convert("RGBA") if frame.mode in ("P", "PA") else frame.copy())
                for frame in ImageSequence.Iterator(img)
            ]
    except (OSError, ValueError, SyntaxError) as err:
        raise OSError(f"cannot read image '{path}': {err}") from None
    if len(frames) > 1 and len({f.shape for f in frames}) > 1:
        raise OSError(f"cannot read image '{path}': its frames differ in size")
    multi = len(frames) > 1
    return (np.stack(frames) if multi else frames[0]), multi


def _to_labels(data: np.ndarray, multi: bool) -> np.ndarray:
    """A colour image (trailing channel axis) as one value per pixel."""
    if data.dtype == bool:
        return data.astype(np.uint8)
    channels = data.ndim == (4 if multi else 3)
    if channels and data.shape[-1] in (3, 4):  # RGB(A)
        rgb = data[..., :3]
        if np.all(rgb == rgb[..., :1]):
            return rgb[..., 0]
        rgb = rgb.astype(np.int64)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if channels and data.shape[-1] == 2:  # grey + alpha
        return data[..., 0]
    return data


def read_image(path: str | os.PathLike, *, dataset: str | None = None) -> np.ndarray:
    """The array of pixel/voxel values of an image file (not collective).

    * ``.png``, ``.tif``/``.tiff`` (Pillow; a multi-page TIFF gives a 3D stack ``[k, r, c]``):
      grey values as stored; an RGB(A) or palette image whose colours are grey gives the grey
      value, otherwise the integer :math:`2^{16}R + 2^8G + B`; the alpha channel is ignored;
    * ``.npy``; ``.npz`` (the array ``dataset``, or the only one);
    * ``.h5``/``.hdf5``/``.he5`` (needs h5py): the dataset ``dataset``, or the only one.

    Raises ``OSError`` (missing or unreadable file) or ``ValueError`` (not a 2D/3D array, no or
    an ambiguous dataset), with a message naming the file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"'{p}': unknown image format {suffix or '(no suffix)'!r}; expected one of "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    if not p.is_file():
        raise OSError(f"no image file '{p}'")
    if suffix in (".png", ".tif", ".tiff"):
        data = _to_labels(*_pil_array(p))
    elif suffix == ".npy":
        try:
            data = np.load(p, allow_pickle=False)
        except _NUMPY_READ_ERRORS as err:
            raise OSError(f"cannot read array '{p}': {_message(err)}") from None
    elif suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as npz:
                names = list(npz.files)
                name = _pick(names, dataset, p)
                data = npz[name]
        except _NUMPY_READ_ERRORS as err:
            if isinstance(err, ValueError) and str(p) in str(err):
                raise  # _pick: no or an ambiguous dataset
            raise OSError(f"cannot read array '{p}': {_message(err)}") from None
    else:
        data = _read_hdf5(p, dataset)
    data = np.asarray(data)
    if data.ndim not in (2, 3) or min(data.shape) < 1:
        raise ValueError(
            f"'{p}': expected a 2D or 3D array of pixel values, got shape {data.shape}"
        )
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ValueError(f"'{p}': pixel values must be numbers, got dtype {data.dtype}")
    return data


#: What a truncated or corrupt ``.npy``/``.npz`` raises from :func:`numpy.load`: a bad header,
#: a zip archive cut short or with a bad CRC, a damaged compressed stream, pickled data.
_NUMPY_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    pickle.UnpicklingError,
)


def _message(err: BaseException) -> str:
    """``err`` as one line, with its type unless it is an ``OSError``/``ValueError``."""
    text = " ".join(str(err).split()) or "(no message)"
    if isinstance(err, OSError | ValueError):
        return text
    name = type(err).__name__
    if name == "error":  # zlib.error
        name = f"{type(err).__module__}.{name}"
    return f"{name}: {text}"


def _pick(names: list[str], dataset: str | None, path: Path) -> str:
    if dataset is not None:
        if dataset not in names:
            raise ValueError(f"'{path}': no dataset {dataset!r}; it holds {names}")
        return dataset
    if len(names) != 1:
        raise ValueError(f"'{path}' holds {len(names)} arrays {names}: name one (dataset)")
    return names[0]


def _read_hdf5(path: Path, dataset: str | None) -> np.ndarray:
    try:
        import h5py
    except ImportError:
        raise OSError(
            f"reading the HDF5 file '{path}' needs h5py (python3-h5py); save the array as .npy"
        ) from None
    try:
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
            name = _pick(names, dataset.lstrip("/") if dataset else None, path)
            return np.asarray(f[name][()])
    except OSError as err:
        raise OSError(f"cannot read HDF5 file '{path}': {err}") from None


# --------------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseImage:
    r"""A segmented image: phase tags on the pixel grid of the box :math:`[0, L]`.

    Attributes
    ----------
    labels:
        Phase tag per pixel/voxel, indexed ``[i, j(, k)]`` along :math:`(x, y(, z))`.
    phases:
        Phase name -> tag (tags 1, 2, ... in the order of the sorted pixel values).
    size:
        Box edge lengths :math:`L_a = n_a h_a`, shape ``(d,)``.
    values:
        Phase name -> the pixel values it was given (as floats).
    axes:
        ``"image"`` or ``"xyz"``: how the source array was oriented (names the faces).
    source:
        Where the image came from (a path), for messages.
    """

    labels: np.ndarray
    phases: dict[str, int]
    size: np.ndarray
    values: dict[str, list[float]] = field(default_factory=dict)
    axes: str = "image"
    source: str | None = None

    @property
    def dim(self) -> int:
        return int(self.labels.ndim)

    @property
    def shape(self) -> tuple[int, ...]:
        """Pixels per axis :math:`(n_x, n_y(, n_z))`."""
        return tuple(int(n) for n in self.labels.shape)

    @property
    def pixel_size(self) -> np.ndarray:
        """Edge lengths :math:`h_a = L_a / n_a` of a pixel."""
        return self.size / np.array(self.shape)

    @property
    def fractions(self) -> dict[str, float]:
        r"""Pixel fraction :math:`\phi_p` of each phase (exact: counts over the pixel count)."""
        counts = np.bincount(self.labels.reshape(-1), minlength=max(self.phases.values()) + 1)
        return {name: float(counts[tag]) / self.labels.size for name, tag in self.phases.items()}

    def face_names(self, axis: int) -> tuple[str, str]:
        """The names of the faces :math:`x_a = 0` and :math:`x_a = L_a`."""
        lo, hi = f"{_AXIS[axis]} = 0", f"{_AXIS[axis]} = {self.size[axis]:g}"
        if self.axes == "image":
            a, b = _IMAGE_FACES[axis]
            return f"{a} ({lo})", f"{b} ({hi})"
        return lo, hi

    def periodicity(self) -> list[tuple[float, float]]:
        r"""For each axis :math:`a`: :math:`(m_a, m_a^{in})`, the fraction of pixels in which the
        two boundary layers differ and the largest such fraction between neighbouring layers
        inside the image (see the module documentation)."""
        out = []
        for a in range(self.dim):
            lab = np.moveaxis(self.labels, a, 0)
            seam = float(np.mean(lab[0] != lab[-1]))
            # one layer thick: no neighbouring layers inside, m_a^in = 0 (and m_a = 0)
            steps = np.mean(lab[1:] != lab[:-1], axis=tuple(range(1, lab.ndim)))
            out.append((seam, float(steps.max(initial=0.0))))
        return out

    def check_periodic(self) -> None:
        """Raise :class:`NonPeriodicImageError` (one line) naming the first axis whose boundary
        layers mismatch more than any two neighbouring layers inside the image."""
        for a, (seam, inner) in enumerate(self.periodicity()):
            if seam > inner + 1e-12:
                lo, hi = self.face_names(a)
                what = f"image '{self.source}'" if self.source else "the image"
                raise NonPeriodicImageError(
                    f"{what} is not periodic: its faces {lo} and {hi} differ in "
                    f"{100 * seam:.1f} % of their pixels (neighbouring layers inside differ in "
                    f"at most {100 * inner:.1f} %); use a periodic image, or KUBC/SUBC, which "
                    "need no periodicity"
                )


def _phase_table(
    data: np.ndarray, phases: Mapping[float, str] | None, tol: float
) -> tuple[np.ndarray, dict[str, int], dict[str, list[float]]]:
    """Tag per pixel (same shape), name -> tag, name -> values."""
    flat = data.reshape(-1)
    uniq, inverse = np.unique(flat, return_inverse=True)
    uvals = uniq.astype(np.float64)
    if phases is None:
        # sorted values, merged where the gap to the previous is <= tol
        group = np.concatenate([[0], np.cumsum(np.diff(uvals) > tol)]) if uvals.size else uvals
        names = [f"phase{k}" for k in range(int(group[-1]) + 1)] if uvals.size else []
        table = {name: k + 1 for k, name in enumerate(names)}
        values = {name: uvals[group == k].tolist() for k, name in enumerate(names)}
        return (group[inverse] + 1).astype(np.int32).reshape(data.shape), table, values
    if not phases:
        raise ValueError("the phase mapping is empty")
    keys = np.array([float(v) for v in phases], dtype=np.float64)
    names = [str(n) for n in phases.values()]
    order = list(dict.fromkeys(n for _, n in sorted(zip(keys, names, strict=True))))
    table = {name: k + 1 for k, name in enumerate(order)}
    dist = np.abs(uvals[:, None] - keys[None, :])
    nearest = np.argmin(dist, axis=1) if keys.size else np.zeros(0, int)
    ok = dist[np.arange(uvals.size), nearest] <= tol
    if not np.all(ok):
        bad = uvals[~ok]
        counts = np.bincount(inverse, minlength=uvals.size)[~ok]
        shown = ", ".join(f"{v:g} ({c} pixels)" for v, c in list(zip(bad, counts, strict=True))[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise ValueError(
            f"pixel value(s) {shown}{more} match no phase of the mapping "
            f"{_show_mapping(keys, names)} (tolerance {tol:g})"
        )
    used = np.zeros(keys.size, dtype=bool)
    used[nearest] = True
    if not np.all(used):
        missing = ", ".join(
            f"{k:g} ({n!r})" for k, n, u in zip(keys, names, used, strict=True) if not u
        )
        present = ", ".join(f"{v:g}" for v in uvals[:10]) + (" ..." if uvals.size > 10 else "")
        raise ValueError(
            f"phase value(s) {missing} of the mapping do not occur in the image "
            f"(values present: {present})"
        )
    key_tag = np.array([table[n] for n in names], dtype=np.int32)
    values = {
        n: sorted(float(k) for k, m in zip(keys, names, strict=True) if m == n) for n in order
    }
    return key_tag[nearest][inverse].reshape(data.shape), table, values


def _show_mapping(keys: np.ndarray, names: list[str]) -> str:
    return "{" + ", ".join(f"{k:g}: {n!r}" for k, n in zip(keys, names, strict=True)) + "}"


def _coarsen(labels: np.ndarray, factor: int, ntags: int) -> np.ndarray:
    """Majority vote over blocks of ``factor**d`` pixels (ties: the smaller tag)."""
    if factor == 1:
        return labels
    if any(n % factor for n in labels.shape):
        raise ValueError(
            f"coarsening by {factor} needs pixel counts divisible by it: {labels.shape}"
        )
    d = labels.ndim
    blocks = labels.reshape([x for n in labels.shape for x in (n // factor, factor)])
    blocks = blocks.transpose([*range(0, 2 * d, 2), *range(1, 2 * d, 2)])
    blocks = blocks.reshape(*blocks.shape[:d], -1)
    counts = np.stack([(blocks == t).sum(axis=-1) for t in range(1, ntags + 1)], axis=-1)
    return (np.argmax(counts, axis=-1) + 1).astype(np.int32)


def segment_image(
    image: np.ndarray,
    *,
    phases: Mapping[float, str] | None = None,
    tol: float = 0.0,
    pixel_size: float | Sequence[float] | None = None,
    size: Sequence[float] | None = None,
    axes: Literal["image", "xyz"] = "image",
    coarsen: int = 1,
    source: str | None = None,
) -> PhaseImage:
    r"""Map the pixel values of ``image`` to phases (see the module documentation).

    Parameters
    ----------
    image:
        2D or 3D array of pixel values (as :func:`read_image` returns it).
    phases:
        ``{value: name}``; default: the sorted distinct values, named ``phase0``, ``phase1``, ...
    tol:
        Greyscale tolerance :math:`\tau \ge 0`.
    pixel_size, size:
        Pixel edge :math:`h` (one value or one per axis :math:`x, y(, z)`), or the box edges
        :math:`L` instead; default :math:`h = 1`.
    axes:
        ``"image"`` (rows from the top, columns, slices) or ``"xyz"``.
    coarsen:
        Block size :math:`c`: each element covers :math:`c^d` pixels and takes their majority
        phase (ties: the phase of the smaller value); pixel counts must be multiples of :math:`c`.

    Raises ``ValueError`` for a value no phase matches, a mapped value absent from the image,
    a single phase, or bad arguments.  Not collective.
    """
    data = np.asarray(image)
    where = f"image '{source}'" if source else "the image"
    if data.ndim not in (2, 3) or min(data.shape) < 1:
        raise ValueError(f"{where}: expected a 2D or 3D array, got shape {data.shape}")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ValueError(f"{where}: pixel values must be real numbers, got dtype {data.dtype}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{where}: pixel values must be finite (found NaN or inf)")
    tol = float(tol)
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tol!r}")
    if axes == "image":
        data = np.swapaxes(data[..., ::-1, :], -1, -2)  # [.., r, c] -> [.., x, y]
        if data.ndim == 3:
            data = np.moveaxis(data, 0, -1)  # [k, x, y] -> [x, y, k]
    elif axes != "xyz":
        raise ValueError(f"axes must be 'image' or 'xyz', got {axes!r}")
    c = int(coarsen)
    if c < 1 or c != coarsen:
        raise ValueError(f"coarsen must be a positive integer, got {coarsen!r}")
    try:
        labels, table, values = _phase_table(data, phases, tol)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if len(table) < 2:
        raise ValueError(
            f"{where} has a single phase ({', '.join(table) or 'none'}, values "
            f"{[v for vs in values.values() for v in vs][:5]}): nothing to homogenize"
        )
    labels = _coarsen(labels, c, len(table))
    present = set(np.unique(labels).tolist())
    if len(present) < 2:
        raise ValueError(f"{where}: a single phase is left after coarsening by {c}")
    dims = np.array(labels.shape, dtype=np.float64)
    if size is not None and pixel_size is not None:
        raise ValueError("give pixel_size or size, not both")
    if size is not None:
        lengths = np.asarray(size, dtype=np.float64).reshape(-1)
    else:
        h = np.asarray(1.0 if pixel_size is None else pixel_size, dtype=np.float64).reshape(-1)
        if h.size == 1:
            h = np.full(labels.ndim, h[0])
        lengths = h * c * dims if h.size == labels.ndim else h
    if lengths.size != labels.ndim or not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
        raise ValueError(
            f"pixel_size/size must be positive, one value or {labels.ndim}, got "
            f"{pixel_size if size is None else size!r}"
        )
    return PhaseImage(labels, table, lengths, values, axes, source)


# --------------------------------------------------------------------------------------------
# The cell mesh
# --------------------------------------------------------------------------------------------


def load_phase_image(
    comm: MPI.Comm,
    image: str | os.PathLike | np.ndarray | PhaseImage,
    *,
    phases: Mapping[float, str] | None = None,
    tol: float = 0.0,
    dataset: str | None = None,
    pixel_size: float | Sequence[float] | None = None,
    size: Sequence[float] | None = None,
    axes: Literal["image", "xyz"] = "image",
    coarsen: int = 1,
) -> PhaseImage:
    """:func:`read_image` (for a path) and :func:`segment_image` (the keyword arguments are
    theirs) on rank 0, the result broadcast to every rank.  An array is rank 0's.

    A :class:`PhaseImage` is returned as it is, not broadcast: it must be the same on every rank
    (as this function returns it), and giving keyword arguments with it is a ``ValueError``.

    Collective: an error on rank 0 is raised on every rank with the same message, as an
    ``OSError`` (missing or unreadable file) or a ``ValueError`` (anything else; the message of
    an error other than these two starts with its type).
    """
    if isinstance(image, PhaseImage):
        given = _given_options(locals())
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot be applied to a PhaseImage: it is used as it is "
                "(give a path or an array instead)"
            )
        return image
    result: PhaseImage | tuple[type[Exception], str] | None = None
    if comm.rank == 0:
        try:
            source = None
            if isinstance(image, str | os.PathLike):
                source = str(image)
                image = read_image(image, dataset=dataset)
            result = segment_image(
                image,
                phases=phases,
                tol=tol,
                pixel_size=pixel_size,
                size=size,
                axes=axes,
                coarsen=coarsen,
                source=source,
            )
        except Exception as err:  # every rank must leave the broadcast below
            known = isinstance(err, OSError | ValueError)
            message = str(err) if known else f"{type(err).__name__}: {err}"
            result = (OSError if isinstance(err, OSError) else ValueError, message)
    result = comm.bcast(result, root=0)
    if isinstance(result, tuple):
        raise result[0](result[1])
    return result


def _given_options(values: Mapping[str, object]) -> list[str]:
    """The keyword arguments of :func:`load_phase_image` in ``values`` (its locals) that differ
    from their defaults."""
    given = []
    for name, param in inspect.signature(load_phase_image).parameters.items():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        value, default = values[name], param.default
        if value is default:
            continue
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            if value == default:
                continue
        given.append(name)
    return given


def image_cell(
    comm: MPI.Comm,
    image: str | os.PathLike | np.ndarray | PhaseImage,
    *,
    subdivisions: int = 1,
    simplex: bool = False,
    check: Literal["periodic", "none"] = "periodic",
    **options,
) -> CellMesh:
    r"""Cell mesh of an image: one quadrilateral/hexahedron per (coarsened) pixel.

    ``image`` is a path (read by rank 0 with :func:`read_image`), an array (rank 0's is used)
    or a :class:`PhaseImage`, segmented by :func:`load_phase_image` with the keyword arguments
    ``options`` (``phases``, ``tol``, ``dataset``, ``pixel_size``, ``size``, ``axes``,
    ``coarsen``: those of :func:`read_image` and :func:`segment_image`).  A
    :class:`PhaseImage` is used as it is: it must be the same on every rank, as
    :func:`load_phase_image` returns it, and ``options`` with it are a ``ValueError``.
    ``subdivisions``/``simplex`` are those of :func:`~multiscale.mesh.label_grid_cell`.  With
    ``check="periodic"`` an image whose opposite faces do not match raises
    :class:`NonPeriodicImageError` (one line, naming the faces and the fraction of mismatched
    pixels); use ``check="none"`` for KUBC/SUBC.  The phase fractions of the mesh equal the pixel
    fractions :attr:`PhaseImage.fractions` (logged on rank 0).  Collective: errors are raised on
    every rank.
    """
    if check not in ("periodic", "none"):
        raise ValueError(f"check must be 'periodic' or 'none', got {check!r}")
    segmented = load_phase_image(comm, image, **options)
    if check == "periodic":
        segmented.check_periodic()  # the same data on every rank: the same error everywhere
    if comm.rank == 0:
        _log.info(
            "image %s: %s pixels, phases %s, pixel fractions %s",
            segmented.source or "(array)",
            "x".join(map(str, segmented.shape)),
            segmented.phases,
            {k: round(v, 6) for k, v in segmented.fractions.items()},
        )
    return label_grid_cell(
        comm,
        segmented.labels,
        segmented.size,
        segmented.phases,
        subdivisions=subdivisions,
        simplex=simplex,
    )
