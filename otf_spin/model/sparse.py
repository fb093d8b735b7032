"""Choice of sparse (representative) environments: greedy pivoted Cholesky in kernel space.

At each step the candidate with the largest residual kernel variance
k(x,x) - k_xSᵀ K_SS⁻¹ k_xS given the points already chosen is taken: the most
"novel" environment (the deterministic limit of CUR leverage selection, and the
rule of GAP's / FLARE's uncertainty-based selection). Near-duplicates (relative
residual below ``tolerance``) are never chosen.
"""
from __future__ import annotations

import numpy as np


def pivoted_cholesky(X, kernel, n_select: int, chosen=None, tolerance: float = 1e-8):
    """Indices (≤ n_select, in order of choice) of rows of X to add to the sparse set.

    ``chosen``: rows (K, D) already in the sparse set (conditioned on, not re-selected).
    """
    X = np.asarray(X, float)
    diag = np.einsum("ii->i", kernel(X, X)) if len(X) < 4000 else \
        np.array([kernel(x[None], x[None])[0, 0] for x in X])
    scale = diag.max() if len(diag) else 1.0
    residual = diag.copy()
    basis = []  # rows of L (Cholesky vectors) evaluated on X
    if chosen is not None and len(chosen):
        K_cc = kernel(chosen, chosen) + 1e-10 * scale * np.eye(len(chosen))
        L = np.linalg.cholesky(K_cc)
        V = np.linalg.solve(L, kernel(chosen, X))       # (K, N)
        residual -= np.einsum("kn,kn->n", V, V)
    picked = []
    for _ in range(min(n_select, len(X))):
        k = int(np.argmax(residual))
        if residual[k] <= tolerance * scale:
            break
        column = kernel(X, X[k][None])[:, 0]
        if chosen is not None and len(chosen):
            column = column - V.T @ V[:, k]
        for b in basis:
            column -= b * b[k]
        column /= np.sqrt(residual[k])
        basis.append(column)
        residual -= column**2
        residual[k] = -np.inf
        picked.append(k)
    return np.array(picked, dtype=int)
