"""Atomistic to continuum: lattices, pair potentials, the Cauchy–Born rule and lattice stability.

* :mod:`.lattice`: Bravais lattices (chain, square, triangular, simple cubic, fcc, bcc) with an
  optional basis, and their neighbour shells;
* :mod:`.potentials`: Lennard-Jones, Morse and harmonic pair potentials, a smooth cut-off;
* :mod:`.cauchy_born`: :class:`CauchyBorn`, a hyperelastic material law of the package built
  from a potential on a lattice at its relaxed lattice constant;
* :mod:`.stability`: strong ellipticity, convexity along a path and phonon stability, and the
  critical load along a loading path;
* :mod:`.statics`: finite and periodic atom sets, their pair energy, forces and sparse Hessian,
  and energy minimization by Newton (PETSc SNES) with Dirichlet atoms and load stepping.
"""

from .cauchy_born import CauchyBorn, relaxed_lattice_constant
from .lattice import LATTICES, Bonds, Lattice
from .potentials import Harmonic, LennardJones, Morse, PairPotential, Shifted
from .stability import (
    CRITERIA,
    Instability,
    LoadingPath,
    PathStability,
    analyse_path,
    dispersion,
    dynamical_matrix,
    ellipticity,
    hessian_eigenvalues,
    path_convexity,
    phonon,
)
from .statics import AtomisticProblem, AtomSet, PairModel, StaticsResult, neighbour_pairs

__all__ = [
    "CRITERIA",
    "LATTICES",
    "AtomSet",
    "AtomisticProblem",
    "Bonds",
    "CauchyBorn",
    "Harmonic",
    "Instability",
    "Lattice",
    "LennardJones",
    "LoadingPath",
    "Morse",
    "PairModel",
    "PairPotential",
    "PathStability",
    "Shifted",
    "StaticsResult",
    "analyse_path",
    "dispersion",
    "dynamical_matrix",
    "ellipticity",
    "hessian_eigenvalues",
    "neighbour_pairs",
    "path_convexity",
    "phonon",
    "relaxed_lattice_constant",
]
