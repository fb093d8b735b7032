"""Exchange-2b in the angle between the spins: pair features with the cusp of θ_ij at
parallel (and antiparallel) neighbours.

For atom i, over neighbours j within r_c (periodic images included)::

    d_i[n, k] = Σ_j R_n(r_ij) g_k(θ_ij),   θ_ij = arccos(e_i·e_j) ∈ [0, π],
    g_k(θ) = P_k(1 - 2θ/π),                n < n_max,  1 ≤ k ≤ k_max

R_n: the exchange-2b radial basis (own r_c, n_max, radial scaling). g_k: Legendre
polynomials of the angle itself, not of its cosine. Polynomials of c = e_i·e_j (the
exchange-2b features) are even, smooth functions of θ near parallel spins; a function
that changes with θ itself, such as the moments of paper Eq. 41 (M_i = 2.2 - 0.6/(nπ)
Σ_j arccos(e_i·e_j)), has a cusp there in c (arccos c ≈ sqrt(2(1 - c))), which no
polynomial of c up to l = 6 follows; odd powers of θ do. k = 0 is left out (Σ_j R_n
depends on positions only; it cancels against the FM reference of the same structure).

Derivatives: ∂θ_ij/∂e_i = -(e_j - c e_i)/sin θ_ij, a unit vector transverse to e_i (the
angle grows at rate 1 whichever way e_i turns away from e_j), so fields stay finite near
parallel spins; at exactly parallel or antiparallel spins (sin θ < ``PARALLEL``) the
direction is undefined and the pair adds nothing (the symmetric one-sided limit, as the
embedded Eq. 41 oracle). θ is computed as atan2(|e_i × e_j|, e_i·e_j) and the gradients
from n = e_i × e_j (e_j - c e_i = n × e_i), accurate at small angles. Spin gradients are returned transverse (their component along e_i is arbitrary:
directions live on the unit sphere).

Invariant under one rotation of all spins (only e_i·e_j enters) and, separately, under
rotations, translations and permutations of atoms. Pure NumPy (CSR sums over the pair
list); for dynamics and Monte Carlo a model of exchange-2b with this term runs on the
compiled engine (:mod:`otf_spin.model.fast`, ``cython_ext/gap.pyx``: same θ, same guard
``PARALLEL``; its twin calls :func:`pair_angles` and :func:`angle_basis`).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.sparse import csr_matrix

from otf_spin.descriptors.soso import RadialPairs
from otf_spin.system import cross_rows

#: sin θ below this counts as exactly parallel/antiparallel: the pair's spin gradient is 0
PARALLEL = 1e-12


def angle_basis(theta, k_max: int, derivative: bool = True):
    """g_k(θ) = P_k(1 - 2θ/π) and (with ``derivative``) dg_k/dθ (rad⁻¹) for k = 1..k_max:
    arrays (P, k_max); monomials of x = 1 - 2θ/π times the Legendre coefficients (one
    matrix product: these small arrays cost per NumPy call, not per element)."""
    x = 1.0 - 2.0 * np.asarray(theta, float) / np.pi
    coef = _legendre_coefficients(k_max)                       # (k_max + 1, k_max)
    V = np.vander(x, k_max + 1, increasing=True)
    g = V @ coef
    if not derivative:
        return g
    dcoef = coef[1:] * np.arange(1, k_max + 1)[:, None] * (-2.0 / np.pi)
    return g, V[:, :k_max] @ dcoef


@functools.lru_cache(maxsize=None)
def _legendre_coefficients(k_max: int) -> np.ndarray:
    """(k_max + 1, k_max): column k - 1 holds the monomial coefficients of P_k (cached,
    read-only)."""
    coef = np.stack([np.polynomial.legendre.leg2poly([0] * k + [1]).tolist()
                     + [0.0] * (k_max - k) for k in range(1, k_max + 1)], axis=1)
    coef.setflags(write=False)
    return coef


def pair_angles(e, rows, neigh, gradient: bool = True):
    """θ (P,) of the pairs (rows, neigh) of unit ``e`` (N, 3), and (with ``gradient``)
    ∂θ/∂e_i, ∂θ/∂e_j (P, 3) each, transverse to e_i resp. e_j; zero where
    sin θ < PARALLEL."""
    ei, ej = e[rows], e[neigh]
    n = cross_rows(ei, ej)  # |n| = sin θ, to full relative precision
    s = np.sqrt(np.einsum("pk,pk->p", n, n))
    theta = np.arctan2(s, np.einsum("pk,pk->p", ei, ej))
    if not gradient:
        return theta
    inv = np.divide(-1.0, s, out=np.zeros_like(s), where=s >= PARALLEL)[:, None]
    # e_j - c e_i = n × e_i and e_i - c e_j = e_j × n: transverse to rounding at any θ
    return theta, inv * cross_rows(n, ei), inv * cross_rows(ej, n)


class AngleExchangeDescriptor(RadialPairs):
    """Exchange-2b features in the angle θ_ij between spins, orders k = 1 … k_max.

    Parameters: r_cut (Å), n_max, k_max, radial_scaling (r_s in Å, m) or None.
    Length n_max × k_max.
    """

    kind = "exchange_2b_angle"

    def __init__(self, r_cut: float = 4.5, n_max: int = 4, k_max: int = 4,
                 radial_scaling=None):
        if r_cut <= 0 or n_max < 1 or k_max < 1:
            raise ValueError("angle exchange term needs r_cut > 0, n_max ≥ 1, k_max ≥ 1")
        super().__init__(r_cut, n_max, radial_scaling)
        self.k_max = int(k_max)
        self._csr = None

    @property
    def size(self) -> int:
        return self.n_max * self.k_max

    def settings(self) -> dict:
        return {"type": self.kind, "r_cut": self.r_cut, "n_max": self.n_max,
                "k_max": self.k_max,
                "radial_scaling": list(self.radial_scaling) if self.radial_scaling else None}

    def _pairs(self, system):
        """(rows (P,), neigh (P,), R (P, n), dR (P, n), vectors (P, 3), distances (P,),
        S_i, S_j: (N, P) CSR matrices that sum pair rows into atom i resp. j), cached
        with the geometry."""
        offsets, neigh, R, dR, vectors, distances = self.geometry(system)
        if self._csr is None or self._csr[0] is not neigh:
            n, p = len(system), len(neigh)
            rows = np.repeat(np.arange(n), np.diff(offsets))
            ones = np.ones(p)
            self._csr = (neigh, rows, csr_matrix((ones, np.arange(p), offsets), shape=(n, p)),
                         csr_matrix((ones, (neigh, np.arange(p))), shape=(n, p)))
        _, rows, S_i, S_j = self._csr
        return rows, neigh, R, dR, vectors, distances, S_i, S_j

    def compute(self, system, directions=None) -> np.ndarray:
        """Descriptors (N, size) of ``system`` (or of other ``directions``)."""
        rows, neigh, R, _, _, _, S, _ = self._pairs(system)
        e = system.directions if directions is None else np.asarray(directions, float)
        g = angle_basis(pair_angles(e, rows, neigh, False), self.k_max, False)
        return S @ (R[:, :, None] * g[:, None, :]).reshape(len(rows), -1)

    def compute_fm(self, system) -> np.ndarray:
        """Descriptors (N, size) of the collinear FM state (θ = 0, g_k = 1; cached with
        the geometry)."""
        _, _, R, _, _, _, S, _ = self._pairs(system)
        if self._fm is None:
            self._fm = np.repeat(S @ R, self.k_max, axis=1)
        return self._fm

    def spin_gradient(self, system, G) -> np.ndarray:
        """Σ_i G[m, i]·∂d_i/∂e_a for weights G (M, N, size) -> (M, N, 3), transverse."""
        rows, neigh, R, _, _, _, S_i, S_j = self._pairs(system)
        n, m = len(system), G.shape[0]
        theta, ti, tj = pair_angles(system.directions, rows, neigh)
        _, dg = angle_basis(theta, self.k_max)
        # ∂E_m/∂θ_p = Σ_nk G[m, i_p, n, k] R_n(r_p) g_k'(θ_p), (P, M)
        A = (R[:, :, None] * dg[:, None, :]).reshape(len(rows), -1)
        w = np.einsum("mpd,pd->pm", np.asarray(G)[:, rows], A)
        out = (S_i @ (w[:, :, None] * ti[:, None, :]).reshape(len(rows), -1)
               + S_j @ (w[:, :, None] * tj[:, None, :]).reshape(len(rows), -1))
        return np.ascontiguousarray(out.reshape(n, m, 3).transpose(1, 0, 2))

    def position_gradient(self, system, G) -> np.ndarray:
        """∂E/∂r_a (N, 3) for E = Σ_i E_i(d_i) with G = ∂E/∂d (N, size)."""
        rows, neigh, _, dR, vectors, distances, _, _ = self._pairs(system)
        g = angle_basis(pair_angles(system.directions, rows, neigh, False), self.k_max, False)
        G = np.asarray(G).reshape(len(system), self.n_max, self.k_max)
        dE_dr = np.einsum("pnk,pn,pk->p", G[rows], dR, g)
        return self.pair_gradient_to_atoms(system, (dE_dr / distances)[:, None] * vectors)
