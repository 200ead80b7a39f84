"""What every concurrent coupler (FE², HMM) does with its micro model across load steps.

A coupler's macro Newton iteration evaluates the micro problems at every iterate
(``on_iterate``) and keeps the responses of the last iterate.  Across load steps:

* the first iterate of a load step is the committed macro state, whose micro responses are those
  of the last iterate of the converged step: they are reused, not solved again (unless the load
  factor also scales a load of the micro problems, :attr:`ConcurrentCoupling.micro_loaded`);
* a converged step commits the micro history (``micro.commit()``) and keeps its responses;
* a cut step drops the trial history (``micro.rollback()``).

:class:`ConcurrentCoupling` is that bookkeeping, mixed into a
:class:`~multiscale.nonlinear.SteppedProblem` (``class FE2Problem(ConcurrentCoupling,
SolidProblem)``): the coupler sets :attr:`micro`, calls :meth:`_init_coupling`, implements
:meth:`_assign_responses` (write the responses into its quadrature fields and remember them as
:attr:`_last`) and starts its ``on_iterate`` with ``if self._reuse_committed(): return``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.nonlinear import NewtonOutcome

__all__ = ["ConcurrentCoupling"]


class ConcurrentCoupling:
    """The micro bookkeeping of a concurrent coupler across load steps (see the module)."""

    micro: Any  # the micro model: commit() and rollback()
    pool: Any  # the MicroPool of the micro model (its ``micro_comm``)
    comm: MPI.Comm  # the macro communicator

    #: whether the micro problems carry a load of their own that the load factor scales (the
    #: macro parameters of FE², a temperature change say): the committed responses then belong
    #: to the last factor, not to the next one, and are not reused
    micro_loaded: bool = False

    def _init_coupling(self) -> None:
        self._cache: Any = None  # the responses at the committed state
        self._last: Any = None  # the responses at the last iterate
        self._reuse = False

    def _assign_responses(self, responses: Any) -> None:
        """Write ``responses`` into the macro fields and keep them as :attr:`_last`."""
        raise NotImplementedError

    def _keep(self, responses: Any) -> Any:
        """A copy of ``responses`` that later iterates do not overwrite (default: itself)."""
        return responses

    def _reuse_committed(self) -> bool:
        """At the first iterate of an attempt (the committed state): assign the committed
        responses and return ``True`` (once); else ``False``."""
        if self._reuse and self._cache is not None:
            self._reuse = False
            self._assign_responses(self._cache)
            return True
        return False

    def attempt(self) -> NewtonOutcome:
        self._reuse = self._cache is not None and not self.micro_loaded
        return super().attempt()  # type: ignore[misc]

    def commit(self) -> None:
        super().commit()  # type: ignore[misc]
        self.micro.commit()
        self._cache = self._keep(self._last)

    def rollback(self) -> None:
        super().rollback()  # type: ignore[misc]
        self.micro.rollback()
        self._reuse = False

    def _micro_quantities(self, evaluation: Any, solves: int) -> dict[str, float]:
        """What a recorded step reports of its micro problems: the RVE solves since the last
        record (``solves`` is this process's running count, counted once per micro group), the
        largest Hill–Mandel residual and mean pressure of ``evaluation`` (the last iterate's
        responses, ``None`` where this rank holds no point).  Collective on :attr:`comm`."""
        hm = _largest(evaluation, "hill_mandel")
        mp = _largest(evaluation, "mean_p")
        total = self.comm.allreduce(solves if self.pool.micro_comm.rank == 0 else 0, op=MPI.SUM)
        recorded, self._solves_recorded = getattr(self, "_solves_recorded", 0), total
        return {
            "rve_solves": float(total - recorded),
            "max_hill_mandel": self.comm.allreduce(hm, op=MPI.MAX),
            "max_mean_p": self.comm.allreduce(mp, op=MPI.MAX),
        }


def _largest(evaluation: Any, name: str) -> float:
    values = getattr(evaluation, name, None) if evaluation is not None else None
    return float(np.max(values)) if values is not None and len(values) else 0.0
