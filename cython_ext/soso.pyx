# cython: language_level=3
"""Exchange-2b SOSO descriptor kernels (paper Eq. 26 in per-pair form).

d_i[n, l] = Σ_{p in row i} R[p, n] w[l] P_l(e_i·e_j),  R[p, n] = radial basis × cutoff
of pair p, precomputed (depends on positions only). Pure-Python twin:
:mod:`otf_spin.kernels.soso_py`.
"""
import numpy as np
cimport numpy as cnp

from spin_kernels cimport legendre_d

cnp.import_array()

cdef enum:
    LMAX_CAP = 32


def descriptor(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
               const cnp.int64_t[::1] neigh, const double[:, ::1] R, const double[::1] w,
               double[:, :, ::1] d):
    """Write d (N, n_max, l_max+1) in place."""
    cdef Py_ssize_t n_atoms = e.shape[0], nmax = R.shape[1]
    cdef int lmax = w.shape[0] - 1
    cdef Py_ssize_t i, p, j, n
    cdef int l
    cdef double c
    cdef double P[LMAX_CAP + 1]
    cdef double dP[LMAX_CAP + 1]
    cdef double wp[LMAX_CAP + 1]
    if lmax > LMAX_CAP:
        raise ValueError(f"l_max {lmax} exceeds the compiled limit {LMAX_CAP}")
    d[:, :, :] = 0.0
    with nogil:
        for i in range(n_atoms):
            for p in range(offsets[i], offsets[i + 1]):
                j = neigh[p]
                c = e[i, 0] * e[j, 0] + e[i, 1] * e[j, 1] + e[i, 2] * e[j, 2]
                legendre_d(c, lmax, P, dP)
                for l in range(lmax + 1):
                    wp[l] = w[l] * P[l]
                for n in range(nmax):
                    for l in range(lmax + 1):
                        d[i, n, l] += R[p, n] * wp[l]


def contract_gradient(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
                      const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                      const double[::1] w, const double[:, :, :, ::1] G,
                      double[:, :, ::1] grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a for M weight sets G (M, N, n_max, l_max+1).

    With G[m, i] = ∂E/∂d_i this is the (unprojected) ∂E/∂e_a, shape (M, N, 3).
    Uses the full pair list's symmetry: ∂E/∂e_a = Σ_{p in row a} (G_a + G_j)·T_p e_j,
    T_p[n, l] = R[p, n] w_l P_l'(e_a·e_j). Self-image pairs (j == a) are skipped
    (their derivative is along e_a, which the transverse projection removes).
    """
    cdef Py_ssize_t M = G.shape[0], n_atoms = e.shape[0], nmax = R.shape[1]
    cdef int lmax = w.shape[0] - 1
    cdef Py_ssize_t a, p, j, n, m
    cdef int l
    cdef double c, s, r
    cdef double P[LMAX_CAP + 1]
    cdef double dP[LMAX_CAP + 1]
    cdef double wd[LMAX_CAP + 1]
    if lmax > LMAX_CAP:
        raise ValueError(f"l_max {lmax} exceeds the compiled limit {LMAX_CAP}")
    grad[:, :, :] = 0.0
    with nogil:
        for a in range(n_atoms):
            for p in range(offsets[a], offsets[a + 1]):
                j = neigh[p]
                if j == a:
                    continue
                c = e[a, 0] * e[j, 0] + e[a, 1] * e[j, 1] + e[a, 2] * e[j, 2]
                legendre_d(c, lmax, P, dP)
                for l in range(lmax + 1):
                    wd[l] = w[l] * dP[l]
                for m in range(M):
                    s = 0.0
                    for n in range(nmax):
                        r = R[p, n]
                        for l in range(lmax + 1):
                            s += (G[m, a, n, l] + G[m, j, n, l]) * r * wd[l]
                    grad[m, a, 0] += s * e[j, 0]
                    grad[m, a, 1] += s * e[j, 1]
                    grad[m, a, 2] += s * e[j, 2]
