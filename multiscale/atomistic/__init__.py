"""Atomistic to continuum: lattices, pair potentials, the Cauchy–Born rule and lattice stability.

* :mod:`.lattice`: Bravais lattices (chain, square, triangular, simple cubic, fcc, bcc) with an
  optional basis, and their neighbour shells;
* :mod:`.potentials`: Lennard-Jones, Morse and harmonic pair potentials, a smooth cut-off;
* :mod:`.cauchy_born`: :class:`CauchyBorn`, a hyperelastic material law of the package built
  from a potential on a lattice at its relaxed lattice constant;
* :mod:`.stability`: strong ellipticity, convexity along a path and phonon stability, and the
  critical load along a loading path;
* :mod:`.statics`: finite and periodic atom sets, their pair energy, forces and sparse Hessian,
  and energy minimization by Newton (PETSc SNES) with Dirichlet atoms and load stepping;
* :mod:`.distributed`: the same minimization distributed over the ranks by atom ownership;
* :mod:`.qc`: the quasicontinuum method: repatoms on a graded coarse mesh, energy-based (QCE),
  ghost-force-corrected, force-based (QCF) and blended (BQCE) couplings.
"""

from .cauchy_born import CauchyBorn, relaxed_lattice_constant
from .distributed import (
    DistributedAtomisticProblem,
    DistributedPairModel,
    LocalAtoms,
    partition_distributed,
)
from .lattice import LATTICES, Bonds, Lattice, block_slab
from .potentials import Harmonic, LennardJones, Morse, PairPotential, Shifted
from .qc import METHODS as QC_METHODS
from .qc import CoarseMesh, MeshSpec, QCModel, QCProblem, soften_bonds
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
    "QC_METHODS",
    "AtomSet",
    "AtomisticProblem",
    "Bonds",
    "CauchyBorn",
    "CoarseMesh",
    "DistributedAtomisticProblem",
    "DistributedPairModel",
    "Harmonic",
    "Instability",
    "Lattice",
    "LennardJones",
    "LoadingPath",
    "LocalAtoms",
    "MeshSpec",
    "Morse",
    "PairModel",
    "PairPotential",
    "PathStability",
    "QCModel",
    "QCProblem",
    "Shifted",
    "StaticsResult",
    "analyse_path",
    "block_slab",
    "dispersion",
    "dynamical_matrix",
    "ellipticity",
    "hessian_eigenvalues",
    "neighbour_pairs",
    "partition_distributed",
    "path_convexity",
    "phonon",
    "relaxed_lattice_constant",
    "soften_bonds",
]
