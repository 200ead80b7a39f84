r"""The Cauchy–Born rule: a hyperelastic law from a pair potential on a lattice.

Every bond :math:`R_b` of the reference lattice deforms affinely, :math:`r_b = F R_b` (plus the
difference :math:`p_\beta - p_\alpha` of the sub-lattice shifts for a lattice with a basis), so
the energy per unit reference volume is

.. math::
    W(F) = \frac{1}{2V_c}\sum_b \phi_b(|r_b|), \qquad
    P = \frac{\partial W}{\partial F} = \frac{1}{2V_c}\sum_b
        \frac{\phi_b'(r_b)}{r_b}\,r_b\otimes R_b,

.. math::
    \mathbb A_{iJkL} = \frac{\partial^2 W}{\partial F_{iJ}\partial F_{kL}}
      = \frac{1}{2V_c}\sum_b (K_b)_{ik}\,R_{bJ} R_{bL}, \qquad
    K_b = \phi_b''\,\hat r_b\otimes\hat r_b + \frac{\phi_b'}{r_b}(I - \hat r_b\otimes\hat r_b),

with :math:`V_c` the volume of the primitive cell (:math:`= \Omega_0` for a Bravais lattice),
the sum over all bonds of every basis atom of a cell (both :math:`\pm R_b`) and
:math:`\phi_b` the potential of the bond's shell.  :class:`CauchyBorn` is a material law of the
package (``kind = "deformation"``): :meth:`~CauchyBorn.flux` is :math:`P` obtained by UFL
differentiation of :meth:`~CauchyBorn.energy`, so it runs wherever
:class:`~multiscale.physics.NeoHookean` does (RVE, DNS, FE²); in 2D the deformation is plane
and the lattice two-dimensional.  The NumPy methods give :math:`W`, :math:`P` and
:math:`\mathbb A` in closed form for stability analysis (:mod:`.stability`).

*Inner relaxation.*  For a lattice with a basis the shifts :math:`p_\alpha` (:math:`p_0 = 0`)
minimize :math:`W(F, p)`; :meth:`CauchyBorn.relax_shifts` finds them (NumPy, exact Hessian
trust region) and :meth:`CauchyBorn.relaxed_tangent` condenses them out,
:math:`\mathbb A^{rel} = \mathbb A_{FF} - \mathbb A_{Fp}\mathbb A_{pp}^{-1}\mathbb A_{pF}`.  The
UFL path uses the fixed shifts given at construction (zero by default): exact for lattices whose
every atom is a centre of inversion (the inner forces vanish for all :math:`F`), an upper bound
of the relaxed energy otherwise.

*Relaxed lattice constant.*  :func:`relaxed_lattice_constant` minimizes the energy per cell
:math:`E(a) = \frac12\sum_b\phi_b(a|\rho_b|)` of the undeformed lattice over :math:`a` (the bond
set :math:`\rho_b` fixed, in units of :math:`a`): a scan brackets the minimum and Brent's method
solves :math:`E'(a) = 0`, so the reference is stress free, :math:`P(I) = 0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import ufl
from scipy import optimize

from multiscale.physics.base import Kind

from .lattice import Bonds, Lattice
from .potentials import PairPotential

__all__ = ["CauchyBorn", "relaxed_lattice_constant"]


def _potentials(potential: PairPotential | Sequence[PairPotential], nshells: int) -> tuple:
    pots = tuple(potential) if isinstance(potential, list | tuple) else (potential,)
    if len(pots) not in (1, nshells):
        raise ValueError(
            f"potential: give one pair potential or one per shell ({nshells}), got {len(pots)}"
        )
    for p in pots:
        if not isinstance(p, PairPotential):
            raise ValueError(f"potential: {p!r} is not a pair potential (phi, dphi, d2phi, r_eq)")
    return pots


def _groups(pots: tuple, shell: np.ndarray) -> list[tuple[PairPotential, np.ndarray]]:
    """(potential, bond indices) for each distinct potential of the shells."""
    if len(pots) == 1:
        return [(pots[0], np.arange(len(shell)))]
    return [(p, np.flatnonzero(shell == s)) for s, p in enumerate(pots)]


def _evaluate(groups: list, r: np.ndarray, what: str) -> np.ndarray:
    """``phi``, ``dphi`` or ``d2phi`` of every bond: ``r`` has the bonds on its last axis."""
    out = np.zeros(r.shape, dtype=np.result_type(r, float))
    for pot, idx in groups:
        out[..., idx] = getattr(pot, what)(r[..., idx])
    return out


@dataclass(frozen=True, eq=False)
class CauchyBorn:
    """The Cauchy–Born law of ``bonds`` (reference bond vectors) with the pair ``potential``
    (one, or a tuple with one per shell); ``shifts``: fixed sub-lattice shifts of the UFL
    path (``(n_basis, d)``, default zero).  Build the stress-free one with :meth:`relaxed`.
    """

    potential: PairPotential | tuple[PairPotential, ...]
    bonds: Bonds
    shifts: np.ndarray | None = None
    kind: ClassVar[Kind] = "deformation"
    #: hyperelastic: the tangent dP/dF has major symmetry
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.bonds, Bonds) or len(self.bonds.vectors) == 0:
            raise ValueError("bonds: expected a non-empty Bonds (Lattice.bonds)")
        pots = _potentials(self.potential, len(self.bonds.radii))
        object.__setattr__(self, "potential", pots[0] if len(pots) == 1 else pots)
        object.__setattr__(self, "_groups", _groups(pots, self.bonds.shell))
        p = np.zeros((self.bonds.n_basis, self.dim)) if self.shifts is None else self.shifts
        p = np.asarray(p, dtype=float)
        if p.shape != (self.bonds.n_basis, self.dim):
            raise ValueError(f"shifts: expected shape {(self.bonds.n_basis, self.dim)}")
        object.__setattr__(self, "shifts", p)

    @classmethod
    def relaxed(
        cls,
        lattice: Lattice,
        potential: PairPotential | tuple[PairPotential, ...],
        *,
        shells: int | None = None,
        reduced_cutoff: float | None = None,
    ) -> CauchyBorn:
        """The law on ``lattice`` at its relaxed constant (:func:`relaxed_lattice_constant`),
        with the bonds of the first ``shells`` shells or up to ``reduced_cutoff`` lattice
        constants."""
        a0 = relaxed_lattice_constant(
            lattice, potential, shells=shells, reduced_cutoff=reduced_cutoff
        )
        unit = lattice.with_constant(1.0)
        return cls(potential, unit.bonds(shells=shells, cutoff=reduced_cutoff).scaled(a0))

    # -- facts ------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.bonds.dim

    @property
    def lattice_constant_scale(self) -> float:
        """The nearest-neighbour distance of the reference."""
        return float(self.bonds.radii[0])

    @property
    def potentials(self) -> tuple[PairPotential, ...]:
        p = self.potential
        return p if isinstance(p, tuple) else (p,)

    # -- UFL: the material-law interface ----------------------------------------------------------
    def energy(self, F: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """:math:`W(F) = \\frac{1}{V_c}\\sum_{b \\in B/\\pm}\\phi_b(|F R_b + p_\\beta -
        p_\\alpha|)` (one bond of each :math:`\\pm` pair, counted twice), fixed shifts."""
        b = self.bonds
        dp = self.shifts[b.target] - self.shifts[b.source]
        total = 0
        for pot, idx in self._groups:  # type: ignore[attr-defined]
            for k in np.intersect1d(idx, b.half()):
                r = F * ufl.as_vector(b.vectors[k].tolist())
                if np.any(dp[k] != 0.0):
                    r = r + ufl.as_vector(dp[k].tolist())
                total = total + pot.phi(ufl.sqrt(ufl.dot(r, r)))
        return total / b.cell_volume

    def flux(self, F: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """First Piola stress :math:`P = \\partial W/\\partial F` (UFL differentiation)."""
        Fv = ufl.variable(F)
        return ufl.diff(self.energy(Fv), Fv)

    # -- NumPy: closed-form sums (F of shape (..., d, d)) ------------------------------------------
    def deformed(self, F: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
        """Deformed bond vectors :math:`r_b = F R_b + p_\\beta - p_\\alpha`, shape
        ``(..., nb, d)``."""
        b = self.bonds
        p = self.shifts if shifts is None else np.asarray(shifts)
        return np.einsum("...ij,bj->...bi", np.asarray(F), b.vectors) + (p[b.target] - p[b.source])

    def energy_density(self, F: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
        """:math:`W(F)` (NumPy, shifts fixed: those given or the law's)."""
        r = np.linalg.norm(self.deformed(F, shifts), axis=-1)
        return _evaluate(self._groups, r, "phi").sum(axis=-1) / (2 * self.bonds.cell_volume)  # type: ignore[attr-defined]

    def stress(self, F: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
        """First Piola stress :math:`P(F)` in closed form (NumPy)."""
        rv = self.deformed(F, shifts)
        r = np.linalg.norm(rv, axis=-1)
        t = _evaluate(self._groups, r, "dphi") / r  # type: ignore[attr-defined]
        return np.einsum("...b,...bi,bJ->...iJ", t, rv, self.bonds.vectors) / (
            2 * self.bonds.cell_volume
        )

    def bond_stiffness(self, F: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
        """:math:`K_b = \\phi''\\hat r\\otimes\\hat r + (\\phi'/r)(I - \\hat r\\otimes\\hat r)`,
        shape ``(..., nb, d, d)``."""
        rv = self.deformed(F, shifts)
        r = np.linalg.norm(rv, axis=-1)
        n = rv / r[..., None]
        d1 = _evaluate(self._groups, r, "dphi") / r  # type: ignore[attr-defined]
        d2 = _evaluate(self._groups, r, "d2phi")  # type: ignore[attr-defined]
        nn = n[..., :, None] * n[..., None, :]
        return (d2 - d1)[..., None, None] * nn + d1[..., None, None] * np.eye(self.dim)

    def tangent(self, F: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
        """:math:`\\mathbb A_{iJkL}` in closed form (NumPy), shape ``(..., d, d, d, d)``."""
        K = self.bond_stiffness(F, shifts)
        R = self.bonds.vectors
        return np.einsum("...bik,bJ,bL->...iJkL", K, R, R) / (2 * self.bonds.cell_volume)

    # -- inner relaxation (lattices with a basis) -------------------------------------------------
    def _incidence(self) -> np.ndarray:
        """:math:`C_{b\\beta} = \\delta_{\\beta,target(b)} - \\delta_{\\beta,source(b)}` for the
        free sub-lattices :math:`\\beta \\ge 1`."""
        b, nb = self.bonds, self.bonds.n_basis
        C = np.eye(nb)[b.target] - np.eye(nb)[b.source]
        return C[:, 1:]

    def relax_shifts(self, F: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """Shifts :math:`p` (``(n_basis, d)``, :math:`p_0 = 0`) minimizing :math:`W(F, p)`
        from ``guess`` (default: the law's shifts plus a small perturbation, so a saddle of
        symmetry is left); zero for a Bravais lattice."""
        nb, d = self.bonds.n_basis, self.dim
        if nb == 1:
            return np.zeros((1, d))
        F = np.asarray(F, dtype=float)
        C = self._incidence()
        scale = self.lattice_constant_scale
        if guess is None:
            rng = np.random.default_rng(0)
            guess = self.shifts + 1e-3 * scale * rng.standard_normal((nb, d))
        x0 = (np.asarray(guess, float)[1:] - np.asarray(guess, float)[:1]).ravel()

        def full(x: np.ndarray) -> np.ndarray:
            return np.vstack([np.zeros((1, d)), x.reshape(nb - 1, d)])

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            p = full(x)
            rv = self.deformed(F, p)
            r = np.linalg.norm(rv, axis=-1)
            t = _evaluate(self._groups, r, "dphi") / r  # type: ignore[attr-defined]
            g = np.einsum("b,bi,bB->Bi", t, rv, C) / (2 * self.bonds.cell_volume)
            return float(self.energy_density(F, p)), g.ravel()

        def hess(x: np.ndarray) -> np.ndarray:
            K = self.bond_stiffness(F, full(x))
            H = np.einsum("bik,bB,bG->BiGk", K, C, C) / (2 * self.bonds.cell_volume)
            return H.reshape((nb - 1) * d, (nb - 1) * d)

        res = optimize.minimize(
            fun, x0, jac=True, hess=hess, method="trust-exact", options={"gtol": 1e-13}
        )
        return full(res.x)

    def relaxed_energy_density(self, F: np.ndarray) -> float:
        """:math:`\\min_p W(F, p)`."""
        return float(self.energy_density(F, self.relax_shifts(F)))

    def relaxed_tangent(self, F: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
        """:math:`\\mathbb A_{FF} - \\mathbb A_{Fp}\\mathbb A_{pp}^{-1}\\mathbb A_{pF}` at the
        relaxed shifts (``shifts``, default :meth:`relax_shifts`)."""
        p = self.relax_shifts(F) if shifts is None else shifts
        A = self.tangent(F, p)
        if self.bonds.n_basis == 1:
            return A
        d, nf = self.dim, self.bonds.n_basis - 1
        K, C, R = self.bond_stiffness(F, p), self._incidence(), self.bonds.vectors
        c = 1.0 / (2 * self.bonds.cell_volume)
        Afp = c * np.einsum("bik,bJ,bB->iJBk", K, R, C).reshape(d * d, nf * d)
        App = c * np.einsum("bik,bB,bG->BiGk", K, C, C).reshape(nf * d, nf * d)
        corr = Afp @ np.linalg.solve(App, Afp.T)
        return A - corr.reshape(d, d, d, d)


def relaxed_lattice_constant(
    lattice: Lattice,
    potential: PairPotential | tuple[PairPotential, ...],
    *,
    shells: int | None = None,
    reduced_cutoff: float | None = None,
) -> float:
    """The lattice constant :math:`a_0` minimizing :math:`E(a) = \\frac12\\sum_b
    \\phi_b(a|\\rho_b|)` for the bonds :math:`\\rho_b` of the first ``shells`` shells (or up to
    ``reduced_cutoff`` lattice constants) of ``lattice`` at :math:`a = 1`; ``ValueError`` when
    :math:`E` has no minimum between a third and three times the pair-equilibrium scale."""
    b = lattice.with_constant(1.0).bonds(shells=shells, cutoff=reduced_cutoff)
    groups = _groups(_potentials(potential, len(b.radii)), b.shell)
    rho = b.lengths
    first = groups[0][0] if len(groups) == 1 else _potentials(potential, len(b.radii))[0]
    a_ref = first.r_eq / b.radii[0]
    grid = a_ref * np.geomspace(1 / 3, 3.0, 1201)
    E = 0.5 * _evaluate(groups, grid[:, None] * rho, "phi").sum(axis=1)
    i = int(np.argmin(E))
    if i in (0, len(grid) - 1) or not np.isfinite(E[i]):
        raise ValueError(
            "potential: the lattice energy has no minimum near the pair equilibrium distance "
            f"(searched a in [{grid[0]:.4g}, {grid[-1]:.4g}])"
        )

    def dE(a: float) -> float:
        return float(0.5 * (_evaluate(groups, a * rho, "dphi") * rho).sum())

    return float(optimize.brentq(dE, grid[i - 1], grid[i + 1], xtol=1e-15, rtol=1e-15))
