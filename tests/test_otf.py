"""On-the-fly learning: the loop, its output, oracle faults, kill-and-restart bit for bit."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from otf_spin.factory import load_run
from otf_spin.learning.store import TrainingStore
from otf_spin.runner import run
from helpers import run_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "input_examples", "bccFe_otf_heisenberg.yaml")
FAKE_DFT = os.path.join(ROOT, "tests", "fixtures", "fake_dft", "heisenberg_dft.py")


def config(folder, steps=300, **otf):
    data = yaml.safe_load(open(EXAMPLE))
    data["dynamics"]["steps"] = steps
    data["otf"].update({"threshold": 2.0, "check_every": 5, "min_steps_between_calls": 5,
                        "max_oracle_calls": 8, "checkpoint_every": 20}, **otf)
    path = os.path.join(folder, "otf.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    return path


def test_otf_run_learns_and_writes_everything(tmp_path):
    result = run_in(tmp_path, config(tmp_path))
    learner = result["learner"]
    assert learner.calls >= 4                      # initial frames + triggered labels
    store = TrainingStore(tmp_path / "otf_store.h5")
    assert len(store) == learner.calls == learner.model.n_frames
    provenance = store.frames()[-1].info["provenance"]
    assert provenance["oracle"] == "heisenberg" and "step" in provenance
    with h5py.File(tmp_path / "otf_run.h5") as f:
        calls = f["observables/oracle_calls/value"][()]
        assert calls[-1] == learner.calls and np.all(np.diff(calls) >= 0)
        assert f["observables/max_field_std/value"].attrs["unit"] == "eV/mu_B"
        assert np.nanmax(f["observables/max_field_std/value"][()]) > 0
    assert os.path.exists(tmp_path / "otf_model.h5")


def test_failing_oracle_is_retried_skipped_and_nothing_is_lost(tmp_path):
    path = config(tmp_path, steps=60)
    data = yaml.safe_load(open(path))
    data["otf"]["initial_frames"] = 0
    data["otf"]["retries"] = 1
    # the first job (initial frame) succeeds; after it a marker file makes every job fail
    data["oracle"] = {"type": "command", "timeout": 20, "workdir": "jobs",
                      "command": f"test -e {tmp_path}/broken && exit 7; "
                                 f"{sys.executable} {FAKE_DFT} ok"}
    yaml.safe_dump(data, open(path, "w"))
    cfg = load_run(path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        from otf_spin.learning.otf import OnTheFly

        original = OnTheFly.initial

        def initial_then_break(self, system, rng):
            original(self, system, rng)
            open(tmp_path / "broken", "w").close()

        OnTheFly.initial = initial_then_break
        try:
            with open(tmp_path / "log.txt", "w") as handle:
                result = run(cfg, progress=False, log=handle)
        finally:
            OnTheFly.initial = original
    finally:
        os.chdir(cwd)
    log = open(tmp_path / "log.txt").read()
    assert "oracle failure (attempt 1," in log and "oracle failure (attempt 2," in log
    assert "skipped after retries" in log
    learner = result["learner"]
    assert learner.failures == 2 * learner.skipped and learner.skipped >= 1
    assert log.strip().splitlines()[-1] == (
        f"# warning: the oracle failed on {learner.skipped} of {learner.skipped + 1} "
        "configurations after 1 retries each; the model was not refitted on them (reasons "
        "in the log above, job folders in jobs)")
    assert len(TrainingStore(tmp_path / "otf_store.h5")) == 1     # the good frame only
    assert result["state"].step == 60                              # the run went on


def _trajectory(folder):
    with h5py.File(os.path.join(folder, "otf_run.h5")) as f:
        return (f["particles/all/spin/value"][()], f["particles/all/spin/step"][()],
                f["observables/oracle_calls/value"][()], f["observables/energy/value"][()])


def test_killed_and_restarted_run_reproduces_the_uninterrupted_run(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    command = [os.path.join(os.path.dirname(sys.executable), "otf-spin"), "run", "otf.yaml",
               "--quiet"]
    config(reference, steps=3000)
    config(killed, steps=3000)
    start = time.monotonic()
    subprocess.run(command, cwd=reference, check=True, capture_output=True)
    wall = time.monotonic() - start     # kills at a fraction of it: a fixed 1.5-3 s came
    rng = np.random.default_rng(7)      # after the end of a 2.4 s run on an idle machine
    kills = 0
    for attempt in range(6):
        process = subprocess.Popen(command, cwd=killed, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=rng.uniform(0.35, 0.75) * wall)
            break                                   # finished before the kill
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
    else:
        subprocess.run(command, cwd=killed, check=True, capture_output=True)
    if process.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"run exited with {process.returncode}")
    if process.returncode != 0:
        subprocess.run(command, cwd=killed, check=True, capture_output=True)
    assert kills >= 1, "the run finished before it could be killed; make it longer"
    a, b = _trajectory(reference), _trajectory(killed)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len(TrainingStore(reference / "otf_store.h5")) == \
        len(TrainingStore(killed / "otf_store.h5"))


def test_batched_labelling(tmp_path):
    result = run_in(tmp_path, config(tmp_path, steps=200, batch_size=3))
    learner = result["learner"]
    assert len(learner.queue) < 3                     # a partial batch may remain
    store = TrainingStore(tmp_path / "otf_store.h5")
    steps = [f.info["provenance"].get("step") for f in store.frames()]
    assert len(store) == learner.calls
    labelled_steps = [s for s in steps if s is not None]
    assert len(labelled_steps) >= 3 and len(labelled_steps) % 3 == 0


# --- outputs that cannot clobber each other -------------------------------------------
def cli_run(folder, *extra):
    """``otf-spin run otf.yaml --quiet`` in ``folder``: (exit status, stderr lines)."""
    import contextlib
    import io

    from otf_spin.cli import main

    cwd, err = os.getcwd(), io.StringIO()
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", "otf.yaml", "--quiet", *extra])
    finally:
        os.chdir(cwd)
    return code, [line for line in err.getvalue().splitlines() if "Warning" not in line
                  and "_load_kernel" not in line]


def snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, name))}


def edit(folder, **sections):
    path = os.path.join(folder, "otf.yaml")
    data = yaml.safe_load(open(path))
    for section, values in sections.items():
        data[section].update(values)
    yaml.safe_dump(data, open(path, "w"))


@pytest.mark.parametrize("first, second", [
    ("otf.store", "otf.checkpoint"), ("otf.store", "otf.save_model"),
    ("output.trajectory", "otf.store"), ("output.trajectory", "otf.checkpoint"),
    ("otf.checkpoint", "otf.save_model"), ("otf.save_model", "otf.model"),
])
def test_outputs_that_share_a_path_are_refused_before_anything_is_written(tmp_path, first,
                                                                          second):
    from helpers import small_otf_run

    small_otf_run(tmp_path, steps=6)
    shared = "shared.h5"
    changes = {}
    for key in (first, second):
        section, name = key.split(".")
        changes.setdefault(section, {})[name] = shared
    if "otf.model" in (first, second):
        run_in(tmp_path, "otf.yaml")                 # a model file to start from
        os.replace(tmp_path / "otf_model.h5", tmp_path / shared)
        for name in os.listdir(tmp_path):
            if name.startswith("otf_"):
                os.remove(tmp_path / name)
    edit(tmp_path, **changes)
    before = snapshot(tmp_path)
    code, lines = cli_run(tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert f"{first} and {second} are the same path (shared.h5)" in lines[0]
    assert snapshot(tmp_path) == before                      # nothing written


@pytest.mark.parametrize("key, kind, made_by", [
    ("otf.store", "training store", "checkpoint"),
    ("otf.checkpoint", "checkpoint", "training store"),
    ("otf.save_model", "model", "trajectory"),
    ("output.trajectory", "trajectory", "model"),
    ("otf.checkpoint", "checkpoint", "file"),
])
def test_a_file_of_another_kind_is_never_overwritten(tmp_path, key, kind, made_by):
    """Every output path is checked before the run starts: a file there must be of the
    kind the run writes (format marker), else the run stops with one line, exit 2 —
    also with --fresh, which would otherwise delete the checkpoint."""
    from helpers import small_otf_run

    source = tmp_path / "source"
    source.mkdir()
    small_otf_run(source, steps=6)
    run_in(source, "otf.yaml")
    files = {"checkpoint": "otf_checkpoint.h5", "training store": "otf_store.h5",
             "trajectory": "otf_run.h5", "model": "otf_model.h5"}
    folder = tmp_path / "run"
    folder.mkdir()
    small_otf_run(folder, steps=6)
    if made_by == "file":
        open(folder / "victim.h5", "w").write("my notes\n")
    else:
        os.replace(source / files[made_by], folder / "victim.h5")
    section, name = key.split(".")
    edit(folder, **{section: {name: "victim.h5"}})
    before = snapshot(folder)
    for extra in ((), ("--fresh",)):
        code, lines = cli_run(folder, *extra)
        assert code == 2 and len(lines) == 1, lines
        assert f"{key}: victim.h5 is a {made_by}, not a {kind}; refusing to overwrite" \
            in lines[0]
        assert snapshot(folder) == before


def test_a_checkpoint_of_another_input_is_refused_unless_fresh(tmp_path):
    from helpers import small_otf_run

    small_otf_run(tmp_path, steps=12, checkpoint_every=6)
    assert cli_run(tmp_path)[0] == 0
    edit(tmp_path, otf={"checkpoint_every": 4, "save_model": "other_model.h5"})
    assert cli_run(tmp_path) == (0, [])         # file names and pace are not physics
    for section, change in (("otf", {"threshold": 1.5}), ("dynamics", {"damping": 0.2}),
                            ("oracle", {"shell_tolerance": 0.04})):
        edit(tmp_path, **{section: change})
        before = snapshot(tmp_path)
        for extra in ((), ("--fresh",)) if section == "oracle" else ((),):
            code, lines = cli_run(tmp_path, *extra)
            assert code == 2 and len(lines) == 1, lines
            if section == "oracle":     # the store's labels are another oracle's: refused
                assert "otf.store: otf_store.h5 holds" in lines[0] and "labelled by " \
                    "another oracle (shell_tolerance: " in lines[0] and "its own store" \
                    in lines[0]                 # (--fresh: before it deletes anything)
            else:
                assert "otf_checkpoint.h5 was made by a different input (its sections " \
                    f"{section} differ" in lines[0] and "--fresh" in lines[0]
            assert snapshot(tmp_path) == before
        if section == "oracle":
            edit(tmp_path, otf={"store": "other_store.h5"})
        assert cli_run(tmp_path, "--fresh") == (0, [])


def test_a_store_labelled_by_another_oracle_is_never_read_as_this_ones(tmp_path):
    """New-user review: a store of c = 0.94 labels reused by a c = 1.5 run (--fresh, or a
    new checkpoint path) made the run the old oracle's physics without a word. Now
    refused, nothing written; settings that are not physics (the job folder) may differ."""
    from helpers import small_otf_run

    from otf_spin.oracles import settings_difference

    small_otf_run(tmp_path, steps=6)
    assert cli_run(tmp_path)[0] == 0
    formula = yaml.safe_load(open(tmp_path / "otf.yaml"))["oracle"]["formula"]
    edit(tmp_path, oracle={"formula": dict(formula, c=1.5)},
         otf={"checkpoint": "new_checkpoint.h5"})
    before = snapshot(tmp_path)
    code, lines = cli_run(tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert "labelled by another oracle (formula: " in lines[0]
    assert snapshot(tmp_path) == before
    assert settings_difference({"type": "qe", "command": "pw.x", "workdir": "a", "ecut": 1},
                               {"type": "qe", "command": "mpirun pw.x", "workdir": "b",
                                "ecut": 1}) is None
    assert settings_difference({"type": "command", "command": "a"},
                               {"type": "command", "command": "b"}) == "command: 'a' → 'b'"
    # a project moved elsewhere (file names kept), a key at its default written or not
    uppasd = lambda where: {"type": "heisenberg", "convention": "per_pair",   # noqa: E731
                            "uppasd": {"jfile": f"/{where}/jfile", "maptype": 2,
                                       "posfile": f"/{where}/posfile"}}
    assert settings_difference(uppasd("projA"), uppasd("clusterB/run")) is None
    plain = {"type": "heisenberg", "convention": "per_pair"}
    assert settings_difference(dict(plain, shell_tolerance=0.05), plain) is None
    assert settings_difference(dict(plain, shell_tolerance=0.06), plain) == \
        "shell_tolerance: 0.06 → '(default)'"


def test_store_frames_of_another_input_start_the_model_and_own_frames_replay(tmp_path):
    """Frames another input labelled are a start (fitted on, no initial frames labelled);
    a rerun of the same input with --fresh replays its own labels without oracle jobs."""
    from helpers import small_otf_run

    small_otf_run(tmp_path, steps=12)
    first = run_in(tmp_path, "otf.yaml")["learner"]
    stored = len(TrainingStore(tmp_path / "otf_store.h5"))
    assert stored == first.calls > 3
    again = run_in(tmp_path, "otf.yaml", fresh=True)["learner"]
    assert (again.calls, again.reused) == (first.calls, first.calls)
    assert len(TrainingStore(tmp_path / "otf_store.h5")) == stored
    edit(tmp_path, dynamics={"seed": 2})
    log = tmp_path / "log.txt"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        run(load_run("otf.yaml"), progress=False, log=open(log, "w"), fresh=True)
    finally:
        os.chdir(cwd)
    assert f"# initial model: {stored} frames" in open(log).read()
    frames = TrainingStore(tmp_path / "otf_store.h5").frames()
    assert all(f.info["provenance"]["origin"] == "run" for f in frames[stored:])


def test_a_plain_run_does_not_overwrite_a_store_with_its_trajectory(tmp_path):
    from otf_spin.cli import main
    from helpers import small_otf_run

    small_otf_run(tmp_path, steps=3)
    run_in(tmp_path, "otf.yaml")
    plain = {"system": {"lattice": "bcc", "a": 2.83, "repeat": [2, 2, 2], "moment": 2.2},
             "hamiltonian": {"type": "heisenberg", "convention": "double_counted",
                             "distance_unit": "lattice", "shells": [[0.866, 19.48]]},
             "dynamics": {"steps": 5}, "output": {"trajectory": "otf_store.h5"}}
    yaml.safe_dump(plain, open(tmp_path / "plain.yaml", "w"))
    before = snapshot(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["run", "plain.yaml", "--quiet"]) == 2
    finally:
        os.chdir(cwd)
    assert snapshot(tmp_path) == before


def test_labelled_configurations_are_exactly_those_above_threshold(tmp_path, monkeypatch):
    """Checking every step with no pacing: a configuration is labelled if and only if the
    σ of its check passed the threshold (fails for a loop that labels below it, skips
    one above it, or labels some other configuration)."""
    from otf_spin.learning.otf import OnTheFly

    events = []
    sync, label_all = OnTheFly.sync, OnTheFly._label_all

    def recording_sync(self, step, reports, system):
        # one report per replica: (max σ of the check, directions if above, candidates)
        events.extend(("check", max_std > self.threshold.value,
                       None if directions is None else directions.copy())
                      for max_std, directions, _ in reports)
        return sync(self, step, reports, system)

    def recording_label_all(self, probes, provenance):
        events.extend(("label", None, probe.directions.copy()) for probe in probes)
        return label_all(self, probes, provenance)

    monkeypatch.setattr(OnTheFly, "sync", recording_sync)
    monkeypatch.setattr(OnTheFly, "_label_all", recording_label_all)
    run_in(tmp_path, config(tmp_path, steps=150, check_every=1, min_steps_between_calls=1,
                            max_oracle_calls=1000))
    first = next(k for k, event in enumerate(events) if event[0] == "check")
    events = events[first:] + [("end", None, None)]
    above = below = 0
    for (kind, passed, directions), following in zip(events, events[1:]):
        if kind != "check":
            continue
        if passed:
            above += 1
            assert following[0] == "label", "a check above threshold was not labelled"
            np.testing.assert_array_equal(following[2], directions)
        else:
            below += 1
            assert following[0] != "label", "a check below threshold was labelled"
    assert above >= 2 and below >= 10


@pytest.mark.parametrize("reselect", [True, False])
def test_the_saved_model_is_fitted_from_scratch_on_all_labels(tmp_path, reselect):
    """At the end of a run with ``reselect_terms`` (OnTheFly.finish) the model saved is
    fitted from scratch on every label, terms chosen again — the model a second fit from
    scratch gives (to round-off); without it, the incrementally refitted model in use is
    saved."""
    from otf_spin.model import storage
    from helpers import small_otf_run

    name = small_otf_run(tmp_path, max_oracle_calls=11, reselect_terms=reselect)
    result = run_in(tmp_path, os.path.join(tmp_path, name))
    learner = result["learner"]
    saved, _ = storage.load(tmp_path / "otf_model.h5")
    assert saved.n_frames == learner.calls >= 8      # 8 with, 11 without reselect_terms
    probe = result["system"].copy()
    probe.directions = result["state"].directions
    assert not learner.finish()      # nothing new since the last choice (the run made it)
    before = saved.predict(probe, stds=False)
    if reselect:
        assert learner.selected_at == learner.calls      # the final choice, on all labels
        # made again as the run's last one was: with the terms in use as ``current``
        # (selected_at 0 would make it a first choice, without the hysteresis)
        learner.selected_at = learner.calls - 1
        assert learner.finish()
        again = learner.model.predict(probe, stds=False)
        # the frames a fit keeps are projected again: equal to round-off, not bit for bit
        # (the model chose the angle term from 6 frames on, whose solve loses digits on
        # the smallest components: 1.3e-12 eV/μB seen on fields of 0.1, 2.5e-11 relative
        # on the energy; tolerances 1e-9 of them)
        scale = np.abs(before["fields"]).max()
        np.testing.assert_allclose(again["fields"], before["fields"], rtol=1e-9,
                                   atol=1e-9 * scale)
        assert again["energy"] == pytest.approx(before["energy"], rel=1e-9)
    else:
        assert learner.selected_at == 0
        assert before["energy"] == learner.model.predict(probe, stds=False)["energy"]


def test_rerunning_a_finished_run_says_it_is_complete(tmp_path):
    """New-user review: a rerun of a finished run printed 'resuming … at step N … 0
    spin-updates/s' and nothing more; it now says there is nothing left to do."""
    import io

    from helpers import small_otf_run

    from otf_spin.factory import load_run
    from otf_spin.runner import run

    small_otf_run(tmp_path, steps=6)
    logs = []
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for _ in range(2):
            log = io.StringIO()
            run(load_run("otf.yaml"), progress=False, log=log)
            logs.append(log.getvalue())
    finally:
        os.chdir(cwd)
    assert "resuming" not in logs[0]
    assert "resuming from otf_checkpoint.h5 at step 6 — the run is complete: nothing left " \
        "to do (--fresh starts over)" in logs[1]


def test_a_store_labelled_with_another_jfile_of_the_same_name_is_refused(tmp_path, fe16):
    """Review of the one-oracle rule: paths are compared by file name (a moved project
    keeps its labels), so an edited UppASD jfile of the same name reused the old J's
    labels. The labels now record their input files' contents (provenance "files"), and a
    store of other contents is refused; the label command's resume digest follows them."""
    import shutil

    from otf_spin.learning.labelling import label_with_retries
    from otf_spin.learning.store import TrainingStore
    from otf_spin.oracles import file_digests, from_block, settings_digest

    fixtures = os.path.join(os.path.dirname(__file__), "fixtures", "uppasd")
    shutil.copy(os.path.join(fixtures, "jfile"), tmp_path / "jfile")
    block = {"type": "heisenberg", "convention": "double_counted", "lattice_constant": 2.83,
             "uppasd": {"jfile": "jfile"}}
    oracle = from_block(block, base_dir=str(tmp_path))
    first = settings_digest(oracle.settings())
    labelled = label_with_retries(oracle, fe16, 0).labelled
    assert set(labelled[1]["files"]) == {"uppasd.jfile"}
    store = TrainingStore(tmp_path / "store.h5")
    store.append([labelled[0]], [labelled[1]])
    moved = tmp_path / "moved"                  # same contents elsewhere: the same oracle
    moved.mkdir()
    shutil.copy(tmp_path / "jfile", moved / "jfile")
    assert store.other_oracle(from_block(block, base_dir=str(moved)).settings()) is None
    assert settings_digest(from_block(block, base_dir=str(moved)).settings()) == first
    with open(moved / "jfile", "a") as f:       # one more pair: another J, same file name
        f.write("1 1 1.0 1.0 1.0 0.01\n")
    edited = from_block(block, base_dir=str(moved)).settings()
    assert file_digests(edited)["uppasd.jfile"] != labelled[1]["files"]["uppasd.jfile"]
    assert store.other_oracle(edited) == (
        f"{store.path} holds 1 of 1 frames labelled by another oracle (uppasd.jfile: file "
        "contents differ); give this input its own store")
    assert settings_digest(edited) != first
    assert file_digests({"type": "heisenberg", "shells": [[1.0, 1.0]]}) == {}


def test_a_run_from_a_model_file_checkpoints_and_resumes_before_its_first_label(tmp_path):
    """``otf.model`` (a model file: labels, weights and posterior, no design rows) and no
    label before the checkpoints: each checkpoint gets the frames' rows (the first used
    to fail on the missing rows, so no such run got past step 15), a run killed after two
    of them resumes to the uninterrupted run's trajectory bit for bit, and the model saved
    at the end is the starting model (no refit nor new choice of terms without labels)."""
    import shutil

    from helpers import otf_process, small_otf_run

    start = tmp_path / "start"
    start.mkdir()
    small_otf_run(start, steps=12)
    assert run_in(start, "otf.yaml")["learner"].calls > 0
    for name in ("reference", "killed"):
        work = tmp_path / name
        work.mkdir()
        small_otf_run(work, steps=40, model="start.h5", threshold=1e5, initial_frames=0,
                      checkpoint_every=10)
        shutil.copy(start / "otf_model.h5", work / "start.h5")
    assert otf_process(tmp_path / "reference")[0]
    assert not otf_process(tmp_path / "killed", kill="step:25")[0]
    with h5py.File(tmp_path / "killed" / "otf_checkpoint.h5") as h5:
        assert "rows/0/phi_E_0" in h5["model"]
    assert otf_process(tmp_path / "killed")[0]
    reference, resumed = _trajectory(tmp_path / "reference"), _trajectory(tmp_path / "killed")
    assert reference[1][-1] == 40 and not reference[2].any()       # no label in the run
    for a, b in zip(reference, resumed):
        np.testing.assert_array_equal(a, b)
    # no label, so the model the run saves is the one it started from (not refitted, its
    # terms not chosen again)
    from otf_spin.model.storage import load

    start_model, saved = load(start / "otf_model.h5")[0], load(tmp_path / "reference" /
                                                                "otf_model.h5")[0]
    np.testing.assert_array_equal(saved.alpha, start_model.alpha)
    assert saved.settings == start_model.settings and saved.hyper == start_model.hyper
