"""Exchange-2b on a cubic B-spline radial basis: a fine, compactly supported pair-exchange
term (the UF3-style spline pair model in the features of paper Eq. 26).

For atom i, over neighbours j with r_ij < r_max (periodic images included)::

    d_i[n, l] = Σ_j B_n(r_ij) w_l P_l(e_i·e_j),   n < n_basis,  1 ≤ l ≤ l_max

- B_n(r) = B((r - r_min)/h - n): the uniform cubic B-spline B(t) (support [0, 4], C²,
  piecewise cubic) on knots r_min + k h, h = (r_max - r_min)/K with K = ceil((r_max -
  r_min)/spacing) intervals; n = 0 … K-4, only the functions whose whole support lies in
  [r_min, r_max], so every B_n and its first two derivatives vanish at both ends (no
  cutoff function needed); n_basis = K - 3; Σ_n B_n(r) = 1 on [r_min + 3h, r_max - 3h];
- w_l: the spin weights of exchange-2b (σ_s); l = 0 is left out: Σ_j B_n(r_ij) depends on
  positions only and cancels against the FM reference of the same structure.

A linear kernel on these features is the pair model E = -½ Σ_ij Σ_l J_l(r_ij) P_l(e_i·e_j)
with each J_l(r) a cubic spline of local support: it can follow a sharp change of J(r)
where the data say so (a reference cutoff that displaced pairs cross, paper Eq. 43 at
3.962 Å), and, unlike a global basis of high n_max, its weights stay at the prior where
no pair distance falls (no wild extrapolation). Everything but the radial table comes from
:class:`~otf_spin.descriptors.soso.SOSODescriptor`, and the compiled exchange-2b kernels
(cython_ext/soso.pyx: they take R and dR per pair) serve it unchanged.
"""
from __future__ import annotations

import math

import numpy as np

from otf_spin.descriptors.soso import SOSODescriptor
from otf_spin.kernels import load as load_kernel
from otf_spin.kernels.soso_py import bspline_pieces, bspline_support


class SplineExchangeDescriptor(SOSODescriptor):
    """Exchange-2b features on a cubic B-spline radial basis, orders l = 1 … l_max.

    Parameters: r_min, r_max (Å: the basis spans [r_min, r_max]; pairs outside add
    nothing), spacing (largest knot spacing h, Å), l_max, sigma_s (spin Gaussian width).
    Length n_basis × l_max.
    """

    kind = "exchange_2b_spline"
    l_min = 1

    def __init__(self, r_min: float = 1.8, r_max: float = 5.0, spacing: float = 0.05,
                 l_max: int = 2, sigma_s: float = 0.3, kernel=None):
        if not 0 <= r_min < r_max or spacing <= 0 or l_max < 1:
            raise ValueError("spline exchange term needs 0 ≤ r_min < r_max, spacing > 0, "
                             "l_max ≥ 1")
        intervals = math.ceil((r_max - r_min) / spacing - 1e-9)
        if intervals < 4:
            raise ValueError(f"spline exchange term: [{r_min}, {r_max}] Å holds fewer than 4 "
                             f"knot intervals of {spacing} Å (no cubic B-spline fits)")
        self.r_min, self.spacing = float(r_min), float(spacing)
        self.h = (float(r_max) - self.r_min) / intervals
        super().__init__(r_max, intervals - 3, l_max, sigma_s, None, kernel)

    @property
    def r_max(self) -> float:
        return self.r_cut

    def settings(self) -> dict:
        return {"type": self.kind, "r_min": self.r_min, "r_max": self.r_cut,
                "spacing": self.spacing, "l_max": self.l_max, "sigma_s": self.sigma_s}

    def pieces(self, r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The four B-splines that can be nonzero at each distance r (P,) (Å): in knot
        interval k (t = (r - r_min)/h, k = floor t) B_{k-m}(t) is piece m, m = 0..3.
        Returns n (P, 4) int64, their indices (set to -1 where outside 0 … n_basis - 1),
        B (P, 4) values and dB (P, 4) dB/dr (Å⁻¹), zero where n = -1."""
        n, u = bspline_support(r, self.r_min, self.h, self.n_max)
        B, dB = bspline_pieces(u)
        valid = n >= 0
        return n, np.where(valid, B, 0.0), np.where(valid, dB / self.h, 0.0)

    def radial(self, r) -> tuple[np.ndarray, np.ndarray]:
        """B_n(r) and dB_n/dr (Å⁻¹), arrays (len(r), n_basis): only the four
        :meth:`pieces` per pair are nonzero, scattered into the table."""
        n, B4, dB4 = self.pieces(r)
        valid = n >= 0
        rows = np.broadcast_to(np.arange(len(n))[:, None], n.shape)[valid]
        B = np.zeros((len(n), self.n_max))
        dB = np.zeros((len(n), self.n_max))
        B[rows, n[valid]] = B4[valid]
        dB[rows, n[valid]] = dB4[valid]
        return B, dB

    def radial_dot(self, r, weights) -> np.ndarray:
        """Σ_n B_n(r) weights[n] (len(r), K) for weights (n_basis, K): the radial table
        times ``weights`` from the four :meth:`pieces` per distance (no (len(r),
        n_basis) table), e.g. the pair couplings κ_l(r) of a linear kernel on the term;
        by the compiled kernel (twin :func:`otf_spin.kernels.soso_py.bspline_dot`)."""
        r = np.ascontiguousarray(r, dtype=float)
        weights = np.ascontiguousarray(weights, dtype=float)
        out = np.empty((len(r), weights.shape[1]))
        load_kernel("soso").bspline_dot(r, self.r_min, self.h, weights, out)
        return out
