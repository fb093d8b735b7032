"""Beyond-Heisenberg terms of the embedded oracle: analytic fields and forces against
finite differences, rotation (in)variances, special values by hand, counting of images
and triangles, FM reference, routing away from the compiled provider, LLG energy
conservation, yardstick examples."""
import os

import numpy as np
import pytest
import scipy.constants as sc
from scipy.spatial.transform import Rotation
from test_heisenberg import fd_forces, transverse_fd_gradient

from otf_spin.cli import main
from otf_spin.core import ConfigError, Frame
from otf_spin.dynamics.llg import LLGIntegrator, new_state
from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo
from otf_spin.dynamics.providers import ComputeProvider, HeisenbergProvider, make_provider
from otf_spin.io.extxyz import write_frames
from otf_spin.oracles import from_block, load_file
from otf_spin.system import SpinSystem, bulk, random_cone, random_sphere
from otf_spin.units import MEV

A = 2.83
NN, NNN = A * np.sqrt(3) / 2, A
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "input_examples")
TERMS = {
    "biquadratic": {"biquadratic": [[NN, 0.4], [NNN, -0.3]]},
    "pseudo_dipolar": {"pseudo_dipolar": [[NN, 0.4], [NNN, 0.2]]},
    "three_spin": {"three_spin": {"K": 0.3, "shells": [NN, NNN]}},
    "triangle": {"triangle": {"K": 0.3, "shells": [NN, NNN]}},
    "dipolar": {"dipolar": {"cutoff": 6.0}},
    "uniaxial": {"uniaxial_anisotropy": {"K": 0.5, "axis": [1.0, 1.0, 0.0]}},
    "cubic": {"cubic_anisotropy": {"K": 0.5}},
}
EXCHANGE_TYPE = ("biquadratic", "three_spin", "triangle")
DIPOLE_TYPE = ("pseudo_dipolar", "dipolar")
SLAVING = {"m0": 2.2, "dm": 0.6}


def oracle(*names, J=(19.48, 11.09), slaving=None, convention="double_counted", **extra):
    """Oracle block: bilinear shells J (meV) plus the named TERMS (Å distances)."""
    block = {"type": "heisenberg", "convention": convention, "distance_unit": "angstrom",
             "shells": [[NN, J[0]], [NNN, J[1]]], **extra}
    for name in names:
        block.update(TERMS[name])
    if slaving:
        block["moment_slaving"] = slaving
    return from_block(block)


def absolute(result):
    return result["energy"] + result["energy_fm"]


def displaced(rng, scale=0.01):
    """16-atom bcc Fe, random spins, atoms displaced within the shell tolerance."""
    system = bulk("bcc", A, (2, 2, 2))
    system.set_directions(random_sphere(len(system), rng))
    system.positions += rng.normal(scale=scale, size=system.positions.shape)
    return system


@pytest.mark.parametrize("slaving", [None, SLAVING], ids=["fixed", "slaved"])
@pytest.mark.parametrize("name", TERMS)
def test_fields_match_finite_differences(rng, name, slaving):
    system = displaced(rng)
    only = oracle(name, J=(0.0, 0.0))
    both = oracle(name, slaving=slaving)
    ref = oracle(slaving=slaving).compute(system)
    for o in (only, both):
        results = o.compute(system)
        M = np.linalg.norm(results["magmoms"], axis=1)
        for i in (0, 5, 11):
            fd = transverse_fd_gradient(o, system, i)
            np.testing.assert_allclose(results["fields"][i], -fd / M[i], atol=3e-9)
            assert abs(results["fields"][i] @ system.directions[i]) < 1e-12
    # the term is really there: its own fields are not small
    term_fields = both.compute(system)["fields"] - ref["fields"]
    assert np.abs(term_fields).max() > 1e-5


@pytest.mark.parametrize("name", TERMS)
def test_forces_match_finite_differences(rng, name):
    system = displaced(rng)
    o = oracle(name, slaving=SLAVING)
    forces = o.compute(system)["forces"]
    if name in DIPOLE_TYPE:            # r̂ (and 1/r³) depend on positions
        assert np.abs(forces).max() > 1e-5
    else:                              # shell-constant or single-ion: no forces
        np.testing.assert_array_equal(forces, 0.0)
    np.testing.assert_allclose(forces[[0, 7]], fd_forces(o, system, (0, 7)), atol=2e-9)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", EXCHANGE_TYPE)
def test_exchange_type_terms_invariant_under_global_spin_rotation(rng, name):
    system = displaced(rng)
    o = oracle(name, slaving=SLAVING)
    ref = o.compute(system)
    R = Rotation.random(random_state=5).as_matrix()
    rotated = system.copy()
    rotated.set_directions(system.directions @ R.T)
    out = o.compute(rotated)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["fields"], ref["fields"] @ R.T, atol=1e-12)


def rotate_jointly(system, R):
    return SpinSystem(system.cell @ R.T, system.positions @ R.T, system.species,
                      directions=system.directions @ R.T, magnitudes=system.magnitudes,
                      pbc=system.pbc)


@pytest.mark.parametrize("name", DIPOLE_TYPE)
def test_dipole_type_terms_need_joint_rotation(rng, name):
    """Invariant when spins AND positions rotate together; not under spins alone."""
    system = displaced(rng)
    o = oracle(name, J=(0.0, 0.0))
    ref = o.compute(system)
    R = Rotation.random(random_state=7).as_matrix()
    joint = o.compute(rotate_jointly(system, R))
    assert absolute(joint) == pytest.approx(absolute(ref), rel=1e-10)
    np.testing.assert_allclose(joint["fields"], ref["fields"] @ R.T, atol=1e-12)
    np.testing.assert_allclose(joint["forces"], ref["forces"] @ R.T, atol=1e-12)
    spins_only = system.copy()
    spins_only.set_directions(system.directions @ R.T)
    moved = o.compute(spins_only)
    assert abs(absolute(moved) - absolute(ref)) > 1e-3 * abs(absolute(ref))


def dimer(separation, e1, e2, moment=2.2):
    system = SpinSystem(np.eye(3) * 20.0, [[0, 0, 0], [separation, 0, 0]], "Fe",
                        pbc=False, magnitudes=moment)
    system.set_directions([e1, e2])
    return system


def test_dipolar_dimer_head_to_tail_and_side_by_side():
    """E = (μ0/4π) m² μB²/r³ [e1·e2 - 3(e1·r̂)(e2·r̂)] in SI (scipy.constants), both ways."""
    r, m = 2.5, 2.2
    o = oracle("dipolar", J=(0.0, 0.0))
    mu_b = sc.physical_constants["Bohr magneton"][0]
    scale = sc.mu_0 / (4 * np.pi) * (m * mu_b) ** 2 / (r * 1e-10) ** 3 / sc.e   # eV
    head_to_tail = absolute(o.compute(dimer(r, [1, 0, 0], [1, 0, 0], m)))
    side_by_side = absolute(o.compute(dimer(r, [0, 0, 1], [0, 0, 1], m)))
    antiparallel = absolute(o.compute(dimer(r, [0, 0, 1], [0, 0, -1], m)))
    assert head_to_tail == pytest.approx(-2 * scale, rel=1e-9)
    assert side_by_side == pytest.approx(scale, rel=1e-9)
    assert antiparallel == pytest.approx(-scale, rel=1e-9)
    assert scale == pytest.approx(1.663e-5, rel=1e-3)            # ≈ 0.017 meV
    # beyond the cutoff: nothing
    assert absolute(o.compute(dimer(6.5, [1, 0, 0], [1, 0, 0], m))) == 0.0


def test_pseudo_dipolar_dimer_by_hand():
    system = dimer(NN, [1, 0, 0], [1, 0, 0])
    o = from_block({"type": "heisenberg", "convention": "per_pair", "distance_unit": "angstrom",
                    "shells": [[NN, 0.0]], "pseudo_dipolar": [[NN, 0.4]]})
    assert absolute(o.compute(system)) == pytest.approx(-0.4 * MEV * 2, rel=1e-12)
    system.set_directions([[0, 1, 0], [0, 0, 1]])
    assert absolute(o.compute(system)) == pytest.approx(0.0, abs=1e-15)
    system.set_directions([[0, 1, 0], [0, 1, 0]])
    assert absolute(o.compute(system)) == pytest.approx(0.4 * MEV, rel=1e-12)


def test_conventions_for_pair_terms(rng):
    """per_pair constants twice the double_counted ones give the same energies."""
    system = displaced(rng)
    dc = from_block({"type": "heisenberg", "convention": "double_counted",
                     "distance_unit": "angstrom", "shells": [[NN, 1.0]],
                     "biquadratic": [[NN, 0.3]], "pseudo_dipolar": [[NNN, 0.2]]})
    pp = from_block({"type": "heisenberg", "convention": "per_pair",
                     "distance_unit": "angstrom", "shells": [[NN, 2.0]],
                     "biquadratic": [[NN, 0.6]], "pseudo_dipolar": [[NNN, 0.4]]})
    a, b = dc.compute(system), pp.compute(system)
    assert a["energy"] == pytest.approx(b["energy"], rel=1e-12)
    np.testing.assert_allclose(a["fields"], b["fields"], rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(a["forces"], b["forces"], rtol=1e-11, atol=1e-15)


def two_sublattices(e_corner, e_centre, repeat=(2, 2, 2)):
    system = bulk("bcc", A, repeat)
    corner = np.isclose((system.positions / (A / 2)).round().sum(axis=1) % 2, 0)
    system.set_directions(np.where(corner[:, None], e_corner, e_centre))
    return system


def test_biquadratic_by_hand():
    """Sublattices at 90°: every first-shell (e_i·e_j)² drops from 1 to 0: E - E_FM =
    N·8·B (double counted); antiparallel sublattices cost nothing."""
    o = from_block({"type": "heisenberg", "convention": "double_counted",
                    "distance_unit": "angstrom", "shells": [[NN, 0.0]],
                    "biquadratic": [[NN, 0.4]]})
    assert o.compute(two_sublattices([0, 0, 1.0], [1.0, 0, 0]))["energy"] == \
        pytest.approx(16 * 8 * 0.4 * MEV, rel=1e-12)
    assert o.compute(two_sublattices([0, 0, 1.0], [0, 0, -1.0]))["energy"] == \
        pytest.approx(0.0, abs=1e-15)


def test_three_spin_and_triangle_counts():
    """FM energies count the terms: C(8, 2) = 28 first-shell neighbour pairs per centre;
    12 triangles (two first-shell and one second-shell edge) per atom."""
    fm = bulk("bcc", A, (2, 2, 2))
    three = from_block({"type": "heisenberg", "convention": "double_counted",
                        "distance_unit": "angstrom", "shells": [[NN, 0.0]],
                        "three_spin": {"K": 0.3, "shells": [NN]}})
    assert three.compute(fm)["energy_fm"] == pytest.approx(-16 * 28 * 0.3 * MEV, rel=1e-12)
    tri = oracle("triangle", J=(0.0, 0.0))
    assert tri.compute(fm)["energy_fm"] == pytest.approx(-16 * 12 * 0.3 * MEV, rel=1e-12)
    # sublattices antiparallel: every triangle has two antiparallel edges, product +1
    assert tri.compute(two_sublattices([0, 0, 1.0], [0, 0, -1.0]))["energy"] == \
        pytest.approx(0.0, abs=1e-15)
    # ...at 90°: the two first-shell dot products vanish
    assert tri.compute(two_sublattices([0, 0, 1.0], [1.0, 0, 0]))["energy"] == \
        pytest.approx(16 * 12 * 0.3 * MEV, rel=1e-12)


def tile(small, repeat):
    """bulk bcc cell ``repeat`` carrying the spins of the periodic cell ``small``."""
    big = bulk("bcc", A, repeat)
    period = np.diag(small.cell)
    key = lambda p: tuple(np.round((p % period) / (A / 2)).astype(int) % np.round(  # noqa
        period / (A / 2)).astype(int))
    index = {key(p): k for k, p in enumerate(small.positions)}
    big.set_directions(small.directions[[index[key(p)] for p in big.positions]])
    return big


@pytest.mark.parametrize("name", TERMS)
def test_periodic_images_counted_consistently(rng, name):
    """One periodic spin state in cells of 2 atoms (neighbours are images of the atom
    itself), 16 and 128 atoms: the energy per atom is the same. On two sublattices the
    dipole-type sums over whole cubic shells vanish, so they are checked on 16 -> 128."""
    o = oracle(name, J=(0.0, 0.0))
    two = bulk("bcc", A, (1, 1, 1))
    two.set_directions(random_sphere(2, rng))
    sixteen = bulk("bcc", A, (2, 2, 2))
    sixteen.set_directions(random_sphere(16, rng))
    for small, repeats in ((two, [(1, 1, 1), (2, 2, 2)]), (sixteen, [(2, 2, 2), (4, 4, 4)])):
        per_atom = [absolute(o.compute(tile(small, r))) / (2 * np.prod(r)) for r in repeats]
        assert per_atom[0] == pytest.approx(absolute(o.compute(small)) / len(small),
                                            rel=1e-12, abs=1e-18)
        if name not in DIPOLE_TYPE or len(small) == 16:
            assert abs(per_atom[0]) > 1e-6
        assert per_atom[1] == pytest.approx(per_atom[0], rel=1e-10, abs=1e-15)


def test_cubic_anisotropy_minima():
    o = oracle("cubic", J=(0.0, 0.0))
    system = bulk("bcc", A, (1, 1, 1))
    K = 0.5 * MEV
    for direction, energy in (([1, 0, 0], 0.0), ([0, 1, 1], K / 4), ([1, 1, 1], K / 3)):
        system.set_directions(np.tile(np.asarray(direction, float), (2, 1)))
        out = o.compute(system)
        assert absolute(out) == pytest.approx(2 * energy, abs=1e-18)
        np.testing.assert_allclose(out["fields"], 0.0, atol=1e-15)   # stationary points
    rng = np.random.default_rng(4)
    system.set_directions(random_sphere(2, rng))
    assert absolute(o.compute(system)) > 0.0                         # ⟨100⟩ is the minimum


def test_uniaxial_reference_direction():
    """Energies are relative to the FM state along fm_direction (default z)."""
    system = bulk("bcc", A, (2, 2, 2))
    easy = oracle("uniaxial", J=(0.0, 0.0), fm_direction=[1.0, 1.0, 0.0])
    default = oracle("uniaxial", J=(0.0, 0.0))
    system.set_directions(np.tile([1.0, 1.0, 0.0], (16, 1)))
    assert easy.compute(system)["energy"] == pytest.approx(0.0, abs=1e-18)
    out = default.compute(system)
    assert out["energy"] == pytest.approx(-16 * 0.5 * MEV, rel=1e-12)   # z is hard: (n·z)=0
    assert out["energy_fm"] == pytest.approx(0.0, abs=1e-18)
    assert absolute(out) == pytest.approx(absolute(easy.compute(system)), rel=1e-12)


def test_ferromagnetic_reference_of_isotropic_terms_is_direction_free(rng):
    o = oracle("biquadratic", "three_spin", "triangle", "pseudo_dipolar", "dipolar")
    system = bulk("bcc", A, (2, 2, 2))        # ideal cubic lattice
    for direction in ([0, 0, 1.0], [0.3, -0.2, 0.9], [1.0, 0, 0]):
        system.set_directions(np.tile(direction, (16, 1)))
        out = o.compute(system)
        assert out["energy"] == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(out["fields"], 0.0, atol=1e-12)


def test_slaving_still_follows_eq41_with_terms(rng):
    plain = oracle(slaving=SLAVING)
    system = displaced(rng)
    for name in TERMS:
        o = oracle(name, slaving=SLAVING)
        np.testing.assert_allclose(o.compute(system)["magmoms"],
                                   plain.compute(system)["magmoms"], rtol=1e-14)


def test_compiled_consumers_refuse_and_llg_routes_to_compute(fe16):
    o = oracle("triangle")
    provider = make_provider(o, fe16)
    assert isinstance(provider, ComputeProvider)
    with pytest.raises(ValueError, match="triangle"):
        HeisenbergProvider(o, fe16)
    with pytest.raises(ValueError, match="beyond bilinear"):
        HeisenbergMonteCarlo(o, fe16)
    assert isinstance(make_provider(oracle(), fe16), HeisenbergProvider)


def test_llg_conserves_energy_without_damping(rng):
    """α = 0, T = 0 through ComputeProvider: the energy drift over 20 fs vanishes at
    least as dt² (about dt³ here: the provider normalises the midpoint spins)."""
    system = bulk("bcc", A, (2, 2, 2))
    system.set_directions(random_cone(len(system), [0, 0, 1], 0.8, rng))
    provider = make_provider(oracle(*TERMS), system)            # every term at once
    e0 = provider.energy(system.directions)
    drifts = []
    for dt in (4e-5, 2e-5):                                   # ps
        state = new_state(system.directions, 1)
        integrator = LLGIntegrator("sib", dt, 0.0)
        drift = 0.0
        for step in range(int(round(0.02 / dt))):
            integrator.step(state, provider)
            if step % 5 == 4:
                drift = max(drift, abs(provider.energy(state.directions) - e0))
        drifts.append(drift)
    assert np.abs(state.directions - system.directions).max() > 0.05      # it moved
    assert drifts[1] < 1e-5 * abs(e0)
    assert drifts[0] / drifts[1] > 3.5


@pytest.mark.parametrize("name, terms", [
    ("oracle_bccFe_biquadratic_triangle.yaml", ("biquadratic", "triangle")),
    ("oracle_bccFe_pseudo_dipolar.yaml", ("pseudo_dipolar",))])
def test_yardstick_examples(rng, name, terms):
    o = load_file(os.path.join(EXAMPLES, name))
    assert [t.key for t in o.hamiltonian.terms] == list(terms)
    bilinear = load_file(os.path.join(EXAMPLES, "oracle_bccFe_shells.yaml"))
    system = bulk("bcc", A, (2, 2, 2))
    system.set_directions(random_cone(16, [0, 0, 1], 1.2, rng))
    extra = o.compute(system)["energy"] - bilinear.compute(system)["energy"]
    assert 1e-5 < abs(extra) / 16 < 2e-2          # 0.01 to 20 meV per atom


def test_missing_distance_unit_is_an_error():
    block = {"type": "heisenberg", "convention": "per_pair", "shells": [[0.866, 19.48]]}
    with pytest.raises(ConfigError, match="distance_unit: required with shells"):
        from_block(block)
    block = {"type": "heisenberg", "convention": "per_pair", "pairs": [[0, 1, 0, 0, 0, 1.0]],
             "dipolar": {"cutoff": 5.0}}
    with pytest.raises(ConfigError, match="distance_unit: required with dipolar"):
        from_block(block)


@pytest.mark.parametrize("key, block", [
    ("shells", {"shells": [[0.866, 19.48], [1.0, 11.09]]}),
    ("biquadratic", {"shells": [[NN, 19.48]], "biquadratic": [[NN, 0.3], [3.5, 0.1]]}),
    ("triangle", {"shells": [[NN, 19.48]], "triangle": {"K": 0.3, "shells": [1.0]}}),
])
def test_a_shell_matching_no_pair_is_an_error_naming_it(fe16, key, block):
    o = from_block({"type": "heisenberg", "convention": "double_counted",
                    "distance_unit": "angstrom", **block})
    with pytest.raises(ConfigError, match=rf"{key}: the shell at .* matches no pair"):
        o.compute(fe16)


def test_label_refuses_shells_in_the_wrong_unit(tmp_path, fe16, capsys):
    """Shells of a (0.866, 1.0) read as Å match nothing: one-line error, exit 2, no output
    (never a set of frames labelled 0.0)."""
    oracle_file = tmp_path / "oracle.yaml"
    oracle_file.write_text("type: heisenberg\nconvention: double_counted\n"
                           "distance_unit: angstrom\nshells: [[0.866, 19.48], [1.0, 11.09]]\n")
    write_frames(tmp_path / "in.xyz", [Frame(fe16)])
    out = tmp_path / "out.xyz"
    assert main(["label", "--oracle", str(oracle_file), "--data", str(tmp_path / "in.xyz"),
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shells: the shell at 0.8660 Å matches no pair" in err
    assert "distance_unit: lattice" in err and not out.exists()
