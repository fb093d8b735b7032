"""Spin temperature of any energy surface from its transverse fields alone.

Nurdin, Schotte & Schotte (Phys. Rev. E 61, 3579 (2000)); in its general form
(Ma, Dudarev & Woo, Phys. Rev. B 82, 024434 (2010)):

    k_B T_s = Σ_i |e_i × ∇_i E|² / Σ_i Δ_i E,

Δ_i the Laplace–Beltrami operator on the unit sphere of spin i. The numerator needs the
transverse gradient only; the denominator is its surface divergence, Δ_i E =
-div_i h_i with h_i = -(1 - e_i e_iᵀ) ∂E/∂e_i (eV), the "torque" every provider gives.
For a Heisenberg energy this is the familiar 2 Σ e_i·H_i (P_1 has Δ = -2 P_1); for the
GAP-SOSO model, which is nonlinear in the descriptors, the trace over all spins is
estimated by Hutchinson's method: all spins are rotated at once by ε along random
tangent vectors z_i (Rademacher components in an orthonormal tangent basis, so
E[z_i z_iᵀ] = 1 - e_i e_iᵀ), and

    Σ_i div_i h_i ≈ (1/K) Σ_probes Σ_i z_i · (h_i(e') - h_i(e)) / ε

(forward differences, ε = 1e-4 rad: bias O(ε)). The cross terms z_i·∂h_i/∂e_j·z_j
(i ≠ j) average to zero; their scatter makes the estimate's relative error of order
1/√(K N z) for N spins with z neighbours each — about 5 % for the 16-atom cell with
K = 4 probes (well below the thermal fluctuation of T_s itself there), below 1 % for
thousands of spins (tests/test_spin_temperature.py compares it with the exact
Heisenberg value). The probes come from a fixed seed, so the estimate is a
deterministic function of the configuration and runs stay reproducible. Cost: K extra
field evaluations per call.
"""
from __future__ import annotations

import functools

import numpy as np

from otf_spin.system import cross_rows
from otf_spin.units import K_B

EPSILON = 1e-4          # rad, probe rotation
SEED = 0x7E5            # probe stream (fixed: same configuration, same estimate)


def probes_for(n_spins: int) -> int:
    """Probes K so that K·N ≥ 64 (at least 1, at most 4)."""
    return int(min(4, max(1, -(-64 // max(n_spins, 1)))))


def tangent_basis(directions):
    """Two unit vectors (N, 3) each, orthonormal and perpendicular to ``directions``."""
    e = np.asarray(directions, float)
    helper = np.where(np.abs(e[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    u = cross_rows(e, helper)
    u /= np.linalg.norm(u, axis=1)[:, None]
    return u, cross_rows(e, u)


@functools.lru_cache(maxsize=8)
def _probe_signs(seed: int, n_spins: int, probes: int) -> np.ndarray:
    """(probes, 2, N) Rademacher signs of the probe stream ``seed`` (read-only): the same
    for every call, so drawn once."""
    rng = np.random.default_rng(seed)
    signs = np.array([rng.integers(0, 2, size=(2, n_spins)) * 2.0 - 1.0
                      for _ in range(probes)])
    signs.flags.writeable = False
    return signs


def laplacian_sum(torque, directions, probes: int | None = None,
                  epsilon: float = EPSILON, seed: int = SEED, h0=None) -> float:
    """Σ_i Δ_i E (eV) estimated from ``torque(directions) -> h`` (N, 3) eV, h_i =
    -(1 - e_i e_iᵀ) ∂E/∂e_i, by ``probes`` Hutchinson probes (default
    :func:`probes_for`); ``h0``: the torque at ``directions`` if known."""
    e = np.asarray(directions, float)
    probes = probes or probes_for(len(e))
    h0 = np.array(torque(e)) if h0 is None else h0
    u, v = tangent_basis(e)
    total = 0.0
    for signs in _probe_signs(seed, len(e), probes):
        z = signs[0][:, None] * u + signs[1][:, None] * v
        moved = e + epsilon * z
        moved /= np.linalg.norm(moved, axis=1)[:, None]
        total += np.einsum("ik,ik->", z, np.asarray(torque(moved)) - h0) / epsilon
    return float(-total / probes)


def spin_temperature(torque, directions, probes: int | None = None) -> float:
    """T_s (K) from the transverse torque h (eV) alone; NaN if Σ Δ_i E ≤ 0 (no
    temperature: e.g. at the top of the energy surface)."""
    h = np.array(torque(np.asarray(directions, float)))
    numerator = float(np.sum(h * h))
    denominator = K_B * laplacian_sum(torque, directions, probes, h0=h)
    return numerator / denominator if denominator > 0 else float("nan")
