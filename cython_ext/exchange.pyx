# cython: language_level=3
"""Heisenberg pair sums over a CSR pair list (full, directed: each bond twice).

Field sums run on OpenMP threads (each row independent: thread-count independent results).
Pure-Python twin: :mod:`otf_spin.kernels.exchange_py`.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport sqrt, exp

from spin_kernels cimport trial_move

cnp.import_array()


cdef inline void _local_field(const double[:, ::1] e, const double[::1] s,
                              const cnp.int64_t[::1] offsets, const cnp.int64_t[::1] neigh,
                              const double[::1] J, Py_ssize_t i, bint skip_self,
                              double* h) noexcept nogil:
    """h = Σ_{p in row i} J_p s_j e_j (optionally without self-image pairs j == i)."""
    cdef Py_ssize_t p, j
    cdef double w
    h[0] = 0.0
    h[1] = 0.0
    h[2] = 0.0
    for p in range(offsets[i], offsets[i + 1]):
        j = neigh[p]
        if skip_self and j == i:
            continue
        w = J[p] * s[j]
        h[0] += w * e[j, 0]
        h[1] += w * e[j, 1]
        h[2] += w * e[j, 2]


def exchange_field(const double[:, ::1] e, const double[::1] s, const cnp.int64_t[::1] offsets,
                   const cnp.int64_t[::1] neigh, const double[::1] J, double[:, ::1] h):
    """h_i = Σ_{p in row i} J_p s_{j_p} e_{j_p}   (N, 3), eV per unit vector.

    e: (N, 3) unit vectors; s: (N,) moment scale factors; offsets: (N+1,) CSR
    row pointers into neigh/J (P,). Writes h in place.
    """
    cdef Py_ssize_t n = e.shape[0]
    cdef Py_ssize_t i
    with nogil:
        for i in prange(n, schedule="static"):
            _local_field(e, s, offsets, neigh, J, i, False, &h[i, 0])


def metropolis_sweep(double[:, ::1] e, const double[::1] s, const cnp.int64_t[::1] offsets,
                     const cnp.int64_t[::1] neigh, const double[::1] J,
                     const double[:, ::1] zeeman, double beta, double sigma,
                     const double[:, ::1] gauss, const double[::1] uniform):
    """One sequential Metropolis sweep with Gaussian trial moves; returns #accepted.

    Energy E = -Σ_{p} J_p s_i s_j e_i·e_j - Σ_i zeeman_i·e_i (eV), pair list full
    (each bond twice; self-image pairs are skipped: their energy is constant).
    Trial: e' = (e + sigma g) / |e + sigma g| (symmetric proposal); accepted if
    uniform_i < exp(-beta ΔE). e is updated in place.
    """
    cdef Py_ssize_t n = e.shape[0]
    cdef Py_ssize_t i
    cdef double hl[3]
    cdef double t[3]
    cdef double nx, ny, nz, de
    cdef Py_ssize_t accepted = 0
    for i in range(n):
        _local_field(e, s, offsets, neigh, J, i, True, hl)
        if not trial_move(e, i, sigma, gauss, t):
            continue
        nx, ny, nz = t[0], t[1], t[2]
        de = -(2.0 * s[i] * hl[0] + zeeman[i, 0]) * (nx - e[i, 0]) \
             - (2.0 * s[i] * hl[1] + zeeman[i, 1]) * (ny - e[i, 1]) \
             - (2.0 * s[i] * hl[2] + zeeman[i, 2]) * (nz - e[i, 2])
        if de <= 0.0 or uniform[i] < exp(-beta * de):
            e[i, 0] = nx
            e[i, 1] = ny
            e[i, 2] = nz
            accepted += 1
    return accepted


def exchange_field_plain(const double[:, ::1] e, const int[::1] offsets32,
                         const int[::1] neigh32, const double[::1] J, const double[::1] h0,
                         double[:, ::1] h):
    """h_i = h0 + Σ_{p in row i} J_p e_{j_p} (no per-atom scale; h0 (3,) a uniform
    field), int32 pair indices: the LLG hot path (moment factors folded into J)."""
    cdef Py_ssize_t n = e.shape[0]
    cdef Py_ssize_t i, p, j
    cdef double hx, hy, hz, w
    with nogil:
        for i in prange(n, schedule="static"):
            hx = h0[0]
            hy = h0[1]
            hz = h0[2]
            for p in range(offsets32[i], offsets32[i + 1]):
                j = neigh32[p]
                w = J[p]
                hx = hx + w * e[j, 0]
                hy = hy + w * e[j, 1]
                hz = hz + w * e[j, 2]
            h[i, 0] = hx
            h[i, 1] = hy
            h[i, 2] = hz
