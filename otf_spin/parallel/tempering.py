"""Parallel tempering (replica exchange) between neighbouring temperatures.

Every ``exchange_every`` steps, configurations at neighbouring temperatures T_i < T_{i+1}
are swapped with the Metropolis probability
    P = min(1, exp[(β_i - β_{i+1})(E_i - E_{i+1})]),   β = 1/(k_B T),
alternating even and odd pairs (deterministic even-odd scheme, which keeps detailed balance
for each attempt). Energies come from the current field provider. The decisions are drawn
from one stream seeded from the run's seed and advanced identically on every rank, so no
broadcast is needed and results do not depend on the number of ranks.
"""
from __future__ import annotations

import numpy as np

from otf_spin.units import K_B


class Tempering:
    """Swap decisions, acceptance counters and walker labels (checkpointable)."""

    def __init__(self, temperatures, seed: int):
        self.beta = 1.0 / (K_B * np.asarray(temperatures, float))
        n = len(self.beta)
        self.rng = np.random.default_rng([seed, 0x7E3])
        self.attempts = np.zeros(max(n - 1, 0), dtype=np.int64)
        self.accepted = np.zeros(max(n - 1, 0), dtype=np.int64)
        self.walkers = np.arange(n)     # which initial configuration sits at each slot
        self.rounds = 0

    def swaps(self, energies) -> list[int]:
        """Accepted pairs (i means slots i and i+1) for one round, given the energies
        (eV, one per slot); updates the counters and walker labels."""
        energies = np.asarray(energies, float)
        pairs = range(self.rounds % 2, len(self.beta) - 1, 2)
        self.rounds += 1
        accepted = []
        for i in pairs:
            log_p = (self.beta[i] - self.beta[i + 1]) * (energies[i] - energies[i + 1])
            self.attempts[i] += 1
            if log_p >= 0.0 or self.rng.random() < np.exp(log_p):
                self.accepted[i] += 1
                self.walkers[[i, i + 1]] = self.walkers[[i + 1, i]]
                accepted.append(i)
        return accepted

    def acceptance(self) -> np.ndarray:
        """Acceptance rate of each pair (i, i+1) so far (NaN before the first attempt)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.accepted / self.attempts

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "attempts": self.attempts.tolist(),
                "accepted": self.accepted.tolist(), "walkers": self.walkers.tolist(),
                "rounds": self.rounds}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.attempts = np.array(state["attempts"], dtype=np.int64)
        self.accepted = np.array(state["accepted"], dtype=np.int64)
        self.walkers = np.array(state["walkers"])
        self.rounds = int(state["rounds"])
