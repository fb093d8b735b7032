# cython: language_level=3
"""Inline helpers shared by the kernels (cimported; no module of its own).

legendre_d     P_l(c) and P_l'(c), l = 0..lmax, by the three-term recursions
trial_move     the Metropolis trial direction (e_k + σ g_k)/|e_k + σ g_k|
"""
from libc.math cimport sqrt


cdef inline void legendre_d(double c, int lmax, double* P, double* dP) noexcept nogil:
    """P_l(c) and P_l'(c) for l = 0..lmax by the three-term recursions."""
    cdef int l
    P[0] = 1.0
    dP[0] = 0.0
    if lmax >= 1:
        P[1] = c
        dP[1] = 1.0
    for l in range(2, lmax + 1):
        P[l] = ((2 * l - 1) * c * P[l - 1] - (l - 1) * P[l - 2]) / l
        dP[l] = dP[l - 2] + (2 * l - 1) * P[l - 1]


cdef inline bint trial_move(const double[:, ::1] e, Py_ssize_t k, double sigma,
                            const double[:, ::1] gauss, double* t) noexcept nogil:
    """t = (e_k + σ g_k)/|e_k + σ g_k| (3,); False, t unnormalised, if the sum vanishes."""
    cdef double norm
    t[0] = e[k, 0] + sigma * gauss[k, 0]
    t[1] = e[k, 1] + sigma * gauss[k, 1]
    t[2] = e[k, 2] + sigma * gauss[k, 2]
    norm = sqrt(t[0] * t[0] + t[1] * t[1] + t[2] * t[2])
    if norm == 0.0:
        return False
    t[0] /= norm
    t[1] /= norm
    t[2] /= norm
    return True
