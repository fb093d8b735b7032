"""VASP oracle: inputs, OUTCAR/OSZICAR parsing (VASP 6.x formats), sign of the field,
FM reference, LAMBDA retries, typed failures."""
import os
import re
import sys

import numpy as np
import pytest

from otf_spin.learning.paper_sets import paper_oracle
from otf_spin.oracles import OracleFailure, from_block
from otf_spin.oracles.vasp import parse_oszicar_constraint

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "fake_vasp")


def vasp(tmp_path, mode="ok", **extra):
    block = {"type": "vasp", "command": f"{sys.executable} {HERE}/fake_vasp.py {mode}",
             "potcar_dir": os.path.join(HERE, "potpaw"), "workdir": str(tmp_path / "jobs"),
             "timeout": 60, "lambda": 50.0, "max_residual": 0.01, **extra}
    return from_block(block)


def test_labels_match_the_reference_with_the_right_sign(tmp_path, fe16):
    result = vasp(tmp_path).compute(fe16)
    expect = paper_oracle().compute(fe16)
    # rows are written with 5 significant digits: compare to that precision
    np.testing.assert_allclose(result["fields"], expect["fields"], rtol=2e-4, atol=1e-8)
    assert result["energy"] == pytest.approx(expect["energy"], abs=2e-4)
    jobs = sorted(os.listdir(tmp_path / "jobs"))
    assert jobs == ["vasp-000001", "vasp-000002"]            # FM reference + constrained
    incar = open(tmp_path / "jobs" / "vasp-000002" / "INCAR").read()
    for tag in ("LNONCOLLINEAR = .TRUE.", "I_CONSTRAINED_M = 1", "LAMBDA = 50", "RWIGS",
                "M_CONSTR", "MAGMOM", "ENCUT = 500"):
        assert tag in incar
    m_constr = np.array(re.search(r"M_CONSTR = (.*)", incar).group(1).split(), float)
    np.testing.assert_allclose(m_constr.reshape(-1, 3), fe16.directions, atol=1e-9)
    assert "I_CONSTRAINED_M" not in open(tmp_path / "jobs" / "vasp-000001" / "INCAR").read()
    # the FM reference is computed once per structure
    vasp_oracle = vasp(tmp_path / "b")
    vasp_oracle.compute(fe16)
    vasp_oracle.compute(fe16)
    assert len(os.listdir(tmp_path / "b" / "jobs")) == 3


def test_poor_constraint_is_retried_with_larger_lambda(tmp_path, fe16):
    result = vasp(tmp_path, **{"lambda": 1.0, "lambda_factor": 4.0, "lambda_max": 100.0,
                               "max_residual": 0.005}).compute(fe16)
    assert result["info"]["lambda_used"] > 1.0
    assert result["info"]["max_residual_moment"] <= 0.005
    with pytest.raises(OracleFailure) as info:
        vasp(tmp_path / "c", **{"lambda": 1.0, "lambda_max": 2.0,
                                "max_residual": 1e-6}).compute(fe16)
    assert info.value.kind == "convergence" and "residual moment" in info.value.reason


def test_unconverged_scf_is_a_typed_failure(tmp_path, fe16):
    with pytest.raises(OracleFailure) as info:
        vasp(tmp_path, "unconverged").compute(fe16)
    assert info.value.kind == "convergence"


def test_oszicar_parser_reads_the_last_block_by_ion_index():
    text = """ E_p =  0.39341E-04  lambda =  0.900E+01
 ion             lambda*MW_perp
  1   0.12835E-02   0.15811E-04   0.16821E-01
   2 F= -.13329362E+03 E0= -.13329362E+03  d E =0.000000E+00  mag=     0.0000     0.0000     0.0000

 E_p =  0.36600E-07  lambda =  0.500E+02
 ion             lambda*MW_perp
  1  -0.67580E-03  -0.12424E-22  -0.88276E-23
  3   0.67580E-03   0.14700E-22  -0.24744E-22
"""
    e_p, lam, rows = parse_oszicar_constraint(text, 3)
    assert e_p == pytest.approx(3.66e-8) and lam == 50.0
    np.testing.assert_allclose(rows[0], [-0.6758e-3, -0.12424e-22, -0.88276e-23])
    assert np.isnan(rows[1]).all()                     # ion 2 unconstrained: absent
    with pytest.raises(ValueError, match="no 'E_p"):
        parse_oszicar_constraint("DAV: 1 ...", 3)


def test_missing_potcar_dir_is_a_config_error(tmp_path):
    from otf_spin.io.config import ConfigError

    with pytest.raises(ConfigError, match="potcar_dir"):
        from_block({"type": "vasp", "command": "true", "potcar_dir": str(tmp_path / "none")})
