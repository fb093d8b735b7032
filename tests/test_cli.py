"""The otf-spin command line: exit codes, one-line errors, label round trip."""
import os
import subprocess
import sys

import numpy as np
import pytest

from otf_spin.cli import main
from otf_spin.core import Frame
from otf_spin.io.extxyz import read_frames, write_frames
from otf_spin.oracles import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "input_examples")


def test_console_script_version():
    script = os.path.join(os.path.dirname(sys.executable), "otf-spin")  # installed beside python
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("otf-spin ")


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".yaml")))
def test_examples_validate(name, capsys):
    assert main(["validate", os.path.join(EXAMPLES, name)]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".yaml")))
def test_examples_point_to_documents_that_exist(name):
    """Every ``*.md`` an example's comments name is in the repository."""
    import re

    text = open(os.path.join(EXAMPLES, name), encoding="utf-8").read()
    for document in re.findall(r"[\w./-]+\.md\b", text):
        assert os.path.isfile(os.path.join(ROOT, document)), f"{name}: {document} is missing"


@pytest.mark.parametrize("text, message", [
    ("type: heisenberg\nconvention: double_counted\ndistance_unit: angstrom\n"
     "shells: [[2.45, 19.48]]\nmomnet: 2\n",
     "momnet: unknown key"),
    ("type: heisenberg\nconvention: double_counted\ndistance_unit: angstrom\n"
     "shells: [[2.45, 19.48]]\n"
     "convention: per_pair\n", "duplicate key 'convention'"),
    ("type: heisenberg\nconvention: both\nshells: [[2.45, 19.48]]\n",
     "convention: 'both' is not one of"),
    ("type: heisenberg\nconvention: per_pair\ndistance_unit: angstrom\n"
     "shells: [[2.45, 19.48 K]]\n",
     r"shells\[0\]\[1\]: unit 'K' is a temperature unit, expected energy"),
    ("type: heisenberg\nconvention: per_pair\ndistance_unit: angstrom\n"
     "shells: [[2.45, 19.48], [2.47, 1.0]]\n",
     "overlap within shell_tolerance"),
    ("type: heisenberg\nconvention: per_pair\n", "exactly one exchange source"),
    ("type: heisenberg\nconvention: per_pair\nuppasd: {jfile: nothere}\n",
     "uppasd.jfile: file 'nothere' not found"),
    ("type: dft9000\n", "unknown oracle 'dft9000'"),
    ("type: heisenberg\nconvention: per_pair\ndistance_unit: angstrom\n"
     "shells: [[2.45, 19.48]]\nmoment: -1\n",
     "moment: -1 is below the minimum"),
    ("type: heisenberg\nconvention: per_pair\ndistance_unit: angstrom\n"
     "shells: [[2.45, 19.48]\n", "invalid YAML"),
])
def test_bad_yaml_one_line_error_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "oracle.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otf-spin: error: ")
    assert str(path) in err
    import re
    assert re.search(message, err), err


def test_label_round_trip(tmp_path, fe16, capsys):
    src = tmp_path / "in.xyz"
    write_frames(src, [Frame(fe16)])
    out = tmp_path / "out.xyz"
    oracle_file = os.path.join(EXAMPLES, "oracle_bccFe_shells.yaml")
    assert main(["label", "--oracle", oracle_file, "--data", str(src), "--out", str(out),
                 "--quiet"]) == 0
    frame = read_frames(out)[0]
    expect = load_file(oracle_file).compute(fe16)
    # the input spins passed through extxyz (8 decimals)
    assert frame.energy == pytest.approx(expect["energy"], rel=1e-7)
    np.testing.assert_allclose(frame.fields, expect["fields"], atol=1e-7)


def test_label_keeps_finished_labels_when_a_job_fails_and_goes_on(tmp_path, capsys,
                                                                    monkeypatch, rng):
    """New-user review: one failed job of five threw away every finished label and the
    rerun launched all five again. Now the frames before the failure are in --out
    (written after each frame), a failure is retried (--retries), and the same command
    goes on from the first missing frame: the result equals an uninterrupted labelling,
    with one oracle job per frame in all."""
    import otf_spin.cli as cli
    from otf_spin.core import OracleFailure
    from otf_spin.system import bulk, random_sphere

    oracle_file = os.path.join(EXAMPLES, "oracle_bccFe_shells.yaml")
    frames = []
    for _ in range(5):
        s = bulk("bcc", 2.83, (2, 2, 2))
        s.set_directions(random_sphere(len(s), rng))
        frames.append(Frame(s))
    src, out, whole = tmp_path / "in.xyz", tmp_path / "out.xyz", tmp_path / "whole.xyz"
    write_frames(src, frames)
    assert main(["label", "--oracle", oracle_file, "--data", str(src), "--out", str(whole),
                 "--quiet"]) == 0
    calls, failing = [], set()

    def loader(path, context=None):
        oracle = load_file(path, context)
        compute = oracle.compute

        def flaky(system, properties=None):
            calls.append(len(calls))
            if calls[-1] in failing:
                raise OracleFailure("x", "exit", "exit status 1")
            return compute(system, properties)
        oracle.compute = flaky
        return oracle

    monkeypatch.setattr(cli.oracles, "load_file", loader)
    argv = ["label", "--oracle", oracle_file, "--data", str(src), "--out", str(out), "--quiet"]
    failing.update({0, 1})                      # frame 0 fails twice: nothing to keep
    assert main(argv) == 2
    assert "frame 0: exit: exit status 1 (after 2 tries; nothing was written)" in \
        capsys.readouterr().err and not out.exists()
    calls.clear()
    failing.clear()
    failing.update({2, 3, 4})                   # frames 0, 1 labelled, frame 2 fails 3 times
    assert main(argv + ["--retries", "2"]) == 2
    err = capsys.readouterr().err
    assert "frame 2: exit: exit status 1 (after 3 tries; the 2 frames before it are in" in err
    assert len(read_frames(out)) == 2 and len(calls) == 2 + 3
    failing.clear()
    calls.clear()
    assert main(argv) == 0
    assert "2 of 5 frames already labelled" in capsys.readouterr().err
    assert len(calls) == 3                          # frames 2, 3, 4 only
    for a, b in zip(read_frames(out), read_frames(whole)):
        assert a.energy == b.energy and np.array_equal(a.fields, b.fields)
        assert a.info["oracle_settings"] == b.info["oracle_settings"]
    calls.clear()
    other = tmp_path / "other.yaml"             # another oracle's labels: labelled afresh
    other.write_text(open(oracle_file).read().replace("shell_tolerance: 0.05",
                                                      "shell_tolerance: 0.06"))
    assert "shell_tolerance: 0.06" in other.read_text()
    assert main(["label", "--oracle", str(other), "--data", str(src), "--out", str(out),
                 "--quiet"]) == 0
    assert len(calls) == 5 and "holds no labels of this oracle" in capsys.readouterr().err
    foreign = tmp_path / "foreign.xyz"          # another tool's xyz (no magmoms): replaced
    foreign.write_text("1\nforeign\nFe 0 0 0\n")
    calls.clear()
    assert main(["label", "--oracle", oracle_file, "--data", str(src), "--out", str(foreign),
                 "--quiet"]) == 0
    assert len(calls) == 5 and len(read_frames(foreign)) == 5


def test_label_missing_data_file(tmp_path, capsys):
    oracle_file = os.path.join(EXAMPLES, "oracle_bccFe_shells.yaml")
    assert main(["label", "--oracle", oracle_file, "--data", str(tmp_path / "none.xyz"),
                 "--out", str(tmp_path / "o.xyz")]) == 2
    assert "none.xyz: no such file" in capsys.readouterr().err
    assert not (tmp_path / "o.xyz").exists()


def test_lattice_units_need_a_lattice_constant(tmp_path, capsys):
    path = tmp_path / "o.yaml"
    path.write_text("type: heisenberg\nconvention: per_pair\ndistance_unit: lattice\n"
                    "shells: [[0.866, 19.48]]\n")
    src = tmp_path / "in.xyz"
    assert main(["label", "--oracle", str(path), "--data", str(src), "--out", "x"]) == 2
    assert "lattice_constant: required" in capsys.readouterr().err


def test_paper_sets_command(tmp_path):
    out = tmp_path / "sets"
    assert main(["paper-sets", "--out", str(out), "--sets", "random,thermal_300K",
                 "--scale", "0.01", "--quiet"]) == 0
    train = read_frames(out / "random_train.xyz")
    assert len(train) == 50 and len(read_frames(out / "random_test.xyz")) == 25
    angles = [f.info["mean_nn_angle"] for f in train]
    assert min(angles) < 0.5 and max(angles) > 2.5      # spans 0 … π
    assert main(["paper-sets", "--out", str(out), "--sets", "nope"]) == 2


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "otf_spin", "label", "--help"],
                         capture_output=True, text=True, check=True)
    assert "--oracle" in out.stdout


def test_describe_lists_keys_with_units(capsys):
    assert main(["validate", "--describe", "heisenberg"]) == 0
    out = capsys.readouterr().out
    assert "shell_tolerance:" in out and "[angstrom]" in out and "moment_slaving:" in out
    assert main(["validate", "--describe", "nonsense"]) == 2
    assert "unknown kind 'nonsense' (model, run, generate, or an oracle type: " in \
        capsys.readouterr().err
    assert main(["validate", "--describe", "run"]) == 0     # lists take their items' unit
    out = capsys.readouterr().out
    assert "temperatures: one replica per temperature [K]" in out
    assert "field: external field [T]" in out


def test_output_piped_into_a_reader_that_stops_is_not_an_error(tmp_path):
    """`otf-spin info FILES | head -1` (new-user review: 'otf-spin: error: [Errno 32]
    Broken pipe', exit 2): the reader stopping ends the command quietly, with the
    status of a SIGPIPE (141: a run cut short that way is no success)."""
    import subprocess
    import sys

    model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                         "model_exchange2b_v1.h5")
    code = "import sys; from otf_spin.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "info", *[model] * 400],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"kind: model")
    proc.stdout.close()                     # as head -1 does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


@pytest.mark.parametrize("sections, missing, given", [
    (("system", "dynamics", "otf"), "oracle", "otf"),
    (("system", "dynamics", "oracle"), "otf", "oracle"),
])
def test_a_missing_section_of_an_on_the_fly_run_says_why_it_is_needed(
        tmp_path, capsys, sections, missing, given):
    """New-user review: "(on-the-fly runs need oracle and otf)" did not say what made the
    file an on-the-fly run, nor what a plain run has instead."""
    import yaml

    data = yaml.safe_load(open(os.path.join(EXAMPLES, "bccFe_otf_heisenberg.yaml")))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({k: data[k] for k in sections}))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"otf-spin: error: {path}: {missing}: required section is missing (the {given} "
        "section makes this an on-the-fly run: system, dynamics, oracle and otf; a plain run "
        "has system, hamiltonian and dynamics)")
