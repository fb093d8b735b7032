"""The angle exchange term (otf_spin/descriptors/angle2b.py): its basis, the angle and its
gradient near parallel spins (finite, transverse, exact parallel handled), symmetries,
the ``with_terms`` kernels that join it to exchange-2b, and the selection that adds it
where energies follow the angle itself (paper Eq. 41) and only there.
Spin and position derivatives by finite differences, and a model with every term (fields
= energy gradient, model file bit for bit, LLG, Monte Carlo): tests/test_descriptor_terms.py."""
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from otf_spin.config.model import MODEL
from otf_spin.core import ConfigError, Frame
from otf_spin.descriptors import AngleExchangeDescriptor, CompositeDescriptor, SOSODescriptor
from otf_spin.descriptors.angle2b import angle_basis, pair_angles
from otf_spin.learning.paper_sets import generate_set
from otf_spin.model import build_model, selection
from otf_spin.model.factory import build_gpr, kernel_mask
from otf_spin.system import bulk, random_cone, random_sphere
from helpers import linear_term_errors
from test_descriptor_terms import permuted, rotated_crystal, small  # noqa: F401  (fixture: a displaced, noncollinear cell)


def test_basis_is_legendre_of_the_angle():
    theta = np.linspace(0.0, np.pi, 401)
    g, dg = angle_basis(theta, 5)
    x = 1.0 - 2.0 * theta / np.pi
    for k in range(1, 6):
        ref = np.polynomial.legendre.Legendre.basis(k)
        np.testing.assert_allclose(g[:, k - 1], ref(x), atol=1e-13)
        np.testing.assert_allclose(dg[:, k - 1], -2.0 / np.pi * ref.deriv()(x), atol=1e-12)
    np.testing.assert_allclose(g[0], 1.0)                 # parallel spins: g_k = P_k(1) = 1


def test_angle_and_its_gradient_near_parallel():
    """θ to full precision at tiny angles (arccos of the dot product loses it), ∂θ/∂e_i a
    transverse unit vector however small θ (finite fields), zero at exact parallel and
    antiparallel, and the one-sided derivative on the sphere matches it."""
    z = np.array([[0.0, 0.0, 1.0]])
    for theta in (1e-9, 1e-6, 1e-3, 0.5, np.pi - 1e-7):
        e = np.concatenate([z, [[np.sin(theta), 0.0, np.cos(theta)]]])
        t, ti, tj = pair_angles(e, np.array([0]), np.array([1]))
        assert t[0] == pytest.approx(theta, rel=1e-12)
        np.testing.assert_allclose(ti[0], [-1.0, 0.0, 0.0], atol=1e-9)   # away from e_j
        assert abs(ti[0] @ e[0]) < 1e-12 and abs(tj[0] @ e[1]) < 1e-12
        assert np.linalg.norm(tj[0]) == pytest.approx(1.0, rel=1e-9)
    for other in ([0.0, 0.0, 1.0], [0.0, 0.0, -1.0]):
        e = np.array([[0.0, 0.0, 1.0], other])
        t, ti, tj = pair_angles(e, np.array([0]), np.array([1]))
        assert t[0] in (0.0, np.pi) and not ti.any() and not tj.any()
    # the energy of one pair, E = g_1(θ), by a finite turn of e_i at θ = 1e-4 rad
    desc_theta, h = 1e-4, 1e-7
    e = np.array([[0.0, 0.0, 1.0], [np.sin(desc_theta), 0.0, np.cos(desc_theta)]])
    _, ti, _ = pair_angles(e, np.array([0]), np.array([1]))
    _, dg = angle_basis([desc_theta], 1)
    turned = [np.array([[s * np.sin(h), 0.0, np.cos(h)], e[1]]) for s in (1, -1)]
    values = [angle_basis(pair_angles(x, np.array([0]), np.array([1]))[0], 1)[0][0, 0]
              for x in turned]
    assert (values[0] - values[1]) / (2 * h) == pytest.approx(dg[0, 0] * ti[0, 0], rel=1e-6)


def test_spin_gradient_finite_at_collinear_and_nearly_collinear_states():
    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    desc = AngleExchangeDescriptor(4.5, 3, 3)
    G = np.ones((1, len(system), desc.size))
    assert not desc.spin_gradient(system, G).any()        # exact FM: every pair parallel
    rng = np.random.default_rng(0)
    system.set_directions(random_cone(len(system), [0, 0, 1], 1e-8, rng))
    grad = desc.spin_gradient(system, G)[0]
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() < 1e3
    np.testing.assert_allclose(np.einsum("ik,ik->i", grad, system.directions), 0.0,
                               atol=1e-9)                  # transverse


def test_invariances_and_fm_reference(small, rng):
    desc = AngleExchangeDescriptor(4.5, 3, 4)
    d0 = desc.compute(small)
    assert d0.shape == (16, 12)
    R = Rotation.random(random_state=3).as_matrix()
    turned = small.copy()
    turned.set_directions(small.directions @ R.T)
    np.testing.assert_allclose(desc.compute(turned), d0, atol=1e-12)        # spin rotation
    flipped = small.copy()
    flipped.set_directions(-small.directions)                                # time reversal
    np.testing.assert_allclose(desc.compute(flipped), d0, atol=1e-12)
    Q = Rotation.random(random_state=4).as_matrix()
    crystal = rotated_crystal(small, Q)
    np.testing.assert_allclose(AngleExchangeDescriptor(4.5, 3, 4).compute(crystal), d0,
                               atol=1e-11)
    perm = rng.permutation(len(small))
    shuffled = permuted(small, perm)
    np.testing.assert_allclose(AngleExchangeDescriptor(4.5, 3, 4).compute(shuffled), d0[perm],
                               atol=1e-12)
    np.testing.assert_allclose(desc.compute_fm(small),
                               desc.compute(small, np.tile([0.0, 0.0, 1.0], (16, 1))),
                               atol=1e-12)
    # by hand for atom 0: Σ_j R_n(r_0j) P_k(1 - 2θ_0j/π)
    offsets, neigh, R, *_ = desc.geometry(small)
    e = small.directions
    js = neigh[offsets[0]:offsets[1]]
    theta = np.arccos(np.clip(e[js] @ e[0], -1, 1))
    x = 1 - 2 * theta / np.pi
    P = np.stack([np.polynomial.legendre.Legendre.basis(k)(x) for k in range(1, 5)], axis=1)
    np.testing.assert_allclose(d0[0], (R[offsets[0]:offsets[1], :, None]
                                       * P[:, None, :]).sum(axis=0).ravel(), atol=1e-10)


def test_settings_with_terms_and_masks():
    s = MODEL.validate({"descriptor": {"r_cut": 5.0, "n_max": 4, "l_max": 2,
                                       "exchange_2b_angle": {}},
                        "kernels": [{"zeta": 1, "orders": [1], "n_sparse": None},
                                    {"zeta": 2, "with_terms": ["exchange_2b_angle"]},
                                    {"zeta": 1, "term": "exchange_2b_angle",
                                     "n_sparse": None}]})
    assert dict(s["descriptor"]["exchange_2b_angle"]) == {
        "r_cut": 4.5, "n_max": 4, "k_max": 4, "radial_scaling": None}
    model = build_gpr(s)
    desc = model.descriptor
    assert isinstance(desc, CompositeDescriptor)
    assert desc.kinds == ["exchange_2b", "exchange_2b_angle"]
    two = desc.terms[0].size
    masks = [kernel_mask(desc, k) for k in s["kernels"]]
    assert masks[1].sum() == desc.size and masks[1].max() == 1.0     # both blocks, once
    assert masks[2][:two].sum() == 0 and masks[2][two:].all()
    assert masks[0][two:].sum() == 0
    with pytest.raises(ConfigError, match="with_terms: exchange_2b_angle is not in"):
        MODEL.validate({"kernels": [{"zeta": 2, "with_terms": ["exchange_2b_angle"]}]})
    with pytest.raises(ConfigError, match="the kernel's term"):
        MODEL.validate({"kernels": [{"zeta": 2, "with_terms": ["exchange_2b"]}]})
    c = selection.candidate_settings(
        MODEL.validate({"select_terms": True}), ("exchange_2b_angle",))
    assert [k["with_terms"] for k in c["kernels"]] == [None, None, ["exchange_2b_angle"],
                                                        None]
    assert c["kernels"][-1]["term"] == "exchange_2b_angle" and c["kernels"][-1]["zeta"] == 1


def cusp_frames(n, rng, K=2e-3):
    """16-atom bcc frames labelled E = K Σ_(i,j) θ_ij over first-shell pairs (each pair
    once; rel. FM), fields its gradient: a pure cusp pair energy."""
    frames = []
    desc = AngleExchangeDescriptor(2.6, 1, 1)           # first shell only
    for _ in range(n):
        system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
        system.set_directions(random_cone(16, random_sphere(1, rng)[0],
                                          rng.uniform(0.05, 1.0), rng))
        offsets, neigh, *_ = desc.geometry(system)
        rows = np.repeat(np.arange(16), np.diff(offsets))
        theta, ti, tj = pair_angles(system.directions, rows, neigh)
        grad = np.zeros((16, 3))
        np.add.at(grad, rows, 0.5 * K * ti)
        np.add.at(grad, neigh, 0.5 * K * tj)
        frames.append(Frame(system, {"energy": 0.5 * K * theta.sum(),
                                     "fields": -grad / 2.2}))
    return frames


def test_cusp_pair_energy_is_linear_in_the_angle_term():
    """E = K Σ θ_ij (a cusp at parallel spins) is reproduced to numerical precision by a
    linear kernel on the angle term, and missed by one on all exchange-2b orders (l ≤ 6):
    what the term is for."""
    rng = np.random.default_rng(5)
    data = cusp_frames(40, rng)
    errors, scale = linear_term_errors(
        {"descriptor": {"r_cut": 4.0, "n_max": 4, "l_max": 6,
                        "exchange_2b_angle": {"r_cut": 4.0}},
         "noise": {"energy": "1e-6 meV", "field": "1e-5 meV/μB"}},
        ("exchange_2b_angle", "exchange_2b"), data[:30], data[30:])
    assert errors["exchange_2b_angle"] < 1e-6 * scale
    assert errors["exchange_2b"] > 1e-3 * scale


@pytest.fixture(scope="module")
def eq41_selection():
    """The default selection on 30 training frames of the paper's Eq. 41 set (moments
    slaved to the angles), and 150 test frames."""
    train, test = generate_set("eq41", 7, 0.06)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model().fit(train[:30])
    return model, test


def test_eq41_selects_the_angle_term_and_gains(eq41_selection):
    model, test = eq41_selection
    chosen = next(r for r in model.selection if r["chosen"])
    assert "exchange_2b_angle" in chosen["terms"]
    base = next(r for r in model.selection if r["terms"] == ())
    assert chosen["cv_energy"] < 0.5 * base["cv_energy"]
    assert model.descriptor.kinds[-1] == "exchange_2b_angle"
    assert ["exchange_2b_angle"] in [k["with_terms"] for k in model.settings["kernels"]]
    dE = [(model.predict(f.system, False)["energy"] - f.energy) / 16 for f in test]
    assert np.sqrt(np.mean(np.square(dE))) < 1e-4          # eV/atom: 0.1 meV/atom


def test_heisenberg_data_do_not_take_the_angle_term():
    """Exact Heisenberg (Eq. 43, fixed moments) data: exchange-2b alone."""
    from otf_spin.learning.paper_sets import paper_oracle

    rng = np.random.default_rng(9)
    oracle, frames = paper_oracle(), []
    for _ in range(12):
        system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
        system.set_directions(random_cone(16, random_sphere(1, rng)[0],
                                          rng.uniform(0.3, 1.2), rng))
        r = oracle.compute(system)
        frames.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model().fit(frames)
    assert type(model.descriptor) is SOSODescriptor


def test_trimmed_cv_holds_out_every_frame_once_and_leaves_out_the_worst(eq41_selection):
    """selection.trimmed_cv scores leave-one-frame-out errors: one entry per training
    frame (each frame held out exactly once, the errors of the posterior without it,
    gpr.held_out_frames); with nothing dropped it is the RMSE over all of them; with the
    default share the worst ⌈0.2 n⌉ frames per observable are left out (never above the
    full RMSE, and equal to the RMSE over the n - ⌈0.2 n⌉ best frames); at 3 frames or
    fewer nothing is dropped."""
    model, _ = eq41_selection
    errors = model.left_out_errors()
    n = model.n_frames
    assert len(errors["energy"]) == len(errors["field"]) == n == 30
    for (e, n_e), (b, n_b), f, x in zip(errors["energy"], errors["field"], model.frames,
                                        model.held_out_frames()):
        assert n_e == f.n_atoms and n_b == 3 * f.n_atoms
        assert e == pytest.approx(x[0] / f.n_atoms, rel=1e-12)
        assert b == pytest.approx(np.sum(x[2]), rel=1e-12)
    full = selection.trimmed_cv(model, share=0.0)
    for key in ("energy", "field"):
        items = errors[key]
        assert full[key] == pytest.approx(np.sqrt(sum(t[0] for t in items)
                                                  / sum(t[1] for t in items)), rel=1e-12)
        kept = sorted(items, key=lambda t: t[0] / t[1])[:n - 6]      # 0.2 × 30 dropped
        trimmed = selection.trimmed_cv(model)[key]
        assert trimmed == pytest.approx(np.sqrt(sum(t[0] for t in kept)
                                                / sum(t[1] for t in kept)), rel=1e-12)
        assert trimmed <= full[key] * (1 + 1e-12)
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = build_gpr(selection.candidate_settings(MODEL.validate({}), ())).fit(
            cusp_frames(3, rng))
    assert selection.trimmed_cv(two) == pytest.approx(selection.trimmed_cv(two, share=0.0),
                                                      rel=1e-12)
