# cython: language_level=3
"""Exchange-3b descriptor kernels (paper Appendix A, Eq. A5 in Legendre form).

Triplets (i; p, q): two distinct entries p ≠ q of atom i's neighbour list (j = neigh[p],
k = neigh[q]), ordered, whose third edge r_jk = |D_q - D_p| is shorter than ``rc``
(D_p: pair vectors). With A_p[l] = w_l P_l(e_i·e_j), B[l] = w_l P_l(e_j·e_k) and
f_c(r) = ½(1 + cos(π r/rc))::

    d[i, n1, n2, l1, l2, l3] = Σ_(p,q) R[p, n1] R[q, n2] f_c(r_jk) A_p[l1] A_q[l2] B[l3]

R[p, n] = radial basis × cutoff of pair p, precomputed. Pure-Python twin:
:mod:`otf_spin.kernels.exchange3b_py`.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport cos, sin, sqrt, M_PI

cnp.import_array()

cdef enum:
    LMAX_CAP = 16


cdef inline void _legendre(double c, int lmax, const double* w, double* P,
                           double* dP) noexcept nogil:
    """w_l P_l(c) and w_l P_l'(c) for l = 0..lmax by the three-term recursions."""
    cdef int l
    cdef double p[LMAX_CAP + 1]
    cdef double dp[LMAX_CAP + 1]
    p[0] = 1.0
    dp[0] = 0.0
    if lmax >= 1:
        p[1] = c
        dp[1] = 1.0
    for l in range(2, lmax + 1):
        p[l] = ((2 * l - 1) * c * p[l - 1] - (l - 1) * p[l - 2]) / l
        dp[l] = dp[l - 2] + (2 * l - 1) * p[l - 1]
    for l in range(lmax + 1):
        P[l] = w[l] * p[l]
        dP[l] = w[l] * dp[l]


cdef inline double _dot(const double[:, ::1] e, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return e[a, 0] * e[b, 0] + e[a, 1] * e[b, 1] + e[a, 2] * e[b, 2]


cdef inline double _edge(const double[:, ::1] D, Py_ssize_t p, Py_ssize_t q, double* x)\
        noexcept nogil:
    """x = D_q - D_p (the third edge r_k - r_j) and its length."""
    x[0] = D[q, 0] - D[p, 0]
    x[1] = D[q, 1] - D[p, 1]
    x[2] = D[q, 2] - D[p, 2]
    return sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2])


cdef _row_factors(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
                  const cnp.int64_t[::1] neigh, const double[::1] w):
    """Per pair p: A[p, l] = w_l P_l(e_i·e_j) and dA = w_l P_l'(e_i·e_j)."""
    cdef Py_ssize_t n_pairs = neigh.shape[0], i, p
    cdef int lmax = w.shape[0] - 1
    A = np.empty((n_pairs, lmax + 1))
    dA = np.empty((n_pairs, lmax + 1))
    cdef double[:, ::1] Av = A
    cdef double[:, ::1] dAv = dA
    with nogil:
        for i in range(e.shape[0]):
            for p in range(offsets[i], offsets[i + 1]):
                _legendre(_dot(e, i, neigh[p]), lmax, &w[0], &Av[p, 0], &dAv[p, 0])
    return A, dA


def _check(const double[::1] w):
    if w.shape[0] - 1 > LMAX_CAP:
        raise ValueError(f"l_max {w.shape[0] - 1} exceeds the compiled limit {LMAX_CAP}")


def descriptor(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
               const cnp.int64_t[::1] neigh, const double[:, ::1] R,
               const double[:, ::1] vectors, double rc, const double[::1] w,
               double[:, :, :, :, :, ::1] d):
    """Write d (N, n_max, n_max, l_max+1, l_max+1, l_max+1) in place."""
    _check(w)
    A_, dA_ = _row_factors(e, offsets, neigh, w)
    cdef const double[:, ::1] A = A_
    cdef Py_ssize_t nmax = R.shape[1], i, p, q, n1, n2
    cdef int L = w.shape[0], l1, l2, l3
    cdef double B[LMAX_CAP + 1]
    cdef double dB[LMAX_CAP + 1]
    cdef double x, r, fc
    cdef double edge[3]
    d[...] = 0.0
    with nogil:
        for i in range(e.shape[0]):
            for p in range(offsets[i], offsets[i + 1]):
                for q in range(offsets[i], offsets[i + 1]):
                    if q == p:
                        continue
                    r = _edge(vectors, p, q, edge)
                    if r >= rc:
                        continue
                    fc = 0.5 * (1.0 + cos(M_PI * r / rc))
                    _legendre(_dot(e, neigh[p], neigh[q]), L - 1, &w[0], B, dB)
                    for n1 in range(nmax):
                        for n2 in range(nmax):
                            for l1 in range(L):
                                for l2 in range(L):
                                    x = fc * R[p, n1] * R[q, n2] * A[p, l1] * A[q, l2]
                                    for l3 in range(L):
                                        d[i, n1, n2, l1, l2, l3] += x * B[l3]


def contract_gradient(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
                      const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                      const double[:, ::1] vectors, double rc, const double[::1] w, const double[:, :, :, :, :, :, ::1] G,
                      double[:, :, ::1] grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a for M weight sets G (M, N, n, n, l, l, l),
    unprojected (M, N, 3): chain rule through e_i·e_j, e_i·e_k and e_j·e_k."""
    _check(w)
    A_, dA_ = _row_factors(e, offsets, neigh, w)
    cdef const double[:, ::1] A = A_
    cdef const double[:, ::1] dA = dA_
    cdef Py_ssize_t M = G.shape[0], nmax = R.shape[1], i, p, q, j, k, n1, n2, m
    cdef int L = w.shape[0], l1, l2, l3
    cdef double B[LMAX_CAP + 1]
    cdef double dB[LMAX_CAP + 1]
    cdef double s1, s2, s3, gb, gdb, g, rr, xp, xq, r, fc
    cdef double edge[3]
    grad[...] = 0.0
    with nogil:
        for i in range(e.shape[0]):
            for p in range(offsets[i], offsets[i + 1]):
                j = neigh[p]
                for q in range(offsets[i], offsets[i + 1]):
                    if q == p:
                        continue
                    r = _edge(vectors, p, q, edge)
                    if r >= rc:
                        continue
                    fc = 0.5 * (1.0 + cos(M_PI * r / rc))
                    k = neigh[q]
                    _legendre(_dot(e, j, k), L - 1, &w[0], B, dB)
                    for m in range(M):
                        s1 = 0.0
                        s2 = 0.0
                        s3 = 0.0
                        for n1 in range(nmax):
                            for n2 in range(nmax):
                                rr = fc * R[p, n1] * R[q, n2]
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
                        grad[m, i, 0] += s1 * e[j, 0] + s2 * e[k, 0]
                        grad[m, i, 1] += s1 * e[j, 1] + s2 * e[k, 1]
                        grad[m, i, 2] += s1 * e[j, 2] + s2 * e[k, 2]
                        grad[m, j, 0] += s1 * e[i, 0] + s3 * e[k, 0]
                        grad[m, j, 1] += s1 * e[i, 1] + s3 * e[k, 1]
                        grad[m, j, 2] += s1 * e[i, 2] + s3 * e[k, 2]
                        grad[m, k, 0] += s2 * e[i, 0] + s3 * e[j, 0]
                        grad[m, k, 1] += s2 * e[i, 1] + s3 * e[j, 1]
                        grad[m, k, 2] += s2 * e[i, 2] + s3 * e[j, 2]


def pair_gradient(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
                  const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                  const double[:, ::1] dR, const double[:, ::1] vectors, double rc,
                  const double[::1] w, const double[:, :, :, :, :, ::1] G,
                  double[:, ::1] g):
    """g[p] = ∂E/∂D_p (P, 3), D_p = r_j + S - r_i, for E = Σ_i G[i]·d_i: through r_ij,
    r_ik and the third edge r_jk."""
    _check(w)
    A_, dA_ = _row_factors(e, offsets, neigh, w)
    cdef const double[:, ::1] A = A_
    cdef Py_ssize_t nmax = R.shape[1], i, p, q, n1, n2, x
    cdef int L = w.shape[0], l1, l2, l3
    cdef double B[LMAX_CAP + 1]
    cdef double dB[LMAX_CAP + 1]
    cdef double edge[3]
    cdef double gb, aa, t1, t2, t3, r, fc, dfc, lp, lq
    g[...] = 0.0
    with nogil:
        for i in range(e.shape[0]):
            for p in range(offsets[i], offsets[i + 1]):
                for q in range(offsets[i], offsets[i + 1]):
                    if q == p:
                        continue
                    r = _edge(vectors, p, q, edge)
                    if r >= rc:
                        continue
                    fc = 0.5 * (1.0 + cos(M_PI * r / rc))
                    dfc = -0.5 * M_PI / rc * sin(M_PI * r / rc)
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
                    lp = sqrt(vectors[p, 0] ** 2 + vectors[p, 1] ** 2 + vectors[p, 2] ** 2)
                    lq = sqrt(vectors[q, 0] ** 2 + vectors[q, 1] ** 2 + vectors[q, 2] ** 2)
                    for x in range(3):
                        g[p, x] += fc * t1 * vectors[p, x] / lp - dfc * t3 * edge[x] / r
                        g[q, x] += fc * t2 * vectors[q, x] / lq + dfc * t3 * edge[x] / r
