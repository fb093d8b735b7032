"""Metropolis sampler: Langevin function for free spins and for coupled dimers, ordering
of bcc Fe."""
import numpy as np
import pytest

from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo, new_state
from otf_spin.oracles.heisenberg import FormulaExchange, HeisenbergOracle, ShellExchange
from otf_spin.system import SpinSystem, bulk
from otf_spin.units import K_B, MU_B


def test_free_spins_follow_langevin_function():
    system = bulk("sc", 10.0, (6, 6, 6), moment=2.2)      # no neighbours within range
    oracle = HeisenbergOracle(ShellExchange([1.0], [0.0], 0.01), "double_counted")
    field, temperature = 50.0, 100.0                       # T, K
    mc = HeisenbergMonteCarlo(oracle, system, field_tesla=(0, 0, field))
    state = new_state(system, 7)
    mc.equilibrate(state, temperature, 200)
    mz = np.array([s[:, 2].mean() for s in mc.sample(state, temperature, 400, 2)])
    x = 2.2 * MU_B * field / (K_B * temperature)
    langevin = 1 / np.tanh(x) - 1 / x
    error = mz.std() / np.sqrt(len(mz)) * 3  # samples 2 sweeps apart are nearly independent
    assert abs(mz.mean() - langevin) < max(4 * error, 0.01)


def test_coupled_dimers_follow_langevin_function():
    """216 independent dimers, H = -K e_1·e_2 each: the relative angle has the weight
    exp(βK cos θ), so ⟨e_1·e_2⟩ = coth(βK) - 1/(βK) exactly. Sequential sweeps update the
    first spin of a dimer and then the second, so a ΔE taken against the neighbour's
    state at the start of the sweep (not its current one) fails this."""
    n, gap, K = 6, 2.45, 20.0e-3                            # cells, Å, eV per pair
    corners = 10.0 * np.array([[i, j, k] for i in range(n) for j in range(n)
                               for k in range(n)], float)
    positions = np.concatenate([corners, corners + [gap, 0, 0]])
    positions = positions.reshape(2, -1, 3).transpose(1, 0, 2).reshape(-1, 3)  # 0,1 | 2,3 …
    system = SpinSystem(np.eye(3) * 10.0 * n, positions, "Fe")
    oracle = HeisenbergOracle(ShellExchange([gap], [K], 0.05), "per_pair")
    temperature = K / (2.0 * K_B)                           # βK = 2
    mc = HeisenbergMonteCarlo(oracle, system)
    state = new_state(system, 11)
    mc.equilibrate(state, temperature, 300)
    c = np.array([np.einsum("ik,ik->i", e[0::2], e[1::2]).mean()
                  for e in mc.sample(state, temperature, 3000, 1)])
    blocks = c.reshape(30, -1).mean(axis=1)                 # 30 blocks of 100 sweeps
    error = blocks.std(ddof=1) / np.sqrt(len(blocks))
    exact = 1 / np.tanh(2.0) - 1 / 2.0                      # 0.5373
    assert abs(c.mean() - exact) < 5 * error + 1e-3
    assert error < 2e-3


def test_bcc_fe_orders_at_low_and_disorders_at_high_temperature():
    system = bulk("bcc", 2.83, (4, 4, 4))
    oracle = HeisenbergOracle(FormulaExchange(0.94, 2.0, 1.4 * 2.83), "double_counted")
    magnetisation = {}
    for temperature in (300.0, 3000.0):
        mc = HeisenbergMonteCarlo(oracle, system)
        state = new_state(system, 1)
        mc.equilibrate(state, temperature, 300)
        m = [np.linalg.norm(s.mean(axis=0)) for s in mc.sample(state, temperature, 50, 2)]
        magnetisation[temperature] = np.mean(m)
    assert magnetisation[300.0] > 0.85
    assert magnetisation[3000.0] < 0.2


def test_model_monte_carlo_local_updates_are_exact(rng):
    """The local-update energy bookkeeping equals full recomputation by the model."""
    import warnings

    from otf_spin.learning.paper_sets import generate_set
    from otf_spin.model import build_model
    from otf_spin.config.model import MODEL

    from otf_spin.dynamics.montecarlo import ModelMonteCarlo

    settings = MODEL.validate({"descriptor": {"r_cut": 5.0, "n_max": 6, "l_max": 4},
                               "kernels": [{"zeta": 1, "normalize": False, "n_sparse": 20},
                                           {"zeta": 4, "normalize": False, "n_sparse": 30}],
                               "optimise": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(settings).fit(generate_set("thermal_1000K", 1)[0][:10])
    system = bulk("bcc", 2.83, (2, 2, 2))
    mc = ModelMonteCarlo(model, system, field_tesla=(0, 0, 5.0), fast=False)   # numpy path
    state = new_state(system, rng)
    start = model.predict(system, stds=False)["energy"]
    mc.sweep(state, 2000.0)
    d_cached, e_cached = mc.kept(state)
    probe = system.copy()
    probe.directions = state.directions.copy()
    np.testing.assert_allclose(d_cached, model.descriptor.compute(probe), atol=1e-12)
    end = model.predict(probe, stds=False)["energy"]
    assert e_cached.sum() - model.local_energies(model.descriptor.compute_fm(probe)).sum() == \
        pytest.approx(end, abs=1e-10)
    assert abs(end - start) > 1e-4       # spins did move
