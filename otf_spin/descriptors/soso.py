"""Exchange-2b "smooth overlap of spin orientations" descriptor (paper Eq. 26).

For atom i, over neighbours j within r_c (periodic images included)::

    d_i[n, l] = Σ_j f_cut(r_ij) u(r_ij) g_n(r_ij) w_l P_l(e_i·e_j),  n < n_max, l ≤ l_max

- g_n(r) = sqrt(2/r_c) sin((n+1)π r/r_c) / r: the l = 0 spherical Bessel functions
  with a node at r_c, orthonormal on [0, r_c] with weight r² (VASP's radial basis);
- f_cut(r) = ½(1 + cos(π r/r_c)), smooth to zero with zero slope at r_c;
- u(r) = 1/(1 + (r/r_s)^m): SOAP-style radial scaling (Willatt et al. 2018), off with
  ``radial_scaling=None``; it encodes "exchange decays with distance" in the prior and
  keeps periodic images of small training cells from being mistaken for far shells;
- w_l = (i_l(x)/i_0(x))² sqrt(2l+1), x = 1/σ_s²: the spin-Gaussian weights of Eqs. 17/26.
  A Gaussian of width σ_s on the unit sphere, exp(-|e-e_i|²/2σ_s²) ∝ exp(x e·e_i), expands
  as Σ_l (2l+1) i_l(x) P_l(e·e_i) with *modified* spherical Bessel functions i_l (the
  paper's Eq. 17 writes j_l); the overlap of two such densities, rotation-averaged, gives
  i_l(x)² per channel, and Eq. 26's sqrt((2l+1)/8π) the l dependence. The constant
  prefactor (4/I_0)²/sqrt(8π) is dropped (kernel scales are fitted).

Invariant under one rotation of all spins (only e_i·e_j enters) and, separately, under
rotations, translations and permutations of atoms (only r_ij enters).
"""
from __future__ import annotations

import numpy as np
from scipy.special import spherical_in

from otf_spin.kernels import load as load_kernel
from otf_spin.kernels.soso_py import legendre, radial_parts


def spin_weights(l_max: int, sigma_s: float) -> np.ndarray:
    """w_l (l_max+1,) = (i_l(x)/i_0(x))² sqrt(2l+1), x = 1/σ_s²."""
    x = 1.0 / sigma_s**2
    l = np.arange(l_max + 1)
    # i_l(x)/i_0(x) via exponentially scaled values: both overflow for large x alone
    ratio = spherical_in(l, x) / spherical_in(0, x) if x < 500 else \
        np.exp(-l * (l + 1) / (2 * x))  # asymptotic form, relative error O(1/x²)
    return ratio**2 * np.sqrt(2 * l + 1)


class RadialPairs:
    """Pair list within ``r_cut`` (Å) and radial basis R_n(r) = f_cut u g_n, n < n_max,
    cached while positions are unchanged; shared by the pair-based descriptors.
    ``radial_scaling``: (r_s in Å, m) or None."""

    def __init__(self, r_cut: float, n_max: int, radial_scaling=None):
        self.r_cut, self.n_max = float(r_cut), int(n_max)
        self.radial_scaling = None if radial_scaling is None else \
            (float(radial_scaling[0]), float(radial_scaling[1]))
        self._cache_key = None
        self._cache = None
        self._fm = None

    # --- radial part --------------------------------------------------------------
    def radial(self, r) -> tuple[np.ndarray, np.ndarray]:
        """R_n(r) = f_cut u g_n and dR_n/dr, arrays (len(r), n_max) (Å^-3/2, Å^-5/2)."""
        g, dg, fc, dfc, u, du = radial_parts(r, self.r_cut, self.n_max, self.radial_scaling)
        R = fc * u * g
        dR = (dfc * u + fc * du) * g + fc * u * dg
        return R, dR

    def radial_values(self, r) -> np.ndarray:
        """R_n(r) (len(r), n_max) Å^-3/2 without derivatives, by the compiled kernel
        (:func:`otf_spin.kernels.soso_py.radial_basis`): the values of :meth:`radial`
        to rounding (a few ulp), ~100× faster; the fast engine's radial tables."""
        r = np.ascontiguousarray(r, dtype=float)
        out = np.empty((len(r), self.n_max))
        rs, m = self.radial_scaling if self.radial_scaling is not None else (0.0, 0.0)
        load_kernel("soso").radial_basis(r, self.r_cut, rs, m, out)
        return out

    def geometry(self, system):
        """Pair data for ``system`` (cached while positions are unchanged):
        (offsets, neigh, R (P, n_max), dR (P, n_max), vectors (P, 3), distances (P,))."""
        key = (system.positions.tobytes(), system.cell.tobytes(), system.pbc.tobytes())
        if key != self._cache_key:
            nl = system.neighbours(self.r_cut)
            R, dR = self.radial(nl.distances)
            self._cache = (nl.offsets, nl.j, np.ascontiguousarray(R), np.ascontiguousarray(dR),
                           nl.vectors, nl.distances)
            self._cache_key = key
            self._fm = None
        return self._cache

    def pair_gradient_to_atoms(self, system, g) -> np.ndarray:
        """∂E/∂r_a (N, 3) from ∂E/∂D_p (P, 3), D_p = r_j + S - r_i the pair vectors."""
        offsets, neigh = self.geometry(system)[:2]
        rows = np.repeat(np.arange(len(system)), np.diff(offsets))
        out = np.zeros((len(system), 3))
        np.add.at(out, neigh, g)
        np.add.at(out, rows, -g)
        return out


class SOSODescriptor(RadialPairs):
    """Exchange-2b SOSO descriptor with analytic spin (and position) derivatives.

    Parameters: r_cut (Å), n_max, l_max, sigma_s (spin Gaussian width, dimensionless),
    radial_scaling: (r_s in Å, m) or None.
    """

    kind = "exchange_2b"
    #: lowest Legendre order kept (the spline term drops l = 0: it cancels against the FM
    #: reference); the compiled kernels always compute 0..l_max
    l_min = 0

    def __init__(self, r_cut: float = 7.0, n_max: int = 12, l_max: int = 6,
                 sigma_s: float = 0.5, radial_scaling=(2.5, 4.0), kernel=None):
        if r_cut <= 0 or n_max < 1 or l_max < 0 or sigma_s <= 0:
            raise ValueError("descriptor needs r_cut > 0, n_max ≥ 1, l_max ≥ 0, sigma_s > 0")
        super().__init__(r_cut, n_max, radial_scaling)
        self.l_max = int(l_max)
        self.sigma_s = float(sigma_s)
        self.w = spin_weights(self.l_max, self.sigma_s)
        self._kernel = kernel or load_kernel("soso")

    @property
    def n_orders(self) -> int:
        """Legendre orders kept per radial function, l_min..l_max."""
        return self.l_max + 1 - self.l_min

    @property
    def size(self) -> int:
        """Descriptor length per atom, n_max × (l_max + 1 - l_min)."""
        return self.n_max * self.n_orders

    def order_mask(self, orders) -> np.ndarray:
        """(D,) 1 on the components of Legendre order l in ``orders``, 0 elsewhere."""
        l = np.arange(self.size) % self.n_orders + self.l_min
        return np.isin(l, list(orders)).astype(float)

    def settings(self) -> dict:
        return {"type": "soso_exchange_2b", "r_cut": self.r_cut, "n_max": self.n_max,
                "l_max": self.l_max, "sigma_s": self.sigma_s,
                "radial_scaling": list(self.radial_scaling) if self.radial_scaling else None}

    # --- descriptor and derivatives ---------------------------------------------------
    def compute(self, system, directions=None) -> np.ndarray:
        """Descriptors (N, size) of ``system`` (or of other ``directions``)."""
        offsets, neigh, R, *_ = self.geometry(system)
        e = np.ascontiguousarray(system.directions if directions is None else directions)
        d = np.empty((len(e), self.n_max, self.l_max + 1))
        self._kernel.descriptor(e, offsets, neigh, R, self.w, d)
        if self.l_min:
            d = np.ascontiguousarray(d[:, :, self.l_min:])
        return d.reshape(len(e), -1)

    def compute_fm(self, system) -> np.ndarray:
        """Descriptors (N, D) of the collinear FM state of the same structure (cached
        with the geometry: it depends on positions only)."""
        offsets, neigh, R, *_ = self.geometry(system)
        if self._fm is None:
            sums = np.zeros((len(system), self.n_max))
            rows = np.repeat(np.arange(len(system)), np.diff(offsets))
            for n in range(self.n_max):
                sums[:, n] = np.bincount(rows, weights=R[:, n], minlength=len(system))
            self._fm = (sums[:, :, None] * self.w[None, None, self.l_min:]).reshape(
                len(system), -1)
        return self._fm

    def local_move(self, system, directions, k: int, trial, rows):
        """Descriptor rows after turning spin ``k`` of ``directions`` (N, 3) to ``trial``
        (3,), updated from the current ``rows`` (N, size) of ``directions``: (affected
        atom indices (A,), their new rows (A, size)). Only the pairs of k change (j→k
        mirrors k→j), so a move costs O(neighbours of k), not O(N)."""
        offsets, neigh, R = self.geometry(system)[:3]
        e = directions
        lo, hi = offsets[k], offsets[k + 1]
        js, R = neigh[lo:hi], R[lo:hi]
        other = js != k
        P_old, _ = legendre(e[js] @ e[k], self.l_max)
        P_new, _ = legendre(np.where(other, e[js] @ trial, 1.0), self.l_max)
        dP = ((P_new - P_old) * self.w)[:, self.l_min:]
        delta = (R[:, :, None] * dP[:, None, :]).reshape(len(js), -1)
        affected = np.unique(np.append(js[other], k))
        new_rows = rows[affected].copy()
        np.add.at(new_rows, np.searchsorted(affected, js), delta)   # rows j: pairs (j -> k)
        new_rows[np.searchsorted(affected, k)] = rows[k] + delta.sum(axis=0)   # row k
        return affected, new_rows

    def spin_gradient(self, system, G) -> np.ndarray:
        """Σ_i G[m, i]·∂d_i/∂e_a for weights G (M, N, D) -> (M, N, 3), unprojected.

        With G = ∂E/∂d (one set, M = 1) this is ∂E/∂e_a of E = Σ_i E_i(d_i).
        """
        offsets, neigh, R, *_ = self.geometry(system)
        G = np.asarray(G).reshape(G.shape[0], len(system), self.n_max, self.n_orders)
        if self.l_min:            # orders below l_min: zero weight in the compiled kernel
            G = np.concatenate([np.zeros(G.shape[:3] + (self.l_min,)), G], axis=3)
        G = np.ascontiguousarray(G)
        out = np.empty((G.shape[0], len(system), 3))
        self._kernel.contract_gradient(np.ascontiguousarray(system.directions), offsets, neigh,
                                       R, self.w, G, out)
        return out

    def position_gradient(self, system, G) -> np.ndarray:
        """∂E/∂r_a (N, 3) for E = Σ_i E_i(d_i) with G = ∂E/∂d (N, D)."""
        offsets, neigh, R, dR, vectors, distances = self.geometry(system)
        n = len(system)
        rows = np.repeat(np.arange(n), np.diff(offsets))
        e = system.directions

        P, _ = legendre(np.einsum("pk,pk->p", e[rows], e[neigh]), self.l_max)
        Gr = G.reshape(n, self.n_max, self.n_orders)
        # ∂E/∂r_p for pair p in row i: G_i·(dR_n w_l P_l)
        dE_dr = np.einsum("pnl,pn,pl->p", Gr[rows], dR, (P * self.w)[:, self.l_min:])
        g = (dE_dr / distances)[:, None] * vectors          # ∂E/∂D_p, D_p = r_j + S - r_i
        return self.pair_gradient_to_atoms(system, g)
