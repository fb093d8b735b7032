"""Beyond-Heisenberg terms of the embedded Heisenberg oracle.

Every term maps a structure, spin directions e (N, 3) and moment magnitudes M (N,) μB to
its absolute energy (eV), the full gradient ∂E/∂e (N, 3) eV, the forces -∂E/∂r (N, 3)
eV/Å and ∂E/∂M (N,) eV/μB (nonzero only for the dipolar term). All are written with a
leading minus sign, E = -X f, so that X > 0 favours large f (as E = -J e_i·e_j), except
the cubic anisotropy, which keeps the magnetocrystalline sign E = +K_c Σ e_x²e_y² + ...
(K_c > 0: easy axes ⟨100⟩, as bcc Fe). Pair sums run over periodic images (directed
neighbour-list entries); ``weight`` is the factor of one directed entry (1 when each
bond is counted twice, ``double_counted``; 1/2 when each bond counts once, ``per_pair``).

    biquadratic       E = -Σ_p w B(r_p) (e_i·e_j)²
    pseudo_dipolar    E = -Σ_p w D(r_p) [3(e_i·r̂)(e_j·r̂) - e_i·e_j]
    dipolar           E = -Σ_{i<j, r ≤ r_c} (μ0/4π) μB² M_i M_j / r³ [3(e_i·r̂)(e_j·r̂) - e_i·e_j]
    three_spin        E = -K Σ_i Σ_{j<k ∈ N(i)} (e_i·e_j)(e_i·e_k)   (once per centre i)
    triangle          E = -K Σ_triangles (e_i·e_j)(e_j·e_k)(e_k·e_i)   (each triangle once)
    uniaxial          E = -K_u Σ_i (e_i·n)²
    cubic             E = +K_c Σ_i (e_x²e_y² + e_y²e_z² + e_z²e_x²)   (Cartesian axes)
"""
from __future__ import annotations

import numpy as np

from otf_spin.units import DIPOLAR_EV


class _StructureCache:
    """Keeps one structure-dependent result while positions, cell and pbc stay fixed."""

    def __init__(self):
        self._key, self._value = None, None

    def get(self, system, build):
        key = (system.positions.tobytes(), system.cell.tobytes(), system.pbc.tobytes())
        if key != self._key:
            self._value, self._key = build(system), key
        return self._value


def _scatter(n, index, values):
    """Σ of ``values`` (P, 3) into rows ``index`` (P,): an (n, 3) array."""
    return np.stack([np.bincount(index, weights=values[:, k], minlength=n)
                     for k in range(3)], axis=1)


def _shell_pairs(law, system):
    """Directed pairs (i, j, vectors, distances, value) of ``law`` (a ShellExchange)."""
    nl = system.neighbours(law.cutoff * (1 + 1e-9) + 1e-9)
    value, _ = law(nl, system)
    keep = value != 0.0
    return (nl.i[keep], nl.j[keep], nl.vectors[keep], nl.distances[keep], value[keep])


def _tensor_gradients(e, i, j, u, r):
    """f = 3(e_i·u)(e_j·u) - e_i·e_j per pair, with ∂f/∂e_i, ∂f/∂e_j and ∂f/∂D (D = r u)."""
    a, b = np.einsum("pk,pk->p", e[i], u), np.einsum("pk,pk->p", e[j], u)
    f = 3.0 * a * b - np.einsum("pk,pk->p", e[i], e[j])
    df_di = 3.0 * b[:, None] * u - e[j]
    df_dj = 3.0 * a[:, None] * u - e[i]
    df_dD = (3.0 / r)[:, None] * (a[:, None] * (e[j] - b[:, None] * u)
                                  + b[:, None] * (e[i] - a[:, None] * u))
    return f, df_di, df_dj, df_dD


class _ShellPairTerm:
    """A pair term whose constant comes from shells (``law``, a ShellExchange); ``weight``
    is the factor of one directed entry (the oracle's convention)."""

    def __init__(self, law, weight):
        self.law, self.weight = law, float(weight)
        self._pairs = _StructureCache()

    def pairs(self, system):
        """(i, j, vectors, distances, constant) of the directed pairs on the shells."""
        return self._pairs.get(system, lambda s: _shell_pairs(self.law, s))


class BiquadraticTerm(_ShellPairTerm):
    """E = -Σ_p w B_p (e_i·e_j)², B constant on shells (no forces)."""

    key = "biquadratic"

    def __call__(self, system, e, M):
        i, j, _, _, B = self.pairs(system)
        w = self.weight * B
        c = np.einsum("pk,pk->p", e[i], e[j])
        n = len(e)
        grad = _scatter(n, i, (-2.0 * w * c)[:, None] * e[j]) \
            + _scatter(n, j, (-2.0 * w * c)[:, None] * e[i])
        return -float(np.dot(w, c * c)), grad, np.zeros((n, 3)), np.zeros(n)


class PseudoDipolarTerm(_ShellPairTerm):
    """E = -Σ_p w D_p [3(e_i·r̂)(e_j·r̂) - e_i·e_j], D constant on shells; forces from r̂."""

    key = "pseudo_dipolar"

    def __call__(self, system, e, M):
        i, j, D, r, value = self.pairs(system)
        w = self.weight * value
        f, df_di, df_dj, df_dD = _tensor_gradients(e, i, j, D / r[:, None], r)
        n = len(e)
        grad = _scatter(n, i, -w[:, None] * df_di) + _scatter(n, j, -w[:, None] * df_dj)
        g = -w[:, None] * df_dD                                  # ∂E/∂D_p, D_p = r_j - r_i
        forces = _scatter(n, i, g) - _scatter(n, j, g)
        return -float(np.dot(w, f)), grad, forces, np.zeros(n)


class DipolarTerm:
    """Magnetic dipole–dipole energy, truncated sum over pairs with r ≤ ``cutoff`` (Å).

    Every pair (including periodic images of an atom with itself) counts once; no Ewald
    sum: the truncated lattice sum converges conditionally (a sphere of radius r_c).
    """

    key = "dipolar"

    def __init__(self, cutoff):
        self.cutoff = float(cutoff)
        self._pairs = _StructureCache()

    def _build(self, system):
        nl = system.neighbours(self.cutoff)
        keep = nl.distances <= self.cutoff
        return nl.i[keep], nl.j[keep], nl.vectors[keep], nl.distances[keep]

    def __call__(self, system, e, M):
        i, j, D, r = self._pairs.get(system, self._build)
        n = len(e)
        w = 0.5 * DIPOLAR_EV * M[i] * M[j] / r**3          # eV; 1/2: directed entries
        f, df_di, df_dj, df_dD = _tensor_gradients(e, i, j, D / r[:, None], r)
        grad = _scatter(n, i, -w[:, None] * df_di) + _scatter(n, j, -w[:, None] * df_dj)
        u = D / r[:, None]
        g = -w[:, None] * df_dD + (3.0 * w * f / r)[:, None] * u   # ∂E/∂D incl. ∂w/∂r
        forces = _scatter(n, i, g) - _scatter(n, j, g)
        wf = w * f
        dE_dM = -(np.bincount(i, weights=wf / M[i], minlength=n)
                  + np.bincount(j, weights=wf / M[j], minlength=n))
        return -float(wf.sum()), grad, forces, dE_dM


class ThreeSpinTerm(_ShellPairTerm):
    """E = -K Σ_i Σ_{a<b} (e_i·e_a)(e_i·e_b): a, b distinct neighbour entries of i on the
    shells (periodic images are distinct entries); each centre and unordered pair once.

    Computed as -K/2 Σ_i (S_i² - Σ_a x_a²), x_a = e_i·e_a, S_i = Σ_a x_a.
    """

    key = "three_spin"

    def __init__(self, K, law):
        super().__init__(law, 1.0)
        self.K = float(K)

    def __call__(self, system, e, M):
        i, j, *_ = self.pairs(system)
        n = len(e)
        x = np.einsum("pk,pk->p", e[i], e[j])
        S = np.bincount(i, weights=x, minlength=n)
        energy = -0.5 * self.K * float(np.dot(S, S) - np.dot(x, x))
        h = _scatter(n, i, e[j])
        grad = -self.K * (S[:, None] * h - _scatter(n, i, x[:, None] * e[j]))
        grad += _scatter(n, j, (-self.K * (S[i] - x))[:, None] * e[i])
        return energy, grad, np.zeros((n, 3)), np.zeros(n)


class TriangleTerm:
    """E = -K Σ_t (e_i·e_j)(e_j·e_k)(e_k·e_i) over triangles whose three edges lie on the
    shells. Triangles are found from every vertex (i at the origin cell, j and k
    neighbour entries of i whose separation is on a shell): each triangle, up to a
    lattice translation, is found three times and weighted 1/3, i.e. counted once."""

    key = "triangle"

    def __init__(self, K, law):
        self.K, self.law = float(K), law
        self._triangles = _StructureCache()

    def _build(self, system):
        i, j, D, _, _ = _shell_pairs(self.law, system)
        offsets = np.searchsorted(i, np.arange(len(system) + 1))
        found = []
        for centre in range(len(system)):
            lo, hi = offsets[centre], offsets[centre + 1]
            a, b = np.triu_indices(hi - lo, 1)
            a, b = a + lo, b + lo
            edge = np.linalg.norm(D[b] - D[a], axis=1)
            on = self.law.membership(edge)
            found.append(np.stack([i[a[on]], j[a[on]], j[b[on]]], axis=1))
        return np.concatenate(found) if found else np.zeros((0, 3), int)

    def __call__(self, system, e, M):
        t = self._triangles.get(system, self._build)
        n = len(e)
        ei, ej, ek = e[t[:, 0]], e[t[:, 1]], e[t[:, 2]]
        a = np.einsum("pk,pk->p", ei, ej)
        b = np.einsum("pk,pk->p", ej, ek)
        c = np.einsum("pk,pk->p", ek, ei)
        k = -self.K / 3.0
        grad = (_scatter(n, t[:, 0], (k * b)[:, None] * (c[:, None] * ej + a[:, None] * ek))
                + _scatter(n, t[:, 1], (k * c)[:, None] * (b[:, None] * ei + a[:, None] * ek))
                + _scatter(n, t[:, 2], (k * a)[:, None] * (c[:, None] * ej + b[:, None] * ei)))
        return k * float(np.sum(a * b * c)), grad, np.zeros((n, 3)), np.zeros(n)


class UniaxialTerm:
    """E = -K_u Σ_i (e_i·n)², n a unit axis (K_u > 0: easy axis)."""

    key = "uniaxial_anisotropy"

    def __init__(self, K, axis):
        axis = np.asarray(axis, float)
        self.K, self.axis = float(K), axis / np.linalg.norm(axis)

    def __call__(self, system, e, M):
        p = e @ self.axis
        n = len(e)
        return (-self.K * float(np.dot(p, p)), (-2.0 * self.K * p)[:, None] * self.axis,
                np.zeros((n, 3)), np.zeros(n))


class CubicTerm:
    """E = +K_c Σ_i (e_x²e_y² + e_y²e_z² + e_z²e_x²), axes x, y, z (K_c > 0: easy ⟨100⟩)."""

    key = "cubic_anisotropy"

    def __init__(self, K):
        self.K = float(K)

    def __call__(self, system, e, M):
        sq = e * e
        total = sq.sum(axis=1)
        energy = 0.5 * self.K * float(np.sum(total**2 - (sq * sq).sum(axis=1)))
        grad = 2.0 * self.K * e * (total[:, None] - sq)
        n = len(e)
        return energy, grad, np.zeros((n, 3)), np.zeros(n)
