"""Heisenberg oracle: analytic fields and forces against finite differences,
conventions, FM reference, moment slaving (paper Eq. 41), symmetry."""
import numpy as np
import pytest

from otf_spin import kernels
from otf_spin.oracles.heisenberg import (FormulaExchange, HeisenbergOracle, PairExchange,
                                         ShellExchange, convert_convention)
from otf_spin.system import bulk, random_cone, random_sphere
from otf_spin.units import MEV

A = 2.83
SHELLS = ShellExchange([np.sqrt(3) / 2 * A, A], [19.48 * MEV, 11.09 * MEV], 0.05)
EQ43 = FormulaExchange(0.94, 2.0, 1.4 * A)


def transverse_fd_gradient(oracle, system, i, eps=1e-6):
    """-(1/|m_i|)(1 - e eᵀ) ∂E/∂e_i by central differences on the sphere (tangent basis)."""
    e = system.directions[i]
    helper = np.array([1.0, 0, 0]) if abs(e[0]) < 0.9 else np.array([0, 1.0, 0])
    t1 = np.cross(e, helper)
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(e, t1)
    grad = np.zeros(3)
    for t in (t1, t2):
        energies = []
        for sign in (1, -1):
            probe = system.copy()
            d = probe.directions.copy()
            d[i] = np.cos(eps) * e + np.sin(sign * eps) * t
            probe.directions = d
            energies.append(oracle.compute(probe)["energy"])
        grad += (energies[0] - energies[1]) / (2 * eps) * t
    return grad


def fd_forces(oracle, system, atoms, eps=1e-5):
    """-∂(energy + energy_fm)/∂r of ``atoms`` (len, 3) by central differences (eV/Å)."""
    forces = np.zeros((len(atoms), 3))
    for row, i in enumerate(atoms):
        for k in range(3):
            energies = []
            for sign in (1, -1):
                probe = system.copy()
                probe.positions[i, k] += sign * eps
                out = oracle.compute(probe)
                energies.append(out["energy"] + out["energy_fm"])  # absolute energy
            forces[row, k] = -(energies[0] - energies[1]) / (2 * eps)
    return forces


@pytest.mark.parametrize("slaving", [None, {"m0": 2.2, "dm": 0.6}])
@pytest.mark.parametrize("exchange", [SHELLS, EQ43], ids=["shells", "eq43"])
def test_fields_match_finite_differences(fe16, exchange, slaving):
    oracle = HeisenbergOracle(exchange, "double_counted", slaving=slaving)
    results = oracle.compute(fe16)
    magnitudes = np.linalg.norm(results["magmoms"], axis=1)
    for i in (0, 5, 11):
        fd = transverse_fd_gradient(oracle, fe16, i)
        np.testing.assert_allclose(results["fields"][i], -fd / magnitudes[i], atol=2e-8)
        assert abs(results["fields"][i] @ fe16.directions[i]) < 1e-12


@pytest.mark.parametrize("slaving", [None, {"m0": 2.2, "dm": 0.6}])
def test_forces_match_finite_differences(fe16, rng, slaving):
    fe16.positions += rng.normal(scale=0.07, size=fe16.positions.shape)
    oracle = HeisenbergOracle(EQ43, "double_counted", slaving=slaving)
    forces = oracle.compute(fe16)["forces"]
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(forces[[0, 7]], fd_forces(oracle, fe16, (0, 7)), atol=1e-7)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-12)  # Newton's third law


def test_ferromagnetic_reference_is_zero_and_minimum(fe16):
    oracle = HeisenbergOracle(SHELLS, "double_counted")
    fm = fe16.copy()
    fm.set_directions(np.tile([0.3, -0.2, 0.9], (len(fm), 1)))
    result = oracle.compute(fm)
    assert result["energy"] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(result["fields"], 0.0, atol=1e-12)
    assert oracle.compute(fe16)["energy"] > 0.0


def test_energy_by_hand_two_shells():
    """All spins of one bcc sublattice flipped (B2 antiferromagnet): each atom's 8 J1
    bonds are antiparallel and 6 J2 bonds parallel: E - E_FM = N·8·2·J1 (double counted)."""
    system = bulk("bcc", A, (2, 2, 2))
    corner = np.isclose((system.positions / (A / 2)).round().sum(axis=1) % 2, 0)
    d = np.where(corner[:, None], [0, 0, 1.0], [0, 0, -1.0])
    system.set_directions(d)
    e = HeisenbergOracle(SHELLS, "double_counted").compute(system)["energy"]
    assert e == pytest.approx(16 * 8 * 2 * 19.48 * MEV, rel=1e-12)


def test_conventions_convert(fe16):
    J_dc = np.array([19.48, 11.09]) * MEV
    J_pp = convert_convention(J_dc, "double_counted", "per_pair")
    np.testing.assert_allclose(J_pp, 2 * J_dc)
    a = HeisenbergOracle(ShellExchange(SHELLS.distances, J_dc, 0.05), "double_counted")
    b = HeisenbergOracle(ShellExchange(SHELLS.distances, J_pp, 0.05), "per_pair")
    ra, rb = a.compute(fe16), b.compute(fe16)
    assert ra["energy"] == pytest.approx(rb["energy"], rel=1e-13)
    np.testing.assert_allclose(ra["fields"], rb["fields"], rtol=1e-12, atol=1e-15)
    assert np.round(convert_convention(J_pp, "per_pair", "double_counted"), 15) == \
        pytest.approx(J_dc)


def test_explicit_pairs_equal_shells_on_a_dimer():
    system = bulk("sc", 3.0, (4, 1, 1))
    system.pbc[:] = (False, False, False)
    system.set_directions([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, -1]])
    pairs = HeisenbergOracle(PairExchange([(0, 1, 0, 0, 0), (1, 2, 0, 0, 0), (2, 3, 0, 0, 0)],
                                          [0.01] * 3), "per_pair")
    shells = HeisenbergOracle(ShellExchange([3.0], [0.01], 0.05), "per_pair")
    assert pairs.compute(system)["energy"] == pytest.approx(shells.compute(system)["energy"])
    # per_pair: each bond once: E - E_FM = -Σ J (c - 1) over the three bonds, all c = 0
    assert pairs.compute(system)["energy"] == pytest.approx(0.01 * 3, rel=1e-12)


def test_global_spin_rotation_invariance(fe16, rng):
    oracle = HeisenbergOracle(EQ43, "double_counted", slaving={"m0": 2.2, "dm": 0.6})
    ref = oracle.compute(fe16)
    from scipy.spatial.transform import Rotation

    R = Rotation.random(random_state=3).as_matrix()
    rotated = fe16.copy()
    rotated.set_directions(fe16.directions @ R.T)
    out = oracle.compute(rotated)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["fields"], ref["fields"] @ R.T, atol=1e-13)


def test_slaved_moments_follow_eq41(rng):
    system = bulk("bcc", A, (2, 2, 2))
    oracle = HeisenbergOracle(SHELLS, "double_counted", slaving={"m0": 2.2, "dm": 0.6})
    assert np.allclose(oracle.compute(system)["magmoms"][:, 2], 2.2)
    system.set_directions(random_cone(len(system), [0, 0, 1], np.pi, rng))
    M = np.linalg.norm(oracle.compute(system)["magmoms"], axis=1)
    # by hand for atom 0: 14 neighbours within the J2 shell
    nl = system.neighbours(A + 0.05)
    js = nl.j[nl.offsets[0]:nl.offsets[1]]
    theta = np.arccos(np.clip(system.directions[js] @ system.directions[0], -1, 1))
    assert len(js) == 14
    assert M[0] == pytest.approx(2.2 - theta.sum() / (14 * np.pi) * 0.6, rel=1e-12)
    antiparallel = system.copy()
    corner = np.isclose((system.positions / (A / 2)).round().sum(axis=1) % 2, 0)
    antiparallel.set_directions(np.where(corner[:, None], [0, 0, 1.0], [0, 0, -1.0]))
    M = np.linalg.norm(oracle.compute(antiparallel)["magmoms"], axis=1)
    np.testing.assert_allclose(M, 2.2 - 0.6 * 8 / 14)


def test_compiled_exchange_matches_twin(fe16, rng):
    oracle = HeisenbergOracle(EQ43, "double_counted")
    offsets, neigh, J, *_ = oracle.hamiltonian.couplings(fe16)
    s = rng.random(len(fe16)) + 0.5
    out = [np.empty((len(fe16), 3)) for _ in range(2)]
    kernels.compiled("exchange").exchange_field(fe16.directions, s, offsets, neigh, J, out[0])
    kernels.twin("exchange").exchange_field(fe16.directions, s, offsets, neigh, J, out[1])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-13, atol=1e-16)


def test_compiled_plain_field_matches_twin(fe16, rng):
    oracle = HeisenbergOracle(EQ43, "double_counted")
    offsets, neigh, J, *_ = oracle.hamiltonian.couplings(fe16)
    h0 = np.array([0.1, -0.2, 0.3])
    out = [np.empty((len(fe16), 3)) for _ in range(2)]
    for k, module in enumerate((kernels.compiled("exchange"), kernels.twin("exchange"))):
        module.exchange_field_plain(fe16.directions, offsets.astype(np.int32),
                                    neigh.astype(np.int32), J, h0, out[k])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-13, atol=1e-15)
    full = np.empty_like(out[0])
    kernels.compiled("exchange").exchange_field(fe16.directions, np.ones(len(fe16)), offsets,
                                                neigh, J, full)
    np.testing.assert_allclose(out[0], full + h0, rtol=1e-13, atol=1e-15)


def test_compiled_metropolis_matches_twin(fe16, rng):
    oracle = HeisenbergOracle(EQ43, "double_counted")
    offsets, neigh, J, *_ = oracle.hamiltonian.couplings(fe16)
    n = len(fe16)
    s, zeeman = np.ones(n), np.zeros((n, 3))
    zeeman[:, 2] = 0.01
    states = [fe16.directions.copy(), fe16.directions.copy()]
    accepted = [0, 0]
    for sweep in range(5):
        gauss, uniform = rng.normal(size=(n, 3)), rng.random(n)
        for k, module in enumerate((kernels.compiled("exchange"), kernels.twin("exchange"))):
            accepted[k] += module.metropolis_sweep(states[k], s, offsets, neigh, J, zeeman,
                                                   1 / (8.617e-5 * 300), 0.3, gauss, uniform)
    assert accepted[0] == accepted[1] > 0
    np.testing.assert_allclose(states[0], states[1], rtol=1e-12, atol=1e-14)


FIXTURES = __import__("os").path.join(__import__("os").path.dirname(__file__), "fixtures",
                                      "uppasd")


def test_uppasd_jfile_equals_shells(fe16, tmp_path):
    """UppASD jfile (mRy, double counted) -> the same energies as explicit shells."""
    import os

    from otf_spin.io.uppasd import read_jfile_shells
    from otf_spin.oracles import from_block
    from otf_spin.units import MRY

    d, J = read_jfile_shells(os.path.join(FIXTURES, "jfile"), A)
    np.testing.assert_allclose(d, [np.sqrt(3) / 2 * A, A, np.sqrt(2) * A])
    np.testing.assert_allclose(J, np.array([1.30, 0.70, -0.05]) * MRY)
    d2, J2 = read_jfile_shells(os.path.join(FIXTURES, "jfile2"), A, 2,
                               os.path.join(FIXTURES, "posfile"), np.eye(3))
    np.testing.assert_allclose(d2, d[:2])
    np.testing.assert_allclose(J2, J[:2])
    uppasd = from_block({"type": "heisenberg", "convention": "double_counted",
                         "lattice_constant": A, "uppasd": {"jfile": "jfile"}}, base_dir=FIXTURES)
    shells = HeisenbergOracle(ShellExchange(d, J, 0.05), "double_counted")
    assert uppasd.compute(fe16)["energy"] == pytest.approx(shells.compute(fe16)["energy"])
    bad = tmp_path / "jbad"
    bad.write_text("1 1 0.5 0.5 0.5 1.3\n1 1 -0.5 0.5 0.5 1.2\n")
    with pytest.raises(Exception, match="different J"):
        read_jfile_shells(bad, A)


def test_shell_mismatch_hint_names_the_likely_cause(tmp_path, capsys):
    """Shells in units of a against a structure of another a (the example oracle's
    lattice_constant 2.87 on an a = 2.83 Å frame): the error names lattice_constant and
    the a of the structure's nearest-neighbour distance, not distance_unit; shells in Å
    that match nothing still point at distance_unit: lattice."""
    import os

    from otf_spin.cli import main
    from otf_spin.core import ConfigError, Frame
    from otf_spin.io.extxyz import write_frames
    from otf_spin.oracles import from_block

    example = os.path.join(os.path.dirname(__file__), "..", "input_examples",
                           "oracle_bccFe_uppasd.yaml")
    write_frames(tmp_path / "a283.xyz", [Frame(bulk("bcc", 2.83, (2, 2, 2)))])
    assert main(["label", "--oracle", example, "--data", str(tmp_path / "a283.xyz"),
                 "--out", str(tmp_path / "out.xyz"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shells: the shell at 4.0588 Å matches no pair" in err
    assert "lattice_constant 2.8700 Å" in err and "gives a = 2.8300 Å" in err
    assert "distance_unit" not in err and not (tmp_path / "out.xyz").exists()
    block = {"type": "heisenberg", "convention": "double_counted",
             "shells": [[0.866025, 19.48], [1.0, 11.09]]}
    with pytest.raises(ConfigError, match=r"lattice_constant 2\.9000 Å, while .* gives "
                                          r"a = 2\.8300 Å") as caught:
        from_block(dict(block, distance_unit="lattice", lattice_constant=2.9)).compute(
            bulk("bcc", 2.83, (2, 2, 2)))
    assert "distance_unit" not in str(caught.value)
    # shells from the second one on: no a read off the nearest neighbours (√(4/3) off)
    second = {"type": "heisenberg", "convention": "double_counted", "distance_unit": "lattice",
              "lattice_constant": 2.9, "shells": [[1.0, 11.09], [1.414214, 1.0]]}
    with pytest.raises(ConfigError, match=r"lattice_constant 2\.9000 Å \(lattice_constant "
                                          r"must be the structure's\)"):
        from_block(second).compute(bulk("bcc", 2.83, (2, 2, 2)))
    with pytest.raises(ConfigError, match="distances in units of a need distance_unit: "
                                          "lattice") as caught:
        from_block(dict(block, distance_unit="angstrom")).compute(bulk("bcc", 2.83, (2, 2, 2)))
    assert "lattice_constant" not in str(caught.value)
