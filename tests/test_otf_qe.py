"""The on-the-fly loop with real DFT (slow): ``otf-spin run`` with the Quantum ESPRESSO
oracle and pw.x on the 2-atom cubic bcc Fe cell (within the 10-species limit of a stock
pw.x), the cheapest settings that converge. Initial labels (the start and one random
frame), one uncertainty-triggered label, then a SIGKILL right after that label is stored
(kill point ``stored:3``: before its refit and before the next checkpoint), and a resume
to the end. The budget is 3 labels, all taken before the kill, so the resumed run must
replay the trigger from its checkpoint, reuse the stored label and run no DFT job: a
relabel shows as a new job directory and a reuse count of 0, a lost label as a short
store or model."""
import os
import shutil
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from otf_spin.learning.store import TrainingStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("pw.x") is None or shutil.which("mpirun") is None,
                       reason="needs pw.x and mpirun (Debian: apt-get install quantum-espresso "
                              "quantum-espresso-data)"),
]

STEPS = 60
RUN = {
    "system": {"lattice": "bcc", "a": 2.83, "repeat": [1, 1, 1], "moment": 2.2,
               "spins": "ferromagnetic"},
    "oracle": {"type": "qe", "command": "mpirun -np 2 pw.x -in pw.in", "workdir": "jobs",
               "timeout": 1800, "kpoints": [2, 2, 2], "ecutwfc": 20.0, "ecutrho": 160.0,
               "degauss": 0.05, "conv_thr": 1.0e-5, "mixing_beta": 0.3, "lambda": 20.0,
               "max_residual": 0.05},
    "otf": {"mode": "absolute", "threshold": 0.5, "check_every": 5,
            "min_steps_between_calls": 15, "max_oracle_calls": 3, "initial_frames": 1,
            "store": "otf_store.h5", "checkpoint": "otf_checkpoint.h5",
            "checkpoint_every": 5, "save_model": "otf_model.h5"},
    "dynamics": {"integrator": "depondt", "timestep": 0.5, "damping": 0.1,
                 "temperature": 500, "steps": STEPS, "seed": 3},
    "output": {"trajectory": "otf_run.h5", "every": 5},
}


def _own_pw_x(folder) -> list[int]:
    """PIDs of processes running in ``folder`` or below (the pw.x jobs a killed run
    leaves behind: they run in their own session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                pids.append(int(entry))
    return pids


def _labels(folder) -> int:
    path = os.path.join(folder, "otf_store.h5")
    try:
        return len(TrainingStore(path)) if os.path.exists(path) else 0
    except (OSError, KeyError):                  # being written
        return 0


def test_on_the_fly_loop_with_real_pw_x_survives_a_kill(tmp_path):
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    with open(tmp_path / "otf.yaml", "w") as handle:
        yaml.safe_dump(RUN, handle)
    command = [os.path.join(os.path.dirname(sys.executable), "otf-spin"), "run", "otf.yaml",
               "--quiet"]
    # SIGKILL right after the third label (the σ-triggered one) is stored
    env = dict(os.environ, OTF_SPIN_KILL_AT="stored:3")
    try:
        first = subprocess.run(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "first.err", "w"), env=env,
                               timeout=3600)
    finally:
        for pid in _own_pw_x(tmp_path):          # pw.x jobs of the killed run
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert first.returncode == -signal.SIGKILL, \
        f"no σ-triggered label (exit {first.returncode}): " + open(tmp_path / "first.err").read()[-2000:]
    labelled_before = _labels(tmp_path)
    jobs_before = sorted(os.listdir(tmp_path / "jobs"))
    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            timeout=3600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "jobs")) == jobs_before       # no DFT rerun
    # the replayed trigger took the stored label (the killed run never fitted it)
    assert "# on the fly: 3 labels (1 reused from the store)" in second.stdout, \
        second.stdout[-2000:]

    store = TrainingStore(tmp_path / "otf_store.h5")
    frames = store.frames()
    assert len(frames) == labelled_before == 3
    steps = [f.info["provenance"].get("step") for f in frames]
    assert sum(s is not None and s > 0 for s in steps) >= 1          # triggered by σ
    for frame in frames:
        assert frame.info["provenance"]["oracle"] == "qe"
        assert np.isfinite(frame.results["energy"]) and np.isfinite(frame.results["fields"]).all()
        assert len(frame.system) == 2
    from otf_spin.model import load

    with h5py.File(tmp_path / "otf_run.h5") as f:
        assert f["particles/all/spin/step"][-1] == STEPS
        calls = f["observables/oracle_calls/value"][()]
        assert np.all(np.diff(calls) >= 0) and calls[-1] == 3
    # refit after every call: the model holds each label once (a configuration it was
    # fitted on is not labelled again; tests/test_otf_trigger.py)
    assert load(tmp_path / "otf_model.h5").n_frames == calls[-1] == len(frames)
    jobs = sorted(os.listdir(tmp_path / "jobs"))
    assert jobs and all(j.startswith("qe-") for j in jobs)
    text = open(tmp_path / "jobs" / jobs[-1] / "pw.in").read()
    assert "constrained_magnetization = 'atomic'" in text and "ntyp = 2" in text
