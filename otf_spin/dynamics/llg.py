"""Stochastic Landau-Lifshitz-Gilbert integrators as pure steps over a state object.

    dm/dt = -γ/(1+α²)[m×B + α m×(m×B)],   B = B_eff(m) + B_th
    ⟨B_th,iμ(t) B_th,jν(t')⟩ = 2 α k_B T/(γ μ_i μB) δ_ij δ_μν δ(t-t')

so per step B_th = sqrt(2 α k_B T/(γ μ_i μB Δt)) ξ, ξ ~ N(0, 1) (compiled ziggurat on the
run's Generator, otf_spin.dynamics.noise), held fixed over the
two stages of a step (Stratonovich; Heun is the Stratonovich-consistent scheme for
multiplicative noise, Depondt-Mertens and SIB are midpoint schemes of the same kind).

- ``depondt`` (Depondt & Mertens 2009, UppASD's default): Heun predictor-corrector
  on rotations, m_{n+1} = R(½(Ω(m_n) + Ω(m_p)) Δt) m_n;
- ``sib`` (Mentink et al. 2010): semi-implicit midpoint, two Cayley transforms, the
  field of the second evaluated at the (normalised) predicted midpoint;
- ``heun``: Heun with renormalisation.

All three preserve |m_i| = 1 (rotations / Cayley transforms / renormalisation) and are
second order for deterministic dynamics. Each step evaluates the field twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import h5py
import numpy as np

from otf_spin.dynamics.noise import standard_normal
from otf_spin.io.atomic import atomic_path
from otf_spin.kernels import load as load_kernel
from otf_spin.units import GAMMA, K_B, MU_B

INTEGRATORS = ("depondt", "sib", "heun")


@dataclass
class SpinState:
    """Directions (N, 3), step counter, time (ps) and the random stream (numpy Generator)."""

    directions: np.ndarray
    step: int = 0
    time: float = 0.0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def copy(self) -> "SpinState":
        rng = np.random.Generator(type(self.rng.bit_generator)())
        rng.bit_generator.state = self.rng.bit_generator.state
        return SpinState(self.directions.copy(), self.step, self.time, rng)


def new_state(directions, seed) -> SpinState:
    """Fresh state; ``seed`` an int, a SeedSequence, or a Generator."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return SpinState(np.ascontiguousarray(directions, dtype=float).copy(), 0, 0.0, rng)


class LLGIntegrator:
    """One integrator (name in INTEGRATORS) with damping α, time step dt (ps).

    A propagator (:mod:`otf_spin.driver`): :meth:`init` makes a :class:`SpinState`,
    :meth:`advance` (= :meth:`step`) moves it by one step on a field provider."""

    time_unit = "ps"

    def __init__(self, name: str, dt: float, damping: float, kernel=None, noise_kernel=None):
        if name not in INTEGRATORS:
            raise ValueError(f"unknown integrator {name!r}; choose one of {INTEGRATORS}")
        if dt <= 0 or damping < 0:
            raise ValueError("LLG needs dt > 0 and damping ≥ 0")
        self.name, self.dt, self.alpha = name, float(dt), float(damping)
        self.gp = GAMMA / (1.0 + self.alpha**2)
        self._k = kernel or load_kernel("llg")
        self._noise = noise_kernel or load_kernel("noise")
        self._buffers = None
        self._sigma = (None, None, False)      # (key, thermal_sigma, any nonzero)

    def thermal_sigma(self, moments, temperature: float) -> np.ndarray:
        """Per-spin std (T) of each thermal-field component for one step (N,)."""
        if temperature <= 0 or self.alpha == 0:
            return np.zeros(len(moments))
        return np.sqrt(2.0 * self.alpha * K_B * temperature / (GAMMA * moments * MU_B * self.dt))

    @staticmethod
    def init(system, seed) -> SpinState:
        """Fresh state from ``system``'s directions; ``seed`` as :func:`new_state`."""
        return new_state(system.directions, seed)

    @staticmethod
    def time(state: SpinState) -> float:
        """Time of ``state`` in :attr:`time_unit`."""
        return state.time

    def step(self, state: SpinState, provider, temperature: float = 0.0) -> SpinState:
        """Advance ``state`` by one step in place and return it."""
        m = state.directions
        n = len(m)
        if self._buffers is None or self._buffers[0].shape[0] != n:
            self._buffers = [np.empty((n, 3)) for _ in range(5)]
        B, aux, pred, out, bth = self._buffers
        key = (float(temperature), self.alpha, self.dt, provider.moments.tobytes())
        if key != self._sigma[0]:       # kept from step to step (16 spins: 12 of ~90 μs)
            sigma = self.thermal_sigma(provider.moments, temperature)
            self._sigma = (key, sigma, bool(np.any(sigma)))
        _, sigma, thermal = self._sigma
        if thermal:
            standard_normal(state.rng, bth, self._noise)
            bth *= sigma[:, None]
        else:
            bth[:] = 0.0
        k, a, g, dt = self._k, self.alpha, self.gp, self.dt
        provider.field(m, B)
        if self.name == "depondt":
            k.depondt_predict(m, B, bth, a, g, dt, aux, pred)
            provider.field(pred, B)
            k.depondt_correct(m, aux, pred, B, bth, a, g, dt, out)
        elif self.name == "sib":
            k.sib_predict(m, B, bth, a, g, dt, pred)
            provider.field(pred, B)
            k.sib_correct(m, pred, B, bth, a, g, dt, out)
        else:
            k.heun_predict(m, B, bth, a, g, dt, aux, pred)
            provider.field(pred, B)
            k.heun_correct(m, aux, pred, B, bth, a, g, dt, out)
        m[:] = out
        state.step += 1
        state.time += dt
        return state

    advance = step


def write_state(group, state: SpinState) -> None:
    """Write a state into an open HDF5 file or group: dataset ``directions`` (N, 3), attrs
    step, time, rng (the bit generator's state, JSON) and bit_generator (its class)."""
    group.create_dataset("directions", data=state.directions)
    group.attrs.update(step=state.step, time=state.time,
                       rng=json.dumps(state.rng.bit_generator.state),
                       bit_generator=type(state.rng.bit_generator).__name__)


def read_state(group) -> SpinState:
    """The state :func:`write_state` wrote into ``group``; the run continues bit for bit."""
    bit_generator = getattr(np.random, str(group.attrs["bit_generator"]))()
    bit_generator.state = json.loads(group.attrs["rng"])
    return SpinState(group["directions"][()], int(group.attrs["step"]),
                     float(group.attrs["time"]), np.random.Generator(bit_generator))


def save_state(path, state: SpinState) -> None:
    """Write a state (directions, step, time, RNG state) atomically to an HDF5 file."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        write_state(h5, state)


def load_state(path) -> SpinState:
    """Read a state written by :func:`save_state`; the run continues bit for bit."""
    with h5py.File(path, "r") as h5:
        return read_state(h5)
