"""Pure-Python twin of cython_ext/exchange3b.pyx (same signatures, same results).

Triplets (i; p, q): two distinct entries p ≠ q of atom i's neighbour list (j = neigh[p],
k = neigh[q]), ordered, whose third edge r_jk = |D_q - D_p| is shorter than ``rc``
(D_p: pair vectors). With A_p[l] = w_l P_l(e_i·e_j), B[l] = w_l P_l(e_j·e_k) and
f_c(r) = ½(1 + cos(π r/rc))::

    d[i, n1, n2, l1, l2, l3] = Σ_(p,q) R[p, n1] R[q, n2] f_c(r_jk) A_p[l1] A_q[l2] B[l3]
"""
from __future__ import annotations

import numpy as np

from otf_spin.kernels.soso_py import legendre


def _triplets(offsets, vectors, rc):
    """(i, p, q) index arrays of the ordered pairs p ≠ q within each row with r_jk < rc,
    and the third edges D_q - D_p (T, 3) with their lengths (T,)."""
    I, P, Q = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0, int)]
    for i in range(len(offsets) - 1):
        idx = np.arange(offsets[i], offsets[i + 1])
        p, q = np.meshgrid(idx, idx, indexing="ij")
        keep = p != q
        P.append(p[keep])
        Q.append(q[keep])
        I.append(np.full(int(keep.sum()), i))
    i, p, q = (np.concatenate(x).astype(int) for x in (I, P, Q))
    edge = vectors[q] - vectors[p]
    r = np.linalg.norm(edge, axis=1)
    inside = r < rc
    return i[inside], p[inside], q[inside], edge[inside], r[inside]


def _factors(e, offsets, neigh, vectors, rc, w):
    """Triplet indices, third edges, f_c(r_jk) with its derivative, and the Legendre
    factors (values and derivatives)."""
    i, p, q, edge, r = _triplets(offsets, vectors, rc)
    j, k = neigh[p], neigh[q]
    fc = 0.5 * (1.0 + np.cos(np.pi * r / rc))
    dfc = -0.5 * np.pi / rc * np.sin(np.pi * r / rc)
    lmax = len(w) - 1
    dots = [np.einsum("tx,tx->t", e[a], e[b]) for a, b in ((i, j), (i, k), (j, k))]
    (Pj, dPj), (Pk, dPk), (Pjk, dPjk) = (legendre(c, lmax) for c in dots)
    return ((i, p, q, j, k), (edge, r, fc, dfc), (Pj * w, Pk * w, Pjk * w),
            (dPj * w, dPk * w, dPjk * w))


def _outer(R1, R2, A1, A2, B):
    return np.einsum("tn,tm,ta,tb,tc->tnmabc", R1, R2, A1, A2, B)


def descriptor(e, offsets, neigh, R, vectors, rc, w, d):
    """Write d (N, n_max, n_max, l_max+1, l_max+1, l_max+1) in place."""
    (i, p, q, _, _), (_, _, fc, _), (A1, A2, B), _ = _factors(e, offsets, neigh, vectors,
                                                                rc, w)
    d[:] = 0.0
    np.add.at(d, i, _outer(R[p] * fc[:, None], R[q], A1, A2, B))


def contract_gradient(e, offsets, neigh, R, vectors, rc, w, G, grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a (unprojected), G (M, N, n, n, l, l, l)."""
    (i, p, q, j, k), (_, _, fc, _), (A1, A2, B), (dA1, dA2, dB) = \
        _factors(e, offsets, neigh, vectors, rc, w)
    Rp = R[p] * fc[:, None]
    grad[:] = 0.0
    for m in range(G.shape[0]):
        Gt = G[m, i]
        s1 = np.einsum("tnmabc,tnmabc->t", Gt, _outer(Rp, R[q], dA1, A2, B))  # ∂/∂(e_i·e_j)
        s2 = np.einsum("tnmabc,tnmabc->t", Gt, _outer(Rp, R[q], A1, dA2, B))  # ∂/∂(e_i·e_k)
        s3 = np.einsum("tnmabc,tnmabc->t", Gt, _outer(Rp, R[q], A1, A2, dB))  # ∂/∂(e_j·e_k)
        np.add.at(grad[m], i, s1[:, None] * e[j] + s2[:, None] * e[k])
        np.add.at(grad[m], j, s1[:, None] * e[i] + s3[:, None] * e[k])
        np.add.at(grad[m], k, s2[:, None] * e[i] + s3[:, None] * e[j])


def pair_gradient(e, offsets, neigh, R, dR, vectors, rc, w, G, g):
    """g[p] = ∂E/∂D_p (P, 3), D_p = r_j + S - r_i, for E = Σ_i G[i]·d_i, G (N, n, n, l,
    l, l): through r_ij, r_ik and the third edge r_jk."""
    (i, p, q, _, _), (edge, r, fc, dfc), (A1, A2, B), _ = _factors(e, offsets, neigh,
                                                                     vectors, rc, w)
    Gt = G[i]
    t1 = fc * np.einsum("tnmabc,tnmabc->t", Gt, _outer(dR[p], R[q], A1, A2, B))
    t2 = fc * np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], dR[q], A1, A2, B))
    t3 = dfc * np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], R[q], A1, A2, B))
    length = np.linalg.norm(vectors, axis=1)
    u = vectors / length[:, None]
    g[:] = 0.0
    along = (t3 / r)[:, None] * edge
    np.add.at(g, p, t1[:, None] * u[p] - along)
    np.add.at(g, q, t2[:, None] * u[q] + along)
