"""Pure-Python twin of cython_ext/exchange3b.pyx (same signatures, same results).

Triplets (i; p, q): two distinct entries p ≠ q of atom i's neighbour list (j = neigh[p],
k = neigh[q]), as ordered pairs. With A_p[l] = w_l P_l(e_i·e_j), B[l] = w_l P_l(e_j·e_k)::

    d[i, n1, n2, l1, l2, l3] = Σ_(p,q) R[p, n1] R[q, n2] A_p[l1] A_q[l2] B[l3]
"""
from __future__ import annotations

import numpy as np

from otf_spin.kernels.soso_py import legendre


def _triplets(offsets):
    """(i, p, q) index arrays of all ordered pairs p ≠ q within each row."""
    I, P, Q = [], [], []
    for i in range(len(offsets) - 1):
        idx = np.arange(offsets[i], offsets[i + 1])
        p, q = np.meshgrid(idx, idx, indexing="ij")
        keep = p != q
        P.append(p[keep])
        Q.append(q[keep])
        I.append(np.full(int(keep.sum()), i))
    return np.concatenate(I).astype(int), np.concatenate(P).astype(int), \
        np.concatenate(Q).astype(int)


def _factors(e, offsets, neigh, w):
    """Triplet indices and the Legendre factors (values and derivatives)."""
    i, p, q = _triplets(offsets)
    j, k = neigh[p], neigh[q]
    lmax = len(w) - 1
    dots = [np.einsum("tx,tx->t", e[a], e[b]) for a, b in ((i, j), (i, k), (j, k))]
    (Pj, dPj), (Pk, dPk), (Pjk, dPjk) = (legendre(c, lmax) for c in dots)
    return (i, p, q, j, k), (Pj * w, Pk * w, Pjk * w), (dPj * w, dPk * w, dPjk * w)


def _outer(R1, R2, A1, A2, B):
    return np.einsum("tn,tm,ta,tb,tc->tnmabc", R1, R2, A1, A2, B)


def descriptor(e, offsets, neigh, R, w, d):
    """Write d (N, n_max, n_max, l_max+1, l_max+1, l_max+1) in place."""
    (i, p, q, _, _), (A1, A2, B), _ = _factors(e, offsets, neigh, w)
    d[:] = 0.0
    np.add.at(d, i, _outer(R[p], R[q], A1, A2, B))


def contract_gradient(e, offsets, neigh, R, w, G, grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a (unprojected), G (M, N, n, n, l, l, l)."""
    (i, p, q, j, k), (A1, A2, B), (dA1, dA2, dB) = _factors(e, offsets, neigh, w)
    grad[:] = 0.0
    for m in range(G.shape[0]):
        Gt = G[m, i]
        s1 = np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], R[q], dA1, A2, B))  # ∂/∂(e_i·e_j)
        s2 = np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], R[q], A1, dA2, B))  # ∂/∂(e_i·e_k)
        s3 = np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], R[q], A1, A2, dB))  # ∂/∂(e_j·e_k)
        np.add.at(grad[m], i, s1[:, None] * e[j] + s2[:, None] * e[k])
        np.add.at(grad[m], j, s1[:, None] * e[i] + s3[:, None] * e[k])
        np.add.at(grad[m], k, s2[:, None] * e[i] + s3[:, None] * e[j])


def radial_gradient(e, offsets, neigh, R, dR, w, G, gp):
    """gp[p] = ∂E/∂r_p (length of pair p) for E = Σ_i G[i]·d_i, G (N, n, n, l, l, l)."""
    (i, p, q, _, _), (A1, A2, B), _ = _factors(e, offsets, neigh, w)
    Gt = G[i]
    gp[:] = 0.0
    np.add.at(gp, p, np.einsum("tnmabc,tnmabc->t", Gt, _outer(dR[p], R[q], A1, A2, B)))
    np.add.at(gp, q, np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], dR[q], A1, A2, B)))
