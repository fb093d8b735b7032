"""The B-spline exchange term (otf_spin/descriptors/spline2b.py): basis, the compiled
exchange-2b kernel against its twin on the spline table, symmetries, MC's local_move, and
the selection rule that adds it where pair distances vary and only there.
Spin and position derivatives by finite differences, and a model with every term (fields
= energy gradient, model file bit for bit, LLG, Monte Carlo): tests/test_descriptor_terms.py."""
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from otf_spin import kernels
from otf_spin.config.engine import thaw
from otf_spin.config.model import MODEL
from otf_spin.core import ConfigError, Frame
from otf_spin.descriptors import CompositeDescriptor, SOSODescriptor, SplineExchangeDescriptor
from otf_spin.learning.paper_sets import paper_oracle
from otf_spin.model import build_model, selection
from otf_spin.model.factory import build_gpr
from otf_spin.system import bulk, random_cone, random_sphere
from test_descriptor_terms import permuted, rotated_crystal, small  # noqa: F401  (fixture: a displaced, noncollinear cell)


def cubic_bspline(t):
    """Reference: the uniform cubic B-spline on [0, 4] in its symmetric form, and dB/dt."""
    s = np.abs(t - 2.0)
    inner, outer = s < 1.0, (s >= 1.0) & (s < 2.0)
    B = np.where(inner, 2 / 3 - s**2 + 0.5 * s**3, np.where(outer, (2 - s)**3 / 6, 0.0))
    dB = np.where(inner, -2 * s + 1.5 * s**2, np.where(outer, -0.5 * (2 - s)**2, 0.0))
    return B, np.sign(t - 2.0) * dB


def spline(**changes):
    return SplineExchangeDescriptor(**{"r_min": 2.0, "r_max": 4.4, "spacing": 0.1,
                                       "l_max": 3, "sigma_s": 0.5, **changes})


def test_basis_partition_of_unity_and_compact_support():
    desc = spline()
    assert desc.n_max == 24 - 3 and desc.size == 21 * 3 and desc.h == pytest.approx(0.1)
    r = np.linspace(1.5, 4.9, 3401)
    B, dB = desc.radial(r)
    ref = cubic_bspline((r[:, None] - 2.0) / desc.h - np.arange(desc.n_max))
    np.testing.assert_allclose(B, ref[0], atol=1e-14)
    np.testing.assert_allclose(dB, ref[1] / desc.h, atol=1e-12)
    inside = (r >= 2.0 + 3 * desc.h) & (r <= 4.4 - 3 * desc.h)
    np.testing.assert_allclose(B[inside].sum(axis=1), 1.0, atol=1e-13)
    np.testing.assert_allclose(dB[inside].sum(axis=1), 0.0, atol=1e-11)
    assert (B >= 0).all() and np.all(B[(r <= 2.0) | (r >= 4.4)] == 0)
    for n in (0, 7, 20):                  # support of B_n: [r_min + n h, r_min + (n+4) h]
        lo, hi = 2.0 + n * desc.h, 2.0 + (n + 4) * desc.h
        assert np.all(B[(r <= lo - 1e-9) | (r >= hi + 1e-9), n] == 0)
        assert (B[(r > lo + 1e-6) & (r < hi - 1e-6), n] > 0).all()
    # C² at the knots, dB the derivative of B
    t = np.linspace(-0.5, 4.5, 5001)
    b, db = cubic_bspline(t)
    np.testing.assert_allclose(np.gradient(b, t), db, atol=2e-3)
    np.testing.assert_allclose(np.gradient(db, t)[1:-1], np.gradient(np.gradient(b, t), t)[1:-1],
                               atol=5e-3)
    # spacing is the largest knot spacing: the range is cut into whole intervals
    assert SplineExchangeDescriptor(1.8, 5.0, 0.07).h == pytest.approx(3.2 / 46)
    with pytest.raises(ValueError, match="fewer than 4"):
        SplineExchangeDescriptor(2.0, 2.2, 0.1)


def test_invariances_fm_reference_and_local_move(small, rng):
    desc = spline()
    d0 = desc.compute(small)
    R = Rotation.random(random_state=3).as_matrix()
    turned = small.copy()
    turned.set_directions(small.directions @ R.T)
    np.testing.assert_allclose(desc.compute(turned), d0, atol=1e-12)        # spin rotation
    Q = Rotation.random(random_state=4).as_matrix()
    crystal = rotated_crystal(small, Q)
    np.testing.assert_allclose(spline().compute(crystal), d0, atol=1e-11)
    perm = rng.permutation(len(small))
    shuffled = permuted(small, perm)
    np.testing.assert_allclose(spline().compute(shuffled), d0[perm], atol=1e-12)
    full = SOSODescriptor(4.4, desc.n_max, 3, 0.5, None)          # all orders 0..l_max
    full.radial = desc.radial
    np.testing.assert_allclose(d0, full.compute(small).reshape(16, -1, 4)[:, :, 1:]
                               .reshape(16, -1), rtol=1e-14)
    np.testing.assert_allclose(desc.compute_fm(small),
                               desc.compute(small, np.tile([0.0, 0.0, 1.0], (16, 1))),
                               atol=1e-12)
    assert desc.order_mask([2]).reshape(-1, 3)[:, 1].all() and desc.order_mask([2]).sum() == 21
    trial = random_sphere(1, rng)[0]
    affected, rows = desc.local_move(small, small.directions, 3, trial, d0)
    e = small.directions.copy()
    e[3] = trial
    np.testing.assert_allclose(rows, desc.compute(small, e)[affected], atol=1e-12)


def test_compiled_kernel_serves_the_spline_term(small, rng):
    """No new compiled kernel: the exchange-2b one (tested against its twin in
    test_descriptor.py) gives the twin's results on the spline radial table too, also
    with atoms that have no pair in range (r_max 2.3 Å < bcc 2.45 Å)."""
    if kernels.compiled("soso") is None:
        pytest.fail("compiled kernel soso is not built")
    for changes in ({}, {"r_min": 1.8, "r_max": 2.3, "spacing": 0.1}):
        fast = spline(kernel=kernels.compiled("soso"), **changes)
        slow = spline(kernel=kernels.twin("soso"), **changes)
        np.testing.assert_allclose(fast.compute(small), slow.compute(small), rtol=1e-12,
                                   atol=1e-14)
        G = rng.standard_normal((3, len(small), fast.size))
        np.testing.assert_allclose(fast.spin_gradient(small, G),
                                   slow.spin_gradient(small, G), rtol=1e-10, atol=1e-12)
    counts = np.diff(fast.geometry(small)[0])
    assert (counts == 0).any() and (counts > 0).any()


def test_settings_section():
    s = MODEL.validate({"descriptor": {"exchange_2b_spline": {}},
                        "kernels": [{"zeta": 1, "orders": [1], "n_sparse": None},
                                    {"zeta": 1, "term": "exchange_2b_spline",
                                     "n_sparse": None}]})
    assert dict(s["descriptor"]["exchange_2b_spline"]) == {
        "r_min": 1.8, "r_max": 5.0, "spacing": 0.025, "l_max": 2, "sigma_s": 0.3}
    with pytest.raises(ConfigError, match="4 knot spacings"):
        MODEL.validate({"descriptor": {"exchange_2b_spline": {"r_min": 3.0, "r_max": 3.05}}})


# --- the term in a model ------------------------------------------------------------------
def displaced_frames(n, rng, sigma=0.07, oracle=None):
    """16-atom bcc Fe frames, spins in cones about random axes, atoms displaced by σ (Å),
    labelled by the paper's Eq. 43 Heisenberg reference (hard cutoff at 3.962 Å)."""
    oracle = oracle or paper_oracle()
    frames = []
    for _ in range(n):
        system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
        system.positions = system.positions + sigma * rng.standard_normal((16, 3))
        system.set_directions(random_cone(16, random_sphere(1, rng)[0],
                                          rng.uniform(0.3, 1.2), rng))
        r = oracle.compute(system)
        frames.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    return frames


def small_settings(**changes):
    return MODEL.validate({"descriptor": {"r_cut": 4.5, "n_max": 6, "l_max": 2},
                           "kernels": [{"zeta": 1, "normalize": False, "n_sparse": None}],
                           **changes})


@pytest.fixture(scope="module")
def step_data():
    rng = np.random.default_rng(5)
    return displaced_frames(12, rng), displaced_frames(6, rng)


def test_selection_adds_the_spline_where_distances_vary(step_data):
    """Displaced frames of the step reference: the spline candidate is fitted and kept;
    it predicts held-out frames better than exchange-2b alone (geometric mean of the
    energy and field RMSEs; 0.56-0.59 × on generator seeds 5-7, 0.36 on one)."""
    train, test = step_data
    s = small_settings(select_terms=True)
    assert selection.distances_vary(s, train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, table = selection.select(s, train, build_gpr, keep_models=True)
    assert ("exchange_2b_spline",) in [r["terms"] for r in table]
    assert "exchange_2b_spline" in model.descriptor.kinds
    base = next(r["model"] for r in table if r["terms"] == ())

    def error(m):
        p = [m.predict(f.system, False) for f in test]
        dE = [(q["energy"] - f.energy) / 16 for q, f in zip(p, test)]
        dB = np.concatenate([q["fields"] - f.fields for q, f in zip(p, test)])
        return np.sqrt(np.sqrt(np.mean(np.square(dE))) * np.sqrt(np.mean(dB**2)))
    assert error(model) < 0.7 * error(base)


def test_selection_skips_the_spline_on_one_lattice(rng):
    """Atoms on one lattice (16- and 54-atom cells, any spins): few distinct distances,
    exchange-2b holds J(r) at every one, the spline candidate is not fitted."""
    s = small_settings(select_terms=True)
    frames = displaced_frames(10, rng, sigma=0.0)
    big = bulk("bcc", 2.83, (3, 3, 3), moment=2.2)
    big.set_directions(random_sphere(54, rng))
    frames.append(Frame(big, {"energy": 0.0}))
    assert not selection.distances_vary(s, frames)
    assert selection.distances_vary(s, displaced_frames(1, rng, sigma=0.01))
    frames = frames[:10] + [Frame(f.system, {"energy": f.energy, "fields": f.fields + 1e-4
                                             * rng.standard_normal(f.fields.shape)})
                            for f in frames[:10]]      # noisy: not at the noise floor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, table = selection.select(s, frames, build_gpr)
    assert len(table) > 1 and all("exchange_2b_spline" not in r["terms"] for r in table)
