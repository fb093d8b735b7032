"""Neighbour lists: compiled kernel and ASE twin against brute force, skewed cells,
cutoffs beyond half the cell (several images of one pair)."""
import itertools

import numpy as np
import pytest

from otf_spin import kernels
from otf_spin.system import bulk, neighbour_list


def brute_force(cell, pbc, positions, cutoff):
    """Every (i, j, S) with |r_j + S·cell - r_i| < cutoff by explicit image enumeration."""
    widths = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    span = [int(np.ceil(cutoff / w)) + 1 if p else 0 for w, p in zip(widths, pbc)]
    found = set()
    for S in itertools.product(*[range(-m, m + 1) for m in span]):
        shift = np.asarray(S) @ cell
        for i, j in itertools.product(range(len(positions)), repeat=2):
            if i == j and not any(S):
                continue
            d = np.linalg.norm(positions[j] + shift - positions[i])
            if d < cutoff:
                found.add((i, j) + tuple(S))
    return found


def as_set(nl):
    return {(int(i), int(j)) + tuple(int(x) for x in s) for i, j, s in zip(nl.i, nl.j, nl.shifts)}


CELLS = {
    "bcc16": (bulk("bcc", 2.83, (2, 2, 2)).cell, (True, True, True)),
    "skewed": (np.array([[4.1, 0.0, 0.0], [1.7, 3.6, 0.0], [-0.9, 1.1, 3.9]]), (True,) * 3),
    "very_skewed": (np.array([[3.0, 0.0, 0.0], [2.6, 1.5, 0.0], [1.2, -2.1, 2.2]]), (True,) * 3),
    "slab": (np.array([[3.5, 0.0, 0.0], [0.8, 3.2, 0.0], [0.0, 0.0, 9.0]]), (True, True, False)),
}


@pytest.mark.parametrize("implementation", ["compiled", "twin"])
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("cutoff", [2.5, 7.0])
def test_against_brute_force(implementation, name, cutoff, rng):
    cell, pbc = CELLS[name]
    cell = np.asarray(cell, float)
    n = 5
    frac = rng.random((n, 3)) * 1.6 - 0.3  # some atoms outside the cell on purpose
    positions = frac @ cell
    module = kernels.compiled("neighbours") if implementation == "compiled" else \
        kernels.twin("neighbours")
    assert module is not None, "compiled neighbour kernel was not built"
    nl = neighbour_list(cell, pbc, positions, cutoff, kernel=module)
    assert as_set(nl) == brute_force(cell, pbc, positions, cutoff)
    # vectors and distances consistent with shifts
    rows = nl.i
    expect = positions[nl.j] + nl.shifts @ cell - positions[rows]
    np.testing.assert_allclose(nl.vectors, expect, atol=1e-10)
    np.testing.assert_allclose(nl.distances, np.linalg.norm(expect, axis=1), atol=1e-10)
    assert np.all(nl.distances < cutoff)


def test_compiled_matches_twin_exactly_in_order(rng):
    system = bulk("bcc", 2.83, (3, 2, 2))
    system.positions += rng.normal(scale=0.1, size=system.positions.shape)
    # required: without the extension, kernel=None would compare the twin with itself
    a = system.neighbours(7.0, kernel=kernels.compiled("neighbours", required=True))
    b = system.neighbours(7.0, kernel=kernels.twin("neighbours"))
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.j, b.j)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    np.testing.assert_allclose(a.distances, b.distances, rtol=1e-13)


def test_paper_cell_images_beyond_half_width():
    """16-atom cell (5.66 Å wide), r_c = 7 Å: bcc shells to 7 Å give 64 neighbours
    (8+6+12+24+8+6... within 7 Å) and atom pairs through several images."""
    system = bulk("bcc", 2.83, (2, 2, 2))
    nl = system.neighbours(7.0)
    counts = np.diff(nl.offsets)
    a = 2.83
    shells = np.array([np.sqrt(3) / 2, 1, np.sqrt(2), np.sqrt(11) / 2, np.sqrt(3), 2,
                       np.sqrt(19) / 2, np.sqrt(5), np.sqrt(6)]) * a
    multiplicity = np.array([8, 6, 12, 24, 8, 6, 24, 24, 24])
    expected = int(multiplicity[shells < 7.0].sum())
    assert np.all(counts == expected)
    # one pair (0, j) appears through more than one image
    pairs = list(zip(nl.i[: counts[0]], nl.j[: counts[0]]))
    assert max(pairs.count(p) for p in set(pairs)) > 1


def test_symmetric_full_list(rng):
    system = bulk("fcc", 3.6, (2, 2, 2))
    system.positions += rng.normal(scale=0.05, size=system.positions.shape)
    nl = system.neighbours(5.0)
    forward = {(i, j) + tuple(s) for i, j, s in zip(nl.i, nl.j, nl.shifts.tolist())}
    backward = {(j, i) + tuple(-x for x in s) for i, j, s in zip(nl.i, nl.j, nl.shifts.tolist())}
    assert forward == backward


def test_open_cluster_has_no_images():
    positions = np.array([[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [10, 10, 10]], float)
    nl = neighbour_list(np.zeros((3, 3)), (False,) * 3, positions, 3.0)
    assert as_set(nl) == {(0, 1, 0, 0, 0), (1, 0, 0, 0, 0), (0, 2, 0, 0, 0), (2, 0, 0, 0, 0)}


def test_bad_cutoff():
    with pytest.raises(ValueError, match="cutoff"):
        bulk("bcc", 2.83).neighbours(0.0)
