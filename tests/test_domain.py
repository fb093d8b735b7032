"""The training domain (otf_spin/model/domain.py): structures whose geometry or moments the
training frames never showed are flagged by predict and run, the training frames and rigid
motions of them are not."""
import os
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from otf_spin.cli import main
from otf_spin.core import Frame
from otf_spin.io.extxyz import read_frames, write_frames
from otf_spin.learning.paper_sets import paper_oracle
from otf_spin.learning.store import TrainingStore
from otf_spin.model import AliasingWarning, build_model, save
from otf_spin.model.domain import PAIR_TOLERANCE, Domain

from test_model import labelled, small_settings


@pytest.fixture(scope="module")
def model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AliasingWarning)
        return build_model(small_settings()).fit(labelled(6, np.random.default_rng(11)))


def _strained(system, factor):
    s = system.copy()
    s.positions, s.cell = s.positions * factor, s.cell * factor
    return s


def test_training_frames_and_their_rigid_motions_are_inside(model):
    domain = model.domain()
    assert domain.moments == (2.2, 2.2) or np.allclose(domain.moments, 2.2)
    rotation = Rotation.from_euler("zyx", [0.3, -0.7, 1.1]).as_matrix()
    for f in model.frames:
        assert domain.outside(f.system) is None
        moved = f.system.copy()
        moved.positions = (moved.positions + [0.31, -1.2, 0.7]) @ rotation.T
        moved.cell = moved.cell @ rotation.T
        assert domain.outside(moved) is None


def test_strain_displacements_and_other_moments_are_outside(model, rng):
    base = model.frames[0].system
    assert model.domain().outside(_strained(base, 1.0 + 0.1 * PAIR_TOLERANCE / 2.45)) is None
    strained = model.domain().outside(_strained(base, 1.01))
    assert strained.startswith("100 % of its pair distances within 5 Å") and "moments" \
        not in strained
    shaken = base.copy()
    shaken.positions = shaken.positions + rng.normal(0.0, 0.1, shaken.positions.shape)
    assert "pair distances" in model.domain().outside(shaken)
    smaller = base.copy()
    smaller.magnitudes = smaller.magnitudes * 0.9
    assert model.domain().outside(smaller) == ("its moments span 1.98-1.98 μB, the training "
                                               "frames' 2.20-2.20 μB")


def test_a_domain_of_displaced_frames_covers_small_displacements(rng):
    base = labelled(1, rng)[0].system
    frames = []
    for _ in range(20):
        s = base.copy()
        s.positions = s.positions + rng.normal(0.0, 0.1, s.positions.shape)
        frames.append(s)
    domain = Domain.of_frames(frames, 5.0)
    inside = base.copy()
    inside.positions = inside.positions + rng.normal(0.0, 0.03, inside.positions.shape)
    assert domain.outside(inside) is None
    assert domain.outside(_strained(base, 1.1)).startswith("its atoms have 26 neighbours within 5 Å")


def test_predict_warns_once_and_does_not_pass_predictions_off_as_labels(model, tmp_path,
                                                                        capsys):
    save(model, tmp_path / "m.h5")
    oracle = paper_oracle()
    frames = []
    for f in model.frames[:3]:
        s = _strained(f.system, 1.02)
        frames.append(Frame(s, {"energy": oracle.compute(s)["energy"]},
                            {"oracle": "heisenberg", "oracle_settings": "abc", "set": "x"}))
    write_frames(tmp_path / "in.xyz", frames)
    assert main(["predict", "--model", str(tmp_path / "m.h5"), "--data",
                 str(tmp_path / "in.xyz"), "--out", str(tmp_path / "out.xyz"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"otf-spin: warning: {tmp_path / 'in.xyz'}: frame 0 and 2 more lie outside the "
        "model's training domain (100 % of its pair distances"), err
    for f in read_frames(tmp_path / "out.xyz"):
        assert "oracle" not in f.info and "oracle_settings" not in f.info
        assert f.info["model"] == "m.h5" and f.info["set"] == "x"
    write_frames(tmp_path / "own.xyz", model.frames and [Frame(f.system, {}) for f in
                                                           model.frames])
    assert main(["predict", "--model", str(tmp_path / "m.h5"), "--data",
                 str(tmp_path / "own.xyz"), "--out", str(tmp_path / "own_out.xyz"),
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_train_reads_a_training_store_and_refuses_other_hdf5_files(model, tmp_path, capsys):
    store = TrainingStore(str(tmp_path / "store.h5"))
    store.append([Frame(f.system, {"energy": f.energy, "fields": f.fields})
                  for f in model.frames])
    assert main(["train", "--data", str(tmp_path / "store.h5"), "--out",
                 str(tmp_path / "m.h5")]) == 0
    assert "trained on 6 frames" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "m.h5"), "--out",
                 str(tmp_path / "m2.h5")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"otf-spin: error: {tmp_path / 'm.h5'}: an otf-spin model file, not labelled "
        "frames: --data takes an extxyz file or a training store")
    assert not os.path.exists(tmp_path / "m2.h5")


def test_a_file_of_the_wrong_kind_is_named_for_what_it_is(model, tmp_path, capsys):
    """New-user review: a POSCAR given to predict, a run file given to train --data, a
    YAML file as --model or a model file as a run file got parser messages ("not UTF-8",
    an atom count, h5py's signature error). Each now says in one line what the file is and
    what was expected; a truncated model file is still reported as damaged."""
    import ase.io

    from otf_spin.io.extxyz import frame_to_atoms

    save(model, tmp_path / "m.h5")
    ase.io.write(tmp_path / "POSCAR", frame_to_atoms(Frame(model.frames[0].system)),
                 format="vasp")
    store = TrainingStore(str(tmp_path / "store.h5"))
    store.append([Frame(model.frames[0].system, {"fields": model.frames[0].fields})])
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("system: {}\n")
    own = tmp_path / "own.xyz"
    write_frames(own, [Frame(model.frames[0].system)])
    out = str(tmp_path / "out.xyz")
    cases = [
        (["predict", "--model", str(tmp_path / "m.h5"), "--data", str(tmp_path / "POSCAR"),
          "--out", out], "POSCAR: a vasp file (as ASE reads it), not extended XYZ"),
        (["train", "--data", str(run_yaml), "--out", str(tmp_path / "m2.h5")],
         "run.yaml: a YAML file, not extended XYZ"),
        (["predict", "--model", str(run_yaml), "--data", str(own), "--out", out],
         "run.yaml: a YAML file, not a model file"),
        (["predict", "--model", str(tmp_path / "store.h5"), "--data", str(own), "--out", out],
         "store.h5: an otf-spin training store, not a model file"),
        (["run", str(tmp_path / "m.h5")], "m.h5: an otf-spin model file, not a YAML file"),
        (["validate", str(tmp_path / "m.h5")], "m.h5: an otf-spin model file, not a YAML file"),
    ]
    errors = []
    for argv, message in cases:
        assert main(argv + (["--quiet"] if argv[0] == "predict" else [])) == 2, argv
        errors.append(capsys.readouterr().err)
        assert errors[-1].count("\n") == 1 and message in errors[-1], (argv, errors[-1])
    assert "convert with ASE" in errors[0] and "convert" not in errors[1]
    assert not os.path.exists(out) and not os.path.exists(tmp_path / "m2.h5")
    data = (tmp_path / "m.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[:len(data) // 2])
    assert main(["predict", "--model", str(tmp_path / "cut.h5"), "--data", str(own),
                 "--out", out]) == 2
    assert "cut.h5: cannot open model file" in capsys.readouterr().err


def test_a_model_run_warns_outside_the_domain_and_refuses_other_species_before_writing(
        model, tmp_path, capsys, monkeypatch):
    import hashlib

    import yaml

    save(model, tmp_path / "m.h5")
    monkeypatch.chdir(tmp_path)

    def run_file(a, species="Fe"):
        yaml.safe_dump({"system": {"lattice": "bcc", "a": a, "repeat": [2, 2, 2],
                                   "species": species, "moment": 2.2},
                        "hamiltonian": {"type": "model", "file": "m.h5"},
                        "dynamics": {"steps": 4, "temperature": 100},
                        "output": {"trajectory": "run.h5"}}, open("run.yaml", "w"))
        code = main(["run", "run.yaml", "--quiet"])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = run_file(2.83)
    assert code == 0 and "# warning" not in out
    code, out, _ = run_file(2.90)
    warnings_ = [line for line in out.splitlines() if line.startswith("# warning")]
    assert code == 0 and len(warnings_) == 1 and warnings_[0].startswith(
        "# warning: the structure lies outside the model's training domain (100 % of its "
        "pair distances")
    before = hashlib.sha256(open("run.h5", "rb").read()).hexdigest()
    code, _, err = run_file(2.83, "Co")
    assert code == 2 and err.strip() == (
        "otf-spin: error: run.yaml: the structure has species Co, which the model was not "
        "trained on (model species: Fe)")
    assert hashlib.sha256(open("run.h5", "rb").read()).hexdigest() == before


def test_an_otf_run_refuses_a_starting_model_of_other_species_before_labelling(
        model, tmp_path, capsys, monkeypatch):
    """``otf.model`` trained on Fe, the system Co: one line naming the key, exit 2, and no
    label, store, checkpoint or trajectory (the check used to come after the header, the
    initial labels and the trajectory's creation)."""
    import yaml

    save(model, tmp_path / "m.h5")
    monkeypatch.chdir(tmp_path)
    yaml.safe_dump({"system": {"lattice": "bcc", "a": 2.83, "repeat": [2, 2, 2],
                               "species": "Co", "moment": 2.2},
                    "oracle": {"type": "heisenberg", "convention": "double_counted",
                               "shells": [[1.0, 0.1]], "distance_unit": "lattice"},
                    "otf": {"threshold": 4, "model": "m.h5"},
                    "dynamics": {"steps": 4, "temperature": 100},
                    "output": {"trajectory": "run.h5"}}, open("run.yaml", "w"))
    code = main(["run", "run.yaml", "--quiet"])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.strip() == (
        "otf-spin: error: run.yaml: otf.model: the structure has species Co, which the "
        "model was not trained on (model species: Fe)")
    assert captured.out == "" and sorted(os.listdir(tmp_path)) == ["m.h5", "run.yaml"]


def test_outside_the_domain_the_posterior_is_not_scaled_below_its_own_size(model, rng,
                                                                           monkeypatch):
    """c² < 1 (held-out errors smaller than the posterior says) is measured in the domain
    only: on displaced atoms the posterior part of every std loses the factor c² (and c_E²),
    on the training structure nothing changes."""
    c = model.hyper["std_field_scale"]
    assert c < 1 and model.hyper["std_energy_scale"] < 1      # this fit: the case at issue
    inside = model.frames[1].system
    displaced = inside.copy()
    displaced.positions = displaced.positions + rng.normal(0.0, 0.07,
                                                           displaced.positions.shape)
    assert not model._outside(inside) and model._outside(displaced)
    ruled = [model.predict(s) for s in (inside, displaced)]
    monkeypatch.setattr(type(model), "_outside", lambda self, system: False)
    plain = [model.predict(s) for s in (inside, displaced)]
    for key in ("fields_std", "fields_std_epistemic", "energy_std"):
        np.testing.assert_array_equal(ruled[0][key], plain[0][key])
    np.testing.assert_allclose(ruled[1]["fields_std_epistemic"],
                               plain[1]["fields_std_epistemic"] / c, rtol=1e-12)
    assert (ruled[1]["fields_std"] > plain[1]["fields_std"]).all()
    assert ruled[1]["energy_std"] > plain[1]["energy_std"]
