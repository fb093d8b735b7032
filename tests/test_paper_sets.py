"""The paper's Sec. III B sets: displacement laws (Eq. 42) and the displaced sets."""
import numpy as np
import pytest
from scipy import stats

from otf_spin.learning.paper_sets import A, displacements, generate_set
from otf_spin.system import bulk


def test_eq42_displacement_lengths_are_gaussian_and_directions_isotropic():
    """Eq. 42: P(Δr) ∝ exp(-Δr²/2σ²) for the displacement length, so |Δr| is half-normal
    (mean σ√(2/π), rms σ) and each coordinate has variance σ²/3."""
    sigma, n = 0.25, 40000
    d = displacements(n, sigma, np.random.default_rng(7), "eq42")
    length = np.linalg.norm(d, axis=1)
    assert stats.kstest(length, stats.halfnorm(scale=sigma).cdf).pvalue > 1e-3
    assert np.sqrt(np.mean(length**2)) == pytest.approx(sigma, rel=0.02)
    directions = d / length[:, None]
    assert np.abs(directions.mean(axis=0)).max() < 4 / np.sqrt(3 * n)
    assert np.cov(directions.T) == pytest.approx(np.eye(3) / 3, abs=0.01)


def test_cartesian_law_has_maxwell_lengths():
    sigma, n = 0.25, 40000
    d = displacements(n, sigma, np.random.default_rng(7), "cartesian")
    assert d.std(axis=0) == pytest.approx([sigma] * 3, rel=0.02)
    length = np.linalg.norm(d, axis=1)
    assert stats.kstest(length, stats.maxwell(scale=sigma).cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="displacement law 'x'"):
        displacements(3, sigma, np.random.default_rng(0), "x")


def test_displaced_set_labels_and_reproducibility():
    train, test = generate_set("displaced_0.25", seed=3, scale=0.004)
    assert len(train) == 50 and len(test) == 10
    again, _ = generate_set("displaced_0.25", seed=3, scale=0.004)
    assert all(np.array_equal(a.system.positions, b.system.positions) and a.energy == b.energy
               for a, b in zip(train, again))
    ideal = bulk("bcc", A, (2, 2, 2)).positions
    shift = np.concatenate([f.system.positions - ideal for f in train])
    # rms displacement length σ (Eq. 42), not √3 σ (every coordinate N(0, σ²))
    assert np.sqrt(np.mean(np.sum(shift**2, axis=1))) == pytest.approx(0.25, rel=0.1)
    other, _ = generate_set("displaced_0.25", seed=3, scale=0.004, displacement_law="cartesian")
    shift = np.concatenate([f.system.positions - ideal for f in other])
    assert np.sqrt(np.mean(np.sum(shift**2, axis=1))) == pytest.approx(0.25 * np.sqrt(3),
                                                                       rel=0.1)
    assert all(f.results["forces"].shape == (16, 3) and f.fields.shape == (16, 3) for f in train)
