"""Pure-Python twin of cython_ext/exchange3b.pyx (same signatures, same results).

Triplets t = (p, q): two distinct entries of one row i = rows[p] = rows[q] of the pair
list (j = neigh[p], k = neigh[q]), ordered, with the third edge r_jk inside the cutoff;
fc[t] = f_cut(r_jk). With A_p[l] = w_l P_l(e_i·e_j) and B_t[l] = w_l P_l(e_j·e_k)::

    d[i, n1, n2, l1, l2, l3] = Σ_t R[p, n1] R[q, n2] fc[t] A_p[l1] A_q[l2] B_t[l3]
"""
from __future__ import annotations

import numpy as np

from otf_spin.kernels.soso_py import legendre


def _factors(e, rows, neigh, w, trip):
    """Atoms (i, j, k) of each triplet and the Legendre factors (values, derivatives)."""
    p, q = trip[:, 0], trip[:, 1]
    i, j, k = rows[p], neigh[p], neigh[q]
    lmax = len(w) - 1
    dots = [np.einsum("tx,tx->t", e[a], e[b]) for a, b in ((i, j), (i, k), (j, k))]
    (Pj, dPj), (Pk, dPk), (Pjk, dPjk) = (legendre(c, lmax) for c in dots)
    return (p, q, i, j, k), (Pj * w, Pk * w, Pjk * w), (dPj * w, dPk * w, dPjk * w)


def _outer(R1, R2, A1, A2, B):
    return np.einsum("tn,tm,ta,tb,tc->tnmabc", R1, R2, A1, A2, B)


def descriptor(e, rows, neigh, R, w, trip, fc, d):
    """Write d (N, n_max, n_max, l_max+1, l_max+1, l_max+1) in place; trip (T, 2)."""
    (p, q, i, _, _), (A1, A2, B), _ = _factors(e, rows, neigh, w, trip)
    d[:] = 0.0
    np.add.at(d, i, _outer(R[p] * fc[:, None], R[q], A1, A2, B))


def contract_gradient(e, rows, neigh, R, w, trip, fc, G, grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a (unprojected), G (M, N, n, n, l, l, l)."""
    (p, q, i, j, k), (A1, A2, B), (dA1, dA2, dB) = _factors(e, rows, neigh, w, trip)
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


def pair_gradient(e, rows, neigh, R, dR, u, w, trip, fc, dfc, G, g):
    """g[p] = ∂E/∂D_p (P, 3), D_p = r_j + S - r_i, for E = Σ_i G[i]·d_i: through r_ij
    (u: unit pair vectors), r_ik and the third edge (dfc[t] = ∂f_cut(r_jk)/∂(D_q - D_p))."""
    (p, q, i, _, _), (A1, A2, B), _ = _factors(e, rows, neigh, w, trip)
    Gt = G[i]
    t1 = fc * np.einsum("tnmabc,tnmabc->t", Gt, _outer(dR[p], R[q], A1, A2, B))
    t2 = fc * np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], dR[q], A1, A2, B))
    t3 = np.einsum("tnmabc,tnmabc->t", Gt, _outer(R[p], R[q], A1, A2, B))
    g[:] = 0.0
    np.add.at(g, p, t1[:, None] * u[p] - t3[:, None] * dfc)
    np.add.at(g, q, t2[:, None] * u[q] + t3[:, None] * dfc)
