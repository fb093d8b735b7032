"""Several descriptor terms side by side: one per-atom vector, blocks in term order.

The model sees one descriptor d_i = [d_i^(1), d_i^(2), ...] (exchange-2b first); each
kernel selects its term's block with a mask (:meth:`CompositeDescriptor.term_mask`), so
an additive model E_i = Σ_k E_i^(k)(d_i^(k)) follows. Same interface as each term:
compute, compute_fm, spin_gradient, position_gradient, size, r_cut (the largest).
"""
from __future__ import annotations

import numpy as np


class CompositeDescriptor:
    """Concatenation of descriptor ``terms`` (each with the descriptor interface and a
    ``kind`` name, names unique)."""

    def __init__(self, terms):
        self.terms = list(terms)
        kinds = [t.kind for t in self.terms]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"descriptor terms must differ, got {kinds}")
        ends = np.cumsum([t.size for t in self.terms])
        self.slices = [slice(int(e - t.size), int(e)) for t, e in zip(self.terms, ends)]

    @property
    def kinds(self) -> list[str]:
        return [t.kind for t in self.terms]

    @property
    def size(self) -> int:
        return self.slices[-1].stop

    @property
    def r_cut(self) -> float:
        return max(t.r_cut for t in self.terms)

    def term(self, kind: str):
        """The term named ``kind`` and its slice of the descriptor."""
        if kind not in self.kinds:
            raise KeyError(f"no descriptor term {kind!r}; the model has {', '.join(self.kinds)}")
        k = self.kinds.index(kind)
        return self.terms[k], self.slices[k]

    def term_mask(self, kind: str, inner=None) -> np.ndarray:
        """(size,) 1 on the block of term ``kind`` (times ``inner``, a mask of that
        block, e.g. Legendre orders of exchange-2b), 0 elsewhere."""
        term, part = self.term(kind)
        mask = np.zeros(self.size)
        mask[part] = 1.0 if inner is None else inner
        return mask

    def settings(self) -> dict:
        return {"type": "composite", "terms": [t.settings() for t in self.terms]}

    def compute(self, system, directions=None) -> np.ndarray:
        return np.concatenate([t.compute(system, directions) for t in self.terms], axis=1)

    def compute_fm(self, system) -> np.ndarray:
        return np.concatenate([t.compute_fm(system) for t in self.terms], axis=1)

    def spin_gradient(self, system, G) -> np.ndarray:
        """Σ_i G[m, i]·∂d_i/∂e_a for G (M, N, size) -> (M, N, 3); blocks of G that are
        all zero (kernels on other terms) are skipped."""
        out = np.zeros((G.shape[0], len(system), 3))
        for t, part in zip(self.terms, self.slices):
            block = G[:, :, part]
            if np.any(block):
                out += t.spin_gradient(system, block)
        return out

    def local_move(self, system, directions, k: int, trial, rows=None):
        """Descriptor rows after turning spin ``k`` of ``directions`` to ``trial``:
        (affected atom indices, their new rows (A, size)). The affected atoms are k and
        its neighbours within r_cut; the rows come from a full recomputation (O(N) per
        move: exact for every term, meant for small and medium cells), so the current
        ``rows`` are not needed (the argument is there for the common signature)."""
        e = np.array(directions)
        e[k] = trial
        widest = max(self.terms, key=lambda t: t.r_cut)
        offsets, neigh = widest.geometry(system)[:2]
        affected = np.unique(np.append(neigh[offsets[k]:offsets[k + 1]], k))
        return affected, self.compute(system, e)[affected]

    def position_gradient(self, system, G) -> np.ndarray:
        """∂E/∂r_a (N, 3) for G = ∂E/∂d (N, size)."""
        out = np.zeros((len(system), 3))
        for t, part in zip(self.terms, self.slices):
            block = G[:, part]
            if np.any(block):
                out += t.position_gradient(system, block)
        return out
