"""Interrupted runs (SIGTERM from a batch system, Ctrl-C) and an oracle that never works:
running DFT jobs are stopped, every label paid for is kept, and one line says how to go on."""
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from helpers import ROOT, small_otf_run

from otf_spin.learning.store import TrainingStore

FAKE_DFT = os.path.join(ROOT, "tests", "fixtures", "fake_dft", "heisenberg_dft.py")
OTF_SPIN = os.path.join(os.path.dirname(sys.executable), "otf-spin")


def _command_oracle_run(folder, mode, **otf):
    """The small on-the-fly run of the tests with the fake DFT code in ``mode`` as its
    oracle and 2 initial frames (3 jobs with the start frame)."""
    name = small_otf_run(folder, initial_frames=2, **otf)
    data = yaml.safe_load(open(folder / name))
    data["oracle"] = {"type": "command", "timeout": 60, "workdir": "jobs",
                      "command": f"{sys.executable} {FAKE_DFT} {mode}"}
    yaml.safe_dump(data, open(folder / name, "w"))
    return name


def _start(folder, *args):
    """``otf-spin ARGS`` in ``folder``, with SIGINT at its default disposition (a test
    suite started in the background by a non-interactive shell inherits SIGINT ignored,
    and Python then installs no KeyboardInterrupt handler)."""
    env = dict(os.environ, OTF_SPIN_MPI="0", PYTHONUNBUFFERED="1")
    return subprocess.Popen([OTF_SPIN, *args], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture
def started():
    """Starts processes with :func:`_start`; kills those still running at the end."""
    processes = []
    yield lambda *args: processes.append(_start(*args)) or processes[-1]
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _stderr_lines(process, code, seconds=60):
    """The stderr lines of ``process`` once it has exited, which it must with ``code``."""
    _, err = process.communicate(timeout=seconds)
    assert process.returncode == code, err
    return err.strip().splitlines()


def _wait_for(path, process, seconds=120):
    end = time.time() + seconds
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)


def _alive(pid) -> bool:
    """Whether ``pid`` runs (a zombie left to a container's init counts as gone)."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_sigterm_during_the_initial_labels_stops_the_job_and_keeps_the_labels(tmp_path,
                                                                            started):
    name = _command_oracle_run(tmp_path, "after:2:hang")
    process = started(tmp_path, "run", name, "--quiet")
    pid_file = tmp_path / "jobs" / "command-000003" / "job.pid"
    _wait_for(pid_file, process)
    job = int(open(pid_file).read())
    assert _alive(job)
    process.send_signal(signal.SIGTERM)
    assert _stderr_lines(process, 143)[-1] == (
        "otf-spin: terminated (SIGTERM): no checkpoint yet; 2 labels kept in "
        "otf_store.h5: the same command starts again and reuses them")
    end = time.time() + 10           # stopped with its process group, not left running
    while _alive(job) and time.time() < end:
        time.sleep(0.05)
    assert not _alive(job)
    assert len(TrainingStore(str(tmp_path / "otf_store.h5"))) == 2


def test_an_oracle_that_fails_on_every_initial_frame_says_so_in_one_line(tmp_path, started):
    name = _command_oracle_run(tmp_path, "fail", retries=1)
    process = started(tmp_path, "run", name, "--quiet")
    lines = _stderr_lines(process, 2, 300)
    assert len(lines) == 1 and lines[0].startswith("otf-spin: error: oracle job command-"), lines
    assert "SCF did not converge" in lines[0]
    assert lines[0].endswith("the oracle failed on all 3 initial frames (6 jobs): "
                             "no training data"), lines


def test_ctrl_c_in_a_plain_run_says_it_starts_over(tmp_path, started):
    data = yaml.safe_load(open(os.path.join(ROOT, "input_examples",
                                            "bccFe_llg_heisenberg.yaml")))
    data["dynamics"]["steps"] = 10**7
    data["output"]["trajectory"] = "plain.h5"
    yaml.safe_dump(data, open(tmp_path / "plain.yaml", "w"))
    process = started(tmp_path, "run", "plain.yaml", "--quiet")
    for line in process.stdout:         # the header is printed just before the steps
        if line.startswith("# otf-spin run"):
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    assert _stderr_lines(process, 130)[-1] == (
        "otf-spin: interrupted: plain runs keep no checkpoint: the same command starts "
        "over and replaces plain.h5")


def test_the_hint_counts_the_labels_left_in_the_spool(tmp_path):
    """Under MPI, labels other ranks made but rank 0 never gathered are in the spool:
    the interrupt line says how many, beside those in the store."""
    from otf_spin.learning.store import spool_folder
    from otf_spin.runner import interrupt_hint

    store = str(tmp_path / "otf_store.h5")
    cfg = {"otf": {"store": store, "checkpoint": str(tmp_path / "ck.h5")}}
    assert interrupt_hint(cfg, {}) == (f"no checkpoint yet; labels kept in {store}: the "
                                       "same command starts again and reuses them")
    os.makedirs(spool_folder(store))
    for name in ("a.h5", "b.h5", ".a.h5.x.tmp"):      # (a temporary file is not a label)
        open(os.path.join(spool_folder(store), name), "w").close()
    assert interrupt_hint(cfg, {"checkpointed": 40}) == (
        f"labels kept in {store} and 2 in {store}.spool; the same command resumes from "
        f"the checkpoint {tmp_path / 'ck.h5'} (step 40)")
