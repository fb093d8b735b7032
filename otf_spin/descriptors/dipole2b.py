"""Dipole-2b descriptor: s_i, s_j and r_ij rotated together (paper Table II, Sec. II D,
Eqs. 28-35).

For atom i, over neighbours j within r_c, with a = e_i·r̂_ij, b = e_j·r̂_ij, c = e_i·e_j::

    d_i[n, f] = Σ_j R_n(r_ij) a^x_f b^y_f c^z_f

R_n: the exchange-2b radial basis (own r_c and n_max). Features f: every monomial with
x + y even (time-reversal even: reversing all spins leaves the energy unchanged) and
1 ≤ x + y + 2z ≤ ``degree`` (the spin degree). Why this form: Eq. 35 couples
Y_l(r̂_ij) Y_l1(e_i) Y_l2(e_j) to zero; for l1, l2 ≤ degree those invariants are the
polynomials of a, b, c plus terms with one triple product e_i·(e_j×r̂) — odd under space
inversion (Dzyaloshinskii-Moriya-like, zero by symmetry on the bonds of centrosymmetric
crystals such as bcc Fe) and left out here. Degree 2: c, ab, a², b² — the bilinear
exchange, the pseudo-dipolar 3(e_i·r̂)(e_j·r̂) − e_i·e_j and the true dipole-dipole
pair form, and bond-directional single-ion terms (a² summed over a distorted shell);
degree 4 adds c², abc, a²b², a²c, b²c, a³b, ab³, a⁴, b⁴ (a⁴ summed over a cubic shell
is the cubic anisotropy).

Invariant under one rotation applied to spins and positions together and under
permutations of atoms; NOT invariant under a rotation of the spins alone. The FM
reference is the collinear state along ``fm_direction`` (default +z, as the embedded
oracle's): for anisotropic terms E(FM) depends on the direction, and energies relative
to one fixed FM direction keep the anisotropy energy learnable; reference data must use
the same direction.
"""
from __future__ import annotations

import numpy as np

from otf_spin.descriptors.soso import RadialPairs
from otf_spin.kernels import load as load_kernel

#: direction of the collinear FM reference state of anisotropic terms
FM_DIRECTION = (0.0, 0.0, 1.0)


def exponents(degree: int) -> np.ndarray:
    """(F, 3) exponents (x, y, z) of a^x b^y c^z: x + y even, 1 ≤ x + y + 2z ≤ degree."""
    out = [(x, total - 2 * z - x, z) for total in range(1, degree + 1)
           for z in range(total // 2, -1, -1) for x in range(total - 2 * z + 1)
           if (total - 2 * z) % 2 == 0]
    out.sort(key=lambda f: (f[0] + f[1] + 2 * f[2], -f[2], abs(f[0] - f[1]), -f[0]))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


class Dipole2BDescriptor(RadialPairs):
    """Dipole-2b descriptor with analytic spin and position derivatives.

    Parameters: r_cut (Å), n_max, degree (spin degree of the features, even ≥ 2),
    radial_scaling (r_s Å, m) or None, fm_direction (spin direction of the collinear
    reference state). Length n_max × F.
    """

    kind = "dipole_2b"

    def __init__(self, r_cut: float = 4.5, n_max: int = 4, degree: int = 2,
                 radial_scaling=None, fm_direction=FM_DIRECTION, kernel=None):
        fm = np.asarray(fm_direction, float)
        if r_cut <= 0 or n_max < 1 or degree < 2 or degree % 2 or not np.linalg.norm(fm) > 0:
            raise ValueError("dipole-2b descriptor needs r_cut > 0, n_max ≥ 1, an even "
                             "degree ≥ 2 and a nonzero fm_direction")
        super().__init__(r_cut, n_max, radial_scaling)
        self.degree = int(degree)
        self.fm_direction = fm / np.linalg.norm(fm)
        self.expo = exponents(self.degree)
        self._kernel = kernel or load_kernel("dipole2b")

    @property
    def shape(self) -> tuple:
        return (self.n_max, len(self.expo))

    @property
    def size(self) -> int:
        return self.n_max * len(self.expo)

    def settings(self) -> dict:
        return {"type": self.kind, "r_cut": self.r_cut, "n_max": self.n_max,
                "degree": self.degree,
                "radial_scaling": list(self.radial_scaling) if self.radial_scaling else None,
                "fm_direction": self.fm_direction.tolist()}

    def _pairs(self, system):
        offsets, neigh, R, dR, vectors, distances = self.geometry(system)
        u = np.ascontiguousarray(vectors / distances[:, None])
        return offsets, neigh, R, dR, u, np.ascontiguousarray(distances)

    def compute(self, system, directions=None) -> np.ndarray:
        """Descriptors (N, size) of ``system`` (or of other ``directions``)."""
        offsets, neigh, R, _, u, _ = self._pairs(system)
        e = np.ascontiguousarray(system.directions if directions is None else directions)
        d = np.empty((len(e),) + self.shape)
        self._kernel.descriptor(e, offsets, neigh, R, u, self.expo, d)
        return d.reshape(len(e), -1)

    def compute_fm(self, system) -> np.ndarray:
        """Descriptors (N, size) of the collinear FM state along ``fm_direction`` (cached
        with the geometry)."""
        self.geometry(system)
        if self._fm is None:
            self._fm = self.compute(system, np.tile(self.fm_direction, (len(system), 1)))
        return self._fm

    def spin_gradient(self, system, G) -> np.ndarray:
        """Σ_i G[m, i]·∂d_i/∂e_a for weights G (M, N, size) -> (M, N, 3), unprojected."""
        offsets, neigh, R, _, u, _ = self._pairs(system)
        G = np.ascontiguousarray(G).reshape((G.shape[0], len(system)) + self.shape)
        out = np.empty((G.shape[0], len(system), 3))
        self._kernel.contract_gradient(np.ascontiguousarray(system.directions), offsets,
                                       neigh, R, u, self.expo, G, out)
        return out

    def position_gradient(self, system, G) -> np.ndarray:
        """∂E/∂r_a (N, 3) for E = Σ_i E_i(d_i) with G = ∂E/∂d (N, size)."""
        offsets, neigh, R, dR, u, r = self._pairs(system)
        G = np.ascontiguousarray(G).reshape((len(system),) + self.shape)
        g = np.empty((len(neigh), 3))
        self._kernel.pair_gradient(np.ascontiguousarray(system.directions), offsets, neigh,
                                   R, dR, u, r, self.expo, G, g)
        return self.pair_gradient_to_atoms(system, g)
