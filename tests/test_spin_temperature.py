"""Spin temperature (Nurdin et al. 2000) from transverse fields alone: the Hutchinson
estimate of Σ Δ_i E against the exact Heisenberg value, and a run log without NaN."""
import io
import warnings

import numpy as np
import pytest

from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo, new_state
from otf_spin.dynamics.providers import ComputeProvider, HeisenbergProvider
from otf_spin.dynamics.spin_temperature import laplacian_sum, probes_for, tangent_basis
from otf_spin.oracles.heisenberg import FormulaExchange, HeisenbergOracle
from otf_spin.system import bulk
from otf_spin.units import K_B

ORACLE = HeisenbergOracle(FormulaExchange(0.94, 2.0, 1.4 * 2.83), "double_counted")
FIELD = (0.0, 0.5, 1.0)            # T


def thermal(repeat, temperature, seed=1):
    system = bulk("bcc", 2.83, (repeat,) * 3, moment=2.2)
    state = new_state(system, seed)
    HeisenbergMonteCarlo(ORACLE, system).equilibrate(state, temperature, 200)
    return system, state.directions


def exact_laplacian(system, e):
    """Σ_i Δ_i E = 2 Σ_i e_i·H_i (Heisenberg + Zeeman: P_1 has Δ = -2 P_1), eV."""
    provider = HeisenbergProvider(ORACLE, system, FIELD)
    H = 2.0 * provider._local(e) + provider.zeeman
    return 2.0 * np.einsum("ik,ik->", e, H), provider


def test_tangent_basis_is_orthonormal(rng):
    e = rng.normal(size=(50, 3))
    e /= np.linalg.norm(e, axis=1)[:, None]
    e[0] = (1.0, 0.0, 0.0)
    u, v = tangent_basis(e)
    for a, b, value in ((u, u, 1), (v, v, 1), (u, v, 0), (u, e, 0), (v, e, 0)):
        np.testing.assert_allclose(np.einsum("ik,ik->i", a, b), value, atol=1e-12)


def test_hutchinson_laplacian_is_unbiased_on_a_small_cell():
    """16 spins, many probes: the mean converges to the exact Σ Δ_i E."""
    system, e = thermal(2, 600.0)
    exact, _ = exact_laplacian(system, e)
    provider = ComputeProvider(ORACLE, system, FIELD)
    estimate = laplacian_sum(provider._torque, e, probes=400)
    assert estimate == pytest.approx(exact, rel=0.02)
    one = laplacian_sum(provider._torque, e, probes=1)
    assert one != pytest.approx(estimate, rel=1e-6)        # single probes do scatter


@pytest.mark.parametrize("repeat, temperature, rel", [(2, 300.0, 0.10), (6, 300.0, 0.03),
                                                      (8, 900.0, 0.02)])
def test_compute_provider_spin_temperature_matches_heisenberg(repeat, temperature, rel):
    """The default estimate (probes by size) against the exact Heisenberg T_s."""
    system, e = thermal(repeat, temperature)
    _, exact = exact_laplacian(system, e)
    estimate = ComputeProvider(ORACLE, system, FIELD).spin_temperature(e)
    assert np.isfinite(estimate)
    assert estimate == pytest.approx(exact.spin_temperature(e), rel=rel)
    numerator = np.sum(np.cross(e, 2.0 * exact._local(e) + exact.zeeman) ** 2)
    assert numerator / (K_B * exact_laplacian(system, e)[0]) == pytest.approx(
        exact.spin_temperature(e), rel=1e-12)              # the two exact forms agree


def test_estimate_is_deterministic_and_keeps_the_field_cache():
    system, e = thermal(2, 300.0)
    provider = ComputeProvider(ORACLE, system, FIELD)
    out = np.empty((len(system), 3))
    provider.field(e, out)
    cached = provider._last
    first = provider.spin_temperature(e)
    assert provider._last is cached
    assert provider.spin_temperature(e) == first


def test_on_the_fly_log_and_trajectory_have_a_spin_temperature(tmp_path, monkeypatch):
    """The ML provider's log column and H5MD series hold numbers, never NaN."""
    import h5py

    from helpers import small_otf_run
    from otf_spin.factory import load_run
    from otf_spin.runner import run

    monkeypatch.chdir(tmp_path)
    log = io.StringIO()
    run(load_run(small_otf_run(tmp_path, steps=30)), progress=False, log=log)
    text = log.getvalue()
    assert "T_spin/K" in text and "nan" not in text.lower()
    with h5py.File(tmp_path / "otf_run.h5") as f:
        ts = f["observables/spin_temperature/value"][()]
    assert np.all(np.isfinite(ts)) and np.all(ts[1:] > 0)
    assert abs(ts[0]) < 1.0                # ferromagnetic start: no transverse field


def test_model_provider_evaluations_per_output_frame():
    """On the compiled model engine an output frame (energy, then T_s) costs one
    evaluation without gradient plus 1 + K with (K probes), and the next step's first
    field at the same directions is the one computed there, bit for bit."""
    from otf_spin.learning.paper_sets import generate_set
    from otf_spin.model import build_model, default_settings

    settings = default_settings()
    settings.update(optimise=False, select_terms=False)
    settings["descriptor"]["n_max"] = 6
    settings["kernels"][2]["n_sparse"] = 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # 16-atom training cells alias (expected)
        model = build_model(settings).fit(generate_set("thermal_300K", 3)[0][:3])
    system, e = thermal(2, 300.0)
    provider = ComputeProvider(model, system, FIELD)
    engine = provider._engine()
    assert engine is not None
    calls = engine.profile["calls"]
    energy = provider.energy(e)
    estimate = provider.spin_temperature(e)
    assert np.isfinite(estimate)
    assert engine.profile["calls"] - calls == 2 + probes_for(len(system))
    out, fresh = np.empty((len(system), 3)), np.empty((len(system), 3))
    provider.field(e, out)
    assert engine.profile["calls"] - calls == 2 + probes_for(len(system))    # reused
    other = ComputeProvider(model, system, FIELD)
    other.field(e, fresh)
    assert np.array_equal(out, fresh)
    assert other.energy(e) == energy                  # from the cache: same number
    assert provider.energy(e) == energy
