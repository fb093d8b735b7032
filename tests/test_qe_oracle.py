"""Quantum ESPRESSO oracle: input/output handling, and (slow) a real pw.x run whose
transverse field is checked against a finite difference of constrained energies."""
import os
import re
import shutil

import numpy as np
import pytest
import yaml

from otf_spin.oracles import OracleFailure, from_block
from otf_spin.oracles.qe import parse_pw_output, species_labels
from otf_spin.system import SpinSystem, bulk

#: a pseudo_dir with a placeholder Fe.pbe-nd-rrkjus.UPF, for the tests that write pw.x
#: inputs without running pw.x (the oracle checks that the files exist)
PSEUDO = os.path.join(os.path.dirname(__file__), "fixtures", "qe_pseudo")


def fake_qe(**keys):
    """A QE oracle that never runs pw.x (``command`` given by the test)."""
    return from_block({"type": "qe", "pseudo_dir": PSEUDO, **keys})

PW_OUT = """     Program PWSCF v.6.7MaX starts on 24Nov2026 at  2:56:36
     unit-cell volume          =      70.9958 (a.u.)^3
     Dense  grid:     3367 G-vectors     FFT dimensions: (  24,  24,  24)
 ==============================================================================
     atom number    1 relative position :    0.0000   0.0000   0.0000
     charge :     6.402915
     magnetization :         14.606403    0.000000    1.277895
     magnetization/charge:    0.251091    0.000000    0.021972
     polar coord.: r, theta, phi [deg] :     1.613858   84.998964    0.000000
     constrained moment :     2.191628    0.000000    0.191743
 ==============================================================================
     atom number    1 relative position :    0.0000   0.0000   0.0000
     charge :     6.402915
     magnetization :          2.259023    0.000000    0.197639
     magnetization/charge:    0.251091    0.000000    0.021972
     polar coord.: r, theta, phi [deg] :     2.267652   84.999000    0.000000
     constrained moment :     2.191628    0.000000    0.191743
 ==============================================================================
!    total energy              =     -55.69646068 Ry
     convergence has been achieved in  14 iterations
"""


def test_parse_pw_output_takes_the_last_block():
    out = parse_pw_output(PW_OUT, 1)
    assert out["energy"] == -55.69646068 and out["converged"]
    np.testing.assert_allclose(out["moments"][0], [2.259023, 0.0, 0.197639])
    np.testing.assert_allclose(out["targets"][0], [2.191628, 0.0, 0.191743])
    assert out["version"] == (6, 7, 0) and out["fft"] == (24, 24, 24)
    assert out["volume"] == pytest.approx(70.9958)
    with pytest.raises(ValueError, match="total energy"):
        parse_pw_output("nothing here", 1)


def test_input_has_one_species_per_atom_and_the_constraint(tmp_path):
    oracle = fake_qe(command="true", workdir=str(tmp_path))
    system = bulk("bcc", 2.83, (1, 1, 1))
    t = np.radians(30)
    system.set_directions([[0, 0, 1.0], [np.sin(t), 0, np.cos(t)]])
    oracle._write(system, str(tmp_path), system.directions, 20.0)
    text = open(tmp_path / "pw.in").read()
    for needle in ("noncolin = .true.", "constrained_magnetization = 'atomic'", "ntyp = 2",
                   "angle1(2) = 30.00000000", "starting_magnetization(2) = 2.200000",
                   "Fe2 55.845 Fe.pbe-nd-rrkjus.UPF", "K_POINTS automatic", "lambda = 20"):
        assert needle in text
    assert "startingwfc" not in text
    oracle._write(system, str(tmp_path), system.directions, 40.0, restart=True)
    text = open(tmp_path / "pw.in").read()
    assert "lambda = 40" in text and "startingwfc = 'file'" in text \
        and "startingpot = 'file'" in text


def test_labels_are_unique_in_the_three_characters_pw_x_reads():
    labels = species_labels(["Fe"] * 12 + ["H"] * 12 + ["Co"] * 2)
    assert labels[:10] == [f"Fe{d}" for d in "1234567890"] and labels[10:12] == ["FeA", "FeB"]
    assert labels[12:24] == [f"H{k}" for k in range(1, 13)] and labels[24:] == ["Co1", "Co2"]
    assert all(len(label) <= 3 for label in labels)
    assert len({label[:3] for label in labels}) == len(labels)
    with pytest.raises(ValueError, match="more than 36 Fe atoms"):
        species_labels(["Fe"] * 37)


def test_ten_atoms_are_written_eleven_fail_before_launch(tmp_path):
    """Stock pw.x has ntypx = 10 species (Modules/parameters.f90), one per constrained
    atom: a 10-atom cell is written (pw.x 6.7 runs it: fixtures/qe_recorded/
    ten_species.out), an 11-atom cell fails with a one-line error before anything is
    launched; max_species lifts the limit for a pw.x rebuilt with a larger ntypx."""
    marker = tmp_path / "launched"
    oracle = fake_qe(command=f"touch {marker}; false", workdir=str(tmp_path / "jobs"))
    for n in (9, 10):
        system = bulk("bcc", 2.83, (n // 2, 1, 1)) if n % 2 == 0 else \
            bulk("bcc", 2.83, (5, 1, 1))
        if n == 9:
            system = SpinSystem(system.cell, system.positions[:9], system.species[:9])
        oracle._write(system, str(tmp_path), system.directions, 20.0)
        text = open(tmp_path / "pw.in").read()
        assert f"ntyp = {n}" in text and f"nat = {n}" in text
        labels = re.findall(r"^  (Fe\w) 55.845", text, re.M)
        assert len(labels) == n == len(set(labels))
    eleven = SpinSystem(bulk("bcc", 2.83, (6, 1, 1)).cell,
                        bulk("bcc", 2.83, (6, 1, 1)).positions[:11], ["Fe"] * 11)
    with pytest.raises(OracleFailure) as info:
        oracle.compute(eleven)
    message = str(info.value)
    assert "11 atoms" in message and "allows 10" in message and "ntypx" in message \
        and "max_species" in message and "\n" not in message
    assert not marker.exists() and not (tmp_path / "jobs").exists()
    big = fake_qe(command="true", max_species=16)
    big._write(eleven, str(tmp_path), eleven.directions, 20.0)
    assert "ntyp = 11" in open(tmp_path / "pw.in").read()


def test_pseudopotentials_are_checked_and_pseudo_dir_is_relative_to_the_yaml(
        tmp_path, capsys, monkeypatch):
    """New-user review: validate passed with a wrong pseudo_dir or a missing UPF file
    (pw.x then looks in $ESPRESSO_PSEUDO or ~/espresso/pseudo, or fails at the first
    job), and a relative pseudo_dir was taken from the job folder. Now a relative
    pseudo_dir is the YAML file's, and a missing folder or file is refused in one line
    naming the key."""
    from otf_spin.cli import main
    from otf_spin.core import ConfigError

    folder = tmp_path / "setup"
    (folder / "pseudo").mkdir(parents=True)
    shutil.copy(os.path.join(PSEUDO, "Fe.pbe-nd-rrkjus.UPF"), folder / "pseudo")
    path = folder / "qe.yaml"
    path.write_text("type: qe\ncommand: pw.x -in pw.in\npseudo_dir: pseudo\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["validate", str(path)]) == 0
    from otf_spin.oracles import load_file
    assert load_file(path).cfg["pseudo_dir"] == str(folder / "pseudo")
    for text, message in (
            ("pseudo_dir: pseudos\n", "pseudo_dir: folder '.*pseudos' not found"),
            ("pseudopotentials: {Fe: Fe.pz-nd-rrkjus.UPF}\npseudo_dir: pseudo\n",
             "pseudopotentials.Fe: file 'Fe.pz-nd-rrkjus.UPF' not found in pseudo_dir")):
        path.write_text("type: qe\ncommand: pw.x -in pw.in\n" + text)
        with pytest.raises(ConfigError, match=message):
            load_file(path)
        capsys.readouterr()
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err


def test_volume_factor_by_version():
    oracle = fake_qe(command="true", **{"lambda": 10.0})
    old = {"version": (6, 7, 0), "fft": (24, 24, 24), "volume": 70.9958}
    assert oracle.lambda_eff(old) == pytest.approx(10.0 * 70.9958 / 24**3)
    assert oracle.lambda_eff(dict(old, version=(7, 3, 1))) == pytest.approx(
        10.0 * 70.9958 / 24**3)
    assert oracle.lambda_eff(dict(old, version=(7, 4, 0))) == 10.0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pw.x") is None or shutil.which("mpirun") is None,
                    reason="needs pw.x and mpirun (.ci/run installs Debian's quantum-espresso)")
def test_real_pw_x_field_matches_finite_difference_of_constrained_energies(tmp_path):
    """2-atom cubic bcc Fe, second spin canted by 30° in the xz plane: the labelled
    transverse field on that spin equals -(1/|m|) dE/dθ from two more constrained runs."""
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    oracle = from_block({"type": "qe", "command": "mpirun -np 2 pw.x -in pw.in",
                         "workdir": str(tmp_path / "jobs"), "kpoints": [4, 4, 4],
                         "ecutwfc": 25.0, "ecutrho": 200.0, "lambda": 20.0, "timeout": 900})

    def canted(theta_deg):
        system = bulk("bcc", 2.83, (1, 1, 1))
        t = np.radians(theta_deg)
        system.set_directions([[0, 0, 1.0], [np.sin(t), 0, np.cos(t)]])
        return system

    result = oracle.compute(canted(30.0))
    delta = 4.0
    e_plus = oracle.compute(canted(30.0 + delta))["energy"]
    e_minus = oracle.compute(canted(30.0 - delta))["energy"]
    dE_dtheta = (e_plus - e_minus) / np.radians(2 * delta)        # eV/rad
    tangent = np.array([np.cos(np.radians(30)), 0.0, -np.sin(np.radians(30))])   # ∂e/∂θ
    field_fd = -dE_dtheta / 2.2                 # B·∂e/∂θ = -(1/|m|) ∂E/∂θ, |m| = 2.2 μB
    field = result["fields"][1] @ tangent
    assert dE_dtheta > 0 and field < 0          # canting further costs energy: pulled back
    assert result["energy"] > 0                                     # canting costs energy
    assert abs(field) > 0.01                                        # eV/μB: a real field
    assert field == pytest.approx(field_fd, rel=0.15)
    assert len(os.listdir(tmp_path / "jobs")) == 4                  # FM reference once


def test_recorded_pw_x_accepts_ten_species_with_three_character_labels():
    """pw.x 6.7 (Debian) read a 10-species constrained input labelled as the backend
    labels (fixtures/qe_recorded/ten_species.in/.out): its ntypx is 10, all 10 labels
    are distinct species (Fe10 would have become a second 'Fe1')."""
    here = os.path.join(os.path.dirname(__file__), "fixtures", "qe_recorded")
    text = open(os.path.join(here, "ten_species.out")).read()
    assert "Program PWSCF v.6.7" in text
    assert re.search(r"Max number of different atomic species \(ntypx\) = 10", text)
    read = re.findall(r"^\s+(Fe\w)\s+8\.00\s+55\.84500\s+Fe\( 1\.00\)", text, re.M)
    assert read == species_labels(["Fe"] * 10) and len(set(read)) == 10
    assert "two occurrences" not in text and "total energy" in text
    given = re.findall(r"^(Fe\w) 55.845", open(os.path.join(here, "ten_species.in")).read(),
                       re.M)
    assert given == read


def test_recorded_pw_x_field_agrees_with_the_finite_difference_of_its_energies():
    """The sign is fixed by physics, not by the backend's convention: two real pw.x 6.7
    runs (fixtures/qe_recorded/canted26.*, canted34.*; inputs written by this backend:
    2-atom cubic bcc Fe, spin 2 canted by 26° and 34° in the xz plane, k 2×2×2, 20/160 Ry,
    λ = 20, conv_thr 1e-9; outputs trimmed to the parsed parts). The finite difference of
    the energy labels, -(E(34°) - E(26°))/(8° |m|), is the field along ∂e/∂θ at 30°; the
    field labels at 26° and 34°, scaled to 30° as sin θ (two spins: E = -J cos θ), must
    match it in sign and within 10 %. A flipped sign or a wrong λ_eff fails here."""
    from otf_spin.oracles.qe import constrained_labels, lambda_eff

    here = os.path.join(os.path.dirname(__file__), "fixtures", "qe_recorded")
    energy, field = {}, {}
    for theta in (26, 34):
        out = parse_pw_output(open(os.path.join(here, f"canted{theta}.out")).read(), 2)
        assert out["converged"] and out["version"] == (6, 7, 0) and out["lambda"] == 20.0
        t = np.radians(theta)
        e = np.array([[0.0, 0.0, 1.0], [np.sin(t), 0.0, np.cos(t)]])
        np.testing.assert_allclose(out["targets"], 2.2 * e, atol=1e-6)
        x = out["moments"] - out["targets"]
        # the parsed moments give pw.x's own printed penalty λ Σ|m - m⁰|² (λ as read)
        assert out["lambda"] * np.sum(x**2) == pytest.approx(out["constraint_energy"],
                                                             rel=2e-3)
        lam = lambda_eff(out["lambda"], out)                     # pw.x 6.7: λΩ/N_FFT
        assert lam == pytest.approx(20.0 * out["volume"] / np.prod(out["fft"]))
        labels = constrained_labels(out, lam, e)
        assert labels["residual"].max() < 0.01                    # μB
        fields = labels["fields"]
        torques = np.cross(2.2 * e, fields)                       # Σ m×B = 0 (no SOC)
        assert np.linalg.norm(torques.sum(axis=0)) < 0.1 * np.linalg.norm(torques[1])
        energy[theta] = labels["energy"]
        field[theta] = fields[1] @ np.array([np.cos(t), 0.0, -np.sin(t)])   # B·∂e/∂θ
    fd = -(energy[34] - energy[26]) / np.radians(8.0) / 2.2       # eV/μB at 30°
    at30 = [field[th] * np.sin(np.radians(30)) / np.sin(np.radians(th)) for th in (26, 34)]
    assert abs(fd) > 0.005                                        # a real field, eV/μB
    for value in at30:
        assert np.sign(value) == np.sign(fd)
        assert value == pytest.approx(fd, rel=0.10)


def test_run_file_with_a_cell_larger_than_pw_x_allows_is_refused_at_validation(tmp_path):
    from otf_spin.core import ConfigError
    from otf_spin.factory import load_run

    run = {"system": {"lattice": "bcc", "a": 2.83, "repeat": [2, 2, 2], "moment": 2.2,
                      "spins": "ferromagnetic"},
           "oracle": {"type": "qe", "pseudo_dir": PSEUDO}, "otf": {"threshold": 4},
           "dynamics": {"integrator": "depondt", "timestep": 0.5, "damping": 0.1,
                        "temperature": 300, "steps": 10}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    with pytest.raises(ConfigError, match=r"oracle: the system has 16 atoms but pw.x allows "
                                          r"10 species"):
        load_run(path)
    run["oracle"]["max_species"] = 16                        # a rebuilt pw.x
    path.write_text(yaml.safe_dump(run))
    assert load_run(path)["oracle"].cfg["max_species"] == 16
    run["system"]["repeat"] = [2, 2, 1]                       # 8 atoms: stock pw.x
    del run["oracle"]["max_species"]
    path.write_text(yaml.safe_dump(run))
    load_run(path)
