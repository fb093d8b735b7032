# cython: language_level=3
"""Periodic neighbour list by binning in fractional coordinates.

Correct for any cutoff, including cutoffs larger than the cell (one atom pair
then appears through several periodic images at different distances). Bins are at
least cutoff/2 wide (5³ bins in reach instead of 3³ of cutoff-wide bins: about half the
distances computed), each bin's coordinates are stored together, and the pairs are
found in one pass. Pure-Python twin: :mod:`otf_spin.kernels.neighbours_py` (ASE).
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport floor, ceil, sqrt

cnp.import_array()

cdef enum:
    SUBDIVISION = 2      # bins per cutoff along each periodic direction (when it fits)
    MAX_BINS = 64        # bins along one direction at most


def neighbour_pairs(double[:, ::1] cell, pbc, double[:, ::1] positions, double cutoff):
    """All pairs (i, j, S) with |r_j + S·cell - r_i| < cutoff, excluding i == j, S == 0.

    Returns (i, j, S, D, d): int64 (P,), int64 (P,), int64 (P, 3), float64 (P, 3) Å,
    float64 (P,) Å, grouped by i in ascending order (j in no particular order).
    """
    return _search(cell, pbc, positions, cutoff, True)


def neighbour_distances(double[:, ::1] cell, pbc, double[:, ::1] positions, double cutoff):
    """(i, j, d) of :func:`neighbour_pairs` (the same pairs in the same order) without
    the shifts and vectors: int64 (P,), int64 (P,), float64 (P,) Å."""
    return _search(cell, pbc, positions, cutoff, False)


cdef tuple _search(double[:, ::1] cell, pbc, double[:, ::1] positions, double cutoff,
                   bint vectors):
    """The binned search of both functions: atoms in bins ≥ cutoff / SUBDIVISION wide
    (fractional coordinates), each atom against the bins within reach, one pass over
    the pairs into arrays sized from the density (grown if a denser spot overflows
    them); ``vectors``: also S and D."""
    cdef Py_ssize_t n = positions.shape[0]
    cdef double[:, ::1] inv = np.ascontiguousarray(np.linalg.inv(np.asarray(cell)))
    cdef double[:, ::1] frac = np.ascontiguousarray(np.asarray(positions) @ np.asarray(inv))
    cdef cnp.int64_t[:, ::1] wrap = np.zeros((n, 3), dtype=np.int64)
    cdef cnp.int64_t nb[3]
    cdef cnp.int64_t m[3]
    cdef int periodic[3]
    cdef double h
    cdef Py_ssize_t a, k
    cdef double rc2 = cutoff * cutoff
    for k in range(3):
        periodic[k] = 1 if pbc[k] else 0
        h = 1.0 / sqrt(inv[0, k] * inv[0, k] + inv[1, k] * inv[1, k] + inv[2, k] * inv[2, k])
        if periodic[k]:
            nb[k] = <cnp.int64_t>floor(SUBDIVISION * h / cutoff)
            if nb[k] < 1:
                nb[k] = 1
            if nb[k] > MAX_BINS:
                nb[k] = MAX_BINS
            m[k] = <cnp.int64_t>ceil(cutoff * nb[k] / h)
        else:
            nb[k] = 1
            m[k] = 0
    # wrap periodic coordinates into [0, 1)
    cdef double f
    for a in range(n):
        for k in range(3):
            if periodic[k]:
                f = floor(frac[a, k])
                frac[a, k] -= f
                wrap[a, k] = <cnp.int64_t>f
                if frac[a, k] >= 1.0:
                    frac[a, k] -= 1.0
                    wrap[a, k] += 1
    # counting sort of atoms into bins; their fractional coordinates copied in bin order
    cdef cnp.int64_t nbins = nb[0] * nb[1] * nb[2]
    cdef cnp.int64_t[:, ::1] abin = np.zeros((n, 3), dtype=np.int64)
    cdef cnp.int64_t[::1] bin_start = np.zeros(nbins + 1, dtype=np.int64)
    cdef cnp.int64_t[::1] bin_atoms = np.empty(n, dtype=np.int64)
    cdef cnp.int64_t[::1] fill = np.zeros(nbins, dtype=np.int64)
    cdef double[:, ::1] bfrac = np.empty((n, 3), dtype=np.float64)
    cdef cnp.int64_t b, lin
    for a in range(n):
        for k in range(3):
            if periodic[k]:
                b = <cnp.int64_t>(frac[a, k] * nb[k])
                if b >= nb[k]:
                    b = nb[k] - 1
                if b < 0:
                    b = 0
            else:
                b = 0
            abin[a, k] = b
        lin = (abin[a, 0] * nb[1] + abin[a, 1]) * nb[2] + abin[a, 2]
        bin_start[lin + 1] += 1
    for b in range(nbins):
        bin_start[b + 1] += bin_start[b]
    for a in range(n):
        lin = (abin[a, 0] * nb[1] + abin[a, 1]) * nb[2] + abin[a, 2]
        k = bin_start[lin] + fill[lin]
        bin_atoms[k] = a
        bfrac[k, 0] = frac[a, 0]
        bfrac[k, 1] = frac[a, 1]
        bfrac[k, 2] = frac[a, 2]
        fill[lin] += 1

    # capacity: pairs expected at the mean density (+25 %), grown by half when exceeded
    cdef double volume = abs(np.linalg.det(np.asarray(cell)))
    cdef Py_ssize_t cap = <Py_ssize_t>(1.25 * n * (n / volume) * 4.18879020478639 * rc2
                                       * cutoff) + 1024 if volume > 0 else 1024
    cdef cnp.int64_t[::1] out_i = np.empty(cap, dtype=np.int64)
    cdef cnp.int64_t[::1] out_j = np.empty(cap, dtype=np.int64)
    cdef cnp.int64_t[:, ::1] out_s = np.empty((cap if vectors else 0, 3), dtype=np.int64)
    cdef double[:, ::1] out_v = np.empty((cap if vectors else 0, 3), dtype=np.float64)
    cdef double[::1] out_d = np.empty(cap, dtype=np.float64)
    cdef cnp.int64_t npairs = 0
    cdef Py_ssize_t i, j, q
    cdef cnp.int64_t o0, o1, o2, c0, c1, c2, s0, s1, s2
    cdef double df0, df1, df2, dx, dy, dz, r2
    # at most (bins in reach) × (the fullest bin) pairs per atom
    cdef Py_ssize_t reach = (2 * m[0] + 1) * (2 * m[1] + 1) * (2 * m[2] + 1) * \
        max(np.diff(np.asarray(bin_start)).max(initial=0), 1)
    for i in range(n):
        if npairs + reach > cap:
            cap = max(cap + cap // 2, npairs + reach)
            out_i = _grown(out_i, npairs, cap)
            out_j = _grown(out_j, npairs, cap)
            out_d = _grown(out_d, npairs, cap)
            if vectors:
                out_s = _grown(out_s, npairs, cap)
                out_v = _grown(out_v, npairs, cap)
        with nogil:
            for o0 in range(-m[0], m[0] + 1):
                c0 = abin[i, 0] + o0
                s0 = <cnp.int64_t>floor(<double>c0 / nb[0])
                c0 -= s0 * nb[0]
                for o1 in range(-m[1], m[1] + 1):
                    c1 = abin[i, 1] + o1
                    s1 = <cnp.int64_t>floor(<double>c1 / nb[1])
                    c1 -= s1 * nb[1]
                    for o2 in range(-m[2], m[2] + 1):
                        c2 = abin[i, 2] + o2
                        s2 = <cnp.int64_t>floor(<double>c2 / nb[2])
                        c2 -= s2 * nb[2]
                        lin = (c0 * nb[1] + c1) * nb[2] + c2
                        for q in range(bin_start[lin], bin_start[lin + 1]):
                            df0 = bfrac[q, 0] - frac[i, 0] + s0
                            df1 = bfrac[q, 1] - frac[i, 1] + s1
                            df2 = bfrac[q, 2] - frac[i, 2] + s2
                            dx = df0 * cell[0, 0] + df1 * cell[1, 0] + df2 * cell[2, 0]
                            dy = df0 * cell[0, 1] + df1 * cell[1, 1] + df2 * cell[2, 1]
                            dz = df0 * cell[0, 2] + df1 * cell[1, 2] + df2 * cell[2, 2]
                            r2 = dx * dx + dy * dy + dz * dz
                            if r2 >= rc2:
                                continue
                            j = bin_atoms[q]
                            if j == i and s0 == 0 and s1 == 0 and s2 == 0:
                                continue
                            out_i[npairs] = i
                            out_j[npairs] = j
                            out_d[npairs] = sqrt(r2)
                            if vectors:
                                out_s[npairs, 0] = s0 + wrap[i, 0] - wrap[j, 0]
                                out_s[npairs, 1] = s1 + wrap[i, 1] - wrap[j, 1]
                                out_s[npairs, 2] = s2 + wrap[i, 2] - wrap[j, 2]
                                out_v[npairs, 0] = dx
                                out_v[npairs, 1] = dy
                                out_v[npairs, 2] = dz
                            npairs += 1
    i_ = np.asarray(out_i)[:npairs]
    j_ = np.asarray(out_j)[:npairs]
    d_ = np.asarray(out_d)[:npairs]
    if not vectors:
        return i_, j_, d_
    return i_, j_, np.asarray(out_s)[:npairs], np.asarray(out_v)[:npairs], d_


cdef _grown(a, Py_ssize_t used, Py_ssize_t cap):
    """A new array of ``cap`` rows holding the first ``used`` rows of ``a``."""
    a = np.asarray(a)
    out = np.empty((cap,) + a.shape[1:], dtype=a.dtype)
    out[:used] = a[:used]
    return out
