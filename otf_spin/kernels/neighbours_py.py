"""Pure-Python twin of cython_ext/neighbours.pyx, built on ASE's neighbour list."""
from __future__ import annotations

import numpy as np
from ase.neighborlist import primitive_neighbor_list


def neighbour_pairs(cell, pbc, positions, cutoff):
    """All pairs (i, j, S) with |r_j + S·cell - r_i| < cutoff, excluding i == j, S == 0.

    Returns (i, j, S, D, d) as the compiled kernel (grouped by i in ascending order).
    """
    positions = np.asarray(positions, dtype=float)
    if len(positions) == 0:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64),
                np.zeros((0, 3)), np.zeros(0))
    i, j, S, D, d = primitive_neighbor_list("ijSDd", np.asarray(pbc, bool), np.asarray(cell),
                                            positions, float(cutoff), self_interaction=False)
    # ASE keeps pairs with d <= cutoff; the kernel's contract is d < cutoff
    keep = d < cutoff
    order = np.argsort(i[keep], kind="stable")
    return (i[keep][order].astype(np.int64), j[keep][order].astype(np.int64),
            S[keep][order].astype(np.int64), D[keep][order], d[keep][order])


def neighbour_distances(cell, pbc, positions, cutoff):
    """(i, j, d) of :func:`neighbour_pairs` (same pairs, same order)."""
    i, j, _, _, d = neighbour_pairs(cell, pbc, positions, cutoff)
    return i, j, d
