"""Training store: exact round trip, no duplicates, provenance, crash safety."""
import multiprocessing
import os

import h5py
import numpy as np
import pytest

from otf_spin.core import Frame
from otf_spin.learning.paper_sets import paper_oracle
from otf_spin.learning.store import TrainingStore
from otf_spin.system import bulk, random_sphere


def labelled(rng, n=3):
    frames = []
    for _ in range(n):
        system = bulk("bcc", 2.83, (2, 2, 2))
        system.set_directions(random_sphere(len(system), rng))
        r = paper_oracle().compute(system)
        frames.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    return frames


def test_round_trip_exact_and_no_duplicates(tmp_path, rng):
    store = TrainingStore(tmp_path / "store.h5")
    frames = labelled(rng)
    assert store.append(frames, [{"oracle": "heisenberg", "job_directory": f"j{k}"}
                                 for k in range(3)]) == 3
    assert store.append(frames[:2]) == 0                     # already there
    energy_only = Frame(frames[0].system.copy(), {"energy": 1.0})
    energy_only.system.positions[0, 0] += 0.01
    assert store.append([energy_only]) == 1
    reopened = TrainingStore(tmp_path / "store.h5")
    assert len(reopened) == 4
    back = reopened.frames()
    for a, b in zip(frames, back):
        np.testing.assert_array_equal(a.system.directions, b.system.directions)
        np.testing.assert_array_equal(a.results["fields"], b.results["fields"])
        assert a.results["energy"] == b.results["energy"]
    assert back[1].info["provenance"]["job_directory"] == "j1"
    assert "package_version" in back[1].info["provenance"]
    assert sorted(back[3].results) == ["energy"]


def _append_forever(path, seed):
    rng = np.random.default_rng(seed)
    store = TrainingStore(path)
    while True:
        store.append(labelled(rng, 1))


def test_killed_writer_leaves_a_readable_store(tmp_path, rng):
    path = tmp_path / "store.h5"
    TrainingStore(path).append(labelled(rng, 2))
    for attempt in range(3):
        process = multiprocessing.get_context("fork").Process(target=_append_forever,
                                                              args=(path, attempt))
        process.start()
        process.join(0.5 + 0.3 * attempt)
        process.kill()                       # SIGKILL at an arbitrary point
        process.join()
        store = TrainingStore(path)          # readable, and every frame complete
        assert len(store) >= 2
        with h5py.File(path) as h5:
            assert h5["atoms/positions"].shape[0] == 16 * len(store)
    leftovers = [p for p in os.listdir(tmp_path) if p != "store.h5"]
    assert all(p.endswith(".tmp") for p in leftovers)


def test_not_a_store(tmp_path):
    from otf_spin.core import DataFileError

    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["format"] = "something else"
    with pytest.raises(DataFileError, match="not an otf-spin training store"):
        TrainingStore(path)
