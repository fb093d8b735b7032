"""Pure-Python twin of cython_ext/soso.pyx (same signatures, same results)."""
from __future__ import annotations

import numpy as np


def legendre(c, lmax):
    """P_l(c), P_l'(c) for l = 0..lmax: arrays (len(c), lmax+1)."""
    c = np.asarray(c, float)
    P = np.zeros(c.shape + (lmax + 1,))
    dP = np.zeros_like(P)
    P[..., 0] = 1.0
    if lmax >= 1:
        P[..., 1] = c
        dP[..., 1] = 1.0
    for l in range(2, lmax + 1):
        P[..., l] = ((2 * l - 1) * c * P[..., l - 1] - (l - 1) * P[..., l - 2]) / l
        dP[..., l] = dP[..., l - 2] + (2 * l - 1) * P[..., l - 1]
    return P, dP


def _pairs(e, offsets, neigh):
    rows = np.repeat(np.arange(len(e)), np.diff(offsets))
    return rows, np.einsum("pk,pk->p", e[rows], e[neigh])


def descriptor(e, offsets, neigh, R, w, d):
    rows, c = _pairs(e, offsets, neigh)
    P, _ = legendre(c, len(w) - 1)
    d[:] = 0.0
    np.add.at(d, rows, R[:, :, None] * (P * w)[:, None, :])


def contract_gradient(e, offsets, neigh, R, w, G, grad):
    rows, c = _pairs(e, offsets, neigh)
    keep = neigh != rows
    rows, js, c, R = rows[keep], neigh[keep], c[keep], R[keep]
    _, dP = legendre(c, len(w) - 1)
    T = R[:, :, None] * (dP * w)[:, None, :]                      # (P, n, l)
    s = np.einsum("pnl,mpnl->mp", T, G[:, rows] + G[:, js])        # (M, P)
    grad[:] = 0.0
    for m in range(G.shape[0]):
        np.add.at(grad[m], rows, s[m][:, None] * e[js])
