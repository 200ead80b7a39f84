r"""Voigt and Mandel notation for symmetric second- and fourth-order tensors.

Conventions (fixed for the whole package)
-----------------------------------------
* Voigt order: 2D ``(11, 22, 12)``, 3D ``(11, 22, 33, 23, 13, 12)`` (0-based pairs in
  :func:`voigt_index`).
* Strains are stored with **engineering** shears, :math:`\gamma_{ij} = 2\varepsilon_{ij}`;
  stresses are stored as they are, so that

  .. math:: \{\sigma\} = [C]\,\{\varepsilon\}, \qquad
            W = \tfrac12 \{\varepsilon\}^T [C] \{\varepsilon\}
            = \tfrac12\,\varepsilon : \mathbb C : \varepsilon ,

  and the Voigt stiffness entries are the tensor entries themselves,
  :math:`C_{ab} = \mathbb C_{ijkl}` for :math:`a \leftrightarrow (ij)`,
  :math:`b \leftrightarrow (kl)`.
* Mandel (Kelvin) notation scales every shear by :math:`\sqrt2` in both stress and strain, so
  that :math:`[C]_M = W [C] W` with :math:`W = \mathrm{diag}(1, \dots, \sqrt2, \dots)` is an
  orthonormal representation: its eigenvalues are the Kelvin moduli of :math:`\mathbb C`.
* 2D means plane strain unless a function says otherwise (``plane="stress"``).

References
----------
Hill, R. (1952). The elastic behaviour of a crystalline aggregate. Proc. Phys. Soc. A 65, 349.
Milton, G. W. (2002). The Theory of Composites. Cambridge University Press, ch. 1-2.
Mehrabadi, M. M. & Cowin, S. C. (1990). Eigentensors of linear anisotropic elastic materials.
Q. J. Mech. Appl. Math. 43, 15-41 (Mandel/Kelvin notation).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "bulk_shear_from_stiffness",
    "energy_order",
    "is_spd",
    "isotropic_stiffness",
    "lame_from_young",
    "mandel_to_stiffness",
    "rotate_stiffness",
    "stiffness_to_mandel",
    "stiffness_to_tensor",
    "strain_to_voigt",
    "stress_to_voigt",
    "symmetry_defect",
    "tensor_to_stiffness",
    "voigt_index",
    "voigt_size",
    "voigt_to_strain",
    "voigt_to_stress",
    "young_from_lame",
]

_VOIGT_PAIRS: dict[int, tuple[tuple[int, int], ...]] = {
    2: ((0, 0), (1, 1), (0, 1)),
    3: ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)),
}
_DIM_OF_SIZE = {3: 2, 6: 3}


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or int(dim) not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    return int(dim)


def _finite_array(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return a


def _square_matrix(x: ArrayLike, name: str) -> np.ndarray:
    a = _finite_array(x, name)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {a.shape}")
    return a


def _voigt_stiffness(C: ArrayLike, name: str = "C") -> tuple[np.ndarray, int]:
    a = _square_matrix(C, name)
    if a.shape[0] not in _DIM_OF_SIZE:
        raise ValueError(f"{name} must be a 3x3 (2D) or 6x6 (3D) Voigt matrix, got {a.shape}")
    return a, _DIM_OF_SIZE[a.shape[0]]


def _positive_scalar(x: float, name: str) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    if v <= 0.0:
        raise ValueError(f"{name} must be positive, got {v}")
    return v


def _check_poisson(nu: float) -> float:
    v = float(nu)
    if not math.isfinite(v) or not -1.0 < v < 0.5:
        raise ValueError(f"Poisson ratio nu must lie in (-1, 0.5), got {nu!r}")
    return v


# --------------------------------------------------------------------------------------------
# index bookkeeping and vector/tensor conversion
# --------------------------------------------------------------------------------------------
def voigt_size(dim: int) -> int:
    """Number of Voigt components, ``dim (dim + 1) / 2``: 3 in 2D, 6 in 3D."""
    d = _check_dim(dim)
    return d * (d + 1) // 2


def voigt_index(dim: int) -> list[tuple[int, int]]:
    """Tensor index pairs ``(i, j)`` (0-based) of the Voigt components.

    Returns ``[(0, 0), (1, 1), (0, 1)]`` in 2D and
    ``[(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]`` in 3D, i.e. the orders
    (11, 22, 12) and (11, 22, 33, 23, 13, 12).
    """
    return list(_VOIGT_PAIRS[_check_dim(dim)])


def _symmetric_tensor(t: ArrayLike, name: str, rtol: float = 1e-10) -> tuple[np.ndarray, int]:
    a = _finite_array(t, name)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] not in (2, 3):
        raise ValueError(f"{name} must have shape (..., d, d) with d = 2 or 3, got {a.shape}")
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if np.max(np.abs(a - np.swapaxes(a, -1, -2)), initial=0.0) > rtol * max(scale, 1e-300):
        raise ValueError(
            f"{name} is not symmetric; pass the symmetric part (e.g. 0.5 * (G + G.T) of a "
            "displacement gradient G)"
        )
    return a, a.shape[-1]


def _voigt_vector(v: ArrayLike, name: str) -> tuple[np.ndarray, int]:
    a = _finite_array(v, name)
    if a.ndim < 1 or a.shape[-1] not in _DIM_OF_SIZE:
        raise ValueError(f"{name} must have a last axis of length 3 (2D) or 6 (3D), got {a.shape}")
    return a, _DIM_OF_SIZE[a.shape[-1]]


def strain_to_voigt(eps: ArrayLike) -> np.ndarray:
    r"""Symmetric strain tensor(s) ``(..., d, d)`` -> Voigt vector(s) ``(..., nv)``.

    Shears are engineering shears: :math:`\{\varepsilon\} = (\varepsilon_{11},
    \varepsilon_{22}, \gamma_{12})` with :math:`\gamma_{12} = 2\varepsilon_{12}` in 2D, and
    :math:`(\varepsilon_{11}, \varepsilon_{22}, \varepsilon_{33}, \gamma_{23}, \gamma_{13},
    \gamma_{12})` in 3D.

    Raises
    ------
    ValueError
        If the input is not (..., 2, 2) or (..., 3, 3), not symmetric, or not finite.
    """
    a, d = _symmetric_tensor(eps, "eps")
    return np.stack([(1.0 if i == j else 2.0) * a[..., i, j] for i, j in _VOIGT_PAIRS[d]], -1)


def stress_to_voigt(sig: ArrayLike) -> np.ndarray:
    r"""Symmetric stress tensor(s) ``(..., d, d)`` -> Voigt vector(s) ``(..., nv)``.

    No factor on shears: :math:`\{\sigma\} = (\sigma_{11}, \sigma_{22}, \sigma_{12})` in 2D and
    :math:`(\sigma_{11}, \sigma_{22}, \sigma_{33}, \sigma_{23}, \sigma_{13}, \sigma_{12})` in 3D.
    """
    a, d = _symmetric_tensor(sig, "sig")
    return np.stack([a[..., i, j] for i, j in _VOIGT_PAIRS[d]], -1)


def _from_voigt(a: np.ndarray, d: int, shear_factor: float) -> np.ndarray:
    out = np.zeros((*a.shape[:-1], d, d))
    for k, (i, j) in enumerate(_VOIGT_PAIRS[d]):
        val = a[..., k] if i == j else shear_factor * a[..., k]
        out[..., i, j] = val
        out[..., j, i] = val
    return out


def voigt_to_strain(v: ArrayLike) -> np.ndarray:
    r"""Voigt strain vector(s) ``(..., nv)`` -> symmetric tensor(s) ``(..., d, d)``.

    Inverse of :func:`strain_to_voigt`: :math:`\varepsilon_{ij} = \gamma_{ij}/2` for
    :math:`i \neq j`.  The dimension follows from the length of the last axis (3 -> 2D, 6 -> 3D).
    """
    a, d = _voigt_vector(v, "v")
    return _from_voigt(a, d, 0.5)


def voigt_to_stress(v: ArrayLike) -> np.ndarray:
    """Voigt stress vector(s) ``(..., nv)`` -> symmetric tensor(s) ``(..., d, d)``.

    Inverse of :func:`stress_to_voigt` (no factor on shears).
    """
    a, d = _voigt_vector(v, "v")
    return _from_voigt(a, d, 1.0)


def stiffness_to_tensor(C: ArrayLike) -> np.ndarray:
    r"""Voigt stiffness ``(nv, nv)`` -> fourth-order tensor ``(d, d, d, d)``.

    With engineering shear strains no factors appear:
    :math:`\mathbb C_{ijkl} = C_{ab}` for :math:`a \leftrightarrow (ij)`,
    :math:`b \leftrightarrow (kl)`, and the result has both minor symmetries.
    """
    a, d = _voigt_stiffness(C)
    out = np.zeros((d, d, d, d))
    pairs = _VOIGT_PAIRS[d]
    for p, (i, j) in enumerate(pairs):
        for q, (k, m) in enumerate(pairs):
            for ii, jj in {(i, j), (j, i)}:
                for kk, mm in {(k, m), (m, k)}:
                    out[ii, jj, kk, mm] = a[p, q]
    return out


def tensor_to_stiffness(T: ArrayLike) -> np.ndarray:
    r"""Fourth-order tensor ``(d, d, d, d)`` -> Voigt stiffness ``(nv, nv)``.

    Takes the minor-symmetric part,
    :math:`C_{ab} = \tfrac14(\mathbb C_{ijkl} + \mathbb C_{jikl} + \mathbb C_{ijlk} +
    \mathbb C_{jilk})`, so that ``tensor_to_stiffness(stiffness_to_tensor(C)) == C``.
    """
    t = _finite_array(T, "T")
    if t.ndim != 4 or len(set(t.shape)) != 1 or t.shape[0] not in (2, 3):
        raise ValueError(f"T must have shape (d, d, d, d) with d = 2 or 3, got {t.shape}")
    d = t.shape[0]
    t = 0.25 * (t + t.transpose(1, 0, 2, 3) + t.transpose(0, 1, 3, 2) + t.transpose(1, 0, 3, 2))
    pairs = _VOIGT_PAIRS[d]
    return np.array([[t[i, j, k, m] for (k, m) in pairs] for (i, j) in pairs])


def mandel_weights(d: int) -> np.ndarray:
    """The factors of the Mandel (Kelvin) components: 1 on the diagonal, sqrt(2) on the shears
    (Voigt order)."""
    return np.array([1.0 if i == j else math.sqrt(2.0) for i, j in _VOIGT_PAIRS[d]])


def stiffness_to_mandel(C: ArrayLike) -> np.ndarray:
    r"""Voigt stiffness -> Mandel (Kelvin) stiffness, :math:`[C]_M = W [C] W`.

    :math:`W = \mathrm{diag}(1, 1, \sqrt2)` in 2D and
    :math:`\mathrm{diag}(1, 1, 1, \sqrt2, \sqrt2, \sqrt2)` in 3D.  The Mandel matrix represents
    :math:`\mathbb C` in an orthonormal basis of symmetric tensors, so its eigenvalues are
    rotation invariant (the Kelvin moduli).
    """
    a, d = _voigt_stiffness(C)
    w = mandel_weights(d)
    return a * np.outer(w, w)


def mandel_to_stiffness(M: ArrayLike) -> np.ndarray:
    """Mandel (Kelvin) stiffness -> Voigt stiffness; inverse of :func:`stiffness_to_mandel`."""
    a, d = _voigt_stiffness(M, "M")
    w = mandel_weights(d)
    return a / np.outer(w, w)


def rotate_stiffness(C: ArrayLike, R: ArrayLike) -> np.ndarray:
    r"""Stiffness of the material rotated by the orthogonal matrix ``R``.

    :math:`\mathbb C'_{ijkl} = R_{ip} R_{jq} R_{kr} R_{ls}\, \mathbb C_{pqrs}`: a fibre along
    :math:`e_1` in ``C`` lies along :math:`R e_1` in the result.

    Raises
    ------
    ValueError
        If ``R`` is not an orthogonal ``d x d`` matrix matching ``C``.
    """
    _, d = _voigt_stiffness(C)
    r = _square_matrix(R, "R")
    if r.shape != (d, d):
        raise ValueError(f"R must be {d}x{d} for this stiffness, got {r.shape}")
    if not np.allclose(r @ r.T, np.eye(d), atol=1e-10):
        raise ValueError("R must be orthogonal (R R^T = I)")
    t = stiffness_to_tensor(C)
    return tensor_to_stiffness(np.einsum("ip,jq,kr,ls,pqrs->ijkl", r, r, r, r, t))


# --------------------------------------------------------------------------------------------
# isotropic elasticity
# --------------------------------------------------------------------------------------------
def lame_from_young(E: float, nu: float) -> tuple[float, float]:
    r"""Lamé constants from Young's modulus and Poisson's ratio.

    .. math:: \lambda = \frac{E\nu}{(1+\nu)(1-2\nu)}, \qquad \mu = \frac{E}{2(1+\nu)} .

    Raises
    ------
    ValueError
        If ``E <= 0`` or ``nu`` is not in the open interval (-1, 1/2) (3D stability).
    """
    e = _positive_scalar(E, "E")
    v = _check_poisson(nu)
    return e * v / ((1.0 + v) * (1.0 - 2.0 * v)), e / (2.0 * (1.0 + v))


def _check_lame(lmbda: float, mu: float) -> tuple[float, float]:
    lam = float(lmbda)
    m = _positive_scalar(mu, "mu")
    if not math.isfinite(lam):
        raise ValueError(f"lmbda must be finite, got {lmbda!r}")
    if lam + 2.0 * m / 3.0 <= 0.0:
        raise ValueError(
            f"bulk modulus lmbda + 2 mu / 3 = {lam + 2.0 * m / 3.0} must be positive (3D stability)"
        )
    return lam, m


def young_from_lame(lmbda: float, mu: float) -> tuple[float, float]:
    r"""Young's modulus and Poisson's ratio from the Lamé constants.

    .. math:: E = \frac{\mu(3\lambda + 2\mu)}{\lambda + \mu}, \qquad
              \nu = \frac{\lambda}{2(\lambda + \mu)} .

    Raises
    ------
    ValueError
        If ``mu <= 0`` or the bulk modulus :math:`\lambda + 2\mu/3 \le 0`.
    """
    lam, m = _check_lame(lmbda, mu)
    return m * (3.0 * lam + 2.0 * m) / (lam + m), lam / (2.0 * (lam + m))


def isotropic_stiffness(
    dim: int,
    *,
    E: float | None = None,
    nu: float | None = None,
    lmbda: float | None = None,
    mu: float | None = None,
    plane: str = "strain",
) -> np.ndarray:
    r"""Voigt stiffness of an isotropic material, from ``(E, nu)`` or from ``(lmbda, mu)``.

    3D: :math:`C_{11} = C_{22} = C_{33} = \lambda + 2\mu`, :math:`C_{12} = C_{13} = C_{23} =
    \lambda`, :math:`C_{44} = C_{55} = C_{66} = \mu`.

    2D, ``plane="strain"`` (default, :math:`\varepsilon_{33} = 0`):

    .. math:: [C] = \begin{pmatrix} \lambda+2\mu & \lambda & 0 \\ \lambda & \lambda+2\mu & 0 \\
              0 & 0 & \mu \end{pmatrix} ,

    2D, ``plane="stress"`` (:math:`\sigma_{33} = 0`): the same with :math:`\lambda` replaced by
    :math:`\lambda^* = 2\lambda\mu/(\lambda + 2\mu)`, i.e. :math:`C_{11} = E/(1-\nu^2)`,
    :math:`C_{12} = \nu E/(1-\nu^2)`, :math:`C_{33} = \mu`.

    Parameters
    ----------
    dim
        2 or 3.
    E, nu
        Young's modulus (> 0) and Poisson's ratio (in (-1, 1/2)).
    lmbda, mu
        Lamé constants (:math:`\mu > 0`, :math:`\lambda + 2\mu/3 > 0`).  Give exactly one pair.
    plane
        ``"strain"`` or ``"stress"``; only meaningful in 2D (must stay ``"strain"`` in 3D).
    """
    d = _check_dim(dim)
    if plane not in ("strain", "stress"):
        raise ValueError(f'plane must be "strain" or "stress", got {plane!r}')
    if d == 3 and plane != "strain":
        raise ValueError('plane="stress" is only meaningful for dim=2')
    young = E is not None or nu is not None
    lame = lmbda is not None or mu is not None
    if young == lame:
        raise ValueError("give exactly one of the pairs (E, nu) or (lmbda, mu)")
    if young:
        if E is None or nu is None:
            raise ValueError("both E and nu are needed")
        lam, m = lame_from_young(E, nu)
    else:
        if lmbda is None or mu is None:
            raise ValueError("both lmbda and mu are needed")
        lam, m = _check_lame(lmbda, mu)
    if d == 2 and plane == "stress":
        lam = 2.0 * lam * m / (lam + 2.0 * m)
    n = voigt_size(d)
    C = np.zeros((n, n))
    C[:d, :d] = lam
    C[:d, :d] += 2.0 * m * np.eye(d)
    C[d:, d:] = m * np.eye(n - d)
    return C


def bulk_shear_from_stiffness(C: ArrayLike, dim: int) -> tuple[float, float]:
    r"""Bulk and shear modulus of the isotropic projection of a Voigt stiffness.

    The isotropic projection (orthogonal in the Frobenius product of fourth-order tensors; it
    equals the orientation average of :math:`\mathbb C`, i.e. Hill's (1952) Voigt average) is
    :math:`\mathbb C_{iso} = d\,\kappa\,\mathbb J + 2\mu\,\mathbb K` with
    :math:`\mathbb J = \frac1d I\otimes I` and :math:`\mathbb K = \mathbb I^s - \mathbb J`:

    * 3D: :math:`\kappa = \frac19 \mathbb C_{iijj}`,
      :math:`\mu = \frac1{10}(\mathbb C_{ijij} - \frac13 \mathbb C_{iijj})`;
    * 2D: :math:`\kappa = \frac14 \mathbb C_{iijj}`,
      :math:`\mu = \frac14(\mathbb C_{ijij} - \frac12 \mathbb C_{iijj})`.

    In Voigt form :math:`\mathbb C_{iijj} = \sum_{a,b \le d} C_{ab}` and
    :math:`\mathbb C_{ijij} = \sum_{a \le d} C_{aa} + 2\sum_{a > d} C_{aa}`.

    **2D bulk modulus.** In 2D the returned :math:`\kappa` is the *two-dimensional* (area) bulk
    modulus, :math:`\tfrac12(\sigma_{11}+\sigma_{22}) = \kappa(\varepsilon_{11}+\varepsilon_{22})`.
    For a plane-strain stiffness this is :math:`\kappa_{2D} = \lambda + \mu =
    \kappa_{3D} + \mu/3` (the transverse bulk modulus :math:`k_T` of Hill/Hashin for fibre
    composites); for a plane-stress stiffness it is :math:`E/(2(1-\nu))`.  This is the bulk
    modulus that the 2D bounds of :mod:`multiscale.bounds` use.

    Returns
    -------
    (kappa, mu)
    """
    d = _check_dim(dim)
    a, dc = _voigt_stiffness(C)
    if dc != d:
        raise ValueError(f"C is a {dc}D Voigt matrix, but dim={d}")
    iijj = float(np.sum(a[:d, :d]))
    ijij = float(np.trace(a[:d, :d]) + 2.0 * np.trace(a[d:, d:]))
    if d == 3:
        return iijj / 9.0, (ijij - iijj / 3.0) / 10.0
    return iijj / 4.0, (ijij - iijj / 2.0) / 4.0


# --------------------------------------------------------------------------------------------
# matrix checks
# --------------------------------------------------------------------------------------------
def symmetry_defect(C: ArrayLike) -> float:
    r"""Relative asymmetry :math:`\|C - C^T\|_F / \|C\|_F` (0 for the zero matrix)."""
    a = _square_matrix(C, "C")
    norm = float(np.linalg.norm(a))
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(a - a.T)) / norm


def is_spd(C: ArrayLike, tol: float = 1e-10) -> bool:
    r"""Whether ``C`` is symmetric positive definite, up to a relative tolerance.

    True iff :func:`symmetry_defect` :math:`\le` ``tol`` and the smallest eigenvalue of
    :math:`\tfrac12(C + C^T)` exceeds ``tol`` times its spectral radius.  (Positive
    definiteness of a Voigt stiffness with engineering strains is equivalent to that of the
    elasticity tensor on symmetric strains.)
    """
    a = _square_matrix(C, "C")
    if tol < 0 or not math.isfinite(tol):
        raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
    if symmetry_defect(a) > tol:
        return False
    w = np.linalg.eigvalsh(0.5 * (a + a.T))
    return bool(w[-1] > 0.0 and w[0] > tol * float(np.max(np.abs(w))))


def energy_order(A: ArrayLike, B: ArrayLike) -> float:
    r"""Smallest eigenvalue of :math:`\tfrac12((B - A) + (B - A)^T)`.

    :math:`A \preceq B` in the energy (Loewner) sense, i.e.
    :math:`x^T A x \le x^T B x` for all :math:`x`, iff the returned value is :math:`\ge 0`
    (in floating point: :math:`\ge -\mathrm{tol}`).  Scalars are treated as 1x1 matrices.  The
    sign does not depend on whether Voigt or Mandel matrices are compared (Sylvester's law of
    inertia); the magnitude does, so use :func:`stiffness_to_mandel` first for a
    rotation-invariant value.
    """
    a = _finite_array(A, "A")
    b = _finite_array(B, "B")
    a = a.reshape(1, 1) if a.ndim == 0 else a
    b = b.reshape(1, 1) if b.ndim == 0 else b
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise ValueError(f"A and B must be square matrices of one shape, got {a.shape}, {b.shape}")
    d = b - a
    return float(np.linalg.eigvalsh(0.5 * (d + d.T))[0])
