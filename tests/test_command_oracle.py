"""The command oracle: extxyz in, any program, extxyz out; typed failures, kept job dirs."""
import os
import sys

import numpy as np
import pytest

from otf_spin.learning.paper_sets import paper_oracle
from otf_spin.oracles import OracleFailure, from_block

SCRIPT = os.path.join(os.path.dirname(__file__), "fixtures", "fake_dft", "heisenberg_dft.py")


def oracle(tmp_path, mode="ok", timeout=30):
    return from_block({"type": "command", "command": f"{sys.executable} {SCRIPT} {mode}",
                       "timeout": timeout, "workdir": str(tmp_path / "jobs")})


def test_command_oracle_labels_like_the_embedded_one(tmp_path, fe16):
    result = oracle(tmp_path).compute(fe16)
    expect = paper_oracle().compute(fe16)
    assert result["energy"] == pytest.approx(expect["energy"], rel=1e-7)
    np.testing.assert_allclose(result["fields"], expect["fields"], atol=1e-7)
    job = result["info"]["job_directory"]
    assert os.path.basename(job) == "command-000001"
    assert sorted(os.listdir(job)) == ["input.xyz", "job.err", "job.out", "output.xyz"]
    second = oracle(tmp_path).compute(fe16)          # numbering continues across instances
    assert second["info"]["job_directory"].endswith("command-000002")


def test_here_is_the_folder_of_the_yaml_file(tmp_path, fe16, monkeypatch):
    """New-user review: the docs' `python my_dft_driver.py {input} {output}` failed, the
    job running in its own folder. `{here}/my_dft_driver.py` names the script beside the
    oracle YAML file (a folder with a space in its name: the path is quoted)."""
    import shutil

    from otf_spin.oracles import load_file

    folder = tmp_path / "my setup"
    folder.mkdir()
    shutil.copy(SCRIPT, folder / "driver.py")
    path = folder / "oracle.yaml"
    path.write_text(f"type: command\ncommand: {sys.executable} {{here}}/driver.py ok\n"
                    f"workdir: {tmp_path / 'jobs'}\n")
    monkeypatch.chdir(tmp_path)
    result = load_file(path).compute(fe16)
    np.testing.assert_allclose(result["fields"], paper_oracle().compute(fe16)["fields"],
                               atol=1e-7)
    path.write_text(f"type: command\ncommand: {sys.executable} driver.py ok\n"
                    f"workdir: {tmp_path / 'jobs'}\n")
    with pytest.raises(OracleFailure) as info:        # relative: looked up in the job folder
        load_file(path).compute(fe16)
    assert info.value.kind == "exit"


@pytest.mark.parametrize("mode, kind, text", [
    ("fail", "exit", "status 3"), ("nan", "nan", "energy"), ("garbage", "parse", "")])
def test_failures_are_typed(tmp_path, fe16, mode, kind, text):
    with pytest.raises(OracleFailure) as info:
        oracle(tmp_path, mode).compute(fe16)
    assert info.value.kind == kind and text in info.value.reason
    assert info.value.job == "command-000001"


def test_hanging_job_is_killed_at_the_timeout(tmp_path, fe16):
    import time

    start = time.perf_counter()
    with pytest.raises(OracleFailure) as info:
        oracle(tmp_path, "hang", timeout=1.0).compute(fe16)
    assert info.value.kind == "timeout"
    assert time.perf_counter() - start < 10


def test_oracle_failures_travel_between_ranks_whole():
    """An OracleFailure survives pickling (MPI gathers of labelling outcomes) with its parts."""
    import pickle

    from otf_spin.core import OracleFailure

    copy = pickle.loads(pickle.dumps(OracleFailure("command-000007", "timeout", "no result")))
    assert (copy.job, copy.kind, copy.reason, str(copy)) == (
        "command-000007", "timeout", "no result", "oracle job command-000007: timeout: no result")
