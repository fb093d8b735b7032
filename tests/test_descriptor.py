"""SOSO descriptor: invariances (paper Table II), analytic derivatives against finite
differences, compiled kernels against the Python twin, orthonormal radial basis."""
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.spatial.transform import Rotation

from otf_spin import kernels
from otf_spin.descriptors import SOSODescriptor, spin_weights


@pytest.fixture
def desc():
    return SOSODescriptor(r_cut=6.0, n_max=6, l_max=4, sigma_s=0.6)


def test_radial_basis_is_orthonormal():
    d = SOSODescriptor(r_cut=7.0, n_max=5, radial_scaling=None)
    rc = d.r_cut
    k = np.pi * np.arange(1, 6) / rc
    g = lambda r, n: np.sqrt(2 / rc) * np.sin(k[n] * r) / r  # noqa: E731
    gram = np.array([[quad(lambda r: g(r, a) * g(r, b) * r**2, 0, rc)[0] for b in range(5)]
                     for a in range(5)])
    np.testing.assert_allclose(gram, np.eye(5), atol=1e-10)
    # R = f_cut · g vanishes smoothly at r_c
    R, dR = d.radial(np.array([rc - 1e-9, 3.0]))
    assert np.abs(R[0]).max() < 1e-12 and np.abs(dR[0]).max() < 1e-6


def test_spin_weights_limits():
    w = spin_weights(6, 0.5)
    assert w[0] == pytest.approx(1.0)
    assert np.all(np.diff(w) < 0)          # wide Gaussians suppress high l
    # narrow Gaussians: all channels, i_l/i_0 -> 1, w_l -> sqrt(2l+1)
    np.testing.assert_allclose(spin_weights(3, 0.001), np.sqrt(2 * np.arange(4) + 1), rtol=1e-4)
    # i_1(x)/i_0(x) = coth(x) - 1/x (Langevin function)
    x = 1 / 0.7**2
    assert spin_weights(1, 0.7)[1] == pytest.approx((1 / np.tanh(x) - 1 / x) ** 2 * np.sqrt(3))


def test_invariances(fe16, desc, rng):
    d0 = desc.compute(fe16)
    # one global spin rotation
    R = Rotation.random(random_state=1).as_matrix()
    rotated = fe16.copy()
    rotated.set_directions(fe16.directions @ R.T)
    np.testing.assert_allclose(desc.compute(rotated), d0, atol=1e-12)
    # a rotation + translation of the whole crystal (cell and positions), spins fixed
    moved = fe16.copy()
    Q = Rotation.random(random_state=2).as_matrix()
    moved.cell = fe16.cell @ Q.T
    moved.positions = fe16.positions @ Q.T + [0.3, -1.2, 4.0]
    np.testing.assert_allclose(SOSODescriptor(6.0, 6, 4, 0.6).compute(moved), d0, atol=1e-11)
    # permutation of atoms permutes descriptors
    perm = rng.permutation(len(fe16))
    shuffled = fe16.copy()
    shuffled.positions = fe16.positions[perm]
    shuffled.set_directions(fe16.directions[perm])
    np.testing.assert_allclose(SOSODescriptor(6.0, 6, 4, 0.6).compute(shuffled), d0[perm],
                               atol=1e-12)


def test_fm_descriptor(fe16, desc):
    fm = fe16.copy()
    fm.set_directions(np.tile([0.0, 0.6, 0.8], (len(fe16), 1)))
    np.testing.assert_allclose(desc.compute_fm(fe16), desc.compute(fm), atol=1e-12)


def test_spin_gradient_finite_differences(fe16, desc, rng):
    G = rng.normal(size=(2, len(fe16), desc.size))
    grad = desc.spin_gradient(fe16, G)
    eps = 1e-6
    for a in (0, 9):
        # the kernel drops self-image terms, which lie along e_a: compare transverse parts
        ea = fe16.directions[a]
        P = np.eye(3) - np.outer(ea, ea)
        fd = np.zeros((2, 3))
        for k in range(3):     # E = Σ G·d is defined off the sphere too
            e = fe16.directions.copy()
            e[a, k] += eps
            ep = np.einsum("mid,id->m", G, desc.compute(fe16, e))
            e[a, k] -= 2 * eps
            em = np.einsum("mid,id->m", G, desc.compute(fe16, e))
            fd[:, k] = (ep - em) / (2 * eps)
        np.testing.assert_allclose(grad[:, a] @ P, fd @ P, rtol=1e-6, atol=1e-8)


def test_position_gradient_finite_differences(fe16, desc, rng):
    fe16.positions += rng.normal(scale=0.1, size=fe16.positions.shape)
    G = rng.normal(size=(len(fe16), desc.size))
    grad = desc.position_gradient(fe16, G)
    eps = 1e-6
    for a in (1, 12):
        for k in range(3):
            energies = []
            for sign in (1, -1):
                probe = fe16.copy()
                probe.positions[a, k] += sign * eps
                energies.append(np.sum(G * SOSODescriptor(6.0, 6, 4, 0.6).compute(probe)))
            assert grad[a, k] == pytest.approx((energies[0] - energies[1]) / (2 * eps),
                                               rel=1e-6, abs=1e-8)


def test_compiled_matches_twin(fe16, rng):
    # required: without the extension, kernel=None would compare the twin with itself
    compiled = SOSODescriptor(7.0, 12, 6, 0.5, kernel=kernels.compiled("soso", required=True))
    twin = SOSODescriptor(7.0, 12, 6, 0.5, kernel=kernels.twin("soso"))
    np.testing.assert_allclose(compiled.compute(fe16), twin.compute(fe16), rtol=1e-12,
                               atol=1e-14)
    G = rng.normal(size=(3, len(fe16), compiled.size))
    np.testing.assert_allclose(compiled.spin_gradient(fe16, G), twin.spin_gradient(fe16, G),
                               rtol=1e-11, atol=1e-12)
