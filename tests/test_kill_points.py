"""Exact restart from any kill point of an on-the-fly run.

A run is SIGKILLed at deterministic points (``OTF_SPIN_KILL_AT="phase:k"``: the k-th
occurrence of a phase in that process, see otf_spin/io/atomic.py) and rerun until it
finishes, possibly killed again on the way; its trajectory, training store (provenance
time stamps aside) and final model must equal the uninterrupted run's, bit for bit.
The default suite covers every phase and the windows that matter (labels lost before
storing, stored labels before the first checkpoint, mid-append, mid-refit, mid-checkpoint,
between checkpoints, after the last checkpoint); ``-m slow`` kills at every occurrence of
every phase, with single and batched labelling.
"""
import pytest

from helpers import differences, otf_process, small_otf_run

FILES = ("otf_run.h5", "otf_store.h5", "otf_model.h5")

# one list of kills per restarted run; the phases count from 1 in every new process
DEFAULT_PLANS = [
    ["label:1"],          # the first initial label, before it is stored
    ["store:2"],          # mid-append of the second initial frame
    ["stored:2"],         # between the initial appends
    ["stored:4"],         # the first in-run label stored, before the first checkpoint
    ["refit:1"],          # mid first refit
    ["checkpoint:1"],     # mid first checkpoint write
    ["label:6"],          # an in-run label after a checkpoint, not stored
    ["refit:5"],          # mid refit after a checkpoint
    ["step:50"],          # between checkpoints
    ["checkpoint:4"],     # mid last checkpoint
    ["done:1"],           # after the last checkpoint, before the model is written
    ["stored:5", "stored:1", "checkpoint:1", "label:1", "step:20"],   # killed five times
]


def kill_and_compare(reference, folder, plans, **otf):
    """Run every plan in its own folder under ``folder``; returns (kill points,
    identical kill points, problems)."""
    kills = identical = 0
    problems = []
    for plan in plans:
        work = folder / "_".join(k.replace(":", "") for k in plan)
        work.mkdir()
        small_otf_run(work, **otf)
        for kill in plan:
            finished, _ = otf_process(work, kill)
            if finished:
                problems.append(f"{plan}: {kill} was not reached")
        finished, _ = otf_process(work)
        assert finished
        kills += len(plan)
        diff = differences(reference, work, FILES)
        if diff:
            problems.append(f"{plan}: {diff}")
        else:
            identical += len(plan)
    return kills, identical, problems


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    small_otf_run(folder)
    finished, counts = otf_process(folder)
    assert finished
    return folder, counts


def test_reference_run_passes_every_phase(reference):
    """The plans below kill where they claim: the reference run labels 3 initial and
    several in-run frames, refits, checkpoints four times."""
    _, counts = reference
    assert counts["label"] == counts["store"] == counts["stored"] >= 6
    assert counts["refit"] == counts["label"] - 3 and counts["checkpoint"] == 4
    assert counts["step"] == 60 and counts["done"] == 1


def test_killed_runs_restart_bit_for_bit(reference, tmp_path, capsys):
    kills, identical, problems = kill_and_compare(reference[0], tmp_path, DEFAULT_PLANS)
    with capsys.disabled():
        print(f"\nkill points (default suite): {kills} kill points, {identical} identical")
    assert not problems, problems
    assert identical == kills == sum(map(len, DEFAULT_PLANS))


def every_point(counts, step_stride=5):
    return [[f"{phase}:{k}"] for phase, n in sorted(counts.items())
            for k in range(1, n + 1) if phase != "step" or k % step_stride == 0]


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 2])
def test_every_kill_point_restarts_bit_for_bit(tmp_path, capsys, batch_size):
    folder = tmp_path / "reference"
    folder.mkdir()
    small_otf_run(folder, batch_size=batch_size)
    finished, counts = otf_process(folder)
    assert finished and counts["label"] >= 6
    kills, identical, problems = kill_and_compare(folder, tmp_path, every_point(counts),
                                                  batch_size=batch_size)
    with capsys.disabled():
        print(f"\nkill points (every occurrence, batch_size {batch_size}): {kills} kill "
              f"points, {identical} identical")
    assert not problems, problems
    assert identical == kills


def test_a_run_that_chooses_its_terms_again_restarts_bit_for_bit(tmp_path, capsys):
    """The loop refits from scratch, its terms chosen again on all labels
    (otf_spin.learning.otf.OnTheFly._reselect), at the re-optimisations (every 3rd call)
    from 5 frames on: here at labels 6 and 9 (the 3rd and 6th in-run refits; the choice
    at 6 and the one at 9 choose among the candidates again; the run takes 10 labels of
    the allowed 12). Killed just before the second
    choice (mid the 6th refit), at the label before it, and before the first choice and
    again at the first refit after that restart, the rerun ends bit for bit as the
    uninterrupted run."""
    folder = tmp_path / "reference"
    folder.mkdir()
    small_otf_run(folder, max_oracle_calls=12)
    finished, counts = otf_process(folder)
    assert finished and counts["label"] == 10 and counts["refit"] == 7
    plans = [["refit:6"], ["label:9"], ["refit:3", "refit:1"]]
    kills, identical, problems = kill_and_compare(folder, tmp_path, plans,
                                                  max_oracle_calls=12)
    with capsys.disabled():
        print(f"\nkill points around a new choice of terms: {kills}, {identical} identical")
    assert not problems, problems
    assert identical == kills == 4


def test_a_run_with_a_growing_wait_restarts_bit_for_bit(tmp_path, capsys):
    """``call_backoff`` 2 (otf.OnTheFly._next_wait) at threshold 0 (every allowed check
    calls): in-run calls at steps 3, 6, 12, 24, 48, so the checkpoint at step 15 holds a
    wait of 12 steps. Killed at step 20 (resumed from that checkpoint) and mid the
    second checkpoint write, the rerun ends bit for bit as the uninterrupted run (with
    the wait lost at the restart it would call at step 18)."""
    folder = tmp_path / "reference"
    folder.mkdir()
    small_otf_run(folder, call_backoff=2.0, threshold=0.0)
    finished, counts = otf_process(folder)
    assert finished and counts["label"] == 3 + 5
    plans = [["step:20"], ["checkpoint:2"]]
    kills, identical, problems = kill_and_compare(folder, tmp_path, plans,
                                                  call_backoff=2.0, threshold=0.0)
    with capsys.disabled():
        print(f"\nkill points with call_backoff 2: {kills}, {identical} identical")
    assert not problems, problems
    assert identical == kills == 2
