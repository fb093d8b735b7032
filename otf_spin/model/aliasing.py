"""Periodic-image aliasing of small training cells.

When r_cut reaches half the shortest lattice vector L of a cell, two periodic images of
one atom j lie within r_cut of atom i, at different distances. In that cell both
"shells" always carry the same spin, so no label can tell their exchange apart, and a
model fitted only on such cells may not transfer to larger cells. Cells of different
sizes alias different shells, so a set of cells can still tell every shell apart
(:func:`shell_rank`). We detect it, warn with the numbers when the training cells
together cannot, and rely on the descriptor's radial scaling (which lets the nearer
shell take the weight) plus larger cells in the training set to resolve it.
"""
from __future__ import annotations

import itertools

import numpy as np


def shortest_lattice_vector(cell, pbc) -> float:
    """Length (Å) of the shortest nonzero lattice vector along periodic directions."""
    cell = np.asarray(cell, float)
    best = np.inf
    ranges = [range(-2, 3) if p else range(0, 1) for p in pbc]
    for n in itertools.product(*ranges):
        if any(n):
            best = min(best, float(np.linalg.norm(np.asarray(n) @ cell)))
    return best


def aliased_shells(system, r_cut: float):
    """Example distances (Å) at which one atom pair of ``system`` appears twice within
    r_cut, or None when the cell is alias-free."""
    if shortest_lattice_vector(system.cell, system.pbc) > 2 * r_cut:
        return None
    nl = system.neighbours(r_cut)
    rows = nl.i
    for p in np.argsort(nl.distances, kind="stable"):
        if nl.j[p] == rows[p]:
            continue
        same = (rows == rows[p]) & (nl.j == nl.j[p])
        d = np.unique(np.round(nl.distances[same], 6))
        if len(d) > 1:
            return d
    return None


def check(systems, r_cut: float) -> str | None:
    """A warning text (with the numbers) when any training cell aliases, else None."""
    seen = {}
    for system in systems:
        key = (system.cell.tobytes(), tuple(system.pbc), len(system))
        if key not in seen:
            seen[key] = (system, 0)
        seen[key] = (seen[key][0], seen[key][1] + 1)
    aliased = [(s, n) for s, n in seen.values()
               if shortest_lattice_vector(s.cell, s.pbc) <= 2 * r_cut]
    if not aliased:
        return None
    rank, shells_all = shell_rank([s for s, _ in seen.values()], r_cut)
    if rank == len(shells_all):
        return None             # the cells together tell every shell apart
    count = sum(n for _, n in aliased)
    system = aliased[0][0]
    L = shortest_lattice_vector(system.cell, system.pbc)
    shells = aliased_shells(system, r_cut)
    example = "" if shells is None else \
        f" (e.g. one pair at {shells[0]:.2f} and {shells[1]:.2f} Å)"
    alias_free = min(shortest_lattice_vector(s.cell, s.pbc) for s, _ in seen.values()) / 2
    return (f"periodic-image aliasing: r_cut = {r_cut:.2f} Å reaches half the shortest lattice "
            f"vector ({L:.2f} Å / 2 = {L / 2:.2f} Å) in {count} of "
            f"{sum(n for _, n in seen.values())} training frames ({len(system)} atoms): one atom "
            f"pair enters the descriptor at several distances{example}, and those shells cannot "
            f"be told apart in these cells (together they resolve {rank} of the "
            f"{len(shells_all)} exchange shells within r_cut). The radial scaling gives the nearer shell the weight; "
            f"add frames from other cells (otf-spin generate picks them), wider than "
            f"{2 * r_cut:.1f} Å, or use r_cut < {alias_free:.2f} Å to remove the ambiguity.")


def pair_shell_counts(system, r_cut: float, decimals: int = 4):
    """Shell distances (S,) Å within ``r_cut`` and, for every atom pair i < j, how often j
    (with its periodic images) appears in each shell around i: counts (P, S).

    A pair interaction -Σ J(r) e_i·e_j enters the energy of this cell through the rows of
    ``counts`` only: shells whose columns are linearly dependent cannot be told apart by
    any label of this cell (self-image shells, j = i, add a constant and are invisible)."""
    nl = system.neighbours(r_cut)
    shells, column = np.unique(np.round(nl.distances, decimals), return_inverse=True)
    keep = nl.i < nl.j
    pairs, row = np.unique(np.stack([nl.i[keep], nl.j[keep]], axis=1), axis=0,
                           return_inverse=True)
    counts = np.zeros((len(pairs), len(shells)))
    np.add.at(counts, (row.ravel(), column[keep]), 1.0)
    return shells, counts


def shell_rank(systems, r_cut: float, decimals: int = 4) -> tuple[int, np.ndarray]:
    """(rank, shells): how many of the pair-interaction shells within ``r_cut`` the cells
    ``systems`` (together) can identify, of all the shells (S,) Å they contain. A set of
    cells with rank == len(shells) determines every shell's exchange separately."""
    parts = [pair_shell_counts(s, r_cut, decimals) for s in systems]
    shells = np.unique(np.concatenate([p[0] for p in parts]))
    rows = []
    for own, counts in parts:
        full = np.zeros((len(counts), len(shells)))
        full[:, np.searchsorted(shells, own)] = counts
        rows.append(np.unique(full, axis=0))
    matrix = np.concatenate(rows) if rows else np.zeros((0, len(shells)))
    return int(np.linalg.matrix_rank(matrix)) if len(matrix) else 0, shells
