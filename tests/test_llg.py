"""Stochastic LLG: damped Larmor precession (analytic), convergence order, conservation
at α = 0, Langevin statistics, compiled vs Python twin, reproducible streams."""
import numpy as np
import pytest

from otf_spin import kernels
from otf_spin.dynamics.llg import INTEGRATORS, LLGIntegrator, load_state, new_state, save_state
from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo
from otf_spin.dynamics.montecarlo import new_state as new_mc_state
from otf_spin.dynamics.providers import HeisenbergProvider
from otf_spin.oracles.heisenberg import FormulaExchange, HeisenbergOracle, ShellExchange
from otf_spin.system import SpinSystem, bulk, random_cone
from otf_spin.units import GAMMA, K_B, MU_B

NO_EXCHANGE = HeisenbergOracle(ShellExchange([1.0], [0.0], 0.01), "double_counted")


def free_spins(n, moment=2.0):
    positions = np.arange(n)[:, None] * np.array([[10.0, 0, 0]])
    return SpinSystem(np.eye(3) * 10 * n, positions, "Fe", magnitudes=moment)


def larmor(theta0, t, B, alpha):
    """Analytic damped precession of one spin in B ẑ, starting in the xz plane."""
    g = GAMMA / (1 + alpha**2)
    theta = 2 * np.arctan(np.tan(theta0 / 2) * np.exp(-g * alpha * B * t))
    phi = g * B * t
    return np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])


def run_larmor(name, dt, t_end=20.0, B=10.0, alpha=0.1, theta0=1.0):
    system = free_spins(1)
    provider = HeisenbergProvider(NO_EXCHANGE, system, (0, 0, B))
    integrator = LLGIntegrator(name, dt, alpha)
    state = new_state([[np.sin(theta0), 0, np.cos(theta0)]], 0)
    for _ in range(int(round(t_end / dt))):
        integrator.step(state, provider)
    return np.linalg.norm(state.directions[0] - larmor(theta0, t_end, B, alpha))


@pytest.mark.parametrize("name", INTEGRATORS)
def test_damped_larmor_precession(name):
    # 10 T: period 2π/(γB) ≈ 3.6 ps; 20 ps = 5.6 turns, θ relaxes by a factor ~e^-0.35
    assert run_larmor(name, 1e-3) < 2e-6
    errors = [run_larmor(name, dt) for dt in (0.02, 0.01)]
    order = np.log2(errors[0] / errors[1])
    assert 1.8 < order < 2.3, (name, errors)


@pytest.mark.parametrize("name", INTEGRATORS)
def test_energy_and_norm_conserved_without_damping(name, rng):
    """α = 0, T = 0: |m_i| = 1 at every step; the energy drift over 20 fs (about one
    exchange precession period, B_exch ~ 2000 T) vanishes at least as dt²."""
    system = bulk("bcc", 2.83, (2, 2, 2))
    system.set_directions(random_cone(len(system), [0, 0, 1], 0.8, rng))
    oracle = HeisenbergOracle(FormulaExchange(0.94, 2.0, 1.4 * 2.83), "double_counted")
    provider = HeisenbergProvider(oracle, system)
    e0 = provider.energy(system.directions)
    drifts = []
    for dt in (4e-5, 2e-5):                        # ps
        state = new_state(system.directions, 1)
        integrator = LLGIntegrator(name, dt, 0.0)
        drift = 0.0
        for _ in range(int(round(0.02 / dt))):
            integrator.step(state, provider)
            drift = max(drift, abs(provider.energy(state.directions) - e0))
            assert np.abs(np.linalg.norm(state.directions, axis=1) - 1.0).max() < 1e-13
        drifts.append(drift)
    assert np.abs(state.directions - system.directions).max() > 0.05   # it did move
    assert drifts[1] < 1e-5 * abs(e0)
    assert drifts[0] / drifts[1] > 3.5


def langevin(x):
    return 1 / np.tanh(x) - 1 / x


@pytest.mark.parametrize("name", INTEGRATORS)
def test_free_spins_llg_langevin_function(name):
    n, B, T, moment = 400, 20.0, 50.0, 2.0
    system = free_spins(n, moment)
    provider = HeisenbergProvider(NO_EXCHANGE, system, (0, 0, B))
    integrator = LLGIntegrator(name, 2e-3, 0.5)
    state = new_state(np.tile([0, 0, 1.0], (n, 1)), 3)
    for _ in range(2000):                       # equilibrate: relaxation ~ 1/(γαB) ≈ 0.6 ps
        integrator.step(state, provider, T)
    samples = []
    for k in range(3000):
        integrator.step(state, provider, T)
        if k % 30 == 0:
            samples.append(state.directions[:, 2].mean())
    x = moment * MU_B * B / (K_B * T)
    stderr = np.std(samples) / np.sqrt(len(samples)) * 2
    assert abs(np.mean(samples) - langevin(x)) < max(4 * stderr, 0.005)


def test_free_spins_mc_langevin_function():
    n, B, T, moment = 400, 20.0, 50.0, 2.0
    system = free_spins(n, moment)
    mc = HeisenbergMonteCarlo(NO_EXCHANGE, system, (0, 0, B))
    state = new_mc_state(system, 4)
    mc.equilibrate(state, T, 200)
    samples = [s[:, 2].mean() for s in mc.sample(state, T, 300, 2)]
    x = moment * MU_B * B / (K_B * T)
    assert abs(np.mean(samples) - langevin(x)) < max(4 * np.std(samples) / np.sqrt(300), 0.005)


@pytest.mark.parametrize("name", INTEGRATORS)
def test_compiled_matches_twin(name, rng):
    system = bulk("bcc", 2.83, (2, 2, 2))
    system.set_directions(random_cone(len(system), [0, 0, 1], 1.0, rng))
    oracle = HeisenbergOracle(FormulaExchange(0.94, 2.0, 1.4 * 2.83), "double_counted")
    provider = HeisenbergProvider(oracle, system, (0.0, 1.0, 2.0))
    results = []
    # required: without the extension, kernel=None would compare the twin with itself
    for module, noise in ((kernels.compiled("llg", required=True),
                           kernels.compiled("noise", required=True)),
                          (kernels.twin("llg"), kernels.twin("noise"))):
        state = new_state(system.directions, 11)
        integrator = LLGIntegrator(name, 1e-3, 0.2, kernel=module, noise_kernel=noise)
        for _ in range(50):
            integrator.step(state, provider, 300.0)
        results.append(state.directions)
    np.testing.assert_allclose(results[0], results[1], rtol=0, atol=1e-12)


def test_same_seed_same_trajectory_and_exact_resume(rng, tmp_path):
    system = bulk("bcc", 2.83, (2, 2, 2))
    oracle = HeisenbergOracle(FormulaExchange(0.94, 2.0, 1.4 * 2.83), "double_counted")
    provider = HeisenbergProvider(oracle, system)
    integrator = LLGIntegrator("depondt", 1e-4, 0.1)

    def run(state, steps):
        for _ in range(steps):
            integrator.step(state, provider, 500.0)
        return state

    a = run(new_state(system.directions, 42), 100)
    b = run(new_state(system.directions, 42), 60)
    save_state(tmp_path / "state.h5", b)    # checkpoint: directions, step, time, RNG state
    b = run(load_state(tmp_path / "state.h5"), 40)
    np.testing.assert_array_equal(a.directions, b.directions)
    assert (a.step, a.time) == (b.step, b.time)
    c = run(new_state(system.directions, 43), 100)
    assert np.abs(c.directions - a.directions).max() > 1e-3


def test_gaussian_noise_statistics_and_twin():
    """The compiled ziggurat: N(0, 1) moments and tails, bit-equal to its Python twin,
    and reproducible from the Generator state."""
    from scipy import stats

    from otf_spin.dynamics.noise import standard_normal

    x = standard_normal(np.random.default_rng(1), np.empty(2_000_000))
    n = len(x)
    assert abs(x.mean()) < 4 / np.sqrt(n)
    assert abs(x.var() - 1) < 4 * np.sqrt(2 / n)
    assert abs(np.mean(x**4) - 3) < 4 * np.sqrt(96 / n)
    tail = np.mean(np.abs(x) > 3.6541528853610088)          # beyond the ziggurat base
    expect = 2 * stats.norm.sf(3.6541528853610088)
    assert abs(tail - expect) < 4 * np.sqrt(expect / n)
    assert stats.kstest(x[:200_000], "norm").pvalue > 1e-3
    a = standard_normal(np.random.default_rng(9), np.empty(4000), kernels.compiled("noise"))
    b = standard_normal(np.random.default_rng(9), np.empty(4000), kernels.twin("noise"))
    np.testing.assert_array_equal(a, b)
    # a tiny reserve forces the refill path; the variates still follow the Generator
    raw = np.random.default_rng(3).bit_generator.random_raw(5000)
    out = np.empty(5000)
    filled, used = kernels.compiled("noise").gaussian_fill(raw, raw[:1], out)
    assert filled < 5000 and used <= 1
