"""`otf-spin plot`: every figure drawn from small files made here (an on-the-fly run, MC
runs at several temperatures and sizes, predictions against labels, a training store);
the Figure is inspected before saving (points plotted = data points) and the written file
checked (format by suffix)."""
import os
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")

from helpers import ROOT, small_otf_run  # noqa: E402
from otf_spin.cli import main  # noqa: E402
from otf_spin.factory import load_run  # noqa: E402
from otf_spin.io import plot  # noqa: E402
from otf_spin.runner import run  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def in_folder(folder, function, *args):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return function(*args)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def otf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("otf")
    in_folder(folder, lambda: run(load_run(small_otf_run(folder, steps=30)), progress=False,
                                  log=open(os.devnull, "w")))
    return folder


@pytest.fixture(scope="module")
def mc_runs(tmp_path_factory):
    """Heisenberg MC runs: two sizes × three temperatures, one file each."""
    folder = tmp_path_factory.mktemp("mc")
    data = yaml.safe_load(open(os.path.join(ROOT, "input_examples",
                                            "bccFe_llg_heisenberg.yaml")))
    paths = []
    for repeat in (2, 3):
        for temperature in (300, 900, 1500):
            data["system"]["repeat"] = [repeat] * 3
            data["dynamics"].update(integrator="mc", temperature=temperature, steps=200)
            name = f"mc_{repeat}_{temperature}"
            data["output"] = {"trajectory": f"{name}.h5", "every": 5, "spins": False}
            with open(folder / f"{name}.yaml", "w") as handle:
                yaml.safe_dump(data, handle)
            in_folder(folder, lambda: run(load_run(f"{name}.yaml"), progress=False,
                                          log=open(os.devnull, "w")))
            paths.append(folder / f"{name}.h5")
    return paths


def check_file(path, header):
    assert os.path.getsize(path) > 2000
    with open(path, "rb") as handle:
        assert handle.read(len(header)) == header


def test_run_plot(otf_folder, tmp_path):
    series = plot.read_series(otf_folder / "otf_run.h5")
    figure = plot.figure_run(otf_folder / "otf_run.h5")
    axes = figure.axes
    assert len(axes) == 4                                   # |M|, E, T, σ
    n = len(series["magnetization"][0])
    m = axes[0].lines[0].get_ydata()
    assert len(m) == n
    np.testing.assert_allclose(m, np.linalg.norm(series["magnetization"][2], axis=1))
    assert len(axes[1].lines[0].get_xdata()) == len(series["energy"][0])
    labels = [line.get_label() for line in axes[3].lines]
    assert "threshold" in labels and "max σ (field)" in labels
    calls = series["oracle_calls"][2]
    assert labels.count("oracle call") == 1 and len(axes[3].lines) == 2 + np.sum(
        np.diff(calls) > 0)                                 # one marker per new call
    np.testing.assert_allclose(axes[3].lines[0].get_ydata(), 1e3 * series["max_field_std"][2])
    plot.save(figure, tmp_path / "run.png")
    check_file(tmp_path / "run.png", PNG)
    assert main(["plot", str(otf_folder / "otf_run.h5"), "--out", str(tmp_path / "r.svg")]) == 0
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:1000]
    assert main(["plot", str(otf_folder / "otf_run.h5"), "--out", str(tmp_path / "r.pdf")]) == 0
    check_file(tmp_path / "r.pdf", b"%PDF")


def test_temperature_plot(mc_runs, tmp_path):
    figure = plot.figure_temperature(mc_runs)
    ax_m, ax_u = figure.axes
    curves = [line for line in ax_u.lines if line.get_label().startswith("N =")]
    assert len(curves) == 2 and len(ax_m.containers) == 2  # one curve per size
    for line, atoms in zip(curves, (16, 54)):
        T = line.get_xdata()
        assert list(T) == [300, 900, 1500] and line.get_label() == f"N = {atoms}"
    point = plot.temperature_point(mc_runs[0])
    import h5py

    with h5py.File(mc_runs[0]) as f:
        m = np.linalg.norm(f["observables/magnetization/value"][()], axis=1)
    m = m[len(m) // 2:]
    assert point["m"] == pytest.approx(m.mean())
    assert point["binder"] == pytest.approx(1 - np.mean(m**4) / (3 * np.mean(m**2) ** 2))
    assert curves[0].get_ydata()[0] == pytest.approx(point["binder"])
    assert len(ax_m.containers[0].lines[0].get_xdata()) == 3
    m_T = [plot.temperature_point(p)["m"] for p in mc_runs[:3]]
    assert m_T[0] > m_T[1] > m_T[2]                         # disorder with temperature
    assert main(["plot", *map(str, mc_runs), "--out", str(tmp_path / "mt.png")]) == 0
    check_file(tmp_path / "mt.png", PNG)


def test_parity_plot(otf_folder, tmp_path):
    from otf_spin.io.extxyz import write_frames
    from otf_spin.learning.store import TrainingStore

    frames = TrainingStore(otf_folder / "otf_store.h5").frames()
    write_frames(tmp_path / "ref.xyz", frames)
    assert main(["predict", "--model", str(otf_folder / "otf_model.h5"), "--data",
                 str(tmp_path / "ref.xyz"), "--out", str(tmp_path / "pred.xyz"),
                 "--quiet"]) == 0
    data = plot.parity_data(tmp_path / "pred.xyz", tmp_path / "ref.xyz")
    figure = plot.figure_parity(tmp_path / "pred.xyz", tmp_path / "ref.xyz")
    ax_e, ax_b = figure.axes
    n_atoms = sum(len(f.system) for f in frames)
    assert len(data["energy"][0]) == len(frames) and len(data["fields"][0]) == 3 * n_atoms
    points = ax_e.containers[0].lines[0].get_xdata()        # errorbar data line
    assert len(points) == len(frames)
    assert len(ax_b.containers[0].lines[0].get_xdata()) == 3 * n_atoms
    assert ax_b.containers[0].has_yerr                      # σ error bars
    x, y, _ = data["fields"]
    rmse = np.sqrt(np.mean((y - x) ** 2))
    assert f"RMSE {rmse:.3g} meV/μB" in ax_b.get_legend().get_texts()[0].get_text()
    np.testing.assert_allclose(x, 1e3 * np.concatenate([f.fields.ravel() for f in frames]),
                               rtol=1e-5, atol=1e-4)       # extxyz keeps ~7 digits
    plot.save(figure, tmp_path / "parity.png")
    check_file(tmp_path / "parity.png", PNG)


def test_store_plot(otf_folder, tmp_path):
    from otf_spin.learning.store import TrainingStore

    n = len(TrainingStore(otf_folder / "otf_store.h5"))
    figure = plot.figure_store(otf_folder / "otf_store.h5")
    assert len(figure.axes[0].lines[0].get_xdata()) == n
    assert figure.axes[0].lines[0].get_ydata()[-1] == n
    assert len(figure.axes[1].lines[0].get_xdata()) == n
    assert main(["plot", str(otf_folder / "otf_store.h5"), "--out",
                 str(tmp_path / "store.png")]) == 0
    check_file(tmp_path / "store.png", PNG)


def test_one_line_errors(otf_folder, tmp_path, capsys, monkeypatch):
    cases = [([str(otf_folder / "otf_run.h5"), "--out", str(tmp_path / "x.jpg")],
              "unknown image format"),
             ([str(otf_folder / "otf_checkpoint.h5"), "--out", str(tmp_path / "x.png")],
              "not a run file"),
             ([str(otf_folder / "otf_run.h5"), "--kind", "temperature", "--out",
               str(tmp_path / "x.png")], "the temperature ramps"),
             ([str(tmp_path / "absent.h5"), "--out", str(tmp_path / "x.png")],
              "no such file")]
    for args, reason in cases:
        assert main(["plot", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and reason in err, err
    monkeypatch.setitem(sys.modules, "matplotlib", None)    # as if not installed
    assert main(["plot", str(otf_folder / "otf_run.h5"), "--out", str(tmp_path / "y.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'otf-spin[plot]'" in err
    assert not (tmp_path / "y.png").exists()


def test_plot_of_a_trajectory_whose_writer_was_killed(tmp_path):
    """A run SIGKILLed mid-trajectory leaves its file marked open for writing (SWMR):
    `otf-spin plot` without --kind detects and draws it (new-user review: it stopped
    with "file is already open for write")."""
    import subprocess

    path = tmp_path / "killed.h5"
    code = ("import os, signal\nimport numpy as np\nfrom otf_spin.io.h5md import H5MDWriter\n"
            "from otf_spin.system import bulk\n"
            f"w = H5MDWriter({str(path)!r}, bulk('bcc', 2.83, (2, 2, 2)), flush_seconds=0)\n"
            "for k in range(5):\n"
            "    w.write(k, 0.1 * k, np.tile([0.0, 0.0, 1.0], (16, 1)),\n"
            "            {'energy': -0.1 * k, 'magnetization': np.array([0.0, 0.0, 1.0])})\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    assert plot.detect([str(path)]) == "run"
    assert main(["plot", str(path), "--out", str(tmp_path / "k.png")]) == 0
    check_file(tmp_path / "k.png", PNG)
