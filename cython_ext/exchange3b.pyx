# cython: language_level=3
"""Exchange-3b descriptor kernels (paper Appendix A, Eq. A5 in Legendre form).

Triplets t = (p, q): two distinct entries of one row i = rows[p] = rows[q] of the pair
list (j = neigh[p], k = neigh[q]), ordered, with the third edge r_jk inside the cutoff;
listed once per structure (positions only) with fc[t] = f_cut(r_jk). With
A_p[l] = w_l P_l(e_i·e_j) and B_t[l] = w_l P_l(e_j·e_k)::

    d[i, n1, n2, l1, l2, l3] = Σ_t R[p, n1] R[q, n2] fc[t] A_p[l1] A_q[l2] B_t[l3]

R[p, n] = radial basis × cutoff of pair p. Pure-Python twin:
:mod:`otf_spin.kernels.exchange3b_py`.
"""
import numpy as np
cimport numpy as cnp

from spin_kernels cimport legendre_d

cnp.import_array()

cdef enum:
    LMAX_CAP = 16


cdef inline void _legendre(double c, int lmax, const double* w, double* P,
                           double* dP) noexcept nogil:
    """w_l P_l(c) and w_l P_l'(c) for l = 0..lmax by the three-term recursions."""
    cdef int l
    cdef double p[LMAX_CAP + 1]
    cdef double dp[LMAX_CAP + 1]
    legendre_d(c, lmax, p, dp)
    for l in range(lmax + 1):
        P[l] = w[l] * p[l]
        dP[l] = w[l] * dp[l]


cdef inline double _dot(const double[:, ::1] e, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return e[a, 0] * e[b, 0] + e[a, 1] * e[b, 1] + e[a, 2] * e[b, 2]


def _pair_factors(const double[:, ::1] e, const cnp.int64_t[::1] rows,
                  const cnp.int64_t[::1] neigh, const double[::1] w):
    """Per pair p: A[p, l] = w_l P_l(e_i·e_j) and dA = w_l P_l'(e_i·e_j)."""
    if w.shape[0] - 1 > LMAX_CAP:
        raise ValueError(f"l_max {w.shape[0] - 1} exceeds the compiled limit {LMAX_CAP}")
    cdef Py_ssize_t p
    cdef int lmax = w.shape[0] - 1
    A = np.empty((neigh.shape[0], lmax + 1))
    dA = np.empty((neigh.shape[0], lmax + 1))
    cdef double[:, ::1] Av = A
    cdef double[:, ::1] dAv = dA
    with nogil:
        for p in range(neigh.shape[0]):
            _legendre(_dot(e, rows[p], neigh[p]), lmax, &w[0], &Av[p, 0], &dAv[p, 0])
    return A, dA


def descriptor(const double[:, ::1] e, const cnp.int64_t[::1] rows,
               const cnp.int64_t[::1] neigh, const double[:, ::1] R, const double[::1] w,
               const cnp.int64_t[:, ::1] trip, const double[::1] fc,
               double[:, :, :, :, :, ::1] d):
    """Write d (N, n_max, n_max, l_max+1, l_max+1, l_max+1) in place; trip (T, 2)."""
    A_, _ = _pair_factors(e, rows, neigh, w)
    cdef const double[:, ::1] A = A_
    cdef Py_ssize_t nmax = R.shape[1], t, i, p, q, n1, n2
    cdef int L = w.shape[0], l1, l2, l3
    cdef double B[LMAX_CAP + 1]
    cdef double dB[LMAX_CAP + 1]
    cdef double x
    d[...] = 0.0
    with nogil:
        for t in range(trip.shape[0]):
            p, q = trip[t, 0], trip[t, 1]
            i = rows[p]
            _legendre(_dot(e, neigh[p], neigh[q]), L - 1, &w[0], B, dB)
            for n1 in range(nmax):
                for n2 in range(nmax):
                    for l1 in range(L):
                        for l2 in range(L):
                            x = fc[t] * R[p, n1] * R[q, n2] * A[p, l1] * A[q, l2]
                            for l3 in range(L):
                                d[i, n1, n2, l1, l2, l3] += x * B[l3]


def contract_gradient(const double[:, ::1] e, const cnp.int64_t[::1] rows,
                      const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                      const double[::1] w, const cnp.int64_t[:, ::1] trip,
                      const double[::1] fc, const double[:, :, :, :, :, :, ::1] G,
                      double[:, :, ::1] grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a for M weight sets G (M, N, n, n, l, l, l),
    unprojected (M, N, 3): chain rule through e_i·e_j, e_i·e_k and e_j·e_k."""
    A_, dA_ = _pair_factors(e, rows, neigh, w)
    cdef const double[:, ::1] A = A_
    cdef const double[:, ::1] dA = dA_
    cdef Py_ssize_t M = G.shape[0], nmax = R.shape[1], t, i, p, q, j, k, n1, n2, m, x
    cdef int L = w.shape[0], l1, l2, l3
    cdef double B[LMAX_CAP + 1]
    cdef double dB[LMAX_CAP + 1]
    cdef double s1, s2, s3, gb, gdb, g, rr, xp, xq
    grad[...] = 0.0
    with nogil:
        for t in range(trip.shape[0]):
            p, q = trip[t, 0], trip[t, 1]
            i, j, k = rows[p], neigh[p], neigh[q]
            _legendre(_dot(e, j, k), L - 1, &w[0], B, dB)
            for m in range(M):
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                for n1 in range(nmax):
                    for n2 in range(nmax):
                        rr = fc[t] * R[p, n1] * R[q, n2]
                        for l1 in range(L):
                            for l2 in range(L):
                                gb = 0.0
                                gdb = 0.0
                                for l3 in range(L):
                                    g = G[m, i, n1, n2, l1, l2, l3]
                                    gb = gb + g * B[l3]
                                    gdb = gdb + g * dB[l3]
                                xp = A[p, l1]
                                xq = A[q, l2]
                                s1 = s1 + rr * gb * dA[p, l1] * xq
                                s2 = s2 + rr * gb * xp * dA[q, l2]
                                s3 = s3 + rr * gdb * xp * xq
                for x in range(3):
                    grad[m, i, x] += s1 * e[j, x] + s2 * e[k, x]
                    grad[m, j, x] += s1 * e[i, x] + s3 * e[k, x]
                    grad[m, k, x] += s2 * e[i, x] + s3 * e[j, x]


def pair_gradient(const double[:, ::1] e, const cnp.int64_t[::1] rows,
                  const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                  const double[:, ::1] dR, const double[:, ::1] u, const double[::1] w,
                  const cnp.int64_t[:, ::1] trip, const double[::1] fc,
                  const double[:, ::1] dfc, const double[:, :, :, :, :, ::1] G,
                  double[:, ::1] g):
    """g[p] = ∂E/∂D_p (P, 3), D_p = r_j + S - r_i, for E = Σ_i G[i]·d_i: through r_ij
    (u: unit pair vectors), r_ik and the third edge (dfc[t] = ∂f_cut(r_jk)/∂(D_q - D_p),
    (T, 3))."""
    A_, _ = _pair_factors(e, rows, neigh, w)
    cdef const double[:, ::1] A = A_
    cdef Py_ssize_t nmax = R.shape[1], t, i, p, q, n1, n2, x
    cdef int L = w.shape[0], l1, l2, l3
    cdef double B[LMAX_CAP + 1]
    cdef double dB[LMAX_CAP + 1]
    cdef double gb, aa, t1, t2, t3
    g[...] = 0.0
    with nogil:
        for t in range(trip.shape[0]):
            p, q = trip[t, 0], trip[t, 1]
            i = rows[p]
            _legendre(_dot(e, neigh[p], neigh[q]), L - 1, &w[0], B, dB)
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            for n1 in range(nmax):
                for n2 in range(nmax):
                    for l1 in range(L):
                        for l2 in range(L):
                            gb = 0.0
                            for l3 in range(L):
                                gb = gb + G[i, n1, n2, l1, l2, l3] * B[l3]
                            aa = gb * A[p, l1] * A[q, l2]
                            t1 = t1 + aa * dR[p, n1] * R[q, n2]
                            t2 = t2 + aa * R[p, n1] * dR[q, n2]
                            t3 = t3 + aa * R[p, n1] * R[q, n2]
            for x in range(3):
                g[p, x] += fc[t] * t1 * u[p, x] - t3 * dfc[t, x]
                g[q, x] += fc[t] * t2 * u[q, x] + t3 * dfc[t, x]
