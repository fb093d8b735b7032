"""The on-the-fly trigger: what is labelled, and each label fitted once."""
import os

import numpy as np
import yaml

from otf_spin.learning.store import TrainingStore, frame_uid
from helpers import run_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "input_examples", "bccFe_otf_heisenberg.yaml")


def test_a_configuration_the_model_was_fitted_on_is_not_labelled_again(tmp_path):
    """Threshold 0: every allowed check is above it, the first (step 0) on the start
    configuration (random spins: at the ferromagnetic start σ is exactly 0, no local
    energy differs from its FM reference), which the initial model was fitted on. It is not labelled again (a
    loop that does reuses its stored label and fits the start frame twice), and every
    label is in the model once."""
    data = yaml.safe_load(open(EXAMPLE))
    data["dynamics"]["steps"] = 20
    data["system"]["spins"] = "random"
    data["otf"].update(threshold=0.0, check_every=5, min_steps_between_calls=5,
                       max_oracle_calls=10, initial_frames=1, checkpoint_every=20)
    path = tmp_path / "otf.yaml"
    path.write_text(yaml.safe_dump(data))
    learner = run_in(tmp_path, str(path))["learner"]
    store = TrainingStore(tmp_path / "otf_store.h5")
    uids = [frame_uid(f.system) for f in learner.model.frames]
    assert len(set(uids)) == len(uids) == learner.model.n_frames == len(store)
    assert learner.reused == 0
    steps = [f.info["provenance"].get("step") for f in store.frames()]
    assert 0 not in steps and steps.count(None) == 2        # start + 1 initial frame
    assert learner.calls == len(store) == 2 + 3          # checks at 0 (skipped), 5, 10, 15


def test_initial_frames_spread_over_cones_up_to_initial_cone(tmp_path):
    """The k-th of n initial frames is drawn in a cone of k/n × initial_cone around the
    initial spins: with 3 frames and 60°, the first stays within 20°,
    the second within 40°, and the third reaches beyond 40° (16 atoms uniform in a 60°
    cap: all within 40° has probability (1 - cos 40°)^16 / (1 - cos 60°)^16 ≈ 1e-5)."""
    data = yaml.safe_load(open(EXAMPLE))
    data["dynamics"]["steps"] = 5
    data["otf"].update(initial_frames=3, initial_cone=60, max_oracle_calls=4)
    path = tmp_path / "otf.yaml"
    path.write_text(yaml.safe_dump(data))
    run_in(tmp_path, str(path))
    frames = {f.info["provenance"]["frame"]: f for f in
              TrainingStore(tmp_path / "otf_store.h5").frames()
              if f.info["provenance"].get("origin") == "initial"}
    start = frames[0].system.directions
    angles = {k: np.degrees(np.arccos(np.clip(np.sum(f.system.directions * start, axis=1),
                                              -1, 1))) for k, f in frames.items()}
    assert sorted(angles) == [0, 1, 2, 3]           # the start and the 3 cone frames
    assert angles[1].max() <= 20 + 1e-9 and angles[2].max() <= 40 + 1e-9
    assert 40 < angles[3].max() <= 60 + 1e-9


def test_the_wait_grows_while_calls_come_at_the_first_allowed_check(tmp_path):
    """``call_backoff`` 2, threshold 0 (every allowed check is above it), checks every 5
    steps, wait 5: each call comes at the first check its wait allows, so the waits
    double — in-run calls at steps 5, 10, 20, 40, 80 (with a fixed pace: every check,
    19 calls) — and the wait is part of the checkpoint."""
    data = yaml.safe_load(open(EXAMPLE))
    data["dynamics"]["steps"] = 100
    data["system"]["spins"] = "random"
    data["otf"].update(threshold=0.0, check_every=5, min_steps_between_calls=5,
                       call_backoff=2, max_oracle_calls=60, initial_frames=1,
                       checkpoint_every=50, reoptimise_every=0)
    path = tmp_path / "otf.yaml"
    path.write_text(yaml.safe_dump(data))
    learner = run_in(tmp_path, str(path))["learner"]
    steps = [f.info["provenance"].get("step") for f in
             TrainingStore(tmp_path / "otf_store.h5").frames()]
    assert [s for s in steps if s is not None] == [5, 10, 20, 40, 80]
    assert learner.wait == 80 and learner.state()["wait"] == 80


def test_a_call_after_a_quieter_check_resets_the_wait():
    """OnTheFly._next_wait: × call_backoff when the call comes at the first check the
    wait allows, back to min_steps_between_calls after a check below threshold (a later
    call); a fixed pace with call_backoff 1."""
    from otf_spin.learning.otf import OnTheFly

    learner = OnTheFly.__new__(OnTheFly)
    learner.cfg = {"check_every": 5, "min_steps_between_calls": 40, "call_backoff": 2.0}
    learner.last_call, learner.wait = 100, 40
    assert learner._next_wait(140) == 80           # the first check allowed
    assert learner._next_wait(144) == 80
    assert learner._next_wait(145) == 40           # a check in between was quiet
    learner.wait = 80
    assert learner._next_wait(180) == 160 and learner._next_wait(185) == 40
    learner.cfg["call_backoff"] = 1.0
    assert learner._next_wait(180) == 40
