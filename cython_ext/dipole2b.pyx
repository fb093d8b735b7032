# cython: language_level=3
"""Dipole-2b descriptor kernels (paper Sec. II D, Eqs. 28-35 in polynomial form).

Pair p = (i, j) with unit bond vector u_p: a = e_i·u, b = e_j·u, c = e_i·e_j; feature
f has integer exponents (x_f, y_f, z_f)::

    d[i, n, f] = Σ_p R[p, n] a^x b^y c^z

Pure-Python twin: :mod:`otf_spin.kernels.dipole2b_py`.
"""
import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef enum:
    F_CAP = 64


cdef inline double _ipow(double v, long x) noexcept nogil:
    cdef double out = 1.0
    cdef long k
    for k in range(x):
        out *= v
    return out


cdef inline void _features(double a, double b, double c, const cnp.int64_t[:, ::1] expo,
                           double* f, double* fa, double* fb, double* fc) noexcept nogil:
    """Feature values and their derivatives by a, b and c."""
    cdef Py_ssize_t k
    cdef long x, y, z
    cdef double pa, pb, pc
    for k in range(expo.shape[0]):
        x, y, z = expo[k, 0], expo[k, 1], expo[k, 2]
        pa, pb, pc = _ipow(a, x), _ipow(b, y), _ipow(c, z)
        f[k] = pa * pb * pc
        fa[k] = x * _ipow(a, x - 1) * pb * pc if x > 0 else 0.0
        fb[k] = y * pa * _ipow(b, y - 1) * pc if y > 0 else 0.0
        fc[k] = z * pa * pb * _ipow(c, z - 1) if z > 0 else 0.0


cdef inline double _dot3(const double[:, ::1] x, Py_ssize_t a, const double[:, ::1] y,
                         Py_ssize_t b) noexcept nogil:
    return x[a, 0] * y[b, 0] + x[a, 1] * y[b, 1] + x[a, 2] * y[b, 2]


cdef inline void _pair_features(const double[:, ::1] e, const double[:, ::1] u,
                                const cnp.int64_t[:, ::1] expo, Py_ssize_t i, Py_ssize_t j,
                                Py_ssize_t p, double* f, double* fa, double* fb,
                                double* fc) noexcept nogil:
    """The features of pair p = (i, j) (unit vector u[p]) and their derivatives."""
    _features(_dot3(e, i, u, p), _dot3(e, j, u, p), _dot3(e, i, e, j), expo, f, fa, fb, fc)


def _check(const cnp.int64_t[:, ::1] expo):
    if expo.shape[0] > F_CAP:
        raise ValueError(f"{expo.shape[0]} features exceed the compiled limit {F_CAP}")


def descriptor(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
               const cnp.int64_t[::1] neigh, const double[:, ::1] R, const double[:, ::1] u,
               const cnp.int64_t[:, ::1] expo, double[:, :, ::1] d):
    """Write d (N, n_max, F) in place."""
    _check(expo)
    cdef Py_ssize_t nmax = R.shape[1], F = expo.shape[0], i, p, j, n, k
    cdef double f[F_CAP]
    cdef double fa[F_CAP]
    cdef double fb[F_CAP]
    cdef double fc[F_CAP]
    d[...] = 0.0
    with nogil:
        for i in range(e.shape[0]):
            for p in range(offsets[i], offsets[i + 1]):
                j = neigh[p]
                _pair_features(e, u, expo, i, j, p, f, fa, fb, fc)
                for n in range(nmax):
                    for k in range(F):
                        d[i, n, k] += R[p, n] * f[k]


def contract_gradient(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
                      const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                      const double[:, ::1] u, const cnp.int64_t[:, ::1] expo,
                      const double[:, :, :, ::1] G, double[:, :, ::1] grad):
    """grad[m, a] = Σ_i G[m, i]·∂d_i/∂e_a (unprojected) for G (M, N, n_max, F)."""
    _check(expo)
    cdef Py_ssize_t M = G.shape[0], nmax = R.shape[1], F = expo.shape[0], i, p, j, n, k, m, x
    cdef double f[F_CAP]
    cdef double fa[F_CAP]
    cdef double fb[F_CAP]
    cdef double fc[F_CAP]
    cdef double s, sa, sb, sc
    grad[...] = 0.0
    with nogil:
        for i in range(e.shape[0]):
            for p in range(offsets[i], offsets[i + 1]):
                j = neigh[p]
                _pair_features(e, u, expo, i, j, p, f, fa, fb, fc)
                for m in range(M):
                    sa = 0.0
                    sb = 0.0
                    sc = 0.0
                    for k in range(F):
                        s = 0.0
                        for n in range(nmax):
                            s = s + G[m, i, n, k] * R[p, n]
                        sa = sa + s * fa[k]
                        sb = sb + s * fb[k]
                        sc = sc + s * fc[k]
                    for x in range(3):
                        grad[m, i, x] += sa * u[p, x] + sc * e[j, x]
                        grad[m, j, x] += sb * u[p, x] + sc * e[i, x]


def pair_gradient(const double[:, ::1] e, const cnp.int64_t[::1] offsets,
                  const cnp.int64_t[::1] neigh, const double[:, ::1] R,
                  const double[:, ::1] dR, const double[:, ::1] u, const double[::1] r,
                  const cnp.int64_t[:, ::1] expo, const double[:, :, ::1] G,
                  double[:, ::1] g):
    """g[p] = ∂E/∂D_p (P, 3), D_p = r_j + S - r_i, for E = Σ_i G[i]·d_i, G (N, n_max, F)."""
    _check(expo)
    cdef Py_ssize_t nmax = R.shape[1], F = expo.shape[0], i, p, j, n, k, x
    cdef double f[F_CAP]
    cdef double fa[F_CAP]
    cdef double fb[F_CAP]
    cdef double fc[F_CAP]
    cdef double s, ds, sa, sb, radial, a, b
    with nogil:
        for i in range(e.shape[0]):
            for p in range(offsets[i], offsets[i + 1]):
                j = neigh[p]
                a = _dot3(e, i, u, p)
                b = _dot3(e, j, u, p)
                _features(a, b, _dot3(e, i, e, j), expo, f, fa, fb, fc)
                sa = 0.0
                sb = 0.0
                radial = 0.0
                for k in range(F):
                    s = 0.0
                    ds = 0.0
                    for n in range(nmax):
                        s = s + G[i, n, k] * R[p, n]
                        ds = ds + G[i, n, k] * dR[p, n]
                    sa = sa + s * fa[k]
                    sb = sb + s * fb[k]
                    radial = radial + ds * f[k]
                for x in range(3):
                    g[p, x] = radial * u[p, x] + (sa * (e[i, x] - a * u[p, x])
                                                  + sb * (e[j, x] - b * u[p, x])) / r[p]
