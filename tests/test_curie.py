"""Curie temperature from Monte Carlo (Binder cumulant crossing) against the literature."""
import numpy as np
import pytest

from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo, new_state
from otf_spin.oracles.heisenberg import HeisenbergOracle, ShellExchange
from otf_spin.system import bulk
from otf_spin.units import K_B, MEV


def binder(oracle, repeat, temperatures, sweeps=6000, seed=0):
    """U_L(T) = 1 - <m⁴>/(3<m²>²) of the magnetisation per spin, bcc repeat³ cells."""
    system = bulk("bcc", 2.83, (repeat,) * 3)
    mc = HeisenbergMonteCarlo(oracle, system)
    state = new_state(system, seed)
    out = []
    for T in temperatures:                       # heating sequence, warm starts
        mc.equilibrate(state, T, 1000)
        m2 = np.array([np.sum(s.mean(axis=0) ** 2) for s in mc.sample(state, T, sweeps, 1)])
        out.append(1 - np.mean(m2**2) / (3 * np.mean(m2) ** 2))
    return np.array(out)


@pytest.mark.slow
def test_bcc_nearest_neighbour_heisenberg_curie_temperature():
    """Classical Heisenberg model, bcc, nearest neighbours, H = -J Σ_<ij> e_i·e_j:
    k_B T_c = 2.054 J (J/k_B T_c = 0.4868; high-temperature series and MC, e.g.
    Chen, Ferrenberg & Landau, PRB 48, 3249 (1993) and refs. therein)."""
    J = 10.0 * MEV                                          # per pair
    oracle = HeisenbergOracle(ShellExchange([2.83 * np.sqrt(3) / 2], [J], 0.05), "per_pair")
    tc = 2.054 * J / K_B                                    # ≈ 238 K
    temperatures = tc * np.array([0.94, 0.97, 1.0, 1.03, 1.06])
    small, large = binder(oracle, 5, temperatures), binder(oracle, 9, temperatures)
    diff = large - small                                    # > 0 below T_c, < 0 above
    assert diff[0] > 0 > diff[-1]
    k = int(np.flatnonzero(np.diff(np.sign(diff)))[0])
    crossing = temperatures[k] - diff[k] * (temperatures[k + 1] - temperatures[k]) / (
        diff[k + 1] - diff[k])
    assert crossing == pytest.approx(tc, rel=0.03)
