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
from otf_spin.model.fast import fast_predictor
from otf_spin.model.gpr import SparseGPR
from otf_spin.oracles.heisenberg import HeisenbergHamiltonian, pair_hamiltonian
from otf_spin.units import K_B, MU_B


@dataclass
class MCState:
    """Directions (N, 3), sweep counter, trial width σ and the RNG (a numpy Generator)."""

    directions: np.ndarray
    sweep: int
    sigma: float
    rng: np.random.Generator


class HeisenbergMonteCarlo:
    """Metropolis sampler for a bilinear
    :class:`~otf_spin.oracles.heisenberg.HeisenbergHamiltonian` (or an oracle declaring
    one, :func:`~otf_spin.oracles.heisenberg.pair_hamiltonian`).

    Moments are held fixed (slaving is ignored while sampling, as in a spin
    dynamics code feeding a DFT labeller). ``inverted`` samples exp(+βE) instead (a
    negative temperature: the high-energy, antiparallel side of configuration space).
    """

    def __init__(self, hamiltonian, system, field_tesla=(0.0, 0.0, 0.0),
                 inverted: bool = False):
        self.system = system
        sign = -1.0 if inverted else 1.0
        offsets, neigh, J, *_ = pair_hamiltonian(hamiltonian).couplings(system)
        self.offsets, self.neigh, self.J = offsets, neigh, np.ascontiguousarray(sign * J)
        self.scale = np.ones(len(system))
        self.zeeman = np.ascontiguousarray(
            sign * system.magnitudes[:, None] * MU_B * np.asarray(field_tesla, float)[None, :])
        self._kernel = load_kernel("exchange")

    time_unit = "MC sweep"

    @staticmethod
    def init(system, seed) -> MCState:
        """Fresh state from ``system``'s directions (a propagator, :mod:`otf_spin.driver`)."""
        return new_state(system, np.random.default_rng(seed))

    @staticmethod
    def time(state: MCState) -> float:
        """Sweeps done (:attr:`time_unit`)."""
        return float(state.sweep)

    def advance(self, state: MCState, provider, temperature: float) -> MCState:
        """One sweep (the propagator interface; the sampler holds its own Hamiltonian,
        ``provider`` is the replica's, for the observables)."""
        self.sweep(state, temperature)
        return state

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


class ModelMonteCarlo:
    """Metropolis sampler on a fitted GAP-SOSO model, with local updates.

    Moving spin k changes the descriptor of k and, through the pairs (j→k), of its
    neighbours only; ΔE is the change of their local energies (the FM reference of the
    model cancels in differences). Same moves, adaptation and RNG use as
    :class:`HeisenbergMonteCarlo`. Models that :mod:`otf_spin.model.fast` supports sweep
    in its compiled engine (descriptors recomputed at the start of each sweep, then
    updated per accepted move); others (or ``fast=False``) use numpy per move (about
    1 ms).
    """

    def __init__(self, model, system, field_tesla=(0.0, 0.0, 0.0), fast: bool = True):
        model.check_species(system)
        fp = fast_predictor(model) if fast else None
        self.engine = None if fp is None else fp.engine(system)
        self.model, self.system = model, system.copy()
        self.desc = model.descriptor
        self.zeeman = np.ascontiguousarray(
            system.magnitudes[:, None] * MU_B * np.asarray(field_tesla, float))
        self._kept = None           # (directions array, descriptors, local energies)

    def kept(self, state):
        """(descriptors (N, D), local energies (N,) eV) of ``state``'s directions, as the
        numpy path keeps them up to date move by move. They belong to the directions
        array itself: a state whose directions were replaced (``state.directions =
        new``, as parallel tempering does) gets them recomputed."""
        if self._kept is None or self._kept[0] is not state.directions:
            d = self.desc.compute(self.system, state.directions)
            self._kept = (state.directions, d, self.model.local_energies(d))
        return self._kept[1:]

    def sweep(self, state: MCState, temperature: float) -> float:
        n = len(state.directions)
        beta = 1.0 / (K_B * max(temperature, 1e-12))
        gauss = state.rng.standard_normal((n, 3))
        uniform = state.rng.random(n)
        if self.engine is not None:
            accepted = self.engine.metropolis_sweep(state.directions, beta, state.sigma,
                                                    gauss, uniform, self.zeeman)
            state.sweep += 1
            return accepted / n
        d, energies = self.kept(state)
        e = state.directions
        accepted = 0
        for k in range(n):
            trial = e[k] + state.sigma * gauss[k]
            norm = np.sqrt(trial @ trial)
            if norm == 0.0:
                continue
            trial /= norm
            affected, new_d = self.desc.local_move(self.system, e, k, trial, d)
            new_e = self.model.local_energies(new_d)
            dE = new_e.sum() - energies[affected].sum() - self.zeeman[k] @ (trial - e[k])
            if dE <= 0.0 or uniform[k] < np.exp(-beta * dE):
                e[k] = trial
                d[affected] = new_d
                energies[affected] = new_e
                accepted += 1
        state.sweep += 1
        return accepted / n

    equilibrate = HeisenbergMonteCarlo.equilibrate
    sample = HeisenbergMonteCarlo.sample
    time_unit = HeisenbergMonteCarlo.time_unit
    init = staticmethod(HeisenbergMonteCarlo.init)
    time = staticmethod(HeisenbergMonteCarlo.time)
    advance = HeisenbergMonteCarlo.advance


def sampler(calculator, system, field_tesla=(0.0, 0.0, 0.0)):
    """The Metropolis sampler of a calculator, by its declared type: a fitted
    :class:`~otf_spin.model.gpr.SparseGPR` (:class:`ModelMonteCarlo`) or a fixed-moment
    :class:`~otf_spin.oracles.heisenberg.HeisenbergHamiltonian`
    (:class:`HeisenbergMonteCarlo`); ValueError for anything else."""
    if isinstance(calculator, SparseGPR):
        return ModelMonteCarlo(calculator, system, field_tesla)
    if isinstance(calculator, HeisenbergHamiltonian) and not calculator.slaving:
        return HeisenbergMonteCarlo(calculator, system, field_tesla)
    raise ValueError("integrator mc runs on fixed-moment Heisenberg hamiltonians and "
                     "fitted models")
