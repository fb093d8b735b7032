# cython: language_level=3
"""Stage kernels of the stochastic LLG integrators (Depondt-Mertens, SIB, Heun).

dm/dt = -γ/(1+α²)[m×B + α m×(m×B)] = Ω×m,  Ω = γ'(B + α m×B),  γ' = γ/(1+α²).
B = B_eff + B_th (T) per spin; the thermal field is the same in both stages of a step
(Stratonovich). Loops over spins run on OpenMP threads (OMP_NUM_THREADS) from
SERIAL_BELOW spins up (smaller systems: one thread, no fork/join per stage); every spin
is updated independently, so results do not depend on the thread count.
Pure-Python twin: :mod:`otf_spin.kernels.llg_py`.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt, sin, cos
from libc.stdlib cimport free, malloc

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int llg_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int llg_max_threads(void) { return 1; }
    #endif
    """
    int llg_max_threads() noexcept nogil

cdef enum:
    SERIAL_BELOW = 512      # spins: smaller systems run on one thread


cdef inline int _threads(Py_ssize_t n) noexcept nogil:
    return 1 if n < SERIAL_BELOW else llg_max_threads()


cdef inline void _omega(const double* m, const double* b, double alpha, double gp,
                        double* o) noexcept nogil:
    """Ω = γ'(B + α m×B)."""
    o[0] = gp * (b[0] + alpha * (m[1] * b[2] - m[2] * b[1]))
    o[1] = gp * (b[1] + alpha * (m[2] * b[0] - m[0] * b[2]))
    o[2] = gp * (b[2] + alpha * (m[0] * b[1] - m[1] * b[0]))


cdef inline void _rotate(const double* m, const double* o, double dt, double* out) noexcept nogil:
    """Rotate m about Ω by the angle |Ω|dt (Rodrigues): exact solution of dm/dt = Ω×m
    for constant Ω; preserves |m|."""
    cdef double w = sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2])
    cdef double ux, uy, uz, c, s, d, cx, cy, cz
    if w * dt < 1e-300:
        out[0] = m[0]
        out[1] = m[1]
        out[2] = m[2]
        return
    ux = o[0] / w
    uy = o[1] / w
    uz = o[2] / w
    c = cos(w * dt)
    s = sin(w * dt)
    d = (ux * m[0] + uy * m[1] + uz * m[2]) * (1.0 - c)
    cx = uy * m[2] - uz * m[1]
    cy = uz * m[0] - ux * m[2]
    cz = ux * m[1] - uy * m[0]
    out[0] = m[0] * c + cx * s + ux * d
    out[1] = m[1] * c + cy * s + uy * d
    out[2] = m[2] * c + cz * s + uz * d


cdef inline void _cayley(const double* m, const double* a, double* out) noexcept nogil:
    """Solution of m' - m = a×(m' + m): m' = [(1-a²)m + 2(a·m)a + 2 a×m]/(1+a²);
    preserves |m| (implicit midpoint of dm/dt = Ω×m with a = Ω dt/2)."""
    cdef double a2 = a[0] * a[0] + a[1] * a[1] + a[2] * a[2]
    cdef double am = a[0] * m[0] + a[1] * m[1] + a[2] * m[2]
    cdef double inv = 1.0 / (1.0 + a2)
    out[0] = ((1.0 - a2) * m[0] + 2.0 * am * a[0] + 2.0 * (a[1] * m[2] - a[2] * m[1])) * inv
    out[1] = ((1.0 - a2) * m[1] + 2.0 * am * a[1] + 2.0 * (a[2] * m[0] - a[0] * m[2])) * inv
    out[2] = ((1.0 - a2) * m[2] + 2.0 * am * a[2] + 2.0 * (a[0] * m[1] - a[1] * m[0])) * inv


cdef inline void _rhs(const double* m, const double* b, double alpha, double gp,
                      double* f) noexcept nogil:
    """-γ'[m×B + α m×(m×B)]."""
    cdef double tx = m[1] * b[2] - m[2] * b[1]
    cdef double ty = m[2] * b[0] - m[0] * b[2]
    cdef double tz = m[0] * b[1] - m[1] * b[0]
    f[0] = -gp * (tx + alpha * (m[1] * tz - m[2] * ty))
    f[1] = -gp * (ty + alpha * (m[2] * tx - m[0] * tz))
    f[2] = -gp * (tz + alpha * (m[0] * ty - m[1] * tx))


cdef inline void _total(const double[:, ::1] B, const double[:, ::1] bth, Py_ssize_t i,
                        double* b) noexcept nogil:
    b[0] = B[i, 0] + bth[i, 0]
    b[1] = B[i, 1] + bth[i, 1]
    b[2] = B[i, 2] + bth[i, 2]


def depondt_predict(const double[:, ::1] m, const double[:, ::1] B, const double[:, ::1] bth,
                    double alpha, double gp, double dt, double[:, ::1] omega,
                    double[:, ::1] m_pred):
    """Ω1 = Ω(m, B + B_th); m_pred = R(Ω1 dt) m."""
    cdef Py_ssize_t i
    cdef double* b
    with nogil, parallel(num_threads=_threads(m.shape[0])):
        b = <double*> malloc(3 * sizeof(double))
        for i in prange(m.shape[0], schedule="static"):
            _total(B, bth, i, b)
            _omega(&m[i, 0], b, alpha, gp, &omega[i, 0])
            _rotate(&m[i, 0], &omega[i, 0], dt, &m_pred[i, 0])
        free(b)


def depondt_correct(const double[:, ::1] m, const double[:, ::1] omega, const double[:, ::1] m_pred,
                    const double[:, ::1] B, const double[:, ::1] bth, double alpha, double gp,
                    double dt, double[:, ::1] m_out):
    """m_out = R(½(Ω1 + Ω(m_pred, B + B_th)) dt) m."""
    cdef Py_ssize_t i
    cdef double* w      # b, Ω2, Ω per thread
    with nogil, parallel(num_threads=_threads(m.shape[0])):
        w = <double*> malloc(9 * sizeof(double))
        for i in prange(m.shape[0], schedule="static"):
            _total(B, bth, i, w)
            _omega(&m_pred[i, 0], w, alpha, gp, w + 3)
            w[6] = 0.5 * (omega[i, 0] + w[3])
            w[7] = 0.5 * (omega[i, 1] + w[4])
            w[8] = 0.5 * (omega[i, 2] + w[5])
            _rotate(&m[i, 0], w + 6, dt, &m_out[i, 0])
        free(w)


def sib_predict(const double[:, ::1] m, const double[:, ::1] B, const double[:, ::1] bth,
                double alpha, double gp, double dt, double[:, ::1] mid):
    """First SIB stage: m' = Cayley(Ω(m, B + B_th) dt/2, m); mid = (m + m')/|m + m'|."""
    cdef Py_ssize_t i
    cdef double* w      # b, a, m' per thread
    cdef double norm
    with nogil, parallel(num_threads=_threads(m.shape[0])):
        w = <double*> malloc(9 * sizeof(double))
        for i in prange(m.shape[0], schedule="static"):
            _total(B, bth, i, w)
            _omega(&m[i, 0], w, alpha, gp, w + 3)
            w[3] = w[3] * 0.5 * dt
            w[4] = w[4] * 0.5 * dt
            w[5] = w[5] * 0.5 * dt
            _cayley(&m[i, 0], w + 3, w + 6)
            w[6] = w[6] + m[i, 0]
            w[7] = w[7] + m[i, 1]
            w[8] = w[8] + m[i, 2]
            norm = sqrt(w[6] * w[6] + w[7] * w[7] + w[8] * w[8])
            mid[i, 0] = w[6] / norm
            mid[i, 1] = w[7] / norm
            mid[i, 2] = w[8] / norm
        free(w)


def sib_correct(const double[:, ::1] m, const double[:, ::1] mid, const double[:, ::1] B,
                const double[:, ::1] bth, double alpha, double gp, double dt,
                double[:, ::1] m_out):
    """Second SIB stage: m_out = Cayley(Ω(mid, B(mid) + B_th) dt/2, m)."""
    cdef Py_ssize_t i
    cdef double* w      # b, a per thread
    with nogil, parallel(num_threads=_threads(m.shape[0])):
        w = <double*> malloc(6 * sizeof(double))
        for i in prange(m.shape[0], schedule="static"):
            _total(B, bth, i, w)
            _omega(&mid[i, 0], w, alpha, gp, w + 3)
            w[3] = w[3] * 0.5 * dt
            w[4] = w[4] * 0.5 * dt
            w[5] = w[5] * 0.5 * dt
            _cayley(&m[i, 0], w + 3, &m_out[i, 0])
        free(w)


def heun_predict(const double[:, ::1] m, const double[:, ::1] B, const double[:, ::1] bth,
                 double alpha, double gp, double dt, double[:, ::1] f1, double[:, ::1] m_pred):
    """f1 = rhs(m, B + B_th); m_pred = (m + dt f1)/|m + dt f1|."""
    cdef Py_ssize_t i
    cdef double* b
    cdef double norm
    with nogil, parallel(num_threads=_threads(m.shape[0])):
        b = <double*> malloc(3 * sizeof(double))
        for i in prange(m.shape[0], schedule="static"):
            _total(B, bth, i, b)
            _rhs(&m[i, 0], b, alpha, gp, &f1[i, 0])
            m_pred[i, 0] = m[i, 0] + dt * f1[i, 0]
            m_pred[i, 1] = m[i, 1] + dt * f1[i, 1]
            m_pred[i, 2] = m[i, 2] + dt * f1[i, 2]
            norm = sqrt(m_pred[i, 0] ** 2 + m_pred[i, 1] ** 2 + m_pred[i, 2] ** 2)
            m_pred[i, 0] = m_pred[i, 0] / norm
            m_pred[i, 1] = m_pred[i, 1] / norm
            m_pred[i, 2] = m_pred[i, 2] / norm
        free(b)


def heun_correct(const double[:, ::1] m, const double[:, ::1] f1, const double[:, ::1] m_pred,
                 const double[:, ::1] B, const double[:, ::1] bth, double alpha, double gp,
                 double dt, double[:, ::1] m_out):
    """m_out = normalise(m + dt/2 (f1 + rhs(m_pred, B + B_th)))."""
    cdef Py_ssize_t i
    cdef double* w      # b, f2 per thread
    cdef double x, y, z, norm
    with nogil, parallel(num_threads=_threads(m.shape[0])):
        w = <double*> malloc(6 * sizeof(double))
        for i in prange(m.shape[0], schedule="static"):
            _total(B, bth, i, w)
            _rhs(&m_pred[i, 0], w, alpha, gp, w + 3)
            x = m[i, 0] + 0.5 * dt * (f1[i, 0] + w[3])
            y = m[i, 1] + 0.5 * dt * (f1[i, 1] + w[4])
            z = m[i, 2] + 0.5 * dt * (f1[i, 2] + w[5])
            norm = sqrt(x * x + y * y + z * z)
            m_out[i, 0] = x / norm
            m_out[i, 1] = y / norm
            m_out[i, 2] = z / norm
        free(w)
