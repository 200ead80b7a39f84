r"""Closed-form bounds and exact results for effective moduli: independent references.

Everything here is a formula, not a solver, so that the finite-element homogenization of the
rest of the package can be checked against it.  Notation: :math:`f_i` volume fractions
(:math:`\sum_i f_i = 1`), :math:`\langle x \rangle = \sum_i f_i x_i`, :math:`d` the dimension.

* :func:`voigt_bound`, :func:`reuss_bound` - arithmetic / harmonic means (Voigt 1889,
  Reuss 1929; bounds by Hill 1952).
* :func:`hashin_shtrikman_conductivity`, :func:`hashin_shtrikman_elastic` - Hashin-Shtrikman
  bounds for isotropic multiphase composites in 2D and 3D (Hashin & Shtrikman 1962, 1963;
  Hashin 1965; Walpole 1966; Milton 2002, ch. 23).
* :func:`laminate_conductivity`, :func:`laminate_tensor`, :func:`laminate_stiffness` - exact
  effective tensors of simple (rank-1) laminates (Backus 1962; Milton 2002, ch. 9).
* :func:`dykhne_checkerboard` - exact 2D checkerboard conductivity (Dykhne 1971; Keller 1964).
* :func:`composite_cylinder_bulk_2d`, :func:`composite_sphere_bulk_3d` - Hashin's coated
  cylinder / sphere assemblages (Hashin 1962; Hashin & Rosen 1964).

2D elasticity is plane strain and uses the two-dimensional bulk modulus
:math:`\kappa_{2D} = \lambda + \mu` (:func:`multiscale.tensors.bulk_shear_from_stiffness`);
the 2D results are the transverse moduli :math:`k_T`, :math:`\mu_T` of a composite of
parallel fibres (Hill 1964; Hashin 1965).

References
----------
Backus, G. E. (1962). Long-wave elastic anisotropy produced by horizontal layering.
    J. Geophys. Res. 67, 4427-4440.
Dykhne, A. M. (1971). Conductivity of a two-dimensional two-phase system. Sov. Phys. JETP 32,
    63-65.  Keller, J. B. (1964). A theorem on the conductivity of a composite medium.
    J. Math. Phys. 5, 548-549.
Hashin, Z. (1962). The elastic moduli of heterogeneous materials. J. Appl. Mech. 29, 143-150.
Hashin, Z. (1965). On elastic behaviour of fibre reinforced materials of arbitrary transverse
    phase geometry. J. Mech. Phys. Solids 13, 119-134.
Hashin, Z. & Rosen, B. W. (1964). The elastic moduli of fiber-reinforced materials.
    J. Appl. Mech. 31, 223-232.
Hashin, Z. & Shtrikman, S. (1962). A variational approach to the theory of the effective
    magnetic permeability of multiphase materials. J. Appl. Phys. 33, 3125-3131.
Hashin, Z. & Shtrikman, S. (1963). A variational approach to the theory of the elastic
    behaviour of multiphase materials. J. Mech. Phys. Solids 11, 127-140.
Hill, R. (1952). The elastic behaviour of a crystalline aggregate. Proc. Phys. Soc. A 65,
    349-354.  Hill, R. (1963). Elastic properties of reinforced solids: some theoretical
    principles. J. Mech. Phys. Solids 11, 357-372.
Milton, G. W. (2002). The Theory of Composites. Cambridge University Press (ch. 9 laminates,
    ch. 23 Hashin-Shtrikman bounds).
Torquato, S. (2002). Random Heterogeneous Materials. Springer (ch. 21, d-dimensional HS bounds).
Walpole, L. J. (1966). On bounds for the overall elastic moduli of inhomogeneous systems - I.
    J. Mech. Phys. Solids 14, 151-162.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from multiscale.tensors import is_spd, voigt_index, voigt_size

__all__ = [
    "composite_cylinder_bulk_2d",
    "composite_sphere_bulk_3d",
    "dykhne_checkerboard",
    "hashin_shtrikman_conductivity",
    "hashin_shtrikman_elastic",
    "laminate_conductivity",
    "laminate_stiffness",
    "laminate_tensor",
    "reuss_bound",
    "voigt_bound",
]

#: Tolerance on :math:`|\sum_i f_i - 1|`.
FRACTION_TOL = 1e-8


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _fractions(fractions: ArrayLike, n: int | None = None) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"fractions must be a non-empty 1-D sequence, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("fractions contain NaN or infinite entries")
    if np.any(f < 0.0):
        raise ValueError(f"fractions must be non-negative, got {f.tolist()}")
    if abs(float(f.sum()) - 1.0) > FRACTION_TOL:
        raise ValueError(f"fractions must sum to 1, they sum to {float(f.sum())!r}")
    if n is not None and f.size != n:
        raise ValueError(f"{f.size} fractions for {n} phases")
    return f


def _moduli(values: ArrayLike, name: str, n: int) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of scalars, got shape {x.shape}")
    if x.size != n:
        raise ValueError(f"{x.size} values of {name} for {n} volume fractions")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    if np.any(x < 0.0):
        raise ValueError(f"{name} must be non-negative (no negative moduli), got {x.tolist()}")
    return x


def _spd_stack(values: ArrayLike, name: str, n: int, size: int | None = None) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"{name} must be a sequence of square matrices, got shape {x.shape}")
    if x.shape[0] != n:
        raise ValueError(f"{x.shape[0]} matrices in {name} for {n} volume fractions")
    if size is not None and x.shape[1] != size:
        raise ValueError(f"the matrices in {name} must be {size}x{size}, got {x.shape[1:]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    for i, m in enumerate(x):
        if not is_spd(m, 1e-10):
            raise ValueError(f"{name}[{i}] is not symmetric positive definite")
    return x


def _dim(dim: int, allowed: tuple[int, ...]) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or int(dim) not in allowed:
        raise ValueError(f"dim must be one of {allowed}, got {dim!r}")
    return int(dim)


def _unit_normal(normal: int | ArrayLike, dim: int) -> np.ndarray:
    if isinstance(normal, int | np.integer) and not isinstance(normal, bool):
        if not 0 <= int(normal) < dim:
            raise ValueError(f"normal axis must be in 0..{dim - 1}, got {normal}")
        return np.eye(dim)[int(normal)]
    n = np.asarray(normal, dtype=float)
    if n.shape != (dim,):
        raise ValueError(
            f"normal must be an axis index or a vector of length {dim}, got {normal!r}"
        )
    norm = float(np.linalg.norm(n))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError(f"normal must be a finite non-zero vector, got {normal!r}")
    return n / norm


def _shifted_harmonic(f: np.ndarray, x: np.ndarray, c: float) -> float:
    r""":math:`\left[\sum_i f_i/(x_i + c)\right]^{-1} - c` over the phases present (f_i > 0).

    The limit :math:`c = 0` with a phase :math:`x_i = 0` (a void) gives 0.
    """
    present = f > 0.0
    f, x = f[present], x[present]
    if c == 0.0 and np.any(x == 0.0):
        return 0.0
    return float(1.0 / np.sum(f / (x + c)) - c)


# --------------------------------------------------------------------------------------------
# Voigt / Reuss
# --------------------------------------------------------------------------------------------
def _values(fractions: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray, bool]:
    v = np.asarray(values, dtype=float)
    f = _fractions(fractions, v.shape[0] if v.ndim >= 1 else None)
    if v.ndim == 1:
        return f, _moduli(v, "values", f.size), False
    return f, _spd_stack(v, "values", f.size), True


def voigt_bound(fractions: ArrayLike, values: ArrayLike) -> float | np.ndarray:
    r"""Voigt (arithmetic-mean) upper bound :math:`\langle C\rangle = \sum_i f_i C_i`.

    ``values`` is a sequence of non-negative scalars (conductivities, moduli) or of symmetric
    positive definite matrices (conductivity tensors, Voigt stiffnesses).  By the principle of
    minimum energy with a uniform trial field it bounds the effective tensor from above in the
    energy sense, :math:`C^* \preceq C_V` (Hill 1952).
    """
    f, v, _ = _values(fractions, values)
    out = np.tensordot(f, v, axes=1)
    return float(out) if out.ndim == 0 else out


def reuss_bound(fractions: ArrayLike, values: ArrayLike) -> float | np.ndarray:
    r"""Reuss (harmonic-mean) lower bound :math:`\langle C^{-1}\rangle^{-1}`.

    Scalars: :math:`(\sum_i f_i / c_i)^{-1}` (0 if a phase present has :math:`c_i = 0`).
    Matrices: :math:`C_R = (\sum_i f_i C_i^{-1})^{-1}`.  By the principle of minimum
    complementary energy with a uniform trial flux/stress, :math:`C_R \preceq C^*` (Hill 1952).
    """
    f, v, matrices = _values(fractions, values)
    if not matrices:
        return _shifted_harmonic(f, v, 0.0)
    present = f > 0.0
    s = sum(fi * np.linalg.inv(ci) for fi, ci in zip(f[present], v[present], strict=True))
    out = np.linalg.inv(s)
    return 0.5 * (out + out.T)


# --------------------------------------------------------------------------------------------
# Hashin-Shtrikman
# --------------------------------------------------------------------------------------------
def hashin_shtrikman_conductivity(
    fractions: ArrayLike, k: ArrayLike, dim: int
) -> tuple[float, float]:
    r"""Hashin-Shtrikman bounds on the conductivity of an isotropic multiphase composite.

    With a reference (comparison) medium of conductivity :math:`k_0`,

    .. math:: k_{HS}(k_0) = \left[\sum_i \frac{f_i}{k_i + (d-1)k_0}\right]^{-1} - (d-1)k_0 ,

    the bounds are :math:`k_{HS}(k_{\min}) \le k^* \le k_{HS}(k_{\max})` (Hashin & Shtrikman
    1962 in 3D; Milton 2002, sec. 23.2 in d dimensions), :math:`k_{\min}, k_{\max}` over the
    phases present (:math:`f_i > 0`).  For two phases with :math:`k_1 < k_2` this is the
    familiar :math:`k^{\mp} = k_{1,2} + f_{2,1}/[1/(k_{2,1} - k_{1,2}) + f_{1,2}/(d\,k_{1,2})]`.
    The lower bound is attained by the coated-cylinder/-sphere assemblage with the most
    insulating phase as coating, the upper one with the most conducting (for two phases).
    ``dim = 1`` is accepted (both bounds are then the harmonic mean, the exact 1D value).

    Parameters
    ----------
    fractions
        Volume fractions, non-negative, summing to 1.
    k
        Isotropic phase conductivities, non-negative (0 = insulator).
    dim
        Space dimension :math:`d` (1, 2 or 3).

    Returns
    -------
    (lower, upper)
    """
    d = _dim(dim, (1, 2, 3))
    kk = np.asarray(k, dtype=float)
    f = _fractions(fractions, kk.size if kk.ndim == 1 else None)
    kk = _moduli(kk, "k", f.size)
    present = kk[f > 0.0]
    lower = _shifted_harmonic(f, kk, (d - 1) * float(present.min()))
    upper = _shifted_harmonic(f, kk, (d - 1) * float(present.max()))
    return lower, upper


def _bulk_shift(mu0: float, d: int) -> float:
    # 2(d-1)/d * mu0: 4 mu0 / 3 in 3D, mu0 in 2D
    return 4.0 * mu0 / 3.0 if d == 3 else mu0


def _shear_shift(kappa0: float, mu0: float, d: int) -> float:
    # mu0 [d kappa0 / 2 + (d+1)(d-2) mu0 / d] / (kappa0 + 2 mu0)
    if mu0 == 0.0:
        return 0.0
    if d == 3:
        return mu0 / 6.0 * (9.0 * kappa0 + 8.0 * mu0) / (kappa0 + 2.0 * mu0)
    return mu0 * kappa0 / (kappa0 + 2.0 * mu0)


def hashin_shtrikman_elastic(
    fractions: ArrayLike, kappa: ArrayLike, mu: ArrayLike, dim: int
) -> dict[str, float]:
    r"""Hashin-Shtrikman(-Walpole) bounds on the moduli of an isotropic multiphase composite.

    For a reference medium :math:`(\kappa_0, \mu_0)` define

    .. math::

        \kappa_{HS}(\mu_0) &= \left[\sum_i \frac{f_i}{\kappa_i + \kappa_0^\star}\right]^{-1}
            - \kappa_0^\star, \qquad
        \mu_{HS}(\kappa_0, \mu_0) = \left[\sum_i \frac{f_i}{\mu_i + \zeta_0}\right]^{-1}
            - \zeta_0 ,

    with, in 3D (Hashin & Shtrikman 1963),

    .. math:: \kappa_0^\star = \tfrac43 \mu_0, \qquad
              \zeta_0 = \frac{\mu_0}{6}\,\frac{9\kappa_0 + 8\mu_0}{\kappa_0 + 2\mu_0} ,

    and in 2D (plane strain, :math:`\kappa` the 2D bulk modulus :math:`\lambda + \mu`;
    Hashin 1965 for the transverse moduli of fibre composites; Milton 2002, sec. 23.5)

    .. math:: \kappa_0^\star = \mu_0, \qquad
              \zeta_0 = \frac{\mu_0\,\kappa_0}{\kappa_0 + 2\mu_0} .

    Both are the :math:`d = 3, 2` cases of :math:`\kappa_0^\star = 2(d-1)\mu_0/d`,
    :math:`\zeta_0 = \mu_0[d\kappa_0/2 + (d+1)(d-2)\mu_0/d]/(\kappa_0 + 2\mu_0)` (Torquato
    2002, ch. 21).  :math:`\zeta_0` is the "polarization" constant of a circular/spherical
    inclusion in the reference medium: with the deviatoric Eshelby factor :math:`\beta`,
    :math:`\zeta_0 = \mu_0(1-\beta)/\beta`; for a circular cylinder in plane strain
    :math:`\beta = (3-4\nu_0)/(4(1-\nu_0))`, so :math:`\zeta_0 = \mu_0/(3-4\nu_0) =
    \mu_0\kappa_0/(\kappa_0+2\mu_0)`; for a sphere :math:`\beta = 2(4-5\nu_0)/(15(1-\nu_0))`.

    The bounds are

    .. math:: \kappa_{HS}(\mu_{\min}) \le \kappa^* \le \kappa_{HS}(\mu_{\max}), \qquad
              \mu_{HS}(\kappa_{\min}, \mu_{\min}) \le \mu^* \le
              \mu_{HS}(\kappa_{\max}, \mu_{\max}) ,

    the extremes taken over the phases present.  For well-ordered phases (the stiffest in bulk
    is also the stiffest in shear) these are the original HS bounds; Walpole (1966) showed that
    taking the minima and maxima separately, as here, gives valid bounds for any phases.  For
    two well-ordered phases (1 softer) they read

    .. math:: \kappa^{-} = \kappa_1 + \frac{f_2}{\frac{1}{\kappa_2-\kappa_1}
                  + \frac{f_1}{\kappa_1 + \kappa_1^\star}}, \qquad
              \mu^{-} = \mu_1 + \frac{f_2}{\frac{1}{\mu_2-\mu_1} + \frac{f_1}{\mu_1 + \zeta_1}},

    i.e. :math:`f_1/(\mu_1+\zeta_1) = 6 f_1(\kappa_1+2\mu_1)/(5\mu_1(3\kappa_1+4\mu_1))` in 3D
    and :math:`f_1(\kappa_1+2\mu_1)/(2\mu_1(\kappa_1+\mu_1))` in 2D (Hashin 1965, eq. for
    :math:`G_{23}`).  The bulk bounds are attained by the composite sphere (3D) / cylinder (2D)
    assemblages (:func:`composite_sphere_bulk_3d`, :func:`composite_cylinder_bulk_2d`); both
    bounds of a well-ordered pair are attained simultaneously by sequential laminates (Francfort
    & Murat 1986; Milton 2002, sec. 23.9).

    Parameters
    ----------
    fractions
        Volume fractions, non-negative, summing to 1.
    kappa
        Phase bulk moduli (3D bulk moduli for ``dim=3``; 2D plane-strain bulk moduli
        :math:`\lambda+\mu = \kappa_{3D} + \mu/3` for ``dim=2``), non-negative.
    mu
        Phase shear moduli, non-negative (0 = fluid or void).
    dim
        2 or 3.

    Returns
    -------
    dict
        ``{"bulk_lower", "bulk_upper", "shear_lower", "shear_upper"}`` (floats): the bounds
        on :math:`\kappa^*` (2D bulk modulus in 2D) and on :math:`\mu^*`.
    """
    d = _dim(dim, (2, 3))
    ka = np.asarray(kappa, dtype=float)
    f = _fractions(fractions, ka.size if ka.ndim == 1 else None)
    ka = _moduli(ka, "kappa", f.size)
    mm = _moduli(mu, "mu", f.size)
    present = f > 0.0
    kmin, kmax = float(ka[present].min()), float(ka[present].max())
    mmin, mmax = float(mm[present].min()), float(mm[present].max())
    return {
        "bulk_lower": _shifted_harmonic(f, ka, _bulk_shift(mmin, d)),
        "bulk_upper": _shifted_harmonic(f, ka, _bulk_shift(mmax, d)),
        "shear_lower": _shifted_harmonic(f, mm, _shear_shift(kmin, mmin, d)),
        "shear_upper": _shifted_harmonic(f, mm, _shear_shift(kmax, mmax, d)),
    }


# --------------------------------------------------------------------------------------------
# laminates
# --------------------------------------------------------------------------------------------
def laminate_conductivity(fractions: ArrayLike, k: ArrayLike) -> tuple[float, float]:
    r"""Effective conductivities of a laminate of isotropic layers.

    Across the layers (series): :math:`k_\perp = \langle 1/k \rangle^{-1}`; along the layers
    (parallel): :math:`k_\parallel = \langle k \rangle`.  These are also the Reuss and Voigt
    bounds, which the laminate attains (Milton 2002, sec. 9.1).

    Returns
    -------
    (k_normal, k_parallel)
    """
    kk = np.asarray(k, dtype=float)
    f = _fractions(fractions, kk.size if kk.ndim == 1 else None)
    kk = _moduli(kk, "k", f.size)
    return _shifted_harmonic(f, kk, 0.0), float(np.dot(f, kk))


def _laminate(f: np.ndarray, mats: np.ndarray, N: np.ndarray) -> np.ndarray:
    r"""Exact laminate average for the jump operator ``N`` (see :func:`laminate_stiffness`).

    :math:`C^* = \langle C\rangle - \langle C N^T K^{-1} N C\rangle
    + \langle C N^T K^{-1}\rangle \langle K^{-1}\rangle^{-1} \langle K^{-1} N C\rangle`,
    :math:`K = N C N^T`.
    """
    present = f > 0.0
    f, mats = f[present], mats[present]
    m, r = mats.shape[1], N.shape[0]
    a = np.zeros((m, m))
    b = np.zeros((m, m))
    p = np.zeros((m, r))
    q = np.zeros((r, r))
    for fi, c in zip(f, mats, strict=True):
        cn = c @ N.T  # (m, r)
        kinv = np.linalg.inv(N @ cn)  # (r, r)
        a += fi * c
        b += fi * cn @ kinv @ cn.T
        p += fi * cn @ kinv
        q += fi * kinv
    out = a - b + p @ np.linalg.solve(q, p.T)
    return 0.5 * (out + out.T)


def laminate_tensor(
    fractions: ArrayLike, tensors: ArrayLike, normal: int | ArrayLike
) -> np.ndarray:
    r"""Exact effective conductivity tensor of a laminate of anisotropic layers.

    Layers normal to :math:`n` with symmetric positive definite conductivities :math:`K_i`.
    The field :math:`e = \nabla u` may jump only along :math:`n`, :math:`e_i = \bar e + a_i n`
    with :math:`\langle a\rangle = 0`, and the normal flux :math:`t = n\cdot K_i e_i` is the
    same in every layer.  Solving :math:`a_i = (t - n\cdot K_i\bar e)/\kappa_i`,
    :math:`\kappa_i = n\cdot K_i n`, with :math:`\langle a\rangle = 0` and averaging the flux
    :math:`\langle K_i e_i\rangle` gives (Backus 1962; Milton 2002, sec. 9.2)

    .. math::

        K^* = \langle K\rangle - \left\langle \frac{K n\, n^T K}{\kappa}\right\rangle
            + \frac{\langle K n/\kappa\rangle\,\langle n^T K/\kappa\rangle}
                   {\langle 1/\kappa\rangle} .

    For isotropic layers :math:`K^* = \langle k\rangle (I - nn^T) + \langle 1/k\rangle^{-1}
    nn^T`, see :func:`laminate_conductivity`.

    Parameters
    ----------
    fractions
        Layer volume fractions.
    tensors
        ``(n_phases, d, d)`` symmetric positive definite conductivity tensors.
    normal
        Layer normal: an axis index ``0 .. d-1`` or a non-zero vector (normalised here).
    """
    t = np.asarray(tensors, dtype=float)
    f = _fractions(fractions, t.shape[0] if t.ndim >= 1 else None)
    t = _spd_stack(t, "tensors", f.size)
    n = _unit_normal(normal, t.shape[1])
    return _laminate(f, t, n.reshape(1, -1))


def _traction_operator(n: np.ndarray, dim: int) -> np.ndarray:
    r"""Matrix ``N`` (d x nv) with :math:`\sigma n = N\{\sigma\}` and
    :math:`\{\mathrm{sym}(a\otimes n)\} = N^T a` (engineering shears)."""
    N = np.zeros((dim, voigt_size(dim)))
    for col, (p, q) in enumerate(voigt_index(dim)):
        if p == q:
            N[p, col] = n[p]
        else:
            N[p, col] = n[q]
            N[q, col] = n[p]
    return N


def laminate_stiffness(
    fractions: ArrayLike, C_list: ArrayLike, normal_axis: int | ArrayLike, dim: int
) -> np.ndarray:
    r"""Exact effective Voigt stiffness of a laminate of anisotropic elastic layers.

    **Continuity.** In a laminate with normal :math:`n` the strain may jump only by a
    compatible rank-one term, :math:`\varepsilon_i = \bar\varepsilon +
    \mathrm{sym}(a_i \otimes n)` with :math:`\langle a\rangle = 0` (so the in-plane strains,
    the components tangential to the layers, are continuous), and the traction
    :math:`t = \sigma_i n` is continuous (equilibrium).  In Voigt notation with engineering
    shears both are written with one :math:`d \times n_v` operator :math:`N`:
    :math:`\{\sigma n\} = N\{\sigma\}` and :math:`\{\mathrm{sym}(a\otimes n)\} = N^T a`.  For
    :math:`n = e_k` the rows of :math:`N` pick the traction components
    :math:`(\sigma_{1k}, \ldots, \sigma_{dk})` and :math:`N^T a` fills exactly the strain
    components that may jump, :math:`\varepsilon_{kk}` and :math:`\gamma_{jk}`; the others are
    the continuous in-plane strains.

    **Elimination.** With the acoustic tensor :math:`K_i = N C_i N^T` (:math:`d \times d`),
    traction continuity :math:`t = N C_i(\bar\varepsilon + N^T a_i)` gives
    :math:`a_i = K_i^{-1}(t - N C_i \bar\varepsilon)`; :math:`\langle a\rangle = 0` fixes
    :math:`t = \langle K^{-1}\rangle^{-1}\langle K^{-1} N C\rangle\bar\varepsilon`, and
    :math:`\bar\sigma = \langle C_i \varepsilon_i\rangle` yields

    .. math::

        C^* = \langle C\rangle - \langle C N^T K^{-1} N C\rangle
              + \langle C N^T K^{-1}\rangle\,\langle K^{-1}\rangle^{-1}\,
                \langle K^{-1} N C\rangle .

    This is the exact result of Backus (1962) for arbitrary anisotropy, equivalent to the
    classical partial inversion (average the map from the continuous pair (traction, in-plane
    strain) to the discontinuous pair (jumping strains, in-plane stresses), then invert back);
    Milton (2002), sec. 9.3.  For isotropic layers and :math:`n = e_k`:
    :math:`C^*_{kk,kk} = \langle 1/(\lambda+2\mu)\rangle^{-1}`, the out-of-plane shears
    :math:`\langle 1/\mu\rangle^{-1}`, the in-plane shear :math:`\langle\mu\rangle`.

    Parameters
    ----------
    fractions
        Layer volume fractions.
    C_list
        ``(n_phases, nv, nv)`` symmetric positive definite Voigt stiffnesses (nv = 3 in 2D,
        6 in 3D; 2D means whatever 2D law the matrices describe, normally plane strain).
    normal_axis
        Layer normal: an axis index ``0 .. dim-1`` or any non-zero vector (normalised here).
    dim
        2 or 3.

    Returns
    -------
    numpy.ndarray
        The effective ``(nv, nv)`` Voigt stiffness.
    """
    d = _dim(dim, (2, 3))
    c = np.asarray(C_list, dtype=float)
    f = _fractions(fractions, c.shape[0] if c.ndim >= 1 else None)
    c = _spd_stack(c, "C_list", f.size, voigt_size(d))
    n = _unit_normal(normal_axis, d)
    return _laminate(f, c, _traction_operator(n, d))


# --------------------------------------------------------------------------------------------
# exact special microstructures
# --------------------------------------------------------------------------------------------
def dykhne_checkerboard(k1: float, k2: float) -> float:
    r"""Effective conductivity :math:`\sqrt{k_1 k_2}` of a 2D two-phase checkerboard.

    Exact for any 2D isotropic two-phase composite that is statistically invariant under
    interchange of the phases at equal fractions (Dykhne 1971; Keller 1964 duality
    :math:`k^*(k_1,k_2)\,k^*(k_2,k_1) = k_1 k_2`), e.g. the periodic square checkerboard.
    """
    a, b = float(k1), float(k2)
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0.0 or b <= 0.0:
        raise ValueError(f"k1 and k2 must be positive and finite, got {k1!r}, {k2!r}")
    return math.sqrt(a * b)


def _assemblage_args(
    f: float, kappa_i: float, kappa_m: float, mu_m: float
) -> tuple[float, float, float, float]:
    vals = [float(f), float(kappa_i), float(kappa_m), float(mu_m)]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"arguments must be finite, got {vals}")
    if not 0.0 <= vals[0] <= 1.0:
        raise ValueError(f"f_inclusion must lie in [0, 1], got {f!r}")
    if vals[1] < 0.0:
        raise ValueError(f"kappa_inclusion must be non-negative, got {kappa_i!r}")
    if vals[2] <= 0.0 or vals[3] <= 0.0:
        raise ValueError(f"kappa_matrix and mu_matrix must be positive, got {kappa_m!r}, {mu_m!r}")
    return vals[0], vals[1], vals[2], vals[3]


def composite_cylinder_bulk_2d(
    f_inclusion: float, kappa_inclusion: float, kappa_matrix: float, mu_matrix: float
) -> float:
    r"""Plane-strain bulk modulus of Hashin's composite-cylinder assemblage.

    Cylinders (fibres) of 2D bulk modulus :math:`\kappa_i` coated by matrix
    :math:`(\kappa_m, \mu_m)`, all with core fraction :math:`f`.  The Lamé solution of one
    coated cylinder under radial displacement :math:`u_r(b) = \bar\varepsilon b` (core
    :math:`u_r = A r`, coating :math:`u_r = B r + C/r`; :math:`\sigma_{rr} = 2\kappa A` and
    :math:`2\kappa_m B - 2\mu_m C/r^2`) is uniform-strain compatible, so the assemblage has
    (Hashin & Rosen 1964; Hashin 1965)

    .. math:: k_T = \kappa_m + \frac{f(\kappa_i-\kappa_m)(\kappa_m+\mu_m)}
                                    {\kappa_m + \mu_m + (1-f)(\kappa_i-\kappa_m)} ,

    which equals the 2D Hashin-Shtrikman bulk bound with reference shear modulus
    :math:`\mu_m` (the upper bound if the matrix is the stiffest in shear, the lower one if it
    is the softest).  Bulk moduli are 2D ones, :math:`\kappa = \lambda + \mu`; the fibre shear
    modulus does not enter.
    """
    f, ki, km, mm = _assemblage_args(f_inclusion, kappa_inclusion, kappa_matrix, mu_matrix)
    dk = ki - km
    return km + f * dk * (km + mm) / (km + mm + (1.0 - f) * dk)


def composite_sphere_bulk_3d(
    f_inclusion: float, kappa_inclusion: float, kappa_matrix: float, mu_matrix: float
) -> float:
    r"""Bulk modulus of Hashin's composite-sphere assemblage (Hashin 1962).

    Core :math:`u_r = A r`, coating :math:`u_r = B r + C/r^2` (:math:`\sigma_{rr} = 3\kappa_i A`
    and :math:`3\kappa_m B - 4\mu_m C/r^3`), outer radial displacement
    :math:`\bar\varepsilon b`; the result

    .. math:: \kappa^* = \kappa_m + \frac{f(\kappa_i-\kappa_m)(3\kappa_m+4\mu_m)}
                                        {3\kappa_m + 4\mu_m + 3(1-f)(\kappa_i-\kappa_m)}

    equals the 3D Hashin-Shtrikman bulk bound with reference shear modulus :math:`\mu_m`.  The
    inclusion shear modulus does not enter.
    """
    f, ki, km, mm = _assemblage_args(f_inclusion, kappa_inclusion, kappa_matrix, mu_matrix)
    dk = ki - km
    return km + f * dk * (3.0 * km + 4.0 * mm) / (3.0 * km + 4.0 * mm + 3.0 * (1.0 - f) * dk)
