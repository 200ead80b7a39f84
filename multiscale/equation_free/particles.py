r"""A stochastic micro simulator: random walkers on the periodic unit interval whose density
obeys a drift–diffusion (Fokker–Planck) equation, with lifting by inverse-CDF sampling and
restriction by a cloud-in-cell kernel, for the equation-free core.

**Micro dynamics.**  :math:`N` walkers of equal weight :math:`w` take Euler–Maruyama steps

.. math::
    X \leftarrow X - V'(X)\,\delta t + \sqrt{2 D\,\delta t}\;\xi \pmod 1, \qquad
    w \leftarrow w\,e^{r\,\delta t}, \qquad \xi \sim \mathcal N(0, 1),

with :math:`V(x) = v_0 \cos 2\pi x` and a linear reaction rate :math:`r` carried by the weights.
The density :math:`\rho` obeys :math:`\rho_t = D\rho_{xx} + (V'\rho)_x + r\rho`.  For
:math:`v_0 = 0` the Brownian increments are exact in time (:math:`\rho(x, t) = 1 + A
e^{-D(2\pi)^2 t}\cos 2\pi x` for :math:`r = 0`); for :math:`v_0 \ne 0, r = 0` the steady state is
the Boltzmann density :math:`\rho_\infty \propto e^{-V/D}` (up to an :math:`O(\delta t)` bias of
Euler–Maruyama).

**Restriction** (cloud in cell).  With coarse nodes :math:`x_i = i h`, :math:`h = 1/n`, and the
periodic hat function :math:`\phi_i` of node :math:`i`,

.. math::
    U_i = \frac{1}{h}\sum_p w_p\,\phi_i(X_p), \qquad h\sum_i U_i = \sum_p w_p \text{ (the mass)},

an unbiased estimate of :math:`(\phi_i, \rho)/h`, with variance about
:math:`\tfrac{2}{3}\rho(x_i)\,w/h` (:math:`w = m/N`).  The estimate is a continuous, piecewise
linear function of the positions, which is what makes finite differences with common random
numbers meaningful (below).

**Lifting** (inverse-CDF sampling).  :math:`U` is first deconvolved, :math:`c = K^{-1}U` with the
circulant :math:`K = \mathrm{tridiag}(1, 4, 1)/6` (the restriction of the hat functions), so that
the restriction of the piecewise-linear density with nodal values :math:`c` is :math:`U` again:
:math:`\mathbb E\,\mathcal R(\mathcal L(U)) = U`.  Negative :math:`c` are clipped to 0.  Each
walker is placed by inverting the (piecewise quadratic) cumulative mass at a uniform number; the
positions, and so the restriction, depend continuously on :math:`U` for fixed uniforms.

**Random numbers and ranks.**  The population is split into a fixed number ``blocks`` of
particle blocks; block :math:`b` gets the generator of
``np.random.SeedSequence([seed, lift]).spawn(blocks)[b]`` (``lift`` counts the liftings, or is
always 0 with common random numbers) and block :math:`b` lives on rank :math:`b \bmod p`.  Every
block draws the same numbers on any number of ranks, and the restriction is summed over ranks
(``Allreduce``), so 1 and :math:`p` ranks give the same coarse densities to round-off.

**Variance reduction for Newton–Krylov.**  The Jacobian-vector products of
:class:`~multiscale.equation_free.core.CoarseNewtonKrylov` are
:math:`(\Phi_T(U + \epsilon v) - \Phi_T(U))/\epsilon` with :math:`\epsilon \sim 10^{-8}`.  With
independent random numbers in the two evaluations their difference is dominated by the particle
noise :math:`O(\sqrt{n/N})`, so the "directional derivative" has size
:math:`O(\sqrt{n/N}/\epsilon) \gg 1` and a random direction: GMRES solves a meaningless system and
Newton stalls or wanders.  With *common random numbers* (``common_random_numbers=True``: every
lifting uses the same seeds) :math:`\Phi_T` is one fixed, continuous, piecewise smooth realization
:math:`\Phi_T^\omega`; its finite differences are its derivative (the noise cancels exactly in the
difference), Newton converges to the fixed point of :math:`\Phi_T^\omega`, which differs from the
deterministic one by the particle noise :math:`O(\sqrt{n/N})` (amplified by
:math:`\|(I - \Phi_T')^{-1}\|`).  More blocks (replicas) reduce that noise as
:math:`N^{-1/2}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

__all__ = ["RandomWalkers", "WalkerSettings", "WalkerState"]


@dataclass(frozen=True, slots=True)
class WalkerSettings:
    """Random walkers: ``n_particles`` in ``blocks`` blocks, ``n_cells`` coarse nodes, diffusion
    ``D``, potential amplitude ``v0`` (:math:`V = v_0\\cos 2\\pi x`), reaction rate
    ``reaction``, base ``seed`` and ``common_random_numbers`` (module docstring)."""

    n_particles: int
    n_cells: int
    D: float
    v0: float = 0.0
    reaction: float = 0.0
    blocks: int = 16
    seed: int = 0
    common_random_numbers: bool = False

    def __post_init__(self) -> None:
        if not (self.n_particles >= self.blocks >= 1 and self.n_cells >= 3 and self.D > 0):
            raise ValueError(f"need n_particles >= blocks >= 1, n_cells >= 3, D > 0: {self}")

    @property
    def h(self) -> float:
        return 1.0 / self.n_cells

    def block_sizes(self) -> np.ndarray:
        """Particles per block (the remainder spread over the first blocks)."""
        q, r = divmod(int(self.n_particles), int(self.blocks))
        return q + (np.arange(self.blocks) < r)


@dataclass(slots=True)
class WalkerState:
    """This rank's walkers: ``x`` (positions of its blocks, concatenated), ``sizes`` (per local
    block), their generators ``rngs`` and the common weight ``w`` of a walker."""

    x: np.ndarray
    sizes: np.ndarray
    rngs: list[np.random.Generator]
    w: float


def _deconvolve(U: np.ndarray) -> np.ndarray:
    """:math:`K^{-1} U` for the circulant :math:`K = (1, 4, 1)/6` (eigenvalues
    :math:`(2 + \\cos\\theta)/3 \\ge 1/3`), by FFT."""
    n = U.size
    symbol = (2.0 + np.cos(2.0 * np.pi * np.arange(n // 2 + 1) / n)) / 3.0
    return np.fft.irfft(np.fft.rfft(U) / symbol, n)


def _inverse_cdf(c: np.ndarray, h: float, u: np.ndarray) -> np.ndarray:
    """Positions with cumulative mass ``u`` (in ``[0, m)``) under the periodic piecewise-linear
    density with nodal values ``c``: in cell :math:`i` the mass up to :math:`x_i + s h` is
    :math:`h(c_i s + (c_{i+1} - c_i)s^2/2)`, inverted as
    :math:`s = 2\\mu / (c_i + \\sqrt{c_i^2 + 2(c_{i+1} - c_i)\\mu})`, :math:`\\mu = r/h`."""
    right = np.roll(c, -1)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * h * (c + right))])
    i = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, c.size - 1)
    mu = (u - cum[i]) / h
    ci, dc = c[i], right[i] - c[i]
    root = np.sqrt(np.maximum(ci * ci + 2.0 * dc * mu, 0.0))
    denom = ci + root
    s = np.divide(2.0 * mu, denom, out=np.zeros_like(mu), where=denom > 0)
    return ((i + np.clip(s, 0.0, 1.0)) * h) % 1.0


class RandomWalkers:
    """The micro simulator, lifting and restriction of the module docstring on ``comm``
    (lifting, advancing and restricting are collective).  :attr:`lifts` counts liftings."""

    def __init__(self, settings: WalkerSettings, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
        self.settings, self.comm = settings, comm
        self.local_blocks = np.arange(comm.rank, settings.blocks, comm.size)
        self.lifts = 0

    def _generators(self) -> list[np.random.Generator]:
        s = self.settings
        key = 0 if s.common_random_numbers else self.lifts
        children = np.random.SeedSequence([int(s.seed), key]).spawn(int(s.blocks))
        return [np.random.default_rng(children[b]) for b in self.local_blocks]

    def lift(self, U: np.ndarray, reference: WalkerState | None = None) -> WalkerState:
        """:math:`\\mathcal L(U)`: walkers sampled from the deconvolved piecewise-linear density
        of the nodal densities ``U`` (``reference`` is not used)."""
        s = self.settings
        c = np.maximum(_deconvolve(np.asarray(U, dtype=float)), 0.0)
        mass = s.h * float(c.sum())
        rngs = self._generators()
        self.lifts += 1
        sizes = s.block_sizes()[self.local_blocks]
        u = np.concatenate([g.random(int(m)) for g, m in zip(rngs, sizes, strict=True)])
        x = _inverse_cdf(c, s.h, mass * u) if mass > 0 else u
        return WalkerState(x, sizes, rngs, mass / s.n_particles)

    def drift(self, x: np.ndarray) -> np.ndarray:
        """:math:`-V'(x) = 2\\pi v_0 \\sin 2\\pi x`."""
        return 2.0 * np.pi * self.settings.v0 * np.sin(2.0 * np.pi * x)

    def advance(self, state: WalkerState, dt: float) -> WalkerState:
        """One Euler–Maruyama step (each block from its own generator)."""
        s = self.settings
        xi = np.concatenate(
            [g.standard_normal(int(m)) for g, m in zip(state.rngs, state.sizes, strict=True)]
        )
        x = state.x + math.sqrt(2.0 * s.D * dt) * xi
        if s.v0 != 0.0:
            x += dt * self.drift(state.x)
        w = state.w * math.exp(s.reaction * dt)
        return WalkerState(x % 1.0, state.sizes, state.rngs, w)

    def restrict(self, state: WalkerState) -> np.ndarray:
        """:math:`\\mathcal R`: cloud-in-cell densities at the coarse nodes, summed over ranks."""
        n = self.settings.n_cells
        y = state.x * n
        j = np.floor(y)
        f = y - j
        j = j.astype(np.int64) % n
        local = np.bincount(j, 1.0 - f, minlength=n) + np.bincount((j + 1) % n, f, minlength=n)
        total = np.empty_like(local)
        self.comm.Allreduce(local, total, op=MPI.SUM)
        return total * (state.w * n)
