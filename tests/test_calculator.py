"""The calculator contract (otf_spin.calculator), the Hamiltonian/oracle split, the
provider's one prediction per configuration, and the driver's order of events."""
import warnings

import numpy as np
import pytest

from otf_spin.calculator import PropertyNotImplementedError
from otf_spin.driver import Observer, Replica, drive
from otf_spin.dynamics.llg import LLGIntegrator
from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo, ModelMonteCarlo, sampler
from otf_spin.dynamics.providers import ComputeProvider, HeisenbergProvider, make_provider
from otf_spin.learning.otf import OnTheFly, field_uncertainty
from otf_spin.learning.paper_sets import generate_set
from otf_spin.model import build_model, default_settings
from otf_spin.model.gpr import SparseGPR
from otf_spin.oracles.heisenberg import HeisenbergHamiltonian, HeisenbergOracle, ShellExchange
from otf_spin.system import bulk, random_cone

SHELLS = ShellExchange([2.4508, 2.83], [0.01948, 0.01109], 0.05)


@pytest.fixture(scope="module")
def model():
    settings = default_settings()
    settings["descriptor"]["n_max"] = 8
    settings["optimise"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(settings).fit(generate_set("thermal_300K", 7)[0][:4])


def _spins(rng):
    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    system.set_directions(random_cone(len(system), [0, 0, 1], 0.8, rng))
    return system


def test_properties_are_declared_and_checked(model, fe16):
    oracle = HeisenbergOracle(SHELLS)
    assert isinstance(oracle.hamiltonian, HeisenbergHamiltonian)
    for calculator in (oracle, oracle.hamiltonian):
        with pytest.raises(PropertyNotImplementedError, match="energy_std"):
            calculator.compute(fe16, ("energy", "energy_std"))
    labels = oracle.compute(fe16)                 # an oracle labels all it implements
    assert set(oracle.implemented_properties) <= set(labels)
    same = oracle.hamiltonian.compute(fe16, ("fields",))
    np.testing.assert_array_equal(labels["fields"], same["fields"])
    with pytest.raises(PropertyNotImplementedError, match="forces"):
        model.compute(fe16, ("forces",))


def test_model_uncertainty_alone_equals_predict(model, fe16):
    """σ asked for alone costs no energy or gradient and is bit for bit predict's σ; the
    on-the-fly trigger alone (the epistemic part) comes without the other stds."""
    full = model.predict(fe16, stds=True)
    alone = model.compute(fe16, OnTheFly.properties)
    assert set(alone) == {"fields_std_epistemic"}
    every = model.compute(fe16, ("fields_std", "fields_std_epistemic", "energy_std"))
    assert "fields" not in every and "energy" not in every
    for key in ("fields_std", "fields_std_epistemic", "energy_std"):
        np.testing.assert_array_equal(every[key], full[key])
    np.testing.assert_array_equal(field_uncertainty(alone),
                                  np.linalg.norm(full["fields_std_epistemic"], axis=1))
    plain = model.compute(fe16, ("energy", "fields"))
    assert "fields_std" not in plain
    np.testing.assert_array_equal(plain["fields"], full["fields"])


def test_make_provider_dispatches_on_declared_types(model, fe16):
    plain = HeisenbergOracle(SHELLS)
    provider = make_provider(plain, fe16)
    assert isinstance(provider, HeisenbergProvider) and provider.calculator is plain.hamiltonian
    slaved = HeisenbergOracle(SHELLS, slaving={"m0": 2.2, "dm": 0.6})
    provider = make_provider(slaved, fe16)
    assert isinstance(provider, ComputeProvider) and provider.calculator is slaved.hamiltonian
    assert isinstance(make_provider(model, fe16), ComputeProvider)
    assert isinstance(sampler(plain.hamiltonian, fe16), HeisenbergMonteCarlo)
    assert isinstance(sampler(model, fe16), ModelMonteCarlo)
    with pytest.raises(ValueError, match="fixed-moment"):
        sampler(slaved.hamiltonian, fe16)


@pytest.mark.parametrize("fast", [True, False])
def test_the_step_uses_the_prediction_the_learner_assessed(model, rng, monkeypatch, fast):
    """provider.compute with σ, then field() at the same directions: one prediction (no
    second model call), and the same bits as a fresh provider's field."""
    if not fast:
        monkeypatch.setenv("OTF_SPIN_FAST_MODEL", "0")
    system = _spins(rng)
    e = np.ascontiguousarray(system.directions)
    reference = np.empty((len(system), 3))
    ComputeProvider(model, system, (0.0, 0.0, 1.0)).field(e, reference)
    provider = ComputeProvider(model, system, (0.0, 0.0, 1.0))
    assert (provider._engine() is not None) == fast
    results = provider.compute(e, OnTheFly.properties)
    assert "fields_std_epistemic" in results
    calls = []
    monkeypatch.setattr(SparseGPR, "predict", lambda *a, **k: calls.append(a) or {})
    monkeypatch.setattr(SparseGPR, "compute", lambda *a, **k: calls.append(a) or {})
    out = np.empty_like(reference)
    if fast:                                       # the engine is not asked again either
        engine = provider._engine()
        monkeypatch.setattr(provider, "_engine", lambda: calls.append("engine") or engine)
    provider.field(e, out)
    assert calls == []
    np.testing.assert_array_equal(out, reference)
    provider.set_calculator(model)                # a refit: the kept prediction is dropped
    try:
        provider.field(e, out)
    except KeyError:                                # the stub's empty results
        pass
    assert calls                                    # the (new) model was asked


class _Record(Observer):
    def __init__(self, name, events, before=False):
        self.name, self.events, self.before_step = name, events, before

    def notify(self, step):
        self.events.append((self.name, step))


class _Counting:
    """A propagator that only counts (state: a list of steps)."""

    time_unit = "step"

    def advance(self, state, provider, temperature):
        state.append(temperature)
        return state

    @staticmethod
    def time(state):
        return float(len(state))


class _Spec:
    index, temperature = 0, (100.0, 200.0)


@pytest.mark.parametrize("initial", [True, False])
def test_driver_order(initial):
    """Initial: before(0), after(0); then per step s: before(s-1) from s = 2 (s - 1 > 0),
    advance, after(s) in list order; resumed at 2: before(2) first."""
    events, state = [], []
    replica = Replica(_Spec(), None, propagator=_Counting(), state=state)
    observers = [_Record("learn", events, before=True), _Record("write", events),
                 _Record("log", events)]
    first = 0 if initial else 2
    drive([replica], observers, first, 4, initial=initial)
    expected = [("learn", 0), ("write", 0), ("log", 0)] if initial else []
    for step in range(first + 1, 5):
        expected += ([("learn", step - 1)] if step > 1 else []) + [("write", step),
                                                                  ("log", step)]
    assert events == expected
    assert state == [100.0 + 25.0 * s for s in range(first, 4)]      # T of step s - 1


def test_llg_and_mc_share_the_propagator_interface(fe16):
    oracle = HeisenbergOracle(SHELLS)
    provider = make_provider(oracle, fe16)
    for propagator, unit in ((LLGIntegrator("depondt", 1e-4, 0.1), "ps"),
                             (sampler(oracle.hamiltonian, fe16), "MC sweep")):
        state = propagator.init(fe16, 3)
        before = state.directions.copy()
        assert propagator.advance(state, provider, 300.0) is state
        assert propagator.time(state) > 0 and propagator.time_unit == unit
        assert not np.array_equal(state.directions, before)
    assert provider.field_bound() > 0
    b = np.empty((len(fe16), 3))
    provider.field(np.ascontiguousarray(fe16.directions), b)
    assert np.abs(b).max() <= provider.field_bound() + 1e-9
