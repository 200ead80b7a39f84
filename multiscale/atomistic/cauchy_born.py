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

*Inner relaxation.*  For a lattice with a basis the shifts :math:`p_\alpha` (:math:`p_0` held)
minimize :math:`W(F, p)`, and the law is the relaxed one,

.. math::
    W^{rel}(F) = \min_p W(F, p), \qquad P = \frac{\partial W}{\partial F}(F, p^*(F)), \qquad
    \mathbb A^{rel} = \mathbb A_{FF} - \mathbb A_{Fp}\mathbb A_{pp}^{-1}\mathbb A_{pF}

(envelope theorem and implicit function theorem, :math:`\partial W/\partial p = 0` at
:math:`p^*`).  :meth:`CauchyBorn.relax_shifts` finds :math:`p^*` for one :math:`F` (NumPy, exact
Hessian trust region) and :meth:`CauchyBorn.relaxed_tangent` condenses the shifts out.  As a
material law the shifts are *inner variables* (:class:`~multiscale.physics.base.InnerMaterial`):
a solver that carries them (the DNS and macro solid, the RVE, FE²) keeps them in quadrature
spaces and, before every assembly, sets them at all its points at once for the current
:math:`F` (:meth:`CauchyBorn.relax`: Newton vectorized over the points, warm started from the
shifts held, a trust-region minimization for the points where the Hessian is not positive
definite): the relaxation :math:`\delta^* = p^* - p^{fixed}`, its sensitivity
:math:`\partial\delta^*/\partial F = -\mathbb A_{pp}^{-1}\mathbb A_{pF}` and the :math:`F_\delta`
it was relaxed at.  The UFL flux is

.. math::
    P(F) = \frac{\partial W}{\partial F}\big(F, \hat\delta(F)\big), \qquad
    \hat\delta(F) = \delta^* + \frac{\partial\delta^*}{\partial F} : (F - F_\delta),

whose value at :math:`F = F_\delta` is :math:`P^{rel}` and whose UFL derivative there is
:math:`\mathbb A_{FF} + \mathbb A_{Fp}\,\partial\delta^*/\partial F = \mathbb A^{rel}`: the
Newton Jacobian and the RVE tangent need nothing else, and the forms stay as small as those of
a Bravais lattice (second derivatives of :math:`\phi` only; one Newton step
:math:`\hat\delta = \delta - W_{\delta\delta}^{-1}W_\delta` in UFL would also be exact at
:math:`\delta^*` but needs third derivatives and compiles 2-4 times slower).  A lattice whose
every atom is a centre of inversion of its bonds has vanishing inner forces at the fixed shifts
for every :math:`F`; elsewhere the fixed shifts would give an upper bound of the relaxed energy,
so :meth:`CauchyBorn.flux` without inner variables refuses such a lattice
(:attr:`CauchyBorn.needs_relaxation`).  Bravais lattices have no inner variables.

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

    @property
    def needs_relaxation(self) -> bool:
        """Whether the inner forces :math:`\\partial W/\\partial p` at the fixed shifts may be
        non-zero: ``False`` for a Bravais lattice, and for a basis whose shifts are all equal
        and whose every atom is a centre of inversion of its bonds (each bond
        :math:`(\\alpha, \\beta, R)` of a shell, :math:`\\alpha \\ge 1`, has the partner
        :math:`(\\alpha, \\beta, -R)`), so the forces of :math:`\\pm R` on the free sub-lattices
        cancel for every :math:`F`."""
        b = self.bonds
        if b.n_basis == 1:
            return False
        if np.ptp(self.shifts, axis=0).max() > 0.0:
            return True
        key = np.round(b.vectors / self.lattice_constant_scale, 9) + 0.0
        rows = zip(b.source.tolist(), b.target.tolist(), b.shell.tolist(), key, strict=True)
        bonds = {(s, t, h, *v) for s, t, h, v in rows if s > 0}
        mirrored = {(s, t, h, *(0.0 - x for x in v)) for s, t, h, *v in bonds}
        return bonds != mirrored

    # -- UFL: the material-law interface ----------------------------------------------------------
    def inner_shapes(self, dim: int) -> dict[str, tuple[int, ...]]:
        """The inner variables (:class:`~multiscale.physics.base.InnerMaterial`) of a lattice
        with a basis: ``shifts``, the relaxation :math:`\\delta_\\beta = p_\\beta -
        p^{fixed}_\\beta - (p_0 - p^{fixed}_0)` of the sub-lattices :math:`\\beta \\ge 1`
        (:math:`m = (n_{basis} - 1)\\,d` values); ``shifts_dF``, its sensitivity
        :math:`\\partial\\delta^*/\\partial F` (``(m, d * d)``, :math:`F` flattened by rows);
        ``shifts_F``, the :math:`F` they were relaxed at.  None for a Bravais lattice."""
        if dim != self.dim:
            raise ValueError(f"the {self.dim}D Cauchy–Born law cannot act in {dim}D")
        if self.bonds.n_basis == 1:
            return {}
        m = (self.bonds.n_basis - 1) * dim
        return {"shifts": (m,), "shifts_dF": (m, dim * dim), "shifts_F": (dim, dim)}

    def _bond_vector(self, F: ufl.core.expr.Expr, k: int, delta: ufl.core.expr.Expr | None):
        """:math:`r_k = F R_k + p_\\beta - p_\\alpha` of the bond ``k`` in UFL."""
        b, d = self.bonds, self.dim
        r = F * ufl.as_vector(b.vectors[k].tolist())
        dp = self.shifts[b.target[k]] - self.shifts[b.source[k]]
        if np.any(dp != 0.0):
            r = r + ufl.as_vector(dp.tolist())
        if delta is not None and b.source[k] != b.target[k]:
            for beta, sign in ((int(b.target[k]), 1.0), (int(b.source[k]), -1.0)):
                if beta > 0:
                    r = r + sign * ufl.as_vector([delta[(beta - 1) * d + i] for i in range(d)])
        return r

    def _energy(
        self, F: ufl.core.expr.Expr, delta: ufl.core.expr.Expr | None = None
    ) -> ufl.core.expr.Expr:
        """:math:`W(F, p^{fixed} + \\delta)` in UFL (one bond of each :math:`\\pm` pair,
        counted twice)."""
        half = self.bonds.half()
        total = 0
        for pot, idx in self._groups:  # type: ignore[attr-defined]
            for k in np.intersect1d(idx, half):
                r = self._bond_vector(F, int(k), delta)
                total = total + pot.phi(ufl.sqrt(ufl.dot(r, r)))
        return total / self.bonds.cell_volume

    def _predicted_shifts(self, F: ufl.core.expr.Expr, inner: dict) -> ufl.core.expr.Expr:
        """:math:`\\hat\\delta(F) = \\delta + \\frac{\\partial\\delta^*}{\\partial F} :
        (F - F_\\delta)` in UFL, from the inner variables."""
        d = self.dim
        delta, dF, F0 = inner["shifts"], inner["shifts_dF"], inner["shifts_F"]
        m = delta.ufl_shape[0]
        inc = [F[k, n] - F0[k, n] for k in range(d) for n in range(d)]
        return ufl.as_vector(
            [delta[i] + sum(dF[i, kn] * inc[kn] for kn in range(d * d)) for i in range(m)]
        )

    def _refuse_fixed(self) -> None:
        if self.needs_relaxation:
            raise ValueError(
                f"Cauchy–Born law of a {self.bonds.n_basis}-atom basis whose atoms are not "
                "centres of inversion: its sub-lattice shifts relax under deformation and this "
                "solver carries no inner variables to relax them (use the DNS/macro solid, the "
                "RVE or FE², or the NumPy relaxed_* methods)"
            )

    def energy(self, F: ufl.core.expr.Expr, inner: dict | None = None) -> ufl.core.expr.Expr:
        """:math:`W` in UFL: with the ``inner`` variables (:meth:`inner_shapes`, coefficients)
        at the shifts :math:`p^{fixed} + \\hat\\delta(F)` (the relaxed energy where the solver holds
        :math:`\\delta^*(F)`); without them at the fixed shifts, where those are in
        equilibrium for every :math:`F` (``ValueError`` if :attr:`needs_relaxation`)."""
        if inner is None or self.bonds.n_basis == 1:
            self._refuse_fixed()
            return self._energy(F)
        return self._energy(F, self._predicted_shifts(F, inner))

    def flux(self, F: ufl.core.expr.Expr, inner: dict | None = None) -> ufl.core.expr.Expr:
        """First Piola stress :math:`P = \\partial W/\\partial F` (UFL differentiation) at the
        shifts :math:`p^{fixed} + \\hat\\delta(F)` of the ``inner`` variables, or at the fixed
        ones (see :meth:`energy`); its UFL derivative is :math:`\\mathbb A^{rel}` where the
        inner variables hold :math:`\\delta^*(F)` (module docstring)."""
        Fv = ufl.variable(F)
        if inner is None or self.bonds.n_basis == 1:
            self._refuse_fixed()
            return ufl.diff(self._energy(Fv), Fv)
        # delta-hat depends on F, not on the variable Fv: the partial derivative at fixed shifts
        delta = self._predicted_shifts(F, inner)
        return ufl.diff(self._energy(Fv, delta), Fv)

    def relax(self, F: np.ndarray, inner: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inner variables at ``n`` points (``F``: ``(n, d, d)``): :math:`\\delta^*(F)`,
        :math:`\\partial\\delta^*/\\partial F = -W_{\\delta\\delta}^{-1}W_{\\delta F}` and
        ``F`` itself (:meth:`inner_shapes`), from the shifts ``inner["shifts"]`` (``(n, m)``)
        the solver holds: Newton's method on :math:`W_\\delta = 0` at all points at once
        (steps limited to a tenth of the nearest-neighbour distance, until below
        :math:`10^{-13}` of it); points where the Hessian :math:`W_{\\delta\\delta}` is not
        positive definite (a saddle of symmetry, an unstable start) or Newton does not converge
        are minimized one by one (:meth:`relax_shifts`).  ``ValueError`` where no stable
        relaxed state is found."""
        d, nb = self.dim, self.bonds.n_basis
        F = np.asarray(F, dtype=float).reshape(-1, d, d)
        n = len(F)
        delta = np.asarray(inner["shifts"], dtype=float).reshape(n, nb - 1, d).copy()
        if n == 0:
            m = (nb - 1) * d
            return {
                "shifts": np.zeros((0, m)),
                "shifts_dF": np.zeros((0, m, d * d)),
                "shifts_F": np.zeros((0, d, d)),
            }
        scale = self.lattice_constant_scale
        todo = np.ones(n, dtype=bool)
        slow = np.zeros(n, dtype=bool)
        for _ in range(40):
            idx = np.flatnonzero(todo)
            if idx.size == 0:
                break
            g, H = self._inner_derivatives(F[idx], delta[idx])
            ok = np.all(np.isfinite(H.reshape(len(idx), -1)), axis=1) & np.all(
                np.isfinite(g), axis=1
            )
            ok[ok] = np.linalg.eigvalsh(H[ok])[:, 0] > 0.0
            slow[idx[~ok]] = True
            todo[idx[~ok]] = False
            idx, g, H = idx[ok], g[ok], H[ok]
            if idx.size == 0:
                break
            step = -np.linalg.solve(H, g[..., None])[..., 0]
            size = np.linalg.norm(step, axis=1)
            limit = 0.1 * scale
            step *= np.minimum(1.0, limit / np.maximum(size, 1e-300))[:, None]
            delta[idx] += step.reshape(-1, nb - 1, d)
            done = size <= 1e-13 * scale
            todo[idx[done]] = False
        slow |= todo
        for k in np.flatnonzero(slow):
            guess = self._full_shifts(delta[k])
            _, H = self._inner_derivatives(F[k : k + 1], delta[k : k + 1])
            if not np.all(np.isfinite(H)) or np.linalg.eigvalsh(H[0])[0] <= 0.0:
                rng = np.random.default_rng(k)
                guess = guess + 1e-3 * scale * rng.standard_normal(guess.shape)
            p = self.relax_shifts(F[k], guess)
            delta[k] = (p[1:] - p[:1]) - (self.shifts[1:] - self.shifts[:1])
        if slow.any():
            _, H = self._inner_derivatives(F[slow], delta[slow])
            bad = ~np.all(np.isfinite(H.reshape(len(H), -1)), axis=1)
            bad[~bad] = np.linalg.eigvalsh(H[~bad])[:, 0] <= 0.0
            if bad.any():
                k = int(np.flatnonzero(slow)[np.argmax(bad)])
                raise ValueError(
                    "inner relaxation of the Cauchy–Born shifts: no stable relaxed state at "
                    f"F = {np.round(F[k], 6).tolist()} (the Hessian in the shifts is not "
                    "positive definite)"
                )
        _, H, G = self._inner_derivatives(F, delta, mixed=True)
        sensitivity = -np.linalg.solve(H, G)
        return {
            "shifts": delta.reshape(n, (nb - 1) * d),
            "shifts_dF": sensitivity,
            "shifts_F": F.copy(),
        }

    def _full_shifts(self, delta: np.ndarray) -> np.ndarray:
        """:math:`p = p^{fixed} + (0, \\delta_1, \\dots)`, shape ``(..., n_basis, d)``."""
        zero = np.zeros((*delta.shape[:-2], 1, self.dim))
        return self.shifts + np.concatenate([zero, delta], axis=-2)

    def _inner_derivatives(
        self, F: np.ndarray, delta: np.ndarray, mixed: bool = False
    ) -> tuple[np.ndarray, ...]:
        """:math:`W_\\delta` (``(n, m)``) and :math:`W_{\\delta\\delta}` (``(n, m, m)``) at
        ``n`` points, and with ``mixed`` :math:`W_{\\delta F}` (``(n, m, d * d)``)."""
        b = self.bonds
        p = self._full_shifts(delta)
        rv = np.einsum("nij,bj->nbi", F, b.vectors) + (p[:, b.target] - p[:, b.source])
        r = np.linalg.norm(rv, axis=-1)
        with np.errstate(all="ignore"):
            t = _evaluate(self._groups, r, "dphi") / r  # type: ignore[attr-defined]
            nn = rv[..., :, None] * rv[..., None, :] / (r * r)[..., None, None]
            d2 = _evaluate(self._groups, r, "d2phi")  # type: ignore[attr-defined]
        K = (d2 - t)[..., None, None] * nn + t[..., None, None] * np.eye(self.dim)
        C, c = self._incidence(), 1.0 / (2 * b.cell_volume)
        n, m = len(F), C.shape[1] * self.dim
        g = c * np.einsum("nb,nbi,bB->nBi", t, rv, C).reshape(n, m)
        H = c * np.einsum("nbik,bB,bG->nBiGk", K, C, C).reshape(n, m, m)
        if not mixed:
            return g, H
        G = c * np.einsum("nbik,bB,bJ->nBikJ", K, C, b.vectors).reshape(n, m, self.dim**2)
        return g, H, G

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
        symmetry is left): an exact-Hessian trust region, then Newton steps on
        :math:`\\partial W/\\partial p = 0` to round-off; zero for a Bravais lattice."""
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
        # the trust region stops once the energy decrease is lost in round-off, with the
        # gradient at about sqrt(eps) of its scale: Newton steps on the gradient finish it
        x = res.x
        for _ in range(5):
            H = hess(x)
            if np.linalg.eigvalsh(H)[0] <= 0.0:
                break
            step = np.linalg.solve(H, fun(x)[1])
            x = x - step
            if np.linalg.norm(step) <= 1e-14 * scale:
                break
        return full(x)

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
