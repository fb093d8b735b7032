# cython: language_level=3
"""GAP-SOSO exchange-model evaluator for one fixed structure (energies and fields).

Fused passes over atoms on OpenMP threads, BLAS (scipy's dgemm, looked up at import)
for the kernel products, every buffer allocated once. Pure-Python twin and the
formulas: :mod:`otf_spin.kernels.gap_py`.

The radial rows of the pairs of atom i are grouped in "slots" (one per distinct radial
row among its pairs; a lattice has one per shell), so that

    d_i[l, n]  = dfm_i[l, n] + Σ_{s in i} w_l W_s[l] rtab[srid_s, n],  W_s[l] = Σ_{p in s} (P_l(c_p) - 1)
    H_s[l]     = w_l Σ_n G_a[l, n] rtab[srid_s, n]                  (s a slot of atom a)
    g_a        = Σ_{s in a} Σ_{p in s} Σ_l P_l'(c_p) (H_s[l] + H_{jslot_p}[l]) e_{j_p}

cost per pair O(l_max), per slot O(l_max n_max). For l_max ≤ 6 the pair loops work in
the power basis of x = c - 1 (P_l(1 + x) - 1 = Σ_{k=1..l} b_lk x^k, b_lk = C(l+k, 2k)
C(2k, k) / 2^k, exact in float64): per pair the sums M_k = Σ_p x_p^k (one multiply and
one add per k) and u = Σ_k x^(k-1) Q_s[k] by Horner, with W_s = b M and
Q_s[k] = k Σ_l b_lk H_s[l] per slot, instead of the three-term recursion (the terms
b_lk x^k reach 3·10³ at x = -2: ~3e-13 relative rounding); x = 0 at FM, so the FM
state stays exactly 0. Larger l_max use the recursion.

Shell basis (``shell``; unnormalised kernels and fewer radial rows U than n_max, e.g. 6
rows at 54 bcc atoms, 9 shells in wide cells): the change from FM lives in the U radial
rows, d_i = dfm_i + Σ_u X_i[u, l] rtab[u, n] with X_i[u, l] = w_l W_s[l] (s: atom i's
slot of row u), so the products run in L·U instead of L·n_max columns:
d_i·s_m = (dfm_i·s_m) + X_i·Sr_m, Sr_m[u, l] = Σ_n s_m[l, n] rtab[u, n], with the FM
products dfm·sᵀ kept per structure, and the field's rows H_s[l] = Σ_n G_a[l, n] rtab[u, n]
come out of the gradient product directly (H = Hv + coef Sr). Equal to the full
descriptor's arithmetic to rounding; the FM state still gives exactly 0 (X = 0).
With the power basis the shell passes visit each unordered pair once (j > i): its
powers x^k go to both ends' sums M_k, and its field term u = Σ_k x^(k-1) (Q_s + Q_s')[k]
(s' the partner's slot of the same row) to both ends — half the pair work of the
directed passes (on several threads each thread has one contiguous atom range and adds
straight into its rows; the ends j beyond its range go into its own copy, whose touched
rows are summed after). Between the two pair passes the atoms go through a pipeline in
blocks of BLOCK atoms (:meth:`GapEngine._block`): each atom's row z of raw power sums
(its slots' M_k, its angle slots' sums of y^m), the products C = z Tfᵀ + Cfm, the
kernel coefficients, and Q = Hq + coef Tb — the field's rows Q of every slot, because
the power basis' b_lk, the weights w_l, the orders k and dy/dθ are linear maps folded
into the constant matrices Tf, Tb (sparse points projected on the radial rows), Hq and
the linear energy's weights hl; so C and Q are never held for all atoms: the working
set of an evaluation is X, the copies' boundary rows and the pair list, and the FM
products are kept once per distinct row (a lattice: one).

Angle block (``angle``: the exchange_2b_angle term of a composite descriptor, appended
to the SOSO block: d_i = [SOSO (l, n) | angle (n, k)], D = L·n_max + n_a·k_max): its own
compressed pair list (r_c of the term) with the same slot structure, and

    d_i[n, k]  = dfm_i[n, k] + Σ_{s in i} Ra[srid_s, n] Wa_s[k],  Wa_s[k] = Σ_{p in s} (g_k(θ_p) - 1)
    ∂E/∂θ_p    = Σ_k g_k'(θ_p) (Ha_s[k] + Ha_t[k]),  Ha_s[k] = Σ_n G_a[n, k] Ra[srid_s, n]
    g_a       += ∂E/∂θ_p ∂θ_p/∂e_a = -∂E/∂θ_p (n_p × e_a) / |n_p|,  n_p = e_a × e_j

with g_k(θ) = P_k(1 - 2θ/π), θ = atan2(|e_i × e_j|, e_i·e_j) (as
:mod:`otf_spin.descriptors.angle2b`), t the neighbour's slot of the same row (jslot),
and no gradient where |n_p| < ``parallel`` (exactly parallel or antiparallel spins, the
guard of angle2b). For k_max ≤ 6 in the power basis of y = -2θ/π (g_k - 1 = Σ_m b_km
y^m: exactly 0 at FM), else by the recursion in x = 1 + y. θ (as y; atan2 by
:func:`_angle`) and 1/|n| are computed once per unordered pair and evaluation
(:meth:`GapEngine._angle_pairs`, from the atom i < j, written to both directions
through the reverse-pair index). The full-descriptor path makes the angle rows in pass
1, the rows Ha per slot (stored as the power-basis Q) from ∂E/∂d and the field in a
gather pass over atoms (no per-thread copies); the shell-basis pipeline takes the angle
block per angle radial row (the sums of y^m of each slot) into its products and gets
the slots' Q from them, and the angle pairs' field goes with the exchange pairs' in the
one-visit field pass.

Pair couplings (``kappa`` (U, L), optional): linear pair terms on the exchange-2b pairs
that are not descriptor components (a linear kernel on the B-spline exchange term,
folded per radial row by :mod:`otf_spin.model.fast`):

    E_i       += Σ_{s in i} Σ_l kappa[srid_s, l] W_s[l]
    g_a       += Σ_{s in a} Σ_{p in s} Σ_l P_l'(c_p) (kappa[srid_s, l] + kappa[srid_t, l]) e_j

(t = the partner's slot, same row): one term more wherever the slot sums W_s meet the
linear weights (the energy) and wherever the field's rows w_l H_s[l] are formed (full
path, shell basis and its pipeline, the Monte Carlo ΔE), so no per-pair cost.

Local-energy variances (:meth:`GapEngine.set_variance`; ``variances`` of :meth:`compute`
and :meth:`field`): v_i = |r_i R⁻¹|², r_i[m] = (d_i·s_m)^ζ - (d_i^FM·s_m)^ζ over every
kernel's sparse points (the linear ones too) in the posterior's order, from the operand
rows of the same evaluation: per block of BLOCK atoms the products Z Tvᵀ of the columns
no kernel of the engine shares (Tv: the sparse points in the operand basis — the
pipeline's z, the shell coordinates X or the full descriptors), the shared columns
copied from the energy's products before their coefficients replace them, the rows, one
dtrmm with R⁻¹ and the sums of squares. The energy and field arithmetic is untouched.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, parallel, threadid
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_GetName
from libc.math cimport sqrt, exp, fabs
from libc.string cimport memcmp, memcpy
from posix.time cimport clock_gettime, timespec, clockid_t, CLOCK_MONOTONIC, \
    CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID

from spin_kernels cimport trial_move

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int gap_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int gap_max_threads(void) { return 1; }
    #endif
    """
    int gap_max_threads() noexcept nogil


cdef extern from *:
    """
    /* Loops that the compiler vectorises (gap_pair_angles: the pair angles of the angle
       block; gap_coef_zeta4: the kernel coefficients); built twice where GCC can pick the
       code at load time (function
       multiversioning): for AVX2 and for the baseline (x86-64: SSE2), the CPU's best
       taken. AVX2 without FMA: no multiply-add is contracted, so both give the same
       bits. */
    #include <stdint.h>
    #include <string.h>
    #if defined(_MSC_VER) && !defined(restrict)
    #define restrict __restrict
    #endif
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
    #define GAP_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define GAP_CLONES
    #endif

    /* atan(x) for |x| <= 0.66: Cephes' rational approximation (S. L. Moshier),
       x + x z P(z)/Q(z), z = x^2; relative error below 2e-16 */
    static inline double gap_atan_small(double x) {
        double z = x * x;
        z = z * ((((-8.750608600031904122785e-1 * z - 1.615753718733365076637e1) * z
                   - 7.500855792314704667340e1) * z - 1.228866684490136173410e2) * z
                 - 6.485021904942025371773e1)
            / (((((z + 2.485846490142306297962e1) * z + 1.650270098316988542046e2) * z
                 + 4.328810604912902668951e2) * z + 4.853903996359136964868e2) * z
               + 1.945506571482613964425e2);
        return x * z + x;
    }

    /* c ? a : b on the bits: both a and b are computed whatever c, so that the compiler
       keeps no branch (it may not move a floating-point operation under a branch and
       back: with the default -ftrapping-math a loop with such branches does not
       vectorise) */
    static inline double gap_select(int c, double a, double b) {
        uint64_t m = (uint64_t)0 - (uint64_t)(c != 0), x, y;
        memcpy(&x, &a, 8);
        memcpy(&y, &b, 8);
        x = (x & m) | (y & ~m);
        memcpy(&a, &x, 8);
        return a;
    }

    /* atan2(s, c) for s >= 0 without branches: with lo/hi = min/max(s, |c|),
       atan(lo/hi), above lo/hi = 0.66 pi/4 + atan((lo - hi)/(lo + hi)) (Cephes'
       reduction); then pi/2 - t where s > |c|, pi - t where c < 0, the constants' low
       parts added; hi = 0 gives 0 */
    static inline double gap_angle(double s, double c) {
        double a = fabs(c);
        int swap = s > a;
        double lo = gap_select(swap, a, s), hi = gap_select(swap, s, a);
        int big = lo > 0.66 * hi;
        double num = gap_select(big, lo - hi, lo);
        double den = gap_select(hi == 0.0, 1.0, gap_select(big, lo + hi, hi));
        double t = gap_atan_small(num / den);
        t = gap_select(big, 7.85398163397448309616e-1 + (t + 3.061616997868382943065e-17), t);
        t = gap_select(swap, (1.57079632679489661923 - t) + 6.123233995736765886130e-17, t);
        return gap_select(c < 0.0, (3.14159265358979323846 - t) + 1.224646799147353177226e-16,
                          t);
    }

    /* For the pairs q0 ... q1 - 1 of the list (ui, uj) of atoms i <= j: y = -2 theta/pi,
       theta = atan2(|e_i x e_j|, e_i . e_j), and 1/|e_i x e_j| (0 below par_tol). First
       |e_i x e_j| and e_i . e_j of every pair (the gathers, into y and inv), then the
       angles in a loop over those contiguous values, which vectorises (4 pairs at a
       time in the AVX2 build) */
    GAP_CLONES
    static void gap_pair_angles(Py_ssize_t q0, Py_ssize_t q1, const int* restrict ui,
                                const int* restrict uj, const double* restrict e,
                                double par_tol, double* restrict y, double* restrict inv) {
        Py_ssize_t q;
        for (q = q0; q < q1; q++) {
            const double* ei = e + 3 * (Py_ssize_t)ui[q];
            const double* ej = e + 3 * (Py_ssize_t)uj[q];
            double nx = ei[1] * ej[2] - ei[2] * ej[1];
            double ny = ei[2] * ej[0] - ei[0] * ej[2];
            double nz = ei[0] * ej[1] - ei[1] * ej[0];
            y[q] = sqrt(nx * nx + ny * ny + nz * nz);
            inv[q] = ei[0] * ej[0] + ei[1] * ej[1] + ei[2] * ej[2];
        }
        for (q = q0; q < q1; q++) {
            double sn = y[q];
            int keep = sn >= par_tol;
            double r = 1.0 / gap_select(keep, sn, 1.0);
            y[q] = -0.63661977236758134308 * gap_angle(sn, inv[q]);
            inv[q] = gap_select(keep, r, 0.0);
        }
    }

    /* The kernel coefficients of one atom's products with a block of Mk sparse points
       of a zeta = 4 kernel (the shell-basis pipeline): c = C + fm, C replaced by
       4 alpha c^3, the terms alpha c^4 into t (Mk) and their sum returned, in four
       interleaved partial sums (m mod 4: one vector accumulator) */
    GAP_CLONES
    static double gap_coef_zeta4(Py_ssize_t Mk, double* restrict C, const double* restrict fm,
                                 const double* restrict alpha, double* restrict t) {
        Py_ssize_t m;
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        for (m = 0; m < Mk; m++) {
            double c = C[m] + fm[m], a = alpha[m], cz = c * c * c;
            C[m] = a * 4 * cz;
            t[m] = a * cz * c;
        }
        for (m = 0; m + 4 <= Mk; m += 4) {
            a0 = a0 + t[m];
            a1 = a1 + t[m + 1];
            a2 = a2 + t[m + 2];
            a3 = a3 + t[m + 3];
        }
        for (; m < Mk; m++)
            a0 = a0 + t[m];
        return (a0 + a1) + (a2 + a3);
    }
    """
    double gap_coef_zeta4(Py_ssize_t Mk, double* C, const double* fm, const double* alpha,
                          double* t) noexcept nogil
    double gap_angle(double s, double c) noexcept nogil
    void gap_pair_angles(Py_ssize_t q0, Py_ssize_t q1, const int* ui, const int* uj,
                         const double* e, double par_tol, double* y, double* inv) noexcept nogil

ctypedef void (*dgemm_t)(char *transa, char *transb, int *m, int *n, int *k,
                         double *alpha, double *a, int *lda, double *b, int *ldb,
                         double *beta, double *c, int *ldc) noexcept nogil

ctypedef void (*dtrmm_t)(char *side, char *uplo, char *transa, char *diag, int *m,
                         int *n, double *alpha, double *a, int *lda, double *b,
                         int *ldb) noexcept nogil

ctypedef int (*blas_local_t)(int) noexcept nogil

cdef dgemm_t _dgemm
cdef dtrmm_t _dtrmm
cdef blas_local_t _blas_local = NULL    # OpenBLAS' openblas_set_num_threads_local, if found


def _load_dgemm():
    global _dgemm
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__["dgemm"]
    cdef const char* name = PyCapsule_GetName(capsule)
    # the name spells scipy's typedef of double; check the shape of the signature
    if name == NULL or not (<bytes>name).startswith(b"void (char *, char *, int *, int *, int *,"):
        raise ImportError("scipy.linalg.cython_blas.dgemm has an unexpected signature")
    _dgemm = <dgemm_t>PyCapsule_GetPointer(capsule, name)
    global _dtrmm
    capsule = cython_blas.__pyx_capi__["dtrmm"]
    name = PyCapsule_GetName(capsule)
    if name == NULL or not (<bytes>name).startswith(b"void (char *, char *, char *, char *,"):
        raise ImportError("scipy.linalg.cython_blas.dtrmm has an unexpected signature")
    _dtrmm = <dtrmm_t>PyCapsule_GetPointer(capsule, name)


_load_dgemm()


def _load_blas_threads():
    """openblas_set_num_threads_local of scipy's OpenBLAS (the library behind
    cython_blas; :mod:`otf_spin.kernels.blas_threads`): the engine runs its products on
    one BLAS thread where it runs its own loops on one (below SERIAL_BELOW atoms; a
    threaded 54-atom product cost 2.5 ms of CPU instead of 0.08 on a busy 2-core
    machine). Other BLAS libraries: not touched."""
    global _blas_local
    from otf_spin.kernels.blas_threads import scipy_setter_address

    cdef size_t address = scipy_setter_address()
    if address:
        _blas_local = <blas_local_t>address


_load_blas_threads()

cdef enum:
    LMAX_CAP = 32
    SERIAL_BELOW = 512      # atoms: smaller structures run on one thread (no OpenMP startup)
    SCRATCH = 4 * (LMAX_CAP + 1)   # per-thread scratch doubles (Legendre values, sums)
    POLY_LMAX = 6           # l_max up to which the pair loops use the power basis of c - 1
    BLOCK = 256             # atoms per block of the shell-basis pipeline (products in cache)


cdef inline void _legendre(double c, int lmax, const double* la, const double* lb,
                           double* P) noexcept nogil:
    """P_l(c), l ≤ lmax, by the three-term recursion with tabulated coefficients."""
    cdef int l
    P[0] = 1.0
    if lmax >= 1:
        P[1] = c
    for l in range(2, lmax + 1):
        P[l] = la[l] * c * P[l - 1] - lb[l] * P[l - 2]


cdef inline void _legendre_d(double c, int lmax, const double* la, const double* lb,
                             double* P, double* dP) noexcept nogil:
    """P_l(c) and P_l'(c), l ≤ lmax."""
    cdef int l
    P[0] = 1.0
    dP[0] = 0.0
    if lmax >= 1:
        P[1] = c
        dP[1] = 1.0
    for l in range(2, lmax + 1):
        P[l] = la[l] * c * P[l - 1] - lb[l] * P[l - 2]
        dP[l] = dP[l - 2] + (2 * l - 1) * P[l - 1]


cdef double TWO_OVER_PI = 0.63661977236758134308    # dy/dθ = -2/π (angle block)


cdef inline double _angle(double s, double c) noexcept nogil:
    """atan2(s, c) for s ≥ 0 (θ in [0, π]), equal to libm's atan2 to 2.5e-16 relative
    (tested: :func:`angles`) and ~2.5× faster — the angle block's one transcendental per
    pair and evaluation: ``gap_angle`` of the C block above (with lo/hi = min/max(s,
    |c|): Cephes' rational atan of lo/hi, above lo/hi = 0.66 π/4 + atan((lo - hi)/(lo +
    hi)); then π/2 - t where s > |c|, π - t where c < 0, the constants' low parts added;
    written with selects instead of branches, so that the pair loop vectorises). s = 0
    gives exactly 0 (c ≥ 0) or π."""
    return gap_angle(s, c)


def angles(const double[::1] s, const double[::1] c, double[::1] out):
    """out = atan2(s, c) (P,) for s ≥ 0, as the engine computes its pair angles
    (:func:`_angle`; twin: numpy's arctan2)."""
    cdef Py_ssize_t p
    if c.shape[0] != s.shape[0] or out.shape[0] != s.shape[0]:
        raise ValueError("angles: s, c and out must have the same length")
    with nogil:
        for p in range(s.shape[0]):
            out[p] = _angle(s[p], c[p])


def unordered_angles(const double[:, ::1] e, const int[::1] ui, const int[::1] uj,
                     double par_tol, double[::1] y, double[::1] inv):
    """For the atom pairs (ui[q], uj[q]) (P,) of unit directions e (N, 3): y[q] = -2θ/π,
    θ = atan2(|e_i × e_j|, e_i·e_j), and inv[q] = 1/|e_i × e_j| (0 where below
    par_tol): the engine's pair loop of the angle block (``gap_pair_angles``; twin:
    numpy)."""
    cdef Py_ssize_t q, P = ui.shape[0], N = e.shape[0]
    if uj.shape[0] != P or y.shape[0] != P or inv.shape[0] != P or e.shape[1] != 3:
        raise ValueError("unordered_angles: e (N, 3); ui, uj, y, inv of one length")
    for q in range(P):
        if not (0 <= ui[q] < N and 0 <= uj[q] < N):
            raise ValueError("unordered_angles: atom index out of range")
    if P:
        with nogil:
            gap_pair_angles(0, P, &ui[0], &uj[0], &e[0, 0], par_tol, &y[0], &inv[0])


cdef inline double _theta(double ex, double ey, double ez, const double* f) noexcept nogil:
    """The angle between unit e = (ex, ey, ez) and f (3,): atan2(|e × f|, e·f)."""
    cdef double nx = ey * f[2] - ez * f[1], ny = ez * f[0] - ex * f[2]
    cdef double nz = ex * f[1] - ey * f[0]
    return _angle(sqrt(nx * nx + ny * ny + nz * nz), ex * f[0] + ey * f[1] + ez * f[2])


cdef inline double _now(clockid_t clock) noexcept nogil:
    cdef timespec ts
    clock_gettime(clock, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef inline double _ipow(double x, long k) noexcept nogil:
    cdef double r = 1.0
    cdef long q
    for q in range(k):
        r *= x
    return r


cdef inline double _zpow(double c, long z) noexcept nogil:
    """c^(z-1) of a dot-product kernel's exponent z (ζ = 4, 1, 2, 3 without a loop:
    the same products as :func:`_ipow`)."""
    if z == 4:
        return c * c * c
    if z == 1:
        return 1.0
    if z == 2:
        return c
    if z == 3:
        return c * c
    return _ipow(c, z - 1)


def _distinct_rows(rows):
    """(table, index): the distinct bit patterns among the rows of ``rows`` (n, m) and
    each row's place in the table (int32), so that table[index] equals rows bit for bit
    (a lattice: one row for all atoms). Rows are keyed by a 64-bit hash; a collision
    falls back to comparing whole rows."""
    n = rows.shape[0]
    if rows.shape[1] == 0 or n == 0:
        return np.zeros(max(rows.size, 1)), np.zeros(n, np.int32)
    bits = np.ascontiguousarray(rows).view(np.uint64)
    mult = np.random.default_rng(12345).integers(1, 2**63, size=bits.shape[1],
                                                   dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        keys = (bits * mult).sum(axis=1, dtype=np.uint64)
    _, first, index = np.unique(keys, return_index=True, return_inverse=True)
    if not np.array_equal(bits[first][index.reshape(-1)], bits):    # a hash collision
        _, first, index = np.unique(bits, axis=0, return_index=True, return_inverse=True)
    return (np.ascontiguousarray(rows[first]),
            np.ascontiguousarray(index.reshape(-1), dtype=np.int32))


def joint_table(rtab, kappa):
    """The C-contiguous float64 table (U, n_max + L) whose first n_max columns are the
    view ``rtab`` (U, n_max) and whose last L are the view ``kappa`` (U, L), or None if
    they are not such views (then the engine copies them into one)."""
    base = rtab.base
    if not isinstance(base, np.ndarray) or kappa.base is not base or base.ndim != 2 \
            or base.dtype != np.float64 or not base.flags.c_contiguous:
        return None
    U, n_max = rtab.shape
    if base.shape != (U, n_max + kappa.shape[1]) or kappa.shape[0] != U or U == 0:
        return None
    start = base.ctypes.data
    if rtab.ctypes.data != start or kappa.ctypes.data != start + 8 * n_max or \
            rtab.strides != base.strides or kappa.strides != base.strides:
        return None
    return base


cdef inline bint _f64(cnp.ndarray a, Py_ssize_t n, Py_ssize_t m, bint write) noexcept:
    """True if ``a`` is a C-contiguous float64 array of shape (n,) (m = 0) or (n, m),
    and writeable if ``write``."""
    if cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        return False
    if write and not cnp.PyArray_ISWRITEABLE(a):
        return False
    if m == 0:
        return cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_DIM(a, 0) == n
    return cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_DIM(a, 0) == n and \
        cnp.PyArray_DIM(a, 1) == m


cdef double* _dptr(object array):
    """Data pointer of a C-contiguous float64 array (kept alive by its owner)."""
    cdef double[::1] view = np.ravel(array)
    return &view[0]


cdef class GapEngine:
    """See :class:`otf_spin.kernels.gap_py.GapEngine` (same constructor and methods).

    """
    cdef readonly Py_ssize_t n_atoms, n_max, L, D, M, K, n_slots
    cdef object _keep
    cdef cnp.int64_t* soff
    cdef cnp.int64_t* sp
    cdef int* neigh
    cdef int* jslot
    cdef int* srid
    cdef double* rtab
    cdef double* w
    cdef double* dfm
    cdef double* v
    cdef double* S
    cdef double* alpha
    cdef cnp.int64_t* kstart
    cdef cnp.int64_t* zeta
    cdef int* normalize
    cdef double* masks
    cdef double* e_ref
    cdef double* d
    cdef double* G
    cdef double* C
    cdef double* scratch        # per-thread scratch (nt_alloc × SCRATCH)
    cdef double* gbuf           # per-thread ∂E/∂e (nt_alloc × N × 3): pair scatter
    cdef int nt_alloc
    cdef cnp.int64_t* wcum      # (N+1,) cumulative work of the one-visit passes per atom
    cdef cnp.int64_t* part      # (nt_alloc+1,) atom ranges of the one-visit passes, for part_nt
    cdef int part_nt            # thread count part was made for (0: none yet)
    cdef unsigned char* touch   # ((nt_alloc - 1), N): rows of X that range c adds into its copy
    cdef double* norms
    cdef double* xsum
    cdef double* E
    cdef double* g
    cdef double la[LMAX_CAP + 1]
    cdef double lb[LMAX_CAP + 1]
    cdef double bx[(POLY_LMAX + 1) * (POLY_LMAX + 1)]   # b_lk at l·(POLY_LMAX+1) + k
    cdef bint poly              # pair loops in the power basis (L - 1 ≤ POLY_LMAX)
    cdef double stage[5]        # seconds: descriptor, kernel, gradient, field, calls
    cdef clockid_t clock        # of the stage timers: wall (default) or process CPU
    cdef double* Ep             # nonlinear kernels' local energies (N,)
    cdef readonly bint shell    # products in the shell basis (see the module docstring)
    cdef Py_ssize_t U, LU       # radial rows, L·U
    cdef double* Sr             # (M, U·L) sparse points projected on the radial rows
    cdef double* Hv             # (U·L,) the linear weight vector projected likewise
    #                             (pipeline: (M, WZ) and (WZ,) in the columns of _block)
    cdef Py_ssize_t WS, WZ      # pipeline: columns U·(L - 1) of the SOSO part, of all
    cdef double* Tb             # pipeline: (M, WZ) the gradient product's matrix
    cdef double* Tft            # pipeline: (WZ, M) the products' matrix Tf, transposed
    cdef double* hl             # pipeline: (WZ,) the linear energy's weights
    cdef double* Cfm            # (distinct rows, M) FM products dfm·sᵀ
    cdef int* fmrow             # (N,) each atom's row of Cfm (atoms of equal FM rows share one)
    cdef bint pipeline          # shell basis with the power basis: blocks (_block)
    cdef int* sskip             # pipeline: per slot, its leading pairs j < i (met from j)
    cdef bint c_alloc           # C holds N·M doubles (not needed by the pipeline)
    cdef double* blk            # pipeline: per-thread C and H of one block, and scratch
    cdef Py_ssize_t blk_size    # doubles of blk per thread
    cdef double* tstage         # pipeline: per-thread stage seconds (nt_alloc × 4)
    cdef double* X              # (N, U·L) shell coordinates of d - dfm
    cdef double* H              # (N, U·L) ∂E/∂d projected on the radial rows (recursion)
    cdef double* Qb             # (N, U·L) the field's power-basis rows Q of each slot (in X)
    cdef double* Xbuf           # ((nt_alloc - 1), N, U·L): each range's sums beyond it (touch)
    cdef int* mark              # Monte Carlo: slot of an atom in the affected list, or -1
    cdef int* aff
    cdef double* dnew
    cdef double* enew
    cdef Py_ssize_t amax
    cdef readonly object energies, grad, d_array, G_array
    # angle block (module docstring); Da = 0 without one
    cdef readonly Py_ssize_t Ds, Da, KA, NA, a_slots
    cdef cnp.int64_t* asoff
    cdef cnp.int64_t* asp
    cdef int* aneigh
    cdef int* ajslot
    cdef int* asrid
    cdef double* artab
    cdef double* Qa             # (a_slots, KA + 1) per slot the field's rows, × dy/dθ
    cdef bint apoly             # angle pair loops in the power basis (KA ≤ POLY_LMAX)
    cdef double par_tol         # |e_i × e_j| below this: the pair has no angle gradient
    cdef int* arev              # (P_a,) the reverse pair (j -> i) of each angle pair
    cdef double* ay             # (P_a,) y = -2θ/π of each angle pair, this evaluation
    cdef double* ainv           # (P_a,) 1/|e_i × e_j|, or 0 where below par_tol
    cdef cnp.int64_t* uoff      # (N + 1,) angle pairs met from their lower atom: atom i's
    cdef int* ui                # at uoff[i] … uoff[i + 1] - 1 of (ui, uj) (atoms, ui ≤ uj),
    cdef int* uj                # up (their pair index p) and the flat loop's results
    cdef int* up                # uy (y) and uinv (1/|n|)
    cdef double* uy
    cdef double* uinv
    cdef double* kap            # pair couplings of row u at kap + u·rstride (L,), or NULL
    cdef Py_ssize_t rstride     # doubles per radial row: n_max, + L with the couplings
    cdef const double* fscale   # field(): its scale, b_ext and out while it runs (else
    cdef const double* fbext    # fout NULL), for the pair-field pass to project each
    cdef double* fout           # atom's rows where it sums them (projected: done)
    cdef bint projected
    cdef double* e_at           # (N, 3) the directions the full descriptors d were made
    cdef bint d_fresh           # at by the last evaluation (d_fresh), for descriptors()
    # local-energy variances (set_variance): the posterior's sparse points in the
    # operand basis of the products (Tv (Wv, Mv): pipeline z, shell X or full d), the FM
    # products and kernel values per distinct FM row, R⁻¹, per-thread row buffers, and
    # the output while an evaluation writes it (else NULL)
    cdef readonly Py_ssize_t Mv
    cdef Py_ssize_t Kv, Wv
    cdef double* Tv
    cdef double* Rv
    cdef double* Cfmv
    cdef double* Pfmv
    cdef int* fmrowv
    cdef cnp.int64_t* kvstart
    cdef cnp.int64_t* kvzeta
    cdef cnp.int64_t* vshared  # (K,) pipeline: the first row of Sv of each kernel's own
    cdef cnp.int64_t* vlen      # products (-1: none) and how many (its first ones);
    cdef int* vown              # (Kv,) Sv kernels no kernel shares
    cdef double* vbuf           # pipeline: per-thread (BLOCK, Mv) rows of a block
    cdef double* vrows          # (N, Mv) without the pipeline: every atom's products
    cdef double* var
    cdef object _basis          # (radial rows (U, n_max), angle radial rows, d_fm)
    cdef object _vkeep

    def __init__(self, soff, sp, srid, neigh, jslot, rtab, w, d_fm, v, S, alpha,
                 kstart, zeta, normalize, masks, e_ref, shell=None, angle=None,
                 kappa=None):
        cdef cnp.int64_t[::1] a_soff = np.ascontiguousarray(soff, dtype=np.int64)
        cdef cnp.int64_t[::1] a_sp = np.ascontiguousarray(sp, dtype=np.int64)
        cdef int[::1] a_neigh = np.ascontiguousarray(neigh, dtype=np.int32)
        cdef int[::1] a_jslot = np.ascontiguousarray(jslot, dtype=np.int32)
        cdef int[::1] a_srid = np.ascontiguousarray(srid, dtype=np.int32)
        a_rtab = np.asarray(rtab, dtype=np.float64)     # (a view: see rows_arr below)
        if a_rtab.ndim != 2:
            raise ValueError("rtab must be (radial rows, n_max)")
        cdef double[::1] a_w = np.ascontiguousarray(w, dtype=np.float64)
        cdef double[:, ::1] a_dfm = np.ascontiguousarray(d_fm, dtype=np.float64)
        cdef double[::1] a_v = np.ascontiguousarray(v, dtype=np.float64)
        cdef double[:, ::1] a_S = np.ascontiguousarray(S, dtype=np.float64)
        cdef double[::1] a_alpha = np.ascontiguousarray(alpha, dtype=np.float64)
        cdef cnp.int64_t[::1] a_kstart = np.ascontiguousarray(kstart, dtype=np.int64)
        cdef cnp.int64_t[::1] a_zeta = np.ascontiguousarray(zeta, dtype=np.int64)
        cdef int[::1] a_norm = np.ascontiguousarray(normalize, dtype=np.int32)
        cdef double[:, ::1] a_masks = np.ascontiguousarray(
            np.asarray(masks, dtype=np.float64).reshape(len(a_zeta), a_v.shape[0]))
        cdef double[::1] a_eref = np.array(e_ref, dtype=np.float64)
        self.n_atoms = a_soff.shape[0] - 1
        self.n_max = a_rtab.shape[1]
        self.L = a_w.shape[0]
        self.D = self.L * self.n_max
        self.M = a_S.shape[0]
        self.K = a_zeta.shape[0]
        self.n_slots = a_srid.shape[0]
        self.Ds = self.D
        if angle is not None:
            a_asoff = np.ascontiguousarray(angle["soff"], dtype=np.int64)
            a_asp = np.ascontiguousarray(angle["sp"], dtype=np.int64)
            a_asrid = np.ascontiguousarray(angle["srid"], dtype=np.int32)
            a_aneigh = np.ascontiguousarray(angle["neigh"], dtype=np.int32)
            a_ajslot = np.ascontiguousarray(angle["jslot"], dtype=np.int32)
            a_artab = np.ascontiguousarray(angle["rtab"], dtype=np.float64)
            self.KA, self.NA = int(angle["k_max"]), a_artab.shape[1]
            self.Da = self.KA * self.NA
            self.a_slots = a_asrid.shape[0]
            self.par_tol = float(angle["parallel"])
            if self.KA < 1 or self.KA > LMAX_CAP:
                raise ValueError(f"angle k_max {self.KA} outside 1 … {LMAX_CAP}")
            if a_asoff.shape[0] != self.n_atoms + 1 or a_asp.shape[0] != self.a_slots + 1 \
                    or a_asoff[self.n_atoms] != self.a_slots:
                raise ValueError("angle slot ranges soff/sp do not match srid")
            if a_ajslot.shape[0] != a_aneigh.shape[0] or a_asp[self.a_slots] != a_aneigh.shape[0]:
                raise ValueError("angle pair arrays neigh/jslot do not match the slot ranges")
            self.D = self.Ds + self.Da
            self.apoly = self.KA <= POLY_LMAX
        else:
            a_asoff = np.zeros(self.n_atoms + 1, dtype=np.int64)
            a_asp = np.zeros(1, dtype=np.int64)
            a_asrid = a_aneigh = a_ajslot = np.zeros(0, dtype=np.int32)
            a_artab = np.zeros((0, 1))
            self.KA = self.NA = self.Da = self.a_slots = 0
        if a_sp.shape[0] != self.n_slots + 1 or a_soff[self.n_atoms] != self.n_slots:
            raise ValueError("slot ranges soff/sp do not match srid")
        if a_jslot.shape[0] != a_neigh.shape[0] or a_sp[self.n_slots] != a_neigh.shape[0]:
            raise ValueError("pair arrays neigh/jslot do not match the slot ranges")
        if self.L - 1 > LMAX_CAP:
            raise ValueError(f"l_max {self.L - 1} exceeds the compiled limit {LMAX_CAP}")
        if a_v.shape[0] != self.D or a_S.shape[1] != self.D or a_dfm.shape[1] != self.D:
            raise ValueError("descriptor length of v, S or d_fm is not L·n_max (+ the angle "
                             "block's n_max·k_max)")
        if a_kstart.shape[0] != self.K + 1 or a_kstart[self.K] != self.M:
            raise ValueError("kstart does not partition the sparse points")
        if self.n_atoms * max(self.M, self.D) >= 2**31:
            raise ValueError("structure too large for 32-bit BLAS indices")
        cdef Py_ssize_t n = self.n_atoms
        # the radial rows as the pair passes read them: each row's couplings right after
        # its radial values (one memory stream per slot: rows are met in no fixed order)
        # (rtab and kappa as the two column blocks of one C-contiguous table, as
        # FastPredictor.pairs makes them: that table is kept, not copied)
        if kappa is not None:
            kap_arr = np.asarray(kappa, dtype=np.float64)
            if kap_arr.shape != (a_rtab.shape[0], self.L):
                raise ValueError("kappa must be (radial rows, L)")
            rows_arr = joint_table(a_rtab, kap_arr)
            if rows_arr is None:
                rows_arr = np.ascontiguousarray(np.hstack([a_rtab, kap_arr]))
            self.rstride = self.n_max + self.L
        else:
            rows_arr = np.ascontiguousarray(a_rtab)
            self.rstride = self.n_max
        # shell basis: automatic where it has fewer columns and no kernel normalises
        self.U = a_rtab.shape[0]
        self.LU = self.L * self.U
        if shell is None:
            shell = self.U < self.n_max and not np.any(np.asarray(a_norm)) and \
                (self.Da == 0 or 1 <= self.L - 1 <= POLY_LMAX)
        if shell and np.any(np.asarray(a_norm)):
            raise ValueError("the shell basis needs unnormalised kernels")
        if shell and self.Da and not 1 <= self.L - 1 <= POLY_LMAX:
            raise ValueError(f"the shell basis with an angle block needs 1 ≤ l_max ≤ {POLY_LMAX}")
        self.shell = bool(shell) and n > 0
        # full descriptors and ∂E/∂d: not used by the shell basis (d: made by the first
        # Monte Carlo sweep, which works on full descriptors)
        full = 0 if self.shell else n
        d_arr = np.zeros((full, self.D))
        G_arr = np.zeros((full, self.D))
        # the shell-basis pipeline keeps its products per block (blk), not in C
        self.pipeline = self.shell and 1 <= self.L - 1 <= POLY_LMAX
        self.c_alloc = not self.pipeline
        C_arr = np.zeros(max(n * self.M, 1) if self.c_alloc else 1)
        self.nt_alloc = max(gap_max_threads(), 1)
        # work per atom of the one-visit passes (its pairs j > i in both lists, + 1):
        # the contiguous atom ranges of those passes are balanced on it (:meth:`_part`)
        own = np.ones(n, dtype=np.int64)
        if n:
            rows = np.repeat(np.arange(n), np.diff(np.asarray(a_sp)[np.asarray(a_soff)]))
            own += np.bincount(rows[np.asarray(a_neigh) > rows], minlength=n)
            rows = np.repeat(np.arange(n), np.diff(a_asp[a_asoff]))
            own += np.bincount(rows[a_aneigh > rows], minlength=n)
        wcum_arr = np.concatenate([[0], np.cumsum(own)]).astype(np.int64)
        part_arr = np.zeros(self.nt_alloc + 1, dtype=np.int64)
        self.wcum = <cnp.int64_t*>cnp.PyArray_DATA(wcum_arr)
        self.part = <cnp.int64_t*>cnp.PyArray_DATA(part_arr)
        self.touch = NULL
        self.fout = NULL           # (set by field() while it runs)
        self.part_nt = 0
        H_arr = np.zeros(self.nt_alloc * SCRATCH)
        gbuf_arr = np.zeros(max(self.nt_alloc * n * 3, 1))
        nrm = np.ones(max(n * self.K, 1))
        xs = np.zeros(max(n * self.K, 1))
        E_arr = np.zeros(n)
        g_arr = np.zeros((n, 3))
        cdef Py_ssize_t a, most = 0
        cdef cnp.int64_t[::1] v_asoff = a_asoff
        cdef cnp.int64_t[::1] v_asp = a_asp
        for a in range(n):      # Monte Carlo: atoms one move can change (both pair lists)
            most = max(most, a_sp[a_soff[a + 1]] - a_sp[a_soff[a]]
                       + v_asp[v_asoff[a + 1]] - v_asp[v_asoff[a]])
        self.amax = most + 1
        Ep_arr = np.zeros(max(n, 1))
        mark_arr = np.full(max(n, 1), -1, dtype=np.int32)
        aff_arr = np.zeros(self.amax, dtype=np.int32)
        dnew_arr = np.zeros(self.amax * self.D)
        enew_arr = np.zeros(self.amax)
        cdef double[::1] vEp = Ep_arr
        cdef int[::1] vmark = mark_arr
        cdef int[::1] vaff = aff_arr
        cdef double[::1] vdnew = dnew_arr
        cdef double[::1] venew = enew_arr
        self.Ep = &vEp[0]
        self.mark = &vmark[0]
        self.aff = &vaff[0]
        self.dnew = &vdnew[0]
        self.enew = &venew[0]
        self._keep = (a_soff, a_sp, a_neigh, a_jslot, a_srid, a_w, a_dfm,
                      a_v, a_S, a_alpha, a_kstart, a_zeta, a_norm, a_masks, a_eref,
                      d_arr, G_arr, C_arr, H_arr, gbuf_arr, nrm, xs, Ep_arr, mark_arr, aff_arr,
                      dnew_arr, enew_arr, rows_arr, wcum_arr, part_arr)
        self.energies, self.grad, self.d_array, self.G_array = E_arr, g_arr, d_arr, G_arr
        self._basis = (rows_arr[:, :self.n_max], a_artab, np.asarray(a_dfm))
        self.Mv = self.Kv = self.Wv = 0
        self.var = NULL
        e_at_arr = np.zeros(max(3 * n, 1))
        self.e_at = <double*>cnp.PyArray_DATA(e_at_arr)
        self.d_fresh = False
        self._keep = self._keep + (e_at_arr,)
        Qa_arr = np.zeros(max(self.a_slots * (self.KA + 1), 1))
        npa = a_aneigh.shape[0]
        arev_arr = _reverse_pairs(a_asoff, a_asp, a_aneigh, a_ajslot) if npa \
            else np.zeros(1, dtype=np.int32)
        ay_arr = np.zeros(max(npa, 1))
        ainv_arr = np.zeros(max(npa, 1))
        # the angle pairs met from their lower atom (j ≥ i), in the order of the pair list
        arows = np.repeat(np.arange(n, dtype=np.int32), np.diff(a_asp[a_asoff]))
        upper = np.flatnonzero(a_aneigh >= arows)
        uoff_arr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(arows[upper], minlength=n), out=uoff_arr[1:])
        ui_arr = np.ascontiguousarray(arows[upper], dtype=np.int32)
        uj_arr = np.ascontiguousarray(a_aneigh[upper], dtype=np.int32)
        up_arr = np.ascontiguousarray(upper, dtype=np.int32)
        uy_arr = np.zeros(max(len(upper), 1))
        uinv_arr = np.zeros(max(len(upper), 1))
        if not len(upper):
            ui_arr = uj_arr = up_arr = np.zeros(1, dtype=np.int32)
        self._keep = self._keep + (a_asoff, a_asp, a_asrid, a_aneigh, a_ajslot, a_artab,
                                   Qa_arr, arev_arr, ay_arr, ainv_arr, uoff_arr, ui_arr,
                                   uj_arr, up_arr, uy_arr, uinv_arr)
        self.uoff = <cnp.int64_t*>cnp.PyArray_DATA(uoff_arr)
        self.ui = <int*>cnp.PyArray_DATA(ui_arr)
        self.uj = <int*>cnp.PyArray_DATA(uj_arr)
        self.up = <int*>cnp.PyArray_DATA(up_arr)
        self.uy = _dptr(uy_arr)
        self.uinv = _dptr(uinv_arr)
        self.arev = <int*>cnp.PyArray_DATA(arev_arr)
        self.ay = _dptr(ay_arr)
        self.ainv = _dptr(ainv_arr)
        self.asoff = <cnp.int64_t*>cnp.PyArray_DATA(a_asoff)
        self.asp = <cnp.int64_t*>cnp.PyArray_DATA(a_asp)
        self.asrid = <int*>cnp.PyArray_DATA(a_asrid)
        self.aneigh = <int*>cnp.PyArray_DATA(a_aneigh)
        self.ajslot = <int*>cnp.PyArray_DATA(a_ajslot)
        self.artab = <double*>cnp.PyArray_DATA(a_artab)
        self.Qa = _dptr(Qa_arr)
        self.soff = &a_soff[0]
        self.sp = &a_sp[0]
        self.neigh = &a_neigh[0] if a_neigh.shape[0] else NULL
        self.jslot = &a_jslot[0] if a_jslot.shape[0] else NULL
        cdef int l
        for l in range(LMAX_CAP + 1):      # P_l = la_l c P_{l-1} - lb_l P_{l-2}
            self.la[l] = (2.0 * l - 1.0) / l if l >= 2 else 0.0
            self.lb[l] = (l - 1.0) / l if l >= 2 else 0.0
        cdef int k
        from math import comb
        for l in range(POLY_LMAX + 1):      # P_l(1 + x) = Σ_k b_lk x^k
            for k in range(POLY_LMAX + 1):
                self.bx[l * (POLY_LMAX + 1) + k] = \
                    comb(l + k, 2 * k) * comb(2 * k, k) / 2.0**k if k <= l else 0.0
        self.poly = 1 <= self.L - 1 <= POLY_LMAX
        self.clock = CLOCK_MONOTONIC
        self.srid = &a_srid[0] if a_srid.shape[0] else NULL
        self.rtab = _dptr(rows_arr) if rows_arr.shape[0] else NULL
        self.kap = self.rtab + self.n_max if kappa is not None and rows_arr.shape[0] else NULL
        self.w = &a_w[0]
        self.dfm = &a_dfm[0, 0] if n else NULL
        self.v = &a_v[0]
        self.S = &a_S[0, 0] if self.M else NULL
        self.alpha = &a_alpha[0] if self.M else NULL
        self.kstart = &a_kstart[0]
        self.zeta = &a_zeta[0] if self.K else NULL
        self.normalize = &a_norm[0] if self.K else NULL
        self.masks = &a_masks[0, 0] if self.K else NULL
        self.e_ref = &a_eref[0] if n else NULL
        cdef double[:, ::1] vd = d_arr
        cdef double[:, ::1] vG = G_arr
        cdef double[::1] vC = C_arr
        cdef double[::1] vH = H_arr
        cdef double[::1] vgb = gbuf_arr
        cdef double[::1] vn = nrm
        cdef double[::1] vx = xs
        cdef double[::1] vE = E_arr
        cdef double[:, ::1] vg = g_arr
        self.d = &vd[0, 0] if full else NULL
        self.G = &vG[0, 0] if full else NULL
        self.C = &vC[0]
        self.scratch = &vH[0]
        self.gbuf = &vgb[0]
        self.norms = &vn[0]
        self.xsum = &vx[0]
        self.E = &vE[0] if n else NULL
        self.g = &vg[0, 0] if n else NULL
        if self.shell:
            R = rows_arr[:, :self.n_max]
            S3 = np.asarray(a_S)[:, :self.Ds].reshape(self.M, self.L, self.n_max)
            Sr3 = np.einsum("mln,un->mul", S3, R)                    # (M, U, L)
            Hv2 = np.einsum("ln,un->ul", np.asarray(a_v)[:self.Ds].reshape(self.L, self.n_max), R)
            dfm_np, S_np, ks = np.asarray(a_dfm), np.asarray(a_S), np.asarray(a_kstart)
            fm = np.zeros((n, self.M))
            for k in range(self.K):
                fm[:, ks[k]:ks[k + 1]] = dfm_np @ S_np[ks[k]:ks[k + 1]].T
            Cfm_arr, fmrow = _distinct_rows(fm)
            fmrow_arr = np.ascontiguousarray(fmrow.reshape(-1), dtype=np.int32)
            X_arr = np.zeros(n * self.LU)
            Hs_arr = np.zeros(1 if self.pipeline else n * self.LU)   # recursion path only
            if self.pipeline:
                Tf_arr, Tb_arr, Hz_arr, hl_arr = self._pipeline_matrices(
                    Sr3, Hv2, np.asarray(a_S)[:, self.Ds:], np.asarray(a_v)[self.Ds:],
                    np.asarray(a_artab), None if kappa is None else rows_arr[:, self.n_max:])
                self.WS = self.U * (self.L - 1)
                self.WZ = Tf_arr.shape[1]
                Sr_keep = Tf_arr if self.M else np.zeros(1)
                Tb_keep = Tb_arr if self.M else np.zeros(1)
                Hv_arr = Hz_arr
            else:
                Sr_keep = np.ascontiguousarray(Sr3.reshape(self.M, self.LU)) if self.M \
                    else np.zeros(1)
                Hv_arr = np.ascontiguousarray(Hv2.ravel())
                Tb_keep = hl_arr = np.zeros(1)
                self.WZ = self.LU
            Xbuf_arr = np.zeros(max((self.nt_alloc - 1) * n * self.LU, 1)
                                if n >= SERIAL_BELOW else 1)
            touch_arr = np.zeros(max((self.nt_alloc - 1) * n, 1) if n >= SERIAL_BELOW
                                 and self.pipeline else 1, dtype=np.uint8)
            self._keep = self._keep + (touch_arr,)
            if n >= SERIAL_BELOW and self.pipeline:
                self.touch = <unsigned char*>cnp.PyArray_DATA(touch_arr)
            self.blk_size = BLOCK * (self.M + 2 * self.WZ) + self.M
            blk_arr = np.zeros(self.nt_alloc * self.blk_size if self.pipeline else 1)
            ts_arr = np.zeros(self.nt_alloc * 4)
            self._keep = self._keep + (Sr_keep, Hv_arr, Cfm_arr, fmrow_arr, X_arr, Hs_arr,
                                       Xbuf_arr, blk_arr, ts_arr, Tb_keep, hl_arr)
            self.Tb = _dptr(Tb_keep)
            Tft_arr = np.ascontiguousarray(Sr_keep.T) if self.pipeline and self.M \
                else np.zeros(1)
            self._keep = self._keep + (Tft_arr,)
            self.Tft = _dptr(Tft_arr)
            self.hl = _dptr(hl_arr)
            self.Xbuf = _dptr(Xbuf_arr)
            self.Sr = _dptr(Sr_keep)
            self.Hv = _dptr(Hv_arr)
            self.Cfm = _dptr(Cfm_arr)
            self.fmrow = <int*>cnp.PyArray_DATA(fmrow_arr)
            self.X = _dptr(X_arr)
            self.Qb = self.X        # Q of a block's slots replaces its X rows once used
            self.H = _dptr(Hs_arr)
            self.blk = _dptr(blk_arr)
            self.tstage = _dptr(ts_arr)
            skip_arr = np.zeros(max(self.n_slots, 1), dtype=np.int32)
            self._keep = self._keep + (skip_arr,)
            self.sskip = <int*>cnp.PyArray_DATA(skip_arr)
            self._count_skips()

    def _pipeline_matrices(self, Sr3, Hv2, Sa, va, Ra, kappa):
        """The pipeline's constant matrices on its columns (:meth:`_block`): per radial
        row u the power sums M_k (k = 1 … L - 1), then per angle radial row the power
        sums of y (k = 1 … KA; recursion: g_k - 1). With W_l = Σ_k b_lk M_k and the
        field's Q_k = k Σ_l b_lk (w_l H_l + κ_l):
        Tf[m, u, k] = Σ_l b_lk w_l Sr[m, u, l] (products C = z Tfᵀ), Tb = k Tf (Q =
        Hq + coef Tb), Hq[u, k] = k hl[u, k], hl[u, k] = Σ_l b_lk (w_l Hv[u, l] +
        κ[u, l]) (linear energy z·hl); the angle block likewise with its sparse points
        and linear weights projected on its radial rows Ra, b_km of the power basis (the
        identity for the recursion) and the factor dy/dθ = -2/π in Tb and Hq. Returns
        (Tf, Tb, Hq, hl), (M, WZ) and (WZ,), M the sparse points of Sr3 (M, U, L)."""
        from math import comb
        L, KA, NA, M = self.L, self.KA, self.NA, Sr3.shape[0]
        b = np.array([[comb(l + k, 2 * k) * comb(2 * k, k) / 2.0**k if k <= l else 0.0
                       for k in range(L)] for l in range(L)])        # b[l, k]
        w = np.array([self.w[l] for l in range(L)])
        kap = np.zeros(Hv2.shape) if kappa is None else kappa
        bw = (b * w[:, None])[:, 1:]                                  # (L, L - 1)
        Tf = np.einsum("mul,lk->muk", Sr3, bw)
        hl = np.einsum("ul,lk->uk", Hv2 * w[None, :] + kap, b[:, 1:])
        k_s = np.arange(1, L, dtype=float)
        # (explicit widths: M = 0, a model of linear kernels only, has no -1 to infer)
        width = Tf.shape[1] * Tf.shape[2]
        Tf, Tb, Hq, hl = [Tf.reshape(M, width)], [(Tf * k_s).reshape(M, width)], \
            [(hl * k_s).ravel()], [hl.ravel()]
        if self.Da:
            Ta = np.einsum("mnk,un->muk", Sa.reshape(M, NA, KA), Ra)    # (M, Ua, KA)
            vr = np.einsum("nk,un->uk", va.reshape(NA, KA), Ra)
            if self.apoly:
                ba = np.array([[comb(k + m, 2 * m) * comb(2 * m, m) / 2.0**m if m <= k
                                else 0.0 for m in range(1, KA + 1)] for k in range(1, KA + 1)])
                scale = -TWO_OVER_PI * np.arange(1, KA + 1, dtype=float)
            else:
                ba, scale = np.eye(KA), np.full(KA, -TWO_OVER_PI)
            Tfa = np.einsum("muk,kq->muq", Ta, ba)
            hla = vr @ ba
            width = Tfa.shape[1] * Tfa.shape[2]
            Tf.append(Tfa.reshape(M, width))
            Tb.append((Tfa * scale).reshape(M, width))
            Hq.append((hla * scale).ravel())
            hl.append(hla.ravel())
        return tuple(np.ascontiguousarray(np.concatenate(x, axis=-1)) for x in (Tf, Tb, Hq, hl))

    def set_variance(self, Sv, kvstart, kvzeta, Rinv, shared=None):
        """Install the posterior of the local energies, for the ``variances`` of
        :meth:`compute` and :meth:`field`: Sv (Mv, D) the masked sparse points of every
        kernel (unnormalised dot-product powers; linear ones included) in the
        posterior's column order, kvstart (Kv + 1,) int64 their row ranges, kvzeta (Kv,)
        int64 the powers, Rinv (Mv, Mv) R⁻¹ of the posterior factor (upper triangular,
        Λ⁻¹ = R⁻¹R⁻ᵀ). An evaluation asked for them writes v_i = |r_i R⁻¹|² (eV²) with
        r_i[m] = (d_i·s_m)^ζ - (d_i^FM·s_m)^ζ: the posterior variance of atom i's local
        energy relative to FM, from the products of the evaluation itself (the shell
        basis and its pipeline: the same operand rows as the energy's products).
        ``shared``: None, or (K,) int64 per kernel of the engine the first row of Sv
        where its sparse points (the same, in the same order, or the first of them; an
        unnormalised kernel) are, or -1: those columns are then taken from the energy's
        own products instead of being made again."""
        Sv_np = np.ascontiguousarray(Sv, dtype=np.float64)
        ks = np.ascontiguousarray(kvstart, dtype=np.int64)
        kz = np.ascontiguousarray(kvzeta, dtype=np.int64)
        R_np = np.ascontiguousarray(Rinv, dtype=np.float64)
        Mv = Sv_np.shape[0] if Sv_np.ndim == 2 else -1
        if Sv_np.ndim != 2 or Sv_np.shape[1] != self.D or Mv == 0:
            raise ValueError(f"set_variance: Sv (Mv ≥ 1, {self.D}) expected")
        if ks.shape[0] != kz.shape[0] + 1 or ks[0] != 0 or ks[ks.shape[0] - 1] != Mv or \
                np.any(np.diff(ks) < 0) or np.any(kz < 1):
            raise ValueError("set_variance: kvstart must partition Sv's rows, kvzeta ≥ 1")
        if R_np.shape != (Mv, Mv):
            raise ValueError(f"set_variance: Rinv ({Mv}, {Mv}) expected")
        if self.n_atoms * Mv >= 2**31:
            raise ValueError("structure too large for 32-bit BLAS indices")
        radial, artab, dfm = self._basis
        n = self.n_atoms
        fm = dfm @ Sv_np.T if n else np.zeros((0, Mv))
        Cfm_arr, fmrow = _distinct_rows(fm) if n else (np.zeros((1, Mv)), np.zeros(1))
        Cfm_arr = np.ascontiguousarray(Cfm_arr)
        Pfm_arr = np.empty_like(Cfm_arr)
        for k in range(kz.shape[0]):
            Pfm_arr[:, ks[k]:ks[k + 1]] = Cfm_arr[:, ks[k]:ks[k + 1]] ** int(kz[k])
        if self.shell:
            Sr3 = np.einsum("mln,un->mul",
                            Sv_np[:, :self.Ds].reshape(Mv, self.L, self.n_max), radial)
            if self.pipeline:
                T = self._pipeline_matrices(Sr3, np.zeros((self.U, self.L)),
                                            Sv_np[:, self.Ds:], np.zeros(self.Da),
                                            artab, None)[0]
            else:
                T = Sr3.reshape(Mv, self.LU)
        else:
            T = Sv_np
        Tv_arr = np.ascontiguousarray(T.T)                  # (Wv, Mv)
        fmrow_arr = np.ascontiguousarray(np.reshape(fmrow, -1), dtype=np.int32)
        vbuf_arr = np.zeros(self.nt_alloc * BLOCK * Mv if self.pipeline else 1)
        sh = np.full(self.K, -1, dtype=np.int64) if shared is None \
            else np.ascontiguousarray(shared, dtype=np.int64)
        kst = np.asarray(<cnp.int64_t[:self.K + 1]>self.kstart)
        if sh.shape != (self.K,) or np.any(sh >= Mv):
            raise ValueError(f"set_variance: shared ({self.K},) rows of Sv or -1 expected")
        own = np.ones(kz.shape[0], dtype=np.int32)
        vlen = np.zeros(max(self.K, 1), dtype=np.int64)
        for k in range(self.K):
            if sh[k] >= 0:
                j = int(np.searchsorted(ks, sh[k], side="right")) - 1
                if ks[j] != sh[k] or ks[j + 1] - ks[j] > kst[k + 1] - kst[k] or \
                        kz[j] != self.zeta[k] or self.normalize[k]:
                    raise ValueError(f"set_variance: kernel {k} is not the one of Sv at "
                                     f"row {sh[k]}")
                own[j] = 0
                vlen[k] = ks[j + 1] - ks[j]
        if not self.K:
            sh = np.zeros(1, dtype=np.int64)
        vrows_arr = np.zeros(1 if self.pipeline else max(n * Mv, 1))
        self._vkeep = (Tv_arr, R_np, Cfm_arr, Pfm_arr, fmrow_arr, ks, kz, vbuf_arr, sh, own,
                       vrows_arr, vlen)
        self.vlen = <cnp.int64_t*>cnp.PyArray_DATA(vlen)
        self.vrows = _dptr(vrows_arr)
        self.vshared = <cnp.int64_t*>cnp.PyArray_DATA(sh)
        self.vown = <int*>cnp.PyArray_DATA(own)
        self.Mv, self.Kv, self.Wv = Mv, kz.shape[0], Tv_arr.shape[0]
        self.Tv, self.Rv = _dptr(Tv_arr), _dptr(R_np)
        self.Cfmv, self.Pfmv = _dptr(Cfm_arr), _dptr(Pfm_arr)
        self.fmrowv = <int*>cnp.PyArray_DATA(fmrow_arr)
        self.kvstart = <cnp.int64_t*>cnp.PyArray_DATA(ks)
        self.kvzeta = <cnp.int64_t*>cnp.PyArray_DATA(kz)
        self.vbuf = _dptr(vbuf_arr)

    cdef void _var_products(self, const double* Z, int n, double* buf,
                            bint own) noexcept nogil:
        """The products C = Z Tvᵀ (n, Mv) into buf of every column, or with ``own``
        only those of the kernels whose columns no kernel of the engine shares (one
        product per such kernel)."""
        cdef int iM = <int>self.Mv, iW = <int>self.Wv, im
        cdef double one = 1.0, zero = 0.0
        cdef Py_ssize_t j, lo
        if n <= 0:
            return
        if not own:
            _dgemm(b"N", b"N", &iM, &n, &iW, &one, self.Tv, &iM, <double*>Z, &iW, &zero,
                   buf, &iM)
            return
        for j in range(self.Kv):
            lo = self.kvstart[j]
            im = <int>(self.kvstart[j + 1] - lo)
            if self.vown[j] and im > 0:
                _dgemm(b"N", b"N", &im, &n, &iW, &one, self.Tv + lo, &iM, <double*>Z,
                       &iW, &zero, buf + lo, &iM)

    cdef void _var_finish(self, Py_ssize_t a0, int n, double* buf) noexcept nogil:
        """From the products C (n, Mv) in buf (+ the FM products in the shell basis,
        where the operand rows are the change from FM): the rows r = c^ζ - c_FM^ζ, r R⁻¹
        in place (dtrmm on the lower triangle of R⁻ᵀ) and its squares summed into var."""
        cdef int iM = <int>self.Mv
        cdef double one = 1.0, c, acc
        cdef Py_ssize_t i, k, m, Mv = self.Mv
        cdef double* row
        cdef const double* cfm
        cdef const double* pfm
        cdef long z
        if n <= 0:
            return
        for i in range(n):
            row = buf + i * Mv
            cfm = self.Cfmv + self.fmrowv[a0 + i] * Mv
            pfm = self.Pfmv + self.fmrowv[a0 + i] * Mv
            for k in range(self.Kv):
                z = self.kvzeta[k]
                for m in range(self.kvstart[k], self.kvstart[k + 1]):
                    c = row[m] + cfm[m] if self.shell else row[m]
                    row[m] = _ipow(c, z) - pfm[m]
        _dtrmm(b"L", b"L", b"N", b"N", &iM, &n, &one, self.Rv, &iM, buf, &iM)
        for i in range(n):
            row = buf + i * Mv
            acc = 0.0
            for m in range(Mv):
                acc = acc + row[m] * row[m]
            self.var[a0 + i] = acc

    cdef void _variance_pass(self, const double* Z, Py_ssize_t W) noexcept nogil:
        """The variances of every atom without the pipeline, after :meth:`_kernels` put
        the shared kernels' products into vrows (N, Mv): :meth:`_variance_rows` per block
        of BLOCK atoms, on the engine's threads, one-thread BLAS in each."""
        cdef Py_ssize_t b, nb = (self.n_atoms + BLOCK - 1) // BLOCK
        cdef int nt = self._threads(), prev = 0
        if nt == 1:
            if _blas_local != NULL:
                prev = _blas_local(1)
            for b in range(nb):
                self._variance_rows(Z, W, b)
            if _blas_local != NULL:
                _blas_local(prev)
            return
        with parallel(num_threads=nt):
            if _blas_local != NULL:
                prev = _blas_local(1)
            for b in prange(nb, schedule="dynamic"):
                self._variance_rows(Z, W, b)
            if _blas_local != NULL:
                _blas_local(prev)

    cdef inline void _variance_rows(self, const double* Z, Py_ssize_t W,
                                    Py_ssize_t b) noexcept nogil:
        """Block b (atoms b·BLOCK …) of :meth:`_variance_pass`: the columns no kernel
        shares from the operand rows Z (N, W) (:meth:`_var_products`), then
        :meth:`_var_finish`, in vrows."""
        cdef Py_ssize_t a0 = b * BLOCK
        cdef int n = <int>(BLOCK if self.n_atoms - a0 > BLOCK else self.n_atoms - a0)
        self._var_products(Z + a0 * W, n, self.vrows + a0 * self.Mv, True)
        self._var_finish(a0, n, self.vrows + a0 * self.Mv)

    cdef void _count_skips(self) noexcept:
        """sskip: per slot of atom i, how many of its first pairs have j < i — the
        one-visit passes start after them (pairs in a slot by ascending j: all of them;
        otherwise the passes' own test still skips the rest)."""
        cdef Py_ssize_t i, s, p
        for i in range(self.n_atoms):
            for s in range(self.soff[i], self.soff[i + 1]):
                p = self.sp[s]
                while p < self.sp[s + 1] and self.neigh[p] < i:
                    p += 1
                self.sskip[s] = <int>(p - self.sp[s])

    def fm_energies(self):
        """Energies (N,) eV of the FM state (all e along z) into ``energies``, less the
        current reference, and returned (a copy): what :meth:`compute` gives there, bit for
        bit. Where its pair sums are exactly 0 at FM (full descriptors, power basis: x =
        c - 1 = 0 and y = 0, so d = d_fm and the linear change is 0), from d_fm by the
        kernel stage alone, without the pair pass; otherwise by :meth:`compute`."""
        cdef Py_ssize_t i, q, N = self.n_atoms
        if not self.shell and self.poly and (self.Da == 0 or self.apoly) and N:
            with nogil:
                for i in range(N):
                    self.E[i] = 0.0
                for q in range(N * self.D):
                    self.d[q] = self.dfm[q]
                self.d_fresh = False
                self._kernels(False)
        else:
            self.compute(np.tile([0.0, 0.0, 1.0], (N, 1)), False)
        return np.array(self.energies)

    def set_reference(self, e_ref):
        """Replace the energies subtracted per atom (N,) eV."""
        cdef double[::1] a = np.ascontiguousarray(e_ref, dtype=np.float64)
        cdef Py_ssize_t i
        if a.shape[0] != self.n_atoms:
            raise ValueError("reference energies: one per atom")
        for i in range(self.n_atoms):
            self.e_ref[i] = a[i]

    @property
    def profile(self) -> dict:
        """Accumulated seconds per stage (descriptor, kernel: products and coefficients,
        gradient: ∂E/∂d, field: contraction to ∂E/∂e) and the number of evaluations."""
        return {"descriptor": self.stage[0], "kernel": self.stage[1],
                "gradient": self.stage[2], "field": self.stage[3], "calls": int(self.stage[4])}

    @property
    def nbytes(self) -> int:
        """Bytes of every array the engine holds (structure data and buffers)."""
        return int(sum(np.asarray(a).nbytes for a in self._keep + (self._vkeep or ()))
                   + 8 * 4 * self.n_atoms)

    def reset_profile(self, bint cpu=False):
        """Zero the stage timers; ``cpu``: time the stages in CPU seconds of the process
        (all threads) instead of wall seconds."""
        cdef int k
        self.clock = CLOCK_PROCESS_CPUTIME_ID if cpu else CLOCK_MONOTONIC
        for k in range(5):
            self.stage[k] = 0.0

    cdef int _threads(self) noexcept nogil:
        cdef int nt = gap_max_threads()
        if self.n_atoms < SERIAL_BELOW:
            return 1
        return nt if nt < self.nt_alloc else self.nt_alloc

    def ranges(self, int nt):
        """(nt + 1,) int64: the atom ranges of the one-visit pair passes on nt threads
        (:meth:`_ranges`), and (N + 1,) the cumulative work they are balanced on."""
        if not 1 <= nt <= self.nt_alloc:
            raise ValueError(f"nt must be 1 … {self.nt_alloc}")
        self._ranges(nt)
        part = np.array([self.part[c] for c in range(nt + 1)], dtype=np.int64)
        work = np.array([self.wcum[i] for i in range(self.n_atoms + 1)], dtype=np.int64)
        return part, work

    cdef void _ranges(self, int nt) noexcept nogil:
        """part: nt contiguous atom ranges of equal work (wcum) for the one-visit pair
        passes. Contiguous ranges, the same in every pass, keep the rows a thread
        writes in its own core's cache: round-robin chunks of 64 atoms had both threads
        write the same rows in turn (the pair-sum pass on two threads then ran at 1.2×
        one thread instead of 1.5-1.9×). With the pipeline's copies: touch, the rows
        each range but the last writes into its copy."""
        cdef Py_ssize_t c, lo = 0, hi, mid, N = self.n_atoms, i, s, p, j
        cdef cnp.int64_t target
        if nt == self.part_nt:
            return
        self.part[0] = 0
        for c in range(1, nt):
            target = (self.wcum[N] * c) // nt      # first atom whose work starts past it
            hi = N
            while lo < hi:
                mid = (lo + hi) // 2
                if self.wcum[mid] < target:
                    lo = mid + 1
                else:
                    hi = mid
            self.part[c] = lo
        self.part[nt] = N
        self.part_nt = nt
        if self.touch == NULL:
            return
        # the rows of X beyond range c that its pairs j > i reach: the only rows of its
        # copy (Xbuf) that the pair-sum pass writes, and that _slot_rows adds and zeroes
        for i in range((self.nt_alloc - 1) * N):
            self.touch[i] = 0
        for c in range(nt - 1):
            hi = self.part[c + 1]
            for i in range(self.part[c], hi):
                for s in range(self.soff[i], self.soff[i + 1]):
                    for p in range(self.sp[s], self.sp[s + 1]):
                        j = self.neigh[p]
                        if j >= hi:
                            self.touch[c * N + j] = 1

    cdef inline void _slot_sums(self, Py_ssize_t s, double ex, double ey, double ez,
                                const double* e, double* P, double* W) noexcept nogil:
        """W[l] = Σ_{p in slot s} (P_l(e_i·e_j) - 1), l < L (P: scratch)."""
        cdef Py_ssize_t p, j, l, k, L = self.L
        cdef double c, x, xk
        for l in range(L):
            W[l] = 0.0
        if self.poly:       # M_k = Σ_p x^k, then W_l = Σ_k b_lk M_k
            for k in range(L):
                P[k] = 0.0
            for p in range(self.sp[s], self.sp[s + 1]):
                j = self.neigh[p]
                x = (ex * e[3 * j] + ey * e[3 * j + 1] + ez * e[3 * j + 2]) - 1.0
                xk = x
                for k in range(1, L):
                    P[k] = P[k] + xk
                    xk = xk * x
            for l in range(1, L):
                for k in range(1, l + 1):
                    W[l] = W[l] + self.bx[l * (POLY_LMAX + 1) + k] * P[k]
        else:
            for p in range(self.sp[s], self.sp[s + 1]):
                j = self.neigh[p]
                c = ex * e[3 * j] + ey * e[3 * j + 1] + ez * e[3 * j + 2]
                _legendre(c, L - 1, self.la, self.lb, P)
                for l in range(L):
                    W[l] = W[l] + (P[l] - 1.0)

    cdef inline void _angle_values(self, double theta, double* G) noexcept nogil:
        """G[k] = g_k(θ) - 1 = P_k(1 + y) - 1, y = -2θ/π, 1 ≤ k ≤ KA (power basis: Σ_m
        b_km y^m, exactly 0 at θ = 0; else the recursion)."""
        cdef Py_ssize_t k, m, KA = self.KA
        cdef double y = -TWO_OVER_PI * theta, acc, ym
        if self.apoly:
            for k in range(1, KA + 1):
                acc = 0.0
                ym = 1.0
                for m in range(1, k + 1):
                    ym = ym * y
                    acc = acc + self.bx[k * (POLY_LMAX + 1) + m] * ym
                G[k] = acc
        else:
            _legendre(1.0 + y, KA, self.la, self.lb, G)
            for k in range(1, KA + 1):
                G[k] = G[k] - 1.0

    cdef void _angle_pairs(self, const double* e) noexcept nogil:
        """Per angle pair, once per unordered pair (the list ui ≤ uj of the pairs met
        from their lower atom, :func:`gap_pair_angles`: one flat loop, vectorised), then
        written to both directions: y = -2θ/π into ay and 1/|e_i × e_j| (0 below
        par_tol) into ainv. On nt threads each thread one contiguous range of atoms
        (:meth:`_ranges`), i.e. of the list (uoff); each entry has one writer."""
        cdef Py_ssize_t c
        cdef int nt = self._threads()
        if nt == 1:
            self._angle_pairs_range(0, self.n_atoms, e)
            return
        self._ranges(nt)
        for c in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            self._angle_pairs_range(self.part[c], self.part[c + 1], e)

    cdef inline void _angle_pairs_range(self, Py_ssize_t i0, Py_ssize_t i1,
                                        const double* e) noexcept nogil:
        """:meth:`_angle_pairs` of the atoms i0 … i1 - 1."""
        cdef Py_ssize_t q, p, q0 = self.uoff[i0], q1 = self.uoff[i1]
        cdef double y, inv
        gap_pair_angles(q0, q1, self.ui, self.uj, e, self.par_tol, self.uy, self.uinv)
        for q in range(q0, q1):
            p = self.up[q]
            y = self.uy[q]
            inv = self.uinv[q]
            self.ay[p] = y
            self.ainv[p] = inv
            self.ay[self.arev[p]] = y
            self.ainv[self.arev[p]] = inv

    cdef inline void _angle_sums(self, Py_ssize_t s, double* P, double* W) noexcept nogil:
        """W[k] = Σ_{p in angle slot s} (g_k(θ_p) - 1), 1 ≤ k ≤ KA, from the pairs' y
        (:meth:`_angle_pairs`) (P: scratch of KA + 1; power basis: the sums of y^m
        first, then W = b·sums)."""
        cdef Py_ssize_t p, k, m, KA = self.KA
        cdef double y, ym
        for k in range(KA + 1):
            W[k] = 0.0
            P[k] = 0.0
        for p in range(self.asp[s], self.asp[s + 1]):
            y = self.ay[p]
            if self.apoly:
                ym = y
                for m in range(1, KA + 1):
                    P[m] = P[m] + ym
                    ym = ym * y
            else:
                _legendre(1.0 + y, KA, self.la, self.lb, P)
                for k in range(1, KA + 1):
                    W[k] = W[k] + (P[k] - 1.0)
        if self.apoly:
            for k in range(1, KA + 1):
                for m in range(1, k + 1):
                    W[k] = W[k] + self.bx[k * (POLY_LMAX + 1) + m] * P[m]

    cdef inline void _angle_row(self, Py_ssize_t i, double* out, double* P) noexcept nogil:
        """out (Da,) = atom i's angle block minus its FM value, Σ_s Ra[srid_s, n] Wa_s[k]
        at n·KA + k - 1, after :meth:`_angle_pairs` (P: scratch of 2 (LMAX_CAP + 1))."""
        cdef Py_ssize_t s, n, k, q, KA = self.KA, NA = self.NA
        cdef double* W = P + (LMAX_CAP + 1)
        cdef double* r
        for q in range(self.Da):
            out[q] = 0.0
        for s in range(self.asoff[i], self.asoff[i + 1]):
            self._angle_sums(s, P, W)
            r = self.artab + self.asrid[s] * NA
            for n in range(NA):
                for k in range(KA):
                    out[n * KA + k] += r[n] * W[k + 1]

    cdef inline void _angle_zrow(self, Py_ssize_t i, double* z) noexcept nogil:
        """Atom i's angle columns z (Ua·KA,) of the pipeline's products, after
        :meth:`_angle_pairs`: per angle slot s (radial row u) z[u·KA + m - 1] = Σ_{p in s}
        y_p^m (power basis; recursion: Σ_p (g_m(θ_p) - 1)), 0 for rows of none of its
        slots."""
        cdef Py_ssize_t s, p, m, KA = self.KA
        cdef double y, y2, y3, y4, y5, y6, s1, s2, s3, s4, s5, s6
        cdef double P[LMAX_CAP + 1]
        cdef double* zs
        for m in range(self.WZ - self.WS):
            z[m] = 0.0
        for s in range(self.asoff[i], self.asoff[i + 1]):
            zs = z + self.asrid[s] * KA
            if not self.apoly:
                for p in range(self.asp[s], self.asp[s + 1]):
                    _legendre(1.0 + self.ay[p], KA, self.la, self.lb, P)
                    for m in range(1, KA + 1):
                        zs[m - 1] += P[m] - 1.0
                continue
            s1 = s2 = s3 = s4 = s5 = s6 = 0.0      # the powers up to 6 (k_max ≤ 6)
            for p in range(self.asp[s], self.asp[s + 1]):
                y = self.ay[p]
                y2 = y * y
                y3 = y2 * y
                y4 = y3 * y
                y5 = y4 * y
                y6 = y5 * y
                s1 = s1 + y
                s2 = s2 + y2
                s3 = s3 + y3
                s4 = s4 + y4
                s5 = s5 + y5
                s6 = s6 + y6
            P[1] = s1
            P[2] = s2
            P[3] = s3
            P[4] = s4
            P[5] = s5
            P[6] = s6
            for m in range(KA):
                zs[m] = P[m + 1]

    cdef inline void _angle_slot_field(self, Py_ssize_t a, const double* Ga) noexcept nogil:
        """Rows Q of atom a's angle slots (into Qa, KA + 1 per slot, from 1) from its
        ∂E/∂d angle block Ga (Da,): H_s[k] = Σ_n Ga[n, k] Ra[srid_s, n] times dy/dθ, and
        in the power basis Q_s[m] = m Σ_{k ≥ m} b_km H_s[k] (in place, m ascending), so
        that a pair's ∂E/∂θ = Σ_m (Q_s + Q_t)[m] y^(m-1) (recursion: Σ_k P_k'(x) (Q_s +
        Q_t)[k])."""
        cdef Py_ssize_t s, n, k, m, KA = self.KA, NA = self.NA
        cdef double acc
        cdef double* r
        cdef double* Q
        for s in range(self.asoff[a], self.asoff[a + 1]):
            r = self.artab + self.asrid[s] * NA
            Q = self.Qa + s * (KA + 1)
            Q[0] = 0.0
            for k in range(KA):
                acc = 0.0
                for n in range(NA):
                    acc = acc + Ga[n * KA + k] * r[n]
                Q[k + 1] = -TWO_OVER_PI * acc
            if self.apoly:
                for m in range(1, KA + 1):
                    acc = 0.0
                    for k in range(m, KA + 1):
                        acc = acc + self.bx[k * (POLY_LMAX + 1) + m] * Q[k]
                    Q[m] = m * acc

    cdef void _angle_slots(self, const double* G) noexcept nogil:
        """Rows Q of every angle slot from full ∂E/∂d rows G (N, D) (not the pipeline,
        which makes them per block)."""
        cdef Py_ssize_t a
        cdef int nt = self._threads()
        for a in prange(self.n_atoms, schedule="static", num_threads=nt):
            self._angle_slot_field(a, G + a * self.D + self.Ds)

    cdef inline double _angle_du(self, double y, const double* Qs, const double* Qt,
                                 double* P) noexcept nogil:
        """∂E/∂θ of an angle pair from its y and the rows Q of its two slots:
        Σ_m (Q_s + Q_t)[m] y^(m-1) (power basis; recursion: Σ_k P_k'(1 + y) (Q_s +
        Q_t)[k]; P: scratch of 2 (LMAX_CAP + 1))."""
        cdef Py_ssize_t m, KA = self.KA
        cdef double u
        cdef double* dP = P + (LMAX_CAP + 1)
        if self.apoly:
            u = Qs[KA] + Qt[KA]
            for m in range(KA - 1, 0, -1):
                u = u * y + (Qs[m] + Qt[m])
            return u
        _legendre_d(1.0 + y, KA, self.la, self.lb, P, dP)
        u = 0.0
        for m in range(1, KA + 1):
            u = u + dP[m] * (Qs[m] + Qt[m])
        return u

    cdef void _angle_field(self, const double* e) noexcept nogil:
        """Adds the angle block's ∂E/∂e_a to g, per atom from its own pairs (gather, rows
        Q of both ends' slots, y and 1/|n| of :meth:`_angle_pairs`): ∂E/∂θ_p
        (∂θ_p/∂e_a = -(n × e_a)/|n|, n = e_a × e_j); nothing where |n| < par_tol
        (angle2b's guard)."""
        cdef Py_ssize_t a, s, p, j, KA = self.KA
        cdef double ex, ey, ez, nx, ny, nz, inv, f, gx, gy, gz
        cdef double* P
        cdef double* Qs
        cdef double* Qt
        cdef int nt = self._threads(), tid
        with parallel(num_threads=nt):
            tid = threadid()
            P = self.scratch + tid * SCRATCH
            for a in prange(self.n_atoms, schedule="static"):
                ex = e[3 * a]
                ey = e[3 * a + 1]
                ez = e[3 * a + 2]
                gx = 0.0
                gy = 0.0
                gz = 0.0
                for s in range(self.asoff[a], self.asoff[a + 1]):
                    Qs = self.Qa + s * (KA + 1)
                    for p in range(self.asp[s], self.asp[s + 1]):
                        inv = self.ainv[p]
                        if inv == 0.0:
                            continue
                        j = self.aneigh[p]
                        nx = ey * e[3 * j + 2] - ez * e[3 * j + 1]
                        ny = ez * e[3 * j] - ex * e[3 * j + 2]
                        nz = ex * e[3 * j + 1] - ey * e[3 * j]
                        Qt = self.Qa + (self.asoff[j] + self.ajslot[p]) * (KA + 1)
                        f = -self._angle_du(self.ay[p], Qs, Qt, P) * inv
                        gx = gx + f * (ny * ez - nz * ey)
                        gy = gy + f * (nz * ex - nx * ez)
                        gz = gz + f * (nx * ey - ny * ex)
                self.g[3 * a] += gx
                self.g[3 * a + 1] += gy
                self.g[3 * a + 2] += gz

    cdef void _descriptors(self, const double* e, double* out, double* E) noexcept nogil:
        """Pass 1: descriptors into out (N, D) and, unless E is NULL, the linear
        kernels' energies into E (N,):
        the change from the FM state accumulated first (P_l - 1: no cancellation
        against the FM reference), then the FM descriptor added."""
        cdef Py_ssize_t i, s, l, n, q, nmax = self.n_max, L = self.L, D = self.D
        cdef double coef, lin, pair
        cdef double* P
        cdef double* W
        cdef double* di
        cdef double* r
        cdef int nt = self._threads(), tid
        with parallel(num_threads=nt):
            tid = threadid()
            P = self.scratch + tid * SCRATCH
            W = P + (LMAX_CAP + 1)
            for i in prange(self.n_atoms, schedule="static"):
                di = out + i * D
                for q in range(D):
                    di[q] = 0.0
                pair = 0.0
                for s in range(self.soff[i], self.soff[i + 1]):
                    self._slot_sums(s, e[3 * i], e[3 * i + 1], e[3 * i + 2], e, P, W)
                    r = self.rtab + self.srid[s] * self.rstride
                    for l in range(L):
                        coef = self.w[l] * W[l]
                        for n in range(nmax):
                            di[l * nmax + n] += coef * r[n]
                    if self.kap != NULL:
                        for l in range(1, L):
                            pair = pair + self.kap[self.srid[s] * self.rstride + l] * W[l]
                if self.Da:
                    self._angle_row(i, di + self.Ds, P)
                lin = pair
                for q in range(D):
                    lin = lin + di[q] * self.v[q]
                    di[q] += self.dfm[i * D + q]
                if E != NULL:
                    E[i] = lin

    cdef void _shell_descriptors(self, const double* e) noexcept nogil:
        """Pass 1 in the shell basis: X_i[u, l] = w_l W_s[l] (s: atom i's slot of
        radial row u) and the linear kernels' energies X_i·Hv into E (after
        :meth:`_angle_pairs`; the power basis makes the pair angles itself)."""
        if self.poly:
            self._shell_descriptors_pairs(e, self.Da > 0)
            return
        cdef Py_ssize_t i, s, l, q, L = self.L, LU = self.LU
        cdef double lin
        cdef double* P
        cdef double* W
        cdef double* xi
        cdef double* hv
        cdef int nt = self._threads(), tid
        with parallel(num_threads=nt):
            tid = threadid()
            P = self.scratch + tid * SCRATCH
            W = P + (LMAX_CAP + 1)
            for i in prange(self.n_atoms, schedule="static"):
                xi = self.X + i * LU
                for q in range(LU):
                    xi[q] = 0.0
                lin = 0.0
                for s in range(self.soff[i], self.soff[i + 1]):
                    self._slot_sums(s, e[3 * i], e[3 * i + 1], e[3 * i + 2], e, P, W)
                    hv = self.Hv + self.srid[s] * L
                    for l in range(L):
                        xi[self.srid[s] * L + l] += self.w[l] * W[l]
                        lin = lin + self.w[l] * W[l] * hv[l]
                    if self.kap != NULL:
                        for l in range(1, L):
                            lin = lin + self.kap[self.srid[s] * self.rstride + l] * W[l]
                self.E[i] = lin

    cdef inline void _pair_powers(self, Py_ssize_t i, const double* e, double* Xt,
                                  double* Xc, Py_ssize_t hi) noexcept nogil:
        """Atom i's pairs j ≥ i: their powers x^k, x = e_i·e_j - 1, added to the sums M_k
        of both ends' slots, in Xt (N, U·L) for i and for j < hi, in Xc (the same
        layout) for j ≥ hi (atom i's own sums of a slot kept in registers until the slot
        ends; k ≤ L - 1 ≤ POLY_LMAX)."""
        cdef Py_ssize_t s, p, j, k, L = self.L, LU = self.LU
        cdef double ex = e[3 * i], ey = e[3 * i + 1], ez = e[3 * i + 2]
        cdef double xp[POLY_LMAX + 1]
        cdef double acc[POLY_LMAX + 1]
        cdef double* Mi
        cdef double* Mj
        for s in range(self.soff[i], self.soff[i + 1]):
            Mi = Xt + i * LU + self.srid[s] * L
            acc[1] = acc[2] = acc[3] = acc[4] = acc[5] = acc[6] = 0.0
            for p in range(self.sp[s] + self.sskip[s], self.sp[s + 1]):
                j = self.neigh[p]
                if j < i:           # the pair was met from j (same radial row)
                    continue
                Mj = (Xt if j < hi else Xc) + j * LU + self.srid[s] * L
                xp[1] = (ex * e[3 * j] + ey * e[3 * j + 1] + ez * e[3 * j + 2]) - 1.0
                xp[2] = xp[1] * xp[1]
                xp[3] = xp[2] * xp[1]
                xp[4] = xp[3] * xp[1]
                xp[5] = xp[4] * xp[1]
                xp[6] = xp[5] * xp[1]
                acc[1] = acc[1] + xp[1]
                acc[2] = acc[2] + xp[2]
                acc[3] = acc[3] + xp[3]
                acc[4] = acc[4] + xp[4]
                acc[5] = acc[5] + xp[5]
                acc[6] = acc[6] + xp[6]
                for k in range(1, L):
                    Mj[k] = Mj[k] + xp[k]
            for k in range(1, L):
                Mi[k] = Mi[k] + acc[k]

    cdef inline void _slot_rows(self, Py_ssize_t i, int copies, double* z) noexcept nogil:
        """Atom i's shell columns z (WS,) of the pipeline's products: the power sums of
        its slots, z[u·(L - 1) + k - 1] = M_k of its slot of radial row u (0 for rows of
        none of its slots; the b_lk, w_l of W_l = Σ_k b_lk M_k are in the products'
        matrices). copies: the number of per-range copies (Xbuf) whose sums are added to
        X's, and zeroed for the next evaluation."""
        cdef Py_ssize_t s, k, t, q, L = self.L, Lc = self.L - 1
        cdef Py_ssize_t NLU = self.n_atoms * self.LU
        cdef double* Mi
        cdef double* Mt
        cdef double* zs
        for q in range(self.WS):
            z[q] = 0.0
        for s in range(self.soff[i], self.soff[i + 1]):
            Mi = self.X + i * self.LU + self.srid[s] * L
            zs = z + self.srid[s] * Lc
            for k in range(1, L):
                zs[k - 1] = Mi[k]
            for t in range(copies):
                if not self.touch[t * self.n_atoms + i]:     # range t wrote none of row i
                    continue
                Mt = self.Xbuf + t * NLU + (Mi - self.X)
                for k in range(1, L):
                    zs[k - 1] = zs[k - 1] + Mt[k]
                    Mt[k] = 0.0

    cdef void _shell_descriptors_pairs(self, const double* e, bint angles) noexcept nogil:
        """:meth:`_shell_descriptors` in the power basis, first half: each unordered
        pair once, its powers added to the sums M_k of both ends (kept in X itself:
        X_i[u, k] = M_k of atom i's slot of row u); the rest follows in the pipeline
        (:meth:`_slot_rows`). On nt > 1 threads each contiguous range c of atoms
        (:meth:`_ranges`) adds straight into X wherever both ends are in its range (its
        rows are written by it alone), and into its own copy (Xbuf, kept zero between
        evaluations) for the ends j beyond it: only the rows in ``touch``, which
        :meth:`_slot_rows` adds to X's sums and zeroes. (Before, every thread but the
        first wrote all its sums into a copy: at 16 000 atoms two threads then zeroed
        and summed 4 MB more per evaluation.)"""
        cdef Py_ssize_t i, q, c, N = self.n_atoms, NLU = self.n_atoms * self.LU
        cdef int nt = self._threads()
        if nt == 1:
            if angles:
                self._angle_pairs_range(0, N, e)
            for q in range(NLU):
                self.X[q] = 0.0
            for i in range(N):
                self._pair_powers(i, e, self.X, NULL, N)
            return
        self._ranges(nt)
        # one parallel region: range c's rows of X are written by range c alone (its
        # pairs' ends j beyond it go to its copy), so zeroing them and adding its sums
        # need no barrier between; with an angle block its pair angles come first in
        # the same region (they are read only after it, by the pipeline)
        for c in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            if angles:
                self._angle_pairs_range(self.part[c], self.part[c + 1], e)
            for q in range(self.part[c] * self.LU, self.part[c + 1] * self.LU):
                self.X[q] = 0.0
            for i in range(self.part[c], self.part[c + 1]):
                self._pair_powers(i, e, self.X, self.Xbuf + c * NLU if c < nt - 1 else NULL,
                                  self.part[c + 1])

    cdef inline void _pair_field(self, Py_ssize_t a, const double* e, double* gt,
                                 double* P) noexcept nogil:
        """Atom a's pairs j > a with the summed Q of their two slots: the term added to
        both ends of gt (N, 3) (atom a's own sum kept in registers); with an angle block
        its angle pairs j > a likewise: ∂E/∂θ_p = Σ_m (Q_s + Q_t)[m] y^(m-1) (recursion:
        Σ_k P_k'(1 + y) (Q_s + Q_t)[k]) times ∂θ/∂e_a = -(n × e_a)/|n| to a and
        (n × e_j)/|n| to j, n = e_a × e_j, nothing where |n| < par_tol (P: scratch of
        2 (LMAX_CAP + 1))."""
        cdef Py_ssize_t s, p, j, k, L = self.L, LU = self.LU, KA = self.KA
        cdef double ex = e[3 * a], ey = e[3 * a + 1], ez = e[3 * a + 2], x, u, f, inv
        cdef double gx = 0.0, gy = 0.0, gz = 0.0, nx, ny, nz, jx, jy, jz, x2
        cdef double q1 = 0.0, q2 = 0.0, q3 = 0.0, q4 = 0.0, q5 = 0.0, q6 = 0.0
        cdef double* Qa
        cdef double* Qj
        for s in range(self.soff[a], self.soff[a + 1]):
            Qa = self.Qb + a * LU + self.srid[s] * L
            if L == 7:          # (kept in registers: the stores into gt may alias Qa)
                q1, q2, q3, q4, q5, q6 = Qa[1], Qa[2], Qa[3], Qa[4], Qa[5], Qa[6]
            for p in range(self.sp[s] + self.sskip[s], self.sp[s + 1]):
                j = self.neigh[p]
                if j < a:
                    continue
                Qj = self.Qb + j * LU + self.srid[s] * L
                jx = e[3 * j]
                jy = e[3 * j + 1]
                jz = e[3 * j + 2]
                x = (ex * jx + ey * jy + ez * jz) - 1.0
                if L == 7:      # l_max 6 (the defaults): Estrin's scheme, shorter chains
                    x2 = x * x
                    u = ((q1 + Qj[1]) + (q2 + Qj[2]) * x) + x2 * (
                        ((q3 + Qj[3]) + (q4 + Qj[4]) * x)
                        + x2 * ((q5 + Qj[5]) + (q6 + Qj[6]) * x))
                else:
                    u = Qa[L - 1] + Qj[L - 1]
                    for k in range(L - 2, 0, -1):
                        u = u * x + (Qa[k] + Qj[k])
                gx = gx + u * jx
                gy = gy + u * jy
                gz = gz + u * jz
                gt[3 * j] += u * ex
                gt[3 * j + 1] += u * ey
                gt[3 * j + 2] += u * ez
        for s in range(self.asoff[a], self.asoff[a + 1]):
            Qa = self.Qa + s * (KA + 1)
            for p in range(self.asp[s], self.asp[s + 1]):
                j = self.aneigh[p]
                inv = self.ainv[p]
                if j < a or inv == 0.0:
                    continue
                jx = e[3 * j]
                jy = e[3 * j + 1]
                jz = e[3 * j + 2]
                nx = ey * jz - ez * jy
                ny = ez * jx - ex * jz
                nz = ex * jy - ey * jx
                Qj = self.Qa + (self.asoff[j] + self.ajslot[p]) * (KA + 1)
                f = -self._angle_du(self.ay[p], Qa, Qj, P) * inv
                gx = gx + f * (ny * ez - nz * ey)
                gy = gy + f * (nz * ex - nx * ez)
                gz = gz + f * (nx * ey - ny * ex)
                gt[3 * j] -= f * (ny * jz - nz * jy)
                gt[3 * j + 1] -= f * (nz * jx - nx * jz)
                gt[3 * j + 2] -= f * (nx * jy - ny * jx)
        gt[3 * a] += gx
        gt[3 * a + 1] += gy
        gt[3 * a + 2] += gz

    cdef void _shell_contract_pairs(self, const double* e) noexcept nogil:
        """:meth:`_contract` in the shell basis, power basis, after the pipeline (Q of
        every slot made, g zeroed): each unordered pair of both pair lists once
        (:meth:`_pair_field`) — on one thread straight into g; on nt > 1 thread 0 into
        g, thread t ≥ 1 into its slice of gbuf, summed into g and zeroed (atom ranges as
        in :meth:`_shell_descriptors_pairs`); from :meth:`field` (fout set) each atom's
        rows summed and projected in one parallel region (no second one for
        :meth:`_project`)."""
        cdef Py_ssize_t a, q, t, c, N = self.n_atoms
        cdef double* gt
        cdef int nt = self._threads(), tid
        if nt == 1:
            for a in range(N):
                self._pair_field(a, e, self.g, self.scratch)
            return
        self._ranges(nt)
        with parallel(num_threads=nt):
            tid = threadid()
            gt = self.g if tid == 0 else self.gbuf + (tid - 1) * 3 * N
            for c in prange(nt, schedule="static", chunksize=1):
                for a in range(self.part[c], self.part[c + 1]):
                    self._pair_field(a, e, gt, self.scratch + tid * SCRATCH)
        if self.fout != NULL:       # field(): the copies summed and projected, one region
            for a in prange(N, schedule="static", num_threads=nt):
                for q in range(3 * a, 3 * a + 3):
                    for t in range(nt - 1):
                        self.g[q] += self.gbuf[t * 3 * N + q]
                        self.gbuf[t * 3 * N + q] = 0.0
                self._project_one(a, e, self.fscale, self.fbext, self.fout)
            self.projected = True
            return
        for q in prange(3 * N, schedule="static", num_threads=nt):
            for t in range(nt - 1):
                self.g[q] += self.gbuf[t * 3 * N + q]
                self.gbuf[t * 3 * N + q] = 0.0

    cdef inline void _gemm_chunk(self, bint forward, int im, int iD, double* Sk,
                                 double* rows_in, double beta, double* rows_out,
                                 int n) noexcept nogil:
        """:meth:`_gemm_rows` on n atom rows (rows_in, rows_out: at the first)."""
        cdef double one = 1.0
        if forward:
            _dgemm(b"T", b"N", &im, &n, &iD, &one, Sk, &iD, rows_in, &iD, &beta,
                   rows_out, &im)
        else:
            _dgemm(b"N", b"N", &iD, &n, &im, &one, Sk, &iD, rows_in, &im, &one,
                   rows_out, &iD)

    cdef void _gemm_rows(self, bint forward, int im, int iD, double* Sk, double* rows_in,
                         double beta, double* rows_out, int nt) noexcept nogil:
        """One atom-row product of a kernel block, its N rows split into nt contiguous
        chunks, one per OpenMP thread, each a one-thread dgemm (OpenBLAS' own threads
        would compete with the waiting OpenMP team for the same cores: two threads ran
        at half the one-thread speed). forward: out (N, Mk) = beta out + in (N, W) S_kᵀ;
        else out (N, W) += in (N, Mk) S_k (S_k (Mk, W), row-major; column-major views)."""
        cdef Py_ssize_t c, a0, a1, N = self.n_atoms
        cdef int prev
        if nt == 1 or _blas_local == NULL:
            self._gemm_chunk(forward, im, iD, Sk, rows_in, beta, rows_out, <int>N)
            return
        for c in prange(nt, schedule="static", num_threads=nt):
            a0 = c * N // nt
            a1 = (c + 1) * N // nt
            if a1 > a0:
                prev = _blas_local(1)       # this thread's OpenBLAS setting, restored below
                if forward:
                    self._gemm_chunk(True, im, iD, Sk, rows_in + a0 * iD, beta,
                                     rows_out + a0 * im, <int>(a1 - a0))
                else:
                    self._gemm_chunk(False, im, iD, Sk, rows_in + a0 * im, beta,
                                     rows_out + a0 * iD, <int>(a1 - a0))
                _blas_local(prev)

    cdef inline double _coef_one(self, double* Crow, const double* fm, Py_ssize_t lo,
                                 Py_ssize_t m, long z, double nrm, double* x) noexcept nogil:
        """:meth:`_coef_row` of one sparse point m: C[m] replaced by α z c^(z-1); returns
        α c^z and adds α z c^z to x[0]."""
        cdef double c = Crow[m], a, cz
        if fm != NULL:
            c = c + fm[m]
        c = c / nrm
        a = self.alpha[lo + m]
        cz = _zpow(c, z)
        Crow[m] = a * z * cz
        x[0] = x[0] + a * z * cz * c
        return a * cz * c

    cdef inline double _coef_row(self, double* Crow, const double* fm, Py_ssize_t lo,
                                 Py_ssize_t Mk, long z, double nrm,
                                 double* xs, double* t) noexcept nogil:
        """One atom's products with kernel block k (sparse points lo … lo + Mk - 1):
        c = (C + fm) / nrm (fm: the FM products, or NULL); C replaced by α z c^(z-1);
        returns Σ α c^z, and Σ α z c^z in xs (unless NULL). The sums run in four
        interleaved partial sums (m mod 4): one chain of Mk dependent additions per atom
        was the latency that bounded this loop. ζ = 4 with the FM products, unit norm
        and no xs (the shell-basis pipeline) uses t (Mk doubles) as scratch."""
        cdef Py_ssize_t m = 0
        cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        cdef double x[4]
        cdef double c, a, cz
        x[0] = x[1] = x[2] = x[3] = 0.0
        if z == 4 and fm != NULL and nrm == 1.0 and xs == NULL and t != NULL:
            # the pipeline's case: gap_coef_zeta4, vectorised (an AVX2 build where the
            # CPU has it), the same products as _coef_one
            return gap_coef_zeta4(Mk, Crow, fm, self.alpha + lo, t)
        while m + 4 <= Mk:
            a0 = a0 + self._coef_one(Crow, fm, lo, m, z, nrm, x)
            a1 = a1 + self._coef_one(Crow, fm, lo, m + 1, z, nrm, x + 1)
            a2 = a2 + self._coef_one(Crow, fm, lo, m + 2, z, nrm, x + 2)
            a3 = a3 + self._coef_one(Crow, fm, lo, m + 3, z, nrm, x + 3)
            m += 4
        if m < Mk:
            a0 = a0 + self._coef_one(Crow, fm, lo, m, z, nrm, x)
        if m + 1 < Mk:
            a1 = a1 + self._coef_one(Crow, fm, lo, m + 1, z, nrm, x + 1)
        if m + 2 < Mk:
            a2 = a2 + self._coef_one(Crow, fm, lo, m + 2, z, nrm, x + 2)
        if xs != NULL:
            xs[0] = (x[0] + x[1]) + (x[2] + x[3])
        return (a0 + a1) + (a2 + a3)

    cdef void _block(self, Py_ssize_t b, bint need_grad, int copies, double* mem,
                     double* tt, clockid_t clk) noexcept nogil:
        """Block b (atoms b·BLOCK …) of the shell-basis pipeline. Each atom's row z (WZ,)
        of the products: the power sums M_k of its slots (:meth:`_slot_rows`, adding the
        ``copies`` per-range copies; orders k ≥ 1) and, with an angle block, the power
        sums of its angle slots' y (:meth:`_angle_zrow`); its linear energy z·hl. Per
        kernel block one product C = z Tfᵀ (+ Cfm: the FM products) and the kernel
        coefficients, and one product Q = Hq + coef Tb: the field's rows Q of its slots
        and angle slots (into X's rows and Qa). Tf, Tb, Hq and hl hold the power basis'
        b_lk, the weights w_l, the orders k and dy/dθ (module docstring), so that no
        per-slot transform is left here. g zeroed. C, z and Q of the block stay in cache
        (mem: BLOCK·(M + 2 WZ) + M doubles); each product is one dgemm on the calling thread.
        tt: seconds per stage (descriptor, kernel, gradient, field) on clock clk."""
        cdef Py_ssize_t N = self.n_atoms, M = self.M, WS = self.WS, WZ = self.WZ
        cdef Py_ssize_t L = self.L, Lc = self.L - 1, KA = self.KA, LU = self.LU
        cdef Py_ssize_t a0 = b * BLOCK, i, k, q, lo, Mk, u, s
        cdef Py_ssize_t a1 = a0 + BLOCK if a0 + BLOCK < N else N
        cdef int n = <int>(a1 - a0), im, iW = <int>WZ, iM = <int>M
        cdef double* Cb = mem
        cdef double* Zb = mem + BLOCK * M
        cdef double* Hb = Zb + BLOCK * WZ
        cdef double* tmp = Hb + BLOCK * WZ
        cdef double* z
        cdef double* h
        cdef double* xq
        cdef double* Q
        cdef double* vb = NULL
        cdef double t0 = _now(clk), t1, acc, lin
        cdef double zero = 0.0, one = 1.0
        for i in range(a0, a1):
            z = Zb + (i - a0) * WZ
            self._slot_rows(i, copies, z)
            if self.Da:
                self._angle_zrow(i, z + WS)
            lin = 0.0
            for q in range(WZ):
                lin = lin + z[q] * self.hl[q]
            self.E[i] = lin - self.e_ref[i]
            self.Ep[i] = 0.0
        t1 = _now(clk)
        tt[0] += t1 - t0
        t0 = t1
        if self.var != NULL:    # local-energy variances from the same rows z: the
            vb = self.vbuf + ((mem - self.blk) // self.blk_size) * BLOCK * self.Mv
            self._var_products(Zb, n, vb, True)     # columns no kernel here makes
        if need_grad:
            for i in range(n):
                for q in range(WZ):
                    Hb[i * WZ + q] = self.Hv[q]
        for k in range(self.K):
            lo = self.kstart[k]
            Mk = self.kstart[k + 1] - lo
            if Mk == 0:
                continue
            im = <int>Mk
            # C (n, Mk) = z (n, WZ) @ Tf_kᵀ, Cfm added per row; Tf kept transposed too
            # (Tft (WZ, M)): a plain (N, N) product, which OpenBLAS runs in its
            # small-matrix kernel, where (T, N) at these sizes packs both operands first
            _dgemm(b"N", b"N", &im, &n, &iW, &one, self.Tft + lo, &iM, Zb, &iW, &zero, Cb,
                   &im)
            if self.var != NULL and self.vshared[k] >= 0:     # the variances' columns
                for i in range(n):                              # of these products
                    memcpy(vb + i * self.Mv + self.vshared[k], Cb + i * Mk,
                           self.vlen[k] * sizeof(double))
            for i in range(n):
                acc = self._coef_row(Cb + i * Mk, self.Cfm + self.fmrow[a0 + i] * M + lo,
                                     lo, Mk, self.zeta[k], 1.0, NULL, tmp)
                self.E[a0 + i] += acc
                self.Ep[a0 + i] += acc
            t1 = _now(clk)
            tt[1] += t1 - t0
            t0 = t1
            if need_grad:       # Q (n, WZ) += coef (n, Mk) @ Tb_k
                self._gemm_chunk(False, im, iW, self.Tb + lo * WZ, Cb, zero, Hb, n)
                t1 = _now(clk)
                tt[2] += t1 - t0
                t0 = t1
        if self.var != NULL:
            self._var_finish(a0, n, vb)
            t1 = _now(clk)
            tt[1] += t1 - t0
            t0 = t1
        if need_grad:
            for i in range(n):
                h = Hb + i * WZ
                xq = self.Qb + (a0 + i) * LU
                for u in range(self.U):
                    for k in range(1, L):
                        xq[u * L + k] = h[u * Lc + k - 1]
                for s in range(self.asoff[a0 + i], self.asoff[a0 + i + 1]):
                    Q = self.Qa + s * (KA + 1)
                    Q[0] = 0.0
                    for k in range(1, KA + 1):
                        Q[k] = h[WS + self.asrid[s] * KA + k - 1]
                self.g[3 * (a0 + i)] = 0.0
                self.g[3 * (a0 + i) + 1] = 0.0
                self.g[3 * (a0 + i) + 2] = 0.0
            tt[3] += _now(clk) - t0

    cdef void _shell_pipeline(self, bint need_grad) noexcept nogil:
        """Energies, and with need_grad the rows Q of the field, in the shell basis with
        the power basis, after :meth:`_shell_descriptors_pairs`: the blocks of
        :meth:`_block` on nt threads (dynamic: a block's numbers do not depend on the
        thread that takes it), one-thread BLAS in each. Stage times:
        the threads' CPU seconds summed (CPU profile) or their wall seconds averaged."""
        cdef Py_ssize_t b, nb = (self.n_atoms + BLOCK - 1) // BLOCK
        cdef int nt = self._threads(), tid, t, q, prev = 0
        cdef bint cpu = self.clock == CLOCK_PROCESS_CPUTIME_ID
        cdef clockid_t clk = CLOCK_THREAD_CPUTIME_ID if cpu else CLOCK_MONOTONIC
        for q in range(4 * nt):
            self.tstage[q] = 0.0
        if nt == 1:
            if _blas_local != NULL:
                prev = _blas_local(1)
            for b in range(nb):
                self._block(b, need_grad, 0, self.blk, self.tstage, clk)
            if _blas_local != NULL:
                _blas_local(prev)
        else:
            with parallel(num_threads=nt):
                tid = threadid()
                if _blas_local != NULL:
                    prev = _blas_local(1)
                for b in prange(nb, schedule="dynamic"):
                    self._block(b, need_grad, nt - 1, self.blk + tid * self.blk_size,
                                self.tstage + 4 * tid, clk)
                if _blas_local != NULL:
                    _blas_local(prev)
        for t in range(nt):
            for q in range(4):
                self.stage[q] += self.tstage[4 * t + q] if cpu else self.tstage[4 * t + q] / nt

    cdef void _kernels(self, bint need_grad) noexcept nogil:
        """Energies (E) and, with need_grad, G = ∂E/∂d, from self.d; in the shell basis
        (``shell``) from X and Cfm, and H (the rows of G on the radial rows) instead
        of G."""
        cdef Py_ssize_t N = self.n_atoms, D = self.D, i, q, k, m, lo, hi, Mk
        cdef bint shell = self.shell
        # the products' operands: full descriptors, or shell coordinates
        cdef Py_ssize_t W = self.LU if shell else self.D
        cdef double* dmat = self.X if shell else self.d
        cdef double* Smat = self.Sr if shell else self.S
        cdef double* Gmat = self.H if shell else self.G
        cdef double* gvec = self.Hv if shell else self.v
        cdef double acc, nrm, x
        cdef long z
        cdef int nt = self._threads()
        cdef int im, iD
        cdef double one = 1.0, zero = 0.0
        cdef double* di
        cdef double* Ck
        cdef double* mk
        cdef double t0 = _now(self.clock), t1
        cdef int blas_prev = 0
        cdef bint blas_one = nt == 1 and _blas_local != NULL
        for i in prange(N, schedule="static", num_threads=nt):
            if need_grad:
                for q in range(W):
                    Gmat[i * W + q] = gvec[q]
            self.E[i] -= self.e_ref[i]
            self.Ep[i] = 0.0
            for k in range(self.K):
                if self.normalize[k]:
                    di = self.d + i * D
                    mk = self.masks + k * D
                    acc = 0.0
                    for q in range(D):
                        acc = acc + mk[q] * di[q] * di[q]
                    self.norms[i * self.K + k] = sqrt(acc)
        iD = <int>W
        if blas_one:
            blas_prev = _blas_local(1)
        t1 = _now(self.clock)
        self.stage[1] += t1 - t0
        t0 = t1
        for k in range(self.K):
            lo = self.kstart[k]
            hi = self.kstart[k + 1]
            Mk = hi - lo
            if Mk == 0 or N == 0:
                continue
            im = <int>Mk
            Ck = self.C + N * lo
            # C_k (N, Mk) = d (N, D) @ S_kᵀ   (column-major view: C_kᵀ = S_k dᵀ);
            # shell basis: C_k = X (N, U·L) @ Sr_kᵀ, and Cfm_k added below
            self._gemm_rows(True, im, iD, Smat + lo * W, dmat, zero, Ck, nt)
            if self.var != NULL and self.vshared[k] >= 0:     # the variances' columns
                for i in prange(N, schedule="static", num_threads=nt):
                    memcpy(self.vrows + i * self.Mv + self.vshared[k], Ck + i * Mk,
                           self.vlen[k] * sizeof(double))
            z = self.zeta[k]
            for i in prange(N, schedule="static", num_threads=nt):
                nrm = self.norms[i * self.K + k] if self.normalize[k] else 1.0
                if nrm == 0.0:
                    nrm = 1.0
                acc = self._coef_row(Ck + i * Mk,
                                     self.Cfm + self.fmrow[i] * self.M + lo if shell else NULL,
                                     lo, Mk, z, nrm, self.xsum + i * self.K + k, NULL)
                self.E[i] += acc
                self.Ep[i] += acc
                if self.normalize[k]:
                    nrm = self.norms[i * self.K + k]
                    self.xsum[i * self.K + k] = self.xsum[i * self.K + k] / (nrm * nrm)
                    for m in range(Mk):
                        Ck[i * Mk + m] = Ck[i * Mk + m] / nrm
            t1 = _now(self.clock)
            self.stage[1] += t1 - t0
            t0 = t1
            if not need_grad:
                continue
            # G (N, D) += coef (N, Mk) @ S_k   (column-major: Gᵀ += S_kᵀ coefᵀ);
            # shell basis: H (N, U·L) += coef @ Sr_k
            self._gemm_rows(False, im, iD, Smat + lo * W, Ck, one, Gmat, nt)
            if self.normalize[k]:
                mk = self.masks + k * D
                for i in prange(N, schedule="static", num_threads=nt):
                    x = self.xsum[i * self.K + k]
                    for q in range(D):
                        self.G[i * D + q] -= x * mk[q] * self.d[i * D + q]
            t1 = _now(self.clock)
            self.stage[2] += t1 - t0
            t0 = t1
        if blas_one:
            _blas_local(blas_prev)
        if self.var != NULL:        # local-energy variances from the same operand rows
            self._variance_pass(dmat, W)
            self.stage[1] += _now(self.clock) - t0

    cdef void _contract(self, const double* e) noexcept nogil:
        """∂E/∂e (unprojected) into g from G. Per slot s of atom a the row
        H_s[l] = w_l Σ_n G_a[l, n] R_n; each pair (a -> j) of the slot contributes
        u = Σ_l P_l'(c) H_s[l] to both ends: u e_j to a and u e_a to j (its reverse pair
        carries the same radial row), so no other atom's G is read; the scatter goes
        into per-thread buffers, summed at the end (and zeroed for the next call)."""
        cdef Py_ssize_t a, p, j, s, l, n, k, t, N = self.n_atoms
        cdef Py_ssize_t nmax = self.n_max, L = self.L, D = self.D
        cdef double c, u, ex, ey, ez, acc, x
        cdef double* P
        cdef double* dP
        cdef double* Hs
        cdef double* gb
        cdef double* Ga
        cdef double* r
        cdef int nt = self._threads(), tid
        with parallel(num_threads=nt):
            tid = threadid()
            P = self.scratch + tid * SCRATCH
            dP = P + (LMAX_CAP + 1)
            Hs = dP + (LMAX_CAP + 1)
            gb = self.gbuf + tid * N * 3
            for a in prange(N, schedule="static"):
                Ga = self.G + a * D
                ex = e[3 * a]
                ey = e[3 * a + 1]
                ez = e[3 * a + 2]
                for s in range(self.soff[a], self.soff[a + 1]):
                    if self.shell:              # from the gradient product: H[a, u, :]
                        for l in range(L):
                            Hs[l] = self.H[a * self.LU + self.srid[s] * L + l]
                    else:
                        r = self.rtab + self.srid[s] * self.rstride
                        for l in range(L):      # L independent sums (no dependency chain)
                            Hs[l] = 0.0
                        for n in range(nmax):
                            for l in range(L):
                                Hs[l] += Ga[l * nmax + n] * r[n]
                    for l in range(L):  # w_l H_s[l], plus the pair couplings
                        Hs[l] = self.w[l] * Hs[l]
                    if self.kap != NULL:
                        for l in range(L):
                            Hs[l] = Hs[l] + self.kap[self.srid[s] * self.rstride + l]
                    if self.poly:       # Q_k = k Σ_l b_lk w_l H_s[l]: u = Σ_k Q_k x^(k-1)
                        for k in range(1, L):
                            acc = 0.0
                            for l in range(k, L):
                                acc = acc + self.bx[l * (POLY_LMAX + 1) + k] * Hs[l]
                            dP[k] = k * acc
                    for p in range(self.sp[s], self.sp[s + 1]):
                        j = self.neigh[p]
                        c = ex * e[3 * j] + ey * e[3 * j + 1] + ez * e[3 * j + 2]
                        if self.poly:
                            x = c - 1.0
                            u = dP[L - 1]
                            for k in range(L - 2, 0, -1):
                                u = u * x + dP[k]
                        else:
                            _legendre_d(c, L - 1, self.la, self.lb, P, dP)
                            u = 0.0
                            for l in range(1, L):
                                u = u + dP[l] * Hs[l]
                        gb[3 * a] += u * e[3 * j]
                        gb[3 * a + 1] += u * e[3 * j + 1]
                        gb[3 * a + 2] += u * e[3 * j + 2]
                        gb[3 * j] += u * ex
                        gb[3 * j + 1] += u * ey
                        gb[3 * j + 2] += u * ez
        for a in prange(N * 3, schedule="static", num_threads=nt):
            acc = 0.0
            for t in range(nt):
                acc = acc + self.gbuf[t * N * 3 + a]
                self.gbuf[t * N * 3 + a] = 0.0
            self.g[a] = acc

    cdef double _poly(self, const double* x) noexcept nogil:
        """Σ_k Σ_m α_m κ_k(x, s_m) of one descriptor x (D,): the nonlinear energy."""
        cdef Py_ssize_t k, m, q, D = self.D
        cdef double total = 0.0, nrm, c
        cdef const double* Sm
        cdef double* mk
        for k in range(self.K):
            nrm = 1.0
            if self.normalize[k]:
                mk = self.masks + k * D
                nrm = 0.0
                for q in range(D):
                    nrm += mk[q] * x[q] * x[q]
                nrm = sqrt(nrm)
                if nrm == 0.0:
                    nrm = 1.0
            for m in range(self.kstart[k], self.kstart[k + 1]):
                Sm = self.S + m * D
                c = 0.0
                for q in range(D):
                    c += Sm[q] * x[q]
                total += self.alpha[m] * _ipow(c / nrm, self.zeta[k])
        return total

    def metropolis_sweep(self, double[:, ::1] e, double beta, double sigma,
                         const double[:, ::1] gauss, const double[::1] uniform,
                         const double[:, ::1] zeeman):
        """One sequential Metropolis sweep on the model's energy (eV) with Gaussian trial
        moves e' = (e + σg)/|e + σg|; accepted if uniform_k < exp(-β ΔE) (ΔE: the change
        of the local energies of k and its neighbours, minus zeeman_k·(e' - e)). e is
        updated in place; returns the number accepted. Descriptors are recomputed at the
        start of every sweep (no drift across sweeps)."""
        cdef Py_ssize_t N = self.n_atoms, D = self.D, nmax = self.n_max, L = self.L
        cdef Py_ssize_t Ds = self.Ds, KA = self.KA, NA = self.NA
        cdef Py_ssize_t k, s, p, j, l, n, q, na, a, accepted = 0
        cdef double trial[3]
        cdef double tx, ty, tz, c0, c1, dE, coef, lin, dpair
        cdef double P0[LMAX_CAP + 1]
        cdef double P1[LMAX_CAP + 1]
        cdef double W[LMAX_CAP + 1]
        cdef double* r
        cdef double* da
        if e.shape[0] != N or gauss.shape[0] != N or uniform.shape[0] != N \
                or zeeman.shape[0] != N:
            raise ValueError("metropolis_sweep: e, gauss, uniform, zeeman need N rows")
        if N == 0:
            return 0
        cdef bint shell = self.shell
        cdef double[:, ::1] vd
        cdef double[::1] vC
        if self.d == NULL:          # a shell-basis engine: full descriptors from now on
            self.d_array = np.zeros((N, D))
            vd = self.d_array
            self.d = &vd[0, 0]
            self._keep = self._keep + (self.d_array,)
        if not self.c_alloc:        # and the full products (the pipeline keeps blocks)
            C_arr = np.zeros(max(N * self.M, 1))
            vC = C_arr
            self.C = &vC[0]
            self.c_alloc = True
            self._keep = self._keep + (C_arr,)
        self.shell = False          # the sweep updates full descriptors d and Ep
        try:
            self.compute(e, False)
        finally:
            self.shell = shell
            self.d_fresh = False    # the sweep moves d with the spins it accepts
        with nogil:
            for k in range(N):
                if not trial_move(e, k, sigma, gauss, trial):
                    continue
                tx, ty, tz = trial[0], trial[1], trial[2]
                dpair = 0.0
                self.aff[0] = <int>k
                self.mark[k] = 0
                na = 1
                for q in range(D):
                    self.dnew[q] = self.d[k * D + q]
                for s in range(self.soff[k], self.soff[k + 1]):
                    r = self.rtab + self.srid[s] * self.rstride
                    for l in range(L):
                        W[l] = 0.0
                    for p in range(self.sp[s], self.sp[s + 1]):
                        j = self.neigh[p]
                        c0 = e[k, 0] * e[j, 0] + e[k, 1] * e[j, 1] + e[k, 2] * e[j, 2]
                        c1 = tx * e[j, 0] + ty * e[j, 1] + tz * e[j, 2]
                        _legendre(c0, L - 1, self.la, self.lb, P0)
                        _legendre(c1, L - 1, self.la, self.lb, P1)
                        if self.mark[j] < 0:
                            self.mark[j] = <int>na
                            self.aff[na] = <int>j
                            for q in range(D):
                                self.dnew[na * D + q] = self.d[j * D + q]
                            na += 1
                        da = self.dnew + self.mark[j] * D
                        for l in range(L):      # pair (j -> k): same radial row
                            W[l] += P1[l] - P0[l]
                            coef = self.w[l] * (P1[l] - P0[l])
                            for n in range(nmax):
                                da[l * nmax + n] += coef * r[n]
                    for l in range(L):          # pairs (k -> j) of this slot
                        coef = self.w[l] * W[l]
                        for n in range(nmax):
                            self.dnew[l * nmax + n] += coef * r[n]
                    if self.kap != NULL:        # pair couplings: both ends' energies
                        for l in range(1, L):
                            dpair = dpair + 2.0 * self.kap[self.srid[s] * self.rstride + l] * W[l]
                for s in range(self.asoff[k], self.asoff[k + 1]):     # the angle block
                    r = self.artab + self.asrid[s] * NA
                    for l in range(KA + 1):
                        W[l] = 0.0
                    for p in range(self.asp[s], self.asp[s + 1]):
                        j = self.aneigh[p]
                        self._angle_values(_theta(e[k, 0], e[k, 1], e[k, 2], &e[j, 0]), P0)
                        self._angle_values(_theta(tx, ty, tz, &e[j, 0]), P1)
                        if self.mark[j] < 0:
                            self.mark[j] = <int>na
                            self.aff[na] = <int>j
                            for q in range(D):
                                self.dnew[na * D + q] = self.d[j * D + q]
                            na += 1
                        da = self.dnew + self.mark[j] * D + Ds
                        for l in range(1, KA + 1):      # pair (j -> k): same radial row
                            W[l] += P1[l] - P0[l]
                            for n in range(NA):
                                da[n * KA + l - 1] += (P1[l] - P0[l]) * r[n]
                    for l in range(1, KA + 1):          # pairs (k -> j) of this slot
                        for n in range(NA):
                            self.dnew[Ds + n * KA + l - 1] += W[l] * r[n]
                dE = dpair - (zeeman[k, 0] * (tx - e[k, 0]) + zeeman[k, 1] * (ty - e[k, 1])
                              + zeeman[k, 2] * (tz - e[k, 2]))
                for a in range(na):
                    lin = 0.0
                    da = self.dnew + a * D
                    for q in range(D):
                        lin += (da[q] - self.d[self.aff[a] * D + q]) * self.v[q]
                    self.enew[a] = self._poly(da)
                    dE += lin + self.enew[a] - self.Ep[self.aff[a]]
                if dE <= 0.0 or uniform[k] < exp(-beta * dE):
                    e[k, 0] = tx
                    e[k, 1] = ty
                    e[k, 2] = tz
                    for a in range(na):
                        j = self.aff[a]
                        for q in range(D):
                            self.d[j * D + q] = self.dnew[a * D + q]
                        self.Ep[j] = self.enew[a]
                    accepted += 1
                for a in range(na):
                    self.mark[self.aff[a]] = -1
        return accepted

    def descriptors(self, const double[:, ::1] e, double[:, ::1] out):
        """Write the descriptors (N, L·n_max) of directions e (N, 3) into out;
        ``energies`` is left as the last evaluation made it. Where the last evaluation
        (full-descriptor path) was at these very directions, its descriptors are copied
        (the same arithmetic: bit for bit) instead of made again — the σ check of the
        directions the dynamics just evaluated."""
        if e.shape[0] != self.n_atoms or out.shape[0] != self.n_atoms or out.shape[1] != self.D:
            raise ValueError("descriptors: e (N, 3) and out (N, L·n_max) expected")
        if self.n_atoms == 0:
            return
        cdef size_t nbytes = 3 * self.n_atoms * sizeof(double)
        if self.d_fresh and memcmp(&e[0, 0], self.e_at, nbytes) == 0:
            with nogil:
                memcpy(&out[0, 0], self.d, self.n_atoms * self.D * sizeof(double))
            return
        with nogil:
            if self.Da:
                self._angle_pairs(&e[0, 0])
            self._descriptors(&e[0, 0], &out[0, 0], NULL)

    def compute(self, const double[:, ::1] e, bint need_grad=True, variances=None):
        """Energies (N,) into ``energies`` and, with need_grad, ∂E/∂e (N, 3) into
        ``grad``; returns the total energy (eV). ``variances``: None, or a writeable
        C-contiguous float64 (N,) array for the local-energy variances of these
        directions (:meth:`set_variance`), made in the same pass."""
        cdef double total
        if e.shape[0] != self.n_atoms or e.shape[1] != 3:
            raise ValueError("compute: e must be (N, 3)")
        cdef double* var = self._variance_out(variances)
        if self.n_atoms == 0:
            return 0.0
        with nogil:
            self.var = var
            total = self._compute(&e[0, 0], need_grad)
            self.var = NULL
        return total

    cdef double* _variance_out(self, variances) except? NULL:
        """The data of the ``variances`` argument of an evaluation (NULL for None)."""
        if variances is None:
            return NULL
        if self.Mv == 0:
            raise ValueError("variances asked for before set_variance")
        if not isinstance(variances, np.ndarray) or not _f64(variances, self.n_atoms, 0, True):
            raise ValueError("variances: a writeable C-contiguous float64 (N,) array expected")
        if self.n_atoms == 0:
            return NULL
        return <double*>cnp.PyArray_DATA(variances)

    cdef double _compute(self, const double* e, bint need_grad) noexcept nogil:
        """:meth:`compute` on N ≥ 1 directions e (N·3)."""
        cdef Py_ssize_t i
        cdef double total = 0.0, t0, t1
        t0 = _now(self.clock)
        if self.Da and not (self.shell and self.poly):    # (that pass makes them itself)
            self._angle_pairs(e)
        if self.shell:
            self._shell_descriptors(e)
        else:
            self._descriptors(e, self.d, self.E)
            memcpy(self.e_at, e, 3 * self.n_atoms * sizeof(double))
            self.d_fresh = True
        t1 = _now(self.clock)
        self.stage[0] += t1 - t0
        if self.shell and self.pipeline:
            self._shell_pipeline(need_grad)
        else:
            self._kernels(need_grad)
        if need_grad:
            t0 = _now(self.clock)
            if self.shell and self.pipeline:
                self._shell_contract_pairs(e)       # the angle pairs' field included
            else:
                self._contract(e)
                if self.Da:
                    self._angle_slots(self.G)
                    self._angle_field(e)
            self.stage[3] += _now(self.clock) - t0
        for i in range(self.n_atoms):
            total += self.E[i]
        self.stage[4] += 1
        return total

    def field(self, cnp.ndarray e not None, cnp.ndarray scale not None,
              cnp.ndarray b_ext not None, cnp.ndarray out not None, variances=None):
        """out = scale_a (g_a - (g_a·e_a) e_a) + b_ext (N, 3); returns the total energy
        (:meth:`compute` and :meth:`project` in one call). Arrays: C-contiguous float64,
        e (N, 3), scale (N,), b_ext (3,), out (N, 3) writeable — checked on the arrays
        themselves (no memoryview objects per call: at 54 atoms their creation and the
        garbage collections they caused were ~3 % of an evaluation). ``variances``: as
        :meth:`compute`'s."""
        cdef double total
        cdef Py_ssize_t N = self.n_atoms
        if not (_f64(e, N, 3, False) and _f64(scale, N, 0, False) and _f64(b_ext, 3, 0, False)
                and _f64(out, N, 3, True)):
            raise ValueError("field: C-contiguous float64 e (N, 3), scale (N,), b_ext (3,) "
                             "and writeable out (N, 3) expected")
        cdef double* var = self._variance_out(variances)
        if N == 0:
            return 0.0
        cdef const double* pe = <const double*>cnp.PyArray_DATA(e)
        cdef const double* ps = <const double*>cnp.PyArray_DATA(scale)
        cdef const double* pb = <const double*>cnp.PyArray_DATA(b_ext)
        cdef double* po = <double*>cnp.PyArray_DATA(out)
        with nogil:
            self.fscale, self.fbext, self.fout = ps, pb, po
            self.projected = False
            self.var = var
            total = self._compute(pe, True)
            self.var = NULL
            self.fout = NULL
            if not self.projected:
                self._project(pe, ps, pb, po)
        return total

    def project(self, const double[:, ::1] e, const double[::1] scale,
                const double[::1] b_ext, double[:, ::1] out):
        """out = scale_a (g_a - (g_a·e_a) e_a) + b_ext (N, 3) from the ∂E/∂e of the last
        :meth:`compute` with gradient (at directions e): a second field of the same
        evaluation in other units, bit for bit what :meth:`field` gives."""
        cdef Py_ssize_t N = self.n_atoms
        if out.shape[0] != N or e.shape[0] != N or scale.shape[0] != N or b_ext.shape[0] != 3:
            raise ValueError("project: e (N, 3), scale (N,), b_ext (3,), out (N, 3) expected")
        if N == 0:
            return
        with nogil:
            self._project(&e[0, 0], &scale[0], &b_ext[0], &out[0, 0])

    cdef void _project(self, const double* e, const double* scale, const double* b_ext,
                       double* out) noexcept nogil:
        """:meth:`project` on raw arrays (e, out: N·3)."""
        cdef Py_ssize_t a, N = self.n_atoms
        cdef int nt = self._threads()
        if nt == 1:
            for a in range(N):
                self._project_one(a, e, scale, b_ext, out)
            return
        for a in prange(N, schedule="static", num_threads=nt):
            self._project_one(a, e, scale, b_ext, out)

    cdef inline void _project_one(self, Py_ssize_t a, const double* e, const double* scale,
                                  const double* b_ext, double* out) noexcept nogil:
        """out[a] = scale_a (g_a - (g_a·e_a) e_a) + b_ext (3,)."""
        cdef Py_ssize_t k
        cdef double dot = self.g[3 * a] * e[3 * a] + self.g[3 * a + 1] * e[3 * a + 1] \
            + self.g[3 * a + 2] * e[3 * a + 2]
        for k in range(3):
            out[3 * a + k] = scale[a] * (self.g[3 * a + k] - dot * e[3 * a + k]) + b_ext[k]


def _reverse_pairs(const cnp.int64_t[::1] soff, const cnp.int64_t[::1] sp,
                   const int[::1] neigh, const int[::1] jslot):
    """(P,) int32: for each pair (i -> j) of a slot structure the index of its reverse
    (j -> i), in j's slot of the same radial row (jslot); ValueError if missing."""
    cdef Py_ssize_t n = soff.shape[0] - 1, i, s, p, q, t, j
    cdef int[::1] rev = np.empty(neigh.shape[0], dtype=np.int32)
    for i in range(n):
        for s in range(soff[i], soff[i + 1]):
            for p in range(sp[s], sp[s + 1]):
                j = neigh[p]
                t = soff[j] + jslot[p]
                q = sp[t]
                while q < sp[t + 1] and neigh[q] != i:
                    q += 1
                if q == sp[t + 1]:
                    raise ValueError("pair list is not symmetric (no reverse pair)")
                rev[p] = <int>q
    return np.asarray(rev)


cdef extern from *:
    """
    #define OTF_PREFETCH(p) __builtin_prefetch((const void *)(p))
    """
    void OTF_PREFETCH(const void* p) noexcept nogil     # a cache hint, no effect on results


cdef inline cnp.int64_t _key(double d, double tol) noexcept nogil:
    return <cnp.int64_t>(d / tol + 0.5)


cdef inline Py_ssize_t _hash_slot(cnp.int64_t key, int bits) noexcept nogil:
    return <Py_ssize_t>((<unsigned long long>key * 11400714819323198485ULL) >> (64 - bits))


cdef void _sort_keys(cnp.int64_t* a, Py_ssize_t n) noexcept nogil:
    """Sort a[0:n] ascending in place: quicksort (median of three, the smaller side by
    recursion) with insertion sort below 24 elements."""
    cdef Py_ssize_t lo, hi, k, mid
    cdef cnp.int64_t pivot, x
    while n > 24:
        mid = n // 2
        # median of a[0], a[mid], a[n-1] into a[mid]
        if a[mid] < a[0]:
            a[mid], a[0] = a[0], a[mid]
        if a[n - 1] < a[mid]:
            a[n - 1], a[mid] = a[mid], a[n - 1]
            if a[mid] < a[0]:
                a[mid], a[0] = a[0], a[mid]
        pivot = a[mid]
        lo = 0
        hi = n - 1
        while True:                       # Hoare partition
            while a[lo] < pivot:
                lo += 1
            while a[hi] > pivot:
                hi -= 1
            if lo >= hi:
                break
            a[lo], a[hi] = a[hi], a[lo]
            lo += 1
            hi -= 1
        # a[0:hi+1] <= pivot <= a[hi+1:n]
        if hi + 1 < n - hi - 1:
            _sort_keys(a, hi + 1)
            a += hi + 1
            n -= hi + 1
        else:
            _sort_keys(a + hi + 1, n - hi - 1)
            n = hi + 1
    for k in range(1, n):
        x = a[k]
        lo = k
        while lo > 0 and a[lo - 1] > x:
            a[lo] = a[lo - 1]
            lo -= 1
        a[lo] = x


def compress_pairs(const cnp.int64_t[::1] i, const cnp.int64_t[::1] j, const double[::1] d,
                   Py_ssize_t n_atoms, double tol):
    """Slot structure of a pair list whose pairs are grouped by atom i (ascending).

    Distances are grouped by q = round(d / tol) (first occurrence numbers the groups;
    members of a group differ by less than tol). Self images (j == i) are set apart.
    Returns (soff (N+1,) int64, sp (S+1,) int64, srid (S,) int32 group of each slot,
    neigh (P',) int32, jslot (P',) int32, rep (G,) distance of each group's first
    member, self_atom (Q,) int64, self_group (Q,) int64); pairs in a slot by ascending j.

    The groups come from an open-addressing hash of q (4-byte entries holding the group,
    whose key is recomputed from its first distance; load ≤ 3/4; the slots and groups of
    the next pairs prefetched; at its first growth the table is sized for the groups
    expected at that rate: one rehash when every unordered pair is its own group, as
    in a displaced lattice); each atom's pairs are sorted by (group, j) (quicksort);
    jslot by a branchless binary search among the neighbour's slots.
    """
    cdef Py_ssize_t P = i.shape[0], cap = 1024, p, h, a, lo, hi, k, q, m, s, nself = 0, n
    cdef Py_ssize_t AHEAD = 16
    cdef int bits = 10
    cdef cnp.int64_t key, g, G = 0, cur, target, low32 = 0xffffffff
    # open addressing on the keys: each slot holds a group (-1: empty), whose key is that
    # of its first member's distance rep[group] (8 MB for a million groups)
    cdef int[::1] table = np.full(cap, -1, dtype=np.int32)
    cdef int[::1] old
    cdef int gg
    cdef int[::1] gid = np.empty(P, dtype=np.int32)
    cdef double[::1] rep = np.empty(P + 1, dtype=np.float64)
    if P >= 2**31 - 1:
        raise ValueError("more than 2^31 pairs: beyond the int32 pair indices")
    for p in range(P):
        if i[p] < 0 or i[p] >= n_atoms or (p > 0 and i[p] < i[p - 1]):
            raise ValueError("pairs must be grouped by atom i in ascending order")
        nself += j[p] == i[p]
    with nogil:
        for p in range(P):
            if 4 * (G + 1) > 3 * cap:
                # grow the table (load ≤ 3/4) and rehash; size it for the groups expected
                # at this rate (one group per pair: a single rehash)
                n = cap * 2
                while 3 * n < 4 * ((G + 1) * P // (p + 1)) + 4 and n < 2 * P + 2:
                    n *= 2
                with gil:
                    old = table
                    table = np.full(n, -1, dtype=np.int32)
                while cap < n:
                    cap *= 2
                    bits += 1
                for m in range(old.shape[0]):
                    if old[m] != -1:
                        h = _hash_slot(_key(rep[old[m]], tol), bits)
                        while table[h] != -1:
                            h = (h + 1) & (cap - 1)
                        table[h] = old[m]
            if p + AHEAD < P:       # the slot of a pair ahead, and the group of a nearer one
                OTF_PREFETCH(&table[_hash_slot(_key(d[p + AHEAD], tol), bits)])
            if p + AHEAD // 2 < P:
                gg = table[_hash_slot(_key(d[p + AHEAD // 2], tol), bits)]
                if gg >= 0:
                    OTF_PREFETCH(&rep[gg])
            key = _key(d[p], tol)
            h = _hash_slot(key, bits)
            while True:
                gg = table[h]
                if gg == -1:
                    gg = table[h] = <int>G
                    rep[G] = d[p]
                    G += 1
                    break
                if _key(rep[gg], tol) == key:
                    break
                h = (h + 1) & (cap - 1)
            gid[p] = gg
    old = None
    cdef cnp.int64_t[::1] self_atom = np.empty(nself, dtype=np.int64)
    cdef cnp.int64_t[::1] self_group = np.empty(nself, dtype=np.int64)
    table = None
    cdef cnp.int64_t[::1] soff = np.zeros(n_atoms + 1, dtype=np.int64)
    # sp's memory holds each atom's packed pairs first: its slot starts are written behind
    # the pair being read (a slot has at least one pair), so none is overwritten unread
    cdef cnp.int64_t[::1] sp = np.empty(P - nself + 1, dtype=np.int64)
    cdef cnp.int64_t[::1] packed = sp
    cdef cnp.int64_t x
    cdef int[::1] srid = np.empty(P - nself, dtype=np.int32)
    cdef int[::1] neigh = np.empty(P - nself, dtype=np.int32)
    cdef int[::1] jslot = np.empty(P - nself, dtype=np.int32)
    cdef bint asym = False
    with nogil:
        # per atom: non-self pairs packed as (group << 32 | j), sorted, cut into slots
        p = 0
        q = 0          # next packed pair
        s = 0          # next slot
        nself = 0
        for a in range(n_atoms):
            soff[a] = s
            lo = q
            while p < P and i[p] == a:
                if j[p] == a:
                    self_atom[nself] = a
                    self_group[nself] = gid[p]
                    nself += 1
                else:
                    packed[q] = ((<cnp.int64_t>gid[p]) << 32) | j[p]
                    q += 1
                p += 1
            _sort_keys(&packed[lo], q - lo)
            cur = -1
            for k in range(lo, q):
                x = packed[k]            # (read before sp[s], s ≤ k, is written)
                g = x >> 32
                if g != cur:
                    sp[s] = k
                    srid[s] = <int>g
                    s += 1
                    cur = g
                neigh[k] = <int>(x & low32)
        soff[n_atoms] = s
        sp[s] = q
        # jslot: the slot of the same group among the neighbour's slots (branchless
        # binary search: the first of the neighbour's slots whose group is not below)
        for a in range(n_atoms):
            for m in range(soff[a], soff[a + 1]):
                target = srid[m]
                for k in range(sp[m], sp[m + 1]):
                    lo = soff[neigh[k]]
                    n = soff[neigh[k] + 1] - lo
                    while n > 1:
                        h = n >> 1
                        lo = lo + h if srid[lo + h - 1] < target else lo
                        n -= h
                    if n == 1 and srid[lo] < target:
                        lo += 1
                    if lo >= soff[neigh[k] + 1] or srid[lo] != target:
                        asym = True
                    jslot[k] = <int>(lo - soff[neigh[k]])
    if asym:
        raise ValueError("pair list is not symmetric (no reverse pair)")
    # (leading parts of the arrays sized for every pair: their untouched pages cost nothing)
    return (np.asarray(soff), np.asarray(sp)[:s + 1], np.asarray(srid)[:s], np.asarray(neigh),
            np.asarray(jslot), np.asarray(rep)[:G], np.asarray(self_atom),
            np.asarray(self_group))


def slot_sums(const cnp.int64_t[::1] soff, const cnp.int64_t[::1] sp, const int[::1] srid,
              const double[:, ::1] rtab, double[:, ::1] out):
    """out[a] = Σ_{slots s of atom a} (sp[s+1] - sp[s]) rtab[srid[s]] (N, K): each atom's
    sum of its pairs' rows of rtab (U, K) (the FM descriptor's radial part), summed in
    slot order from zero (twin: numpy in the same order)."""
    cdef Py_ssize_t n = soff.shape[0] - 1, K = rtab.shape[1], a, s, k
    cdef double c
    if out.shape[0] != n or out.shape[1] != K:
        raise ValueError("slot_sums: out must be (atoms, rtab.shape[1])")
    with nogil:
        for a in range(n):
            for k in range(K):
                out[a, k] = 0.0
            for s in range(soff[a], soff[a + 1]):
                c = <double>(sp[s + 1] - sp[s])
                for k in range(K):
                    out[a, k] += c * rtab[srid[s], k]
