"""SpinSystem builders, spin initialisers and ASE interop."""
import numpy as np
import pytest
from scipy.stats import kstest

from otf_spin.io.extxyz import directions_from_file
from otf_spin.system import SpinSystem, bulk, ferromagnetic, random_cone, random_sphere


@pytest.mark.parametrize("lattice, atoms_per_cell, nn", [
    ("bcc", 2, np.sqrt(3) / 2), ("fcc", 4, 1 / np.sqrt(2)), ("sc", 1, 1.0),
    ("hcp", 4, 1.0)])
def test_builders(lattice, atoms_per_cell, nn):
    system = bulk(lattice, 2.5, (2, 3, 1), moment=1.7)
    assert len(system) == atoms_per_cell * 6
    np.testing.assert_allclose(system.magnitudes, 1.7)
    np.testing.assert_allclose(system.directions, [[0, 0, 1]] * len(system))
    nl = system.neighbours(2.5 * nn + 1e-6)
    assert nl.distances.min() == pytest.approx(2.5 * nn)


@pytest.mark.parametrize("lattice, atoms", [("bcc", 1), ("fcc", 1), ("sc", 1), ("hcp", 2)])
def test_primitive_cells(lattice, atoms):
    primitive = bulk(lattice, 2.5, primitive=True)
    conventional = bulk(lattice, 2.5)
    assert len(primitive) == atoms
    assert abs(np.linalg.det(primitive.cell)) / len(primitive) == pytest.approx(
        abs(np.linalg.det(conventional.cell)) / len(conventional))


def test_builder_errors():
    with pytest.raises(ValueError, match="unknown lattice"):
        bulk("diamondish", 3.0)
    with pytest.raises(ValueError, match="positive"):
        bulk("bcc", -1.0)


def test_random_sphere_is_uniform(rng):
    d = random_sphere(20000, rng)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    assert kstest(d[:, 2], "uniform", args=(-1, 2)).pvalue > 1e-3   # Archimedes
    assert kstest(np.arctan2(d[:, 1], d[:, 0]), "uniform", args=(-np.pi, 2 * np.pi)).pvalue > 1e-3


def test_random_cone(rng):
    axis = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    d = random_cone(5000, axis, np.radians(30), rng)
    cos = d @ axis
    assert cos.min() >= np.cos(np.radians(30)) - 1e-12
    assert kstest(cos, "uniform", args=(np.cos(np.radians(30)), 1 - np.cos(np.radians(30)))
                  ).pvalue > 1e-3
    with pytest.raises(ValueError):
        random_cone(3, axis, 4.0, rng)


def test_ferromagnetic_and_ase_round_trip(rng):
    system = bulk("bcc", 2.83, (2, 2, 2))
    system.set_directions(ferromagnetic(len(system), [1, 0, 0]))
    system.magnitudes = rng.uniform(1, 2, len(system))
    atoms = system.to_ase()
    assert atoms.get_initial_magnetic_moments().shape == (16, 3)
    back = SpinSystem.from_ase(atoms)
    np.testing.assert_allclose(back.moments, system.moments)
    np.testing.assert_allclose(back.cell, system.cell)
    assert list(back.species) == ["Fe"] * 16


def test_from_ase_without_moments():
    from ase.build import bulk as ase_bulk

    atoms = ase_bulk("Ni", "fcc", a=3.52, cubic=True)
    atoms.set_initial_magnetic_moments([0.6] * 4)   # collinear
    np.testing.assert_allclose(SpinSystem.from_ase(atoms).moments[:, 2], 0.6)
    atoms.set_initial_magnetic_moments(None)
    with pytest.raises(ValueError, match="no magnetic moments"):
        SpinSystem.from_ase(atoms)
    assert SpinSystem.from_ase(atoms, moment=0.6).magnitudes.tolist() == [0.6] * 4


def test_directions_from_file(tmp_path, rng):
    d = random_sphere(16, rng)
    np.savetxt(tmp_path / "spins.txt", 3 * d)
    np.testing.assert_allclose(directions_from_file(tmp_path / "spins.txt", 16), d)
    with pytest.raises(ValueError, match="expected 4 spin vectors"):
        directions_from_file(tmp_path / "spins.txt", 4)


def test_atoms_per_cell_matches_the_builders():
    """The memory check before building counts atoms with ATOMS_PER_CELL."""
    from otf_spin.system import ATOMS_PER_CELL, LATTICES

    for lattice in LATTICES:
        conventional, primitive = ATOMS_PER_CELL[lattice]
        assert len(bulk(lattice, 2.5, (2, 1, 3))) == 6 * conventional
        assert len(bulk(lattice, 2.5, primitive=True)) == primitive


@pytest.mark.parametrize("lattice", ["sc", "bcc", "fcc"])
def test_cubic_builders_are_ase_bulk_bit_for_bit(lattice):
    """The cubic cells built without ase.build are ase.build.bulk's (conventional and
    primitive), positions and cell bit for bit, after repeats too."""
    from ase.build import bulk as ase_bulk

    for a in (2.83, 3.52, 2.8665 * 1.013):
        for primitive in (False, True):
            for repeat in ((1, 1, 1), (2, 2, 2), (3, 1, 2)):
                ours = bulk(lattice, a, repeat, species="Ni", primitive=primitive)
                ref = ase_bulk("Ni", lattice, a=a, cubic=not primitive).repeat(repeat)
                assert np.array_equal(ours.positions, ref.positions)
                assert np.array_equal(ours.cell, ref.cell.array)
                assert list(ours.species) == ref.get_chemical_symbols()
