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


def radial_parts(r, r_cut, n_max, radial_scaling):
    """Pieces of the radial basis at distances r (P,) Å, each (P, 1) or (P, n_max):
    g, dg/dr (the l = 0 spherical Bessel functions), f_cut, df_cut/dr, u, du/dr
    (u = 1/(1 + (r/r_s)^m), or 1 with ``radial_scaling`` None) —
    :meth:`otf_spin.descriptors.soso.RadialPairs.radial` multiplies them."""
    r = np.asarray(r, float)[:, None]
    rc = r_cut
    k = np.pi * np.arange(1, n_max + 1)[None, :] / rc
    g = np.sqrt(2.0 / rc) * np.sin(k * r) / r
    dg = np.sqrt(2.0 / rc) * (k * np.cos(k * r) / r - np.sin(k * r) / r**2)
    inside = r < rc
    fc = np.where(inside, 0.5 * (1.0 + np.cos(np.pi * r / rc)), 0.0)
    dfc = np.where(inside, -0.5 * np.pi / rc * np.sin(np.pi * r / rc), 0.0)
    if radial_scaling is not None:
        rs, m = radial_scaling
        q = (r / rs) ** m
        u = 1.0 / (1.0 + q)
        du = -m * q / r * u**2
    else:
        u, du = np.ones_like(r), np.zeros_like(r)
    return g, dg, fc, dfc, u, du


def radial_basis(r, r_cut, r_s, m, out):
    """R_n(r) = f_cut u g_n into out (P, n_max) (see the compiled kernel; r_s ≤ 0: no
    radial scaling)."""
    g, _, fc, _, u, _ = radial_parts(r, r_cut, out.shape[1], (r_s, m) if r_s > 0 else None)
    out[:] = fc * u * g


def bspline_pieces(u) -> tuple[np.ndarray, np.ndarray]:
    """The four cubic pieces of the uniform B-spline B(t) (support [0, 4]) at t = u + k,
    k = 0..3, for u in [0, 1) (P,): values and dB/dt, arrays (P, 4) in order k = 0..3."""
    u = np.asarray(u, float)
    v = 1.0 - u
    u2, u3 = u * u, u * u * u
    B = np.stack([u3 / 6.0, (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0,
                  (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0, v * v * v / 6.0], axis=1)
    dB = np.stack([0.5 * u2, 0.5 * (-3.0 * u2 + 2.0 * u + 1.0), 0.5 * (3.0 * u2 - 4.0 * u),
                   -0.5 * v * v], axis=1)
    return B, dB


def bspline_support(r, r_min, h, n_basis) -> tuple[np.ndarray, np.ndarray]:
    """The four uniform cubic B-splines B_n(r) = B((r - r_min)/h - n) that can be nonzero
    at each distance r (P,) Å: in knot interval k = floor((r - r_min)/h), n = k - m for
    piece m = 0..3. Returns n (P, 4) int64 (-1 where outside 0 … n_basis - 1) and u (P,)
    = (r - r_min)/h - k in [0, 1), the argument of :func:`bspline_pieces`."""
    t = (np.asarray(r, float) - r_min) / h
    k = np.floor(t)
    n = k.astype(np.int64)[:, None] - np.arange(4)[None, :]
    return np.where((n >= 0) & (n < n_basis), n, -1), t - k


def bspline_dot(r, r_min, h, weights, out):
    """out (P, K) = Σ_n B_n(r) weights[n] for distances r (P,) Å and weights (n_basis, K)
    (see the compiled kernel): the four pieces per distance, no (P, n_basis) table."""
    n, u = bspline_support(r, r_min, h, len(weights))
    B = np.where(n >= 0, bspline_pieces(u)[0], 0.0)
    out[:] = 0.0
    for m in range(4):          # (P, K) temporaries only
        out += B[:, m, None] * weights[np.maximum(n[:, m], 0)]
