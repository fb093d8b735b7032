"""Kernels of the per-structure setup of the fast engine (neighbour search, pair
compression, spline couplings): compiled = pure-Python twin = the reference formula; the
engine built on the joint table of pairs() without a copy, and its FM reference."""
import numpy as np
import pytest

from otf_spin import kernels
from otf_spin.descriptors.spline2b import SplineExchangeDescriptor
from otf_spin.model import fast
from otf_spin.model.fast import DISTANCE_TOL
from otf_spin.system import bulk, neighbour_distances, neighbour_pairs, random_cone


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


def _lattice(repeat, rng, displaced=0.0, part=1.0):
    """bcc Fe 2.83 Å, repeat³ cells; the last ``part`` of the atoms displaced by
    N(0, displaced²) Å per component."""
    system = bulk("bcc", 2.83, (repeat,) * 3, moment=2.2)
    moved = np.arange(len(system)) >= (1.0 - part) * len(system)
    system.positions[moved] += rng.normal(0.0, displaced, (moved.sum(), 3))
    return system


def _pairs(system, rc):
    i, j, _, _, d = neighbour_pairs(system.cell, system.pbc, system.positions, rc)
    order = np.argsort(i, kind="stable")
    return i[order], j[order], d[order]


@pytest.mark.parametrize("repeat, displaced, part, rc", [
    (6, 0.0, 1.0, 7.0),      # lattice: 9 shells shared by all atoms
    (6, 0.07, 1.0, 7.0),     # every unordered pair its own group (the table grows)
    (6, 0.07, 0.5, 7.0),     # lattice groups first, then new ones at a rising rate
    (2, 0.0, 1.0, 7.0),      # narrow cell: several images of one (i, j), self images
    (2, 0.05, 1.0, 7.0),
    (3, 0.05, 1.0, 4.5)])
def test_compress_pairs_compiled_equals_twin(repeat, displaced, part, rc, rng):
    """gap.compress_pairs (hash with prefetch, per-atom quicksort, branchless search)
    returns what the numpy twin (np.unique, lexsort, searchsorted) returns, bit for bit
    and dtype for dtype; the slot structure is consistent (each pair's reverse in the
    neighbour's slot of its group; groups numbered by first occurrence)."""
    compiled = kernels.compiled("gap", required=True)
    system = _lattice(repeat, rng, displaced, part)
    i, j, d = _pairs(system, rc)
    a = compiled.compress_pairs(i, j, d, len(system), DISTANCE_TOL)
    b = kernels.twin("gap").compress_pairs(i, j, d, len(system), DISTANCE_TOL)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    soff, sp, srid, neigh, jslot, rep, self_atom, self_group = a
    assert len(neigh) + len(self_atom) == len(i)
    assert (len(self_atom) > 0) == (repeat == 2)
    slot = np.repeat(np.arange(len(srid)), np.diff(sp))       # of each pair
    slot_atom = np.repeat(np.arange(len(system)), np.diff(soff))
    rows = slot_atom[slot]
    back = soff[neigh] + jslot                                  # the neighbour's slot
    assert np.array_equal(srid[back], srid[slot]) and np.array_equal(slot_atom[back], neigh)
    # in each atom: slots by ascending group, pairs in a slot by ascending j
    key = rows.astype(np.int64) * (len(rep) + 1) + srid[slot]
    assert np.all(np.diff(key) >= 0)
    same = np.diff(key) == 0
    assert np.all(np.diff(neigh)[same] >= 0)
    # groups numbered by first occurrence, rep the first member's distance
    q = np.floor(d / DISTANCE_TOL + 0.5).astype(np.int64)
    _, first = np.unique(q, return_index=True)
    assert np.array_equal(rep, d[np.sort(first)])
    if displaced == 0.0 and repeat == 6:
        assert len(rep) == 9
    if displaced and part == 1.0 and repeat == 6:
        assert len(rep) == len(i) // 2             # one group per unordered pair


def test_compress_pairs_rejects_bad_lists(rng):
    compiled = kernels.compiled("gap", required=True)
    system = _lattice(3, rng, 0.05)
    i, j, d = _pairs(system, 4.5)
    for kernel in (compiled, kernels.twin("gap")):
        with pytest.raises(ValueError, match="ascending"):
            kernel.compress_pairs(i[::-1].copy(), j[::-1].copy(), d[::-1].copy(),
                                  len(system), DISTANCE_TOL)
        keep = np.ones(len(i), bool)
        keep[np.flatnonzero(j > i)[5]] = False      # one direction of a pair missing
        with pytest.raises(ValueError, match="symmetric"):
            kernel.compress_pairs(i[keep], j[keep], d[keep], len(system), DISTANCE_TOL)


def _as_rows(i, j, S, d):
    """Pairs sorted by (i, j, S), distances alongside."""
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return np.column_stack([i, j, S])[order], d[order]


@pytest.mark.parametrize("case", ["lattice", "displaced", "narrow", "skewed", "slab",
                                  "cluster", "crowded"])
def test_neighbour_distances_are_the_pairs(case, rng):
    """neighbour_distances gives the (i, j, d) of neighbour_pairs (same order, bit for
    bit), grouped by i ascending, for the compiled kernel and the twin; the compiled
    pairs are the twin's (ASE). "crowded": all atoms in one corner of a large cell, far
    above the mean density the kernel sizes its arrays for (they must grow)."""
    cutoff = 7.0
    pbc = (True, True, True)
    if case in ("lattice", "displaced", "narrow"):
        system = _lattice(2 if case == "narrow" else 5, rng, 0.07 if case != "lattice" else 0.0)
        cell, positions = system.cell, system.positions
    elif case == "skewed":
        cell = np.array([[9.1, 0.0, 0.0], [3.7, 8.6, 0.0], [-1.9, 2.1, 8.9]])
        positions = rng.random((40, 3)) @ cell
    elif case == "slab":
        cell = np.array([[8.5, 0.0, 0.0], [0.8, 8.2, 0.0], [0.0, 0.0, 30.0]])
        positions = rng.random((40, 3)) * [1.0, 1.0, 0.3] @ cell
        pbc = (True, True, False)
    elif case == "cluster":
        cell, pbc = np.zeros((3, 3)), (False, False, False)
        positions = rng.normal(0.0, 3.0, (60, 3))
    else:
        cell = np.diag([30.0, 30.0, 30.0])
        positions = rng.random((200, 3)) * 4.0 + 1.0
    compiled = kernels.compiled("neighbours", required=True)
    results = []
    for kernel in (compiled, kernels.twin("neighbours")):
        i, j, S, D, d = neighbour_pairs(cell, pbc, positions, cutoff, kernel=kernel)
        i2, j2, d2 = neighbour_distances(cell, pbc, positions, cutoff, kernel=kernel)
        for x, y in ((i, i2), (j, j2), (d, d2)):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        assert np.all(np.diff(i) >= 0) and len(i) > 0
        np.testing.assert_allclose(np.linalg.norm(D, axis=1), d, rtol=0, atol=1e-12)
        results.append(_as_rows(i, j, S, d))
    (ra, da), (rb, db) = results
    np.testing.assert_array_equal(ra, rb)
    np.testing.assert_allclose(da, db, rtol=0, atol=1e-12)
    if case == "narrow":
        assert len(np.unique(ra[:, :2], axis=0)) < len(ra)       # several images of a pair


@pytest.mark.parametrize("repeat, displaced", [(4, 0.0), (4, 0.07), (2, 0.05)])
def test_slot_sums_are_the_radial_sums_over_pairs(repeat, displaced, rng):
    """gap.slot_sums (each atom's sum of its slots' rows times their pair counts: the FM
    descriptor's radial part) equals the plain sum over the atom's pairs of their rows,
    compiled = twin bit for bit."""
    compiled = kernels.compiled("gap", required=True)
    system = _lattice(repeat, rng, displaced)
    i, j, d = _pairs(system, 7.0)
    soff, sp, srid, neigh, jslot, rep, self_atom, _ = compiled.compress_pairs(
        i, j, d, len(system), DISTANCE_TOL)
    rtab = rng.normal(size=(len(rep), 5))
    pair_slot = np.repeat(np.arange(len(srid)), np.diff(sp))
    pair_atom = np.repeat(np.arange(len(system)), np.diff(soff))[pair_slot]
    ref = np.zeros((len(system), 5))
    np.add.at(ref, pair_atom, rtab[srid[pair_slot]])
    out = np.full((len(system), 5), np.nan)
    compiled.slot_sums(soff, sp, srid, rtab, out)
    assert np.abs(out - ref).max() < 1e-13 * np.abs(ref).max()
    twin = np.full_like(out, np.nan)
    kernels.twin("gap").slot_sums(soff, sp, srid, rtab, twin)
    np.testing.assert_array_equal(out, twin)
    for kernel in (compiled, kernels.twin("gap")):
        with pytest.raises(ValueError):
            kernel.slot_sums(soff, sp, srid, rtab, np.empty((len(system), 4)))


# --- the engine's joint rows and FM reference (spline model, displaced cells) --------

@pytest.fixture(scope="module")
def spline_model():
    from test_fast_predict import _fit_spline
    return _fit_spline(n_max=8)


def _spin_lattice(repeat, rng, displaced):
    system = _lattice(repeat, rng, displaced)
    system.set_directions(random_cone(len(system), [0, 0, 1], 0.8, rng))
    return system


@pytest.mark.parametrize("repeat", [6, 3])      # wide cell (compiled compression), narrow
def test_engine_keeps_the_joint_rows(spline_model, repeat, rng, monkeypatch):
    """With the spline couplings, pairs() gives rtab and kappa as the column blocks of
    one (U, n_max + L) table, written in blocks of CHUNK rows (the same table bit for
    bit with blocks of 7); gap.joint_table finds that table (None for copies, another
    order or other shapes), and the engine built on it (no copy) gives the energies
    and fields of one built on contiguous copies, bit for bit."""
    compiled = kernels.compiled("gap", required=True)
    system = _spin_lattice(repeat, rng, 0.07)
    fp = fast.FastPredictor(spline_model, kernel=compiled)
    pairs, _ = fp.structure(system, couplings=fp.couplings)
    rtab, kappa = pairs["rtab"], pairs["kappa"]
    table = rtab.base
    assert kappa.base is table and table.flags.c_contiguous
    assert table.shape == (len(rtab), fp.n_max + fp.L) and len(rtab) > 1000 * (repeat == 6)
    assert compiled.joint_table(rtab, kappa) is table
    copies = np.ascontiguousarray(rtab), np.ascontiguousarray(kappa)
    assert compiled.joint_table(*copies) is None
    swapped = np.hstack([kappa, rtab])
    assert compiled.joint_table(swapped[:, fp.L:], swapped[:, :fp.L]) is None
    assert compiled.joint_table(rtab[:-1], kappa[:-1]) is None
    assert compiled.joint_table(rtab, table[:, fp.n_max + 1:]) is None
    monkeypatch.setattr(fast, "CHUNK", 7)
    np.testing.assert_array_equal(fp.structure(system, couplings=fp.couplings)[0]["rtab"].base,
                                  table)
    e = np.ascontiguousarray(system.directions)
    out = []
    for r, k in ((rtab, kappa), copies):
        args = dict(pairs, rtab=r, kappa=k)
        fm = fp.structure(system, couplings=fp.couplings)[1]
        d_fm = (fp.desc.w[None, :, None] * fm[:, None, :]).reshape(len(system), -1)
        engine = compiled.GapEngine(**args, w=np.ascontiguousarray(fp.desc.w),
                                    d_fm=np.ascontiguousarray(d_fm), v=fp.v, S=fp.S,
                                    alpha=fp.alpha, kstart=fp.kstart, zeta=fp.zeta,
                                    normalize=fp.normalize, masks=fp.masks,
                                    e_ref=np.zeros(len(system)))
        assert engine.shell is False
        fields = np.empty((len(system), 3))
        engine.field(e, np.ones(len(system)), np.zeros(3), fields)
        out.append((np.array(engine.energies), fields))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


@pytest.mark.parametrize("which", ["spline", "exchange-2b", "recursion"])
def test_fm_energies_equal_the_fm_evaluation(spline_model, which, rng):
    """engine.fm_energies() (the FM reference: from d_fm by the kernel stage alone where
    the pair sums are exactly 0 at FM) equals compute() at FM bit for bit, the
    descriptor stage not run where it takes that path (power basis), and the twin's
    to 1e-12 of the largest; with it as the reference FM gives exactly 0."""
    from test_fast_predict import _fit, _fit_spline
    model = {"spline": lambda: spline_model, "exchange-2b": lambda: _fit(n_max=12),
             "recursion": lambda: _fit_spline(n_max=8, l_max=8, n_sparse=15,
                                              spline={"l_max": 8})}[which]()
    system = _spin_lattice(3, rng, 0.07)
    n = len(system)
    fm = np.tile([0.0, 0.0, 1.0], (n, 1))
    engines = {}
    for name in ("compiled", "twin"):
        kernel = kernels.compiled("gap", required=True) if name == "compiled" \
            else kernels.twin("gap")
        engine = fast.FastPredictor(model, kernel=kernel).engine(system)
        engine.set_reference(np.zeros(n))
        engines[name] = engine
    compiled = engines["compiled"]
    assert compiled.shell is False
    compiled.reset_profile()
    got = compiled.fm_energies()
    shortcut = which != "recursion"
    assert (compiled.profile["calls"] == 0) == shortcut
    np.testing.assert_array_equal(got, compiled.energies)
    compiled.compute(fm, False)
    np.testing.assert_array_equal(got, compiled.energies)
    assert np.abs(got).max() > 1e-3
    twin = engines["twin"].fm_energies()
    assert np.abs(twin - got).max() <= 1e-12 * np.abs(got).max()
    for engine in engines.values():
        engine.set_reference(engine.fm_energies())
        assert engine.compute(fm, False) == 0.0 and not np.any(engine.energies)
