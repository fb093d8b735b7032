# cython: language_level=3
"""Exchange-2b SOSO descriptor kernels (paper Eq. 26 in per-pair form).

d_i[n, l] = Σ_{p in row i} R[p, n] w[l] P_l(e_i·e_j),  R[p, n] = radial basis × cutoff
of pair p, precomputed (depends on positions only). Pure-Python twin:
:mod:`otf_spin.kernels.soso_py`.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport sin, cos, sqrt, pow, floor

from spin_kernels cimport legendre_d

cnp.import_array()

cdef enum:
    LMAX_CAP = 32


cdef Py_ssize_t _partners(const cnp.int64_t[::1] offsets, const cnp.int64_t[::1] neigh,
                          Py_ssize_t i, bint skip_self, unsigned char* seen,
                          cnp.int64_t* touched) noexcept nogil:
    """Distinct partners j of row i (first-seen order) into ``touched``; returns their
    number. ``seen`` (N,) comes back cleared."""
    cdef Py_ssize_t p, j, nt = 0
    for p in range(offsets[i], offsets[i + 1]):
        j = neigh[p]
        if (skip_self and j == i) or seen[j]:
            continue
        seen[j] = 1
        touched[nt] = j
        nt += 1
    for p in range(nt):
        seen[touched[p]] = 0
    return nt


cdef Py_ssize_t _self_pairs(const cnp.int64_t[::1] offsets, const cnp.int64_t[::1] neigh,
                            Py_ssize_t i) noexcept nogil:
    """Pairs of row i with itself (self images)."""
    cdef Py_ssize_t p, count = 0
    for p in range(offsets[i], offsets[i + 1]):
        count += neigh[p] == i
    return count


cdef void _summed_rows(const cnp.int64_t[::1] offsets, const cnp.int64_t[::1] neigh,
                       const double[:, ::1] R, Py_ssize_t i, bint skip_self,
                       double* Rs) noexcept nogil:
    """Rs[j, :] += R[p, :] over the pairs p of row i (the periodic images of each
    partner j summed; Rs is (N, n_max), zero on the partners before the call)."""
    cdef Py_ssize_t p, j, n, nmax = R.shape[1]
    for p in range(offsets[i], offsets[i + 1]):
        j = neigh[p]
        if skip_self and j == i:
            continue
        for n in range(nmax):
            Rs[j * nmax + n] += R[p, n]


def descriptor(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
               const cnp.int64_t[::1] neigh, const double[:, ::1] R, const double[::1] w,
               double[:, :, ::1] d):
    """Write d (N, n_max, l_max+1) in place. The periodic images of one partner j share
    e_i·e_j: in rows where a partner appears more than once (cells narrower than 2 r_c)
    their radial rows are summed first, so each distinct partner costs one Legendre
    evaluation and one n_max × (l_max+1) update (equal to the per-pair sum to rounding)."""
    cdef Py_ssize_t n_atoms = e.shape[0], nmax = R.shape[1]
    cdef int lmax = w.shape[0] - 1
    cdef Py_ssize_t i, p, j, n, t, nt
    cdef int l
    cdef double c, r
    cdef double P[LMAX_CAP + 1]
    cdef double dP[LMAX_CAP + 1]
    cdef double wp[LMAX_CAP + 1]
    if lmax > LMAX_CAP:
        raise ValueError(f"l_max {lmax} exceeds the compiled limit {LMAX_CAP}")
    cdef double[::1] Rs = np.zeros(max(n_atoms, 1) * nmax)
    cdef cnp.int64_t[::1] touched = np.empty(max(n_atoms, 1), np.int64)
    cdef unsigned char[::1] seen = np.zeros(max(n_atoms, 1), np.uint8)
    d[:, :, :] = 0.0
    with nogil:
        for i in range(n_atoms):
            nt = _partners(offsets, neigh, i, False, &seen[0], &touched[0])
            if nt == offsets[i + 1] - offsets[i]:      # no repeated partner: per pair
                for p in range(offsets[i], offsets[i + 1]):
                    j = neigh[p]
                    c = e[i, 0] * e[j, 0] + e[i, 1] * e[j, 1] + e[i, 2] * e[j, 2]
                    legendre_d(c, lmax, P, dP)
                    for l in range(lmax + 1):
                        wp[l] = w[l] * P[l]
                    for n in range(nmax):
                        for l in range(lmax + 1):
                            d[i, n, l] += R[p, n] * wp[l]
                continue
            _summed_rows(offsets, neigh, R, i, False, &Rs[0])
            for t in range(nt):
                j = touched[t]
                c = e[i, 0] * e[j, 0] + e[i, 1] * e[j, 1] + e[i, 2] * e[j, 2]
                legendre_d(c, lmax, P, dP)
                for l in range(lmax + 1):
                    wp[l] = w[l] * P[l]
                for n in range(nmax):
                    r = Rs[j * nmax + n]
                    Rs[j * nmax + n] = 0.0
                    for l in range(lmax + 1):
                        d[i, n, l] += r * wp[l]


def contract_gradient(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
                      const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                      const double[::1] w, const double[:, :, :, ::1] G,
                      double[:, :, ::1] grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a for M weight sets G (M, N, n_max, l_max+1).

    With G[m, i] = ∂E/∂d_i this is the (unprojected) ∂E/∂e_a, shape (M, N, 3).
    Uses the full pair list's symmetry: ∂E/∂e_a = Σ_{p in row a} (G_a + G_j)·T_p e_j,
    T_p[n, l] = R[p, n] w_l P_l'(e_a·e_j). Self-image pairs (j == a) are skipped
    (their derivative is along e_a, which the transverse projection removes). The
    periodic images of one partner share T_p up to R: their radial rows are summed
    first (as in :func:`descriptor`), so the M × n_max × (l_max+1) contraction runs
    once per distinct partner, not once per image.
    """
    cdef Py_ssize_t M = G.shape[0], n_atoms = e.shape[0], nmax = R.shape[1]
    cdef int lmax = w.shape[0] - 1
    cdef Py_ssize_t a, p, j, n, m, t, nt
    cdef int l
    cdef double c, s, r
    cdef double P[LMAX_CAP + 1]
    cdef double dP[LMAX_CAP + 1]
    cdef double wd[LMAX_CAP + 1]
    if lmax > LMAX_CAP:
        raise ValueError(f"l_max {lmax} exceeds the compiled limit {LMAX_CAP}")
    cdef double[::1] Rs = np.zeros(max(n_atoms, 1) * nmax)
    cdef cnp.int64_t[::1] touched = np.empty(max(n_atoms, 1), np.int64)
    cdef unsigned char[::1] seen = np.zeros(max(n_atoms, 1), np.uint8)
    cdef double* row
    cdef bint summed
    grad[:, :, :] = 0.0
    with nogil:
        for a in range(n_atoms):
            nt = _partners(offsets, neigh, a, True, &seen[0], &touched[0])
            summed = nt < offsets[a + 1] - offsets[a] - _self_pairs(offsets, neigh, a)
            if summed:          # some partner repeats: sum its images' radial rows
                _summed_rows(offsets, neigh, R, a, True, &Rs[0])
            else:               # every partner once: walk the pairs themselves
                nt = offsets[a + 1] - offsets[a]
            for t in range(nt):
                if summed:
                    j = touched[t]
                    row = &Rs[j * nmax]
                else:
                    p = offsets[a] + t
                    j = neigh[p]
                    if j == a:
                        continue
                    row = &R[p, 0]
                c = e[a, 0] * e[j, 0] + e[a, 1] * e[j, 1] + e[a, 2] * e[j, 2]
                legendre_d(c, lmax, P, dP)
                for l in range(lmax + 1):
                    wd[l] = w[l] * dP[l]
                for m in range(M):
                    s = 0.0
                    for n in range(nmax):
                        r = row[n]
                        for l in range(lmax + 1):
                            s += (G[m, a, n, l] + G[m, j, n, l]) * r * wd[l]
                    grad[m, a, 0] += s * e[j, 0]
                    grad[m, a, 1] += s * e[j, 1]
                    grad[m, a, 2] += s * e[j, 2]
                if summed:
                    for n in range(nmax):
                        row[n] = 0.0


def radial_basis(const double[::1] r, double r_cut, double r_s, double m,
                 double[:, ::1] out):
    """R_n(r) = f_cut(r) u(r) g_n(r), n < n_max = out.shape[1], of the distances r (P,)
    Å into out (P, n_max) (Å^-3/2): the values of
    :meth:`otf_spin.descriptors.soso.RadialPairs.radial` (twin: its formula), without
    the derivatives. sin((n+1)θ), θ = πr/r_c, by rotating (sin θ, cos θ) n times (one
    sin and cos per pair; rounding grows ~n ulp: ≲ 1e-14 of the largest value at
    n_max 40), and f_cut = (1 + cos θ)/2 from the same cos. r_s ≤ 0: no radial
    scaling, else u = 1/(1 + (r/r_s)^m) ((r/r_s)^4 as two squarings: ≤ 2 ulp from pow).
    Zero from r_c on."""
    cdef Py_ssize_t P = r.shape[0], nmax = out.shape[1], p, n
    cdef double x, th, s1, c1, sn, cn, t, pref, fc, u, q
    cdef double pi = 3.141592653589793, norm = sqrt(2.0 / r_cut)
    if out.shape[0] != P:
        raise ValueError("radial_basis: out must be (len(r), n_max)")
    with nogil:
        for p in range(P):
            x = r[p]
            if x >= r_cut:
                for n in range(nmax):
                    out[p, n] = 0.0
                continue
            th = pi / r_cut * x
            s1 = sin(th)
            c1 = cos(th)
            fc = 0.5 * (1.0 + c1)
            if r_s <= 0:
                u = 1.0
            elif m == 4.0:                 # the default scaling: two products, no pow
                q = x / r_s
                q = q * q
                u = 1.0 / (1.0 + q * q)
            else:
                u = 1.0 / (1.0 + pow(x / r_s, m))
            pref = fc * u * norm / x
            sn = s1
            cn = c1
            for n in range(nmax):
                out[p, n] = pref * sn
                t = sn * c1 + cn * s1
                cn = cn * c1 - sn * s1
                sn = t


def bspline_dot(const double[::1] r, double r_min, double h, const double[:, ::1] weights,
                double[:, ::1] out):
    """out[p, :] = Σ_n B_n(r_p) weights[n, :] (P, K) for distances r (P,) Å and weights
    (n_basis, K): the uniform cubic B-splines B_n(r) = B((r - r_min)/h - n), n <
    n_basis, of :class:`otf_spin.descriptors.spline2b.SplineExchangeDescriptor` (twin:
    :func:`otf_spin.kernels.soso_py.bspline_dot`, same formula). Only the four pieces
    of the knot interval k = floor((r - r_min)/h) can be nonzero (n = k - m, m = 0..3,
    kept where 0 ≤ n < n_basis); none outside [r_min, r_min + (n_basis + 3) h)."""
    cdef Py_ssize_t P = r.shape[0], nb = weights.shape[0], K = weights.shape[1], p, c, m
    cdef cnp.int64_t k, n
    cdef double t, u, v, u2, u3, b[4]
    if out.shape[0] != P or out.shape[1] != K:
        raise ValueError("bspline_dot: out must be (len(r), weights.shape[1])")
    with nogil:
        for p in range(P):
            for c in range(K):
                out[p, c] = 0.0
            t = (r[p] - r_min) / h
            if not (t >= 0.0 and t < nb + 3):      # outside every support (or NaN)
                continue
            k = <cnp.int64_t>floor(t)
            u = t - k
            v = 1.0 - u
            u2 = u * u
            u3 = u * u * u
            b[0] = u3 / 6.0
            b[1] = (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0
            b[2] = (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0
            b[3] = v * v * v / 6.0
            for m in range(4):
                n = k - m
                if n >= 0 and n < nb:
                    for c in range(K):
                        out[p, c] += b[m] * weights[n, c]
