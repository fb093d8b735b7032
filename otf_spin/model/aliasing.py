"""Periodic-image aliasing of small training cells.

When r_cut reaches half the shortest lattice vector L of a cell, two periodic images of
one atom j lie within r_cut of atom i, at different distances. In that cell both
"shells" always carry the same spin, so no label can tell their exchange apart, and a
model fitted only on such cells may not transfer to larger cells. We detect it, warn
with the numbers, and rely on the descriptor's radial scaling (which lets the nearer
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
            f"be told apart in these cells. The radial scaling gives the nearer shell the weight; "
            f"add frames from cells wider than {2 * r_cut:.1f} Å (or use r_cut < {alias_free:.2f}"
            f" Å) to remove the ambiguity.")
