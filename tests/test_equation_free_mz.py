"""Mori–Zwanzig for x' = -a x + b y, y' = c x - g y: the GLE with the exact kernel, solved by
trapezoidal convolution quadrature, against the matrix exponential of the full system (a
different formula); the Markovian approximation against the same reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from multiscale.equation_free import LinearBath, solve_gle

X0, Y0 = 1.0, 0.5


def _full(bath: LinearBath, t: np.ndarray) -> np.ndarray:
    """x(t) of the full 2x2 system by the matrix exponential."""
    M = np.array([[-bath.a, bath.b], [bath.c, -bath.g]])
    return (scipy.linalg.expm(t[:, None, None] * M) @ np.array([X0, Y0]))[:, 0]


def test_gle_second_order_against_full_system():
    """Errors on [0, 5] for 100..800 steps: 4.1e-4, 1.0e-4, 2.6e-5, 6.4e-6, observed order
    2.000 +- 0.001 (trapezoidal rule in time and in the memory integral)."""
    bath = LinearBath(a=1.0, b=1.0, c=-2.0, g=1.5)
    errors = []
    for n in (100, 200, 400, 800):
        t, x = bath.gle(5.0, n, X0, Y0)
        errors.append(np.abs(x - _full(bath, t)).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(rates - 2.0) < 0.02), (errors, rates)
    assert errors[-1] < 1e-5


def test_gle_with_a_general_kernel():
    """A kernel with no two-variable embedding of the same form: K = t e^-t, F = 0.  Laplace:
    X(s) = (s+1)^2 / ((s+a)(s+1)^2 - 1), so x = sum_i N(p_i)/D'(p_i) e^{p_i t} over the roots
    p_i of the cubic D; second-order quadrature with 800 steps on [0, 4]: error < 1e-5."""
    a = 0.7
    t, x = solve_gle(a, lambda t: t * np.exp(-t), np.zeros_like, 1.0, 4.0, 800)
    N = np.poly1d([1.0, 2.0, 1.0])
    D = np.poly1d([1.0, a]) * N - 1.0
    p = D.roots
    exact = np.real(sum(N(pi) / D.deriv()(pi) * np.exp(pi * t) for pi in p))
    assert np.abs(x - exact).max() < 1e-5, np.abs(x - exact).max()


@pytest.mark.parametrize(
    ("g", "c", "low", "high"),
    [
        (1.0, -1.0, 0.3, np.inf),  # comparable time scales: memory matters (error 0.43)
        (1.0, 1.0, 0.2, np.inf),  # (error 0.25)
        (100.0, -50.0, 0.0, 0.015),  # separated, bc/g = -0.5 fixed: error 1.26e-2
        (1000.0, -500.0, 0.0, 0.0015),  # ten times faster bath: ten times smaller (1.23e-3)
    ],
)
def test_markovian_fails_for_close_time_scales(g: float, c: float, low: float, high: float):
    """max |x_Markov - x| on [0, 5] with x(0) = 1: large for g ~ a, O(1/g) for g >> a."""
    bath = LinearBath(a=1.0, b=1.0, c=c, g=g)
    t = np.linspace(0.0, 5.0, 101)
    err = np.abs(bath.markovian(t, X0, Y0) - _full(bath, t)).max()
    assert low < err < high, err
