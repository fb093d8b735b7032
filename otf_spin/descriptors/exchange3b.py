"""Exchange-3b descriptor: spins i, j, k rotated together, distances r_ij, r_ik (paper
Table II, Appendix A Eqs. A1-A5).

For atom i, over ordered pairs of distinct neighbour entries (j, k) within r_c whose
third edge r_jk is within r_c too (the three atoms mutually within the cutoff, GAP's
three-body convention)::

    d_i[n1, n2, l1, l2, l3] = Σ_{j≠k} R_n1(r_ij) R_n2(r_ik) f_cut(r_jk)
                               w_l1 P_l1(e_i·e_j) w_l2 P_l2(e_i·e_k) w_l3 P_l3(e_j·e_k)

R_n: the exchange-2b radial basis (f_cut u g_n, own r_c and n_max); f_cut: its cosine
cutoff; w_l: the spin-Gaussian weights of the exchange-2b descriptor (Eq. 26). Why this
form: Eq. A5 couples
Y_l(e_i) Y_l1(e_j) Y_l2(e_k) to zero total angular momentum; the functions of three unit
vectors invariant under one rotation of all three are the polynomials of the three dot
products (time-reversal even) and the triple product e_i·(e_j×e_k) (odd under reversing
every spin, so absent from an energy). Products of Legendre polynomials of the three dot
products span those polynomials order by order, need no Clebsch-Gordan tables, and give
the triangle invariant e_j·e_k that no single atom's exchange-2b descriptor holds.
Eq. A1 weighs a triplet by r_ij and r_ik only; the factor f_cut(r_jk) adds the third
distance (in effect the bond angle of the in-between variant after Eq. A5, whose
positions rotate separately from the spins): without it, in bcc the two nearest
neighbours of an atom that are second neighbours of each other (a triangle) and those
that are not could not be told apart, and a triangle term K (e_i·e_j)(e_j·e_k)(e_k·e_i)
would not be linear in the descriptor; with it, it is (at r_c = 4 Å).

Invariant under one rotation of all spins, under rotations/translations of the crystal
(only distances enter) and under permutations of atoms. The collinear FM state's
descriptor depends on positions only (every dot product is 1).
"""
from __future__ import annotations

import numpy as np

from otf_spin.descriptors.soso import RadialPairs, spin_weights
from otf_spin.kernels import load as load_kernel

#: direction used for the collinear FM reference (any direction gives the same descriptor)
FM_DIRECTION = (0.0, 0.0, 1.0)


class Exchange3BDescriptor(RadialPairs):
    """Exchange-3b descriptor with analytic spin and position derivatives.

    Parameters: r_cut (Å; keep it short, e.g. the first two bcc shells: cost grows with
    the square of the neighbour count), n_max, l_max (largest Legendre order of each of
    the three dot products), sigma_s (spin Gaussian width), radial_scaling (r_s Å, m) or
    None. Length n_max² (l_max+1)³.
    """

    kind = "exchange_3b"

    def __init__(self, r_cut: float = 4.0, n_max: int = 2, l_max: int = 2,
                 sigma_s: float = 0.5, radial_scaling=None, kernel=None):
        if r_cut <= 0 or n_max < 1 or l_max < 0 or sigma_s <= 0:
            raise ValueError("exchange-3b descriptor needs r_cut > 0, n_max ≥ 1, l_max ≥ 0, "
                             "sigma_s > 0")
        super().__init__(r_cut, n_max, radial_scaling)
        self.l_max, self.sigma_s = int(l_max), float(sigma_s)
        self.w = spin_weights(self.l_max, self.sigma_s)
        self._kernel = kernel or load_kernel("exchange3b")
        self._triplets = None

    @property
    def shape(self) -> tuple:
        L = self.l_max + 1
        return (self.n_max, self.n_max, L, L, L)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def settings(self) -> dict:
        return {"type": self.kind, "r_cut": self.r_cut, "n_max": self.n_max,
                "l_max": self.l_max, "sigma_s": self.sigma_s,
                "radial_scaling": list(self.radial_scaling) if self.radial_scaling else None}

    def triplets(self, system):
        """Triplet data of ``system`` (cached with the geometry): rows (P,) centre atom of
        each pair, trip (T, 2) ordered pairs (p, q) of one row with r_jk < r_cut, fc (T,)
        f_cut(r_jk), dfc (T, 3) its gradient by the third edge D_q - D_p, u (P, 3) unit
        pair vectors."""
        offsets, neigh, R, dR, vectors, distances = self.geometry(system)
        if self._triplets is None or self._triplets[0] is not self._cache:
            counts = np.diff(offsets)
            rows = np.repeat(np.arange(len(counts)), counts)
            squares = counts**2
            first = np.repeat(offsets[:-1], squares)
            width = np.repeat(counts, squares)
            local = np.arange(int(squares.sum())) - np.repeat(np.cumsum(squares) - squares,
                                                               squares)
            p, q = first + local // np.maximum(width, 1), first + local % np.maximum(width, 1)
            edge = vectors[q] - vectors[p]
            r = np.linalg.norm(edge, axis=1)
            keep = (p != q) & (r < self.r_cut)
            p, q, edge, r = p[keep], q[keep], edge[keep], r[keep]
            x = np.pi * r / self.r_cut
            fc = 0.5 * (1.0 + np.cos(x))
            dfc = (-0.5 * np.pi / self.r_cut * np.sin(x) / r)[:, None] * edge
            u = vectors / distances[:, None]
            self._triplets = (self._cache, (rows.astype(np.int64),
                                            np.ascontiguousarray(np.stack([p, q], 1),
                                                                 dtype=np.int64),
                                            fc, np.ascontiguousarray(dfc),
                                            np.ascontiguousarray(u)))
        return self._triplets[1]

    def compute(self, system, directions=None) -> np.ndarray:
        """Descriptors (N, size) of ``system`` (or of other ``directions``)."""
        neigh, R = self.geometry(system)[1:3]
        rows, trip, fc, _, _ = self.triplets(system)
        e = np.ascontiguousarray(system.directions if directions is None else directions)
        d = np.empty((len(e),) + self.shape)
        self._kernel.descriptor(e, rows, neigh, R, self.w, trip, fc, d)
        return d.reshape(len(e), -1)

    def compute_fm(self, system) -> np.ndarray:
        """Descriptors (N, size) of the collinear FM state (positions only; cached)."""
        self.geometry(system)
        if self._fm is None:
            self._fm = self.compute(system, np.tile(FM_DIRECTION, (len(system), 1)))
        return self._fm

    def spin_gradient(self, system, G) -> np.ndarray:
        """Σ_i G[m, i]·∂d_i/∂e_a for weights G (M, N, size) -> (M, N, 3), unprojected."""
        neigh, R = self.geometry(system)[1:3]
        rows, trip, fc, _, _ = self.triplets(system)
        G = np.ascontiguousarray(G).reshape((G.shape[0], len(system)) + self.shape)
        out = np.empty((G.shape[0], len(system), 3))
        self._kernel.contract_gradient(np.ascontiguousarray(system.directions), rows, neigh,
                                       R, self.w, trip, fc, G, out)
        return out

    def position_gradient(self, system, G) -> np.ndarray:
        """∂E/∂r_a (N, 3) for E = Σ_i E_i(d_i) with G = ∂E/∂d (N, size)."""
        neigh, R, dR = self.geometry(system)[1:4]
        rows, trip, fc, dfc, u = self.triplets(system)
        G = np.ascontiguousarray(G).reshape((len(system),) + self.shape)
        g = np.empty((len(neigh), 3))
        self._kernel.pair_gradient(np.ascontiguousarray(system.directions), rows, neigh, R,
                                   dR, u, self.w, trip, fc, dfc, G, g)
        return self.pair_gradient_to_atoms(system, g)
