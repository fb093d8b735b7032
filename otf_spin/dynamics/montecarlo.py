"""Metropolis Monte Carlo of classical spins on a Heisenberg pair list.

Single-spin Gaussian trial moves e' = (e + σg)/|e + σg| (a symmetric proposal),
sequential sweeps in a compiled kernel; σ adapts toward 50 % acceptance during
equilibration only and is frozen while sampling (detailed balance holds).
Energies: E = -Σ_p J_p e_i·e_j - Σ_i μ_i μB B·e_i (eV; B in T, μ_i in μB).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otf_spin.kernels import load as load_kernel
from otf_spin.units import K_B, MU_B


@dataclass
class MCState:
    """Directions (N, 3), sweep counter, trial width σ and the RNG (a numpy Generator)."""

    directions: np.ndarray
    sweep: int
    sigma: float
    rng: np.random.Generator


class HeisenbergMonteCarlo:
    """Metropolis sampler for a :class:`~otf_spin.oracles.heisenberg.HeisenbergOracle`.

    Moments are held fixed (slaving is ignored while sampling, as in a spin
    dynamics code feeding a DFT labeller).
    """

    def __init__(self, oracle, system, field_tesla=(0.0, 0.0, 0.0)):
        self.system = system
        self.offsets, self.neigh, self.J, *_ = oracle.couplings(system)
        self.scale = np.ones(len(system))
        self.zeeman = np.ascontiguousarray(
            system.magnitudes[:, None] * MU_B * np.asarray(field_tesla, float)[None, :])
        self._kernel = load_kernel("exchange")

    def sweep(self, state: MCState, temperature: float) -> float:
        """One sweep at ``temperature`` (K); returns the acceptance ratio."""
        n = len(state.directions)
        beta = 1.0 / (K_B * max(temperature, 1e-12))
        gauss = state.rng.standard_normal((n, 3))
        uniform = state.rng.random(n)
        accepted = self._kernel.metropolis_sweep(state.directions, self.scale, self.offsets,
                                                 self.neigh, self.J, self.zeeman, beta,
                                                 state.sigma, gauss, uniform)
        state.sweep += 1
        return accepted / n

    def equilibrate(self, state: MCState, temperature: float, sweeps: int,
                    target: float = 0.5) -> None:
        """Run ``sweeps`` sweeps adapting σ toward the ``target`` acceptance ratio."""
        for _ in range(sweeps):
            ratio = self.sweep(state, temperature)
            state.sigma = float(np.clip(state.sigma * (1.1 if ratio > target else 1 / 1.1),
                                        1e-3, 4.0))

    def sample(self, state: MCState, temperature: float, n_samples: int, interval: int):
        """Yield ``n_samples`` direction arrays (copies) every ``interval`` sweeps."""
        for _ in range(n_samples):
            for _ in range(interval):
                self.sweep(state, temperature)
            yield state.directions.copy()


def new_state(system, seed_or_rng, sigma: float = 0.5) -> MCState:
    """Fresh :class:`MCState` from the system's directions."""
    rng = seed_or_rng if isinstance(seed_or_rng, np.random.Generator) \
        else np.random.default_rng(seed_or_rng)
    return MCState(np.ascontiguousarray(system.directions.copy()), 0, sigma, rng)
