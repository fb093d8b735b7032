"""The training domain of a fitted model: where its predictions and σ were calibrated.

The model's σ is calibrated on its training frames (docs/uncertainty.md); it knows
nothing of geometries or moment magnitudes the frames never showed. Measured on the
paper sets (docs/uncertainty.md, "Outside the training domain"): a model of perfect
bcc frames predicts a lattice strained by 0.5 % with field errors 10× its σ, 3 % strain
12-20×, frames with 0.07 Å displacements 15×; a model of fixed 2.2 μB moments predicts
Eq. 41 moments (1.8-2.2 μB) 35× beyond its σ. Such structures are flagged, not refused:

- a pair of atoms within the descriptor's cutoff is *covered* if its distance lies within
  :data:`PAIR_TOLERANCE` of a pair distance of some training frame; a structure with
  more than :data:`OUTSIDE_FRACTION` of its pairs uncovered is outside (a model of
  displaced frames covers 0.07 Å displacements: 0.2 % uncovered, 0.25 Å: 12 %);
- an atom's number of neighbours within the cutoff is covered if it lies within the
  training atoms' range widened by :data:`COUNT_TOLERANCE` of its top (displacements
  move single neighbours across the cutoff; a uniformly strained lattice whose every
  distance a model of strongly displaced frames has seen is caught here); more than
  :data:`OUTSIDE_FRACTION` of the atoms uncovered is outside;
- an atom's moment magnitude is covered within :data:`MOMENT_TOLERANCE` (relative) of
  the training frames' range; more than :data:`OUTSIDE_FRACTION` of the atoms uncovered
  is outside.
"""
from __future__ import annotations

import numpy as np

from otf_spin.system import neighbour_distances

#: Å: a pair distance this close to a training pair distance is covered
PAIR_TOLERANCE = 0.02
#: relative: neighbour counts this far beyond the training range (of its top) are covered
COUNT_TOLERANCE = 0.02
#: relative: moment magnitudes this far beyond the training range are still covered
MOMENT_TOLERANCE = 0.03
#: a structure with more than this fraction of pairs (or atoms) uncovered is outside
OUTSIDE_FRACTION = 0.01


def pairs(system, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """(distances (P,) Å of every ordered pair of ``system`` within ``cutoff`` Å,
    neighbour counts (N,) of its atoms)."""
    i, _, d = neighbour_distances(system.cell, system.pbc, system.positions, cutoff)
    return d, np.bincount(i, minlength=len(system))


class Domain:
    """The pair distances (sorted, unique to 1e-4 Å) and neighbour-count range within
    ``cutoff`` (Å) and the moment-magnitude range (μB) of the training frames."""

    def __init__(self, distances, counts: tuple[int, int], moments: tuple[float, float],
                 cutoff: float):
        self.distances = np.asarray(distances, float)
        self.counts = (int(counts[0]), int(counts[1]))
        self.moments, self.cutoff = (float(moments[0]), float(moments[1])), float(cutoff)
        slack = MOMENT_TOLERANCE * max(abs(self.moments[0]), abs(self.moments[1]))
        self._covered = (self.moments[0] - slack, self.moments[1] + slack)   # μB

    @classmethod
    def of_frames(cls, systems, cutoff: float) -> "Domain":
        """The domain of training structures ``systems`` (SpinSystems)."""
        systems = list(systems)
        found = [pairs(s, cutoff) for s in systems]
        distances = np.unique(np.round(np.concatenate([d for d, _ in found]), 4))
        counts = np.concatenate([c for _, c in found])
        magnitudes = np.concatenate([s.magnitudes for s in systems])
        return cls(distances, (counts.min(), counts.max()),
                   (magnitudes.min(), magnitudes.max()), cutoff)

    def _geometry(self, system) -> dict:
        """The geometric part of :meth:`coverage` (``pairs``, ``gap``, ``counts``,
        ``count_range``), kept for the last structure (cell, periodicity, positions)
        asked about: the dynamics and the on-the-fly checks ask about one structure at
        every prediction (a comparison of its positions, not a neighbour search)."""
        key = b"".join(np.ascontiguousarray(a).tobytes()
                       for a in (system.positions, system.cell, system.pbc))
        cached = getattr(self, "_last", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        d, counts = pairs(system, self.cutoff)
        gap = np.full(len(d), np.inf)
        if len(self.distances) and len(d):
            k, last = np.searchsorted(self.distances, d), len(self.distances) - 1
            gap = np.minimum(abs(d - self.distances[np.maximum(k - 1, 0)]),
                             abs(d - self.distances[np.minimum(k, last)]))
        few, many = self.counts
        spare = np.ceil(COUNT_TOLERANCE * many)
        out = {"pairs": float(np.mean(gap > PAIR_TOLERANCE)) if len(d) else 0.0,
               "gap": float(gap.max()) if len(d) else 0.0,
               "counts": float(np.mean((counts < few - spare) | (counts > many + spare))),
               "count_range": (int(counts.min()), int(counts.max()))}
        self._last = (key, out)
        return out

    def coverage(self, system) -> dict:
        """How far ``system`` lies outside: ``pairs`` (fraction of its pairs within the
        cutoff farther than :data:`PAIR_TOLERANCE` from every training distance),
        ``gap`` (Å, the largest such distance to the training distances), ``counts``
        (fraction of its atoms with a neighbour count outside the training range ±
        :data:`COUNT_TOLERANCE`) and ``count_range`` (its own), ``moments`` (fraction of
        its atoms whose magnitude is beyond the training range by more than
        :data:`MOMENT_TOLERANCE`) and ``moment_range`` (μB, its own)."""
        lo, hi = self._covered
        m = system.magnitudes
        return {**self._geometry(system),
                "moments": float(np.mean((m < lo) | (m > hi))),
                "moment_range": (float(m.min()), float(m.max()))}

    def is_outside(self, system) -> bool:
        """Whether :meth:`outside` has something to say (a few μs for the structure
        asked about last)."""
        geometry = self._geometry(system)
        if max(geometry["pairs"], geometry["counts"]) > OUTSIDE_FRACTION:
            return True
        lo, hi = self._covered
        m = system.magnitudes
        if lo <= m.min() and m.max() <= hi:
            return False
        return self.coverage(system)["moments"] > OUTSIDE_FRACTION

    def outside(self, system) -> str | None:
        """One phrase on how ``system`` lies outside the domain, or None if it is inside."""
        c = self.coverage(system)
        parts = []
        if c["pairs"] > OUTSIDE_FRACTION:
            parts.append(f"{100 * c['pairs']:.0f} % of its pair distances within "
                         f"{self.cutoff:g} Å are not within {PAIR_TOLERANCE:g} Å of a "
                         f"training pair distance (up to {c['gap']:.2f} Å away)")
        if c["counts"] > OUTSIDE_FRACTION:
            lo, hi = c["count_range"]
            parts.append(f"its atoms have {lo}{f'-{hi}' if hi > lo else ''} neighbours within "
                         f"{self.cutoff:g} Å, the training frames' {self.counts[0]}"
                         f"{f'-{self.counts[1]}' if self.counts[1] > self.counts[0] else ''}")
        if c["moments"] > OUTSIDE_FRACTION:
            parts.append(f"its moments span {c['moment_range'][0]:.2f}-"
                         f"{c['moment_range'][1]:.2f} μB, the training frames' "
                         f"{self.moments[0]:.2f}-{self.moments[1]:.2f} μB")
        return "; ".join(parts) or None


def extrapolation_warning(subject: str, phrase: str) -> str:
    """The one-line warning that ``subject`` ("in.xyz: frame 3 lies", "the run's structure
    lies") is outside the domain as ``phrase`` (:meth:`Domain.outside`) says."""
    return (f"{subject} outside the model's training domain ({phrase}): the model "
            "extrapolates there and its σ is not calibrated (docs/uncertainty.md)")
