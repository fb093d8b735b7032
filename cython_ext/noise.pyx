# cython: language_level=3
"""Standard normal variates from raw 64-bit draws: the 256-layer ziggurat of Marsaglia &
Tsang (2000), in the 52-bit form numpy uses. The caller draws the raw integers from its
numpy Generator (``bit_generator.random_raw``), so the stream stays seeded, saved and
restored with the Generator. Pure-Python twin: :mod:`otf_spin.kernels.noise_py`.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, log1p, sqrt, log
from libc.stdint cimport uint64_t

cnp.import_array()

cdef double R_TAIL = 3.6541528853610088
cdef uint64_t KI[256]
cdef double WI[256]
cdef double FI[256]


from otf_spin.kernels.noise_py import tables  # one definition of the tables

_ki, _wi, _fi = tables()
for _i in range(256):
    KI[_i] = _ki[_i]
    WI[_i] = _wi[_i]
    FI[_i] = _fi[_i]


cdef inline bint _layer(uint64_t r, int* idx, int* sign, double* x) noexcept nogil:
    """Split a raw draw into layer, sign and candidate x; True if x is accepted at once."""
    cdef uint64_t rabs
    idx[0] = <int>(r & 0xff)
    r = r >> 8
    sign[0] = <int>(r & 1)
    rabs = (r >> 1) & 0x000fffffffffffffULL
    x[0] = rabs * WI[idx[0]]          # double first: -rabs would wrap (unsigned)
    if sign[0]:
        x[0] = -x[0]
    return rabs < KI[idx[0]]


cdef inline double _uniform(uint64_t r) noexcept nogil:
    """(0, 1) from the top 53 bits."""
    return ((r >> 11) + 0.5) * (1.0 / 9007199254740992.0)


def gaussian_fill(const uint64_t[::1] raw, const uint64_t[::1] reserve, double[::1] out):
    """Fill ``out`` with N(0, 1) variates: one ``raw`` value each, plus ``reserve``
    values for the rare rejections (about 1.2 %). Returns (filled, reserve_used); filled
    < len(out) when the reserve ran out (draw more reserve and call again on the rest)."""
    cdef Py_ssize_t used = 0
    cdef Py_ssize_t filled
    with nogil:
        filled = _fill(raw, reserve, out, &used)
    return filled, used


cdef Py_ssize_t _fill(const uint64_t[::1] raw, const uint64_t[::1] reserve, double[::1] out,
                      Py_ssize_t* used) noexcept nogil:
    cdef Py_ssize_t n = out.shape[0], i, k = 0, m = reserve.shape[0]
    cdef int idx, sign
    cdef double x, xx, y, u
    for i in range(n):
        if _layer(raw[i], &idx, &sign, &x):
            out[i] = x
            continue
        while True:                      # rejection: uses the reserve
            if idx == 0:                 # the tail beyond R_TAIL
                while True:
                    if k + 2 > m:
                        used[0] = k
                        return i
                    xx = -log1p(-_uniform(reserve[k])) / R_TAIL
                    y = -log1p(-_uniform(reserve[k + 1]))
                    k += 2
                    if y + y > xx * xx:
                        break
                out[i] = -(R_TAIL + xx) if sign else R_TAIL + xx
                break
            if k + 1 > m:
                used[0] = k
                return i
            u = _uniform(reserve[k])
            k += 1
            if (FI[idx - 1] - FI[idx]) * u + FI[idx] < exp(-0.5 * x * x):
                out[i] = x
                break
            if k + 1 > m:
                used[0] = k
                return i
            k += 1                        # a fresh draw for this variate
            if _layer(reserve[k - 1], &idx, &sign, &x):
                out[i] = x
                break
    used[0] = k
    return n
