"""Training-set generation: shell identifiability of the cells, farthest-point selection,
the whole command (resumable) and the accuracy of a model trained on what it produces."""
import os

import numpy as np
import pytest
import yaml

from otf_spin import oracles
from otf_spin.cli import main
from otf_spin.core import Frame
from otf_spin.factory import load_generate
from otf_spin.io.extxyz import read_frames
from otf_spin.learning.generate import farthest_point_frames, generate
from otf_spin.learning.store import TrainingStore
from otf_spin.model.aliasing import pair_shell_counts, shell_rank
from otf_spin.oracles.heisenberg import HeisenbergOracle
from otf_spin.parallel import SerialComm
from otf_spin.system import bulk, random_sphere

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "input_examples", "bccFe_generate.yaml")


def shell_oracle(shells, couplings):
    """Heisenberg oracle with one J (eV) per shell distance (Å)."""
    return oracles.from_block({"type": "heisenberg", "convention": "double_counted",
                               "distance_unit": "angstrom",
                               "shell_tolerance": 1e-3, "moment": 2.2,
                               "shells": [[float(d), 1e3 * float(j)]
                                          for d, j in zip(shells, couplings)]})


def test_shell_rank_of_bcc_cells():
    wide = bulk("bcc", 2.83, (6, 6, 6))
    rank, shells = shell_rank([wide], 7.0)
    assert rank == len(shells) == 9               # no aliasing: every shell on its own
    assert shell_rank([bulk("bcc", 2.83, (2, 2, 2))], 7.0)[0] == 4
    assert shell_rank([bulk("bcc", 2.83, (2, 2, 2)), bulk("bcc", 2.83, (3, 3, 3))],
                      7.0)[0] == 9


def test_unresolved_shells_are_invisible_to_every_label(rng):
    """Exchange differing along a null vector of the 16-atom cell's shell counts gives
    the same energies and fields there for any spins, and different ones in a cell
    that resolves the shells: what the rank counts is physical."""
    small, large = bulk("bcc", 2.83, (2, 2, 2)), bulk("bcc", 2.83, (3, 3, 3))
    shells, counts = pair_shell_counts(small, 7.0)
    null = np.linalg.svd(counts)[2][-1]           # counts @ null = 0
    assert np.abs(counts @ null).max() < 1e-12
    J = 0.01 * np.exp(-shells / 2.0)
    one, other = shell_oracle(shells, J), shell_oracle(shells, J + 0.005 * null)
    for _ in range(3):
        small.set_directions(random_sphere(len(small), rng))
        a, b = one.compute(small), other.compute(small)
        assert a["energy"] == pytest.approx(b["energy"], abs=1e-12)
        np.testing.assert_allclose(a["fields"], b["fields"], atol=1e-12)
    large.set_directions(random_sphere(len(large), rng))
    assert abs(one.compute(large)["energy"] - other.compute(large)["energy"]) > 1e-4


def test_farthest_point_takes_one_frame_per_cluster_first(rng):
    centres = 10.0 * np.eye(4)
    frames = [centres[k % 4] + 0.1 * rng.standard_normal((3, 4)) for k in range(20)]
    chosen, covered = farthest_point_frames(frames, 4)
    assert sorted(k % 4 for k in chosen) == [0, 1, 2, 3]
    radii = [farthest_point_frames(frames, n)[1][-1] for n in (1, 2, 4, 8)]
    assert all(b <= a for a, b in zip(radii, radii[1:])) and radii[2] < 0.2 * radii[0]
    history = farthest_point_frames(frames, 8)[1]                # greedy: prefixes agree
    assert [history[n - 1] for n in (1, 2, 4, 8)] == radii
    assert farthest_point_frames(frames, 20)[1][-1] == 0.0 and \
        len(set(farthest_point_frames(frames, 20)[0])) == 20


def write_config(folder, **changes):
    data = yaml.safe_load(open(EXAMPLE))
    del data["oracle"]["moment_slaving"]          # fixed moments: the linear model is exact
    for section, values in changes.items():
        data[section].update(values)
    data["output"] = {k: os.path.join(folder, v) for k, v in data["output"].items()}
    path = os.path.join(folder, "gen.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    return path


def stored(path):
    store = TrainingStore(path)
    return [(f.system.directions.tobytes(), f.energy) for f in store.frames()]


def test_generate_resumes_and_trains_to_the_paper_target(tmp_path, monkeypatch, capsys):
    from otf_spin.learning.paper_sets import generate_set
    from otf_spin.model import build_model

    reference = tmp_path / "reference"
    reference.mkdir()
    summary = generate(load_generate(write_config(str(reference))), progress=False,
                       comm=SerialComm())
    assert summary["shell_rank"] == (9, 9) and summary["frames"] == 50
    assert summary["labelled"] == 50

    # interrupted after 7 oracle calls (as by Ctrl-C), then rerun: the same training set,
    # with only the missing frames labelled
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    path = write_config(str(resumed))
    calls = {"n": 0}
    compute = HeisenbergOracle.compute

    def interrupted(self, system):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return compute(self, system)

    monkeypatch.setattr(HeisenbergOracle, "compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(load_generate(path), progress=False, comm=SerialComm())
    assert len(TrainingStore(resumed / "gen_store.h5")) == 7
    monkeypatch.setattr(HeisenbergOracle, "compute", compute)
    assert main(["generate", "--quiet", path]) == 0
    assert "43 new, 7 already stored" in capsys.readouterr().out
    assert stored(resumed / "gen_store.h5") == stored(reference / "gen_store.h5")

    # the generated set trains (defaults) to the fixed-moment target of the paper set (a)
    model = build_model()
    model.fit(read_frames(resumed / "gen_train.xyz"))
    _, test = generate_set("random", scale=0.08)
    errors = [(model.predict(f.system, stds=False)["energy"] - f.energy) / len(f.system)
              for f in test]
    assert 1e3 * np.sqrt(np.mean(np.square(errors))) < 0.01     # meV/atom


@pytest.mark.parametrize("changes, message", [
    ({"sampler": {"temperatures": [300, "3 fs"]}}, "sampler.temperatures[1]: unit 'fs'"),
    ({"sampler": {"temperatures": [300, 0]}}, "sampler.temperatures[1]: a temperature of 0 K"),
    ({"sampler": {"sweeps": 3}}, "sampler.sweeps: unknown key"),
    ({"select": {"method": "variance"}}, "select.model: method variance needs a model file"),
    ({"cells": {"auto": False, "repeats": []}}, "cells: no cells"),
])
def test_generate_config_errors_name_the_key(tmp_path, capsys, changes, message):
    path = write_config(str(tmp_path), **changes)
    assert main(["generate", path]) == 2
    err = capsys.readouterr().err
    assert message in err and "gen.yaml" in err and len(err.strip().splitlines()) == 1


def test_generate_refuses_to_overwrite_an_input_or_another_kind(tmp_path, capsys):
    """Before sampling: an output at the path of another output or of the selection's
    model, or over an existing file of another kind (a training store), is refused in one
    line naming the keys and the YAML file; the file is untouched."""
    store = tmp_path / "other_store.h5"
    TrainingStore(store).append([Frame(bulk("bcc", 2.83, (1, 1, 1)), {"energy": 0.0})])
    before = store.read_bytes()
    for output, message in [({"extxyz": str(store)},
                             f"output.extxyz: {store} is a training store, not an extxyz"),
                            ({"candidates": "gen_train.xyz"},
                             "output.extxyz and output.candidates are the same path")]:
        path = write_config(str(tmp_path), output=output)
        assert main(["generate", path, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and "gen.yaml" in err and len(err.strip().splitlines()) == 1, err
    assert store.read_bytes() == before


def test_generate_refuses_a_store_of_another_oracle(tmp_path, capsys):
    """A rerun with another oracle would count the old labels as 'already stored'
    (new-user review: 0 new, 20 stored): refused before sampling, the store untouched."""
    path = write_config(str(tmp_path))
    store_path = yaml.safe_load(open(path))["output"]["store"]
    settings = dict(load_generate(path)["oracle"].settings(), shell_tolerance=0.3)
    TrainingStore(store_path).append([Frame(bulk("bcc", 2.83, (1, 1, 1)), {"energy": 0.0})],
                                     [{"oracle": "heisenberg", "settings": settings}])
    before = open(store_path, "rb").read()
    assert main(["generate", path, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "output.store: " in err and "1 of 1 frames labelled by another oracle " \
        "(shell_tolerance: 0.3 → " in err and len(err.strip().splitlines()) == 1, err
    assert open(store_path, "rb").read() == before


def test_generate_needs_a_sampler_for_a_dft_oracle(tmp_path, capsys):
    path = write_config(str(tmp_path))
    data = yaml.safe_load(open(path))
    data["oracle"] = {"type": "command", "command": "true", "workdir": str(tmp_path / "jobs")}
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    assert main(["generate", path]) == 2
    assert "sampler.hamiltonian: required unless the oracle is a heisenberg" in \
        capsys.readouterr().err
