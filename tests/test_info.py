"""`otf-spin info`: trajectory, training store, model and checkpoint files of a short
on-the-fly run, an extxyz file, and one-line errors for anything else."""
import json
import os

import h5py
import numpy as np
import pytest

from helpers import small_otf_run
from otf_spin.cli import main
from otf_spin.factory import load_run
from otf_spin.io.info import describe, format_info
from otf_spin.learning.store import TrainingStore
from otf_spin.runner import run


@pytest.fixture(scope="module")
def otf_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("otf")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = run(load_run(small_otf_run(folder, steps=30)), progress=False,
                     log=open(os.devnull, "w"))
    finally:
        os.chdir(cwd)
    return folder, result


def test_trajectory(otf_files):
    folder, result = otf_files
    info = describe(folder / "otf_run.h5")
    assert info["kind"] == "trajectory" and info["format_version"] == "1.1"
    assert info["atoms"] == 8 and info["species"] == {"Fe": 8}
    assert info["size_bytes"] == os.path.getsize(folder / "otf_run.h5")
    with h5py.File(folder / "otf_run.h5") as f:
        names = set(f["observables"])
        points = len(f["observables/energy/step"])
    assert set(info["observables"]) == names and info["on_the_fly"]
    assert info["observables"]["energy"]["points"] == points
    assert info["observables"]["energy"]["unit"] == "eV"
    assert info["observables"]["oracle_calls"]["last"] == result["learner"].calls


def test_store_model_and_checkpoint(otf_files):
    folder, result = otf_files
    learner = result["learner"]
    store = describe(folder / "otf_store.h5")
    assert store["kind"] == "training store" and store["format_version"] == 1
    frames = len(TrainingStore(folder / "otf_store.h5"))
    assert store["frames"] == frames and 0 < frames <= learner.calls
    assert store["oracles"] == {"heisenberg": frames} and store["atoms"] == 8 * frames
    assert store["labels"] == {"energy": frames, "fields": frames}
    assert store["oracle_settings"][0]["type"] == "heisenberg"
    model = describe(folder / "otf_model.h5")
    assert model["kind"] == "model" and model["training_frames"] == learner.model.n_frames
    assert model["sparse_points"] == [len(S) for S in learner.model.sparse]
    assert model["descriptor"]["n_max"] == 6 and not model["design_rows"]
    check = describe(folder / "otf_checkpoint.h5")
    assert check["kind"] == "checkpoint"
    assert check["replicas"]["r000"]["step"] == 30 and check["replicas"]["r000"]["spins"] == 8
    assert check["learner"]["calls"] == learner.calls
    assert check["model"]["design_rows"] and check["store_frames"] == frames
    text = format_info(check)
    assert text.splitlines()[0] == "kind: checkpoint" and "size: " in text


def test_cli_text_json_and_errors(otf_files, tmp_path, capsys):
    folder, _ = otf_files
    assert main(["info", str(folder / "otf_store.h5"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "training store"
    assert main(["info", str(folder / "otf_run.h5"), str(folder / "otf_model.h5")]) == 0
    out = capsys.readouterr().out
    assert "kind: trajectory" in out and "kind: model" in out
    (tmp_path / "notes.txt").write_text("hello\n")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    for bad, reason in (("notes.txt", "neither an otf-spin HDF5 file"),
                        ("other.h5", "not an otf-spin trajectory"),
                        ("absent.h5", "no such file")):
        assert main(["info", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and reason in err


def test_extxyz(otf_files, tmp_path):
    folder, _ = otf_files
    from otf_spin.io.extxyz import write_frames

    frames = TrainingStore(folder / "otf_store.h5").frames()
    write_frames(tmp_path / "set.xyz", frames)
    info = describe(tmp_path / "set.xyz")
    assert info["kind"] == "extxyz data" and info["frames"] == len(frames)
    assert info["atoms"] == 8 * len(frames) and info["labels"]["fields"] == len(frames)


def test_model_noise_carries_its_units_and_the_species_are_shown(otf_files, capsys):
    """The model's noise settings are named with their units (σ_e eV per atom, σ_b
    eV/μB: 0.0003 alone read as meV or eV), and its training species are listed."""
    folder, _ = otf_files
    model = describe(folder / "otf_model.h5")
    assert set(model["noise"]) == {"energy_eV_per_atom", "field_eV_per_muB"}
    with h5py.File(folder / "otf_model.h5", "r") as h5:
        settings = json.loads(h5.attrs["settings"])
    assert model["noise"]["energy_eV_per_atom"] == settings["noise"]["energy"]
    assert model["noise"]["field_eV_per_muB"] == settings["noise"]["field"]
    assert model["species"] == ["Fe"]
    assert main(["info", str(folder / "otf_model.h5")]) == 0
    out = capsys.readouterr().out
    assert "\n  energy_eV_per_atom: " in out and "\n  field_eV_per_muB: " in out
