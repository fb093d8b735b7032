"""Pure-Python twin of cython_ext/neighbours.pyx, built on ASE's neighbour list."""
from __future__ import annotations

import numpy as np
from ase.neighborlist import primitive_neighbor_list


def neighbour_pairs(cell, pbc, positions, cutoff):
    """All pairs (i, j, S) with |r_j + S·cell - r_i| < cutoff, excluding i == j, S == 0.

    Returns (i, j, S, D, d) as the compiled kernel (order unspecified).
    """
    positions = np.asarray(positions, dtype=float)
    if len(positions) == 0:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64),
                np.zeros((0, 3)), np.zeros(0))
    i, j, S, D, d = primitive_neighbor_list("ijSDd", np.asarray(pbc, bool), np.asarray(cell),
                                            positions, float(cutoff), self_interaction=False)
    # ASE keeps pairs with d <= cutoff; the kernel's contract is d < cutoff
    keep = d < cutoff
    return (i[keep].astype(np.int64), j[keep].astype(np.int64), S[keep].astype(np.int64),
            D[keep], d[keep])
