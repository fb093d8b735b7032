"""Pure-Python twin of cython_ext/dipole2b.pyx (same signatures, same results).

Pair p = (i, j) with unit bond vector u_p: a = e_i·u, b = e_j·u, c = e_i·e_j; feature
f has exponents (x_f, y_f, z_f)::

    d[i, n, f] = Σ_p R[p, n] a^x b^y c^z
"""
from __future__ import annotations

import numpy as np


def _powers(v, x):
    """v^x and d(v^x)/dv for integer x ≥ 0 (arrays (P, F)); 0^0 = 1."""
    v = v[:, None]
    value = v ** x[None]
    deriv = np.where(x[None] > 0, x[None] * v ** np.maximum(x[None] - 1, 0), 0.0)
    return value, deriv


def _features(e, offsets, neigh, u, expo):
    rows = np.repeat(np.arange(len(e)), np.diff(offsets))
    a = np.einsum("px,px->p", e[rows], u)
    b = np.einsum("px,px->p", e[neigh], u)
    c = np.einsum("px,px->p", e[rows], e[neigh])
    (va, da), (vb, db), (vc, dc) = (_powers(v, expo[:, k]) for k, v in enumerate((a, b, c)))
    return rows, (a, b), va * vb * vc, (da * vb * vc, va * db * vc, va * vb * dc)


def descriptor(e, offsets, neigh, R, u, expo, d):
    """Write d (N, n_max, F) in place."""
    rows, _, f, _ = _features(e, offsets, neigh, u, expo)
    d[:] = 0.0
    np.add.at(d, rows, R[:, :, None] * f[:, None, :])


def contract_gradient(e, offsets, neigh, R, u, expo, G, grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a (unprojected), G (M, N, n_max, F)."""
    rows, _, _, (fa, fb, fc) = _features(e, offsets, neigh, u, expo)
    grad[:] = 0.0
    for m in range(G.shape[0]):
        s = np.einsum("pnf,pn->pf", G[m, rows], R)                  # (P, F)
        sa, sb, sc = (np.einsum("pf,pf->p", s, x)[:, None] for x in (fa, fb, fc))
        np.add.at(grad[m], rows, sa * u + sc * e[neigh])
        np.add.at(grad[m], neigh, sb * u + sc * e[rows])


def pair_gradient(e, offsets, neigh, R, dR, u, r, expo, G, g):
    """g[p] = ∂E/∂D_p (P, 3), D_p = r_j + S - r_i, for E = Σ_i G[i]·d_i, G (N, n_max, F)."""
    rows, (a, b), f, (fa, fb, _) = _features(e, offsets, neigh, u, expo)
    s = np.einsum("pnf,pn->pf", G[rows], R)
    radial = np.einsum("pnf,pn,pf->p", G[rows], dR, f)
    sa = np.einsum("pf,pf->p", s, fa)
    sb = np.einsum("pf,pf->p", s, fb)
    g[:] = radial[:, None] * u + (sa[:, None] * (e[rows] - a[:, None] * u)
                                  + sb[:, None] * (e[neigh] - b[:, None] * u)) / r[:, None]
