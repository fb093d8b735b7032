"""The faster paths of issue 17 give the answers of the slow ones: the analytic gradient of
the log marginal likelihood equals its finite differences; the buffered H5MD writer
writes what per-frame writes wrote, keeps a readable file between flushes and writes
everything on flush and close."""
import warnings

import h5py
import numpy as np
import pytest

from otf_spin.config.engine import thaw
from otf_spin.config.model import MODEL
from otf_spin.core import Frame
from otf_spin.io.h5md import H5MDWriter
from otf_spin.kernels.blas_threads import one_thread
from otf_spin.learning.paper_sets import paper_oracle, random_configuration
from otf_spin.model import AliasingWarning, build_model
from otf_spin.system import bulk, random_cone


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(11)
    oracle = paper_oracle()
    frames = []
    for _ in range(6):
        system = bulk("bcc", 2.83, (2, 2, 2))
        system.set_directions(random_configuration(system, rng)[0])
        r = oracle.compute(system)
        frames.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    settings = thaw(MODEL.validate({"descriptor": {"r_cut": 5.0, "n_max": 6, "l_max": 4},
                                    "kernels": [{"zeta": 1, "normalize": False,
                                                 "n_sparse": 12},
                                                {"zeta": 4, "n_sparse": 20}]}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AliasingWarning)
        return build_model(dict(settings, optimise=False)).fit(frames)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_likelihood_gradient_equals_finite_differences(model, seed):
    """d log p / d log h by the closed form = central differences (step 1e-3 in log h:
    truncation ~1e-6 relative), at hyperparameters scattered around the fitted ones."""
    rng = np.random.default_rng(seed)
    names = ["delta_0", "delta_1", "sigma_energy", "sigma_field"]
    h = dict(model.hyper)
    for name in names:
        h[name] *= np.exp(rng.normal(0.0, 1.0))
    with one_thread():
        _, grad = model._likelihood(h, names)
        eps = 1e-3
        fd = []
        for name in names:
            up, down = dict(h), dict(h)
            up[name] *= np.exp(eps)
            down[name] *= np.exp(-eps)
            fd.append((model._likelihood(up)[0] - model._likelihood(down)[0]) / (2 * eps))
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-3)


def test_likelihood_value_is_unchanged_by_asking_for_the_gradient(model):
    names = ["delta_0", "sigma_field"]
    assert model._likelihood(model.hyper, names)[0] == model.log_marginal_likelihood()


def _frames(n, rng):
    return [(k, 0.1 * k, random_cone(16, [0, 0, 1], 0.5, rng),
             {"energy": rng.normal(), "magnetization": rng.normal(size=3)}) for k in range(n)]


def _read(path):
    with h5py.File(path, "r", libver="latest", swmr=True) as h5:
        return {name: (h5[f"{base}/step"][()], h5[f"{base}/time"][()], h5[f"{base}/value"][()])
                for name, base in (("spin", "particles/all/spin"),
                                   ("energy", "observables/energy"),
                                   ("magnetization", "observables/magnetization"))}


def test_buffered_writer_writes_what_per_frame_writes_wrote(tmp_path):
    system = bulk("bcc", 2.83, (2, 2, 2))
    files = {}
    for label, seconds in (("each", 0.0), ("buffered", 3600.0)):
        path = tmp_path / f"{label}.h5"
        with H5MDWriter(path, system, flush_seconds=seconds) as writer:
            for step, t, directions, obs in _frames(25, np.random.default_rng(3)):
                writer.write(step, t, directions, obs)
                directions[:] = 0.0          # the writer must have copied the frame
        files[label] = _read(path)
    expected_steps = np.arange(25)
    for name in ("spin", "energy", "magnetization"):
        for a, b in zip(files["each"][name], files["buffered"][name]):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert np.array_equal(files["buffered"][name][0], expected_steps)
    assert np.all(files["buffered"]["spin"][2] != 0.0)


def test_buffered_frames_reach_the_file_on_flush_only(tmp_path):
    """Between flushes the file stays readable (SWMR) with the frames of the last flush;
    flush() writes the rest (the run flushes before every checkpoint)."""
    rng = np.random.default_rng(4)
    path = tmp_path / "t.h5"
    writer = H5MDWriter(path, bulk("bcc", 2.83, (2, 2, 2)), flush_seconds=3600.0)
    try:
        for step, t, directions, obs in _frames(10, rng):
            writer.write(step, t, directions, obs)
        assert len(_read(path)["energy"][0]) == 1         # the first frame, at once
        writer.flush()
        assert list(_read(path)["spin"][0]) == list(range(10))
    finally:
        writer.close()


def test_a_writer_killed_before_its_first_frame_leaves_no_trajectory(tmp_path):
    """Until the first frame the trajectory is built beside its path: a process
    SIGKILLed then leaves nothing at the path (before, an unreadable non-SWMR file that a
    restart refused to overwrite), and a new writer there works and leaves no temporary
    file behind; after the first frame the file is a readable trajectory while it grows."""
    import os
    import subprocess
    import sys

    from otf_spin.io.atomic import file_kind

    path = tmp_path / "t.h5"
    code = ("import os, signal\nfrom otf_spin.io.h5md import H5MDWriter\n"
            "from otf_spin.system import bulk\n"
            f"w = H5MDWriter({str(path)!r}, bulk('bcc', 2.83, (2, 2, 2)))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", code])
    assert killed.returncode == -9
    assert not path.exists()
    writer = H5MDWriter(path, bulk("bcc", 2.83, (2, 2, 2)), flush_seconds=3600.0)
    try:
        assert not path.exists()
        for step, t, directions, obs in _frames(3, np.random.default_rng(2)):
            writer.write(step, t, directions, obs)
        assert file_kind(path) == "trajectory" and len(_read(path)["energy"][0]) == 1
    finally:
        writer.close()
    assert os.listdir(tmp_path) == ["t.h5"]
    assert list(_read(path)["spin"][0]) == [0, 1, 2]


class _Learner:
    def __init__(self, model):
        self.model = model

    def state(self):
        return {"calls": 0}


def _model_group(path):
    with h5py.File(path, "r") as h5:
        out = {}
        h5["model"].visititems(lambda name, node: out.__setitem__(
            name, node[()] if isinstance(node, h5py.Dataset) else dict(node.attrs)))
        return out, dict(h5["model"].attrs)


def test_checkpoint_copies_an_unchanged_model_and_rewrites_a_changed_one(model, tmp_path,
                                                                         monkeypatch):
    """A second checkpoint of the same model copies the model group of the first (no
    write_group call) and holds the same datasets and attributes; a re-solved model is
    written again."""
    from otf_spin.dynamics.llg import new_state
    from otf_spin.learning import checkpoint

    for f in model.frames:      # the fixture's rows, as a run's model has them
        assert f.blocks is not None
    calls = []
    original = checkpoint.storage.write_group
    monkeypatch.setattr(checkpoint.storage, "write_group",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    path = tmp_path / "ck.h5"
    states = {0: new_state(model.frames[0].system.directions, 1)}
    learner = _Learner(model)
    checkpoint.write(path, states, learner, 6)
    first = _model_group(path)
    checkpoint.write(path, states, learner, 6)
    assert len(calls) == 1
    second = _model_group(path)
    assert first[1] == second[1] and first[0].keys() == second[0].keys()
    for name, value in first[0].items():
        assert np.array_equal(value, second[0][name]) if isinstance(value, np.ndarray) \
            else value == second[0][name]
    back = checkpoint.read(path).model
    assert np.array_equal(back.alpha, model.alpha) and back.hyper == model.hyper
    model.solve()                 # new weight arrays: the group is written again
    checkpoint.write(path, states, learner, 6)
    assert len(calls) == 2


def test_structured_qr_equals_dense(model, monkeypatch):
    """The likelihood and its gradient by LAPACK's triangular-pentagonal QR (large
    sparse sets) equal those of the dense QR (small ones) to rounding."""
    import otf_spin.model.gpr as gpr

    names = ["delta_0", "delta_1", "sigma_energy", "sigma_field"]
    with one_thread():
        monkeypatch.setattr(gpr, "STRUCTURED_QR_FROM", 10**9)
        dense = model._likelihood(model.hyper, names)
        monkeypatch.setattr(gpr, "STRUCTURED_QR_FROM", 0)
        structured = model._likelihood(model.hyper, names)
    assert structured[0] == pytest.approx(dense[0], rel=1e-12)
    np.testing.assert_allclose(structured[1], dense[1], rtol=1e-7, atol=1e-7)


def test_cached_fm_rows_follow_structure_and_sparse_set(model):
    """The kept k(d^FM, S) rows give the rows of the direct formula, bit for bit, for
    one structure, then another (strained), then after new sparse points."""
    def direct(d, d_fm):
        return np.concatenate([k(d, S) - k(d_fm, S) for k, S in
                               zip(model.kernels, model.sparse)], axis=1)

    rng = np.random.default_rng(8)
    for scale in (1.0, 1.02):
        system = bulk("bcc", 2.83 * scale, (2, 2, 2))
        system.set_directions(random_cone(16, [0, 0, 1], 0.7, rng))
        d, d_fm = model.descriptor.compute(system), model.descriptor.compute_fm(system)
        assert np.array_equal(model._local_rows(d, d_fm), direct(d, d_fm))
    frame = model.frames[0]
    model.sparse = [np.concatenate([S, S[:1]]) for S in model.sparse]   # new arrays
    try:
        assert np.array_equal(model._local_rows(frame.d, frame.d_fm),
                              direct(frame.d, frame.d_fm))
    finally:
        model.sparse = [S[:-1] for S in model.sparse]


def test_clone_is_the_broadcast_model_bit_for_bit(model):
    """storage.clone (a one-rank run's refit) rebuilds exactly the model that the MPI
    image round trip storage.from_bytes(to_bytes(.)) gives: the same arrays, the same
    predictions with stds, and the same model again after a re-solve from the
    compressed data and after one more frame is added."""
    from otf_spin.model import storage

    rng = np.random.default_rng(5)
    oracle = paper_oracle()
    system = bulk("bcc", 2.83, (2, 2, 2))
    system.set_directions(random_configuration(system, rng)[0])
    extra = Frame(system.copy(), {k: v for k, v in oracle.compute(system).items()
                                  if k in ("energy", "fields")})
    system.set_directions(random_cone(16, [0, 0, 1], 0.9, rng))
    props = ("energy", "fields", "energy_std", "fields_std")

    def same(a, b):
        assert a.hyper == b.hyper
        for name in ("alpha", "posterior_factor", "noise_model"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        ra, rb = a.compute(system, props), b.compute(system, props)
        for name in props:
            assert np.array_equal(ra[name], rb[name]), name

    broadcast, cloned = storage.from_bytes(storage.to_bytes(model)), storage.clone(model)
    same(broadcast, cloned)
    assert cloned.frames[0].d is not model.frames[0].d      # copies, not shared rows
    for m in (broadcast, cloned):       # a re-solve from the compressed data
        m.solve()
    same(broadcast, cloned)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AliasingWarning)
        for m in (broadcast, cloned):
            m.add_frames([extra])
    same(broadcast, cloned)
