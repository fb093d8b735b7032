"""Exchange-3b and dipole-2b descriptor terms (paper Table II, Sec. II D, Appendix A):
analytic derivatives against finite differences, the symmetry each term must (and must
not) have, compiled kernels against their twins, and a model with the terms combined."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from otf_spin import kernels
from otf_spin.descriptors import (AngleExchangeDescriptor, CompositeDescriptor,
                                  Dipole2BDescriptor, Exchange3BDescriptor, SOSODescriptor,
                                  SplineExchangeDescriptor)
from otf_spin.descriptors.dipole2b import exponents
from otf_spin.system import bulk, random_sphere

from helpers import linear_term_errors


def make_terms():
    return {"exchange_3b": Exchange3BDescriptor(r_cut=4.2, n_max=2, l_max=2, sigma_s=0.6),
            "dipole_2b": Dipole2BDescriptor(r_cut=4.5, n_max=3, degree=4),
            "exchange_2b_spline": SplineExchangeDescriptor(2.0, 4.4, 0.1, 3, 0.5),
            "exchange_2b_angle": AngleExchangeDescriptor(5.0, 3, 4, (2.5, 4.0)),
            "composite": CompositeDescriptor([SOSODescriptor(5.0, 4, 3, 0.6),
                                              Exchange3BDescriptor(4.2, 2, 1),
                                              Dipole2BDescriptor(4.5, 3, 2),
                                              SplineExchangeDescriptor(2.0, 4.4, 0.1, 2),
                                              AngleExchangeDescriptor(4.5, 2, 3)])}


@pytest.fixture
def small(rng):
    """A displaced, noncollinear 16-atom bcc cell."""
    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    system.positions = system.positions + 0.08 * rng.standard_normal(system.positions.shape)
    system.set_directions(random_sphere(len(system), rng))
    return system


def energy(desc, system, G, directions=None):
    return float(np.sum(G * desc.compute(system, directions)))


@pytest.mark.parametrize("name", ["exchange_3b", "dipole_2b", "exchange_2b_spline",
                                  "exchange_2b_angle", "composite"])
def test_spin_gradient_matches_finite_differences(name, small, rng):
    """Σ_i G_i·d_i differentiated by each spin vector (unnormalised: the full chain rule,
    including self-image and same-atom pairs), for two weight sets at once."""
    desc = make_terms()[name]
    G = rng.standard_normal((2, len(small), desc.size))
    grad = desc.spin_gradient(small, G)
    e0, h = small.directions.copy(), 1e-6
    for a in (0, 5):
        for x in range(3):
            step = np.zeros_like(e0)
            step[a, x] = h
            for m in range(2):
                fd = (energy(desc, small, G[m], e0 + step)
                      - energy(desc, small, G[m], e0 - step)) / (2 * h)
                assert grad[m, a, x] == pytest.approx(fd, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", ["exchange_3b", "dipole_2b", "exchange_2b_spline",
                                  "exchange_2b_angle", "composite"])
def test_position_gradient_matches_finite_differences(name, small, rng):
    desc = make_terms()[name]
    G = rng.standard_normal((len(small), desc.size))
    grad = desc.position_gradient(small, G)
    h = 1e-6
    for a in (0, 7):
        for x in range(3):
            values = []
            for sign in (1, -1):
                moved = small.copy()
                moved.positions = small.positions.copy()
                moved.positions[a, x] += sign * h
                values.append(energy(desc, moved, G))
            assert grad[a, x] == pytest.approx((values[0] - values[1]) / (2 * h),
                                               rel=1e-6, abs=1e-7)


def rotated_spins(system, R):
    out = system.copy()
    out.set_directions(system.directions @ R.T)
    return out


def rotated_crystal(system, Q, shift=(0.3, -1.2, 4.0)):
    out = system.copy()
    out.cell = system.cell @ Q.T
    out.positions = system.positions @ Q.T + np.asarray(shift)
    return out


def permuted(system, perm):
    out = system.copy()
    out.positions = system.positions[perm]
    out.set_directions(system.directions[perm])
    return out


def test_exchange3b_invariances_and_triangle(small, rng):
    desc = Exchange3BDescriptor(4.2, 2, 2)
    d0 = desc.compute(small)
    R = Rotation.random(random_state=3).as_matrix()
    np.testing.assert_allclose(desc.compute(rotated_spins(small, R)), d0, atol=1e-12)
    Q = Rotation.random(random_state=4).as_matrix()
    np.testing.assert_allclose(Exchange3BDescriptor(4.2, 2, 2).compute(
        rotated_crystal(small, Q)), d0, atol=1e-10)
    flipped = small.copy()
    flipped.set_directions(-small.directions)          # time reversal
    np.testing.assert_allclose(desc.compute(flipped), d0, atol=1e-12)
    perm = rng.permutation(len(small))
    shuffled = permuted(small, perm)
    np.testing.assert_allclose(Exchange3BDescriptor(4.2, 2, 2).compute(shuffled), d0[perm],
                               atol=1e-12)
    # e_j·e_k enters: turning spin k about the axis of e_i keeps every e_i·e_x of atom i
    # (so its exchange-2b descriptor) unless the triangle invariant is there
    i = 0
    offsets, neigh, *_ = desc.geometry(small)
    axis = small.directions[i]
    k = int(neigh[offsets[i]])
    turned = small.directions.copy()
    turned[k] = Rotation.from_rotvec(1.0 * axis).apply(turned[k])
    two_body = SOSODescriptor(4.2, 2, 2)
    np.testing.assert_allclose(two_body.compute(small, turned)[i],
                               two_body.compute(small)[i], atol=1e-12)
    assert np.abs(desc.compute(small, turned)[i] - d0[i]).max() > 1e-3


def test_dipole2b_joint_rotation_only(small, rng):
    desc = Dipole2BDescriptor(4.5, 3, 4)
    d0 = desc.compute(small)
    Q = Rotation.random(random_state=5).as_matrix()
    both = rotated_spins(rotated_crystal(small, Q), Q)
    np.testing.assert_allclose(Dipole2BDescriptor(4.5, 3, 4).compute(both), d0, atol=1e-11)
    spins_only = rotated_spins(small, Q)
    assert np.abs(desc.compute(spins_only) - d0).max() > 1e-2 * np.abs(d0).max()
    flipped = small.copy()
    flipped.set_directions(-small.directions)
    np.testing.assert_allclose(desc.compute(flipped), d0, atol=1e-12)
    perm = rng.permutation(len(small))
    shuffled = permuted(small, perm)
    np.testing.assert_allclose(Dipole2BDescriptor(4.5, 3, 4).compute(shuffled), d0[perm],
                               atol=1e-12)


def test_dipole2b_features_and_fm_reference():
    assert exponents(2).tolist() == [[0, 0, 1], [1, 1, 0], [2, 0, 0], [0, 2, 0]]
    assert len(exponents(4)) == 13
    # perfect bcc, FM along z: a = b = cos(bond, z), c = 1; a² summed over a cubic shell
    # is 1/3 of the plain shell sum
    system = bulk("bcc", 2.83, (2, 2, 2))
    desc = Dipole2BDescriptor(2.6, 1, 2)          # the 8 nearest neighbours only
    d = desc.compute_fm(system).reshape(len(system), 1, 4)
    np.testing.assert_allclose(d[:, 0, 2], d[:, 0, 0] / 3, rtol=1e-12)
    np.testing.assert_allclose(d[:, 0, 1], d[:, 0, 0] / 3, rtol=1e-12)
    # the reference state follows fm_direction; on a strained cell the direction matters
    strained = bulk("bcc", 2.83, (2, 2, 2))
    strained.cell = strained.cell @ np.diag([1.0, 1.0, 1.05])
    strained.positions = strained.positions @ np.diag([1.0, 1.0, 1.05])
    along_x = Dipole2BDescriptor(3.2, 2, 2, fm_direction=(2.0, 0, 0))
    np.testing.assert_allclose(along_x.compute_fm(strained),
                               along_x.compute(strained, np.tile([1.0, 0, 0], (16, 1))))
    assert np.abs(along_x.compute_fm(strained)
                  - Dipole2BDescriptor(3.2, 2, 2).compute_fm(strained)).max() > 1e-3


@pytest.mark.parametrize("name", ["exchange3b", "dipole2b"])
def test_compiled_kernels_match_twins(name, small, rng):
    if kernels.compiled(name) is None:
        pytest.fail(f"compiled kernel {name} is not built")
    cls = {"exchange3b": lambda k: Exchange3BDescriptor(4.2, 2, 2, kernel=k),
           "dipole2b": lambda k: Dipole2BDescriptor(4.5, 3, 4, kernel=k)}[name]
    fast, slow = cls(kernels.compiled(name)), cls(kernels.twin(name))
    np.testing.assert_allclose(fast.compute(small), slow.compute(small), rtol=1e-12,
                               atol=1e-14)
    G = rng.standard_normal((3, len(small), fast.size))
    np.testing.assert_allclose(fast.spin_gradient(small, G), slow.spin_gradient(small, G),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast.position_gradient(small, G[0]),
                               slow.position_gradient(small, G[0]), rtol=1e-10, atol=1e-12)


def test_composite_blocks_and_masks(small, rng):
    two, three = SOSODescriptor(5.0, 4, 3), Exchange3BDescriptor(4.2, 2, 1)
    desc = CompositeDescriptor([two, three])
    assert desc.size == two.size + three.size and desc.r_cut == 5.0
    np.testing.assert_array_equal(desc.compute(small)[:, :two.size], two.compute(small))
    mask = desc.term_mask("exchange_2b", two.order_mask([1]))
    assert mask.sum() == two.order_mask([1]).sum() and not mask[two.size:].any()
    G = np.zeros((1, len(small), desc.size))
    G[0, :, two.size:] = rng.standard_normal((len(small), three.size))
    np.testing.assert_allclose(desc.spin_gradient(small, G)[0],
                               three.spin_gradient(small, G[:, :, two.size:])[0])
    with pytest.raises(KeyError, match="dipole_2b"):
        desc.term_mask("dipole_2b")


# --- the terms in a model ----------------------------------------------------------------
def composite_settings(**changes):
    from otf_spin.config.engine import thaw
    from otf_spin.config.model import MODEL

    settings = thaw(MODEL.validate({
        "descriptor": {"r_cut": 5.0, "n_max": 6, "l_max": 3,
                       "exchange_3b": {"r_cut": 4.0, "n_max": 2, "l_max": 2},
                       "dipole_2b": {"r_cut": 4.5, "n_max": 3},
                       "exchange_2b_spline": {"r_min": 2.0, "r_max": 4.4, "spacing": 0.1},
                       "exchange_2b_angle": {"n_max": 2, "k_max": 3}},
        "kernels": [{"zeta": 1, "normalize": False, "orders": [1], "n_sparse": None},
                    {"zeta": 2, "normalize": False, "orders": [2], "n_sparse": 20,
                     "with_terms": ["exchange_2b_angle"]},
                    {"zeta": 2, "normalize": False, "term": "exchange_3b", "n_sparse": 20},
                    {"zeta": 1, "normalize": False, "term": "dipole_2b", "n_sparse": None},
                    {"zeta": 1, "normalize": False, "term": "exchange_2b_spline",
                     "n_sparse": None}]}))
    settings.update(changes)
    return settings


@pytest.fixture(scope="module")
def composite_model():
    import warnings

    from otf_spin.core import Frame
    from otf_spin.learning.paper_sets import paper_oracle
    from otf_spin.model import build_model
    from otf_spin.system import random_cone

    rng = np.random.default_rng(11)
    oracle, frames = paper_oracle(), []
    for _ in range(6):
        system = bulk("bcc", 2.83, (2, 2, 2))
        system.positions = system.positions + 0.05 * rng.standard_normal((16, 3))
        system.set_directions(random_cone(16, [0, 0, 1], 0.9, rng))
        r = oracle.compute(system)
        frames.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(composite_settings()).fit(frames)


def test_composite_model_fields_are_the_energy_gradient(composite_model, rng):
    """B_a = -(1/m_a)(1 - e_a e_aᵀ) ∂E/∂e_a: the energy change on turning spin a by a
    small angle about each transverse axis."""
    from otf_spin.descriptors import CompositeDescriptor

    model = composite_model
    assert isinstance(model.descriptor, CompositeDescriptor)
    assert model.descriptor.kinds == ["exchange_2b", "exchange_3b", "dipole_2b",
                                      "exchange_2b_spline", "exchange_2b_angle"]
    assert all(len(S) for S in model.sparse)
    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    system.set_directions(random_sphere(16, rng))
    fields = model.predict(system, stds=False)["fields"]
    h = 1e-5
    for a in (0, 9):
        e = system.directions[a]
        t1 = np.cross(e, [1.0, 0, 0])
        t1 /= np.linalg.norm(t1)
        for t in (t1, np.cross(e, t1)):
            values = []
            for sign in (1, -1):
                turned = system.copy()
                dirs = system.directions.copy()
                dirs[a] = np.cos(h) * e + sign * np.sin(h) * t
                turned.set_directions(dirs)
                values.append(model.predict(turned, stds=False)["energy"])
            dE = (values[0] - values[1]) / (2 * h)
            assert -system.magnitudes[a] * fields[a] @ t == pytest.approx(dE, rel=1e-5,
                                                                           abs=1e-9)


def test_composite_model_file_round_trip(composite_model, tmp_path, rng):
    from otf_spin.model.storage import load, save

    path = tmp_path / "model.h5"
    save(composite_model, path)
    model, settings = load(path)
    assert settings["descriptor"]["exchange_3b"]["r_cut"] == 4.0
    assert [k["term"] for k in settings["kernels"]] == ["exchange_2b", "exchange_2b",
                                                         "exchange_3b", "dipole_2b",
                                                         "exchange_2b_spline"]
    assert settings["kernels"][1]["with_terms"] == ["exchange_2b_angle"]
    assert settings["descriptor"]["exchange_2b_spline"]["spacing"] == 0.1
    assert settings["descriptor"]["exchange_2b_angle"]["k_max"] == 3
    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    system.set_directions(random_sphere(16, rng))
    a, b = composite_model.predict(system), model.predict(system)
    for key in ("energy", "energies", "fields", "energy_std", "fields_std"):
        np.testing.assert_array_equal(a[key], b[key])


def test_model_file_without_terms_predicts_bit_for_bit():
    """A model file written before descriptor terms existed (tests/fixtures, made by
    make_model_exchange2b_v1.py) loads as the plain exchange-2b model and predicts what
    it predicted then (bit for bit until the regression's summation order changed:
    now to rounding; the stds are calibrated differently since, so not compared)."""
    from pathlib import Path

    from otf_spin.model.storage import load, save

    folder = Path(__file__).parent / "fixtures"
    model, _ = load(folder / "model_exchange2b_v1.h5")
    assert isinstance(model.descriptor, SOSODescriptor)
    saved = np.load(folder / "model_exchange2b_v1_pred.npz")
    system = bulk("bcc", 2.83, (2, 2, 2))
    system.set_directions(saved["directions"])
    system.directions = saved["directions"].copy()
    p = model.predict(system)
    for key in ("energy", "energies", "fields"):
        np.testing.assert_allclose(p[key], saved[key], rtol=1e-13, atol=1e-16)


def test_unknown_term_in_kernels_is_a_config_error():
    from otf_spin.core import ConfigError
    from otf_spin.config.model import MODEL

    with pytest.raises(ConfigError, match="kernels.0..term: dipole_2b is not in the "):
        MODEL.validate({"kernels": [{"zeta": 1, "term": "dipole_2b"}]})
    with pytest.raises(ConfigError, match="orders"):
        MODEL.validate({"descriptor": {"exchange_3b": {}},
                        "kernels": [{"zeta": 1, "term": "exchange_3b", "orders": [1]}]})


def test_calculator_and_llg_on_composite_model(composite_model, rng):
    """The ASE calculator returns the model's prediction; LLG at α = 0 conserves the
    model's energy (drift shrinking with the time step)."""
    from otf_spin.dynamics.llg import LLGIntegrator, new_state
    from otf_spin.dynamics.providers import make_provider
    from otf_spin.model.calculator import SOSOCalculator
    from otf_spin.system import random_cone

    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    system.set_directions(random_cone(16, [0, 0, 1], 0.5, rng))
    atoms = system.to_ase()
    atoms.calc = SOSOCalculator(composite_model)
    assert atoms.get_potential_energy() == pytest.approx(
        composite_model.predict(system, stds=False)["energy"], abs=1e-12)
    provider = make_provider(composite_model, system)
    e0 = provider.energy(system.directions)
    drifts = []
    for dt in (4e-5, 2e-5):                          # ps
        state = new_state(system.directions, 1)
        integrator = LLGIntegrator("depondt", dt, 0.0)
        drift = 0.0
        for _ in range(int(round(0.002 / dt))):
            integrator.step(state, provider)
            drift = max(drift, abs(provider.energy(state.directions) - e0))
        drifts.append(drift)
    assert np.abs(state.directions - system.directions).max() > 1e-3
    assert drifts[1] < 1e-4 * max(abs(e0), 1e-3) and drifts[0] / drifts[1] > 3.0


def test_monte_carlo_on_composite_model(composite_model, rng):
    """Metropolis on a model with the extra terms: the kept descriptors and local
    energies equal a full recomputation after a sweep."""
    from otf_spin.dynamics.montecarlo import ModelMonteCarlo, new_state

    model = composite_model
    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    mc = ModelMonteCarlo(model, system, field_tesla=(0, 0, 5.0))
    state = new_state(system, rng)
    start = model.predict(system, stds=False)["energy"]
    assert mc.sweep(state, 3000.0) > 0
    d_kept, e_kept = mc.kept(state)
    probe = system.copy()
    probe.directions = state.directions.copy()
    np.testing.assert_allclose(d_kept, model.descriptor.compute(probe), atol=1e-12)
    end = model.predict(probe, stds=False)["energy"]
    fm = model.local_energies(model.descriptor.compute_fm(probe)).sum()
    assert e_kept.sum() - fm == pytest.approx(end, abs=1e-10)
    assert abs(end - start) > 1e-4


def test_on_the_fly_run_with_descriptor_terms(tmp_path):
    """The on-the-fly loop learns a model whose descriptor has the extra terms (model
    YAML with exchange_3b and dipole_2b) and saves it."""
    import os

    import yaml

    from helpers import run_in
    from otf_spin.model.storage import load, save

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = yaml.safe_load(open(os.path.join(root, "input_examples",
                                            "bccFe_otf_heisenberg.yaml")))
    model_yaml = {"descriptor": {"r_cut": 5.0, "n_max": 6, "l_max": 3, "exchange_3b": {},
                                 "dipole_2b": {}},
                  "kernels": [{"zeta": 1, "normalize": False, "orders": [1], "n_sparse": None},
                              {"zeta": 1, "normalize": False, "term": "exchange_3b",
                               "n_sparse": 30},
                              {"zeta": 1, "normalize": False, "term": "dipole_2b",
                               "n_sparse": None}]}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(model_yaml))
    data["dynamics"]["steps"] = 60
    data["otf"].update({"threshold": 2.0, "check_every": 5, "min_steps_between_calls": 5,
                        "max_oracle_calls": 4, "checkpoint_every": 20,
                        "model_config": "model.yaml"})
    (tmp_path / "otf.yaml").write_text(yaml.safe_dump(data))
    result = run_in(tmp_path, str(tmp_path / "otf.yaml"))
    assert result["learner"].calls >= 2
    model, settings = load(tmp_path / "otf_model.h5")
    assert model.descriptor.kinds == ["exchange_2b", "exchange_3b", "dipole_2b"]
    assert settings["descriptor"]["dipole_2b"]["degree"] == 2


def triangle_energy(system, K=3e-4, shell=2.9):
    """-K Σ_triangles (e_i·e_j)(e_j·e_k)(e_k·e_i) over triangles whose three edges are
    shorter than ``shell`` (bcc: two first-shell edges and one second-shell edge), each
    triangle once, relative to the collinear state; brute force over neighbour pairs."""
    nl = system.neighbours(shell)
    e = system.directions
    total = count = 0.0
    for i in range(len(system)):
        rows = range(nl.offsets[i], nl.offsets[i + 1])
        for p in rows:
            for q in rows:
                if p != q and np.linalg.norm(nl.vectors[q] - nl.vectors[p]) < shell:
                    j, k = nl.j[p], nl.j[q]
                    total += (e[i] @ e[j]) * (e[j] @ e[k]) * (e[k] @ e[i])
                    count += 1
    return -K * (total - count) / 6.0          # each triangle: 3 vertices × 2 orders


def test_triangle_term_is_linear_in_exchange3b():
    """A triangle three-spin energy (which no exchange-2b descriptor can express) is
    reproduced to numerical precision by a linear kernel on the exchange-3b term; a
    linear kernel on all exchange-2b orders misses it."""
    from otf_spin.core import Frame
    from otf_spin.system import random_cone

    rng = np.random.default_rng(21)
    data = []
    for _ in range(40):
        system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
        system.set_directions(random_cone(16, random_sphere(1, rng)[0], 1.2, rng))
        data.append(Frame(system, {"energy": triangle_energy(system)}))
    errors, scale = linear_term_errors(
        {"descriptor": {"r_cut": 4.0, "n_max": 4, "l_max": 4, "exchange_3b": {}},
         "noise": {"energy": "1e-6 meV"}},
        ("exchange_3b", "exchange_2b"), data[:30], data[30:])
    assert errors["exchange_3b"] < 1e-4 * scale
    assert errors["exchange_2b"] > 0.05 * scale
