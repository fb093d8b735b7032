"""Fast GAP-SOSO path (otf_spin.model.fast, kernel gap): equal to model.predict to 1e-10
(several models, cells, displaced positions, positions changed between calls), compiled
engine against its twin, cache invalidation on new positions and refits, fallback for
unsupported models, the LLG provider and the model Monte Carlo on it; the same for
models with the angle exchange term (the composite [exchange-2b; angle] that the term
selection builds), including exactly parallel and antiparallel spins; and the same for
models with the B-spline exchange term (alone and with the angle term), whose linear
weights the engine folds into pair couplings."""
import functools
import json
import os
import types
import warnings

import numpy as np
import pytest

from otf_spin import kernels
from otf_spin.config.engine import thaw
from otf_spin.config.model import MODEL
from otf_spin.dynamics.providers import ComputeProvider, make_provider
from otf_spin.learning.paper_sets import generate_set
from otf_spin.model import build_model, default_settings
from otf_spin.model import fast
from otf_spin.model.selection import candidate_settings
from otf_spin.system import bulk, random_cone
from otf_spin.units import MU_B


def _fit(n_max=8, zeta=4, normalize=False, orders=None, n_sparse=30, frames=6, l_max=None):
    settings = default_settings()
    settings["descriptor"]["n_max"] = n_max
    if l_max is not None:
        settings["descriptor"]["l_max"] = l_max
    settings["kernels"][2].update(zeta=zeta, normalize=normalize, orders=orders,
                                  n_sparse=n_sparse)
    settings["optimise"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(settings).fit(generate_set("thermal_300K", 7)[0][:frames])


def _fit_terms(terms, n_max=8, l_max=None, normalize=False, n_sparse=30, frames=6,
               data="thermal_300K", **sections):
    """A model with the extra descriptor ``terms`` as the term selection builds it
    (:func:`candidate_settings`), fitted on the first ``frames`` training frames of the
    paper set ``data``; ``sections``: per term name, settings that replace the term's
    defaults."""
    settings = default_settings()
    settings["descriptor"]["n_max"] = n_max
    if l_max is not None:
        settings["descriptor"]["l_max"] = l_max
    settings["kernels"][2].update(normalize=normalize, n_sparse=n_sparse)
    settings["optimise"] = False
    settings = thaw(candidate_settings(settings, terms))
    for term, values in sections.items():
        settings["descriptor"][term].update(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(settings).fit(generate_set(data, 7, scale=0.01)[0][:frames])


def _fit_angle(n_max=8, k_max=4, **kw):
    """A model with the angle term as the term selection builds it: the exchange-2b
    kernels, the ζ = 4 kernel joined by the angle block (with_terms), a linear kernel on
    the angle block."""
    return _fit_terms(("exchange_2b_angle",), n_max, exchange_2b_angle={"k_max": k_max}, **kw)


MODELS = {
    "defaults n_max 20": dict(n_max=20),
    "paper n_max 12": dict(n_max=12),
    "normalised, masked": dict(normalize=True, orders=[0, 1, 2, 3]),
    "zeta 2 masked": dict(zeta=2, orders=[1, 2]),
    # every kernel linear: the engine has no kernel products at all (the shell-basis
    # pipeline's matrices failed on zero sparse points until 2026-12-06)
    "linear only": dict(zeta=1),
}


@pytest.fixture(scope="module")
def models():
    return {name: _fit(**kw) for name, kw in MODELS.items()}


def _system(repeat, rng, displaced=0.0, cone=0.8):
    system = bulk("bcc", 2.83, (repeat,) * 3, moment=2.2)
    system.set_directions(random_cone(len(system), [0, 0, 1], cone, rng))
    system.positions += rng.normal(0.0, displaced, system.positions.shape)
    return system


def _extended(model, system):
    """Local energies in extended precision (long double) from the reference descriptors,
    and the rounding floor of the float64 reference, ε Σ_m |α_m| (|k(d_i, s_m)| +
    |k(d_i^FM, s_m)|): linear kernels spanning their weight space have weights of 1e3
    whose terms cancel by 1e6 (a reference energy is then only good to ~1e-10)."""
    ld = np.longdouble
    d = model.descriptor.compute(system).astype(ld)
    d_fm = model.descriptor.compute_fm(system).astype(ld)
    E = np.zeros(len(system), ld)
    floor = np.zeros(len(system))
    start = 0
    for kernel, S in zip(model.kernels, model.sparse):
        a = model.alpha[start:start + len(S)].astype(ld)
        start += len(S)
        mask = np.ones(d.shape[1], ld) if kernel.mask is None else kernel.mask.astype(ld)
        X, X0, Sm = d * mask, d_fm * mask, S.astype(ld) * mask
        if kernel.normalize:
            X, X0, Sm = (A / np.linalg.norm(A.astype(float), axis=1, keepdims=True).astype(ld)
                         for A in (X, X0, Sm))
        K, K0 = (X @ Sm.T) ** kernel.zeta, (X0 @ Sm.T) ** kernel.zeta
        E += (K - K0) @ a
        floor += (np.abs(K).astype(float) + np.abs(K0).astype(float)) @ \
            np.abs(a.astype(float))
    return E.astype(float), np.finfo(float).eps * floor


def _close(a, b, rel=1e-10):
    scale = np.abs(b).max()
    assert np.abs(np.asarray(a) - b).max() <= rel * scale, np.abs(np.asarray(a) - b).max() / scale


@pytest.mark.parametrize("name", list(MODELS))
def test_fast_equals_predict(models, name, rng):
    model = models[name]
    fp = fast.fast_predictor(model)
    assert fp is not None
    # 2, 3: cells narrower than 2 r_c (images merged); 6: the compiled compression
    for repeat, displaced in ((2, 0.0), (3, 0.0), (3, 0.08), (2, 0.1), (6, 0.0), (6, 0.05)):
        system = _system(repeat, rng, displaced)
        ref = model.predict(system, stds=False)
        out = fp.predict(system)
        exact, floor = _extended(model, system)
        # energies: 1e-10 relative above the float64 floor of the model's form, against
        # the reference and against long double (the fast path is closer to the latter)
        tol = 1e-10 * np.abs(exact).max() + 4 * floor
        assert np.all(np.abs(out["energies"] - ref["energies"]) <= tol)
        assert np.all(np.abs(out["energies"] - exact) <= tol)
        _close(out["fields"], ref["fields"])
        assert abs(out["energy"] - ref["energy"]) <= tol.sum()
        # the FM state has zero energy (exactly: same arithmetic as its reference) and
        # zero transverse field, in any direction
        for axis in ([0.0, 0.0, 1.0], [0.3, -0.2, 0.9]):
            fm = system.copy()
            fm.set_directions(np.tile(axis, (len(fm), 1)))
            zero = fp.predict(fm)
            if axis[0] == 0.0:
                assert np.all(zero["energies"] == 0.0)
            assert np.abs(zero["energies"]).max() <= 1e-12 * np.abs(ref["energies"]).max()
            assert np.abs(zero["fields"]).max() <= 1e-12 * np.abs(ref["fields"]).max()


def test_descriptors_equal_reference(models, rng):
    model = models["paper n_max 12"]
    fp = fast.fast_predictor(model)
    for displaced in (0.0, 0.1):
        system = _system(2, rng, displaced)
        _close(fp.descriptors(system), model.descriptor.compute(system), 1e-12)


def test_descriptors_leave_the_last_evaluations_energies(models, rng):
    """engine.descriptors() (the σ check's pass) must not overwrite the energies the
    last evaluation left (compiled and twin): the state before and after a check."""
    model = models["paper n_max 12"]
    for kernel in (kernels.compiled("gap", required=True), kernels.twin("gap")):
        fp = fast.FastPredictor(model, kernel=kernel)
        system = _system(2, rng, 0.1)
        before = fp.predict(system)["energies"]
        engine = fp.engine(system)
        other = rng.normal(size=(len(system), 3))
        other /= np.linalg.norm(other, axis=1)[:, None]
        d = np.empty((len(system), len(fp.perm)))
        engine.descriptors(np.ascontiguousarray(other), d)
        assert np.array_equal(np.asarray(engine.energies), before)



@pytest.mark.parametrize("name", ["paper n_max 12", "angle"])
def test_descriptors_of_the_last_evaluation(models, angle_models, name, rng):
    """The σ check's descriptors at the directions just evaluated are the evaluation's
    own (copied, full-descriptor path) and bit for bit those a fresh pass makes; after
    an evaluation elsewhere (the spin temperature's probes), a Monte Carlo sweep or the
    FM reference they are made again, never a stale copy."""
    model = angle_models["angle, defaults n_max 20"] if name == "angle" else models[name]
    fp = fast.FastPredictor(model)
    system = _system(2, rng, 0.1)
    engine = fp.engine(system)
    assert not engine.shell
    e = np.ascontiguousarray(system.directions)
    fresh = np.empty((len(system), len(fp.perm)))
    engine.descriptors(e, fresh)                    # no evaluation yet: a fresh pass
    reference = model.descriptor.compute(system)[:, fp.perm] if name != "angle" else None
    if reference is not None:
        _close(fresh, reference, 1e-12)
    engine.field(e, -1.0 / system.magnitudes, np.zeros(3), np.empty((len(system), 3)))
    copied = np.empty_like(fresh)
    engine.descriptors(e.copy(), copied)            # equal values, another array
    assert np.array_equal(copied, fresh)
    other = rng.normal(size=e.shape)
    other = np.ascontiguousarray(other / np.linalg.norm(other, axis=1)[:, None])
    for move in ("probe", "sweep", "fm"):
        if move == "probe":
            engine.compute(other)
        elif move == "sweep":
            engine.compute(e)                       # d fresh at e, then the sweep moves d
            moved = e.copy()                        # uniform draws 0: every move taken
            engine.metropolis_sweep(moved, 1.0, 0.5, rng.standard_normal(e.shape),
                                    np.zeros(len(e)), np.zeros(e.shape))
            assert not np.array_equal(moved, e)
        else:
            engine.compute(e)
            engine.fm_energies()
        again = np.empty_like(fresh)
        engine.descriptors(e, again)
        assert np.array_equal(again, fresh), move

def test_compiled_engine_matches_twin(models, rng):
    compiled = kernels.compiled("gap", required=True)
    for name in ("paper n_max 12", "normalised, masked"):
        model = models[name]
        a = fast.FastPredictor(model, kernel=compiled)
        b = fast.FastPredictor(model, kernel=kernels.twin("gap"))
        for repeat, displaced in ((2, 0.0), (3, 0.1)):
            system = _system(repeat, rng, displaced)
            pa, pb = a.predict(system), b.predict(system)
            floor = _extended(model, system)[1]
            assert np.all(np.abs(pa["energies"] - pb["energies"]) <=
                          1e-12 * np.abs(pb["energies"]).max() + 4 * floor)
            _close(pa["fields"], pb["fields"])
            _close(a.descriptors(system), b.descriptors(system), 1e-14)
            ea, eb = a.engine(system), b.engine(system)
            e = np.ascontiguousarray(system.directions)
            assert ea.compute(e, False) == pytest.approx(eb.compute(e, False),
                                                         abs=4 * floor.sum())
            assert ea.profile["calls"] >= 2 and ea.profile["descriptor"] > 0
            for engine in (ea, eb):     # stage timers in CPU seconds of the process
                engine.reset_profile(cpu=True)
                assert engine.profile["calls"] == 0 and engine.profile["field"] == 0.0
                engine.compute(e, True)
                assert engine.profile["calls"] == 1 and engine.profile["descriptor"] >= 0.0


def test_power_basis_and_recursion_over_all_angles(models, rng):
    """Pair loops in the power basis of x = e_i·e_j - 1 (l_max ≤ 6) and the three-term
    recursion (l_max 8) on fully random spins (x down to -2, where the power-basis terms
    cancel most): fields equal model.predict to 1e-10, compiled equals twin."""
    compiled = kernels.compiled("gap", required=True)
    for model in (models["paper n_max 12"], _fit(n_max=6, l_max=8, n_sparse=10, frames=3)):
        a = fast.FastPredictor(model, kernel=compiled)
        b = fast.FastPredictor(model, kernel=kernels.twin("gap"))
        for repeat in (2, 3):
            system = _system(repeat, rng, 0.05, cone=np.pi)
            ref = model.predict(system, stds=False)
            pa = a.predict(system)
            floor = _extended(model, system)[1]
            _close(pa["fields"], ref["fields"])
            _close(pa["fields"], b.predict(system)["fields"])
            assert np.all(np.abs(pa["energies"] - ref["energies"]) <=
                          1e-10 * np.abs(ref["energies"]).max() + 4 * floor)


def test_compress_pairs_compiled_matches_twin(rng):
    from otf_spin.system import neighbour_pairs

    compiled = kernels.compiled("gap", required=True)
    for repeat, displaced in ((6, 0.0), (6, 0.05), (2, 0.0)):
        system = _system(repeat, rng, displaced)
        i, j, _, _, d = neighbour_pairs(system.cell, system.pbc, system.positions, 7.0)
        a = compiled.compress_pairs(i, j, d, len(system), fast.DISTANCE_TOL)
        b = kernels.twin("gap").compress_pairs(i, j, d, len(system), fast.DISTANCE_TOL)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        soff, sp, srid, neigh, jslot, rep, self_atom, _ = a
        assert len(neigh) + len(self_atom) == len(i)
        if displaced == 0.0 and repeat == 6:
            assert len(rep) == 9 and np.all(np.diff(soff) == 9)   # bcc shells within 7 Å
        # every pair's reverse sits in the neighbour's slot of the same distance
        rows = np.repeat(np.arange(len(system)), np.diff(soff))
        slot_of_pair = np.repeat(np.arange(len(srid)), np.diff(sp))
        back = soff[neigh] + jslot
        assert np.array_equal(srid[back], srid[slot_of_pair])
        assert np.all(rows[back] == neigh)


def test_reverse_pairs(models, rng):
    """The angle block's reverse-pair index (θ once per unordered pair, written to both
    directions): an involution mapping each pair (i -> j) to (j -> i) of the same radial
    row, on the lattice, displaced, and in a cell narrower than 2 r_c (merged images)."""
    from otf_spin.system import neighbour_pairs

    compiled = kernels.compiled("gap", required=True)
    for repeat, displaced in ((6, 0.0), (6, 0.05), (2, 0.0)):
        system = _system(repeat, rng, displaced)
        if repeat == 2:
            pairs = fast.fast_predictor(models["paper n_max 12"]).pairs(system)
            soff, sp, srid, neigh, jslot = (pairs[k] for k in ("soff", "sp", "srid",
                                                               "neigh", "jslot"))
        else:
            i, j, _, _, d = neighbour_pairs(system.cell, system.pbc, system.positions, 4.5)
            soff, sp, srid, neigh, jslot = compiled.compress_pairs(
                i, j, d, len(system), fast.DISTANCE_TOL)[:5]
        rev = compiled._reverse_pairs(soff, sp, neigh, jslot)
        slot = np.repeat(np.arange(len(srid)), np.diff(sp))
        rows = np.repeat(np.arange(len(system)), np.diff(soff))[slot]
        assert np.array_equal(rev[rev], np.arange(len(rev)))
        assert np.array_equal(neigh[rev], rows) and np.array_equal(rows[rev], neigh)
        assert np.array_equal(srid[slot[rev]], srid[slot])


def test_positions_changed_between_calls(models, rng):
    """Radial data are reused while positions stay, rebuilt when they move."""
    model = models["paper n_max 12"]
    fp = fast.fast_predictor(model)
    system = _system(6, rng)
    engine = fp.engine(system)
    system.set_directions(random_cone(len(system), [0, 0, 1], 0.5, rng))
    assert fp.engine(system) is engine                         # spins moved: same engine
    for step in range(3):                                      # spin-lattice-like moves
        system.positions += rng.normal(0.0, 0.03, system.positions.shape)
        out = fp.predict(system)
        assert fp.engine(system) is not engine
        engine = fp.engine(system)
        exact, floor = _extended(model, system)
        assert np.all(np.abs(out["energies"] - exact) <= 1e-10 * np.abs(exact).max() + 4 * floor)
        _close(out["fields"], model.predict(system, stds=False)["fields"])
    other = _system(2, rng)                                    # another structure
    _close(fp.predict(other)["fields"], model.predict(other, stds=False)["fields"])


def test_refit_invalidates(rng):
    model = _fit(n_max=6, n_sparse=10, frames=3)
    system = _system(2, rng)
    before = fast.predict(model, system)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.add_frames(generate_set("thermal_1000K", 3)[0][:2], n_new_sparse=[0, 0, 4])
    after = fast.predict(model, system)
    ref = model.predict(system, stds=False)
    assert np.abs(after["fields"] - before["fields"]).max() > 1e-8
    _close(after["fields"], ref["fields"])


def test_unsupported_models_fall_back(models, rng):
    model = models["paper n_max 12"]
    assert fast.supports(model)
    settings = MODEL.validate({"descriptor": {"n_max": 4, "dipole_2b": {}},
                               "optimise": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        composite = build_model(settings).fit(generate_set("thermal_300K", 7)[0][:3])
    assert not fast.supports(composite) and fast.fast_predictor(composite) is None
    system = _system(2, rng)
    ref = composite.predict(system, stds=False)
    np.testing.assert_array_equal(fast.predict(composite, system)["fields"], ref["fields"])
    provider = make_provider(composite, system)
    assert isinstance(provider, ComputeProvider) and provider._engine() is None
    out = np.empty((len(system), 3))
    provider.field(np.ascontiguousarray(system.directions), out)
    np.testing.assert_array_equal(out, ref["fields"] / MU_B)


def test_provider_fields_and_energy(models, rng):
    """The LLG provider of a supported model runs the engine and equals model.predict
    (fields in T with the external field, energy with Zeeman)."""
    model = models["defaults n_max 20"]
    system = _system(2, rng)
    field = np.array([0.0, 0.5, 1.0])
    provider = make_provider(model, system, field)
    assert provider._engine() is not None
    probe = system.copy()
    for _ in range(3):
        e = np.ascontiguousarray(random_cone(len(system), [0, 0, 1], 0.7, rng))
        probe.directions = e
        ref = model.predict(probe, stds=False)
        out = np.empty((len(system), 3))
        provider.field(e, out)
        _close(out, ref["fields"] / MU_B + field)
        zeeman = MU_B * np.einsum("i,ik,k->", system.magnitudes, e, field)
        assert provider.energy(e) == pytest.approx(ref["energy"] - zeeman, rel=1e-10)
        assert np.isfinite(provider.spin_temperature(e))


def _check_stds_on_the_engine(model, rng):
    """fast stds (the engine's descriptors) equal model.compute's to 1e-8 for every std
    property and subsets (the variances cancel between kernel blocks, whose weights
    span their spaces here: the descriptors' rounding comes back as 1e-10-1.5e-9), in a
    training cell (2³) and another (3³: the structure transfer of κ²), spins in a cone and
    over the sphere, displaced positions included; the provider's check (energy, fields
    and the epistemic std at once) gives the model's σ without a descriptor pass of the
    model."""
    from otf_spin.calculator import ENERGY, FIELDS, FIELDS_STD_EPISTEMIC, STD_PROPERTIES

    fp = fast.fast_predictor(model)
    for repeat, displaced, cone in ((2, 0.0, 0.8), (2, 0.0, np.pi), (3, 0.0, 0.8),
                                    (2, 0.08, 0.8)):
        system = _system(repeat, rng, displaced, cone)
        for props in (STD_PROPERTIES, (FIELDS_STD_EPISTEMIC,), ("energy_std",)):
            ref = model.compute(system, props)
            out = fp.stds(system, props)
            assert set(out) == set(props)
            for p in props:
                _close(out[p], ref[p], 1e-8)
    system = _system(2, rng)
    provider = ComputeProvider(model, system)
    e = np.ascontiguousarray(random_cone(len(system), [0, 0, 1], 0.9, rng))
    probe = system.copy()
    probe.directions = e
    ref = model.compute(probe, (FIELDS_STD_EPISTEMIC,))[FIELDS_STD_EPISTEMIC]
    provider.compute(e)                       # the engine and the FM rows, as in a run
    compute = model.descriptor.compute
    model.descriptor.compute = None           # a model descriptor pass would fail now
    try:
        out = provider.compute(e, (ENERGY, FIELDS, FIELDS_STD_EPISTEMIC))
    finally:
        model.descriptor.compute = compute
    _close(out[FIELDS_STD_EPISTEMIC], ref, 1e-8)
    _close(out[FIELDS], model.predict(probe, stds=False)[FIELDS])


@pytest.mark.parametrize("name", ["defaults n_max 20", "normalised, masked"])
def test_stds_on_the_engine(models, name, rng):
    _check_stds_on_the_engine(models[name], rng)


def test_providers_on_two_structures_share_one_predictor(models, rng):
    """Two providers of one model on different structures (each keeps its engine) use
    the one FastPredictor of the model without rebuilding: the engines and FM
    descriptors stay the same objects while the providers alternate, and each check's
    σ equals model.compute's."""
    from otf_spin.calculator import ENERGY, FIELDS, FIELDS_STD_EPISTEMIC

    model = models["defaults n_max 20"]
    fp = fast.fast_predictor(model)
    systems = [_system(2, rng), _system(3, rng)]
    providers = [ComputeProvider(model, s) for s in systems]
    seen = {}
    for _ in range(2):
        for k, (provider, system) in enumerate(zip(providers, systems)):
            e = np.ascontiguousarray(random_cone(len(system), [0, 0, 1], 0.9, rng))
            out = provider.compute(e, (ENERGY, FIELDS, FIELDS_STD_EPISTEMIC))
            probe = system.copy()
            probe.directions = e
            _close(out[FIELDS_STD_EPISTEMIC],
                   model.compute(probe, (FIELDS_STD_EPISTEMIC,))[FIELDS_STD_EPISTEMIC], 1e-8)
            now = (fp.engine(system), fp.fm_descriptors(system))
            assert all(a is b for a, b in zip(seen.setdefault(k, now), now))
    assert not fp.fm_descriptors(systems[0]).flags.writeable
    # large structures are not hoarded: past STRUCTURE_ATOMS only the newest is kept
    limit = fast.STRUCTURE_ATOMS
    try:
        fast.STRUCTURE_ATOMS = len(systems[1])
        fp.engine(_system(3, rng, displaced=0.01))     # a new structure of 54 atoms
        assert len(fp._structures) == 1
        fast.STRUCTURE_ATOMS = limit
        fp.engine(systems[0])
        assert len(fp._structures) == 2
    finally:
        fast.STRUCTURE_ATOMS = limit


def test_provider_adds_stds_to_the_prediction_it_made(models, rng):
    """A std asked after another at the same directions is added to the provider's last
    prediction (the same energy and fields, not a second evaluation) and equals
    model.compute's; new directions get a new prediction."""
    from otf_spin.calculator import ENERGY, FIELDS, FIELDS_STD, FIELDS_STD_EPISTEMIC

    model = models["defaults n_max 20"]
    system = _system(2, rng)
    provider = ComputeProvider(model, system)
    e = np.ascontiguousarray(random_cone(len(system), [0, 0, 1], 0.9, rng))
    first = provider.compute(e, (ENERGY, FIELDS, FIELDS_STD_EPISTEMIC))
    tesla = first["fields_tesla"]
    second = provider.compute(e, (ENERGY, FIELDS, FIELDS_STD))
    assert second["fields_tesla"] is tesla and FIELDS_STD_EPISTEMIC in second
    probe = system.copy()
    probe.directions = e
    _close(second[FIELDS_STD], model.compute(probe, (FIELDS_STD,))[FIELDS_STD], 1e-8)
    other = np.ascontiguousarray(random_cone(len(system), [0, 0, 1], 0.9, rng))
    assert provider.compute(other, (ENERGY, FIELDS, FIELDS_STD))["fields_tesla"] is not tesla


def test_uncalibrated_stds_on_the_engine(rng):
    """A model of 2 frames (the on-the-fly loop's first model: no calibration below 3
    frames, so σ is the exact posterior field variance from the design columns) gives
    the same stds on the engine's descriptors as model.compute."""
    model = _fit(n_max=8, frames=2)
    assert "std_field_local" not in model.hyper
    _check_stds_on_the_engine(model, rng)


@pytest.mark.parametrize("name", ["paper n_max 12", "normalised, masked"])
def test_model_monte_carlo_on_the_engine(models, name, rng):
    """The compiled sweep makes the same decisions as the numpy local-update sweep (same
    draws), and as the twin (ΔE from total energies)."""
    _check_monte_carlo(models[name], _system(2, rng))


def _check_monte_carlo(model, system):
    """:func:`test_model_monte_carlo_on_the_engine` on ``model`` and ``system``."""
    from otf_spin.dynamics.montecarlo import ModelMonteCarlo, new_state

    runs = []
    for fast_path in (True, False):
        mc = ModelMonteCarlo(model, system, field_tesla=(0.0, 0.0, 2.0), fast=fast_path)
        assert (mc.engine is not None) == fast_path
        state = new_state(system, 11, sigma=0.6)
        ratios = [mc.sweep(state, 300.0) for _ in range(4)]
        runs.append((state.directions.copy(), ratios))
        if fast_path:       # descriptors updated move by move equal a fresh computation
            probe = system.copy()
            probe.directions = state.directions.copy()
            perm = fast.fast_predictor(model).perm     # the engine's columns (no spline)
            np.testing.assert_allclose(mc.engine.d_array,
                                       model.descriptor.compute(probe)[:, perm], atol=1e-12)
    np.testing.assert_allclose(runs[0][0], runs[1][0], atol=1e-12)
    assert runs[0][1] == runs[1][1] and 0.05 < np.mean(runs[0][1]) < 0.95
    # the twin's sweep (ΔE from total energies) on the same draws
    twin = fast.FastPredictor(model, kernel=kernels.twin("gap")).engine(system)
    compiled = fast.fast_predictor(model).engine(system)
    zeeman = np.ascontiguousarray(system.magnitudes[:, None] * MU_B * np.array([0, 0, 2.0]))
    e1, e2 = (np.ascontiguousarray(system.directions.copy()) for _ in range(2))
    draws = np.random.default_rng(3)
    for _ in range(2):
        gauss, uniform = draws.standard_normal((len(system), 3)), draws.random(len(system))
        a = compiled.metropolis_sweep(e1, 1.0 / (8.617e-5 * 300), 0.6, gauss, uniform, zeeman)
        b = twin.metropolis_sweep(e2, 1.0 / (8.617e-5 * 300), 0.6, gauss, uniform, zeeman)
        assert a == b
    np.testing.assert_allclose(e1, e2, atol=1e-12)


@pytest.mark.parametrize("n_max, displaced, free, angle",
                         [(6, 0.03, False, False), (12, 0.0, False, False),
                          (12, 0.0, True, False), (12, 0.0, False, True),
                          (6, 0.03, False, True), (6, 0.03, False, "spline"),
                          (12, 0.0, False, "spline+angle")])
def test_threads_give_the_same_numbers(tmp_path, n_max, displaced, free, angle):
    """686 atoms (above the serial threshold) on 1 and 2 OpenMP threads: the same fields
    and energies as model.predict (per-thread scratch and scatter buffers), and as each
    other. Displaced with n_max 6: the full-descriptor passes; on the lattice with n_max
    12 (9 shells < n_max): the shell basis, whose one-visit pair passes add straight
    into the rows of each thread's own atom range and into a per-range copy for the
    rows beyond it (the ends j > i of pairs that cross a range boundary), and whose
    blocks (256 atoms) run on the threads; free: the lattice without periodic boundaries
    (shell basis, atoms of many FM environments); angle: a model with the angle term
    (its pairs' field in the one-visit field pass, its rows per block);
    "spline", "spline+angle": the spline term's pair couplings (full passes displaced,
    the shell pipeline on the lattice). The shell cases run on 3 threads too (two
    ranges with copies); the one-visit passes' atom ranges cover all atoms in order,
    each with at most its share of the work plus one atom's. An evaluation at other
    directions comes first (the copies must be summed and cleared by each)."""
    import subprocess
    import sys

    fit = {False: "_fit", True: "_fit_angle", "spline": "_fit_spline",
           "spline+angle": "functools.partial(_fit_spline, angle=True)"}[angle]
    code = (
        "import functools, json, os, warnings, sys, numpy as np\n"
        "sys.path.insert(0, %r)\n"
        "from test_fast_predict import _fit, _fit_angle, _fit_spline, _system\n"
        "from otf_spin.model import fast\n"
        f"model = {fit}(n_max={n_max}, n_sparse=10, frames=3)\n"
        f"system = _system(7, np.random.default_rng(2), {displaced})\n"
        f"system.pbc[:] = {not free}\n"
        "assert fast.fast_predictor(model).engine(system).shell == "
        f"{displaced == 0.0}\n"
        "ref = model.predict(system, stds=False)\n"
        "other = system.copy()\n"        # an evaluation before: the per-thread copies
        "other.directions = -system.directions[::-1].copy()\n"    # must be left zeroed
        "fast.predict(model, other)\n"
        "out = fast.predict(model, system)\n"
        "engine = fast.fast_predictor(model).engine(system)\n"
        "threads = int(os.environ['OMP_NUM_THREADS'])\n"
        "for nt in range(1, threads + 1):\n"
        "    part, work = engine.ranges(nt)\n"
        "    assert part[0] == 0 and part[-1] == len(system) and np.all(np.diff(part) >= 0)\n"
        "    share = work[part[1:]] - work[part[:-1]]\n"
        "    assert share.max() <= work[-1] / nt + np.diff(work).max(), (nt, share)\n"
        "np.savez(sys.argv[1], **out)\n"
        "print(json.dumps([float(np.abs(out[k] - ref[k]).max() / np.abs(ref[k]).max())"
        " for k in ('fields', 'energies')]))\n") % os.path.dirname(os.path.abspath(__file__))
    runs = []
    for threads in ("1", "2") if displaced else ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        path = str(tmp_path / f"out{threads}.npz")
        out = subprocess.run([sys.executable, "-c", code, path], env=env,
                             capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        fields, energies = json.loads(out.stdout.strip().splitlines()[-1])
        assert fields < 1e-10 and energies < 1e-8, (threads, fields, energies)
        runs.append(np.load(path))
    for run in runs[1:]:
        _close(run["fields"], runs[0]["fields"], 1e-12)
        _close(run["energies"], runs[0]["energies"], 1e-10)


def test_shell_basis_free_cluster(models, rng):
    """A cluster (no periodic boundaries, 250 atoms): the shell basis with atoms of
    many FM environments (their FM products kept once per distinct row) equals
    model.predict to 1e-10; FM exactly 0."""
    model = models["paper n_max 12"]
    system = _system(5, rng)
    system.pbc[:] = False
    fp = fast.FastPredictor(model)
    assert fp.engine(system).shell
    _assert_parity(model, system, fp)


def test_distinct_rows():
    """The FM-product table of the compiled engine: table[index] equals the rows bit for
    bit (0.0 and -0.0 kept apart), one entry per distinct row, first occurrences."""
    distinct = kernels.compiled("gap", required=True)._distinct_rows
    rng = np.random.default_rng(4)
    base = rng.normal(size=(5, 7))
    base[3] = base[2]
    base[3, 1] = -0.0 if base[2, 1] == 0.0 else base[2, 1] * (1 + 2**-52)
    rows = base[rng.integers(0, 5, size=200)]
    table, index = distinct(rows)
    assert index.dtype == np.int32 and len(table) == len(np.unique(rows, axis=0))
    assert np.array_equal(table[index].view(np.uint64), rows.view(np.uint64))
    zeros = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0]])
    table, index = distinct(zeros)
    assert len(table) == 2 and list(index) == [index[0], index[1], index[0]]
    assert np.array_equal(table[index].view(np.uint64), zeros.view(np.uint64))
    table, index = distinct(np.zeros((3, 0)))
    assert list(index) == [0, 0, 0]


def _assert_parity(model, system, *predictors):
    """Each fast predictor's energies equal the extended-precision ones and
    model.predict's to 1e-10 (plus the rounding floor), its fields model.predict's to
    1e-10, and the FM state gives exactly 0 on every atom."""
    ref = model.predict(system, stds=False)
    exact, floor = _extended(model, system)
    tol = 1e-10 * np.abs(exact).max() + 4 * floor
    fm = system.copy()
    fm.set_directions(np.tile([0.0, 0.0, 1.0], (len(fm), 1)))
    for fp in predictors:
        out = fp.predict(system)
        assert np.all(np.abs(out["energies"] - exact) <= tol)
        assert np.all(np.abs(out["energies"] - ref["energies"]) <= tol)
        _close(out["fields"], ref["fields"])
        assert np.all(fp.predict(fm)["energies"] == 0.0)


def _forced(model, shell):
    """A FastPredictor whose compiled engines take the shell basis or not (``shell``)."""
    compiled = kernels.compiled("gap", required=True)
    return fast.FastPredictor(model, kernel=types.SimpleNamespace(
        compress_pairs=compiled.compress_pairs, slot_sums=compiled.slot_sums,
        GapEngine=functools.partial(compiled.GapEngine, shell=shell)))


def test_shell_basis_equals_full_descriptors(models, rng):
    """Products in the shell basis (X·Sr plus the kept FM products) and on the full
    descriptors: both equal model.predict to 1e-10 (they differ by rounding, which
    these models' cancelling linear weights amplify to ~1e-10 of the fields), FM
    exactly 0, and the automatic choice (unnormalised kernels, fewer radial rows than
    n_max)."""
    # (the n_max 8 model at 6³ cells, 9 radial rows ≥ n_max, where the automatic choice
    # takes the full descriptors, sits at that floor: 1.1e-10 forced, 0.6e-10 full)
    cases = {"defaults n_max 20": ((2, 0.0), (3, 0.0), (3, 0.08), (6, 0.0)),
             "zeta 2 masked": ((2, 0.0), (3, 0.0), (3, 0.08))}
    for name, cells in cases.items():
        model = models[name]
        for repeat, displaced in cells:
            system = _system(repeat, rng, displaced)
            full, shell = _forced(model, False), _forced(model, True)
            assert shell.engine(system).shell and not full.engine(system).shell
            _assert_parity(model, system, full, shell)          # both to 1e-10
    automatic = fast.fast_predictor(models["defaults n_max 20"])
    for repeat in (2, 3, 6):                  # 4, 6 and 9 radial rows < n_max 20
        assert automatic.engine(_system(repeat, rng)).shell
    assert not automatic.engine(_system(3, rng, 0.08)).shell   # displaced: rows > n_max
    assert not fast.fast_predictor(models["normalised, masked"]).engine(_system(3, rng)).shell
    with pytest.raises(ValueError, match="unnormalised"):
        _forced(models["normalised, masked"], True).engine(_system(2, rng))


# --- models with the angle exchange term ----------------------------------------------

ANGLE_MODELS = {
    "angle, defaults n_max 20": dict(n_max=20),
    "angle, k_max 8 (recursion)": dict(n_max=12, k_max=8),
    "angle, l_max 8 (full descriptors)": dict(n_max=12, l_max=8, n_sparse=15),
    "angle, normalised": dict(normalize=True),
}


@pytest.fixture(scope="module")
def angle_models():
    return {name: _fit_angle(**kw) for name, kw in ANGLE_MODELS.items()}


def test_angle_model_is_what_the_selection_builds(angle_models):
    """The fitted angle model holds what `otf-spin train` chooses on Eq. 41 sets: the
    composite [exchange-2b; angle] descriptor, linear l = 1 and l ≥ 2 kernels, the ζ = 4
    kernel over both blocks, a linear kernel on the angle block; fast supports it."""
    model = angle_models["angle, defaults n_max 20"]
    assert model.descriptor.kinds == ["exchange_2b", "exchange_2b_angle"]
    soso, angle = model.descriptor.slices
    assert [k.zeta for k in model.kernels] == [1, 1, 4, 1]
    assert np.all(model.kernels[2].mask == 1.0)             # with_terms: both blocks
    assert np.all(model.kernels[3].mask[angle] == 1.0) and not model.kernels[3].mask[soso].any()
    assert fast.supports(model)


@pytest.mark.parametrize("name", list(ANGLE_MODELS))
def test_angle_fast_equals_predict(angle_models, name, rng):
    """Perfect and displaced cells (images merged in 2³ and 3³ cells, the compiled
    compression in 6³), spins in a cone and over the whole sphere: energies and fields
    equal model.predict to 1e-10, FM exactly 0; the shell basis on the lattice where
    the model allows it."""
    model = angle_models[name]
    fp = fast.fast_predictor(model)
    shell = name in ("angle, defaults n_max 20", "angle, k_max 8 (recursion)")
    for repeat, displaced, cone in ((2, 0.0, 0.8), (3, 0.0, np.pi), (3, 0.08, 0.8),
                                    (2, 0.1, np.pi), (6, 0.0, 0.8), (6, 0.05, np.pi)):
        system = _system(repeat, rng, displaced, cone)
        assert fp.engine(system).shell == (shell and displaced == 0.0)
        _assert_parity(model, system, fp)


def _groups(system, rng, *axes):
    """``system`` with atom k's direction axes[k % len(axes)] exactly (unit vectors):
    pairs of one group exactly parallel."""
    out = system.copy()
    axes = [np.asarray(a, float) / np.linalg.norm(a) for a in axes]
    out.set_directions(np.array([axes[k % len(axes)] for k in range(len(out))]))
    return out


@pytest.mark.parametrize("name", ["angle, defaults n_max 20", "angle, k_max 8 (recursion)"])
def test_angle_parallel_and_antiparallel_pairs(angle_models, name, rng):
    """Where the angle term has its cusp (θ → 0) and at θ → π: spins within 1e-6 rad of
    FM and of the bcc antiferromagnet, and exactly parallel or antiparallel pairs
    (sin θ = 0: angle2b's guard gives the pair no gradient) next to pairs that are not:
    energies and fields equal model.predict to 1e-10."""
    model = angle_models[name]
    fp = fast.fast_predictor(model)
    base = _system(3, rng)
    afm = base.copy()                       # the two simple-cubic sublattices of bcc
    sub = np.arange(len(afm)) % 2           # bulk lists the corner atom, then the centre
    cases = {"near FM": random_cone(len(base), [0, 0, 1], 1e-6, rng),
             "near AFM": np.where(sub[:, None] == 0, 1.0, -1.0)
             * random_cone(len(base), [0, 0, 1], 1e-6, rng)}
    for label, e in cases.items():
        system = base.copy()
        system.set_directions(e)
        _assert_parity(model, system, fp)
    # exact: atoms in three groups, each sharing one direction bit for bit (a third of
    # the pairs exactly parallel); and the exact AFM plus one group (antiparallel pairs)
    for axes in (([0, 0, 1], [0.3, 0.1, 0.9], [-0.2, 0.5, 0.6]),
                 ([0, 0, 1], [0, 0, -1], [0.4, 0.0, 0.9])):
        system = _groups(base, rng, *axes)
        e = system.directions
        c = np.einsum("ik,jk->ij", e, e)
        assert np.any(np.abs(c) == 1.0) and np.any(np.abs(c) < 0.99)
        _assert_parity(model, system, fp)
    # the exact antiferromagnet: every pair parallel or antiparallel, no field at all
    system = _groups(afm, rng, [0, 0, 1], [0, 0, -1])
    ref = model.predict(system, stds=False)
    out = fp.predict(system)
    _close(out["energies"], ref["energies"])
    assert np.all(out["fields"] == 0.0) and np.abs(ref["fields"]).max() < 1e-12


def _check_twin(model, rng, fields_rel=1e-12):
    """The compiled engine of ``model`` against the pure-Python twin on a 2³ lattice
    cell and a displaced 3³ cell: energies (1e-12 above the rounding floor), fields (to
    ``fields_rel``), and the descriptors of the engine's columns (to 1e-14; to 1e-12
    against the model's). Returns the compiled engine's last descriptors (model layout,
    NaN where the engine forms none)."""
    compiled = kernels.compiled("gap", required=True)
    a = fast.FastPredictor(model, kernel=compiled)
    b = fast.FastPredictor(model, kernel=kernels.twin("gap"))
    for repeat, displaced, cone in ((2, 0.0, 0.8), (3, 0.1, np.pi)):
        system = _system(repeat, rng, displaced, cone)
        pa, pb = a.predict(system), b.predict(system)
        floor = _extended(model, system)[1]
        assert np.all(np.abs(pa["energies"] - pb["energies"]) <=
                      1e-12 * np.abs(pb["energies"]).max() + 4 * floor)
        _close(pa["fields"], pb["fields"], fields_rel)
        da, db = a.descriptors(system), b.descriptors(system)
        formed = ~np.isnan(da[0])
        assert np.array_equal(formed, ~np.isnan(db[0]))
        _close(da[:, formed], db[:, formed], 1e-14)
        _close(da[:, formed], model.descriptor.compute(system)[:, formed], 1e-12)
    return da


def test_angle_stds_on_the_engine(angle_models, rng):
    _check_stds_on_the_engine(angle_models["angle, defaults n_max 20"], rng)


def test_angle_compiled_matches_twin(angle_models, rng):
    """The compiled engine (shell basis and full descriptors, power basis and recursion)
    against the pure-Python twin: energies, fields, descriptors."""
    for name in ("angle, defaults n_max 20", "angle, k_max 8 (recursion)",
                 "angle, normalised"):
        assert not np.isnan(_check_twin(angle_models[name], rng)).any()


def test_angle_shell_basis_equals_full_descriptors(angle_models, rng):
    """The shell-basis pipeline (angle rows per block, Ya·Saᵀ added to the products)
    and the full-descriptor passes both equal model.predict; the shell basis is refused
    where the angle block needs the recursion of exchange-2b (l_max > 6)."""
    model = angle_models["angle, defaults n_max 20"]
    for repeat in (2, 3, 6):
        system = _system(repeat, rng, 0.0, np.pi)
        full, shell = _forced(model, False), _forced(model, True)
        assert shell.engine(system).shell and not full.engine(system).shell
        _assert_parity(model, system, full, shell)
    with pytest.raises(ValueError, match="angle block"):
        _forced(angle_models["angle, l_max 8 (full descriptors)"], True).engine(_system(2, rng))


def _check_rebuild(model, rng, a_strained):
    """Spins moving keep the engine of ``model`` (6³ cells); positions moving (two
    displacements, then a strain to the lattice constant ``a_strained``) rebuild it, and
    the rebuilt engine equals model.predict where the stale one does not (so this fails
    if the cache outlives the positions). Returns the engines (before, after) of the
    strain."""
    fp = fast.fast_predictor(model)
    system = _system(6, rng)
    engine = fp.engine(system)
    system.set_directions(random_cone(len(system), [0, 0, 1], 0.5, rng))
    assert fp.engine(system) is engine
    e = np.ascontiguousarray(system.directions)
    scale = -1.0 / system.magnitudes
    for move in ("displace", "displace", "strain"):
        if move == "strain":
            system.positions *= a_strained / 2.83
            system.cell *= a_strained / 2.83
        else:
            system.positions += rng.normal(0.0, 0.03, system.positions.shape)
        ref = model.predict(system, stds=False)
        stale = np.empty((len(system), 3))
        engine.field(e, scale, np.zeros(3), stale)
        assert np.abs(stale - ref["fields"]).max() > 1e-6 * np.abs(ref["fields"]).max()
        _assert_parity(model, system, fp)
        assert fp.engine(system) is not engine
        engine, before = fp.engine(system), engine
    return before, engine


def test_angle_positions_changed_between_calls(angle_models, rng):
    """:func:`_check_rebuild` with a strain that brings the fourth bcc shell, 4.69 Å at
    a = 2.83, inside the angle term's 4.5 Å: the rebuilt engine has more angle pairs."""
    before, after = _check_rebuild(angle_models["angle, defaults n_max 20"], rng, 2.70)
    assert after.a_slots > before.a_slots


def _check_monte_carlo_and_provider(model, system, rng):
    """:func:`_check_monte_carlo`, and the LLG provider of ``model`` runs the engine and
    equals model.predict (fields in T with an external field)."""
    _check_monte_carlo(model, system)
    provider = make_provider(model, system, np.array([0.0, 0.5, 1.0]))
    assert provider._engine() is not None
    e = np.ascontiguousarray(random_cone(len(system), [0, 0, 1], 0.7, rng))
    probe = system.copy()
    probe.directions = e
    out = np.empty((len(system), 3))
    provider.field(e, out)
    _close(out, model.predict(probe, stds=False)["fields"] / MU_B + [0.0, 0.5, 1.0])


def test_angle_model_monte_carlo_and_provider(angle_models, rng):
    """The compiled Metropolis sweep with the angle block (its descriptors updated move
    by move) decides as the numpy sweep and the twin; the LLG provider runs the engine
    and equals model.predict."""
    _check_monte_carlo_and_provider(angle_models["angle, defaults n_max 20"], _system(2, rng),
                                    rng)


# --- models with the B-spline exchange term -------------------------------------------

def _fit_spline(n_max=8, angle=False, spline=None, **kw):
    """A model with the spline term as the term selection builds it (a linear kernel of
    its own, not joined to the ζ = 4 kernel), with the angle term too if ``angle`` (the
    selection's "all gains" candidate), fitted on displaced frames (set c1: every pair
    distance differs, as where the selection adds the term); ``spline``: settings that
    replace the term's defaults."""
    terms = ("exchange_2b_spline", "exchange_2b_angle") if angle else ("exchange_2b_spline",)
    return _fit_terms(terms, n_max, data="displaced_0.07", exchange_2b_spline=spline or {},
                      **kw)


SPLINE_MODELS = {
    "spline, defaults n_max 20": dict(n_max=20),
    "spline + angle, defaults n_max 20": dict(n_max=20, angle=True),
    # spin widths unlike exchange-2b's 0.3: the couplings take the spline's own w_l
    "spline l_max 6, σ_s 0.5, paper n_max 12": dict(n_max=12, spline={"l_max": 6,
                                                                     "sigma_s": 0.5}),
    "spline, l_max 8 (recursion), σ_s 0.2": dict(n_max=12, l_max=8, n_sparse=15,
                                                 spline={"l_max": 8, "sigma_s": 0.2}),
    "spline, normalised": dict(normalize=True),
}


@pytest.fixture(scope="module")
def spline_models():
    return {name: _fit_spline(**kw) for name, kw in SPLINE_MODELS.items()}


def _without_couplings(model):
    """A FastPredictor of ``model`` whose spline couplings are zeroed: what the engine
    gives when the spline term is left out (the tests show that it is then wrong)."""
    fp = fast.FastPredictor(model)
    fp.kweights = np.zeros_like(fp.kweights)
    return fp


def test_spline_model_is_what_the_selection_builds(spline_models):
    """The fitted spline models hold what `otf-spin train` chooses on displaced sets:
    [exchange-2b; spline] (and the angle block), the exchange-2b kernels with the ζ = 4
    kernel blind to the spline block, a linear kernel on the spline block; fast
    supports them, and the spline's couplings matter (leaving them out moves the
    fields by far more than 1e-10)."""
    model = spline_models["spline, defaults n_max 20"]
    assert model.descriptor.kinds == ["exchange_2b", "exchange_2b_spline"]
    soso, spline = model.descriptor.slices
    assert [(k.zeta, k.normalize) for k in model.kernels] == [(1, False), (1, False),
                                                               (4, False), (1, False)]
    assert not model.kernels[2].mask[spline].any()
    assert np.all(model.kernels[3].mask[spline] == 1.0) and not model.kernels[3].mask[soso].any()
    both = spline_models["spline + angle, defaults n_max 20"]
    assert both.descriptor.kinds == ["exchange_2b", "exchange_2b_spline", "exchange_2b_angle"]
    assert not both.kernels[2].mask[both.descriptor.slices[1]].any()
    assert np.all(both.kernels[2].mask[both.descriptor.slices[2]] == 1.0)
    system = _system(3, np.random.default_rng(8), 0.08)
    for m in spline_models.values():
        assert fast.supports(m)
        ref = m.predict(system, stds=False)["fields"]
        off = _without_couplings(m).predict(system)["fields"]
        assert np.abs(off - ref).max() > 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("name", list(SPLINE_MODELS))
def test_spline_fast_equals_predict(spline_models, name, rng):
    """Perfect and displaced cells (pair distances that vary: every pair its own
    couplings; images merged in 2³ and 3³ cells, the compiled compression in 6³), spins
    in a cone, over the sphere and within 1e-5 rad of FM: energies and fields equal
    model.predict (and energies the long-double evaluation) to 1e-10; the FM state gives
    exactly 0 energy and no field; the shell basis on the lattice where the model allows
    it. (Closer to FM the transverse field is the difference g - (g·e)e of an O(1)
    gradient, whose float64 floor ε|g| reaches 1e-10 of the field at ~1e-6 rad in both
    paths.)"""
    model = spline_models[name]
    fp = fast.fast_predictor(model)
    shell = name != "spline, normalised"        # on the lattice: rows U < n_max
    for repeat, displaced, cone in ((2, 0.0, 0.8), (3, 0.0, np.pi), (3, 0.08, 0.8),
                                    (2, 0.1, np.pi), (6, 0.0, 0.8), (6, 0.05, np.pi),
                                    (3, 0.05, 1e-5)):
        system = _system(repeat, rng, displaced, cone)
        assert fp.engine(system).shell == (shell and displaced == 0.0)
        _assert_parity(model, system, fp)
        fm = system.copy()
        fm.set_directions(np.tile([0.0, 0.0, 1.0], (len(fm), 1)))
        assert np.all(fp.predict(fm)["fields"] == 0.0)


def test_spline_stds_on_the_engine(spline_models, rng):
    _check_stds_on_the_engine(spline_models["spline + angle, defaults n_max 20"], rng)


def test_spline_compiled_matches_twin(spline_models, rng):
    """The compiled engine (shell pipeline, full descriptors, recursion; with and
    without the angle block) against the pure-Python twin: energies, fields, and the
    descriptors of the engine's columns (the spline block is not formed: NaN). Fields
    to 1e-11: on the 2³ lattice the fitted linear weights cancel, and the two sum in
    different orders (measured up to 1.6e-12 apart)."""
    for name in SPLINE_MODELS:
        model = spline_models[name]
        formed = ~np.isnan(_check_twin(model, rng, 1e-11)[0])
        spline = model.descriptor.slices[1]
        assert not formed[spline].any()
        formed[spline] = True
        assert formed.all()


def test_spline_shell_basis_equals_full_descriptors(spline_models, rng):
    """The couplings in the shell-basis pipeline (slot rows and their field rows Q), in
    the shell basis with the recursion (l_max 8), and on the full descriptors: all equal
    model.predict to 1e-10, FM exactly 0."""
    for name in ("spline, defaults n_max 20", "spline + angle, defaults n_max 20",
                 "spline, l_max 8 (recursion), σ_s 0.2"):
        model = spline_models[name]
        for repeat in (2, 3):
            system = _system(repeat, rng, 0.0, np.pi)
            full, shell = _forced(model, False), _forced(model, True)
            assert shell.engine(system).shell and not full.engine(system).shell
            _assert_parity(model, system, full, shell)


def test_spline_positions_changed_between_calls(spline_models, rng):
    """:func:`_check_rebuild` for the spline couplings (rebuilt per structure with the
    radial rows): displacements, then a strain to a = 2.40 Å that brings the sixth bcc
    shell (2a: 5.66 Å at a = 2.83) inside the spline's 5 Å."""
    _check_rebuild(spline_models["spline + angle, defaults n_max 20"], rng, 2.40)


def test_spline_model_monte_carlo_and_provider(spline_models, rng):
    """The compiled Metropolis sweep with the couplings in ΔE decides as the numpy sweep
    and the twin, on a displaced cell, with and without the angle block; the LLG
    provider runs the engine and equals model.predict."""
    for name in ("spline, defaults n_max 20", "spline + angle, defaults n_max 20"):
        _check_monte_carlo_and_provider(spline_models[name], _system(2, rng, 0.05), rng)


def test_spline_models_the_engine_cannot_fold_fall_back(rng):
    """A spline block inside the nonlinear ζ = 4 kernel (with_terms), a spline l_max above
    exchange-2b's, a spline r_max beyond exchange-2b's r_c: not supported, and
    fast.predict gives model.predict's numbers."""
    base = default_settings()
    base["descriptor"].update(n_max=6, l_max=2)
    base["optimise"] = False
    base = thaw(candidate_settings(base, ("exchange_2b_spline",)))
    joined, orders, reach = thaw(base), thaw(base), thaw(base)
    joined["kernels"][2]["with_terms"] = ["exchange_2b_spline"]
    orders["descriptor"]["exchange_2b_spline"]["l_max"] = 3
    reach["descriptor"]["r_cut"] = 4.5
    system = _system(2, rng, 0.05)
    for settings in (joined, orders, reach):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(MODEL.validate(settings)).fit(
                generate_set("thermal_300K", 7)[0][:3])
        assert not fast.supports(model) and fast.fast_predictor(model) is None
        np.testing.assert_array_equal(fast.predict(model, system)["fields"],
                                      model.predict(system, stds=False)["fields"])


@pytest.mark.parametrize("n_max, scaling", [(20, (2.5, 4.0)), (40, None), (6, (3.0, 6.0))])
def test_radial_tables_equal_the_descriptor_radial(n_max, scaling, rng):
    """The engine's radial tables (compiled soso.radial_basis: sin((n+1)θ) by rotation,
    one sin and cos per pair) equal RadialPairs.radial's values to 1e-14 of the largest
    (distances from 0.3 Å to past r_c, exactly r_c included: 0 there), and the twin
    equals them bit for bit."""
    from otf_spin.descriptors.soso import SOSODescriptor
    from otf_spin.kernels import compiled, twin

    desc = SOSODescriptor(r_cut=7.0, n_max=n_max, radial_scaling=scaling)
    r = np.concatenate([rng.uniform(0.3, 7.5, 5000), [7.0, 7.0 - 1e-9, 6.9999]])
    ref = desc.radial(r)[0]
    got = desc.radial_values(r)
    assert np.abs(got - ref).max() < 1e-14 * np.abs(ref).max()
    assert np.all(got[r >= 7.0] == 0.0)
    rs, m = scaling or (0.0, 0.0)
    out = np.empty_like(ref)
    twin("soso").radial_basis(r, 7.0, rs, m, out)
    np.testing.assert_array_equal(out, ref)
    kernel = compiled("soso")
    if kernel is not None:
        kernel.radial_basis(r, 7.0, rs, m, out)
        np.testing.assert_array_equal(out, got)


def test_pair_angles_equal_arctan2(rng):
    """The engine's atan2 of its pair angles (gap.angles: Cephes' rational atan with the
    min/max and π/4 reductions, in place of libm's atan2) equals numpy's arctan2 — the
    twin — to 3e-16 relative over [0, π], within 1e-6 rad of 0 and of π and at 0, π/4,
    π/2, 3π/4, π; s = 0 gives exactly 0 (c > 0) and π (c < 0)."""
    from otf_spin.kernels import compiled, twin

    theta = np.concatenate([rng.uniform(0.0, np.pi, 200_000), rng.uniform(0.0, 1e-6, 1000),
                            np.pi - rng.uniform(0.0, 1e-6, 1000), np.arange(5) * np.pi / 4])
    s = np.append(np.abs(np.sin(theta)), [0.0, 0.0, 1.0, 0.3])
    c = np.append(np.cos(theta), [1.0, -1.0, 0.0, 0.3])
    ref = np.empty_like(s)
    twin("gap").angles(s, c, ref)
    np.testing.assert_array_equal(ref, np.arctan2(s, c))
    kernel = compiled("gap")
    if kernel is None:
        pytest.skip("the compiled gap kernel is not built")
    got = np.empty_like(s)
    kernel.angles(s, c, got)
    assert np.all(np.abs(got - ref) <= 3e-16 * ref)
    assert got[-4] == 0.0 and got[-3] == np.pi


def test_unordered_pair_angles_vectorised_loop(rng):
    """The engine's loop over the angle pairs (gap.unordered_angles: the gathers, then
    atan2 without branches in a loop the compiler vectorises, an AVX2 build chosen at
    load time where the CPU has it) equals its twin: 1/|e_i × e_j| bit for bit (0 below
    par_tol: parallel and antiparallel pairs), y = -2θ/π to 5e-16 relative (numpy's
    arctan2), and bit for bit the scalar atan2 of gap.angles — the same arithmetic
    whichever build runs, and whatever the loop's length (vector remainders)."""
    from otf_spin.kernels import compiled, twin

    n = 400
    e = rng.normal(size=(n, 3))
    e[:20] = [0.0, 0.0, 1.0]                    # exactly parallel ...
    e[20:30] = [0.0, 0.0, -1.0]                 # ... and antiparallel pairs among them
    e[30:40] = e[40:50] + 1e-9 * rng.normal(size=(10, 3))     # nearly parallel
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    ui = rng.integers(0, n, 5003).astype(np.int32)
    uj = rng.integers(0, n, 5003).astype(np.int32)
    ui[:50], uj[:50] = np.arange(50) // 2, 25 + np.arange(50) % 25
    tol = 1e-8
    ref_y, ref_inv = np.empty(len(ui)), np.empty(len(ui))
    twin("gap").unordered_angles(e, ui, uj, tol, ref_y, ref_inv)
    assert np.any(ref_inv == 0.0) and np.all(ref_inv[ref_inv != 0] >= 1.0)
    kernel = compiled("gap")
    if kernel is None:
        pytest.skip("the compiled gap kernel is not built")
    for m in (len(ui), 7, 1, 0):          # remainders of the vector loop
        y, inv = np.full(m, np.nan), np.full(m, np.nan)
        kernel.unordered_angles(e, ui[:m], uj[:m], tol, y, inv)
        np.testing.assert_array_equal(inv, ref_inv[:m])
        # θ to 2.5e-16 (the atan2 test above), and each side's product with -2/π rounded
        assert np.all(np.abs(y - ref_y[:m]) <= 5e-16 * np.abs(ref_y[:m]))
        a, b = e[ui[:m]].T, e[uj[:m]].T
        nx, ny, nz = a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], \
            a[0] * b[1] - a[1] * b[0]
        s = np.sqrt((nx * nx + ny * ny) + nz * nz)
        c = (a[0] * b[0] + a[1] * b[1]) + a[2] * b[2]
        theta = np.empty(m)
        kernel.angles(s, c, theta)
        np.testing.assert_array_equal(y, -(2.0 / np.pi) * theta)


def _model_variances(model, system):
    """v_i (N,) of ``system`` under the variance posterior, solved directly
    (:func:`helpers.variance_posterior_v`) from the model's descriptors and kernel rows."""
    from helpers import variance_posterior_v

    return variance_posterior_v(model, model._local_rows(
        model.descriptor.compute(system), model.descriptor.compute_fm(system)))[0]


def _engine_variances(fp, system):
    """(energy, fields, v) of one engine evaluation with the variances, and (energy,
    fields) of one without, on ``fp``'s engine of ``system``."""
    e = np.ascontiguousarray(system.directions)
    scale, zero = -1.0 / system.magnitudes, np.zeros(3)
    plain = np.empty((len(system), 3))
    total = fp.engine(system).field(e, scale, zero, plain)
    fields = np.empty((len(system), 3))
    energy, v = fp.field_and_variances(system, e, scale, zero, fields)
    return (energy, fields, v), (total, plain)


@pytest.mark.parametrize("case", ["pipeline", "full descriptors", "shell recursion",
                                  "angle pipeline", "threads", "threads, full descriptors",
                                  "linear only"])
def test_engine_variances_in_the_evaluation_pass(models, angle_models, case, rng):
    """The engine's local-energy variances (made in the evaluation's own pass, from the
    operand rows of its products) equal the model's |r_i R⁻¹|² to 1e-9, compiled and
    twin alike, on every path of the engine (the shell-basis pipeline, full descriptors
    of displaced atoms, the shell basis with the Legendre recursion (l_max 8), the angle
    block, OpenMP threads on 686 atoms, perfect and displaced, a model of linear kernels
    only); energy and fields are bit for bit those of an evaluation without them, and the
    check's fields_std_epistemic is model.compute's."""
    from otf_spin.calculator import ENERGY, FIELDS, FIELDS_STD_EPISTEMIC

    model = {"angle pipeline": lambda: angle_models["angle, defaults n_max 20"],
             "linear only": lambda: models["linear only"],
             "shell recursion": lambda: _fit(n_max=8, l_max=8, n_sparse=15, frames=4)
             }.get(case, lambda: models["defaults n_max 20"])()
    repeat, displaced = {"full descriptors": (2, 0.08), "threads": (7, 0.0),
                         "threads, full descriptors": (7, 0.08)}.get(case, (2, 0.0))
    system = _system(repeat, rng, displaced, np.pi)
    shell = "full descriptors" not in case
    fp = _forced(model, shell)
    assert fp.fused_variances
    (energy, fields, v), (total, plain) = _engine_variances(fp, system)
    assert fp.engine(system).shell == shell
    assert energy == total and np.array_equal(fields, plain)
    ref = _model_variances(model, system)
    _close(v, ref, 1e-9)
    assert ref.min() > 0.0 and np.ptp(ref) > 0.1 * ref.max()    # atoms differ
    sizes = [len(S) for S in model.sparse]      # the variance posterior: the first 24
    assert (max(sizes) > model.hyper["std_variance_sparse"]) == \
        (case not in ("shell recursion", "linear only"))
    twin = fast.FastPredictor(model, kernel=kernels.twin("gap"))
    _close(_engine_variances(twin, system)[0][2], ref, 1e-9)
    provider = ComputeProvider(model, system)
    out = provider.compute(system.directions, (ENERGY, FIELDS, FIELDS_STD_EPISTEMIC))
    _close(out[FIELDS_STD_EPISTEMIC],
           model.compute(system, (FIELDS_STD_EPISTEMIC,))[FIELDS_STD_EPISTEMIC], 1e-8)


def test_engine_variances_need_their_posterior(models, rng):
    """Variances asked for before set_variance, or into an array of the wrong kind, are
    refused (compiled and twin); a refit installs the new posterior, a new calibration
    gives a new scale of the std; models whose σ is
    not the local-energy proxy (normalised kernels, uncalibrated) take the descriptor
    route."""
    model = models["defaults n_max 20"]
    system = _system(2, rng)
    e = np.ascontiguousarray(system.directions)
    for kernel in (kernels.compiled("gap", required=True), kernels.twin("gap")):
        engine = fast.FastPredictor(model, kernel=kernel).engine(system)
        args = (e, -1.0 / system.magnitudes, np.zeros(3), np.empty((len(system), 3)))
        with pytest.raises(ValueError, match="before set_variance"):
            engine.field(*args, np.empty(len(system)))
        fp = fast.FastPredictor(model, kernel=kernel)
        fp.field_and_variances(system, *args)
        with pytest.raises(ValueError, match="variances"):
            fp.engine(system).field(*args, np.empty(len(system), dtype=np.float32))
        with pytest.raises(ValueError, match="Sv"):
            fp.engine(system).set_variance(np.zeros((3, 5)), [0, 3], [1], np.eye(3))
    assert not fast.FastPredictor(models["normalised, masked"]).fused_variances
    assert not fast.FastPredictor(_fit(n_max=8, frames=2)).fused_variances
    own = _fit(n_max=8, frames=4)
    fp = fast.FastPredictor(own)
    first = _engine_variances(fp, system)[0][2]
    _close(first, _model_variances(own, system), 1e-9)
    own.hyper["sigma_energy"] *= 3.0        # a new posterior factor (as a refit makes)
    own.solve()
    again = _engine_variances(fp, system)[0][2]
    _close(again, _model_variances(own, system), 1e-9)
    assert np.abs(again / first - 1.0).max() > 1e-3
    # the std's scale is kept per structure, and follows a new calibration
    std = fp.epistemic(system, again)
    own.hyper["std_field_local"] *= 2.0
    _close(fp.epistemic(system, again), 2.0 * std, 1e-14)


def test_a_check_after_an_output_step_takes_the_energy_only_pass(models, rng):
    """The on-the-fly check comes after the trajectory writer at output steps: energy and
    fields of the directions are then made already, and the check's epistemic std comes
    from an energy-only pass with the variances (not the descriptor route), equal to
    model.compute's; the prediction (its fields in tesla, the engine's gradient for a
    second projection) is the one made before."""
    from otf_spin.calculator import ENERGY, FIELDS, FIELDS_STD_EPISTEMIC

    model = models["defaults n_max 20"]
    system = _system(2, rng)
    provider = ComputeProvider(model, system)
    e = np.ascontiguousarray(random_cone(len(system), [0, 0, 1], 0.9, rng))
    first = provider.compute(e, (ENERGY, FIELDS))
    tesla, fields = first["fields_tesla"], first[FIELDS].copy()
    fp = provider._fast[1]
    stds = fp.stds
    fp.stds = None                          # the descriptor route would fail now
    try:
        out = provider.compute(e, (FIELDS_STD_EPISTEMIC,))
    finally:
        fp.stds = stds
    assert out["fields_tesla"] is tesla
    probe = system.copy()
    probe.directions = e
    _close(out[FIELDS_STD_EPISTEMIC],
           model.compute(probe, (FIELDS_STD_EPISTEMIC,))[FIELDS_STD_EPISTEMIC], 1e-8)
    again = np.empty((len(system), 3))
    provider._fast[2].project(e, -1.0 / system.magnitudes, np.zeros(3), again)
    assert np.array_equal(again, fields)
