"""Kernels of the per-structure setup of the fast engine (neighbour search, pair
compression, spline couplings): compiled = pure-Python twin = the reference formula."""
import numpy as np
import pytest

from otf_spin import kernels
from otf_spin.descriptors.spline2b import SplineExchangeDescriptor


@pytest.mark.parametrize("r_min, r_max, spacing, K", [(1.8, 5.0, 0.05, 7), (0.0, 3.0, 0.7, 3),
                                                       (2.2, 4.4, 0.02, 1)])
def test_bspline_dot_equals_the_spline_table(r_min, r_max, spacing, K, rng):
    """Σ_n B_n(r) w[n] of the compiled kernel and of its twin equal the term's radial
    table times w and the sum over its four pieces to 1e-13 of the largest (distances
    inside, outside and at both ends and on knots)."""
    desc = SplineExchangeDescriptor(r_min, r_max, spacing, 2)
    knots = r_min + desc.h * np.arange(desc.n_max + 4)
    r = np.concatenate([rng.uniform(max(r_min - 1.0, 0.0), r_max + 1.0, 20000), knots,
                        knots - 1e-13, knots + 1e-13, [r_min, r_max, 0.0, 50.0]])
    w = rng.normal(size=(desc.n_max, K))
    table = desc.radial(r)[0] @ w
    n, B4, _ = desc.pieces(r)
    pieces = sum(B4[:, m, None] * np.where(n[:, m, None] >= 0, w[np.maximum(n[:, m], 0)], 0.0)
                 for m in range(4))
    scale = np.abs(table).max()
    assert scale > 0.1
    assert np.abs(pieces - table).max() < 1e-13 * scale
    got = desc.radial_dot(r, w)
    assert np.abs(got - table).max() < 1e-13 * scale
    assert np.all(got[(r <= r_min) | (r >= r_max)] == 0.0)
    out = np.full_like(got, np.nan)
    kernels.twin("soso").bspline_dot(r, desc.r_min, desc.h, w, out)
    assert np.abs(out - table).max() < 1e-13 * scale
    compiled = kernels.compiled("soso")
    if compiled is not None:
        out2 = np.full_like(got, np.nan)
        compiled.bspline_dot(r, desc.r_min, desc.h, w, out2)
        assert np.abs(out2 - out).max() < 1e-13 * scale
        with pytest.raises(ValueError):
            compiled.bspline_dot(r, desc.r_min, desc.h, w, np.empty((len(r), K + 1)))
