"""Curie temperature of a classical Heisenberg ferromagnet: Monte Carlo and analytic estimates.

- :func:`binder_scan`: Binder cumulant U_L(T) = 1 - <m⁴>/(3<m²>²) of the magnetisation
  per spin m = |Σ_i e_i|/N from Metropolis MC (a heating sequence with warm starts);
  :func:`binder_crossing`: the temperature where U_L of two sizes cross (the finite-size
  estimate of T_c, Binder 1981; corrections shrink with the sizes).
- :func:`magnetisation`: M = <|m|> and its block standard error from MC at one
  temperature;
- :func:`mean_field_curie`: k_B T_c^MFA = (2/3) J_0, J_0 = Σ_j J_0j (Pajda et al., PRB 64,
  174402 (2001), Eq. 10; double-counted J);
- :func:`rpa_curie`: the random-phase (Tyablikov) value for classical spins,
  (k_B T_c^RPA)⁻¹ = (3/2) ⟨1/(J_0 - J(q))⟩_BZ (Pajda Eq. 11), for a Bravais lattice.

For ferromagnetic couplings T^RPA < T^MC < T^MFA (nearest-neighbour bcc: 1.914, 2.054,
2.667 J/k_B per pair); all three take any :class:`HeisenbergOracle`. Temperatures in K.
"""
from __future__ import annotations

import numpy as np

from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo, new_state
from otf_spin.oracles.heisenberg import pair_hamiltonian
from otf_spin.units import K_B


def binder_scan(oracle, system, temperatures, sweeps: int = 6000, equilibration: int = 1000,
                seed=0) -> np.ndarray:
    """U_L(T) (len(temperatures),) from MC on ``system``, in the order given (warm starts:
    pass increasing temperatures). ``sweeps`` samples, one per sweep, after
    ``equilibration`` adaptive sweeps at every temperature."""
    mc = HeisenbergMonteCarlo(oracle, system)
    state = new_state(system, seed)
    out = []
    for temperature in temperatures:
        mc.equilibrate(state, temperature, equilibration)
        m2 = np.array([np.sum(e.mean(axis=0) ** 2)
                       for e in mc.sample(state, temperature, sweeps, 1)])
        out.append(1.0 - np.mean(m2**2) / (3.0 * np.mean(m2) ** 2))
    return np.array(out)


def magnetisation(oracle, system, temperature: float, sweeps: int,
                  equilibration: int = 1000, seed=0) -> tuple[float, float]:
    """M = <|m|> at ``temperature`` (K) from ``sweeps`` MC samples (one per sweep, rounded
    down to a multiple of ten) after ``equilibration`` adaptive sweeps from the system's
    directions, and its standard error from ten blocks."""
    mc = HeisenbergMonteCarlo(oracle, system)
    state = new_state(system, seed)
    mc.equilibrate(state, temperature, equilibration)
    m = np.array([np.linalg.norm(e.mean(axis=0))
                  for e in mc.sample(state, temperature, sweeps - sweeps % 10, 1)])
    blocks = m.reshape(10, -1).mean(axis=1)
    return float(m.mean()), float(blocks.std(ddof=1) / np.sqrt(10))


def binder_crossing(temperatures, u_small, u_large) -> float:
    """Temperature (K) where U_large - U_small changes sign from + (ordered) to −,
    linearly interpolated between the bracketing temperatures; ValueError if none."""
    t = np.asarray(temperatures, float)
    diff = np.asarray(u_large, float) - np.asarray(u_small, float)
    down = np.flatnonzero((diff[:-1] > 0) & (diff[1:] <= 0))
    if not len(down):
        raise ValueError(f"Binder cumulants do not cross between {t[0]:g} and {t[-1]:g} K "
                         f"(U_large - U_small = {np.round(diff, 4).tolist()})")
    k = int(down[0])
    return float(t[k] - diff[k] * (t[k + 1] - t[k]) / (diff[k + 1] - diff[k]))


def _site_couplings(oracle, system):
    """Directed pair vectors (P, 3) Å and J (P,) eV of atom 0, checked equal on every atom
    (one magnetic sublattice), in the double-counted convention."""
    offsets, neigh, J, _, vectors, _ = pair_hamiltonian(oracle).couplings(system)
    J0 = np.bincount(np.repeat(np.arange(len(system)), np.diff(offsets)), weights=J,
                     minlength=len(system))
    if not np.allclose(J0, J0[0], rtol=1e-9, atol=1e-12):
        raise ValueError("Curie estimates here need one magnetic sublattice: the sites of "
                         f"this system have different J_0 ({J0.min():.4g} … {J0.max():.4g} eV)")
    return vectors[offsets[0]:offsets[1]], J[offsets[0]:offsets[1]]


def mean_field_curie(oracle, system) -> float:
    """T_c^MFA (K) = (2/3) J_0 / k_B with J_0 the double-counted sum over neighbours."""
    _, J = _site_couplings(oracle, system)
    return float(2.0 / 3.0 * J.sum() / K_B)


def rpa_curie(oracle, primitive, grid=(32, 64)) -> float:
    """T_c^RPA (K) for a Bravais lattice given as its one-atom ``primitive`` cell.

    The Brillouin-zone mean of 1/(J_0 - J(q)) is taken on shifted n³ grids of the
    primitive reciprocal cell; its integrable 1/q² singularity makes the error ∝ 1/n,
    so two grids (n₁ < n₂) are combined by Richardson extrapolation (one grid: no
    extrapolation). ValueError if J_0 - J(q) ≤ 0 somewhere (FM not the ground state).
    """
    if len(primitive) != 1:
        raise ValueError(f"rpa_curie needs a one-atom primitive cell, got {len(primitive)} atoms")
    R, J = _site_couplings(oracle, primitive)
    B = 2.0 * np.pi * np.linalg.inv(primitive.cell).T          # rows: reciprocal vectors
    J0 = J.sum()
    grids = np.atleast_1d(grid)
    values = []
    for n in grids:
        f = (np.arange(n) + 0.5) / n
        q = np.stack(np.meshgrid(f, f, f, indexing="ij"), -1).reshape(-1, 3) @ B
        mean = 0.0
        for chunk in np.array_split(q, max(1, len(q) // 20000)):
            gap = J0 - np.cos(chunk @ R.T) @ J
            if np.any(gap <= 0):
                raise ValueError("J_0 - J(q) ≤ 0: the ferromagnet is not the ground state")
            mean += np.sum(1.0 / gap)
        values.append(1.0 / (1.5 * mean / len(q)) / K_B)
    if len(values) == 1:
        return float(values[0])
    n1, n2 = grids[-2:].astype(float)
    return float((n2 * values[-1] - n1 * values[-2]) / (n2 - n1))
