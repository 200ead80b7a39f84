"""Convergence-rate checks of Newton residual histories, shared by the tests.

Quadratic convergence means :math:`\\rho_{k+1} \\le K \\rho_k^2` for the residuals
:math:`\\rho_k = r_k / r_0` relative to the first, with a moderate constant :math:`K`.  The
check looks at every pair of iterates after the first step (which may be a load jump, not a
Newton error) whose second residual is above round-off, and asks for at least one pair in the
asymptotic range (:math:`\\rho_k \\le 10^{-2}`): a linearly converging iteration with ratio
:math:`q` has :math:`K = q / \\rho_k`, which exceeds any fixed bound once :math:`\\rho_k` is
small, so the check fails for it.
"""

from __future__ import annotations

import numpy as np


def quadratic_constants(residuals, roundoff: float = 1e-14) -> np.ndarray:
    """:math:`K_k = \\rho_{k+1}/\\rho_k^2` for the pairs ``k >= 1`` with
    :math:`\\rho_k \\le 10^{-2}` and :math:`\\rho_{k+1} \\ge` ``roundoff``."""
    rho = np.asarray(residuals, dtype=float) / residuals[0]
    k = np.arange(1, len(rho) - 1)
    keep = (rho[k] <= 1e-2) & (rho[k + 1] >= roundoff)
    k = k[keep]
    return rho[k + 1] / rho[k] ** 2


def assert_quadratic(residuals, bound: float = 10.0, roundoff: float = 1e-14) -> np.ndarray:
    """Every :math:`K_k` of :func:`quadratic_constants` is at most ``bound``, and there is at
    least one; returns them."""
    K = quadratic_constants(residuals, roundoff)
    assert K.size >= 1, f"no Newton step in the asymptotic range: {list(residuals)}"
    assert np.all(K <= bound), (K, list(residuals))
    return K
