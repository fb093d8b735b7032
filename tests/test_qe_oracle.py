"""Quantum ESPRESSO oracle: input/output handling, and (slow) a real pw.x run whose
transverse field is checked against a finite difference of constrained energies."""
import os
import shutil

import numpy as np
import pytest

from otf_spin.oracles import OracleFailure, from_block
from otf_spin.oracles.qe import parse_pw_output
from otf_spin.system import bulk

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
    oracle = from_block({"type": "qe", "command": "true", "workdir": str(tmp_path)})
    system = bulk("bcc", 2.83, (1, 1, 1))
    t = np.radians(30)
    system.set_directions([[0, 0, 1.0], [np.sin(t), 0, np.cos(t)]])
    oracle._write(system, str(tmp_path), system.directions)
    text = open(tmp_path / "pw.in").read()
    for needle in ("noncolin = .true.", "constrained_magnetization = 'atomic'", "ntyp = 2",
                   "angle1(2) = 30.00000000", "starting_magnetization(2) = 2.200000",
                   "Fe2 55.845 Fe.pbe-nd-rrkjus.UPF", "K_POINTS automatic"):
        assert needle in text
    big = bulk("bcc", 2.83, (2, 2, 2))
    with pytest.raises(OracleFailure, match="at most 10 species"):
        oracle._write(big, str(tmp_path), big.directions)


def test_volume_factor_by_version():
    oracle = from_block({"type": "qe", "command": "true", "lambda": 10.0})
    old = {"version": (6, 7, 0), "fft": (24, 24, 24), "volume": 70.9958}
    assert oracle.lambda_eff(old) == pytest.approx(10.0 * 70.9958 / 24**3)
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
